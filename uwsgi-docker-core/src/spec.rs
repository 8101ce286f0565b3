//! The vassal spec: the `[emperor]` section of a vassal file, parsed and validated.
//!
//! Only `[emperor]` is interpreted; every other section belongs to uWSGI and is ignored,
//! so any file uWSGI accepts does not fail here because of them.
//!
//! The section is read the way uWSGI's own ini reader (`core/ini.c`) reads it, not the way a
//! generic ini library does: one entry per line, split at the first `=` (`:` is no
//! separator), a line without `=` is a key with an empty value, `;`/`#` start a comment only
//! at the start of a line, a section line loses its last character (so `[emperor` is not
//! `[emperor]`), there are no quotes, escapes or continuation lines, and repeated keys are
//! all kept in file order. Generic ini parsers disagree on several of these (they let a
//! bare key swallow the next line, split keys at `:`, strip quotes), so the Emperor and
//! they would see different attributes in the same file; we follow uWSGI.
use core::fmt;
use core::net::IpAddr;
use std::collections::{HashMap, HashSet};

mod values;

pub use values::{clean_path, format_size, parse_size, SizeError, MIN_MEMORY, MIN_NANO_CPUS};

/// A `docker-port` mapping, `hostport:ctrport`, `hostip:hostport:ctrport`, optional `/udp`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortMapping {
    /// Host address to bind; `None` means all addresses.
    pub host_ip: Option<String>,
    /// Host port; `None` (written as an empty host port) lets Docker choose.
    pub host_port: Option<u16>,
    /// The port inside the container.
    pub container_port: u16,
    /// `tcp` unless the mapping ends in `/udp`.
    pub protocol: Protocol,
}

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// TCP, the default.
    Tcp,
    /// UDP (`/udp` after the container port).
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
#[non_exhaustive]
pub struct Mount {
    /// The absolute host path (the bind mount's source).
    pub host: String,
    /// The absolute path inside the container (the target).
    pub container: String,
    /// Mounted read-only (`:ro`, or made so by a policy).
    pub read_only: bool,
    /// The vassal wrote `:ro` or `:rw`; a bare mount is read-write for Docker, and a policy
    /// may make it read-only, while an explicit `:rw` it cannot grant is refused.
    pub explicit_mode: bool,
}

/// `docker-socket`: where the host binds the listening socket passed into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// An absolute unix socket path.
    Unix(String),
    /// `ip:port` or `[ipv6]:port`; an empty ip means all addresses. The ip is stored
    /// without brackets.
    Tcp {
        /// The address, without brackets; empty for all addresses.
        ip: String,
        /// The TCP port.
        port: u16,
    },
}

/// `docker-proxy`: `host[:ctr]`, both absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyPaths {
    /// Where the bridge binds the proxy socket on the host.
    pub host: String,
    /// Where the socket appears inside the container; `None`: the default path.
    pub container: Option<String>,
}

/// How the fds reach uWSGI inside the container (`docker-handoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HandoffMode {
    /// Not given: [`Launcher`](Self::Launcher), which works with every uWSGI. Native
    /// handoff needs a uWSGI that can be trusted with it: 2.0.x cannot take a passed
    /// socket, and master (2.1-dev) crashes on the unnamed config socket (it frees the `""`
    /// that `uwsgi_getsockname` returns for it). The runtime falls back to
    /// [`Native`](Self::Native) only when no socket is passed and the launcher is not
    /// installed (see [`HandoffMode::resolve_without_launcher`]).
    #[default]
    Auto,
    /// Straight to uWSGI's `UWSGI_EMPEROR_PROXY`. A 2.0.x vassal takes only the control
    /// and config fds: with a socket to pass, this needs uWSGI master in the image.
    Native,
    /// Through the static launcher, which also puts the listening socket on fd 0, where
    /// every uWSGI finds it.
    Launcher,
}

/// When the image is pulled from its registry (`docker-pull`, operator default
/// `UWSGIDOCKER_PULL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when the host does not have the image (create answers "No such image").
    #[default]
    Missing,
    /// At every start and rollover: a moved tag is followed (cheap when unchanged).
    Always,
    /// Never: the image must be on the host, and no registry is asked.
    Never,
}

