//! Emperor-level settings from the environment. The prefix is `UWSGIDOCKER_`, not
//! `UWSGI_`: uWSGI takes every `UWSGI_*` variable as one of its own options.
use std::path::PathBuf;

use uwsgi_docker_core::spec::EmperorSettings;

/// Variables we set for ourselves and strip before exec'ing uWSGI.
pub const REEXEC_MARKER: &str = "UWSGIDOCKER_TITLED";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    pub emperor: EmperorSettings,
    /// The real uWSGI for non-Docker vassals (`UWSGIDOCKER_UWSGI`).
    pub uwsgi: Option<PathBuf>,
    /// The Emperor label value (`UWSGIDOCKER_EMPEROR_ID`); the caller defaults it.
    pub emperor_id: Option<String>,
    /// Prefix the container's log lines with `[VASSAL] ` (`UWSGIDOCKER_LOG_PREFIX`, default on).
    pub log_prefix: bool,
    /// The operator's policy file (`UWSGIDOCKER_POLICY`): tenant mode when set.
    pub policy: Option<PathBuf>,
    /// Where each Emperor's private proxy directory is made (`UWSGIDOCKER_RUNTIME_DIR`,
    /// default [`DEFAULT_RUNTIME_DIR`]).
    pub runtime_dir: PathBuf,
    /// Default `USER[:GROUP]` of `docker-socket` unix sockets (`UWSGIDOCKER_SOCKET_OWNER`);
    /// a vassal's `docker-socket-owner` wins.
    pub socket_owner: Option<String>,
    /// How long a container has to connect to its proxy socket, in seconds
    /// (`UWSGIDOCKER_HANDOFF_TIMEOUT`, default [`DEFAULT_HANDOFF_TIMEOUT_SECS`]).
    pub handoff_timeout_secs: u64,
}

/// The default handoff deadline: a container that has not connected to its proxy socket
/// within this long is not going to (wrong `docker-uwsgi`, an image without uWSGI).
pub const DEFAULT_HANDOFF_TIMEOUT_SECS: u64 = 30;
/// The longest handoff deadline `UWSGIDOCKER_HANDOFF_TIMEOUT` takes (an hour).
const MAX_HANDOFF_TIMEOUT_SECS: u64 = 3600;

