//! One vassal's life, as a sans-IO state machine.
//!
//! [`Bridge`] methods come in groups, in the style of quinn-proto:
//! * inputs, `handle_*(…, now)`: bytes or EOF from dockerd, the Emperor, the vassal and the
//!   proxy listener; a signal; a timer firing;
//! * outputs, `poll_*`: [`Bridge::poll_action`] (I/O for the runtime to do, in order) and
//!   [`Bridge::poll_timeout`] (when to call [`Bridge::handle_timeout`]);
//! * state: [`Bridge::is_finished`].
//!
//! The path: bind the proxy → negotiate → create → attach → wait → start → inspect →
//! accept the vassal on the proxy (deadline) → hand off → relay → stop → remove → exit.
//! Every failure path removes the container and the proxy socket.
//!
//! **A name conflict** at create replaces the container that holds the name only when it is
//! ours for this very vassal (labels: managed, vassal, prefix; see
//! [`ContainerPlan::why_not_ours`]) and its bridge is gone ([`Action::QueryBridgeAlive`]);
//! a live bridge's container is waited for a few times, and anything else is an error that
//! names the container. Nothing is ever forced against a container that is not ours: after
//! a create whose answer was lost, the name is inspected, and what holds it is removed only
//! if this very bridge made it (its bridge label).
//!
//! **Every daemon request has a deadline** ([`BridgeConfig::request_timeout`]; the attach
//! reply until `101` and the wait reply's head too): a daemon that accepts and never answers
//! fails the vassal with a message naming the request. Once stopping, what is in flight gets
//! at most [`BridgeConfig::stop_grace`], stop gets the container's stop timeout plus the
//! grace, remove the grace, and after any deadline the stop is skipped for a forced remove;
//! nothing is waited on past the shutdown's own bound, so stopping ends within
//! [`Bridge::shutdown_bound`] whatever the daemon does.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::attach::{Demuxer, LineSplitter, StreamKind};
use crate::docker::{self, Api, DaemonError};
use crate::emperor::{encode_config, ConfigDecoder, EmperorMessage, VassalMessage};
use crate::handoff::{self, HandedFd};
use crate::http_reader::{Limits, Progress, Response, ResponseReader};
use crate::plan::ContainerPlan;
use crate::spec;

/// One connection to dockerd; the runtime opens it on [`Action::DockerConnect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DockerConn(pub u32);

/// A pending connection on the proxy listener, numbered by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyPeer(pub u64);

/// Bridge settings that do not come from the vassal file.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConfig {
    pub plan: ContainerPlan,
    /// The `[emperor]` section as the vassal file asked for it, before an operator policy
    /// filled in or forced anything: a reload is compared with this, so that only a change
    /// in the file recreates the container.
    pub requested_spec: spec::VassalSpec,
    /// The config text first pushed to the vassal.
    pub config: Vec<u8>,
    /// The Emperor gave us a config channel (`UWSGI_EMPEROR_FD_CONFIG`): config requests
    /// are relayed to it, and its pushes are relayed to the vassal. Without one, requests are
    /// answered with [`Action::ReadConfig`].
    pub emperor_config_channel: bool,
    /// There is no Emperor (`uwsgi-docker run`): no control channel to relay.
    pub emperor_control_channel: bool,
    /// How long the vassal has to connect to the proxy after start.
    pub handoff_timeout: Duration,
    /// Extra time, past the container's stop timeout, before we kill it; also the most a
    /// request in flight, and the final remove, may take once the vassal is stopping.
    pub stop_grace: Duration,
    /// The most any one daemon request may take to be answered (see
    /// [`DEFAULT_REQUEST_TIMEOUT`]); stop and remove have their own, shorter, bounds.
    pub request_timeout: Duration,
    /// Prefix log lines with the vassal name.
    pub log_prefix: bool,
    pub debug: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Error,
}

/// I/O for the runtime to do, in the order returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a new connection to dockerd; report failure with [`Bridge::handle_docker_connect_failed`].
    DockerConnect(DockerConn),
    /// Write all these bytes to the connection.
    DockerSend(DockerConn, Vec<u8>),
    /// Close the connection; no more input is expected from it.
    DockerClose(DockerConn),
    /// Bind and listen on the proxy socket (mode from the Emperor settings, else 0600),
    /// removing a stale socket file first; answer with [`Bridge::handle_proxy_bound`].
    BindProxy { path: String },
    /// Start reporting connections on the proxy listener with [`Bridge::handle_proxy_peer`].
    AcceptProxy,
    /// Find the pid namespace of `pid` (host view); answer with [`Bridge::handle_pid_namespace`].
    QueryPidNamespace { pid: u32 },
    /// Send `data` with these fds (SCM_RIGHTS) on the peer's connection, then close it.
    Handoff {
        peer: ProxyPeer,
        data: Vec<u8>,
        fds: Vec<HandedFd>,
    },
    /// Close this peer's connection unserved.
    RefusePeer { peer: ProxyPeer },
    /// Is the bridge named by this `io.uwsgi-docker.bridge` label (`host:pid:starttime`)
    /// still running? Answer with [`Bridge::handle_bridge_alive`]: `true` also when the label
    /// names another host or cannot be read (not ours to judge).
    QueryBridgeAlive { label: String },
    /// Close the proxy listener and unlink its socket file.
    CloseProxy,
    /// Write to the Emperor's control channel.
    ToEmperor(Vec<u8>),
    /// Write to the bridge's end of the relayed control channel.
    ToVassalControl(Vec<u8>),
    /// Write to the bridge's end of the relayed config channel.
    ToVassalConfig(Vec<u8>),
    /// Read the vassal's config source again; answer with [`Bridge::handle_config`].
    ReadConfig,
    /// Write the container id to the `docker-cidfile` path (and remove it at exit);
    /// answer with [`Bridge::handle_cidfile_written`].
    WriteCidFile { path: String, id: String },
    /// One line for the Emperor's log.
    Log(LogLevel, String),
    /// Everything is cleaned up: exit with this code.
    Exit(i32),
}

/// How the vassal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped on request (Emperor, signal); exit code 0.
    Stopped,
    /// The container exited by itself with this status.
    ContainerExited(i64),
    /// Something failed; the message names the vassal.
    Failed(String),
    /// A reload brought a changed `[emperor]` section: the container was removed so that
    /// the Emperor starts the vassal again, in a container made to the new settings.
    Recreate,
}

/// Where the vassal is on its path. Shutdown is tracked separately (see [`Shutdown`]), so
/// that a stop request can arrive in any phase and still clean up what exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    BindingProxy,
    Negotiating,
    Creating,
    /// Create said the name is taken: inspect the container that holds it.
    InspectingConflict,
    /// The holder is ours for this vassal: is its bridge alive?
    QueryingBridge,
    /// The holder is ours and its bridge is gone: remove it (by id).
    RemovingConflict,
    /// Waiting before creating again after a conflict.
    BackingOff,
    /// Attach and wait are sent; start follows when both are armed.
    Arming,
    Starting,
    Inspecting,
    ResolvingNamespace,
    AwaitingVassal,
    Running,
}

