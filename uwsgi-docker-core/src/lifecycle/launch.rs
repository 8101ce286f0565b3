//! Bringing one container up to its handoff: bind the proxy → negotiate (once per bridge,
//! unless the runtime remembers the daemon's version) → pull (`docker-pull = always`, or
//! `missing` once create finds no image) → create (settling a name conflict) → attach and
//! wait → start → accept → hand off. A peer whose cgroup places it in the container is
//! handed off at once; any other is held while the container is inspected for its init's
//! pid namespace (see `proxy_gate`). The first start and each rollover own one
//! [`Launch`]; it answers [`Progress`], and its owner decides what a failure means (the
//! vassal fails, or the rollover is abandoned).
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::errors::{BridgeError, DaemonFault, HostError, OperatorError, VassalError};
use super::events::Notice;
use super::exit_watch::{ExitWatch, WaitFor};
use super::instance::{Container, Instance};
use super::interface::{Action, DockerConn, Generation, PeerIdentity, Phase, ProxyPeer};
use super::log_relay::LogRelay;
use super::outbox::Outbox;
use super::proxy_gate::{PeerVerdict, ProxyState};
use super::requests::{ApiRequest, Requests};
use super::short_id;
use crate::docker::{
    self, Api, ContainerInfo, DaemonError, ImageRef, PullFailure, PullProgress, RegistryCredentials,
};
use crate::http_reader::Response;
use crate::plan::ContainerPlan;
use crate::spec::PullPolicy;

/// How many times create is tried when the name is taken (the first try included).
pub(super) const MAX_CREATE_ATTEMPTS: u8 = 6;
/// Pause before creating again after a conflict: the removal may still be in progress, or
/// a live bridge finishing its own shutdown. Doubled after each try, up to
/// [`MAX_CONFLICT_BACKOFF`] (so a live bridge gets about 6 s in all).
const CONFLICT_BACKOFF: Duration = Duration::from_millis(250);
const MAX_CONFLICT_BACKOFF: Duration = Duration::from_secs(2);
/// How often a pull's progress reaches the log, at most.
const PULL_REPORT_EVERY: Duration = Duration::from_secs(1);
/// Pause before asking for a start slot again when all were taken. Bridges waiting
/// together ask at different moments, so a freed slot is taken again within a few ms
/// while many wait.
pub(super) const START_SLOT_RETRY: Duration = Duration::from_millis(100);

/// What the launch needs of its owner for one input.
pub(super) struct Env<'a> {
    pub(super) out: &'a mut Outbox,
    /// The bridge's API version; the first launch negotiates it unless it is known.
    pub(super) api: &'a mut Option<Api>,
    /// `api` came from the runtime's memory, not from this daemon's `/version`: a refusal
    /// of it means negotiating again.
    pub(super) api_remembered: &'a mut bool,
    pub(super) plan: &'a ContainerPlan,
    /// The config pushed to the vassal at its handoff.
    pub(super) config: &'a [u8],
    pub(super) request_timeout: Duration,
    pub(super) handoff_timeout: Duration,
    /// The vassal's `docker-pull`, or the operator's default.
    pub(super) pull: PullPolicy,
    pub(super) pull_timeout: Duration,
    pub(super) credentials: &'a RegistryCredentials,
    /// Create waits for a start slot ([`super::BridgeConfig::start_limit`]).
    pub(super) start_limit: bool,
}

/// What an input to a [`Launch`] came to.
#[derive(Debug)]
pub(super) enum Progress {
    Pending,
    /// The vassal has its channels.
    HandedOff,
    /// The launch cannot go on; its container (if any) is for its owner to remove.
    Failed(BridgeError),
}

