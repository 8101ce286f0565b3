//! One vassal's life, as a sans-IO state machine: [`Bridge`].
//!
//! The bridge is composed of parts that each do one job: bringing one container up to its
//! handoff (`launch`: its request connection, its stage, the name-conflict rules), the
//! container's streams (`instance`: the log relay on the attach stream, `log_relay`, and the
//! exit watch on the wait stream, `exit_watch`), removing a container (`cleanup`), the relay
//! of the Emperor's channels (`channels`), the proxy socket and the authentication of its
//! peer (`proxy_gate`), and a small timer table (`timers`). The first start and each
//! rollover own one launch; the bridge routes every input to the launch that asked. What
//! happens in which order is decided in `sequence` (running and re-attaching), `reload`
//! (what a changed config comes to), `rollover` (plan → switch → retire) and `shutdown`.
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod channels;
mod cleanup;
mod errors;
mod events;
mod exit_watch;
mod instance;
mod interface;
mod launch;
mod log_relay;
mod outbox;
mod proxy_gate;
mod reload;
mod requests;
mod rollover;
mod sequence;
mod shutdown;
mod timers;

pub use errors::{BridgeError, DaemonFault, Fault, HostError, OperatorError, VassalError};
pub use events::{Event, LogLevel, Notice};
pub use interface::{
    Action, BridgeConfig, DockerConn, EmperorChannels, Generation, Outcome, PeerIdentity, Phase,
    ProxyPeer, DEFAULT_PULL_TIMEOUT, DEFAULT_REATTACH_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};

use channels::ChannelRelay;
use exit_watch::ExitWatch;
use instance::Container;
use launch::{Env, Launch, Progress};
use outbox::Outbox;
use proxy_gate::PeerVerdict;
use rollover::Rollover;
use shutdown::Shutdown;
use timers::{Timer, Timers};

use crate::docker::Api;
use crate::emperor::{encode_config, EmperorMessage};

/// Where the bridge is; [`Phase`] is its public summary.
#[derive(Debug)]
enum Step {
    /// The first container is brought up (`current`'s launch says where it is).
    Launching,
    Running,
    /// The daemon went away while the container ran.
    Reattaching(Reattach),
    Stopping(Shutdown),
    Exited(Outcome),
}

/// Whose launch an input is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The container that has the Emperor's channels, or the first one being launched.
    Current,
    /// A rollover's other container.
    Rollover,
}

/// Progress of re-attaching to a container after losing the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reattach {
    since: Instant,
    tries: u32,
    stage: ReattachStage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReattachStage {
    /// Until the reconnect timer fires.
    Pausing,
    /// Inspecting the container by id.
    Inspecting,
    /// Attach and wait sent again; running once both are armed.
    Arming,
}

/// How long a vassal that closed its control channel leaves the wait to report its
/// container's exit before the bridge stops the container itself.
const VASSAL_EXIT_GRACE: Duration = Duration::from_secs(2);

