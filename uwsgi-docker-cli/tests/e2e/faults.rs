//! End to end: the fault matrix (issue 13). Each fault runs against the real daemon and a
//! real Emperor, beside a healthy vassal that must keep serving, and each test checks that
//! afterwards no container, socket file or process of ours is left and that the Emperor
//! holds no more fds than it did before the fault (the vassals that still run allowed for).
//!
//! Rows: the daemon socket missing at spawn; the daemon (a private Podman service, and a
//! private dockerd with live-restore) stopped while vassals run, then started again; an OOM kill; a vassal that never connects to its
//! proxy; containers that exit during the handoff; a full cidfile directory; a reload storm;
//! a spawn storm of 50; the seed's forkpty router.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::harness::*;

/// How long the Emperor's fds may take to come back to their count once a vassal is gone.
const FD_SETTLE: Duration = Duration::from_secs(30);

// ---- helpers (this file only) -------------------------------------------------------

/// The fds process `pid` holds, as `fd -> target`.
fn fds_of(pid: u32) -> Vec<String> {
    let dir = format!("/proc/{pid}/fd");
    let mut out: Vec<String> = fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    let target = fs::read_link(e.path())
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    format!("{} -> {target}", e.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Waits until the Emperor holds exactly `baseline` fds again, or panics listing them.
fn assert_emperor_fds_settle(w: &World, baseline: &[String], after: &str) {
    let pid = w.emperor_pid();
    let mut now = Vec::new();
    let settled = wait_for(FD_SETTLE, || {
        now = fds_of(pid);
        (now.len() == baseline.len()).then_some(())
    });
    assert!(
        settled.is_some(),
        "{}: {after}, the Emperor holds {} fds, {} before: now {now:#?}\nbefore {baseline:#?}",
        w.test,
        now.len(),
        baseline.len()
    );
}

/// A Docker vassal that says `healthy <id>`; waits until it serves. Returns its port.
fn healthy_vassal(w: &mut World) -> (String, u16, String) {
    let port = free_port();
    let name = w.vassal_name("healthy");
    let greeting = format!("healthy {}", w.id);
    w.write_vassal(
        &name,
        &docker_vassal(port, "", &format!("env = GREETING={greeting}")),
    );
    w.wait_for_body(port, &greeting, SPAWN_TIMEOUT);
    (name, port, greeting)
}

/// The Emperor has settled once the healthy vassal serves: its fd count now is the
/// baseline (read twice, a second apart, so a vassal start in flight is not counted).
fn fd_baseline(w: &World) -> Vec<String> {
    let pid = w.emperor_pid();
    wait_for(Duration::from_secs(10), || {
        let a = fds_of(pid);
        thread::sleep(Duration::from_secs(1));
        let b = fds_of(pid);
        (a.len() == b.len()).then_some(b)
    })
    .expect("the Emperor's fds settle")
}

/// A directory of our own under the temp dir (not under the World's root, which is made
/// only when the Emperor starts), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("uwsgi-docker-faults-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A unix-socket proxy to the real daemon's socket: what a daemon that comes up late looks
/// like. Each connection is copied both ways by two threads; closed when either side closes.
struct LateDaemon {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

/// The socket of the daemon the tests use.
fn real_daemon_socket() -> String {
    std::env::var("UWSGIDOCKER_DAEMON_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::env::var("DOCKER_HOST")
                .ok()
                .and_then(|h| h.strip_prefix("unix://").map(str::to_owned))
        })
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned())
}

impl LateDaemon {
    fn start(path: &Path) -> LateDaemon {
        let listener = UnixListener::bind(path).expect("bind the late daemon's socket");
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = real_daemon_socket();
        let stopping = Arc::clone(&stop);
        let accept = thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(daemon) = UnixStream::connect(&upstream) else {
                    continue;
                };
                pipe(&client, &daemon);
                pipe(&daemon, &client);
            }
        });
        LateDaemon {
            path: path.to_owned(),
            stop,
            accept: Some(accept),
        }
    }
}

