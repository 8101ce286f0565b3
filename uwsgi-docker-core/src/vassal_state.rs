//! What a vassal's bridges have done, kept between bridge processes: the counters behind
//! `uwsgi-docker metrics` and `ps`. The bridge feeds it its phase and its events
//! ([`StateTracker`]); the runtime writes [`VassalState::encode`] to a small file in the
//! Emperor's private runtime directory when [`StateTracker::poll_write`] says so, and the
//! next bridge of the same vassal starts from what it finds there, so the counters grow
//! across respawns.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::lifecycle::{Event, Fault, Notice, Phase};

/// Upper bounds (seconds) of the spawn-time histogram's buckets; `+Inf` is implied.
pub const SPAWN_BUCKETS: [f64; 9] = [0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0];
/// The largest state file read back; a larger one is ignored.
pub const MAX_STATE_FILE: usize = 64 * 1024;
/// How often, at most, a growing log byte count alone causes a write.
pub const LOG_BYTES_WRITE_INTERVAL: Duration = Duration::from_secs(5);

/// One vassal's counters and current facts, as stored between bridges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct VassalState {
    /// The vassal's name, as the Emperor gave it (`app.ini`).
    pub vassal: String,
    /// The Emperor's id (the `io.uwsgi-docker.emperor` label).
    pub emperor: String,
    /// The current (or last) bridge, as its `io.uwsgi-docker.bridge` label: `host:pid:start`.
    pub bridge: String,
    /// The container that serves (or served last).
    pub container: Option<String>,
    /// Its container serves: the handoff is done and the bridge is not stopping.
    pub up: bool,
    /// Containers started for this vassal, over every bridge.
    pub starts: u64,
    /// Rollovers completed (a new container took over).
    pub rollovers: u64,
    /// Failures by reason (see [`failure_reason`]).
    pub failures: BTreeMap<String, u64>,
    /// Bytes of container output relayed to the Emperor's log (line ends counted).
    pub log_bytes: u64,
    /// From a bridge's start to its handoff.
    pub spawn: SpawnHistogram,
    /// Unix seconds when the serving container started.
    pub started_at: Option<u64>,
    /// Unix seconds of the last write.
    pub updated_at: u64,
}

/// A histogram of spawn times: counts per bucket of [`SPAWN_BUCKETS`] (not cumulative),
/// with the sum and the count of every observation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpawnHistogram {
    /// One count per bound of [`SPAWN_BUCKETS`], each for the observations above the
    /// previous bound and at most its own.
    pub buckets: Vec<u64>,
    /// The sum of the observations, seconds.
    pub sum: f64,
    /// How many observations (those above the last bound included).
    pub count: u64,
}