/// What the api connection is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiRequest {
    Version,
    Create,
    /// Once stopping, after a create whose answer was lost: did it make our container?
    InspectCreated,
    InspectConflict,
    RemoveConflict,
    Start,
    Inspect,
    /// The container exited with 137 (SIGKILL) by itself: was it the OOM killer?
    InspectExit,
    Stop,
    Remove,
}

/// The connection that carries the sequential requests (one in flight at a time).
#[derive(Debug)]
struct ApiConn {
    conn: DockerConn,
    reader: ResponseReader,
    in_flight: Option<ApiRequest>,
    /// The deadline of the request in flight.
    pending: Option<Pending>,
}

/// A daemon reply we wait for, and until when.
#[derive(Debug, Clone)]
struct Pending {
    /// `METHOD /path`, for messages.
    what: String,
    sent: Instant,
    deadline: Instant,
}

impl Pending {
    fn new(bytes: &[u8], now: Instant, limit: Duration) -> Pending {
        Pending {
            what: request_line(bytes),
            sent: now,
            deadline: now + limit,
        }
    }

    fn due(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    fn timed_out(&self) -> String {
        format!(
            "docker daemon did not answer {} within {}",
            self.what,
            seconds(self.deadline.saturating_duration_since(self.sent))
        )
    }
}

/// The attach connection: an HTTP exchange until `101`, then the container's output.
#[derive(Debug)]
struct AttachConn {
    conn: DockerConn,
    reader: ResponseReader,
    upgraded: bool,
    /// Until `101`: the reply's deadline.
    pending: Option<Pending>,
    demuxer: Demuxer,
    stdout: LineSplitter,
    stderr: LineSplitter,
}

/// The `/wait?condition=next-exit` connection: armed at its head, done at its body.
#[derive(Debug)]
struct WaitConn {
    conn: DockerConn,
    reader: ResponseReader,
    armed: bool,
    /// Until the reply's head: its deadline.
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyState {
    Unbound,
    Binding,
    Bound,
    Accepting,
    Closed,
}

/// The container that holds our name at create, while we decide what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConflictHolder {
    id: String,
    /// Its `io.uwsgi-docker.bridge` label.
    bridge: String,
}

/// Cleanup progress once the vassal is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Shutdown {
    stop_done: bool,
    remove_done: bool,
}

/// `docker-user` names root: `0`, `root`, with or without a group.
fn is_root_user(user: &str) -> bool {
    matches!(user.split(':').next(), Some("0" | "root"))
}

/// How many times create is tried when the name is taken (the first try included).
const MAX_CREATE_ATTEMPTS: u8 = 6;
/// Pause before creating again after a conflict: the removal may still be in progress, or
/// a live bridge finishing its own shutdown. Doubled after each try, up to
/// [`MAX_CONFLICT_BACKOFF`] (so a live bridge gets about 6 s in all).
const CONFLICT_BACKOFF: Duration = Duration::from_millis(250);
const MAX_CONFLICT_BACKOFF: Duration = Duration::from_secs(2);
/// The usual [`BridgeConfig::request_timeout`]: a daemon that has not answered one request
/// in this long is not going to.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a vassal that closed its control channel leaves the wait to report its
/// container's exit before the bridge stops the container itself.
const VASSAL_EXIT_GRACE: Duration = Duration::from_secs(2);
/// The wait status of a container whose init died of SIGKILL (128 + 9).
const SIGKILL_STATUS: i64 = 137;
/// Longest log line before it is split.
const MAX_LOG_LINE: usize = 16 * 1024;

/// The state machine for one vassal.
///
/// * Inputs: [`handle_docker_data`](Self::handle_docker_data),
///   [`handle_docker_eof`](Self::handle_docker_eof),
///   [`handle_docker_connect_failed`](Self::handle_docker_connect_failed),
///   [`handle_proxy_bound`](Self::handle_proxy_bound), [`handle_proxy_peer`](Self::handle_proxy_peer),
///   [`handle_pid_namespace`](Self::handle_pid_namespace),
///   [`handle_emperor_control`](Self::handle_emperor_control) (and `_eof`),
///   [`handle_emperor_config`](Self::handle_emperor_config),
///   [`handle_vassal_control`](Self::handle_vassal_control) (and `_eof`),
///   [`handle_config`](Self::handle_config), [`handle_signal`](Self::handle_signal),
///   [`handle_timeout`](Self::handle_timeout).
/// * Outputs: [`poll_action`](Self::poll_action), [`poll_timeout`](Self::poll_timeout).
/// * State: [`is_finished`](Self::is_finished), [`container_id`](Self::container_id).
#[derive(Debug)]
pub struct Bridge {
    config: BridgeConfig,
    phase: Phase,
    actions: VecDeque<Action>,
    next_conn: u32,
    api: Option<Api>,
    api_conn: Option<ApiConn>,
    attach: Option<AttachConn>,
    wait: Option<WaitConn>,
    container_id: Option<String>,
    started: bool,
    container_exited: bool,
    container_pid: Option<u32>,
    container_pid_ns: Option<u64>,
    proxy: ProxyState,
    handed_off: bool,
    create_attempts: u8,
    emperor_config: ConfigDecoder,
    handoff_deadline: Option<Instant>,
    backoff_until: Option<Instant>,
    /// The container holding our name, while a conflict is being settled.
    conflict: Option<ConflictHolder>,
    /// A request went unanswered past its deadline: the daemon is not to be waited on,
    /// so shutdown skips the stop and removes by force.
    daemon_unresponsive: bool,
    /// The container exited by itself with status 137 and is still to be inspected for
    /// `State.OOMKilled` (before the removal).
    exit_inspect_due: bool,
    /// The vassal closed its control channel: until then the wait may still report the
    /// container's exit (and its status) before we stop it.
    vassal_gone_by: Option<Instant>,
    /// Once stopping: when the stop request must be answered by (the stop timeout and the
    /// grace, counted from the start of the shutdown).
    stop_by: Option<Instant>,
    /// Once stopping: no request may be waited on past this ([`Bridge::shutdown_bound`]).
    shutdown_by: Option<Instant>,
    /// A create went out and its answer was lost: the container may or may not exist.
    create_unknown: bool,
    /// The Emperor's config channel sent something we could not decode; stop relaying it.
    emperor_config_broken: bool,
    shutdown: Option<Shutdown>,
    outcome: Option<Outcome>,
    exited: bool,
}

impl Bridge {
    pub fn new(config: BridgeConfig, now: Instant) -> Bridge {
        let mut bridge = Bridge {
            config,
            phase: Phase::BindingProxy,
            actions: VecDeque::new(),
            next_conn: 0,
            api: None,
            api_conn: None,
            attach: None,
            wait: None,
            container_id: None,
            started: false,
            container_exited: false,
            container_pid: None,
            container_pid_ns: None,
            proxy: ProxyState::Unbound,
            handed_off: false,
            create_attempts: 0,
            emperor_config: ConfigDecoder::default(),
            handoff_deadline: None,
            backoff_until: None,
            conflict: None,
            daemon_unresponsive: false,
            exit_inspect_due: false,
            vassal_gone_by: None,
            stop_by: None,
            shutdown_by: None,
            create_unknown: false,
            emperor_config_broken: false,
            shutdown: None,
            outcome: None,
            exited: false,
        };
        // A config we could never push is refused before anything is created.
        let mut probe = Vec::new();
        if let Err(e) = encode_config(&bridge.config.config, &mut probe) {
            let reason = format!("{e}");
            bridge.fail(reason, now);
            return bridge;
        }
        bridge.proxy = ProxyState::Binding;
        let path = bridge.config.plan.proxy_host_path.clone();
        bridge.push(Action::BindProxy { path });
        bridge
    }

