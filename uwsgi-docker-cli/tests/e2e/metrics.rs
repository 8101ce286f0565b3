//! End to end for monitoring: `uwsgi-docker metrics` against a real Emperor's vassals,
//! checked by Debian's `promtool` and scraped by a real Prometheus server; `ps --json`;
//! and `docker-health-restart` respawning an unhealthy container.
//!
//! Same rules as `e2e.rs`: a real Emperor per test, real containers and real HTTP, nothing
//! left behind, skipped without Docker, uWSGI, the test image or Prometheus (failing under
//! `CI`).

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// `prometheus` and `promtool` (Debian's `prometheus` package), or why not.
fn prometheus_tools(test: &str) -> Option<()> {
    let missing = ["promtool", "prometheus"]
        .into_iter()
        .find(|tool| Command::new(tool).arg("--version").output().is_err());
    let Some(tool) = missing else {
        return Some(());
    };
    skip(format_args!(
        "{test}: {tool} is not installed (apt-get install --no-install-recommends prometheus)"
    ));
    None
}

/// A child process killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `uwsgi-docker metrics` for this World's Emperor, on a free port.
fn metrics_server(w: &World) -> (Reaped, u16) {
    let port = free_port();
    let child = Command::new(bin())
        .args([
            "metrics",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--emperor",
            &w.id,
        ])
        .envs(daemon_socket().map(|s| ("UWSGIDOCKER_DAEMON_SOCKET", s)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start uwsgi-docker metrics");
    let server = Reaped(child);
    let up = wait_for(Duration::from_secs(10), || http_get(port, "/metrics").ok());
    assert!(up.is_some(), "the metrics server never answered on {port}");
    (server, port)
}

fn scrape(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "GET /metrics: {body}");
    body
}

/// The value of the sample `name{vassal="V",...}` for `vassal`, if there is one.
fn sample(text: &str, name: &str, vassal: &str) -> Option<f64> {
    let prefix = format!("{name}{{vassal=\"{vassal}\",");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success(),
        "promtool check metrics refused the exposition: {}{}\n{text}",
        lossy(&out.stdout),
        lossy(&out.stderr)
    );
}

