//! One vassal's life, as a sans-IO state machine.
//!
//! [`Bridge`] methods come in groups, in the style of quinn-proto:
//! * inputs, `handle_*(…, now)`: bytes or EOF from dockerd, the Emperor, the vassal and the
//!   proxy listener; a signal; a timer firing;
//! * outputs, `poll_*`: [`Bridge::poll_action`] (I/O for the runtime to do, in order) and
//!   [`Bridge::poll_timeout`] (when to call [`Bridge::handle_timeout`]);
//! * state: [`Bridge::is_finished`].
//!
//! The path: negotiate → remove a stale container of the same name → bind the proxy →
//! create → attach → wait → start → inspect → accept the vassal on the proxy (deadline) →
//! hand off → relay → stop → remove → exit. Every failure path removes the container
//! and the proxy socket.
use std::time::{Duration, Instant};

use crate::handoff::HandedFd;
use crate::plan::ContainerPlan;

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
    /// Extra time, past the container's stop timeout, before we kill it.
    pub stop_grace: Duration,
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
    /// Write the container id to the `docker-cidfile` path (and remove it at exit).
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
}

/// The state machine for one vassal. See the module docs for the method groups.
#[derive(Debug)]
pub struct Bridge {
    _todo: (),
}

impl Bridge {
    pub fn new(config: BridgeConfig, now: Instant) -> Bridge {
        let _ = (config, now);
        todo!()
    }

    // ---- inputs ----
    pub fn handle_docker_data(&mut self, conn: DockerConn, data: &[u8], now: Instant) {
        let _ = (conn, data, now);
        todo!()
    }
    pub fn handle_docker_eof(&mut self, conn: DockerConn, now: Instant) {
        let _ = (conn, now);
        todo!()
    }
    pub fn handle_docker_connect_failed(&mut self, conn: DockerConn, reason: String, now: Instant) {
        let _ = (conn, reason, now);
        todo!()
    }
    pub fn handle_proxy_bound(&mut self, result: Result<(), String>, now: Instant) {
        let _ = (result, now);
        todo!()
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
        let _ = (peer, pid, pid_ns, now);
        todo!()
    }
    pub fn handle_pid_namespace(&mut self, pid: u32, pid_ns: Option<u64>, now: Instant) {
        let _ = (pid, pid_ns, now);
        todo!()
    }
    pub fn handle_emperor_control(&mut self, data: &[u8], now: Instant) {
        let _ = (data, now);
        todo!()
    }
    pub fn handle_emperor_control_eof(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }
    pub fn handle_emperor_config(&mut self, data: &[u8], now: Instant) {
        let _ = (data, now);
        todo!()
    }
    pub fn handle_vassal_control(&mut self, data: &[u8], now: Instant) {
        let _ = (data, now);
        todo!()
    }
    pub fn handle_vassal_control_eof(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }
    /// The answer to [`Action::ReadConfig`].
    pub fn handle_config(&mut self, config: Result<Vec<u8>, String>, now: Instant) {
        let _ = (config, now);
        todo!()
    }
    /// SIGTERM, SIGINT or SIGHUP: stop and clean up.
    pub fn handle_signal(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    // ---- outputs ----
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        todo!()
    }
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    pub fn is_finished(&self) -> Option<&Outcome> {
        todo!()
    }
    /// The container id, once created.
    pub fn container_id(&self) -> Option<&str> {
        todo!()
    }
}
