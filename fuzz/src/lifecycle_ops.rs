//! Operation sequences on the lifecycle state machine.
//!
//! The fuzzer's bytes become a sequence of inputs (daemon bytes, canned replies, EOFs,
//! proxy peers, Emperor and vassal bytes, configs, signals, time). Every action the bridge
//! returns is checked against the protocol rules, and at the end a signal plus a
//! cooperative daemon must always bring it to `Exit`.
//!
//! A changed `[emperor]` section rolls over (the first byte picks a plan with a listening
//! socket): `PlanRollover` is answered with a real plan, and the rules know generations —
//! each is handed off at most once, only the current one gets the Emperor's bytes (the old
//! one only its graceful stop), nothing is written to dropped channels, and after the exit
//! every generation but the current one was dropped. One changed section sets a health
//! check: its new vassal's `Accepting` byte makes the bridge inspect the container, and
//! only the answer (canned: starting, healthy, unhealthy; or the cooperative daemon's,
//! without a check) switches or abandons.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use uwsgi_docker_core::emperor::EmperorMessage;
use uwsgi_docker_core::handoff::{self, HandedFd};
use uwsgi_docker_core::lifecycle::{
    Action, Bridge, BridgeConfig, DockerConn, Generation, PeerIdentity, ProxyPeer, VassalError,
};
use uwsgi_docker_core::plan::{ContainerPlan, PlanOptions, VassalIdentity};
use uwsgi_docker_core::spec::{self, VassalSpec};

const INIT_PID: u32 = 77;
const CONTAINER_NS: u64 = 4026532999;

/// Replies a well-behaved dockerd could send, for the fuzzer to pick from (each whole:
/// `canned_replies_are_whole` checks their lengths).
const CANNED: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"ApiVersion\":\"1.41\"}\n",
    b"HTTP/1.1 201 Created\r\nContent-Length: 29\r\n\r\n{\"Id\":\"abc\",\"Warnings\":null}\n",
    b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"13\r\n{\"StatusCode\":137}\n\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 58\r\n\r\n{\"Id\":\"abc\",\"State\":{\"Running\":true,\"Pid\":77},\"Name\":\"/a\"}",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 27\r\n\r\n{\"message\":\"No such image\"}",
    b"HTTP/1.1 409 Conflict\r\nContent-Length: 23\r\n\r\n{\"message\":\"Conflict.\"}",
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
    // Inspects of a container with a health check: starting, healthy, unhealthy.
    b"HTTP/1.1 200 OK\r\nContent-Length: 95\r\n\r\n{\"Id\":\"abc\",\"State\":{\"Running\":true,\"Pid\":77,\"Health\":{\"Status\":\"starting\",\"FailingStreak\":0}}}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 94\r\n\r\n{\"Id\":\"abc\",\"State\":{\"Running\":true,\"Pid\":77,\"Health\":{\"Status\":\"healthy\",\"FailingStreak\":0}}}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 96\r\n\r\n{\"Id\":\"abc\",\"State\":{\"Running\":true,\"Pid\":77,\"Health\":{\"Status\":\"unhealthy\",\"FailingStreak\":3}}}",
];

/// Configs op 12 can pick: the running one, a changed image with a health check (a
/// rollover that waits for the daemon's word that it is healthy), a changed image (a
/// rollover, with a socket), and one that cannot run beside the old container (a recreate).
const CONFIGS: &[&[u8]] = &[
    b"[emperor]\ndocker-image = app\ndocker-stop-timeout = 2\n",
    b"[emperor]\ndocker-image = app:2\ndocker-stop-timeout = 2\ndocker-healthcheck = [\"/check\"]\ndocker-health-interval = 1s\ndocker-health-timeout = 1s\n",
    b"[emperor]\ndocker-image = app:2\ndocker-stop-timeout = 2\n",
    b"[emperor]\ndocker-image = app:3\ndocker-port = 9000:3031\n",
];