impl PullPolicy {
    /// Reads `missing`, `always` or `never`.
    ///
    /// # Errors
    ///
    /// What is expected, for any other text.
    pub fn parse(v: &str) -> Result<PullPolicy, String> {
        match v {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            _ => Err("expected missing (pull when the image is not on the host, the default), always (pull the tag at every start) or never (the image must be on the host)".into()),
        }
    }

    /// The word [`PullPolicy::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Missing => "missing",
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
        }
    }
}

impl VassalSpec {
    /// The handoff this vassal gets: a socket goes with it when `docker-socket` is set or
    /// the Emperor gave an on-demand socket (`inherited_socket`), and `Auto` follows that.
    ///
    /// Returns the resolved mode (never [`HandoffMode::Auto`]) and whether a listening
    /// socket is passed.
    pub fn handoff_for(&self, inherited_socket: bool) -> (HandoffMode, bool) {
        let passes_socket = self.socket.is_some() || inherited_socket;
        (self.handoff.resolve(passes_socket), passes_socket)
    }
}

impl HandoffMode {
    /// The mode actually used: `Auto` is the launcher, whether or not a socket is passed.
    pub fn resolve(self, _passes_socket: bool) -> HandoffMode {
        match self {
            HandoffMode::Auto => HandoffMode::Launcher,
            mode => mode,
        }
    }

    /// The mode used when the launcher is not installed: `Auto` without a socket to pass
    /// falls back to native (what uWSGI 2.0.x in the image handles); `None` when nothing
    /// works without it (an explicit `launcher`, or a socket to pass).
    pub fn resolve_without_launcher(self, passes_socket: bool) -> Option<HandoffMode> {
        match self {
            HandoffMode::Auto if !passes_socket => Some(HandoffMode::Native),
            HandoffMode::Native => Some(HandoffMode::Native),
            _ => None,
        }
    }

    /// The `docker-handoff` value that names this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffMode::Auto => "auto",
            HandoffMode::Native => "native",
            HandoffMode::Launcher => "launcher",
        }
    }
}

/// Everything the `[emperor]` section of one Docker vassal asks for.
///
/// Made by [`parse_vassal`] (validated) or [`VassalSpec::with_image`] (every attribute at
/// its default, for callers that build a spec themselves). Each field is one `docker-*`
/// attribute; new attributes become new fields, so the struct is `#[non_exhaustive]`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VassalSpec {
    /// `docker-image`: the image to run, as the daemon names it (`name[:tag]`, `name@digest`).
    pub image: String,
    /// `docker-socket`: a listening socket the bridge binds on the host and passes in.
    pub socket: Option<ListenAddress>,
    /// `docker-port`, in file order.
    pub ports: Vec<PortMapping>,
    /// `docker-workdir`: the container's working directory (absolute).
    pub workdir: Option<String>,
    /// `docker-mount`, in file order.
    pub mounts: Vec<Mount>,
    /// `docker-network-mode`: `bridge`, `host`, `none`, `container:NAME` or a network name.
    pub network_mode: Option<String>,
    /// `docker-hostname`: the container's host name.
    pub hostname: Option<String>,
    /// `docker-proxy`: where the proxy socket goes instead of the default.
    pub proxy: Option<ProxyPaths>,
    /// `docker-env`, in file order, as `(key, value)`.
    pub env: Vec<(String, String)>,
    /// `docker-user`: the container's `USER[:GROUP]` (names or numbers).
    pub user: Option<String>,
    /// `docker-memory`, in bytes.
    pub memory: Option<u64>,
    /// `docker-swap`: bytes of swap on top of `memory` (Docker's `MemorySwap` is their sum).
    pub swap: Option<u64>,
    /// `docker-cidfile`: a host file the container id is written to (absolute).
    pub cidfile: Option<String>,
    /// `docker-dns`: DNS server addresses, in file order.
    pub dns: Vec<String>,
    /// `docker-label`: the vassal's own labels as `(key, value)`, in file order.
    pub labels: Vec<(String, String)>,
    /// `docker-cpus` in billionths of a CPU (Docker's NanoCpus).
    pub nano_cpus: Option<u64>,
    /// `docker-pids-limit`: at most this many processes; `-1` is unlimited.
    pub pids_limit: Option<i64>,
    /// `docker-read-only`: a read-only root filesystem.
    pub read_only: bool,
    /// `docker-cap-drop`, in file order (names without `CAP_`, `ALL` for every one).
    pub cap_drop: Vec<String>,
    /// `docker-cap-add`, in file order (names without `CAP_`).
    pub cap_add: Vec<String>,
    /// `docker-no-new-privileges`: Docker's `no-new-privileges` security option.
    pub no_new_privileges: bool,
    /// `docker-socket-owner`: `USER[:GROUP]` (names or numbers) for a unix `docker-socket`,
    /// resolved on the host by the runtime.
    pub socket_owner: Option<String>,
    /// `docker-tmpfs`: `(path, options)`; options may be empty.
    pub tmpfs: Vec<(String, String)>,
    /// Default `SIGINT`: uWSGI 2.0 treats SIGTERM as a brutal reload.
    pub stop_signal: String,
    /// `docker-stop-timeout`, seconds; `None` means [`DEFAULT_STOP_TIMEOUT_SECS`] (see
    /// [`stop_timeout_secs`](Self::stop_timeout_secs)).
    pub stop_timeout: Option<u32>,
    /// Default on, as in the original.
    pub tty: bool,
    /// The uWSGI binary inside the image; default `uwsgi`.
    pub uwsgi: String,
    /// `docker-handoff`: how the Emperor's fds reach uWSGI in the container.
    pub handoff: HandoffMode,
    /// `docker-healthcheck` and its `docker-health-*` settings.
    pub health: HealthSpec,
    /// `docker-pull`; `None`: the operator's default (`UWSGIDOCKER_PULL`).
    pub pull: Option<PullPolicy>,
}

