//! The `UWSGIDOCKER_*` contract between the front-ends and the bridge runtime.
//!
//! Wrapper mode reads these variables from the Emperor's environment; `docker_plugin.so`
//! turns its options into them and execs the bridge with them. Both go through this
//! module, so the names, the defaults and the checks are written once.
//!
//! The prefix is `UWSGIDOCKER_`, not `UWSGI_`: uWSGI takes every `UWSGI_*` variable as
//! one of its own options.
//!
//! Sans-IO: [`RuntimeSettings::from_env`] looks variables up through a function, and
//! [`RuntimeSettings::to_env`] returns `(name, value)` pairs.
//!
//! ```
//! use uwsgi_docker_core::settings::{var, RuntimeSettings};
//!
//! let env = [(var::DEBUG, "1"), (var::SOCKET_MODE, "660")];
//! let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
//! let settings = RuntimeSettings::from_env(&lookup).unwrap();
//! assert!(settings.emperor.debug);
//! assert_eq!(settings.emperor.socket_mode, Some(0o660));
//! assert_eq!(settings.to_env(), [(var::DEBUG, "1".to_owned()), (var::SOCKET_MODE, "660".to_owned())]);
//! ```
use std::path::PathBuf;

use crate::spec::{EmperorSettings, PullPolicy};

/// The variable names, one constant each.
pub mod var {
    /// Path of dockerd's unix socket (wins over `DOCKER_HOST`).
    pub const DAEMON_SOCKET: &str = "UWSGIDOCKER_DAEMON_SOCKET";
    /// Directory for proxy sockets, instead of the Emperor's private runtime directory.
    pub const SOCKET_DIR: &str = "UWSGIDOCKER_SOCKET_DIR";
    /// Base of the Emperors' private runtime directories.
    pub const RUNTIME_DIR: &str = "UWSGIDOCKER_RUNTIME_DIR";
    /// `1`: refuse vassals without a `docker-image`.
    pub const REQUIRED: &str = "UWSGIDOCKER_REQUIRED";
    /// `1`: debug log lines.
    pub const DEBUG: &str = "UWSGIDOCKER_DEBUG";
    /// `0`: relay the container's log lines without the `[VASSAL] ` prefix.
    pub const LOG_PREFIX: &str = "UWSGIDOCKER_LOG_PREFIX";
    /// Octal mode of the unix sockets the bridge binds.
    pub const SOCKET_MODE: &str = "UWSGIDOCKER_SOCKET_MODE";
    /// `USER[:GROUP]` of `docker-socket` unix sockets.
    pub const SOCKET_OWNER: &str = "UWSGIDOCKER_SOCKET_OWNER";
    /// The static in-container launcher.
    pub const LAUNCHER: &str = "UWSGIDOCKER_LAUNCHER";
    /// Seconds a container has to connect to its proxy socket.
    pub const HANDOFF_TIMEOUT: &str = "UWSGIDOCKER_HANDOFF_TIMEOUT";
    /// The default `docker-pull`: `missing`, `always` or `never`.
    pub const PULL: &str = "UWSGIDOCKER_PULL";
    /// Seconds a pull may take, before the handoff deadline starts.
    pub const PULL_TIMEOUT: &str = "UWSGIDOCKER_PULL_TIMEOUT";
    /// Containers being created and started at once against one daemon, host-wide.
    pub const MAX_STARTS: &str = "UWSGIDOCKER_MAX_STARTS";
    /// The operator's registry credentials: a file in Docker's `config.json` format.
    pub const REGISTRY_AUTH: &str = "UWSGIDOCKER_REGISTRY_AUTH";
    /// The real uWSGI binary for vassals that run on the host.
    pub const UWSGI: &str = "UWSGIDOCKER_UWSGI";
    /// The `io.uwsgi-docker.emperor` label value.
    pub const EMPEROR_ID: &str = "UWSGIDOCKER_EMPEROR_ID";
    /// The operator's policy file (tenant mode).
    pub const POLICY: &str = "UWSGIDOCKER_POLICY";
    /// Put before every container name.
    pub const NAME_PREFIX: &str = "UWSGIDOCKER_NAME_PREFIX";
    /// Not a setting: the wrapper sets it on its own re-exec (to retitle itself) and
    /// removes it before anything else runs.
    pub const TITLED: &str = "UWSGIDOCKER_TITLED";

