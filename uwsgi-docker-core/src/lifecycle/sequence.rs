//! The order of things: which daemon request comes next on the way up, what each answer
//! means, the name-conflict rules, arming the streams, and re-attaching after the daemon
//! went away.
use std::time::{Duration, Instant};

use super::errors::{BridgeError, DaemonFault, OperatorError, VassalError};
use super::events::{Event, Notice};
use super::exit_watch::{ExitWatch, WaitFor, WaitProgress};
use super::interface::{Action, DockerConn, Outcome};
use super::log_relay::{AttachProgress, LogRelay};
use super::requests::{ApiRequest, Reply};
use super::timers::Timer;
use super::{
    short_id, Bridge, ConflictHolder, Container, Reattach, ReattachStage, Step, MAX_CREATE_ATTEMPTS,
};
use crate::docker::{self, Api, DaemonError};
use crate::http_reader::Response;
use crate::plan::ContainerPlan;

/// Pause before creating again after a conflict: the removal may still be in progress, or
/// a live bridge finishing its own shutdown. Doubled after each try, up to
/// [`MAX_CONFLICT_BACKOFF`] (so a live bridge gets about 6 s in all).
const CONFLICT_BACKOFF: Duration = Duration::from_millis(250);
const MAX_CONFLICT_BACKOFF: Duration = Duration::from_secs(2);
/// Pause before trying a lost daemon again, doubled after each try up to the maximum.
const REATTACH_PAUSE: Duration = Duration::from_secs(1);
const MAX_REATTACH_PAUSE: Duration = Duration::from_secs(5);

impl Bridge {
    /// Moves to `step` unless the vassal is stopping (a shutdown is never undone).
    fn goto(&mut self, step: Step) {
        if !self.is_stopping() {
            self.step = step;
        }
    }

    /// Issues the next request the state calls for, if the request connection is free.
    pub(super) fn advance(&mut self, now: Instant) {
        if matches!(self.step, Step::Exited(_)) || !self.requests.is_idle() {
            return;
        }
        if matches!(self.step, Step::Stopping(_)) {
            return self.advance_shutdown(now);
        }
        let Some(api) = self.api else {
            if matches!(self.step, Step::Negotiating) {
                let mut bytes = Vec::new();
                docker::version_request(&mut bytes);
                self.send(ApiRequest::Version, bytes, now);
            }
            return;
        };
        let mut bytes = Vec::new();
        let request = match (&self.step, self.current.container.id()) {
            (Step::Creating, _) => {
                self.create_attempts += 1;
                api.create(&self.config.plan, &mut bytes);
                ApiRequest::Create
            }
            (Step::InspectingConflict, _) => {
                api.inspect(&self.config.plan.container_name, &mut bytes);
                ApiRequest::InspectConflict
            }
            // By id: whatever took the name since the inspect is not touched.
            (Step::RemovingConflict(holder), _) => {
                api.remove(&holder.id, &mut bytes);
                ApiRequest::RemoveConflict
            }
            (Step::Starting, Some(id)) => {
                api.start(id, &mut bytes);
                ApiRequest::Start
            }
            (Step::Inspecting, Some(id)) => {
                api.inspect(id, &mut bytes);
                ApiRequest::Inspect
            }
            (
                Step::Reattaching(Reattach {
                    stage: ReattachStage::Inspecting,
                    ..
                }),
                Some(id),
            ) => {
                api.inspect(id, &mut bytes);
                ApiRequest::InspectReattach
            }
            _ => return,
        };
        self.send(request, bytes, now);
    }

    fn send(&mut self, request: ApiRequest, bytes: Vec<u8>, now: Instant) {
        let deadline = now + self.config.request_timeout;
        self.requests
            .send(&mut self.out, request, bytes, deadline, now);
    }

    // ---- daemon connections ----

