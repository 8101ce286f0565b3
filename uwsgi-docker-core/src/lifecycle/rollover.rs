//! Zero-downtime rollover: a changed `[emperor]` section of a vassal whose listening socket
//! the bridge holds (`docker-socket`, or the Emperor's on-demand socket) brings up a second
//! container beside the running one, on the same socket, instead of recreating.
//!
//! Plan (the runtime applies the operator policy, [`Action::PlanRollover`]) → fresh
//! relayed channels ([`Action::PrepareChannels`]) → the start-up's own [`Launch`], under
//! the sibling name ([`crate::plan::sibling_container_name`]) → the new vassal's
//! `Accepting` byte, within the handoff deadline → when the vassal sets a health check
//! ([`crate::health::gates_rollover`]), the daemon's word that the new container is
//! healthy: it is inspected every [`crate::health::poll_every`] until then, and an
//! unhealthy one, or one not healthy within [`crate::health::verdict_within`], is
//! abandoned → the switch: the Emperor's bytes go to the new vassal, the old one gets the
//! graceful stop byte on its own channel → retire: once the old container exited (or was
//! stopped after its stop timeout) it is removed, as the shutdown removes a container. The
//! Emperor sees one vassal throughout.
//!
//! If the new container fails at any step, it is removed, the log says why
//! ([`Notice::RolloverAbandoned`]) and the old one serves on. One that failed the health
//! gate already takes requests from the shared socket: it gets the graceful stop byte
//! first, as the old one does at the switch, so that it finishes what it accepted. A config
//! that comes during a rollover is judged again when it is done. A stop removes the other container beside
//! the current one, within the shutdown bound.
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::channels::ChannelRelay;
use super::cleanup::Cleanup;
use super::errors::{BridgeError, DaemonFault, HostError, VassalError};
use super::events::Notice;
use super::instance::StreamEvent;
use super::interface::{Action, Generation, Outcome};
use super::launch::{Launch, Progress};
use super::outbox::Outbox;
use super::requests::{ApiRequest, Reply};
use super::timers::Timer;
use super::{short_id, Bridge, Owner};
use crate::docker::{self, DaemonError};
use crate::emperor::{encode_config, EmperorMessage, VassalMessage};
use crate::health::{self, HealthReport, HealthStatus};
use crate::http_reader::Response;
use crate::plan::{sibling_container_name, ContainerPlan};
use crate::spec::VassalSpec;

/// A rollover in progress: the other container (the new one until the switch, the old one
/// after it), with its own request connection.
#[derive(Debug)]
pub(super) struct Rollover {
    stage: Stage,
    pub(super) other: Launch,
    /// The config rolled to (pushed to the new vassal at its handoff).
    pub(super) config: Vec<u8>,
    /// Its `[emperor]` section as asked for; the old one's after the switch.
    pub(super) target: VassalSpec,
    /// The new container's plan once the runtime made it; the old one's after the switch.
    pub(super) plan: Option<ContainerPlan>,
    /// The newest config that came during the rollover, judged again after it.
    pub(super) pending: Option<Vec<u8>>,
}

#[derive(Debug)]
enum Stage {
    Planning,
    PreparingChannels,
    /// The new container's [`Launch`] runs, up to its handoff.
    Launching,
    /// Handed off: waiting for the new vassal's `Accepting` byte.
    AwaitingAccepting,
    /// It accepts, and its vassal sets a health check: waiting for the daemon to say it
    /// is healthy (the deadline is the rollover timer's).
    AwaitingHealth(HealthWait),
    /// The other vassal has the graceful stop byte, and its exit is waited for as long as
    /// its stop timeout and the grace: the old one after the switch, or a new one that
    /// serves requests but failed its health check (it finishes what it accepted).
    Retiring(Leaving, Duration),
    /// The other container is removed (the old one stopped first if it did not exit in
    /// time), as the shutdown removes the current one.
    Removing(Leaving, Cleanup),
}

