//! The types the runtime exchanges with a [`Bridge`](super::Bridge): its settings, the
//! actions it asks for, where it is, and how it ended.
use std::time::Duration;

use super::errors::BridgeError;
use super::events::Event;
use crate::docker::{Api, RegistryCredentials};
use crate::handoff::HandedFd;
use crate::plan::ContainerPlan;
use crate::spec::{self, PullPolicy};

/// One connection to dockerd; the runtime opens it on [`Action::DockerConnect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DockerConn(pub u32);

/// One set of relayed channels (control and config) and the vassal that gets them: the
/// first vassal's is `Generation(0)`, made by the runtime at start; a rollover asks for the
/// next with [`Action::PrepareChannels`]. While a rollover runs, two generations exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Generation(pub u32);

/// A pending connection on the proxy listener, numbered by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyPeer(pub u64);

/// What the runtime read about a peer on the proxy socket, in the host's view; each
/// `None` when it could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Its pid (`SO_PEERCRED`).
    pub pid: Option<u32>,
    /// Its pid namespace id (`/proc/PID/ns/pid`).
    pub pid_ns: Option<u64>,
    /// Its `/proc/PID/cgroup`: when it places the peer in the container's own cgroup, the
    /// peer is admitted without asking the daemon for the container's init.
    pub cgroup: Option<String>,
}

/// The usual [`BridgeConfig::request_timeout`]: a daemon that has not answered one request
/// in this long is not going to.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The usual [`BridgeConfig::reattach_timeout`].
pub const DEFAULT_REATTACH_TIMEOUT: Duration = Duration::from_secs(600);

/// Bridge settings that do not come from the vassal file. Make one with
/// [`BridgeConfig::new`] and change the fields that differ from its defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BridgeConfig {
    /// What to create, and where the proxy socket goes.
    pub plan: ContainerPlan,
    /// The `[emperor]` section as the vassal file asked for it, before an operator policy
    /// filled in or forced anything: a reload is compared with this, so that only a change
    /// in the file recreates the container.
    pub requested_spec: spec::VassalSpec,
    /// The config text first pushed to the vassal.
    pub config: Vec<u8>,
    /// Which of the Emperor's channels the bridge relays. Default:
    /// [`EmperorChannels::Control`].
    pub emperor: EmperorChannels,
    /// How long the vassal has to connect to the proxy after start. Default: 30 s.
    pub handoff_timeout: Duration,
    /// Extra time, past the container's stop timeout, before we kill it; also the most a
    /// request in flight, and the final remove, may take once the vassal is stopping.
    /// Default: 5 s.
    pub stop_grace: Duration,
    /// The most any one daemon request may take to be answered. Default:
    /// [`DEFAULT_REQUEST_TIMEOUT`]; stop and remove have their own, shorter, bounds.
    pub request_timeout: Duration,
    /// How long a running vassal's bridge keeps trying to reach a daemon that went away
    /// before it gives up on the container. Default: [`DEFAULT_REATTACH_TIMEOUT`].
    pub reattach_timeout: Duration,
    /// The daemon's socket, as messages name it (the runtime connects to it). Default:
    /// `/var/run/docker.sock`.
    pub daemon_socket: String,
    /// Emit [`Event::Debug`] lines. Default: `false`.
    pub debug: bool,
    /// The `docker-pull` of a vassal that does not say. Default: [`PullPolicy::Missing`].
    pub pull: PullPolicy,
    /// The most a pull may take; the handoff deadline starts after it. Default:
    /// [`DEFAULT_PULL_TIMEOUT`].
    pub pull_timeout: Duration,
    /// Credentials for pulls, each sent only to its own registry. Default: none.
    pub registry_credentials: RegistryCredentials,
    /// The API version an earlier bridge negotiated with this very daemon (the runtime's
    /// cache, see [`Api::cache_line`]): no `/version` is asked, unless the daemon refuses
    /// it. Default: none.
    pub known_api: Option<Api>,
    /// The runtime limits how many containers are being created and started at once
    /// against the daemon (`UWSGIDOCKER_MAX_STARTS`): each launch takes a start slot
    /// ([`Action::TakeStartSlot`]) before its create and gives it back
    /// ([`Action::ReleaseStartSlot`]) once start is answered. Default: `false`.
    pub start_limit: bool,
}