#[derive(Debug)]
enum Stage {
    /// Not begun: a rollover's, while its container is planned.
    Idle,
    BindingProxy,
    Negotiating,
    /// The image is to be pulled (the request goes out when the connection is free).
    Pulling,
    /// A start slot is asked for (`None`), or every one was taken and it is asked for
    /// again then.
    AwaitingStartSlot(Option<Instant>),
    Creating,
    /// Create said the name is taken: inspect the container that holds it.
    InspectingConflict,
    /// The holder is ours for this vassal: is its bridge alive?
    QueryingBridge(ConflictHolder),
    /// The holder is ours and its bridge is gone: remove it (by id).
    RemovingConflict(ConflictHolder),
    /// Waiting until then before creating again after a conflict.
    BackingOff(Instant),
    /// Attach and wait are sent; start follows when both are armed.
    Arming,
    Starting,
    /// Accepting on the proxy until the vassal connects, by then.
    AwaitingVassal(Instant),
    HandedOff,
    /// Its owner stopped it: answers still in flight are recorded, nothing more is sent.
    Halted,
}

/// The container that holds our name at create, while we decide what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConflictHolder {
    id: String,
    /// Its `io.uwsgi-docker.bridge` label.
    bridge: String,
}

/// One container's start-up: the container and its streams, the request connection, the
/// stage, and the name-conflict rules.
#[derive(Debug)]
pub(super) struct Launch {
    stage: Stage,
    pub(super) instance: Instance,
    pub(super) requests: Requests,
    create_attempts: u8,
    /// The first start writes `docker-cidfile` at create; a rollover's container only
    /// once it has the Emperor's channels.
    cidfile_at_create: bool,
    /// The pull in flight, or done.
    pull: Option<Pull>,
    /// The id of the image its container runs, once inspected.
    pub(super) image_id: Option<String>,
    /// The container was inspected for its init (a held peer needed it).
    init_asked: bool,
    start_slot: StartSlot,
}

/// The launch's start slot: held from create until start is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartSlot {
    /// None held; `tries` asks found every slot taken.
    NotHeld {
        tries: u32,
    },
    Held,
    /// The runtime could not give one: the launch goes on without.
    Unavailable,
}

/// A pull: its progress, since when, and when progress was last reported.
#[derive(Debug)]
struct Pull {
    progress: PullProgress,
    since: Instant,
    reported: Instant,
    done: bool,
}

impl Launch {
    pub(super) fn new(generation: Generation, cidfile_at_create: bool) -> Launch {
        Launch {
            stage: Stage::Idle,
            instance: Instance::new(generation),
            requests: Requests::default(),
            create_attempts: 0,
            cidfile_at_create,
            pull: None,
            image_id: None,
            init_asked: false,
            start_slot: StartSlot::NotHeld { tries: 0 },
        }
    }

    /// After the bind and the negotiation: a pull first (`always`, once), else create.
    fn first_step(&mut self, env: &mut Env<'_>) -> Stage {
        match env.pull {
            PullPolicy::Always if self.pull.is_none() => Stage::Pulling,
            _ => self.create_stage(env),
        }
    }

    /// Create comes next: first a start slot, where the runtime limits starts and the
    /// launch holds none yet. (A create tried again after a name conflict keeps its slot.)
    fn create_stage(&mut self, env: &mut Env<'_>) -> Stage {
        if env.start_limit && matches!(self.start_slot, StartSlot::NotHeld { .. }) {
            env.out.push(Action::TakeStartSlot(self.generation()));
            return Stage::AwaitingStartSlot(None);
        }
        Stage::Creating
    }

    /// It asked for a start slot and waits for the answer.
    pub(super) fn awaits_start_slot(&self) -> bool {
        matches!(self.stage, Stage::AwaitingStartSlot(None))
    }

    /// The answer to [`Action::TakeStartSlot`], for a launch that [awaits
    /// it](Self::awaits_start_slot): taken, create goes out; all taken, it is asked for
    /// again after [`START_SLOT_RETRY`]; not to be had, the launch goes on without one.
    pub(super) fn on_start_slot(
        &mut self,
        env: &mut Env<'_>,
        taken: io::Result<bool>,
        now: Instant,
    ) -> Progress {
        let tries = match self.start_slot {
            StartSlot::NotHeld { tries } => tries,
            _ => 0,
        };
        match taken {
            Ok(true) => {
                if tries > 0 {
                    env.out
                        .debug(|| format!("took a start slot after {tries} tries"));
                }
                self.start_slot = StartSlot::Held;
                self.stage = Stage::Creating;
            }
            Ok(false) => {
                if tries == 0 {
                    env.out
                        .debug(|| "every start slot is taken: waiting for one".into());
                }
                self.start_slot = StartSlot::NotHeld { tries: tries + 1 };
                self.stage = Stage::AwaitingStartSlot(Some(now + START_SLOT_RETRY));
            }
            Err(e) => {
                env.out.notice(Notice::StartSlotUnavailable(Arc::new(e)));
                self.start_slot = StartSlot::Unavailable;
                self.stage = Stage::Creating;
            }
        }
        Progress::Pending
    }

