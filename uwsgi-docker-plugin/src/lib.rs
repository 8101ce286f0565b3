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

/// The Emperor's docker options, as the plugin's options set them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub required: bool,
    pub debug: bool,
    pub daemon_socket: Option<OsString>,
    pub socket_dir: Option<OsString>,
    /// `docker-bridge`: the bridge binary.
    pub bridge: Option<PathBuf>,
    /// Where docker_plugin.so was loaded from.
    pub plugin_path: Option<PathBuf>,
    /// The Emperor's `chmod-socket` mode, if it has one.
    pub socket_mode: Option<u32>,
    /// `docker-name-prefix`: put before every container name.
    pub name_prefix: Option<OsString>,
    /// The Emperor's `chown-socket` (`USER[:GROUP]`), if it has one.
    pub socket_owner: Option<OsString>,
    /// `docker-policy`: the operator's policy file (tenant mode).
    pub policy: Option<OsString>,
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
}

/// An exec of the bridge: program, argv after argv[0], and the settings env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(&'static str, OsString)>,
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
    if let Some(prefix) = &options.name_prefix {
        // The bridge would refuse it too; say so here, once, before anything runs.
        let checked = prefix
            .to_str()
            .ok_or_else(|| "it is not UTF-8 text".to_owned())
            .and_then(|p| uwsgi_docker_core::plan::check_name_prefix(p).map_err(|e| e.to_string()));
        if let Err(reason) = checked {
            return Decision::Refuse(format!(
                "vassal {name}: docker-name-prefix = {prefix:?} cannot start container names: {reason}"
            ));
        }
    }
    // Like the wrapper: only ini vassals can be Docker vassals.
    if !name.ends_with(".ini") {
        return if options.required {
            Decision::Refuse(format!(
                "vassal {name} is not an ini file; only ini vassals can run in Docker, and docker is required (emperor-docker-required)"
            ))
        } else {
            Decision::Pass
        };
    }
    let text = match vassal.pushed_config {
        Some(text) => text.to_vec(),
        None => match host.read(Path::new(name)) {
            Ok(text) => text,
            // Not passed to uWSGI either: it could be a Docker vassal we cannot read.
            Err(e) if options.required || e.kind() == std::io::ErrorKind::InvalidInput => {
                return Decision::Refuse(format!("vassal {name}: cannot read it: {e}"))
            }
            // uWSGI reports an unreadable file itself.
            Err(_) => return Decision::Pass,
        },
    };
    match spec::parse_vassal(name, &text) {
        Err(e) => Decision::Refuse(e.to_string()),
        Ok(None) if options.required => Decision::Refuse(format!(
            "vassal {name} has no docker-image and docker is required (emperor-docker-required)"
        )),
        Ok(None) => Decision::Pass,
        Ok(Some(_)) => Decision::Bridge(bridge_exec(vassal, options, host)),
    }
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
    let mut env = Vec::new();
    if options.required {
        env.push(("UWSGIDOCKER_REQUIRED", OsString::from("1")));
    }
    if options.debug {
        env.push(("UWSGIDOCKER_DEBUG", OsString::from("1")));
    }
    if let Some(socket) = &options.daemon_socket {
        env.push(("UWSGIDOCKER_DAEMON_SOCKET", socket.clone()));
    }
    if let Some(dir) = &options.socket_dir {
        env.push(("UWSGIDOCKER_SOCKET_DIR", dir.clone()));
    }
    if let Some(mode) = options.socket_mode {
        env.push((
            "UWSGIDOCKER_SOCKET_MODE",
            OsString::from(format!("{mode:o}")),
        ));
    }
    if let Some(prefix) = &options.name_prefix {
        env.push(("UWSGIDOCKER_NAME_PREFIX", prefix.clone()));
    }
    if let Some(owner) = &options.socket_owner {
        env.push(("UWSGIDOCKER_SOCKET_OWNER", owner.clone()));
    }
    if let Some(policy) = &options.policy {
        env.push(("UWSGIDOCKER_POLICY", policy.clone()));
    }
    Exec {
        program: bridge_path(options, host),
        args,
        env,
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

/// Log lines go to the Emperor's log: the child's stderr.
/// One line in the Emperor's log; vassal names and values in it are tenant text, so their
/// control bytes are escaped.
fn log(line: &str) {
    eprintln!(
        "uwsgi-docker: {}",
        uwsgi_docker_core::attach::escape_control(line)
    );
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
        let required = Options {
            required: true,
            ..Options::default()
        };
        let Decision::Refuse(why) = decide(&vassal, &required, &host) else {
            panic!("not refused");
        };
        assert!(
            why.contains("plain.ini") && why.contains("no docker-image"),
            "{why}"
        );
    }

    #[test]
    fn non_ini_and_unreadable_vassals() {
        let host = FakeHost::default();
        let required = Options {
            required: true,
            ..Options::default()
        };
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
        let options = Options {
            required: true,
            debug: true,
            daemon_socket: Some("/run/d.sock".into()),
            socket_dir: Some("/run/vassals".into()),
            socket_mode: Some(0o666),
            name_prefix: Some("tenant1-".into()),
            socket_owner: Some("root:www-data".into()),
            policy: Some("/etc/uwsgi/policy.ini".into()),
            ..Options::default()
        };
        let Decision::Bridge(exec) = decide(&file_vassal("app.ini"), &options, &host) else {
            panic!("not bridged");
        };
        assert_eq!(
            exec.env,
            vec![
                ("UWSGIDOCKER_REQUIRED", OsString::from("1")),
                ("UWSGIDOCKER_DEBUG", "1".into()),
                ("UWSGIDOCKER_DAEMON_SOCKET", "/run/d.sock".into()),
                ("UWSGIDOCKER_SOCKET_DIR", "/run/vassals".into()),
                ("UWSGIDOCKER_SOCKET_MODE", "666".into()),
                ("UWSGIDOCKER_NAME_PREFIX", "tenant1-".into()),
                ("UWSGIDOCKER_SOCKET_OWNER", "root:www-data".into()),
                ("UWSGIDOCKER_POLICY", "/etc/uwsgi/policy.ini".into()),
            ]
        );
    }

    #[test]
    fn a_bad_name_prefix_refuses_the_vassal_naming_the_option() {
        let host = host_with("app.ini", DOCKER);
        for bad in ["-x", "a/b", "a b"] {
            let options = Options {
                name_prefix: Some(bad.into()),
                ..Options::default()
            };
            let Decision::Refuse(why) = decide(&file_vassal("app.ini"), &options, &host) else {
                panic!("{bad:?} not refused");
            };
            assert!(
                why.contains("app.ini") && why.contains("docker-name-prefix") && why.contains(bad),
                "{why}"
            );
        }
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
