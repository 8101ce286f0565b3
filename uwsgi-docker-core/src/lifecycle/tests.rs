//! An in-memory harness: a scripted fake dockerd and a fake vassal on a simulated clock.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::launch::{MAX_CREATE_ATTEMPTS, START_SLOT_RETRY};
use super::*;
use crate::docker::ApiVersion;
use crate::emperor::{encode_config, ConfigError, EmperorMessage};
use crate::handoff::{self, HandedFd};
use crate::plan::{ContainerPlan, PlanOptions, VassalIdentity};
use crate::spec::{HandoffMode, VassalSpec};

/// The first pause after a name conflict (`sequence::CONFLICT_BACKOFF`).
const FIRST_CONFLICT_BACKOFF: Duration = Duration::from_millis(250);
const CONTAINER_ID: &str = "c0ffee";
const INIT_PID: u32 = 4242;
const CONTAINER_NS: u64 = 4026532000;
const HOST_NS: u64 = 4026531836;
/// A rollover's new container.
const NEW_ID: &str = "beef02";
const NEW_INIT_PID: u32 = 5353;
const NEW_CONTAINER_NS: u64 = 4026532111;
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

fn test_identity() -> VassalIdentity {
    VassalIdentity {
        name: "app.ini".into(),
        proxy_dir: "/etc/uwsgi".into(),
        emperor_id: "host:1".into(),
        bridge_id: "host:2:3".into(),
        name_prefix: None,
    }
}

fn test_config() -> BridgeConfig {
    BridgeConfig::new(
        ContainerPlan::new(test_spec(), &test_identity()),
        test_spec(),
        VASSAL_CONFIG.to_vec(),
    )
}

/// The plan and requested section of a config, as the runtime makes them for a rollover.
fn plan_for(config: &[u8]) -> (ContainerPlan, VassalSpec) {
    let spec = crate::spec::parse_vassal("app.ini", config)
        .ok()
        .flatten()
        .expect("a Docker vassal");
    (ContainerPlan::new(spec.clone(), &test_identity()), spec)
}

/// A log line as the runtime prints it: container output with the vassal's name as its
/// prefix (`log_prefix` on), the bridge's own lines naming the vassal.
fn log_line(event: &Event) -> String {
    match event {
        Event::Output { .. } => format!("[app.ini] {event}"),
        _ => format!("[uwsgi-docker] vassal app.ini: {event}"),
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

/// A way the fake daemon misbehaves or differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Quirk {
    /// Create answers 404: no such image.
    ImageMissing,
    /// Answer as Podman 4 does: a name conflict and "no such container" are 500s.
    Podman,
    /// The container holding the name is gone by the time it is inspected.
    HolderVanishesOnInspect,
    /// Create does its work, then the connection closes before the reply.
    CloseAfterCreate,
    /// Inspect reports `State.OOMKilled`.
    OomKilled,
    /// Wait answers "no such container", as Podman does when AutoRemove won the race.
    WaitNotFound,
}

/// How the fake daemon answers `POST /images/create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum PullAnswer {
    /// A progress stream, then the digest: the image is on the host from then on.
    #[default]
    Pushed,
    /// `200`, then an error line: no such tag.
    NotFound,
    /// `200`, then an error line: the registry wants credentials.
    Unauthorized,
    /// `500`: the registry cannot be reached.
    Unreachable,
    /// `200`, then a line that is not JSON.
    Garbage,
    /// Taken and never answered.
    Hang,
}

/// A `200` whose body is `lines`, each its own chunk, as dockerd streams a pull.
fn streamed(lines: &[&str]) -> Reply {
    let mut bytes = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for line in lines {
        let line = format!("{line}\r\n");
        bytes.extend_from_slice(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes());
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    Reply::Bytes(bytes)
}

/// A scripted dockerd: it keeps the containers that exist by name.
#[derive(Debug, Default)]
struct FakeDaemon {
    /// How this daemon departs from a plain Docker that answers everything.
    quirks: BTreeSet<Quirk>,
    containers: BTreeMap<String, String>,
    running: bool,
    close_mid_reply_on: Option<&'static str>,
    /// Requests (by `METHOD /path` prefix) that are taken and never answered.
    hang: Vec<&'static str>,
    /// Labels (a JSON object) of containers by id; `{}` when not listed.
    labels: BTreeMap<String, String>,
    /// Requests seen, as `METHOD /path` without the version prefix and query.
    requests: Vec<String>,
    /// The same with the query, for the requests whose query matters.
    targets: Vec<String>,
    /// The wait connection, to send the exit on.
    wait_conn: Option<DockerConn>,
    attach_conn: Option<DockerConn>,
    /// The id the next create gives instead of [`CONTAINER_ID`] (a rollover's container).
    next_id: Option<&'static str>,
    /// Containers other than [`CONTAINER_ID`] that run.
    running_others: BTreeSet<String>,
    /// Wait connections of containers other than [`CONTAINER_ID`].
    other_waits: BTreeMap<String, DockerConn>,
    /// Requests (by `METHOD /path` prefix) answered 500 for containers other than
    /// [`CONTAINER_ID`]: a rollover's new container failing at that step.
    other_fails: Vec<&'static str>,
    /// How a pull goes.
    pull_answer: PullAnswer,
    /// The connection of the last pull, and the `X-Registry-Auth` it carried.
    pull_conn: Option<DockerConn>,
    pull_auth: Option<String>,
    /// The `Labels` of the last create.
    created_labels: Option<serde_json::Value>,
    /// The image id the tag names (empty: [`FIRST_IMAGE_ID`]); a container runs the one
    /// the tag named at its create.
    tag_names: &'static str,
    image_of: BTreeMap<String, &'static str>,
    /// `State.Health.Status` of containers by id (none: no health check).
    health: BTreeMap<String, &'static str>,
    /// Versioned requests above this are refused as dockerd refuses them (400).
    refuse_api_above: Option<ApiVersion>,
    /// The version prefix of each versioned request (`v1.41`).
    versions_sent: Vec<String>,
}

/// The image id the test image's tag names until a test moves it.
const FIRST_IMAGE_ID: &str = "sha256:0001";

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
        let query = full_path.split_once('?').map_or("", |(_, q)| q);
        self.targets.push(format!("{key}?{query}"));
        let version = full_path
            .strip_prefix("/v")
            .and_then(|rest| rest.split_once('/'))
            .map(|(version, _)| version);
        if let Some(version) = version {
            self.versions_sent.push(format!("v{version}"));
            let sent = ApiVersion::parse(version).expect("a version in the path");
            if let Some(newest) = self.refuse_api_above.filter(|&newest| sent > newest) {
                let body = format!(
                    r#"{{"message":"client version {sent} is too new. Maximum supported API version is {newest}"}}"#
                );
                return Some(reply("400 Bad Request", &body));
            }
        }
        if self.close_mid_reply_on.is_some_and(|p| key.starts_with(p)) {
            return Some(Reply::CloseMidReply);
        }
        if self.hang.iter().any(|p| key.starts_with(p)) {
            return None;
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let other = parts.get(1).is_some_and(|id| {
            self.running_others.contains(*id)
                || self
                    .containers
                    .values()
                    .any(|c| c == id && c != CONTAINER_ID)
        });
        if other && self.other_fails.iter().any(|p| key.starts_with(p)) {
            return Some(reply(
                "500 Internal Server Error",
                r#"{"message":"the new container cannot do that"}"#,
            ));
        }
        Some(match (method.as_str(), parts.as_slice()) {
            ("GET", ["version"]) => reply(
                "200 OK",
                r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}"#,
            ),
            ("GET", ["images", _name, "json"]) => reply(
                "200 OK",
                &format!(
                    r#"{{"Id":"{}","RepoTags":["app:latest"]}}"#,
                    self.tag_image()
                ),
            ),
            ("POST", ["images", "create"]) => {
                self.pull_conn = Some(conn);
                self.pull_auth = parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("x-registry-auth"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                match self.pull_answer {
                    PullAnswer::Pushed => {
                        self.quirks.remove(&Quirk::ImageMissing);
                        streamed(&[
                            r#"{"status":"Pulling from app","id":"latest"}"#,
                            r#"{"status":"Pulling fs layer","progressDetail":{},"id":"aaa"}"#,
                            r#"{"status":"Downloading","progressDetail":{"current":1000000,"total":3000000},"id":"aaa"}"#,
                            r#"{"status":"Pull complete","progressDetail":{},"id":"aaa"}"#,
                            r#"{"status":"Digest: sha256:feed"}"#,
                            r#"{"status":"Status: Downloaded newer image for app:latest"}"#,
                        ])
                    }
                    PullAnswer::NotFound => streamed(&[
                        r#"{"errorDetail":{"message":"manifest for app:latest not found: manifest unknown"},"error":"manifest for app:latest not found: manifest unknown"}"#,
                    ]),
                    PullAnswer::Unauthorized => streamed(&[
                        r#"{"status":"Pulling from app","id":"latest"}"#,
                        r#"{"errorDetail":{"message":"unauthorized: authentication required"},"error":"unauthorized: authentication required"}"#,
                    ]),
                    PullAnswer::Unreachable => reply(
                        "500 Internal Server Error",
                        r#"{"message":"Get \"https://r.example/v2/\": dial tcp: lookup r.example: no such host"}"#,
                    ),
                    PullAnswer::Garbage => streamed(&["<html>"]),
                    PullAnswer::Hang => return None,
                }
            }
            ("POST", ["containers", "create"]) => {
                let body = request
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(&[][..], |i| &request[i + 4..]);
                self.created_labels = serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .map(|json| json["Labels"].clone());
                let name = full_path
                    .split("name=")
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                if self.quirks.contains(&Quirk::ImageMissing) {
                    return Some(reply(
                        "404 Not Found",
                        r#"{"message":"No such image: app:latest"}"#,
                    ));
                }
                if self.quirks.contains(&Quirk::CloseAfterCreate) {
                    if let std::collections::btree_map::Entry::Vacant(free) =
                        self.containers.entry(name)
                    {
                        free.insert(CONTAINER_ID.into());
                        let body = request
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map_or(&[][..], |i| &request[i + 4..]);
                        let json: serde_json::Value =
                            serde_json::from_slice(body).expect("a JSON create body");
                        self.labels
                            .insert(CONTAINER_ID.into(), json["Labels"].to_string());
                    }
                    return Some(Reply::CloseMidReply);
                }
                let podman = self.quirks.contains(&Quirk::Podman);
                match self.containers.entry(name) {
                    std::collections::btree_map::Entry::Occupied(held) if podman => reply(
                        "500 Internal Server Error",
                        &format!(
                            r#"{{"cause":"that name is already in use","message":"creating container storage: the container name \"{}\" is already in use by {}. You have to remove that container to be able to reuse that name: that name is already in use","response":500}}"#,
                            held.key(),
                            held.get()
                        ),
                    ),
                    std::collections::btree_map::Entry::Occupied(held) => reply(
                        "409 Conflict",
                        &format!(
                            r#"{{"message":"Conflict. The container name \"/{}\" is already in use"}}"#,
                            held.key()
                        ),
                    ),
                    std::collections::btree_map::Entry::Vacant(free) => {
                        let id = self.next_id.unwrap_or(CONTAINER_ID);
                        free.insert(id.into());
                        self.image_of.insert(id.into(), self.tag_image());
                        reply("201 Created", &format!(r#"{{"Id":"{id}","Warnings":[]}}"#))
                    }
                }
            }
            ("POST", ["containers", id, "attach"]) => {
                if *id == CONTAINER_ID {
                    self.attach_conn = Some(conn);
                }
                Reply::Bytes(
                    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nbooting\r\n".to_vec(),
                )
            }
            ("POST", ["containers", id, "wait"]) if self.quirks.contains(&Quirk::WaitNotFound) => {
                self.no_such_container(id)
            }
            ("POST", ["containers", id, "wait"]) => {
                if *id == CONTAINER_ID {
                    self.wait_conn = Some(conn);
                } else {
                    self.other_waits.insert((*id).to_owned(), conn);
                }
                Reply::Bytes(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec())
            }
            ("POST", ["containers", id, "start"]) => {
                assert!(request.ends_with(b"\r\n\r\n"), "start has no body");
                if *id == CONTAINER_ID {
                    self.running = true;
                } else {
                    self.running_others.insert((*id).to_owned());
                }
                no_content()
            }
            ("GET", ["containers", id_or_name, "json"]) => {
                if self.quirks.contains(&Quirk::HolderVanishesOnInspect) {
                    self.quirks.remove(&Quirk::HolderVanishesOnInspect);
                    self.containers.retain(|name, _| name != id_or_name);
                }
                let found = self
                    .containers
                    .iter()
                    .find(|(name, id)| name == id_or_name || id == id_or_name)
                    .map(|(name, id)| (name.clone(), id.clone()));
                let Some((name, id)) = found else {
                    return Some(self.no_such_container(id_or_name));
                };
                let ours = id == CONTAINER_ID;
                let running = (ours && self.running) || self.running_others.contains(&id);
                let pid = if ours { INIT_PID } else { NEW_INIT_PID };
                let labels = self.labels.get(&id).map_or("{}", String::as_str);
                let image = self.image_of.get(&id).copied().unwrap_or(FIRST_IMAGE_ID);
                let health = match self.health.get(&id) {
                    Some(&status) => {
                        let failing = u8::from(status == "unhealthy") * 3;
                        format!(
                            r#","Health":{{"Status":"{status}","FailingStreak":{failing},"Log":[{{"ExitCode":{},"Output":"check says {status}"}}]}}"#,
                            u8::from(status != "healthy")
                        )
                    }
                    None => String::new(),
                };
                reply(
                    "200 OK",
                    &format!(
                        r#"{{"Id":"{id}","Name":"/{name}","Image":"{image}","State":{{"Running":{running},"Pid":{},"OOMKilled":{}{health}}},"Config":{{"Labels":{labels}}}}}"#,
                        if running { pid } else { 0 },
                        self.quirks.contains(&Quirk::OomKilled)
                    ),
                )
            }
            ("POST", ["containers", id, "stop"]) => {
                if *id == CONTAINER_ID {
                    self.running = false;
                }
                self.running_others.remove(*id);
                no_content()
            }
            ("DELETE", ["containers", id]) => {
                let before = self.containers.len();
                self.containers.retain(|name, cid| name != id && cid != id);
                if self.containers.len() < before {
                    if *id == CONTAINER_ID || *id == "app.ini" {
                        self.running = false;
                    }
                    self.running_others.remove(*id);
                    no_content()
                } else {
                    self.no_such_container(id)
                }
            }
            other => panic!("unexpected request {other:?}"),
        })
    }

    fn tag_image(&self) -> &'static str {
        if self.tag_names.is_empty() {
            FIRST_IMAGE_ID
        } else {
            self.tag_names
        }
    }

    fn no_such_container(&self, id: &str) -> Reply {
        if self.quirks.contains(&Quirk::Podman) {
            reply(
                "500 Internal Server Error",
                &format!(
                    r#"{{"cause":"no such container","message":"no container with name or ID \"{id}\" found: no such container","response":500}}"#
                ),
            )
        } else {
            reply(
                "404 Not Found",
                &format!(r#"{{"message":"No such container: {id}"}}"#),
            )
        }
    }

    /// A container that holds our name, with these labels.
    fn holder(&mut self, name: &str, id: &str, labels: &[(&str, &str)]) {
        self.containers.insert(name.into(), id.into());
        let json: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect();
        self.labels
            .insert(id.into(), format!("{{{}}}", json.join(",")));
    }
}

/// The labels our bridge puts on app.ini's container, with this bridge label.
fn our_labels(bridge: &'static str) -> [(&'static str, &'static str); 3] {
    [
        (crate::plan::labels::MANAGED, "1"),
        (crate::plan::labels::VASSAL, "app.ini"),
        (crate::plan::labels::BRIDGE, bridge),
    ]
}

/// A runtime operation the harness makes fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HostFault {
    /// `BindProxy`.
    ProxyBind,
    /// `PrepareChannels`.
    Channels,
    /// `BindProxy` is left unanswered (the test answers it).
    BindHangs,
}

/// The proxy socket as the harness saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxySeen {
    Never,
    Bound,
    Accepting,
    Closed,
}