    pub(super) fn on_docker_data(&mut self, conn: DockerConn, data: &[u8], now: Instant) {
        if self.rollover_owns(conn) {
            return self.on_rollover_docker_data(conn, data, now);
        }
        if self.requests.owns(conn) {
            let reply = self.requests.on_data(&mut self.out, data);
            self.on_reply(reply, now);
        } else if self.current.logs.as_ref().is_some_and(|l| l.conn() == conn) {
            self.on_attach_data(data, now);
        } else if self
            .current
            .exit_watch
            .as_ref()
            .is_some_and(|w| w.conn() == conn)
        {
            self.on_wait_data(data, now);
        }
        // Data on a connection we already dropped is ignored.
    }

    pub(super) fn on_docker_eof(&mut self, conn: DockerConn, now: Instant) {
        if self.rollover_owns(conn) {
            return self.on_rollover_docker_eof(conn, now);
        }
        if self.requests.owns(conn) {
            let reply = self.requests.on_eof(&mut self.out);
            self.on_reply(reply, now);
        } else if let Some(mut logs) = self.current.logs.take_if(|l| l.conn() == conn) {
            self.out.push(Action::DockerClose(conn));
            if logs.is_upgraded() {
                logs.flush(&mut self.out);
                self.expect_exit_report(now);
            } else if !self.is_stopping() {
                let fault = DaemonFault::StreamClosed {
                    stream: "attach",
                    when: "before upgrading it",
                };
                self.stream_failed(fault, now);
            }
        } else if self
            .current
            .exit_watch
            .take_if(|w| w.conn() == conn)
            .is_some()
        {
            self.out.push(Action::DockerClose(conn));
            if !self.is_stopping() {
                let fault = DaemonFault::StreamClosed {
                    stream: "wait",
                    when: "before the container exited",
                };
                self.stream_failed(fault, now);
            }
        }
    }

    pub(super) fn on_docker_connect_failed(
        &mut self,
        conn: DockerConn,
        fault: DaemonFault,
        now: Instant,
    ) {
        if self.rollover_owns(conn) {
            return self.on_rollover_connect_failed(conn, fault, now);
        }
        if self.requests.owns(conn) {
            let reply = self.requests.on_connect_failed(fault);
            self.on_reply(reply, now);
        } else if self.current.logs.take_if(|l| l.conn() == conn).is_some()
            || self
                .current
                .exit_watch
                .take_if(|w| w.conn() == conn)
                .is_some()
        {
            self.stream_failed(fault, now);
        }
    }

    fn on_reply(&mut self, reply: Reply, now: Instant) {
        match reply {
            Reply::Nothing => {}
            Reply::Answer(request, response) => self.on_api_response(request, response, now),
            Reply::Failed(request, fault) => self.api_failed(request, fault, now),
            Reply::Idle(fault) => self.fail(fault.into(), now),
        }
    }

    /// Deadlines of requests and of streams not yet armed.
    pub(super) fn on_overdue_requests(&mut self, now: Instant) {
        if let Reply::Failed(request, fault) = self.requests.take_overdue(&mut self.out, now) {
            if self.is_stopping() && !matches!(request, ApiRequest::Stop | ApiRequest::Remove) {
                // `fail` says nothing once stopping; the operator should still hear it.
                self.out.notice(Notice::CleanupFailed(fault.clone()));
            }
            self.api_failed(request, fault, now);
        }
        let attach_due = |l: &mut LogRelay| l.pending().is_some_and(|p| p.due(now));
        if let Some(logs) = self.current.logs.take_if(attach_due) {
            self.out.push(Action::DockerClose(logs.conn()));
            if let Some(pending) = logs.pending() {
                self.stream_timed_out(pending.timed_out(), now);
            }
        }
        let wait_due = |w: &mut ExitWatch| w.pending().is_some_and(|p| p.due(now));
        if let Some(wait) = self.current.exit_watch.take_if(wait_due) {
            self.out.push(Action::DockerClose(wait.conn()));
            if let Some(pending) = wait.pending() {
                self.stream_timed_out(pending.timed_out(), now);
            }
        }
    }

