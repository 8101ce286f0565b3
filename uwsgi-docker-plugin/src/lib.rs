//! `docker_plugin.so`: the native uWSGI plugin. Its vassal hook runs in the Emperor's forked
//! child just before the vassal is exec'd; for a Docker vassal it execs the `uwsgi-docker`
//! bridge instead, with the Emperor's channels still open, so there is one bridge runtime
//! whether the Emperor uses this plugin or `emperor-wrapper`.
//!
//! The C glue (`glue/docker_plugin.c`) holds the `struct uwsgi_plugin` and its options; all
//! pointer handling is in [`ffi`]; everything else, here, is safe Rust that decides what to
//! do with a vassal ([`decide`]) without touching the process.
mod ffi;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use uwsgi_docker_core::settings::{var, RuntimeSettings};
use uwsgi_docker_core::spec;

/// The bridge binary's file name, looked for next to the plugin, then on PATH.
pub const BRIDGE_NAME: &str = "uwsgi-docker";

/// One vassal as the Emperor is about to exec it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vassal<'a> {
    /// The Emperor's name for it: a file name relative to the cwd, or an `emperor://` name.
    pub name: &'a str,
    /// Its config text when the Emperor pushes it over the config channel (`emperor://`).
    pub pushed_config: Option<&'a [u8]>,
    /// The argv the Emperor would exec (uWSGI 2.1 passes it to the hook; 2.0 does not).
    pub argv: Option<Vec<OsString>>,
}

/// The Emperor's docker options: the bridge's settings they carry, and where the bridge is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The settings the options set, checked as the bridge checks them.
    pub settings: RuntimeSettings,
    /// `docker-bridge`: the bridge binary.
    pub bridge: Option<PathBuf>,
    /// Where docker_plugin.so was loaded from.
    pub plugin_path: Option<PathBuf>,
}

/// The Emperor's options that carry a bridge setting, and the variable each becomes.
pub const OPTION_VARS: &[(&str, &str)] = &[
    ("docker-emperor-required", var::REQUIRED),
    ("docker-debug", var::DEBUG),
    ("docker-daemon-socket", var::DAEMON_SOCKET),
    ("docker-socket-dir", var::SOCKET_DIR),
    ("chmod-socket", var::SOCKET_MODE),
    ("docker-name-prefix", var::NAME_PREFIX),
    ("chown-socket", var::SOCKET_OWNER),
    ("docker-policy", var::POLICY),
    ("docker-pull", var::PULL),
    ("docker-pull-timeout", var::PULL_TIMEOUT),
    ("docker-registry-auth", var::REGISTRY_AUTH),
];

impl Options {
    /// The options from their values, each keyed by the variable it becomes (see
    /// [`OPTION_VARS`]); a value the bridge would refuse is refused here, naming the option.
    pub fn from_values(
        values: &[(&'static str, OsString)],
        bridge: Option<PathBuf>,
        plugin_path: Option<PathBuf>,
    ) -> Result<Options, String> {
        let option_of = |name: &'static str| {
            OPTION_VARS
                .iter()
                .find(|(_, v)| *v == name)
                .map_or(name, |(option, _)| *option)
        };
        let mut text = Vec::with_capacity(values.len());
        for (name, value) in values {
            match value.to_str() {
                Some(value) => text.push((*name, value.to_owned())),
                None => return Err(format!("{}: {value:?} is not UTF-8 text", option_of(name))),
            }
        }
        let lookup = |name: &str| {
            text.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        let settings = RuntimeSettings::from_env(&lookup)
            .map_err(|e| format!("{}: {e}", option_of(e.var())))?;
        Ok(Options {
            settings,
            bridge,
            plugin_path,
        })
    }
}

/// What the hook does with a vassal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not ours: let the Emperor exec uWSGI as usual.
    Pass,
    /// Refuse it: log this line and exit the child, so no container is made.
    Refuse(String),
    /// Hand it to the bridge.
    Bridge(Exec),
    /// Under a policy, a vassal uWSGI would run on the host: run this judgement (the
    /// bridge's `check --policy`, which prints a refusal on stderr) and pass the vassal to
    /// uWSGI only if it succeeds.
    Judge(Exec),
}

/// An exec of the bridge: program, argv after argv[0], the settings env, and what it
/// reads on stdin (a judged pushed config's text; `None`: /dev/null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(&'static str, String)>,
    pub stdin: Option<Vec<u8>>,
}