/// Drives a [`Bridge`] against the fake daemon and records what it does.
struct Harness {
    bridge: Bridge,
    now: Instant,
    daemon: FakeDaemon,
    open_conns: Vec<DockerConn>,
    /// What the bridge logged, as data.
    events: Vec<Event>,
    to_emperor: Vec<u8>,
    to_vassal_control: Vec<u8>,
    to_vassal_config: Vec<u8>,
    handoffs: Vec<(ProxyPeer, Vec<u8>, Vec<HandedFd>)>,
    refused: Vec<ProxyPeer>,
    /// What the bridge asked the runtime to remember of its negotiation.
    remembered: Vec<Api>,
    /// What the bridge did with the proxy socket.
    proxy: ProxySeen,
    config_reads: usize,
    /// What the vassal file says now; `ReadConfig` answers with it.
    file: Vec<u8>,
    exit: Option<i32>,
    /// The runtime's operations that fail.
    host_faults: BTreeSet<HostFault>,
    /// Bridge labels asked about with `QueryBridgeAlive`.
    bridge_queries: Vec<String>,
    /// How many of those are answered "alive" before the answer becomes "gone".
    alive_answers: usize,
    /// After this many "alive" answers, the live bridge finishes and removes its container.
    live_bridge_finishes_after: Option<usize>,
    /// `WriteCidFile` requests seen, and the answer to give (`None`: success).
    cidfile_writes: Vec<(String, String)>,
    cidfile_fails: Option<String>,
    /// The daemon's socket refuses connections (the daemon is stopped).
    daemon_down: bool,
    /// Connections whose connect failed: what is sent on them goes nowhere.
    failed_conns: Vec<DockerConn>,
    /// Bytes to the control and config channels of generations after the first.
    control_of: BTreeMap<Generation, Vec<u8>>,
    config_of: BTreeMap<Generation, Vec<u8>>,
    /// The generation of each handoff, in order.
    handoff_generations: Vec<Generation>,
    /// `PrepareChannels` and `DropChannels` seen.
    prepared: Vec<Generation>,
    dropped: Vec<Generation>,
    /// `PlanRollover` configs seen, and the refusal to answer with (`None`: plan it).
    plans: Vec<Vec<u8>>,
    plan_refusal: Option<String>,
    /// The host's free start slots (the bridge runs with a start limit, as by default).
    free_slots: usize,
    /// The generations holding one.
    held_slots: BTreeSet<Generation>,
    /// `take`, `busy` and `release`, each with how many daemon requests had been sent.
    slot_log: Vec<(&'static str, usize)>,
    /// `TakeStartSlot` fails (the runtime directory cannot be had).
    slots_fail: bool,
}

impl Harness {
    fn new(mut config: BridgeConfig) -> Harness {
        let now = Instant::now();
        config.start_limit = true;
        Harness {
            bridge: Bridge::new(config, now),
            now,
            daemon: FakeDaemon::default(),
            open_conns: Vec::new(),
            events: Vec::new(),
            to_emperor: Vec::new(),
            to_vassal_control: Vec::new(),
            to_vassal_config: Vec::new(),
            handoffs: Vec::new(),
            refused: Vec::new(),
            remembered: Vec::new(),
            proxy: ProxySeen::Never,
            config_reads: 0,
            file: VASSAL_CONFIG.to_vec(),
            exit: None,
            host_faults: BTreeSet::new(),
            bridge_queries: Vec::new(),
            alive_answers: 0,
            live_bridge_finishes_after: None,
            cidfile_writes: Vec::new(),
            cidfile_fails: None,
            daemon_down: false,
            failed_conns: Vec::new(),
            control_of: BTreeMap::new(),
            config_of: BTreeMap::new(),
            handoff_generations: Vec::new(),
            prepared: Vec::new(),
            dropped: Vec::new(),
            plans: Vec::new(),
            plan_refusal: None,
            free_slots: 8,
            held_slots: BTreeSet::new(),
            slot_log: Vec::new(),
            slots_fail: false,
        }
    }