    /// Every setting, in the order [`super::RuntimeSettings::to_env`] writes them: the
    /// names of [`super::DESCRIBED`].
    pub const ALL: &[&str] = &super::NAMES;
}

/// One setting as `uwsgi-docker --help` (and so its man page) describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Described {
    /// The variable.
    pub name: &'static str,
    /// What it sets, in a line.
    pub meaning: &'static str,
    /// What holds when it is not set.
    pub default: &'static str,
}

/// Every setting with its meaning and default: the one list the help text, the README's
/// settings table (a test holds it to this) and [`var::ALL`] come from.
pub const DESCRIBED: &[Described] = &[
    Described {
        name: var::DAEMON_SOCKET,
        meaning: "dockerd's unix socket",
        default: "DOCKER_HOST=unix://..., else /var/run/docker.sock",
    },
    Described {
        name: var::SOCKET_DIR,
        meaning: "directory for proxy sockets",
        default: "the Emperor's private runtime directory",
    },
    Described {
        name: var::RUNTIME_DIR,
        meaning: "root's directory for each Emperor's private runtime directory, the launcher and the daemons' remembered API versions",
        default: DEFAULT_RUNTIME_DIR,
    },
    Described {
        name: var::REQUIRED,
        meaning: "1: refuse vassals without docker-image",
        default: "off",
    },
    Described {
        name: var::DEBUG,
        meaning: "1: debug log lines",
        default: "off",
    },
    Described {
        name: var::LOG_PREFIX,
        meaning: "0: the container's log lines without the [VASSAL] prefix",
        default: "on",
    },
    Described {
        name: var::SOCKET_MODE,
        meaning: "octal mode of docker-socket sockets, and of proxy sockets outside the runtime directory",
        default: "600",
    },
    Described {
        name: var::SOCKET_OWNER,
        meaning: "USER[:GROUP] of docker-socket unix sockets",
        default: "the bridge's user (root)",
    },
    Described {
        name: var::LAUNCHER,
        meaning: "another static in-container launcher",
        default: "the one built into uwsgi-docker",
    },
    Described {
        name: var::HANDOFF_TIMEOUT,
        meaning: "seconds a container has to connect to its proxy socket (1 to 3600)",
        default: "30",
    },
    Described {
        name: var::PULL,
        meaning: "missing, always or never: when images are pulled (a vassal's docker-pull wins)",
        default: "missing",
    },
    Described {
        name: var::PULL_TIMEOUT,
        meaning: "seconds a pull may take (1 to 86400); the handoff deadline starts after it",
        default: "600",
    },
    Described {
        name: var::MAX_STARTS,
        meaning: "containers being created and started at once against one daemon, host-wide (0: no limit)",
        default: "8",
    },
    Described {
        name: var::REGISTRY_AUTH,
        meaning: "registry credentials, a file in Docker's config.json format, mode 600",
        default: "none",
    },
    Described {
        name: var::UWSGI,
        meaning: "the real uWSGI binary for non-Docker vassals",
        default: "uwsgi on PATH",
    },
    Described {
        name: var::EMPEROR_ID,
        meaning: "the Emperor label value, and its runtime directory's name",
        default: "HOST:PPID",
    },
    Described {
        name: var::POLICY,
        meaning: "the operator's policy file: tenant mode (each vassal under its file owner's rules)",
        default: "none",
    },
    Described {
        name: var::NAME_PREFIX,
        meaning: "put before every container name, so that several Emperors can share one daemon",
        default: "none",
    },
];