/// Copies `from` into `to` on a thread; at EOF, shuts down `to`'s write side.
fn pipe(from: &UnixStream, to: &UnixStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

impl Drop for LateDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

// ---- 1. the daemon socket missing at spawn --------------------------------------------

/// The daemon's socket does not exist when the vassal is spawned: the error names the
/// socket; once the daemon is there (a proxy to the real one, bound later), the Emperor's
/// retry brings the vassal up. A host vassal beside it keeps serving throughout.
#[test]
fn daemon_socket_missing_at_spawn_then_the_vassal_comes_up() {
    let late_dir = TempDir::new("late-daemon");
    let socket = late_dir.0.join("docker.sock");
    let socket_text = socket.display().to_string();
    // Declared before the World, so dropped after it: the World's cleanup needs the daemon.
    let daemon: LateDaemon;
    let options =
        EmperorOptions::allowing_host_vassals().with_env("UWSGIDOCKER_DAEMON_SOCKET", &socket_text);
    let Some(mut w) = World::start_with("late-daemon", options) else {
        return;
    };
    let host_port = free_port();
    let host = w.vassal_name("host");
    let greeting = format!("host {}", w.id);
    let text = format!(
        "[uwsgi]\nmaster = true\nplugin = psgi\npsgi = {app}\nhttp-socket = 127.0.0.1:{host_port}\nenv = GREETING={greeting}\n",
        app = w.root.join("app.pl").display()
    );
    w.write_vassal(&host, &text);
    w.wait_for_body(host_port, &greeting, SPAWN_TIMEOUT);
    let baseline = fd_baseline(&w);

    let port = free_port();
    let name = w.vassal_name("late");
    w.write_vassal(
        &name,
        &docker_vassal(port, "", "env = GREETING=late but there"),
    );
    let line = w.wait_for_log_line(
        &[
            &name,
            "cannot connect to the docker daemon at",
            &socket_text,
        ],
        Duration::from_secs(30),
    );
    assert!(line.contains("No such file"), "{line}");
    assert!(container_id(&name).is_none(), "a container exists already");
    w.wait_for_body(host_port, &greeting, Duration::from_secs(5));

    daemon = LateDaemon::start(&socket);
    w.wait_for_body(port, "late but there", Duration::from_secs(90));
    w.wait_for_body(host_port, &greeting, Duration::from_secs(5));

    w.remove_vassal(&name);
    let name_gone = wait_for(Duration::from_secs(30), || {
        (container_id(&name).is_none() && processes_matching(&bridge_title(&name)).is_empty())
            .then_some(())
    });
    assert!(
        name_gone.is_some(),
        "{name} is still there:\n{}",
        w.log_tail(40)
    );
    assert_emperor_fds_settle(&w, &baseline, "after the late vassal was removed");
    w.remove_vassal(&host);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after both vassals were removed");
    drop(w);
    drop(daemon);
}

// ---- 2. the daemon stopped while vassals run, then started again ----------------------

/// A private `podman system service` on its own socket (the shared store: the test image
/// imported into Podman is used as it is), which the test may stop and start freely.
struct PodmanService {
    socket: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl PodmanService {
    fn start(socket: &Path, log: &Path) -> PodmanService {
        let mut service = PodmanService {
            socket: socket.to_owned(),
            child: None,
            log: log.to_owned(),
        };
        service.resume();
        service
    }

    fn resume(&mut self) {
        let _ = fs::remove_file(&self.socket);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the podman log");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", self.socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start podman system service");
        self.child = Some(child);
        let up = wait_for(Duration::from_secs(30), || {
            UnixStream::connect(&self.socket).ok()
        });
        assert!(up.is_some(), "the Podman service did not come up");
    }

    /// SIGTERM, as `systemctl stop podman.socket podman.service` does.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            if wait_for(Duration::from_secs(20), || child.try_wait().ok().flatten()).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_file(&self.socket);
    }
}

fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("run podman")
}

/// Podman and the test image in its store, or why not.
fn podman_ready() -> Result<(), String> {
    match Command::new("podman").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Err("podman is not installed (scripts/podman-service.sh installs it)".into()),
    }
    if !podman(&["image", "exists", &image()]).status.success() {
        return Err(format!(
            "{} is not in Podman's store (ENGINE=podman scripts/build-test-image.sh)",
            image()
        ));
    }
    Ok(())
}

