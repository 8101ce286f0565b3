//! The end-to-end harness: one real uWSGI Emperor per test, wrapped by the `uwsgi-docker`
//! binary, vassal files in a private temp dir, and a guard that leaves nothing behind.
//!
//! Everything here is std-only and talks to the outside world through the `docker` and
//! `uwsgi` commands and plain TCP, exactly as an operator would. Every wait is bounded.
//!
//! Knobs (all optional):
//! * `UWSGIDOCKER_TEST_IMAGE`: the image vassals run in (default `uwsgi-docker-test:latest`,
//!   built by `scripts/build-test-image.sh`).
//! * `UWSGIDOCKER_E2E_WRAPPER`: the Emperor's wrapper instead of the built `uwsgi-docker`
//!   (e.g. `/usr/bin/uwsgi`, to check the harness itself with the non-Docker tests).
//! * `UWSGIDOCKER_E2E_MODE=plugin`: start each Emperor as the seed describes, with
//!   `plugin = docker_plugin.so` and `emperor-docker-required` instead of `emperor-wrapper`.
//! * `UWSGIDOCKER_E2E_PLUGIN`: the docker_plugin.so to load (default: built once per test
//!   binary with `scripts/build-plugin.sh` into `target/e2e-plugin`).
//! * `UWSGIDOCKER_DAEMON_SOCKET`: the engine's unix socket (e.g. Podman's, from
//!   `scripts/podman-service.sh start`). The bridges read it (the Emperor inherits it), and
//!   the harness's own `docker …` calls go there too (`docker -H unix://…`): Podman's
//!   compat API answers every call the harness makes (info, image inspect, ps, container
//!   inspect, create, kill, rm, build).
//! * `UWSGIDOCKER_E2E_UWSGI`: the uWSGI binary the Emperor runs (default `uwsgi` on PATH,
//!   Debian's 2.0.21), e.g. `/opt/uwsgi-2.0.31/bin/uwsgi` from `scripts/uwsgi-2.0.31.sh`.
//!   It is also the "real uWSGI" the wrapper execs for host vassals, and the one the plugin
//!   is built against when `UWSGIDOCKER_E2E_PLUGIN` is not given. Docker vassals run the
//!   image's own uWSGI whatever this says.
//! * `CI`: when set, missing prerequisites fail the test instead of skipping it
//!   ([`skip`]).
//! * `UWSGIDOCKER_SKIP_LOG`: a file each skip appends its `SKIPPED <test>: <why>` line to.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

pub use crate::skip::skip;

pub const DEFAULT_IMAGE: &str = "uwsgi-docker-test:latest";
/// What the test image's app answers when `GREETING` is not set.
pub const DEFAULT_GREETING: &str = "Hello World from Docker";
/// The app inside the test image; the same text is written to the host for non-Docker vassals.
pub const APP_IN_IMAGE: &str = "/var/www/app.pl";
pub const LABEL_MANAGED: &str = "io.uwsgi-docker.managed";
pub const LABEL_VASSAL: &str = "io.uwsgi-docker.vassal";
pub const LABEL_EMPEROR: &str = "io.uwsgi-docker.emperor";
const PSGI_PLUGIN: &str = "/usr/lib/uwsgi/plugins/psgi_plugin.so";

/// A host copy of the image's app, for vassals that run on the host.
pub const HOST_APP: &str = r#"my $app = sub {
    my $env = shift;
    my $path = $env->{PATH_INFO} // '/';
    print STDERR "app-log: request $path\n";
    my $greeting = $ENV{GREETING} // 'Hello World from Docker';
    return [200, ['Content-Type' => 'text/plain'], [$greeting]];
};
"#;

/// How long a fresh container may take to answer its first request.
pub const SPAWN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long cleanup (containers, sockets, bridges) may take after a stop.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);

pub fn image() -> String {
    std::env::var("UWSGIDOCKER_TEST_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_owned())
}

/// The uWSGI the Emperor runs: `UWSGIDOCKER_E2E_UWSGI`, else `uwsgi` from PATH.
pub fn uwsgi_bin() -> PathBuf {
    match std::env::var_os("UWSGIDOCKER_E2E_UWSGI").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from("uwsgi"),
    }
}