const NAMES: [&str; DESCRIBED.len()] = {
    let mut names = [""; DESCRIBED.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = DESCRIBED[i].name;
        i += 1;
    }
    names
};

/// The default handoff deadline, in seconds: a container that has not connected to its
/// proxy socket within this long is not going to (wrong `docker-uwsgi`, no uWSGI in the image).
pub const DEFAULT_HANDOFF_TIMEOUT_SECS: u64 = 30;
/// The longest handoff deadline [`var::HANDOFF_TIMEOUT`] takes, in seconds (an hour).
pub const MAX_HANDOFF_TIMEOUT_SECS: u64 = 3600;
/// The default pull deadline, in seconds ([`var::PULL_TIMEOUT`]).
pub const DEFAULT_PULL_TIMEOUT_SECS: u64 = 600;
/// The longest pull deadline [`var::PULL_TIMEOUT`] takes, in seconds (a day).
pub const MAX_PULL_TIMEOUT_SECS: u64 = 86_400;
/// The default bound on creates and starts in flight against one daemon
/// ([`var::MAX_STARTS`]): `xargs -P8 docker run -d`'s. Storms of 50 and 100 start no slower
/// with it, and one of 150 finishes only with a bound (BENCHMARKS.md, "Storm").
pub const DEFAULT_MAX_STARTS: u32 = 8;
/// The largest bound [`var::MAX_STARTS`] takes (each slot is a file).
pub const MAX_MAX_STARTS: u32 = 1024;
/// The default base of the Emperors' private runtime directories.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/uwsgi-docker";

/// Everything the bridge runtime takes from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeSettings {
    /// The settings the plugin's options also carry: daemon socket, socket directory,
    /// required, debug, socket mode, name prefix.
    pub emperor: EmperorSettings,
    /// The real uWSGI for non-Docker vassals ([`var::UWSGI`]); `None`: `uwsgi` on `PATH`.
    pub uwsgi: Option<PathBuf>,
    /// The Emperor label value ([`var::EMPEROR_ID`]); `None`: the front-end picks one.
    pub emperor_id: Option<String>,
    /// Prefix the container's log lines with `[VASSAL] ` ([`var::LOG_PREFIX`], default on).
    pub log_prefix: bool,
    /// The operator's policy file ([`var::POLICY`]): tenant mode when set.
    pub policy: Option<PathBuf>,
    /// Where each Emperor's private proxy directory is made ([`var::RUNTIME_DIR`],
    /// default [`DEFAULT_RUNTIME_DIR`]).
    pub runtime_dir: PathBuf,
    /// Default `USER[:GROUP]` of `docker-socket` unix sockets ([`var::SOCKET_OWNER`]);
    /// a vassal's `docker-socket-owner` wins.
    pub socket_owner: Option<String>,
    /// How long a container has to connect to its proxy socket, in seconds
    /// ([`var::HANDOFF_TIMEOUT`], default [`DEFAULT_HANDOFF_TIMEOUT_SECS`]).
    pub handoff_timeout_secs: u64,
    /// The static launcher ([`var::LAUNCHER`]); `None`: the runtime's own.
    pub launcher: Option<PathBuf>,
    /// The `docker-pull` of a vassal that does not say ([`var::PULL`], default `missing`).
    pub pull: PullPolicy,
    /// How long a pull may take, in seconds ([`var::PULL_TIMEOUT`], default
    /// [`DEFAULT_PULL_TIMEOUT_SECS`]).
    pub pull_timeout_secs: u64,
    /// How many containers may be being created and started at once against one daemon,
    /// host-wide; 0: no limit ([`var::MAX_STARTS`], default [`DEFAULT_MAX_STARTS`]).
    pub max_starts: u32,
    /// The operator's registry credentials file ([`var::REGISTRY_AUTH`]).
    pub registry_auth: Option<PathBuf>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            emperor: EmperorSettings::default(),
            uwsgi: None,
            emperor_id: None,
            log_prefix: true,
            policy: None,
            runtime_dir: PathBuf::from(DEFAULT_RUNTIME_DIR),
            socket_owner: None,
            handoff_timeout_secs: DEFAULT_HANDOFF_TIMEOUT_SECS,
            launcher: None,
            pull: PullPolicy::Missing,
            pull_timeout_secs: DEFAULT_PULL_TIMEOUT_SECS,
            max_starts: DEFAULT_MAX_STARTS,
            registry_auth: None,
        }
    }
}