/// The host, as far as [`decide`] needs it; a trait so tests need no files.
pub trait Host {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    fn is_executable(&self, path: &Path) -> bool;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

impl Host for RealHost {
    /// A regular file of at most `MAX_VASSAL_FILE` bytes (the bridge refuses anything
    /// else with the full story); a FIFO is not opened, so the hook cannot hang on it.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let meta = std::fs::metadata(path)?;
        let cap = spec::MAX_VASSAL_FILE as u64;
        if !meta.is_file() || meta.len() > cap {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("not a regular file of at most {cap} bytes"),
            ));
        }
        let mut text = Vec::new();
        std::fs::File::open(path)?
            .take(cap + 1)
            .read_to_end(&mut text)?;
        Ok(text)
    }

    fn is_executable(&self, path: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
}

/// Decides a vassal's fate with the core's own parser: Docker vassals go to the bridge,
/// others to uWSGI, unless Docker is required.
pub fn decide(vassal: &Vassal<'_>, options: &Options, host: &dyn Host) -> Decision {
    let name = vassal.name;
    // Like the wrapper: only ini vassals can be Docker vassals.
    if !name.ends_with(".ini") {
        return if options.settings.emperor.docker_required {
            Decision::Refuse(format!(
                "vassal {name} is not an ini file; only ini vassals can run in Docker, and docker is required (emperor-docker-required)"
            ))
        } else {
            native(vassal, options, host)
        };
    }
    let text = match vassal.pushed_config {
        Some(text) => text.to_vec(),
        None => match host.read(Path::new(name)) {
            Ok(text) => text,
            // Not passed to uWSGI either: it could be a Docker vassal we cannot read.
            Err(e)
                if options.settings.emperor.docker_required
                    || e.kind() == std::io::ErrorKind::InvalidInput =>
            {
                return Decision::Refuse(format!("vassal {name}: cannot read it: {e}"))
            }
            // uWSGI reports an unreadable file itself.
            Err(_) => return Decision::Pass,
        },
    };
    match spec::parse_vassal(name, &text) {
        Err(e) => Decision::Refuse(e.to_string()),
        Ok(None) if options.settings.emperor.docker_required => Decision::Refuse(format!(
            "vassal {name} has no docker-image and docker is required (emperor-docker-required)"
        )),
        Ok(None) => native(vassal, options, host),
        Ok(Some(_)) => Decision::Bridge(bridge_exec(vassal, options, host)),
    }
}

/// A vassal uWSGI would run on the host, as root: without a policy it passes; with one,
/// it is judged by the bridge's `check --policy` (the one judgement of whose it is, as
/// wrapper mode makes it): a vassal file by its name, a pushed config as
/// `emperor://NAME` with its text on stdin (its tenant is the policy's `[vassals]` one).
fn native(vassal: &Vassal<'_>, options: &Options, host: &dyn Host) -> Decision {
    let Some(policy) = &options.settings.policy else {
        return Decision::Pass;
    };
    let (config, stdin) = match vassal.pushed_config {
        Some(text) => (format!("emperor://{}", vassal.name), Some(text.to_vec())),
        None => (vassal.name.to_owned(), None),
    };
    Decision::Judge(Exec {
        program: bridge_path(options, host),
        args: vec![
            OsString::from("check"),
            OsString::from("--policy"),
            policy.clone().into_os_string(),
            OsString::from(config),
        ],
        env: options.settings.to_env(),
        stdin,
    })
}