/// The state machine for one vassal: it decides, the runtime does the I/O.
///
/// # Driving it
///
/// * **Inputs**, `handle_*(…, now)`: what happened. Daemon connections:
///   [`handle_docker_data`](Self::handle_docker_data),
///   [`handle_docker_eof`](Self::handle_docker_eof),
///   [`handle_docker_connect_failed`](Self::handle_docker_connect_failed). The proxy:
///   [`handle_proxy_bound`](Self::handle_proxy_bound),
///   [`handle_pid_namespace`](Self::handle_pid_namespace),
///   [`handle_proxy_peer`](Self::handle_proxy_peer). The Emperor and the vassal:
///   [`handle_emperor_control`](Self::handle_emperor_control) (and `_eof`),
///   [`handle_emperor_config`](Self::handle_emperor_config),
///   [`handle_vassal_control`](Self::handle_vassal_control) (and `_eof`). Answers to
///   actions: [`handle_bridge_alive`](Self::handle_bridge_alive),
///   [`handle_config`](Self::handle_config),
///   [`handle_cidfile_written`](Self::handle_cidfile_written). And
///   [`handle_signal`](Self::handle_signal), [`handle_timeout`](Self::handle_timeout).
/// * **Outputs**: after every input, drain [`poll_action`](Self::poll_action) and do each
///   [`Action`] in order (some are answered by an input, which may be given right away);
///   then sleep until [`poll_timeout`](Self::poll_timeout) or the next input, and call
///   [`handle_timeout`](Self::handle_timeout) when it is due.
/// * **State**: [`phase`](Self::phase), [`is_finished`](Self::is_finished),
///   [`container_id`](Self::container_id).
///
/// Time only moves forward: every `now` is the same clock, never earlier than the last.
/// After [`Action::Exit`] the bridge ignores its inputs.
///
/// ```
/// use std::time::Instant;
/// use uwsgi_docker_core::lifecycle::{Action, Bridge, BridgeConfig, Phase};
/// use uwsgi_docker_core::plan::{ContainerPlan, VassalIdentity};
/// use uwsgi_docker_core::spec;
///
/// let file = b"[emperor]\ndocker-image = app\n\n[uwsgi]\nhttp-socket = :3031\n";
/// let spec = spec::parse_vassal("app.ini", file)?.expect("a Docker vassal");
/// let identity = VassalIdentity::new("app.ini", "/run/uwsgi", "host:1", "host:42:7");
/// let plan = ContainerPlan::new(spec.clone(), &identity);
/// let mut bridge = Bridge::new(BridgeConfig::new(plan, spec, file.to_vec()), Instant::now());
///
/// // First the proxy socket; the runtime binds it and says so.
/// assert!(matches!(bridge.poll_action(), Some(Action::BindProxy { .. })));
/// bridge.handle_proxy_bound(Ok(()), Instant::now());
/// // Then a connection to the daemon, and the version request on it.
/// let Some(Action::DockerConnect(conn)) = bridge.poll_action() else { panic!() };
/// let Some(Action::DockerSend(_, request)) = bridge.poll_action() else { panic!() };
/// assert!(request.starts_with(b"GET /version "));
/// // The daemon's answer is for the runtime to remember, and brings the create request.
/// let reply = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\n{}";
/// bridge.handle_docker_data(conn, reply, Instant::now());
/// assert!(matches!(bridge.poll_action(), Some(Action::RememberApi(_))));
/// let Some(Action::DockerSend(_, create)) = bridge.poll_action() else { panic!() };
/// assert!(create.starts_with(b"POST /v1.41/containers/create?name=app.ini "));
/// assert_eq!(bridge.phase(), Phase::Creating);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # The path
///
/// bind the proxy → `GET /version` (negotiate, unless [`BridgeConfig::known_api`]) → `POST /containers/create` → attach and
/// wait, each on its own connection, together → `POST /start` (no body) once the attach
/// answered `101` and the wait's head arrived (its body comes at the container's exit) →
/// accept the vassal on the proxy (within [`BridgeConfig::handoff_timeout`]): a peer in the
/// container's cgroup at once, any other only after an inspect (the init's pid) and the
/// pid's namespace → hand off → relay → stop → remove → exit. Every
/// failure path removes the container and the proxy socket.
///
/// **A name conflict** at create (Docker's 409, Podman's 500) replaces the container that
/// holds the name only when it is ours for this very vassal (labels: managed, vassal,
/// prefix; see [`ContainerPlan::why_not_ours`](crate::plan::ContainerPlan::why_not_ours))
/// and its bridge is gone ([`Action::QueryBridgeAlive`]); a live bridge's container is
/// waited for a few times, and anything else is an error that names the container.
/// After a create whose answer was lost, the name is inspected, and what holds it is
/// removed only if this very bridge made it (its bridge label).
///
/// **Every daemon request has a deadline** ([`BridgeConfig::request_timeout`]; the attach
/// reply until `101` and the wait reply's head too). Once stopping, what is in flight
/// gets at most [`BridgeConfig::stop_grace`], stop gets the container's stop timeout plus
/// the grace, remove the grace, and after any deadline the stop is skipped for a forced
/// remove: stopping ends within [`Bridge::shutdown_bound`] whatever the daemon does.
///
/// **A changed `[emperor]` section** of a vassal whose listening socket the bridge holds
/// (`docker-socket`, an on-demand socket), under an Emperor and with no published port,
/// rolls over instead of recreating: a second container is brought up beside the first on
/// the same socket, gets fresh channels ([`Generation`]s), and takes the Emperor's channels
/// once its uWSGI accepts requests (and, when the vassal sets a health check, once the
/// daemon says its container is healthy); the old one is stopped gracefully and removed
/// ([`Phase::RollingOver`] meanwhile). If the new one fails, it is removed and the old one
/// serves on. The runtime plans the new container ([`Action::PlanRollover`]) and makes its
/// channels ([`Action::PrepareChannels`]); see the `rollover` module for the whole path.
///
/// **Losing the daemon while the vassal runs** (its wait stream closes before the exit)
/// does not end the vassal: the container may survive (Podman's containers outlive its
/// service; Docker's with live-restore). The bridge keeps relaying the Emperor's channels
/// and tries the daemon again with a pause that grows to 5 s; once it answers, a container
/// that still runs is attached and waited for again ([`Event::Reattached`]), one that
/// exited is reported and removed, and one that is gone ends the vassal. After
/// [`BridgeConfig::reattach_timeout`] it gives up.
#[derive(Debug)]
pub struct Bridge {
    config: BridgeConfig,
    step: Step,
    out: Outbox,
    api: Option<Api>,
    /// `api` is the runtime's memory of an earlier negotiation ([`BridgeConfig::known_api`]).
    api_remembered: bool,
    /// The container that has the Emperor's channels (or is being launched for them), and
    /// its request connection.
    current: Launch,
    /// A second container being brought up for a changed `[emperor]` section, or the old
    /// one being retired after the switch.
    rollover: Option<Rollover>,
    /// The Emperor's reload byte waits while the file is read again: a changed
    /// `[emperor]` section then rolls over without reloading the running vassal.
    held_reload: bool,
    /// A reload of unchanged settings asks the daemon which image the tag names now:
    /// another than the container runs (`uwsgi-docker update`, or a `docker pull`, moved
    /// the tag) rolls over or recreates, as a changed section does.
    image_check: Option<reload::ImageCheck>,
    channels: ChannelRelay,
    timers: Timers,
}

