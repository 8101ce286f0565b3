//! One container of the vassal and what belongs to it alone: its streams, its proxy gate
//! (and init pid), and the generation of relayed channels its vassal gets.
use std::time::Instant;

use super::errors::DaemonFault;
use super::exit_watch::{ExitWatch, WaitProgress};
use super::interface::{Action, DockerConn, Generation};
use super::log_relay::{AttachProgress, LogRelay};
use super::outbox::Outbox;
use super::proxy_gate::ProxyGate;

/// What we know of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Container {
    /// Not created (yet).
    None,
    /// A create went out and its answer was lost: it may or may not exist.
    Unknown,
    Created(String),
    /// Start succeeded.
    Started(String),
    /// The wait reported its exit.
    Exited(String),
}

impl Container {
    pub(super) fn id(&self) -> Option<&str> {
        match self {
            Container::Created(id) | Container::Started(id) | Container::Exited(id) => Some(id),
            Container::None | Container::Unknown => None,
        }
    }
}

/// What an input on one of the container's streams came to.
#[derive(Debug)]
pub(super) enum StreamEvent {
    Nothing,
    /// The container's output ended (the attach stream closed after upgrading): its exit
    /// should follow on the wait.
    OutputEnded,
    /// The attach upgraded or the wait's head arrived.
    Armed,
    /// The wait reported the exit with this status (the wait is closed).
    Exited(i64),
    /// A stream failed; it is closed, except an attach that failed before upgrading
    /// (closed with the rest when its owner cleans up).
    Failed(DaemonFault),
}

#[derive(Debug)]
pub(super) struct Instance {
    pub(super) generation: Generation,
    pub(super) container: Container,
    pub(super) logs: Option<LogRelay>,
    pub(super) exit_watch: Option<ExitWatch>,
    pub(super) proxy: ProxyGate,
}

impl Instance {
    pub(super) fn new(generation: Generation) -> Instance {
        Instance {
            generation,
            container: Container::None,
            logs: None,
            exit_watch: None,
            proxy: ProxyGate::new(),
        }
    }

    /// The earliest deadline of its streams not yet armed.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let attach = self
            .logs
            .as_ref()
            .and_then(|l| l.pending())
            .map(|p| p.deadline);
        let wait = self
            .exit_watch
            .as_ref()
            .and_then(|w| w.pending())
            .map(|p| p.deadline);
        attach.into_iter().chain(wait).min()
    }

    pub(super) fn owns_stream(&self, conn: DockerConn) -> bool {
        self.logs.as_ref().is_some_and(|l| l.conn() == conn)
            || self.exit_watch.as_ref().is_some_and(|w| w.conn() == conn)
    }

    /// Both streams are ready: the attach (when there is one) upgraded, the wait armed.
    pub(super) fn streams_armed(&self) -> bool {
        self.logs.as_ref().is_none_or(LogRelay::is_upgraded)
            && self.exit_watch.as_ref().is_some_and(ExitWatch::is_armed)
    }

    /// Stops its streams' deadlines: nothing waits for them any more.
    pub(super) fn forget_deadlines(&mut self) {
        if let Some(logs) = self.logs.as_mut() {
            logs.forget_deadline();
        }
        if let Some(wait) = self.exit_watch.as_mut() {
            wait.forget_deadline();
        }
    }

    /// Closes its streams (what the attach stream holds is logged first).
    pub(super) fn close_streams(&mut self, out: &mut Outbox) {
        if let Some(mut logs) = self.logs.take() {
            logs.flush(out);
            out.push(Action::DockerClose(logs.conn()));
        }
        if let Some(wait) = self.exit_watch.take() {
            out.push(Action::DockerClose(wait.conn()));
        }
    }

    /// Bytes on one of its streams.
    pub(super) fn on_stream_data(
        &mut self,
        conn: DockerConn,
        data: &[u8],
        out: &mut Outbox,
    ) -> StreamEvent {
        if let Some(logs) = self.logs.as_mut().filter(|l| l.conn() == conn) {
            return match logs.on_data(data, out) {
                AttachProgress::Waiting | AttachProgress::Streaming => StreamEvent::Nothing,
                AttachProgress::Upgraded => StreamEvent::Armed,
                AttachProgress::Failed(fault) => StreamEvent::Failed(fault),
                AttachProgress::Lost => {
                    self.logs = None;
                    StreamEvent::Nothing
                }
            };
        }
        let Some(wait) = self.exit_watch.as_mut().filter(|w| w.conn() == conn) else {
            // Data on a connection we already dropped is ignored.
            return StreamEvent::Nothing;
        };
        match wait.on_data(data) {
            WaitProgress::Waiting => StreamEvent::Nothing,
            WaitProgress::Armed => StreamEvent::Armed,
            WaitProgress::Exited(status) => {
                out.push(Action::DockerClose(conn));
                self.exit_watch = None;
                if let Some(id) = self.container.id() {
                    self.container = Container::Exited(id.to_owned());
                }
                StreamEvent::Exited(status)
            }
            WaitProgress::Failed(fault) => {
                out.push(Action::DockerClose(conn));
                self.exit_watch = None;
                StreamEvent::Failed(fault)
            }
        }
    }

    /// The daemon closed one of its streams: an attach that upgraded just ends (its last
    /// line is logged); anything else is a stream we still needed.
    pub(super) fn on_stream_eof(&mut self, conn: DockerConn, out: &mut Outbox) -> StreamEvent {
        if let Some(mut logs) = self.logs.take_if(|l| l.conn() == conn) {
            out.push(Action::DockerClose(conn));
            if logs.is_upgraded() {
                logs.flush(out);
                return StreamEvent::OutputEnded;
            }
            return StreamEvent::Failed(DaemonFault::StreamClosed {
                stream: "attach",
                when: "before upgrading it",
            });
        }
        if self.exit_watch.take_if(|w| w.conn() == conn).is_some() {
            out.push(Action::DockerClose(conn));
            return StreamEvent::Failed(DaemonFault::StreamClosed {
                stream: "wait",
                when: "before the container exited",
            });
        }
        StreamEvent::Nothing
    }

    /// The connection of one of its streams could not be made.
    pub(super) fn on_stream_connect_failed(
        &mut self,
        conn: DockerConn,
        fault: DaemonFault,
    ) -> StreamEvent {
        let attach = self.logs.take_if(|l| l.conn() == conn).is_some();
        let wait = self.exit_watch.take_if(|w| w.conn() == conn).is_some();
        if attach || wait {
            StreamEvent::Failed(fault)
        } else {
            StreamEvent::Nothing
        }
    }

    /// A stream whose reply is overdue, closed, and why.
    pub(super) fn take_overdue_stream(
        &mut self,
        now: Instant,
        out: &mut Outbox,
    ) -> Option<DaemonFault> {
        let attach_due = |l: &mut LogRelay| l.pending().is_some_and(|p| p.due(now));
        if let Some(logs) = self.logs.take_if(attach_due) {
            out.push(Action::DockerClose(logs.conn()));
            return logs.pending().map(|p| p.timed_out());
        }
        let wait_due = |w: &mut ExitWatch| w.pending().is_some_and(|p| p.due(now));
        let wait = self.exit_watch.take_if(wait_due)?;
        out.push(Action::DockerClose(wait.conn()));
        wait.pending().map(|p| p.timed_out())
    }
}
