//! The container's health as the daemon reports it (`docker-healthcheck`), and when it
//! ends the vassal (`docker-health-restart`).
//!
//! The daemon runs the check itself and turns `unhealthy` only after
//! `docker-health-retries` failures in a row (none count during the start period), so one
//! unhealthy report is the decision: the runtime reads inspect's `State.Health` on a timer
//! and calls [`Bridge::handle_unhealthy`](crate::lifecycle::Bridge::handle_unhealthy)
//! when [`should_end_vassal`] says so.
//!
//! A rollover to a container whose vassal sets a check ([`gates_rollover`]) switches only
//! once the daemon says it is healthy: the lifecycle inspects it every [`poll_every`] and
//! gives up after [`verdict_within`].
use std::time::Duration;

use serde::Deserialize;

use crate::spec::{HealthSpec, HealthTest};

/// Docker's health status of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HealthStatus {
    /// No health check (neither the vassal's nor the image's).
    #[default]
    None,
    /// Checks run, none has passed yet (or the start period runs).
    Starting,
    /// The last check passed.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

impl HealthStatus {
    /// As `ps` and the metrics show it.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::None => "-",
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }

    /// From inspect's `State.Health.Status`.
    pub fn from_inspect(status: &str) -> HealthStatus {
        match status {
            "starting" => HealthStatus::Starting,
            "healthy" => HealthStatus::Healthy,
            "unhealthy" => HealthStatus::Unhealthy,
            _ => HealthStatus::None,
        }
    }

    /// From the container list's `Status` text (`Up 5 minutes (healthy)`,
    /// `Up 3 seconds (health: starting)`), where the list carries it.
    pub fn from_list_status(status: &str) -> HealthStatus {
        if status.ends_with("(healthy)") {
            HealthStatus::Healthy
        } else if status.ends_with("(unhealthy)") {
            HealthStatus::Unhealthy
        } else if status.ends_with("(health: starting)") || status.ends_with("(starting)") {
            HealthStatus::Starting
        } else {
            HealthStatus::None
        }
    }
}

/// What inspect says of the container's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// The status.
    pub status: HealthStatus,
    /// Failed checks in a row.
    pub failing_streak: u64,
    /// The last check's output (as the daemon keeps it, trimmed), when there is one.
    pub last_output: Option<String>,
    /// The last check's exit code.
    pub last_exit: Option<i64>,
}

impl HealthReport {
    /// One line for the log: the streak and the last check's result.
    pub fn describe(&self) -> String {
        let mut text = format!("{} failed checks in a row", self.failing_streak);
        if let Some(code) = self.last_exit {
            text.push_str(&format!("; the last exited with {code}"));
        }
        if let Some(output) = self.last_output.as_deref().filter(|o| !o.is_empty()) {
            let short: String = output.chars().take(200).collect();
            text.push_str(&format!(": {short:?}"));
        }
        text
    }
}

#[derive(Deserialize)]
struct Inspect {
    #[serde(rename = "State")]
    state: Option<State>,
}

#[derive(Deserialize)]
struct State {
    #[serde(rename = "Health")]
    health: Option<Health>,
}

#[derive(Deserialize)]
struct Health {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "FailingStreak", default)]
    failing_streak: u64,
    #[serde(rename = "Log", default)]
    log: Vec<Probe>,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "ExitCode")]
    exit_code: Option<i64>,
    #[serde(rename = "Output", default)]
    output: String,
}

/// Reads the health out of a `GET /containers/{id}/json` body; `None` when the body is not
/// an inspect reply. A container without a health check reports [`HealthStatus::None`].
pub fn parse_inspect_health(body: &[u8]) -> Option<HealthReport> {
    let inspect: Inspect = serde_json::from_slice(body).ok()?;
    let Some(health) = inspect.state.and_then(|s| s.health) else {
        return Some(HealthReport {
            status: HealthStatus::None,
            failing_streak: 0,
            last_output: None,
            last_exit: None,
        });
    };
    let last = health.log.last();
    Some(HealthReport {
        status: HealthStatus::from_inspect(&health.status),
        failing_streak: health.failing_streak,
        last_output: last.map(|p| p.output.trim().to_owned()),
        last_exit: last.and_then(|p| p.exit_code),
    })
}

/// Whether this report ends the vassal: only an unhealthy container, and only with
/// `docker-health-restart`.
pub fn should_end_vassal(restart: bool, report: &HealthReport) -> bool {
    restart && report.status == HealthStatus::Unhealthy
}

/// Whether a rollover may switch to a new container with this report: one without a health
/// check (neither the vassal's nor the image's) as soon as it accepts requests, one with a
/// check only once the daemon says it is healthy.
pub fn switch_allowed(report: &HealthReport) -> bool {
    matches!(report.status, HealthStatus::None | HealthStatus::Healthy)
}

/// Docker's values for what `docker-health-*` leaves unset (the image's `HEALTHCHECK` may
/// set others; these are what the daemon uses without either).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// No wait for a verdict is longer, whatever the settings say.
const MAX_VERDICT_WAIT: Duration = Duration::from_secs(24 * 3600);
/// How often a rollover asks for the new container's health: its check's interval, within
/// these bounds (the daemon's state changes at most once per check).
const MIN_HEALTH_POLL: Duration = Duration::from_millis(100);
const MAX_HEALTH_POLL: Duration = Duration::from_secs(1);