/// The bridge's command line: the Emperor's own argv when it gave us one, else the one it
/// builds for an ini vassal (`--ini NAME`, or `--ini emperor://NAME` over the config pipe).
fn bridge_exec(vassal: &Vassal<'_>, options: &Options, host: &dyn Host) -> Exec {
    let args = match &vassal.argv {
        Some(argv) if argv.len() > 1 => argv.iter().skip(1).cloned().collect(),
        _ => {
            let config = if vassal.pushed_config.is_some() {
                format!("emperor://{}", vassal.name)
            } else {
                vassal.name.to_owned()
            };
            vec![OsString::from("--ini"), OsString::from(config)]
        }
    };
    Exec {
        program: bridge_path(options, host),
        args,
        env: options.settings.to_env(),
        stdin: None,
    }
}

/// `docker-bridge`, else `uwsgi-docker` next to the plugin file, else on PATH.
pub fn bridge_path(options: &Options, host: &dyn Host) -> PathBuf {
    if let Some(bridge) = &options.bridge {
        return bridge.clone();
    }
    options
        .plugin_path
        .as_deref()
        .and_then(Path::parent)
        .map(|dir| dir.join(BRIDGE_NAME))
        .filter(|candidate| host.is_executable(candidate))
        .unwrap_or_else(|| PathBuf::from(BRIDGE_NAME))
}

/// One call of the vassal hook as owned values ([`ffi`] reads them from the glue's struct).
#[derive(Debug)]
pub struct HookInput<'a> {
    /// The instance's name, as bytes.
    pub name: Vec<u8>,
    /// The config text the Emperor pushes (`emperor://`), if any.
    pub pushed_config: Option<&'a [u8]>,
    /// The argv the Emperor would exec (uWSGI 2.1 only).
    pub argv: Option<Vec<OsString>>,
    /// The options that carry settings, keyed by the variable each becomes.
    pub option_values: Vec<(&'static str, OsString)>,
    /// `docker-bridge`.
    pub bridge: Option<PathBuf>,
    /// Where docker_plugin.so was loaded from.
    pub plugin_path: Option<PathBuf>,
}

/// The hook's whole job. Returns only when uWSGI should exec the vassal itself; otherwise
/// execs the bridge or exits the Emperor's child.
pub fn hook(input: HookInput<'_>) {
    let required = input.option_values.iter().any(|(k, _)| *k == var::REQUIRED);
    let Ok(name) = String::from_utf8(input.name) else {
        if required {
            log("a vassal's name is not UTF-8 text; docker is required (emperor-docker-required), so it is refused");
            std::process::exit(1);
        }
        return;
    };
    // The bridge inherits the Emperor's environment, so a policy set there
    // (UWSGIDOCKER_POLICY) rules its Docker vassals; it must rule the host vassals the
    // hook lets through too.
    let mut option_values = input.option_values;
    if !option_values.iter().any(|(k, _)| *k == var::POLICY) {
        if let Some(policy) = std::env::var_os(var::POLICY).filter(|p| !p.is_empty()) {
            option_values.push((var::POLICY, policy));
        }
    }
    let options = match Options::from_values(&option_values, input.bridge, input.plugin_path) {
        Ok(options) => options,
        // The bridge would refuse it too; say so here, once, before anything runs.
        Err(e) => {
            return act(
                &name,
                Decision::Refuse(format!("vassal {name}: {e}")),
                false,
            )
        }
    };
    let vassal = Vassal {
        name: &name,
        pushed_config: input.pushed_config,
        argv: input.argv,
    };
    let decision = decide(&vassal, &options, &RealHost);
    act(&name, decision, options.settings.emperor.debug);
}

/// Log lines go to the Emperor's log: the child's stderr.
/// One line in the Emperor's log; vassal names and values in it are tenant text, so their
/// control bytes are escaped.
fn log(line: &str) {
    eprintln!(
        "uwsgi-docker: {}",
        uwsgi_docker_core::attach::escape_control(line)
    );
}

/// Runs a judgement: its stdout (the verdict) discarded, its stderr (a refusal) the
/// Emperor's log, its stdin the pushed config's text, if any.
fn judge(exec: &Exec) -> std::io::Result<std::process::ExitStatus> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(&exec.program)
        .args(&exec.args)
        .envs(exec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if exec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .spawn()?;
    if let (Some(text), Some(mut pipe)) = (&exec.stdin, child.stdin.take()) {
        // A judge that exits early closes the pipe: its status says what happened.
        let _ = pipe.write_all(text);
    }
    child.wait()
}