impl SpawnHistogram {
    /// Adds one observation.
    pub fn observe(&mut self, seconds: f64) {
        self.buckets.resize(SPAWN_BUCKETS.len(), 0);
        if let Some(i) = SPAWN_BUCKETS.iter().position(|bound| seconds <= *bound) {
            if let Some(n) = self.buckets.get_mut(i) {
                *n += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    /// `(upper bound, count)` for each bucket, not cumulative, with the observations above
    /// the last bound under `f64::INFINITY` last: the counts add up to [`count`](Self::count).
    pub fn counts(&self) -> Vec<(f64, u64)> {
        let mut total = 0u64;
        let mut out: Vec<(f64, u64)> = SPAWN_BUCKETS
            .iter()
            .enumerate()
            .map(|(i, bound)| {
                let n = self.buckets.get(i).copied().unwrap_or(0);
                total = total.saturating_add(n);
                (*bound, n)
            })
            .collect();
        out.push((f64::INFINITY, self.count.saturating_sub(total)));
        out
    }
}

impl VassalState {
    /// A fresh state for a vassal with nothing counted.
    pub fn new(vassal: &str, emperor: &str, bridge: &str) -> VassalState {
        VassalState {
            vassal: vassal.to_owned(),
            emperor: emperor.to_owned(),
            bridge: bridge.to_owned(),
            ..VassalState::default()
        }
    }

    /// The file's bytes (JSON).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a state file back; `None` when it is too large or not a state.
    pub fn decode(bytes: &[u8]) -> Option<VassalState> {
        if bytes.len() > MAX_STATE_FILE {
            return None;
        }
        serde_json::from_slice(bytes).ok()
    }

    /// The state a new bridge of this vassal continues from: the counters of `previous`
    /// (when it is this vassal's, of this Emperor), with this bridge's identity, not up.
    pub fn continue_from(
        previous: Option<VassalState>,
        vassal: &str,
        emperor: &str,
        bridge: &str,
    ) -> VassalState {
        let mut state = match previous {
            Some(p) if p.vassal == vassal && p.emperor == emperor => p,
            _ => VassalState::default(),
        };
        state.vassal = vassal.to_owned();
        state.emperor = emperor.to_owned();
        state.bridge = bridge.to_owned();
        state.up = false;
        state.container = None;
        state.started_at = None;
        state
    }

    fn fail(&mut self, reason: &str) {
        *self.failures.entry(reason.to_owned()).or_insert(0) += 1;
    }
}

/// The `reason` label of a failure event, or `None` when the event is not one.
pub fn failure_reason(event: &Event) -> Option<&'static str> {
    match event {
        Event::Failed(e) if e.is_unhealthy() => Some("unhealthy"),
        Event::Failed(e) => Some(match e.fault() {
            Fault::VassalAuthor => "vassal",
            Fault::Operator => "operator",
            Fault::Daemon => "daemon",
            _ => "host",
        }),
        Event::ContainerExited { .. } => Some("exited"),
        Event::Notice(Notice::OomKilled { .. }) => Some("oom_killed"),
        Event::Notice(Notice::RolloverAbandoned(_)) => Some("rollover_abandoned"),
        _ => None,
    }
}

/// Feeds a [`VassalState`] from one bridge's life and says when to write it.
#[derive(Debug)]
pub struct StateTracker {
    state: VassalState,
    /// When the bridge started: the spawn time runs from here to the handoff.
    begun: Instant,
    start_counted: bool,
    spawn_observed: bool,
    /// Something changed that a reader should see at once.
    dirty: bool,
    /// Only the log byte count changed since the last write.
    log_dirty: bool,
    last_write: Option<Instant>,
}

impl StateTracker {
    /// Tracks a bridge that started at `now`, continuing `state`.
    pub fn new(state: VassalState, now: Instant) -> StateTracker {
        StateTracker {
            state,
            begun: now,
            start_counted: false,
            spawn_observed: false,
            // The new bridge's identity is written at once.
            dirty: true,
            log_dirty: false,
            last_write: None,
        }
    }

    /// The state as it is now.
    pub fn state(&self) -> &VassalState {
        &self.state
    }

    /// The bridge's phase after an input, its container id, and the wall clock (unix
    /// seconds): counts the start once the container runs, and tracks `up`.
    pub fn observe_phase(&mut self, phase: Phase, container: Option<&str>, unix_now: u64) {
        let started = matches!(
            phase,
            Phase::AwaitingVassal | Phase::Running | Phase::RollingOver | Phase::Reattaching
        );
        if started && !self.start_counted {
            self.start_counted = true;
            self.state.starts += 1;
            self.state.started_at = Some(unix_now);
            self.dirty = true;
        }
        let up = self.spawn_observed
            && matches!(
                phase,
                Phase::Running | Phase::RollingOver | Phase::Reattaching
            );
        if up != self.state.up {
            self.state.up = up;
            self.dirty = true;
        }
        if started {
            if let Some(id) = container {
                if self.state.container.as_deref() != Some(id) {
                    self.state.container = Some(id.to_owned());
                    self.dirty = true;
                }
            }
        }
    }

    /// One of the bridge's events.
    pub fn observe_event(&mut self, event: &Event, now: Instant, unix_now: u64) {
        match event {
            Event::Output { line, .. } => return self.observe_output(line.len()),
            Event::Running if !self.spawn_observed => {
                self.spawn_observed = true;
                let seconds = now.saturating_duration_since(self.begun).as_secs_f64();
                self.state.spawn.observe(seconds);
            }
            Event::Notice(Notice::RolledOver { .. }) => {
                self.state.rollovers += 1;
                self.state.starts += 1;
                self.state.started_at = Some(unix_now);
            }
            _ => {}
        }
        if let Some(reason) = failure_reason(event) {
            self.state.fail(reason);
        }
        self.dirty = true;
    }

    /// A relayed line of `len` bytes (its line end not counted): the one event that needs
    /// no clock, so the relay, which sees a great many, reads none.
    pub fn observe_output(&mut self, len: usize) {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        self.state.log_bytes = self.state.log_bytes.saturating_add(len).saturating_add(1);
        self.log_dirty = true;
    }

    /// The bridge is about to exit: not up any more.
    pub fn finish(&mut self) {
        self.state.up = false;
        self.dirty = true;
    }

    /// The bytes to write now, if anything should be written: at once after a change a
    /// reader should see, and at most every [`LOG_BYTES_WRITE_INTERVAL`] for log bytes.
    #[must_use]
    pub fn poll_write(&mut self, now: Instant, unix_now: u64) -> Option<Vec<u8>> {
        let log_due = self.log_dirty
            && self
                .last_write
                .is_none_or(|last| now.saturating_duration_since(last) >= LOG_BYTES_WRITE_INTERVAL);
        if !self.dirty && !log_due {
            return None;
        }
        self.dirty = false;
        self.log_dirty = false;
        self.last_write = Some(now);
        self.state.updated_at = unix_now;
        Some(self.state.encode())
    }

    /// When [`poll_write`](Self::poll_write) next has something to write, if only log
    /// bytes wait.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.dirty {
            return Some(self.last_write.unwrap_or(self.begun));
        }
        self.log_dirty.then(|| {
            self.last_write
                .map_or(self.begun, |t| t + LOG_BYTES_WRITE_INTERVAL)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attach::StreamKind;

    fn tracker(start: Instant) -> StateTracker {
        StateTracker::new(VassalState::new("app.ini", "h:1", "h:2:3"), start)
    }

    #[test]
    fn a_start_and_a_handoff_count_once_and_make_it_up() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        assert!(
            t.poll_write(t0, 100).is_some(),
            "the new bridge is written at once"
        );
        t.observe_phase(Phase::Creating, None, 100);
        assert_eq!(t.state().starts, 0);
        t.observe_phase(Phase::AwaitingVassal, Some("abc"), 101);
        t.observe_phase(Phase::AwaitingVassal, Some("abc"), 101);
        assert_eq!(t.state().starts, 1);
        assert!(!t.state().up, "not up before the handoff");
        t.observe_event(&Event::Running, t0 + Duration::from_millis(1500), 102);
        t.observe_phase(Phase::Running, Some("abc"), 102);
        assert!(t.state().up);
        assert_eq!(t.state().container.as_deref(), Some("abc"));
        assert_eq!(t.state().spawn.count, 1);
        // 1.5 s is in the 2 s bucket, and only there.
        let counts = t.state().spawn.counts();
        assert_eq!(counts.get(1), Some(&(1.0, 0)));
        assert_eq!(counts.get(2), Some(&(2.0, 1)));
        assert_eq!(counts.get(3), Some(&(3.0, 0)));
        assert_eq!(counts.last(), Some(&(f64::INFINITY, 0)));
        let mut slow = SpawnHistogram::default();
        slow.observe(90.0);
        slow.observe(0.1);
        assert_eq!(slow.counts().first(), Some(&(0.5, 1)));
        assert_eq!(
            slow.counts().last(),
            Some(&(f64::INFINITY, 1)),
            "above the last bound"
        );
        t.observe_phase(Phase::Stopping, Some("abc"), 103);
        assert!(!t.state().up);
    }

    #[test]
    fn log_bytes_are_written_at_most_every_interval() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let _ = t.poll_write(t0, 100);
        let line = Event::Output {
            stream: StreamKind::Stdout,
            line: b"hello".to_vec(),
        };
        t.observe_event(&line, t0, 100);
        assert_eq!(t.state().log_bytes, 6);
        // The relay's way, without a clock: the same count.
        t.observe_output(b"hello".len());
        assert_eq!(t.state().log_bytes, 12);
        assert!(t.poll_write(t0 + Duration::from_secs(1), 101).is_none());
        assert_eq!(t.poll_timeout(), Some(t0 + LOG_BYTES_WRITE_INTERVAL));
        let bytes = t
            .poll_write(t0 + LOG_BYTES_WRITE_INTERVAL, 105)
            .expect("due");
        let read = VassalState::decode(&bytes).expect("decodes");
        assert_eq!(read.log_bytes, 12);
        assert_eq!(read.updated_at, 105);
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn counters_continue_across_bridges_of_the_same_vassal_only() {
        let mut old = VassalState::new("app.ini", "h:1", "h:2:3");
        old.starts = 4;
        old.up = true;
        old.fail("exited");
        let next = VassalState::continue_from(Some(old.clone()), "app.ini", "h:1", "h:9:9");
        assert_eq!(next.starts, 4);
        assert!(!next.up);
        assert_eq!(next.bridge, "h:9:9");
        assert_eq!(next.failures.get("exited"), Some(&1));
        let other = VassalState::continue_from(Some(old), "other.ini", "h:1", "h:9:9");
        assert_eq!(other.starts, 0);
    }

    #[test]
    fn failures_are_counted_by_reason() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        t.observe_event(&Event::ContainerExited { status: 137 }, t0, 1);
        t.observe_event(&Event::Notice(Notice::OomKilled { memory: None }), t0, 1);
        assert_eq!(t.state().failures.get("exited"), Some(&1));
        assert_eq!(t.state().failures.get("oom_killed"), Some(&1));
    }

    #[test]
    fn garbage_and_huge_files_are_not_states() {
        assert!(VassalState::decode(b"not json").is_none());
        let huge = vec![b' '; MAX_STATE_FILE + 1];
        assert!(VassalState::decode(&huge).is_none());
        assert_eq!(
            VassalState::decode(b"{}"),
            Some(VassalState::default()),
            "missing fields default"
        );
    }
}
