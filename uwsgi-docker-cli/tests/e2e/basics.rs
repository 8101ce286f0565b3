//! End to end: a stock Debian uWSGI 2.0 Emperor with `emperor-wrapper = uwsgi-docker`,
//! real vassals in real containers of the `uwsgi-docker-test` image, real HTTP requests.
//!
//! Each test starts its own Emperor in its own temp dir, with vassal names that carry a
//! per-test id, and its guard asserts that nothing is left behind: no container, no proxy
//! socket, no process. Without Docker, uWSGI or the test image the tests skip, except under
//! `CI`, where they fail. Build the image with `scripts/build-test-image.sh`.

use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

const STOP_TIMEOUT_SECS: u64 = 5;

/// Scenario 1: the quickstart vassal serves, and its container carries every setting.
#[test]
fn spawn_serves_and_container_has_the_settings() {
    let Some(mut w) = World::start("spawn") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("app");
    let text = docker_vassal(
        port,
        &format!("docker-env = E2E_MARK={id}\ndocker-memory = 64m", id = w.id),
        "",
    );
    w.write_vassal(&name, &text);
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);

    let bindings = inspect(&name, "{{json .HostConfig.PortBindings}}");
    assert!(
        bindings.contains(&format!(
            r#""3031/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{port}"}}]"#
        )),
        "port bindings: {bindings}"
    );
    let mounts = inspect(
        &name,
        "{{range .Mounts}}{{.Source}}|{{.Destination}}\n{{end}}",
    );
    let proxy = w.proxy_socket(&name);
    assert!(
        mounts
            .lines()
            .any(|m| m.split('|').next() == proxy.to_str()),
        "no bind mount of the proxy socket {}: {mounts}",
        proxy.display()
    );
    let env = inspect(&name, "{{range .Config.Env}}{{println .}}{{end}}");
    assert!(
        env.lines().any(|e| e == format!("E2E_MARK={}", w.id)),
        "env: {env}"
    );
    assert_eq!(
        inspect(&name, "{{.HostConfig.Memory}}"),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        inspect(
            &name,
            &format!("{{{{index .Config.Labels \"{LABEL_MANAGED}\"}}}}")
        ),
        "1"
    );
    assert_eq!(
        inspect(
            &name,
            &format!("{{{{index .Config.Labels \"{LABEL_VASSAL}\"}}}}")
        ),
        name
    );
    // The default handoff (auto) is the launcher uwsgi-docker carries, which connects to
    // the proxy, then execs uWSGI.
    let cmd = inspect(&name, "{{json .Config.Cmd}}");
    let native = format!(r#""uwsgi","--ini","emperor://{name}"]"#);
    assert!(
        cmd.starts_with(r#"["/.uwsgi-docker-launcher","#) && cmd.ends_with(&native),
        "{cmd}"
    );
    // Docker reports the stop signal by name; Podman's compat inspect by number (SIGINT = 2).
    let stop_signal = match engine() {
        Engine::Docker => "SIGINT",
        Engine::Podman => "2",
    };
    assert_eq!(inspect(&name, "{{.Config.StopSignal}}"), stop_signal);
    assert_eq!(inspect(&name, "{{.Config.Tty}}"), "true");
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");

    // Single use: once the container has its fds, the proxy socket is gone from the host.
    let unlinked = wait_for(Duration::from_secs(5), || (!proxy.exists()).then_some(()));
    assert!(
        unlinked.is_some(),
        "the proxy socket {} outlived the handoff",
        proxy.display()
    );

    let bridges = processes_matching(&bridge_title(&name));
    assert_eq!(
        bridges.len(),
        1,
        "expected one bridge titled {:?}: {bridges:?}",
        bridge_title(&name)
    );
    // Its name (top, pidof, ps -C) is ours, not that of the /proc/self/exe it re-execs.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", bridges[0].0)).expect("comm");
    assert_eq!(comm.trim(), "uwsgi-docker", "the bridge's process name");

    // The dry run agrees with what ran.
    let check = Command::new(bin())
        .arg("check")
        .arg(w.vassal_path(&name))
        .output()
        .expect("run uwsgi-docker check");
    assert!(
        check.status.success(),
        "check failed: {}",
        lossy(&check.stderr)
    );
    let plan = lossy(&check.stdout);
    assert!(
        plan.trim_start().starts_with(['{', '[']),
        "check prints JSON: {plan}"
    );
    assert!(
        plan.contains(&image()) && plan.contains(&name),
        "check output: {plan}"
    );
}

/// Scenario 2: touching the vassal reloads uWSGI inside the same container.
#[test]
fn reload_applies_new_config_in_the_same_container() {
    let Some(mut w) = World::start("reload") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("reload");
    w.write_vassal(
        &name,
        &docker_vassal(port, "", "env = GREETING=before reload"),
    );
    w.wait_for_body(port, "before reload", SPAWN_TIMEOUT);
    let before = container_id(&name).expect("the container exists");

    let greeting = format!("after reload {}", w.id);
    w.rewrite_vassal(
        &name,
        &docker_vassal(port, "", &format!("env = GREETING={greeting}")),
    );
    w.wait_for_body(port, &greeting, SPAWN_TIMEOUT);
    assert_eq!(
        container_id(&name).as_deref(),
        Some(before.as_str()),
        "reload replaced the container"
    );
}

/// Scenario 2b: a reload that changes the `[emperor]` section gets a new container made to
/// the new settings (a container's settings cannot change), started again by the Emperor.
#[test]
fn reload_with_new_docker_settings_recreates_the_container() {
    let Some(mut w) = World::start("recreate") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("recreate");
    w.write_vassal(
        &name,
        &docker_vassal(port, "docker-env = GREETING=first", ""),
    );
    w.wait_for_body(port, "first", SPAWN_TIMEOUT);
    let before = container_id(&name).expect("the container exists");

    w.rewrite_vassal(
        &name,
        &docker_vassal(port, "docker-env = GREETING=second", ""),
    );
    w.wait_for_body(port, "second", SPAWN_TIMEOUT);
    let after = container_id(&name).expect("the new container exists");
    assert_ne!(
        after, before,
        "the settings changed but the container did not"
    );
    assert!(
        container_id(&before).is_none(),
        "the old container is still there"
    );
    let env = inspect(&name, "{{json .Config.Env}}");
    assert!(env.contains("GREETING=second"), "{env}");
}

/// Scenario 3: deleting the vassal file stops and removes its container, socket and bridge.
#[test]
fn removing_the_vassal_removes_container_socket_and_bridge() {
    let Some(mut w) = World::start("remove") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("gone");
    let stop = format!("docker-stop-timeout = {STOP_TIMEOUT_SECS}");
    w.write_vassal(&name, &docker_vassal(port, &stop, ""));
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    assert_eq!(
        processes_matching(&bridge_title(&name)).len(),
        1,
        "one bridge runs"
    );

    let removed_at = Instant::now();
    w.remove_vassal(&name);
    w.assert_clean_within(
        Duration::from_secs(STOP_TIMEOUT_SECS + 15),
        "after the vassal file was removed",
    );
    eprintln!("remove: clean after {:?}", removed_at.elapsed());
    assert!(http_get(port, "/").is_err(), "the port still answers");
}

/// Scenario 4: a container killed behind our back is respawned by the Emperor.
#[test]
fn killed_container_is_respawned() {
    let Some(mut w) = World::start("crash") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("crash");
    w.write_vassal(&name, &docker_vassal(port, "", ""));
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    let first = container_id(&name).expect("the container exists");

    docker_ok(&["kill", &name]);
    let second = wait_for(SPAWN_TIMEOUT, || {
        container_id(&name)
            .filter(|id| *id != first)
            .filter(|_| matches!(http_get(port, "/"), Ok((200, b)) if b == DEFAULT_GREETING))
    });
    assert!(
        second.is_some(),
        "no new container served after docker kill; log:\n{}",
        w.log_tail(60)
    );
    assert!(
        container_id(&first).is_none(),
        "the killed container {first} was not removed"
    );
}

/// Scenario 5: when the Emperor is SIGKILLed, all its containers go away on their own.
#[test]
fn emperor_sigkill_removes_all_containers() {
    let Some(mut w) = World::start("emperor-kill") else {
        return;
    };
    let ports = [free_port(), free_port()];
    for (i, port) in ports.iter().enumerate() {
        let name = w.vassal_name(&format!("orphan{i}"));
        w.write_vassal(&name, &docker_vassal(*port, "", ""));
    }
    for port in ports {
        w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    }
    w.kill_emperor();
    w.assert_clean_within(Duration::from_secs(20), "after the Emperor was SIGKILLed");
}

/// Scenario 5b: a bridge SIGKILLed (the Emperor's curse tolerance) runs no cleanup, yet its
/// container does not outlive it: the relayed channel closes, uWSGI in the container sees
/// its Emperor gone and exits, and the container removes itself. `uwsgi-docker run` is the
/// same bridge without an Emperor, so no respawn can clean up in its stead.
#[test]
fn sigkilled_bridge_takes_its_container_with_it() {
    let Some(w) = World::start("bridge-kill") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("bridge-kill");
    let file = w.root.join(&name);
    std::fs::write(&file, docker_vassal(port, "", "")).expect("write the vassal");
    let mut bridge = Command::new(bin())
        .arg("run")
        .arg(&file)
        // The World's private runtime directory, which its guard checks and removes.
        .env("UWSGIDOCKER_EMPEROR_ID", &w.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("uwsgi-docker run starts");
    let served = wait_for(SPAWN_TIMEOUT, || {
        matches!(http_get(port, "/"), Ok((200, b)) if b == DEFAULT_GREETING).then_some(())
    });
    let first = container_id(&name);
    bridge.kill().expect("SIGKILL the bridge");
    bridge.wait().expect("reap the bridge");
    assert!(served.is_some(), "uwsgi-docker run never served");
    let first = first.expect("the container exists");

    let gone = wait_for(CLEANUP_TIMEOUT, || {
        container_id(&first).is_none().then_some(())
    });
    if gone.is_none() {
        docker(&["rm", "-f", &first]);
    }
    assert!(
        gone.is_some(),
        "container {first} outlived its SIGKILLed bridge"
    );
}

/// Scenario 6: a container of ours already holding the vassal's name, whose bridge is gone
/// (as a crash leaves it), is replaced. (One that is not ours is left alone:
/// `conflicts::`.)
#[test]
fn name_conflict_replaces_the_old_container() {
    let Some(mut w) = World::start("conflict") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("taken");
    w.adopt_container(&name);
    let labels = [
        format!("{LABEL_MANAGED}=1"),
        format!("{LABEL_VASSAL}={name}"),
        format!("io.uwsgi-docker.bridge={}", dead_bridge_label()),
    ];
    let mut create = vec!["create", "--name", &name];
    for label in &labels {
        create.extend(["--label", label]);
    }
    let image = image();
    create.extend([image.as_str(), "true"]);
    let squatter = docker_ok(&create);

    w.write_vassal(&name, &docker_vassal(port, "", ""));
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    let now = container_id(&name).expect("the vassal's container exists");
    assert_ne!(now, squatter, "the old container was not replaced");
    assert!(
        container_id(&squatter).is_none(),
        "the old container {squatter} still exists"
    );
}

/// Scenario 7: a missing image is a clear error for that vassal only.
#[test]
fn missing_image_is_reported_and_others_keep_serving() {
    let Some(mut w) = World::start("missing-image") else {
        return;
    };
    let good_port = free_port();
    let good = w.vassal_name("good");
    w.write_vassal(&good, &docker_vassal(good_port, "", ""));
    w.wait_for_body(good_port, DEFAULT_GREETING, SPAWN_TIMEOUT);

    let bad = w.vassal_name("noimage");
    let missing = format!("uwsgi-docker-e2e-missing-{}", w.id);
    let text = docker_vassal(free_port(), "", "").replace(
        &format!("docker-image = {}", image()),
        &format!("docker-image = {missing}"),
    );
    w.write_vassal(&bad, &text);
    w.wait_for_log_line(&[&bad, &missing], Duration::from_secs(30));

    assert!(
        container_id(&bad).is_none(),
        "a container was created for the missing image"
    );
    assert!(
        containers_labelled(LABEL_VASSAL, &bad).is_empty(),
        "a labelled container exists for {bad}"
    );
    w.wait_for_body(good_port, DEFAULT_GREETING, Duration::from_secs(5));
}

/// Scenario 8: what the app prints reaches the Emperor log exactly once.
#[test]
fn app_output_reaches_the_emperor_log_once() {
    let Some(mut w) = World::start("logs") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("logs");
    w.write_vassal(&name, &docker_vassal(port, "", ""));
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);

    let path = format!("/log-{}", w.id);
    let (status, _) = http_get(port, &path).expect("request the marked path");
    assert_eq!(status, 200);
    let line = format!("app-log: request {path}");
    w.wait_for_log_line(&[&line], Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    let count = w.log().matches(&line).count();
    assert_eq!(
        count,
        1,
        "{line:?} appears {count} times; log tail:\n{}",
        w.log_tail(40)
    );
}

/// Scenario 9: a vassal without `docker-image` runs on the host, next to Docker ones.
#[test]
fn non_docker_vassal_runs_on_the_host() {
    if skip_without_host_psgi("mixed") {
        return;
    }
    let Some(mut w) = World::start_with("mixed", EmperorOptions::allowing_host_vassals()) else {
        return;
    };
    let host_port = free_port();
    let host = w.vassal_name("host");
    let greeting = format!("Hello from the host {}", w.id);
    let text = format!(
        "[uwsgi]\nmaster = true\nplugin = psgi\npsgi = {app}\nhttp-socket = 127.0.0.1:{host_port}\nenv = GREETING={greeting}\n",
        app = w.root.join("app.pl").display()
    );
    w.write_vassal(&host, &text);
    w.wait_for_body(host_port, &greeting, SPAWN_TIMEOUT);
    assert!(
        container_id(&host).is_none(),
        "a container was made for a vassal without docker-image"
    );
    assert!(
        processes_matching(&bridge_title(&host)).is_empty(),
        "a bridge runs for a vassal without docker-image"
    );
    let uwsgi = processes_matching(&host);
    assert!(!uwsgi.is_empty(), "no host process runs {host}");

    // Skipped with a non-Docker wrapper, which is how the harness itself is checked.
    if std::env::var_os("UWSGIDOCKER_E2E_WRAPPER").is_none() {
        let docker_port = free_port();
        let boxed = w.vassal_name("boxed");
        w.write_vassal(&boxed, &docker_vassal(docker_port, "", ""));
        w.wait_for_body(docker_port, DEFAULT_GREETING, SPAWN_TIMEOUT);
        w.wait_for_body(host_port, &greeting, Duration::from_secs(5));
    }
}

/// Scenario 10: twenty vassals at once all serve, and removing them leaves nothing.
#[test]
fn twenty_vassals_serve_and_leave_nothing() {
    let Some(mut w) = World::start("twenty") else {
        return;
    };
    let vassals: Vec<(String, u16)> = (0..20)
        .map(|i| (w.vassal_name(&format!("v{i:02}")), free_port()))
        .collect();
    for (name, port) in &vassals {
        let text = docker_vassal(
            *port,
            "docker-stop-timeout = 5",
            &format!("env = GREETING=vassal {name}"),
        );
        w.write_vassal(name, &text);
    }
    for (name, port) in &vassals {
        w.wait_for_body(*port, &format!("vassal {name}"), Duration::from_secs(180));
    }
    for (name, _) in &vassals {
        w.remove_vassal(name);
    }
    w.assert_clean_within(
        Duration::from_secs(60),
        "after all twenty vassal files were removed",
    );
}

/// Scenario 11: each malformed attribute is refused with an error naming the vassal and the
/// key, in the Emperor log and from `uwsgi-docker check`, and no container is made.
#[test]
fn bad_attributes_are_refused_clearly() {
    let Some(mut w) = World::start("bad-input") else {
        return;
    };
    let cases = [
        ("port", "docker-port", "docker-port = abc"),
        ("memory", "docker-memory", "docker-memory = lots"),
        ("mount", "docker-mount", "docker-mount = relative:/x"),
        ("typo", "docker-imgae", "docker-imgae = x"),
        // Values the daemon would refuse only at create (or the kernel at start).
        ("tiny", "docker-memory", "docker-memory = 1m"),
        ("huge", "docker-memory", "docker-memory = 8589934592g"),
        ("cpus", "docker-cpus", "docker-cpus = 9300000000"),
        ("root-mount", "docker-mount", "docker-mount = /tmp:/"),
        (
            "joined",
            "docker-hostname",
            "docker-network-mode = container:x\ndocker-hostname = h",
        ),
        // uWSGI splits only at `=`: this is one unknown key, not docker-image.
        ("colon", "docker-image: x", "docker-image: x"),
    ];
    let mut names = Vec::new();
    for (short, key, line) in cases {
        let name = w.vassal_name(&format!("bad-{short}"));
        // A valid vassal but for the one bad line (the port line is replaced, not added).
        let text = if key == "docker-port" {
            docker_vassal(0, "", "").replace("docker-port = 127.0.0.1:0:3031", line)
        } else {
            docker_vassal(free_port(), line, "")
        };
        w.write_vassal(&name, &text);
        names.push((name, key));
    }
    for (name, key) in &names {
        let logged = w.wait_for_log_line(&[name, key], Duration::from_secs(30));
        eprintln!("bad-input: logged: {logged}");

        let check = Command::new(bin())
            .arg("check")
            .arg(w.vassal_path(name))
            .output()
            .expect("run check");
        let stderr = lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(1), "check {name}: {stderr}");
        assert!(
            stderr.contains(name.as_str()) && stderr.contains(key),
            "check {name} says: {stderr}"
        );
    }
    for (name, _) in &names {
        assert!(
            container_id(name).is_none(),
            "a container was made for {name}"
        );
    }

    // A FIFO is refused at once instead of blocking the reader forever.
    let fifo = w.root.join("fifo.ini");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let mut check = Command::new(bin())
        .arg("check")
        .arg(&fifo)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run check");
    let done = wait_for(Duration::from_secs(30), || check.try_wait().ok().flatten());
    if done.is_none() {
        let _ = check.kill();
        let _ = check.wait();
        panic!("check blocked on a FIFO");
    }
    let mut stderr = String::new();
    if let Some(mut err) = check.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    assert_eq!(done.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(
        stderr.contains("fifo.ini") && stderr.contains("not a regular file"),
        "check on a FIFO says: {stderr}"
    );
}

/// A `:` in the proxy socket's path (here its directory) used to break the `src:dst` bind
/// of `HostConfig.Binds`; mounts now go in `HostConfig.Mounts`, and the stop timeout is
/// always explicit.
#[test]
fn a_colon_in_the_proxy_path_still_serves() {
    let socket_dir =
        std::env::temp_dir().join(format!("uwsgi-docker-sockets-{}:colon", std::process::id()));
    std::fs::create_dir_all(&socket_dir).expect("create the socket dir");
    let dir = socket_dir.to_str().expect("a UTF-8 temp dir").to_owned();
    let options = EmperorOptions::from_env().with_env("UWSGIDOCKER_SOCKET_DIR", &dir);
    let Some(mut w) = World::start_with("colon", options) else {
        let _ = std::fs::remove_dir(&socket_dir);
        return;
    };
    let port = free_port();
    let name = w.vassal_name("colon");
    w.write_vassal(&name, &docker_vassal(port, "", ""));
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    let mounts = inspect(
        &name,
        "{{range .Mounts}}{{.Type}}|{{.Source}}|{{.Destination}}\n{{end}}",
    );
    let want = format!("bind|{dir}/{name}.sock|/{name}.sock");
    assert!(
        mounts.lines().any(|m| m == want),
        "no {want} in the mounts: {mounts}"
    );
    // Docker shows what the request said: no Binds. Podman's compat inspect lists every bind
    // mount under Binds too, however it was asked for, so there only the Mounts above tell.
    if engine() == Engine::Docker {
        assert_eq!(inspect(&name, "{{json .HostConfig.Binds}}"), "null");
    }
    assert_eq!(inspect(&name, "{{.Config.StopTimeout}}"), "10");
    w.remove_vassal(&name);
    w.assert_clean_within(Duration::from_secs(30), "after the vassal was removed");
    drop(w);
    let left: Vec<_> = std::fs::read_dir(&socket_dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir(&socket_dir);
    assert!(left.is_empty(), "left in the socket dir: {left:?}");
}

/// A missing `docker-mount` source is an error naming the attribute, and, unlike with
/// `Binds`, the daemon does not create it as a root-owned directory.
#[test]
fn a_missing_mount_source_is_refused_and_not_created() {
    let Some(mut w) = World::start("missing-source") else {
        return;
    };
    let missing = w.root.join("no-such-dir");
    let name = w.vassal_name("nosrc");
    let line = format!("docker-mount = {}:/data:ro", missing.display());
    w.write_vassal(&name, &docker_vassal(free_port(), &line, ""));
    let logged = w.wait_for_log_line(
        &[&name, "does not exist. Create it first"],
        Duration::from_secs(60),
    );
    assert!(logged.contains("docker-mount"), "{logged}");
    assert!(
        !missing.exists(),
        "the daemon created {}",
        missing.display()
    );
    assert!(container_id(&name).is_none(), "a container was made");
    w.remove_vassal(&name);
}

/// Scenario 12: a foreign process that reaches the proxy socket first gets no fds, and the
/// vassal still starts.
#[test]
fn handoff_is_private_to_the_container() {
    let Some(mut w) = World::start("privacy") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("private");
    let socket = w.proxy_socket(&name);
    w.write_vassal(&name, &docker_vassal(port, "", ""));

    // Race the container to the socket: it needs a second or so to start uWSGI.
    let written = Instant::now();
    let deadline = written + SPAWN_TIMEOUT;
    let mut intruder = loop {
        if let Ok(stream) = UnixStream::connect(&socket) {
            break stream;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy socket {} never accepted a connection",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let connected = written.elapsed();
    intruder
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("set a read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match intruder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the proxy socket: {e}"),
        }
    }
    eprintln!("privacy: connected {connected:?} after the vassal was written; got {got:?}");
    assert!(
        !got.windows(13).any(|b| b == b"uwsgi-emperor"),
        "a foreign process received the handoff message: {:?}",
        lossy(&got)
    );
    // The intruder still holds its connection while the real vassal starts.
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    drop(intruder);
}

/// The harness itself: its guard notices what a test leaves behind, and removes it anyway.
#[test]
fn harness_guard_reports_and_removes_leftovers() {
    let Some(mut w) = World::start("guard") else {
        return;
    };
    w.cleanup_timeout = Duration::from_secs(1);
    let leak = w.vassal_name("leak");
    w.adopt_container(&leak);
    let label = format!("{LABEL_EMPEROR}={}", w.id);
    let leaked = docker_ok(&[
        "create",
        "--name",
        &leak,
        "--label",
        &label,
        &image(),
        "true",
    ]);
    let socket = w.proxy_socket(&leak);
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).expect("the private runtime directory");
    }
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind a stray socket"));
    let root = w.root.clone();

    let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(w)));
    let message = verdict
        .err()
        .and_then(|e| e.downcast::<String>().ok())
        .expect("the guard panics when something is left behind");
    assert!(
        message.contains(&leaked) && message.contains(&socket.display().to_string()),
        "{message}"
    );
    assert!(
        container_id(&leaked).is_none(),
        "the guard did not remove the container"
    );
    assert!(!socket.exists(), "the guard did not remove the socket");
    let _ = std::fs::remove_dir_all(root);
}