/// The container's health check: Docker's `HealthConfig`, and what a failing one does.
/// A field left `None` keeps what the image says (its `HEALTHCHECK`), as `docker run` does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HealthSpec {
    /// `docker-healthcheck`: the check to run in the container.
    pub test: Option<HealthTest>,
    /// `docker-health-interval`, nanoseconds between checks.
    pub interval_ns: Option<u64>,
    /// `docker-health-timeout`, nanoseconds a check may take.
    pub timeout_ns: Option<u64>,
    /// `docker-health-retries`: failures in a row before the container is unhealthy.
    pub retries: Option<u32>,
    /// `docker-health-start-period`, nanoseconds after the start when failures do not count.
    pub start_period_ns: Option<u64>,
    /// `docker-health-restart`: an unhealthy container ends the vassal, so that the
    /// Emperor starts it again.
    pub restart: bool,
}

impl HealthSpec {
    /// Anything to send in the create request's `Healthcheck`.
    pub fn is_set(&self) -> bool {
        self.test.is_some()
            || self.interval_ns.is_some()
            || self.timeout_ns.is_some()
            || self.retries.is_some()
            || self.start_period_ns.is_some()
    }
}

/// `docker-healthcheck`'s value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthTest {
    /// Plain text: run by the container's shell (`CMD-SHELL`; the image needs `/bin/sh`).
    Shell(String),
    /// A JSON array (`["/bin/check", "--quick"]`): run as it is (`CMD`), no shell needed.
    Exec(Vec<String>),
    /// `none`: no check, not even the image's.
    Disabled,
}

impl HealthTest {
    /// Docker's `Healthcheck.Test`.
    pub fn to_docker(&self) -> Vec<String> {
        match self {
            HealthTest::Shell(command) => vec!["CMD-SHELL".to_owned(), command.clone()],
            HealthTest::Exec(argv) => std::iter::once("CMD".to_owned())
                .chain(argv.iter().cloned())
                .collect(),
            HealthTest::Disabled => vec!["NONE".to_owned()],
        }
    }
}