/// Whether vassals on the host can load Debian's psgi plugin: only when the Emperor's uWSGI
/// is Debian's own (a plugin must come from the build that loads it; a pip-built uWSGI has
/// no psgi plugin). Docker vassals do not care: they run the image's uWSGI.
pub fn host_psgi() -> bool {
    std::env::var_os("UWSGIDOCKER_E2E_UWSGI").is_none_or(|v| {
        v.is_empty() || fs::canonicalize(&v).ok() == fs::canonicalize("/usr/bin/uwsgi").ok()
    })
}

/// `true` (after [`skip`]) when `test` needs host vassals with psgi and cannot have them.
pub fn skip_without_host_psgi(test: &str) -> bool {
    if host_psgi() {
        return false;
    }
    skip(format_args!(
        "{test} runs a psgi vassal on the host, and the Emperor's uWSGI ({}) has no psgi \
         plugin (only Debian's uWSGI has one here)",
        uwsgi_bin().display()
    ));
    true
}

/// The engine's socket for this run, as the bridges read it: `UWSGIDOCKER_DAEMON_SOCKET`.
pub fn daemon_socket() -> Option<String> {
    std::env::var("UWSGIDOCKER_DAEMON_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Which engine answers on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Docker,
    Podman,
}

/// The engine under test: Podman's compat `/version` lists a "Podman Engine" component.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    *ENGINE.get_or_init(|| {
        let out = docker(&[
            "version",
            "--format",
            "{{range .Server.Components}}{{.Name}};{{end}}",
        ]);
        if lossy(&out.stdout).contains("Podman") {
            Engine::Podman
        } else {
            Engine::Docker
        }
    })
}

/// The first octet of the engine's default bridge network, for the seed's `socket = 172.*`
/// trick: Docker's default bridge is 172.17.0.0/16, Podman's network 10.88.0.0/16, and a
/// private engine's bridge what it was given (scripts/docker-28.sh: 10.231.0.0/24).
pub fn default_network_first_octet() -> String {
    if engine() == Engine::Podman {
        return "10".to_owned();
    }
    let out = docker(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ]);
    let subnet = lossy(&out.stdout);
    let octet = subnet.trim().split('.').next().unwrap_or_default();
    assert!(
        !octet.is_empty() && octet.bytes().all(|b| b.is_ascii_digit()),
        "the bridge network's subnet: {subnet:?}"
    );
    octet.to_owned()
}

/// `docker` aimed at the engine under test (`-H unix://$UWSGIDOCKER_DAEMON_SOCKET` when set).
pub fn docker_command() -> Command {
    let mut cmd = Command::new("docker");
    if let Some(socket) = daemon_socket() {
        cmd.arg("-H").arg(format!("unix://{socket}"));
    }
    cmd
}

fn wrapper() -> PathBuf {
    match std::env::var_os("UWSGIDOCKER_E2E_WRAPPER") {
        Some(w) => PathBuf::from(w),
        None => PathBuf::from(env!("CARGO_BIN_EXE_uwsgi-docker")),
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_uwsgi-docker"))
}

/// How the Emperor reaches the bridge runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `emperor-wrapper = uwsgi-docker`.
    Wrapper,
    /// `plugin = docker_plugin.so`, no wrapper.
    Plugin,
}

impl Mode {
    /// `UWSGIDOCKER_E2E_MODE`: `plugin`, else wrapper.
    pub fn from_env() -> Mode {
        match std::env::var("UWSGIDOCKER_E2E_MODE").as_deref() {
            Ok("plugin") => Mode::Plugin,
            _ => Mode::Wrapper,
        }
    }
}

/// How a test's Emperor is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmperorOptions {
    pub mode: Mode,
    /// Plugin mode: `emperor-docker-required = true` (else `emperor-docker = true`).
    pub docker_required: bool,
    /// Plugin mode: name the bridge under test with `docker-bridge`; when false the plugin
    /// finds `uwsgi-docker` by itself (next to the plugin file).
    pub bridge_option: bool,
    /// Extra environment for the Emperor (and so for every bridge it starts), e.g.
    /// `UWSGIDOCKER_*` settings.
    pub env: Vec<(String, String)>,
    /// Extra `--option value` pairs for the Emperor's command line (plugin mode: the
    /// plugin's own options, e.g. `docker-name-prefix`).
    pub options: Vec<(String, String)>,
    /// Extra arguments for the Emperor (e.g. `--emperor-tyrant`).
    pub args: Vec<String>,
    /// The Emperor's `--emperor` value instead of `dir://<vassal dir>` (e.g. a `pg://`
    /// monitor's `CONNINFO;QUERY`).
    pub emperor: Option<String>,
}