impl Bridge {
    /// A bridge for one vassal; its first action binds the proxy socket.
    pub fn new(config: BridgeConfig, now: Instant) -> Bridge {
        let known_api = config.known_api;
        let mut bridge = Bridge {
            out: Outbox::new(config.debug),
            config,
            step: Step::Launching,
            api: known_api,
            api_remembered: known_api.is_some(),
            current: Launch::new(Generation::default(), true),
            rollover: None,
            held_reload: false,
            image_check: None,
            channels: ChannelRelay::default(),
            timers: Timers::default(),
        };
        // A config we could never push is refused before anything is created.
        let mut probe = Vec::new();
        if let Err(e) = encode_config(&bridge.config.config, &mut probe) {
            bridge.fail(VassalError::Config(e).into(), now);
            return bridge;
        }
        if let Some((launch, mut env)) = bridge.launch_env(Owner::Current) {
            launch.begin(&mut env);
        }
        bridge
    }

    // ---- inputs ----

    /// Bytes from a daemon connection.
    pub fn handle_docker_data(&mut self, conn: DockerConn, data: &[u8], now: Instant) {
        self.input(|b| b.on_docker_data(conn, data, now));
    }

    /// The daemon closed a connection (or it broke).
    pub fn handle_docker_eof(&mut self, conn: DockerConn, now: Instant) {
        self.input(|b| b.on_docker_eof(conn, now));
    }

    /// [`Action::DockerConnect`] failed.
    pub fn handle_docker_connect_failed(
        &mut self,
        conn: DockerConn,
        error: io::Error,
        now: Instant,
    ) {
        let fault = DaemonFault::Unreachable {
            daemon: self.config.daemon_socket.clone(),
            cause: Arc::new(error),
        };
        self.input(|b| b.on_docker_connect_failed(conn, fault, now));
    }