/// Podman's `system service` is only the API: containers (run by conmon) outlive it. When it
/// stops, each bridge loses its attach and wait streams; it keeps relaying the Emperor's
/// channels and tries the daemon again. The containers keep serving through the outage.
/// Once the service is back, every bridge re-attaches to its own container (same id: no
/// respawn, no new container), output reaches the Emperor's log again, and an exit is seen
/// again: a container killed after the outage is respawned by the Emperor. Nothing is left.
#[test]
fn daemon_stopped_and_started_again_the_bridges_reattach_to_surviving_containers() {
    if let Err(why) = podman_ready() {
        // In CI it must run: scripts/test.sh installs Podman before the e2e suites.
        return skip(why);
    }
    let dir = TempDir::new("podman");
    let socket = dir.0.join("podman.sock");
    let socket_text = socket.display().to_string();
    let mut service = PodmanService::start(&socket, &dir.0.join("service.log"));
    let podman_ps = |filter: &str| -> Vec<String> {
        let out = podman(&["ps", "-aq", "--no-trunc", "--filter", filter]);
        lossy(&out.stdout).lines().map(str::to_owned).collect()
    };
    let options = EmperorOptions::from_env().with_env("UWSGIDOCKER_DAEMON_SOCKET", &socket_text);
    let Some(mut w) = World::start_with("daemon-restart", options) else {
        return;
    };
    let ours = format!("label={LABEL_EMPEROR}={}", w.id);
    let ports: Vec<(String, u16, String)> = (0..2)
        .map(|i| {
            let name = w.vassal_name(&format!("p{i}"));
            (name.clone(), free_port(), format!("podman {i} {}", w.id))
        })
        .collect();
    for (name, port, greeting) in &ports {
        w.write_vassal(
            name,
            &docker_vassal(
                *port,
                "docker-stop-timeout = 3",
                &format!("env = GREETING={greeting}"),
            ),
        );
    }
    for (_, port, greeting) in &ports {
        w.wait_for_body(*port, greeting, SPAWN_TIMEOUT);
    }
    let before = podman_ps(&ours);
    assert_eq!(before.len(), 2, "two containers: {before:?}");
    let baseline = fd_baseline(&w);

    service.stop();
    for (name, _, _) in &ports {
        w.wait_for_log_line(&[name, "lost the docker daemon"], Duration::from_secs(30));
    }
    // The containers outlive the service and keep serving.
    for (_, port, greeting) in &ports {
        assert!(
            matches!(http_get(*port, "/"), Ok((200, b)) if b == *greeting),
            "a surviving container stopped serving while the daemon was away:\n{}",
            w.log_tail(40)
        );
    }
    std::thread::sleep(Duration::from_secs(3));

    service.resume();
    for (name, _, _) in &ports {
        w.wait_for_log_line(&[name, "re-attached"], Duration::from_secs(60));
    }
    assert_eq!(
        podman_ps(&ours),
        before,
        "the same containers, none respawned"
    );
    for (_, port, greeting) in &ports {
        w.wait_for_body(*port, greeting, Duration::from_secs(10));
    }
    // The wait is armed again: a container killed now is seen to exit, and its vassal is
    // respawned in a new container.
    let (victim, victim_port, victim_greeting) = &ports[0];
    let victim_id = podman_ps(&format!("name=^{victim}$"));
    assert_eq!(victim_id.len(), 1, "{victim_id:?}");
    assert!(podman(&["kill", &victim_id[0]]).status.success());
    let fresh = wait_for(SPAWN_TIMEOUT, || {
        let now = podman_ps(&format!("name=^{victim}$"));
        (now.len() == 1
            && now != victim_id
            && matches!(http_get(*victim_port, "/"), Ok((200, b)) if b == *victim_greeting))
        .then_some(())
    });
    assert!(
        fresh.is_some(),
        "{victim} was not respawned after its container was killed:\n{}",
        w.log_tail(60)
    );
    // Podman's AutoRemove may remove it before the wait reads its status.
    let log = w.log();
    assert!(
        log.contains("exited with status 137") || log.contains("the container is gone"),
        "the bridge did not see its container end:\n{log}"
    );
    assert_emperor_fds_settle(&w, &baseline, "after the daemon came back");

    for (name, _, _) in &ports {
        w.remove_vassal(name);
    }
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        (podman_ps(&ours).is_empty() && w.leftovers().is_empty()).then_some(())
    });
    assert!(
        gone.is_some(),
        "left after removal: {:?} {:?}\n{}",
        podman_ps(&ours),
        w.leftovers(),
        w.log_tail(40)
    );
    drop(w);
    // Whatever a failure left in Podman: removed by force, by our label only.
    for id in podman_ps(&ours) {
        let _ = podman(&["rm", "-f", &id]);
    }
}

/// A private dockerd on its own socket, data root and exec root, beside the main daemon,
/// with `--live-restore` (its containers outlive it), which the test may stop and start
/// freely. It gets a bridge interface of its own and no iptables rules: `--bridge=none`
/// would make it delete the host's `docker0`, which the main daemon needs.
struct PrivateDockerd {
    dir: PathBuf,
    socket: PathBuf,
    bridge: String,
    child: Option<Child>,
}

