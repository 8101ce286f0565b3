//! Every vassal of ours on this host, as `ps` and `metrics` show it: the state files the
//! bridges keep (in each Emperor's private runtime directory) joined with the containers
//! one `GET /containers/json` lists, and each serving container's memory and CPU (its
//! cgroup, else one stats request).
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use uwsgi_docker_core::docker::{self, ContainerSummary, ContainerUsage};
use uwsgi_docker_core::health::HealthStatus;
use uwsgi_docker_core::plan::labels;
use uwsgi_docker_core::vassal_state::{VassalState, MAX_STATE_FILE};

use crate::host::docker_client::{Client, ClientError};
use crate::host::{cgroup, hostfs};
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

/// Seconds since the epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A state file whose bridge is gone is still shown this long after its last write (a
/// vassal the Emperor is about to respawn, or one that keeps failing).
pub const STALE_AFTER_SECS: u64 = 300;

/// One vassal.
#[derive(Debug, Clone, Default)]
pub struct VassalView {
    pub vassal: String,
    pub emperor: String,
    /// What its bridges recorded; `None` for a container whose bridge kept no state.
    pub state: Option<VassalState>,
    /// Its container (the serving one, during a rollover).
    pub container: Option<ContainerSummary>,
    pub usage: ContainerUsage,
    pub health: HealthStatus,
}

impl VassalView {
    pub fn up(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.up)
            && self
                .container
                .as_ref()
                .is_some_and(|c| c.state == "running")
    }
}

/// Everything, or one Emperor's (`emperor`), through `client` (its API version already
/// negotiated). One list request, and one stats request per running container whose cgroup
/// cannot be read here.
pub fn collect(
    client: &Client,
    settings: &RuntimeSettings,
    emperor: Option<&str>,
    now: u64,
) -> Result<Vec<VassalView>, ClientError> {
    let containers = list_owned(client)?;
    let states: Vec<VassalState> = hostfs::read_state_files(&settings.runtime_dir, MAX_STATE_FILE)
        .unwrap_or_else(|e| {
            crate::output::warn(&format!("cannot read the vassals' state files: {e}"));
            Vec::new()
        })
        .into_iter()
        .filter_map(|(_, bytes)| VassalState::decode(&bytes))
        .collect();
    let mut views = join(
        states,
        containers,
        emperor,
        now,
        &crate::host::sys::bridge_label_alive,
    );
    let root = std::path::Path::new(cgroup::CGROUP_ROOT);
    for view in &mut views {
        let Some(container) = view.container.as_ref().filter(|c| c.state == "running") else {
            continue;
        };
        view.usage = match cgroup::read_usage(root, &container.id) {
            Some(usage) => usage,
            None => client
                .call(|api, out| api.stats(&container.id, out))
                .ok()
                .and_then(|r| docker::parse_stats(&r).ok())
                .unwrap_or_default(),
        };
    }
    Ok(views)
}

/// The join, without I/O: a vassal is shown when it has a container, or a state file whose
/// bridge is alive or that was written in the last [`STALE_AFTER_SECS`].
pub fn join(
    states: Vec<VassalState>,
    containers: Vec<ContainerSummary>,
    emperor: Option<&str>,
    now: u64,
    bridge_alive: &dyn Fn(&str) -> bool,
) -> Vec<VassalView> {
    let mut views: BTreeMap<(String, String), VassalView> = BTreeMap::new();
    for state in states {
        let fresh =
            bridge_alive(&state.bridge) || now.saturating_sub(state.updated_at) <= STALE_AFTER_SECS;
        if !fresh {
            continue;
        }
        let key = (state.emperor.clone(), state.vassal.clone());
        views.insert(
            key.clone(),
            VassalView {
                vassal: key.1,
                emperor: key.0,
                state: Some(state),
                ..VassalView::default()
            },
        );
    }
    for container in containers {
        let Some(vassal) = label(&container, labels::VASSAL) else {
            continue;
        };
        let owner = label(&container, labels::EMPEROR).unwrap_or("?");
        let key = (owner.to_owned(), vassal.to_owned());
        let view = views.entry(key.clone()).or_insert_with(|| VassalView {
            vassal: key.1,
            emperor: key.0,
            ..VassalView::default()
        });
        let serving = view.state.as_ref().and_then(|s| s.container.as_deref());
        let better = match &view.container {
            None => true,
            Some(held) => {
                serving == Some(container.id.as_str())
                    || (serving != Some(held.id.as_str())
                        && held.state != "running"
                        && container.state == "running")
            }
        };
        if better {
            view.health = HealthStatus::from_list_status(&container.status);
            view.container = Some(container);
        }
    }
    views
        .into_values()
        .filter(|v| emperor.is_none_or(|e| v.emperor == e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn state(vassal: &str, bridge: &str, updated_at: u64, container: Option<&str>) -> VassalState {
        let mut s = VassalState::new(vassal, "h:1", bridge);
        s.updated_at = updated_at;
        s.container = container.map(str::to_owned);
        s.up = container.is_some();
        s
    }

    fn container(id: &str, vassal: &str, running: bool, status: &str) -> ContainerSummary {
        let mut c = ContainerSummary::default();
        c.id = id.into();
        c.state = if running { "running" } else { "exited" }.into();
        c.status = status.into();
        c.labels = vec![
            (labels::EMPEROR.into(), "h:1".into()),
            (labels::MANAGED.into(), "1".into()),
            (labels::VASSAL.into(), vassal.into()),
        ];
        c
    }

    #[test]
    fn states_and_containers_join_by_emperor_and_vassal() {
        let alive = |b: &str| b == "live";
        let states = vec![
            state("a.ini", "live", 0, Some("c2")),
            state("gone.ini", "dead", 0, None),
            state("recent.ini", "dead", 990, None),
        ];
        let containers = vec![
            // During a rollover both containers exist: the state names the serving one.
            container("c1", "a.ini", true, "Up 1 minute"),
            container("c2", "a.ini", true, "Up 2 seconds (healthy)"),
            container("c3", "orphan.ini", true, "Up 1 hour"),
        ];
        let views = join(states, containers, None, 1000, &alive);
        let names: Vec<&str> = views.iter().map(|v| v.vassal.as_str()).collect();
        assert_eq!(names, ["a.ini", "orphan.ini", "recent.ini"]);
        let a = &views[0];
        assert_eq!(a.container.as_ref().map(|c| c.id.as_str()), Some("c2"));
        assert_eq!(a.health, HealthStatus::Healthy);
        assert!(a.up());
        assert!(views[1].state.is_none());
        assert!(!views[1].up(), "no bridge state: not known to serve");
        assert!(join(Vec::new(), Vec::new(), Some("other"), 0, &alive).is_empty());
    }
}
