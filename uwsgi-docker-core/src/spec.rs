//! The vassal spec: the `[emperor]` section of a vassal file, parsed and validated.
//!
//! Only `[emperor]` is interpreted; every other section belongs to uWSGI and is ignored,
//! so any file uWSGI accepts does not fail here because of them.
//!
//! The section is read the way uWSGI's own ini reader (`core/ini.c`) reads it, not the way a
//! generic ini library does: one entry per line, split at the first `=`, a line without `=` is
//! a key with an empty value, `;`/`#` start a comment only at the start of a line, there are no
//! quotes, escapes or continuation lines, and repeated keys are all kept in file order. A
//! generic parser (rust-ini included) disagrees on several of these: it lets a bare key swallow
//! the next line, splits keys at `:`, and strips quotes. So the Emperor and we would see
//! different attributes for the same file; we follow uWSGI.
use core::fmt;
use core::net::IpAddr;

mod values;

pub use values::{format_size, parse_size};

/// A `docker-port` mapping, `hostport:ctrport`, `hostip:hostport:ctrport`, optional `/udp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// Host address to bind; `None` means all addresses.
    pub host_ip: Option<String>,
    /// Host port; `None` (written as an empty host port) lets Docker choose.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The suffix Docker uses in `ExposedPorts` and `PortBindings` keys (`3031/tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for PortMapping {
    /// The canonical `docker-port` form: `[HOSTIP:]HOSTPORT:CTRPORT/PROTO`, IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host_ip {
            Some(ip) if ip.contains(':') => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        if let Some(port) = self.host_port {
            write!(f, "{port}")?;
        }
        write!(f, ":{}/{}", self.container_port, self.protocol.as_str())
    }
}

/// A `docker-mount`: `/host:/ctr[:ro|rw]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host: String,
    pub container: String,
    pub read_only: bool,
}

/// `docker-socket`: where the host binds the listening socket passed into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// An absolute unix socket path.
    Unix(String),
    /// `ip:port` or `[ipv6]:port`; an empty ip means all addresses. The ip is stored
    /// without brackets.
    Tcp { ip: String, port: u16 },
}

/// `docker-proxy`: `host[:ctr]`, both absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPaths {
    pub host: String,
    pub container: Option<String>,
}

/// How the fds reach uWSGI inside the container (`docker-handoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandoffMode {
    /// Not given: [`Launcher`](Self::Launcher) when a listening socket is passed
    /// (`docker-socket`, or the Emperor's on-demand socket), else [`Native`](Self::Native).
    /// So the default works with the uWSGI 2.0.x every image has.
    #[default]
    Auto,
    /// Straight to uWSGI's `UWSGI_EMPEROR_PROXY`. A 2.0.x vassal takes only the control
    /// and config fds: with a socket to pass, this needs uWSGI master in the image.
    Native,
    /// Through the static launcher, which also puts the listening socket on fd 0, where
    /// every uWSGI finds it.
    Launcher,
}

impl VassalSpec {
    /// The handoff this vassal gets: a socket goes with it when `docker-socket` is set or
    /// the Emperor gave an on-demand socket (`inherited_socket`), and `Auto` follows that.
    pub fn handoff_for(&self, inherited_socket: bool) -> (HandoffMode, bool) {
        let passes_socket = self.socket.is_some() || inherited_socket;
        (self.handoff.resolve(passes_socket), passes_socket)
    }
}

impl HandoffMode {
    /// The mode actually used: `Auto` resolved by whether a socket is passed.
    pub fn resolve(self, passes_socket: bool) -> HandoffMode {
        match self {
            HandoffMode::Auto if passes_socket => HandoffMode::Launcher,
            HandoffMode::Auto => HandoffMode::Native,
            mode => mode,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HandoffMode::Auto => "auto",
            HandoffMode::Native => "native",
            HandoffMode::Launcher => "launcher",
        }
    }
}

