//! Request building: each request as an [`http::Request`], or as HTTP/1.1 bytes.
//!
//! Requests are built as [`http::Request`]s and written out by hand: dockerd needs `Host`
//! (any value), JSON bodies need `Content-Type` and `Content-Length`, and bodiless requests
//! carry neither, since `/start` rejects a body. Ids, names and query values are
//! percent-encoded, so no vassal name can smuggle a path segment or a query parameter.
use super::ApiVersion;
use crate::plan::{ContainerPlan, LAUNCHER_CONTAINER_PATH};
use crate::spec::{HandoffMode, Protocol};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, UPGRADE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request};
use serde_json::{json, Map, Value};

/// Unversioned `GET /version`, sent once to negotiate, appended to `out` as HTTP/1.1
/// bytes ([`Api::version_request`] is the same request as an [`http::Request`]).
pub fn version_request(out: &mut Vec<u8>) {
    version().write(out);
}

/// A request [`http::Request`] cannot represent: its target is longer than an
/// [`http::Uri`] may be (64 KiB), which only a huge container id or label list makes.
/// The byte forms of [`Api`]'s methods write such a request anyway; the daemon refuses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request target, in bytes, is too long for an [`http::Uri`].
    #[error("the request target is {len} bytes long, more than an HTTP request URI may be")]
    TargetTooLong {
        /// The target's length in bytes.
        len: usize,
    },
}

/// Request builder for one negotiated API version.
///
/// Every method has two forms: `NAME_request` returns an `http::Request<Vec<u8>>` (for
/// an HTTP client of your own, or to look at), and `NAME` appends the same request as
/// HTTP/1.1 bytes to `out` (the form to write to the daemon's socket as it is).
///
/// ```
/// use uwsgi_docker_core::docker::{to_bytes, Api, ApiVersion};
///
/// let api = Api::negotiate(ApiVersion { major: 1, minor: 41 })?;
/// let request = api.start_request("4f2a")?;
/// assert_eq!(request.method(), "POST");
/// assert_eq!(request.uri(), "/v1.41/containers/4f2a/start");
/// assert_eq!(request.headers()["host"], "docker");
///
/// let mut bytes = Vec::new();
/// api.start("4f2a", &mut bytes);
/// let mut typed = Vec::new();
/// to_bytes(&request, &mut typed);
/// assert_eq!(bytes, typed);
/// assert!(bytes.starts_with(b"POST /v1.41/containers/4f2a/start HTTP/1.1\r\nHost: docker\r\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Api {
    /// The API version in every request's path (`/v1.41/…`).
    pub version: ApiVersion,
}

/// The first word of [`Api::cache_line`].
const CACHE_TAG: &str = "uwsgi-docker-api";

impl Api {
    /// `min(ours, daemon's newest)`, from what [`super::parse_version`] read from the
    /// daemon's `/version` reply (or just the daemon's newest [`ApiVersion`]).
    ///
    /// # Errors
    ///
    /// [`super::DaemonError::TooOld`], naming both versions, when the daemon is older
    /// than [`ApiVersion::MINIMUM`]; [`super::DaemonError::TooNew`] when the daemon's
    /// minimum is above [`ApiVersion::OURS`] (it would refuse every request we send).
    pub fn negotiate(daemon: impl Into<super::DaemonApi>) -> Result<Api, super::DaemonError> {
        let daemon = daemon.into();
        if daemon.newest < ApiVersion::MINIMUM {
            return Err(super::DaemonError::TooOld {
                daemon: daemon.newest,
                minimum: ApiVersion::MINIMUM,
            });
        }
        let version = daemon.newest.min(ApiVersion::OURS);
        if let Some(minimum) = daemon.minimum.filter(|&minimum| minimum > version) {
            return Err(super::DaemonError::TooNew {
                daemon_minimum: minimum,
                ours: ApiVersion::OURS,
            });
        }
        Ok(Api { version })
    }

    /// An `Api` for `version` as it is, without negotiating (for dry runs, tests, or a
    /// version already known).
    pub fn with_version(version: ApiVersion) -> Api {
        Api { version }
    }

    /// The line a runtime keeps to remember this negotiation for `daemon` (any text that
    /// changes when the daemon is restarted or replaced: its socket's path, device, inode
    /// and change time), so that the next bridge need not ask `/version`:
    /// `uwsgi-docker-api <version> <daemon>`.
    pub fn cache_line(&self, daemon: &str) -> String {
        format!(
            "{CACHE_TAG} {} {}\n",
            self.version,
            daemon.replace('\n', " ")
        )
    }

    /// The negotiation a [`cache_line`](Self::cache_line) remembers, when it was made with
    /// this very `daemon` and names a version we would still negotiate; `None` for anything
    /// else (another daemon, an unknown format, a version out of our range).
    pub fn from_cache_line(line: &[u8], daemon: &str) -> Option<Api> {
        let line = std::str::from_utf8(line).ok()?.strip_suffix('\n')?;
        let rest = line.strip_prefix(CACHE_TAG)?.strip_prefix(' ')?;
        let (version, named) = rest.split_once(' ')?;
        let version = ApiVersion::parse(version)?;
        let in_range = (ApiVersion::MINIMUM..=ApiVersion::OURS).contains(&version);
        (named == daemon.replace('\n', " ") && in_range).then_some(Api { version })
    }

    /// Unversioned `GET /version`, the request to send before there is an `Api`.
    pub fn version_request() -> Request<Vec<u8>> {
        // A literal target always fits.
        version().request
    }

    /// `POST /containers/create?name=…` with the JSON of [`create_body`]; expects 201
    /// ([`super::parse_create`]).
    pub fn create(&self, plan: &ContainerPlan, out: &mut Vec<u8>) {
        self.create_outgoing(plan).write(out);
    }

    /// [`create`](Self::create) as an [`http::Request`].
    ///
    /// # Errors
    ///
    /// [`RequestError::TargetTooLong`] (see there).
    pub fn create_request(&self, plan: &ContainerPlan) -> Result<Request<Vec<u8>>, RequestError> {
        self.create_outgoing(plan).into_request()
    }

    fn create_outgoing(&self, plan: &ContainerPlan) -> Outgoing {
        let target = format!(
            "{}/containers/create?name={}",
            self.prefix(),
            encode(&plan.container_name)
        );
        let body = create_body(plan).to_string().into_bytes();
        build(Method::POST, target, Some(body))
    }

    /// `POST /containers/{id}/attach?stream=1&stdout=1&stderr=1` with `Upgrade: tcp`;
    /// expects `101 UPGRADED` ([`super::parse_attach`]), then the container's output on
    /// the same connection until it closes ([`crate::attach::Demuxer`]).
    ///
    /// No stdin: its EOF would close the output streams. No `logs`: attaching before
    /// start already sees everything.
    pub fn attach(&self, id: &str, out: &mut Vec<u8>) {
        self.attach_outgoing(id).write(out);
    }

    /// [`attach`](Self::attach) as an [`http::Request`].
    ///
    /// # Errors
    ///
    /// [`RequestError::TargetTooLong`] (see there).
    pub fn attach_request(&self, id: &str) -> Result<Request<Vec<u8>>, RequestError> {
        self.attach_outgoing(id).into_request()
    }