    /// Performs every action the bridge asks for, feeding back the answers, until it is idle.
    fn run(&mut self) {
        while let Some(action) = self.bridge.poll_action() {
            assert!(self.exit.is_none(), "action after Exit: {action:?}");
            match action {
                Action::DockerConnect(conn) => {
                    assert!(
                        !self.open_conns.contains(&conn) && !self.failed_conns.contains(&conn),
                        "connection ids are not reused"
                    );
                    if self.daemon_down {
                        self.failed_conns.push(conn);
                        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                        self.bridge
                            .handle_docker_connect_failed(conn, refused, self.now);
                    } else {
                        self.open_conns.push(conn);
                    }
                }
                Action::DockerSend(conn, _) if self.failed_conns.contains(&conn) => {}
                Action::DockerClose(conn) if self.failed_conns.contains(&conn) => {}
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
                    assert!(path.starts_with("/etc/uwsgi/") && path.ends_with("app.ini.sock"));
                    if self.host_faults.contains(&HostFault::BindHangs) {
                        continue;
                    }
                    if self.host_faults.contains(&HostFault::ProxyBind) {
                        self.bridge.handle_proxy_bound(
                            Err(std::io::Error::other("address in use")),
                            self.now,
                        );
                    } else {
                        self.proxy = ProxySeen::Bound;
                        self.bridge.handle_proxy_bound(Ok(()), self.now);
                    }
                }
                Action::AcceptProxy => {
                    assert!(self.proxy != ProxySeen::Never);
                    self.proxy = ProxySeen::Accepting;
                }
                Action::QueryPidNamespace { pid } => {
                    let ns = match pid {
                        INIT_PID => CONTAINER_NS,
                        NEW_INIT_PID => NEW_CONTAINER_NS,
                        other => panic!("no such init pid {other}"),
                    };
                    self.bridge.handle_pid_namespace(pid, Some(ns), self.now);
                }
                Action::Handoff {
                    generation,
                    peer,
                    data,
                    fds,
                } => {
                    self.handoff_generations.push(generation);
                    self.handoffs.push((peer, data, fds));
                }
                Action::RefusePeer { peer } => self.refused.push(peer),
                Action::QueryBridgeAlive { label } => {
                    self.bridge_queries.push(label);
                    let alive = self.bridge_queries.len() <= self.alive_answers;
                    if self.live_bridge_finishes_after == Some(self.bridge_queries.len()) {
                        // It was finishing its own shutdown: its container goes away.
                        self.daemon.containers.retain(|_, id| id == CONTAINER_ID);
                    }
                    self.bridge.handle_bridge_alive(alive, self.now);
                }
                Action::CloseProxy => {
                    assert!(self.proxy != ProxySeen::Never, "close only what was bound");
                    self.proxy = ProxySeen::Closed;
                }
                Action::ToEmperor(b) => self.to_emperor.extend(b),
                Action::ToVassalControl(Generation(0), b) => self.to_vassal_control.extend(b),
                Action::ToVassalConfig(Generation(0), b) => self.to_vassal_config.extend(b),
                Action::ToVassalControl(generation, b) => {
                    assert!(
                        !self.dropped.contains(&generation),
                        "write to dropped channels"
                    );
                    self.control_of.entry(generation).or_default().extend(b)
                }
                Action::ToVassalConfig(generation, b) => {
                    assert!(
                        self.prepared.contains(&generation),
                        "channels prepared first"
                    );
                    self.config_of.entry(generation).or_default().extend(b)
                }
                Action::PrepareChannels(generation) => {
                    self.prepared.push(generation);
                    let result = if self.host_faults.contains(&HostFault::Channels) {
                        Err(std::io::Error::other("too many open files"))
                    } else {
                        Ok(())
                    };
                    self.bridge
                        .handle_channels_prepared(generation, result, self.now);
                }
                Action::DropChannels(generation) => self.dropped.push(generation),
                Action::PlanRollover { config } => {
                    self.plans.push(config.clone());
                    let planned = match &self.plan_refusal {
                        Some(reason) => Err(VassalError::SettingsRefused {
                            reason: reason.clone(),
                        }
                        .into()),
                        None => Ok(plan_for(&config)),
                    };
                    self.bridge.handle_rollover_plan(planned, self.now);
                }
                Action::ReadConfig => {
                    self.config_reads += 1;
                    let file = self.file.clone();
                    self.bridge.handle_config(Ok(file), self.now);
                }
                Action::WriteCidFile { path, id } => {
                    self.cidfile_writes.push((path, id));
                    let result = self
                        .cidfile_fails
                        .clone()
                        .map_or(Ok(()), |e| Err(std::io::Error::other(e)));
                    self.bridge.handle_cidfile_written(result, self.now);
                }
                Action::RememberApi(api) => self.remembered.push(api),
                Action::TakeStartSlot(generation) => {
                    assert!(
                        !self.held_slots.contains(&generation),
                        "one slot per launch"
                    );
                    let sent = self.daemon.requests.len();
                    let taken = if self.slots_fail {
                        Err(std::io::Error::other("the runtime directory is not ours"))
                    } else if self.free_slots > 0 {
                        self.free_slots -= 1;
                        self.held_slots.insert(generation);
                        self.slot_log.push(("take", sent));
                        Ok(true)
                    } else {
                        self.slot_log.push(("busy", sent));
                        Ok(false)
                    };
                    self.bridge.handle_start_slot(generation, taken, self.now);
                }
                Action::ReleaseStartSlot(generation) => {
                    assert!(
                        self.held_slots.remove(&generation),
                        "only a held slot is given back"
                    );
                    self.free_slots += 1;
                    self.slot_log.push(("release", self.daemon.requests.len()));
                }
                Action::Log(event) => self.events.push(event),
                Action::Exit(code) => {
                    assert!(
                        self.held_slots.is_empty(),
                        "every start slot is given back before the exit"
                    );
                    self.exit = Some(code);
                }
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
        assert!(
            self.proxy == ProxySeen::Accepting,
            "the bridge is accepting"
        );
        let identity = PeerIdentity {
            pid: Some(INIT_PID),
            pid_ns: Some(CONTAINER_NS),
            cgroup: Some(format!("12:pids:/docker/{CONTAINER_ID}\n")),
        };
        self.bridge
            .handle_proxy_peer(ProxyPeer(peer), identity, self.now);
        self.run();
    }

    /// The vassal connects, and its cgroup does not tell its container (a rootless engine):
    /// it is held until the init's namespace is known.
    fn held_peer_connects(&mut self, peer: u64) {
        assert!(
            self.proxy == ProxySeen::Accepting,
            "the bridge is accepting"
        );
        let identity = peer_in(Some(INIT_PID), Some(CONTAINER_NS));
        self.bridge
            .handle_proxy_peer(ProxyPeer(peer), identity, self.now);
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

    /// The Emperor's stop byte, and the vassal (no uWSGI here) ignores it: the bridge stops
    /// the container once its stop timeout has passed.
    fn emperor_stops(&mut self) {
        let start = self.now;
        self.emperor_sends(&[EmperorMessage::Stop.to_byte()]);
        self.run_clock_until(start + self.bridge.shutdown_bound());
    }

    fn vassal_sends(&mut self, bytes: &[u8]) {
        self.generation_sends(Generation(0), bytes);
    }

    fn generation_sends(&mut self, generation: Generation, bytes: &[u8]) {
        self.bridge
            .handle_vassal_control(generation, bytes, self.now);
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

    /// The daemon stops: its socket refuses connections, and the streams it held close.
    fn daemon_stops(&mut self) {
        self.daemon_down = true;
        for conn in [self.daemon.wait_conn.take(), self.daemon.attach_conn.take()]
            .into_iter()
            .flatten()
        {
            if self.open_conns.contains(&conn) {
                self.bridge.handle_docker_eof(conn, self.now);
                self.run();
            }
        }
    }

    /// The log as the runtime prints it, for the tests of its wording.
    fn logs(&self) -> Vec<String> {
        self.events.iter().map(log_line).collect()
    }

    /// Whether the bridge logged an event like this.
    fn saw(&self, like: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(like)
    }

    /// Whether the bridge gave a notice like this.
    fn noticed(&self, like: impl Fn(&Notice) -> bool) -> bool {
        self.saw(|e| matches!(e, Event::Notice(n) if like(n)))
    }

    /// Why the vassal failed, if it did.
    fn failure(&self) -> Option<&BridgeError> {
        self.events.iter().find_map(|e| match e {
            Event::Failed(error) => Some(error),
            _ => None,
        })
    }

    /// Nothing is left: container gone, proxy closed, connections closed, exited.
    fn assert_clean(&self, code: i32) {
        assert_eq!(self.exit, Some(code), "logs: {:#?}", self.logs());
        assert!(
            self.daemon.containers.is_empty(),
            "container left: {:?}",
            self.daemon.containers
        );
        assert!(
            matches!(self.proxy, ProxySeen::Never | ProxySeen::Closed),
            "proxy socket left"
        );
        assert!(
            self.open_conns.is_empty(),
            "connections left: {:?}",
            self.open_conns
        );
        assert_eq!(self.bridge.poll_timeout(), None, "no timer after exit");
        assert!(self.bridge.is_finished().is_some());
    }
}

/// A peer known by its pid and pid namespace only (its cgroup unread).
fn peer_in(pid: Option<u32>, pid_ns: Option<u64>) -> PeerIdentity {
    PeerIdentity {
        pid,
        pid_ns,
        cgroup: None,
    }
}

/// A container's start-up once the API version is known.
const START_UP: [&str; 4] = [
    "POST /containers/create",
    "POST /containers/c0ffee/attach",
    "POST /containers/c0ffee/wait",
    "POST /containers/c0ffee/start",
];

fn api_1_41() -> Api {
    Api::with_version(ApiVersion {
        major: 1,
        minor: 41,
    })
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
    assert_eq!(h.daemon.requests[0], "GET /version");
    assert_eq!(h.daemon.requests[1..], START_UP);
    assert_eq!(h.remembered, [api_1_41()]);
    assert!(h.proxy == ProxySeen::Accepting);
    assert_eq!(
        h.bridge.poll_timeout(),
        Some(h.now + Duration::from_secs(30)),
        "handoff deadline armed"
    );
    // Output written before the handoff is already logged, prefixed with the vassal name.
    assert_eq!(h.logs(), ["[app.ini] booting"]);

    h.vassal_connects(7);
    let (peer, data, fds) = &h.handoffs[0];
    assert_eq!(*peer, ProxyPeer(7));
    assert_eq!(fds, &[HandedFd::Control, HandedFd::Config]);
    assert_eq!(handoff::decode(data), Ok(2));
    assert!(h.proxy == ProxySeen::Closed, "the proxy is single-use");
    assert_eq!(h.to_vassal_config, config_packet(VASSAL_CONFIG));
    assert_eq!(h.bridge.poll_timeout(), None, "idle bridge has no timer");
    assert_eq!(h.bridge.container_id(), Some(CONTAINER_ID));

    h.container_output(b"spawned uWSGI worker 1\r\npartial");
    assert_eq!(
        h.logs().last().map(String::as_str),
        Some("[app.ini] spawned uWSGI worker 1")
    );

    // Vassal → Emperor bytes are relayed as they are.
    h.vassal_sends(&[1, 5, 17, 26]);
    assert_eq!(h.to_emperor, [1, 5, 17, 26]);
}

#[test]
fn emperor_stop_byte_is_relayed_and_the_exit_awaited_then_the_container_removed() {
    for byte in [EmperorMessage::Stop, EmperorMessage::GracefulStop].map(EmperorMessage::to_byte) {
        let mut h = Harness::running();
        h.emperor_sends(&[byte]);
        assert_eq!(h.to_vassal_control, [byte]);
        // uWSGI stops by itself on the byte: no stop signal on top of it.
        h.advance(Duration::from_secs(2));
        assert!(!h.daemon.requests.iter().any(|r| r.ends_with("/stop")));
        h.container_exits(0);
        assert_eq!(
            h.daemon.requests.last().map(String::as_str),
            Some("DELETE /containers/c0ffee")
        );
        assert!(!h.daemon.requests.iter().any(|r| r.ends_with("/stop")));
        h.assert_clean(0);
        assert!(matches!(h.bridge.is_finished(), Some(Outcome::Stopped)));
    }
}

#[test]
fn a_vassal_still_running_a_stop_timeout_after_the_stop_byte_is_killed_and_removed() {
    let mut h = Harness::running();
    let start = h.now;
    h.emperor_sends(&[0]);
    h.run_clock_until(start + Duration::from_secs(3));
    let tail: Vec<&str> = h
        .daemon
        .targets
        .iter()
        .rev()
        .take(2)
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "DELETE /containers/c0ffee?force=1&v=1",
            "POST /containers/c0ffee/stop?t=0"
        ],
        "its stop timeout (3 s) was spent waiting"
    );
    h.assert_clean(0);
    assert_eq!(h.now, start + Duration::from_secs(3));
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
                h.proxy = ProxySeen::Bound;
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
            Action::RememberApi(_) => {}
            Action::TakeStartSlot(generation) => {
                h.held_slots.insert(generation);
                h.bridge.handle_start_slot(generation, Ok(true), h.now);
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
fn name_conflict_with_our_container_whose_bridge_is_gone_replaces_it() {
    let mut h = Harness::new(test_config());
    h.daemon.holder("app.ini", "old", &our_labels("host:9:99"));
    h.run();
    assert_eq!(
        h.daemon.requests,
        [
            "GET /version",
            "POST /containers/create",
            "GET /containers/app.ini/json",
            "DELETE /containers/old"
        ]
    );
    assert_eq!(h.bridge_queries, ["host:9:99"]);
    assert!(
        h.noticed(
            |n| matches!(n, Notice::ReplacingHolder { name, holder, bridge }
            if name == "app.ini" && holder == "old" && bridge == "host:9:99")
        ),
        "{:?}",
        h.logs()
    );
    h.advance(FIRST_CONFLICT_BACKOFF);
    assert_eq!(h.daemon.requests[4], "POST /containers/create");
    assert_eq!(
        h.daemon.containers.get("app.ini").map(String::as_str),
        Some(CONTAINER_ID)
    );
    h.vassal_connects(1);
    assert_eq!(h.handoffs.len(), 1);
}

#[test]
fn a_container_that_is_not_ours_keeps_the_name_and_the_vassal_fails_naming_it() {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "not made by uwsgi-docker"),
        (
            &[
                ("io.uwsgi-docker.managed", "1"),
                ("io.uwsgi-docker.vassal", "other.ini"),
                ("io.uwsgi-docker.bridge", "host:9:99"),
            ],
            "another vassal",
        ),
        (
            &[
                ("io.uwsgi-docker.managed", "1"),
                ("io.uwsgi-docker.vassal", "app.ini"),
                ("io.uwsgi-docker.bridge", "host:9:99"),
                ("io.uwsgi-docker.prefix", "t1-"),
            ],
            "name prefix \"t1-\"",
        ),
        (
            &[
                ("io.uwsgi-docker.managed", "1"),
                ("io.uwsgi-docker.vassal", "app.ini"),
            ],
            "no bridge label",
        ),
    ];
    for (labels, why) in cases {
        let mut h = Harness::new(test_config());
        h.daemon.holder("app.ini", "f0reign1234567890", labels);
        h.run();
        let failure = h.failure().expect("the vassal fails");
        assert!(
            matches!(
                failure,
                BridgeError::Operator(
                    OperatorError::NameHeldByForeign { name, holder, .. }
                        | OperatorError::NameHeldWithoutBridge { name, holder }
                ) if name == "app.ini" && holder == "f0reign12345"
            ),
            "{failure:?}"
        );
        // The wording: the line names the vassal, the container, why and what is done.
        let error = log_line(&Event::Failed(failure.clone()));
        for needle in [
            "vassal app.ini",
            "container name app.ini",
            "f0reign12345",
            why,
            "left alone",
        ] {
            assert!(error.contains(needle), "{needle:?} not in {error}");
        }
        assert!(
            !h.daemon.requests.iter().any(|r| r.starts_with("DELETE")),
            "nothing is removed: {:?}",
            h.daemon.requests
        );
        assert!(h.bridge_queries.is_empty(), "not ours to ask about");
        assert_eq!(
            h.daemon.containers.get("app.ini").map(String::as_str),
            Some("f0reign1234567890"),
            "the other container survives"
        );
        assert_eq!(h.exit, Some(1));
        assert!(h.proxy == ProxySeen::Closed && h.open_conns.is_empty());
        assert_eq!(h.bridge.poll_timeout(), None);
    }
}

#[test]
fn a_live_bridge_is_waited_for_a_few_times_then_named_and_never_forced() {
    let mut h = Harness::new(test_config());
    h.daemon.holder("app.ini", "old", &our_labels("host:9:99"));
    h.alive_answers = usize::MAX;
    h.run();
    let start = h.now;
    // Backoff after backoff, until the tries are used up.
    while h.exit.is_none() {
        let next = h.bridge.poll_timeout().expect("a backoff is pending");
        h.advance(next - h.now);
    }
    let creates = h
        .daemon
        .requests
        .iter()
        .filter(|r| *r == "POST /containers/create")
        .count();
    assert_eq!(creates, usize::from(MAX_CREATE_ATTEMPTS));
    assert_eq!(h.bridge_queries.len(), usize::from(MAX_CREATE_ATTEMPTS));
    assert!(
        !h.daemon.requests.iter().any(|r| r.starts_with("DELETE")),
        "never forced against a live bridge: {:?}",
        h.daemon.requests
    );
    assert!(
        h.now - start < Duration::from_secs(10),
        "a few seconds, not forever"
    );
    assert!(
        matches!(
            h.failure(),
            Some(BridgeError::Operator(OperatorError::NameHeldByLiveBridge { name, bridge, .. }))
                if name == "app.ini" && bridge == "host:9:99"
        ),
        "{:?}",
        h.failure()
    );
    assert_eq!(
        h.daemon.containers.get("app.ini").map(String::as_str),
        Some("old")
    );
    assert_eq!(h.exit, Some(1));
}

#[test]
fn a_live_bridge_that_finishes_its_own_shutdown_frees_the_name() {
    let mut h = Harness::new(test_config());
    h.daemon.holder("app.ini", "old", &our_labels("host:9:99"));
    h.alive_answers = 2;
    h.live_bridge_finishes_after = Some(2);
    h.run();
    h.advance(FIRST_CONFLICT_BACKOFF);
    assert_eq!(h.bridge_queries.len(), 2);
    h.advance(2 * FIRST_CONFLICT_BACKOFF);
    assert!(
        !h.daemon.requests.iter().any(|r| r.starts_with("DELETE")),
        "{:?}",
        h.daemon.requests
    );
    assert!(h.noticed(|n| matches!(n, Notice::WaitingForLiveBridge { .. })));
    assert_eq!(
        h.daemon.containers.get("app.ini").map(String::as_str),
        Some(CONTAINER_ID)
    );
    h.vassal_connects(1);
    assert_eq!(h.handoffs.len(), 1);
}

#[test]
fn podman_500_conflicts_and_not_found_take_the_same_path() {
    // Podman 4 answers a name conflict with 500 and "no such container" with 500.
    let mut h = Harness::new(test_config());
    h.daemon.quirks.insert(Quirk::Podman);
    h.daemon.holder("app.ini", "old", &our_labels("host:9:99"));
    h.run();
    assert_eq!(
        h.daemon.requests[2..],
        ["GET /containers/app.ini/json", "DELETE /containers/old"],
        "{:?}",
        h.logs()
    );
    h.advance(FIRST_CONFLICT_BACKOFF);
    h.vassal_connects(1);
    assert_eq!(h.handoffs.len(), 1);

    // The holder goes away between the create and the inspect: create again.
    let mut h = Harness::new(test_config());
    h.daemon.quirks.insert(Quirk::Podman);
    h.daemon.holder("app.ini", "old", &[]);
    h.daemon.quirks.insert(Quirk::HolderVanishesOnInspect);
    h.run();
    assert!(h.exit.is_none(), "{:?}", h.logs());
    h.advance(FIRST_CONFLICT_BACKOFF);
    assert_eq!(
        h.daemon
            .requests
            .iter()
            .filter(|r| *r == "POST /containers/create")
            .count(),
        2
    );
    h.vassal_connects(1);
    assert_eq!(h.handoffs.len(), 1);
}

#[test]
fn with_a_name_prefix_only_a_holder_of_that_prefix_is_ours() {
    let mut config = test_config();
    let identity = VassalIdentity {
        name: "app.ini".into(),
        proxy_dir: "/etc/uwsgi".into(),
        emperor_id: "host:1".into(),
        bridge_id: "host:2:3".into(),
        name_prefix: Some("t1-".into()),
    };
    config.plan = ContainerPlan::new(test_spec(), &identity);
    assert_eq!(config.plan.container_name, "t1-app.ini");
    let mut h = Harness::new(config.clone());
    let mut labels = our_labels("host:9:99").to_vec();
    labels.push(("io.uwsgi-docker.prefix", "t1-"));
    h.daemon.holder("t1-app.ini", "old", &labels);
    h.run();
    assert_eq!(h.daemon.requests[3], "DELETE /containers/old");
    // The same vassal of an Emperor without a prefix is not ours.
    let mut h = Harness::new(config);
    h.daemon
        .holder("t1-app.ini", "old", &our_labels("host:9:99"));
    h.run();
    assert!(
        matches!(
            h.failure(),
            Some(BridgeError::Operator(OperatorError::NameHeldByForeign { why, .. }))
                if why.contains("without a name prefix")
        ),
        "{:?}",
        h.logs()
    );
    assert!(!h.daemon.requests.iter().any(|r| r.starts_with("DELETE")));
}

#[test]
fn missing_image_names_vassal_and_image_and_leaves_nothing() {
    // docker-pull = never: today's error, and no registry is asked.
    let mut config = test_config();
    config.pull = crate::spec::PullPolicy::Never;
    let mut h = Harness::new(config);
    h.daemon.quirks.insert(Quirk::ImageMissing);
    h.run();
    let failure = h.failure().expect("the vassal fails");
    assert!(
        matches!(failure, BridgeError::Vassal(VassalError::ImageNotFound { image, .. }) if image == "app"),
        "{failure:?}"
    );
    assert_eq!(failure.fault(), Fault::VassalAuthor);
    // The wording: the line names the vassal and the image.
    let error = log_line(&Event::Failed(failure.clone()));
    assert!(error.contains("vassal app.ini"), "{error}");
    assert!(error.contains("\"app\""), "{error}");
    assert!(error.contains("docker-pull = missing"), "{error}");
    assert!(
        !h.daemon.requests.iter().any(|r| r.starts_with("DELETE")),
        "nothing was created"
    );
    assert!(
        !h.daemon.requests.iter().any(|r| r == "POST /images/create"),
        "never asks no registry"
    );
    h.assert_clean(1);
}

#[test]
fn daemon_closing_mid_reply_fails_and_cleans_up_by_name() {
    let mut h = Harness::new(test_config());
    h.daemon.close_mid_reply_on = Some("POST /containers/create");
    h.run();
    assert!(
        matches!(
            h.failure(),
            Some(BridgeError::Daemon(DaemonFault::ClosedMidReply(_)))
        ),
        "{:?}",
        h.logs()
    );
    // The create may have happened: the bridge looks, on a fresh connection, and finds
    // nothing to remove.
    assert_eq!(
        h.daemon.requests.last().map(String::as_str),
        Some("GET /containers/app.ini/json")
    );
    assert!(!h.daemon.requests.iter().any(|r| r.starts_with("DELETE")));
    h.assert_clean(1);
}

#[test]
fn a_create_whose_reply_is_lost_removes_the_container_only_if_this_bridge_made_it() {
    // It did: the container carries our bridge label, and it is removed by its id.
    let mut h = Harness::new(test_config());
    h.daemon.quirks.insert(Quirk::CloseAfterCreate);
    h.run();
    assert_eq!(
        h.daemon.requests[1..],
        [
            "POST /containers/create",
            "GET /containers/app.ini/json",
            "DELETE /containers/c0ffee"
        ]
    );
    h.assert_clean(1);

    // It did not: another bridge's container (same vassal, but not this bridge) holds the
    // name, and the lost reply was its conflict. It is left alone.
    let mut h = Harness::new(test_config());
    h.daemon.quirks.insert(Quirk::CloseAfterCreate);
    h.daemon
        .holder("app.ini", "other", &our_labels("host:9:99"));
    h.run();
    assert!(!h.daemon.requests.iter().any(|r| r.starts_with("DELETE")));
    assert!(
        h.noticed(|n| matches!(n, Notice::NotMadeByUs { holder, .. } if holder == "other")),
        "{:?}",
        h.logs()
    );
    assert_eq!(
        h.daemon.containers.get("app.ini").map(String::as_str),
        Some("other")
    );
    assert_eq!(h.exit, Some(1));
}

#[test]
fn vassal_that_never_connects_hits_the_deadline() {
    let mut h = Harness::new(test_config());
    h.run();
    h.advance(Duration::from_secs(29));
    assert!(h.exit.is_none());
    h.advance(Duration::from_secs(1));
    assert!(
        matches!(
            h.failure(),
            Some(BridgeError::Vassal(VassalError::NeverConnected { path, within, .. }))
                if path == "/app.ini.sock" && *within == Duration::from_secs(30)
        ),
        "{:?}",
        h.logs()
    );
    assert!(h.handoffs.is_empty());
    h.assert_clean(1);
}

#[test]
fn container_exit_removes_without_stopping() {
    let mut h = Harness::running();
    h.container_exits(3);
    assert!(h.saw(|e| matches!(e, Event::ContainerExited { status: 3 })));
    assert!(
        !h.daemon.requests.iter().any(|r| r.ends_with("/stop")),
        "nothing to stop"
    );
    h.assert_clean(1);
    assert!(matches!(
        h.bridge.is_finished(),
        Some(Outcome::ContainerExited(3))
    ));
}

#[test]
fn an_oom_kill_is_read_from_inspect_and_logged_before_the_removal() {
    let mut config = test_config();
    config.plan.spec.memory = Some(16 << 20);
    let mut h = Harness::new(config);
    h.run();
    h.vassal_connects(1);
    h.daemon.running = false;
    h.daemon.quirks.insert(Quirk::OomKilled);
    h.container_exits(137);
    assert!(
        h.saw(|e| matches!(e, Event::ContainerExited { status: 137 })),
        "{:?}",
        h.logs()
    );
    assert!(
        h.noticed(|n| matches!(
            n,
            Notice::OomKilled {
                memory: Some(16777216)
            }
        )),
        "{:?}",
        h.logs()
    );
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
        [
            format!("DELETE /containers/{CONTAINER_ID}"),
            format!("GET /containers/{CONTAINER_ID}/json")
        ],
        "inspected, then removed"
    );
    h.assert_clean(1);
    assert!(matches!(
        h.bridge.is_finished(),
        Some(Outcome::ContainerExited(137))
    ));
}

#[test]
fn a_vassal_that_closes_its_channel_lets_the_wait_tell_the_oom_kill_first() {
    // The OOM killer ends uWSGI: its channels close just before the wait answers.
    let mut h = Harness::running();
    h.bridge.handle_vassal_control_eof(Generation(0), h.now);
    h.run();
    assert!(h.exit.is_none(), "waits for the exit status a moment");
    assert!(!h.daemon.requests.iter().any(|r| r.ends_with("/stop")));
    h.daemon.running = false;
    h.daemon.quirks.insert(Quirk::OomKilled);
    h.container_exits(137);
    assert!(
        h.noticed(|n| matches!(n, Notice::OomKilled { .. })),
        "{:?}",
        h.logs()
    );
    assert!(!h.daemon.requests.iter().any(|r| r.ends_with("/stop")));
    h.assert_clean(1);

    // A vassal that closes its channel and keeps running is stopped after the grace.
    let mut h = Harness::running();
    h.bridge.handle_vassal_control_eof(Generation(0), h.now);
    h.run();
    h.advance(Duration::from_secs(2));
    assert!(h.daemon.requests.iter().any(|r| r.ends_with("/stop")));
    h.assert_clean(1);
    assert!(matches!(h.bridge.is_finished(), Some(Outcome::VassalLeft)));
}

#[test]
fn a_sigkill_that_is_not_an_oom_kill_says_so_and_one_already_removed_too() {
    let mut h = Harness::running();
    h.daemon.running = false;
    h.container_exits(137);
    assert!(
        h.noticed(|n| matches!(n, Notice::KilledNotOom)),
        "{:?}",
        h.logs()
    );
    assert!(!h.noticed(|n| matches!(n, Notice::OomKilled { .. })));
    h.assert_clean(1);

    // AutoRemove won the race: the inspect answers 404, the vassal still ends cleanly.
    let mut h = Harness::running();
    h.daemon.running = false;
    h.daemon.containers.clear();
    h.container_exits(137);
    assert!(
        h.noticed(|n| matches!(n, Notice::KilledUninspected(None))),
        "{:?}",
        h.logs()
    );
    h.assert_clean(1);

    // Any other status is not inspected.
    let mut h = Harness::running();
    let inspects = |h: &Harness| {
        h.daemon
            .requests
            .iter()
            .filter(|r| r.ends_with("/json"))
            .count()
    };
    let before = inspects(&h);
    h.container_exits(1);
    assert_eq!(inspects(&h), before);
    h.assert_clean(1);
}

#[test]
fn reload_relays_the_byte_and_answers_the_config_request_from_the_file() {
    let mut h = Harness::running();
    let first_push = h.to_vassal_config.len();
    h.emperor_sends(&[1]);
    assert_eq!(h.to_vassal_control, [1]);
    h.file = format!("{VASSAL_EMPEROR_SECTION}\n[uwsgi]\nenv = GREETING=hi\n").into_bytes();
    h.vassal_sends(&[2]);
    // Once when the reload byte came (to see whether the [emperor] section changed), and
    // once for the vassal's request.
    assert_eq!(h.config_reads, 2);
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
    config.emperor = EmperorChannels::ControlAndConfig;
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
fn a_remembered_api_version_leaves_four_requests_before_the_handoff() {
    let mut config = test_config();
    config.known_api = Some(api_1_41());
    let mut h = Harness::new(config);
    h.run();
    h.vassal_connects(7);
    assert_eq!(h.handoffs.len(), 1);
    assert_eq!(h.daemon.requests, START_UP);
    assert!(h.remembered.is_empty(), "nothing new to remember");
}

#[test]
fn a_remembered_api_version_the_daemon_refuses_is_negotiated_again() {
    let mut config = test_config();
    config.known_api = Some(Api::with_version(ApiVersion {
        major: 1,
        minor: 44,
    }));
    let mut h = Harness::new(config);
    h.daemon.refuse_api_above = Some(ApiVersion {
        major: 1,
        minor: 41,
    });
    h.run();
    h.vassal_connects(7);
    assert_eq!(h.handoffs.len(), 1);
    // Refused, negotiated again, created again.
    assert_eq!(
        h.daemon.requests[..2],
        ["POST /containers/create", "GET /version"]
    );
    assert_eq!(h.daemon.requests[2..], START_UP);
    assert_eq!(h.remembered, [api_1_41()]);
    assert!(h
        .daemon
        .versions_sent
        .iter()
        .skip(1)
        .all(|v| v.as_str() == "v1.41"));
}

#[test]
fn a_peer_whose_cgroup_does_not_tell_is_handed_off_once_its_namespace_is_the_inits() {
    let mut h = Harness::new(test_config());
    h.run();
    let before = h.daemon.requests.len();
    h.held_peer_connects(7);
    assert_eq!(h.daemon.requests[before..], [HELD_PEER_INSPECT]);
    assert_eq!(h.handoffs.len(), 1);
    assert_eq!(h.handoffs[0].0, ProxyPeer(7));
    assert_eq!(h.bridge.phase(), Phase::Running);
}

#[test]
fn foreign_peer_is_refused_and_the_vassal_still_gets_the_fds() {
    let mut h = Harness::new(test_config());
    h.run();
    // A host process is held (its cgroup tells nothing) until the init's namespace says
    // it is not in the container; one that cannot be told by anything is refused at once;
    // one in another container's cgroup is held and refused the same way.
    h.bridge
        .handle_proxy_peer(ProxyPeer(1), peer_in(Some(999), Some(HOST_NS)), h.now);
    h.bridge
        .handle_proxy_peer(ProxyPeer(2), peer_in(None, None), h.now);
    let elsewhere = PeerIdentity {
        pid: Some(998),
        pid_ns: Some(HOST_NS + 1),
        cgroup: Some(format!("0::/docker/{}\n", "f".repeat(64))),
    };
    h.bridge.handle_proxy_peer(ProxyPeer(5), elsewhere, h.now);
    h.run();
    assert_eq!(h.refused, [ProxyPeer(2), ProxyPeer(1), ProxyPeer(5)]);
    assert!(h.handoffs.is_empty());
    assert!(h.noticed(|n| matches!(n, Notice::RefusedPeer { pid: Some(999) })));
    h.vassal_connects(3);
    assert_eq!(h.handoffs.len(), 1);
    // Once handed off, even the container's own processes get nothing more.
    h.bridge.handle_proxy_peer(
        ProxyPeer(4),
        peer_in(Some(INIT_PID), Some(CONTAINER_NS)),
        h.now,
    );
    h.run();
    assert_eq!(h.refused.last(), Some(&ProxyPeer(4)));
}

#[test]
fn proxy_bind_failure_exits_before_any_request() {
    let mut h = Harness::new(test_config());
    h.host_faults.insert(HostFault::ProxyBind);
    h.run();
    assert!(h.daemon.requests.is_empty());
    assert!(matches!(
        h.failure(),
        Some(BridgeError::Host(HostError::ProxyBind { path, .. })) if path == "/etc/uwsgi/app.ini.sock"
    ));
    h.assert_clean(1);
}

#[test]
fn oversized_config_is_refused_before_anything_exists() {
    let mut config = test_config();
    config.config = vec![b'x'; 70_000];
    let mut h = Harness::new(config);
    h.run();
    assert!(h.daemon.requests.is_empty());
    assert!(h.proxy == ProxySeen::Never);
    assert!(
        matches!(
            h.failure(),
            Some(BridgeError::Vassal(VassalError::Config(
                ConfigError::TooLarge { len: 70000 }
            )))
        ),
        "{:?}",
        h.failure()
    );
    assert_eq!(h.exit, Some(1));
}

#[test]
fn stop_requests_after_exit_do_nothing() {
    let mut h = Harness::running();
    h.emperor_stops();
    h.assert_clean(0);
    h.bridge.handle_signal(h.now);
    h.bridge.handle_emperor_control_eof(h.now);
    h.bridge.handle_timeout(h.now + Duration::from_secs(3600));
    assert!(h.bridge.poll_action().is_none());
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
    h.proxy = ProxySeen::Bound;
    h.bridge.handle_proxy_bound(Ok(()), h.now);
    h.run();
    assert!(
        h.proxy == ProxySeen::Closed,
        "the socket bound late is unlinked"
    );
    assert!(h.daemon.requests.is_empty());
    h.assert_clean(0);
}

#[test]
fn signal_while_a_held_peer_waits_for_the_namespace_never_hands_off() {
    let mut h = Harness::new(test_config());
    h.run();
    assert!(h.proxy == ProxySeen::Accepting);
    // Stop short of answering the namespace query for the held peer.
    h.bridge.handle_proxy_peer(
        ProxyPeer(7),
        peer_in(Some(INIT_PID), Some(CONTAINER_NS)),
        h.now,
    );
    let mut asked = false;
    while let Some(action) = h.bridge.poll_action() {
        match action {
            Action::QueryPidNamespace { pid } => {
                asked = true;
                h.bridge.handle_signal(h.now);
                h.bridge
                    .handle_pid_namespace(pid, Some(CONTAINER_NS), h.now);
                break;
            }
            Action::DockerConnect(c) => h.open_conns.push(c),
            Action::DockerSend(conn, bytes) => {
                if let Some(Reply::Bytes(b)) = h.daemon.answer(conn, &bytes) {
                    h.bridge.handle_docker_data(conn, &b, h.now);
                }
            }
            Action::Log(event) => h.events.push(event),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(asked, "the held peer's namespace was asked for");
    h.run();
    assert!(h.handoffs.is_empty(), "stopping: no handoff");
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
    h.proxy = ProxySeen::Bound;
    h.bridge.handle_proxy_bound(Ok(()), h.now);
    assert!(matches!(
        h.bridge.poll_action(),
        Some(Action::DockerConnect(DockerConn(0)))
    ));
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
        name_prefix: None,
    };
    config.requested_spec = spec.clone();
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
    assert!(h.proxy == ProxySeen::Closed, "the proxy is single-use");
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
        h.noticed(|n| matches!(n, Notice::Recreating)),
        "{:?}",
        h.logs()
    );
    assert!(h.daemon.requests.iter().any(|r| r.ends_with("/stop")));
    // Non-zero: the Emperor sees its vassal die and starts it again from the new file.
    h.assert_clean(1);
    assert!(matches!(h.bridge.is_finished(), Some(Outcome::Recreate)));
}

#[test]
fn a_reload_of_a_changed_file_recreates_without_reloading_the_old_vassal() {
    let mut h = Harness::running();
    h.file =
        b"[emperor]\ndocker-image = app\ndocker-memory = 64m\n\n[uwsgi]\nhttp-socket = :3031\n"
            .to_vec();
    h.emperor_sends(&[EmperorMessage::Reload.to_byte()]);
    assert_eq!(
        h.config_reads, 1,
        "the file is read before the reload is relayed"
    );
    assert!(
        h.to_vassal_control.is_empty(),
        "the old vassal is not told to reload (it would wait 5 s for a config)"
    );
    assert!(h.daemon.requests.iter().any(|r| r.ends_with("/stop")));
    h.assert_clean(1);
    assert!(matches!(h.bridge.is_finished(), Some(Outcome::Recreate)));
}

#[test]
fn a_reload_of_an_unchanged_file_is_relayed() {
    let mut h = Harness::running();
    h.emperor_sends(&[EmperorMessage::Reload.to_byte()]);
    assert_eq!(h.config_reads, 1);
    assert_eq!(h.to_vassal_control, [EmperorMessage::Reload.to_byte()]);
    assert_eq!(h.exit, None);
}

#[test]
fn without_an_emperor_changed_docker_settings_wait_for_the_next_start() {
    let mut config = test_config();
    config.emperor = EmperorChannels::None;
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
    assert!(h.noticed(|n| matches!(n, Notice::ChangeAppliesNextStart)));
    assert_eq!(h.exit, None);
}

impl Harness {
    /// Lets simulated time run, timer by timer, up to `limit`, or until the bridge exits.
    fn run_clock_until(&mut self, limit: Instant) {
        while self.exit.is_none() {
            match self.bridge.poll_timeout() {
                Some(t) if t <= limit => {
                    self.now = self.now.max(t);
                    self.bridge.handle_timeout(self.now);
                    self.run();
                }
                _ => return,
            }
        }
    }

    /// Exited, whatever the daemon did: proxy socket closed, connections closed, no timer.
    fn assert_exited(&self, code: i32) {
        assert_eq!(self.exit, Some(code), "logs: {:#?}", self.logs());
        assert!(
            matches!(self.proxy, ProxySeen::Never | ProxySeen::Closed),
            "proxy socket left"
        );
        assert!(
            self.open_conns.is_empty(),
            "connections left: {:?}",
            self.open_conns
        );
        assert_eq!(self.bridge.poll_timeout(), None, "no timer after exit");
    }
}

/// Each step of the path, as the request the fake daemon takes and never answers.
const STEPS: [&str; 5] = [
    "GET /version",
    "POST /containers/create",
    "POST /containers/c0ffee/attach",
    "POST /containers/c0ffee/wait",
    "POST /containers/c0ffee/start",
];

/// The inspect for the container's init, asked only for a peer held by its namespace.
const HELD_PEER_INSPECT: &str = "GET /containers/c0ffee/json";

#[test]
fn a_daemon_that_never_answers_fails_the_vassal_naming_the_request() {
    for step in STEPS {
        let mut h = Harness::new(test_config());
        h.daemon.hang = vec![step];
        h.run();
        assert_eq!(h.exit, None, "{step}: still waiting");
        assert!(
            h.bridge.poll_timeout().is_some(),
            "{step}: a deadline is armed"
        );
        let start = h.now;
        h.run_clock_until(start + DEFAULT_REQUEST_TIMEOUT - Duration::from_millis(1));
        assert_eq!(h.exit, None, "{step}: not before the request timeout");
        let limit = start + DEFAULT_REQUEST_TIMEOUT + h.bridge.shutdown_bound();
        h.run_clock_until(limit);
        let said = format!("docker daemon did not answer {step} within 30 s");
        assert!(
            h.logs()
                .iter()
                .any(|l| l.contains(&said) && l.contains("vassal app.ini")),
            "{step}: {:#?}",
            h.logs()
        );
        assert!(
            matches!(h.bridge.is_finished(), Some(Outcome::Failed(e)) if e.to_string().contains(&said))
        );
        h.assert_exited(1);
        // The daemon was cooperative for the rest: whatever was created is removed.
        assert!(
            h.daemon.containers.is_empty(),
            "{step}: {:?}",
            h.daemon.containers
        );
    }
}

/// The request at `step` hangs, and so do every stop and remove: a stop request still ends
/// the bridge within its bound.
fn stop_with_everything_hanging(step: Option<&'static str>, stop: fn(&mut Harness)) {
    let mut h = Harness::new(test_config());
    h.daemon.hang = [
        "POST /containers/c0ffee/stop",
        "DELETE /containers/",
        "GET /containers/app.ini/json",
    ]
    .into();
    h.daemon.hang.extend(step);
    h.run();
    if step.is_none() {
        h.vassal_connects(1);
    }
    assert_eq!(h.exit, None);
    let start = h.now;
    stop(&mut h);
    let bound = h.bridge.shutdown_bound();
    // The stop timeout (3 s) plus twice the grace (5 s).
    assert_eq!(bound, Duration::from_secs(13));
    h.run_clock_until(start + bound);
    h.assert_exited(
        if matches!(h.bridge.is_finished(), Some(Outcome::Stopped)) {
            0
        } else {
            1
        },
    );
    assert!(h.now <= start + bound, "{step:?}: took {:?}", h.now - start);
    assert!(
        h.saw(|e| matches!(
            e,
            Event::Failed(BridgeError::Daemon(DaemonFault::Timeout { .. }))
                | Event::Notice(Notice::CleanupFailed(DaemonFault::Timeout { .. }))
        )),
        "{step:?}: the operator hears why: {:#?}",
        h.logs()
    );
}

#[test]
fn a_signal_ends_the_bridge_in_bounded_time_whatever_hangs() {
    for step in STEPS.map(Some).into_iter().chain([None]) {
        stop_with_everything_hanging(step, |h| {
            h.bridge.handle_signal(h.now);
            h.run();
        });
    }
}

#[test]
fn an_inspect_for_a_held_peer_that_never_comes_fails_the_vassal_naming_it() {
    let mut config = test_config();
    // Longer than the request timeout, so that the inspect's deadline comes first.
    config.handoff_timeout = DEFAULT_REQUEST_TIMEOUT * 2;
    let mut h = Harness::new(config);
    h.daemon.hang = vec![HELD_PEER_INSPECT];
    h.run();
    h.held_peer_connects(7);
    let start = h.now;
    h.run_clock_until(start + DEFAULT_REQUEST_TIMEOUT + h.bridge.shutdown_bound());
    let said = format!("docker daemon did not answer {HELD_PEER_INSPECT} within 30 s");
    assert!(
        matches!(h.bridge.is_finished(), Some(Outcome::Failed(e)) if e.to_string().contains(&said)),
        "{:#?}",
        h.logs()
    );
    assert!(h.handoffs.is_empty());
    h.assert_clean(1);
}

#[test]
fn the_emperors_stop_byte_ends_the_bridge_in_bounded_time_whatever_hangs() {
    for step in STEPS.map(Some).into_iter().chain([None]) {
        stop_with_everything_hanging(step, |h| h.emperor_sends(&[0]));
    }
}

#[test]
fn a_stop_answered_late_still_leaves_the_remove_its_grace() {
    // The inspect for a held peer hangs; stopping waits at most the grace for it, then
    // skips the stop (the daemon is not answering) and removes by force.
    let mut h = Harness::new(test_config());
    h.daemon.hang = vec![HELD_PEER_INSPECT];
    h.run();
    h.held_peer_connects(7);
    assert_eq!(
        h.daemon.requests.last().map(String::as_str),
        Some(HELD_PEER_INSPECT)
    );
    h.bridge.handle_signal(h.now);
    h.run();
    let start = h.now;
    h.run_clock_until(start + Duration::from_secs(5));
    assert!(
        !h.daemon.requests.iter().any(|r| r.ends_with("/stop")),
        "{:?}",
        h.daemon.requests
    );
    assert_eq!(
        h.daemon.requests.last().map(String::as_str),
        Some("DELETE /containers/c0ffee")
    );
    h.assert_clean(0);
}

#[test]
fn a_reload_is_compared_with_the_file_not_with_what_a_policy_forced() {
    // A policy filled in the memory limit and the user: the plan's spec differs from the
    // file's, and a touch of the unchanged file must still reload in the same container.
    let mut config = test_config();
    config.plan.spec.memory = Some(256 * 1024 * 1024);
    config.plan.spec.user = Some("4242:4242".into());
    let mut h = Harness::new(config);
    h.run();
    h.vassal_connects(1);
    let first_push = h.to_vassal_config.len();
    h.emperor_sends(&[1]);
    h.vassal_sends(&[2]);
    assert_eq!(
        &h.to_vassal_config[first_push..],
        config_packet(&h.file).as_slice(),
        "the same file is pushed again"
    );
    assert_eq!(h.exit, None, "no recreate: {:?}", h.logs());
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
    assert!(
        h.proxy == ProxySeen::Accepting,
        "the vassal goes on: {:?}",
        h.logs()
    );
    assert_eq!(h.exit, None);
}

#[test]
fn cidfile_that_cannot_be_written_fails_the_vassal_and_removes_the_container() {
    let mut h = Harness::new(cidfile_config());
    h.cidfile_fails = Some("/var/run/app.cid: it exists and is not a cidfile".into());
    h.run();
    assert!(
        matches!(
            h.failure(),
            Some(BridgeError::Host(HostError::Cidfile { path, cause }))
                if path == "/var/run/app.cid" && cause.to_string().contains("not a cidfile")
        ),
        "{:?}",
        h.failure()
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
    let failure = h.failure().expect("the vassal fails");
    assert!(
        matches!(
            failure,
            BridgeError::Vassal(VassalError::NeverConnected { .. })
        ),
        "{failure:?}"
    );
    // The wording of the hint.
    let error = failure.to_string();
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
        h.logs().iter().any(|l| l.contains("did not connect")
            && l.contains("entry point")
            && !l.contains("UWSGIDOCKER_SOCKET_MODE")),
        "{:?}",
        h.logs()
    );
    // No docker-user, outside the private directory: the image's user or a remap may be
    // the cause, and the hint says so.
    let mut h = Harness::new(test_config());
    h.run();
    h.advance(Duration::from_secs(30));
    assert!(
        h.logs().iter().any(|l| l.contains("entry point")
            && l.contains("userns-remap")
            && l.contains("UWSGIDOCKER_SOCKET_MODE=666")),
        "{:?}",
        h.logs()
    );
}

// ---- losing the daemon while the vassal runs ----

/// Moves the simulated clock on in one-second steps, firing what is due.
fn pass(h: &mut Harness, secs: u64) {
    for _ in 0..secs {
        h.advance(Duration::from_secs(1));
    }
}

#[test]
fn a_daemon_that_comes_back_is_reattached_and_the_vassal_never_stops() {
    let mut h = Harness::running();
    h.daemon_stops();
    assert_eq!(h.bridge.phase(), Phase::Reattaching);
    assert!(
        h.noticed(|n| matches!(n, Notice::DaemonLost(e)
            if matches!(**e, BridgeError::Daemon(DaemonFault::StreamClosed { stream: "wait", .. })))),
        "{:?}",
        h.logs()
    );
    assert!(h.open_conns.is_empty(), "the dead streams are closed");
    // The Emperor's channels are still relayed while the daemon is away.
    h.emperor_sends(&[EmperorMessage::Reload.to_byte()]);
    assert_eq!(h.to_vassal_control, [EmperorMessage::Reload.to_byte()]);
    pass(&mut h, 8);
    assert_eq!(h.exit, None, "{:?}", h.logs());
    assert!(
        h.failed_conns.len() >= 2,
        "it keeps trying: {:?}",
        h.failed_conns
    );
    let before = h.daemon.requests.len();
    h.daemon_down = false;
    pass(&mut h, 5);
    assert_eq!(h.bridge.phase(), Phase::Running, "{:?}", h.logs());
    assert_eq!(
        h.daemon.targets[before..],
        [
            "GET /containers/c0ffee/json?",
            "POST /containers/c0ffee/attach?stream=1&stdout=1&stderr=1",
            "POST /containers/c0ffee/wait?condition=not-running",
        ],
        "inspect by id, then attach and wait again; no create, no start"
    );
    assert!(h.saw(|e| matches!(e, Event::Reattached)), "{:?}", h.logs());
    h.container_output(b"after the outage\n");
    assert_eq!(
        h.logs().last().map(String::as_str),
        Some("[app.ini] after the outage")
    );
    h.container_exits(0);
    h.assert_clean(1);
    assert!(matches!(
        h.bridge.is_finished(),
        Some(Outcome::ContainerExited(0))
    ));
}

#[test]
fn a_container_that_exited_while_the_daemon_was_away_is_reported_and_removed() {
    let mut h = Harness::running();
    h.daemon_stops();
    h.daemon.running = false;
    h.daemon_down = false;
    pass(&mut h, 2);
    let attaches = h
        .daemon
        .requests
        .iter()
        .filter(|r| r.ends_with("/attach"))
        .count();
    assert_eq!(attaches, 1, "a stopped container is not attached to again");
    // The wait for "not running" answers at once with the status.
    h.container_exits(3);
    assert!(h.saw(|e| matches!(e, Event::ContainerExited { status: 3 })));
    h.assert_clean(1);
}

#[test]
fn a_container_gone_when_the_daemon_is_back_ends_the_vassal_without_a_remove() {
    let mut h = Harness::running();
    h.daemon_stops();
    h.daemon.containers.clear();
    h.daemon_down = false;
    let before = h.daemon.requests.len();
    pass(&mut h, 2);
    assert_eq!(h.daemon.requests[before..], ["GET /containers/c0ffee/json"]);
    assert!(
        h.noticed(|n| matches!(n, Notice::ContainerGone)),
        "{:?}",
        h.logs()
    );
    h.assert_clean(1);
    assert!(matches!(h.bridge.is_finished(), Some(Outcome::VassalLeft)));
}

#[test]
fn a_daemon_that_stays_away_is_given_up_on_after_the_reattach_timeout() {
    let mut config = test_config();
    config.reattach_timeout = Duration::from_secs(20);
    let mut h = Harness::new(config);
    h.run();
    h.vassal_connects(1);
    h.daemon_stops();
    pass(&mut h, 19);
    assert_eq!(h.exit, None, "still trying at 19 s");
    pass(&mut h, 10);
    assert!(
        matches!(
            h.failure(),
            Some(BridgeError::Daemon(DaemonFault::GaveUpReattaching { container, .. }))
                if container == CONTAINER_ID
        ),
        "{:?}",
        h.failure()
    );
    // Cleanup cannot reach the daemon either, and still ends.
    h.assert_exited(1);
    assert!(
        matches!(h.bridge.is_finished(), Some(Outcome::Failed(e)) if e.fault() == Fault::Daemon)
    );
}

#[test]
fn a_stop_while_reattaching_ends_in_bounded_time_and_says_what_is_left() {
    let mut h = Harness::running();
    h.daemon_stops();
    let start = h.now;
    h.emperor_sends(&[EmperorMessage::Stop.to_byte()]);
    h.run_clock_until(start + h.bridge.shutdown_bound());
    h.assert_exited(0);
    assert!(
        h.noticed(
            |n| matches!(n, Notice::CleanupFailed(DaemonFault::Unreachable { daemon, .. })
            if daemon == "/var/run/docker.sock")
        ),
        "{:?}",
        h.logs()
    );
}

#[test]
fn losing_the_daemon_before_the_handoff_still_fails_the_vassal() {
    let mut h = Harness::new(test_config());
    h.run();
    assert_eq!(h.bridge.phase(), Phase::AwaitingVassal);
    h.daemon_stops();
    assert!(h.saw(|e| matches!(
        e,
        Event::Failed(BridgeError::Daemon(DaemonFault::StreamClosed {
            stream: "wait",
            ..
        }))
    )));
    assert_eq!(h.bridge.phase(), Phase::Exited);
    assert!(
        matches!(h.bridge.is_finished(), Some(Outcome::Failed(e)) if e.fault() == Fault::Daemon)
    );
}

#[test]
fn phase_follows_the_path() {
    let mut h = Harness::new(test_config());
    assert_eq!(h.bridge.phase(), Phase::Creating);
    h.run();
    assert_eq!(h.bridge.phase(), Phase::AwaitingVassal);
    h.vassal_connects(1);
    assert_eq!(h.bridge.phase(), Phase::Running);
    h.bridge.handle_signal(h.now);
    assert_eq!(h.bridge.phase(), Phase::Stopping);
    h.run();
    assert_eq!(h.bridge.phase(), Phase::Exited);
}

#[test]
fn a_container_the_daemon_no_longer_knows_ends_the_vassal_as_gone() {
    let mut h = Harness::running();
    h.daemon_stops();
    h.daemon.quirks.insert(Quirk::Podman);
    h.daemon.quirks.insert(Quirk::WaitNotFound);
    h.daemon_down = false;
    pass(&mut h, 2);
    assert!(
        h.noticed(|n| matches!(n, Notice::ContainerGone)),
        "{:?}",
        h.logs()
    );
    assert!(
        !h.noticed(|n| matches!(n, Notice::DaemonLost(e)
            if matches!(&**e, BridgeError::Daemon(DaemonFault::Refused { cause, .. }) if cause.is_not_found()))),
        "a daemon that answers is not lost: {:?}",
        h.logs()
    );
    assert_eq!(h.exit, Some(1));
    assert!(matches!(h.bridge.is_finished(), Some(Outcome::VassalLeft)));
}

#[test]
fn a_wait_that_ends_in_no_such_container_ends_the_vassal_as_gone() {
    let mut h = Harness::running();
    let conn = h.daemon.wait_conn.expect("waiting");
    let body = r#"{"Error":{"Message":"container c0ffee does not exist in database: no such container"},"StatusCode":-1}"#;
    let chunk = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    h.bridge.handle_docker_data(conn, chunk.as_bytes(), h.now);
    h.run();
    assert!(
        h.noticed(|n| matches!(n, Notice::ContainerGone)),
        "{:?}",
        h.logs()
    );
    assert!(matches!(h.bridge.is_finished(), Some(Outcome::VassalLeft)));
    assert!(
        !h.daemon.requests.iter().any(|r| r.starts_with("DELETE")),
        "nothing to remove"
    );
}

mod pull;
mod rollover;

/// Podman up to 5.8.2 can lose the exit of a container that exits at once: its
/// `next-exit` wait stays open and silent. The end of the container's output makes the
/// bridge ask again with `not-running`, which reports the exit; the vassal ends well
/// before the handoff deadline, with the container's status, and leaves nothing.
#[test]
fn an_exit_the_wait_never_reports_is_asked_again_once_the_output_ends() {
    let mut h = Harness::new(test_config());
    h.run();
    let lost_wait = h.daemon.wait_conn.expect("waiting");
    // uWSGI exits before connecting: its output ends, the next-exit wait says nothing.
    h.daemon.running = false;
    let attach = h.daemon.attach_conn.expect("attached");
    h.bridge.handle_docker_eof(attach, h.now);
    h.run();
    assert!(
        !h.daemon
            .targets
            .iter()
            .any(|t| t.contains("condition=not-running")),
        "not asked again before the grace"
    );
    h.advance(Duration::from_millis(1500));
    assert!(
        h.daemon
            .targets
            .iter()
            .any(|t| t.ends_with("/wait?condition=not-running")),
        "{:?}",
        h.daemon.targets
    );
    assert!(
        !h.open_conns.contains(&lost_wait),
        "the silent wait is closed"
    );
    assert_ne!(h.daemon.wait_conn, Some(lost_wait), "a new wait");
    h.container_exits(1);
    assert!(
        h.saw(|e| matches!(e, Event::ContainerExited { status: 1 })),
        "{:?}",
        h.logs()
    );
    h.assert_clean(1);
    assert!(matches!(
        h.bridge.is_finished(),
        Some(Outcome::ContainerExited(1))
    ));
}

/// A wait that reports the exit in time is not asked again.
#[test]
fn an_exit_reported_after_the_output_ends_asks_nothing_more() {
    let mut h = Harness::running();
    let attach = h.daemon.attach_conn.expect("attached");
    h.bridge.handle_docker_eof(attach, h.now);
    h.run();
    h.advance(Duration::from_millis(200));
    h.container_exits(0);
    h.advance(Duration::from_secs(2));
    assert!(
        !h.daemon.targets.iter().any(|t| t.contains("not-running")),
        "{:?}",
        h.daemon.targets
    );
    h.assert_clean(1);
}

/// The output ended, then the daemon broke off the wait too: re-attaching asks with
/// `not-running` itself, and the end-of-output timer opens no wait of its own (one that
/// would be left open). Found by the `lifecycle_ops` fuzz target.
#[test]
fn an_output_end_then_a_lost_daemon_leaves_one_wait_after_the_re_attach() {
    let mut h = Harness::running();
    let attach = h.daemon.attach_conn.take().expect("attached");
    h.bridge.handle_docker_eof(attach, h.now);
    h.run();
    let wait = h.daemon.wait_conn.take().expect("waiting");
    h.bridge.handle_docker_eof(wait, h.now);
    h.run();
    assert_eq!(h.bridge.phase(), Phase::Reattaching);
    h.advance(Duration::from_secs(1));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.bridge.phase(), Phase::Running, "{:#?}", h.logs());
    let waits = h
        .daemon
        .requests
        .iter()
        .filter(|r| r.ends_with("/wait"))
        .count();
    assert_eq!(
        waits, 2,
        "the first and the re-attach's: {:?}",
        h.daemon.targets
    );
    h.emperor_sends(&[EmperorMessage::Stop.to_byte()]);
    h.container_exits(0);
    h.advance(Duration::from_secs(10));
    h.assert_clean(0);
}

// ---- the start limit ----

#[test]
fn a_launch_holds_a_start_slot_from_before_create_until_start_is_answered() {
    let mut h = Harness::new(test_config());
    h.run();
    assert_eq!(h.daemon.requests[0], "GET /version");
    assert_eq!(h.daemon.requests[1..], START_UP);
    // Taken after /version (1 request sent), given back once start (the 5th) is answered.
    assert_eq!(h.slot_log, [("take", 1), ("release", 5)]);
    assert!(h.held_slots.is_empty());
    h.vassal_connects(7);
    assert_eq!(h.handoffs.len(), 1);
}

#[test]
fn with_every_start_slot_taken_create_waits_and_asks_again() {
    let mut config = test_config();
    config.debug = true;
    let mut h = Harness::new(config);
    h.free_slots = 0;
    h.run();
    assert_eq!(
        h.daemon.requests,
        ["GET /version"],
        "no create without a slot"
    );
    assert_eq!(h.bridge.poll_timeout(), Some(h.now + START_SLOT_RETRY));
    h.advance(START_SLOT_RETRY);
    assert_eq!(h.slot_log, [("busy", 1), ("busy", 1)]);
    assert_eq!(h.daemon.requests.len(), 1);
    h.free_slots = 1;
    h.advance(START_SLOT_RETRY);
    assert_eq!(h.daemon.requests[1..], START_UP);
    assert_eq!(h.slot_log.last(), Some(&("release", 5)));
    let waits = h.logs();
    let said = |text: &str| waits.iter().filter(|l| l.contains(text)).count();
    assert_eq!(
        said("every start slot is taken: waiting for one"),
        1,
        "{waits:#?}"
    );
    assert_eq!(said("took a start slot after 2 tries"), 1, "{waits:#?}");
    h.vassal_connects(7);
    assert_eq!(h.handoffs.len(), 1);
}

#[test]
fn a_stop_while_waiting_for_a_start_slot_creates_nothing() {
    let mut h = Harness::new(test_config());
    h.free_slots = 0;
    h.run();
    h.emperor_stops();
    assert_eq!(h.daemon.requests, ["GET /version"]);
    assert!(h.slot_log.iter().all(|(what, _)| *what == "busy"));
    h.assert_clean(0);
}

#[test]
fn a_refused_create_gives_its_start_slot_back() {
    let mut config = test_config();
    config.pull = crate::spec::PullPolicy::Never;
    let mut h = Harness::new(config);
    h.daemon.quirks.insert(Quirk::ImageMissing);
    h.run();
    assert!(h.failure().is_some());
    assert_eq!(h.slot_log, [("take", 1), ("release", 2)]);
    h.assert_clean(1);
}

#[test]
fn a_start_that_never_answers_gives_its_slot_back_when_the_vassal_fails() {
    let mut h = Harness::new(test_config());
    h.daemon.hang = vec!["POST /containers/c0ffee/start"];
    h.run();
    assert_eq!(h.held_slots.len(), 1, "held while start is unanswered");
    let limit = h.now + DEFAULT_REQUEST_TIMEOUT + h.bridge.shutdown_bound();
    h.run_clock_until(limit);
    assert!(h.held_slots.is_empty());
    h.assert_exited(1);
}

#[test]
fn without_a_start_slot_to_be_had_the_launch_goes_on_and_says_why() {
    let mut h = Harness::new(test_config());
    h.slots_fail = true;
    h.run();
    assert_eq!(h.daemon.requests[1..], START_UP);
    assert!(h.noticed(|n| matches!(n, Notice::StartSlotUnavailable(_))));
    let line = h
        .logs()
        .into_iter()
        .find(|l| l.contains("start slot"))
        .expect("said");
    assert!(line.contains("vassal app.ini"), "{line}");
    assert!(line.contains("UWSGIDOCKER_MAX_STARTS"), "{line}");
    assert!(line.contains("not ours"), "{line}");
    h.vassal_connects(7);
    assert_eq!(h.handoffs.len(), 1);
}