/// A Prometheus server on 127.0.0.1, scraping `target` every second, in its own temp dir.
fn prometheus(root: &Path, target: u16) -> (Reaped, u16) {
    let dir = root.join("prometheus");
    std::fs::create_dir_all(dir.join("data")).expect("prometheus dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: uwsgi-docker\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    (Reaped(child), port)
}

/// `count(uwsgi_docker_vassal_up{emperor=ID} == 1)` as Prometheus answers it.
fn up_count(port: u16, emperor: &str) -> Option<u64> {
    let query = format!("count(uwsgi_docker_vassal_up{{emperor=\"{emperor}\"}} == 1)");
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = http_get(port, &format!("/api/v1/query?query={encoded}")).ok()?;
    if status != 200 {
        return None;
    }
    let reply: serde_json::Value = serde_json::from_str(&body).ok()?;
    reply["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

#[test]
fn metrics_of_two_vassals_pass_promtool_grow_on_respawn_and_reach_prometheus() {
    let Some(()) = prerequisites("metrics").and_then(|()| prometheus_tools("metrics")) else {
        return;
    };
    let Some(mut w) = World::start("metrics") else {
        return;
    };
    let (port_a, port_b) = (free_port(), free_port());
    let (a, b) = (w.vassal_name("a"), w.vassal_name("b"));
    w.write_vassal(&a, &docker_vassal(port_a, "", ""));
    w.write_vassal(&b, &docker_vassal(port_b, "docker-memory = 256m", ""));
    w.wait_for_body(port_a, DEFAULT_GREETING, SPAWN_TIMEOUT);
    w.wait_for_body(port_b, DEFAULT_GREETING, SPAWN_TIMEOUT);

    let (_server, metrics_port) = metrics_server(&w);
    let both_up = wait_for(Duration::from_secs(20), || {
        let text = scrape(metrics_port);
        let up = |v: &str| sample(&text, "uwsgi_docker_vassal_up", v) == Some(1.0);
        (up(&a) && up(&b)).then_some(text)
    });
    let text = both_up.expect("both vassals up in the metrics");
    promtool_accepts(&text);
    for v in [&a, &b] {
        let memory = sample(&text, "uwsgi_docker_container_memory_bytes", v);
        let cpu = sample(&text, "uwsgi_docker_container_cpu_seconds_total", v);
        assert!(
            memory.is_some_and(|m| m > 0.0),
            "{v}: memory {memory:?}\n{text}"
        );
        assert!(cpu.is_some_and(|c| c > 0.0), "{v}: cpu {cpu:?}\n{text}");
        assert_eq!(
            sample(&text, "uwsgi_docker_vassal_starts_total", v),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "uwsgi_docker_spawn_seconds_count", v),
            Some(1.0),
            "{text}"
        );
        let inf = format!("uwsgi_docker_spawn_seconds_bucket{{le=\"+Inf\",vassal=\"{v}\",");
        let inf_line = text.lines().find(|l| l.starts_with(&inf));
        assert!(
            inf_line.is_some_and(|l| l.ends_with(" 1")),
            "{v}: {inf_line:?}\n{text}"
        );
    }
    assert_eq!(
        sample(&text, "uwsgi_docker_container_memory_limit_bytes", &b),
        Some(f64::from(256u32 << 20)),
        "{text}"
    );
    let (status, _) = http_get(metrics_port, "/").expect("GET /");
    assert_eq!(status, 404);

    // ps --json tells the same story.
    let ps = Command::new(bin())
        .args(["ps", "--json", "--emperor", &w.id])
        .envs(daemon_socket().map(|s| ("UWSGIDOCKER_DAEMON_SOCKET", s)))
        .output()
        .expect("ps runs");
    assert!(ps.status.success(), "ps: {}", lossy(&ps.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&ps.stdout).expect("ps --json is JSON");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in rows {
        assert_eq!(row["state"], "up", "{row}");
        assert_eq!(row["starts"], 1, "{row}");
        assert!(row["memory_bytes"].as_u64().is_some_and(|m| m > 0), "{row}");
        assert!(
            row["image_id"]
                .as_str()
                .is_some_and(|d| d.starts_with("sha256:")),
            "{row}"
        );
    }

    // A killed container is respawned, and its starts counter grows.
    docker_ok(&["kill", &a]);
    let grew = wait_for(SPAWN_TIMEOUT, || {
        let text = scrape(metrics_port);
        let starts = sample(&text, "uwsgi_docker_vassal_starts_total", &a)?;
        (starts >= 2.0 && sample(&text, "uwsgi_docker_vassal_up", &a) == Some(1.0)).then_some(text)
    });
    let text = grew.unwrap_or_else(|| {
        panic!(
            "the starts counter of {a} did not grow:\n{}",
            scrape(metrics_port)
        )
    });
    assert!(
        sample(&text, "uwsgi_docker_vassal_failures_total", &a).is_some(),
        "the exit is counted as a failure:\n{text}"
    );
    w.wait_for_body(port_a, DEFAULT_GREETING, SPAWN_TIMEOUT);

    // A real Prometheus scrapes it.
    let (_prometheus, prometheus_port) = prometheus(&w.root, metrics_port);
    let counted = wait_for(Duration::from_secs(60), || {
        up_count(prometheus_port, &w.id).filter(|n| *n == 2)
    });
    assert_eq!(
        counted,
        Some(2),
        "Prometheus never counted 2 vassals up; its log:\n{}",
        std::fs::read_to_string(w.root.join("prometheus/prometheus.log")).unwrap_or_default()
    );
}

#[test]
fn an_unhealthy_container_with_health_restart_is_respawned_and_a_healthy_one_says_so() {
    let Some(mut w) = World::start("health") else {
        return;
    };
    let (port_sick, port_well) = (free_port(), free_port());
    let (sick, well) = (w.vassal_name("sick"), w.vassal_name("well"));
    // The image has no shell: both checks run without one (a JSON array).
    w.write_vassal(
        &sick,
        &docker_vassal(
            port_sick,
            "docker-healthcheck = [\"/no/such/check\"]\ndocker-health-interval = 1s\ndocker-health-retries = 2\ndocker-health-restart = true",
            "",
        ),
    );
    w.write_vassal(
        &well,
        &docker_vassal(
            port_well,
            "docker-healthcheck = [\"uwsgi\", \"--version\"]\ndocker-health-interval = 1s\ndocker-health-restart = true",
            "",
        ),
    );
    w.wait_for_body(port_well, DEFAULT_GREETING, SPAWN_TIMEOUT);
    let first =
        wait_for(SPAWN_TIMEOUT, || container_id(&sick)).expect("the sick vassal's container");

    let line = w.wait_for_log_line(
        &[&sick, "is unhealthy", "docker-health-restart"],
        Duration::from_secs(60),
    );
    assert!(line.contains("failed checks in a row"), "{line}");
    eprintln!("the unhealthy vassal's line: {line}");
    let respawned = wait_for(SPAWN_TIMEOUT, || {
        container_id(&sick).filter(|id| *id != first)
    });
    assert!(
        respawned.is_some(),
        "the unhealthy container was not replaced:\n{}",
        w.log_tail(40)
    );

    let (_server, metrics_port) = metrics_server(&w);
    let seen = wait_for(Duration::from_secs(30), || {
        let text = scrape(metrics_port);
        let healthy = sample(&text, "uwsgi_docker_vassal_healthy", &well) == Some(1.0);
        let prefix = format!("uwsgi_docker_vassal_failures_total{{vassal=\"{sick}\",emperor=\"{}\",reason=\"unhealthy\"}}", w.id);
        let counted = text.lines().any(|l| l.starts_with(&prefix));
        (healthy && counted).then_some(())
    });
    assert!(seen.is_some(), "metrics:\n{}", scrape(metrics_port));
    let ps = Command::new(bin())
        .args(["ps", "--emperor", &w.id])
        .envs(daemon_socket().map(|s| ("UWSGIDOCKER_DAEMON_SOCKET", s)))
        .output()
        .expect("ps runs");
    let table = lossy(&ps.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with(&well))
        .unwrap_or_default();
    assert!(row.contains("healthy"), "{table}");
}