impl EmperorOptions {
    /// The mode from the environment; in plugin mode Docker is required, as in the seed.
    pub fn from_env() -> EmperorOptions {
        let mode = Mode::from_env();
        EmperorOptions {
            mode,
            docker_required: mode == Mode::Plugin,
            bridge_option: true,
            env: Vec::new(),
            options: Vec::new(),
            args: Vec::new(),
            emperor: None,
        }
    }

    /// The same options with one more argument for the Emperor.
    pub fn with_arg(mut self, arg: &str) -> EmperorOptions {
        self.args.push(arg.to_owned());
        self
    }

    /// The same options with one more environment variable for the Emperor.
    pub fn with_env(mut self, key: &str, value: &str) -> EmperorOptions {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The same options with `--option value` on the Emperor's command line.
    pub fn with_option(mut self, option: &str, value: &str) -> EmperorOptions {
        self.options.push((option.to_owned(), value.to_owned()));
        self
    }

    /// The same options with `source` as the Emperor's `--emperor` (its only monitor).
    pub fn with_emperor(mut self, source: &str) -> EmperorOptions {
        self.emperor = Some(source.to_owned());
        self
    }

    /// As [`EmperorOptions::from_env`], but vassals without a docker-image may run on the host.
    pub fn allowing_host_vassals() -> EmperorOptions {
        EmperorOptions {
            docker_required: false,
            ..EmperorOptions::from_env()
        }
    }

    /// Plugin mode whatever the environment says.
    pub fn plugin(docker_required: bool) -> EmperorOptions {
        EmperorOptions {
            mode: Mode::Plugin,
            docker_required,
            bridge_option: true,
            env: Vec::new(),
            options: Vec::new(),
            args: Vec::new(),
            emperor: None,
        }
    }
}

/// The docker_plugin.so under test: `UWSGIDOCKER_E2E_PLUGIN`, else built once by
/// `scripts/build-plugin.sh` (in its own target dir: this test's cargo holds the lock on ours).
pub fn plugin() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("UWSGIDOCKER_E2E_PLUGIN") {
                let path = PathBuf::from(path);
                return if path.exists() {
                    Ok(path)
                } else {
                    Err(format!(
                        "UWSGIDOCKER_E2E_PLUGIN={} does not exist",
                        path.display()
                    ))
                };
            }
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let target = workspace.join("target/e2e-plugin");
            let mut build = Command::new(workspace.join("scripts/build-plugin.sh"));
            build.env("CARGO_TARGET_DIR", &target);
            // Built against the uWSGI that loads it, in a directory of its own.
            match std::env::var_os("UWSGIDOCKER_E2E_UWSGI").filter(|v| !v.is_empty()) {
                Some(uwsgi) => build
                    .arg(target.join("plugin-e2e-uwsgi"))
                    .env("UWSGI_BIN", uwsgi),
                None => build.arg(target.join("plugin")),
            };
            let out = build
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run scripts/build-plugin.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "scripts/build-plugin.sh failed ({}): {}",
                    out.status,
                    lossy(&out.stderr)
                ));
            }
            Ok(PathBuf::from(lossy(&out.stdout).trim()))
        })
        .clone()
}