/// The container plan for `spec`, as the runtime makes it (the socket is inherited).
fn plan(spec: VassalSpec, passes_socket: bool) -> ContainerPlan {
    let identity = VassalIdentity::new("app.ini", "/run", "e", "b");
    let options = PlanOptions::default()
        .with_launcher(Some("/usr/lib/uwsgi-docker-launcher".into()))
        .with_inherited_socket(passes_socket);
    ContainerPlan::with_options(spec, &identity, &options)
}

/// The first input byte picks the plan: with or without a listening socket to pass.
fn config(passes_socket: bool) -> BridgeConfig {
    let spec = spec::parse_vassal("app.ini", CONFIGS[0])
        .ok()
        .flatten()
        .expect("a Docker vassal");
    let plan = plan(spec.clone(), passes_socket);
    let mut config = BridgeConfig::new(plan, spec, CONFIGS[0].to_vec());
    config.debug = true;
    config.start_limit = true;
    config
}

/// Checks each action against the rules and remembers what is open.
struct Observer {
    /// The driver's simulated clock, for the answers the observer gives at once.
    now: Instant,
    passes_socket: bool,
    open: BTreeSet<u32>,
    ever_opened: BTreeSet<u32>,
    /// A proxy socket is bound (and not yet closed).
    proxy_bound: bool,
    /// `BindProxy` asked and not yet answered by the driver.
    bind_pending: bool,
    accepting: bool,
    /// Generations handed off, prepared (besides the first) and dropped.
    handed_off: BTreeSet<Generation>,
    prepared: BTreeSet<Generation>,
    dropped: BTreeSet<Generation>,
    exited: bool,
    /// Requests sent on each connection and not yet answered by the driver.
    unanswered: Vec<(DockerConn, Vec<u8>)>,
    pid_queries: Vec<u32>,
    config_reads: usize,
    /// Generations holding the one start slot there is.
    slots_held: BTreeSet<Generation>,
}