/// `ps` lists our containers; `gc` removes an orphan (ours, its bridge gone) and its stale
/// proxy socket, and leaves a live vassal's container and a container that is not ours.
#[test]
fn ps_and_gc_touch_only_orphans() {
    let Some(mut w) = World::start("gc") else {
        return;
    };
    let port = free_port();
    let live = w.vassal_name("live");
    w.write_vassal(&live, &docker_vassal(port, "", ""));
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);

    // An orphan as a crashed host would leave it: our labels, a bridge that is not running
    // (our own pid, with a start time it never had), and its proxy socket file.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let orphan = w.vassal_name("orphan");
    let orphan_proxy = w.root.join("orphan.sock");
    drop(std::os::unix::net::UnixListener::bind(&orphan_proxy).expect("bind a socket file"));
    let labels = [
        format!("{LABEL_MANAGED}=1"),
        format!("{LABEL_VASSAL}={orphan}"),
        format!(
            "io.uwsgi-docker.bridge={}:{}:1",
            host.trim(),
            std::process::id()
        ),
        format!("io.uwsgi-docker.proxy={}", orphan_proxy.display()),
    ];
    let mut create = vec!["create", "--name", &orphan];
    for label in &labels {
        create.extend(["--label", label]);
    }
    let image = image();
    create.extend([image.as_str(), "true"]);
    docker_ok(&create);
    w.adopt_container(&orphan);
    let foreign = format!("{}-foreign", w.vassal_name("x"));
    docker_ok(&["create", "--name", &foreign, &image, "true"]);
    w.adopt_container(&foreign);

    let ps = Command::new(bin()).arg("ps").output().expect("ps runs");
    assert!(ps.status.success(), "ps: {}", lossy(&ps.stderr));
    let table = lossy(&ps.stdout);
    assert!(table.contains(&live) && table.contains(&orphan), "{table}");
    assert!(
        !table.contains(&foreign),
        "ps lists a container that is not ours:\n{table}"
    );

    let dry = Command::new(bin())
        .args(["gc", "--dry-run"])
        .output()
        .expect("gc runs");
    assert!(dry.status.success(), "gc --dry-run: {}", lossy(&dry.stderr));
    assert!(
        lossy(&dry.stdout).contains(&format!("would remove {orphan}")),
        "{}",
        lossy(&dry.stdout)
    );
    assert!(
        container_id(&orphan).is_some(),
        "a dry run removed something"
    );

    let gc = Command::new(bin()).arg("gc").output().expect("gc runs");
    assert!(gc.status.success(), "gc: {}", lossy(&gc.stderr));
    let said = lossy(&gc.stdout);
    assert!(said.contains(&format!("removed {orphan}")), "{said}");
    assert!(!said.contains(&live) && !said.contains(&foreign), "{said}");
    assert!(container_id(&orphan).is_none(), "the orphan is still there");
    assert!(
        !orphan_proxy.exists(),
        "the orphan's proxy socket is still there"
    );
    assert!(
        container_id(&foreign).is_some(),
        "gc removed a container that is not ours"
    );
    assert!(
        container_id(&live).is_some(),
        "gc removed a live vassal's container"
    );
    assert!(
        matches!(http_get(port, "/"), Ok((200, _))),
        "the live vassal stopped serving"
    );
    docker_ok(&["rm", "-f", &foreign]);
}