/// Everything the `[emperor]` section of one Docker vassal asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct VassalSpec {
    pub image: String,
    pub socket: Option<ListenAddress>,
    pub ports: Vec<PortMapping>,
    pub workdir: Option<String>,
    pub mounts: Vec<Mount>,
    pub network_mode: Option<String>,
    pub hostname: Option<String>,
    pub proxy: Option<ProxyPaths>,
    /// `docker-env`, in file order, as `(key, value)`.
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    /// Bytes.
    pub memory: Option<u64>,
    /// Bytes of swap on top of memory, as the seed means it.
    pub swap: Option<u64>,
    pub cidfile: Option<String>,
    pub dns: Vec<String>,
    pub labels: Vec<(String, String)>,
    /// `docker-cpus` in billionths of a CPU (Docker's NanoCpus).
    pub nano_cpus: Option<u64>,
    pub pids_limit: Option<i64>,
    pub read_only: bool,
    pub cap_drop: Vec<String>,
    /// `docker-tmpfs`: `(path, options)`; options may be empty.
    pub tmpfs: Vec<(String, String)>,
    /// Default `SIGINT`: uWSGI 2.0 treats SIGTERM as a brutal reload.
    pub stop_signal: String,
    /// Seconds; `None` leaves Docker's default.
    pub stop_timeout: Option<u32>,
    /// Default on, as in the original.
    pub tty: bool,
    /// The uWSGI binary inside the image; default `uwsgi`.
    pub uwsgi: String,
    pub handoff: HandoffMode,
    /// `docker-socket-owner`: `USER[:GROUP]` (names or numbers) for a unix `docker-socket`,
    /// resolved on the host by the runtime.
    pub socket_owner: Option<String>,
}

impl VassalSpec {
    /// A spec with every attribute at its default, for `image`.
    pub fn with_image(image: impl Into<String>) -> VassalSpec {
        VassalSpec {
            image: image.into(),
            socket: None,
            ports: Vec::new(),
            workdir: None,
            mounts: Vec::new(),
            network_mode: None,
            hostname: None,
            proxy: None,
            env: Vec::new(),
            user: None,
            memory: None,
            swap: None,
            cidfile: None,
            dns: Vec::new(),
            labels: Vec::new(),
            nano_cpus: None,
            pids_limit: None,
            read_only: false,
            cap_drop: Vec::new(),
            tmpfs: Vec::new(),
            stop_signal: DEFAULT_STOP_SIGNAL.into(),
            stop_timeout: None,
            tty: true,
            uwsgi: DEFAULT_UWSGI.into(),
            handoff: HandoffMode::Auto,
            socket_owner: None,
        }
    }
}

/// uWSGI 2.0 reloads brutally on SIGTERM; SIGINT stops it.
pub const DEFAULT_STOP_SIGNAL: &str = "SIGINT";
/// The uWSGI binary looked up on the image's `PATH`.
pub const DEFAULT_UWSGI: &str = "uwsgi";
/// Label keys under this prefix are ours; `docker-label` may not set them.
pub const RESERVED_LABEL_PREFIX: &str = "io.uwsgi-docker.";

/// Every `[emperor]` attribute we understand, for docs, `check` and suggestions.
pub const KNOWN_KEYS: &[&str] = &[
    "docker-image",
    "docker-socket",
    "docker-port",
    "docker-workdir",
    "docker-mount",
    "docker-network-mode",
    "docker-hostname",
    "docker-proxy",
    "docker-env",
    "docker-user",
    "docker-memory",
    "docker-swap",
    "docker-cidfile",
    "docker-dns",
    "docker-label",
    "docker-cpus",
    "docker-pids-limit",
    "docker-read-only",
    "docker-cap-drop",
    "docker-tmpfs",
    "docker-stop-signal",
    "docker-stop-timeout",
    "docker-tty",
    "docker-uwsgi",
    "docker-handoff",
    "docker-socket-owner",
];

/// Keys that may appear more than once; every other key is single-valued.
pub const REPEATABLE_KEYS: &[&str] = &[
    "docker-port",
    "docker-mount",
    "docker-env",
    "docker-dns",
    "docker-label",
    "docker-cap-drop",
    "docker-tmpfs",
];