    // ---- inputs ----

    pub fn handle_docker_data(&mut self, conn: DockerConn, data: &[u8], now: Instant) {
        if self.exited {
            return;
        }
        if self.api_conn.as_ref().is_some_and(|c| c.conn == conn) {
            self.on_api_data(data, now);
        } else if self.attach.as_ref().is_some_and(|c| c.conn == conn) {
            self.on_attach_data(data, now);
        } else if self.wait.as_ref().is_some_and(|c| c.conn == conn) {
            self.on_wait_data(data, now);
        }
        // Data on a connection we already dropped is ignored.
    }

    pub fn handle_docker_eof(&mut self, conn: DockerConn, now: Instant) {
        if self.exited {
            return;
        }
        if self.api_conn.as_ref().is_some_and(|c| c.conn == conn) {
            let Some(mut api) = self.api_conn.take() else {
                return;
            };
            self.push(Action::DockerClose(conn));
            if let Some(request) = api.in_flight.take() {
                // A close-delimited body is legal; anything else is a daemon closing mid-reply.
                match api.reader.finish() {
                    Ok(response) => self.on_api_response(request, response, now),
                    Err(e) => self.api_failed(
                        request,
                        format!("docker daemon closed the connection: {e}"),
                        now,
                    ),
                }
            }
            // An idle keep-alive connection closing is fine: the next request reconnects.
        } else if self.attach.as_ref().is_some_and(|c| c.conn == conn) {
            let Some(mut attach) = self.attach.take() else {
                return;
            };
            self.push(Action::DockerClose(conn));
            if attach.upgraded {
                let mut lines = Vec::new();
                attach.stdout.flush(&mut |l| lines.push(l.to_vec()));
                attach.stderr.flush(&mut |l| lines.push(l.to_vec()));
                for line in lines {
                    self.push(Action::Log(
                        LogLevel::Info,
                        String::from_utf8_lossy(&line).into_owned(),
                    ));
                }
            } else if self.shutdown.is_none() {
                self.fail(
                    "docker daemon closed the attach connection before upgrading it".into(),
                    now,
                );
            }
        } else if self.wait.as_ref().is_some_and(|c| c.conn == conn) {
            self.wait = None;
            self.push(Action::DockerClose(conn));
            if self.shutdown.is_none() {
                self.fail(
                    "docker daemon closed the wait connection before the container exited".into(),
                    now,
                );
            }
        }
    }

    pub fn handle_docker_connect_failed(&mut self, conn: DockerConn, reason: String, now: Instant) {
        if self.exited {
            return;
        }
        let reason = format!("cannot connect to the docker daemon: {reason}");
        if let Some(api) = self.api_conn.take_if(|c| c.conn == conn) {
            match api.in_flight {
                Some(request) => self.api_failed(request, reason, now),
                None => self.fail(reason, now),
            }
        } else if self.attach.take_if(|c| c.conn == conn).is_some()
            || self.wait.take_if(|c| c.conn == conn).is_some()
        {
            self.fail(reason, now);
        }
    }

    pub fn handle_proxy_bound(&mut self, result: Result<(), String>, now: Instant) {
        if self.exited {
            return;
        }
        if self.proxy != ProxyState::Binding {
            return;
        }
        match result {
            Ok(()) => {
                self.proxy = ProxyState::Bound;
                if self.shutdown.is_none() {
                    self.phase = Phase::Negotiating;
                }
                self.advance(now);
            }
            Err(e) => {
                // Nothing was bound, so there is nothing of ours to unlink.
                self.proxy = ProxyState::Closed;
                let path = &self.config.plan.proxy_host_path;
                self.fail(format!("cannot bind the proxy socket {path}: {e}"), now);
                // A shutdown that began while binding was waiting for this answer.
                self.advance(now);
            }
        }
    }

    /// A connection on the proxy listener; `pid_ns` is the peer's pid namespace id (from
    /// SO_PEERCRED and `/proc/PID/ns/pid`), `None` when it could not be read.
    pub fn handle_proxy_peer(
        &mut self,
        peer: ProxyPeer,
        pid: Option<u32>,
        pid_ns: Option<u64>,
        now: Instant,
    ) {
        if self.exited {
            return;
        }
        let expected = self.container_pid_ns;
        let acceptable = self.phase == Phase::AwaitingVassal
            && self.shutdown.is_none()
            && !self.handed_off
            && expected.is_some()
            && pid_ns == expected;
        if !acceptable {
            self.push(Action::RefusePeer { peer });
            let who = pid.map_or_else(|| "unknown pid".to_string(), |p| format!("pid {p}"));
            self.log(
                LogLevel::Error,
                format!(
                    "refused a proxy connection from {who}: it is not inside the vassal's container; still waiting for the vassal"
                ),
            );
            return;
        }
        self.hand_off(peer, now);
    }

    pub fn handle_pid_namespace(&mut self, pid: u32, pid_ns: Option<u64>, now: Instant) {
        if self.exited {
            return;
        }
        if self.phase != Phase::ResolvingNamespace
            || self.container_pid != Some(pid)
            || self.shutdown.is_some()
        {
            return;
        }
        match pid_ns {
            Some(ns) => {
                self.container_pid_ns = Some(ns);
                self.phase = Phase::AwaitingVassal;
                self.handoff_deadline = Some(now + self.config.handoff_timeout);
                self.proxy = ProxyState::Accepting;
                self.push(Action::AcceptProxy);
            }
            None => self.fail(
                format!("cannot read the pid namespace of the container's init (pid {pid})"),
                now,
            ),
        }
    }

    /// The answer to [`Action::QueryBridgeAlive`] about the bridge of the container that
    /// holds our name (ours, for this vassal): gone, it is removed and create tried again;
    /// alive, we wait and try again a few times, then fail naming it.
    pub fn handle_bridge_alive(&mut self, alive: bool, now: Instant) {
        if self.exited {
            return;
        }
        if self.phase != Phase::QueryingBridge || self.shutdown.is_some() {
            return;
        }
        let Some(holder) = self.conflict.clone() else {
            return;
        };
        let name = self.config.plan.container_name.clone();
        let short = short_id(&holder.id);
        let bridge = &holder.bridge;
        if !alive {
            self.log(
                LogLevel::Info,
                format!("replacing the container {name} ({short}): it is ours, for this vassal, and its bridge {bridge} is gone"),
            );
            self.phase = Phase::RemovingConflict;
            self.advance(now);
            return;
        }
        self.conflict = None;
        if self.create_attempts >= MAX_CREATE_ATTEMPTS {
            self.fail(
                format!("the container name {name} is held by container {short}, ours for this vassal, whose bridge {bridge} is still running (or runs on another host); it is left alone: stop that bridge or its Emperor, or give this Emperor another docker-name-prefix"),
                now,
            );
            return;
        }
        self.log(
            LogLevel::Info,
            format!("the container name {name} is held by container {short}, whose bridge {bridge} is still running; waiting for it to finish"),
        );
        self.back_off(now);
    }

