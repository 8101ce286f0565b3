//! Stopping: whatever exists is cleaned up, in order, within a bound that does not
//! depend on the daemon answering.
use std::time::Instant;

use super::cleanup::Cleanup;
use super::errors::BridgeError;
use super::events::Event;
use super::exit_watch::ExitWatch;
use super::instance::Container;
use super::interface::{Action, Outcome};
use super::requests::ApiRequest;
use super::timers::Timer;
use super::{Bridge, Step};
use crate::http_reader::Response;

/// The wait status of a container whose init died of SIGKILL (128 + 9).
const SIGKILL_STATUS: i64 = 137;

/// A shutdown in progress.
#[derive(Debug)]
pub(super) struct Shutdown {
    /// How the vassal ends (the first reason to stop wins).
    outcome: Outcome,
    /// The current container's cleanup: the stop request must be answered within the
    /// stop timeout and the grace, counted from the start of the shutdown; nothing is
    /// waited on past [`Bridge::shutdown_bound`].
    cleanup: Cleanup,
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
        self.stop_holding(outcome, false, now);
    }

    /// The Emperor's stop byte went to the vassal, which shuts down by itself (uWSGI: as
    /// on the stop signal, or gracefully on byte 2): its exit is awaited for its stop
    /// timeout before the daemon is asked to stop the container, which then kills it at
    /// once. The same bound as a stop request's, without one more signal and daemon
    /// request per container (in a storm of removals, a kill through the runtime each).
    pub(super) fn stop_asked_vassal(&mut self, now: Instant) {
        self.stop_holding(Outcome::Stopped, true, now);
    }

    fn stop_holding(&mut self, outcome: Outcome, vassal_asked: bool, now: Instant) {
        if matches!(self.step, Step::Exited(_)) {
            return;
        }
        if !self.is_stopping() {
            self.timers.clear_all();
            let grace = self.config.stop_grace;
            let mut cleanup = Cleanup::remove(grace, now)
                .stopping_by(now + self.stop_wait() + grace)
                .bounded_by(now + self.shutdown_bound());
            // Killed by SIGKILL, not by us: the kernel's OOM killer?
            if matches!(outcome, Outcome::ContainerExited(SIGKILL_STATUS)) {
                cleanup = cleanup.inspecting_exit();
            }
            // Only an exit the wait will report is awaited.
            let instance = &self.current.instance;
            if vassal_asked
                && matches!(instance.container, Container::Started(_))
                && instance
                    .exit_watch
                    .as_ref()
                    .is_some_and(ExitWatch::is_armed)
            {
                let until = now + self.stop_wait();
                cleanup = cleanup.holding_stop_until(until);
                self.timers.set(Timer::StopHeld, until);
            }
            self.step = Step::Stopping(Shutdown { outcome, cleanup });
            // The launch (if any) goes no further; streams not yet armed no longer
            // matter: nothing waits for them now.
            self.current.halt(&mut self.out);
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
        let (Step::Stopping(shutdown), Some(api)) = (&mut self.step, self.api) else {
            return self.finish();
        };
        let plan = &self.config.plan;
        let out = &mut self.out;
        if !self
            .current
            .send_next_cleanup(&mut shutdown.cleanup, api, plan, out, now)
        {
            self.finish();
        }
    }

    /// The answer to a cleanup request of the current container.
    pub(super) fn on_shutdown_answer(&mut self, request: ApiRequest, response: &Response) {
        if let Step::Stopping(shutdown) = &mut self.step {
            let (plan, out) = (&self.config.plan, &mut self.out);
            self.current
                .on_cleanup_answer(&mut shutdown.cleanup, request, response, plan, out);
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