/// `ip ARGS`, or why it failed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            lossy(&out.stderr).trim()
        ))
    }
}

impl PrivateDockerd {
    fn start(dir: &Path) -> Result<PrivateDockerd, String> {
        let config = dir.join("daemon.json");
        // Its own config file: the host's /etc/docker/daemon.json names the main data root.
        fs::write(&config, "{}").map_err(|e| format!("write {}: {e}", config.display()))?;
        // A name and subnet of this test run's own (interface names have at most 15 bytes).
        let tag = std::process::id() % 250;
        let mut dockerd = PrivateDockerd {
            dir: dir.to_owned(),
            socket: dir.join("docker.sock"),
            bridge: format!("udkr{tag}"),
            child: None,
        };
        let bridge = dockerd.bridge.clone();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.213.{tag}.1/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        dockerd.resume()?;
        // The test image, from the main daemon's store.
        let load = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker save {} | docker -H unix://{} load",
                image(),
                dockerd.socket.display()
            ))
            .output()
            .map_err(|e| format!("docker save | load: {e}"))?;
        if !load.status.success() {
            return Err(format!("loading the test image: {}", lossy(&load.stderr)));
        }
        Ok(dockerd)
    }

    fn resume(&mut self) -> Result<(), String> {
        let _ = fs::remove_file(&self.socket);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .map_err(|e| format!("open the dockerd log: {e}"))?;
        let dir = &self.dir;
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg(format!("--bridge={}", self.bridge))
            .args(["--iptables=false", "--ip6tables=false", "--live-restore"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start dockerd: {e}"))?;
        self.child = Some(child);
        let up = wait_for(Duration::from_secs(60), || {
            let out = self.docker(&["version", "--format", "{{.Server.Version}}"]);
            out.status.success().then_some(())
        });
        up.ok_or_else(|| "the private dockerd did not come up".to_owned())
    }

    /// SIGTERM, as `systemctl stop docker` does.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            if wait_for(Duration::from_secs(30), || child.try_wait().ok().flatten()).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .output()
            .expect("run docker")
    }

    fn containers(&self, filter: &str) -> Vec<String> {
        let out = self.docker(&["ps", "-aq", "--no-trunc", "--filter", filter]);
        lossy(&out.stdout).lines().map(str::to_owned).collect()
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = fs::read(self.dir.join("dockerd.log")).unwrap_or_default();
            let log = lossy(&log);
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "private dockerd's log, last lines first:\n{}",
                tail.join("\n")
            );
        }
        if self.child.is_some() {
            // Only containers of this test's daemon exist here.
            for id in self.containers("label=io.uwsgi-docker.managed") {
                let _ = self.docker(&["rm", "-f", &id]);
            }
        }
        self.stop();
        let _ = ip(&["link", "del", &self.bridge]);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A private dockerd with `--live-restore`, stopped while a vassal runs and started again:
/// the container keeps serving through the outage, and once the daemon is back the vassal
/// serves from one container: the same one, re-attached, if it survived the restart, else a
/// new one (on this machine dockerd's restart loses the container's shim and it dies; see
/// RELIABILITY.md). Nothing is left after removal.
#[test]
fn a_private_dockerd_restarted_with_live_restore_the_vassal_serves_again() {
    if Command::new("dockerd").arg("--version").output().is_err() {
        return skip("no dockerd on PATH");
    }
    let dir = TempDir::new("dockerd");
    let mut dockerd = match PrivateDockerd::start(&dir.0) {
        Ok(d) => d,
        Err(why) => return skip(why),
    };
    let socket = dockerd.socket.display().to_string();
    let options = EmperorOptions::from_env().with_env("UWSGIDOCKER_DAEMON_SOCKET", &socket);
    let Some(mut w) = World::start_with("private-dockerd", options) else {
        return;
    };
    let name = w.vassal_name("lr");
    let port = free_port();
    let greeting = format!("live-restore {}", w.id);
    w.write_vassal(
        &name,
        &format!(
            "[emperor]\ndocker-image = {}\ndocker-network-mode = host\ndocker-stop-timeout = 3\n\n\
             [uwsgi]\nmaster = true\nplugin = psgi\npsgi = {APP_IN_IMAGE}\n\
             http-socket = 127.0.0.1:{port}\nenv = GREETING={greeting}\n",
            image()
        ),
    );
    w.wait_for_body(port, &greeting, SPAWN_TIMEOUT);
    let ours = format!("label={LABEL_EMPEROR}={}", w.id);
    let before = dockerd.containers(&ours);
    assert_eq!(before.len(), 1, "{before:?}");

    dockerd.stop();
    w.wait_for_log_line(&[&name, "lost the docker daemon"], Duration::from_secs(30));
    assert!(
        matches!(http_get(port, "/"), Ok((200, b)) if b == greeting),
        "the container stopped serving while its daemon was away:\n{}",
        w.log_tail(40)
    );
    thread::sleep(Duration::from_secs(3));
    dockerd.resume().expect("the private dockerd comes back");
    // Either the bridge re-attaches to the container that survived, or (where the engine
    // lost it at its restart) the vassal is respawned in a new one: it serves again, from
    // exactly one container, either way.
    w.wait_for_body(port, &greeting, SPAWN_TIMEOUT);
    let after = wait_for(Duration::from_secs(30), || {
        let now = dockerd.containers(&ours);
        (now.len() == 1).then_some(now)
    });
    assert!(after.is_some(), "{:?}", dockerd.containers(&ours));
    let log = w.log();
    if after.as_ref() == Some(&before) {
        assert!(
            log.contains("re-attached"),
            "same container, not re-attached:\n{log}"
        );
    } else {
        eprintln!("private-dockerd: the container did not survive the restart; respawned");
    }

    w.remove_vassal(&name);
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        (dockerd.containers(&ours).is_empty() && w.leftovers().is_empty()).then_some(())
    });
    assert!(
        gone.is_some(),
        "left after removal: {:?} {:?}\n{}",
        dockerd.containers(&ours),
        w.leftovers(),
        w.log_tail(40)
    );
}