    /// The answer to [`Action::BindProxy`].
    pub fn handle_proxy_bound(&mut self, result: Result<(), io::Error>, now: Instant) {
        self.input(|b| b.on_proxy_bound(result, now));
    }

    /// The answer to [`Action::PrepareChannels`].
    pub fn handle_channels_prepared(
        &mut self,
        generation: Generation,
        result: Result<(), io::Error>,
        now: Instant,
    ) {
        self.input(|b| b.on_channels_prepared(generation, result, now));
    }

    /// The answer to [`Action::PlanRollover`]: the new container's plan and the
    /// `[emperor]` section as the config asks for it (before the policy), or why the runtime
    /// refuses it ([`VassalError::SettingsRefused`]).
    pub fn handle_rollover_plan(
        &mut self,
        plan: Result<(crate::plan::ContainerPlan, crate::spec::VassalSpec), BridgeError>,
        now: Instant,
    ) {
        self.input(|b| b.on_rollover_plan(plan, now));
    }

    /// A connection on the proxy listener, and what the runtime read of the peer. Only a
    /// peer in the container gets the channels: one whose cgroup is the container's at
    /// once, any other once the daemon named the container's init and the peer is in the
    /// init's pid namespace ([`Action::QueryPidNamespace`]); others are refused.
    pub fn handle_proxy_peer(&mut self, peer: ProxyPeer, identity: PeerIdentity, now: Instant) {
        self.input(|b| b.on_proxy_peer(peer, &identity, now));
    }

    /// The answer to [`Action::QueryPidNamespace`].
    pub fn handle_pid_namespace(&mut self, pid: u32, pid_ns: Option<u64>, now: Instant) {
        self.input(|b| b.on_pid_namespace(pid, pid_ns, now));
    }

    /// The answer to [`Action::QueryBridgeAlive`] about the bridge of the container that
    /// holds our name (ours, for this vassal): gone, it is removed and create tried again;
    /// alive, we wait and try again a few times, then fail naming it.
    pub fn handle_bridge_alive(&mut self, alive: bool, now: Instant) {
        self.input(|b| b.on_bridge_alive(alive, now));
    }

    /// The answer to [`Action::TakeStartSlot`]: `Ok(true)` taken, `Ok(false)` every slot is
    /// taken (asked again shortly), `Err` none can be had (the launch goes on without one,
    /// and says why).
    pub fn handle_start_slot(
        &mut self,
        generation: Generation,
        taken: Result<bool, io::Error>,
        now: Instant,
    ) {
        self.input(|b| b.on_start_slot(generation, taken, now));
    }

    /// Bytes from the Emperor's control channel: relayed to the vassal; a stop byte stops it.
    pub fn handle_emperor_control(&mut self, data: &[u8], now: Instant) {
        self.input(|b| {
            if data == [EmperorMessage::Reload.to_byte()] && b.reads_before_reload() {
                b.held_reload = true;
                return b.out.push(Action::ReadConfig);
            }
            let relaying = b.relaying().then_some(b.current.generation());
            if ChannelRelay::relay_emperor_control(data, relaying, &mut b.out) {
                if relaying.is_some() {
                    b.stop_asked_vassal(now);
                } else {
                    b.stop(Outcome::Stopped, now);
                }
            }
        });
    }

    /// The Emperor closed its control channel: the vassal is stopped.
    pub fn handle_emperor_control_eof(&mut self, now: Instant) {
        self.input(|b| {
            if !b.is_stopping() {
                b.out.notice(Notice::EmperorGone);
            }
            b.stop(Outcome::Stopped, now);
        });
    }

    /// Bytes from the Emperor's config channel: each whole config is judged and pushed.
    pub fn handle_emperor_config(&mut self, data: &[u8], now: Instant) {
        self.input(|b| {
            for config in b.channels.decode_emperor_config(data, &mut b.out) {
                if b.push_config(&config, now) {
                    b.check_pushed_image(config, now);
                }
            }
        });
    }