/// The hook's effect on the process: return for [`Decision::Pass`], otherwise never return.
fn act(vassal_name: &str, decision: Decision, debug: bool) {
    use std::os::unix::process::CommandExt;
    match decision {
        Decision::Pass => {}
        Decision::Refuse(why) => {
            log(&why);
            std::process::exit(1);
        }
        Decision::Judge(exec) => {
            let judged = judge(&exec);
            match judged {
                Ok(status) if status.success() => {}
                // The judgement printed why on stderr, the Emperor's log.
                Ok(_) => std::process::exit(1),
                Err(e) => {
                    log(&format!(
                        "vassal {vassal_name}: cannot run {} to judge it under the policy: {e}; install uwsgi-docker next to docker_plugin.so or name it with docker-bridge",
                        exec.program.display()
                    ));
                    std::process::exit(1);
                }
            }
        }
        Decision::Bridge(exec) => {
            if debug {
                log(&format!(
                    "vassal {vassal_name}: handing over to {} {:?}",
                    exec.program.display(),
                    exec.args
                ));
            }
            let err = std::process::Command::new(&exec.program)
                .args(&exec.args)
                .envs(exec.env.iter().map(|(k, v)| (k, v)))
                .exec();
            log(&format!(
                "vassal {vassal_name}: cannot exec the bridge {}: {err}; install uwsgi-docker next to docker_plugin.so or name it with docker-bridge",
                exec.program.display()
            ));
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::ffi::OsStringExt;

    #[derive(Default)]
    struct FakeHost {
        files: BTreeMap<PathBuf, Vec<u8>>,
        executables: Vec<PathBuf>,
    }

    impl Host for FakeHost {
        fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
        fn is_executable(&self, path: &Path) -> bool {
            self.executables.iter().any(|p| p == path)
        }
    }

    const DOCKER: &[u8] = b"[emperor]\ndocker-image = psgi001\n[uwsgi]\nhttp-socket = :3031\n";
    const HOST: &[u8] = b"[uwsgi]\nhttp-socket = :3031\n";

    fn host_with(name: &str, text: &[u8]) -> FakeHost {
        let mut host = FakeHost::default();
        host.files.insert(PathBuf::from(name), text.to_vec());
        host
    }

    fn options(values: &[(&'static str, &str)]) -> Options {
        let values: Vec<(&'static str, OsString)> = values
            .iter()
            .map(|(k, v)| (*k, OsString::from(v)))
            .collect();
        Options::from_values(&values, None, None).expect("valid options")
    }

    fn file_vassal(name: &str) -> Vassal<'_> {
        Vassal {
            name,
            pushed_config: None,
            argv: None,
        }
    }

    #[test]
    fn docker_vassal_goes_to_the_bridge_with_the_emperors_argv() {
        let host = host_with("app.ini", DOCKER);
        let Decision::Bridge(exec) = decide(&file_vassal("app.ini"), &Options::default(), &host)
        else {
            panic!("not bridged");
        };
        assert_eq!(exec.program, PathBuf::from("uwsgi-docker"));
        assert_eq!(exec.args, [OsString::from("--ini"), "app.ini".into()]);
        assert!(exec.env.is_empty());
    }

    #[test]
    fn a_file_we_will_not_read_is_refused_not_passed_to_uwsgi() {
        let dir = std::env::temp_dir().join(format!("uwsgi-docker-plugin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let big = dir.join("big.ini");
        let mut text = DOCKER.to_vec();
        text.resize(spec::MAX_VASSAL_FILE + 1, b'#');
        std::fs::write(&big, &text).expect("write");
        // A Docker vassal too large to read must not run on the host instead.
        let name = big.to_str().expect("UTF-8 path");
        let decision = decide(&file_vassal(name), &Options::default(), &RealHost);
        assert!(
            matches!(&decision, Decision::Refuse(why) if why.contains("regular file of at most")),
            "{decision:?}"
        );
        // Nor is a directory (or a FIFO) opened.
        let dir_name = format!("{}/x.ini", dir.display());
        std::fs::create_dir_all(&dir_name).expect("dir");
        assert!(matches!(
            decide(&file_vassal(&dir_name), &Options::default(), &RealHost),
            Decision::Refuse(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pushed_config_is_parsed_and_named_emperor_uri() {
        let host = FakeHost::default();
        let vassal = Vassal {
            name: "app.ini",
            pushed_config: Some(DOCKER),
            argv: None,
        };
        let Decision::Bridge(exec) = decide(&vassal, &Options::default(), &host) else {
            panic!("not bridged");
        };
        assert_eq!(
            exec.args,
            [OsString::from("--ini"), "emperor://app.ini".into()]
        );
    }

    #[test]
    fn master_argv_is_passed_on_without_argv0() {
        let host = host_with("app.ini", DOCKER);
        let vassal = Vassal {
            name: "app.ini",
            pushed_config: None,
            argv: Some(vec![
                "/usr/bin/uwsgi".into(),
                "--set".into(),
                "a=b".into(),
                "--ini".into(),
                "app.ini".into(),
            ]),
        };
        let Decision::Bridge(exec) = decide(&vassal, &Options::default(), &host) else {
            panic!("not bridged");
        };
        assert_eq!(
            exec.args,
            ["--set", "a=b", "--ini", "app.ini"].map(OsString::from)
        );
    }

    #[test]
    fn host_vassal_passes_unless_required() {
        let host = host_with("plain.ini", HOST);
        let vassal = file_vassal("plain.ini");
        assert_eq!(decide(&vassal, &Options::default(), &host), Decision::Pass);
        let required = options(&[(var::REQUIRED, "1")]);
        let Decision::Refuse(why) = decide(&vassal, &required, &host) else {
            panic!("not refused");
        };
        assert!(
            why.contains("plain.ini") && why.contains("no docker-image"),
            "{why}"
        );
    }

    #[test]
    fn under_a_policy_a_host_vassal_file_is_judged_by_the_bridge() {
        let with_policy = options(&[(var::POLICY, "/etc/uwsgi/policy.ini")]);
        for name in ["plain.ini", "app.xml"] {
            let host = host_with(name, HOST);
            let Decision::Judge(exec) = decide(&file_vassal(name), &with_policy, &host) else {
                panic!("{name}: not judged");
            };
            assert_eq!(exec.program, PathBuf::from("uwsgi-docker"));
            assert_eq!(
                exec.args,
                ["check", "--policy", "/etc/uwsgi/policy.ini", name].map(OsString::from)
            );
        }
        // A pushed config is judged as emperor://NAME, its text on the judge's stdin;
        // not one without a policy.
        let host = FakeHost::default();
        for name in ["row.ini", "row.xml"] {
            let pushed = Vassal {
                name,
                pushed_config: Some(HOST),
                argv: None,
            };
            let Decision::Judge(exec) = decide(&pushed, &with_policy, &host) else {
                panic!("{name}: not judged");
            };
            let config = format!("emperor://{name}");
            assert_eq!(
                exec.args,
                [
                    "check",
                    "--policy",
                    "/etc/uwsgi/policy.ini",
                    config.as_str()
                ]
                .map(OsString::from)
            );
            assert_eq!(exec.stdin.as_deref(), Some(HOST));
            assert_eq!(decide(&pushed, &Options::default(), &host), Decision::Pass);
        }
    }

    #[test]
    fn non_ini_and_unreadable_vassals() {
        let host = FakeHost::default();
        let required = options(&[(var::REQUIRED, "1")]);
        assert_eq!(
            decide(&file_vassal("app.xml"), &Options::default(), &host),
            Decision::Pass
        );
        assert!(
            matches!(decide(&file_vassal("app.xml"), &required, &host), Decision::Refuse(w) if w.contains("not an ini file"))
        );
        assert_eq!(
            decide(&file_vassal("gone.ini"), &Options::default(), &host),
            Decision::Pass
        );
        assert!(
            matches!(decide(&file_vassal("gone.ini"), &required, &host), Decision::Refuse(w) if w.contains("cannot read"))
        );
    }

    #[test]
    fn bad_attribute_is_refused_naming_vassal_and_key() {
        let host = host_with(
            "bad.ini",
            b"[emperor]\ndocker-image = x\ndocker-memory = lots\n",
        );
        let Decision::Refuse(why) = decide(&file_vassal("bad.ini"), &Options::default(), &host)
        else {
            panic!("not refused");
        };
        assert!(
            why.contains("bad.ini") && why.contains("docker-memory") && why.contains("lots"),
            "{why}"
        );
    }

    #[test]
    fn settings_become_the_bridges_env() {
        let host = host_with("app.ini", DOCKER);
        // In the contract's order (`var::ALL`).
        let values = [
            (var::DAEMON_SOCKET, "/run/d.sock"),
            (var::SOCKET_DIR, "/run/vassals"),
            (var::REQUIRED, "1"),
            (var::DEBUG, "1"),
            (var::SOCKET_MODE, "666"),
            (var::SOCKET_OWNER, "root:www-data"),
            (var::PULL, "always"),
            (var::PULL_TIMEOUT, "120"),
            (var::REGISTRY_AUTH, "/etc/uwsgi/registry-auth.json"),
            (var::POLICY, "/etc/uwsgi/policy.ini"),
            (var::NAME_PREFIX, "tenant1-"),
        ];
        let Decision::Bridge(exec) = decide(&file_vassal("app.ini"), &options(&values), &host)
        else {
            panic!("not bridged");
        };
        let expected: Vec<(&str, String)> =
            values.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        assert_eq!(exec.env, expected);
        // Every option that carries a setting is one the contract knows.
        for (option, name) in OPTION_VARS {
            assert!(var::ALL.contains(name), "{option}");
        }
    }

    #[test]
    fn a_bad_option_is_refused_naming_the_option_and_value() {
        for bad in ["-x", "a/b", "a b"] {
            let why =
                Options::from_values(&[(var::NAME_PREFIX, bad.into())], None, None).expect_err(bad);
            assert!(
                why.starts_with("docker-name-prefix: ") && why.contains(bad),
                "{why}"
            );
        }
        let why = Options::from_values(&[(var::SOCKET_DIR, "run/x".into())], None, None)
            .expect_err("relative");
        assert!(
            why.starts_with("docker-socket-dir: ") && why.contains("absolute"),
            "{why}"
        );
        for (var, value, option) in [
            (var::PULL, "sometimes", "docker-pull: "),
            (var::PULL_TIMEOUT, "0", "docker-pull-timeout: "),
            (var::REGISTRY_AUTH, "auth.json", "docker-registry-auth: "),
        ] {
            let why = Options::from_values(&[(var, value.into())], None, None).expect_err(value);
            assert!(why.starts_with(option) && why.contains(value), "{why}");
        }
        let not_utf8 = OsString::from_vec(b"/run/\xff".to_vec());
        let why = Options::from_values(&[(var::DAEMON_SOCKET, not_utf8)], None, None)
            .expect_err("not UTF-8");
        assert!(
            why.starts_with("docker-daemon-socket: ") && why.contains("UTF-8"),
            "{why}"
        );
    }

    #[test]
    fn bridge_is_found_by_option_then_beside_the_plugin_then_path() {
        let mut host = FakeHost::default();
        let mut options = Options {
            plugin_path: Some("/opt/ud/docker_plugin.so".into()),
            ..Options::default()
        };
        assert_eq!(bridge_path(&options, &host), PathBuf::from("uwsgi-docker"));
        host.executables.push("/opt/ud/uwsgi-docker".into());
        assert_eq!(
            bridge_path(&options, &host),
            PathBuf::from("/opt/ud/uwsgi-docker")
        );
        options.bridge = Some("/usr/local/bin/ud".into());
        assert_eq!(
            bridge_path(&options, &host),
            PathBuf::from("/usr/local/bin/ud")
        );
    }
}