/// The wait for the new container's health.
#[derive(Debug)]
struct HealthWait {
    /// When to inspect it next; `None` while an inspect is in flight.
    ask_at: Option<Instant>,
    every: Duration,
    within: Duration,
    /// The last report, for the message if time runs out.
    last: Option<HealthReport>,
}

/// Why the other container is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaving {
    /// The old one, after the switch.
    Retired,
    /// The new one, which failed (or the vassal stops).
    Abandoned,
}

impl Stage {
    /// Before the switch: a failure abandons the rollover.
    fn is_bringing_up(&self) -> bool {
        matches!(
            self,
            Stage::Planning
                | Stage::PreparingChannels
                | Stage::Launching
                | Stage::AwaitingAccepting
                | Stage::AwaitingHealth(_)
        )
    }
}

impl Rollover {
    /// When the new container's health is to be asked for next.
    pub(super) fn health_poll_at(&self) -> Option<Instant> {
        match &self.stage {
            Stage::AwaitingHealth(wait) => wait.ask_at,
            _ => None,
        }
    }
}

impl Bridge {
    // ---- starting one ----

    pub(super) fn start_rollover(&mut self, config: &[u8], target: VassalSpec) {
        let generation = Generation(self.current.generation().0.wrapping_add(1));
        self.out.notice(Notice::RollingOver {
            image: target.image.clone(),
        });
        self.rollover = Some(Rollover {
            stage: Stage::Planning,
            other: Launch::new(generation, false),
            config: config.to_vec(),
            target,
            plan: None,
            pending: None,
        });
        self.out.push(Action::PlanRollover {
            config: config.to_vec(),
        });
    }

    pub(super) fn on_rollover_plan(
        &mut self,
        planned: Result<(ContainerPlan, VassalSpec), BridgeError>,
        now: Instant,
    ) {
        let current_plan = &self.config.plan;
        let Some(rollover) = self
            .rollover
            .as_mut()
            .filter(|r| matches!(r.stage, Stage::Planning))
        else {
            return;
        };
        let (mut plan, requested) = match planned {
            Ok(planned) => planned,
            Err(e) => return self.rollover_failed(e, now),
        };
        let beside = plan.passes_socket
            && plan.spec.socket == current_plan.spec.socket
            && plan.spec.ports.is_empty();
        if !beside {
            // The policy made it a container that cannot run beside this one.
            self.rollover = None;
            self.out.notice(Notice::Recreating);
            return self.stop(Outcome::Recreate, now);
        }
        plan.container_name = sibling_container_name(
            plan.name_prefix.as_deref(),
            &plan.vassal_name,
            &current_plan.container_name,
        );
        rollover.target = requested;
        rollover.plan = Some(plan);
        rollover.stage = Stage::PreparingChannels;
        let generation = rollover.other.generation();
        self.out.push(Action::PrepareChannels(generation));
    }

    pub(super) fn on_channels_prepared(
        &mut self,
        generation: Generation,
        result: Result<(), io::Error>,
        now: Instant,
    ) {
        let Some(rollover) = self.rollover.as_mut().filter(|r| {
            matches!(r.stage, Stage::PreparingChannels) && r.other.generation() == generation
        }) else {
            return;
        };
        if let Err(e) = result {
            let source = Arc::new(e);
            return self.rollover_failed(HostError::Channels { cause: source }.into(), now);
        }
        rollover.stage = Stage::Launching;
        if let Some((launch, mut env)) = self.launch_env(Owner::Rollover) {
            launch.begin(&mut env);
        }
    }

    /// What an input to the new container's launch came to.
    pub(super) fn on_rollover_progress(&mut self, progress: Progress, now: Instant) {
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        match progress {
            Progress::Pending => {}
            Progress::HandedOff => {
                rollover.stage = Stage::AwaitingAccepting;
                self.timers
                    .set(Timer::Rollover, now + self.config.handoff_timeout);
                self.out.debug(|| {
                    "handed the new vassal its channels; waiting for it to accept".into()
                });
            }
            // Ignored once it is being removed; its removal may have waited for this input.
            Progress::Failed(error) => self.rollover_failed(error, now),
        }
        self.advance_rollover(now);
    }

