//! The vassal's state file: the core's [`StateTracker`] sees the bridge's phase and events,
//! and says when its bytes are written (through [`StateFile`], atomically). Beside it, the
//! Emperor's bridges remember the daemon's API version ([`ApiMemory`]).
use std::path::{Path, PathBuf};
use std::time::Instant;

use uwsgi_docker_core::docker::Api;
use uwsgi_docker_core::lifecycle::{Event, LogLevel, Outcome};
use uwsgi_docker_core::vassal_state::{StateTracker, VassalState, MAX_STATE_FILE};

use super::Runtime;
use crate::host::hostfs::{self, HostFsError, StateFile};
use crate::host::sys;

/// The state file and what is tracked for it.
#[derive(Debug)]
pub(super) struct VassalStateFile {
    file: StateFile,
    tracker: StateTracker,
    /// A write failed: said once, not on every event.
    failed: bool,
}

impl VassalStateFile {
    /// Continues the counters the file holds (a previous bridge's), as this bridge.
    pub(super) fn open(
        file: StateFile,
        emperor: &str,
        bridge: &str,
        vassal: &str,
        now: Instant,
    ) -> Self {
        let previous = file
            .read(MAX_STATE_FILE)
            .and_then(|b| VassalState::decode(&b));
        let state = VassalState::continue_from(previous, vassal, emperor, bridge);
        VassalStateFile {
            file,
            tracker: StateTracker::new(state, now),
            failed: false,
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.tracker.poll_timeout()
    }
}

/// Where bridges remember the API version negotiated with a daemon (one line,
/// `Api::cache_line`), so that a spawn need not ask `/version`: a file per daemon socket in
/// `UWSGIDOCKER_RUNTIME_DIR` (root's, 0700), shared by the host's Emperors.
#[derive(Debug)]
pub struct ApiMemory {
    base: PathBuf,
    name: String,
    /// The daemon's identity ([`sys::daemon_identity`]): a restarted daemon is asked again.
    daemon: String,
}

/// Longer is not one of ours.
const MAX_API_MEMORY: usize = 4096;

impl ApiMemory {
    /// The memory for the daemon at `socket`; `None` when it is not a unix socket (each
    /// bridge negotiates then).
    pub fn new(runtime_dir: &Path, socket: &str) -> Option<ApiMemory> {
        let daemon = sys::daemon_identity(socket)?;
        Some(ApiMemory {
            base: runtime_dir.to_owned(),
            name: format!("daemon-api.{}", hostfs::sanitise_dir_name(socket)),
            daemon,
        })
    }

    /// The version negotiated earlier with this very daemon.
    pub fn recall(&self) -> Option<Api> {
        let line = hostfs::read_installed(&self.base, &self.name, MAX_API_MEMORY)?;
        Api::from_cache_line(&line, &self.daemon)
    }

    pub(super) fn remember(&self, api: Api) -> Result<(), HostFsError> {
        let line = api.cache_line(&self.daemon);
        hostfs::install_file(&self.base, &self.name, line.as_bytes(), 0o600).map(drop)
    }
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Runtime {
    /// After the bridge moved: its phase and container, and a write when one is due.
    pub(super) fn track_state(&mut self) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let unix = unix_now();
        state
            .tracker
            .observe_phase(self.bridge.phase(), self.bridge.container_id(), unix);
        self.write_state(Instant::now(), unix);
    }

    pub(super) fn track_event(&mut self, event: &Event) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match event {
            Event::Output { line, .. } => state.tracker.observe_output(line.len()),
            _ => state
                .tracker
                .observe_event(event, Instant::now(), unix_now()),
        }
    }

    /// At exit: a vassal stopped on request (the Emperor, a signal) leaves no state file,
    /// so a removed vassal does not linger in `ps` and `metrics`; any other end keeps its
    /// counters, not up, for the bridge the Emperor starts next.
    pub(super) fn finish_state(&mut self) {
        let stopped = matches!(self.bridge.is_finished(), Some(Outcome::Stopped));
        let Some(state) = self.state.as_mut() else {
            return;
        };
        if stopped {
            if let Err(e) = state.file.remove() {
                self.say(
                    LogLevel::Error,
                    &format!("cannot remove the state file: {e}"),
                );
            }
            self.state = None;
            return;
        }
        state.tracker.finish();
        self.write_state(Instant::now(), unix_now());
    }

    fn write_state(&mut self, now: Instant, unix: u64) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let Some(bytes) = state.tracker.poll_write(now, unix) else {
            return;
        };
        match state.file.write(&bytes) {
            Ok(()) => state.failed = false,
            Err(e) if !state.failed => {
                state.failed = true;
                let message = format!("cannot write the state file for metrics: {e}");
                self.say(LogLevel::Error, &message);
            }
            Err(_) => {}
        }
    }
}

impl Runtime {
    /// [`Action::RememberApi`](uwsgi_docker_core::lifecycle::Action::RememberApi): for the
    /// next bridges; a failure costs them a `/version` each, so it is only debug.
    pub(super) fn remember_api(&mut self, api: Api) {
        let Some(memory) = &self.io.api_memory else {
            return;
        };
        if let Err(e) = memory.remember(api) {
            self.say_debug(&format!("cannot remember the daemon's API version: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use uwsgi_docker_core::docker::ApiVersion;

    #[test]
    fn the_api_version_is_recalled_for_the_same_daemon_only() {
        let root =
            std::env::temp_dir().join(format!("uwsgi-docker-api-memory-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir(&root).expect("root");
        // The runtime directory is made 0700 when missing.
        let base = root.join("run");
        let socket = root.join("docker.sock");
        let socket_path = socket.to_str().expect("utf-8").to_owned();
        let daemon = UnixListener::bind(&socket).expect("a daemon's socket");
        // Not a socket: nothing to tell a daemon by, so nothing is remembered.
        assert!(ApiMemory::new(&base, base.to_str().expect("utf-8")).is_none());
        let memory = ApiMemory::new(&base, &socket_path).expect("memory");
        assert_eq!(memory.recall(), None, "nothing negotiated yet");
        let api = Api::with_version(ApiVersion {
            major: 1,
            minor: 41,
        });
        memory.remember(api).expect("remembered");
        let next_bridge = ApiMemory::new(&base, &socket_path).expect("memory");
        assert_eq!(next_bridge.recall(), Some(api));
        // The daemon restarts: a new socket, asked again.
        drop(daemon);
        std::fs::remove_file(&socket).expect("unlink");
        let _restarted = UnixListener::bind(&socket).expect("a new socket");
        let after_restart = ApiMemory::new(&base, &socket_path).expect("memory");
        assert_eq!(after_restart.recall(), None);
        let mode = std::fs::metadata(&base).expect("made").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
