//! `uwsgi-docker metrics`: `GET /metrics` in the Prometheus text format, for every vassal
//! of ours on this host ([`vassals::collect`]), encoded with `prometheus-client`. A tiny
//! blocking HTTP/1.1 server on TCP or a unix socket: one request per connection, the
//! request head capped, anything but `GET /metrics` a 404.
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rustix::event::{PollFd, PollFlags};
use uwsgi_docker_core::health::HealthStatus;
use uwsgi_docker_core::vassal_state::SPAWN_BUCKETS;

use crate::commands::vassals::{self, unix_now, VassalView};
use crate::host::docker_client::Client;
use crate::host::hostfs::{self, SocketOwner};
use crate::output::{self, fail};
use crate::settings::RuntimeSettings;

/// The largest request head we read.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The classic text format, which every Prometheus and `promtool check metrics` read.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn run(
    settings: &RuntimeSettings,
    listen: Option<&str>,
    emperor: Option<&str>,
    once: bool,
) -> ExitCode {
    let mut client = None;
    if once {
        return match scrape(&mut client, settings, emperor) {
            Ok(text) => {
                output::say(text.trim_end());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    let Some(address) = listen else {
        return fail("metrics: --listen HOST:PORT or a unix socket path is needed");
    };
    let listener = match Listener::bind(address) {
        Ok(listener) => listener,
        Err(e) => return fail(&format!("metrics: cannot listen on {address}: {e}")),
    };
    crate::output::warn(&format!("metrics: serving GET /metrics on {address}"));
    let code = serve(&mut client, settings, emperor, &listener);
    listener.close();
    code
}

/// The exposition for one scrape. The daemon's API version is negotiated once and kept in
/// `client` (dropped after an error, so a restarted daemon is negotiated with again): a
/// scrape is then one list request, plus a stats request for each running container whose
/// cgroup cannot be read.
pub fn scrape(
    client: &mut Option<Client>,
    settings: &RuntimeSettings,
    emperor: Option<&str>,
) -> Result<String, String> {
    let api = match client.take() {
        Some(api) => api,
        None => Client::negotiate(&settings.emperor.daemon_socket).map_err(|e| e.to_string())?,
    };
    let now = u64::try_from(unix_now()).unwrap_or(0);
    let views = vassals::collect(&api, settings, emperor, now).map_err(|e| e.to_string())?;
    *client = Some(api);
    encode(views).map_err(|e| format!("cannot encode the metrics: {e}"))
}

/// The vassals, as the registry's one collector.
#[derive(Debug)]
struct Vassals(Vec<VassalView>);

fn labels(view: &VassalView) -> Vec<(&'static str, String)> {
    vec![
        ("vassal", view.vassal.clone()),
        ("emperor", view.emperor.clone()),
    ]
}

/// One family: a metric per vassal that has a value.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    views: &[VassalView],
    name: &str,
    help: &str,
    kind: MetricType,
    value: impl Fn(&VassalView) -> Option<M>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for view in views {
        if let Some(m) = value(view) {
            let labels = labels(view);
            m.encode(metric.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl prometheus_client::collector::Collector for Vassals {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let views = &self.0;
        let counter = |v: u64| Some(ConstCounter::new(v));
        let gauge = |v: i64| Some(ConstGauge::new(v));
        let state = |v: &VassalView| v.state.clone().unwrap_or_default();
        family(
            &mut encoder,
            views,
            "uwsgi_docker_vassal_up",
            "1 while the vassal's container serves (after the handoff), else 0.",
            MetricType::Gauge,
            |v| gauge(i64::from(v.up())),
        )?;
        family(&mut encoder, views, "uwsgi_docker_vassal_healthy", "1 while the container's health check passes, 0 while it starts or fails (only vassals with a health check).", MetricType::Gauge, |v| match v.health {
            HealthStatus::None => None,
            status => gauge(i64::from(status == HealthStatus::Healthy)),
        })?;
        family(
            &mut encoder,
            views,
            "uwsgi_docker_vassal_starts",
            "Containers started for the vassal, over every bridge.",
            MetricType::Counter,
            |v| counter(state(v).starts),
        )?;
        family(
            &mut encoder,
            views,
            "uwsgi_docker_vassal_rollovers",
            "Rollovers to a new container completed.",
            MetricType::Counter,
            |v| counter(state(v).rollovers),
        )?;
        {
            let mut metric = encoder.encode_descriptor(
                "uwsgi_docker_vassal_failures",
                "Failures of the vassal, by reason.",
                None,
                MetricType::Counter,
            )?;
            for view in views {
                for (reason, n) in state(view).failures {
                    let mut labels = labels(view);
                    labels.push(("reason", reason));
                    ConstCounter::new(n).encode(metric.encode_family(&labels)?)?;
                }
            }
        }
        family(
            &mut encoder,
            views,
            "uwsgi_docker_container_memory_bytes",
            "Memory the serving container uses (its cgroup's count, page cache included).",
            MetricType::Gauge,
            |v| {
                v.usage
                    .memory_bytes
                    .map(|b| ConstGauge::new(i64::try_from(b).unwrap_or(i64::MAX)))
            },
        )?;
        family(
            &mut encoder,
            views,
            "uwsgi_docker_container_memory_limit_bytes",
            "The serving container's memory limit (absent when unlimited).",
            MetricType::Gauge,
            |v| {
                v.usage
                    .memory_limit_bytes
                    .map(|b| ConstGauge::new(i64::try_from(b).unwrap_or(i64::MAX)))
            },
        )?;
        family(
            &mut encoder,
            views,
            "uwsgi_docker_container_cpu_seconds",
            "CPU time the serving container used.",
            MetricType::Counter,
            |v| {
                v.usage
                    .cpu_nanoseconds
                    .map(|ns| ConstCounter::new(ns as f64 / 1e9))
            },
        )?;
        family(
            &mut encoder,
            views,
            "uwsgi_docker_container_oom_kills",
            "Processes of the serving container killed by the OOM killer.",
            MetricType::Counter,
            |v| v.usage.oom_kills.map(ConstCounter::new),
        )?;
        family(
            &mut encoder,
            views,
            "uwsgi_docker_log_bytes",
            "Bytes of container output relayed to the Emperor's log, over every bridge.",
            MetricType::Counter,
            |v| v.state.as_ref().map(|s| ConstCounter::new(s.log_bytes)),
        )?;
        let mut metric = encoder.encode_descriptor(
            "uwsgi_docker_spawn_seconds",
            "From a bridge's start to the handoff of the Emperor's channels.",
            None,
            MetricType::Histogram,
        )?;
        for view in views {
            let Some(state) = &view.state else { continue };
            let spawn = &state.spawn;
            let labels = labels(view);
            // Not cumulative (the encoder adds them up), and `f64::MAX` is its `+Inf`.
            let buckets: Vec<(f64, u64)> = spawn
                .counts()
                .into_iter()
                .map(|(bound, n)| (if bound.is_finite() { bound } else { f64::MAX }, n))
                .collect();
            debug_assert_eq!(buckets.len(), SPAWN_BUCKETS.len() + 1);
            metric
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    spawn.sum,
                    spawn.count,
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// The text exposition of these vassals.
pub fn encode(views: Vec<VassalView>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Vassals(views)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(to_classic_text(&text))
}

/// OpenMetrics text (what `prometheus-client` writes) as the classic Prometheus text
/// format: a counter's family is named with its `_total` (its samples already are), and
/// `# UNIT` and `# EOF` go. Prometheus reads both; `promtool check metrics` reads only this.
fn to_classic_text(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + counters.len() * 24);
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A listening socket: TCP `HOST:PORT`, or a unix socket path (with a `/`).
enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, hostfs::SocketEntry),
}

impl Listener {
    fn bind(address: &str) -> Result<Listener, String> {
        if address.contains('/') {
            let bound = hostfs::bind_unix(Path::new(address), 0o600, SocketOwner::default())
                .map_err(|e| e.to_string())?;
            let listener = std::os::unix::net::UnixListener::from(bound.listener);
            listener.set_nonblocking(false).map_err(|e| e.to_string())?;
            return Ok(Listener::Unix(listener, bound.entry));
        }
        std::net::TcpListener::bind(address)
            .map(Listener::Tcp)
            .map_err(|e| e.to_string())
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }

    fn accept(&self) -> std::io::Result<Box<dyn Conn>> {
        Ok(match self {
            Listener::Tcp(l) => Box::new(l.accept()?.0),
            Listener::Unix(l, _) => Box::new(l.accept()?.0),
        })
    }

    fn close(self) {
        if let Listener::Unix(listener, entry) = self {
            drop(listener);
            if let Err(e) = entry.remove() {
                crate::output::warn(&format!("metrics: {e}"));
            }
        }
    }
}

trait Conn: Read + Write {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()>;
}

impl Conn for std::net::TcpStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl Conn for UnixStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

fn serve(
    client: &mut Option<Client>,
    settings: &RuntimeSettings,
    emperor: Option<&str>,
    listener: &Listener,
) -> ExitCode {
    let stops = [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT];
    // SIGTERM and SIGINT end the server (the unix socket file is removed).
    let signals = match crate::runtime::bridge::signal_pipe(&stops) {
        Ok(fd) => fd,
        Err(e) => return fail(&format!("metrics: cannot set up signal handling: {e}")),
    };
    let listening = listener.fd();
    loop {
        let mut fds = [
            PollFd::new(&signals, PollFlags::IN),
            PollFd::new(&listening, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return fail(&format!("metrics: poll failed: {e}")),
        }
        if !fds[0].revents().is_empty() {
            return ExitCode::SUCCESS;
        }
        if fds[1].revents().is_empty() {
            continue;
        }
        match listener.accept() {
            Ok(mut conn) => {
                if let Err(e) = answer(client, settings, emperor, conn.as_mut()) {
                    crate::output::warn(&format!("metrics: {e}"));
                }
            }
            Err(e) => crate::output::warn(&format!("metrics: accept failed: {e}")),
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    BadMethod,
    Bad,
}

/// The route of a request head (`GET /metrics HTTP/1.1`, a query string allowed).
fn route(head: &[u8]) -> Route {
    let line_end = head.iter().position(|&b| b == b'\r' || b == b'\n');
    let Some(line) = line_end.and_then(|end| head.get(..end)) else {
        return Route::Bad;
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::Bad;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Route::Bad;
    }
    let path = target.split('?').next().unwrap_or(target);
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Route::Metrics,
        (_, "/metrics") => Route::BadMethod,
        _ => Route::NotFound,
    }
}

fn answer(
    client: &mut Option<Client>,
    settings: &RuntimeSettings,
    emperor: Option<&str>,
    conn: &mut dyn Conn,
) -> std::io::Result<()> {
    conn.set_timeouts(REQUEST_TIMEOUT)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_REQUEST_HEAD || Instant::now() > deadline {
            return respond(
                conn,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request too large\n",
                false,
            );
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let is_head = head.starts_with(b"HEAD ");
    match route(&head) {
        Route::Metrics => match scrape(client, settings, emperor) {
            Ok(text) => respond(conn, "200 OK", CONTENT_TYPE, text.as_bytes(), is_head),
            Err(e) => respond(
                conn,
                "503 Service Unavailable",
                "text/plain",
                format!("{e}\n").as_bytes(),
                is_head,
            ),
        },
        Route::NotFound => respond(
            conn,
            "404 Not Found",
            "text/plain",
            b"only /metrics here\n",
            is_head,
        ),
        Route::BadMethod => respond(
            conn,
            "405 Method Not Allowed",
            "text/plain",
            b"GET /metrics\n",
            false,
        ),
        Route::Bad => respond(
            conn,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            false,
        ),
    }
}

fn respond(
    conn: &mut dyn Conn,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(header.as_bytes())?;
    if !head_only {
        conn.write_all(body)?;
    }
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uwsgi_docker_core::docker::ContainerUsage;
    use uwsgi_docker_core::vassal_state::VassalState;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(route(b"garbage\r\n\r\n"), Route::Bad);
        assert_eq!(route(b"GET /metrics SPDY\r\n\r\n"), Route::Bad);
    }

    #[test]
    fn the_exposition_has_every_family_with_vassal_and_emperor_labels() {
        let mut state = VassalState::new("app.ini", "h:1", "h:2:3");
        state.up = true;
        state.starts = 3;
        state.log_bytes = 42;
        state.failures.insert("exited".into(), 2);
        state.spawn.observe(1.5);
        let mut container = uwsgi_docker_core::docker::ContainerSummary::default();
        container.state = "running".into();
        let usage = ContainerUsage {
            memory_bytes: Some(1 << 20),
            cpu_nanoseconds: Some(1_500_000_000),
            oom_kills: Some(0),
            ..ContainerUsage::default()
        };
        let view = VassalView {
            vassal: "app.ini".into(),
            emperor: "h:1".into(),
            state: Some(state),
            container: Some(container),
            usage,
            health: HealthStatus::Healthy,
        };
        let text = encode(vec![view]).expect("encodes");
        let labels = r#"{vassal="app.ini",emperor="h:1"}"#;
        for line in [
            format!("uwsgi_docker_vassal_up{labels} 1"),
            format!("uwsgi_docker_vassal_healthy{labels} 1"),
            format!("uwsgi_docker_vassal_starts_total{labels} 3"),
            format!("uwsgi_docker_vassal_rollovers_total{labels} 0"),
            r#"uwsgi_docker_vassal_failures_total{vassal="app.ini",emperor="h:1",reason="exited"} 2"#.to_owned(),
            format!("uwsgi_docker_container_memory_bytes{labels} 1048576"),
            format!("uwsgi_docker_container_cpu_seconds_total{labels} 1.5"),
            format!("uwsgi_docker_container_oom_kills_total{labels} 0"),
            format!("uwsgi_docker_log_bytes_total{labels} 42"),
            r#"uwsgi_docker_spawn_seconds_bucket{le="1.0",vassal="app.ini",emperor="h:1"} 0"#.to_owned(),
            r#"uwsgi_docker_spawn_seconds_bucket{le="2.0",vassal="app.ini",emperor="h:1"} 1"#.to_owned(),
            r#"uwsgi_docker_spawn_seconds_bucket{le="60.0",vassal="app.ini",emperor="h:1"} 1"#.to_owned(),
            r#"uwsgi_docker_spawn_seconds_bucket{le="+Inf",vassal="app.ini",emperor="h:1"} 1"#.to_owned(),
            format!("uwsgi_docker_spawn_seconds_count{labels} 1"),
            "# TYPE uwsgi_docker_vassal_starts_total counter".to_owned(),
            "# TYPE uwsgi_docker_spawn_seconds histogram".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("# EOF"));
        assert!(!text.contains("memory_limit_bytes{"), "no limit, no sample");
    }
}