impl Observer {
    fn drain(&mut self, bridge: &mut Bridge) {
        while let Some(action) = bridge.poll_action() {
            assert!(!self.exited, "action after Exit: {action:?}");
            match action {
                Action::DockerConnect(DockerConn(c)) => {
                    assert!(self.ever_opened.insert(c), "connection id {c} reused");
                    self.open.insert(c);
                }
                Action::DockerSend(conn, bytes) => {
                    assert!(self.open.contains(&conn.0), "send on closed {conn:?}");
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut request = httparse::Request::new(&mut headers);
                    let parsed = request.parse(&bytes).expect("requests are valid HTTP");
                    assert!(parsed.is_complete());
                    self.unanswered.push((conn, bytes));
                }
                Action::DockerClose(conn) => {
                    assert!(self.open.remove(&conn.0), "close of closed {conn:?}");
                    self.unanswered.retain(|(c, _)| *c != conn);
                }
                Action::BindProxy { .. } => {
                    assert!(!self.proxy_bound && !self.bind_pending, "bound twice");
                    self.bind_pending = true;
                }
                Action::AcceptProxy => {
                    assert!(self.proxy_bound, "accepting on no socket");
                    self.accepting = true;
                }
                Action::QueryPidNamespace { pid } => self.pid_queries.push(pid),
                Action::Handoff {
                    generation,
                    data,
                    fds,
                    ..
                } => {
                    assert!(self.accepting, "handoff before accepting");
                    assert!(
                        self.handed_off.insert(generation),
                        "two handoffs of {generation:?}"
                    );
                    assert!(generation == Generation(0) || self.prepared.contains(&generation));
                    assert!(
                        !self.dropped.contains(&generation),
                        "handoff of dropped channels"
                    );
                    assert_eq!(handoff::decode(&data), Ok(fds.len()));
                    assert_eq!(fds.first(), Some(&HandedFd::Control));
                    assert_eq!(fds.len(), 2 + usize::from(self.passes_socket));
                    assert_eq!(fds.get(2).is_some(), fds.last() == Some(&HandedFd::Socket));
                }
                Action::RefusePeer { .. } => {}
                // Answered at once, as the runtime does: alive for odd label lengths.
                Action::QueryBridgeAlive { label } => {
                    bridge.handle_bridge_alive(label.len() % 2 == 1, self.now);
                }
                Action::CloseProxy => {
                    assert!(self.proxy_bound, "close without bind");
                    self.proxy_bound = false;
                    self.accepting = false;
                }
                Action::ToVassalControl(generation, bytes) => {
                    assert!(
                        self.handed_off.contains(&generation),
                        "bytes before handoff"
                    );
                    assert!(
                        !self.dropped.contains(&generation),
                        "bytes to dropped channels"
                    );
                    // The Emperor's channels reach one vassal: the old one only hears
                    // that it is to stop gracefully.
                    let graceful_stop = [EmperorMessage::GracefulStop.to_byte()];
                    assert!(
                        generation == bridge.current_generation() || bytes == graceful_stop,
                        "{bytes:?} to {generation:?}, not the current vassal"
                    );
                }
                Action::ToVassalConfig(generation, _) => {
                    assert!(generation == Generation(0) || self.prepared.contains(&generation));
                    assert!(
                        !self.dropped.contains(&generation),
                        "config to dropped channels"
                    );
                }
                Action::ToEmperor(_) | Action::Log(..) | Action::RememberApi(_) => {}
                // Answered at once, as the runtime does, from a pool of one slot.
                Action::TakeStartSlot(generation) => {
                    assert!(
                        !self.slots_held.contains(&generation),
                        "{generation:?} takes a second slot"
                    );
                    let taken = self.slots_held.is_empty();
                    if taken {
                        self.slots_held.insert(generation);
                    }
                    bridge.handle_start_slot(generation, Ok(taken), self.now);
                }
                Action::ReleaseStartSlot(generation) => {
                    assert!(
                        self.slots_held.remove(&generation),
                        "{generation:?} gives back a slot it does not hold"
                    );
                }
                Action::PrepareChannels(generation) => {
                    assert_ne!(
                        generation,
                        Generation(0),
                        "the first channels are the runtime's"
                    );
                    // A generation abandoned earlier may be made again.
                    self.dropped.remove(&generation);
                    assert!(
                        self.prepared.insert(generation),
                        "{generation:?} prepared twice"
                    );
                    bridge.handle_channels_prepared(generation, Ok(()), self.now)
                }
                Action::DropChannels(generation) => {
                    assert!(self.prepared.remove(&generation) || generation == Generation(0));
                    assert!(
                        self.dropped.insert(generation),
                        "{generation:?} dropped twice"
                    );
                    self.handed_off.remove(&generation);
                }
                // Planned as the runtime plans (the operator's policy aside).
                Action::PlanRollover { config } => {
                    let planned = match spec::parse_vassal("app.ini", &config) {
                        Ok(Some(spec)) => Ok((plan(spec.clone(), self.passes_socket), spec)),
                        _ => {
                            let reason = "not a Docker vassal".to_owned();
                            Err(VassalError::SettingsRefused { reason }.into())
                        }
                    };
                    bridge.handle_rollover_plan(planned, self.now);
                }
                Action::ReadConfig => self.config_reads += 1,
                Action::WriteCidFile { .. } => {}
                Action::Exit(_) => {
                    assert!(
                        self.open.is_empty(),
                        "exit with open connections {:?}",
                        self.open
                    );
                    assert!(!self.proxy_bound, "exit with the proxy bound");
                    assert!(
                        self.slots_held.is_empty(),
                        "exit holding a start slot: {:?}",
                        self.slots_held
                    );
                    // Nothing is left: every generation but the current one was dropped.
                    let current = bridge.current_generation();
                    assert!(
                        self.prepared.iter().all(|g| *g == current),
                        "exit with channels {:?} left",
                        self.prepared
                    );
                    self.exited = true;
                }
            }
        }
        if self.exited {
            assert_eq!(bridge.poll_timeout(), None, "timer after exit");
            assert!(bridge.is_finished().is_some());
        }
    }