impl VassalSpec {
    /// The stop timeout sent to the daemon: `docker-stop-timeout`, else
    /// [`DEFAULT_STOP_TIMEOUT_SECS`].
    pub fn stop_timeout_secs(&self) -> u32 {
        self.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT_SECS)
    }

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
            cap_add: Vec::new(),
            no_new_privileges: false,
            socket_owner: None,
            tmpfs: Vec::new(),
            stop_signal: DEFAULT_STOP_SIGNAL.into(),
            stop_timeout: None,
            tty: true,
            uwsgi: DEFAULT_UWSGI.into(),
            handoff: HandoffMode::Auto,
            health: HealthSpec::default(),
            pull: None,
        }
    }
}

/// uWSGI 2.0 reloads brutally on SIGTERM; SIGINT stops it.
pub const DEFAULT_STOP_SIGNAL: &str = "SIGINT";
/// The uWSGI binary looked up on the image's `PATH`.
pub const DEFAULT_UWSGI: &str = "uwsgi";
/// The largest vassal file the runtime reads (1 MiB); a larger one is refused unread.
pub const MAX_VASSAL_FILE: usize = 1 << 20;
/// The largest config the Emperor protocol pushes to a vassal: its length is a `u16`.
/// A Docker vassal's whole file is pushed into its container, so it must fit.
pub const MAX_PUSHED_CONFIG: usize = crate::emperor::MAX_CONFIG_LEN;
/// Seconds between the stop signal and SIGKILL when `docker-stop-timeout` is not given.
/// Always sent explicitly (`StopTimeout` at create, `?t=` on stop): Podman stores 0 when
/// it is missing, and then kills at once.
pub const DEFAULT_STOP_TIMEOUT_SECS: u32 = 10;

/// Refuses a Docker vassal's file that could not be pushed to its container: call it
/// before parsing, with the file's length in bytes.
///
/// # Errors
///
/// [`SpecError::TooLargeToPush`] when `size` exceeds [`MAX_PUSHED_CONFIG`].
pub fn check_pushable(vassal: &str, size: usize) -> Result<(), SpecError> {
    if size > MAX_PUSHED_CONFIG {
        return Err(SpecError::TooLargeToPush {
            vassal: vassal.into(),
            size,
        });
    }
    Ok(())
}

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
    "docker-cap-add",
    "docker-no-new-privileges",
    "docker-socket-owner",
    "docker-tmpfs",
    "docker-stop-signal",
    "docker-stop-timeout",
    "docker-tty",
    "docker-uwsgi",
    "docker-handoff",
    "docker-healthcheck",
    "docker-health-interval",
    "docker-health-timeout",
    "docker-health-retries",
    "docker-health-start-period",
    "docker-health-restart",
    "docker-pull",
];

/// Keys that may appear more than once; every other key is single-valued.
pub const REPEATABLE_KEYS: &[&str] = &[
    "docker-port",
    "docker-mount",
    "docker-env",
    "docker-dns",
    "docker-label",
    "docker-cap-drop",
    "docker-cap-add",
    "docker-tmpfs",
];