    fn attach_outgoing(&self, id: &str) -> Outgoing {
        let target = format!("{}/attach?stream=1&stdout=1&stderr=1", self.container(id));
        let mut request = build(Method::POST, target, None);
        request.header(CONNECTION, "Upgrade").header(UPGRADE, "tcp");
        request
    }

    /// `POST /containers/{id}/wait?condition=next-exit`: its 200 head comes at once (the
    /// wait is armed: now start the container), its body `{"StatusCode":n}` when the
    /// container exits ([`super::parse_wait_body`]).
    pub fn wait_next_exit(&self, id: &str, out: &mut Vec<u8>) {
        self.wait_outgoing(id).write(out);
    }

    /// [`wait_next_exit`](Self::wait_next_exit) as an [`http::Request`].
    ///
    /// # Errors
    ///
    /// [`RequestError::TargetTooLong`] (see there).
    pub fn wait_next_exit_request(&self, id: &str) -> Result<Request<Vec<u8>>, RequestError> {
        self.wait_outgoing(id).into_request()
    }

    fn wait_outgoing(&self, id: &str) -> Outgoing {
        let target = format!("{}/wait?condition=next-exit", self.container(id));
        build(Method::POST, target, None)
    }

    /// `POST /containers/{id}/wait?condition=not-running`: answers at once for a container
    /// that is not running, else at its exit (re-arming a wait after losing the daemon).
    pub fn wait_not_running(&self, id: &str, out: &mut Vec<u8>) {
        self.wait_not_running_outgoing(id).write(out);
    }

    /// [`wait_not_running`](Self::wait_not_running) as an [`http::Request`].
    ///
    /// # Errors
    ///
    /// [`RequestError::TargetTooLong`] (see there).
    pub fn wait_not_running_request(&self, id: &str) -> Result<Request<Vec<u8>>, RequestError> {
        self.wait_not_running_outgoing(id).into_request()
    }

    fn wait_not_running_outgoing(&self, id: &str) -> Outgoing {
        let target = format!("{}/wait?condition=not-running", self.container(id));
        build(Method::POST, target, None)
    }

    /// `POST /containers/{id}/start`, no body; expects 204, or 304 when it already runs
    /// ([`super::parse_empty`]).
    pub fn start(&self, id: &str, out: &mut Vec<u8>) {
        self.start_outgoing(id).write(out);
    }

    /// [`start`](Self::start) as an [`http::Request`].
    ///
    /// # Errors
    ///
    /// [`RequestError::TargetTooLong`] (see there).
    pub fn start_request(&self, id: &str) -> Result<Request<Vec<u8>>, RequestError> {
        self.start_outgoing(id).into_request()
    }

    fn start_outgoing(&self, id: &str) -> Outgoing {
        let target = format!("{}/start", self.container(id));
        build(Method::POST, target, None)
    }

    /// `POST /containers/{id}/stop?t=N`: always with `t`, in seconds, as the create body
    /// always has `StopTimeout` (Podman takes a missing one as 0 and kills at once). Pass
    /// [`VassalSpec::stop_timeout_secs`](crate::spec::VassalSpec::stop_timeout_secs).
    /// Expects 204, or 304 when it is not running ([`super::parse_empty`]); the reply
    /// comes once the container has stopped, up to `timeout_secs` later.
    pub fn stop(&self, id: &str, timeout_secs: u32, out: &mut Vec<u8>) {
        self.stop_outgoing(id, timeout_secs).write(out);
    }

    /// [`stop`](Self::stop) as an [`http::Request`].
    ///
    /// # Errors
    ///
    /// [`RequestError::TargetTooLong`] (see there).
    pub fn stop_request(
        &self,
        id: &str,
        timeout_secs: u32,
    ) -> Result<Request<Vec<u8>>, RequestError> {
        self.stop_outgoing(id, timeout_secs).into_request()
    }

    fn stop_outgoing(&self, id: &str, timeout_secs: u32) -> Outgoing {
        let target = format!("{}/stop?t={timeout_secs}", self.container(id));
        build(Method::POST, target, None)
    }

    /// `POST /containers/{id}/kill?signal=S` (`SIGINT`, `SIGKILL`, …); expects 204
    /// ([`super::parse_empty`]).
    pub fn kill(&self, id: &str, signal: &str, out: &mut Vec<u8>) {
        self.kill_outgoing(id, signal).write(out);
    }

    /// [`kill`](Self::kill) as an [`http::Request`].
    ///
    /// # Errors
    ///
    /// [`RequestError::TargetTooLong`] (see there).
    pub fn kill_request(&self, id: &str, signal: &str) -> Result<Request<Vec<u8>>, RequestError> {
        self.kill_outgoing(id, signal).into_request()
    }

    fn kill_outgoing(&self, id: &str, signal: &str) -> Outgoing {
        let target = format!("{}/kill?signal={}", self.container(id), encode(signal));
        build(Method::POST, target, None)
    }

    /// `DELETE /containers/{id}?force=1&v=1`; expects 204. A 404 means it is gone already
    /// (an `AutoRemove` container removes itself), a 409 that a removal is in progress.
    pub fn remove(&self, id: &str, out: &mut Vec<u8>) {
        self.remove_outgoing(id).write(out);
    }

    /// [`remove`](Self::remove) as an [`http::Request`].
    ///
    /// # Errors
    ///
    /// [`RequestError::TargetTooLong`] (see there).
    pub fn remove_request(&self, id: &str) -> Result<Request<Vec<u8>>, RequestError> {
        self.remove_outgoing(id).into_request()
    }

    fn remove_outgoing(&self, id: &str) -> Outgoing {
        let target = format!("{}?force=1&v=1", self.container(id));
        build(Method::DELETE, target, None)
    }

    /// `GET /containers/json?all=1&filters={"label":["k=v",…]}`; expects 200
    /// ([`super::parse_list`]).
    ///
    /// Every pair must match exactly (`k=v`); an empty list lists every container.
    pub fn list_by_labels(&self, labels: &[(&str, &str)], out: &mut Vec<u8>) {
        self.list_outgoing(labels).write(out);
    }

