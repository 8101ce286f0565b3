//! Command-line parsing in two stages: argv is read with `lexopt` into the subcommand, the
//! options it names and the positionals ([`RawArgs`]); then [`validate`] checks the shape
//! each subcommand takes and makes a [`Command`]. Wrapper mode (a stock Emperor's
//! `emperor-wrapper`) is told apart by `UWSGI_EMPEROR_FD` being set and `argv[1]` not being
//! one of our words ([`is_ours`]); the Emperor's argv keeps its own small reader.
use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::Arg;
use uwsgi_docker_core::settings::DESCRIBED;

/// Our subcommands: the one list of their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subcommand {
    Run,
    Check,
    Ps,
    Gc,
    Metrics,
    Update,
}

impl Subcommand {
    /// Every subcommand.
    pub const ALL: [Subcommand; 6] = [
        Subcommand::Run,
        Subcommand::Check,
        Subcommand::Ps,
        Subcommand::Gc,
        Subcommand::Metrics,
        Subcommand::Update,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Subcommand::Run => "run",
            Subcommand::Check => "check",
            Subcommand::Ps => "ps",
            Subcommand::Gc => "gc",
            Subcommand::Metrics => "metrics",
            Subcommand::Update => "update",
        }
    }

    fn from_name(name: &str) -> Option<Subcommand> {
        Subcommand::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether it takes `option`.
    fn takes(self, option: RawOption) -> bool {
        match option {
            RawOption::Help => true,
            RawOption::DryRun => matches!(self, Subcommand::Gc | Subcommand::Update),
            RawOption::Policy => self == Subcommand::Check,
            RawOption::Json => self == Subcommand::Ps,
            RawOption::Emperor => matches!(self, Subcommand::Ps | Subcommand::Metrics),
            RawOption::Listen | RawOption::Once => self == Subcommand::Metrics,
        }
    }
}

/// The words that are ours before any subcommand.
const HELP_WORD: &str = "help";
const HELP_FLAGS: [&str; 2] = ["--help", "-h"];
const VERSION_FLAGS: [&str; 2] = ["--version", "-V"];

/// Whether `arg` (`argv[1]`) is one of our words, not the start of an Emperor's argv.
pub fn is_ours(arg: &str) -> bool {
    Subcommand::from_name(arg).is_some()
        || arg == HELP_WORD
        || HELP_FLAGS.contains(&arg)
        || VERSION_FLAGS.contains(&arg)
}

/// What the user asked for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Exec'd by an Emperor as its `emperor-wrapper`.
    Wrapper(WrapperArgs),
    /// Run one vassal without an Emperor.
    Run { file: PathBuf },
    /// Validate a vassal and print the API requests (dry run), under `policy` when given.
    Check {
        file: PathBuf,
        policy: Option<PathBuf>,
    },
    /// List the vassals and containers we own (of one Emperor), as a table or JSON.
    Ps { json: bool, emperor: Option<String> },
    /// Serve (or print once) the Prometheus metrics of our vassals.
    Metrics {
        listen: Option<String>,
        emperor: Option<String>,
        once: bool,
    },
    /// Remove containers whose bridge is gone.
    Gc { dry_run: bool },
    /// Pull each vassal's tag in the directories and reload those whose tag moved.
    Update { dirs: Vec<PathBuf>, dry_run: bool },
    /// Print help: the general usage, or one subcommand's.
    Help(Option<Subcommand>),
    /// Print the version.
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
    #[error("{subcommand}: {message}; try `uwsgi-docker {subcommand} --help`")]
    Malformed {
        subcommand: &'static str,
        message: String,
    },
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

/// What argv starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    Subcommand(Subcommand),
    /// `--help`, or `help [SUBCOMMAND]`.
    Help(Option<Subcommand>),
    Version,
}

/// An option some subcommand takes; which one takes it is stage two's question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawOption {
    /// `-h`, `--help`.
    Help,
    /// `-n`, `--dry-run`.
    DryRun,
    /// `--policy FILE`, `--policy=FILE`.
    Policy,
    /// `--json`.
    Json,
    /// `--emperor ID`.
    Emperor,
    /// `--listen ADDR`.
    Listen,
    /// `--once`.
    Once,
}

/// Stage one: what argv says, before any subcommand's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawArgs {
    pub first: First,
    /// Each option as given, with its spelling for messages.
    pub options: Vec<(RawOption, String)>,
    /// The value of the last `--policy`.
    pub policy: Option<PathBuf>,
    /// The value of the last `--emperor`.
    pub emperor: Option<String>,
    /// The value of the last `--listen`.
    pub listen: Option<String>,
    pub positionals: Vec<OsString>,
}