/// A vassal file or attribute we refuse; names the vassal, key and value, and says how to fix it.
///
/// Every variant names the vassal (as given to [`parse_vassal`]); its `Display` is one
/// sentence for the vassal's author, ending in what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// An `[emperor]` line is not UTF-8.
    #[error("vassal {vassal}: the file is not UTF-8 text (byte {offset}); save it as UTF-8")]
    NotUtf8 {
        /// The vassal's name.
        vassal: String,
        /// Byte offset of the first invalid byte in the file.
        offset: usize,
    },
    /// The ini text cannot be read.
    #[error("vassal {vassal}: cannot parse the ini text: {reason}")]
    Syntax {
        /// The vassal's name.
        vassal: String,
        /// What is wrong.
        reason: String,
    },
    /// An unknown `docker-*` key; `suggestion` is the nearest known key.
    #[error("vassal {vassal}: unknown attribute {key} = {value:?}{}", suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_default())]
    UnknownKey {
        /// The vassal's name.
        vassal: String,
        /// The key as written.
        key: String,
        /// Its value as written.
        value: String,
        /// The known key (or corrected line) the author probably meant.
        suggestion: Option<String>,
    },
    /// A single-valued key is given twice.
    #[error(
        "vassal {vassal}: {key} is given more than once ({first:?}, then {second:?}); keep one"
    )]
    Repeated {
        /// The vassal's name.
        vassal: String,
        /// The repeated key.
        key: String,
        /// The first value.
        first: String,
        /// The second value.
        second: String,
    },
    /// A value the key does not accept.
    #[error("vassal {vassal}: bad {key} = {value:?}: {expected}")]
    BadValue {
        /// The vassal's name.
        vassal: String,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// Two attributes that are fine alone but that the daemon refuses together.
    #[error(
        "vassal {vassal}: {key} = {value:?} cannot go with {other_key} = {other_value:?}: {why}"
    )]
    Conflict {
        /// The vassal's name.
        vassal: String,
        /// The refused key.
        key: &'static str,
        /// Its value as written.
        value: String,
        /// The key it conflicts with.
        other_key: &'static str,
        /// That key's value as written.
        other_value: String,
        /// Why the two cannot go together, and what to do.
        why: &'static str,
    },
    /// The vassal file is longer than a config pushed to a vassal may be.
    #[error("vassal {vassal}: the file is {size} bytes, and a config pushed to a vassal is at most {MAX_PUSHED_CONFIG} bytes (the Emperor protocol's 16-bit length), so the container's uWSGI could not receive it; make it shorter, e.g. move settings into a file inside the image and include it from there")]
    TooLargeToPush {
        /// The vassal's name.
        vassal: String,
        /// The file's length in bytes.
        size: usize,
    },
    /// A key that another key (or any `docker-*` key) needs is missing.
    #[error("vassal {vassal}: {key} is required when {because}")]
    Missing {
        /// The vassal's name.
        vassal: String,
        /// The missing key.
        key: String,
        /// Which attribute needs it, and how to fix it.
        because: String,
    },
}

/// Emperor-level settings: from the plugin's options or the runtime's flags and env.
///
/// Start from [`EmperorSettings::default`] or [`EmperorSettings::from_env`] and set the
/// fields; new settings become new fields, so the struct is `#[non_exhaustive]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmperorSettings {
    /// Path of dockerd's unix socket; default `/var/run/docker.sock`, or `DOCKER_HOST=unix://…`.
    pub daemon_socket: String,
    /// Where proxy sockets go instead of beside the vassal file (the original plugin's
    /// `docker-socket-dir`).
    pub socket_dir: Option<String>,
    /// Refuse vassals without a `docker-image`.
    pub docker_required: bool,
    /// Log debug lines (`UWSGIDOCKER_DEBUG`).
    pub debug: bool,
    /// The Emperor's `chmod-socket`, applied to sockets we bind; `None` means 0600.
    pub socket_mode: Option<u32>,
    /// Put before every container name (`docker-name-prefix`, `UWSGIDOCKER_NAME_PREFIX`), so
    /// that several Emperors can share one daemon; checked with
    /// [`crate::plan::check_name_prefix`]. Also recorded in the `io.uwsgi-docker.prefix` label.
    pub name_prefix: Option<String>,
}

impl Default for EmperorSettings {
    fn default() -> Self {
        EmperorSettings {
            daemon_socket: "/var/run/docker.sock".into(),
            socket_dir: None,
            docker_required: false,
            debug: false,
            socket_mode: None,
            name_prefix: None,
        }
    }
}

/// An Emperor-level setting we refuse (the operator's environment, not a vassal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// `DOCKER_HOST` names something other than a unix socket (`tcp://`, `ssh://`, …).
    #[error("DOCKER_HOST={value:?}: only unix sockets are supported; use unix:///path/to/docker.sock or unset DOCKER_HOST")]
    UnsupportedDockerHost {
        /// The variable's value.
        value: String,
    },
    /// `DOCKER_HOST=unix://` with a relative path.
    #[error("DOCKER_HOST={value:?}: the unix socket path must be absolute, as in unix:///var/run/docker.sock")]
    RelativeDockerHost {
        /// The variable's value.
        value: String,
    },
}