    pub fn handle_emperor_control(&mut self, data: &[u8], now: Instant) {
        if self.exited {
            return;
        }
        for &byte in data {
            if self.exited {
                break;
            }
            let message = EmperorMessage::from_byte(byte);
            if self.handed_off && self.shutdown.is_none() {
                self.push(Action::ToVassalControl(vec![byte]));
            }
            match message {
                EmperorMessage::Stop | EmperorMessage::GracefulStop => {
                    self.debug(format!("the Emperor asks the vassal to stop (byte {byte})"));
                    self.stop(Outcome::Stopped, now);
                }
                EmperorMessage::Reload => {
                    self.debug("the Emperor asks the vassal to reload".into())
                }
                EmperorMessage::Other(b) => {
                    self.debug(format!("relayed byte {b} from the Emperor"))
                }
            }
        }
    }

    pub fn handle_emperor_control_eof(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        if self.shutdown.is_none() {
            self.log(
                LogLevel::Info,
                "the Emperor is gone; stopping the container".into(),
            );
        }
        self.stop(Outcome::Stopped, now);
    }

    pub fn handle_emperor_config(&mut self, data: &[u8], now: Instant) {
        if self.exited {
            return;
        }
        if self.emperor_config_broken {
            return;
        }
        let mut configs = Vec::new();
        if let Err(e) = self.emperor_config.feed(data, &mut |c| configs.push(c)) {
            self.emperor_config_broken = true;
            self.log(
                LogLevel::Error,
                format!("ignoring the Emperor's config channel: {e}"),
            );
        }
        for config in configs {
            self.push_config(config, now);
        }
    }

    pub fn handle_vassal_control(&mut self, data: &[u8], now: Instant) {
        if self.exited {
            return;
        }
        if !self.handed_off {
            return;
        }
        for &byte in data {
            if self.exited {
                break;
            }
            match VassalMessage::from_byte(byte) {
                VassalMessage::ConfigRequest if !self.config.emperor_config_channel => {
                    self.debug("the vassal asks for its config again".into());
                    self.push(Action::ReadConfig);
                }
                VassalMessage::StopMe if !self.config.emperor_control_channel => {
                    self.stop(Outcome::Stopped, now);
                }
                _ => {
                    if self.config.emperor_control_channel {
                        self.push(Action::ToEmperor(vec![byte]));
                    }
                }
            }
        }
    }

    pub fn handle_vassal_control_eof(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        if self.shutdown.is_none() {
            self.log(
                LogLevel::Info,
                "the vassal closed its Emperor channel".into(),
            );
            // Usually its container is exiting: let the wait say how (an OOM kill is told
            // from its status), for a moment, before stopping it ourselves.
            if self.started && self.wait.as_ref().is_some_and(|w| w.armed) {
                self.vassal_gone_by = Some(now + VASSAL_EXIT_GRACE);
                return;
            }
        }
        self.stop(Outcome::ContainerExited(-1), now);
    }

    /// The answer to [`Action::ReadConfig`].
    pub fn handle_config(&mut self, config: Result<Vec<u8>, String>, now: Instant) {
        if self.exited {
            return;
        }
        match config {
            Ok(config) => self.push_config(config, now),
            // Without a config the vassal exits after 5 s; the Emperor respawns it.
            Err(e) => self.log(
                LogLevel::Error,
                format!("cannot read the vassal config again: {e}"),
            ),
        }
    }

    /// The answer to [`Action::WriteCidFile`]: a cidfile that cannot be written safely
    /// fails the vassal (its container is removed).
    pub fn handle_cidfile_written(&mut self, result: Result<(), String>, now: Instant) {
        if self.exited {
            return;
        }
        if let Err(e) = result {
            let path = self.config.plan.spec.cidfile.clone().unwrap_or_default();
            self.fail(format!("cannot write docker-cidfile {path}: {e}"), now);
        }
    }