/// A vassal whose config the Emperor pushes (`emperor://NAME` with `UWSGI_EMPEROR_FD_CONFIG`,
/// as uWSGI's imperial monitors for databases and queues do). The test plays the Emperor's
/// side of both channels, byte for byte as emperor.c does, so the bridge's relay is checked
/// both ways: the first push starts the vassal, a reload's config request reaches the
/// Emperor, the Emperor's next push reaches the vassal, and the stop byte ends it all.
#[test]
fn pushed_config_is_relayed_both_ways() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use uwsgi_docker_core::emperor::encode_config;

    let Some(w) = World::start("pushed") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("pushed");
    let packet = |greeting: &str| {
        let mut packet = Vec::new();
        let text = docker_vassal(port, "", &format!("env = GREETING={greeting}"));
        encode_config(text.as_bytes(), &mut packet).expect("a small config");
        packet
    };
    let (mut control, control_vassal) = UnixStream::pair().expect("control pair");
    let (mut config, config_vassal) = UnixStream::pair().expect("config pair");
    for end in [&control_vassal, &config_vassal] {
        rustix::io::fcntl_setfd(end, rustix::io::FdFlags::empty()).expect("inheritable");
    }
    let log = std::fs::File::create(w.root.join("bridge.log")).expect("bridge log");
    let mut bridge = Command::new(bin())
        .args(["--ini", &format!("emperor://{name}")])
        .current_dir(&w.root)
        .env("UWSGIDOCKER_EMPEROR_ID", &w.id)
        .env("UWSGI_EMPEROR_FD", control_vassal.as_raw_fd().to_string())
        .env(
            "UWSGI_EMPEROR_FD_CONFIG",
            config_vassal.as_raw_fd().to_string(),
        )
        .stdin(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the bridge starts");
    drop((control_vassal, config_vassal));
    let bridge_log = || std::fs::read_to_string(w.root.join("bridge.log")).unwrap_or_default();

    config.write_all(&packet("pushed one")).expect("first push");
    w.wait_for_body(port, "pushed one", SPAWN_TIMEOUT);
    let container = container_id(&name).expect("the container exists");

    // Reload: the vassal asks for its config again (byte 2), through the bridge.
    control.write_all(&[1]).expect("reload byte");
    control
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let asked = wait_for(SPAWN_TIMEOUT, || {
        let mut bytes = [0u8; 64];
        match control.read(&mut bytes) {
            Ok(n) if bytes[..n].contains(&2) => Some(()),
            _ => None,
        }
    });
    assert!(
        asked.is_some(),
        "no config request reached the Emperor; bridge log:\n{}",
        bridge_log()
    );
    config
        .write_all(&packet("pushed two"))
        .expect("second push");
    w.wait_for_body(port, "pushed two", SPAWN_TIMEOUT);
    assert_eq!(
        container_id(&name).as_deref(),
        Some(container.as_str()),
        "a reload kept the container"
    );

    control.write_all(&[0]).expect("stop byte");
    let exited = wait_for(CLEANUP_TIMEOUT, || bridge.try_wait().ok().flatten());
    assert!(
        exited.is_some_and(|status| status.success()),
        "the bridge did not stop cleanly: {exited:?}; log:\n{}",
        bridge_log()
    );
    // The bridge's DELETE may meet the daemon's own AutoRemove (409 "removal in progress",
    // taken as done), which finishes a moment later.
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        container_id(&container).is_none().then_some(())
    });
    assert!(gone.is_some(), "the container outlived the stop");
}

