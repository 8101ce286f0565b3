//! The attach stream: an HTTP exchange until `101`, then the container's output, split
//! into lines for the log.
use std::time::Instant;

use super::errors::DaemonFault;
use super::events::{Event, Notice};
use super::interface::{Action, DockerConn};
use super::outbox::Outbox;
use super::requests::Pending;
use crate::attach::{Demuxer, LineSplitter, StreamKind};
use crate::docker::{self, Api};
use crate::http_reader::{Limits, Progress, ResponseReader};

/// Longest log line before it is split.
const MAX_LOG_LINE: usize = 16 * 1024;

/// What [`LogRelay::on_data`] came to.
#[derive(Debug)]
pub(super) enum AttachProgress {
    /// Still waiting for the reply's head.
    Waiting,
    /// The daemon answered `101`: output flows (and whatever came with it is relayed).
    Upgraded,
    /// More output was relayed.
    Streaming,
    /// The daemon refused or garbled the attach.
    Failed(DaemonFault),
    /// The output stream broke; it is closed and the vassal goes on without it.
    Lost,
}

#[derive(Debug)]
pub(super) struct LogRelay {
    conn: DockerConn,
    reader: ResponseReader,
    upgraded: bool,
    /// Until `101`: the reply's deadline.
    pending: Option<Pending>,
    demuxer: Demuxer,
    stdout: LineSplitter,
    stderr: LineSplitter,
}

impl LogRelay {
    /// Opens a connection and sends the attach request for container `id`.
    pub(super) fn open(
        out: &mut Outbox,
        api: Api,
        id: &str,
        tty: bool,
        now: Instant,
        deadline: Instant,
    ) -> LogRelay {
        let conn = out.connect();
        let mut bytes = Vec::new();
        api.attach(id, &mut bytes);
        let pending = Pending::new(&bytes, now, deadline);
        out.push(Action::DockerSend(conn, bytes));
        LogRelay {
            conn,
            reader: ResponseReader::new(false, Limits::default()),
            upgraded: false,
            pending: Some(pending),
            demuxer: Demuxer::new(tty),
            stdout: LineSplitter::new(None, MAX_LOG_LINE),
            stderr: LineSplitter::new(None, MAX_LOG_LINE),
        }
    }

    pub(super) fn conn(&self) -> DockerConn {
        self.conn
    }

    pub(super) fn is_upgraded(&self) -> bool {
        self.upgraded
    }

    pub(super) fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    /// Nothing waits for the upgrade any more (the vassal is stopping).
    pub(super) fn forget_deadline(&mut self) {
        self.pending = None;
    }

    pub(super) fn on_data(&mut self, data: &[u8], out: &mut Outbox) -> AttachProgress {
        let mut stream = data;
        let mut progress = AttachProgress::Streaming;
        if !self.upgraded {
            match self.reader.feed(data) {
                Ok(Progress::Partial) => return AttachProgress::Waiting,
                Ok(Progress::Complete { response, consumed }) => {
                    if let Err(source) = docker::parse_attach(&response) {
                        return AttachProgress::Failed(DaemonFault::Refused {
                            action: "cannot attach to the container",
                            cause: source,
                        });
                    }
                    self.upgraded = true;
                    self.pending = None;
                    stream = data.get(consumed..).unwrap_or_default();
                    progress = AttachProgress::Upgraded;
                }
                Err(source) => {
                    return AttachProgress::Failed(DaemonFault::BadReply {
                        what: "attach ",
                        cause: source,
                    })
                }
            }
        }
        let LogRelay {
            demuxer,
            stdout,
            stderr,
            ..
        } = self;
        let result = demuxer.feed(stream, &mut |kind, bytes| {
            let splitter = if kind == StreamKind::Stderr {
                &mut *stderr
            } else {
                &mut *stdout
            };
            splitter.push(bytes, &mut |line| {
                out.event(Event::Output {
                    stream: kind,
                    line: line.to_vec(),
                })
            });
        });
        if let Err(e) = result {
            // Losing the logs is no reason to kill the vassal.
            out.notice(Notice::OutputLost(e));
            out.push(Action::DockerClose(self.conn));
            return AttachProgress::Lost;
        }
        progress
    }

    /// The stream ended: what is left of a last line is relayed.
    pub(super) fn flush(&mut self, out: &mut Outbox) {
        for (kind, splitter) in [
            (StreamKind::Stdout, &mut self.stdout),
            (StreamKind::Stderr, &mut self.stderr),
        ] {
            splitter.flush(&mut |line| {
                out.event(Event::Output {
                    stream: kind,
                    line: line.to_vec(),
                })
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::ApiVersion;

    fn api() -> Api {
        Api::negotiate(ApiVersion {
            major: 1,
            minor: 41,
        })
        .expect("supported")
    }

    fn lines(out: &mut Outbox) -> Vec<(StreamKind, Vec<u8>)> {
        std::iter::from_fn(|| out.pop())
            .filter_map(|a| match a {
                Action::Log(Event::Output { stream, line }) => Some((stream, line)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn output_after_the_upgrade_is_split_into_lines_per_stream() {
        let now = Instant::now();
        let mut out = Outbox::new(false);
        let mut relay = LogRelay::open(&mut out, api(), "abc", false, now, now);
        assert!(relay.pending().is_some());
        assert!(matches!(
            relay.on_data(b"HTTP/1.1 101 UPGRADED\r\n", &mut out),
            AttachProgress::Waiting
        ));
        let mut frame = b"\r\n".to_vec();
        frame.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 6]);
        frame.extend_from_slice(b"out\npa");
        assert!(matches!(
            relay.on_data(&frame, &mut out),
            AttachProgress::Upgraded
        ));
        assert!(relay.is_upgraded() && relay.pending().is_none());
        let mut err = vec![2, 0, 0, 0, 0, 0, 0, 4];
        err.extend_from_slice(b"err\n");
        assert!(matches!(
            relay.on_data(&err, &mut out),
            AttachProgress::Streaming
        ));
        relay.flush(&mut out);
        assert_eq!(
            lines(&mut out),
            [
                (StreamKind::Stdout, b"out".to_vec()),
                (StreamKind::Stderr, b"err".to_vec()),
                (StreamKind::Stdout, b"pa".to_vec()),
            ]
        );
    }

    #[test]
    fn a_refused_attach_and_a_broken_stream_are_told_apart() {
        let now = Instant::now();
        let mut out = Outbox::new(false);
        let mut relay = LogRelay::open(&mut out, api(), "abc", false, now, now);
        let refused = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}";
        assert!(matches!(
            relay.on_data(refused, &mut out),
            AttachProgress::Failed(DaemonFault::Refused { .. })
        ));
        let mut relay = LogRelay::open(&mut out, api(), "abc", false, now, now);
        let _ = relay.on_data(b"HTTP/1.1 101 UPGRADED\r\n\r\n", &mut out);
        assert!(matches!(
            relay.on_data(&[9, 0, 0, 0, 0, 0, 0, 1, b'x'], &mut out),
            AttachProgress::Lost
        ));
    }
}
