//! What the bridge reports for the log, as data: the front-end decides how a line looks
//! (which vassal it names, whether container output gets a prefix, how text is escaped).
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::errors::{seconds, BridgeError, DaemonFault};
use crate::attach::{AttachError, StreamKind};
use crate::docker::{DaemonError, PullSummary};
use crate::emperor::ConfigError;
use crate::spec::SpecError;

/// How loud an [`Event`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Only with `docker-debug` (the bridge's `debug` setting).
    Debug,
    /// The vassal's ordinary life, and its container's output.
    Info,
    /// Something failed.
    Error,
}

/// One thing for the Emperor's log ([`Action::Log`](super::Action::Log)).
///
/// Every variant but [`Event::Output`] displays as one line of text without the vassal's
/// name; the text may hold tenant-chosen values, so escape control bytes before printing
/// (see [`crate::attach::escape_control`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// One line the container wrote, without its line end; bytes need not be UTF-8.
    Output {
        /// Which stream (always stdout with a tty).
        stream: StreamKind,
        /// The line's bytes.
        line: Vec<u8>,
    },
    /// The vassal received its channels and runs.
    Running,
    /// The bridge lost the daemon while the container ran and found it again.
    Reattached,
    /// The container exited by itself with this status.
    ContainerExited {
        /// The exit status (128 + signal for a signal).
        status: i64,
    },
    /// The vassal failed; the bridge cleans up what exists.
    Failed(BridgeError),
    /// Anything else worth a line.
    Notice(Notice),
    /// A detail for `docker-debug`.
    Debug(String),
}

impl Event {
    /// How loud it is.
    pub fn level(&self) -> LogLevel {
        match self {
            Event::Output { .. } | Event::Reattached | Event::ContainerExited { .. } => {
                LogLevel::Info
            }
            // A vassal that runs says so itself.
            Event::Running => LogLevel::Debug,
            Event::Failed(_) => LogLevel::Error,
            Event::Notice(notice) => notice.level(),
            Event::Debug(_) => LogLevel::Debug,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Output { line, .. } => f.write_str(&crate::attach::line_text(line)),
            Event::Running => f.write_str("handed the Emperor's channels to the vassal"),
            Event::Reattached => f.write_str(
                "the docker daemon is back and the container still runs: re-attached to its output and exit",
            ),
            Event::ContainerExited { status } => {
                write!(f, "the container exited with status {status}")
            }
            Event::Failed(e) => write!(f, "{e}"),
            Event::Notice(notice) => write!(f, "{notice}"),
            Event::Debug(text) => f.write_str(text),
        }
    }
}

