//! Removing one container, in order, each step at most once: after a lost create answer,
//! whether the name holds ours; after a SIGKILL exit, whether the OOM killer did it; a
//! graceful stop; the removal. The vassal's shutdown and a rollover's retired or abandoned
//! container go the same path.
use std::time::{Duration, Instant};

use super::errors::{BridgeError, DaemonFault};
use super::events::Notice;
use super::instance::Container;
use super::launch::{bridge_label, is_removal_in_progress, Launch};
use super::outbox::Outbox;
use super::requests::{ApiRequest, Reply};
use super::short_id;
use crate::docker::{self, Api};
use crate::http_reader::Response;
use crate::plan::ContainerPlan;

/// The cleanup steps, in the order they are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CleanupStep {
    InspectCreated,
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

/// A container's cleanup in progress.
#[derive(Debug, Clone)]
pub(super) struct Cleanup {
    /// The last step sent.
    sent: Option<CleanupStep>,
    /// A running container is stopped gracefully first (else the removal forces it).
    stops: bool,
    /// A SIGKILL exit is inspected for the OOM killer.
    inspects_exit: bool,
    /// When the stop request must be answered by.
    stop_by: Instant,
    /// The vassal was asked to stop on its own channel: the stop request waits until then
    /// for its exit, and then kills at once (the vassal had its stop timeout).
    stop_held_until: Option<Instant>,
    /// How long each other request may take.
    per_request: Duration,
    /// No request is waited on past this (once the vassal stops).
    pub(super) bound_by: Option<Instant>,
    /// The removal succeeded (or the container was already gone).
    pub(super) removed: bool,
}

impl Cleanup {
    /// Removes the container by force, each request given `per_request`.
    pub(super) fn remove(per_request: Duration, now: Instant) -> Cleanup {
        Cleanup {
            sent: None,
            stops: false,
            inspects_exit: false,
            stop_by: now,
            stop_held_until: None,
            per_request,
            bound_by: None,
            removed: false,
        }
    }

    /// Stops the container gracefully first, answered by `stop_by`.
    pub(super) fn stopping_by(mut self, stop_by: Instant) -> Cleanup {
        self.stops = true;
        self.stop_by = stop_by;
        self
    }

    /// Holds the stop request until `until`, for the vassal's own exit.
    pub(super) fn holding_stop_until(mut self, until: Instant) -> Cleanup {
        self.stop_held_until = Some(until);
        self
    }

    /// Waits on nothing past `bound_by`.
    pub(super) fn bounded_by(mut self, bound_by: Instant) -> Cleanup {
        self.bound_by = Some(bound_by);
        self
    }

    /// Inspects a SIGKILL exit for the OOM killer before the removal.
    pub(super) fn inspecting_exit(mut self) -> Cleanup {
        self.inspects_exit = true;
        self
    }
}

impl Launch {
    fn cleanup_applies(&self, step: CleanupStep, cleanup: &Cleanup) -> bool {
        let container = &self.instance.container;
        let exists = container.id().is_some();
        match step {
            CleanupStep::InspectCreated => *container == Container::Unknown,
            // AutoRemove may beat us to it; then the inspect answers 404.
            CleanupStep::InspectExit => exists && cleanup.inspects_exit,
            // A daemon that left a request unanswered gets no graceful stop: remove by force.
            CleanupStep::Stop => {
                cleanup.stops
                    && matches!(container, Container::Started(_))
                    && !self.requests.daemon_unresponsive()
            }
            CleanupStep::Remove => exists,
        }
    }

    /// Sends the next cleanup request; `false` when nothing is left to do. A held stop
    /// sends nothing before its time and returns `true`: the exit or the timer moves on.
    pub(super) fn send_next_cleanup(
        &mut self,
        cleanup: &mut Cleanup,
        api: Api,
        plan: &ContainerPlan,
        out: &mut Outbox,
        now: Instant,
    ) -> bool {
        let next = CLEANUP_STEPS
            .into_iter()
            .filter(|step| cleanup.sent.is_none_or(|sent| *step > sent))
            .find(|step| self.cleanup_applies(*step, cleanup));
        let Some(step) = next else {
            return false;
        };
        let held_until = cleanup.stop_held_until;
        if step == CleanupStep::Stop && held_until.is_some_and(|until| now < until) {
            return true;
        }
        let mut bytes = Vec::new();
        let (request, deadline) = match (step, self.instance.container.id()) {
            (CleanupStep::InspectCreated, _) => {
                api.inspect(&plan.container_name, &mut bytes);
                (ApiRequest::InspectCreated, now + cleanup.per_request)
            }
            (CleanupStep::InspectExit, Some(id)) => {
                api.inspect(id, &mut bytes);
                (ApiRequest::InspectExit, now + cleanup.per_request)
            }
            (CleanupStep::Stop, Some(id)) => {
                let timeout = match held_until {
                    Some(_) => 0,
                    None => plan.spec.stop_timeout_secs(),
                };
                api.stop(id, timeout, &mut bytes);
                (ApiRequest::Stop, cleanup.stop_by)
            }
            (CleanupStep::Remove, Some(id)) => {
                api.remove(id, &mut bytes);
                (ApiRequest::Remove, now + cleanup.per_request)
            }
            (_, None) => return false,
        };
        cleanup.sent = Some(step);
        out.debug(|| format!("cleanup: {request:?} sent"));
        let deadline = cleanup
            .bound_by
            .map_or(deadline, |bound| deadline.min(bound));
        self.requests.send(out, request, bytes, deadline, now);
        true
    }