    /// [`list_by_labels`](Self::list_by_labels) as an [`http::Request`].
    ///
    /// # Errors
    ///
    /// [`RequestError::TargetTooLong`] (see there).
    pub fn list_by_labels_request(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Request<Vec<u8>>, RequestError> {
        self.list_outgoing(labels).into_request()
    }

    fn list_outgoing(&self, labels: &[(&str, &str)]) -> Outgoing {
        let mut target = format!("{}/containers/json?all=1", self.prefix());
        if !labels.is_empty() {
            let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let filters = json!({ "label": pairs }).to_string();
            target.push_str("&filters=");
            target.push_str(&encode(&filters));
        }
        build(Method::GET, target, None)
    }

    /// `GET /containers/{id}/json` (an id or a name); expects 200
    /// ([`super::parse_inspect`]), or 404 when there is no such container.
    pub fn inspect(&self, id: &str, out: &mut Vec<u8>) {
        self.inspect_outgoing(id).write(out);
    }

    /// [`inspect`](Self::inspect) as an [`http::Request`].
    ///
    /// # Errors
    ///
    /// [`RequestError::TargetTooLong`] (see there).
    pub fn inspect_request(&self, id: &str) -> Result<Request<Vec<u8>>, RequestError> {
        self.inspect_outgoing(id).into_request()
    }

    fn inspect_outgoing(&self, id: &str) -> Outgoing {
        let target = format!("{}/json", self.container(id));
        build(Method::GET, target, None)
    }

    /// `GET /containers/{id}/stats?stream=false&one-shot=true`: one sample of the
    /// container's memory and CPU ([`super::parse_stats`]), without the second sample the
    /// daemon otherwise waits for (`one-shot`, API 1.41; older daemons ignore it).
    pub fn stats(&self, id: &str, out: &mut Vec<u8>) {
        let target = format!("{}/stats?stream=false&one-shot=true", self.container(id));
        build(Method::GET, target, None).write(out);
    }

    /// `POST /images/create?fromImage=…&tag=…` for `image` (see [`super::ImageRef`]),
    /// with `X-Registry-Auth` when `auth` is given
    /// ([`super::RegistryCredentials::header_for`]); expects 200 and a progress stream
    /// ([`super::PullProgress`]).
    pub fn pull(&self, image: &str, auth: Option<&str>, out: &mut Vec<u8>) {
        let image = super::ImageRef::parse(image);
        let target = format!(
            "{}/images/create?fromImage={}&tag={}",
            self.prefix(),
            encode(image.repository),
            encode(image.tag)
        );
        let mut outgoing = build(Method::POST, target, None);
        if let Some(Ok(mut value)) = auth.map(HeaderValue::from_str) {
            value.set_sensitive(true);
            let headers = outgoing.request.headers_mut();
            headers.insert(http::HeaderName::from_static("x-registry-auth"), value);
        }
        outgoing.write(out);
    }

    /// `GET /images/{name}/json`; expects 200 ([`super::parse_image_id`]), or 404.
    pub fn inspect_image(&self, name: &str, out: &mut Vec<u8>) {
        let target = format!("{}/images/{}/json", self.prefix(), encode(name));
        build(Method::GET, target, None).write(out);
    }

    fn prefix(&self) -> String {
        format!("/v{}", self.version)
    }

    fn container(&self, id: &str) -> String {
        format!("{}/containers/{}", self.prefix(), encode(id))
    }
}

fn version() -> Outgoing {
    build(Method::GET, "/version".into(), None)
}

/// Percent-encodes everything but RFC 3986's unreserved characters, which makes the text
/// safe as one path segment or one query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One request: the target as written on the request line, method, headers and body.
struct Outgoing {
    target: String,
    request: Request<Vec<u8>>,
    /// `target` parsed as the request's URI (it is too long otherwise).
    target_fits: bool,
}

impl Outgoing {
    fn header(&mut self, name: http::HeaderName, value: &'static str) -> &mut Self {
        self.request
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
        self
    }

    fn into_request(self) -> Result<Request<Vec<u8>>, RequestError> {
        if !self.target_fits {
            return Err(RequestError::TargetTooLong {
                len: self.target.len(),
            });
        }
        Ok(self.request)
    }

    /// Writes from `target` itself, so that even a target no URI can hold goes out whole.
    fn write(&self, out: &mut Vec<u8>) {
        let request = &self.request;
        write_http(
            request.method(),
            &self.target,
            request.headers(),
            request.body(),
            out,
        );
    }
}

fn build(method: Method, target: String, json_body: Option<Vec<u8>>) -> Outgoing {
    let mut request = Request::new(Vec::new());
    *request.method_mut() = method;
    // `target` is a literal path plus `encode`d parts, so it parses unless it is longer
    // than `http::Uri` allows (64 KiB).
    let target_fits = match http::Uri::try_from(target.as_str()) {
        Ok(uri) => {
            *request.uri_mut() = uri;
            true
        }
        Err(_) => false,
    };
    let headers = request.headers_mut();
    headers.insert(HOST, HeaderValue::from_static("docker"));
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("uwsgi-docker/", env!("CARGO_PKG_VERSION"))),
    );
    if let Some(body) = json_body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        *request.body_mut() = body;
    }
    Outgoing {
        target,
        request,
        target_fits,
    }
}

/// Appends `request` to `out` as HTTP/1.1: the request line (its URI's path and query),
/// the headers (names in the usual `Title-Case`, for readable dry runs) and the body,
/// which is sent as it is: set `Content-Length` yourself for a request you built.
///
/// This is how every [`Api`] method's byte form is written, so
/// `to_bytes(&api.start_request(id)?, out)` appends the same bytes as `api.start(id, out)`.
pub fn to_bytes(request: &Request<Vec<u8>>, out: &mut Vec<u8>) {
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    write_http(
        request.method(),
        target,
        request.headers(),
        request.body(),
        out,
    );
}

fn write_http(method: &Method, target: &str, headers: &HeaderMap, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{method} {target} HTTP/1.1\r\n").as_bytes());
    for (name, value) in headers {
        let mut upper = true;
        for byte in name.as_str().bytes() {
            out.push(if upper {
                byte.to_ascii_uppercase()
            } else {
                byte
            });
            upper = byte == b'-';
        }
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

fn port_key(port: u16, protocol: Protocol) -> String {
    match protocol {
        Protocol::Tcp => format!("{port}/tcp"),
        Protocol::Udp => format!("{port}/udp"),
    }
}

/// What to tell the vassal's author when the host path of `mount` does not exist: the
/// attribute, and that it is not created for them. The runtime checks before create too,
/// since not every engine refuses (Podman's compat API creates a missing source).
pub fn missing_mount_source(mount: &crate::spec::Mount) -> String {
    format!(
        "docker-mount = {}:{}{}: the host path {} does not exist. Create it first: a missing mount source is not created for you",
        mount.host,
        mount.container,
        if mount.read_only { ":ro" } else { "" },
        mount.host
    )
}

/// Why create failed, for the vassal's log: the daemon's words, and for a bind mount
/// whose host path is missing (`HostConfig.Mounts` does not create it, as `Binds` did),
/// which attribute names it and what to do.
pub fn create_failure(error: &super::DaemonError, plan: &ContainerPlan) -> String {
    format!(
        "cannot create the container: {error}{}",
        create_failure_hint(error, plan)
    )
}

/// The part of [`create_failure`] after the daemon's words: `; ` and which attribute is at
/// fault and what to do, or nothing when that cannot be told.
pub fn create_failure_hint(error: &super::DaemonError, plan: &ContainerPlan) -> String {
    if let Some(path) = unreachable_own_path(error, plan) {
        return format!(
            "; the engine cannot reach {path}: a rootless engine resolves bind-mount sources as its own user. Put the proxy sockets and the launcher where that user can reach them: UWSGIDOCKER_SOCKET_DIR and UWSGIDOCKER_RUNTIME_DIR under a directory of mode 0711, with UWSGIDOCKER_SOCKET_MODE=666"
        );
    }
    const MISSING: &str = "bind source path does not exist: ";
    let missing = match error {
        super::DaemonError::Status { message, .. } => message
            .find(MISSING)
            .and_then(|at| message.get(at + MISSING.len()..))
            .map(str::trim),
        _ => None,
    };
    let Some(path) = missing else {
        return String::new();
    };
    let mount = plan.spec.mounts.iter().find(|m| m.host == path);
    match mount {
        Some(m) => format!("; {}", missing_mount_source(m)),
        None if path == plan.proxy_host_path => format!(
            "; the proxy socket {path} vanished before the container was created: did something remove it?"
        ),
        None => format!("; the host path {path} does not exist"),
    }
}

/// The proxy socket or launcher path a "permission denied" names: rootless Podman cannot
/// look into the Emperor's private runtime directory ("making volume mountpoint for volume
/// PATH: mkdir …: permission denied").
fn unreachable_own_path<'a>(
    error: &super::DaemonError,
    plan: &'a ContainerPlan,
) -> Option<&'a str> {
    let super::DaemonError::Status { message, .. } = error else {
        return None;
    };
    if !message.contains("permission denied") {
        return None;
    }
    std::iter::once(plan.proxy_host_path.as_str())
        .chain(plan.launcher_host_path.as_deref())
        .find(|path| !path.is_empty() && message.contains(path))
}