/// Why the end-to-end tests cannot run here, checked once per test binary.
fn missing_prerequisite() -> Option<String> {
    static CHECK: OnceLock<Option<String>> = OnceLock::new();
    CHECK
        .get_or_init(|| {
            let uwsgi = uwsgi_bin();
            match Command::new(&uwsgi).arg("--version").output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    return Some(format!(
                        "`{} --version` failed: {}",
                        uwsgi.display(),
                        lossy(&out.stderr)
                    ))
                }
                Err(e) => {
                    return Some(format!(
                        "{} cannot run ({e}); apt-get install uwsgi-core, or set \
                         UWSGIDOCKER_E2E_UWSGI to a uwsgi binary",
                        uwsgi.display()
                    ))
                }
            }
            if !Path::new(PSGI_PLUGIN).exists() {
                return Some(format!(
                    "{PSGI_PLUGIN} is missing; apt-get install uwsgi-plugin-psgi"
                ));
            }
            let daemon = daemon_socket().unwrap_or_else(|| "the default socket".to_owned());
            match docker_command().arg("info").output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    return Some(format!(
                        "the engine on {daemon} does not answer: {}",
                        lossy(&out.stderr).trim()
                    ))
                }
                Err(e) => return Some(format!("docker is not installed ({e})")),
            }
            let image = image();
            let inspected = docker_command().args(["image", "inspect", &image]).output();
            if !inspected.is_ok_and(|o| o.status.success()) {
                return Some(format!(
                    "the test image {image} is missing on {daemon}; run \
                     scripts/build-test-image.sh (ENGINE=podman for Podman)"
                ));
            }
            if !wrapper().exists() {
                return Some(format!(
                    "the wrapper {} does not exist",
                    wrapper().display()
                ));
            }
            None
        })
        .clone()
}

/// `Some(())` when the tests can run; otherwise [`skip`] (a failure under `CI`).
pub fn prerequisites(test: &str) -> Option<()> {
    let Some(why) = missing_prerequisite() else {
        return Some(());
    };
    skip(format_args!(
        "{test}: end-to-end prerequisites missing: {why}"
    ));
    None
}

pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// A loopback TCP port nobody listens on now, never handed out twice by this process.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local addr").port();
        if given.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port after 100 tries");
}

/// `GET path` over HTTP/1.0 on 127.0.0.1:port: `(status, body)`.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    read_http_reply(stream)
}

/// One `GET path` over the uwsgi protocol (what `socket = …` and nginx's `uwsgi_pass`
/// speak) with this `modifier1`, on an open stream: the raw reply.
pub fn uwsgi_request(
    mut stream: impl Read + Write,
    modifier1: u8,
    path: &str,
) -> std::io::Result<String> {
    let vars = [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", path),
        ("PATH_INFO", path),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.0"),
        ("SCRIPT_NAME", ""),
        ("SERVER_NAME", "example.com"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", "example.com"),
    ];
    let mut body = Vec::new();
    for part in vars.iter().flat_map(|(key, value)| [*key, *value]) {
        let len = u16::try_from(part.len()).map_err(std::io::Error::other)?;
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(part.as_bytes());
    }
    let size = u16::try_from(body.len()).map_err(std::io::Error::other)?;
    let mut packet = vec![modifier1];
    packet.extend_from_slice(&size.to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&body);
    stream.write_all(&packet)?;
    let mut reply = Vec::new();
    stream.take(1 << 20).read_to_end(&mut reply)?;
    Ok(lossy(&reply))
}

/// Reads an HTTP/1.0 reply to its end: `(status, body)`.
pub fn read_http_reply(stream: impl Read) -> std::io::Result<(u16, String)> {
    let mut reply = Vec::new();
    stream.take(1 << 20).read_to_end(&mut reply)?;
    let text = lossy(&reply);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no end of headers in {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((status, body.to_owned()))
}

/// Runs `docker args…` against the engine under test; the output whatever the exit status.
pub fn docker(args: &[&str]) -> Output {
    docker_command().args(args).output().expect("run docker")
}

/// Runs `docker args…` and returns its trimmed stdout; panics when it fails.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        lossy(&out.stderr)
    );
    lossy(&out.stdout).trim().to_owned()
}

/// The full id of the container called exactly `name`, if there is one.
pub fn container_id(name: &str) -> Option<String> {
    let out = docker(&["container", "inspect", "-f", "{{.Id}}", name]);
    out.status
        .success()
        .then(|| lossy(&out.stdout).trim().to_owned())
}

/// `docker container inspect -f template name`.
pub fn inspect(name: &str, template: &str) -> String {
    docker_ok(&["container", "inspect", "-f", template, name])
}

/// Ids of all containers, running or not, carrying label `key=value`.
pub fn containers_labelled(key: &str, value: &str) -> Vec<String> {
    let filter = format!("label={key}={value}");
    docker_ok(&["ps", "-aq", "--no-trunc", "--filter", &filter])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `(pid, cmdline)` of every process whose command line contains `needle`.
pub fn processes_matching(needle: &str) -> Vec<(u32, String)> {
    let own = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter_map(|pid| {
            let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = lossy(&raw).replace('\0', " ").trim().to_owned();
            cmdline.contains(needle).then_some((pid, cmdline))
        })
        .collect()
}

/// A bridge label (`host:pid:starttime`) that names no running process: this host, our own
/// pid, a start time it never had. A container carrying it is an orphan of a dead bridge.
pub fn dead_bridge_label() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    format!("{}:{}:1", host.trim(), std::process::id())
}