/// A line about the vassal's life that is not a failure of its own.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Notice {
    /// A proxy connection came from outside the vassal's container.
    #[error("refused a proxy connection from {}: it is not inside the vassal's container; still waiting for the vassal", .pid.map_or_else(|| "unknown pid".to_owned(), |p| format!("pid {p}")))]
    RefusedPeer {
        /// The peer's host pid, when known.
        pid: Option<u32>,
    },
    /// The container holding our name is ours and its bridge is gone: it is replaced.
    #[error("replacing the container {name} ({holder}): it is ours, for this vassal, and its bridge {bridge} is gone")]
    ReplacingHolder {
        /// The container name.
        name: String,
        /// The holder's short id.
        holder: String,
        /// The holder's bridge label.
        bridge: String,
    },
    /// The container holding our name is ours and its bridge still runs: we wait.
    #[error("the container name {name} is held by container {holder}, whose bridge {bridge} is still running; waiting for it to finish")]
    WaitingForLiveBridge {
        /// The container name.
        name: String,
        /// The holder's short id.
        holder: String,
        /// The holder's bridge label.
        bridge: String,
    },
    /// The Emperor's config channel sent something undecodable; it is no longer read.
    #[error("ignoring the Emperor's config channel: {0}")]
    EmperorConfigIgnored(ConfigError),
    /// No start slot could be had: this launch goes on without one.
    #[error("cannot take a start slot (UWSGIDOCKER_MAX_STARTS): {0}; creating the container without one")]
    StartSlotUnavailable(Arc<io::Error>),
    /// The vassal closed its Emperor channel.
    #[error("the vassal closed its Emperor channel")]
    VassalClosedChannel,
    /// The Emperor closed its channel: the container is stopped.
    #[error("the Emperor is gone; stopping the container")]
    EmperorGone,
    /// SIGTERM, SIGINT or SIGHUP.
    #[error("signalled; stopping the container")]
    Signalled,
    /// The vassal's config could not be read again.
    #[error("cannot read the vassal config again: {0}")]
    ConfigUnreadable(Arc<io::Error>),
    /// A reload brought a config that cannot be pushed.
    #[error("cannot push the config: {0}")]
    ConfigUnpushable(ConfigError),
    /// A reload changed the `[emperor]` section: the container is recreated.
    #[error("the [emperor] section changed; removing the container so that the Emperor starts the vassal again with the new settings")]
    Recreating,
    /// A reload changed the `[emperor]` section of a vassal that gets its listening socket
    /// from the bridge: a new container is brought up beside the running one.
    #[error("the [emperor] section changed; starting a new container (image {image}) beside the running one, which serves until the new one accepts requests")]
    RollingOver {
        /// The new container's image.
        image: String,
    },
    /// The new vassal accepts requests; its container has a health check, and the switch
    /// waits until the daemon says it is healthy.
    #[error("the new vassal accepts requests; waiting up to {} for its container's health check to pass before switching", seconds(*.within))]
    AwaitingHealth {
        /// The longest wait ([`crate::health::verdict_within`]).
        within: Duration,
    },
    /// The new container accepts requests and has the Emperor's channels.
    #[error("the new container {to} accepts requests and has the Emperor's channels; stopping the old container {from} gracefully")]
    RolledOver {
        /// The old container's short id.
        from: String,
        /// The new container's short id.
        to: String,
    },
    /// The old container of a rollover is removed: the rollover is complete.
    #[error("removed the old container {0}; the rollover is complete")]
    RetiredRemoved(String),
    /// The new container of a rollover did not come up; it is removed, the old one serves on.
    #[error("the rollover is abandoned and the running container keeps serving: {0}; the next change of the [emperor] section tries again")]
    RolloverAbandoned(Box<BridgeError>),
    /// After a rollover, the new container's id could not be written to `docker-cidfile`.
    #[error("{0}; it still names the old container")]
    CidfileStale(Box<BridgeError>),
    /// A config came while a rollover runs: it is judged again once the rollover is done.
    #[error("the vassal config changed again during the rollover; the newest one is applied when this rollover is done")]
    RolloverQueued,
    /// A reload changed the `[emperor]` section, and there is no Emperor to restart us.
    #[error(
        "the [emperor] section changed; docker-* changes apply when the vassal is next started"
    )]
    ChangeAppliesNextStart,
    /// A reload brought an invalid `[emperor]` section; the config is pushed anyway.
    #[error("the new config is invalid ({0}); it is pushed anyway")]
    ConfigInvalid(SpecError),
    /// A reload with unchanged settings found the image's tag naming another image than
    /// the running container's (`uwsgi-docker update` pulled it).
    #[error("the tag {image} names another image now: moving to it")]
    ImageMoved {
        /// The image as the vassal names it.
        image: String,
    },
    /// A pull's progress, at most once a second.
    #[error("pulling {image}: {progress}")]
    Pulling {
        /// The image as the vassal names it.
        image: String,
        /// Layers and megabytes so far.
        progress: PullSummary,
    },
    /// A pull is done.
    #[error("pulled {image} ({}) in {}", .digest.as_deref().unwrap_or("digest not reported"), seconds(*.took))]
    Pulled {
        /// The image as the vassal names it.
        image: String,
        /// `sha256:…`, when the daemon said it.
        digest: Option<String>,
        /// How long the pull took.
        took: Duration,
    },
    /// The daemon warned at create.
    #[error("docker: {0}")]
    DaemonWarning(String),
    /// The container exited by SIGKILL and inspect says the OOM killer did it.
    #[error("the container was OOM killed (out of memory, {}): raise docker-memory or make the app use less", .memory.map_or_else(|| "no docker-memory".to_owned(), |m| format!("docker-memory = {m} bytes")))]
    OomKilled {
        /// `docker-memory` in bytes, if set.
        memory: Option<u64>,
    },
    /// The container exited by SIGKILL, not from the OOM killer.
    #[error("the container was killed by SIGKILL (not by the OOM killer)")]
    KilledNotOom,
    /// The container exited by SIGKILL and could not be inspected (`None`: already removed).
    #[error("the container was killed by SIGKILL; {}", match .0 { None => "it was removed before it could be inspected, so whether the OOM killer did it is not known".to_owned(), Some(e) => format!("cannot inspect it for an OOM kill: {e}") })]
    KilledUninspected(Option<Box<BridgeError>>),
    /// After a lost create reply, the container holding the name was not made by us.
    #[error("the container named {name} ({holder}) was not made by this bridge; it is left alone")]
    NotMadeByUs {
        /// The container name.
        name: String,
        /// Its short id.
        holder: String,
    },
    /// After a lost create reply, whether the container exists could not be told.
    #[error(
        "cannot tell whether the container {name} was made: {reason}; if so, remove it by hand"
    )]
    CreatedUnknown {
        /// The container name.
        name: String,
        /// Why not.
        reason: Box<BridgeError>,
    },
    /// Stopping the container failed; it is removed by force.
    #[error("cannot stop the container: {0}; removing it by force")]
    StopFailed(DaemonError),
    /// Removing the container failed.
    #[error("cannot remove the container: {0}")]
    RemoveFailed(DaemonError),
    /// A cleanup request got no answer, or a request in flight at the stop did not.
    #[error("{0}")]
    CleanupFailed(DaemonFault),
    /// The container's output could not be read further; the vassal goes on without it.
    #[error("stopped reading the container's output: {0}")]
    OutputLost(AttachError),
    /// The daemon no longer knows the container: it was removed without its bridge (by
    /// the engine's AutoRemove before its exit could be read, or by hand).
    #[error("the container is gone: it was removed before its exit could be read")]
    ContainerGone,
    /// The daemon went away while the container ran: the bridge waits for it to come back.
    #[error("lost the docker daemon while the container runs ({0}); re-attaching when it is back")]
    DaemonLost(Box<BridgeError>),
}

impl Notice {
    /// How loud it is.
    pub fn level(&self) -> LogLevel {
        match self {
            Notice::RefusedPeer { .. }
            | Notice::EmperorConfigIgnored(_)
            | Notice::ConfigUnreadable(_)
            | Notice::ConfigUnpushable(_)
            | Notice::ConfigInvalid(_)
            | Notice::OomKilled { .. }
            | Notice::CreatedUnknown { .. }
            | Notice::StopFailed(_)
            | Notice::RemoveFailed(_)
            | Notice::CleanupFailed(_)
            | Notice::OutputLost(_)
            | Notice::DaemonLost(_)
            | Notice::RolloverAbandoned(_)
            | Notice::CidfileStale(_)
            | Notice::StartSlotUnavailable(_) => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}