/// Whether a rollover waits for the new container to be healthy before it switches: the
/// vassal sets a health check (any `docker-health*` setting, unless `docker-healthcheck =
/// none`). A container the daemon then reports without a check switches at once.
pub fn gates_rollover(spec: &HealthSpec) -> bool {
    spec.is_set() && spec.test != Some(HealthTest::Disabled)
}

/// How long a rollover waits for the daemon's verdict on the new container. A check that
/// keeps failing makes it unhealthy by start-period + retries × (interval + timeout) (each
/// check starts at most interval + timeout after the previous one, and none counts during
/// the start period); one more interval + timeout is the margin for the check that
/// straddles the start period's end. At most a day.
pub fn verdict_within(spec: &HealthSpec) -> Duration {
    let ns = |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_nanos);
    let cycle =
        ns(spec.interval_ns, DEFAULT_INTERVAL).saturating_add(ns(spec.timeout_ns, DEFAULT_TIMEOUT));
    let cycles = spec.retries.unwrap_or(DEFAULT_RETRIES).saturating_add(1);
    ns(spec.start_period_ns, Duration::ZERO)
        .saturating_add(cycle.saturating_mul(cycles))
        .min(MAX_VERDICT_WAIT)
}

/// How often a rollover asks for the new container's health: its check's interval, at
/// least 100 ms and at most 1 s.
pub fn poll_every(spec: &HealthSpec) -> Duration {
    spec.interval_ns
        .map_or(DEFAULT_INTERVAL, Duration::from_nanos)
        .clamp(MIN_HEALTH_POLL, MAX_HEALTH_POLL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_health_is_read_and_only_unhealthy_with_restart_ends() {
        let body = br#"{"Id":"x","State":{"Status":"running","Health":{"Status":"unhealthy","FailingStreak":3,"Log":[{"ExitCode":0,"Output":"ok"},{"ExitCode":1,"Output":"boom\n"}]}}}"#;
        let report = parse_inspect_health(body).expect("an inspect body");
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.failing_streak, 3);
        assert_eq!(report.last_output.as_deref(), Some("boom"));
        assert_eq!(report.last_exit, Some(1));
        assert!(should_end_vassal(true, &report));
        assert!(!should_end_vassal(false, &report));
        assert!(report.describe().contains("3 failed checks in a row"));

        let healthy = br#"{"State":{"Health":{"Status":"healthy","FailingStreak":0,"Log":[]}}}"#;
        let report = parse_inspect_health(healthy).expect("parses");
        assert_eq!(report.status, HealthStatus::Healthy);
        assert!(!should_end_vassal(true, &report));

        let none = parse_inspect_health(br#"{"State":{"Status":"running"}}"#).expect("parses");
        assert_eq!(none.status, HealthStatus::None);
        assert!(switch_allowed(&none) && switch_allowed(&report));
        let starting = br#"{"State":{"Health":{"Status":"starting","FailingStreak":0}}}"#;
        let starting = parse_inspect_health(starting).expect("parses");
        assert!(!switch_allowed(&starting));
        assert!(parse_inspect_health(b"garbage").is_none());
    }

    #[test]
    fn a_set_check_gates_the_rollover_within_the_daemon_s_verdict_time() {
        let unset = HealthSpec::default();
        assert!(!gates_rollover(&unset));
        let disabled = HealthSpec {
            test: Some(HealthTest::Disabled),
            ..HealthSpec::default()
        };
        assert!(!gates_rollover(&disabled));
        let exec = HealthSpec {
            test: Some(HealthTest::Exec(vec!["/bin/check".into()])),
            ..HealthSpec::default()
        };
        assert!(gates_rollover(&exec));
        // Docker's defaults: 30 s interval, 30 s timeout, 3 retries, no start period.
        assert_eq!(verdict_within(&exec), Duration::from_secs(4 * 60));
        assert_eq!(poll_every(&exec), Duration::from_secs(1));
        // Only an interval set: the image's own check (if any) is waited for too.
        let second = 1_000_000_000;
        let tuned = HealthSpec {
            interval_ns: Some(second / 2),
            timeout_ns: Some(2 * second),
            retries: Some(2),
            start_period_ns: Some(5 * second),
            ..HealthSpec::default()
        };
        assert!(gates_rollover(&tuned));
        assert_eq!(
            verdict_within(&tuned),
            Duration::from_millis(5000 + 3 * 2500)
        );
        assert_eq!(poll_every(&tuned), Duration::from_millis(500));
        let huge = HealthSpec {
            interval_ns: Some(i64::MAX as u64),
            retries: Some(i32::MAX as u32),
            ..exec
        };
        assert_eq!(verdict_within(&huge), MAX_VERDICT_WAIT);
        let tiny = HealthSpec {
            interval_ns: Some(1_000_000),
            ..HealthSpec::default()
        };
        assert_eq!(poll_every(&tiny), MIN_HEALTH_POLL);
    }

    #[test]
    fn list_status_text_carries_the_health() {
        assert_eq!(
            HealthStatus::from_list_status("Up 5 minutes (healthy)"),
            HealthStatus::Healthy
        );
        assert_eq!(
            HealthStatus::from_list_status("Up 2 seconds (health: starting)"),
            HealthStatus::Starting
        );
        assert_eq!(
            HealthStatus::from_list_status("Up 1 hour (unhealthy)"),
            HealthStatus::Unhealthy
        );
        assert_eq!(
            HealthStatus::from_list_status("Up 1 hour"),
            HealthStatus::None
        );
    }
}