    fn conn(&self, selector: u8) -> Option<DockerConn> {
        let open: Vec<u32> = self.open.iter().copied().collect();
        if open.is_empty() {
            None
        } else {
            Some(DockerConn(open[usize::from(selector) % open.len()]))
        }
    }
}

/// A cooperative daemon's answer to one request: enough to finish any shutdown.
fn cooperative_reply(request: &[u8]) -> &'static [u8] {
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    if line.starts_with("GET /version") {
        CANNED[0]
    } else if line.contains("/containers/create") {
        CANNED[1]
    } else if line.contains("/attach") {
        CANNED[2]
    } else if line.contains("/wait") {
        CANNED[3]
    } else if line.starts_with("GET") {
        CANNED[6]
    } else {
        CANNED[5]
    }
}

/// What a run of [`check_lifecycle_ops`] reached.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// Generations handed off, in order of their first handoff.
    pub handoffs: Vec<Generation>,
    /// The current generation at the end (a rollover switched when it is not the first).
    pub current: Generation,
}

pub fn check_lifecycle_ops(data: &[u8]) {
    let _ = lifecycle_ops_reach(data);
}

/// Runs the operations, checking every rule, and says how far the bridge got.
pub fn lifecycle_ops_reach(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let mut now = Instant::now();
    let passes_socket = data.first().is_some_and(|b| b & 1 == 1);
    let mut bridge = Bridge::new(config(passes_socket), now);
    let mut seen = Observer {
        now,
        passes_socket,
        open: BTreeSet::new(),
        ever_opened: BTreeSet::new(),
        proxy_bound: false,
        bind_pending: false,
        accepting: false,
        handed_off: BTreeSet::new(),
        prepared: BTreeSet::new(),
        dropped: BTreeSet::new(),
        exited: false,
        unanswered: Vec::new(),
        pid_queries: Vec::new(),
        config_reads: 0,
        slots_held: BTreeSet::new(),
    };
    seen.drain(&mut bridge);
    let mut ops = data;
    while let [op, arg, rest @ ..] = ops {
        let len = usize::from(*arg % 32).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        ops = tail;
        match op % 16 {
            0 => {
                if let Some(conn) = seen.conn(*arg) {
                    bridge.handle_docker_data(conn, payload, now);
                }
            }
            1 => {
                if let Some(conn) = seen.conn(*arg) {
                    let reply =
                        CANNED[usize::from(payload.first().copied().unwrap_or(0)) % CANNED.len()];
                    bridge.handle_docker_data(conn, reply, now);
                }
            }
            2 => {
                if let Some(conn) = seen.conn(*arg) {
                    bridge.handle_docker_eof(conn, now);
                }
            }
            3 => {
                if let Some(conn) = seen.conn(*arg) {
                    // The runtime has no socket for a connection that failed.
                    seen.open.remove(&conn.0);
                    seen.unanswered.retain(|(c, _)| *c != conn);
                    bridge.handle_docker_connect_failed(
                        conn,
                        std::io::Error::other("refused"),
                        now,
                    );
                }
            }
            4 => {
                if seen.bind_pending {
                    seen.bind_pending = false;
                    // A failed bind leaves nothing to unlink.
                    seen.proxy_bound = arg % 4 != 0;
                }
                bridge.handle_proxy_bound(
                    if arg % 4 == 0 {
                        Err(std::io::Error::other("in use"))
                    } else {
                        Ok(())
                    },
                    now,
                );
            }
            5 => {
                let ns = if arg % 2 == 0 {
                    Some(CONTAINER_NS)
                } else {
                    Some(u64::from(*arg))
                };
                // The peer's cgroup names the container the canned create made, another
                // one, or nothing (a rootless engine: the namespace decides).
                let cgroup = match arg % 3 {
                    0 => Some("0::/docker/abc\n".to_owned()),
                    1 => Some(format!("12:pids:/docker/{arg:x}\n")),
                    _ => None,
                };
                let identity = PeerIdentity {
                    pid: Some(u32::from(*arg)),
                    pid_ns: ns,
                    cgroup,
                };
                bridge.handle_proxy_peer(ProxyPeer(u64::from(*arg)), identity, now);
            }
            6 => {
                let pid = seen.pid_queries.last().copied().unwrap_or(INIT_PID);
                bridge.handle_pid_namespace(pid, (arg % 8 != 0).then_some(CONTAINER_NS), now);
            }
            7 => bridge.handle_emperor_control(payload, now),
            8 => bridge.handle_emperor_control_eof(now),
            9 => bridge.handle_emperor_config(payload, now),
            // An odd arg speaks for the next generation (a rollover's new vassal).
            10 => bridge.handle_vassal_control(generation(&bridge, *arg), payload, now),
            11 => bridge.handle_vassal_control_eof(generation(&bridge, *arg), now),
            // A high arg picks a canned config (a changed section rolls over).
            12 if *arg >= 128 => {
                let config = CONFIGS[usize::from(*arg) % CONFIGS.len()];
                bridge.handle_config(Ok(config.to_vec()), now)
            }
            12 => bridge.handle_config(Ok(payload.to_vec()), now),
            13 => bridge.handle_signal(now),
            14 => {
                now += Duration::from_millis(u64::from(*arg) * 250);
                seen.now = now;
                bridge.handle_timeout(now);
            }
            _ => {
                // Answer the oldest request as a well-behaved daemon would.
                if !seen.unanswered.is_empty() {
                    let (conn, request) = seen.unanswered.remove(0);
                    bridge.handle_docker_data(conn, cooperative_reply(&request), now);
                }
            }
        }
        seen.drain(&mut bridge);
        for generation in &seen.handed_off {
            if !reached.handoffs.contains(generation) {
                reached.handoffs.push(*generation);
            }
        }
        reached.current = bridge.current_generation();
    }

    // Liveness: signalled, with a cooperative daemon and time passing, it always exits.
    bridge.handle_signal(now);
    seen.drain(&mut bridge);
    for _ in 0..64 {
        if seen.exited {
            return reached;
        }
        if seen.bind_pending {
            seen.bind_pending = false;
            seen.proxy_bound = true;
            bridge.handle_proxy_bound(Ok(()), now);
        } else if !seen.unanswered.is_empty() {
            let (conn, request) = seen.unanswered.remove(0);
            bridge.handle_docker_data(conn, cooperative_reply(&request), now);
        } else if let Some(conn) = seen.conn(0) {
            // Streams with nothing to say close, as dockerd's do when the container is gone.
            bridge.handle_docker_eof(conn, now);
        } else {
            now += Duration::from_secs(60);
            seen.now = now;
            bridge.handle_timeout(now);
        }
        seen.drain(&mut bridge);
    }
    assert!(seen.exited, "the bridge never exited after a signal");
    reached
}

fn generation(bridge: &Bridge, arg: u8) -> Generation {
    let current = bridge.current_generation();
    if arg % 2 == 1 {
        Generation(current.0.wrapping_add(1))
    } else {
        current
    }
}

#[cfg(test)]
mod tests {
    use super::CANNED;
    use uwsgi_docker_core::http_reader::{Limits, Progress, ResponseReader};

    #[test]
    fn canned_replies_are_whole() {
        // The wait's exit is a chunk of the reply whose head is CANNED[3].
        let exit = [CANNED[3], CANNED[4]].concat();
        for reply in CANNED
            .iter()
            .copied()
            .filter(|r| r.starts_with(b"HTTP/"))
            .chain([&exit[..]])
        {
            let mut reader = ResponseReader::new(false, Limits::default());
            let upgrade = reply.starts_with(b"HTTP/1.1 101");
            let progress = reader.feed(reply);
            let whole = matches!(progress, Ok(Progress::Complete { .. }));
            assert!(
                whole || upgrade || reply == CANNED[3],
                "{}",
                String::from_utf8_lossy(reply)
            );
        }
    }
}
