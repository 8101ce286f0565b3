//! An in-memory harness: a scripted fake dockerd and a fake vassal on a simulated clock.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::plan::{ContainerPlan, PlanOptions, VassalIdentity};
use crate::spec::{HandoffMode, VassalSpec};

const CONTAINER_ID: &str = "c0ffee";
const INIT_PID: u32 = 4242;
const CONTAINER_NS: u64 = 4026532000;
const HOST_NS: u64 = 4026531836;
const VASSAL_EMPEROR_SECTION: &str = "[emperor]\ndocker-image = app\ndocker-stop-timeout = 3\n";
const VASSAL_CONFIG: &[u8] =
    b"[emperor]\ndocker-image = app\ndocker-stop-timeout = 3\n\n[uwsgi]\nhttp-socket = :3031\n";

/// The spec of [`VASSAL_CONFIG`], as the bridge's caller parses it.
fn test_spec() -> VassalSpec {
    crate::spec::parse_vassal("app.ini", VASSAL_CONFIG)
        .ok()
        .flatten()
        .expect("a Docker vassal")
}

fn test_config() -> BridgeConfig {
    let identity = VassalIdentity {
        name: "app.ini".into(),
        proxy_dir: "/etc/uwsgi".into(),
        emperor_id: "host:1".into(),
        bridge_id: "host:2:3".into(),
    };
    BridgeConfig {
        plan: ContainerPlan::new(test_spec(), &identity),
        config: VASSAL_CONFIG.to_vec(),
        emperor_config_channel: false,
        emperor_control_channel: true,
        handoff_timeout: Duration::from_secs(30),
        stop_grace: Duration::from_secs(5),
        log_prefix: true,
        debug: false,
    }
}

/// How the fake daemon answers one request.
#[derive(Debug, Clone)]
enum Reply {
    Bytes(Vec<u8>),
    /// Half a reply, then the connection closes.
    CloseMidReply,
}