    /// The reply to a cleanup request.
    pub(super) fn on_cleanup_reply(
        &mut self,
        cleanup: &mut Cleanup,
        reply: Reply,
        plan: &ContainerPlan,
        out: &mut Outbox,
    ) {
        match reply {
            Reply::Answer(request, response) => {
                self.on_cleanup_answer(cleanup, request, &response, plan, out)
            }
            Reply::Failed(request, fault) => self.on_cleanup_failed(request, fault, plan, out),
            Reply::Nothing | Reply::Body(..) | Reply::Idle(_) => {}
        }
    }

    /// The answer to a cleanup request. What fails is said, and the cleanup goes on.
    pub(super) fn on_cleanup_answer(
        &mut self,
        cleanup: &mut Cleanup,
        request: ApiRequest,
        response: &Response,
        plan: &ContainerPlan,
        out: &mut Outbox,
    ) {
        out.debug(|| format!("cleanup: {request:?} answered {}", response.status));
        let inspect_refused = |source| DaemonFault::Refused {
            action: "cannot inspect the container",
            cause: source,
        };
        match request {
            ApiRequest::InspectCreated => {
                let name = plan.container_name.clone();
                self.instance.container = Container::None;
                match docker::parse_inspect(response) {
                    Ok(info) if made_by(plan, &info.labels) => {
                        self.instance.container = Container::Created(info.id);
                    }
                    Ok(info) => {
                        let holder = short_id(&info.id).to_owned();
                        out.notice(Notice::NotMadeByUs { name, holder });
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(source) => {
                        let reason = Box::new(inspect_refused(source).into());
                        out.notice(Notice::CreatedUnknown { name, reason });
                    }
                }
            }
            ApiRequest::InspectExit => out.notice(match docker::parse_inspect(response) {
                Ok(info) if info.oom_killed => Notice::OomKilled {
                    memory: plan.spec.memory,
                },
                Ok(_) => Notice::KilledNotOom,
                Err(e) if e.is_not_found() => Notice::KilledUninspected(None),
                Err(source) => {
                    let reason = Box::new(inspect_refused(source).into());
                    Notice::KilledUninspected(Some(reason))
                }
            }),
            ApiRequest::Stop => match docker::parse_empty(response) {
                Err(e) if !e.is_not_found() => out.notice(Notice::StopFailed(e)),
                _ => {}
            },
            ApiRequest::Remove => match docker::parse_empty(response) {
                Err(e) if !e.is_not_found() && !is_removal_in_progress(&e) => {
                    out.notice(Notice::RemoveFailed(e))
                }
                _ => cleanup.removed = true,
            },
            _ => {}
        }
    }

    /// A cleanup request failed: said, and the cleanup goes on (the next step reconnects).
    pub(super) fn on_cleanup_failed(
        &mut self,
        request: ApiRequest,
        fault: DaemonFault,
        plan: &ContainerPlan,
        out: &mut Outbox,
    ) {
        match request {
            ApiRequest::InspectExit => {
                let reason = Box::new(BridgeError::from(fault));
                out.notice(Notice::KilledUninspected(Some(reason)));
            }
            ApiRequest::InspectCreated => {
                self.instance.container = Container::None;
                let name = plan.container_name.clone();
                let reason = Box::new(BridgeError::from(fault));
                out.notice(Notice::CreatedUnknown { name, reason });
            }
            _ => out.notice(Notice::CleanupFailed(fault)),
        }
    }
}

/// Labels of a container this very bridge created: ours for this vassal, and our own
/// bridge label.
pub(super) fn made_by(plan: &ContainerPlan, labels: &[(String, String)]) -> bool {
    plan.why_not_ours(labels).is_none()
        && bridge_label(labels).is_some()
        && bridge_label(labels) == bridge_label(&plan.labels)
}
