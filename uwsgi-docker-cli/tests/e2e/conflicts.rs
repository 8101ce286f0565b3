//! End to end: who may take a container name, a name prefix per Emperor, and a daemon that
//! hangs (issue 8, items 5 and 6). A real daemon and real Emperors, except where the daemon
//! is a stub on purpose; each test leaves nothing behind.

use std::io::{ErrorKind, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::harness::*;

/// A "daemon" that accepts every connection, reads what it is sent, and never answers.
struct HungDaemon {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl HungDaemon {
    fn start(path: &Path) -> HungDaemon {
        let listener = UnixListener::bind(path).expect("bind the stub daemon's socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, received) = (stop.clone(), received.clone());
            thread::spawn(move || {
                let mut held: Vec<UnixStream> = Vec::new();
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    while let Ok((stream, _)) = listener.accept() {
                        stream.set_nonblocking(true).expect("nonblocking");
                        held.push(stream);
                    }
                    for stream in &mut held {
                        loop {
                            match stream.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    received.fetch_add(n, Ordering::Relaxed);
                                }
                                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                                Err(_) => break,
                            }
                        }
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            })
        };
        HungDaemon {
            path: path.to_owned(),
            stop,
            received,
            thread: Some(thread),
        }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for HungDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Issue 8, item 6: a daemon that accepts and never answers. SIGTERM still ends the bridge,
/// well within the request timeout (30 s), and no proxy socket is left.
#[test]
fn sigterm_ends_a_bridge_whose_daemon_never_answers() {
    let Some(w) = World::start("hung-daemon") else {
        return;
    };
    let stub_path = w.root.join("hung-docker.sock");
    let stub = HungDaemon::start(&stub_path);
    let name = w.vassal_name("hung");
    let file = w.root.join(&name);
    std::fs::write(&file, docker_vassal(free_port(), "", "")).expect("write the vassal");
    let log_path = w.root.join("bridge.log");
    let log = std::fs::File::create(&log_path).expect("bridge log");
    let mut bridge = Command::new(bin())
        .arg("run")
        .arg(&file)
        .env("UWSGIDOCKER_DAEMON_SOCKET", &stub_path)
        // The World's id: its private runtime directory is checked and removed with it.
        .env("UWSGIDOCKER_EMPEROR_ID", &w.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("uwsgi-docker run starts");
    let bridge_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let proxy = w.proxy_socket(&name);

    // The bridge is up and waiting on the daemon: its request arrived, its proxy is bound.
    let asked = wait_for(Duration::from_secs(10), || {
        (stub.received() > 0 && proxy.exists()).then_some(())
    });
    assert!(
        asked.is_some(),
        "the bridge never asked the stub daemon:\n{}",
        bridge_log()
    );
    thread::sleep(Duration::from_secs(2));
    assert!(
        bridge.try_wait().expect("poll the bridge").is_none(),
        "the bridge gave up before the deadline:\n{}",
        bridge_log()
    );

    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &bridge.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let bound = Duration::from_secs(15);
    let exited = wait_for(bound, || bridge.try_wait().ok().flatten());
    if exited.is_none() {
        let _ = bridge.kill();
        let _ = bridge.wait();
    }
    let took = signalled.elapsed();
    let log = bridge_log();
    assert!(
        exited.is_some(),
        "the bridge ignored SIGTERM for {bound:?} with a hung daemon:\n{log}"
    );
    assert!(took < bound, "took {took:?}");
    assert!(
        !proxy.exists(),
        "the proxy socket {} is left",
        proxy.display()
    );
    assert!(
        log.contains(&format!("vassal {name}")) && log.contains("did not answer GET /version"),
        "the log names the vassal and the request:\n{log}"
    );
    drop(stub);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the hung-daemon bridge exited");
}

/// Issue 8, item 5: a container that is not ours holds the vassal's name. The vassal fails
/// with an error that names it, and it survives.
#[test]
fn a_foreign_container_holding_the_name_survives_and_is_named() {
    let Some(mut w) = World::start("foreign-holder") else {
        return;
    };
    let name = w.vassal_name("foreign");
    w.adopt_container(&name);
    let squatter = docker_ok(&["create", "--name", &name, &image(), "true"]);
    let short = &squatter[..12];
    let labels_before = inspect(&squatter, "{{json .Config.Labels}}");

    w.write_vassal(&name, &docker_vassal(free_port(), "", ""));
    let line = w.wait_for_log_line(
        &[
            &format!("vassal {name}"),
            "is taken by container",
            short,
            "not ours",
        ],
        SPAWN_TIMEOUT,
    );
    assert!(line.contains("left alone"), "{line}");
    w.remove_vassal(&name);
    // The Emperor's retries are over once no bridge for it is left.
    let settled = wait_for(CLEANUP_TIMEOUT, || {
        processes_matching(&name).is_empty().then_some(())
    });
    assert!(settled.is_some(), "a bridge for {name} is still running");

    assert_eq!(
        container_id(&name).as_deref(),
        Some(squatter.as_str()),
        "the foreign container was replaced or removed"
    );
    assert_eq!(
        inspect(&squatter, "{{json .Config.Labels}}"),
        labels_before,
        "the foreign container was changed"
    );
    assert!(
        containers_labelled(LABEL_VASSAL, &name).is_empty(),
        "a container of ours was made for {name}"
    );
    docker_ok(&["rm", &squatter]);
}

/// Issue 8, item 5: two Emperors with different name prefixes run a vassal file of the same
/// name on one daemon, side by side, each serving, with no container churn.
#[test]
fn two_emperors_with_different_prefixes_share_a_vassal_name() {
    let emperor = |prefix: &str| {
        let options = EmperorOptions::from_env();
        // In plugin mode through the plugin's own option, as an operator would set it.
        if options.mode == Mode::Plugin {
            options.with_option("docker-name-prefix", prefix)
        } else {
            options.with_env("UWSGIDOCKER_NAME_PREFIX", prefix)
        }
    };
    let Some(mut a) = World::start_with("prefix-a", emperor("pa-")) else {
        return;
    };
    let Some(mut b) = World::start_with("prefix-b", emperor("pb-")) else {
        return;
    };
    // The same file name in both Emperors' directories.
    let name = a.vassal_name("shared");
    let (port_a, port_b) = (free_port(), free_port());
    let greeting_a = format!("Hello from Emperor a {}", a.id);
    let greeting_b = format!("Hello from Emperor b {}", b.id);
    a.write_vassal(
        &name,
        &docker_vassal(port_a, "", &format!("env = GREETING={greeting_a}")),
    );
    b.write_vassal(
        &name,
        &docker_vassal(port_b, "", &format!("env = GREETING={greeting_b}")),
    );
    a.wait_for_body(port_a, &greeting_a, SPAWN_TIMEOUT);
    b.wait_for_body(port_b, &greeting_b, SPAWN_TIMEOUT);

    let (container_a, container_b) = (format!("pa-{name}"), format!("pb-{name}"));
    let id_a = container_id(&container_a).expect("Emperor a's container");
    let id_b = container_id(&container_b).expect("Emperor b's container");
    assert_ne!(id_a, id_b);
    assert_eq!(
        inspect(
            &id_a,
            r#"{{index .Config.Labels "io.uwsgi-docker.prefix"}}"#
        ),
        "pa-"
    );
    assert_eq!(
        inspect(
            &id_b,
            r#"{{index .Config.Labels "io.uwsgi-docker.prefix"}}"#
        ),
        "pb-"
    );
    // Each proxy socket (gone after the handoff) carried its Emperor's prefix.
    let proxy = r#"{{index .Config.Labels "io.uwsgi-docker.proxy"}}"#;
    assert_eq!(
        inspect(&id_a, proxy),
        a.proxy_dir
            .join(format!("pa-{name}.sock"))
            .to_string_lossy()
    );
    assert_eq!(
        inspect(&id_b, proxy),
        b.proxy_dir
            .join(format!("pb-{name}.sock"))
            .to_string_lossy()
    );

    // Several seconds side by side: both serve, and neither container is replaced.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        for (port, greeting) in [(port_a, &greeting_a), (port_b, &greeting_b)] {
            let got = http_get(port, "/");
            assert!(
                matches!(&got, Ok((200, body)) if body == greeting),
                "port {port}: {got:?}; logs:\n{}\n{}",
                a.log_tail(30),
                b.log_tail(30)
            );
        }
        assert_eq!(container_id(&container_a).as_deref(), Some(id_a.as_str()));
        assert_eq!(container_id(&container_b).as_deref(), Some(id_b.as_str()));
        thread::sleep(Duration::from_millis(500));
    }
    for w in [&a, &b] {
        assert!(
            !w.log().contains("is taken by container"),
            "{}: a conflict was reported:\n{}",
            w.test,
            w.log_tail(30)
        );
    }

    // Both Emperors stop before either checks: each sees the other's vassal by its name.
    a.stop_emperor();
    b.stop_emperor();
    a.assert_clean_within(CLEANUP_TIMEOUT, "after both Emperors stopped");
    b.assert_clean_within(CLEANUP_TIMEOUT, "after both Emperors stopped");
}