impl RawArgs {
    /// `argv` without `argv[0]`.
    pub fn read(args: &[OsString]) -> Result<RawArgs, ArgsError> {
        let mut parser = lexopt::Parser::from_args(args.iter().cloned());
        let word = match parser.next() {
            Ok(None) => return Err(ArgsError::NoSubcommand),
            Ok(Some(Arg::Value(word))) => word
                .into_string()
                .map_err(|w| ArgsError::NotUtf8(w.to_string_lossy().into_owned()))?,
            Ok(Some(Arg::Long(long))) => format!("--{long}"),
            Ok(Some(Arg::Short(short))) => format!("-{short}"),
            // `--flag=value` first: the whole argument is the unknown word.
            Err(_) => args
                .first()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let subcommand = match word.as_str() {
            w if VERSION_FLAGS.contains(&w) => return Ok(RawArgs::only(First::Version)),
            w if HELP_FLAGS.contains(&w) => return Ok(RawArgs::only(First::Help(None))),
            HELP_WORD => {
                let topic = args
                    .get(1)
                    .and_then(|a| a.to_str())
                    .and_then(Subcommand::from_name);
                return Ok(RawArgs::only(First::Help(topic)));
            }
            w => Subcommand::from_name(w)
                .ok_or_else(|| ArgsError::UnknownSubcommand(w.to_owned()))?,
        };
        let malformed = |e: lexopt::Error| ArgsError::Malformed {
            subcommand: subcommand.name(),
            message: e.to_string(),
        };
        let mut raw = RawArgs::only(First::Subcommand(subcommand));
        while let Some(arg) = parser.next().map_err(malformed)? {
            let (option, spelling) = match arg {
                Arg::Value(value) => {
                    raw.positionals.push(value);
                    continue;
                }
                Arg::Short('h') | Arg::Long("help") => (RawOption::Help, "--help".to_owned()),
                Arg::Short('n') => (RawOption::DryRun, "-n".to_owned()),
                Arg::Long("dry-run") => (RawOption::DryRun, "--dry-run".to_owned()),
                Arg::Long("policy") => {
                    raw.policy = Some(PathBuf::from(parser.value().map_err(malformed)?));
                    (RawOption::Policy, "--policy".to_owned())
                }
                Arg::Long("json") => (RawOption::Json, "--json".to_owned()),
                Arg::Long("once") => (RawOption::Once, "--once".to_owned()),
                Arg::Long("emperor") => {
                    let value = parser.value().map_err(malformed)?;
                    raw.emperor = Some(value.to_string_lossy().into_owned());
                    (RawOption::Emperor, "--emperor".to_owned())
                }
                Arg::Long("listen") => {
                    let value = parser.value().map_err(malformed)?;
                    raw.listen = Some(value.to_string_lossy().into_owned());
                    (RawOption::Listen, "--listen".to_owned())
                }
                Arg::Short(other) => return Err(unknown(subcommand, format!("-{other}"))),
                Arg::Long(other) => return Err(unknown(subcommand, format!("--{other}"))),
            };
            raw.options.push((option, spelling));
        }
        Ok(raw)
    }

    fn only(first: First) -> RawArgs {
        RawArgs {
            first,
            options: Vec::new(),
            policy: None,
            emperor: None,
            listen: None,
            positionals: Vec::new(),
        }
    }

    fn has(&self, option: RawOption) -> bool {
        self.options.iter().any(|(o, _)| *o == option)
    }
}

fn unknown(subcommand: Subcommand, option: String) -> ArgsError {
    ArgsError::UnknownOption {
        subcommand: subcommand.name(),
        option,
    }
}

/// Parse the whole argv (`argv[0]` included); `emperor_fd_set`: `UWSGI_EMPEROR_FD` is in the env.
pub fn parse(argv: &[OsString], emperor_fd_set: bool) -> Result<Command, ArgsError> {
    let rest = argv.get(1..).unwrap_or_default();
    let first = rest.first().and_then(|a| a.to_str());
    if emperor_fd_set && !first.is_some_and(is_ours) {
        return parse_wrapper(argv).map(Command::Wrapper);
    }
    validate(RawArgs::read(rest)?)
}

/// Stage two: the shape each subcommand takes.
pub fn validate(raw: RawArgs) -> Result<Command, ArgsError> {
    let sub = match raw.first {
        First::Version => return Ok(Command::Version),
        First::Help(topic) => return Ok(Command::Help(topic)),
        First::Subcommand(sub) => sub,
    };
    if raw.has(RawOption::Help) {
        return Ok(Command::Help(Some(sub)));
    }
    if let Some((_, spelling)) = raw.options.iter().find(|(o, _)| !sub.takes(*o)) {
        return Err(unknown(sub, spelling.clone()));
    }
    let count = raw.positionals.len();
    let arity = |expected| ArgsError::Arity {
        subcommand: sub.name(),
        expected,
        got: count,
    };
    let one_file = |positionals: Vec<OsString>| match <[OsString; 1]>::try_from(positionals) {
        Ok([file]) => Ok(PathBuf::from(file)),
        Err(_) => Err(arity("one vassal file")),
    };
    let none = || {
        if count == 0 {
            Ok(())
        } else {
            Err(arity("no arguments"))
        }
    };
    match sub {
        Subcommand::Run => Ok(Command::Run {
            file: one_file(raw.positionals)?,
        }),
        Subcommand::Check => Ok(Command::Check {
            file: one_file(raw.positionals)?,
            policy: raw.policy,
        }),
        Subcommand::Ps => none().map(|()| Command::Ps {
            json: raw.has(RawOption::Json),
            emperor: raw.emperor,
        }),
        Subcommand::Metrics => {
            none()?;
            let once = raw.has(RawOption::Once);
            if raw.listen.is_none() && !once {
                return Err(ArgsError::Arity {
                    subcommand: sub.name(),
                    expected: "--listen HOST:PORT (or a unix socket path), or --once",
                    got: 0,
                });
            }
            Ok(Command::Metrics {
                listen: raw.listen,
                emperor: raw.emperor,
                once,
            })
        }
        Subcommand::Gc => none().map(|()| Command::Gc {
            dry_run: raw.has(RawOption::DryRun),
        }),
        Subcommand::Update if count == 0 => Err(arity("one or more vassal directories")),
        Subcommand::Update => Ok(Command::Update {
            dry_run: raw.has(RawOption::DryRun),
            dirs: raw.positionals.into_iter().map(PathBuf::from).collect(),
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

/// The general usage, with every `UWSGIDOCKER_*` setting from the one list of them.
fn usage() -> String {
    let mut text = String::from(
        "\
uwsgi-docker: run uWSGI vassals in Docker containers

Usage:
  uwsgi-docker run FILE.ini      run one vassal without an Emperor (Ctrl-C stops it)
  uwsgi-docker check [--policy POLICY.ini] FILE.ini
                                 validate a vassal and print the API requests (dry run)
  uwsgi-docker ps [--json] [--emperor ID]
                                 list the vassals: state, health, uptime, starts, image, memory, CPU
  uwsgi-docker metrics --listen HOST:PORT|PATH [--emperor ID]
                                 serve GET /metrics (Prometheus) for every vassal of ours
  uwsgi-docker gc [--dry-run]    remove containers whose bridge is gone
  uwsgi-docker update [--dry-run] DIR...
                                 pull each vassal's tag; reload the vassals whose tag moved
  uwsgi-docker help [SUBCOMMAND]
                                 this text, or a subcommand's
  uwsgi-docker --version         the version and the git commit it was built from

As an Emperor's `emperor-wrapper = /path/to/uwsgi-docker`, every vassal with a
docker-image runs in a container; the others are exec'd to the real uWSGI. With
docker_plugin.so (`plugins = docker`) the Emperor execs it for those vassals itself,
and the plugin's docker-* options set the settings below.

Environment (prefix UWSGIDOCKER_, so uWSGI does not take them as options):
",
    );
    let width = DESCRIBED.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for setting in DESCRIBED {
        text.push_str(&format!(
            "  {:width$}  {}\n  {:width$}  (default: {})\n",
            setting.name, setting.meaning, "", setting.default
        ));
    }
    text
}

/// Help text of one subcommand, or the general usage.
pub fn help(sub: Option<Subcommand>) -> String {
    let text = match sub {
        Some(Subcommand::Run) => {
            "\
Usage: uwsgi-docker run FILE.ini

Run one Docker vassal in the foreground, without an Emperor: bind its proxy socket,
create and start its container, relay its log to stderr. Ctrl-C (SIGINT), SIGTERM,
SIGHUP or SIGQUIT stop and remove the container. Exit status: 0 when stopped on request, 1 on
failure or when the container exits by itself.
"
        }
        Some(Subcommand::Check) => {
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

FILE emperor://NAME reads the config from stdin and judges it as a config an imperial
monitor (pg://, ...) pushes as NAME: its tenant is the one the policy's [vassals] section
maps NAME to (nobody when unmapped).
"
        }
        Some(Subcommand::Ps) => {
            "\
Usage: uwsgi-docker ps [--json] [--emperor ID]

List the vassals of every Emperor on this host (or of one, with --emperor): the
containers uwsgi-docker owns (label io.uwsgi-docker.managed=1) joined with what their
bridges recorded. Per vassal: state, health, uptime, starts, image and digest, memory
and CPU, and the Emperor. --json prints one JSON array for scripts.
"
        }
        Some(Subcommand::Metrics) => {
            "\
Usage: uwsgi-docker metrics --listen HOST:PORT|PATH [--emperor ID]
       uwsgi-docker metrics --once [--emperor ID]

Serve GET /metrics in the Prometheus text format for every vassal of ours on this host
(or of one Emperor): up, starts, rollovers, failures by reason, health, container memory,
memory limit, CPU seconds and OOM kills (from the container's cgroup, else the daemon's
stats), log bytes and spawn time. PATH (with a /) listens on a unix socket (mode 600).
--once prints the exposition to stdout and exits.
"
        }
        Some(Subcommand::Gc) => {
            "\
Usage: uwsgi-docker gc [--dry-run]

Remove the containers we own whose bridge process (on this host) is gone, and their
stale proxy socket files. A live bridge's container and containers without our label
are never touched; containers of bridges on other hosts are left alone.
  -n, --dry-run   only list what would be removed
"
        }
        Some(Subcommand::Update) => {
            "\
Usage: uwsgi-docker update [--dry-run] DIR...

For each Docker vassal file in each DIR, pull its image's tag (with
UWSGIDOCKER_REGISTRY_AUTH's credentials); where the tag now names another image than
the vassal's running container runs, move the file's mtime forward: the Emperor
reloads it, and the bridge rolls over (docker-socket vassals) or recreates the
container. Prints VASSAL, IMAGE, RUNNING -> NEW image id, ACTION. For cron or a
systemd timer.
  -n, --dry-run   pull, but touch no file
"
        }
        None => return usage(),
    };
    text.to_owned()
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
        assert_eq!(
            parse(&argv(&["ud", "ps"]), false),
            Ok(Command::Ps {
                json: false,
                emperor: None
            })
        );
        assert_eq!(
            parse(&argv(&["ud", "gc"]), false),
            Ok(Command::Gc { dry_run: false })
        );
        assert_eq!(
            parse(&argv(&["ud", "gc", "--dry-run"]), false),
            Ok(Command::Gc { dry_run: true })
        );
        assert_eq!(
            parse(&argv(&["ud", "ps", "--json", "--emperor", "h:1"]), false),
            Ok(Command::Ps {
                json: true,
                emperor: Some("h:1".into())
            })
        );
        assert_eq!(
            parse(
                &argv(&["ud", "metrics", "--listen", "127.0.0.1:9200"]),
                false
            ),
            Ok(Command::Metrics {
                listen: Some("127.0.0.1:9200".into()),
                emperor: None,
                once: false
            })
        );
        assert!(parse(&argv(&["ud", "metrics"]), false).is_err());
        assert!(parse(&argv(&["ud", "gc", "--json"]), false).is_err());
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
            Ok(Command::Help(Some(Subcommand::Gc)))
        );
        assert_eq!(
            parse(&argv(&["ud", "help", "run"]), false),
            Ok(Command::Help(Some(Subcommand::Run)))
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
    fn gc_is_a_dry_run_only_when_asked() {
        // Stage two decides from the option itself, not from "some option was given".
        let gc_with = |options: Vec<(RawOption, String)>| {
            validate(RawArgs {
                options,
                ..RawArgs::only(First::Subcommand(Subcommand::Gc))
            })
        };
        assert_eq!(gc_with(vec![]), Ok(Command::Gc { dry_run: false }));
        assert_eq!(
            gc_with(vec![(RawOption::DryRun, "-n".into())]),
            Ok(Command::Gc { dry_run: true })
        );
        assert_eq!(
            gc_with(vec![(RawOption::Policy, "--policy".into())]),
            Err(ArgsError::UnknownOption {
                subcommand: "gc",
                option: "--policy".into()
            }),
            "an option gc does not take is refused, not read as --dry-run"
        );
        assert_eq!(
            parse(&argv(&["ud", "gc", "-n"]), false),
            Ok(Command::Gc { dry_run: true })
        );
        assert!(matches!(
            parse(&argv(&["ud", "gc", "--dry-run=yes"]), false),
            Err(ArgsError::Malformed {
                subcommand: "gc",
                ..
            })
        ));
    }

    #[test]
    fn options_take_their_values_as_lexopt_reads_them() {
        assert!(matches!(
            parse(&argv(&["ud", "check", "--policy"]), false),
            Err(ArgsError::Malformed { subcommand: "check", message }) if message.contains("--policy")
        ));
        assert_eq!(
            parse(&argv(&["ud", "help", "check"]), false),
            Ok(Command::Help(Some(Subcommand::Check)))
        );
        assert_eq!(
            parse(&argv(&["ud", "help", "bogus"]), false),
            Ok(Command::Help(None))
        );
        assert_eq!(
            parse(&argv(&["ud", "check", "-h", "a.ini"]), false),
            Ok(Command::Help(Some(Subcommand::Check)))
        );
        for sub in Subcommand::ALL {
            assert!(is_ours(sub.name()));
            assert!(help(Some(sub)).contains(&format!("uwsgi-docker {}", sub.name())));
        }
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
        assert_eq!(
            parse(&argv(&["ud", "ps"]), true),
            Ok(Command::Ps {
                json: false,
                emperor: None
            })
        );
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

    /// The settings `--help` lists, the README's settings table and the core's list are
    /// one list, in one order.
    #[test]
    fn help_readme_and_core_list_the_same_settings() {
        use uwsgi_docker_core::settings::var;
        let help = help(None);
        let in_help: Vec<&str> = help
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|word| word.starts_with("UWSGIDOCKER_"))
            .collect();
        let readme = include_str!("../../README.md");
        let table = readme
            .split("\n### Settings\n")
            .nth(1)
            .expect("the README has a ### Settings section");
        let in_readme: Vec<&str> = table
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .filter_map(|row| row.strip_prefix("| `")?.split('`').next())
            .collect();
        assert_eq!(in_help, var::ALL, "uwsgi-docker --help");
        assert_eq!(in_readme, var::ALL, "the README's settings table");
        assert!(
            help.contains("the Emperor's private runtime directory"),
            "the proxy sockets' default directory"
        );
    }

    /// The bash completion offers what the parser takes: the subcommands, and for each
    /// subcommand exactly the long options it accepts.
    #[test]
    fn bash_completion_offers_what_the_parser_takes() {
        let script = include_str!("../../packaging/uwsgi-docker.bash-completion");
        let words_after = |marker: &str| -> Vec<String> {
            let line = script
                .lines()
                .find(|line| line.contains(marker))
                .unwrap_or_else(|| panic!("no {marker:?} in the completion"));
            let quoted = line
                .split(marker)
                .nth(1)
                .and_then(|rest| rest.split('"').next());
            quoted
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        let mut first: Vec<String> = Subcommand::ALL
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        first.extend([HELP_WORD, HELP_FLAGS[0], VERSION_FLAGS[0]].map(str::to_owned));
        assert_eq!(words_after("compgen -W \""), first, "the first word");
        let names: Vec<String> = Subcommand::ALL
            .iter()
            .map(|s| s.name().to_owned())
            .collect();
        assert_eq!(
            script
                .lines()
                .skip_while(|line| !line.trim_start().starts_with("help)"))
                .find_map(|line| line.split("compgen -W \"").nth(1))
                .and_then(|rest| rest.split('"').next())
                .map(|w| w.split_whitespace().map(str::to_owned).collect::<Vec<_>>()),
            Some(names),
            "after help"
        );
        for sub in Subcommand::ALL {
            let offered = words_after(&format!("{}) options=\"", sub.name()));
            for option in ["--help", "--dry-run", "--policy"] {
                let mut args = vec!["ud", sub.name(), option];
                if option == "--policy" {
                    args.push("p.ini");
                }
                let taken = !matches!(
                    parse(&argv(&args), false),
                    Err(ArgsError::UnknownOption { .. })
                );
                assert_eq!(
                    offered.iter().any(|o| o == option),
                    taken,
                    "{} {option}",
                    sub.name()
                );
            }
        }
    }
}