fn reply(status: &str, body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 {status}\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn no_content() -> Reply {
    Reply::Bytes(b"HTTP/1.1 204 No Content\r\nApi-Version: 1.41\r\n\r\n".to_vec())
}

/// A scripted dockerd: it keeps the containers that exist by name.
#[derive(Debug, Default)]
struct FakeDaemon {
    containers: BTreeMap<String, String>,
    running: bool,
    image_missing: bool,
    close_mid_reply_on: Option<&'static str>,
    /// Requests seen, as `METHOD /path` without the version prefix and query.
    requests: Vec<String>,
    /// The wait connection, to send the exit on.
    wait_conn: Option<DockerConn>,
    attach_conn: Option<DockerConn>,
}

impl FakeDaemon {
    fn answer(&mut self, conn: DockerConn, request: &[u8]) -> Option<Reply> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        let status = parsed.parse(request).expect("the bridge sends valid HTTP");
        assert!(status.is_complete(), "one whole request per send");
        assert!(
            parsed
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("host")),
            "every request carries Host"
        );
        let method = parsed.method.unwrap_or_default().to_string();
        let full_path = parsed.path.unwrap_or_default().to_string();
        let path = full_path.split('?').next().unwrap_or_default();
        let path = match path.strip_prefix("/v") {
            Some(rest) => rest.find('/').map_or(path, |i| &rest[i..]),
            None => path,
        }
        .to_string();
        let key = format!("{method} {path}");
        self.requests.push(key.clone());
        if self.close_mid_reply_on.is_some_and(|p| key.starts_with(p)) {
            return Some(Reply::CloseMidReply);
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        Some(match (method.as_str(), parts.as_slice()) {
            ("GET", ["version"]) => reply(
                "200 OK",
                r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}"#,
            ),
            ("POST", ["containers", "create"]) => {
                let name = full_path
                    .split("name=")
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                if self.image_missing {
                    return Some(reply(
                        "404 Not Found",
                        r#"{"message":"No such image: app:latest"}"#,
                    ));
                }
                match self.containers.entry(name) {
                    std::collections::btree_map::Entry::Occupied(held) => reply(
                        "409 Conflict",
                        &format!(
                            r#"{{"message":"Conflict. The container name \"/{}\" is already in use"}}"#,
                            held.key()
                        ),
                    ),
                    std::collections::btree_map::Entry::Vacant(free) => {
                        free.insert(CONTAINER_ID.into());
                        reply(
                            "201 Created",
                            &format!(r#"{{"Id":"{CONTAINER_ID}","Warnings":[]}}"#),
                        )
                    }
                }
            }
            ("POST", ["containers", _, "attach"]) => {
                self.attach_conn = Some(conn);
                Reply::Bytes(
                    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nbooting\r\n".to_vec(),
                )
            }
            ("POST", ["containers", _, "wait"]) => {
                self.wait_conn = Some(conn);
                Reply::Bytes(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec())
            }
            ("POST", ["containers", _, "start"]) => {
                assert!(request.ends_with(b"\r\n\r\n"), "start has no body");
                self.running = true;
                no_content()
            }
            ("GET", ["containers", id, "json"]) => reply(
                "200 OK",
                &format!(
                    r#"{{"Id":"{id}","Name":"/app.ini","State":{{"Running":{},"Pid":{}}},"Config":{{"Labels":{{}}}}}}"#,
                    self.running,
                    if self.running { INIT_PID } else { 0 }
                ),
            ),
            ("POST", ["containers", _, "stop"]) => {
                self.running = false;
                no_content()
            }
            ("DELETE", ["containers", id]) => {
                let before = self.containers.len();
                self.containers.retain(|name, cid| name != id && cid != id);
                if self.containers.len() < before {
                    self.running = false;
                    no_content()
                } else {
                    reply(
                        "404 Not Found",
                        &format!(r#"{{"message":"No such container: {id}"}}"#),
                    )
                }
            }
            other => panic!("unexpected request {other:?}"),
        })
    }
}

/// Drives a [`Bridge`] against the fake daemon and records what it does.
struct Harness {
    bridge: Bridge,
    now: Instant,
    daemon: FakeDaemon,
    open_conns: Vec<DockerConn>,
    logs: Vec<String>,
    to_emperor: Vec<u8>,
    to_vassal_control: Vec<u8>,
    to_vassal_config: Vec<u8>,
    handoffs: Vec<(ProxyPeer, Vec<u8>, Vec<HandedFd>)>,
    refused: Vec<ProxyPeer>,
    proxy_bound: bool,
    proxy_accepting: bool,
    proxy_closed: bool,
    config_reads: usize,
    /// What the vassal file says now; `ReadConfig` answers with it.
    file: Vec<u8>,
    exit: Option<i32>,
    bind_fails: bool,
    /// `WriteCidFile` requests seen, and the answer to give (`None`: success).
    cidfile_writes: Vec<(String, String)>,
    cidfile_fails: Option<String>,
}

impl Harness {
    fn new(config: BridgeConfig) -> Harness {
        let now = Instant::now();
        Harness {
            bridge: Bridge::new(config, now),
            now,
            daemon: FakeDaemon::default(),
            open_conns: Vec::new(),
            logs: Vec::new(),
            to_emperor: Vec::new(),
            to_vassal_control: Vec::new(),
            to_vassal_config: Vec::new(),
            handoffs: Vec::new(),
            refused: Vec::new(),
            proxy_bound: false,
            proxy_accepting: false,
            proxy_closed: false,
            config_reads: 0,
            file: VASSAL_CONFIG.to_vec(),
            exit: None,
            bind_fails: false,
            cidfile_writes: Vec::new(),
            cidfile_fails: None,
        }
    }

    /// Performs every action the bridge asks for, feeding back the answers, until it is idle.
    fn run(&mut self) {
        while let Some(action) = self.bridge.poll_action() {
            assert!(self.exit.is_none(), "action after Exit: {action:?}");
            match action {
                Action::DockerConnect(conn) => {
                    assert!(
                        !self.open_conns.contains(&conn),
                        "connection ids are not reused"
                    );
                    self.open_conns.push(conn);
                }
                Action::DockerSend(conn, bytes) => {
                    assert!(
                        self.open_conns.contains(&conn),
                        "send on an open connection"
                    );
                    match self.daemon.answer(conn, &bytes) {
                        Some(Reply::Bytes(answer)) => {
                            self.bridge.handle_docker_data(conn, &answer, self.now)
                        }
                        Some(Reply::CloseMidReply) => {
                            self.bridge.handle_docker_data(
                                conn,
                                b"HTTP/1.1 201 Created\r\nContent-Le",
                                self.now,
                            );
                            self.bridge.handle_docker_eof(conn, self.now);
                        }
                        None => {}
                    }
                }
                Action::DockerClose(conn) => self.open_conns.retain(|c| *c != conn),
                Action::BindProxy { path } => {
                    assert_eq!(path, "/etc/uwsgi/app.ini.sock");
                    if self.bind_fails {
                        self.bridge
                            .handle_proxy_bound(Err("address in use".into()), self.now);
                    } else {
                        self.proxy_bound = true;
                        self.bridge.handle_proxy_bound(Ok(()), self.now);
                    }
                }
                Action::AcceptProxy => {
                    assert!(self.proxy_bound);
                    self.proxy_accepting = true;
                }
                Action::QueryPidNamespace { pid } => {
                    assert_eq!(pid, INIT_PID);
                    self.bridge
                        .handle_pid_namespace(pid, Some(CONTAINER_NS), self.now);
                }
                Action::Handoff { peer, data, fds } => self.handoffs.push((peer, data, fds)),
                Action::RefusePeer { peer } => self.refused.push(peer),
                Action::CloseProxy => {
                    assert!(self.proxy_bound, "close only what was bound");
                    self.proxy_closed = true;
                    self.proxy_accepting = false;
                }
                Action::ToEmperor(b) => self.to_emperor.extend(b),
                Action::ToVassalControl(b) => self.to_vassal_control.extend(b),
                Action::ToVassalConfig(b) => self.to_vassal_config.extend(b),
                Action::ReadConfig => {
                    self.config_reads += 1;
                    let file = self.file.clone();
                    self.bridge.handle_config(Ok(file), self.now);
                }
                Action::WriteCidFile { path, id } => {
                    self.cidfile_writes.push((path, id));
                    let result = self.cidfile_fails.clone().map_or(Ok(()), Err);
                    self.bridge.handle_cidfile_written(result, self.now);
                }
                Action::Log(_, line) => self.logs.push(line),
                Action::Exit(code) => self.exit = Some(code),
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.bridge.poll_timeout().is_some_and(|t| t <= self.now) {
            self.bridge.handle_timeout(self.now);
        }
        self.run();
    }

    /// The vassal connects from inside the container.
    fn vassal_connects(&mut self, peer: u64) {
        assert!(self.proxy_accepting, "the bridge is accepting");
        self.bridge.handle_proxy_peer(
            ProxyPeer(peer),
            Some(INIT_PID),
            Some(CONTAINER_NS),
            self.now,
        );
        self.run();
    }

    fn container_output(&mut self, bytes: &[u8]) {
        let conn = self.daemon.attach_conn.expect("attached");
        self.bridge.handle_docker_data(conn, bytes, self.now);
        self.run();
    }

    fn container_exits(&mut self, code: i64) {
        let conn = self.daemon.wait_conn.expect("waiting");
        let body = format!("{{\"Error\":null,\"StatusCode\":{code}}}\n");
        let chunk = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
        self.bridge
            .handle_docker_data(conn, chunk.as_bytes(), self.now);
        self.run();
    }

    fn emperor_sends(&mut self, bytes: &[u8]) {
        self.bridge.handle_emperor_control(bytes, self.now);
        self.run();
    }

    fn vassal_sends(&mut self, bytes: &[u8]) {
        self.bridge.handle_vassal_control(bytes, self.now);
        self.run();
    }

    /// Starts a vassal and hands off to it.
    fn running() -> Harness {
        let mut h = Harness::new(test_config());
        h.run();
        h.vassal_connects(1);
        assert_eq!(h.handoffs.len(), 1);
        h
    }

    /// Nothing is left: container gone, proxy closed, connections closed, exited.
    fn assert_clean(&self, code: i32) {
        assert_eq!(self.exit, Some(code), "logs: {:#?}", self.logs);
        assert!(
            self.daemon.containers.is_empty(),
            "container left: {:?}",
            self.daemon.containers
        );
        assert!(!self.proxy_bound || self.proxy_closed, "proxy socket left");
        assert!(
            self.open_conns.is_empty(),
            "connections left: {:?}",
            self.open_conns
        );
        assert_eq!(self.bridge.poll_timeout(), None, "no timer after exit");
        assert!(self.bridge.is_finished().is_some());
    }
}

fn config_packet(config: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_config(config, &mut out).expect("small config");
    out
}

#[test]
fn happy_path_runs_the_docker_cli_order_and_hands_off() {
    let mut h = Harness::new(test_config());
    h.run();
    assert_eq!(
        h.daemon.requests,
        [
            "GET /version",
            "POST /containers/create",
            "POST /containers/c0ffee/attach",
            "POST /containers/c0ffee/wait",
            "POST /containers/c0ffee/start",
            "GET /containers/c0ffee/json",
        ]
    );
    assert!(h.proxy_accepting);
    assert_eq!(
        h.bridge.poll_timeout(),
        Some(h.now + Duration::from_secs(30)),
        "handoff deadline armed"
    );
    // Output written before the handoff is already logged, prefixed with the vassal name.
    assert_eq!(h.logs, ["[app.ini] booting"]);

    h.vassal_connects(7);
    let (peer, data, fds) = &h.handoffs[0];
    assert_eq!(*peer, ProxyPeer(7));
    assert_eq!(fds, &[HandedFd::Control, HandedFd::Config]);
    assert_eq!(handoff::decode(data), Ok(2));
    assert!(h.proxy_closed, "the proxy is single-use");
    assert_eq!(h.to_vassal_config, config_packet(VASSAL_CONFIG));
    assert_eq!(h.bridge.poll_timeout(), None, "idle bridge has no timer");
    assert_eq!(h.bridge.container_id(), Some(CONTAINER_ID));

    h.container_output(b"spawned uWSGI worker 1\r\npartial");
    assert_eq!(
        h.logs.last().map(String::as_str),
        Some("[app.ini] spawned uWSGI worker 1")
    );

    // Vassal → Emperor bytes are relayed as they are.
    h.vassal_sends(&[1, 5, 17, 26]);
    assert_eq!(h.to_emperor, [1, 5, 17, 26]);
}

#[test]
fn emperor_stop_byte_is_relayed_then_container_stopped_and_removed() {
    let mut h = Harness::running();
    h.emperor_sends(&[0]);
    assert_eq!(h.to_vassal_control, [0]);
    let tail: Vec<&str> = h
        .daemon
        .requests
        .iter()
        .rev()
        .take(2)
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        ["DELETE /containers/c0ffee", "POST /containers/c0ffee/stop"]
    );
    h.assert_clean(0);
    assert_eq!(h.bridge.is_finished(), Some(&Outcome::Stopped));
}

#[test]
fn emperor_eof_stops_and_removes() {
    let mut h = Harness::running();
    h.bridge.handle_emperor_control_eof(h.now);
    h.run();
    assert!(h.daemon.requests.iter().any(|r| r.ends_with("/stop")));
    h.assert_clean(0);
}

#[test]
fn signal_during_create_waits_for_the_id_then_removes() {
    let mut h = Harness::new(test_config());
    // Run only up to the create request, then signal before its reply is handled.
    while let Some(action) = h.bridge.poll_action() {
        match action {
            Action::BindProxy { .. } => {
                h.proxy_bound = true;
                h.bridge.handle_proxy_bound(Ok(()), h.now);
            }
            Action::DockerConnect(c) => h.open_conns.push(c),
            Action::DockerSend(conn, bytes) => {
                let reply = h.daemon.answer(conn, &bytes);
                let was_create =
                    h.daemon.requests.last().map(String::as_str) == Some("POST /containers/create");
                if was_create {
                    h.bridge.handle_signal(h.now);
                }
                if let Some(Reply::Bytes(b)) = reply {
                    h.bridge.handle_docker_data(conn, &b, h.now);
                }
                if was_create {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    h.run();
    assert!(
        !h.daemon.requests.iter().any(|r| r.ends_with("/start")),
        "never started"
    );
    assert_eq!(
        h.daemon.requests.last().map(String::as_str),
        Some("DELETE /containers/c0ffee")
    );
    h.assert_clean(0);
}

#[test]
fn name_conflict_removes_the_holder_and_creates_again() {
    let mut h = Harness::new(test_config());
    h.daemon.containers.insert("app.ini".into(), "old".into());
    h.run();
    assert_eq!(
        h.daemon.requests,
        [
            "GET /version",
            "POST /containers/create",
            "DELETE /containers/app.ini"
        ]
    );
    assert!(h
        .logs
        .iter()
        .any(|l| l.contains("replacing the existing container named app.ini")));
    h.advance(CONFLICT_BACKOFF);
    assert_eq!(h.daemon.requests[3], "POST /containers/create");
    assert_eq!(
        h.daemon.containers.get("app.ini").map(String::as_str),
        Some(CONTAINER_ID)
    );
    h.vassal_connects(1);
    assert_eq!(h.handoffs.len(), 1);
}

#[test]
fn missing_image_names_vassal_and_image_and_leaves_nothing() {
    let mut h = Harness::new(test_config());
    h.daemon.image_missing = true;
    h.run();
    let error = h
        .logs
        .iter()
        .find(|l| l.contains("not found"))
        .expect("an error line");
    assert!(error.contains("vassal app.ini"), "{error}");
    assert!(error.contains("\"app\""), "{error}");
    assert!(
        !h.daemon.requests.iter().any(|r| r.starts_with("DELETE")),
        "nothing was created"
    );
    h.assert_clean(1);
}

#[test]
fn daemon_closing_mid_reply_fails_and_cleans_up_by_name() {
    let mut h = Harness::new(test_config());
    h.daemon.close_mid_reply_on = Some("POST /containers/create");
    h.run();
    assert!(
        h.logs.iter().any(|l| l.contains("closed the connection")),
        "{:?}",
        h.logs
    );
    // The create may have happened, so the bridge removes by name on a fresh connection.
    assert_eq!(
        h.daemon.requests.last().map(String::as_str),
        Some("DELETE /containers/app.ini")
    );
    h.assert_clean(1);
}

#[test]
fn vassal_that_never_connects_hits_the_deadline() {
    let mut h = Harness::new(test_config());
    h.run();
    h.advance(Duration::from_secs(29));
    assert!(h.exit.is_none());
    h.advance(Duration::from_secs(1));
    assert!(
        h.logs
            .iter()
            .any(|l| l.contains("did not connect to the proxy socket /app.ini.sock")),
        "{:?}",
        h.logs
    );
    assert!(h.handoffs.is_empty());
    h.assert_clean(1);
}

#[test]
fn container_exit_removes_without_stopping() {
    let mut h = Harness::running();
    h.container_exits(3);
    assert!(h.logs.iter().any(|l| l.contains("exited with status 3")));
    assert!(
        !h.daemon.requests.iter().any(|r| r.ends_with("/stop")),
        "nothing to stop"
    );
    h.assert_clean(1);
    assert_eq!(h.bridge.is_finished(), Some(&Outcome::ContainerExited(3)));
}

#[test]
fn reload_relays_the_byte_and_answers_the_config_request_from_the_file() {
    let mut h = Harness::running();
    let first_push = h.to_vassal_config.len();
    h.emperor_sends(&[1]);
    assert_eq!(h.to_vassal_control, [1]);
    h.file = format!("{VASSAL_EMPEROR_SECTION}\n[uwsgi]\nenv = GREETING=hi\n").into_bytes();
    h.vassal_sends(&[2]);
    assert_eq!(h.config_reads, 1);
    assert!(
        h.to_emperor.is_empty(),
        "the request is answered here, not relayed"
    );
    assert_eq!(
        &h.to_vassal_config[first_push..],
        config_packet(&h.file).as_slice()
    );
    assert!(h.exit.is_none(), "a reload keeps the container");
}

#[test]
fn with_an_emperor_config_channel_requests_and_pushes_are_relayed() {
    let mut config = test_config();
    config.emperor_config_channel = true;
    let mut h = Harness::new(config);
    h.run();
    h.vassal_connects(1);
    let first_push = h.to_vassal_config.len();
    h.vassal_sends(&[2]);
    assert_eq!(h.to_emperor, [2]);
    assert_eq!(h.config_reads, 0);
    let pushed = config_packet(
        format!("{VASSAL_EMPEROR_SECTION}\n[uwsgi]\nhttp-socket = :3032\n").as_bytes(),
    );
    // The Emperor's push arrives split; the vassal gets it whole.
    let (a, b) = pushed.split_at(3);
    h.bridge.handle_emperor_config(a, h.now);
    h.bridge.handle_emperor_config(b, h.now);
    h.run();
    assert_eq!(&h.to_vassal_config[first_push..], pushed.as_slice());
}

#[test]
fn foreign_peer_is_refused_and_the_vassal_still_gets_the_fds() {
    let mut h = Harness::new(test_config());
    h.run();
    h.bridge
        .handle_proxy_peer(ProxyPeer(1), Some(999), Some(HOST_NS), h.now);
    h.bridge.handle_proxy_peer(ProxyPeer(2), None, None, h.now);
    h.run();
    assert_eq!(h.refused, [ProxyPeer(1), ProxyPeer(2)]);
    assert!(h.handoffs.is_empty());
    assert!(h
        .logs
        .iter()
        .any(|l| l.contains("refused a proxy connection from pid 999")));
    h.vassal_connects(3);
    assert_eq!(h.handoffs.len(), 1);
    // Once handed off, even the container's own processes get nothing more.
    h.bridge
        .handle_proxy_peer(ProxyPeer(4), Some(INIT_PID), Some(CONTAINER_NS), h.now);
    h.run();
    assert_eq!(h.refused.last(), Some(&ProxyPeer(4)));
}

#[test]
fn proxy_bind_failure_exits_before_any_request() {
    let mut h = Harness::new(test_config());
    h.bind_fails = true;
    h.run();
    assert!(h.daemon.requests.is_empty());
    assert!(h
        .logs
        .iter()
        .any(|l| l.contains("cannot bind the proxy socket /etc/uwsgi/app.ini.sock")));
    h.assert_clean(1);
}

#[test]
fn oversized_config_is_refused_before_anything_exists() {
    let mut config = test_config();
    config.config = vec![b'x'; 70_000];
    let mut h = Harness::new(config);
    h.run();
    assert!(h.daemon.requests.is_empty());
    assert!(!h.proxy_bound);
    assert!(h.logs.iter().any(|l| l.contains("70000")), "{:?}", h.logs);
    assert_eq!(h.exit, Some(1));
}

#[test]
fn stop_requests_after_exit_do_nothing() {
    let mut h = Harness::running();
    h.emperor_sends(&[0]);
    h.assert_clean(0);
    h.bridge.handle_signal(h.now);
    h.bridge.handle_emperor_control_eof(h.now);
    h.bridge.handle_timeout(h.now + Duration::from_secs(3600));
    assert_eq!(h.bridge.poll_action(), None);
}

#[test]
fn signal_while_binding_waits_for_the_bind_answer_then_unlinks() {
    let mut h = Harness::new(test_config());
    assert!(matches!(
        h.bridge.poll_action(),
        Some(Action::BindProxy { .. })
    ));
    h.bridge.handle_signal(h.now);
    h.run();
    assert_eq!(h.exit, None, "the bind's answer is still due");
    h.proxy_bound = true;
    h.bridge.handle_proxy_bound(Ok(()), h.now);
    h.run();
    assert!(h.proxy_closed, "the socket bound late is unlinked");
    assert!(h.daemon.requests.is_empty());
    h.assert_clean(0);
}

#[test]
fn signal_while_resolving_the_namespace_never_accepts() {
    let mut h = Harness::new(test_config());
    // Stop short of answering the namespace query.
    while let Some(action) = h.bridge.poll_action() {
        match action {
            Action::QueryPidNamespace { pid } => {
                h.bridge.handle_signal(h.now);
                h.bridge
                    .handle_pid_namespace(pid, Some(CONTAINER_NS), h.now);
                break;
            }
            Action::BindProxy { .. } => {
                h.proxy_bound = true;
                h.bridge.handle_proxy_bound(Ok(()), h.now);
            }
            Action::DockerConnect(c) => h.open_conns.push(c),
            Action::DockerSend(conn, bytes) => {
                if let Some(Reply::Bytes(b)) = h.daemon.answer(conn, &bytes) {
                    h.bridge.handle_docker_data(conn, &b, h.now);
                }
            }
            Action::Log(_, line) => h.logs.push(line),
            other => panic!("unexpected {other:?}"),
        }
    }
    h.run();
    assert!(!h.proxy_accepting);
    h.assert_clean(0);
}

#[test]
fn daemon_failing_a_request_during_shutdown_still_exits() {
    let mut h = Harness::new(test_config());
    // Bind, then hold the version request unanswered.
    assert!(matches!(
        h.bridge.poll_action(),
        Some(Action::BindProxy { .. })
    ));
    h.proxy_bound = true;
    h.bridge.handle_proxy_bound(Ok(()), h.now);
    assert_eq!(
        h.bridge.poll_action(),
        Some(Action::DockerConnect(DockerConn(0)))
    );
    assert!(matches!(
        h.bridge.poll_action(),
        Some(Action::DockerSend(DockerConn(0), _))
    ));
    h.open_conns.push(DockerConn(0));
    h.bridge.handle_emperor_control_eof(h.now);
    h.run();
    assert_eq!(h.exit, None, "the version request is still in flight");
    h.bridge.handle_docker_eof(DockerConn(0), h.now);
    h.run();
    h.assert_clean(0);
}

fn config_with(spec: VassalSpec, options: &PlanOptions) -> BridgeConfig {
    let mut config = test_config();
    let identity = VassalIdentity {
        name: "app.ini".into(),
        proxy_dir: "/etc/uwsgi".into(),
        emperor_id: "host:1".into(),
        bridge_id: "host:2:3".into(),
    };
    config.plan = ContainerPlan::with_options(spec, &identity, options);
    config
}

/// Runs `config` to the handoff and returns the fds handed over.
fn handed_fds(config: BridgeConfig) -> Vec<HandedFd> {
    let mut h = Harness::new(config);
    h.run();
    h.vassal_connects(1);
    let (_, data, fds) = h.handoffs.first().expect("one handoff").clone();
    assert_eq!(
        handoff::decode(&data),
        Ok(fds.len()),
        "count matches the fds"
    );
    assert!(h.proxy_closed, "the proxy is single-use");
    fds
}

#[test]
fn docker_socket_goes_to_the_launcher_as_the_third_fd() {
    let mut spec = test_spec();
    spec.socket = Some(crate::spec::ListenAddress::Unix("/run/app.sock".into()));
    spec.handoff = HandoffMode::Auto;
    let options = PlanOptions {
        launcher_host_path: Some("/usr/local/bin/uwsgi-docker-launcher".into()),
        inherited_socket: false,
    };
    let config = config_with(spec, &options);
    assert_eq!(
        config.plan.handoff,
        HandoffMode::Launcher,
        "auto picks the launcher"
    );
    assert_eq!(
        handed_fds(config),
        [HandedFd::Control, HandedFd::Config, HandedFd::Socket]
    );
}

#[test]
fn native_handoff_with_a_socket_sends_three_fds() {
    let mut spec = test_spec();
    spec.socket = Some(crate::spec::ListenAddress::Tcp {
        ip: "127.0.0.1".into(),
        port: 3031,
    });
    spec.handoff = HandoffMode::Native;
    let config = config_with(spec, &PlanOptions::default());
    assert_eq!(config.plan.handoff, HandoffMode::Native);
    assert_eq!(
        handed_fds(config),
        [HandedFd::Control, HandedFd::Config, HandedFd::Socket]
    );
}

#[test]
fn an_inherited_on_demand_socket_is_handed_over_too() {
    let options = PlanOptions {
        launcher_host_path: Some("/opt/launcher".into()),
        inherited_socket: true,
    };
    let spec = VassalSpec {
        handoff: HandoffMode::Auto,
        ..test_spec()
    };
    let config = config_with(spec, &options);
    assert_eq!(config.plan.handoff, HandoffMode::Launcher);
    assert_eq!(
        handed_fds(config),
        [HandedFd::Control, HandedFd::Config, HandedFd::Socket]
    );
}

#[test]
fn without_a_socket_only_the_two_channels_are_handed_over() {
    let mut spec = test_spec();
    spec.handoff = HandoffMode::Launcher;
    let config = config_with(spec, &PlanOptions::default());
    assert_eq!(handed_fds(config), [HandedFd::Control, HandedFd::Config]);
}

#[test]
fn reload_with_changed_docker_settings_recreates_through_the_emperor() {
    let mut h = Harness::running();
    let first_push = h.to_vassal_config.len();
    h.emperor_sends(&[1]);
    h.file =
        b"[emperor]\ndocker-image = app\ndocker-memory = 64m\n\n[uwsgi]\nhttp-socket = :3031\n"
            .to_vec();
    h.vassal_sends(&[2]);
    assert_eq!(
        h.to_vassal_config.len(),
        first_push,
        "the old container gets no new config"
    );
    assert!(
        h.logs
            .iter()
            .any(|l| l.contains("the [emperor] section changed")),
        "{:?}",
        h.logs
    );
    assert!(h.daemon.requests.iter().any(|r| r.ends_with("/stop")));
    // Non-zero: the Emperor sees its vassal die and starts it again from the new file.
    h.assert_clean(1);
    assert_eq!(h.bridge.is_finished(), Some(&Outcome::Recreate));
}

#[test]
fn without_an_emperor_changed_docker_settings_wait_for_the_next_start() {
    let mut config = test_config();
    config.emperor_control_channel = false;
    let mut h = Harness::new(config);
    h.run();
    h.vassal_connects(1);
    let first_push = h.to_vassal_config.len();
    h.file = b"[emperor]\ndocker-image = other\n\n[uwsgi]\nhttp-socket = :3031\n".to_vec();
    h.vassal_sends(&[2]);
    assert_eq!(
        &h.to_vassal_config[first_push..],
        config_packet(&h.file).as_slice()
    );
    assert!(h
        .logs
        .iter()
        .any(|l| l.contains("apply when the vassal is next started")));
    assert_eq!(h.exit, None);
}

fn cidfile_config() -> BridgeConfig {
    let mut spec = test_spec();
    spec.cidfile = Some("/var/run/app.cid".into());
    config_with(spec, &PlanOptions::default())
}

#[test]
fn cidfile_is_written_with_the_created_id() {
    let mut h = Harness::new(cidfile_config());
    h.run();
    assert_eq!(
        h.cidfile_writes,
        vec![("/var/run/app.cid".to_owned(), CONTAINER_ID.to_owned())]
    );
    assert!(h.proxy_accepting, "the vassal goes on: {:?}", h.logs);
    assert_eq!(h.exit, None);
}

#[test]
fn cidfile_that_cannot_be_written_fails_the_vassal_and_removes_the_container() {
    let mut h = Harness::new(cidfile_config());
    h.cidfile_fails = Some("/var/run/app.cid: it exists and is not a cidfile".into());
    h.run();
    let error = h
        .logs
        .iter()
        .find(|l| l.contains("cannot write docker-cidfile /var/run/app.cid"))
        .unwrap_or_else(|| panic!("an error line: {:?}", h.logs));
    assert!(
        error.contains("vassal app.ini") && error.contains("not a cidfile"),
        "{error}"
    );
    assert!(
        !h.daemon.requests.iter().any(|r| r.ends_with("/start")),
        "never started: {:?}",
        h.daemon.requests
    );
    assert!(h.daemon.requests.iter().any(|r| r.starts_with("DELETE")));
    assert!(h.handoffs.is_empty());
    h.assert_clean(1);
}

#[test]
fn a_non_root_user_outside_the_private_dir_is_told_what_to_do_at_the_deadline() {
    let mut spec = test_spec();
    spec.user = Some("1000:1000".into());
    let mut h = Harness::new(config_with(spec.clone(), &PlanOptions::default()));
    h.run();
    h.advance(Duration::from_secs(30));
    let error = h
        .logs
        .iter()
        .find(|l| l.contains("did not connect"))
        .unwrap_or_else(|| panic!("a timeout line: {:?}", h.logs));
    assert!(
        error.contains("docker-user = 1000:1000")
            && error.contains("/etc/uwsgi/app.ini.sock")
            && error.contains("UWSGIDOCKER_SOCKET_MODE=666")
            && error.contains("private runtime directory"),
        "{error}"
    );
    h.assert_clean(1);
    // In the private directory (mode 666) the user is not the problem: the usual hint.
    let mut config = config_with(spec, &PlanOptions::default());
    config.plan.proxy_in_private_dir = true;
    let mut h = Harness::new(config);
    h.run();
    h.advance(Duration::from_secs(30));
    assert!(
        h.logs.iter().any(|l| l.contains("did not connect")
            && l.contains("entry point")
            && !l.contains("UWSGIDOCKER_SOCKET_MODE")),
        "{:?}",
        h.logs
    );
    // No docker-user, outside the private directory: the image's user or a remap may be
    // the cause, and the hint says so.
    let mut h = Harness::new(test_config());
    h.run();
    h.advance(Duration::from_secs(30));
    assert!(
        h.logs.iter().any(|l| l.contains("entry point")
            && l.contains("userns-remap")
            && l.contains("UWSGIDOCKER_SOCKET_MODE=666")),
        "{:?}",
        h.logs
    );
}