    fn stream_timed_out(&mut self, fault: DaemonFault, now: Instant) {
        if !matches!(self.step, Step::Reattaching(_)) {
            self.requests.mark_unresponsive();
        }
        self.stream_failed(fault, now);
    }

    /// The attach or wait stream failed. While the vassal runs, a stream the daemon broke
    /// off is the daemon going away (re-attach later), and a container the daemon no
    /// longer knows is gone; before that, the vassal fails.
    fn stream_failed(&mut self, fault: DaemonFault, now: Instant) {
        let running = matches!(self.step, Step::Running | Step::Reattaching(_));
        if let DaemonFault::Refused { source, .. } = &fault {
            if running && source.is_not_found() {
                return self.container_gone(now);
            }
        }
        let daemon_away = !matches!(fault, DaemonFault::Refused { .. });
        match self.step {
            Step::Running if daemon_away => self.daemon_lost(fault.into(), now),
            Step::Reattaching(_) => self.retry_reattach(fault, now),
            _ => self.fail(fault.into(), now),
        }
    }

    /// The daemon no longer knows the container (removed by AutoRemove before its exit
    /// could be read, or by hand): nothing is left to stop or remove.
    fn container_gone(&mut self, now: Instant) {
        self.close_streams();
        self.current.container = Container::None;
        self.out.notice(Notice::ContainerGone);
        self.stop(Outcome::VassalLeft, now);
    }

    /// The request connection broke while `request` was in flight.
    pub(super) fn api_failed(&mut self, request: ApiRequest, fault: DaemonFault, now: Instant) {
        match request {
            // Cleanup goes on even when the daemon misbehaves: the next step reconnects.
            ApiRequest::InspectExit => {
                let reason = Box::new(BridgeError::from(fault));
                self.out.notice(Notice::KilledUninspected(Some(reason)));
                self.advance(now);
            }
            ApiRequest::Stop | ApiRequest::Remove => {
                self.out.notice(Notice::CleanupFailed(fault));
                self.advance(now);
            }
            // The create may or may not have happened: the cleanup inspects the name.
            ApiRequest::Create => {
                if self.current.container == Container::None {
                    self.current.container = Container::Unknown;
                }
                self.fail(fault.into(), now);
            }
            ApiRequest::InspectCreated => {
                self.current.container = Container::None;
                let name = self.config.plan.container_name.clone();
                let reason = Box::new(BridgeError::from(fault));
                self.out.notice(Notice::CreatedUnknown { name, reason });
                self.advance(now);
            }
            ApiRequest::InspectReattach => self.retry_reattach(fault, now),
            _ => self.fail(fault.into(), now),
        }
    }

