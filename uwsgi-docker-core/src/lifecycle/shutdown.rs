//! Stopping: whatever exists is cleaned up, in order, within a bound that does not
//! depend on the daemon answering.
use std::time::Instant;

use super::errors::BridgeError;
use super::events::Event;
use super::instance::Container;
use super::interface::{Action, Outcome};
use super::requests::ApiRequest;
use super::{Bridge, Step};

/// The wait status of a container whose init died of SIGKILL (128 + 9).
const SIGKILL_STATUS: i64 = 137;

/// The cleanup steps, in the order they are taken; each at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum CleanupStep {
    /// After a create whose answer was lost: did it make our container?
    InspectCreated,
    /// The container exited by SIGKILL by itself: was it the OOM killer?
    InspectExit,
    Stop,
    Remove,
}

const CLEANUP_STEPS: [CleanupStep; 4] = [
    CleanupStep::InspectCreated,
    CleanupStep::InspectExit,
    CleanupStep::Stop,
    CleanupStep::Remove,
];

/// A shutdown in progress.
#[derive(Debug)]
pub(super) struct Shutdown {
    /// How the vassal ends (the first reason to stop wins).
    outcome: Outcome,
    /// The last cleanup step sent.
    sent: Option<CleanupStep>,
    /// When the stop request must be answered by: the stop timeout and the grace,
    /// counted from the start of the shutdown.
    stop_by: Instant,
    /// No request is waited on past this ([`Bridge::shutdown_bound`]).
    bound_by: Instant,
}

impl Bridge {
    /// Fails the vassal: says why, then cleans up everything that exists. Once stopping,
    /// the first outcome stands and nothing more is said.
    pub(super) fn fail(&mut self, error: BridgeError, now: Instant) {
        if !self.is_stopping() {
            self.out.event(Event::Failed(error.clone()));
        }
        self.stop(Outcome::Failed(error), now);
    }

    /// Starts the shutdown, or moves it on.
    pub(super) fn stop(&mut self, outcome: Outcome, now: Instant) {
        if matches!(self.step, Step::Exited(_)) {
            return;
        }
        if !self.is_stopping() {
            self.timers.clear_all();
            let grace = self.config.stop_grace;
            self.step = Step::Stopping(Shutdown {
                outcome,
                sent: None,
                stop_by: now + self.stop_wait() + grace,
                bound_by: now + self.shutdown_bound(),
            });
            // The launch (if any) goes no further; streams not yet armed no longer
            // matter: nothing waits for them now.
            self.current.halt();
            self.current.instance.forget_deadlines();
            // What is in flight gets the grace, no more.
            self.current.requests.cap_deadline(now + grace);
            // A rollover's other container is removed beside ours, within the same bound.
            let bound_by = now + self.shutdown_bound();
            self.abandon_rollover_for_shutdown(now + grace, bound_by, now);
        }
        // Also when already stopping: the input that brought us here (a failed request,
        // say) may have freed the connection for the next cleanup step.
        self.advance(now);
    }

    /// Sends the next cleanup request, or exits when there is none.
    pub(super) fn advance_shutdown(&mut self, now: Instant) {
        if !self.current.instance.proxy.close(&mut self.out) {
            // The socket may be bound by now; its answer tells us whether to unlink it.
            return;
        }
        let Step::Stopping(shutdown) = &self.step else {
            return;
        };
        let next = CLEANUP_STEPS
            .into_iter()
            .filter(|step| shutdown.sent.is_none_or(|sent| *step > sent))
            .find(|step| self.cleanup_applies(*step, &shutdown.outcome));
        let (Some(step), Some(api)) = (next, self.api) else {
            return self.finish();
        };
        let (stop_by, bound_by) = (shutdown.stop_by, shutdown.bound_by);
        let grace_by = now + self.config.stop_grace;
        let mut bytes = Vec::new();
        let (request, deadline) = match (step, self.current.instance.container.id()) {
            (CleanupStep::InspectCreated, _) => {
                api.inspect(&self.config.plan.container_name, &mut bytes);
                (ApiRequest::InspectCreated, grace_by)
            }
            (CleanupStep::InspectExit, Some(id)) => {
                api.inspect(id, &mut bytes);
                (ApiRequest::InspectExit, grace_by)
            }
            (CleanupStep::Stop, Some(id)) => {
                api.stop(id, self.config.plan.spec.stop_timeout_secs(), &mut bytes);
                (ApiRequest::Stop, stop_by)
            }
            (CleanupStep::Remove, Some(id)) => {
                api.remove(id, &mut bytes);
                (ApiRequest::Remove, grace_by)
            }
            (_, None) => return self.finish(),
        };
        if let Step::Stopping(shutdown) = &mut self.step {
            shutdown.sent = Some(step);
        }
        let deadline = deadline.min(bound_by);
        self.current
            .requests
            .send(&mut self.out, request, bytes, deadline, now);
    }

    fn cleanup_applies(&self, step: CleanupStep, outcome: &Outcome) -> bool {
        let exists = self.current.instance.container.id().is_some();
        match step {
            CleanupStep::InspectCreated => self.current.instance.container == Container::Unknown,
            // Killed by SIGKILL, not by us: the kernel's OOM killer? (AutoRemove may beat us
            // to it; then the inspect answers 404 and the status is all there is.)
            CleanupStep::InspectExit => {
                exists && matches!(outcome, Outcome::ContainerExited(SIGKILL_STATUS))
            }
            // A daemon that left a request unanswered gets no graceful stop: remove by force.
            CleanupStep::Stop => {
                matches!(self.current.instance.container, Container::Started(_))
                    && !self.current.requests.daemon_unresponsive()
            }
            CleanupStep::Remove => exists,
        }
    }

    /// Everything is cleaned up: close the remaining connections and exit.
    pub(super) fn finish(&mut self) {
        if self.rollover.is_some() {
            // Its container is still being removed; its end calls this again.
            return;
        }
        self.timers.clear_all();
        self.current.requests.close(&mut self.out);
        if let Some(logs) = self.current.instance.logs.take() {
            self.out.push(Action::DockerClose(logs.conn()));
        }
        if let Some(wait) = self.current.instance.exit_watch.take() {
            self.out.push(Action::DockerClose(wait.conn()));
        }
        let outcome = match std::mem::replace(&mut self.step, Step::Exited(Outcome::Stopped)) {
            Step::Stopping(shutdown) => shutdown.outcome,
            other => {
                // Only a shutdown finishes; keep whatever state this was.
                self.step = other;
                return;
            }
        };
        self.out.push(Action::Exit(outcome.exit_code()));
        self.step = Step::Exited(outcome);
    }
}