/// A vassal file or attribute we refuse; names the vassal, key and value, and says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("vassal {vassal}: the file is not UTF-8 text (byte {offset}); save it as UTF-8")]
    NotUtf8 { vassal: String, offset: usize },
    #[error("vassal {vassal}: cannot parse the ini text: {reason}")]
    Syntax { vassal: String, reason: String },
    /// An unknown `docker-*` key; `suggestion` is the nearest known key.
    #[error("vassal {vassal}: unknown attribute {key} = {value:?}{}", suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_default())]
    UnknownKey {
        vassal: String,
        key: String,
        value: String,
        suggestion: Option<String>,
    },
    #[error(
        "vassal {vassal}: {key} is given more than once ({first:?}, then {second:?}); keep one"
    )]
    Repeated {
        vassal: String,
        key: String,
        first: String,
        second: String,
    },
    #[error("vassal {vassal}: bad {key} = {value:?}: {expected}")]
    BadValue {
        vassal: String,
        key: String,
        value: String,
        expected: String,
    },
    #[error("vassal {vassal}: {key} is required when {because}")]
    Missing {
        vassal: String,
        key: String,
        because: String,
    },
}

/// Emperor-level settings: from the plugin's options or the runtime's flags and env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmperorSettings {
    /// Path of dockerd's unix socket; default `/var/run/docker.sock`, or `DOCKER_HOST=unix://…`.
    pub daemon_socket: String,
    /// Where proxy sockets go instead of beside the vassal file (the seed's `docker-socket-dir`).
    pub socket_dir: Option<String>,
    /// Refuse vassals without a `docker-image`.
    pub docker_required: bool,
    pub debug: bool,
    /// The Emperor's `chmod-socket`, applied to sockets we bind; `None` means 0600.
    pub socket_mode: Option<u32>,
}

impl Default for EmperorSettings {
    fn default() -> Self {
        EmperorSettings {
            daemon_socket: "/var/run/docker.sock".into(),
            socket_dir: None,
            docker_required: false,
            debug: false,
            socket_mode: None,
        }
    }
}

/// An Emperor-level setting we refuse (the operator's environment, not a vassal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("DOCKER_HOST={value:?}: only unix sockets are supported; use unix:///path/to/docker.sock or unset DOCKER_HOST")]
    UnsupportedDockerHost { value: String },
    #[error("DOCKER_HOST={value:?}: the unix socket path must be absolute, as in unix:///var/run/docker.sock")]
    RelativeDockerHost { value: String },
}

impl EmperorSettings {
    /// Defaults, with the daemon socket taken from `DOCKER_HOST` when it is set.
    ///
    /// Sans-IO: `get` looks an environment variable up (`|k| std::env::var(k).ok()`).
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<EmperorSettings, SettingsError> {
        let mut settings = EmperorSettings::default();
        if let Some(socket) = docker_host_socket(get("DOCKER_HOST").as_deref())? {
            settings.daemon_socket = socket;
        }
        Ok(settings)
    }
}

/// The socket path in a `DOCKER_HOST` value; `None` when unset or empty (use the default).
pub fn docker_host_socket(value: Option<&str>) -> Result<Option<String>, SettingsError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let Some(path) = value.strip_prefix("unix://") else {
        return Err(SettingsError::UnsupportedDockerHost {
            value: value.into(),
        });
    };
    if !path.starts_with('/') {
        return Err(SettingsError::RelativeDockerHost {
            value: value.into(),
        });
    }
    Ok(Some(path.into()))
}

/// One `key = value` line of the `[emperor]` section, both trimmed.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: String,
}