// ---- 3. an OOM kill --------------------------------------------------------------------

/// A PSGI app that allocates `?mib=N` MiB on request (at run time: a constant would be
/// folded at compile time and allocated at load).
const ALLOCATING_APP: &str = r#"my $app = sub {
    my $env = shift;
    my $mib = ($env->{QUERY_STRING} // '') =~ /^mib=(\d+)$/ ? $1 : 0;
    my $big = 'x' x ($mib * 1024 * 1024);
    return [200, ['Content-Type' => 'text/plain'], ['allocated ' . length $big]];
};
"#;

/// `docker-memory = 16m` and a request that allocates 64 MiB: the kernel kills the
/// container, the log says OOM killed (read from inspect's `State.OOMKilled`), and the
/// Emperor respawns the vassal in a new container.
#[test]
fn oom_killed_container_is_reported_and_respawned() {
    let Some(mut w) = World::start("oom") else {
        return;
    };
    let (_, healthy_port, healthy_greeting) = healthy_vassal(&mut w);
    let baseline = fd_baseline(&w);

    let app_dir = w.root.join("oomapp");
    fs::create_dir_all(&app_dir).expect("app dir");
    fs::write(app_dir.join("app.pl"), ALLOCATING_APP).expect("write the app");
    let port = free_port();
    let name = w.vassal_name("oom");
    // No master: uWSGI itself is the container's process, so the OOM kill ends it.
    let text = format!(
        "[emperor]\ndocker-image = {image}\ndocker-port = 127.0.0.1:{port}:3031\ndocker-memory = 16m\ndocker-mount = {dir}:/oomapp:ro\n\n[uwsgi]\nmaster = false\nplugin = psgi\npsgi = /oomapp/app.pl\nhttp-socket = 0.0.0.0:3031\n",
        image = image(),
        dir = app_dir.display()
    );
    w.write_vassal(&name, &text);
    w.wait_for_body(port, "allocated 0", SPAWN_TIMEOUT);
    let first = container_id(&name).expect("the container exists");

    let _ = http_get(port, "/?mib=64");
    let line = w.wait_for_log_line(&[&name, "OOM killed"], Duration::from_secs(30));
    assert!(line.contains("docker-memory = 16777216 bytes"), "{line}");
    w.wait_for_log_line(&[&name, "exited with status 137"], Duration::from_secs(5));
    let second = wait_for(SPAWN_TIMEOUT, || {
        container_id(&name)
            .filter(|id| *id != first)
            .filter(|_| matches!(http_get(port, "/"), Ok((200, b)) if b == "allocated 0"))
    });
    assert!(second.is_some(), "not respawned:\n{}", w.log_tail(40));
    assert!(
        container_id(&first).is_none(),
        "the killed container is left"
    );
    w.wait_for_body(healthy_port, &healthy_greeting, Duration::from_secs(5));

    w.remove_vassal(&name);
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        (container_id(&name).is_none() && processes_matching(&bridge_title(&name)).is_empty())
            .then_some(())
    });
    assert!(gone.is_some(), "{name} is left:\n{}", w.log_tail(40));
    assert_emperor_fds_settle(&w, &baseline, "after the OOM vassal was removed");
}

