//! End to end for `docker-socket`: the host binds the socket, the static launcher puts it
//! on fd 0 of a stock uWSGI 2.0 in the container, and clients connect to the host socket.
//! No port is published and no directory is shared.
//!
//! Same rules as `e2e.rs`: a real Emperor per test, nothing left behind, skipped without
//! Docker, uWSGI or the test image (failing under `CI`). The launcher is the one
//! `uwsgi-docker` carries, unless `UWSGIDOCKER_LAUNCHER` names another.

use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::*;

fn world(test: &str) -> Option<World> {
    prerequisites(test)?;
    World::start(test)
}

/// The seed's "Simplifying socket management" vassal: no `socket` option, `protocol = http`.
/// With `UWSGIDOCKER_E2E_NETWORK_MODE` set, it says `docker-network-mode = THAT`: a
/// rootless engine without a usable container network (no /dev/net/tun for slirp4netns)
/// runs it with `none`, which a `docker-socket` vassal needs no more than.
fn socket_vassal(socket: &str, extra_uwsgi: &str) -> String {
    let network = std::env::var("UWSGIDOCKER_E2E_NETWORK_MODE")
        .ok()
        .filter(|m| !m.is_empty())
        .map(|m| format!("docker-network-mode = {m}\n"))
        .unwrap_or_default();
    format!(
        "[emperor]\n\
         docker-image = {image}\n\
         docker-socket = {socket}\n\
         {network}\
         \n\
         [uwsgi]\n\
         master = true\n\
         plugin = psgi\n\
         psgi = {APP_IN_IMAGE}\n\
         protocol = http\n\
         processes = 2\n\
         {extra_uwsgi}\n",
        image = image()
    )
}

/// `GET /` over HTTP/1.0 on a unix socket: `(status, body)`.
fn unix_get(path: &Path) -> std::io::Result<(u16, String)> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    read_http_reply(stream)
}

fn wait_for_unix_body(w: &World, path: &Path, body: &str) {
    let mut last = None;
    let ok = wait_for(SPAWN_TIMEOUT, || {
        let got = unix_get(path);
        let done = matches!(&got, Ok((200, b)) if b == body);
        last = Some(got);
        done.then_some(())
    });
    assert!(
        ok.is_some(),
        "{}: {} did not answer 200 {body:?}; last: {last:?}; log tail:\n{}",
        w.test,
        path.display(),
        w.log_tail(60)
    );
}

/// Nothing published, and no bind mount of `dir` (the socket travels as an fd).
fn assert_no_ports_and_no_shared_dir(name: &str, dir: &Path) {
    let ports = inspect(name, "{{json .HostConfig.PortBindings}}");
    assert!(ports == "{}" || ports == "null", "published ports: {ports}");
    let exposed = inspect(name, "{{json .NetworkSettings.Ports}}");
    assert!(exposed == "{}" || exposed == "null", "ports: {exposed}");
    let mounts = inspect(
        name,
        "{{range .Mounts}}{{.Source}}|{{.Destination}}|{{.RW}}\n{{end}}",
    );
    for mount in mounts.lines() {
        let source = mount.split('|').next().unwrap_or_default();
        assert_ne!(
            Path::new(source),
            dir,
            "the socket's directory is shared: {mounts}"
        );
    }
    // What is bound: the proxy socket, and the launcher read-only, a static executable
    // (the one uwsgi-docker carries, written out at the bridge's start).
    let launcher = mounts
        .lines()
        .find_map(|m| m.strip_suffix("|/.uwsgi-docker-launcher|false"))
        .unwrap_or_else(|| panic!("no read-only launcher mount: {mounts}"));
    assert!(is_static(Path::new(launcher)), "{launcher} is not static");
    if std::env::var_os("UWSGIDOCKER_LAUNCHER").is_none() {
        let file_name = Path::new(launcher).file_name().unwrap_or_default();
        assert!(
            file_name
                .to_string_lossy()
                .starts_with("uwsgi-docker-launcher-"),
            "not the embedded launcher: {launcher}"
        );
    }
}

