//! Command-line parsing in two stages: raw argv is split into a subcommand, flags and
//! positionals ([`RawArgs`]); then each subcommand validates its own shape into a
//! [`Command`]. Wrapper mode (a stock Emperor's `emperor-wrapper`) is told apart by
//! `UWSGI_EMPEROR_FD` being set and `argv[1]` not being one of our subcommands.
use std::ffi::OsString;
use std::path::PathBuf;

/// Our subcommands; anything else under an Emperor is wrapper mode.
pub const SUBCOMMANDS: &[&str] = &[
    "run",
    "check",
    "ps",
    "gc",
    "help",
    "--help",
    "-h",
    "--version",
    "-V",
];

/// What the user asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Exec'd by an Emperor as its `emperor-wrapper`.
    Wrapper(WrapperArgs),
    /// Run one vassal without an Emperor.
    Run {
        file: PathBuf,
    },
    /// Validate a vassal and print the API requests (dry run), under `policy` when given.
    Check {
        file: PathBuf,
        policy: Option<PathBuf>,
    },
    /// List the containers we own.
    Ps,
    /// Remove containers whose bridge is gone.
    Gc {
        dry_run: bool,
    },
    /// Print help: the general usage, or one subcommand's.
    Help(Option<&'static str>),
    Version,
}

/// How the Emperor passed the vassal's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFlag {
    Ini,
    Xml,
    Yaml,
    Json,
    /// `--config`: uWSGI picks the format by extension (`emperor-extra-extension`).
    Config,
    /// `--inherit`: the Emperor's default for a name with no known extension.
    Inherit,
}

impl ConfigFlag {
    fn from_arg(arg: &str) -> Option<ConfigFlag> {
        Some(match arg {
            "--ini" => ConfigFlag::Ini,
            "--xml" => ConfigFlag::Xml,
            "--yaml" | "--yml" => ConfigFlag::Yaml,
            "--json" | "--js" => ConfigFlag::Json,
            "--config" => ConfigFlag::Config,
            "--inherit" => ConfigFlag::Inherit,
            _ => return None,
        })
    }
}

/// Where the vassal's config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file, relative to the cwd (the vassal directory for `dir://`).
    File(PathBuf),
    /// `emperor://NAME`: a packet on `UWSGI_EMPEROR_FD_CONFIG`.
    Emperor,
}

/// The Emperor's argv for one vassal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapperArgs {
    /// The whole argv, passed on unchanged when we exec the real uWSGI.
    pub argv: Vec<OsString>,
    pub flag: ConfigFlag,
    /// The vassal name as the Emperor knows it (without `emperor://`).
    pub name: String,
    pub source: ConfigSource,
}

impl WrapperArgs {
    /// Only ini vassals can be Docker vassals; `--config` counts when the name ends in `.ini`.
    pub fn is_ini(&self) -> bool {
        match self.flag {
            ConfigFlag::Ini => true,
            ConfigFlag::Config => self.name.ends_with(".ini"),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("argument {0:?} is not UTF-8 text")]
    NotUtf8(String),
    #[error("unknown subcommand {0:?}; try `uwsgi-docker --help`")]
    UnknownSubcommand(String),
    #[error("no subcommand given; try `uwsgi-docker --help`")]
    NoSubcommand,
    #[error("{subcommand}: unknown option {option:?}; try `uwsgi-docker {subcommand} --help`")]
    UnknownOption {
        subcommand: &'static str,
        option: String,
    },
    #[error(
        "{subcommand}: expected {expected}, got {got}; try `uwsgi-docker {subcommand} --help`"
    )]
    Arity {
        subcommand: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error(
        "wrapper mode: no --ini/--xml/--yaml/--json/--config NAME in the Emperor's arguments {0:?}"
    )]
    NoVassalConfig(Vec<String>),
}

/// Stage one: argv split into subcommand, `--flags` and positionals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawArgs {
    pub subcommand: String,
    pub flags: Vec<String>,
    pub positionals: Vec<String>,
}

