//! The container's health as the daemon reports it (`docker-healthcheck`), and when it
//! ends the vassal (`docker-health-restart`).
//!
//! The daemon runs the check itself and turns `unhealthy` only after
//! `docker-health-retries` failures in a row (none count during the start period), so one
//! unhealthy report is the decision: the runtime reads inspect's `State.Health` on a timer
//! and calls [`Bridge::handle_unhealthy`](crate::lifecycle::Bridge::handle_unhealthy)
//! when [`should_end_vassal`] says so.
use serde::Deserialize;

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
/// check only once the daemon says it is healthy. (For the lifecycle's rollover; not wired
/// in yet.)
pub fn switch_allowed(report: &HealthReport) -> bool {
    matches!(report.status, HealthStatus::None | HealthStatus::Healthy)
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
