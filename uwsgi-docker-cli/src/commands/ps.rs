//! `uwsgi-docker ps`: every vassal of ours, as a table or JSON (see [`vassals`]).
use std::process::ExitCode;

use uwsgi_docker_core::health::HealthStatus;
use uwsgi_docker_core::plan::labels;

use crate::commands::vassals::{self, container_name, label, unix_now, VassalView};
use crate::host::docker_client::Client;
use crate::output::{self, fail};
use crate::settings::RuntimeSettings;

/// `42s`, `5m`, `3h`, `2d`.
pub fn age(created: i64, now: i64) -> String {
    let secs = now.saturating_sub(created).max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The table's columns.
const COLUMNS: [&str; 11] = [
    "VASSAL",
    "CONTAINER",
    "STATE",
    "HEALTH",
    "UPTIME",
    "STARTS",
    "IMAGE",
    "DIGEST",
    "MEM",
    "CPU",
    "EMPEROR",
];

/// The table, one row per vassal, columns padded.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let header = header.map(str::to_owned);
    let mut widths = [0usize; N];
    for row in std::iter::once(&header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `256M`, `1.5G`, `12K`: binary units, one decimal under 10.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let suffix = UNITS.get(unit).copied().unwrap_or("T");
    if unit > 0 && value < 10.0 {
        format!("{value:.1}{suffix}")
    } else {
        format!("{value:.0}{suffix}")
    }
}

/// What `ps` says of the vassal's state: `up` (serving), else the container's state, or
/// `down` with no container.
fn vassal_state(view: &VassalView) -> String {
    match &view.container {
        _ if view.up() => "up".to_owned(),
        Some(c) => c.state.clone(),
        None => "down".to_owned(),
    }
}

fn short_digest(image_id: &str) -> String {
    image_id
        .strip_prefix("sha256:")
        .unwrap_or(image_id)
        .chars()
        .take(12)
        .collect()
}

fn uptime(view: &VassalView, now: i64) -> Option<i64> {
    let container = view.container.as_ref().filter(|c| c.state == "running")?;
    let since = view
        .state
        .as_ref()
        .filter(|s| s.container.as_deref() == Some(container.id.as_str()))
        .and_then(|s| s.started_at)
        .and_then(|t| i64::try_from(t).ok())
        .unwrap_or(container.created);
    Some(now.saturating_sub(since).max(0))
}

fn row(view: &VassalView, now: i64) -> [String; 11] {
    let dash = || "-".to_owned();
    let container = view.container.as_ref();
    [
        view.vassal.clone(),
        container.map_or_else(dash, container_name),
        vassal_state(view),
        view.health.as_str().to_owned(),
        uptime(view, now).map_or_else(dash, |secs| age(0, secs)),
        view.state
            .as_ref()
            .map_or_else(dash, |s| s.starts.to_string()),
        container.map_or_else(dash, |c| c.image.clone()),
        container.map_or_else(dash, |c| short_digest(&c.image_id)),
        view.usage.memory_bytes.map_or_else(dash, bytes),
        view.usage
            .cpu_nanoseconds
            .map_or_else(dash, |ns| format!("{:.1}s", ns as f64 / 1e9)),
        view.emperor.clone(),
    ]
}

fn json_row(view: &VassalView, now: i64) -> serde_json::Value {
    let state = view.state.as_ref();
    let container = view.container.as_ref();
    serde_json::json!({
        "vassal": view.vassal,
        "emperor": view.emperor,
        "state": vassal_state(view),
        "up": view.up(),
        "health": match view.health { HealthStatus::None => None, h => Some(h.as_str()) },
        "uptime_seconds": uptime(view, now),
        "starts": state.map(|s| s.starts),
        "rollovers": state.map(|s| s.rollovers),
        "failures": state.map(|s| &s.failures),
        "container": container.map(|c| &c.id),
        "container_name": container.map(container_name),
        "container_state": container.map(|c| &c.state),
        "image": container.map(|c| &c.image),
        "image_id": container.map(|c| &c.image_id),
        "memory_bytes": view.usage.memory_bytes,
        "memory_limit_bytes": view.usage.memory_limit_bytes,
        "cpu_seconds": view.usage.cpu_nanoseconds.map(|ns| ns as f64 / 1e9),
        "oom_kills": view.usage.oom_kills,
        "log_bytes": state.map(|s| s.log_bytes),
        "name_prefix": container.and_then(|c| label(c, labels::PREFIX)),
    })
}

pub fn run(settings: &RuntimeSettings, json: bool, emperor: Option<&str>) -> ExitCode {
    let now = unix_now();
    let now_unsigned = u64::try_from(now).unwrap_or(0);
    let views = match Client::negotiate(&settings.emperor.daemon_socket)
        .and_then(|client| vassals::collect(&client, settings, emperor, now_unsigned))
    {
        Ok(views) => views,
        Err(e) => return fail(&e.to_string()),
    };
    if json {
        let rows: Vec<serde_json::Value> = views.iter().map(|v| json_row(v, now)).collect();
        output::say(serde_json::Value::Array(rows));
        return ExitCode::SUCCESS;
    }
    let rows: Vec<[String; 11]> = views.iter().map(|v| row(v, now)).collect();
    output::say(table(COLUMNS, &rows).trim_end());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(100, 142), "42s");
        assert_eq!(age(0, 300), "5m");
        assert_eq!(age(0, 3 * 3600 + 5), "3h");
        assert_eq!(age(0, 2 * 86_400), "2d");
        assert_eq!(age(500, 100), "0s");
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(3 << 20), "3.0M");
        assert_eq!(bytes(256 << 20), "256M");
        assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab");
    }

    #[test]
    fn table_is_aligned() {
        let header = ["VASSAL", "CONTAINER", "STATE", "AGE", "EMPEROR", "PREFIX"];
        let rows = [["app.ini", "app.ini", "running", "5m", "h:1", "-"].map(str::to_owned)];
        let t = table(header, &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        // VASSAL is padded to "app.ini" (7) plus two spaces.
        assert_eq!(lines[0].find("CONTAINER"), Some(9));
        assert_eq!(lines[1].get(9..16), Some("app.ini"));
        assert_eq!(lines[0].find("STATE"), lines[1].find("running"));
        assert!(lines[0].starts_with("VASSAL "));
    }
}