// ---- 4. a vassal that never connects to its proxy --------------------------------------

/// The container runs but its uWSGI never reaches the proxy (here: it runs as `nobody`
/// and the proxy socket, in a directory of the operator's choice, is root's with mode 600:
/// uWSGI retries its connect forever). With `UWSGIDOCKER_HANDOFF_TIMEOUT=5` the bridge gives
/// up after 5 s with an error that says why and how to fix it, and removes the container.
#[test]
fn a_vassal_that_never_connects_fails_at_the_handoff_deadline_and_is_removed() {
    let sockets = TempDir::new("never-connects");
    let options = EmperorOptions::from_env()
        .with_env("UWSGIDOCKER_HANDOFF_TIMEOUT", "5")
        .with_env("UWSGIDOCKER_SOCKET_DIR", &sockets.0.display().to_string());
    let Some(mut w) = World::start_with("never-connects", options) else {
        return;
    };
    let (_, healthy_port, healthy_greeting) = healthy_vassal(&mut w);
    let baseline = fd_baseline(&w);

    let name = w.vassal_name("mute");
    w.write_vassal(
        &name,
        &docker_vassal(
            free_port(),
            "docker-handoff = native\ndocker-user = nobody",
            "",
        ),
    );
    let line = w.wait_for_log_line(
        &[&name, "did not connect to the proxy socket", "within 5 s"],
        SPAWN_TIMEOUT,
    );
    assert!(line.contains("docker-user = nobody"), "{line}");
    w.wait_for_body(healthy_port, &healthy_greeting, Duration::from_secs(5));

    w.remove_vassal(&name);
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        (container_id(&name).is_none()
            && processes_matching(&bridge_title(&name)).is_empty()
            && !w.proxy_socket(&name).exists())
        .then_some(())
    });
    assert!(gone.is_some(), "{name} is left:\n{}", w.log_tail(40));
    assert_emperor_fds_settle(&w, &baseline, "after the mute vassal was removed");
}

// ---- 5. a container that exits during the handoff --------------------------------------

/// Two ways: an image "without uWSGI" (`docker-uwsgi` names nothing: the launcher takes the
/// Emperor's channels, then cannot exec), and a `/bin/true`-like entry point that exits
/// before it connects (native handoff, the dynamic loader as `docker-uwsgi`). Each is a clear
/// error in the log, and nothing is left.
#[test]
fn containers_that_exit_during_the_handoff_fail_clearly_and_leave_nothing() {
    let Some(mut w) = World::start("exit-handoff") else {
        return;
    };
    let (_, healthy_port, healthy_greeting) = healthy_vassal(&mut w);
    let baseline = fd_baseline(&w);

    let missing = w.vassal_name("nouwsgi");
    w.write_vassal(
        &missing,
        &docker_vassal(free_port(), "docker-uwsgi = /usr/bin/no-uwsgi-here", ""),
    );
    w.wait_for_log_line(
        &[&missing, "cannot exec /usr/bin/no-uwsgi-here"],
        SPAWN_TIMEOUT,
    );
    // The channels closed with the launcher: the bridge stops and removes the container.
    w.wait_for_log_line(
        &[&missing, "the vassal closed its Emperor channel"],
        Duration::from_secs(10),
    );

    let truthy = w.vassal_name("truthy");
    w.write_vassal(
        &truthy,
        &docker_vassal(
            free_port(),
            "docker-handoff = native\ndocker-uwsgi = /lib64/ld-linux-x86-64.so.2",
            "",
        ),
    );
    w.wait_for_log_line(
        &[&truthy, "the container exited with status 1"],
        SPAWN_TIMEOUT,
    );
    w.wait_for_body(healthy_port, &healthy_greeting, Duration::from_secs(5));

    for name in [&missing, &truthy] {
        w.remove_vassal(name);
    }
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        [&missing, &truthy]
            .iter()
            .all(|n| {
                container_id(n).is_none()
                    && processes_matching(&bridge_title(n)).is_empty()
                    && !w.proxy_socket(n).exists()
            })
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "left:\n{:#?}\n{}",
        w.leftovers(),
        w.log_tail(40)
    );
    assert_emperor_fds_settle(&w, &baseline, "after both vassals were removed");
}

// ---- 6. the cidfile directory is full --------------------------------------------------

/// A tmpfs of one page, mounted by the test and filled, unmounted on drop.
struct FullTmpfs(TempDir);