impl EmperorSettings {
    /// Defaults, with the daemon socket taken from `DOCKER_HOST` when it is set.
    ///
    /// Sans-IO: `get` looks an environment variable up (`|k| std::env::var(k).ok()`).
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] when `DOCKER_HOST` is set to anything but an absolute
    /// `unix://` path.
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
///
/// # Errors
///
/// A [`SettingsError`] for a value that is not `unix:///absolute/path`.
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

/// The `[emperor]` entries of `text`, in file order, read as uWSGI's `core/ini.c` reads them.
///
/// * A line is trimmed of spaces, tabs and `\r` (only those: uWSGI strips nothing else).
/// * A line starting with `[` names a section: uWSGI drops the line's last character,
///   which should be `]`, so `[emperor` names `empero`, not `emperor`.
/// * A line starting with `;` or `#` is a comment.
/// * Any other line is split at its first `=` (a line without one is a key with an empty
///   value); `:` separates nothing, so `docker-image: foo` is the key `docker-image: foo`.
///
/// Only the `[emperor]` lines have to be UTF-8: uWSGI accepts other sections in any
/// encoding, with flag lines and all, and they are not ours to judge.
fn emperor_entries(vassal: &str, text: &[u8]) -> Result<Vec<Entry>, SpecError> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let (mut offset, body) = match text.strip_prefix(BOM) {
        Some(rest) => (BOM.len(), rest),
        None => (0, text),
    };
    let mut in_emperor = false;
    let mut entries = Vec::new();
    for raw in body.split(|&b| b == b'\n') {
        let line_start = offset;
        offset += raw.len() + 1;
        let line = ini_trim(raw);
        if line.is_empty() || line.starts_with(b";") || line.starts_with(b"#") {
            continue;
        }
        if let Some(header) = line.strip_prefix(b"[") {
            // uWSGI drops the last character, whatever it is.
            let name = header.split_last().map_or(&b""[..], |(_, name)| name);
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
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        entries.push(Entry {
            key: ini_trim_str(key).into(),
            value: ini_trim_str(value).into(),
        });
    }
    Ok(entries)
}

/// What uWSGI's `ini_lstrip`/`ini_rstrip` strip.
fn is_ini_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

fn ini_trim(raw: &[u8]) -> &[u8] {
    let start = leading_ws(raw);
    let end = raw.len() - raw.iter().rev().take_while(|&&b| is_ini_space(b)).count();
    raw.get(start..end.max(start)).unwrap_or_default()
}

fn ini_trim_str(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_ini_space(c as u8))
}

fn leading_ws(raw: &[u8]) -> usize {
    raw.iter().take_while(|&&b| is_ini_space(b)).count()
}

