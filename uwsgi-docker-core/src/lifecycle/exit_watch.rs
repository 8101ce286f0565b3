//! The `/wait` stream: armed when its head arrives, done when its body (the exit status)
//! arrives, which is when the container exits.
//!
//! An engine may lose the exit: Podman up to 5.8.2 subscribes to the container's "died"
//! event only after answering `wait?condition=next-exit`, so a container that exits at once
//! is never reported on that wait (podman#28514). The end of the container's output (the
//! attach stream's EOF) is the sign it exited; if the wait has not said so
//! [`EXIT_REPORT_GRACE`] later, it is asked again with `condition=not-running`, which
//! answers at once for a container that is not running.
use std::time::{Duration, Instant};

use super::errors::DaemonFault;
use super::interface::{Action, DockerConn};
use super::outbox::Outbox;
use super::requests::Pending;
use crate::docker::{self, Api};
use crate::http_reader::{Limits, Progress, ResponseReader};

/// How long after the container's output ended its wait may take to report the exit
/// before it is asked again (Docker reports it within milliseconds).
pub(super) const EXIT_REPORT_GRACE: Duration = Duration::from_secs(1);

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
                    cause: source,
                }),
            },
            Err(source) => WaitProgress::Failed(DaemonFault::BadReply {
                what: "wait ",
                cause: source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::ApiVersion;

    fn open(wait_for: WaitFor) -> (ExitWatch, Vec<u8>) {
        let now = Instant::now();
        let mut out = Outbox::new(false);
        let api = Api::negotiate(ApiVersion {
            major: 1,
            minor: 41,
        })
        .expect("supported");
        let watch = ExitWatch::open(&mut out, api, "abc", wait_for, now, now);
        let sent = std::iter::from_fn(|| out.pop())
            .find_map(|a| match a {
                Action::DockerSend(_, bytes) => Some(bytes),
                _ => None,
            })
            .expect("the wait request");
        (watch, sent)
    }

    #[test]
    fn armed_at_the_head_and_done_at_the_body() {
        let (mut watch, sent) = open(WaitFor::NextExit);
        assert!(sent.starts_with(b"POST /v1.41/containers/abc/wait?condition=next-exit "));
        assert!(matches!(
            watch.on_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"),
            WaitProgress::Waiting
        ));
        assert!(matches!(watch.on_data(b"\r\n"), WaitProgress::Armed));
        assert!(watch.is_armed() && watch.pending().is_none());
        let body = b"{\"StatusCode\":7}\n";
        let chunk = format!(
            "{:x}\r\n{}\r\n0\r\n\r\n",
            body.len(),
            String::from_utf8_lossy(body)
        );
        assert!(matches!(
            watch.on_data(chunk.as_bytes()),
            WaitProgress::Exited(7)
        ));
    }

    #[test]
    fn an_error_reply_is_judged_whole_and_not_armed() {
        let (mut watch, sent) = open(WaitFor::NotRunning);
        assert!(sent.starts_with(b"POST /v1.41/containers/abc/wait?condition=not-running "));
        let reply = b"HTTP/1.1 404 Not Found\r\nContent-Length: 36\r\n\r\n{\"message\":\"No such container: abc\"}";
        assert!(matches!(
            watch.on_data(reply),
            WaitProgress::Failed(DaemonFault::Refused { .. })
        ));
        assert!(!watch.is_armed());
    }
}