/// The default [`BridgeConfig::pull_timeout`]: 600 s.
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(600);

impl BridgeConfig {
    /// Settings for `plan` with the defaults each field names.
    pub fn new(plan: ContainerPlan, requested_spec: spec::VassalSpec, config: Vec<u8>) -> Self {
        BridgeConfig {
            plan,
            requested_spec,
            config,
            emperor: EmperorChannels::Control,
            handoff_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(5),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            reattach_timeout: DEFAULT_REATTACH_TIMEOUT,
            daemon_socket: "/var/run/docker.sock".to_owned(),
            debug: false,
            pull: PullPolicy::Missing,
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            registry_credentials: RegistryCredentials::default(),
            known_api: None,
            start_limit: false,
        }
    }
}

/// The Emperor's channels the bridge was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmperorChannels {
    /// No Emperor (`uwsgi-docker run`): a vassal's stop request stops it, its config
    /// requests are answered with [`Action::ReadConfig`], and a changed `[emperor]` section
    /// applies at the next start.
    None,
    /// The control channel (`UWSGI_EMPEROR_FD`) only: config requests are answered with
    /// [`Action::ReadConfig`].
    Control,
    /// The control channel and a config channel (`UWSGI_EMPEROR_FD_CONFIG`): config
    /// requests are relayed to the Emperor, and its pushes to the vassal.
    ControlAndConfig,
}

impl EmperorChannels {
    /// There is an Emperor to relay control bytes to.
    pub fn has_control(self) -> bool {
        self != EmperorChannels::None
    }

    /// The Emperor answers config requests itself.
    pub fn has_config(self) -> bool {
        self == EmperorChannels::ControlAndConfig
    }
}