/// Parse the ini text of vassal `vassal`: `Ok(None)` when its `[emperor]` section names no
/// `docker-image` (and has no `docker-*` keys), `Ok(Some(spec))` for a Docker vassal.
///
/// `vassal` is the name the Emperor knows the vassal by; it is used only in messages.
/// Only the `[emperor]` section is read (see the [module docs](self)).
///
/// ```
/// use uwsgi_docker_core::spec::{parse_vassal, SpecError};
///
/// let text = b"[emperor]\ndocker-image = psgi001\ndocker-memory = 256m\n\n[uwsgi]\nmaster = true\n";
/// let spec = parse_vassal("app.ini", text)?.expect("a Docker vassal");
/// assert_eq!(spec.image, "psgi001");
/// assert_eq!(spec.memory, Some(256 * 1024 * 1024));
///
/// // No docker-* key: not a Docker vassal, uWSGI runs it as usual.
/// assert!(parse_vassal("plain.ini", b"[uwsgi]\nmaster = true\n")?.is_none());
///
/// // A typo is refused with a suggestion.
/// let error = parse_vassal("bad.ini", b"[emperor]\ndocker-image = x\ndocker-memroy = 1g\n").unwrap_err();
/// assert!(matches!(error, SpecError::UnknownKey { .. }));
/// assert!(error.to_string().contains("did you mean docker-memory?"));
/// # Ok::<(), SpecError>(())
/// ```
///
/// # Errors
///
/// A [`SpecError`] naming the vassal, the key and the value for anything uWSGI would
/// read differently or the daemon would refuse: unknown or repeated keys, bad values,
/// conflicting attributes, `docker-*` keys without `docker-image`.
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
    let mut seen = Seen::default();
    for entry in &docker {
        apply(&mut spec, entry)
            .and_then(|()| seen.check(&spec, entry))
            .map_err(|expected| SpecError::BadValue {
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
    check_combinations(vassal, &spec, &docker)?;
    Ok(Some(spec))
}

/// What earlier entries claimed, so that each repeat is found in one lookup.
#[derive(Default)]
struct Seen<'a> {
    label_keys: HashSet<String>,
    /// Cleaned container path -> the entry that mounts something there.
    destinations: HashMap<String, &'a Entry>,
}

impl<'a> Seen<'a> {
    /// Refuses `entry` (just applied to `spec`) when it repeats a label key or a mount
    /// destination of an earlier entry.
    fn check(&mut self, spec: &VassalSpec, entry: &'a Entry) -> Result<(), String> {
        match entry.key.as_str() {
            "docker-label" => {
                if let Some((key, _)) = spec.labels.last() {
                    if !self.label_keys.insert(key.clone()) {
                        return Err(format!(
                            "expected each label key once; {key} is already set by an earlier docker-label"
                        ));
                    }
                }
            }
            "docker-mount" | "docker-tmpfs" => {
                let destination = match entry.key.as_str() {
                    "docker-mount" => spec.mounts.last().map(|m| m.container.as_str()),
                    _ => spec.tmpfs.last().map(|(path, _)| path.as_str()),
                };
                if let Some(destination) = destination {
                    let clean = values::clean_path(destination);
                    if let Some(earlier) = self.destinations.get(&clean) {
                        return Err(format!(
                            "expected each container path to be mounted once; {clean} is already taken by {} = {}",
                            earlier.key, earlier.value
                        ));
                    }
                    self.destinations.insert(clean, entry);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Settings that are fine alone but that the daemon refuses together.
fn check_combinations(vassal: &str, spec: &VassalSpec, docker: &[Entry]) -> Result<(), SpecError> {
    let entry = |key: &str| docker.iter().find(|e| e.key == key);
    let conflict =
        |key: &'static str, other_key: &'static str, why: &'static str| SpecError::Conflict {
            vassal: vassal.into(),
            key,
            value: entry(key).map(|e| e.value.clone()).unwrap_or_default(),
            other_key,
            other_value: entry(other_key)
                .map(|e| e.value.clone())
                .unwrap_or_default(),
            why,
        };
    if let (Some(memory), Some(swap)) = (spec.memory, spec.swap) {
        let total = memory
            .checked_add(swap)
            .filter(|t| i64::try_from(*t).is_ok());
        if total.is_none() {
            return Err(conflict(
                "docker-swap",
                "docker-memory",
                "Docker's limit is memory plus swap, and that sum must stay under 2^63 bytes; lower one of them",
            ));
        }
    }
    if spec.health.restart && spec.health.test == Some(HealthTest::Disabled) {
        return Err(conflict(
            "docker-health-restart",
            "docker-healthcheck",
            "with no health check the container never turns unhealthy; give docker-healthcheck a command, or remove docker-health-restart",
        ));
    }
    let joins_a_container = spec
        .network_mode
        .as_deref()
        .is_some_and(|mode| mode.starts_with("container:"));
    if joins_a_container {
        for (key, why) in [
            ("docker-hostname", "a container that joins another's network namespace has that container's host name (the daemon refuses both); remove docker-hostname, or use another network mode"),
            ("docker-dns", "a container that joins another's network namespace uses that container's DNS servers (the daemon refuses both); remove docker-dns, or use another network mode"),
            ("docker-port", "a container that joins another's network namespace cannot publish ports of its own (the daemon refuses both); remove docker-port, or publish them on the other container"),
        ] {
            if entry(key).is_some() {
                return Err(conflict(key, "docker-network-mode", why));
            }
        }
    }
    Ok(())
}

/// Unknown keys and repeats of single-valued keys, in file order.
fn check_keys(vassal: &str, docker: &[Entry]) -> Result<(), SpecError> {
    for (i, entry) in docker.iter().enumerate() {
        if !KNOWN_KEYS.contains(&entry.key.as_str()) {
            return Err(SpecError::UnknownKey {
                vassal: vassal.into(),
                key: entry.key.clone(),
                value: entry.value.clone(),
                suggestion: colon_suggestion(entry)
                    .or_else(|| nearest_key(&entry.key).map(String::from)),
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

/// `docker-image: foo` is one key to uWSGI, which splits only at `=`: suggest the line
/// written with `=`.
fn colon_suggestion(entry: &Entry) -> Option<String> {
    let (key, rest) = entry.key.split_once(':')?;
    let key = key.trim_end();
    if !KNOWN_KEYS.contains(&key) {
        return None;
    }
    let rest = rest.trim_start();
    Some(match entry.value.as_str() {
        "" => format!("{key} = {rest} (uWSGI splits a key from its value only at =)"),
        value => format!("{key} = {rest}={value} (uWSGI splits a key from its value only at =)"),
    })
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
        "docker-memory" => spec.memory = Some(values::memory(v)?),
        "docker-swap" => spec.swap = Some(values::swap(v)?),
        "docker-cidfile" => spec.cidfile = Some(values::absolute_path(v)?),
        "docker-dns" => spec.dns.push(values::ip(v)?),
        // A repeated key is refused by `Seen::check`.
        "docker-label" => spec.labels.push(values::label(v)?),
        "docker-cpus" => spec.nano_cpus = Some(values::nano_cpus(v)?),
        "docker-pids-limit" => spec.pids_limit = Some(values::pids_limit(v)?),
        "docker-read-only" => spec.read_only = values::boolean(v)?,
        "docker-cap-drop" => spec.cap_drop.push(values::capability(v)?),
        "docker-cap-add" => spec.cap_add.push(values::capability(v)?),
        "docker-no-new-privileges" => spec.no_new_privileges = values::boolean(v)?,
        "docker-socket-owner" => spec.socket_owner = Some(values::user(v)?),
        "docker-tmpfs" => spec.tmpfs.push(values::tmpfs(v)?),
        "docker-stop-signal" => spec.stop_signal = values::signal(v)?,
        "docker-stop-timeout" => spec.stop_timeout = Some(values::stop_timeout(v)?),
        "docker-tty" => spec.tty = values::boolean(v)?,
        "docker-uwsgi" => spec.uwsgi = values::uwsgi(v)?,
        "docker-handoff" => spec.handoff = values::handoff(v)?,
        "docker-healthcheck" => spec.health.test = Some(values::health_test(v)?),
        "docker-health-interval" => spec.health.interval_ns = Some(values::health_duration(v)?),
        "docker-health-timeout" => spec.health.timeout_ns = Some(values::health_duration(v)?),
        "docker-health-retries" => spec.health.retries = Some(values::health_retries(v)?),
        "docker-health-start-period" => {
            spec.health.start_period_ns = Some(values::health_duration(v)?)
        }
        "docker-health-restart" => spec.health.restart = values::boolean(v)?,
        "docker-pull" => spec.pull = Some(PullPolicy::parse(v)?),
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

/// Value parsers the policy shares with the vassal keys, so both read a value alike.
pub(crate) mod shared {
    /// `docker-cpus`: billionths of a CPU.
    pub(crate) fn cpus(v: &str) -> Result<u64, String> {
        super::values::nano_cpus(v)
    }
    /// `docker-pids-limit`: -1 or a positive count.
    pub(crate) fn pids(v: &str) -> Result<i64, String> {
        super::values::pids_limit(v)
    }
    /// `docker-cap-drop`: a capability name without `CAP_`, upper case.
    pub(crate) fn capability(v: &str) -> Result<String, String> {
        super::values::capability(v)
    }
    /// `docker-tty`: true/false, yes/no, on/off, 1/0.
    pub(crate) fn boolean(v: &str) -> Result<bool, String> {
        super::values::boolean(v)
    }
    /// `docker-stop-timeout`: whole seconds.
    pub(crate) fn stop_timeout(v: &str) -> Result<u32, String> {
        super::values::stop_timeout(v)
    }
    /// Levenshtein distance, for suggestions.
    pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
        super::values::edit_distance(a, b)
    }
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