/// Done means (unix): `docker-socket = <tmpdir>/app.sock` answers over the host socket;
/// deleting the vassal removes the socket file and the container.
#[test]
fn unix_socket_serves_and_goes_with_the_vassal() {
    let Some(mut w) = world("unix_socket") else {
        return;
    };
    let socket = w.root.join("app.sock");
    let name = w.vassal_name("unix");
    w.write_vassal(&name, &socket_vassal(&socket.to_string_lossy(), ""));
    wait_for_unix_body(&w, &socket, DEFAULT_GREETING);

    let curl = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--unix-socket"])
        .arg(&socket)
        .arg("http://x/")
        .output();
    match curl {
        Ok(out) => assert_eq!(
            lossy(&out.stdout),
            DEFAULT_GREETING,
            "curl: {}",
            lossy(&out.stderr)
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("curl is not installed; checked with a Rust client only")
        }
        Err(e) => panic!("cannot run curl: {e}"),
    }
    assert_no_ports_and_no_shared_dir(&name, &w.root);
    let cmd = inspect(&name, "{{json .Config.Cmd}}");
    assert!(
        cmd.starts_with(r#"["/.uwsgi-docker-launcher","#) && cmd.contains("emperor://"),
        "cmd: {cmd}"
    );
    let env = inspect(&name, "{{range .Config.Env}}{{println .}}{{end}}");
    assert!(!env.contains("UWSGI_EMPEROR_PROXY"), "env: {env}");

    w.remove_vassal(&name);
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        (!socket.exists() && container_id(&name).is_none()).then_some(())
    });
    assert!(
        gone.is_some(),
        "after removal: socket exists {}, container {:?}; log tail:\n{}",
        socket.exists(),
        container_id(&name),
        w.log_tail(40)
    );
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
}

/// Done means (TCP): `docker-socket = 127.0.0.1:PORT`.
#[test]
fn tcp_socket_serves_without_published_ports() {
    let Some(mut w) = world("tcp_socket") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("tcp");
    w.write_vassal(&name, &socket_vassal(&format!("127.0.0.1:{port}"), ""));
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    assert_no_ports_and_no_shared_dir(&name, &w.root);
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
    assert!(
        http_get(port, "/").is_err(),
        "port {port} still answers after the vassal was removed"
    );
}

/// An address in use is a clear error for that vassal, and no container is made.
#[test]
fn an_address_in_use_is_refused_before_any_container() {
    let Some(mut w) = world("socket_in_use") else {
        return;
    };
    let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let name = w.vassal_name("busy");
    w.write_vassal(&name, &socket_vassal(&format!("127.0.0.1:{port}"), ""));
    let line = w.wait_for_log_line(&[&name, "docker-socket", "in use"], SPAWN_TIMEOUT);
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert_eq!(container_id(&name), None, "a container was made");
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
    drop(holder);
}

/// Tallies of requests made while the vassal reloads.
#[derive(Debug, Default)]
struct Tally {
    ok: u32,
    /// The longest a request took: one made during a reload waits in the backlog.
    slowest: Duration,
    refused: u32,
    other: Vec<String>,
}

/// Done means (reload): the socket survives touch-reloads, and requests made during them
/// are not refused (uWSGI keeps fd 0 open across its re-exec, so connections wait in the
/// backlog).
#[test]
fn the_socket_survives_reloads_and_requests_are_not_refused() {
    let Some(mut w) = world("socket_reload") else {
        return;
    };
    let socket = w.root.join("app.sock");
    let name = w.vassal_name("reload");
    let text = |greeting: &str| {
        socket_vassal(
            &socket.to_string_lossy(),
            &format!("env = GREETING={greeting}"),
        )
    };
    w.write_vassal(&name, &text("before"));
    wait_for_unix_body(&w, &socket, "before");
    let container = container_id(&name).expect("the container runs");

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = Arc::clone(&stop);
        let socket = socket.clone();
        thread::spawn(move || {
            let mut tally = Tally::default();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let reply = unix_get(&socket);
                tally.slowest = tally.slowest.max(started.elapsed());
                match reply {
                    Ok((200, _)) => tally.ok += 1,
                    Ok((status, body)) => tally.other.push(format!("{status} {body:?}")),
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::ConnectionRefused | ErrorKind::NotFound
                        ) =>
                    {
                        tally.refused += 1
                    }
                    Err(e) => tally.other.push(e.to_string()),
                }
                thread::sleep(Duration::from_millis(20));
            }
            tally
        })
    };
    for round in 1..=2 {
        let greeting = format!("after-{round}");
        w.rewrite_vassal(&name, &text(&greeting));
        let started = Instant::now();
        wait_for_unix_body(&w, &socket, &greeting);
        eprintln!(
            "socket_reload: reload {round} served the new config after {:?}",
            started.elapsed()
        );
        // Let the new generation settle before the next touch: a uWSGI 2.0.21 master that
        // gets a reload while its fresh workers are still starting was seen to signal only
        // some of them and wait on the rest for its whole mercy period (60 s).
        thread::sleep(Duration::from_secs(2));
    }
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let tally = client.join().expect("the client thread");
    eprintln!(
        "socket_reload: during 2 reloads: {} ok (slowest {:?}), {} refused, {} other failures {:?}",
        tally.ok,
        tally.slowest,
        tally.refused,
        tally.other.len(),
        tally.other
    );
    assert_eq!(
        container_id(&name).as_deref(),
        Some(container.as_str()),
        "a reload replaced the container"
    );
    assert_eq!(
        tally.refused, 0,
        "requests refused during reloads: {tally:?}"
    );
    assert!(tally.ok > 0, "no request succeeded: {tally:?}");

    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
    assert!(!socket.exists(), "the socket file outlived its vassal");
}

