//! `uwsgi-docker gc`: remove the containers we own whose bridge is gone, and their stale
//! proxy sockets. Never a live bridge's container, never one without our label, never one
//! whose bridge ran on another host (we cannot see its processes). With a name prefix
//! (`UWSGIDOCKER_NAME_PREFIX`), only that Emperor's containers: those labelled with it.
use std::path::Path;
use std::process::ExitCode;

use uwsgi_docker_core::docker::{self, ContainerSummary};
use uwsgi_docker_core::plan::labels;

use crate::commands::vassals::{container_name, is_ours, label, list_owned};
use crate::host::docker_client::Client;
use crate::host::hostfs::{self, StaleOutcome};
use crate::host::sys::{self, BridgeLabel};
use crate::output::{self, fail, warn};
use crate::settings::RuntimeSettings;

/// What to do with one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its bridge is gone: remove it.
    Orphan,
    /// Leave it, for this reason.
    Keep(String),
}

/// Decide for one container; `alive` says whether a bridge label names a live process;
/// `prefix`, when set, limits us to containers of that name prefix.
pub fn verdict(
    summary: &ContainerSummary,
    host: &str,
    alive: &dyn Fn(&BridgeLabel) -> bool,
    prefix: Option<&str>,
) -> Verdict {
    if !is_ours(summary) {
        return Verdict::Keep("not labelled as ours".into());
    }
    if let Some(ours) = prefix {
        match label(summary, labels::PREFIX) {
            Some(theirs) if theirs == ours => {}
            Some(theirs) => return Verdict::Keep(format!("name prefix {theirs:?}, not ours")),
            None => return Verdict::Keep("no name prefix, and ours is set".into()),
        }
    }
    let Some(raw) = label(summary, labels::BRIDGE) else {
        return Verdict::Keep("no bridge label".into());
    };
    let Some(bridge) = sys::parse_bridge_label(raw) else {
        return Verdict::Keep(format!("unreadable bridge label {raw:?}"));
    };
    if bridge.host != host {
        return Verdict::Keep(format!("its bridge ran on host {}", bridge.host));
    }
    if alive(&bridge) {
        return Verdict::Keep(format!("its bridge (pid {}) is alive", bridge.pid));
    }
    Verdict::Orphan
}

