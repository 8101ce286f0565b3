//! Zero-downtime rollover: a changed `[emperor]` section of a vassal whose listening socket
//! the bridge holds (`docker-socket`, or the Emperor's on-demand socket) brings up a second
//! container beside the running one, on the same socket, instead of recreating.
//!
//! The new container goes the start-up path on its own request connection: plan (the
//! runtime applies the operator policy, [`Action::PlanRollover`]) → fresh relayed channels
//! ([`Action::PrepareChannels`]) → bind the proxy (free again since the first handoff) →
//! create (under the sibling name, [`crate::plan::sibling_container_name`]) → attach and
//! wait → start → inspect → the init's pid namespace → accept → hand off → the new vassal's
//! `Accepting` byte, within the handoff deadline. Then the switch: the Emperor's bytes go
//! to the new vassal and the new vassal's to the Emperor, the old vassal gets the graceful
//! stop byte on its own channel (in-flight requests finish), and once its container has
//! exited (or been stopped after its stop timeout) it is removed. The Emperor sees one
//! vassal throughout.
//!
//! If the new container fails at any step, it is removed, its proxy closed, the log says
//! why ([`Notice::RolloverAbandoned`]) and the old one serves on. A config that comes during
//! a rollover waits: the newest is judged again when the rollover is done, so the vassal
//! ends with the newest settings. A stop removes the other container beside the current
//! one, within the shutdown bound.
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::channels::ChannelRelay;
use super::errors::{BridgeError, DaemonFault, HostError, VassalError};
use super::events::Notice;
use super::instance::{Container, StreamEvent};
use super::interface::{Action, Generation, Outcome};
use super::launch::{is_removal_in_progress, Env, Launch, Progress};
use super::requests::{ApiRequest, Reply};
use super::timers::Timer;
use super::{short_id, Bridge};
use crate::docker;
use crate::emperor::{encode_config, EmperorMessage, VassalMessage};
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
    config: Vec<u8>,
    /// Its `[emperor]` section as asked for; the old one's after the switch.
    pub(super) target: VassalSpec,
    /// The new container's plan once the runtime made it; the old one's after the switch.
    plan: Option<ContainerPlan>,
    /// The newest config that came during the rollover, judged again after it.
    pub(super) pending: Option<Vec<u8>>,
    /// Once the vassal stops: no request of the rollover is waited on past this.
    bound_by: Option<Instant>,
}

#[derive(Debug)]
enum Stage {
    Planning,
    PreparingChannels,
    /// The new container's [`Launch`] runs, up to its handoff.
    Launching,
    /// Handed off: waiting for the new vassal's `Accepting` byte.
    AwaitingAccepting,
    /// Switched: the old vassal has the graceful stop byte; its exit is waited for.
    Retiring,
    /// The old container did not exit in time: stopped through the daemon.
    StoppingOld,
    /// After a lost create answer: is the container that holds the name ours?
    InspectingCreated,
    /// The other container is removed.
    Removing(Leaving),
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
        )
    }
}