/// I/O for the runtime to do, in the order returned by
/// [`Bridge::poll_action`](super::Bridge::poll_action).
///
/// Deliberately exhaustive: a runtime must do every action, so a new one is a breaking
/// change that the compiler points out, not an arm that silently does nothing.
#[derive(Debug, Clone)]
pub enum Action {
    /// Open a new connection to dockerd; report failure with
    /// [`Bridge::handle_docker_connect_failed`](super::Bridge::handle_docker_connect_failed).
    DockerConnect(DockerConn),
    /// Write all these bytes to the connection.
    DockerSend(DockerConn, Vec<u8>),
    /// Close the connection; no more input is expected from it.
    DockerClose(DockerConn),
    /// Bind and listen on the proxy socket, removing a stale socket file first; answer
    /// with [`Bridge::handle_proxy_bound`](super::Bridge::handle_proxy_bound).
    BindProxy {
        /// The socket's host path.
        path: String,
    },
    /// Start reporting connections on the proxy listener with
    /// [`Bridge::handle_proxy_peer`](super::Bridge::handle_proxy_peer).
    AcceptProxy,
    /// Find the pid namespace of `pid` (host view); answer with
    /// [`Bridge::handle_pid_namespace`](super::Bridge::handle_pid_namespace). Asked only
    /// for a peer whose cgroup did not place it in the container.
    QueryPidNamespace {
        /// The container init's host pid.
        pid: u32,
    },
    /// Send `data` with these fds (SCM_RIGHTS) on the peer's connection, then close it.
    /// The channel fds are the vassal's ends of `generation`'s channels; the socket is the
    /// listening socket the bridge keeps (every generation gets the same one).
    Handoff {
        /// Whose channels.
        generation: Generation,
        /// Who gets them.
        peer: ProxyPeer,
        /// The message bytes.
        data: Vec<u8>,
        /// Which fds, in order.
        fds: Vec<HandedFd>,
    },
    /// Close this peer's connection unserved.
    RefusePeer {
        /// Who is refused.
        peer: ProxyPeer,
    },
    /// Is the bridge named by this `io.uwsgi-docker.bridge` label (`host:pid:starttime`)
    /// still running? Answer with
    /// [`Bridge::handle_bridge_alive`](super::Bridge::handle_bridge_alive): `true` also when
    /// the label names another host or cannot be read (not ours to judge).
    QueryBridgeAlive {
        /// The label's value.
        label: String,
    },
    /// Close the proxy listener and unlink its socket file.
    CloseProxy,
    /// Write to the Emperor's control channel.
    ToEmperor(Vec<u8>),
    /// Write to the bridge's end of this generation's relayed control channel.
    ToVassalControl(Generation, Vec<u8>),
    /// Write to the bridge's end of this generation's relayed config channel.
    ToVassalConfig(Generation, Vec<u8>),
    /// Make a new generation's relayed channels (socketpairs, as at start); answer with
    /// [`Bridge::handle_channels_prepared`](super::Bridge::handle_channels_prepared).
    PrepareChannels(Generation),
    /// Close both ends of this generation's channels: its vassal is gone, or never came.
    DropChannels(Generation),
    /// Plan the container for this config, as at start (spec, operator policy, launcher,
    /// checks), for a rollover; answer with
    /// [`Bridge::handle_rollover_plan`](super::Bridge::handle_rollover_plan).
    PlanRollover {
        /// The vassal config with the changed `[emperor]` section.
        config: Vec<u8>,
    },
    /// Read the vassal's config source again; answer with
    /// [`Bridge::handle_config`](super::Bridge::handle_config).
    ReadConfig,
    /// Write the container id to the `docker-cidfile` path (and remove it at exit); answer
    /// with [`Bridge::handle_cidfile_written`](super::Bridge::handle_cidfile_written).
    WriteCidFile {
        /// The `docker-cidfile` path.
        path: String,
        /// The container id.
        id: String,
    },
    /// The bridge negotiated this API version with the daemon: keep it for the next
    /// bridges ([`BridgeConfig::known_api`], [`Api::cache_line`]). Nothing answers it.
    RememberApi(Api),
    /// Take one of the host's start slots for this generation's launch, without waiting;
    /// answer with [`Bridge::handle_start_slot`](super::Bridge::handle_start_slot).
    /// Asked only when [`BridgeConfig::start_limit`] is set.
    TakeStartSlot(Generation),
    /// Give back the start slot this generation's launch holds.
    ReleaseStartSlot(Generation),
    /// Something for the Emperor's log.
    Log(Event),
    /// Everything is cleaned up: exit with this code.
    Exit(i32),
}

/// Where the vassal is, as [`Bridge::phase`](super::Bridge::phase) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Binding the proxy, negotiating the API, creating the container (and settling a
    /// name conflict).
    Creating,
    /// Attaching and starting the container.
    Starting,
    /// Waiting for the vassal to connect to the proxy socket.
    AwaitingVassal,
    /// The vassal has its channels; the bridge relays them.
    Running,
    /// The vassal runs, and a new container for its changed `[emperor]` section is brought
    /// up beside it (or the old one is retired after the switch).
    RollingOver,
    /// The daemon went away while the container ran; the bridge tries to reach it again.
    Reattaching,
    /// Cleaning up: stopping and removing what exists.
    Stopping,
    /// Done; [`Action::Exit`] was the last action.
    Exited,
}

/// How the vassal ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// Stopped on request (Emperor, signal); exit code 0.
    Stopped,
    /// The container exited by itself with this status.
    ContainerExited(i64),
    /// The vassal closed its Emperor channel and its container's exit status was not
    /// reported in time (or its container could not be found again).
    VassalLeft,
    /// Something failed.
    Failed(BridgeError),
    /// A reload brought a changed `[emperor]` section: the container was removed so that
    /// the Emperor starts the vassal again, in a container made to the new settings.
    Recreate,
}

impl Outcome {
    /// The bridge's exit code: 0 for [`Outcome::Stopped`], 1 otherwise (the Emperor
    /// respawns a vassal that exits by itself).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Stopped => 0,
            _ => 1,
        }
    }
}
