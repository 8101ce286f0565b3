//! End to end, plugin mode only: a stock uWSGI 2.0 Emperor that loads `docker_plugin.so`
//! (no `emperor-wrapper`), as the seed's README sets one up. The whole `e2e.rs` suite also
//! runs this way with `UWSGIDOCKER_E2E_MODE=plugin`; these are the plugin's own checks.
//!
//! The plugin is `UWSGIDOCKER_E2E_PLUGIN`, else built once with `scripts/build-plugin.sh`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// The seed's quickstart vassal, verbatim (its image name is changed where it is used).
const SEED_QUICKSTART: &str = include_str!("../../../uwsgi-docker-core/tests/seed/quickstart.ini");

/// The seed's psgi001 had uWSGI built with psgi inside; Debian's uWSGI loads it as a plugin.
/// `UWSGI_PLUGIN` in the image's env does that without touching the vassal file.
const PSGI001: &str = "uwsgi-docker-test-psgi001:latest";

fn plugin_path(test: &str) -> Option<std::path::PathBuf> {
    prerequisites(test)?;
    Some(plugin().unwrap_or_else(|why| panic!("{test}: {why}")))
}

#[test]
fn help_lists_the_plugin_options() {
    let Some(plugin) = plugin_path("plugin-help") else {
        return;
    };
    let out = Command::new(uwsgi_bin())
        .arg("--plugin")
        .arg(&plugin)
        .arg("--help")
        .output()
        .expect("run uwsgi --help");
    let help = lossy(&out.stdout);
    for option in [
        "--docker-emperor",
        "--emperor-docker",
        "--docker-emperor-required",
        "--emperor-docker-required",
        "--docker-debug",
        "--docker-daemon-socket",
        "--docker-socket-dir",
        "--docker-bridge",
        "--docker-name-prefix",
        "--docker-policy",
        "--docker-pull",
        "--docker-pull-timeout",
        "--docker-registry-auth",
    ] {
        assert!(
            help.lines()
                .any(|l| l.split_whitespace().next() == Some(option)),
            "`uwsgi --plugin {} --help` does not list {option}:\n{help}",
            plugin.display()
        );
    }
}

fn host_vassal(w: &World, port: u16) -> (String, String) {
    let greeting = format!("Hello from the host {}", w.id);
    let text = format!(
        "[uwsgi]\nmaster = true\nplugin = psgi\npsgi = {app}\nhttp-socket = 127.0.0.1:{port}\nenv = GREETING={greeting}\n",
        app = w.root.join("app.pl").display()
    );
    (text, greeting)
}

#[test]
fn required_refuses_a_vassal_without_image_and_says_why() {
    let Some(mut w) = World::start_with("plugin-required", EmperorOptions::plugin(true)) else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("host");
    let (text, _) = host_vassal(&w, port);
    w.write_vassal(&name, &text);
    let line = w.wait_for_log_line(
        &[&name, "no docker-image", "emperor-docker-required"],
        Duration::from_secs(30),
    );
    eprintln!("plugin-required: logged: {line}");
    // Refused every time the Emperor retries; never serving, never in a container.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        http_get(port, "/").is_err(),
        "the refused vassal answers on port {port}"
    );
    assert!(
        container_id(&name).is_none(),
        "a container was made for {name}"
    );
    assert!(
        processes_matching(&format!("--ini {name}")).is_empty(),
        "a uWSGI runs the refused vassal"
    );
}

/// The plugin's `docker-pull = never` reaches the bridge (as `UWSGIDOCKER_PULL`): an image
/// the host lacks is not pulled, and the error says how to have it pulled. (Under the
/// default, `missing`, the bridge would ask the registry named in the image, here a port
/// where none listens, and say it is unreachable.)
#[test]
fn the_docker_pull_option_reaches_the_bridge() {
    let options = EmperorOptions::plugin(true).with_option("docker-pull", "never");
    let Some(mut w) = World::start_with("plugin-pull", options) else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("absent");
    let text = docker_vassal(port, "", "").replace(
        &format!("docker-image = {}", image()),
        "docker-image = 127.0.0.1:9/ud-e2e/absent:1",
    );
    assert!(text.contains("127.0.0.1:9/"), "{text}");
    w.write_vassal(&name, &text);
    let line = w.wait_for_log_line(
        &[&name, "not found", "set docker-pull = missing"],
        Duration::from_secs(30),
    );
    eprintln!("plugin-pull: logged: {line}");
    assert!(
        container_id(&name).is_none(),
        "a container was made for {name}"
    );
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassal was removed");
}