/// Whether the file at `path` is a statically linked executable, as `ldd` sees it.
pub fn is_static(path: &Path) -> bool {
    let ldd = Command::new("ldd").arg(path).output().expect("run ldd");
    let text = format!("{}{}", lossy(&ldd.stdout), lossy(&ldd.stderr));
    text.contains("statically linked") || text.contains("not a dynamic executable")
}

/// The process title every bridge sets.
pub fn bridge_title(vassal: &str) -> String {
    format!("[uwsgi-docker-bridge] {vassal}")
}

/// A Docker vassal like the seed's quickstart, speaking HTTP on container port 3031,
/// published on 127.0.0.1:`port`.
pub fn docker_vassal(port: u16, extra_emperor: &str, extra_uwsgi: &str) -> String {
    format!(
        "[emperor]\n\
         docker-image = {image}\n\
         docker-port = 127.0.0.1:{port}:3031\n\
         {extra_emperor}\n\
         \n\
         [uwsgi]\n\
         master = true\n\
         plugin = psgi\n\
         psgi = {APP_IN_IMAGE}\n\
         http-socket = 0.0.0.0:3031\n\
         {extra_uwsgi}\n",
        image = image()
    )
}

static NEXT_TEST: AtomicU32 = AtomicU32::new(0);

/// One test's world: a temp dir, a running Emperor, the vassals written so far.
/// Dropping it stops the Emperor, then checks and cleans everything the test made.
#[derive(Debug)]
pub struct World {
    pub test: String,
    /// Unique to this test in this run: in every vassal name, path and label we create.
    pub id: String,
    pub root: PathBuf,
    pub vassal_dir: PathBuf,
    pub log_path: PathBuf,
    pub stats_port: u16,
    /// Where this Emperor's bridges bind proxy sockets by default: its private runtime
    /// directory, `UWSGIDOCKER_RUNTIME_DIR/<emperor id>`, or `UWSGIDOCKER_SOCKET_DIR`.
    pub proxy_dir: PathBuf,
    /// The proxy directory is the private runtime directory, which the harness removes.
    proxy_dir_private: bool,
    /// The Emperor's private runtime directory (when its id is a plain name), where the
    /// bridges keep their vassals' state files even when proxy sockets go elsewhere.
    runtime_private: Option<PathBuf>,
    emperor: Option<Child>,
    /// Vassal (and container) names this test used.
    names: BTreeSet<String>,
    /// Extra container names to clean up (e.g. ones the test created by hand).
    foreign: BTreeSet<String>,
    /// How long the guard waits for the runtime to clean up before it does so by force.
    pub cleanup_timeout: Duration,
}

impl World {
    /// Starts an Emperor wrapped by `uwsgi-docker` (or, with `UWSGIDOCKER_E2E_MODE=plugin`,
    /// loading docker_plugin.so); `None` when the test must be skipped.
    pub fn start(test: &str) -> Option<World> {
        World::start_with(test, EmperorOptions::from_env())
    }