/// A PSGI app that tries to write below its read-only mount, into a submount of it.
const SUBMOUNT_PROBE_APP: &str = r#"my $app = sub {
    my $ok = open(my $f, '>', '/data/sub/probe');
    my $what = $ok ? 'writable' : "read-only: $!";
    close $f if $ok;
    return [200, ['Content-Type' => 'text/plain'], [$what]];
};
"#;

/// A tmpfs mounted by the test, unmounted on drop.
struct TestTmpfs(std::path::PathBuf);

impl TestTmpfs {
    fn mount(at: &std::path::Path) -> TestTmpfs {
        std::fs::create_dir_all(at).expect("the submount's directory");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=64k,mode=1777",
                "uwsgi-docker-sub",
            ])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (root needed): {}",
            lossy(&out.stderr)
        );
        TestTmpfs(at.to_owned())
    }
}

impl Drop for TestTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The create body at the negotiated API: from 1.44 on, Docker makes a `:ro` bind
/// recursively read-only (kernels >= 5.12), so a mount below it is read-only in the
/// container too; below 1.44 (Docker 20.10) only the top is. The bridge speaks
/// min(1.44, the daemon's), so Docker 28.5 shows the first and 20.10 the second.
#[test]
fn a_read_only_mount_is_read_only_below_too_from_api_1_44() {
    if engine() != Engine::Docker {
        return skip("Docker's API-version behaviour, not Podman's");
    }
    let Some(mut w) = World::start("ro-recursive") else {
        return;
    };
    let dir = w.root.join("rodata");
    std::fs::create_dir_all(&dir).expect("the mount's directory");
    std::fs::write(dir.join("app.pl"), SUBMOUNT_PROBE_APP).expect("write the app");
    let sub = TestTmpfs::mount(&dir.join("sub"));
    let port = free_port();
    let name = w.vassal_name("ro");
    let text = format!(
        "[emperor]\ndocker-image = {image}\ndocker-port = 127.0.0.1:{port}:3031\ndocker-mount = {dir}:/data:ro\n\n[uwsgi]\nmaster = true\nplugin = psgi\npsgi = /data/app.pl\nhttp-socket = 0.0.0.0:3031\n",
        image = image(),
        dir = dir.display()
    );
    w.write_vassal(&name, &text);
    let body = wait_for(SPAWN_TIMEOUT, || match http_get(port, "/") {
        Ok((200, body)) => Some(body),
        _ => None,
    })
    .unwrap_or_else(|| panic!("the probe did not answer:\n{}", w.log_tail(40)));
    let api = docker_ok(&["version", "--format", "{{.Server.APIVersion}}"]);
    let minor: u32 = api
        .split_once('.')
        .and_then(|(_, minor)| minor.parse().ok())
        .unwrap_or_else(|| panic!("the engine's API version: {api:?}"));
    if minor >= 44 {
        assert!(
            body.starts_with("read-only"),
            "API {api}: the submount is {body}"
        );
    } else {
        assert_eq!(body, "writable", "API {api}");
    }
    w.remove_vassal(&name);
    w.assert_clean_within(Duration::from_secs(30), "after the vassal was removed");
    drop(sub);
}