pub fn run(settings: &RuntimeSettings, dry_run: bool) -> ExitCode {
    let client = match Client::negotiate(&settings.emperor.daemon_socket) {
        Ok(client) => client,
        Err(e) => return fail(&e.to_string()),
    };
    let owned = match list_owned(&client) {
        Ok(owned) => owned,
        Err(e) => return fail(&e.to_string()),
    };
    let host = sys::hostname();
    let mut failures = 0;
    for summary in &owned {
        let name = container_name(summary);
        let vassal = label(summary, labels::VASSAL).unwrap_or("?");
        let prefix = settings.emperor.name_prefix.as_deref();
        if let Verdict::Keep(why) = verdict(summary, &host, &sys::bridge_alive, prefix) {
            if settings.emperor.debug {
                warn(&format!("keep {name} (vassal {vassal}): {why}"));
            }
            continue;
        }
        if dry_run {
            output::say(format_args!("would remove {name} (vassal {vassal})"));
        } else {
            let removed = client
                .call(|api, out| api.remove(&summary.id, out))
                .map_err(|e| e.to_string())
                .and_then(|response| match docker::parse_empty(&response) {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(e.to_string()),
                });
            match removed {
                Ok(()) => output::say(format_args!("removed {name} (vassal {vassal})")),
                Err(e) => {
                    warn(&format!("cannot remove {name} (vassal {vassal}): {e}"));
                    failures += 1;
                    continue;
                }
            }
        }
        if let Some(path) = label(summary, labels::PROXY) {
            remove_stale_proxy(path, dry_run);
        }
        if let Some(path) = label(summary, labels::CIDFILE) {
            remove_cidfile(path, &summary.id, dry_run);
        }
    }
    remove_stale_states(settings, &owned, &host, dry_run);
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Remove the state files (for `metrics` and `ps`) of vassals gone for good: no container
/// of ours for them, their bridge (on this host) gone, and not written for
/// [`STALE_AFTER_SECS`](crate::commands::vassals::STALE_AFTER_SECS).
fn remove_stale_states(
    settings: &RuntimeSettings,
    owned: &[ContainerSummary],
    host: &str,
    dry_run: bool,
) {
    use uwsgi_docker_core::vassal_state::{VassalState, MAX_STATE_FILE};
    let base = &settings.runtime_dir;
    let Ok(files) = hostfs::read_state_files(base, MAX_STATE_FILE) else {
        return;
    };
    let now = u64::try_from(crate::commands::vassals::unix_now()).unwrap_or(0);
    for (path, bytes) in files {
        let Some(state) = VassalState::decode(&bytes) else {
            continue;
        };
        let has_container = owned.iter().any(|c| {
            label(c, labels::VASSAL) == Some(state.vassal.as_str())
                && label(c, labels::EMPEROR) == Some(state.emperor.as_str())
        });
        let bridge_gone = sys::parse_bridge_label(&state.bridge)
            .is_some_and(|b| b.host == host && !sys::bridge_alive(&b));
        let old = now.saturating_sub(state.updated_at) > crate::commands::vassals::STALE_AFTER_SECS;
        if has_container || !bridge_gone || !old {
            continue;
        }
        let shown = path.display();
        if dry_run {
            output::say(format_args!("would remove state file {shown}"));
            continue;
        }
        match hostfs::remove_state_file(base, &path) {
            Ok(true) => output::say(format_args!("removed state file {shown}")),
            Ok(false) => {}
            Err(e) => output::warn(&format!("kept {e}")),
        }
    }
}

/// Remove the proxy socket file of an orphan, only if it is a stale unix stream socket
/// reached with no symlink (see [`hostfs::remove_stale_socket`]); anything else stays.
fn remove_stale_proxy(path: &str, dry_run: bool) {
    use std::os::unix::fs::FileTypeExt;
    if dry_run {
        let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
        if is_socket {
            output::say(format_args!(
                "would remove proxy socket {path} if it is stale"
            ));
        }
        return;
    }
    match hostfs::remove_stale_socket_path(Path::new(path)) {
        Ok(StaleOutcome::Removed) => output::say(format_args!("removed stale proxy socket {path}")),
        Ok(StaleOutcome::Absent) => {}
        Err(e) => warn(&format!("kept {e}")),
    }
}

/// Remove an orphan's `docker-cidfile` if it still holds that container's id.
fn remove_cidfile(path: &str, id: &str, dry_run: bool) {
    if dry_run {
        output::say(format_args!(
            "would remove docker-cidfile {path} if it holds {id}"
        ));
        return;
    }
    match hostfs::remove_cidfile_if(Path::new(path), id) {
        Ok(true) => output::say(format_args!("removed docker-cidfile {path}")),
        Ok(false) => {}
        Err(e) => warn(&format!("kept docker-cidfile {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(labels: &[(&str, &str)]) -> ContainerSummary {
        let mut container = ContainerSummary::default();
        container.id = "abc".into();
        container.names = vec!["/app.ini".into()];
        container.state = "running".into();
        container.labels = labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        container
    }

    #[test]
    fn only_our_dead_bridges_on_this_host_are_orphans() {
        let dead = |_: &BridgeLabel| false;
        let alive = |_: &BridgeLabel| true;
        let ours = container(&[(labels::MANAGED, "1"), (labels::BRIDGE, "h1:42:1000")]);
        assert_eq!(verdict(&ours, "h1", &dead, None), Verdict::Orphan);
        assert!(matches!(
            verdict(&ours, "h1", &alive, None),
            Verdict::Keep(_)
        ));
        assert!(matches!(
            verdict(&ours, "h2", &dead, None),
            Verdict::Keep(_)
        ));
        let foreign = container(&[(labels::BRIDGE, "h1:42:1000")]);
        assert!(matches!(
            verdict(&foreign, "h1", &dead, None),
            Verdict::Keep(_)
        ));
        let unlabelled = container(&[(labels::MANAGED, "1")]);
        assert!(matches!(
            verdict(&unlabelled, "h1", &dead, None),
            Verdict::Keep(_)
        ));
        let garbage = container(&[(labels::MANAGED, "1"), (labels::BRIDGE, "nonsense")]);
        assert!(matches!(
            verdict(&garbage, "h1", &dead, None),
            Verdict::Keep(_)
        ));
    }

    #[test]
    fn with_a_prefix_only_that_prefix_is_collected() {
        let dead = |_: &BridgeLabel| false;
        let of = |prefix: Option<&str>| {
            let mut pairs = vec![(labels::MANAGED, "1"), (labels::BRIDGE, "h1:42:1000")];
            pairs.extend(prefix.map(|p| (labels::PREFIX, p)));
            container(&pairs)
        };
        assert_eq!(
            verdict(&of(Some("t1-")), "h1", &dead, Some("t1-")),
            Verdict::Orphan
        );
        assert!(matches!(
            verdict(&of(Some("t2-")), "h1", &dead, Some("t1-")),
            Verdict::Keep(_)
        ));
        assert!(matches!(
            verdict(&of(None), "h1", &dead, Some("t1-")),
            Verdict::Keep(_)
        ));
        // Without a prefix of its own, gc collects every Emperor's orphans.
        assert_eq!(
            verdict(&of(Some("t2-")), "h1", &dead, None),
            Verdict::Orphan
        );
    }

    #[test]
    fn our_own_process_counts_as_a_live_bridge() {
        let me = sys::bridge_id();
        let ours = container(&[(labels::MANAGED, "1"), (labels::BRIDGE, &me)]);
        assert!(matches!(
            verdict(&ours, &sys::hostname(), &sys::bridge_alive, None),
            Verdict::Keep(_)
        ));
    }

    #[test]
    fn stale_proxy_removal_spares_regular_files_and_live_sockets() {
        let dir = std::env::temp_dir().join(format!("uwsgi-docker-gc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("file");
        std::fs::write(&file, b"x").expect("write");
        remove_stale_proxy(&file.to_string_lossy(), false);
        assert!(file.exists());
        let live_path = dir.join("live.sock");
        let live = std::os::unix::net::UnixDatagram::bind(&live_path).expect("bind");
        remove_stale_proxy(&live_path.to_string_lossy(), false);
        assert!(live_path.exists());
        drop(live);
        let stale = dir.join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
        remove_stale_proxy(&stale.to_string_lossy(), false);
        assert!(!stale.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
