//! The bridge's own deadlines, in one small table.
use std::time::Instant;

/// A deadline the bridge sets for itself (request deadlines live with their requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// The vassal closed its channel: the wait has until then to report the exit.
    VassalGone,
    /// Try the daemon again while re-attaching.
    Reconnect,
    /// The deadline of the rollover's own stage (the new vassal accepting, its
    /// container's health, the old container's graceful exit).
    Rollover,
    /// The container's output ended: the wait has until then to report its exit.
    ExitReport,
    /// Stopping: the vassal was asked to stop itself; the daemon's stop waits until then.
    StopHeld,
}

const TIMERS: usize = 5;

impl Timer {
    fn slot(self) -> usize {
        match self {
            Timer::VassalGone => 0,
            Timer::Reconnect => 1,
            Timer::Rollover => 2,
            Timer::ExitReport => 3,
            Timer::StopHeld => 4,
        }
    }
}

/// At most one deadline per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(super) struct Timers {
    at: [Option<Instant>; TIMERS],
}

impl Timers {
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer.slot()] = Some(at);
    }

    pub(super) fn clear(&mut self, timer: Timer) {
        self.at[timer.slot()] = None;
    }

    pub(super) fn clear_all(&mut self) {
        self.at = [None; TIMERS];
    }

    /// Clears and reports `timer` if it is due at `now`.
    pub(super) fn take_due(&mut self, timer: Timer, now: Instant) -> bool {
        let slot = &mut self.at[timer.slot()];
        if slot.is_some_and(|at| now >= at) {
            *slot = None;
            true
        } else {
            false
        }
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_timer_fires_once_at_its_deadline_and_the_earliest_is_next() {
        let start = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Reconnect, start + Duration::from_secs(2));
        timers.set(Timer::VassalGone, start + Duration::from_secs(1));
        assert_eq!(timers.next(), Some(start + Duration::from_secs(1)));
        assert!(!timers.take_due(Timer::VassalGone, start));
        assert!(timers.take_due(Timer::VassalGone, start + Duration::from_secs(1)));
        assert!(!timers.take_due(Timer::VassalGone, start + Duration::from_secs(9)));
        assert_eq!(timers.next(), Some(start + Duration::from_secs(2)));
        timers.set(Timer::VassalGone, start);
        timers.clear(Timer::Reconnect);
        assert_eq!(timers.next(), Some(start));
        timers.clear_all();
        assert_eq!(timers.next(), None);
    }
}
