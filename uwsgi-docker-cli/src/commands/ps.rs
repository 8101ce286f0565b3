//! `uwsgi-docker ps`: the containers we own, as a table.
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use uwsgi_docker_core::docker::{self, ContainerSummary};
use uwsgi_docker_core::plan::labels;

use crate::host::docker_client::{Client, ClientError};
use crate::output::{self, fail};
use crate::settings::RuntimeSettings;

/// The containers labelled as ours.
pub fn list_owned(client: &Client) -> Result<Vec<ContainerSummary>, ClientError> {
    let response = client.call(|api, out| api.list_by_labels(&[(labels::MANAGED, "1")], out))?;
    let all = docker::parse_list(&response)?;
    // Belt and braces: never act on a container without our label, whatever the filter did.
    Ok(all.into_iter().filter(is_ours).collect())
}

pub fn is_ours(summary: &ContainerSummary) -> bool {
    label(summary, labels::MANAGED) == Some("1")
}

pub fn label<'a>(summary: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    summary
        .labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub fn container_name(summary: &ContainerSummary) -> String {
    summary
        .names
        .first()
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| summary.id.chars().take(12).collect())
}

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

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The table, one row per container, columns padded.
pub fn table(rows: &[[String; 6]]) -> String {
    let header = ["VASSAL", "CONTAINER", "STATE", "AGE", "EMPEROR", "PREFIX"].map(str::to_owned);
    let mut widths = [0usize; 6];
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

pub fn run(settings: &RuntimeSettings) -> ExitCode {
    let owned =
        match Client::negotiate(&settings.emperor.daemon_socket).and_then(|c| list_owned(&c)) {
            Ok(owned) => owned,
            Err(e) => return fail(&e.to_string()),
        };
    let now = unix_now();
    let rows: Vec<[String; 6]> = owned
        .iter()
        .map(|c| {
            [
                label(c, labels::VASSAL).unwrap_or("?").to_owned(),
                container_name(c),
                c.state.clone(),
                age(c.created, now),
                label(c, labels::EMPEROR).unwrap_or("?").to_owned(),
                label(c, labels::PREFIX).unwrap_or("-").to_owned(),
            ]
        })
        .collect();
    output::say(table(&rows).trim_end());
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
    fn table_is_aligned() {
        let rows = [["app.ini", "app.ini", "running", "5m", "h:1", "-"].map(str::to_owned)];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        // VASSAL is padded to "app.ini" (7) plus two spaces.
        assert_eq!(lines[0].find("CONTAINER"), Some(9));
        assert_eq!(lines[1].get(9..16), Some("app.ini"));
        assert_eq!(lines[0].find("STATE"), lines[1].find("running"));
        assert!(lines[0].starts_with("VASSAL "));
    }

    #[test]
    fn only_labelled_containers_are_ours() {
        let mut c = ContainerSummary::default();
        c.id = "0123456789abcdef".into();
        c.state = "running".into();
        assert!(!is_ours(&c));
        assert_eq!(container_name(&c), "0123456789ab");
        c.labels.push((labels::MANAGED.into(), "1".into()));
        c.names.push("/app.ini".into());
        assert!(is_ours(&c));
        assert_eq!(container_name(&c), "app.ini");
    }
}