/// The `[emperor]` entries of `text`, in file order.
///
/// The section's lines are cut out on bytes, so that only they have to be UTF-8 and valid
/// ini: uWSGI's own reader accepts other sections that no ini library would (any encoding,
/// flag lines without `=`, …). The `ini` crate then reads the keys and values, with quotes,
/// escapes and continuation lines off, because uWSGI interprets none of them.
fn emperor_entries(vassal: &str, text: &[u8]) -> Result<Vec<Entry>, SpecError> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let (mut offset, body) = match text.strip_prefix(BOM) {
        Some(rest) => (BOM.len(), rest),
        None => (0, text),
    };
    let mut in_emperor = false;
    let mut section = String::from("[emperor]\n");
    for raw in body.split(|&b| b == b'\n') {
        let line_start = offset;
        offset += raw.len() + 1;
        let line = raw.trim_ascii();
        if line.is_empty() || line.starts_with(b";") || line.starts_with(b"#") {
            continue;
        }
        if let Some(header) = line.strip_prefix(b"[") {
            // uWSGI drops the last character, which should be `]`.
            let name = header.strip_suffix(b"]").unwrap_or(header);
            in_emperor = name == b"emperor";
            continue;
        }
        if !in_emperor {
            continue;
        }
        let line = core::str::from_utf8(line).map_err(|e| SpecError::NotUtf8 {
            vassal: vassal.into(),
            offset: line_start + leading_ws(raw) + e.valid_up_to(),
        })?;
        section.push_str(line);
        // uWSGI reads a line without `=` as a key with an empty value.
        if !line.contains('=') {
            section.push('=');
        }
        section.push('\n');
    }
    let options = ini::ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: false,
        enabled_preserve_key_leading_whitespace: false,
    };
    let parsed = ini::Ini::load_from_str_opt(&section, options).map_err(|e| SpecError::Syntax {
        vassal: vassal.into(),
        reason: format!(
            "line {} of the [emperor] section: {}; write attributes as key = value",
            e.line.saturating_sub(1),
            e.msg
        ),
    })?;
    Ok(parsed
        .section_all(Some("emperor"))
        .flat_map(|props| props.iter())
        .map(|(key, value)| Entry {
            key: key.trim().into(),
            value: value.trim().into(),
        })
        .collect())
}

fn leading_ws(raw: &[u8]) -> usize {
    raw.len() - raw.trim_ascii_start().len()
}

/// Parse the ini text of vassal `vassal`: `Ok(None)` when its `[emperor]` section names no
/// `docker-image` (and has no `docker-*` keys), `Ok(Some(spec))` for a Docker vassal.
pub fn parse_vassal(vassal: &str, text: &[u8]) -> Result<Option<VassalSpec>, SpecError> {
    let entries = emperor_entries(vassal, text)?;
    let docker: Vec<Entry> = entries
        .into_iter()
        .filter(|e| e.key.starts_with("docker-"))
        .collect();
    if docker.is_empty() {
        return Ok(None);
    }
    check_keys(vassal, &docker)?;
    let Some(image) = docker.iter().find(|e| e.key == "docker-image") else {
        let because = match docker.first() {
            Some(e) => format!("any docker-* attribute is given ({} = {:?}); add docker-image = IMAGE or remove the docker-* attributes", e.key, e.value),
            None => "any docker-* attribute is given".into(),
        };
        return Err(SpecError::Missing {
            vassal: vassal.into(),
            key: "docker-image".into(),
            because,
        });
    };
    let mut spec = VassalSpec::with_image(image.value.as_str());
    for entry in &docker {
        apply(&mut spec, entry).map_err(|expected| SpecError::BadValue {
            vassal: vassal.into(),
            key: entry.key.clone(),
            value: entry.value.clone(),
            expected,
        })?;
    }
    if spec.socket_owner.is_some() && !matches!(spec.socket, Some(ListenAddress::Unix(_))) {
        return Err(SpecError::Missing {
            vassal: vassal.into(),
            key: "docker-socket".into(),
            because: "docker-socket-owner is given (it owns a unix docker-socket: set docker-socket = /PATH, or remove docker-socket-owner)".into(),
        });
    }
    if spec.swap.is_some() && spec.memory.is_none() {
        return Err(SpecError::Missing {
            vassal: vassal.into(),
            key: "docker-memory".into(),
            because: "docker-swap is given (Docker limits memory plus swap, so it needs the memory limit too)".into(),
        });
    }
    Ok(Some(spec))
}

/// Unknown keys and repeats of single-valued keys, in file order.
fn check_keys(vassal: &str, docker: &[Entry]) -> Result<(), SpecError> {
    for (i, entry) in docker.iter().enumerate() {
        if !KNOWN_KEYS.contains(&entry.key.as_str()) {
            return Err(SpecError::UnknownKey {
                vassal: vassal.into(),
                key: entry.key.clone(),
                value: entry.value.clone(),
                suggestion: nearest_key(&entry.key).map(String::from),
            });
        }
        if REPEATABLE_KEYS.contains(&entry.key.as_str()) {
            continue;
        }
        let earlier = docker.iter().take(i).find(|e| e.key == entry.key);
        if let Some(first) = earlier {
            return Err(SpecError::Repeated {
                vassal: vassal.into(),
                key: entry.key.clone(),
                first: first.value.clone(),
                second: entry.value.clone(),
            });
        }
    }
    Ok(())
}

