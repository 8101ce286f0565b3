//! The vassal's state file: the core's [`StateTracker`] sees the bridge's phase and events,
//! and says when its bytes are written (through [`StateFile`], atomically).
use std::time::Instant;

use uwsgi_docker_core::lifecycle::{Event, LogLevel, Outcome};
use uwsgi_docker_core::vassal_state::{StateTracker, VassalState, MAX_STATE_FILE};

use super::Runtime;
use crate::host::hostfs::StateFile;

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