    // ---- the other vassal's channel ----

    /// Bytes from a generation that is not the current one: the new vassal before the
    /// switch (its `Accepting` byte switches; nothing reaches the Emperor), or the old one
    /// after it (ignored: it is on its way out).
    pub(super) fn on_other_vassal_control(
        &mut self,
        generation: Generation,
        data: &[u8],
        now: Instant,
    ) {
        let Some(rollover) = self
            .rollover
            .as_mut()
            .filter(|r| r.other.generation() == generation && r.stage.is_bringing_up())
        else {
            return;
        };
        for (at, &byte) in data.iter().enumerate() {
            match VassalMessage::from_byte(byte) {
                VassalMessage::Accepting if matches!(rollover.stage, Stage::AwaitingAccepting) => {
                    let gated = rollover.plan.as_ref().map(|p| &p.spec.health);
                    if let Some(spec) = gated.filter(|spec| health::gates_rollover(spec)) {
                        let within = health::verdict_within(spec);
                        rollover.stage = Stage::AwaitingHealth(HealthWait {
                            ask_at: Some(now),
                            every: health::poll_every(spec),
                            within,
                            last: None,
                        });
                        self.timers.set(Timer::Rollover, now + within);
                        self.out.notice(Notice::AwaitingHealth { within });
                        // What follows is not relayed: the Emperor hears the old vassal.
                        return self.advance_rollover(now);
                    }
                    self.switch(now);
                    // Whatever followed is the current vassal's, for the Emperor.
                    let rest = data.get(at + 1..).unwrap_or_default();
                    if !rest.is_empty()
                        && ChannelRelay::relay_vassal_control(rest, &self.config, &mut self.out)
                    {
                        self.stop(Outcome::Stopped, now);
                    }
                    return;
                }
                VassalMessage::StopMe => {
                    return self.rollover_failed(VassalError::LeftBeforeAccepting.into(), now)
                }
                VassalMessage::ConfigRequest => {
                    let mut packet = Vec::new();
                    if encode_config(&rollover.config, &mut packet).is_ok() {
                        self.out.push(Action::ToVassalConfig(generation, packet));
                    }
                }
                _ => self
                    .out
                    .debug(|| format!("byte {byte} from the new vassal, not relayed")),
            }
        }
    }

    pub(super) fn on_other_vassal_control_eof(&mut self, generation: Generation, now: Instant) {
        let handed_off = self.rollover.as_ref().is_some_and(|r| {
            r.other.generation() == generation
                && matches!(r.stage, Stage::AwaitingAccepting | Stage::AwaitingHealth(_))
        });
        if handed_off {
            self.rollover_failed(VassalError::LeftBeforeAccepting.into(), now);
        }
    }

    /// The daemon's answer about the new container's health: healthy (or no check at
    /// all) switches, unhealthy abandons the rollover, starting asks again later.
    fn on_health_report(&mut self, response: &Response, now: Instant) {
        let Some(Rollover {
            stage: Stage::AwaitingHealth(wait),
            ..
        }) = self.rollover.as_mut()
        else {
            return;
        };
        let report = docker::parse_empty(response).and_then(|_| {
            health::parse_inspect_health(&response.body)
                .ok_or_else(|| DaemonError::Malformed("inspect without a state".into()))
        });
        let report = match report {
            Ok(report) => report,
            Err(source) => {
                let action = "cannot inspect the new container's health";
                let fault = DaemonFault::Refused {
                    action,
                    cause: source,
                };
                return self.health_failed(fault.into(), now);
            }
        };
        if health::switch_allowed(&report) {
            let status = match report.status {
                HealthStatus::Healthy => "healthy",
                _ => "reported without a health check",
            };
            self.out.debug(|| format!("the new container is {status}"));
            return self.switch(now);
        }
        if report.status == HealthStatus::Unhealthy {
            let detail = report.describe();
            return self.health_failed(VassalError::UnhealthyBeforeSwitch { detail }.into(), now);
        }
        wait.ask_at = Some(now + wait.every);
        wait.last = Some(report);
    }