/// A setting we refuse: the operator's environment (or the plugin's options), not a vassal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A yes/no variable with another value.
    #[error("{var}={value:?} is not a yes/no value; use 1 or 0")]
    BadBool {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// [`var::SOCKET_MODE`] is not an octal mode up to `7777`.
    #[error("{var}={value:?} is not an octal file mode; use e.g. 660")]
    BadMode {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// `DOCKER_HOST` names something other than an absolute unix socket path.
    #[error("{0}; or set UWSGIDOCKER_DAEMON_SOCKET to dockerd's unix socket path")]
    DockerHost(crate::spec::SettingsError),
    /// A path variable with a relative path.
    #[error("{var}={value:?} must be an absolute path")]
    NotAbsolute {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// [`var::NAME_PREFIX`] cannot start a container name.
    #[error("UWSGIDOCKER_NAME_PREFIX={value:?} (docker-name-prefix) cannot start container names: {reason}")]
    BadNamePrefix {
        /// The prefix.
        value: String,
        /// Why a container name cannot start with it.
        reason: crate::plan::NamePrefixError,
    },
    /// [`var::SOCKET_OWNER`] is not `USER[:GROUP]`.
    #[error(
        "{var}={value:?} is not USER[:GROUP] (names or numbers, no spaces), e.g. root:www-data"
    )]
    BadOwner {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// [`var::HANDOFF_TIMEOUT`] is not whole seconds in range.
    #[error("UWSGIDOCKER_HANDOFF_TIMEOUT={value:?} is not a whole number of seconds from 1 to {MAX_HANDOFF_TIMEOUT_SECS}")]
    BadHandoffTimeout {
        /// Its value.
        value: String,
    },
    /// [`var::PULL`] is not a pull policy.
    #[error("UWSGIDOCKER_PULL={value:?}: {reason}")]
    BadPull {
        /// Its value.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// [`var::PULL_TIMEOUT`] is not whole seconds in range.
    #[error("UWSGIDOCKER_PULL_TIMEOUT={value:?} is not a whole number of seconds from 1 to {MAX_PULL_TIMEOUT_SECS}")]
    BadPullTimeout {
        /// Its value.
        value: String,
    },
    /// [`var::MAX_STARTS`] is not a whole number in range.
    #[error("UWSGIDOCKER_MAX_STARTS={value:?} is not a whole number from 0 (no limit) to {MAX_MAX_STARTS}")]
    BadMaxStarts {
        /// Its value.
        value: String,
    },
}

// Not `#[from]`: the cause is printed, so it is not also the `source()`.
impl From<crate::spec::SettingsError> for SettingsError {
    fn from(e: crate::spec::SettingsError) -> Self {
        SettingsError::DockerHost(e)
    }
}

impl SettingsError {
    /// The variable the error is about (`DOCKER_HOST` for [`SettingsError::DockerHost`]).
    pub fn var(&self) -> &'static str {
        match self {
            SettingsError::BadBool { var, .. }
            | SettingsError::BadMode { var, .. }
            | SettingsError::NotAbsolute { var, .. }
            | SettingsError::BadOwner { var, .. } => var,
            SettingsError::DockerHost(_) => "DOCKER_HOST",
            SettingsError::BadNamePrefix { .. } => var::NAME_PREFIX,
            SettingsError::BadHandoffTimeout { .. } => var::HANDOFF_TIMEOUT,
            SettingsError::BadPull { .. } => var::PULL,
            SettingsError::BadPullTimeout { .. } => var::PULL_TIMEOUT,
            SettingsError::BadMaxStarts { .. } => var::MAX_STARTS,
        }
    }
}

impl RuntimeSettings {
    /// Reads the settings through `get` (the process environment in production, a map in
    /// tests). An empty value counts as unset; `DOCKER_HOST` is read only when
    /// [`var::DAEMON_SOCKET`] is unset.
    ///
    /// # Errors
    /// The first variable with a value we refuse, naming it and what to give instead.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let non_empty = |name: &str| get(name).filter(|v| !v.is_empty());
        let mut emperor = match non_empty(var::DAEMON_SOCKET) {
            Some(path) => EmperorSettings {
                daemon_socket: path,
                ..EmperorSettings::default()
            },
            None => EmperorSettings::from_env(get)?,
        };
        emperor.socket_dir = absolute(var::SOCKET_DIR, non_empty(var::SOCKET_DIR))?;
        emperor.docker_required = flag(get, var::REQUIRED)?.unwrap_or(false);
        emperor.debug = flag(get, var::DEBUG)?.unwrap_or(false);
        if let Some(mode) = non_empty(var::SOCKET_MODE) {
            emperor.socket_mode = Some(match u32::from_str_radix(&mode, 8) {
                Ok(m) if m <= 0o7777 => m,
                _ => {
                    return Err(SettingsError::BadMode {
                        var: var::SOCKET_MODE,
                        value: mode,
                    })
                }
            });
        }
        if let Some(prefix) = non_empty(var::NAME_PREFIX) {
            if let Err(reason) = crate::plan::check_name_prefix(&prefix) {
                return Err(SettingsError::BadNamePrefix {
                    value: prefix,
                    reason,
                });
            }
            emperor.name_prefix = Some(prefix);
        }
        let socket_owner = match non_empty(var::SOCKET_OWNER) {
            Some(owner) if !is_owner(&owner) => {
                return Err(SettingsError::BadOwner {
                    var: var::SOCKET_OWNER,
                    value: owner,
                })
            }
            owner => owner,
        };
        let handoff_timeout_secs = match non_empty(var::HANDOFF_TIMEOUT) {
            Some(value) => match value.parse::<u64>() {
                Ok(secs) if (1..=MAX_HANDOFF_TIMEOUT_SECS).contains(&secs) => secs,
                _ => return Err(SettingsError::BadHandoffTimeout { value }),
            },
            None => DEFAULT_HANDOFF_TIMEOUT_SECS,
        };
        let pull = match non_empty(var::PULL) {
            Some(value) => match PullPolicy::parse(&value) {
                Ok(pull) => pull,
                Err(reason) => return Err(SettingsError::BadPull { value, reason }),
            },
            None => PullPolicy::Missing,
        };
        let pull_timeout_secs = match non_empty(var::PULL_TIMEOUT) {
            Some(value) => match value.parse::<u64>() {
                Ok(secs) if (1..=MAX_PULL_TIMEOUT_SECS).contains(&secs) => secs,
                _ => return Err(SettingsError::BadPullTimeout { value }),
            },
            None => DEFAULT_PULL_TIMEOUT_SECS,
        };
        let max_starts = match non_empty(var::MAX_STARTS) {
            Some(value) => match value.parse::<u32>() {
                Ok(count) if count <= MAX_MAX_STARTS => count,
                _ => return Err(SettingsError::BadMaxStarts { value }),
            },
            None => DEFAULT_MAX_STARTS,
        };
        Ok(RuntimeSettings {
            emperor,
            uwsgi: non_empty(var::UWSGI).map(PathBuf::from),
            emperor_id: non_empty(var::EMPEROR_ID),
            log_prefix: flag(get, var::LOG_PREFIX)?.unwrap_or(true),
            policy: absolute(var::POLICY, non_empty(var::POLICY))?.map(PathBuf::from),
            runtime_dir: absolute(var::RUNTIME_DIR, non_empty(var::RUNTIME_DIR))?
                .map_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR), PathBuf::from),
            socket_owner,
            handoff_timeout_secs,
            launcher: non_empty(var::LAUNCHER).map(PathBuf::from),
            pull,
            pull_timeout_secs,
            max_starts,
            registry_auth: absolute(var::REGISTRY_AUTH, non_empty(var::REGISTRY_AUTH))?
                .map(PathBuf::from),
        })
    }

    /// The settings as variables, in [`var::ALL`]'s order: only those that differ from
    /// [`RuntimeSettings::default`], so that they can be added to an inherited environment
    /// without overriding what it already says. [`RuntimeSettings::from_env`] reads them
    /// back to equal settings.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let defaults = RuntimeSettings::default();
        let emperor = &self.emperor;
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        let yes = |on: bool| on.then(|| "1".to_owned());
        let values = [
            (var::DAEMON_SOCKET, {
                let default = &defaults.emperor.daemon_socket;
                (emperor.daemon_socket != *default).then(|| emperor.daemon_socket.clone())
            }),
            (var::SOCKET_DIR, emperor.socket_dir.clone()),
            (
                var::RUNTIME_DIR,
                (self.runtime_dir != defaults.runtime_dir)
                    .then(|| self.runtime_dir.to_string_lossy().into_owned()),
            ),
            (var::REQUIRED, yes(emperor.docker_required)),
            (var::DEBUG, yes(emperor.debug)),
            (var::LOG_PREFIX, (!self.log_prefix).then(|| "0".to_owned())),
            (
                var::SOCKET_MODE,
                emperor.socket_mode.map(|m| format!("{m:o}")),
            ),
            (var::SOCKET_OWNER, self.socket_owner.clone()),
            (var::LAUNCHER, path(&self.launcher)),
            (
                var::HANDOFF_TIMEOUT,
                (self.handoff_timeout_secs != DEFAULT_HANDOFF_TIMEOUT_SECS)
                    .then(|| self.handoff_timeout_secs.to_string()),
            ),
            (
                var::PULL,
                (self.pull != PullPolicy::Missing).then(|| self.pull.as_str().to_owned()),
            ),
            (
                var::PULL_TIMEOUT,
                (self.pull_timeout_secs != DEFAULT_PULL_TIMEOUT_SECS)
                    .then(|| self.pull_timeout_secs.to_string()),
            ),
            (
                var::MAX_STARTS,
                (self.max_starts != DEFAULT_MAX_STARTS).then(|| self.max_starts.to_string()),
            ),
            (var::REGISTRY_AUTH, path(&self.registry_auth)),
            (var::UWSGI, path(&self.uwsgi)),
            (var::EMPEROR_ID, self.emperor_id.clone()),
            (var::POLICY, path(&self.policy)),
            (var::NAME_PREFIX, emperor.name_prefix.clone()),
        ];
        values
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?)))
            .collect()
    }
}

/// `value` when it is an absolute path.
fn absolute(name: &'static str, value: Option<String>) -> Result<Option<String>, SettingsError> {
    match value {
        Some(path) if !path.starts_with('/') => Err(SettingsError::NotAbsolute {
            var: name,
            value: path,
        }),
        value => Ok(value),
    }
}

/// `USER` or `USER:GROUP`, each part a name or a number, no spaces.
fn is_owner(value: &str) -> bool {
    let part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    match value.split_once(':') {
        Some((user, group)) => part(user) && part(group),
        None => part(value),
    }
}

/// A yes/no variable; `None` when unset. Set but empty is no.
fn flag(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<bool>, SettingsError> {
    let Some(value) = get(name) else {
        return Ok(None);
    };
    match value.to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Ok(Some(false)),
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        _ => Err(SettingsError::BadBool { var: name, value }),
    }
}

#[cfg(test)]
mod tests;