impl RawArgs {
    /// `argv` without `argv[0]`.
    pub fn split(args: &[OsString]) -> Result<RawArgs, ArgsError> {
        let mut strings = Vec::with_capacity(args.len());
        for arg in args {
            match arg.to_str() {
                Some(s) => strings.push(s.to_owned()),
                None => return Err(ArgsError::NotUtf8(arg.to_string_lossy().into_owned())),
            }
        }
        let mut iter = strings.into_iter();
        let subcommand = iter.next().ok_or(ArgsError::NoSubcommand)?;
        let mut flags = Vec::new();
        let mut positionals = Vec::new();
        let mut only_positionals = false;
        for arg in iter {
            if only_positionals {
                positionals.push(arg);
            } else if arg == "--" {
                only_positionals = true;
            } else if arg.starts_with('-') && arg.len() > 1 {
                flags.push(arg);
            } else {
                positionals.push(arg);
            }
        }
        Ok(RawArgs {
            subcommand,
            flags,
            positionals,
        })
    }
}

/// Parse the whole argv (`argv[0]` included); `emperor_fd_set`: `UWSGI_EMPEROR_FD` is in the env.
pub fn parse(argv: &[OsString], emperor_fd_set: bool) -> Result<Command, ArgsError> {
    let rest = argv.get(1..).unwrap_or_default();
    let first = rest.first().and_then(|a| a.to_str());
    let is_ours = first.is_some_and(|a| SUBCOMMANDS.contains(&a));
    if emperor_fd_set && !is_ours {
        return parse_wrapper(argv).map(Command::Wrapper);
    }
    validate(RawArgs::split(rest)?)
}

/// Stage two.
pub fn validate(raw: RawArgs) -> Result<Command, ArgsError> {
    let sub: &'static str = match raw.subcommand.as_str() {
        "--version" | "-V" => return Ok(Command::Version),
        "--help" | "-h" => return Ok(Command::Help(None)),
        "help" => {
            return Ok(Command::Help(
                raw.positionals
                    .first()
                    .and_then(|p| SUBCOMMANDS.iter().find(|s| *s == p).copied()),
            ))
        }
        "run" => "run",
        "check" => "check",
        "ps" => "ps",
        "gc" => "gc",
        other => return Err(ArgsError::UnknownSubcommand(other.to_owned())),
    };
    if raw.flags.iter().any(|f| f == "--help" || f == "-h") {
        return Ok(Command::Help(Some(sub)));
    }
    let allowed: &[&str] = match sub {
        "gc" => &["--dry-run", "-n"],
        "check" => &["--policy"],
        _ => &[],
    };
    let is_allowed =
        |f: &str| allowed.contains(&f) || (sub == "check" && f.starts_with("--policy="));
    if let Some(bad) = raw.flags.iter().find(|f| !is_allowed(f)) {
        return Err(ArgsError::UnknownOption {
            subcommand: sub,
            option: bad.clone(),
        });
    }
    let one_file = |positionals: Vec<String>| match <[String; 1]>::try_from(positionals) {
        Ok([file]) => Ok(PathBuf::from(file)),
        Err(v) => Err(ArgsError::Arity {
            subcommand: sub,
            expected: "one vassal file",
            got: v.len(),
        }),
    };
    let none = |positionals: &[String]| {
        if positionals.is_empty() {
            Ok(())
        } else {
            Err(ArgsError::Arity {
                subcommand: sub,
                expected: "no arguments",
                got: positionals.len(),
            })
        }
    };
    match sub {
        "run" => Ok(Command::Run {
            file: one_file(raw.positionals)?,
        }),
        "check" => {
            let inline = raw.flags.iter().find_map(|f| f.strip_prefix("--policy="));
            let mut positionals = raw.positionals;
            let policy = match inline {
                Some(path) => Some(PathBuf::from(path)),
                // `--policy FILE VASSAL`: the flag's value is the first positional.
                None if raw.flags.iter().any(|f| f == "--policy") => {
                    if positionals.len() != 2 {
                        return Err(ArgsError::Arity {
                            subcommand: sub,
                            expected: "--policy POLICY.ini FILE.ini",
                            got: positionals.len(),
                        });
                    }
                    Some(PathBuf::from(positionals.remove(0)))
                }
                None => None,
            };
            Ok(Command::Check {
                file: one_file(positionals)?,
                policy,
            })
        }
        "ps" => none(&raw.positionals).map(|()| Command::Ps),
        _ => none(&raw.positionals).map(|()| Command::Gc {
            dry_run: !raw.flags.is_empty(),
        }),
    }
}

