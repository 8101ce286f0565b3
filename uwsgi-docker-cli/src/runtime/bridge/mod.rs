//! The poll loop that drives one [`Bridge`]: it turns readiness into `handle_*` inputs and
//! executes every [`Action`] in order. It decides nothing of its own. Its work is split
//! along the bridge's jobs: the daemon's connections ([`docker`]), the Emperor's and the
//! vassal's channels ([`channels`]), the proxy socket and its peers ([`peers`]), and the
//! log relay ([`logs`]); this file holds the loop itself and the set-up.
//!
//! No periodic timers: the loop sleeps in `poll` until an fd is ready, a signal arrives
//! (self-pipe) or the bridge's own deadline passes, so an idle bridge uses no CPU.
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use uwsgi_docker_core::lifecycle::{
    Action, Bridge, BridgeConfig, BridgeError, DockerConn, Generation, LogLevel, ProxyPeer,
};
use uwsgi_docker_core::plan::ContainerPlan;
use uwsgi_docker_core::spec::VassalSpec;

use crate::host::hostfs::{self, CidFile, SocketEntry, StateFile};
use crate::host::proxy;
use crate::host::start_slots::{StartSlot, StartSlots};

mod channels;
mod docker;
mod health;
mod log_sink;
mod logs;
mod peers;
mod state;

use channels::VassalChannels;
pub use health::poll_interval as health_poll_interval;
use health::HealthWatch;
use log_sink::LogSink;
use peers::ProxyListener;
pub use state::ApiMemory;
use state::VassalStateFile;

/// Bytes read per readiness event.
const READ_CHUNK: usize = 64 * 1024;

/// The fds and facts the loop needs besides the bridge's own config.
#[derive(Debug)]
pub struct LoopIo {
    /// Our end of the Emperor's control channel (`UWSGI_EMPEROR_FD`).
    pub emperor_control: Option<OwnedFd>,
    /// Our end of the Emperor's config channel, its first packet already consumed.
    pub emperor_config: Option<OwnedFd>,
    /// The vassal file, read again on [`Action::ReadConfig`].
    pub config_file: Option<PathBuf>,
    /// The `docker-socket` listener, bound before the bridge starts.
    pub listen_socket: Option<OwnedFd>,
    /// Its file when it is a unix socket, removed at exit while it is still ours.
    pub listen_socket_entry: Option<SocketEntry>,
    pub daemon_socket: String,
    /// Mode of a proxy socket outside the private runtime directory.
    pub socket_mode: u32,
    /// The Emperor's private runtime directory (base, name), when the proxy socket goes
    /// there: made or checked at bind, and the socket gets `peers::PRIVATE_SOCKET_MODE`.
    pub proxy_private_dir: Option<(PathBuf, String)>,
    pub debug: bool,
    /// Container output lines start with `[vassal] ` (`UWSGIDOCKER_LOG_PREFIX`).
    pub log_prefix: bool,
    /// Plans a rollover's container from a changed config, as the start did.
    pub planner: RolloverPlanner,
    /// The vassal's state file (for `metrics` and `ps`), with the Emperor's id and this
    /// bridge's label; `None` when the private runtime directory cannot be had.
    pub state_file: Option<(StateFile, String, String)>,
    /// `docker-health-restart`: how often the serving container's health is read.
    pub health_watch: Option<std::time::Duration>,
    /// Where the daemon's negotiated API version is kept for the next bridges.
    pub api_memory: Option<ApiMemory>,
    /// The host's start slots for this daemon (`UWSGIDOCKER_MAX_STARTS`); `None`: no limit.
    pub start_slots: Option<StartSlots>,
}

/// What [`Action::PlanRollover`] runs: the same planning as at start (spec, policy,
/// launcher, checks).
pub struct RolloverPlanner(pub Box<PlanFn>);

