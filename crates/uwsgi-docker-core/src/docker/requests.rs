//! Request building. CONTRACT: each `Api` method appends one whole HTTP/1.1 request to `out`.
//!
//! Requests are built as [`http::Request`]s and written out by hand: dockerd needs `Host`
//! (any value), JSON bodies need `Content-Type` and `Content-Length`, and bodiless requests
//! carry neither, since `/start` rejects a body. Ids, names and query values are
//! percent-encoded, so no vassal name can smuggle a path segment or a query parameter.
use super::ApiVersion;
use crate::plan::ContainerPlan;
use crate::spec::Protocol;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, UPGRADE, USER_AGENT};
use http::{HeaderValue, Method, Request};
use serde_json::{json, Map, Value};

/// Unversioned `GET /version`, sent once to negotiate.
pub fn version_request(out: &mut Vec<u8>) {
    write_request(&build(Method::GET, "/version".into(), None), out);
}

/// Request builder for one negotiated API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    pub version: ApiVersion,
}

impl Api {
    /// `min(ours, daemon's)`; an error when the daemon is older than [`ApiVersion::MINIMUM`].
    pub fn negotiate(daemon_max: ApiVersion) -> Result<Api, super::DaemonError> {
        if daemon_max < ApiVersion::MINIMUM {
            return Err(super::DaemonError::TooOld {
                daemon: daemon_max,
                minimum: ApiVersion::MINIMUM,
            });
        }
        Ok(Api {
            version: daemon_max.min(ApiVersion::OURS),
        })
    }

    /// `POST /containers/create?name=…` with the JSON of [`create_body`].
    pub fn create(&self, plan: &ContainerPlan, out: &mut Vec<u8>) {
        let target = format!(
            "{}/containers/create?name={}",
            self.prefix(),
            encode(&plan.container_name)
        );
        let body = create_body(plan).to_string().into_bytes();
        write_request(&build(Method::POST, target, Some(body)), out);
    }

    /// `POST /containers/{id}/attach?stream=1&stdout=1&stderr=1` with `Upgrade: tcp`.
    ///
    /// No stdin: its EOF would close the output streams. No `logs`: attaching before
    /// start already sees everything.
    pub fn attach(&self, id: &str, out: &mut Vec<u8>) {
        let target = format!("{}/attach?stream=1&stdout=1&stderr=1", self.container(id));
        let mut request = build(Method::POST, target, None);
        request.header(CONNECTION, "Upgrade").header(UPGRADE, "tcp");
        write_request(&request, out);
    }

    /// `POST /containers/{id}/wait?condition=next-exit`.
    pub fn wait_next_exit(&self, id: &str, out: &mut Vec<u8>) {
        let target = format!("{}/wait?condition=next-exit", self.container(id));
        write_request(&build(Method::POST, target, None), out);
    }

    /// `POST /containers/{id}/start`, no body.
    pub fn start(&self, id: &str, out: &mut Vec<u8>) {
        let target = format!("{}/start", self.container(id));
        write_request(&build(Method::POST, target, None), out);
    }

    /// `POST /containers/{id}/stop?t=N`.
    pub fn stop(&self, id: &str, timeout_secs: Option<u32>, out: &mut Vec<u8>) {
        let mut target = format!("{}/stop", self.container(id));
        if let Some(secs) = timeout_secs {
            target.push_str(&format!("?t={secs}"));
        }
        write_request(&build(Method::POST, target, None), out);
    }

    /// `POST /containers/{id}/kill?signal=S`.
    pub fn kill(&self, id: &str, signal: &str, out: &mut Vec<u8>) {
        let target = format!("{}/kill?signal={}", self.container(id), encode(signal));
        write_request(&build(Method::POST, target, None), out);
    }

    /// `DELETE /containers/{id}?force=1&v=1`.
    pub fn remove(&self, id: &str, out: &mut Vec<u8>) {
        let target = format!("{}?force=1&v=1", self.container(id));
        write_request(&build(Method::DELETE, target, None), out);
    }

    /// `GET /containers/json?all=1&filters={"label":["k=v",…]}`.
    ///
    /// Every pair must match exactly (`k=v`); an empty list lists every container.
    pub fn list_by_labels(&self, labels: &[(&str, &str)], out: &mut Vec<u8>) {
        let mut target = format!("{}/containers/json?all=1", self.prefix());
        if !labels.is_empty() {
            let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let filters = json!({ "label": pairs }).to_string();
            target.push_str("&filters=");
            target.push_str(&encode(&filters));
        }
        write_request(&build(Method::GET, target, None), out);
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect(&self, id: &str, out: &mut Vec<u8>) {
        let target = format!("{}/json", self.container(id));
        write_request(&build(Method::GET, target, None), out);
    }

    fn prefix(&self) -> String {
        format!("/v{}", self.version)
    }

    fn container(&self, id: &str) -> String {
        format!("{}/containers/{}", self.prefix(), encode(id))
    }
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
}

impl Outgoing {
    fn header(&mut self, name: http::HeaderName, value: &'static str) -> &mut Self {
        self.request
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
        self
    }
}

fn build(method: Method, target: String, json_body: Option<Vec<u8>>) -> Outgoing {
    let mut request = Request::new(Vec::new());
    *request.method_mut() = method;
    // `target` is a literal path plus `encode`d parts, so it parses unless it is longer
    // than `http::Uri` allows (64 KiB); the request line is written from `target` itself.
    if let Ok(uri) = http::Uri::try_from(target.as_str()) {
        *request.uri_mut() = uri;
    }
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
    Outgoing { target, request }
}

/// Writes the request as HTTP/1.1; header names in the usual `Title-Case` for readable
/// dry runs.
fn write_request(outgoing: &Outgoing, out: &mut Vec<u8>) {
    let Outgoing { target, request } = outgoing;
    out.extend_from_slice(format!("{} {target} HTTP/1.1\r\n", request.method()).as_bytes());
    for (name, value) in request.headers() {
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
    out.extend_from_slice(request.body());
}

fn port_key(port: u16, protocol: Protocol) -> String {
    match protocol {
        Protocol::Tcp => format!("{port}/tcp"),
        Protocol::Udp => format!("{port}/udp"),
    }
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
    if let Some(timeout) = spec.stop_timeout {
        config.insert("StopTimeout".into(), json!(timeout));
    }

    let mut host = Map::new();
    let mut binds = vec![format!(
        "{}:{}",
        plan.proxy_host_path, plan.proxy_container_path
    )];
    binds.extend(spec.mounts.iter().map(|m| {
        let suffix = if m.read_only { ":ro" } else { "" };
        format!("{}:{}{suffix}", m.host, m.container)
    }));
    host.insert("Binds".into(), json!(binds));

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

    config.insert("HostConfig".into(), Value::Object(host));
    Value::Object(config)
}