    /// The new vassal accepts requests (and its container is healthy, if it has a check):
    /// it becomes the current one, and the old one is stopped gracefully on its own
    /// channel.
    fn switch(&mut self, now: Instant) {
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        let Some(plan) = rollover.plan.as_mut() else {
            return;
        };
        self.timers.clear(Timer::Rollover);
        std::mem::swap(&mut self.current, &mut rollover.other);
        std::mem::swap(&mut self.config.plan, plan);
        std::mem::swap(&mut self.config.requested_spec, &mut rollover.target);
        self.config.config = rollover.config.clone();
        let from = rollover.other.instance.container.id();
        let to = self.current.instance.container.id();
        let (from, to) = (from.map_or("?", short_id), to.map_or("?", short_id));
        self.out.notice(Notice::RolledOver {
            from: from.to_owned(),
            to: to.to_owned(),
        });
        if let (Some(path), Some(id)) = (
            &self.config.plan.spec.cidfile,
            self.current.instance.container.id(),
        ) {
            let (path, id) = (path.clone(), id.to_owned());
            self.out.push(Action::WriteCidFile { path, id });
        }
        self.stop_other_gracefully(Leaving::Retired, now);
    }

    /// The other vassal gets the graceful stop byte on its own channel; its exit is waited
    /// for as long as its stop timeout and the grace, then it is stopped and removed.
    fn stop_other_gracefully(&mut self, leaving: Leaving, now: Instant) {
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        // Its own plan: the old one's after the switch, the new one's before it.
        let stop_timeout = rollover.plan.as_ref().map(|p| p.spec.stop_timeout_secs());
        let graceful_stop = vec![EmperorMessage::GracefulStop.to_byte()];
        let other = rollover.other.generation();
        self.out.push(Action::ToVassalControl(other, graceful_stop));
        let stop_timeout = Duration::from_secs(u64::from(stop_timeout.unwrap_or_default()));
        let wait = stop_timeout + self.config.stop_grace;
        rollover.stage = Stage::Retiring(leaving, wait);
        self.timers.set(Timer::Rollover, now + wait);
    }

    // ---- requests ----

    /// Issues the next request the rollover calls for, if its connection is free: its
    /// launch's, or the other container's cleanup.
    pub(super) fn advance_rollover(&mut self, now: Instant) {
        let Some(api) = self.api else { return };
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        if !rollover.other.requests.is_idle() {
            return;
        }
        let done = match (&mut rollover.stage, rollover.plan.as_ref()) {
            (Stage::Launching, _) => {
                if let Some((launch, mut env)) = self.launch_env(Owner::Rollover) {
                    launch.advance(&mut env, now);
                }
                return;
            }
            (Stage::AwaitingHealth(wait), _) => {
                let (Some(at), Some(id)) = (wait.ask_at, rollover.other.instance.container.id())
                else {
                    return;
                };
                if now >= at {
                    let mut bytes = Vec::new();
                    api.inspect(id, &mut bytes);
                    let deadline = now + self.config.request_timeout;
                    let request = ApiRequest::InspectHealth;
                    let requests = &mut rollover.other.requests;
                    requests.send(&mut self.out, request, bytes, deadline, now);
                    wait.ask_at = None;
                }
                return;
            }
            (Stage::Removing(_, cleanup), Some(plan)) => {
                let out = &mut self.out;
                !rollover
                    .other
                    .send_next_cleanup(cleanup, api, plan, out, now)
            }
            // Abandoned before it was planned: nothing exists.
            (Stage::Removing(..), None) => true,
            _ => false,
        };
        if done {
            self.end_rollover(now);
        }
    }