    /// SIGTERM, SIGINT or SIGHUP: stop and clean up.
    pub fn handle_signal(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        if self.shutdown.is_none() {
            self.log(LogLevel::Info, "signalled; stopping the container".into());
        }
        self.stop(Outcome::Stopped, now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.exited {
            return;
        }
        if self.vassal_gone_by.is_some_and(|d| now >= d) {
            self.vassal_gone_by = None;
            self.stop(Outcome::ContainerExited(-1), now);
        }
        if self.handoff_deadline.is_some_and(|d| now >= d) {
            self.handoff_deadline = None;
            let secs = self.config.handoff_timeout.as_secs();
            let plan = &self.config.plan;
            let path = plan.proxy_container_path.clone();
            let entry_point = "is uWSGI ≥ 2.0.6 the image's entry point?";
            // Outside the private runtime directory the socket has the Emperor's mode
            // (UWSGIDOCKER_SOCKET_MODE, 600 by default) and is owned by root.
            let fix = "leave docker-proxy and UWSGIDOCKER_SOCKET_DIR unset, so that the socket goes in the Emperor's private runtime directory with mode 666, or set UWSGIDOCKER_SOCKET_MODE=666 and keep that directory closed to other host users";
            let host = &plan.proxy_host_path;
            let hint = match plan.spec.user.as_deref() {
                _ if plan.proxy_in_private_dir => entry_point.to_owned(),
                Some(user) if !is_root_user(user) => format!(
                    "the container runs as docker-user = {user}, which cannot connect to the proxy socket {host} (mode UWSGIDOCKER_SOCKET_MODE, default 600, owned by root); {fix}"
                ),
                _ => format!(
                    "{entry_point} And if the container's user is not root on the host (the image's USER, userns-remap, rootless Docker), it cannot connect to {host} (mode UWSGIDOCKER_SOCKET_MODE, default 600, owned by root): {fix}"
                ),
            };
            self.fail(
                format!(
                    "the vassal did not connect to the proxy socket {path} within {secs} s; {hint}"
                ),
                now,
            );
        }
        if self.backoff_until.is_some_and(|d| now >= d) {
            self.backoff_until = None;
            if self.phase == Phase::BackingOff {
                self.phase = Phase::Creating;
            }
            self.advance(now);
        }
        // A daemon that does not answer is not waited on forever.
        if let Some(api) = self
            .api_conn
            .take_if(|a| a.pending.as_ref().is_some_and(|p| p.due(now)))
        {
            self.push(Action::DockerClose(api.conn));
            self.daemon_unresponsive = true;
            if let (Some(request), Some(pending)) = (api.in_flight, api.pending) {
                let reason = pending.timed_out();
                if self.shutdown.is_some()
                    && !matches!(request, ApiRequest::Stop | ApiRequest::Remove)
                {
                    // `fail` says nothing once stopping; the operator should still hear it.
                    self.log(LogLevel::Error, reason.clone());
                }
                self.api_failed(request, reason, now);
            }
        }
        if self.exited {
            return;
        }
        let attach_due = |a: &mut AttachConn| a.pending.as_ref().is_some_and(|p| p.due(now));
        if let Some(attach) = self.attach.take_if(attach_due) {
            self.push(Action::DockerClose(attach.conn));
            self.daemon_unresponsive = true;
            if let Some(pending) = attach.pending {
                self.fail(pending.timed_out(), now);
            }
        }
        if self.exited {
            return;
        }
        let wait_due = |w: &mut WaitConn| w.pending.as_ref().is_some_and(|p| p.due(now));
        if let Some(wait) = self.wait.take_if(wait_due) {
            self.push(Action::DockerClose(wait.conn));
            self.daemon_unresponsive = true;
            if let Some(pending) = wait.pending {
                self.fail(pending.timed_out(), now);
            }
        }
    }

    // ---- outputs ----

    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.handoff_deadline,
            self.backoff_until,
            self.vassal_gone_by,
            self.api_conn
                .as_ref()
                .and_then(|c| c.pending.as_ref())
                .map(|p| p.deadline),
            self.attach
                .as_ref()
                .and_then(|c| c.pending.as_ref())
                .map(|p| p.deadline),
            self.wait
                .as_ref()
                .and_then(|c| c.pending.as_ref())
                .map(|p| p.deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The longest stopping takes, from the stop request (or the failure) to
    /// [`Action::Exit`], whatever the daemon does or does not answer: the container's stop
    /// timeout plus twice [`BridgeConfig::stop_grace`].
    pub fn shutdown_bound(&self) -> Duration {
        self.stop_wait() + 2 * self.config.stop_grace
    }

    pub fn is_finished(&self) -> Option<&Outcome> {
        if self.exited {
            self.outcome.as_ref()
        } else {
            None
        }
    }

    /// The container id, once created.
    pub fn container_id(&self) -> Option<&str> {
        self.container_id.as_deref()
    }

    // ---- internals ----

    fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    fn log(&mut self, level: LogLevel, message: String) {
        // Vassal names and values are tenant text: no control byte reaches the log raw.
        let vassal = crate::attach::escape_control(&self.config.plan.vassal_name);
        let message = crate::attach::escape_control(&message);
        self.actions.push_back(Action::Log(
            level,
            format!("[uwsgi-docker] vassal {vassal}: {message}"),
        ));
    }

    fn debug(&mut self, message: String) {
        if self.config.debug {
            self.log(LogLevel::Debug, message);
        }
    }

    /// Fails the vassal: logs why, then cleans up everything that exists.
    fn fail(&mut self, reason: String, now: Instant) {
        if self.shutdown.is_none() {
            self.log(LogLevel::Error, reason.clone());
        }
        self.stop(Outcome::Failed(reason), now);
    }

    /// Starts the shutdown, or moves it on (the first outcome wins).
    fn stop(&mut self, outcome: Outcome, now: Instant) {
        if self.exited {
            return;
        }
        self.vassal_gone_by = None;
        if self.shutdown.is_none() {
            self.outcome = Some(outcome);
            self.shutdown = Some(Shutdown::default());
            self.handoff_deadline = None;
            self.backoff_until = None;
            self.conflict = None;
            self.stop_by = Some(now + self.stop_wait() + self.config.stop_grace);
            self.shutdown_by = Some(now + self.shutdown_bound());
            // Streams not yet armed no longer matter: nothing waits for them now.
            if let Some(attach) = self.attach.as_mut() {
                attach.pending = None;
            }
            if let Some(wait) = self.wait.as_mut() {
                wait.pending = None;
            }
            // What is in flight gets the grace, no more.
            let latest = now + self.config.stop_grace;
            if let Some(pending) = self.api_conn.as_mut().and_then(|a| a.pending.as_mut()) {
                pending.deadline = pending.deadline.min(latest);
            }
        }
        // Also when already shutting down: the input that brought us here (a failed
        // request, say) may have freed the api connection for the next cleanup step.
        self.advance(now);
    }

    fn push_config(&mut self, config: Vec<u8>, now: Instant) {
        let mut packet = Vec::with_capacity(config.len() + 4);
        if let Err(e) = encode_config(&config, &mut packet) {
            self.log(LogLevel::Error, format!("cannot push the config: {e}"));
            return;
        }
        match spec::parse_vassal(&self.config.plan.vassal_name, &config) {
            Ok(Some(spec)) if spec == self.config.requested_spec => {}
            // A container cannot take new settings, but a new one can: exit, and the
            // Emperor respawns the vassal (also when it is no longer a Docker vassal).
            Ok(_) if self.config.emperor_control_channel => {
                self.log(
                    LogLevel::Info,
                    "the [emperor] section changed; removing the container so that the Emperor starts the vassal again with the new settings".into(),
                );
                self.stop(Outcome::Recreate, now);
                return;
            }
            Ok(_) => self.log(
                LogLevel::Info,
                "the [emperor] section changed; docker-* changes apply when the vassal is next started".into(),
            ),
            Err(e) => self.log(LogLevel::Error, format!("the new config is invalid ({e}); it is pushed anyway")),
        }
        if self.shutdown.is_none() {
            self.push(Action::ToVassalConfig(packet));
        }
    }

    fn hand_off(&mut self, peer: ProxyPeer, now: Instant) {
        let mut packet = Vec::with_capacity(self.config.config.len() + 4);
        if let Err(e) = encode_config(&self.config.config, &mut packet) {
            self.fail(e.to_string(), now);
            return;
        }
        // The config waits in the channel's buffer; uWSGI reads it right after the handoff.
        self.push(Action::ToVassalConfig(packet));
        // Protocol order: control, config, then the listening socket. A 2.0.x uWSGI takes
        // only two fds, so with a socket the plan's launcher receives them (native mode
        // with a socket is for uWSGI master, which maps the third onto fd 0).
        let mut fds = vec![HandedFd::Control, HandedFd::Config];
        if self.config.plan.passes_socket {
            fds.push(HandedFd::Socket);
        }
        let data = handoff::encode(&fds).to_vec();
        self.push(Action::Handoff { peer, data, fds });
        // Single use: nobody else gets to connect.
        self.push(Action::CloseProxy);
        self.proxy = ProxyState::Closed;
        self.handed_off = true;
        self.handoff_deadline = None;
        self.phase = Phase::Running;
        self.debug("handed the Emperor's channels to the vassal".into());
    }

    fn new_conn(&mut self) -> DockerConn {
        let conn = DockerConn(self.next_conn);
        self.next_conn += 1;
        self.push(Action::DockerConnect(conn));
        conn
    }

    fn api_idle(&self) -> bool {
        self.api_conn.as_ref().is_none_or(|c| c.in_flight.is_none())
    }

    /// Sends one request on the api connection, opening it first when needed; its answer
    /// is due within [`BridgeConfig::request_timeout`].
    fn send_api(&mut self, request: ApiRequest, bytes: Vec<u8>, now: Instant) {
        let deadline = now + self.config.request_timeout;
        self.send_api_by(request, bytes, deadline, now);
    }

    fn send_api_by(
        &mut self,
        request: ApiRequest,
        bytes: Vec<u8>,
        deadline: Instant,
        now: Instant,
    ) {
        // Once stopping, nothing is waited on past the shutdown's own bound.
        let deadline = self.shutdown_by.map_or(deadline, |by| deadline.min(by));
        let pending = Pending {
            deadline,
            ..Pending::new(&bytes, now, Duration::ZERO)
        };
        let conn = match self.api_conn.as_mut() {
            Some(api) => {
                api.reader.reset(false);
                api.in_flight = Some(request);
                api.pending = Some(pending);
                api.conn
            }
            None => {
                let conn = self.new_conn();
                self.api_conn = Some(ApiConn {
                    conn,
                    reader: ResponseReader::new(false, Limits::default()),
                    in_flight: Some(request),
                    pending: Some(pending),
                });
                conn
            }
        };
        self.push(Action::DockerSend(conn, bytes));
    }

    /// Issues the next request the state calls for, if the api connection is free.
    fn advance(&mut self, now: Instant) {
        if self.exited || !self.api_idle() {
            return;
        }
        if let Some(shutdown) = self.shutdown {
            self.advance_shutdown(shutdown, now);
            return;
        }
        let Some(api) = self.api else {
            if self.phase == Phase::Negotiating {
                let mut out = Vec::new();
                docker::version_request(&mut out);
                self.send_api(ApiRequest::Version, out, now);
            }
            return;
        };
        let mut out = Vec::new();
        match self.phase {
            Phase::Creating => {
                self.create_attempts += 1;
                api.create(&self.config.plan, &mut out);
                self.send_api(ApiRequest::Create, out, now);
            }
            Phase::InspectingConflict => {
                api.inspect(&self.config.plan.container_name, &mut out);
                self.send_api(ApiRequest::InspectConflict, out, now);
            }
            Phase::RemovingConflict => {
                // By id: whatever took the name since the inspect is not touched.
                if let Some(holder) = &self.conflict {
                    api.remove(&holder.id, &mut out);
                    self.send_api(ApiRequest::RemoveConflict, out, now);
                }
            }
            Phase::Starting => {
                if let Some(id) = self.container_id.clone() {
                    api.start(&id, &mut out);
                    self.send_api(ApiRequest::Start, out, now);
                }
            }
            Phase::Inspecting => {
                if let Some(id) = self.container_id.clone() {
                    api.inspect(&id, &mut out);
                    self.send_api(ApiRequest::Inspect, out, now);
                }
            }
            _ => {}
        }
    }

    fn advance_shutdown(&mut self, mut shutdown: Shutdown, now: Instant) {
        if self.proxy == ProxyState::Binding {
            // The socket may be bound by now; its answer tells us whether to unlink it.
            return;
        }
        if matches!(self.proxy, ProxyState::Bound | ProxyState::Accepting) {
            self.push(Action::CloseProxy);
            self.proxy = ProxyState::Closed;
        }
        let id = self.container_id.clone();
        let api = self.api;
        if let (true, None, Some(api)) = (self.create_unknown, &id, api) {
            // Whatever holds the name now is removed only if this bridge made it.
            let mut out = Vec::new();
            api.inspect(&self.config.plan.container_name, &mut out);
            let deadline = now + self.config.stop_grace;
            self.send_api_by(ApiRequest::InspectCreated, out, deadline, now);
            return;
        }
        if let (true, Some(id), Some(api)) = (self.exit_inspect_due, &id, api) {
            // Killed by SIGKILL, not by us: the kernel's OOM killer? (AutoRemove may beat us
            // to it; then the inspect answers 404 and the status is all there is.)
            self.exit_inspect_due = false;
            let mut out = Vec::new();
            api.inspect(id, &mut out);
            let deadline = now + self.config.stop_grace;
            self.send_api_by(ApiRequest::InspectExit, out, deadline, now);
            return;
        }
        match (id, api) {
            // A daemon that left a request unanswered gets no graceful stop: remove by force.
            (Some(id), Some(api))
                if !shutdown.stop_done
                    && self.started
                    && !self.container_exited
                    && !self.daemon_unresponsive =>
            {
                let mut out = Vec::new();
                api.stop(&id, self.config.plan.spec.stop_timeout_secs(), &mut out);
                // Counted from the start of the shutdown, so a reply that was in flight
                // then does not push the end further out.
                let deadline = self
                    .stop_by
                    .unwrap_or(now + self.stop_wait() + self.config.stop_grace);
                self.send_api_by(ApiRequest::Stop, out, deadline, now);
            }
            (Some(id), Some(api)) if !shutdown.remove_done => {
                shutdown.stop_done = true;
                self.shutdown = Some(shutdown);
                let mut out = Vec::new();
                api.remove(&id, &mut out);
                let deadline = now + self.config.stop_grace;
                self.send_api_by(ApiRequest::Remove, out, deadline, now);
            }
            _ => self.finish(),
        }
    }

    /// Everything is cleaned up: close the remaining connections and exit.
    fn finish(&mut self) {
        if self.exited {
            return;
        }
        self.handoff_deadline = None;
        self.backoff_until = None;
        let conns: Vec<DockerConn> = [
            self.api_conn.take().map(|c| c.conn),
            self.attach.take().map(|c| c.conn),
            self.wait.take().map(|c| c.conn),
        ]
        .into_iter()
        .flatten()
        .collect();
        for conn in conns {
            self.push(Action::DockerClose(conn));
        }
        let code = match self.outcome {
            Some(Outcome::Stopped) => 0,
            _ => 1,
        };
        self.exited = true;
        self.push(Action::Exit(code));
    }

    fn on_api_data(&mut self, data: &[u8], now: Instant) {
        let Some(api) = self.api_conn.as_mut() else {
            return;
        };
        let Some(request) = api.in_flight else {
            // dockerd never speaks unasked on a keep-alive connection.
            self.fail("docker daemon sent data nobody asked for".into(), now);
            return;
        };
        match api.reader.feed(data) {
            Ok(Progress::Partial) => {}
            Ok(Progress::Complete {
                response,
                consumed: _,
            }) => {
                api.in_flight = None;
                api.pending = None;
                self.on_api_response(request, response, now);
            }
            Err(e) => {
                if let Some(api) = self.api_conn.take() {
                    self.push(Action::DockerClose(api.conn));
                }
                self.api_failed(
                    request,
                    format!("bad reply from the docker daemon: {e}"),
                    now,
                );
            }
        }
    }

    /// The api connection broke while `request` was in flight.
    fn api_failed(&mut self, request: ApiRequest, reason: String, now: Instant) {
        match request {
            // Cleanup goes on even when the daemon misbehaves: the next step reconnects.
            ApiRequest::InspectExit => {
                self.log(
                    LogLevel::Info,
                    format!("the container was killed by SIGKILL; cannot inspect it for an OOM kill: {reason}"),
                );
                self.advance(now);
            }
            ApiRequest::Stop | ApiRequest::Remove => {
                self.log(LogLevel::Error, reason);
                if let Some(shutdown) = self.shutdown.as_mut() {
                    if request == ApiRequest::Stop {
                        shutdown.stop_done = true;
                    } else {
                        shutdown.remove_done = true;
                    }
                }
                self.advance(now);
            }
            // The create may or may not have happened: the cleanup inspects the name.
            ApiRequest::Create => {
                self.create_unknown = self.container_id.is_none();
                self.fail(reason, now);
            }
            ApiRequest::InspectCreated => {
                self.create_unknown = false;
                let name = self.config.plan.container_name.clone();
                self.log(
                    LogLevel::Error,
                    format!("{reason}; if a container named {name} was made for this vassal, remove it by hand"),
                );
                self.advance(now);
            }
            _ => self.fail(reason, now),
        }
    }

    fn on_api_response(&mut self, request: ApiRequest, response: Response, now: Instant) {
        match request {
            ApiRequest::Version => {
                match docker::parse_version(&response).and_then(Api::negotiate) {
                    Ok(api) => {
                        self.debug(format!("negotiated docker API {}", api.version));
                        self.api = Some(api);
                        if self.phase == Phase::Negotiating {
                            self.phase = Phase::Creating;
                        }
                    }
                    Err(e) => return self.fail(e.to_string(), now),
                }
            }
            ApiRequest::Create => match docker::parse_create(&response) {
                Ok(created) => {
                    for warning in &created.warnings {
                        self.log(LogLevel::Info, format!("docker: {warning}"));
                    }
                    self.container_id = Some(created.id.clone());
                    if let Some(path) = self.config.plan.spec.cidfile.clone() {
                        self.push(Action::WriteCidFile {
                            path,
                            id: created.id.clone(),
                        });
                    }
                    if self.shutdown.is_none() {
                        self.arm(created.id, now);
                    }
                }
                // Docker's 409 and Podman's 500 alike: find out who holds the name.
                Err(e) if e.is_conflict() => {
                    self.debug(format!("the name is taken: {e}"));
                    self.phase = Phase::InspectingConflict;
                }
                Err(e) if e.is_not_found() => {
                    let image = self.config.plan.spec.image.clone();
                    return self.fail(
                        format!("docker image {image:?} not found ({e}); build or load it on this host (no registry pull is attempted)"),
                        now,
                    );
                }
                Err(e) => return self.fail(docker::create_failure(&e, &self.config.plan), now),
            },
            ApiRequest::InspectCreated => {
                self.create_unknown = false;
                let name = self.config.plan.container_name.clone();
                match docker::parse_inspect(&response) {
                    Ok(info) if self.made_by_us(&info.labels) => {
                        self.container_id = Some(info.id);
                    }
                    Ok(info) => {
                        let short = short_id(&info.id);
                        self.log(
                            LogLevel::Info,
                            format!("the container named {name} ({short}) was not made by this bridge; it is left alone"),
                        );
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => self.log(
                        LogLevel::Error,
                        format!("cannot tell whether the container {name} was made: {e}; if so, remove it by hand"),
                    ),
                }
            }
            ApiRequest::InspectConflict => match docker::parse_inspect(&response) {
                Ok(holder) => self.judge_holder(holder, now),
                // Gone since the create: try again.
                Err(e) if e.is_not_found() => self.retry_create(now),
                Err(e) => {
                    let name = self.config.plan.container_name.clone();
                    return self.fail(
                        format!("the container name {name} is taken, and the container holding it cannot be inspected: {e}"),
                        now,
                    );
                }
            },
            ApiRequest::RemoveConflict => {
                let holder = self.conflict.take();
                match docker::parse_empty(&response) {
                    Ok(_) => self.retry_create(now),
                    Err(e) if e.is_not_found() || is_removal_in_progress(&e) => {
                        self.retry_create(now)
                    }
                    Err(e) => {
                        let name = self.config.plan.container_name.clone();
                        let short = holder.as_ref().map_or("?", |h| short_id(&h.id));
                        return self.fail(
                            format!("cannot remove the container {name} ({short}) that holds our name, though its bridge is gone: {e}"),
                            now,
                        );
                    }
                }
            }
            ApiRequest::Start => match docker::parse_empty(&response) {
                Ok(_) => {
                    self.started = true;
                    if self.phase == Phase::Starting {
                        self.phase = Phase::Inspecting;
                    }
                }
                Err(e) => {
                    // A failed start can leave the container in "created": remove it.
                    return self.fail(format!("cannot start the container: {e}"), now);
                }
            },
            ApiRequest::Inspect => match docker::parse_inspect(&response) {
                Ok(info) if info.running && info.pid > 0 => {
                    self.container_pid = Some(info.pid);
                    if self.phase == Phase::Inspecting && self.shutdown.is_none() {
                        self.phase = Phase::ResolvingNamespace;
                        self.push(Action::QueryPidNamespace { pid: info.pid });
                    }
                }
                Ok(_) => {
                    // It already exited; the wait connection reports how.
                    self.debug("the container is no longer running".into());
                }
                Err(e) => return self.fail(format!("cannot inspect the container: {e}"), now),
            },
            ApiRequest::InspectExit => match docker::parse_inspect(&response) {
                Ok(info) if info.oom_killed => {
                    let limit = self
                        .config
                        .plan
                        .spec
                        .memory
                        .map_or_else(|| "no docker-memory".to_owned(), |m| format!("docker-memory = {m} bytes"));
                    self.log(
                        LogLevel::Error,
                        format!("the container was OOM killed (out of memory, {limit}): raise docker-memory or make the app use less"),
                    );
                }
                Ok(_) => self.log(
                    LogLevel::Info,
                    "the container was killed by SIGKILL (not by the OOM killer)".into(),
                ),
                Err(e) if e.is_not_found() => self.log(
                    LogLevel::Info,
                    "the container was killed by SIGKILL; it was removed before it could be inspected, so whether the OOM killer did it is not known".into(),
                ),
                Err(e) => self.log(
                    LogLevel::Info,
                    format!("the container was killed by SIGKILL; cannot inspect it for an OOM kill: {e}"),
                ),
            },
            ApiRequest::Stop => {
                if let Err(e) = docker::parse_empty(&response) {
                    if !e.is_not_found() {
                        self.log(
                            LogLevel::Error,
                            format!("cannot stop the container: {e}; removing it by force"),
                        );
                    }
                }
                if let Some(shutdown) = self.shutdown.as_mut() {
                    shutdown.stop_done = true;
                }
            }
            ApiRequest::Remove => {
                match docker::parse_empty(&response) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() || is_removal_in_progress(&e) => {}
                    Err(e) => {
                        self.log(LogLevel::Error, format!("cannot remove the container: {e}"))
                    }
                }
                if let Some(shutdown) = self.shutdown.as_mut() {
                    shutdown.remove_done = true;
                }
            }
        }
        self.advance(now);
    }

    /// Waits before creating again: longer after each try.
    fn back_off(&mut self, now: Instant) {
        self.phase = Phase::BackingOff;
        let doublings = u32::from(self.create_attempts.saturating_sub(1)).min(8);
        let pause = (CONFLICT_BACKOFF * (1 << doublings)).min(MAX_CONFLICT_BACKOFF);
        self.backoff_until = Some(now + pause);
    }

    /// Creates again after a pause, unless the tries are used up.
    fn retry_create(&mut self, now: Instant) {
        if self.create_attempts >= MAX_CREATE_ATTEMPTS {
            let name = self.config.plan.container_name.clone();
            let tries = self.create_attempts;
            self.fail(
                format!("the container name {name} is still taken after {tries} tries to create the container"),
                now,
            );
        } else {
            self.back_off(now);
        }
    }

    /// Decides about the container that holds our name: not ours (labels, vassal, prefix),
    /// it is an error that names it; ours, it depends on whether its bridge is alive.
    fn judge_holder(&mut self, holder: docker::ContainerInfo, now: Instant) {
        let name = self.config.plan.container_name.clone();
        let short = short_id(&holder.id).to_owned();
        if let Some(why) = self.config.plan.why_not_ours(&holder.labels) {
            self.fail(
                format!("the container name {name} is taken by container {short}, which is not ours to replace: {why}. It is left alone: rename or remove it, or change the vassal's name or the Emperor's docker-name-prefix"),
                now,
            );
            return;
        }
        let bridge = holder
            .labels
            .iter()
            .find(|(k, _)| k == crate::plan::labels::BRIDGE)
            .map(|(_, v)| v.clone());
        let Some(bridge) = bridge else {
            self.fail(
                format!("the container name {name} is taken by container {short}, made for this vassal but with no bridge label, so whether its bridge is gone cannot be told. It is left alone: remove it if no bridge runs it"),
                now,
            );
            return;
        };
        self.conflict = Some(ConflictHolder {
            id: holder.id,
            bridge: bridge.clone(),
        });
        self.phase = Phase::QueryingBridge;
        self.push(Action::QueryBridgeAlive { label: bridge });
    }

    /// Labels of a container this very bridge created: ours for this vassal, and our own
    /// bridge label.
    fn made_by_us(&self, labels: &[(String, String)]) -> bool {
        let bridge = |labels: &[(String, String)]| {
            labels
                .iter()
                .find(|(k, _)| k == crate::plan::labels::BRIDGE)
                .map(|(_, v)| v.clone())
        };
        self.config.plan.why_not_ours(labels).is_none()
            && bridge(labels).is_some()
            && bridge(labels) == bridge(&self.config.plan.labels)
    }

    /// How long the container may take to stop on its own before the daemon kills it.
    fn stop_wait(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.plan.spec.stop_timeout_secs()))
    }