    /// Starts an Emperor as `options` say; `None` when the test must be skipped.
    pub fn start_with(test: &str, options: EmperorOptions) -> Option<World> {
        prerequisites(test)?;
        let plugin = match options.mode {
            Mode::Wrapper => None,
            Mode::Plugin => match plugin() {
                Ok(path) => Some(path),
                Err(why) => {
                    skip(format_args!("{test}: cannot build docker_plugin.so: {why}"));
                    return None;
                }
            },
        };
        // Three digits: no id is the start of another (`…x1` of `…x12`), since processes
        // and containers are found by the id in their names (every suite shares one process).
        let id = format!(
            "e2e{}x{:03}",
            std::process::id(),
            NEXT_TEST.fetch_add(1, Ordering::Relaxed)
        );
        let root = std::env::temp_dir().join(format!("uwsgi-docker-{id}"));
        let vassal_dir = root.join("vassals");
        fs::create_dir_all(&vassal_dir).expect("create the vassal dir");
        fs::write(root.join("app.pl"), HOST_APP).expect("write the host app");
        let setting = |key: &str| {
            options
                .env
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(key).ok())
                .filter(|v| !v.is_empty())
        };
        let emperor_id = options
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "UWSGIDOCKER_EMPEROR_ID")
            .map_or_else(|| id.clone(), |(_, v)| v.clone());
        let plain_id = emperor_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !emperor_id.starts_with('.');
        let runtime_private = plain_id.then(|| {
            Path::new(
                &setting("UWSGIDOCKER_RUNTIME_DIR")
                    .unwrap_or_else(|| "/run/uwsgi-docker".to_owned()),
            )
            .join(&emperor_id)
        });
        let (proxy_dir, proxy_dir_private) = match setting("UWSGIDOCKER_SOCKET_DIR") {
            Some(dir) => (PathBuf::from(dir), false),
            None => {
                assert!(
                    emperor_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                        && !emperor_id.starts_with('.'),
                    "harness: give the Emperor a plain id, not {emperor_id:?}"
                );
                let base = setting("UWSGIDOCKER_RUNTIME_DIR")
                    .unwrap_or_else(|| "/run/uwsgi-docker".to_owned());
                (Path::new(&base).join(&emperor_id), true)
            }
        };
        let mut world = World {
            test: test.to_owned(),
            id,
            proxy_dir,
            proxy_dir_private,
            runtime_private,
            log_path: root.join("emperor.log"),
            root,
            vassal_dir,
            stats_port: free_port(),
            emperor: None,
            names: BTreeSet::new(),
            foreign: BTreeSet::new(),
            cleanup_timeout: CLEANUP_TIMEOUT,
        };
        world.spawn_emperor(&options, plugin.as_deref());
        Some(world)
    }

    fn spawn_emperor(&mut self, options: &EmperorOptions, plugin: Option<&Path>) {
        let out = fs::File::create(self.root.join("emperor.out")).expect("create emperor.out");
        let err = out.try_clone().expect("dup emperor.out");
        // The wrapper execs this one for host vassals: the Emperor's own uWSGI.
        let real_uwsgi = match std::env::var_os("UWSGIDOCKER_E2E_UWSGI").filter(|v| !v.is_empty()) {
            Some(uwsgi) => PathBuf::from(uwsgi),
            None => fs::canonicalize("/usr/bin/uwsgi").unwrap_or_else(|_| "/usr/bin/uwsgi".into()),
        };
        let mut emperor = Command::new(uwsgi_bin());
        match plugin {
            // The plugin first: its options exist only once it is loaded.
            Some(plugin) => {
                emperor.arg("--plugin").arg(plugin);
                emperor.arg(if options.docker_required {
                    "--emperor-docker-required"
                } else {
                    "--emperor-docker"
                });
                if options.bridge_option {
                    emperor.arg("--docker-bridge").arg(bin());
                }
            }
            None => {
                emperor.arg("--emperor-wrapper").arg(wrapper());
            }
        }
        for (option, value) in &options.options {
            emperor.arg(format!("--{option}")).arg(value);
        }
        let child = emperor
            .arg("--emperor")
            .arg(
                options
                    .emperor
                    .clone()
                    .unwrap_or_else(|| format!("dir://{}", self.vassal_dir.display())),
            )
            .args(["--emperor-stats", &format!("127.0.0.1:{}", self.stats_port)])
            .args(["--emperor-freq", "1"])
            .args(["--emperor-throttle", "200"])
            .args(["--emperor-max-throttle", "1000"])
            .arg("--logto")
            .arg(&self.log_path)
            .env("UWSGIDOCKER_EMPEROR_ID", &self.id)
            .env("UWSGIDOCKER_UWSGI", real_uwsgi)
            // Inherited anyway; explicit, since every bridge must talk to the engine under test.
            .envs(daemon_socket().map(|s| ("UWSGIDOCKER_DAEMON_SOCKET", s)))
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .args(&options.args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn the Emperor");
        self.emperor = Some(child);
        let stats = SocketAddr::from((Ipv4Addr::LOCALHOST, self.stats_port));
        let up = wait_for(Duration::from_secs(15), || {
            if let Some(status) = self
                .emperor
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{}: the Emperor exited at start ({status}):\n{}",
                    self.test,
                    self.log_tail(40)
                );
            }
            TcpStream::connect_timeout(&stats, Duration::from_millis(500)).ok()
        });
        assert!(
            up.is_some(),
            "{}: the Emperor's stats server never came up:\n{}",
            self.test,
            self.log_tail(40)
        );
    }

    pub fn emperor_pid(&self) -> u32 {
        self.emperor.as_ref().expect("the Emperor runs").id()
    }

    /// A vassal file name unique to this test: `<id>-<short>.ini`.
    pub fn vassal_name(&self, short: &str) -> String {
        format!("{}-{short}.ini", self.id)
    }

    pub fn vassal_path(&self, name: &str) -> PathBuf {
        self.vassal_dir.join(name)
    }

    /// Where the bridge binds `name`'s proxy socket.
    pub fn proxy_socket(&self, name: &str) -> PathBuf {
        self.proxy_dir.join(format!("{name}.sock"))
    }

    /// Writes vassal `name` atomically (write beside, then rename in), so the Emperor never
    /// reads half a file.
    pub fn write_vassal(&mut self, name: &str, text: &str) {
        self.write_vassal_owned(name, text, None);
    }

    /// As [`World::write_vassal`], the file owned by `owner` (uid, gid) from the start, as a
    /// tenant's file would be.
    pub fn write_vassal_owned(&mut self, name: &str, text: &str, owner: Option<(u32, u32)>) {
        self.names.insert(name.to_owned());
        let staging = self.root.join(format!(".{name}.new"));
        fs::write(&staging, text).expect("write the vassal file");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&staging, Some(uid), Some(gid))
                .expect("chown the vassal file");
        }
        fs::rename(&staging, self.vassal_path(name)).expect("move the vassal file in");
    }

    /// Rewrites vassal `name` and moves its mtime forward, so the Emperor (which compares
    /// whole seconds) sees the change and reloads it.
    pub fn rewrite_vassal(&mut self, name: &str, text: &str) {
        self.rewrite_vassal_owned(name, text, None);
    }

    /// As [`World::rewrite_vassal`], the new file owned by `owner` (uid, gid).
    pub fn rewrite_vassal_owned(&mut self, name: &str, text: &str, owner: Option<(u32, u32)>) {
        let path = self.vassal_path(name);
        let old = fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("stat the vassal file");
        self.write_vassal_owned(name, text, owner);
        let bumped = old.max(SystemTime::now()) + Duration::from_secs(2);
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(bumped))
            .expect("bump the vassal's mtime");
    }

    pub fn remove_vassal(&self, name: &str) {
        fs::remove_file(self.vassal_path(name)).expect("remove the vassal file");
    }

    /// Registers a container the test made itself, so cleanup covers it too.
    pub fn adopt_container(&mut self, name: &str) {
        self.foreign.insert(name.to_owned());
    }

    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| lossy(&b))
            .unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = self.log();
        if let Ok(out) = fs::read(self.root.join("emperor.out")) {
            text.push_str(&lossy(&out));
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits for an Emperor log line that contains every one of `needles`; returns it.
    pub fn wait_for_log_line(&self, needles: &[&str], timeout: Duration) -> String {
        wait_for(timeout, || {
            self.log()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: no Emperor log line with all of {needles:?} within {timeout:?}; log tail:\n{}",
                self.test,
                self.log_tail(60)
            )
        })
    }

    /// Waits until 127.0.0.1:`port` answers 200 with exactly `body`.
    pub fn wait_for_body(&self, port: u16, body: &str, timeout: Duration) {
        let mut last = None;
        let ok = wait_for(timeout, || {
            let got = http_get(port, "/");
            let done = matches!(&got, Ok((200, b)) if b == body);
            last = Some(got);
            done.then_some(())
        });
        if ok.is_none() {
            panic!(
                "{}: port {port} did not answer 200 {body:?} within {timeout:?}; last: {last:?}; log tail:\n{}",
                self.test,
                self.log_tail(60)
            );
        }
    }

    /// Sends SIGKILL to the Emperor and reaps it; its vassals are left to fend for themselves.
    pub fn kill_emperor(&mut self) {
        if let Some(mut child) = self.emperor.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the Emperor the polite way (SIGINT: stop every vassal, then exit), SIGKILL after 45 s.
    pub fn stop_emperor(&mut self) {
        let Some(mut child) = self.emperor.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let exited = wait_for(Duration::from_secs(45), || child.try_wait().ok().flatten());
        if exited.is_none() {
            eprintln!(
                "{}: the Emperor ignored SIGINT for 45 s; killing it",
                self.test
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every container this test may have made: by our labels and by name.
    fn containers(&self) -> BTreeSet<String> {
        let format = format!("{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.Label \"{LABEL_VASSAL}\"}}}}\t{{{{.Label \"{LABEL_EMPEROR}\"}}}}");
        let listing = docker_ok(&["ps", "-a", "--no-trunc", "--format", &format]);
        listing
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let (id, names, vassal, emperor) = (
                    fields.next()?,
                    fields.next()?,
                    fields.next()?,
                    fields.next()?,
                );
                let ours = emperor == self.id
                    || self.names.contains(vassal)
                    || names
                        .split(',')
                        .any(|n| self.names.contains(n) || self.foreign.contains(n));
                ours.then(|| id.to_owned())
            })
            .collect()
    }

    /// Socket files of this test: `*.sock` beside the vassals, and anything in the
    /// Emperor's private runtime directory but the vassals' state files (`*.state`, kept
    /// for metrics by a vassal that failed, for the bridge the Emperor starts next).
    fn sockets(&self) -> Vec<PathBuf> {
        let in_dir = |dir: &Path, any: bool| -> Vec<PathBuf> {
            fs::read_dir(dir)
                .map(|d| {
                    d.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| any || p.extension().is_some_and(|x| x == "sock"))
                        .filter(|p| p.extension().is_none_or(|x| x != "state"))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut found = in_dir(&self.vassal_dir, false);
        if self.proxy_dir != self.vassal_dir {
            found.extend(in_dir(&self.proxy_dir, self.proxy_dir_private));
        }
        found
    }

    /// What is left of this test: containers, proxy sockets, processes naming its id.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .containers()
            .into_iter()
            .map(|id| format!("container {id}"))
            .collect();
        left.extend(
            self.sockets()
                .into_iter()
                .map(|p| format!("socket {}", p.display())),
        );
        let emperor = self.emperor.as_ref().map(Child::id);
        left.extend(
            processes_matching(&self.id)
                .into_iter()
                .filter(|(pid, _)| Some(*pid) != emperor)
                .map(|(pid, cmd)| format!("process {pid}: {cmd}")),
        );
        left
    }

    /// Waits until nothing of this test is left, or panics listing what is.
    pub fn assert_clean_within(&self, timeout: Duration, after: &str) {
        let mut left = Vec::new();
        let clean = wait_for(timeout, || {
            left = self.leftovers();
            left.is_empty().then_some(())
        });
        assert!(
            clean.is_some(),
            "{}: {after}, still left after {timeout:?}: {left:#?}\nlog tail:\n{}",
            self.test,
            self.log_tail(60)
        );
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_emperor();
        let mut left = Vec::new();
        wait_for(self.cleanup_timeout, || {
            left = self.leftovers();
            left.is_empty().then_some(())
        });
        // Clean by force whatever the runtime left, so one failure does not leak into others.
        for id in self.containers() {
            let _ = docker(&["rm", "-f", &id]);
        }
        for (pid, _) in processes_matching(&self.id) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        for sock in self.sockets() {
            let _ = fs::remove_file(sock);
        }
        if let Some(private) = &self.runtime_private {
            // Each World's Emperor has its own; empty by now but for state files.
            let states: Vec<PathBuf> = fs::read_dir(private)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            for state in states
                .iter()
                .filter(|p| p.extension().is_some_and(|x| x == "state"))
            {
                let _ = fs::remove_file(state);
            }
            let _ = fs::remove_dir(private);
        }
        if self.proxy_dir_private {
            let _ = fs::remove_dir(&self.proxy_dir);
        }
        if thread::panicking() {
            eprintln!(
                "{}: kept {} for inspection; left behind: {left:#?}",
                self.test,
                self.root.display()
            );
            return;
        }
        if left.is_empty() {
            let _ = fs::remove_dir_all(&self.root);
        } else {
            panic!(
                "{}: left behind after the Emperor stopped: {left:#?}\nlog tail:\n{}",
                self.test,
                self.log_tail(60)
            );
        }
    }
}
