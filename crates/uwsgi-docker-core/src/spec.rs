//! The vassal spec: the `[emperor]` section of a vassal file, parsed and validated.
//!
//! Only `[emperor]` is interpreted; every other section belongs to uWSGI and is ignored,
//! so any file uWSGI accepts does not fail here because of them.
//!
//! CONTRACT (filled in by the spec work): see the issue text for every attribute.

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
    /// `ip:port` or `[ipv6]:port`; an empty ip means all addresses.
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
    /// Straight to uWSGI's `UWSGI_EMPEROR_PROXY` (control and config fds only on 2.0.x).
    #[default]
    Native,
    /// Through the static launcher, which also puts `docker-socket` on fd 0.
    Launcher,
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
}

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

/// Parse the ini text of vassal `vassal`: `Ok(None)` when its `[emperor]` section names no
/// `docker-image` (and has no `docker-*` keys), `Ok(Some(spec))` for a Docker vassal.
pub fn parse_vassal(vassal: &str, text: &[u8]) -> Result<Option<VassalSpec>, SpecError> {
    let _ = (vassal, text);
    todo!()
}