#[test]
fn without_required_a_vassal_without_image_runs_on_the_host() {
    if skip_without_host_psgi("plugin-optional") {
        return;
    }
    let Some(mut w) = World::start_with("plugin-optional", EmperorOptions::plugin(false)) else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("host");
    let (text, greeting) = host_vassal(&w, port);
    w.write_vassal(&name, &text);
    w.wait_for_body(port, &greeting, SPAWN_TIMEOUT);
    assert!(
        container_id(&name).is_none(),
        "a container was made for {name}"
    );
    assert!(
        processes_matching(&bridge_title(&name)).is_empty(),
        "a bridge runs for a vassal without docker-image"
    );
    // A Docker vassal next to it still goes to the bridge.
    let docker_port = free_port();
    let boxed = w.vassal_name("boxed");
    w.write_vassal(&boxed, &docker_vassal(docker_port, "", ""));
    w.wait_for_body(docker_port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    assert!(container_id(&boxed).is_some(), "no container for {boxed}");
}

/// `docker build` the psgi001 stand-in from the test image (no registry needed).
fn build_psgi001() {
    let mut build = docker_command()
        .args(["build", "-q", "-t", PSGI001, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run docker build");
    let dockerfile = format!("FROM {}\nENV UWSGI_PLUGIN=psgi\n", image());
    build
        .stdin
        .take()
        .expect("stdin")
        .write_all(dockerfile.as_bytes())
        .expect("write the Dockerfile");
    let out = build.wait_with_output().expect("docker build");
    assert!(
        out.status.success(),
        "docker build {PSGI001} failed: {}",
        lossy(&out.stderr)
    );
}

/// One request over the uwsgi protocol (what `socket = …` speaks), modifier1 5 (psgi):
/// the raw HTTP response.
fn uwsgi_get(port: u16, path: &str) -> std::io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    uwsgi_request(stream, 5, path)
}

#[test]
fn seed_quickstart_vassal_serves_its_page() {
    let options = EmperorOptions {
        // The seed's Emperor: plugin, required, and the bridge found next to the plugin.
        bridge_option: false,
        ..EmperorOptions::plugin(true)
    };
    let Some(mut w) = World::start_with("plugin-quickstart", options) else {
        return;
    };
    build_psgi001();
    let name = w.vassal_name("quickstart");
    let mut text = SEED_QUICKSTART.replace(
        "docker-image = psgi001",
        &format!("docker-image = {PSGI001}"),
    );
    // The seed's `socket = 172.*:3031` trick matches Docker's default bridge (172.17.0.0/16);
    // on another engine's network the same trick names that network's first octet.
    let octet = default_network_first_octet();
    text = text.replace("socket = 172.*:3031", &format!("socket = {octet}.*:3031"));
    w.write_vassal(&name, &text);

    let mut last = None;
    let served = wait_for(SPAWN_TIMEOUT, || {
        let got = uwsgi_get(9001, "/");
        let ok =
            matches!(&got, Ok(r) if r.starts_with("HTTP/1.0 200") && r.ends_with(DEFAULT_GREETING));
        last = Some(got);
        ok.then_some(())
    });
    assert!(
        served.is_some(),
        "the quickstart vassal did not serve over uwsgi on 9001; last: {last:?}\nlog tail:\n{}",
        w.log_tail(60)
    );
    // Its stats server, published on 127.0.0.1:5001, reports the four workers.
    let stats = wait_for(Duration::from_secs(10), || {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, 5001)).ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.contains("\"workers\"").then_some(text)
    })
    .expect("the stats server on 127.0.0.1:5001 answers");
    assert!(stats.matches("\"id\":").count() >= 4, "stats: {stats}");
    // Podman reports the image by its full name; its compat build stored PSGI001 as Docker
    // would normalise it.
    let image = match engine() {
        Engine::Docker => PSGI001.to_owned(),
        Engine::Podman => format!("docker.io/library/{PSGI001}"),
    };
    assert_eq!(
        inspect(&name, "{{.Config.Image}}"),
        image,
        "the container's image"
    );
}