impl Rollover {
    /// The earliest deadline of its launch (its request, its streams, its stage).
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.other.deadline()
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
            bound_by: None,
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
            return self.rollover_failed(HostError::Channels { source }.into(), now);
        }
        rollover.stage = Stage::Launching;
        if let Some((launch, mut env)) = self.rollover_launch() {
            launch.begin(&mut env);
        }
    }

    // ---- the new container's launch ----

    /// The rollover's launch and what it needs, once its container is planned.
    fn rollover_launch(&mut self) -> Option<(&mut Launch, Env<'_>)> {
        let rollover = self.rollover.as_mut()?;
        let plan = rollover.plan.as_ref()?;
        let env = Env {
            out: &mut self.out,
            api: &mut self.api,
            plan,
            config: &rollover.config,
            request_timeout: self.config.request_timeout,
            handoff_timeout: self.config.handoff_timeout,
        };
        Some((&mut rollover.other, env))
    }

    /// Feeds one input to the rollover's launch, and goes on with what it came to.
    pub(super) fn drive_rollover_launch(
        &mut self,
        now: Instant,
        input: impl FnOnce(&mut Launch, &mut Env<'_>) -> Progress,
    ) {
        let Some((launch, mut env)) = self.rollover_launch() else {
            return;
        };
        let progress = input(launch, &mut env);
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
            Progress::Failed(error) => return self.rollover_failed(error, now),
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
            r.other.generation() == generation && matches!(r.stage, Stage::AwaitingAccepting)
        });
        if handed_off {
            self.rollover_failed(VassalError::LeftBeforeAccepting.into(), now);
        }
    }

    /// The new vassal accepts requests: it becomes the current one, and the old one is
    /// stopped gracefully on its own channel.
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
        let old_stop_wait = plan.spec.stop_timeout_secs();
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
        let graceful_stop = vec![EmperorMessage::GracefulStop.to_byte()];
        let old = rollover.other.generation();
        self.out.push(Action::ToVassalControl(old, graceful_stop));
        rollover.stage = Stage::Retiring;
        let wait = Duration::from_secs(u64::from(old_stop_wait));
        self.timers
            .set(Timer::Rollover, now + wait + self.config.stop_grace);
    }

    // ---- requests ----

    /// Issues the next request the rollover calls for, if its connection is free: its
    /// launch's, or the other container's cleanup.
    fn advance_rollover(&mut self, now: Instant) {
        let Some(api) = self.api else { return };
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        if !rollover.other.requests.is_idle() {
            return;
        }
        if matches!(rollover.stage, Stage::Launching) {
            if let Some((launch, mut env)) = self.rollover_launch() {
                launch.advance(&mut env, now);
            }
            return;
        }
        let Some(plan) = rollover.plan.as_ref() else {
            if matches!(rollover.stage, Stage::Removing(_)) {
                self.end_rollover(now);
            }
            return;
        };
        let mut deadline = now + self.config.request_timeout;
        let mut bytes = Vec::new();
        let request = match (&rollover.stage, rollover.other.instance.container.id()) {
            (Stage::InspectingCreated, _) => {
                api.inspect(&plan.container_name, &mut bytes);
                ApiRequest::InspectCreated
            }
            (Stage::StoppingOld, Some(id)) => {
                let timeout = plan.spec.stop_timeout_secs();
                api.stop(id, timeout, &mut bytes);
                let wait = Duration::from_secs(u64::from(timeout));
                deadline = now + wait + self.config.stop_grace;
                ApiRequest::Stop
            }
            (Stage::Removing(_), Some(id)) => {
                api.remove(id, &mut bytes);
                ApiRequest::Remove
            }
            (Stage::Removing(_) | Stage::StoppingOld, None) => return self.end_rollover(now),
            _ => return,
        };
        if let Some(bound_by) = rollover.bound_by {
            deadline = deadline.min(bound_by);
        }
        rollover
            .other
            .requests
            .send(&mut self.out, request, bytes, deadline, now);
    }

    pub(super) fn on_rollover_reply(&mut self, reply: Reply, now: Instant) {
        match reply {
            Reply::Nothing => {}
            // The launch's answers (also once abandoned: they say what is to be removed).
            Reply::Answer(request, response) if request.is_launch() => {
                self.drive_rollover_launch(now, |launch, env| {
                    launch.on_answer(env, request, &response, now)
                });
            }
            Reply::Answer(request, response) => {
                self.on_rollover_response(request, &response, now);
                self.advance_rollover(now);
            }
            Reply::Failed(request, fault) => self.on_rollover_request_failed(request, fault, now),
            Reply::Idle(fault) => {
                self.rollover_failed(fault.into(), now);
                self.advance_rollover(now);
            }
        }
    }

    fn on_rollover_request_failed(
        &mut self,
        request: ApiRequest,
        fault: DaemonFault,
        now: Instant,
    ) {
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        if rollover.stage.is_bringing_up() {
            let progress = rollover.other.on_request_failed(request, fault);
            if let Progress::Failed(error) = progress {
                self.rollover_failed(error, now);
            }
        } else {
            self.out.notice(Notice::CleanupFailed(fault));
            rollover.stage = match rollover.stage {
                Stage::StoppingOld | Stage::Retiring => Stage::Removing(Leaving::Retired),
                _ => {
                    // Left for `gc` (its bridge label names us, so only after we exit).
                    rollover.other.instance.container = Container::None;
                    Stage::Removing(Leaving::Abandoned)
                }
            };
        }
        self.advance_rollover(now);
    }

    /// The answer to a cleanup request of the other container.
    fn on_rollover_response(&mut self, request: ApiRequest, response: &Response, now: Instant) {
        let made_by_us = match docker::parse_inspect(response) {
            Ok(info) if request == ApiRequest::InspectCreated && self.made_by_us(&info.labels) => {
                Some(info.id)
            }
            _ => None,
        };
        let Some(rollover) = self.rollover.as_mut() else {
            return;
        };
        match request {
            ApiRequest::InspectCreated => {
                rollover.other.instance.container =
                    made_by_us.map_or(Container::None, Container::Created);
                rollover.stage = Stage::Removing(Leaving::Abandoned);
            }
            ApiRequest::Stop => {
                if let Err(e) = docker::parse_empty(response) {
                    if !e.is_not_found() {
                        self.out.notice(Notice::StopFailed(e));
                    }
                }
                if matches!(rollover.stage, Stage::StoppingOld) {
                    rollover.stage = Stage::Removing(Leaving::Retired);
                }
            }
            ApiRequest::Remove => {
                match docker::parse_empty(response) {
                    Err(e) if !e.is_not_found() && !is_removal_in_progress(&e) => {
                        self.out.notice(Notice::RemoveFailed(e))
                    }
                    _ => {}
                }
                self.end_rollover(now);
            }
            _ => {}
        }
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
            StreamEvent::Nothing => {}
            StreamEvent::Armed => {
                rollover.other.on_armed();
                self.advance_rollover(now);
            }
            StreamEvent::Exited(status) if rollover.stage.is_bringing_up() => {
                let error = VassalError::ExitedBeforeAccepting { status };
                self.rollover_failed(error.into(), now);
            }
            StreamEvent::Exited(_) => {
                if matches!(rollover.stage, Stage::Retiring | Stage::StoppingOld) {
                    self.timers.clear(Timer::Rollover);
                    rollover.stage = Stage::Removing(Leaving::Retired);
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
            Stage::Retiring => {
                self.out
                    .debug(|| "the old container did not exit in time; stopping it".into());
                rollover.stage = Stage::StoppingOld;
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
        if let Reply::Failed(request, fault) = overdue {
            return self.on_rollover_request_failed(request, fault, now);
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
        abandon(rollover, &mut self.out);
        self.advance_rollover(now);
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
        rollover.bound_by = Some(bound_by);
        rollover.pending = None;
        rollover.other.requests.cap_deadline(grace_by);
        if rollover.stage.is_bringing_up() {
            abandon(rollover, &mut self.out);
        } else {
            rollover.other.instance.close_streams(&mut self.out);
            if !matches!(rollover.stage, Stage::Removing(_)) {
                rollover.stage = Stage::Removing(Leaving::Retired);
            }
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
        if let (Stage::Removing(Leaving::Retired), Some(id)) =
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

/// Stops bringing the new container up: its streams and proxy close, and it is removed
/// (after a lost create answer, only once the name shows it is ours).
fn abandon(rollover: &mut Rollover, out: &mut super::outbox::Outbox) {
    rollover.other.halt();
    rollover.other.instance.close_streams(out);
    // While a bind is unanswered, its answer closes it.
    rollover.other.instance.proxy.close(out);
    rollover.stage = match rollover.other.instance.container {
        Container::Unknown => Stage::InspectingCreated,
        _ => Stage::Removing(Leaving::Abandoned),
    };
}