/// A config in; the container plan and the `[emperor]` section it asks for out.
/// A refusal is the core's error, as the core reports it (the vassal named once, by the
/// log line).
pub type PlanFn = dyn Fn(&[u8]) -> Result<(ContainerPlan, VassalSpec), BridgeError>;

impl std::fmt::Debug for RolloverPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RolloverPlanner")
    }
}

/// A nonblocking fd with a queue of bytes still to write.
#[derive(Debug)]
struct Channel {
    fd: OwnedFd,
    out: Vec<u8>,
}

impl Channel {
    fn new(fd: OwnedFd) -> io::Result<Channel> {
        proxy::set_nonblocking(&fd)?;
        Ok(Channel {
            fd,
            out: Vec::new(),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        self.flush()
    }

    /// Write as much as the socket takes now; the rest waits for POLLOUT.
    fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match rustix::io::write(&self.fd, &self.out) {
                Ok(n) => {
                    self.out.drain(..n.min(self.out.len()));
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn interest(&self, read: bool) -> PollFlags {
        let mut flags = PollFlags::empty();
        if read {
            flags |= PollFlags::IN;
        }
        if !self.out.is_empty() {
            flags |= PollFlags::OUT;
        }
        flags
    }
}

/// What one read gave.
enum ReadOutcome {
    Data(usize),
    Eof,
    Nothing,
}

/// Reads into `buf`'s spare capacity, and its length becomes what was read: the buffer's
/// pages are written, and so made resident, only as far as reads reach (an idle bridge
/// does not carry a 64 KiB buffer it filled with zeros).
fn read_some(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> ReadOutcome {
    buf.clear();
    match rustix::io::read(fd, rustix::buffer::spare_capacity(buf)) {
        Ok(0) => ReadOutcome::Eof,
        Ok(n) => ReadOutcome::Data(n),
        Err(Errno::AGAIN | Errno::INTR) => ReadOutcome::Nothing,
        // ECONNRESET and friends: the peer is gone.
        Err(_) => ReadOutcome::Eof,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Signal,
    EmperorControl,
    EmperorConfig,
    VassalControl(Generation),
    VassalConfig(Generation),
    Docker(DockerConn),
    Proxy,
    Health,
}

#[derive(Debug)]
struct Runtime {
    bridge: Bridge,
    io: LoopIoFacts,
    signals: OwnedFd,
    emperor_control: Option<Channel>,
    emperor_config: Option<OwnedFd>,
    /// By generation: the first from the start, a rollover's beside it.
    vassals: BTreeMap<Generation, VassalChannels>,
    /// The listening socket every generation gets (`docker-socket` or the Emperor's
    /// on-demand socket), kept so that a rollover can pass it again.
    listen_socket: Option<OwnedFd>,
    docker: BTreeMap<DockerConn, Channel>,
    proxy: Option<ProxyListener>,
    peers: BTreeMap<ProxyPeer, OwnedFd>,
    next_peer: u64,
    cidfile: Option<CidFile>,
    exit: Option<i32>,
    /// Log lines (relayed and our own), written once per loop turn.
    log: LogSink<io::Stderr>,
    /// The vassal's counters, written for `metrics` and `ps`.
    state: Option<VassalStateFile>,
    /// The watcher of the serving container's health (`docker-health-restart`).
    health: Option<HealthWatch>,
    /// The start slot each launch holds, from its create until its start is answered.
    held_slots: BTreeMap<Generation, StartSlot>,
}

#[derive(Debug)]
struct LoopIoFacts {
    /// The vassal's name, in every line the loop logs itself.
    vassal: String,
    config_file: Option<PathBuf>,
    listen_socket_entry: Option<SocketEntry>,
    daemon_socket: String,
    socket_mode: u32,
    proxy_private_dir: Option<(PathBuf, String)>,
    debug: bool,
    /// What each relayed line of container output starts with: `[vassal] ` (escaped), or
    /// nothing when `UWSGIDOCKER_LOG_PREFIX=0`.
    output_prefix: String,
    planner: RolloverPlanner,
    api_memory: Option<ApiMemory>,
    start_slots: Option<StartSlots>,
}

/// Run the bridge to its end; returns the exit code it chose. When it cannot even start,
/// the `docker-socket` file is removed before the error comes back.
pub fn run(config: BridgeConfig, mut io: LoopIo) -> Result<i32, SetupError> {
    let entry = io.listen_socket_entry.take();
    match run_with(config, io, entry) {
        Ok(code) => Ok(code),
        Err((e, entry)) => {
            if let Some(entry) = entry {
                let _ = entry.remove();
            }
            Err(e)
        }
    }
}

type SetupResult = Result<i32, (SetupError, Option<SocketEntry>)>;

/// What can fail before the bridge starts: the signal pipe and the channels it relays.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot set up signal handling: {0}")]
    Signals(io::Error),
    #[error("cannot create the relayed {0} channel: {1}")]
    Pair(&'static str, io::Error),
    #[error("cannot make the {0} nonblocking: {1}")]
    Nonblocking(&'static str, io::Error),
}

fn run_with(config: BridgeConfig, io: LoopIo, entry: Option<SocketEntry>) -> SetupResult {
    let parts = match setup(&io) {
        Ok(parts) => parts,
        Err(e) => return Err((e, entry)),
    };
    let (signals, first) = parts;
    let emperor_control = match io.emperor_control.map(Channel::new).transpose() {
        Ok(channel) => channel,
        Err(e) => {
            let e = SetupError::Nonblocking("Emperor control channel", e);
            return Err((e, entry));
        }
    };
    let vassal = config.plan.vassal_name.clone();
    let started = Instant::now();
    let state = io.state_file.map(|(file, emperor, bridge)| {
        VassalStateFile::open(file, &emperor, &bridge, &vassal, started)
    });
    let mut health_failure = None;
    let health = io.health_watch.and_then(|every| {
        HealthWatch::spawn(io.daemon_socket.clone(), every)
            .map_err(|e| health_failure = Some(e))
            .ok()
    });
    let mut runtime = Runtime {
        bridge: Bridge::new(config, started),
        io: LoopIoFacts {
            output_prefix: logs::output_prefix(&vassal, io.log_prefix),
            vassal,
            config_file: io.config_file,
            listen_socket_entry: entry,
            daemon_socket: io.daemon_socket,
            socket_mode: io.socket_mode,
            proxy_private_dir: io.proxy_private_dir,
            debug: io.debug,
            planner: io.planner,
            api_memory: io.api_memory,
            start_slots: io.start_slots,
        },
        signals,
        emperor_control,
        emperor_config: io.emperor_config,
        vassals: BTreeMap::from([(Generation::default(), first)]),
        listen_socket: io.listen_socket,
        docker: BTreeMap::new(),
        proxy: None,
        peers: BTreeMap::new(),
        next_peer: 0,
        cidfile: None,
        exit: None,
        log: LogSink::stderr(),
        state,
        health,
        held_slots: BTreeMap::new(),
    };
    if let Some(e) = health_failure {
        let message = format!("cannot watch the container's health (docker-health-restart): {e}");
        runtime.say(LogLevel::Error, &message);
    }
    Ok(runtime.run())
}

/// What can fail before the bridge starts: the signal pipe and the first relayed channels.
fn setup(io: &LoopIo) -> Result<(OwnedFd, VassalChannels), SetupError> {
    let signals = signal_pipe(&[
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
        // systemd's KillSignal for Debian's uwsgi-emperor service reaches every process
        // of the service: the bridge must remove its container then too.
        signal_hook::consts::SIGQUIT,
    ])
    .map_err(SetupError::Signals)?;
    let first = VassalChannels::new()?;
    if let Some(fd) = &io.emperor_config {
        proxy::set_nonblocking(fd)
            .map_err(|e| SetupError::Nonblocking("Emperor config channel", e))?;
    }
    Ok((signals, first))
}

/// Each of `signals` writes a byte to a nonblocking pipe we poll (the bridge: SIGTERM,
/// SIGINT, SIGHUP and SIGQUIT; `metrics`: SIGTERM and SIGINT).
pub fn signal_pipe(signals: &[i32]) -> io::Result<OwnedFd> {
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    let write = OwnedFd::from(write);
    for signal in signals {
        signal_hook::low_level::pipe::register_raw(*signal, write.as_raw_fd())?;
    }
    // The handlers write to it for the rest of the process's life: one fd for all of
    // them (an fd of its own each would be three more per bridge).
    std::mem::forget(write);
    Ok(OwnedFd::from(read))
}

impl Runtime {
    fn run(&mut self) -> i32 {
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let mut poll_failures = 0u32;
        loop {
            self.drain_actions();
            self.track_state();
            self.track_health();
            if let Some(code) = self.exit {
                self.cleanup();
                return code;
            }
            // Before sleeping: nothing waits in the batch while the bridge is idle.
            self.log.flush();
            let ready = match self.wait() {
                Ok(ready) => {
                    poll_failures = 0;
                    ready
                }
                Err(e) => {
                    // Should not happen; stop the vassal, and give up if it persists.
                    self.say(LogLevel::Error, &format!("poll failed: {e}"));
                    poll_failures += 1;
                    if poll_failures > 100 {
                        self.cleanup();
                        return 1;
                    }
                    self.bridge.handle_signal(Instant::now());
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    Vec::new()
                }
            };
            for (slot, revents) in ready {
                self.on_ready(slot, revents, &mut buf);
                self.drain_actions();
                if self.exit.is_some() {
                    break;
                }
            }
            if self.exit.is_none() {
                if let Some(deadline) = self.bridge.poll_timeout() {
                    let now = Instant::now();
                    if now >= deadline {
                        self.bridge.handle_timeout(now);
                    }
                }
            }
        }
    }

    /// Poll every live fd until one is ready or the bridge's deadline passes.
    fn wait(&self) -> io::Result<Vec<(Slot, PollFlags)>> {
        let mut slots = vec![Slot::Signal];
        let mut fds = vec![PollFd::new(&self.signals, PollFlags::IN)];
        if let Some(ch) = &self.emperor_control {
            slots.push(Slot::EmperorControl);
            fds.push(PollFd::new(&ch.fd, ch.interest(true)));
        }
        if let Some(fd) = &self.emperor_config {
            slots.push(Slot::EmperorConfig);
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        for (generation, vassal) in &self.vassals {
            if let Some(ch) = &vassal.control {
                slots.push(Slot::VassalControl(*generation));
                fds.push(PollFd::new(&ch.fd, ch.interest(true)));
            }
            if let Some(ch) = &vassal.config {
                // Only written; POLLHUP/POLLERR are reported whatever the interest.
                slots.push(Slot::VassalConfig(*generation));
                fds.push(PollFd::new(&ch.fd, ch.interest(false)));
            }
        }
        for (conn, ch) in &self.docker {
            slots.push(Slot::Docker(*conn));
            fds.push(PollFd::new(&ch.fd, ch.interest(true)));
        }
        if let Some(listener) = self.proxy.as_ref().filter(|l| l.accepting) {
            slots.push(Slot::Proxy);
            fds.push(PollFd::new(&listener.fd, PollFlags::IN));
        }
        if let Some(watch) = &self.health {
            slots.push(Slot::Health);
            fds.push(PollFd::new(&watch.alarm, PollFlags::IN));
        }
        let state_due = self.state.as_ref().and_then(VassalStateFile::poll_timeout);
        let deadline = match (self.bridge.poll_timeout(), state_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = deadline.map(|deadline| {
            let left = deadline.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
        Ok(slots
            .into_iter()
            .zip(fds.iter().map(PollFd::revents))
            .filter(|(_, revents)| !revents.is_empty())
            .collect())
    }

    fn on_ready(&mut self, slot: Slot, revents: PollFlags, buf: &mut Vec<u8>) {
        let now = Instant::now();
        let readable = revents.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR);
        match slot {
            Slot::Signal => {
                // Drain every pending byte: several signals are one stop request.
                while let ReadOutcome::Data(_) = read_some(self.signals.as_fd(), buf) {}
                self.bridge.handle_signal(now);
            }
            Slot::EmperorControl => self.emperor_control_ready(revents, readable, buf, now),
            Slot::EmperorConfig => self.emperor_config_ready(buf, now),
            Slot::VassalControl(generation) => {
                self.vassal_control_ready(generation, revents, readable, buf, now)
            }
            Slot::VassalConfig(generation) => self.vassal_config_ready(generation, revents),
            Slot::Docker(conn) => self.docker_ready(conn, revents, readable, buf, now),
            Slot::Proxy => self.accept_peers(now),
            Slot::Health => self.health_alarm(now),
        }
    }

    fn drain_actions(&mut self) {
        while self.exit.is_none() {
            let Some(action) = self.bridge.poll_action() else {
                return;
            };
            self.execute(action);
        }
    }

    fn execute(&mut self, action: Action) {
        // A chatty container's lines are most of the actions: they read no clock.
        let action = match action {
            Action::Log(event) => {
                self.track_event(&event);
                return self.log_event(&event);
            }
            action => action,
        };
        let now = Instant::now();
        match action {
            Action::DockerConnect(conn) => self.docker_connect(conn, now),
            Action::DockerSend(conn, bytes) => self.docker_send(conn, &bytes, now),
            Action::DockerClose(conn) => {
                self.docker.remove(&conn);
            }
            Action::BindProxy { path } => self.proxy_bind(Path::new(&path), now),
            Action::AcceptProxy => self.proxy_accepting(),
            Action::QueryPidNamespace { pid } => {
                let ns = crate::host::sys::pid_namespace(pid);
                self.bridge.handle_pid_namespace(pid, ns, now);
            }
            Action::Handoff {
                generation,
                peer,
                data,
                fds,
            } => self.handoff(generation, peer, &data, &fds),
            Action::RefusePeer { peer } => {
                self.peers.remove(&peer);
            }
            Action::QueryBridgeAlive { label } => {
                let alive = crate::host::sys::bridge_label_alive(&label);
                self.bridge.handle_bridge_alive(alive, now);
            }
            Action::CloseProxy => self.close_proxy(),
            Action::ToEmperor(bytes) => self.send_to_emperor(&bytes),
            Action::ToVassalControl(generation, bytes) => {
                self.send_to_vassal_control(generation, &bytes)
            }
            Action::ToVassalConfig(generation, bytes) => {
                self.send_to_vassal_config(generation, &bytes)
            }
            Action::PrepareChannels(generation) => self.prepare_channels(generation, now),
            Action::DropChannels(generation) => {
                self.vassals.remove(&generation);
            }
            Action::PlanRollover { config } => {
                let planned = (self.io.planner.0)(&config);
                self.bridge.handle_rollover_plan(planned, now);
            }
            Action::ReadConfig => self.read_config(now),
            Action::WriteCidFile { path, id } => {
                match hostfs::write_cidfile(Path::new(&path), &id) {
                    Ok(cidfile) => {
                        self.cidfile = Some(cidfile);
                        self.bridge.handle_cidfile_written(Ok(()), now);
                    }
                    Err(e) => self
                        .bridge
                        .handle_cidfile_written(Err(io::Error::other(e.to_string())), now),
                }
            }
            Action::RememberApi(api) => self.remember_api(api),
            Action::TakeStartSlot(generation) => self.take_start_slot(generation, now),
            Action::ReleaseStartSlot(generation) => {
                self.held_slots.remove(&generation);
            }
            // Taken above, before the clock.
            Action::Log(_) => {}
            Action::Exit(code) => self.exit = Some(code),
        }
    }

    /// One of the host's start slots, if one is free; the bridge asks again when not.
    fn take_start_slot(&mut self, generation: Generation, now: Instant) {
        let taken = match self.io.start_slots.as_ref().map(StartSlots::try_take) {
            Some(Ok(Some(slot))) => {
                self.held_slots.insert(generation, slot);
                Ok(true)
            }
            Some(Ok(None)) => Ok(false),
            Some(Err(e)) => Err(io::Error::other(e.to_string())),
            // Asked only when the runtime set a limit up; without one there is no wait.
            None => Ok(true),
        };
        self.bridge.handle_start_slot(generation, taken, now);
    }

    fn cleanup(&mut self) {
        // Best effort: a last word to the Emperor (e.g. "stop me") still queued.
        if let Some(ch) = &mut self.emperor_control {
            let _ = ch.flush();
        }
        self.close_proxy();
        if let Some(cidfile) = self.cidfile.take() {
            if let Err(e) = cidfile.remove() {
                self.say(LogLevel::Error, &format!("docker-cidfile {e}"));
            }
        }
        if let Some(entry) = self.io.listen_socket_entry.take() {
            self.remove_entry(entry);
        }
        self.finish_state();
        self.log.flush();
    }
}

fn head(buf: &[u8], n: usize) -> &[u8] {
    buf.get(..n).unwrap_or(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn channel_queues_what_the_socket_does_not_take() {
        let (ours, theirs) = proxy::stream_pair().expect("pair");
        let mut channel = Channel::new(ours).expect("nonblocking");
        let payload: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        channel.send(&payload).expect("send never blocks");
        assert!(
            !channel.out.is_empty(),
            "4 MiB cannot fit in a socket buffer"
        );
        assert!(channel.interest(false).contains(PollFlags::OUT));
        let mut reader = UnixStream::from(theirs);
        let mut received = Vec::with_capacity(payload.len());
        let mut buf = vec![0u8; 256 * 1024];
        while received.len() < payload.len() {
            let n = reader.read(&mut buf).expect("read");
            received.extend_from_slice(&buf[..n]);
            channel.flush().expect("flush");
        }
        assert_eq!(received, payload);
        assert!(channel.out.is_empty());
        assert_eq!(channel.interest(true), PollFlags::IN);
    }

    #[test]
    fn writes_to_a_closed_peer_fail_instead_of_killing_us() {
        let (ours, theirs) = proxy::stream_pair().expect("pair");
        drop(theirs);
        let mut channel = Channel::new(ours).expect("nonblocking");
        // EPIPE, not SIGPIPE: the Rust runtime ignores SIGPIPE.
        assert!(channel.send(b"\x01").is_err());
        let (ours, theirs) = proxy::stream_pair().expect("pair");
        drop(theirs);
        assert!(matches!(
            read_some(ours.as_fd(), &mut Vec::with_capacity(8)),
            ReadOutcome::Eof
        ));
    }

    #[test]
    fn a_read_fills_the_buffers_spare_capacity_and_no_more() {
        let (ours, theirs) = proxy::stream_pair().expect("pair");
        let mut theirs = UnixStream::from(theirs);
        std::io::Write::write_all(&mut theirs, b"hello").expect("write");
        let mut buf = Vec::with_capacity(READ_CHUNK);
        buf.extend_from_slice(b"an earlier read");
        assert!(matches!(
            read_some(ours.as_fd(), &mut buf),
            ReadOutcome::Data(5)
        ));
        assert_eq!(
            buf, b"hello",
            "the earlier bytes are gone, the new ones are all there is"
        );
        assert!(
            buf.capacity() >= READ_CHUNK,
            "the buffer is not reallocated"
        );
    }
}
