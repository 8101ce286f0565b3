//! The `/wait` stream: armed when its head arrives, done when its body (the exit status)
//! arrives, which is when the container exits.
use std::time::Instant;

use super::errors::DaemonFault;
use super::interface::{Action, DockerConn};
use super::outbox::Outbox;
use super::requests::Pending;
use crate::docker::{self, Api};
use crate::http_reader::{Limits, Progress, ResponseReader};

/// Which exit the wait reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WaitFor {
    /// The next exit: armed before start, so that no exit is missed.
    NextExit,
    /// Now if it is not running, else its exit: re-arming on a container that may have
    /// exited while the daemon was away.
    NotRunning,
}

/// What [`ExitWatch::on_data`] came to.
#[derive(Debug)]
pub(super) enum WaitProgress {
    Waiting,
    /// The head is in: the daemon watches for the exit.
    Armed,
    /// The container exited with this status.
    Exited(i64),
    Failed(DaemonFault),
}

#[derive(Debug)]
pub(super) struct ExitWatch {
    conn: DockerConn,
    reader: ResponseReader,
    armed: bool,
    /// Until the reply's head: its deadline.
    pending: Option<Pending>,
}

impl ExitWatch {
    pub(super) fn open(
        out: &mut Outbox,
        api: Api,
        id: &str,
        wait_for: WaitFor,
        now: Instant,
        deadline: Instant,
    ) -> ExitWatch {
        let conn = out.connect();
        let mut bytes = Vec::new();
        match wait_for {
            WaitFor::NextExit => api.wait_next_exit(id, &mut bytes),
            WaitFor::NotRunning => api.wait_not_running(id, &mut bytes),
        }
        let pending = Pending::new(&bytes, now, deadline);
        out.push(Action::DockerSend(conn, bytes));
        ExitWatch {
            conn,
            reader: ResponseReader::new(false, Limits::default()),
            armed: false,
            pending: Some(pending),
        }
    }

    pub(super) fn conn(&self) -> DockerConn {
        self.conn
    }

    pub(super) fn is_armed(&self) -> bool {
        self.armed
    }

    pub(super) fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    pub(super) fn forget_deadline(&mut self) {
        self.pending = None;
    }

    pub(super) fn on_data(&mut self, data: &[u8]) -> WaitProgress {
        let progress = self.reader.feed(data);
        let mut armed_now = false;
        if !self.armed {
            if let Some((status, _)) = self.reader.head() {
                // The head is the answer we were waiting for; the body comes at exit. An
                // error's body may still be arriving: the whole response is judged below.
                self.pending = None;
                if status == 200 {
                    self.armed = true;
                    armed_now = true;
                }
            }
        }
        match progress {
            Ok(Progress::Partial) if armed_now => WaitProgress::Armed,
            Ok(Progress::Partial) => WaitProgress::Waiting,
            Ok(Progress::Complete { response, .. }) => match docker::parse_wait_body(&response) {
                Ok(code) => WaitProgress::Exited(code),
                Err(source) => WaitProgress::Failed(DaemonFault::Refused {
                    action: "cannot wait for the container",
                    source,
                }),
            },
            Err(source) => WaitProgress::Failed(DaemonFault::BadReply {
                what: "wait ",
                source,
            }),
        }
    }
}