impl FullTmpfs {
    fn mount() -> Result<FullTmpfs, String> {
        let dir = TempDir::new("full");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4k,mode=755", "uwsgi-docker-full"])
            .arg(&dir.0)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("cannot mount a tmpfs: {}", lossy(&out.stderr)));
        }
        let full = FullTmpfs(dir);
        // Fill it: write until the kernel says no.
        let mut filler = fs::File::create(full.0 .0.join("filler")).map_err(|e| e.to_string())?;
        let block = [0u8; 4096];
        while filler.write_all(&block).is_ok() {}
        Ok(full)
    }
}

impl Drop for FullTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0 .0).status();
    }
}

#[test]
fn a_full_cidfile_directory_fails_the_vassal_and_leaves_no_container() {
    let full = match FullTmpfs::mount() {
        Ok(full) => full,
        Err(why) => return skip(why),
    };
    let cidfile = full.0 .0.join("app.cid");
    let Some(mut w) = World::start("cidfile-full") else {
        return;
    };
    let (_, healthy_port, healthy_greeting) = healthy_vassal(&mut w);
    let baseline = fd_baseline(&w);

    let name = w.vassal_name("cid");
    w.write_vassal(
        &name,
        &docker_vassal(
            free_port(),
            &format!("docker-cidfile = {}", cidfile.display()),
            "",
        ),
    );
    let line = w.wait_for_log_line(
        &[&name, &cidfile.display().to_string(), "No space left"],
        SPAWN_TIMEOUT,
    );
    assert!(line.contains("cidfile") || line.contains("write"), "{line}");
    assert!(!cidfile.exists(), "a partial cidfile is left");
    w.wait_for_body(healthy_port, &healthy_greeting, Duration::from_secs(5));

    w.remove_vassal(&name);
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        (container_id(&name).is_none()
            && containers_labelled(LABEL_VASSAL, &name).is_empty()
            && processes_matching(&bridge_title(&name)).is_empty())
        .then_some(())
    });
    assert!(gone.is_some(), "{name} is left:\n{}", w.log_tail(40));
    assert!(!cidfile.exists());
    assert_emperor_fds_settle(&w, &baseline, "after the vassal was removed");
    drop(w);
    drop(full);
}

// ---- 7. a reload storm -----------------------------------------------------------------

/// 20 rewrites in 10 s, each with a new greeting (the mtime moved forward every time: the
/// Emperor compares whole seconds): the vassal ends serving the last one, in the container
/// it started in.
#[test]
fn a_reload_storm_ends_serving_the_last_config_in_the_same_container() {
    let Some(mut w) = World::start("reload-storm") else {
        return;
    };
    let (_, healthy_port, healthy_greeting) = healthy_vassal(&mut w);
    let port = free_port();
    let name = w.vassal_name("storm");
    w.write_vassal(&name, &docker_vassal(port, "", "env = GREETING=storm 0"));
    w.wait_for_body(port, "storm 0", SPAWN_TIMEOUT);
    let container = container_id(&name).expect("the container exists");
    let baseline = fd_baseline(&w);

    for i in 1..=20 {
        w.rewrite_vassal(
            &name,
            &docker_vassal(port, "", &format!("env = GREETING=storm {i}")),
        );
        thread::sleep(Duration::from_millis(500));
    }
    w.wait_for_body(port, "storm 20", Duration::from_secs(60));
    assert_eq!(
        container_id(&name).as_deref(),
        Some(container.as_str()),
        "the storm replaced the container"
    );
    w.wait_for_body(healthy_port, &healthy_greeting, Duration::from_secs(5));
    assert_emperor_fds_settle(&w, &baseline, "after the storm");
}

// ---- 8. a spawn storm ------------------------------------------------------------------