    /// Bytes from the vassal's end of `generation`'s relayed control channel.
    pub fn handle_vassal_control(&mut self, generation: Generation, data: &[u8], now: Instant) {
        self.input(|b| {
            if generation != b.current.generation() {
                return b.on_other_vassal_control(generation, data, now);
            }
            if b.current.instance.proxy.is_handed_off()
                && ChannelRelay::relay_vassal_control(data, &b.config, &mut b.out)
            {
                b.stop(Outcome::Stopped, now);
            }
        });
    }

    /// `generation`'s vassal closed its control channel: usually its container is exiting.
    pub fn handle_vassal_control_eof(&mut self, generation: Generation, now: Instant) {
        self.input(|b| {
            if generation == b.current.generation() {
                b.on_vassal_control_eof(now);
            } else {
                b.on_other_vassal_control_eof(generation, now);
            }
        });
    }

    /// The answer to [`Action::ReadConfig`].
    pub fn handle_config(&mut self, config: Result<Vec<u8>, io::Error>, now: Instant) {
        self.input(|b| match config {
            _ if std::mem::take(&mut b.held_reload) => b.on_reload_read(config, now),
            Ok(config) => {
                b.push_config(&config, now);
            }
            // Without a config the vassal exits after 5 s; the Emperor respawns it.
            Err(e) => b.out.notice(Notice::ConfigUnreadable(Arc::new(e))),
        });
    }

    /// The answer to [`Action::WriteCidFile`]: a cidfile that cannot be written safely
    /// fails the vassal (its container is removed); after a rollover's switch it is only
    /// logged, and the vassal runs on.
    pub fn handle_cidfile_written(&mut self, result: Result<(), io::Error>, now: Instant) {
        self.input(|b| {
            if let Err(e) = result {
                let path = b.config.plan.spec.cidfile.clone().unwrap_or_default();
                let source = Arc::new(e);
                let error = BridgeError::from(HostError::Cidfile {
                    path,
                    cause: source,
                });
                // After a rollover the vassal runs on: the file is only out of date.
                if matches!(b.step, Step::Running) {
                    b.out.notice(Notice::CidfileStale(Box::new(error)));
                } else {
                    b.fail(error, now);
                }
            }
        });
    }

    /// SIGTERM, SIGINT or SIGHUP: stop and clean up.
    pub fn handle_signal(&mut self, now: Instant) {
        self.input(|b| {
            if !b.is_stopping() {
                b.out.notice(Notice::Signalled);
            }
            b.stop(Outcome::Stopped, now);
        });
    }

    /// The container turned unhealthy and `docker-health-restart` is set (the runtime
    /// watches its health, see [`crate::health`]): the vassal fails, so that the Emperor
    /// starts it again in a new container.
    pub fn handle_unhealthy(&mut self, detail: String, now: Instant) {
        self.input(|b| b.fail(VassalError::Unhealthy { detail }.into(), now));
    }