/// The default base of the Emperors' private runtime directories.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/uwsgi-docker";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{var}={value:?} is not a yes/no value; use 1 or 0")]
    BadBool { var: &'static str, value: String },
    #[error("{var}={value:?} is not an octal file mode; use e.g. 660")]
    BadMode { var: &'static str, value: String },
    #[error("{0}; or set UWSGIDOCKER_DAEMON_SOCKET to dockerd's unix socket path")]
    DockerHost(#[from] uwsgi_docker_core::spec::SettingsError),
    #[error("{var}={value:?} must be an absolute path")]
    NotAbsolute { var: &'static str, value: String },
    #[error("UWSGIDOCKER_NAME_PREFIX={value:?} (docker-name-prefix) cannot start container names: {reason}")]
    BadNamePrefix { value: String, reason: String },
    #[error(
        "{var}={value:?} is not USER[:GROUP] (names or numbers, no spaces), e.g. root:www-data"
    )]
    BadOwner { var: &'static str, value: String },
    #[error("UWSGIDOCKER_HANDOFF_TIMEOUT={value:?} is not a whole number of seconds from 1 to {MAX_HANDOFF_TIMEOUT_SECS}")]
    BadHandoffTimeout { value: String },
}

/// Read the settings through `get` (the process env in production, a map in tests).
pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<RuntimeSettings, SettingsError> {
    let non_empty = |var: &str| get(var).filter(|v| !v.is_empty());
    // Our own variable wins; DOCKER_HOST (read by the core's rules) only when it is unset.
    let mut emperor = match non_empty("UWSGIDOCKER_DAEMON_SOCKET") {
        Some(path) => {
            let mut settings = EmperorSettings::default();
            settings.daemon_socket = path;
            settings
        }
        None => EmperorSettings::from_env(get)?,
    };
    if let Some(dir) = non_empty("UWSGIDOCKER_SOCKET_DIR") {
        if !dir.starts_with('/') {
            return Err(SettingsError::NotAbsolute {
                var: "UWSGIDOCKER_SOCKET_DIR",
                value: dir,
            });
        }
        emperor.socket_dir = Some(dir);
    }
    emperor.docker_required = flag(get, "UWSGIDOCKER_REQUIRED")?;
    emperor.debug = flag(get, "UWSGIDOCKER_DEBUG")?;
    if let Some(mode) = non_empty("UWSGIDOCKER_SOCKET_MODE") {
        emperor.socket_mode = Some(match u32::from_str_radix(&mode, 8) {
            Ok(m) if m <= 0o7777 => m,
            _ => {
                return Err(SettingsError::BadMode {
                    var: "UWSGIDOCKER_SOCKET_MODE",
                    value: mode,
                })
            }
        });
    }
    if let Some(prefix) = non_empty("UWSGIDOCKER_NAME_PREFIX") {
        if let Err(reason) = uwsgi_docker_core::plan::check_name_prefix(&prefix) {
            return Err(SettingsError::BadNamePrefix {
                value: prefix,
                reason: reason.to_string(),
            });
        }
        emperor.name_prefix = Some(prefix);
    }
    let policy = match non_empty("UWSGIDOCKER_POLICY") {
        Some(path) if !path.starts_with('/') => {
            return Err(SettingsError::NotAbsolute {
                var: "UWSGIDOCKER_POLICY",
                value: path,
            })
        }
        path => path.map(PathBuf::from),
    };
    let runtime_dir = match non_empty("UWSGIDOCKER_RUNTIME_DIR") {
        Some(dir) if !dir.starts_with('/') => {
            return Err(SettingsError::NotAbsolute {
                var: "UWSGIDOCKER_RUNTIME_DIR",
                value: dir,
            })
        }
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(DEFAULT_RUNTIME_DIR),
    };
    let socket_owner = match non_empty("UWSGIDOCKER_SOCKET_OWNER") {
        Some(owner) if !is_owner(&owner) => {
            return Err(SettingsError::BadOwner {
                var: "UWSGIDOCKER_SOCKET_OWNER",
                value: owner,
            })
        }
        owner => owner,
    };
    let handoff_timeout_secs = match non_empty("UWSGIDOCKER_HANDOFF_TIMEOUT") {
        Some(value) => match value.parse::<u64>() {
            Ok(secs) if (1..=MAX_HANDOFF_TIMEOUT_SECS).contains(&secs) => secs,
            _ => return Err(SettingsError::BadHandoffTimeout { value }),
        },
        None => DEFAULT_HANDOFF_TIMEOUT_SECS,
    };
    Ok(RuntimeSettings {
        handoff_timeout_secs,
        runtime_dir,
        socket_owner,
        emperor,
        policy,
        uwsgi: non_empty("UWSGIDOCKER_UWSGI").map(PathBuf::from),
        emperor_id: non_empty("UWSGIDOCKER_EMPEROR_ID"),
        log_prefix: get("UWSGIDOCKER_LOG_PREFIX").is_none() || flag(get, "UWSGIDOCKER_LOG_PREFIX")?,
    })
}

/// `USER` or `USER:GROUP`, each part a name or a number, no spaces.
fn is_owner(value: &str) -> bool {
    let part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    match value.split_once(':') {
        Some((user, group)) => part(user) && part(group),
        None => part(value),
    }
}

fn flag(get: &dyn Fn(&str) -> Option<String>, var: &'static str) -> Result<bool, SettingsError> {
    let Some(value) = get(var) else {
        return Ok(false);
    };
    match value.to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Ok(false),
        "1" | "true" | "yes" | "on" => Ok(true),
        _ => Err(SettingsError::BadBool { var, value }),
    }
}

/// The process environment.
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<RuntimeSettings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        from_env(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let s = with(&[]).expect("defaults");
        assert_eq!(s.emperor, EmperorSettings::default());
        assert_eq!(s.uwsgi, None);
        assert_eq!(s.emperor_id, None);
        assert!(s.log_prefix, "prefixed unless asked otherwise");
        assert_eq!(s.policy, None, "no tenant mode unless a policy is named");
        assert_eq!(s.runtime_dir, PathBuf::from("/run/uwsgi-docker"));
        assert_eq!(s.socket_owner, None);
    }

    #[test]
    fn runtime_dir_and_socket_owner() {
        let s = with(&[
            ("UWSGIDOCKER_RUNTIME_DIR", "/var/lib/ud"),
            ("UWSGIDOCKER_SOCKET_OWNER", "root:www-data"),
        ])
        .expect("valid");
        assert_eq!(s.runtime_dir, PathBuf::from("/var/lib/ud"));
        assert_eq!(s.socket_owner.as_deref(), Some("root:www-data"));
        assert!(matches!(
            with(&[("UWSGIDOCKER_RUNTIME_DIR", "run/ud")]),
            Err(SettingsError::NotAbsolute { .. })
        ));
        for bad in ["www data", "root:", ":www-data", "a:b:c"] {
            assert!(
                matches!(
                    with(&[("UWSGIDOCKER_SOCKET_OWNER", bad)]),
                    Err(SettingsError::BadOwner { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_handoff_deadline_is_whole_seconds_within_bounds() {
        let secs =
            |v: &str| with(&[("UWSGIDOCKER_HANDOFF_TIMEOUT", v)]).map(|s| s.handoff_timeout_secs);
        assert_eq!(
            with(&[]).map(|s| s.handoff_timeout_secs),
            Ok(DEFAULT_HANDOFF_TIMEOUT_SECS)
        );
        assert_eq!(secs("5"), Ok(5));
        assert_eq!(secs("3600"), Ok(3600));
        for bad in ["0", "3601", "-1", "1.5", "5s", "lots"] {
            assert!(
                matches!(secs(bad), Err(SettingsError::BadHandoffTimeout { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn log_prefix_can_be_turned_off() {
        assert_eq!(
            with(&[("UWSGIDOCKER_LOG_PREFIX", "0")]).map(|s| s.log_prefix),
            Ok(false)
        );
        assert_eq!(
            with(&[("UWSGIDOCKER_LOG_PREFIX", "on")]).map(|s| s.log_prefix),
            Ok(true)
        );
        assert!(with(&[("UWSGIDOCKER_LOG_PREFIX", "maybe")]).is_err());
    }

    #[test]
    fn every_variable_is_read() {
        let s = with(&[
            ("UWSGIDOCKER_DAEMON_SOCKET", "/run/podman.sock"),
            ("DOCKER_HOST", "unix:///ignored.sock"),
            ("UWSGIDOCKER_SOCKET_DIR", "/run/vassals"),
            ("UWSGIDOCKER_REQUIRED", "1"),
            ("UWSGIDOCKER_DEBUG", "yes"),
            ("UWSGIDOCKER_SOCKET_MODE", "0660"),
            ("UWSGIDOCKER_UWSGI", "/usr/bin/uwsgi-core"),
            ("UWSGIDOCKER_EMPEROR_ID", "host-a:emperor"),
            ("UWSGIDOCKER_NAME_PREFIX", "tenant1-"),
            ("UWSGIDOCKER_POLICY", "/etc/uwsgi/policy.ini"),
        ])
        .expect("valid");
        assert_eq!(s.emperor.name_prefix.as_deref(), Some("tenant1-"));
        assert_eq!(s.policy, Some(PathBuf::from("/etc/uwsgi/policy.ini")));
        assert_eq!(s.emperor.daemon_socket, "/run/podman.sock");
        assert_eq!(s.emperor.socket_dir.as_deref(), Some("/run/vassals"));
        assert!(s.emperor.docker_required);
        assert!(s.emperor.debug);
        assert_eq!(s.emperor.socket_mode, Some(0o660));
        assert_eq!(s.uwsgi, Some(PathBuf::from("/usr/bin/uwsgi-core")));
        assert_eq!(s.emperor_id.as_deref(), Some("host-a:emperor"));
    }

    #[test]
    fn docker_host_is_used_when_unix() {
        let s = with(&[("DOCKER_HOST", "unix:///run/user/1000/docker.sock")]).expect("valid");
        assert_eq!(s.emperor.daemon_socket, "/run/user/1000/docker.sock");
        let err = with(&[("DOCKER_HOST", "tcp://1.2.3.4:2375")]).expect_err("tcp is refused");
        assert!(matches!(err, SettingsError::DockerHost(_)), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("tcp://1.2.3.4:2375") && message.contains("UWSGIDOCKER_DAEMON_SOCKET"),
            "{message}"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(
            with(&[("UWSGIDOCKER_REQUIRED", "maybe")]),
            Err(SettingsError::BadBool {
                var: "UWSGIDOCKER_REQUIRED",
                ..
            })
        ));
        assert!(matches!(
            with(&[("UWSGIDOCKER_SOCKET_MODE", "666x")]),
            Err(SettingsError::BadMode { .. })
        ));
        assert!(matches!(
            with(&[("UWSGIDOCKER_SOCKET_MODE", "77777")]),
            Err(SettingsError::BadMode { .. })
        ));
        assert!(matches!(
            with(&[("UWSGIDOCKER_SOCKET_DIR", "run/x")]),
            Err(SettingsError::NotAbsolute { .. })
        ));
        for bad in ["-x", "a/b", "a b", &"p".repeat(33)] {
            let error = with(&[("UWSGIDOCKER_NAME_PREFIX", bad)]).expect_err(bad);
            assert!(
                matches!(error, SettingsError::BadNamePrefix { .. }),
                "{error:?}"
            );
            assert!(
                error.to_string().contains("UWSGIDOCKER_NAME_PREFIX"),
                "{error}"
            );
        }
        assert_eq!(
            with(&[("UWSGIDOCKER_NAME_PREFIX", "")]).map(|s| s.emperor.name_prefix),
            Ok(None),
            "empty means unset"
        );
        assert!(matches!(
            with(&[("UWSGIDOCKER_POLICY", "policy.ini")]),
            Err(SettingsError::NotAbsolute {
                var: "UWSGIDOCKER_POLICY",
                ..
            })
        ));
        assert_eq!(
            with(&[("UWSGIDOCKER_DEBUG", "0")]).map(|s| s.emperor.debug),
            Ok(false)
        );
    }
}