/// The README's "Simplifying socket management" block (the seed's example).
fn readme_seed_example() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("read README.md");
    let (_, after) = readme
        .split_once("<!-- seed-socket-example")
        .expect("README.md has the seed-socket-example marker");
    let (_, block) = after.split_once("```ini\n").expect("an ini block follows");
    let (ini, _) = block.split_once("```").expect("the ini block ends");
    ini.to_owned()
}

/// `GET /` in the uwsgi protocol (what nginx's `uwsgi_pass` speaks): the raw reply.
fn uwsgi_get(path: &Path) -> std::io::Result<String> {
    let stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    uwsgi_request(stream, 0, "/")
}

/// Done means (README): the seed's example works as written, image name changed; only the
/// socket path moves into the test's directory.
#[test]
fn the_readme_seed_example_serves_the_uwsgi_protocol() {
    let Some(mut w) = world("seed_example") else {
        return;
    };
    let socket = w.root.join("example.com.socket");
    let text = readme_seed_example()
        .replace("/var/run/example.com.socket", &socket.to_string_lossy())
        .replace(
            "docker-image = uwsgi-docker-test\n",
            &format!("docker-image = {}\n", image()),
        );
    assert!(text.contains("docker-socket = "), "{text}");
    let name = w.vassal_name("example");
    w.write_vassal(&name, &text);
    let mut last = None;
    let served = wait_for(SPAWN_TIMEOUT, || {
        let got = uwsgi_get(&socket);
        let done = matches!(&got, Ok(reply) if reply.starts_with("HTTP/1.") && reply.contains(" 200 ") && reply.ends_with(DEFAULT_GREETING));
        last = Some(got);
        done.then_some(())
    });
    assert!(
        served.is_some(),
        "the seed example did not answer; last: {last:?}; log tail:\n{}",
        w.log_tail(60)
    );
    // uWSGI found the socket on fd 0 and dropped privileges as the example asks.
    w.wait_for_log_line(
        &["uwsgi socket 0 inherited UNIX address", "fd 0"],
        SPAWN_TIMEOUT,
    );
    w.wait_for_log_line(&["setuid() to 33"], SPAWN_TIMEOUT);
    assert_no_ports_and_no_shared_dir(&name, &w.root);
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
    assert!(!socket.exists(), "the socket file outlived its vassal");
}

/// An Emperor in on-demand mode (`World` starts a plain one): it binds
/// `socks/NAME.socket` and spawns the vassal at the first connection, with the socket on
/// fd 0 of the wrapper.
#[derive(Debug)]
struct OnDemandEmperor {
    root: PathBuf,
    child: Option<std::process::Child>,
    vassal: String,
}

impl OnDemandEmperor {
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        if wait_for(Duration::from_secs(45), || child.try_wait().ok().flatten()).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read(self.root.join("emperor.log"))
            .map(|b| lossy(&b))
            .unwrap_or_default()
    }
}

impl Drop for OnDemandEmperor {
    fn drop(&mut self) {
        self.stop();
        if container_id(&self.vassal).is_some() {
            let _ = docker(&["rm", "-f", &self.vassal]);
        }
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
        // Its bridges' private runtime directory (UWSGIDOCKER_EMPEROR_ID is the id), empty now.
        if let Some(id) = self.vassal.strip_suffix("-od.ini") {
            let _ = std::fs::remove_dir(Path::new("/run/uwsgi-docker").join(id));
        }
    }
}

