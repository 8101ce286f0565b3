//! The order of things: which daemon request comes next on the way up, what each answer
//! means, the name-conflict rules, arming the streams, and re-attaching after the daemon
//! went away.
use std::time::{Duration, Instant};

use super::errors::{BridgeError, DaemonFault};
use super::events::{Event, Notice};
use super::exit_watch::{ExitWatch, WaitFor, EXIT_REPORT_GRACE};
use super::instance::{Container, StreamEvent};
use super::interface::{Action, DockerConn, Outcome};
use super::log_relay::LogRelay;
use super::requests::{ApiRequest, Reply};
use super::timers::Timer;
use super::{short_id, Bridge, Owner, Reattach, ReattachStage, Step};
use crate::docker;
use crate::http_reader::Response;

/// Pause before trying a lost daemon again, doubled after each try up to the maximum.
const REATTACH_PAUSE: Duration = Duration::from_secs(1);
const MAX_REATTACH_PAUSE: Duration = Duration::from_secs(5);

impl Bridge {
    /// Issues the next request the state calls for, if the request connection is free.
    pub(super) fn advance(&mut self, now: Instant) {
        if matches!(self.step, Step::Exited(_)) || !self.current.requests.is_idle() {
            return;
        }
        match self.step {
            Step::Stopping(_) => self.advance_shutdown(now),
            Step::Launching => {
                if let Some((launch, mut env)) = self.launch_env(Owner::Current) {
                    launch.advance(&mut env, now);
                }
            }
            Step::Reattaching(Reattach {
                stage: ReattachStage::Inspecting,
                ..
            }) => {
                let (Some(api), Some(id)) = (self.api, self.current.instance.container.id()) else {
                    return;
                };
                let mut bytes = Vec::new();
                api.inspect(id, &mut bytes);
                let deadline = now + self.config.request_timeout;
                let request = ApiRequest::InspectReattach;
                self.current
                    .requests
                    .send(&mut self.out, request, bytes, deadline, now);
            }
            _ => {}
        }
    }

    // ---- daemon connections ----

    pub(super) fn on_docker_data(&mut self, conn: DockerConn, data: &[u8], now: Instant) {
        // Data on a connection we already dropped is ignored.
        let Some(owner) = self.launch_that(|launch| launch.owns(conn)) else {
            return;
        };
        let Some((launch, out)) = self.launch_and_out(owner) else {
            return;
        };
        if launch.requests.owns(conn) {
            let reply = launch.requests.on_data(out, data);
            self.on_reply(owner, reply, now);
        } else {
            let event = launch.instance.on_stream_data(conn, data, out);
            self.on_stream_event(owner, event, now);
        }
    }

    pub(super) fn on_docker_eof(&mut self, conn: DockerConn, now: Instant) {
        let Some(owner) = self.launch_that(|launch| launch.owns(conn)) else {
            return;
        };
        let Some((launch, out)) = self.launch_and_out(owner) else {
            return;
        };
        if launch.requests.owns(conn) {
            let reply = launch.requests.on_eof(out);
            self.on_reply(owner, reply, now);
        } else {
            let event = launch.instance.on_stream_eof(conn, out);
            self.on_stream_event(owner, event, now);
        }
    }

    pub(super) fn on_docker_connect_failed(
        &mut self,
        conn: DockerConn,
        fault: DaemonFault,
        now: Instant,
    ) {
        let Some(owner) = self.launch_that(|launch| launch.owns(conn)) else {
            return;
        };
        let Some((launch, _)) = self.launch_and_out(owner) else {
            return;
        };
        if launch.requests.owns(conn) {
            let reply = launch.requests.on_connect_failed(fault);
            self.on_reply(owner, reply, now);
        } else {
            let event = launch.instance.on_stream_connect_failed(conn, fault);
            self.on_stream_event(owner, event, now);
        }
    }