    /// A deadline from [`poll_timeout`](Self::poll_timeout) is due (calling it early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.input(|b| b.on_timeout(now));
    }

    // ---- outputs ----

    /// The next thing for the runtime to do.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout), if anything waits for a time.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.next(),
            self.current.deadline(),
            self.rollover.as_ref().and_then(|r| r.other.deadline()),
            self.rollover.as_ref().and_then(Rollover::health_poll_at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- state ----

    /// Where the vassal is.
    pub fn phase(&self) -> Phase {
        match &self.step {
            Step::Launching => self.current.phase(),
            Step::Running if self.rollover.is_some() => Phase::RollingOver,
            Step::Running => Phase::Running,
            Step::Reattaching(_) => Phase::Reattaching,
            Step::Stopping(_) => Phase::Stopping,
            Step::Exited(_) => Phase::Exited,
        }
    }

    /// The longest stopping takes, from the stop request (or the failure) to
    /// [`Action::Exit`], whatever the daemon does or does not answer: the container's stop
    /// timeout plus twice [`BridgeConfig::stop_grace`].
    pub fn shutdown_bound(&self) -> Duration {
        self.stop_wait() + 2 * self.config.stop_grace
    }

    /// How the vassal ended, once [`Action::Exit`] was issued.
    pub fn is_finished(&self) -> Option<&Outcome> {
        match &self.step {
            Step::Exited(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// The container id, once created.
    pub fn container_id(&self) -> Option<&str> {
        self.current.instance.container.id()
    }

    /// The generation of channels the Emperor's bytes go to.
    pub fn current_generation(&self) -> Generation {
        self.current.generation()
    }

    // ---- internals shared by the parts ----

    /// Every input goes through here: after the exit, nothing happens.
    fn input(&mut self, handle: impl FnOnce(&mut Bridge)) {
        if !matches!(self.step, Step::Exited(_)) {
            handle(self);
        }
    }

    fn is_stopping(&self) -> bool {
        matches!(self.step, Step::Stopping(_) | Step::Exited(_))
    }

    /// The Emperor's control bytes reach the vassal: it has its channels and is not stopping.
    fn relaying(&self) -> bool {
        self.current.instance.proxy.is_handed_off()
            && matches!(self.step, Step::Running | Step::Reattaching(_))
    }

    /// `owner`'s launch and what it needs: the current one's plan and config, or the
    /// rollover's once its container is planned.
    fn launch_env(&mut self, owner: Owner) -> Option<(&mut Launch, Env<'_>)> {
        let (launch, plan, config) = match owner {
            Owner::Current => (&mut self.current, &self.config.plan, &self.config.config),
            Owner::Rollover => {
                let rollover = self.rollover.as_mut()?;
                let plan = rollover.plan.as_ref()?;
                (&mut rollover.other, plan, &rollover.config)
            }
        };
        let env = Env {
            out: &mut self.out,
            api: &mut self.api,
            api_remembered: &mut self.api_remembered,
            plan,
            config,
            request_timeout: self.config.request_timeout,
            handoff_timeout: self.config.handoff_timeout,
            pull: plan.spec.pull.unwrap_or(self.config.pull),
            pull_timeout: self.config.pull_timeout,
            credentials: &self.config.registry_credentials,
            start_limit: self.config.start_limit,
        };
        Some((launch, env))
    }

    /// How long the container may take to stop on its own before the daemon kills it.
    fn stop_wait(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.plan.spec.stop_timeout_secs()))
    }

    /// The launch an input is for: the rollover's if it asked, else the current one if it
    /// did.
    fn launch_that(&self, asked: impl Fn(&Launch) -> bool) -> Option<Owner> {
        if self.rollover.as_ref().is_some_and(|r| asked(&r.other)) {
            Some(Owner::Rollover)
        } else if asked(&self.current) {
            Some(Owner::Current)
        } else {
            None
        }
    }

    fn launch_and_out(&mut self, owner: Owner) -> Option<(&mut Launch, &mut Outbox)> {
        match owner {
            Owner::Current => Some((&mut self.current, &mut self.out)),
            Owner::Rollover => self
                .rollover
                .as_mut()
                .map(|r| (&mut r.other, &mut self.out)),
        }
    }

    /// Feeds one input to `owner`'s launch, and goes on with what it came to.
    fn drive(
        &mut self,
        owner: Owner,
        now: Instant,
        input: impl FnOnce(&mut Launch, &mut Env<'_>) -> Progress,
    ) {
        let Some((launch, mut env)) = self.launch_env(owner) else {
            return;
        };
        let progress = input(launch, &mut env);
        if owner == Owner::Rollover {
            return self.on_rollover_progress(progress, now);
        }
        match progress {
            Progress::Pending => {}
            Progress::HandedOff => {
                self.step = Step::Running;
                self.out.event(Event::Running);
            }
            Progress::Failed(error) => return self.fail(error, now),
        }
        // Also when stopping: the shutdown may have waited for this input.
        self.advance(now);
    }

    fn on_proxy_bound(&mut self, result: Result<(), io::Error>, now: Instant) {
        if let Some(owner) = self.launch_that(Launch::binds) {
            self.drive(owner, now, |launch, env| launch.on_proxy_bound(env, result));
        }
    }

    fn on_proxy_peer(&mut self, peer: ProxyPeer, identity: &PeerIdentity, now: Instant) {
        // The launch whose container the peer is in, else one that waits for a vassal
        // (it holds or refuses it).
        let owner = self
            .launch_that(|launch| launch.judge_peer(identity) == PeerVerdict::Admit)
            .or_else(|| {
                self.launch_that(|launch| launch.judge_peer(identity) != PeerVerdict::Refuse)
            });
        match owner {
            Some(owner) => self.drive(owner, now, |launch, env| {
                launch.on_peer_arrived(env, peer, identity)
            }),
            None => launch::refuse(&mut self.out, peer, identity.pid),
        }
    }

    fn on_pid_namespace(&mut self, pid: u32, pid_ns: Option<u64>, now: Instant) {
        if let Some(owner) = self.launch_that(|launch| launch.resolves(pid)) {
            self.drive(owner, now, |launch, env| {
                launch.on_pid_namespace(env, pid_ns)
            });
        }
    }

    fn on_start_slot(&mut self, generation: Generation, taken: io::Result<bool>, now: Instant) {
        let waits =
            |launch: &Launch| launch.generation() == generation && launch.awaits_start_slot();
        match self.launch_that(waits) {
            Some(owner) => self.drive(owner, now, |launch, env| {
                launch.on_start_slot(env, taken, now)
            }),
            // Its launch no longer waits (halted, or gone): a slot given goes back at once.
            None if matches!(taken, Ok(true)) => {
                self.out.push(Action::ReleaseStartSlot(generation));
            }
            None => {}
        }
    }

    fn on_bridge_alive(&mut self, alive: bool, now: Instant) {
        if let Some(owner) = self.launch_that(Launch::queries_bridge) {
            self.drive(owner, now, |launch, env| {
                launch.on_bridge_alive(env, alive, now)
            });
        }
    }

    fn on_vassal_control_eof(&mut self, now: Instant) {
        if !self.is_stopping() {
            self.out.notice(Notice::VassalClosedChannel);
            // Usually its container is exiting: let the wait say how (an OOM kill is told
            // from its status), for a moment, before stopping it ourselves.
            let started = matches!(self.current.instance.container, Container::Started(_));
            if started
                && self
                    .current
                    .instance
                    .exit_watch
                    .as_ref()
                    .is_some_and(ExitWatch::is_armed)
            {
                self.timers.set(Timer::VassalGone, now + VASSAL_EXIT_GRACE);
                return;
            }
        }
        self.stop(Outcome::VassalLeft, now);
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.timers.take_due(Timer::VassalGone, now) {
            self.stop(Outcome::VassalLeft, now);
        }
        if self.current.is_due(now) {
            self.drive(Owner::Current, now, |launch, env| {
                launch.on_timeout(env, now)
            });
        }
        if self.rollover.as_ref().is_some_and(|r| r.other.is_due(now)) {
            self.drive(Owner::Rollover, now, |launch, env| {
                launch.on_timeout(env, now)
            });
        }
        if self.timers.take_due(Timer::Reconnect, now) {
            self.reconnect(now);
        }
        let health_poll = self.rollover.as_ref().and_then(Rollover::health_poll_at);
        if health_poll.is_some_and(|at| now >= at) {
            self.advance_rollover(now);
        }
        if self.timers.take_due(Timer::Rollover, now) {
            self.on_rollover_timer(now);
        }
        if self.timers.take_due(Timer::ExitReport, now) {
            self.on_exit_report_overdue(now);
        }
        if self.timers.take_due(Timer::StopHeld, now) {
            self.advance(now);
        }
        self.on_overdue_requests(now);
        self.on_overdue_rollover(now);
    }
}

/// The short form of a container id, as `docker ps` shows it.
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests;