    /// Gives the start slot back, if the launch holds one.
    fn release_start_slot(&mut self, out: &mut Outbox) {
        if self.start_slot == StartSlot::Held {
            out.push(Action::ReleaseStartSlot(self.generation()));
            self.start_slot = StartSlot::NotHeld { tries: 0 };
        }
    }

    fn pulled(&self) -> bool {
        self.pull.as_ref().is_some_and(|p| p.done)
    }

    /// Starts with the proxy socket: nothing is created before it is bound.
    pub(super) fn begin(&mut self, env: &mut Env<'_>) {
        self.stage = Stage::BindingProxy;
        let path = env.plan.proxy_host_path.clone();
        self.instance.proxy.bind(path, env.out);
    }

    /// Stops the launch where it is (a handed-off one is done already). A pull in flight
    /// ends at once: its connection is closed, which makes the daemon cancel it.
    pub(super) fn halt(&mut self, out: &mut Outbox) {
        if self.pull.as_ref().is_some_and(|p| !p.done) && !self.requests.is_idle() {
            self.requests.close(out);
        }
        self.release_start_slot(out);
        if !matches!(self.stage, Stage::HandedOff) {
            self.stage = Stage::Halted;
        }
    }

    pub(super) fn is_halted(&self) -> bool {
        matches!(self.stage, Stage::Halted)
    }

    pub(super) fn generation(&self) -> Generation {
        self.instance.generation
    }

    /// Where the launch is, for [`Phase`].
    pub(super) fn phase(&self) -> Phase {
        match self.stage {
            Stage::Arming | Stage::Starting => Phase::Starting,
            Stage::AwaitingVassal(_) => Phase::AwaitingVassal,
            Stage::HandedOff => Phase::Running,
            _ => Phase::Creating,
        }
    }