/// The JSON body of the create request.
///
/// Every host setting sits in `HostConfig` (top-level `Memory` and friends are ignored
/// since API 1.24, and `/start` takes no body). Optional settings appear only when set.
/// `AutoRemove` is on: the Emperor may SIGKILL the bridge (curse tolerance) before it can
/// remove the container, and then the container must still go away by itself once the
/// vassal exits. So after exit, inspect may answer 404: that means "gone", as wanted.
pub fn create_body(plan: &ContainerPlan) -> Value {
    let spec = &plan.spec;
    let mut config = Map::new();
    config.insert("Image".into(), json!(spec.image));
    config.insert("Cmd".into(), json!(plan.cmd));
    config.insert("Env".into(), json!(plan.env));
    let optional = [
        ("WorkingDir", &spec.workdir),
        ("User", &spec.user),
        ("Hostname", &spec.hostname),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            config.insert(key.into(), json!(value));
        }
    }
    config.insert("Tty".into(), json!(spec.tty));
    config.insert("OpenStdin".into(), json!(false));
    config.insert("AttachStdin".into(), json!(false));
    config.insert("AttachStdout".into(), json!(true));
    config.insert("AttachStderr".into(), json!(true));
    let labels: Map<String, Value> = plan
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    config.insert("Labels".into(), Value::Object(labels));
    if !spec.stop_signal.is_empty() {
        config.insert("StopSignal".into(), json!(spec.stop_signal));
    }
    config.insert("StopTimeout".into(), json!(spec.stop_timeout_secs()));

    // `Mounts`, not `Binds`: a `Binds` entry is `src:dst[:opts]`, which a `:` in a path
    // (a vassal named `app:zerg.ini`, a vassal directory with a `:`) breaks. And unlike
    // `Binds`, a missing source is an error instead of a new root-owned directory.
    let mut host = Map::new();
    let bind = |source: &str, target: &str, read_only: bool| json!({"Type": "bind", "Source": source, "Target": target, "ReadOnly": read_only});
    let mut mounts = vec![bind(
        &plan.proxy_host_path,
        &plan.proxy_container_path,
        false,
    )];
    if let (HandoffMode::Launcher, Some(launcher)) = (plan.handoff, &plan.launcher_host_path) {
        mounts.push(bind(launcher, LAUNCHER_CONTAINER_PATH, true));
    }
    mounts.extend(
        spec.mounts
            .iter()
            .map(|m| bind(&m.host, &m.container, m.read_only)),
    );
    host.insert("Mounts".into(), Value::Array(mounts));

    if !spec.ports.is_empty() {
        let mut exposed = Map::new();
        let mut bindings = Map::new();
        for port in &spec.ports {
            let key = port_key(port.container_port, port.protocol);
            exposed.insert(key.clone(), json!({}));
            let binding = json!({
                "HostIp": port.host_ip.clone().unwrap_or_default(),
                "HostPort": port.host_port.map(|p| p.to_string()).unwrap_or_default(),
            });
            if let Value::Array(list) = bindings.entry(key).or_insert_with(|| json!([])) {
                list.push(binding);
            }
        }
        config.insert("ExposedPorts".into(), Value::Object(exposed));
        host.insert("PortBindings".into(), Value::Object(bindings));
    }
    if let Some(mode) = &spec.network_mode {
        host.insert("NetworkMode".into(), json!(mode));
    }
    if let Some(memory) = spec.memory {
        host.insert("Memory".into(), json!(memory));
        // Docker's MemorySwap is memory plus swap; without Memory it means nothing.
        if let Some(swap) = spec.swap {
            host.insert("MemorySwap".into(), json!(memory.saturating_add(swap)));
        }
    }
    if let Some(nano_cpus) = spec.nano_cpus {
        host.insert("NanoCpus".into(), json!(nano_cpus));
    }
    if let Some(pids) = spec.pids_limit {
        host.insert("PidsLimit".into(), json!(pids));
    }
    if !spec.dns.is_empty() {
        host.insert("Dns".into(), json!(spec.dns));
    }
    if spec.read_only {
        host.insert("ReadonlyRootfs".into(), json!(true));
    }
    if !spec.cap_drop.is_empty() {
        host.insert("CapDrop".into(), json!(spec.cap_drop));
    }
    if !spec.cap_add.is_empty() {
        host.insert("CapAdd".into(), json!(spec.cap_add));
    }
    if spec.no_new_privileges {
        host.insert("SecurityOpt".into(), json!(["no-new-privileges"]));
    }
    if !spec.tmpfs.is_empty() {
        let tmpfs: Map<String, Value> = spec
            .tmpfs
            .iter()
            .map(|(path, options)| (path.clone(), json!(options)))
            .collect();
        host.insert("Tmpfs".into(), Value::Object(tmpfs));
    }
    host.insert("AutoRemove".into(), json!(true));
    host.insert("Init".into(), json!(false));
    if spec.health.is_set() {
        config.insert("Healthcheck".into(), health_config(&spec.health));
    }

    config.insert("HostConfig".into(), Value::Object(host));
    Value::Object(config)
}