    /// A reply on `owner`'s request connection: the launch's requests go to the launch
    /// (also once it is halted: they say what there is to remove).
    pub(super) fn on_reply(&mut self, owner: Owner, reply: Reply, now: Instant) {
        match reply {
            Reply::Answer(request, response) if request.is_launch() => {
                self.drive(owner, now, |launch, env| {
                    launch.on_answer(env, request, &response, now)
                });
            }
            Reply::Body(request, body) if request.is_launch() => {
                self.drive(owner, now, |launch, env| {
                    launch.on_pull_body(env, &body, now)
                });
            }
            Reply::Failed(request, fault) if request.is_launch() => {
                self.drive(owner, now, |launch, _| {
                    launch.on_request_failed(request, fault)
                });
            }
            reply if owner == Owner::Rollover => self.on_rollover_reply(reply, now),
            Reply::Nothing | Reply::Body(..) => {}
            Reply::Answer(request, response) => self.on_api_response(request, response, now),
            Reply::Failed(request, fault) => self.api_failed(request, fault, now),
            Reply::Idle(fault) => self.fail(fault.into(), now),
        }
    }

    /// What a container's streams say; the current one's: an exit or a failure ends the
    /// vassal (or the daemon went away).
    fn on_stream_event(&mut self, owner: Owner, event: StreamEvent, now: Instant) {
        if owner == Owner::Rollover {
            return self.on_rollover_stream_event(event, now);
        }
        match event {
            StreamEvent::Nothing => {}
            StreamEvent::OutputEnded => self.expect_exit_report(now),
            StreamEvent::Armed => self.on_armed(now),
            StreamEvent::Exited(status) => {
                if self.is_stopping() {
                    // Said only for docker-debug: the shutdown's own steps are timed by it.
                    self.out
                        .debug(|| format!("the container exited with status {status}"));
                } else {
                    self.out.event(Event::ContainerExited { status });
                }
                // A stop already under way no longer needs to stop anything.
                self.stop(Outcome::ContainerExited(status), now);
            }
            StreamEvent::Failed(fault) => self.stream_failed(fault, now),
        }
    }

    /// The container's output ended: its exit should follow on the wait soon. An engine
    /// may lose it (see [`EXIT_REPORT_GRACE`]), so the wait has that long.
    fn expect_exit_report(&mut self, now: Instant) {
        let instance = &self.current.instance;
        let waiting = instance
            .exit_watch
            .as_ref()
            .is_some_and(ExitWatch::is_armed);
        if waiting && !self.is_stopping() && matches!(instance.container, Container::Started(_)) {
            self.timers.set(Timer::ExitReport, now + EXIT_REPORT_GRACE);
        }
    }

    /// The wait did not report the exit in time: ask again with `condition=not-running`
    /// on a new connection (the old one may never answer).
    pub(super) fn on_exit_report_overdue(&mut self, now: Instant) {
        let Some(api) = self.api else { return };
        // Once stopping nothing waits for the exit; while re-attaching, the re-attach
        // asks with `not-running` itself (a wait opened here would be left open).
        if !matches!(self.step, Step::Launching | Step::Running) {
            return;
        }
        let instance = &mut self.current.instance;
        let Container::Started(id) = &instance.container else {
            return;
        };
        let id = id.clone();
        if let Some(lost) = instance.exit_watch.take() {
            self.out.push(Action::DockerClose(lost.conn()));
        }
        let deadline = now + self.config.request_timeout;
        let wait = ExitWatch::open(&mut self.out, api, &id, WaitFor::NotRunning, now, deadline);
        instance.exit_watch = Some(wait);
    }

    /// Both streams armed: start follows (the launch), or a re-attach is done.
    fn on_armed(&mut self, now: Instant) {
        match self.step {
            Step::Launching => {
                self.current.on_armed();
                self.advance(now);
            }
            Step::Reattaching(Reattach {
                stage: ReattachStage::Arming,
                ..
            }) if self.current.instance.streams_armed() => {
                self.step = Step::Running;
                self.out.event(Event::Reattached);
            }
            _ => {}
        }
    }