    /// Attach and wait go out together on their own connections; start follows once both
    /// are armed, so no output and no exit is missed.
    fn arm(&mut self, id: String, now: Instant) {
        let Some(api) = self.api else { return };
        self.phase = Phase::Arming;
        let tty = self.config.plan.spec.tty;
        let prefix = self
            .config
            .log_prefix
            .then(|| format!("[{}] ", self.config.plan.vassal_name));
        let limit = self.config.request_timeout;
        let attach_conn = self.new_conn();
        let mut out = Vec::new();
        api.attach(&id, &mut out);
        let pending = Pending::new(&out, now, limit);
        self.push(Action::DockerSend(attach_conn, out));
        self.attach = Some(AttachConn {
            conn: attach_conn,
            reader: ResponseReader::new(false, Limits::default()),
            upgraded: false,
            pending: Some(pending),
            demuxer: Demuxer::new(tty),
            stdout: LineSplitter::new(prefix.clone(), MAX_LOG_LINE),
            stderr: LineSplitter::new(prefix, MAX_LOG_LINE),
        });
        let wait_conn = self.new_conn();
        let mut out = Vec::new();
        api.wait_next_exit(&id, &mut out);
        let pending = Pending::new(&out, now, limit);
        self.push(Action::DockerSend(wait_conn, out));
        self.wait = Some(WaitConn {
            conn: wait_conn,
            reader: ResponseReader::new(false, Limits::default()),
            armed: false,
            pending: Some(pending),
        });
    }