/// The known key closest to `key`, if it is close enough to be a typo.
pub fn nearest_key(key: &str) -> Option<&'static str> {
    // A truncated key (`docker-mem`) is nearer its completion than an equally short key.
    let completion = KNOWN_KEYS
        .iter()
        .filter(|k| key.len() > "docker-".len() && k.starts_with(key))
        .min_by_key(|k| k.len());
    if let Some(k) = completion {
        return Some(k);
    }
    KNOWN_KEYS
        .iter()
        .map(|k| (values::edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 3 && *d < k.len() / 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Apply one known entry to `spec`; `Err` says what would have been accepted.
fn apply(spec: &mut VassalSpec, entry: &Entry) -> Result<(), String> {
    let v = entry.value.as_str();
    match entry.key.as_str() {
        "docker-image" => spec.image = values::image(v)?,
        "docker-socket" => spec.socket = Some(values::listen_address(v)?),
        "docker-port" => spec.ports.push(values::port_mapping(v)?),
        "docker-workdir" => spec.workdir = Some(values::absolute_path(v)?),
        "docker-mount" => spec.mounts.push(values::mount(v)?),
        "docker-network-mode" => spec.network_mode = Some(values::network_mode(v)?),
        "docker-hostname" => spec.hostname = Some(values::hostname(v)?),
        "docker-proxy" => spec.proxy = Some(values::proxy(v)?),
        "docker-env" => spec.env.push(values::env(v)?),
        "docker-user" => spec.user = Some(values::user(v)?),
        "docker-socket-owner" => spec.socket_owner = Some(values::user(v)?),
        "docker-memory" => {
            let bytes = parse_size(v)?;
            if bytes == 0 {
                return Err(format!("{}; 0 is not a limit", values::SIZE_EXPECTED));
            }
            spec.memory = Some(bytes);
        }
        "docker-swap" => spec.swap = Some(parse_size(v)?),
        "docker-cidfile" => spec.cidfile = Some(values::absolute_path(v)?),
        "docker-dns" => spec.dns.push(values::ip(v)?),
        "docker-label" => {
            let (key, value) = values::label(v)?;
            if spec.labels.iter().any(|(k, _)| *k == key) {
                return Err(format!(
                    "expected each label key once; {key} is already set by an earlier docker-label"
                ));
            }
            spec.labels.push((key, value));
        }
        "docker-cpus" => spec.nano_cpus = Some(values::nano_cpus(v)?),
        "docker-pids-limit" => spec.pids_limit = Some(values::pids_limit(v)?),
        "docker-read-only" => spec.read_only = values::boolean(v)?,
        "docker-cap-drop" => spec.cap_drop.push(values::capability(v)?),
        "docker-tmpfs" => spec.tmpfs.push(values::tmpfs(v)?),
        "docker-stop-signal" => spec.stop_signal = values::signal(v)?,
        "docker-stop-timeout" => spec.stop_timeout = Some(values::stop_timeout(v)?),
        "docker-tty" => spec.tty = values::boolean(v)?,
        "docker-uwsgi" => spec.uwsgi = values::uwsgi(v)?,
        "docker-handoff" => spec.handoff = values::handoff(v)?,
        // `check_keys` has rejected every other key already.
        _ => {
            return Err(format!(
                "one of the known attributes: {}",
                KNOWN_KEYS.join(", ")
            ))
        }
    }
    Ok(())
}

/// Brackets an IPv6 address so it can be followed by `:port`.
pub(crate) fn host_for_port(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.into()
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Unix(path) => f.write_str(path),
            ListenAddress::Tcp { ip, port } => write!(f, "{}:{port}", host_for_port(ip)),
        }
    }
}

/// `true` for an address literal we can bind or hand to Docker.
fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests;
