//! `docker-health-restart`: a thread reads the serving container's health (inspect, on
//! its own connection to the daemon, so a slow daemon never stalls the loop) and wakes the
//! loop when the core says the vassal ends ([`health::should_end_vassal`]).
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use uwsgi_docker_core::health::{self, HealthReport};
use uwsgi_docker_core::lifecycle::Phase;

use super::Runtime;
use crate::host::docker_client::Client;

/// What the loop and the watcher share.
#[derive(Debug, Default)]
struct Shared {
    /// The container that serves; `None` while none does (starting, rolling over, stopping).
    watched: Option<String>,
    /// Why the vassal ends, set once by the watcher.
    verdict: Option<String>,
}

/// The loop's side of the watcher.
#[derive(Debug)]
pub(super) struct HealthWatch {
    /// Readable when the watcher has a verdict.
    pub(super) alarm: OwnedFd,
    shared: Arc<Mutex<Shared>>,
}

/// How often the watcher asks: the check's interval, between 1 s and 10 s (the daemon's
/// default interval is 30 s; asking more often than checks run costs a request for nothing).
pub fn poll_interval(check_interval_ns: Option<u64>) -> Duration {
    let interval = Duration::from_nanos(check_interval_ns.unwrap_or(30_000_000_000));
    interval.clamp(Duration::from_secs(1), Duration::from_secs(10))
}

impl HealthWatch {
    /// Starts the watcher thread.
    pub(super) fn spawn(daemon_socket: String, every: Duration) -> std::io::Result<HealthWatch> {
        let (alarm, mut wake) = UnixStream::pair()?;
        alarm.set_nonblocking(true)?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let theirs = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("health-watch".into())
            .spawn(move || watch(&daemon_socket, every, &theirs, &mut wake))?;
        Ok(HealthWatch {
            alarm: OwnedFd::from(alarm),
            shared,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn watch(socket: &str, every: Duration, shared: &Mutex<Shared>, wake: &mut UnixStream) {
    let mut client: Option<Client> = None;
    loop {
        std::thread::sleep(every);
        let watched = shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .watched
            .clone();
        let Some(id) = watched else {
            continue;
        };
        if client.is_none() {
            client = Client::negotiate(socket).ok();
        }
        let Some(api) = client.as_ref() else {
            continue;
        };
        let report = match api.call(|api, out| api.inspect(&id, out)) {
            Ok(response) if response.status == 200 => health::parse_inspect_health(&response.body),
            Ok(_) => None,
            Err(_) => {
                client = None;
                None
            }
        };
        let Some(report) = report else {
            continue;
        };
        if health::should_end_vassal(true, &report) {
            let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
            // Still the same container: a rollover may have replaced it meanwhile.
            if shared.watched.as_deref() == Some(id.as_str()) {
                shared.verdict = Some(describe(&id, &report));
                drop(shared);
                let _ = wake.write_all(b"!");
                return;
            }
        }
    }
}

fn describe(id: &str, report: &HealthReport) -> String {
    let short: String = id.chars().take(12).collect();
    format!("container {short}: {}", report.describe())
}

impl Runtime {
    /// Tells the watcher which container serves now.
    pub(super) fn track_health(&mut self) {
        let Some(watch) = self.health.as_ref() else {
            return;
        };
        let serving = matches!(self.bridge.phase(), Phase::Running)
            .then(|| self.bridge.container_id().map(str::to_owned))
            .flatten();
        let mut shared = watch.lock();
        if shared.watched != serving {
            shared.watched = serving;
        }
    }

    /// The watcher woke us: the vassal ends.
    pub(super) fn health_alarm(&mut self, now: Instant) {
        let verdict = self.health.as_ref().and_then(|w| w.lock().verdict.take());
        self.health = None;
        if let Some(detail) = verdict {
            self.bridge.handle_unhealthy(detail, now);
        }
    }
}