/// 50 vassals written at once all serve; all removed at once, nothing is left, and the
/// Emperor is back to its fds.
#[test]
fn a_spawn_storm_of_fifty_serves_and_leaves_nothing() {
    let Some(mut w) = World::start("spawn-storm") else {
        return;
    };
    let (_, healthy_port, healthy_greeting) = healthy_vassal(&mut w);
    let baseline = fd_baseline(&w);
    let vassals: Vec<(String, u16)> = (0..50)
        .map(|i| (w.vassal_name(&format!("s{i:02}")), free_port()))
        .collect();
    for (name, port) in &vassals {
        w.write_vassal(
            name,
            &docker_vassal(
                *port,
                "docker-stop-timeout = 5",
                &format!("env = GREETING=storm {name}"),
            ),
        );
    }
    for (name, port) in &vassals {
        w.wait_for_body(*port, &format!("storm {name}"), Duration::from_secs(300));
    }
    w.wait_for_body(healthy_port, &healthy_greeting, Duration::from_secs(5));
    for (name, _) in &vassals {
        w.remove_vassal(name);
    }
    let gone = wait_for(Duration::from_secs(120), || {
        vassals
            .iter()
            .all(|(n, _)| {
                container_id(n).is_none() && processes_matching(&bridge_title(n)).is_empty()
            })
            .then_some(())
    });
    assert!(gone.is_some(), "left: {:#?}", w.leftovers());
    w.wait_for_body(healthy_port, &healthy_greeting, Duration::from_secs(5));
    assert_emperor_fds_settle(&w, &baseline, "after the fifty were removed");
}

// ---- 9. the forkpty router, as in the seed ---------------------------------------------

/// The test image with Debian's forkptyrouter and pty plugins and /bin/sh
/// (`UWSGIDOCKER_TEST_FORKPTY_IMAGE`, else built by `scripts/build-test-image.sh`).
fn forkpty_image() -> String {
    if let Ok(image) = std::env::var("UWSGIDOCKER_TEST_FORKPTY_IMAGE") {
        return image;
    }
    let tag = "uwsgi-docker-test:forkpty";
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-test-image.sh");
    let out = Command::new(&script)
        .arg(tag)
        .env(
            "UWSGIDOCKER_TEST_PLUGINS",
            "psgi corerouter forkptyrouter pty",
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        lossy(&out.stderr)
    );
    tag.to_owned()
}

/// The seed's forkpty section: a host directory mounted into the container, the forkpty
/// router's socket in it, and `uwsgi --pty-connect` on the host runs a shell command in the
/// container and reads its output (through `script`, which gives it the terminal it needs).
#[test]
fn the_forkpty_router_runs_a_command_in_the_container() {
    let Some(mut w) = World::start("forkpty") else {
        return;
    };
    let image = forkpty_image();
    let (_, healthy_port, healthy_greeting) = healthy_vassal(&mut w);
    let pty_dir = w.root.join("pty");
    fs::create_dir_all(&pty_dir).expect("pty dir");
    let port = free_port();
    let name = w.vassal_name("pty");
    let text = docker_vassal(
        port,
        &format!("docker-mount = {}:/pty", pty_dir.display()),
        "plugin = forkptyrouter\nforkpty-router = /pty/socket\nforkptyrouter-command = /bin/sh",
    )
    .replace(
        &format!("docker-image = {}", crate::harness::image()),
        &format!("docker-image = {image}"),
    );
    w.write_vassal(&name, &text);
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    let socket = pty_dir.join("socket");
    let up = wait_for(Duration::from_secs(30), || {
        UnixStream::connect(&socket).ok()
    });
    assert!(up.is_some(), "no forkpty router at {}", socket.display());

    let marker = format!("pty-{}", w.id);
    // `$((…))` is expanded by the shell in the container: the echo of our input alone does
    // not contain the answer.
    let input = format!("echo {marker}-$((6*7))\nexit\n");
    let connect = format!("uwsgi --plugin pty --pty-connect {}", socket.display());
    let mut child = Command::new("script")
        .args(["-qfec", &connect, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = thread::spawn(move || {
        // Give the connection a moment, then type.
        thread::sleep(Duration::from_secs(2));
        let _ = stdin.write_all(input.as_bytes());
        thread::sleep(Duration::from_secs(3));
    });
    let done = wait_for(Duration::from_secs(30), || child.try_wait().ok().flatten());
    if done.is_none() {
        let _ = child.kill();
    }
    let _ = writer.join();
    let out = child.wait_with_output().expect("script's output");
    let text = lossy(&out.stdout).replace('\r', "");
    assert!(
        text.contains(&format!("{marker}-42")),
        "the command's output did not come back: {text:?} {}",
        lossy(&out.stderr)
    );
    w.wait_for_body(healthy_port, &healthy_greeting, Duration::from_secs(5));
    w.remove_vassal(&name);
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        (container_id(&name).is_none() && processes_matching(&bridge_title(&name)).is_empty())
            .then_some(())
    });
    assert!(gone.is_some(), "{name} is left:\n{}", w.log_tail(40));
    // The router's socket is the container's, in the host directory we mounted: uWSGI
    // removes it at exit (or leaves it); either way it is in our temp dir, not a proxy.
    let _ = fs::remove_file(&socket);
}