/// A unix socket in front of the engine's that passes everything through and records each
/// request line a client sends (`METHOD /path HTTP/1.1`), with when it came.
struct RecordingDaemon {
    path: std::path::PathBuf,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
}

impl RecordingDaemon {
    fn start(path: std::path::PathBuf) -> RecordingDaemon {
        use std::os::unix::net::UnixListener;
        let upstream = daemon_socket().unwrap_or_else(|| "/var/run/docker.sock".to_owned());
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind the recording socket");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(daemon) = UnixStream::connect(&upstream) else {
                    continue;
                };
                let record = record.clone();
                std::thread::spawn(move || pass_through(client, daemon, record));
            }
        });
        RecordingDaemon { path, seen }
    }

    /// The request lines that came after the first `skip`, until `until`.
    fn requests(&self, skip: usize, until: Instant) -> Vec<String> {
        let seen = self.seen.lock().expect("not poisoned");
        seen.iter()
            .skip(skip)
            .filter(|(at, _)| *at <= until)
            .map(|(_, line)| line.clone())
            .collect()
    }

    fn count(&self) -> usize {
        self.seen.lock().expect("not poisoned").len()
    }
}

/// Copies both ways until either side closes, recording the client's request lines (a
/// request's head comes in one write; a body is one line of JSON).
fn pass_through(
    mut client: UnixStream,
    mut daemon: UnixStream,
    record: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
) {
    use std::io::Write;
    let (Ok(mut client_reader), Ok(mut daemon_writer)) = (client.try_clone(), daemon.try_clone())
    else {
        return;
    };
    let upward = std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n @ 1..) = client_reader.read(&mut buf) {
            let at = Instant::now();
            let text = lossy(&buf[..n]);
            let lines = text.lines().filter(|line| {
                let mut words = line.split(' ');
                matches!(
                    words.next(),
                    Some("GET" | "POST" | "DELETE" | "PUT" | "HEAD")
                ) && words.next().is_some_and(|path| path.starts_with('/'))
                    && words.next().is_some_and(|v| v.starts_with("HTTP/1."))
            });
            record
                .lock()
                .expect("not poisoned")
                .extend(lines.map(|line| (at, line.to_owned())));
            if daemon_writer.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = daemon_writer.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut daemon, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = upward.join();
}