/// The Emperor's argv (uWSGI 2.0.x and master): `[wrapper, (--set X)*, FLAG, NAME,
/// (--inherit X)*, (--include X)*]`: all pairs. FLAG follows NAME's extension, and is
/// `--inherit` when there is none. So the vassal is named by the first explicit format flag
/// (whatever the order of the other pairs), else by the first `--inherit`.
fn parse_wrapper(argv: &[OsString]) -> Result<WrapperArgs, ArgsError> {
    let lossy = || {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    };
    let text = |i: usize| argv.get(i).and_then(|a| a.to_str());
    let flag_at = |i: usize| text(i).and_then(ConfigFlag::from_arg);
    let flags = || (1..argv.len()).step_by(2);
    let position = flags()
        .find(|&i| flag_at(i).is_some_and(|f| f != ConfigFlag::Inherit))
        .or_else(|| flags().find(|&i| flag_at(i) == Some(ConfigFlag::Inherit)));
    let Some((flag, value)) = position.and_then(|i| {
        let flag = text(i).and_then(ConfigFlag::from_arg)?;
        Some((flag, argv.get(i + 1)?))
    }) else {
        return Err(ArgsError::NoVassalConfig(lossy()));
    };
    let value = value
        .to_str()
        .ok_or_else(|| ArgsError::NotUtf8(value.to_string_lossy().into_owned()))?;
    let (name, source) = match value.strip_prefix("emperor://") {
        Some(name) => (name.to_owned(), ConfigSource::Emperor),
        None => (value.to_owned(), ConfigSource::File(PathBuf::from(value))),
    };
    Ok(WrapperArgs {
        argv: argv.to_vec(),
        flag,
        name,
        source,
    })
}

pub const USAGE: &str = "\
uwsgi-docker: run uWSGI vassals in Docker containers

Usage:
  uwsgi-docker run FILE.ini      run one vassal without an Emperor (Ctrl-C stops it)
  uwsgi-docker check [--policy POLICY.ini] FILE.ini
                                 validate a vassal and print the API requests (dry run)
  uwsgi-docker ps                list the containers uwsgi-docker owns
  uwsgi-docker gc [--dry-run]    remove containers whose bridge is gone
  uwsgi-docker --version

As an Emperor's `emperor-wrapper = /path/to/uwsgi-docker`, every vassal with a
docker-image runs in a container; the others are exec'd to the real uWSGI.

Environment (prefix UWSGIDOCKER_, so uWSGI does not take them as options):
  UWSGIDOCKER_DAEMON_SOCKET  dockerd's socket (else DOCKER_HOST=unix://..., else /var/run/docker.sock)
  UWSGIDOCKER_SOCKET_DIR     directory for proxy sockets (default: beside the vassal file)
  UWSGIDOCKER_REQUIRED       1: refuse vassals without docker-image
  UWSGIDOCKER_DEBUG          1: debug log lines
  UWSGIDOCKER_LOG_PREFIX     0: the container's log lines without the [VASSAL] prefix
  UWSGIDOCKER_SOCKET_MODE    octal mode of the sockets we bind (default 600)
  UWSGIDOCKER_UWSGI          the real uWSGI binary for non-Docker vassals (default: uwsgi on PATH)
  UWSGIDOCKER_EMPEROR_ID     the Emperor label value (default HOST:PPID)
  UWSGIDOCKER_POLICY         the operator's policy file: tenant mode (each vassal under its file owner's rules)