    fn on_api_response(&mut self, request: ApiRequest, response: Response, now: Instant) {
        match request {
            ApiRequest::Version => {
                match docker::parse_version(&response).and_then(Api::negotiate) {
                    Ok(api) => {
                        self.out
                            .debug(|| format!("negotiated docker API {}", api.version));
                        self.api = Some(api);
                        if matches!(self.step, Step::Negotiating) {
                            self.step = Step::Creating;
                        }
                    }
                    Err(e) => return self.fail(DaemonFault::Negotiation(e).into(), now),
                }
            }
            ApiRequest::Create => match docker::parse_create(&response) {
                Ok(created) => {
                    for warning in created.warnings {
                        self.out.notice(Notice::DaemonWarning(warning));
                    }
                    self.current.container = Container::Created(created.id.clone());
                    if let Some(path) = self.config.plan.spec.cidfile.clone() {
                        let id = created.id.clone();
                        self.out.push(Action::WriteCidFile { path, id });
                    }
                    if !self.is_stopping() {
                        self.arm(&created.id, WaitFor::NextExit, true, now);
                        self.step = Step::Arming;
                    }
                }
                // Docker's 409 and Podman's 500 alike: find out who holds the name.
                Err(e) if e.is_conflict() => {
                    self.out.debug(|| format!("the name is taken: {e}"));
                    self.goto(Step::InspectingConflict);
                }
                Err(source) if source.is_not_found() => {
                    let image = self.config.plan.spec.image.clone();
                    let error = VassalError::ImageNotFound { image, source };
                    return self.fail(error.into(), now);
                }
                Err(source) => {
                    let hint = docker::create_failure_hint(&source, &self.config.plan);
                    let error = VassalError::CreateRefused { source, hint };
                    return self.fail(error.into(), now);
                }
            },
            ApiRequest::InspectCreated => {
                let name = self.config.plan.container_name.clone();
                self.current.container = Container::None;
                match docker::parse_inspect(&response) {
                    Ok(info) if self.made_by_us(&info.labels) => {
                        self.current.container = Container::Created(info.id);
                    }
                    Ok(info) => {
                        let holder = short_id(&info.id).to_owned();
                        self.out.notice(Notice::NotMadeByUs { name, holder });
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(source) => {
                        let fault = DaemonFault::Refused {
                            action: "cannot inspect the container",
                            source,
                        };
                        let reason = Box::new(fault.into());
                        self.out.notice(Notice::CreatedUnknown { name, reason });
                    }
                }
            }
            ApiRequest::InspectConflict => match docker::parse_inspect(&response) {
                Ok(holder) => self.judge_holder(holder, now),
                // Gone since the create: try again.
                Err(e) if e.is_not_found() => self.retry_create(now),
                Err(source) => {
                    let name = self.config.plan.container_name.clone();
                    let fault = DaemonFault::HolderUninspectable { name, source };
                    return self.fail(fault.into(), now);
                }
            },
            ApiRequest::RemoveConflict => {
                let holder = match &self.step {
                    Step::RemovingConflict(holder) => short_id(&holder.id).to_owned(),
                    _ => "?".to_owned(),
                };
                match docker::parse_empty(&response) {
                    Ok(_) => self.retry_create(now),
                    Err(e) if e.is_not_found() || is_removal_in_progress(&e) => {
                        self.retry_create(now)
                    }
                    Err(source) => {
                        let name = self.config.plan.container_name.clone();
                        let fault = DaemonFault::HolderUnremovable {
                            name,
                            holder,
                            source,
                        };
                        return self.fail(fault.into(), now);
                    }
                }
            }
            ApiRequest::Start => match docker::parse_empty(&response) {
                Ok(_) => {
                    // An exit reported before this answer stands.
                    if let Container::Created(id) = &self.current.container {
                        self.current.container = Container::Started(id.clone());
                    }
                    if matches!(self.step, Step::Starting) {
                        self.step = Step::Inspecting;
                    }
                }
                // A failed start can leave the container in "created": it is removed.
                Err(e) => return self.fail(VassalError::StartRefused(e).into(), now),
            },
            ApiRequest::Inspect => match docker::parse_inspect(&response) {
                Ok(info) if info.running && info.pid > 0 => {
                    self.current.proxy.set_init(info.pid);
                    if matches!(self.step, Step::Inspecting) {
                        self.step = Step::ResolvingNamespace;
                        self.out.push(Action::QueryPidNamespace { pid: info.pid });
                    }
                }
                // It already exited; the wait reports how.
                Ok(_) => self
                    .out
                    .debug(|| "the container is no longer running".into()),
                Err(source) => {
                    let fault = DaemonFault::Refused {
                        action: "cannot inspect the container",
                        source,
                    };
                    return self.fail(fault.into(), now);
                }
            },
            ApiRequest::InspectReattach => match docker::parse_inspect(&response) {
                Ok(info) => self.rearm(info.running, now),
                Err(e) if e.is_not_found() => self.container_gone(now),
                Err(source) => {
                    let fault = DaemonFault::Refused {
                        action: "cannot inspect the container",
                        source,
                    };
                    self.retry_reattach(fault, now);
                }
            },
            ApiRequest::InspectExit => {
                let notice = match docker::parse_inspect(&response) {
                    Ok(info) if info.oom_killed => Notice::OomKilled {
                        memory: self.config.plan.spec.memory,
                    },
                    Ok(_) => Notice::KilledNotOom,
                    Err(e) if e.is_not_found() => Notice::KilledUninspected(None),
                    Err(source) => {
                        let fault = DaemonFault::Refused {
                            action: "cannot inspect the container",
                            source,
                        };
                        Notice::KilledUninspected(Some(Box::new(fault.into())))
                    }
                };
                self.out.notice(notice);
            }
            ApiRequest::Stop => {
                if let Err(e) = docker::parse_empty(&response) {
                    if !e.is_not_found() {
                        self.out.notice(Notice::StopFailed(e));
                    }
                }
            }
            ApiRequest::Remove => match docker::parse_empty(&response) {
                Ok(_) => {}
                Err(e) if e.is_not_found() || is_removal_in_progress(&e) => {}
                Err(e) => self.out.notice(Notice::RemoveFailed(e)),
            },
        }
        self.advance(now);
    }

    // ---- name conflicts ----

    pub(super) fn on_bridge_alive(&mut self, alive: bool, now: Instant) {
        if self.rollover_queries_bridge() {
            return self.on_rollover_bridge_alive(alive, now);
        }
        let Step::QueryingBridge(holder) = &self.step else {
            return;
        };
        let holder = holder.clone();
        let name = self.config.plan.container_name.clone();
        let short = short_id(&holder.id).to_owned();
        let bridge = holder.bridge.clone();
        if !alive {
            self.out.notice(Notice::ReplacingHolder {
                name,
                holder: short,
                bridge,
            });
            self.step = Step::RemovingConflict(holder);
            return self.advance(now);
        }
        if self.create_attempts >= MAX_CREATE_ATTEMPTS {
            let error = OperatorError::NameHeldByLiveBridge {
                name,
                holder: short,
                bridge,
            };
            return self.fail(error.into(), now);
        }
        self.out.notice(Notice::WaitingForLiveBridge {
            name,
            holder: short,
            bridge,
        });
        self.back_off(now);
    }

    /// Waits before creating again: longer after each try.
    fn back_off(&mut self, now: Instant) {
        self.goto(Step::BackingOff);
        let doublings = u32::from(self.create_attempts.saturating_sub(1)).min(8);
        let pause = (CONFLICT_BACKOFF * (1 << doublings)).min(MAX_CONFLICT_BACKOFF);
        self.timers.set(Timer::Backoff, now + pause);
    }

    /// Creates again after a pause, unless the tries are used up.
    fn retry_create(&mut self, now: Instant) {
        if self.create_attempts >= MAX_CREATE_ATTEMPTS {
            let name = self.config.plan.container_name.clone();
            let tries = self.create_attempts;
            self.fail(OperatorError::NameStillTaken { name, tries }.into(), now);
        } else {
            self.back_off(now);
        }
    }

    /// Decides about the container that holds our name: not ours (labels, vassal, prefix),
    /// it is an error that names it; ours, it depends on whether its bridge is alive.
    fn judge_holder(&mut self, holder: docker::ContainerInfo, now: Instant) {
        let name = self.config.plan.container_name.clone();
        let short = short_id(&holder.id).to_owned();
        if let Some(why) = self.config.plan.why_not_ours(&holder.labels) {
            let error = OperatorError::NameHeldByForeign {
                name,
                holder: short,
                why,
            };
            return self.fail(error.into(), now);
        }
        let Some(bridge) = bridge_label(&holder.labels) else {
            let error = OperatorError::NameHeldWithoutBridge {
                name,
                holder: short,
            };
            return self.fail(error.into(), now);
        };
        let label = bridge.to_owned();
        self.goto(Step::QueryingBridge(ConflictHolder {
            id: holder.id,
            bridge: label.clone(),
        }));
        self.out.push(Action::QueryBridgeAlive { label });
    }

    /// Labels of a container this very bridge created: ours for this vassal, and our own
    /// bridge label.
    pub(super) fn made_by_us(&self, labels: &[(String, String)]) -> bool {
        self.config.plan.why_not_ours(labels).is_none()
            && bridge_label(labels).is_some()
            && bridge_label(labels) == bridge_label(&self.config.plan.labels)
    }

    // ---- the streams ----

    /// Attach (when `attach`) and wait go out together on their own connections.
    fn arm(&mut self, id: &str, wait_for: WaitFor, attach: bool, now: Instant) {
        let Some(api) = self.api else { return };
        let deadline = now + self.config.request_timeout;
        let tty = self.config.plan.spec.tty;
        self.current.logs =
            attach.then(|| LogRelay::open(&mut self.out, api, id, tty, now, deadline));
        let wait = ExitWatch::open(&mut self.out, api, id, wait_for, now, deadline);
        self.current.exit_watch = Some(wait);
    }

    /// Start follows once both streams are armed, so no output and no exit is missed; a
    /// re-attach is done at the same point.
    fn maybe_start(&mut self, now: Instant) {
        let attached = self.current.logs.as_ref().is_none_or(LogRelay::is_upgraded);
        let armed = self
            .current
            .exit_watch
            .as_ref()
            .is_some_and(ExitWatch::is_armed);
        if !(attached && armed) {
            return;
        }
        match self.step {
            Step::Arming if self.current.logs.is_some() => {
                self.step = Step::Starting;
                self.advance(now);
            }
            Step::Reattaching(Reattach {
                stage: ReattachStage::Arming,
                ..
            }) => {
                self.step = Step::Running;
                self.out.event(Event::Reattached);
            }
            _ => {}
        }
    }

    fn on_attach_data(&mut self, data: &[u8], now: Instant) {
        let Some(logs) = self.current.logs.as_mut() else {
            return;
        };
        match logs.on_data(data, &mut self.out) {
            AttachProgress::Waiting | AttachProgress::Streaming => {}
            AttachProgress::Upgraded => self.maybe_start(now),
            AttachProgress::Failed(fault) => self.stream_failed(fault, now),
            AttachProgress::Lost => self.current.logs = None,
        }
    }

    fn on_wait_data(&mut self, data: &[u8], now: Instant) {
        let Some(wait) = self.current.exit_watch.as_mut() else {
            return;
        };
        match wait.on_data(data) {
            WaitProgress::Waiting => {}
            WaitProgress::Armed => self.maybe_start(now),
            WaitProgress::Exited(status) => {
                if let Some(wait) = self.current.exit_watch.take() {
                    self.out.push(Action::DockerClose(wait.conn()));
                }
                if let Some(id) = self.current.container.id() {
                    self.current.container = Container::Exited(id.to_owned());
                }
                if !self.is_stopping() {
                    self.out.event(Event::ContainerExited { status });
                }
                // A stop already under way no longer needs to stop anything.
                self.stop(Outcome::ContainerExited(status), now);
            }
            WaitProgress::Failed(fault) => {
                if let Some(wait) = self.current.exit_watch.take() {
                    self.out.push(Action::DockerClose(wait.conn()));
                }
                self.stream_failed(fault, now);
            }
        }
    }

    // ---- re-attaching ----

    /// The daemon went away while the vassal runs: keep relaying, try it again later.
    fn daemon_lost(&mut self, error: BridgeError, now: Instant) {
        self.close_streams();
        // A new container is not brought up without the daemon (its own requests say the
        // same soon, but re-attaching must find one current container).
        self.rollover_failed(error.clone(), now);
        self.out.notice(Notice::DaemonLost(Box::new(error)));
        self.step = Step::Reattaching(Reattach {
            since: now,
            tries: 0,
            stage: ReattachStage::Pausing,
        });
        self.timers.set(Timer::Reconnect, now + REATTACH_PAUSE);
    }

    /// The reconnect timer fired: ask the daemon about the container.
    pub(super) fn reconnect(&mut self, now: Instant) {
        let Step::Reattaching(reattach) = &mut self.step else {
            return;
        };
        reattach.stage = ReattachStage::Inspecting;
        self.advance(now);
    }

    /// The container is still there: attach (if it runs) and wait again.
    fn rearm(&mut self, running: bool, now: Instant) {
        let Step::Reattaching(reattach) = &mut self.step else {
            return;
        };
        reattach.stage = ReattachStage::Arming;
        if let Some(id) = self.current.container.id().map(str::to_owned) {
            self.arm(&id, WaitFor::NotRunning, running, now);
        }
    }

    /// A try to reach the daemon again failed: pause and try again, or give up.
    fn retry_reattach(&mut self, fault: DaemonFault, now: Instant) {
        self.close_streams();
        let Step::Reattaching(reattach) = &mut self.step else {
            return;
        };
        self.out
            .debug(|| format!("the docker daemon is still away: {fault}"));
        let after = now.saturating_duration_since(reattach.since);
        if after >= self.config.reattach_timeout {
            let container = self
                .current
                .container
                .id()
                .map(short_id)
                .unwrap_or("?")
                .to_owned();
            let error = DaemonFault::GaveUpReattaching { container, after };
            return self.fail(error.into(), now);
        }
        reattach.tries = reattach.tries.saturating_add(1);
        reattach.stage = ReattachStage::Pausing;
        let pause = REATTACH_PAUSE
            .saturating_mul(1 << reattach.tries.min(8))
            .min(MAX_REATTACH_PAUSE);
        self.timers.set(Timer::Reconnect, now + pause);
    }

    fn close_streams(&mut self) {
        self.current.close_streams(&mut self.out);
        self.requests.close(&mut self.out);
    }
}

/// Why the vassal did not connect in time, and what to check.
pub(super) fn never_connected(plan: &ContainerPlan, within: Duration) -> VassalError {
    let entry_point = "is uWSGI ≥ 2.0.6 the image's entry point?";
    // Outside the private runtime directory the socket has the Emperor's mode
    // (UWSGIDOCKER_SOCKET_MODE, 600 by default) and is owned by root.
    let fix = "leave docker-proxy and UWSGIDOCKER_SOCKET_DIR unset, so that the socket goes in the Emperor's private runtime directory with mode 666, or set UWSGIDOCKER_SOCKET_MODE=666 and keep that directory closed to other host users";
    let host = &plan.proxy_host_path;
    let hint = match plan.spec.user.as_deref() {
        _ if plan.proxy_in_private_dir => entry_point.to_owned(),
        Some(user) if !is_root_user(user) => format!(
            "the container runs as docker-user = {user}, which cannot connect to the proxy socket {host} (mode UWSGIDOCKER_SOCKET_MODE, default 600, owned by root); {fix}"
        ),
        _ => format!(
            "{entry_point} And if the container's user is not root on the host (the image's USER, userns-remap, rootless Docker), it cannot connect to {host} (mode UWSGIDOCKER_SOCKET_MODE, default 600, owned by root): {fix}"
        ),
    };
    VassalError::NeverConnected {
        path: plan.proxy_container_path.clone(),
        within,
        hint,
    }
}

/// `docker-user` names root: `0`, `root`, with or without a group.
fn is_root_user(user: &str) -> bool {
    matches!(user.split(':').next(), Some("0" | "root"))
}

pub(super) fn bridge_label(labels: &[(String, String)]) -> Option<&str> {
    labels
        .iter()
        .find(|(k, _)| k == crate::plan::labels::BRIDGE)
        .map(|(_, v)| v.as_str())
}

/// dockerd's 409 when an AutoRemove or an earlier delete is already removing it.
pub(super) fn is_removal_in_progress(e: &DaemonError) -> bool {
    matches!(e, DaemonError::Status { status: 409, message } if message.contains("in progress"))
}