/// Issue 22: once an Emperor's first bridge negotiated the API version, a spawn asks the
/// daemon four things before its vassal answers (create, attach, wait, start: no
/// `/version`, and no inspect, since the peer's cgroup names the container).
#[test]
fn a_spawn_asks_the_daemon_four_things_before_its_first_answer() {
    let recorder_dir =
        std::env::temp_dir().join(format!("uwsgi-docker-rec-{}", std::process::id()));
    std::fs::create_dir_all(&recorder_dir).expect("a directory for the recording socket");
    let recorder = RecordingDaemon::start(recorder_dir.join("daemon.sock"));
    let socket = recorder.path.to_str().expect("utf-8").to_owned();
    let options = EmperorOptions::from_env().with_env("UWSGIDOCKER_DAEMON_SOCKET", &socket);
    let Some(mut w) = World::start_with("requests", options) else {
        return;
    };
    let first_port = free_port();
    let first = w.vassal_name("first");
    w.write_vassal(&first, &docker_vassal(first_port, "", ""));
    w.wait_for_body(first_port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    let negotiated = recorder.requests(0, Instant::now());
    assert!(
        negotiated.iter().any(|r| r.starts_with("GET /version")),
        "the first bridge negotiates: {negotiated:?}"
    );

    let mark = recorder.count();
    let port = free_port();
    let name = w.vassal_name("second");
    w.write_vassal(&name, &docker_vassal(port, "", ""));
    let answered = wait_for(SPAWN_TIMEOUT, || {
        matches!(http_get(port, "/"), Ok((200, _))).then(Instant::now)
    })
    .expect("the second vassal answers");
    let before = recorder.requests(mark, answered);
    let paths: Vec<&str> = before
        .iter()
        .map(|line| line.split(' ').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        before.len(),
        4,
        "requests before the first answer: {before:?}"
    );
    let asked = |what: &str| paths.iter().filter(|p| p.contains(what)).count();
    assert_eq!(
        [
            asked("/containers/create"),
            asked("/attach"),
            asked("/wait"),
            asked("/start")
        ],
        [1, 1, 1, 1],
        "{before:?}"
    );
    drop(w);
    let _ = std::fs::remove_dir_all(&recorder_dir);
    // The bridges remembered the recording socket's API version: a file for a socket that
    // is gone now.
    let runtime_dir =
        std::env::var("UWSGIDOCKER_RUNTIME_DIR").unwrap_or_else(|_| "/run/uwsgi-docker".to_owned());
    let ours = format!("uwsgi-docker-rec-{}", std::process::id());
    for entry in std::fs::read_dir(&runtime_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("daemon-api.") && name.contains(&ours) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