    /// A reply to the health inspect or to the other container's cleanup (the launch's go
    /// to the launch).
    pub(super) fn on_rollover_reply(&mut self, reply: Reply, now: Instant) {
        match reply {
            Reply::Idle(fault) => self.rollover_failed(fault.into(), now),
            // Once the rollover is abandoned, neither says anything more.
            Reply::Answer(ApiRequest::InspectHealth, response) => {
                self.on_health_report(&response, now)
            }
            Reply::Failed(ApiRequest::InspectHealth, fault) => {
                self.health_failed(fault.into(), now)
            }
            // The other container's cleanup.
            reply => {
                let rollover = self.rollover.as_mut();
                if let Some(Rollover {
                    stage: Stage::Removing(_, cleanup),
                    plan: Some(plan),
                    other,
                    ..
                }) = rollover
                {
                    other.on_cleanup_reply(cleanup, reply, plan, &mut self.out);
                }
            }
        }
        self.advance_rollover(now);
    }

    // ---- streams ----

    /// What the other container's streams say: before the switch, its start follows once
    /// they are armed and anything else abandons the rollover; after it, its exit ends
    /// its retirement.
    pub(super) fn on_rollover_stream_event(&mut self, event: StreamEvent, now: Instant) {
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        match event {
            // The new container's exit is watched on its wait alone.
            StreamEvent::Nothing | StreamEvent::OutputEnded => {}
            StreamEvent::Armed => {
                rollover.other.on_armed();
                self.advance_rollover(now);
            }
            StreamEvent::Exited(status) if rollover.stage.is_bringing_up() => {
                let error = VassalError::ExitedBeforeAccepting { status };
                self.rollover_failed(error.into(), now);
            }
            StreamEvent::Exited(_) => {
                if let Stage::Retiring(leaving, _) = rollover.stage {
                    self.timers.clear(Timer::Rollover);
                    let cleanup = Cleanup::remove(self.config.request_timeout, now);
                    rollover.stage = Stage::Removing(leaving, cleanup);
                }
                self.advance_rollover(now);
            }
            StreamEvent::Failed(fault) => self.rollover_failed(fault.into(), now),
        }
    }

    // ---- deadlines ----

    pub(super) fn on_rollover_timer(&mut self, now: Instant) {
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        let within = self.config.handoff_timeout;
        match rollover.stage {
            Stage::AwaitingAccepting => {
                self.rollover_failed(VassalError::NeverAccepting { within }.into(), now)
            }
            Stage::AwaitingHealth(ref wait) => {
                let detail = wait.last.as_ref().map_or_else(
                    || "the daemon has not answered".to_owned(),
                    |r| format!("{}; {}", r.status.as_str(), r.describe()),
                );
                let within = wait.within;
                let error = VassalError::NeverHealthy { within, detail };
                self.health_failed(error.into(), now)
            }
            Stage::Retiring(leaving, wait) => {
                self.out
                    .debug(|| "the other container did not exit in time; stopping it".into());
                let cleanup =
                    Cleanup::remove(self.config.request_timeout, now).stopping_by(now + wait);
                rollover.stage = Stage::Removing(leaving, cleanup);
                self.advance_rollover(now);
            }
            _ => {}
        }
    }

    pub(super) fn on_overdue_rollover(&mut self, now: Instant) {
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        let overdue = rollover.other.requests.take_overdue(&mut self.out, now);
        if let Reply::Failed(..) = overdue {
            return self.on_reply(Owner::Rollover, overdue, now);
        }
        let overdue = rollover
            .other
            .instance
            .take_overdue_stream(now, &mut self.out);
        if let Some(fault) = overdue {
            self.rollover_failed(fault.into(), now);
        }
    }

    // ---- ending one ----