/// Docker's `HealthConfig` (in the container config, not `HostConfig`): durations in
/// nanoseconds; a field left out (or 0) keeps the image's `HEALTHCHECK` value.
fn health_config(health: &crate::spec::HealthSpec) -> Value {
    let mut out = Map::new();
    if let Some(test) = &health.test {
        out.insert("Test".into(), json!(test.to_docker()));
    }
    for (key, value) in [
        ("Interval", health.interval_ns),
        ("Timeout", health.timeout_ns),
        ("StartPeriod", health.start_period_ns),
    ] {
        if let Some(ns) = value {
            out.insert(key.into(), json!(ns));
        }
    }
    if let Some(retries) = health.retries {
        out.insert("Retries".into(), json!(retries));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cache_line_is_read_back_only_for_the_same_daemon_and_a_version_in_range() {
        let api = Api::with_version(ApiVersion {
            major: 1,
            minor: 41,
        });
        let daemon = "/run/docker.sock 0:25:1765000000";
        let line = api.cache_line(daemon);
        assert_eq!(
            line,
            "uwsgi-docker-api 1.41 /run/docker.sock 0:25:1765000000\n"
        );
        assert_eq!(Api::from_cache_line(line.as_bytes(), daemon), Some(api));
        // Restarted (a new socket), or another daemon: negotiate again.
        assert_eq!(
            Api::from_cache_line(line.as_bytes(), "/run/docker.sock 0:26:1765000009"),
            None
        );
        for bad in [
            "uwsgi-docker-api 1.41 /run/docker.sock 0:25:1765000000",
            "uwsgi-docker-api 1.29 /run/docker.sock 0:25:1765000000\n",
            "uwsgi-docker-api 1.99 /run/docker.sock 0:25:1765000000\n",
            "uwsgi-docker-api x /run/docker.sock 0:25:1765000000\n",
            "other 1.41 /run/docker.sock 0:25:1765000000\n",
            "",
        ] {
            assert_eq!(
                Api::from_cache_line(bad.as_bytes(), daemon),
                None,
                "{bad:?}"
            );
        }
        // A daemon text with a newline cannot forge a second line.
        let odd = "a\nb";
        let line = api.cache_line(odd);
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(Api::from_cache_line(line.as_bytes(), odd), Some(api));
    }

    use super::*;
    use crate::spec::{Mount, PortMapping, VassalSpec};
    use proptest::prelude::*;

    const V141: Api = Api {
        version: ApiVersion {
            major: 1,
            minor: 41,
        },
    };

    /// A request parsed back: method, target, headers (lower-cased names), body.
    #[derive(Debug)]
    struct Parsed {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Parsed {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Parses exactly one request from `bytes`, checking its framing.
    fn parse(bytes: &[u8]) -> Parsed {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut slots);
        let head_len = match request.parse(bytes).unwrap() {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial => panic!("partial request"),
        };
        assert_eq!(request.version, Some(1));
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let body = bytes[head_len..].to_vec();
        let parsed = Parsed {
            method: request.method.unwrap().to_owned(),
            target: request.path.unwrap().to_owned(),
            headers,
            body,
        };
        assert_eq!(parsed.header("host"), Some("docker"));
        let length = parsed.header("content-length").map(|v| v.parse().unwrap());
        assert_eq!(length.unwrap_or(0), parsed.body.len());
        parsed
    }

    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn minimal_spec() -> VassalSpec {
        VassalSpec {
            handoff: HandoffMode::Native,
            ..VassalSpec::with_image("psgi001")
        }
    }

    fn plan_for(spec: VassalSpec) -> ContainerPlan {
        ContainerPlan {
            spec,
            vassal_name: "app.ini".into(),
            name_prefix: None,
            container_name: "app.ini".into(),
            labels: vec![
                ("io.uwsgi-docker.managed".into(), "1".into()),
                ("io.uwsgi-docker.vassal".into(), "app.ini".into()),
            ],
            proxy_host_path: "/etc/uwsgi/vassals/app.ini.sock".into(),
            proxy_container_path: "/run/uwsgi-docker/proxy.sock".into(),
            proxy_in_private_dir: false,
            cmd: vec!["uwsgi".into(), "--ini".into(), "emperor://app.ini".into()],
            env: vec!["UWSGI_EMPEROR_PROXY=/run/uwsgi-docker/proxy.sock".into()],
            handoff: HandoffMode::Native,
            passes_socket: false,
            launcher_host_path: None,
        }
    }

    fn port(ip: Option<&str>, host: Option<u16>, ctr: u16, protocol: Protocol) -> PortMapping {
        PortMapping {
            host_ip: ip.map(str::to_owned),
            host_port: host,
            container_port: ctr,
            protocol,
        }
    }

    #[test]
    fn negotiates_the_lower_version() {
        let v = |minor| ApiVersion { major: 1, minor };
        assert_eq!(Api::negotiate(v(41)).unwrap().version, v(41));
        assert_eq!(Api::negotiate(v(51)).unwrap().version, ApiVersion::OURS);
        assert_eq!(Api::negotiate(v(30)).unwrap().version, v(30));
        assert_eq!(
            Api::negotiate(v(23)),
            Err(crate::docker::DaemonError::TooOld {
                daemon: v(23),
                minimum: ApiVersion::MINIMUM
            })
        );
    }

    #[test]
    fn negotiates_within_the_daemons_range() {
        let v = |minor| ApiVersion { major: 1, minor };
        let range = |newest, minimum| crate::docker::DaemonApi {
            newest: v(newest),
            minimum: Some(v(minimum)),
        };
        // Docker 29.0–29.2 (newest 1.52, minimum 1.44), 29.3 (minimum 1.40), 28.5, 20.10,
        // Podman 4.3 (1.41, minimum 1.24).
        for (newest, minimum, want) in [
            (52, 44, 44),
            (54, 40, 44),
            (51, 24, 44),
            (41, 12, 41),
            (41, 24, 41),
        ] {
            assert_eq!(
                Api::negotiate(range(newest, minimum)).unwrap().version,
                v(want)
            );
        }
        // A daemon whose minimum is above our newest would refuse every request.
        let err = Api::negotiate(range(60, 45)).expect_err("minimum 1.45 is above ours");
        assert_eq!(
            err,
            crate::docker::DaemonError::TooNew {
                daemon_minimum: v(45),
                ours: ApiVersion::OURS
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("API 1.45")
                && message.contains("API 1.44")
                && message.contains("upgrade uwsgi-docker"),
            "{message}"
        );
        // A minimum above the newest (a confused daemon) is refused, not sent.
        assert!(Api::negotiate(range(41, 42)).is_err());
    }

    #[test]
    fn a_daemon_without_wait_next_exit_is_refused_naming_both_versions() {
        // API 1.29 (Docker 17.05) has every create field but not `wait?condition=`.
        let old = ApiVersion {
            major: 1,
            minor: 29,
        };
        let err = Api::negotiate(old).expect_err("1.29 is too old");
        let message = err.to_string();
        assert!(
            message.contains("API 1.29") && message.contains("API 1.30 or newer"),
            "{message}"
        );
        assert!(message.contains("upgrade"), "{message}");
    }

    #[test]
    fn version_is_unversioned() {
        let mut out = Vec::new();
        version_request(&mut out);
        let parsed = parse(&out);
        assert_eq!(
            (parsed.method.as_str(), parsed.target.as_str()),
            ("GET", "/version")
        );
        assert!(out.starts_with(b"GET /version HTTP/1.1\r\nHost: docker\r\n"));
    }

    #[test]
    fn every_endpoint_has_its_method_and_target() {
        type Write = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(Write, &str, &str)> = vec![
            (
                Box::new(|o| V141.attach("abc", o)),
                "POST",
                "/v1.41/containers/abc/attach?stream=1&stdout=1&stderr=1",
            ),
            (
                Box::new(|o| V141.wait_next_exit("abc", o)),
                "POST",
                "/v1.41/containers/abc/wait?condition=next-exit",
            ),
            (
                Box::new(|o| V141.wait_not_running("abc", o)),
                "POST",
                "/v1.41/containers/abc/wait?condition=not-running",
            ),
            (
                Box::new(|o| V141.start("abc", o)),
                "POST",
                "/v1.41/containers/abc/start",
            ),
            (
                Box::new(|o| V141.stop("abc", 7, o)),
                "POST",
                "/v1.41/containers/abc/stop?t=7",
            ),
            (
                Box::new(|o| V141.stop("abc", 0, o)),
                "POST",
                "/v1.41/containers/abc/stop?t=0",
            ),
            (
                Box::new(|o| V141.kill("abc", "SIGKILL", o)),
                "POST",
                "/v1.41/containers/abc/kill?signal=SIGKILL",
            ),
            (
                Box::new(|o| V141.remove("abc", o)),
                "DELETE",
                "/v1.41/containers/abc?force=1&v=1",
            ),
            (
                Box::new(|o| V141.inspect("abc", o)),
                "GET",
                "/v1.41/containers/abc/json",
            ),
            (
                Box::new(|o| V141.list_by_labels(&[], o)),
                "GET",
                "/v1.41/containers/json?all=1",
            ),
        ];
        for (write, method, target) in cases {
            let mut out = Vec::new();
            write(&mut out);
            let parsed = parse(&out);
            assert_eq!(
                (parsed.method.as_str(), parsed.target.as_str()),
                (method, target)
            );
            // Bodiless: no body, no Content-Type, no Content-Length (start rejects bodies).
            assert!(parsed.body.is_empty(), "{target}");
            assert_eq!(parsed.header("content-type"), None, "{target}");
            assert_eq!(parsed.header("content-length"), None, "{target}");
        }
    }

    #[test]
    fn typed_requests_are_the_byte_requests() {
        type Pair<'a> = (
            Box<dyn Fn(&mut Vec<u8>) + 'a>,
            Result<Request<Vec<u8>>, RequestError>,
        );
        let plan = plan_for(minimal_spec());
        let labels = [("io.uwsgi-docker.vassal", "my app.ini")];
        let cases: Vec<Pair<'_>> = vec![
            (Box::new(version_request), Ok(Api::version_request())),
            (
                Box::new(|o| V141.create(&plan, o)),
                V141.create_request(&plan),
            ),
            (
                Box::new(|o| V141.attach("a b", o)),
                V141.attach_request("a b"),
            ),
            (
                Box::new(|o| V141.wait_next_exit("abc", o)),
                V141.wait_next_exit_request("abc"),
            ),
            (
                Box::new(|o| V141.wait_not_running("abc", o)),
                V141.wait_not_running_request("abc"),
            ),
            (
                Box::new(|o| V141.start("abc", o)),
                V141.start_request("abc"),
            ),
            (
                Box::new(|o| V141.stop("abc", 7, o)),
                V141.stop_request("abc", 7),
            ),
            (
                Box::new(|o| V141.kill("abc", "SIGINT", o)),
                V141.kill_request("abc", "SIGINT"),
            ),
            (
                Box::new(|o| V141.remove("abc", o)),
                V141.remove_request("abc"),
            ),
            (
                Box::new(|o| V141.inspect("abc", o)),
                V141.inspect_request("abc"),
            ),
            (
                Box::new(|o| V141.list_by_labels(&labels, o)),
                V141.list_by_labels_request(&labels),
            ),
        ];
        for (write, typed) in cases {
            let mut bytes = Vec::new();
            write(&mut bytes);
            let typed = typed.unwrap();
            let parsed = parse(&bytes);
            assert_eq!(typed.method().as_str(), parsed.method);
            assert_eq!(typed.uri().to_string(), parsed.target);
            assert_eq!(typed.body(), &parsed.body);
            let mut written = Vec::new();
            to_bytes(&typed, &mut written);
            assert_eq!(written, bytes, "{}", parsed.target);
        }
    }

    #[test]
    fn a_target_no_uri_can_hold_is_an_error_as_a_request_and_whole_as_bytes() {
        let id = "x".repeat(70_000);
        assert_eq!(
            V141.start_request(&id).err(),
            Some(RequestError::TargetTooLong {
                len: format!("/v1.41/containers/{id}/start").len()
            })
        );
        let mut out = Vec::new();
        V141.start(&id, &mut out);
        assert_eq!(parse(&out).target, format!("/v1.41/containers/{id}/start"));
    }

    #[test]
    fn attach_asks_for_an_upgrade() {
        let mut out = Vec::new();
        V141.attach("abc", &mut out);
        let parsed = parse(&out);
        assert_eq!(parsed.header("upgrade"), Some("tcp"));
        assert_eq!(parsed.header("connection"), Some("Upgrade"));
    }

    #[test]
    fn requests_append() {
        let mut out = Vec::new();
        V141.start("a1", &mut out);
        let first = out.len();
        V141.start("b2", &mut out);
        assert_eq!(parse(&out[..first]).target, "/v1.41/containers/a1/start");
        assert_eq!(parse(&out[first..]).target, "/v1.41/containers/b2/start");
    }

    #[test]
    fn list_filters_are_encoded_json() {
        let mut out = Vec::new();
        V141.list_by_labels(
            &[
                ("io.uwsgi-docker.managed", "1"),
                ("io.uwsgi-docker.vassal", "my app.ini"),
            ],
            &mut out,
        );
        let parsed = parse(&out);
        let query = parsed
            .target
            .strip_prefix("/v1.41/containers/json?all=1&filters=")
            .unwrap();
        assert!(!query.contains(['{', '"', ' ', '&']));
        let filters: Value = serde_json::from_str(&decode(query)).unwrap();
        assert_eq!(
            filters,
            json!({"label": ["io.uwsgi-docker.managed=1", "io.uwsgi-docker.vassal=my app.ini"]})
        );
    }

    #[test]
    fn create_request_carries_the_json_body() {
        let mut out = Vec::new();
        let mut plan = plan_for(minimal_spec());
        plan.container_name = "x.ini_zerg-1a2b".into();
        V141.create(&plan, &mut out);
        let parsed = parse(&out);
        assert_eq!(parsed.method, "POST");
        assert_eq!(
            parsed.target,
            "/v1.41/containers/create?name=x.ini_zerg-1a2b"
        );
        assert_eq!(parsed.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&parsed.body).unwrap();
        assert_eq!(body, create_body(&plan));
    }

    #[test]
    fn minimal_create_body() {
        let body = create_body(&plan_for(minimal_spec()));
        assert_eq!(
            body,
            json!({
                "Image": "psgi001",
                "Cmd": ["uwsgi", "--ini", "emperor://app.ini"],
                "Env": ["UWSGI_EMPEROR_PROXY=/run/uwsgi-docker/proxy.sock"],
                "Tty": true,
                "OpenStdin": false,
                "AttachStdin": false,
                "AttachStdout": true,
                "AttachStderr": true,
                "Labels": {"io.uwsgi-docker.managed": "1", "io.uwsgi-docker.vassal": "app.ini"},
                "StopSignal": "SIGINT",
                "StopTimeout": 10,
                "HostConfig": {
                    "Mounts": [{
                        "Type": "bind",
                        "Source": "/etc/uwsgi/vassals/app.ini.sock",
                        "Target": "/run/uwsgi-docker/proxy.sock",
                        "ReadOnly": false,
                    }],
                    "AutoRemove": true,
                    "Init": false,
                },
            })
        );
    }

    #[test]
    fn full_create_body() {
        let mut spec = minimal_spec();
        spec.ports = vec![
            port(None, Some(9001), 3031, Protocol::Tcp),
            port(Some("127.0.0.1"), Some(5001), 5000, Protocol::Tcp),
            port(Some("::1"), None, 3031, Protocol::Tcp),
            port(None, Some(53), 53, Protocol::Udp),
        ];
        spec.workdir = Some("/srv/app".into());
        spec.user = Some("www-data".into());
        spec.hostname = Some("app1".into());
        spec.mounts = vec![
            Mount {
                host: "/srv/data".into(),
                container: "/data".into(),
                read_only: true,
                explicit_mode: true,
            },
            Mount {
                host: "/srv/logs".into(),
                container: "/logs".into(),
                read_only: false,
                explicit_mode: false,
            },
        ];
        spec.network_mode = Some("host".into());
        spec.memory = Some(256 << 20);
        spec.swap = Some(64 << 20);
        spec.nano_cpus = Some(1_500_000_000);
        spec.pids_limit = Some(100);
        spec.dns = vec!["1.1.1.1".into(), "8.8.8.8".into()];
        spec.read_only = true;
        spec.cap_drop = vec!["ALL".into()];
        spec.tmpfs = vec![
            ("/tmp".into(), "size=64m".into()),
            ("/run".into(), String::new()),
        ];
        spec.stop_signal = "SIGQUIT".into();
        spec.stop_timeout = Some(20);
        spec.tty = false;
        let body = create_body(&plan_for(spec));
        assert_eq!(body["WorkingDir"], "/srv/app");
        assert_eq!(body["User"], "www-data");
        assert_eq!(body["Hostname"], "app1");
        assert_eq!(body["Tty"], false);
        assert_eq!(body["StopSignal"], "SIGQUIT");
        assert_eq!(body["StopTimeout"], 20);
        assert_eq!(
            body["ExposedPorts"],
            json!({"3031/tcp": {}, "5000/tcp": {}, "53/udp": {}})
        );
        let host = &body["HostConfig"];
        assert_eq!(
            host["PortBindings"],
            json!({
                "3031/tcp": [{"HostIp": "", "HostPort": "9001"}, {"HostIp": "::1", "HostPort": ""}],
                "5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "5001"}],
                "53/udp": [{"HostIp": "", "HostPort": "53"}],
            })
        );
        assert_eq!(
            host["Mounts"],
            json!([
                bind(
                    "/etc/uwsgi/vassals/app.ini.sock",
                    "/run/uwsgi-docker/proxy.sock",
                    false
                ),
                bind("/srv/data", "/data", true),
                bind("/srv/logs", "/logs", false),
            ])
        );
        assert!(host.get("Binds").is_none());
        assert_eq!(host["NetworkMode"], "host");
        assert_eq!(host["Memory"], 256u64 << 20);
        assert_eq!(host["MemorySwap"], 320u64 << 20);
        assert_eq!(host["NanoCpus"], 1_500_000_000u64);
        assert_eq!(host["PidsLimit"], 100);
        assert_eq!(host["Dns"], json!(["1.1.1.1", "8.8.8.8"]));
        assert_eq!(host["ReadonlyRootfs"], true);
        assert_eq!(host["CapDrop"], json!(["ALL"]));
        assert_eq!(host["Tmpfs"], json!({"/tmp": "size=64m", "/run": ""}));
        assert_eq!(host["AutoRemove"], true);
        assert_eq!(host["Init"], false);
        // Host settings never leak to the top level, where dockerd ignores them.
        for key in ["Memory", "Mounts", "PortBindings", "Dns", "NetworkMode"] {
            assert!(body.get(key).is_none(), "{key}");
        }
    }

    #[test]
    fn a_health_check_is_the_container_configs_healthcheck() {
        let body = create_body(&plan_for(minimal_spec()));
        assert!(
            body.get("Healthcheck").is_none(),
            "the image's own check stays"
        );
        let mut spec = minimal_spec();
        spec.health.test = Some(crate::spec::HealthTest::Shell("exit 0".into()));
        spec.health.interval_ns = Some(2_000_000_000);
        spec.health.retries = Some(2);
        spec.health.restart = true;
        let body = create_body(&plan_for(spec));
        assert_eq!(
            body["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "exit 0"], "Interval": 2_000_000_000u64, "Retries": 2})
        );
        assert!(body["HostConfig"].get("Healthcheck").is_none());
    }

    #[test]
    fn cap_add_and_no_new_privileges_go_to_host_config() {
        let body = create_body(&plan_for(minimal_spec()));
        assert!(body["HostConfig"].get("CapAdd").is_none());
        assert!(body["HostConfig"].get("SecurityOpt").is_none());
        let mut spec = minimal_spec();
        spec.cap_drop = vec!["ALL".into()];
        spec.cap_add = vec!["NET_BIND_SERVICE".into(), "CHOWN".into()];
        spec.no_new_privileges = true;
        let body = create_body(&plan_for(spec));
        let host = &body["HostConfig"];
        assert_eq!(host["CapDrop"], json!(["ALL"]));
        assert_eq!(host["CapAdd"], json!(["NET_BIND_SERVICE", "CHOWN"]));
        assert_eq!(host["SecurityOpt"], json!(["no-new-privileges"]));
        for key in ["CapAdd", "SecurityOpt"] {
            assert!(body.get(key).is_none(), "{key} outside HostConfig");
        }
    }

    #[test]
    fn launcher_mode_binds_the_launcher_read_only_and_nothing_of_the_socket() {
        let mut plan = plan_for(minimal_spec());
        plan.spec.socket = Some(crate::spec::ListenAddress::Unix("/run/app/app.sock".into()));
        plan.handoff = HandoffMode::Launcher;
        plan.passes_socket = true;
        plan.launcher_host_path = Some("/usr/local/bin/uwsgi-docker-launcher".into());
        let body = create_body(&plan);
        assert_eq!(
            body["HostConfig"]["Mounts"],
            json!([
                bind(
                    "/etc/uwsgi/vassals/app.ini.sock",
                    "/run/uwsgi-docker/proxy.sock",
                    false
                ),
                bind(
                    "/usr/local/bin/uwsgi-docker-launcher",
                    "/.uwsgi-docker-launcher",
                    true
                ),
            ])
        );
        // The socket is passed as an fd: no port is published, no directory is shared.
        assert!(body["HostConfig"].get("PortBindings").is_none());
        assert!(body.get("ExposedPorts").is_none());
        // Native mode never binds a launcher, even when one is known.
        plan.handoff = HandoffMode::Native;
        assert_eq!(
            create_body(&plan)["HostConfig"]["Mounts"],
            json!([bind(
                "/etc/uwsgi/vassals/app.ini.sock",
                "/run/uwsgi-docker/proxy.sock",
                false
            )])
        );
    }

    fn bind(source: &str, target: &str, read_only: bool) -> Value {
        json!({"Type": "bind", "Source": source, "Target": target, "ReadOnly": read_only})
    }

    #[test]
    fn paths_with_colons_stay_whole() {
        // `Binds` is `src:dst[:opts]`: a `:` in a vassal name or directory broke it.
        let mut plan = plan_for(minimal_spec());
        plan.proxy_host_path = "/srv/v:1/app:zerg.ini.sock".into();
        plan.proxy_container_path = "/app_zerg.ini-0123.sock".into();
        plan.handoff = HandoffMode::Launcher;
        plan.launcher_host_path = Some("/opt/a:b/uwsgi-docker-launcher".into());
        plan.spec.mounts = vec![Mount {
            host: "/srv/data".into(),
            container: "/data".into(),
            read_only: true,
            explicit_mode: true,
        }];
        let host = &create_body(&plan)["HostConfig"];
        assert_eq!(
            host["Mounts"],
            json!([
                bind(
                    "/srv/v:1/app:zerg.ini.sock",
                    "/app_zerg.ini-0123.sock",
                    false
                ),
                bind(
                    "/opt/a:b/uwsgi-docker-launcher",
                    "/.uwsgi-docker-launcher",
                    true
                ),
                bind("/srv/data", "/data", true),
            ])
        );
        assert!(host.get("Binds").is_none());
    }

    #[test]
    fn the_stop_timeout_is_always_explicit() {
        let mut spec = minimal_spec();
        assert_eq!(create_body(&plan_for(spec.clone()))["StopTimeout"], 10);
        assert_eq!(
            spec.stop_timeout_secs(),
            crate::spec::DEFAULT_STOP_TIMEOUT_SECS
        );
        spec.stop_timeout = Some(0);
        assert_eq!(create_body(&plan_for(spec.clone()))["StopTimeout"], 0);
        let mut out = Vec::new();
        V141.stop("abc", spec.stop_timeout_secs(), &mut out);
        assert_eq!(parse(&out).target, "/v1.41/containers/abc/stop?t=0");
    }

    #[test]
    fn a_missing_mount_source_is_explained() {
        let mut spec = minimal_spec();
        spec.mounts = vec![Mount {
            host: "/srv/missing".into(),
            container: "/data".into(),
            read_only: true,
            explicit_mode: true,
        }];
        let plan = plan_for(spec);
        let dockerd = |message: &str| crate::docker::DaemonError::Status {
            status: 400,
            message: message.into(),
        };
        let text = create_failure(
            &dockerd("invalid mount config for type \"bind\": bind source path does not exist: /srv/missing"),
            &plan,
        );
        assert!(
            text.starts_with(
                "cannot create the container: docker daemon answered 400: invalid mount config"
            ),
            "{text}"
        );
        assert!(
            text.contains("docker-mount = /srv/missing:/data:ro: the host path /srv/missing does not exist. Create it first"),
            "{text}"
        );
        let text = create_failure(
            &dockerd("invalid mount config for type \"bind\": bind source path does not exist: /etc/uwsgi/vassals/app.ini.sock"),
            &plan,
        );
        assert!(
            text.contains("the proxy socket /etc/uwsgi/vassals/app.ini.sock vanished"),
            "{text}"
        );
        // Anything else is the daemon's words alone.
        assert_eq!(
            create_failure(&dockerd("Minimum memory limit allowed is 6MB"), &plan),
            "cannot create the container: docker daemon answered 400: Minimum memory limit allowed is 6MB"
        );
    }

    #[test]
    fn swap_alone_sets_nothing_and_memory_alone_leaves_swap_to_docker() {
        let mut spec = minimal_spec();
        spec.swap = Some(1);
        let body = create_body(&plan_for(spec.clone()));
        assert!(body["HostConfig"].get("MemorySwap").is_none());
        spec.swap = None;
        spec.memory = Some(1 << 30);
        let body = create_body(&plan_for(spec));
        assert_eq!(body["HostConfig"]["Memory"], 1u64 << 30);
        assert!(body["HostConfig"].get("MemorySwap").is_none());
    }

    proptest! {
        #[test]
        fn odd_ids_stay_one_path_segment(id in "\\PC{1,40}", signal in "\\PC{0,12}") {
            let mut out = Vec::new();
            V141.kill(&id, &signal, &mut out);
            let parsed = parse(&out);
            let (path, query) = parsed.target.split_once('?').unwrap();
            let segments: Vec<&str> = path.split('/').collect();
            prop_assert_eq!(segments.len(), 5);
            prop_assert_eq!(decode(segments[3]), id.clone());
            prop_assert_eq!(segments[4], "kill");
            let value = query.strip_prefix("signal=").unwrap();
            prop_assert!(!value.contains(['&', '=', '?', '#']));
            prop_assert_eq!(decode(value), signal);
            // http::Uri accepts every target we write.
            prop_assert!(http::Uri::try_from(parsed.target.as_str()).is_ok());
            for write in [Api::start, Api::inspect, Api::remove, Api::attach, Api::wait_next_exit] {
                let mut out = Vec::new();
                write(&V141, &id, &mut out);
                let parsed = parse(&out);
                prop_assert_eq!(decode(parsed.target.split('/').nth(3).unwrap().split('?').next().unwrap()), id.clone());
            }
        }

        #[test]
        fn odd_names_and_labels_round_trip(
            name in "\\PC{1,40}",
            labels in prop::collection::btree_map("[a-z.-]{1,12}", "\\PC{0,20}", 0..4),
        ) {
            let labels: Vec<(String, String)> = labels.into_iter().collect();
            let mut plan = plan_for(minimal_spec());
            plan.container_name = name.clone();
            plan.labels = labels.clone();
            let mut out = Vec::new();
            V141.create(&plan, &mut out);
            let parsed = parse(&out);
            let encoded = parsed.target.strip_prefix("/v1.41/containers/create?name=").unwrap();
            prop_assert_eq!(decode(encoded), name);
            let body: Value = serde_json::from_slice(&parsed.body).unwrap();
            let expected: Map<String, Value> =
                labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            prop_assert_eq!(&body["Labels"], &Value::Object(expected));

            let pairs: Vec<(&str, &str)> =
                labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut out = Vec::new();
            V141.list_by_labels(&pairs, &mut out);
            let parsed = parse(&out);
            if let Some(query) = parsed.target.strip_prefix("/v1.41/containers/json?all=1&filters=") {
                let filters: Value = serde_json::from_str(&decode(query)).unwrap();
                let expected: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                prop_assert_eq!(filters, json!({ "label": expected }));
            } else {
                prop_assert!(labels.is_empty());
            }
        }
    }

    /// Rootless Podman 4.3's answer when the proxy socket sits in the Emperor's private
    /// (0700) runtime directory: the hint names the path and the settings that fix it.
    #[test]
    fn a_rootless_engine_that_cannot_reach_our_paths_is_explained() {
        let mut plan = plan_for(minimal_spec());
        plan.proxy_host_path = "/run/uwsgi-docker/e1/app.ini.sock".into();
        plan.launcher_host_path = Some("/run/uwsgi-docker/uwsgi-docker-launcher-f0e9".into());
        let podman = |message: &str| crate::docker::DaemonError::Status {
            status: 500,
            message: message.into(),
        };
        for (message, path) in [
            ("make cli opts(): making volume mountpoint for volume /run/uwsgi-docker/e1/app.ini.sock: mkdir /run/uwsgi-docker/e1: permission denied", "/run/uwsgi-docker/e1/app.ini.sock"),
            ("make cli opts(): making volume mountpoint for volume /run/uwsgi-docker/uwsgi-docker-launcher-f0e9: mkdir /run/uwsgi-docker/uwsgi-docker-launcher-f0e9: permission denied", "/run/uwsgi-docker/uwsgi-docker-launcher-f0e9"),
        ] {
            let text = create_failure(&podman(message), &plan);
            assert!(
                text.contains(&format!("the engine cannot reach {path}"))
                    && text.contains("UWSGIDOCKER_SOCKET_DIR")
                    && text.contains("UWSGIDOCKER_SOCKET_MODE=666"),
                "{text}"
            );
        }
        // Another path denied is the daemon's words alone.
        let other = create_failure(&podman("open /etc/secret: permission denied"), &plan);
        assert!(!other.contains("cannot reach"), "{other}");
    }
}
