//! Why a vassal failed, grouped by who has to act: the vassal's author, the operator, the
//! daemon, or the host the bridge runs on.
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::docker::{DaemonError, PullFailure, PullStreamError};
use crate::emperor::ConfigError;
use crate::http_reader::HttpError;

/// Who has to act on a [`BridgeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The vassal file asks for something that cannot work (a missing image, say).
    VassalAuthor,
    /// The operator's setup stands in the way (a name held by a foreign container, say).
    Operator,
    /// The container engine refused, misbehaved or did not answer.
    Daemon,
    /// The host the bridge runs on (a socket that cannot be bound, say).
    Environment,
}

/// Why the vassal failed. Its [`Display`](std::fmt::Display) is one line for the log,
/// without the vassal's name (the front-end adds it); [`BridgeError::fault`] says who has
/// to act.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// See [`VassalError`].
    #[error(transparent)]
    Vassal(#[from] VassalError),
    /// See [`OperatorError`].
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// See [`DaemonFault`].
    #[error(transparent)]
    Daemon(#[from] DaemonFault),
    /// See [`HostError`].
    #[error(transparent)]
    Host(#[from] HostError),
}

impl BridgeError {
    /// The vassal ended because its container turned unhealthy.
    pub fn is_unhealthy(&self) -> bool {
        matches!(self, BridgeError::Vassal(VassalError::Unhealthy { .. }))
    }

    /// Who has to act.
    pub fn fault(&self) -> Fault {
        match self {
            BridgeError::Vassal(_) => Fault::VassalAuthor,
            BridgeError::Operator(_) => Fault::Operator,
            BridgeError::Daemon(_) => Fault::Daemon,
            BridgeError::Host(_) => Fault::Environment,
        }
    }
}

/// The vassal file asks for something that cannot work.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum VassalError {
    /// The config is too large to push over the Emperor protocol.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `docker-image` names an image this host does not have.
    #[error("docker image {image:?} not found ({cause}); {}", if *.pulled { "it was pulled, yet create does not find it: check docker-image" } else { "build or load it on this host, or set docker-pull = missing to pull it from its registry (docker-pull = never asks no registry)" })]
    ImageNotFound {
        /// The image as the vassal names it.
        image: String,
        /// The daemon's answer.
        cause: DaemonError,
        /// It was pulled just before.
        pulled: bool,
    },
    /// The image could not be pulled; nothing was created.
    #[error("cannot pull docker image {image:?}: {cause}; {}", pull_hint(.cause, .registry))]
    PullFailed {
        /// The image as the vassal names it.
        image: String,
        /// The registry it belongs to.
        registry: String,
        /// What the daemon said, sorted by cause.
        cause: PullFailure,
    },
    /// The daemon refused to create the container with these settings.
    #[error("cannot create the container: {cause}{hint}")]
    CreateRefused {
        /// The daemon's answer.
        cause: DaemonError,
        /// Which attribute is at fault and what to do, when that can be told (starts with `; `).
        hint: String,
    },
    /// The daemon refused to start the container (a port in use, a bad command).
    #[error("cannot start the container: {0}")]
    StartRefused(DaemonError),
    /// The container's health check says unhealthy and `docker-health-restart` is set.
    #[error("the container is unhealthy ({detail}); docker-health-restart is set, so the vassal ends and the Emperor starts it again")]
    Unhealthy {
        /// The failing streak and the last check's output, as the daemon reported them.
        detail: String,
    },
    /// A changed `[emperor]` section that the runtime cannot plan a container for (a bad
    /// attribute, the operator's policy).
    #[error("the new settings are refused: {reason}")]
    SettingsRefused {
        /// Why, naming the vassal, the attribute and its value.
        reason: String,
    },
    /// A rollover's new container exited before its vassal accepted requests.
    #[error("the new container exited with status {status} before it accepted requests")]
    ExitedBeforeAccepting {
        /// The exit status.
        status: i64,
    },
    /// A rollover's new vassal had its channels but did not report that it accepts requests.
    #[error("the new vassal did not report that it accepts requests within {} s of its handoff", .within.as_secs())]
    NeverAccepting {
        /// The deadline.
        within: Duration,
    },
    /// A rollover's new container turned unhealthy before the switch.
    #[error("the new container turned unhealthy before the switch ({detail})")]
    UnhealthyBeforeSwitch {
        /// The failing streak and the last check's output, as the daemon reported them.
        detail: String,
    },
    /// A rollover's new container accepted requests but was not healthy in time.
    #[error("the new container was not healthy within {} of accepting requests ({detail}); that is its start period plus one more check than its retries (docker-health-*)", seconds(*.within))]
    NeverHealthy {
        /// The wait, from the health settings ([`crate::health::verdict_within`]).
        within: Duration,
        /// The last report: the status, the streak and the last check's output.
        detail: String,
    },
    /// A rollover's new vassal closed its channel, or asked to be stopped, before accepting.
    #[error("the new vassal left (closed its Emperor channel or asked to stop) before it accepted requests")]
    LeftBeforeAccepting,
    /// The vassal did not connect to the proxy socket in time.
    #[error("the vassal did not connect to the proxy socket {path} within {} s; {hint}", .within.as_secs())]
    NeverConnected {
        /// The socket's path inside the container.
        path: String,
        /// The handoff deadline.
        within: Duration,
        /// The likely causes, and what to do.
        hint: String,
    },
}

/// What to check after a failed pull.
fn pull_hint(cause: &PullFailure, registry: &str) -> String {
    match cause {
        PullFailure::NotFound(_) => "check docker-image's name and tag, and that it was pushed".to_owned(),
        PullFailure::Unauthorized(_) => format!("check docker-image's name (a registry also refuses a repository that does not exist this way) and that UWSGIDOCKER_REGISTRY_AUTH has an entry for {registry} that the registry accepts"),
        PullFailure::Unreachable(_) => format!("check that {registry} is up and reachable from the container engine"),
        _ => "the image was not pulled".to_owned(),
    }
}

/// The operator's setup stands in the way.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The container name is taken by a container that is not ours to replace.
    #[error("the container name {name} is taken by container {holder}, which is not ours to replace: {why}. It is left alone: rename or remove it, or change the vassal's name or the Emperor's docker-name-prefix")]
    NameHeldByForeign {
        /// The container name.
        name: String,
        /// The holder's short id.
        holder: String,
        /// Which label says it is not ours.
        why: String,
    },
    /// The holder is ours for this vassal but has no bridge label.
    #[error("the container name {name} is taken by container {holder}, made for this vassal but with no bridge label, so whether its bridge is gone cannot be told. It is left alone: remove it if no bridge runs it")]
    NameHeldWithoutBridge {
        /// The container name.
        name: String,
        /// The holder's short id.
        holder: String,
    },
    /// The holder's bridge still runs, after every retry.
    #[error("the container name {name} is held by container {holder}, ours for this vassal, whose bridge {bridge} is still running (or runs on another host); it is left alone: stop that bridge or its Emperor, or give this Emperor another docker-name-prefix")]
    NameHeldByLiveBridge {
        /// The container name.
        name: String,
        /// The holder's short id.
        holder: String,
        /// The holder's bridge label.
        bridge: String,
    },
    /// The name was still taken after every try.
    #[error(
        "the container name {name} is still taken after {tries} tries to create the container"
    )]
    NameStillTaken {
        /// The container name.
        name: String,
        /// How many creates were tried.
        tries: u8,
    },
}