    /// The new container failed before the switch: remove it, close its proxy, say why;
    /// the current container serves on. After the switch nothing is abandoned: a stream
    /// of the old container that fails leaves its removal to the stop timer.
    pub(super) fn rollover_failed(&mut self, error: BridgeError, now: Instant) {
        let Some(rollover) = self.rollover.as_mut().filter(|r| r.stage.is_bringing_up()) else {
            return;
        };
        self.out.notice(Notice::RolloverAbandoned(Box::new(error)));
        self.timers.clear(Timer::Rollover);
        let cleanup = Cleanup::remove(self.config.request_timeout, now);
        remove_other(rollover, Leaving::Abandoned, cleanup, &mut self.out);
        self.advance_rollover(now);
    }

    /// The new vassal accepts requests (on the shared socket) but its container failed the
    /// health gate: say why, and stop it gracefully, so that it finishes the requests it
    /// took; then it is removed. The current container serves on.
    fn health_failed(&mut self, error: BridgeError, now: Instant) {
        let waiting = self
            .rollover
            .as_ref()
            .is_some_and(|r| matches!(r.stage, Stage::AwaitingHealth(_)));
        if !waiting {
            return self.rollover_failed(error, now);
        }
        self.out.notice(Notice::RolloverAbandoned(Box::new(error)));
        self.stop_other_gracefully(Leaving::Abandoned, now);
    }

    /// The vassal stops: the other container is removed beside the current one, each
    /// request capped at `grace_by` and all of it at `bound_by`.
    pub(super) fn abandon_rollover_for_shutdown(
        &mut self,
        grace_by: Instant,
        bound_by: Instant,
        now: Instant,
    ) {
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        rollover.pending = None;
        rollover.other.requests.cap_deadline(grace_by);
        let leaving = match &mut rollover.stage {
            Stage::Removing(_, cleanup) => {
                *cleanup = cleanup.clone().bounded_by(bound_by);
                None
            }
            stage if stage.is_bringing_up() => Some(Leaving::Abandoned),
            Stage::Retiring(leaving, _) => Some(*leaving),
            _ => Some(Leaving::Retired),
        };
        if let Some(leaving) = leaving {
            let cleanup = Cleanup::remove(self.config.request_timeout, now).bounded_by(bound_by);
            remove_other(rollover, leaving, cleanup, &mut self.out);
        }
        self.advance_rollover(now);
    }

    /// The other container is gone (or left for `gc`): drop its channels, and judge a
    /// config that came meanwhile.
    fn end_rollover(&mut self, now: Instant) {
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        if !rollover.other.instance.proxy.close(&mut self.out) {
            // The bind is unanswered: its answer closes it, then this comes again.
            return;
        }
        rollover.other.instance.close_streams(&mut self.out);
        rollover.other.requests.close(&mut self.out);
        let Some(rollover) = self.rollover.take() else {
            return;
        };
        self.out
            .push(Action::DropChannels(rollover.other.generation()));
        if let (Stage::Removing(Leaving::Retired, Cleanup { removed: true, .. }), Some(id)) =
            (&rollover.stage, rollover.other.instance.container.id())
        {
            self.out
                .notice(Notice::RetiredRemoved(short_id(id).to_owned()));
        }
        self.timers.clear(Timer::Rollover);
        if self.is_stopping() {
            // The shutdown waited for us.
            return self.advance(now);
        }
        if let Some(config) = rollover.pending {
            self.on_config_after_rollover(&config, now);
        }
    }
}

/// The other container goes: its launch (if any) stops, its streams and proxy close, and
/// it is removed (after a lost create answer, only once the name shows it is ours).
fn remove_other(rollover: &mut Rollover, leaving: Leaving, cleanup: Cleanup, out: &mut Outbox) {
    rollover.other.halt(out);
    rollover.other.instance.close_streams(out);
    // While a bind is unanswered, its answer closes it.
    rollover.other.instance.proxy.close(out);
    rollover.stage = Stage::Removing(leaving, cleanup);
}