    fn maybe_start(&mut self, now: Instant) {
        let attached = self.attach.as_ref().is_some_and(|a| a.upgraded);
        let armed = self.wait.as_ref().is_some_and(|w| w.armed);
        if self.phase == Phase::Arming && attached && armed && self.shutdown.is_none() {
            self.phase = Phase::Starting;
            self.advance(now);
        }
    }

    fn on_attach_data(&mut self, data: &[u8], now: Instant) {
        let Some(attach) = self.attach.as_mut() else {
            return;
        };
        let mut stream = data;
        if !attach.upgraded {
            match attach.reader.feed(data) {
                Ok(Progress::Partial) => return,
                Ok(Progress::Complete { response, consumed }) => {
                    if let Err(e) = docker::parse_attach(&response) {
                        return self.fail(format!("cannot attach to the container: {e}"), now);
                    }
                    attach.upgraded = true;
                    attach.pending = None;
                    stream = data.get(consumed..).unwrap_or_default();
                }
                Err(e) => {
                    return self.fail(format!("bad attach reply from the docker daemon: {e}"), now)
                }
            }
        }
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let AttachConn {
            demuxer,
            stdout,
            stderr,
            ..
        } = attach;
        let result = demuxer.feed(stream, &mut |kind, bytes| {
            let splitter = if kind == StreamKind::Stderr {
                &mut *stderr
            } else {
                &mut *stdout
            };
            splitter.push(bytes, &mut |line| lines.push(line.to_vec()));
        });
        for line in lines {
            self.push(Action::Log(
                LogLevel::Info,
                crate::attach::relay_line(&line),
            ));
        }
        if let Err(e) = result {
            // Losing the logs is no reason to kill the vassal.
            self.log(
                LogLevel::Error,
                format!("stopped reading the container's output: {e}"),
            );
            if let Some(attach) = self.attach.take() {
                self.push(Action::DockerClose(attach.conn));
            }
        }
        self.maybe_start(now);
    }