/// The container engine refused, misbehaved or did not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonFault {
    /// The daemon's socket could not be connected to.
    #[error("cannot connect to the docker daemon at {daemon}: {cause}")]
    Unreachable {
        /// The daemon's socket.
        daemon: String,
        /// What the runtime saw.
        cause: Arc<io::Error>,
    },
    /// A request went unanswered past its deadline.
    #[error("docker daemon did not answer {request} within {}", seconds(*.within))]
    Timeout {
        /// `METHOD /path` of the request.
        request: String,
        /// How long it was given.
        within: Duration,
    },
    /// The daemon closed a connection in the middle of a reply.
    #[error("docker daemon closed the connection: {0}")]
    ClosedMidReply(HttpError),
    /// The daemon closed a stream we still needed.
    #[error("docker daemon closed the {stream} connection {when}")]
    StreamClosed {
        /// `attach` or `wait`.
        stream: &'static str,
        /// `before upgrading it`, `before the container exited`.
        when: &'static str,
    },
    /// A reply that is not HTTP as we know it.
    #[error("bad {what}reply from the docker daemon: {cause}")]
    BadReply {
        /// `attach `, `wait ` or empty.
        what: &'static str,
        /// What the HTTP reader found.
        cause: HttpError,
    },
    /// Bytes on an idle connection.
    #[error("docker daemon sent data nobody asked for")]
    Unsolicited,
    /// The pull's progress stream could not be read.
    #[error("docker daemon sent a pull progress stream we cannot read: {0}")]
    BadPullStream(PullStreamError),
    /// The daemon answered a request with an error.
    #[error("{action}: {cause}")]
    Refused {
        /// `cannot attach to the container`, …
        action: &'static str,
        /// The daemon's answer.
        cause: DaemonError,
    },
    /// API negotiation failed (a daemon too old, a malformed version reply).
    #[error("{0}")]
    Negotiation(DaemonError),
    /// The name is taken and the container holding it cannot be inspected.
    #[error("the container name {name} is taken, and the container holding it cannot be inspected: {cause}")]
    HolderUninspectable {
        /// The container name.
        name: String,
        /// The daemon's answer.
        cause: DaemonError,
    },
    /// The holder of our name is ours and its bridge is gone, but it cannot be removed.
    #[error("cannot remove the container {name} ({holder}) that holds our name, though its bridge is gone: {cause}")]
    HolderUnremovable {
        /// The container name.
        name: String,
        /// The holder's short id.
        holder: String,
        /// The daemon's answer.
        cause: DaemonError,
    },
    /// The daemon stayed away longer than the bridge waits to re-attach.
    #[error("the docker daemon was unreachable for {} while the container ran; giving up re-attaching to container {container}", seconds(*.after))]
    GaveUpReattaching {
        /// The container's short id.
        container: String,
        /// How long we tried.
        after: Duration,
    },
}