/// Done means (on demand): the Emperor's on-demand socket reaches the vassal in its
/// container through the same launcher path.
#[test]
fn an_on_demand_socket_reaches_the_container() {
    if prerequisites("on_demand").is_none() {
        return;
    }
    let id = format!("e2eod{}", std::process::id());
    let root = std::env::temp_dir().join(format!("uwsgi-docker-{id}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("vassals")).expect("vassal dir");
    std::fs::create_dir_all(root.join("socks")).expect("socket dir");
    let vassal = format!("{id}-od.ini");
    let text = format!(
        "[emperor]\ndocker-image = {image}\n\n[uwsgi]\nmaster = true\nplugin = psgi\npsgi = {APP_IN_IMAGE}\nprotocol = http\nprocesses = 1\n",
        image = image()
    );
    std::fs::write(root.join("vassals").join(&vassal), text).expect("write the vassal");
    let child = Command::new(uwsgi_bin())
        .arg("--emperor")
        .arg(format!("dir://{}", root.join("vassals").display()))
        .arg("--emperor-on-demand-directory")
        .arg(root.join("socks"))
        .arg("--emperor-wrapper")
        .arg(bin())
        .arg("--logto")
        .arg(root.join("emperor.log"))
        .env("UWSGIDOCKER_EMPEROR_ID", &id)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn the Emperor");
    let mut emperor = OnDemandEmperor {
        root: root.clone(),
        child: Some(child),
        vassal: vassal.clone(),
    };
    let socket = root.join("socks").join(format!("{id}-od.socket"));
    assert!(
        wait_for(Duration::from_secs(15), || socket.exists().then_some(())).is_some(),
        "the Emperor did not bind {}:\n{}",
        socket.display(),
        emperor.log()
    );
    assert_eq!(container_id(&vassal), None, "spawned before any connection");
    // The first request wakes the vassal; it waits in the backlog and is answered.
    let reply = unix_get(&socket);
    assert!(
        matches!(&reply, Ok((200, body)) if body == DEFAULT_GREETING),
        "first request: {reply:?}; log:\n{}",
        emperor.log()
    );
    let cmd = inspect(&vassal, "{{json .Config.Cmd}}");
    assert!(
        cmd.starts_with(r#"["/.uwsgi-docker-launcher","#),
        "cmd: {cmd}"
    );
    assert_no_ports_and_no_shared_dir(&vassal, &root.join("socks"));
    emperor.stop();
    assert!(
        wait_for(CLEANUP_TIMEOUT, || container_id(&vassal)
            .is_none()
            .then_some(()))
        .is_some(),
        "the container outlived the Emperor"
    );
    let left = wait_for(CLEANUP_TIMEOUT, || {
        processes_matching(&id).is_empty().then_some(())
    });
    assert!(
        left.is_some(),
        "processes left: {:?}",
        processes_matching(&id)
    );
}

/// The engine under test is rootless: its socket belongs to an unprivileged user
/// (scripts/podman-rootless.sh).
fn rootless_engine() -> bool {
    use std::os::unix::fs::MetadataExt;
    daemon_socket()
        .and_then(|socket| std::fs::metadata(socket).ok())
        .is_some_and(|meta| meta.uid() != 0)
}

/// A rootless engine as it is, without the operator's settings: the proxy socket and the
/// launcher sit in the Emperor's private (0700) runtime directory, which the engine's user
/// cannot reach. The vassal fails with an error that names the path and the settings that
/// fix it, and leaves no container. (With the settings, the tests above run on it.)
#[test]
fn a_rootless_engine_without_the_operators_settings_says_what_to_set() {
    if !rootless_engine() {
        return skip("the engine under test is not rootless (scripts/podman-rootless.sh)");
    }
    prerequisites("rootless_as_is").expect("the rootless engine is up, its prerequisites are too");
    // Empty is unset, for the bridges and for the harness.
    let options = EmperorOptions::from_env()
        .with_env("UWSGIDOCKER_SOCKET_DIR", "")
        .with_env("UWSGIDOCKER_RUNTIME_DIR", "")
        .with_env("UWSGIDOCKER_SOCKET_MODE", "");
    let Some(mut w) = World::start_with("rootless_as_is", options) else {
        return;
    };
    let socket = w.root.join("app.sock");
    let name = w.vassal_name("asis");
    w.write_vassal(&name, &socket_vassal(&socket.to_string_lossy(), ""));
    let line = w.wait_for_log_line(&[&name, "the engine cannot reach"], SPAWN_TIMEOUT);
    assert!(
        line.contains("UWSGIDOCKER_SOCKET_DIR") && line.contains("UWSGIDOCKER_SOCKET_MODE=666"),
        "{line}"
    );
    w.remove_vassal(&name);
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        container_id(&name).is_none().then_some(())
    });
    assert!(gone.is_some(), "a container is left: {:#?}", w.leftovers());
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
}