    fn on_wait_data(&mut self, data: &[u8], now: Instant) {
        let Some(wait) = self.wait.as_mut() else {
            return;
        };
        let progress = wait.reader.feed(data);
        if !wait.armed {
            if let Some((status, _)) = wait.reader.head() {
                // The head is the answer we were waiting for; the body comes at exit.
                wait.pending = None;
                if status != 200 {
                    // The error body may still be arriving; judge the whole response below.
                } else {
                    wait.armed = true;
                    self.maybe_start(now);
                }
            }
        }
        match progress {
            Ok(Progress::Partial) => {}
            Ok(Progress::Complete { response, .. }) => {
                if let Some(wait) = self.wait.take() {
                    self.push(Action::DockerClose(wait.conn));
                }
                match docker::parse_wait_body(&response) {
                    Ok(code) => {
                        self.container_exited = true;
                        let by_itself = self.shutdown.is_none();
                        if by_itself {
                            self.log(
                                LogLevel::Info,
                                format!("the container exited with status {code}"),
                            );
                        }
                        // Before the removal, while it still exists: was it the OOM killer?
                        self.exit_inspect_due = by_itself && code == SIGKILL_STATUS;
                        self.stop(Outcome::ContainerExited(code), now);
                        // A stop already under way no longer needs to stop anything.
                        self.advance(now);
                    }
                    Err(e) => self.fail(format!("cannot wait for the container: {e}"), now),
                }
            }
            Err(e) => self.fail(format!("bad wait reply from the docker daemon: {e}"), now),
        }
    }
}

/// The short form of a container id, as `docker ps` shows it.
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// `METHOD /path` of an HTTP request, without the API version prefix and the query: how
/// messages name a request.
fn request_line(bytes: &[u8]) -> String {
    let line = bytes
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let path = match path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            rest.find('/').map_or(path, |i| &rest[i..])
        }
        _ => path,
    };
    format!("{method} {path}")
}

/// `30 s`, `2.5 s`.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// dockerd's 409 when an AutoRemove or an earlier delete is already removing it.
fn is_removal_in_progress(e: &DaemonError) -> bool {
    matches!(e, DaemonError::Status { status: 409, message } if message.contains("in progress"))
}

#[cfg(test)]
mod tests;