/// The host the bridge runs on failed one of the runtime's operations.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The proxy socket could not be bound.
    #[error("cannot bind the proxy socket {path}: {cause}")]
    ProxyBind {
        /// The socket's host path.
        path: String,
        /// What the runtime saw.
        cause: Arc<io::Error>,
    },
    /// The pid namespace of the container's init could not be read.
    #[error("cannot read the pid namespace of the container's init (pid {pid})")]
    PidNamespace {
        /// The init's host pid.
        pid: u32,
    },
    /// A rollover's relayed channels could not be made.
    #[error("cannot create the relayed channels for the new container: {cause}")]
    Channels {
        /// What the runtime saw.
        cause: Arc<io::Error>,
    },
    /// `docker-cidfile` could not be written safely.
    #[error("cannot write docker-cidfile {path}: {cause}")]
    Cidfile {
        /// The cidfile's path.
        path: String,
        /// What the runtime saw.
        cause: Arc<io::Error>,
    },
}

/// `30 s`, `2.5 s`.
pub(super) fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    /// One error convention: a cause printed in `Display` is not also returned from
    /// `source()` (a caller that prints the chain would print it twice).
    #[test]
    fn a_printed_cause_is_not_also_the_source() {
        let daemon = || DaemonError::Status {
            status: 500,
            message: "boom".into(),
        };
        let io = || Arc::new(io::Error::other("no space"));
        let errors: Vec<BridgeError> = vec![
            VassalError::ImageNotFound {
                image: "app".into(),
                cause: daemon(),
                pulled: false,
            }
            .into(),
            VassalError::CreateRefused {
                cause: daemon(),
                hint: String::new(),
            }
            .into(),
            VassalError::StartRefused(daemon()).into(),
            VassalError::Config(ConfigError::Empty).into(),
            DaemonFault::Unreachable {
                daemon: "/run/docker.sock".into(),
                cause: io(),
            }
            .into(),
            DaemonFault::Refused {
                action: "cannot attach",
                cause: daemon(),
            }
            .into(),
            DaemonFault::HolderUninspectable {
                name: "app".into(),
                cause: daemon(),
            }
            .into(),
            DaemonFault::HolderUnremovable {
                name: "app".into(),
                holder: "c0ffee".into(),
                cause: daemon(),
            }
            .into(),
            DaemonFault::ClosedMidReply(HttpError::Truncated).into(),
            DaemonFault::Negotiation(daemon()).into(),
            HostError::ProxyBind {
                path: "/run/app.sock".into(),
                cause: io(),
            }
            .into(),
            HostError::Channels { cause: io() }.into(),
            HostError::Cidfile {
                path: "/run/app.cid".into(),
                cause: io(),
            }
            .into(),
        ];
        for error in errors {
            let text = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                assert!(
                    !text.contains(&cause.to_string()),
                    "{text:?} prints its source {cause:?}"
                );
                source = cause.source();
            }
        }
    }
}