    /// Deadlines of requests and of streams not yet armed.
    pub(super) fn on_overdue_requests(&mut self, now: Instant) {
        let overdue = self.current.requests.take_overdue(&mut self.out, now);
        if let Reply::Failed(request, fault) = overdue {
            if self.is_stopping() && !matches!(request, ApiRequest::Stop | ApiRequest::Remove) {
                // `fail` says nothing once stopping; the operator should still hear it.
                self.out.notice(Notice::CleanupFailed(fault.clone()));
            }
            self.on_reply(Owner::Current, Reply::Failed(request, fault), now);
        }
        let overdue = self
            .current
            .instance
            .take_overdue_stream(now, &mut self.out);
        if let Some(fault) = overdue {
            if !matches!(self.step, Step::Reattaching(_)) {
                self.current.requests.mark_unresponsive();
            }
            self.stream_failed(fault, now);
        }
    }

    /// The attach or wait stream failed. While the vassal runs, a stream the daemon broke
    /// off is the daemon going away (re-attach later), and a container the daemon no
    /// longer knows is gone; before that, the vassal fails.
    fn stream_failed(&mut self, fault: DaemonFault, now: Instant) {
        let running = matches!(self.step, Step::Running | Step::Reattaching(_));
        if let DaemonFault::Refused { cause: source, .. } = &fault {
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
        self.current.instance.container = Container::None;
        self.out.notice(Notice::ContainerGone);
        self.stop(Outcome::VassalLeft, now);
    }

    /// The request connection broke while `request` was in flight.
    fn api_failed(&mut self, request: ApiRequest, fault: DaemonFault, now: Instant) {
        match request {
            ApiRequest::InspectImage | ApiRequest::InspectRunningImage => {
                self.out
                    .debug(|| format!("cannot tell which image the tag names now: {fault}"));
                self.on_image_checked(None, now);
                self.advance(now);
            }
            ApiRequest::InspectReattach => self.retry_reattach(fault, now),
            // Cleanup goes on even when the daemon misbehaves: the next step reconnects.
            _ => {
                let (plan, out) = (&self.config.plan, &mut self.out);
                self.current.on_cleanup_failed(request, fault, plan, out);
                self.advance(now);
            }
        }
    }

    fn on_api_response(&mut self, request: ApiRequest, response: Response, now: Instant) {
        match request {
            ApiRequest::InspectRunningImage => {
                let info = docker::parse_inspect(&response).ok();
                self.on_running_image(info.map(|info| info.image), now);
            }
            ApiRequest::InspectImage => {
                let image_id = docker::parse_image_id(&response).ok();
                self.on_image_checked(image_id, now);
            }
            ApiRequest::InspectReattach => match docker::parse_inspect(&response) {
                Ok(info) => self.rearm(info.running, now),
                Err(e) if e.is_not_found() => self.container_gone(now),
                Err(source) => {
                    let fault = DaemonFault::Refused {
                        action: "cannot inspect the container",
                        cause: source,
                    };
                    self.retry_reattach(fault, now);
                }
            },
            _ => self.on_shutdown_answer(request, &response),
        }
        self.advance(now);
    }

    /// Attach (when the container runs) and wait again, after the daemon came back.
    fn rearm_streams(&mut self, id: &str, attach: bool, now: Instant) {
        let Some(api) = self.api else { return };
        let deadline = now + self.config.request_timeout;
        let tty = self.config.plan.spec.tty;
        let out = &mut self.out;
        let instance = &mut self.current.instance;
        instance.logs = attach.then(|| LogRelay::open(out, api, id, tty, now, deadline));
        let wait = ExitWatch::open(out, api, id, WaitFor::NotRunning, now, deadline);
        instance.exit_watch = Some(wait);
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
        if let Some(id) = self.current.instance.container.id().map(str::to_owned) {
            self.rearm_streams(&id, running, now);
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
                .instance
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
        self.current.instance.close_streams(&mut self.out);
        self.current.requests.close(&mut self.out);
    }
}