    /// The earliest deadline: its request, its streams, its stage.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let stage = match self.stage {
            Stage::BackingOff(at)
            | Stage::AwaitingVassal(at)
            | Stage::AwaitingStartSlot(Some(at)) => Some(at),
            _ => None,
        };
        [self.requests.deadline(), self.instance.deadline(), stage]
            .into_iter()
            .flatten()
            .min()
    }

    /// Its stage's deadline has come.
    pub(super) fn is_due(&self, now: Instant) -> bool {
        matches!(
            self.stage,
            Stage::BackingOff(at) | Stage::AwaitingVassal(at) | Stage::AwaitingStartSlot(Some(at))
                if now >= at
        )
    }

    /// One of its connections.
    pub(super) fn owns(&self, conn: DockerConn) -> bool {
        self.requests.owns(conn) || self.instance.owns_stream(conn)
    }

    /// Its proxy bind is unanswered.
    pub(super) fn binds(&self) -> bool {
        self.instance.proxy.state == ProxyState::Binding
    }

    /// Its held peers wait for the pid namespace of this init.
    pub(super) fn resolves(&self, pid: u32) -> bool {
        matches!(self.stage, Stage::AwaitingVassal(_))
            && self.instance.proxy.init_pid() == Some(pid)
            && self.instance.proxy.needs_namespace()
    }

    /// What becomes of a peer that reads as `identity`, if this launch waits for its vassal.
    pub(super) fn judge_peer(&self, identity: &PeerIdentity) -> PeerVerdict {
        match self.stage {
            Stage::AwaitingVassal(_) => self.instance.proxy.judge(identity),
            _ => PeerVerdict::Refuse,
        }
    }

    /// It asked whether the bridge of its name's holder is alive.
    pub(super) fn queries_bridge(&self) -> bool {
        matches!(self.stage, Stage::QueryingBridge(_))
    }

    /// Issues the next request the stage calls for, if the request connection is free.
    pub(super) fn advance(&mut self, env: &mut Env<'_>, now: Instant) {
        if !self.requests.is_idle() {
            return;
        }
        let mut bytes = Vec::new();
        let Some(api) = *env.api else {
            if matches!(self.stage, Stage::Negotiating) {
                docker::version_request(&mut bytes);
                self.send(env, ApiRequest::Version, bytes, now);
            }
            return;
        };
        let request = match (&self.stage, self.instance.container.id()) {
            (Stage::Pulling, _) => {
                let image = &env.plan.spec.image;
                let auth = env.credentials.header_for(image);
                api.pull(image, auth.as_deref(), &mut bytes);
                self.pull = Some(Pull {
                    progress: PullProgress::new(),
                    since: now,
                    reported: now,
                    done: false,
                });
                // The pull has its own deadline; the handoff's starts after it.
                let deadline = now + env.pull_timeout;
                self.requests
                    .send(env.out, ApiRequest::Pull, bytes, deadline, now);
                return;
            }
            (Stage::Creating, _) => {
                self.create_attempts += 1;
                match self.pull.as_ref().and_then(|p| p.progress.digest()) {
                    Some(digest) => {
                        let mut plan = env.plan.clone();
                        let label = crate::plan::labels::IMAGE_DIGEST.to_owned();
                        plan.labels.push((label, digest.to_owned()));
                        api.create(&plan, &mut bytes);
                    }
                    None => api.create(env.plan, &mut bytes),
                }
                ApiRequest::Create
            }
            (Stage::InspectingConflict, _) => {
                api.inspect(&env.plan.container_name, &mut bytes);
                ApiRequest::InspectConflict
            }
            // By id: whatever took the name since the inspect is not touched.
            (Stage::RemovingConflict(holder), _) => {
                api.remove(&holder.id, &mut bytes);
                ApiRequest::RemoveConflict
            }
            (Stage::Starting, Some(id)) => {
                api.start(id, &mut bytes);
                ApiRequest::Start
            }
            // A held peer waits for the init's pid namespace.
            (Stage::AwaitingVassal(_), Some(id))
                if self.instance.proxy.needs_init() && !self.init_asked =>
            {
                self.init_asked = true;
                api.inspect(id, &mut bytes);
                ApiRequest::Inspect
            }
            _ => return,
        };
        self.send(env, request, bytes, now);
    }

    fn send(&mut self, env: &mut Env<'_>, request: ApiRequest, bytes: Vec<u8>, now: Instant) {
        let deadline = now + env.request_timeout;
        self.requests.send(env.out, request, bytes, deadline, now);
    }

    pub(super) fn on_proxy_bound(&mut self, env: &mut Env<'_>, result: io::Result<()>) -> Progress {
        if self.instance.proxy.state != ProxyState::Binding {
            return Progress::Pending;
        }
        match result {
            Ok(()) => {
                self.instance.proxy.state = ProxyState::Bound;
                if self.is_halted() {
                    // Stopped while binding: what is bound now is closed at once.
                    self.instance.proxy.close(env.out);
                }
                if matches!(self.stage, Stage::BindingProxy) {
                    self.stage = match env.api {
                        Some(_) => self.first_step(env),
                        None => Stage::Negotiating,
                    };
                }
                Progress::Pending
            }
            Err(e) => {
                // Nothing was bound, so there is nothing of ours to unlink.
                self.instance.proxy.state = ProxyState::Closed;
                let path = env.plan.proxy_host_path.clone();
                let source = Arc::new(e);
                Progress::Failed(
                    HostError::ProxyBind {
                        path,
                        cause: source,
                    }
                    .into(),
                )
            }
        }
    }

    /// A request of the launch ([`ApiRequest::is_launch`]) failed. A create may or may
    /// not have happened: the owner's cleanup inspects the name.
    pub(super) fn on_request_failed(
        &mut self,
        request: ApiRequest,
        fault: DaemonFault,
    ) -> Progress {
        if request == ApiRequest::Create && self.instance.container == Container::None {
            self.instance.container = Container::Unknown;
        }
        Progress::Failed(fault.into())
    }

    /// The answer to a request of the launch. Once halted, only what it says of the
    /// container is kept (its id, that it started), for the owner's cleanup.
    pub(super) fn on_answer(
        &mut self,
        env: &mut Env<'_>,
        request: ApiRequest,
        response: &Response,
        now: Instant,
    ) -> Progress {
        let halted = self.is_halted();
        if *env.api_remembered && docker::refuses_api_version(response) {
            return self.negotiate_again(env, request);
        }
        if request == ApiRequest::Start {
            // Started, or it will not be: the slot is free for another launch.
            self.release_start_slot(env.out);
        }
        let result = match request {
            ApiRequest::Version => self.on_version(env, response),
            ApiRequest::Pull => self.on_pulled(env, response, now),
            ApiRequest::Create => self.on_created(env, response, now),
            ApiRequest::InspectConflict if !halted => match docker::parse_inspect(response) {
                Ok(holder) => self.judge_holder(env, holder),
                // Gone since the create: try again.
                Err(e) if e.is_not_found() => self.retry_create(env, now),
                Err(source) => {
                    let name = env.plan.container_name.clone();
                    Err(DaemonFault::HolderUninspectable {
                        name,
                        cause: source,
                    }
                    .into())
                }
            },
            ApiRequest::RemoveConflict if !halted => match docker::parse_empty(response) {
                Err(source) if !source.is_not_found() && !is_removal_in_progress(&source) => {
                    let holder = match &self.stage {
                        Stage::RemovingConflict(holder) => short_id(&holder.id).to_owned(),
                        _ => "?".to_owned(),
                    };
                    let name = env.plan.container_name.clone();
                    let fault = DaemonFault::HolderUnremovable {
                        name,
                        holder,
                        cause: source,
                    };
                    Err(fault.into())
                }
                _ => self.retry_create(env, now),
            },
            ApiRequest::Start => match docker::parse_empty(response) {
                Ok(_) => {
                    // An exit reported before this answer stands.
                    if let Container::Created(id) = &self.instance.container {
                        self.instance.container = Container::Started(id.clone());
                    }
                    if let (Stage::Starting, Some(id)) = (&self.stage, self.instance.container.id())
                    {
                        self.stage = Stage::AwaitingVassal(now + env.handoff_timeout);
                        let id = id.to_owned();
                        self.instance.proxy.accept_in(&id, env.out);
                    }
                    Ok(())
                }
                // A failed start can leave the container in "created": it is removed.
                Err(e) => Err(VassalError::StartRefused(e).into()),
            },
            ApiRequest::Inspect => match docker::parse_inspect(response) {
                Ok(info) if info.running && info.pid > 0 => {
                    self.image_id = Some(info.image).filter(|id| !id.is_empty());
                    self.instance.proxy.set_init(info.pid);
                    self.ask_init_namespace(env.out);
                    Ok(())
                }
                // It already exited; the wait reports how.
                Ok(_) => {
                    env.out
                        .debug(|| "the container is no longer running".into());
                    Ok(())
                }
                Err(source) => {
                    let action = "cannot inspect the container";
                    Err(DaemonFault::Refused {
                        action,
                        cause: source,
                    }
                    .into())
                }
            },
            _ => Ok(()),
        };
        match result {
            Ok(()) => Progress::Pending,
            Err(error) => Progress::Failed(error),
        }
    }

    fn on_version(&mut self, env: &mut Env<'_>, response: &Response) -> Result<(), BridgeError> {
        let api = docker::parse_version(response)
            .and_then(Api::negotiate)
            .map_err(DaemonFault::Negotiation)?;
        env.out
            .debug(|| format!("negotiated docker API {}", api.version));
        *env.api = Some(api);
        *env.api_remembered = false;
        env.out.push(Action::RememberApi(api));
        if matches!(self.stage, Stage::Negotiating) {
            self.stage = self.first_step(env);
        }
        Ok(())
    }

    /// The daemon refused the remembered API version (restarted as another version since):
    /// ask `/version`, then send the refused request's stage again.
    fn negotiate_again(&mut self, env: &mut Env<'_>, refused: ApiRequest) -> Progress {
        env.out.debug(|| {
            format!(
                "the daemon refused the remembered API version for {refused:?}: negotiating again"
            )
        });
        *env.api = None;
        *env.api_remembered = false;
        if refused == ApiRequest::Pull {
            self.pull = None;
        }
        if !self.is_halted() {
            self.stage = Stage::Negotiating;
        }
        Progress::Pending
    }

    // ---- the pull ----

    /// More of the pull's progress stream; reported at most once a second.
    pub(super) fn on_pull_body(
        &mut self,
        env: &mut Env<'_>,
        body: &[u8],
        now: Instant,
    ) -> Progress {
        let halted = self.is_halted();
        let Some(pull) = self.pull.as_mut().filter(|p| !p.done) else {
            return Progress::Pending;
        };
        if let Err(e) = pull.progress.feed(body) {
            self.requests.close(env.out);
            return Progress::Failed(DaemonFault::BadPullStream(e).into());
        }
        if now >= pull.reported + PULL_REPORT_EVERY && !halted {
            pull.reported = now;
            let image = env.plan.spec.image.clone();
            let progress = pull.progress.summary();
            env.out.notice(Notice::Pulling { image, progress });
        }
        Progress::Pending
    }

    /// The pull's answer: its end (the rest of the stream), or the daemon's refusal.
    fn on_pulled(
        &mut self,
        env: &mut Env<'_>,
        response: &Response,
        now: Instant,
    ) -> Result<(), BridgeError> {
        let Some(pull) = self.pull.as_mut() else {
            return Ok(());
        };
        pull.done = true;
        let image = env.plan.spec.image.clone();
        let registry = ImageRef::parse(&image).registry().to_owned();
        let failure = match docker::parse_empty(response) {
            Err(DaemonError::Status { status, message }) => {
                Some(PullFailure::classify(Some(status), &message))
            }
            Err(other) => Some(PullFailure::Other(other.to_string())),
            Ok(_) => {
                let read = pull.progress.feed(&response.body);
                read.and_then(|()| pull.progress.finish())
                    .map_err(DaemonFault::BadPullStream)?;
                pull.progress
                    .failure()
                    .map(|message| PullFailure::classify(None, message))
            }
        };
        if let Some(cause) = failure {
            return Err(VassalError::PullFailed {
                image,
                registry,
                cause,
            }
            .into());
        }
        let digest = pull.progress.digest().map(str::to_owned);
        let took = now.saturating_duration_since(pull.since);
        env.out.notice(Notice::Pulled {
            image,
            digest,
            took,
        });
        if matches!(self.stage, Stage::Pulling) {
            self.stage = self.create_stage(env);
        }
        Ok(())
    }

    fn on_created(
        &mut self,
        env: &mut Env<'_>,
        response: &Response,
        now: Instant,
    ) -> Result<(), BridgeError> {
        match docker::parse_create(response) {
            Ok(created) => {
                for warning in created.warnings {
                    env.out.notice(Notice::DaemonWarning(warning));
                }
                self.instance.container = Container::Created(created.id.clone());
                if let (true, Some(path)) = (self.cidfile_at_create, &env.plan.spec.cidfile) {
                    let (path, id) = (path.clone(), created.id.clone());
                    env.out.push(Action::WriteCidFile { path, id });
                }
                if matches!(self.stage, Stage::Creating) {
                    self.arm(env, &created.id, now);
                }
                Ok(())
            }
            Err(_) if self.is_halted() => Ok(()),
            // Docker's 409 and Podman's 500 alike: find out who holds the name.
            Err(e) if e.is_conflict() => {
                env.out.debug(|| format!("the name is taken: {e}"));
                self.stage = Stage::InspectingConflict;
                Ok(())
            }
            // `missing`: not on the host, so it is pulled, and created again.
            Err(source)
                if source.is_not_found()
                    && env.pull == PullPolicy::Missing
                    && self.pull.is_none() =>
            {
                env.out
                    .debug(|| format!("the image is not on the host ({source}): pulling it"));
                self.stage = Stage::Pulling;
                Ok(())
            }
            Err(source) if source.is_not_found() => {
                let image = env.plan.spec.image.clone();
                Err(VassalError::ImageNotFound {
                    image,
                    cause: source,
                    pulled: self.pulled(),
                }
                .into())
            }
            Err(source) => {
                let hint = docker::create_failure_hint(&source, env.plan);
                Err(VassalError::CreateRefused {
                    cause: source,
                    hint,
                }
                .into())
            }
        }
    }

    /// Attach and wait go out together, each on its own connection.
    fn arm(&mut self, env: &mut Env<'_>, id: &str, now: Instant) {
        let Some(api) = *env.api else { return };
        let deadline = now + env.request_timeout;
        let tty = env.plan.spec.tty;
        let out = &mut *env.out;
        self.instance.logs = Some(LogRelay::open(out, api, id, tty, now, deadline));
        let wait = ExitWatch::open(out, api, id, WaitFor::NextExit, now, deadline);
        self.instance.exit_watch = Some(wait);
        self.stage = Stage::Arming;
    }

    /// Start follows once both streams are armed, so no output and no exit is missed.
    pub(super) fn on_armed(&mut self) {
        if matches!(self.stage, Stage::Arming) && self.instance.streams_armed() {
            self.stage = Stage::Starting;
        }
    }

    // ---- name conflicts ----

    /// Decides about the container that holds our name: not ours (labels, vassal, prefix),
    /// it is an error that names it; a leftover of this very bridge (a rollover's whose
    /// removal failed) is removed; another bridge's depends on whether it is alive.
    fn judge_holder(
        &mut self,
        env: &mut Env<'_>,
        holder: ContainerInfo,
    ) -> Result<(), BridgeError> {
        let name = env.plan.container_name.clone();
        let short = short_id(&holder.id).to_owned();
        if let Some(why) = env.plan.why_not_ours(&holder.labels) {
            let holder = short;
            return Err(OperatorError::NameHeldByForeign { name, holder, why }.into());
        }
        let Some(bridge) = bridge_label(&holder.labels).map(str::to_owned) else {
            let holder = short;
            return Err(OperatorError::NameHeldWithoutBridge { name, holder }.into());
        };
        let ours = Some(bridge.as_str()) == bridge_label(&env.plan.labels);
        let holder = ConflictHolder {
            id: holder.id,
            bridge: bridge.clone(),
        };
        if ours {
            env.out
                .debug(|| format!("removing {short}, left over by this bridge"));
            self.stage = Stage::RemovingConflict(holder);
        } else {
            self.stage = Stage::QueryingBridge(holder);
            env.out.push(Action::QueryBridgeAlive { label: bridge });
        }
        Ok(())
    }

    /// The answer to [`Action::QueryBridgeAlive`]: gone, the holder is removed; alive, we
    /// wait and try again a few times, then fail naming it.
    pub(super) fn on_bridge_alive(
        &mut self,
        env: &mut Env<'_>,
        alive: bool,
        now: Instant,
    ) -> Progress {
        let Stage::QueryingBridge(holder) = &self.stage else {
            return Progress::Pending;
        };
        let holder = holder.clone();
        let name = env.plan.container_name.clone();
        let short = short_id(&holder.id).to_owned();
        let bridge = holder.bridge.clone();
        if !alive {
            env.out.notice(Notice::ReplacingHolder {
                name,
                holder: short,
                bridge,
            });
            self.stage = Stage::RemovingConflict(holder);
            return Progress::Pending;
        }
        if self.create_attempts >= MAX_CREATE_ATTEMPTS {
            let holder = short;
            return Progress::Failed(
                OperatorError::NameHeldByLiveBridge {
                    name,
                    holder,
                    bridge,
                }
                .into(),
            );
        }
        env.out.notice(Notice::WaitingForLiveBridge {
            name,
            holder: short,
            bridge,
        });
        self.back_off(now);
        Progress::Pending
    }

    /// Waits before creating again: longer after each try.
    fn back_off(&mut self, now: Instant) {
        let doublings = u32::from(self.create_attempts.saturating_sub(1)).min(8);
        let pause = (CONFLICT_BACKOFF * (1 << doublings)).min(MAX_CONFLICT_BACKOFF);
        self.stage = Stage::BackingOff(now + pause);
    }

    /// Creates again after a pause, unless the tries are used up.
    fn retry_create(&mut self, env: &mut Env<'_>, now: Instant) -> Result<(), BridgeError> {
        if self.create_attempts >= MAX_CREATE_ATTEMPTS {
            let name = env.plan.container_name.clone();
            let tries = self.create_attempts;
            return Err(OperatorError::NameStillTaken { name, tries }.into());
        }
        self.back_off(now);
        Ok(())
    }

    // ---- the proxy ----

    /// A peer connected to the proxy: admitted, it gets the channels; held, it waits for
    /// the init's namespace (the next [`advance`](Self::advance) inspects the container);
    /// refused, it is closed.
    pub(super) fn on_peer_arrived(
        &mut self,
        env: &mut Env<'_>,
        peer: ProxyPeer,
        identity: &PeerIdentity,
    ) -> Progress {
        match self.judge_peer(identity) {
            PeerVerdict::Admit => self.on_peer(env, peer),
            PeerVerdict::Hold => {
                env.out.debug(|| {
                    format!(
                        "peer {:?} is not in the container's cgroup: checking its pid namespace",
                        identity.pid
                    )
                });
                self.instance.proxy.hold(peer, identity);
                self.ask_init_namespace(env.out);
                Progress::Pending
            }
            PeerVerdict::Refuse => {
                refuse(env.out, peer, identity.pid);
                Progress::Pending
            }
        }
    }

    /// Held peers wait and the init is known: ask for its pid namespace (until the init is
    /// known, the next [`advance`](Self::advance) inspects the container for it).
    fn ask_init_namespace(&self, out: &mut Outbox) {
        let waiting = matches!(self.stage, Stage::AwaitingVassal(_));
        if let Some(pid) = self.instance.proxy.init_pid().filter(|_| waiting) {
            if self.instance.proxy.needs_namespace() {
                out.push(Action::QueryPidNamespace { pid });
            }
        }
    }

    /// The answer to [`Action::QueryPidNamespace`] for its init: the held peer in its
    /// namespace gets the channels, the others are refused.
    pub(super) fn on_pid_namespace(&mut self, env: &mut Env<'_>, pid_ns: Option<u64>) -> Progress {
        let Some(ns) = pid_ns else {
            let pid = self.instance.proxy.init_pid().unwrap_or_default();
            return Progress::Failed(HostError::PidNamespace { pid }.into());
        };
        let (admitted, refused) = self.instance.proxy.resolve_held(ns);
        for (peer, pid) in refused {
            refuse(env.out, peer, pid);
        }
        match admitted {
            Some(peer) => self.on_peer(env, peer),
            None => Progress::Pending,
        }
    }

    /// The vassal connected (see [`Launch::judge_peer`]): it gets its channels.
    fn on_peer(&mut self, env: &mut Env<'_>, peer: ProxyPeer) -> Progress {
        let generation = self.instance.generation;
        let passes_socket = env.plan.passes_socket;
        let handed =
            self.instance
                .proxy
                .hand_off(peer, generation, env.config, passes_socket, env.out);
        match handed {
            Ok(()) => {
                self.stage = Stage::HandedOff;
                Progress::HandedOff
            }
            Err(e) => Progress::Failed(VassalError::Config(e).into()),
        }
    }

    /// Its stage's deadline: create again after a back-off, or the vassal never came.
    pub(super) fn on_timeout(&mut self, env: &mut Env<'_>, now: Instant) -> Progress {
        match self.stage {
            Stage::BackingOff(at) if now >= at => self.stage = Stage::Creating,
            Stage::AwaitingStartSlot(Some(at)) if now >= at => {
                env.out.push(Action::TakeStartSlot(self.generation()));
                self.stage = Stage::AwaitingStartSlot(None);
            }
            Stage::AwaitingVassal(at) if now >= at => {
                let error = never_connected(env.plan, env.handoff_timeout);
                return Progress::Failed(error.into());
            }
            _ => {}
        }
        Progress::Pending
    }
}

/// Closes a peer that is not the vassal, and says so.
pub(super) fn refuse(out: &mut Outbox, peer: ProxyPeer, pid: Option<u32>) {
    out.push(Action::RefusePeer { peer });
    out.notice(Notice::RefusedPeer { pid });
}

/// Why the vassal did not connect in time, and what to check.
fn never_connected(plan: &ContainerPlan, within: Duration) -> VassalError {
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