";

/// Help text of one subcommand.
pub fn help(sub: Option<&str>) -> &'static str {
    match sub {
        Some("run") => {
            "\
Usage: uwsgi-docker run FILE.ini

Run one Docker vassal in the foreground, without an Emperor: bind its proxy socket,
create and start its container, relay its log to stderr. Ctrl-C (SIGINT), SIGTERM or
SIGHUP stop and remove the container. Exit status: 0 when stopped on request, 1 on
failure or when the container exits by itself.
"
        }
        Some("check") => {
            "\
Usage: uwsgi-docker check [--policy POLICY.ini] FILE.ini

Validate the [emperor] section of FILE.ini and print, as JSON, the container name,
labels, proxy paths and every Docker Engine API request the bridge would send (for API
version 1.44, the newest we speak; the real bridge negotiates down to the daemon's).
Nothing is sent: no daemon is needed. Exit status 1 and the reason on stderr when the
file is refused.

With --policy (or UWSGIDOCKER_POLICY), FILE.ini is judged as the bridge judges it in
tenant mode: its owner is the tenant, the verdict names the section that applied and
what the policy forced, and a refusal names the rule and its line.
"
        }
        Some("ps") => {
            "\
Usage: uwsgi-docker ps

List the containers uwsgi-docker owns (label io.uwsgi-docker.managed=1): vassal,
container name, state, age and Emperor.
"
        }
        Some("gc") => {
            "\
Usage: uwsgi-docker gc [--dry-run]

Remove the containers we own whose bridge process (on this host) is gone, and their
stale proxy socket files. A live bridge's container and containers without our label
are never touched; containers of bridges on other hosts are left alone.
  -n, --dry-run   only list what would be removed
"
        }
        _ => USAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn subcommands_parse() {
        assert_eq!(
            parse(&argv(&["ud", "run", "a.ini"]), false),
            Ok(Command::Run {
                file: "a.ini".into()
            })
        );
        assert_eq!(
            parse(&argv(&["ud", "check", "--", "-x.ini"]), false),
            Ok(Command::Check {
                file: "-x.ini".into(),
                policy: None,
            })
        );
        let with_policy = Ok(Command::Check {
            file: "a.ini".into(),
            policy: Some("/etc/p.ini".into()),
        });
        assert_eq!(
            parse(
                &argv(&["ud", "check", "--policy", "/etc/p.ini", "a.ini"]),
                false
            ),
            with_policy
        );
        assert_eq!(
            parse(
                &argv(&["ud", "check", "--policy=/etc/p.ini", "a.ini"]),
                false
            ),
            with_policy
        );
        assert!(matches!(
            parse(&argv(&["ud", "check", "--policy", "a.ini"]), false),
            Err(ArgsError::Arity { .. })
        ));
        assert_eq!(parse(&argv(&["ud", "ps"]), false), Ok(Command::Ps));
        assert_eq!(
            parse(&argv(&["ud", "gc"]), false),
            Ok(Command::Gc { dry_run: false })
        );
        assert_eq!(
            parse(&argv(&["ud", "gc", "--dry-run"]), false),
            Ok(Command::Gc { dry_run: true })
        );
        assert_eq!(
            parse(&argv(&["ud", "--version"]), false),
            Ok(Command::Version)
        );
        assert_eq!(
            parse(&argv(&["ud", "--help"]), false),
            Ok(Command::Help(None))
        );
        assert_eq!(
            parse(&argv(&["ud", "gc", "--help"]), false),
            Ok(Command::Help(Some("gc")))
        );
        assert_eq!(
            parse(&argv(&["ud", "help", "run"]), false),
            Ok(Command::Help(Some("run")))
        );
    }

    #[test]
    fn invalid_arguments_are_refused() {
        assert_eq!(parse(&argv(&["ud"]), false), Err(ArgsError::NoSubcommand));
        assert_eq!(
            parse(&argv(&["ud", "start"]), false),
            Err(ArgsError::UnknownSubcommand("start".into()))
        );
        assert!(matches!(
            parse(&argv(&["ud", "run"]), false),
            Err(ArgsError::Arity {
                subcommand: "run",
                got: 0,
                ..
            })
        ));
        assert!(matches!(
            parse(&argv(&["ud", "check", "a.ini", "b.ini"]), false),
            Err(ArgsError::Arity { got: 2, .. })
        ));
        assert!(matches!(
            parse(&argv(&["ud", "ps", "--all"]), false),
            Err(ArgsError::UnknownOption {
                subcommand: "ps",
                ..
            })
        ));
        assert!(matches!(
            parse(&argv(&["ud", "run", "--dry-run", "a.ini"]), false),
            Err(ArgsError::UnknownOption { .. })
        ));
    }

    #[test]
    fn wrapper_mode_finds_the_vassal_after_inherit_pairs() {
        let a = argv(&[
            "/usr/bin/uwsgi-docker",
            "--inherit",
            "base.ini",
            "--set",
            "x=1",
            "--ini",
            "app.ini",
        ]);
        let Ok(Command::Wrapper(w)) = parse(&a, true) else {
            panic!("not wrapper mode")
        };
        assert_eq!(w.name, "app.ini");
        assert_eq!(w.flag, ConfigFlag::Ini);
        assert_eq!(w.source, ConfigSource::File("app.ini".into()));
        assert_eq!(w.argv, a);
        assert!(w.is_ini());

        let a = argv(&["uwsgi-docker", "--ini", "emperor://pg-app"]);
        let Ok(Command::Wrapper(w)) = parse(&a, true) else {
            panic!("not wrapper mode")
        };
        assert_eq!(
            (w.name.as_str(), w.source),
            ("pg-app", ConfigSource::Emperor)
        );

        let Ok(Command::Wrapper(w)) = parse(&argv(&["u", "--yaml", "a.yml"]), true) else {
            panic!("not wrapper mode")
        };
        assert!(!w.is_ini());
    }

    #[test]
    fn wrapper_mode_reads_the_emperors_real_order() {
        // uWSGI 2.0.x: --set pairs first, then FLAG NAME, then templates and includes.
        let a = argv(&[
            "uwsgi-docker",
            "--set",
            "a=1",
            "--set",
            "b=2",
            "--ini",
            "app.ini",
            "--inherit",
            "base.ini",
            "--include",
            "x.ini",
        ]);
        let Ok(Command::Wrapper(w)) = parse(&a, true) else {
            panic!("not wrapper mode")
        };
        assert_eq!((w.flag, w.name.as_str()), (ConfigFlag::Ini, "app.ini"));
        // No known extension: the Emperor's default flag is --inherit.
        let a = argv(&[
            "uwsgi-docker",
            "--inherit",
            "emperor://pgapp",
            "--inherit",
            "base.ini",
        ]);
        let Ok(Command::Wrapper(w)) = parse(&a, true) else {
            panic!("not wrapper mode")
        };
        assert_eq!((w.flag, w.name.as_str()), (ConfigFlag::Inherit, "pgapp"));
        assert!(!w.is_ini());
    }

    #[test]
    fn wrapper_mode_needs_the_env_and_a_non_subcommand() {
        // A subcommand stays a subcommand under an Emperor.
        assert_eq!(parse(&argv(&["ud", "ps"]), true), Ok(Command::Ps));
        // Without UWSGI_EMPEROR_FD, the Emperor's argv is just a bad subcommand.
        assert_eq!(
            parse(&argv(&["ud", "--ini", "a.ini"]), false),
            Err(ArgsError::UnknownSubcommand("--ini".into()))
        );
        assert!(matches!(
            parse(&argv(&["ud", "--set", "x=1"]), true),
            Err(ArgsError::NoVassalConfig(_))
        ));
        assert!(matches!(
            parse(&argv(&["ud", "--ini"]), true),
            Err(ArgsError::NoVassalConfig(_))
        ));
    }
}
