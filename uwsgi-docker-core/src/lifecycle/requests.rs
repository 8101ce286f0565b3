//! The connection that carries the bridge's sequential daemon requests: one in flight at
//! a time, each with a deadline, reconnecting when the daemon closed an idle connection.
use std::time::Instant;

use super::errors::DaemonFault;
use super::interface::{Action, DockerConn};
use super::outbox::Outbox;
use crate::http_reader::{Limits, Progress, Response, ResponseReader};

/// What the request in flight is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ApiRequest {
    Version,
    /// `POST /images/create`: its answer streams progress ([`Reply::Body`]).
    Pull,
    Create,
    /// Once stopping, after a create whose answer was lost: did it make our container?
    InspectCreated,
    InspectConflict,
    RemoveConflict,
    Start,
    Inspect,
    /// The container exited with 137 (SIGKILL) by itself: was it the OOM killer?
    InspectExit,
    /// The daemon came back while re-attaching: does the container still run?
    InspectReattach,
    /// A reload of unchanged settings, before [`ApiRequest::InspectImage`]: which image does
    /// the container run? (Its start-up does not ask.)
    InspectRunningImage,
    /// A reload of unchanged settings: does the tag still name the image the container
    /// runs?
    InspectImage,
    /// A rollover's new container accepts requests: is its health check passing yet?
    InspectHealth,
    Stop,
    Remove,
}

impl ApiRequest {
    /// A request of a container's start-up: its [`Launch`](super::launch::Launch) takes
    /// the answer.
    pub(super) fn is_launch(self) -> bool {
        matches!(
            self,
            ApiRequest::Version
                | ApiRequest::Pull
                | ApiRequest::Create
                | ApiRequest::InspectConflict
                | ApiRequest::RemoveConflict
                | ApiRequest::Start
                | ApiRequest::Inspect
        )
    }
}

impl ApiRequest {
    /// Its `200` answer's body is passed on as it comes ([`Reply::Body`]).
    pub(super) fn streams(self) -> bool {
        self == ApiRequest::Pull
    }
}

/// A daemon reply we wait for, and until when.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    /// `METHOD /path`, for messages.
    what: String,
    sent: Instant,
    pub(super) deadline: Instant,
}

impl Pending {
    pub(super) fn new(bytes: &[u8], now: Instant, deadline: Instant) -> Pending {
        Pending {
            what: request_line(bytes),
            sent: now,
            deadline,
        }
    }

    pub(super) fn due(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    pub(super) fn timed_out(&self) -> DaemonFault {
        DaemonFault::Timeout {
            request: self.what.clone(),
            within: self.deadline.saturating_duration_since(self.sent),
        }
    }
}

#[derive(Debug)]
struct ApiConn {
    conn: DockerConn,
    reader: ResponseReader,
    in_flight: Option<(ApiRequest, Pending)>,
}

/// What a [`Requests`] input came to.
#[derive(Debug)]
pub(super) enum Reply {
    /// Nothing for the bridge yet.
    Nothing,
    /// The request in flight was answered.
    Answer(ApiRequest, Response),
    /// More of a streamed answer's body (a pull's progress); its end comes as an
    /// [`Reply::Answer`] carrying the rest.
    Body(ApiRequest, Vec<u8>),
    /// The request in flight failed; the connection is closed.
    Failed(ApiRequest, DaemonFault),
    /// The connection failed with no request in flight.
    Idle(DaemonFault),
}

/// The sequential request connection.
#[derive(Debug, Default)]
pub(super) struct Requests {
    conn: Option<ApiConn>,
    /// A request went unanswered past its deadline: the daemon is not to be waited on.
    unresponsive: bool,
}

impl Requests {
    /// Nothing in flight: the next request may go.
    pub(super) fn is_idle(&self) -> bool {
        self.conn.as_ref().is_none_or(|c| c.in_flight.is_none())
    }

    pub(super) fn owns(&self, conn: DockerConn) -> bool {
        self.conn.as_ref().is_some_and(|c| c.conn == conn)
    }

    /// A request went unanswered past its deadline since the bridge started.
    pub(super) fn daemon_unresponsive(&self) -> bool {
        self.unresponsive
    }

    /// A stream's reply went unanswered past its deadline: the daemon is not waited on
    /// again (shutdown skips the graceful stop).
    pub(super) fn mark_unresponsive(&mut self) {
        self.unresponsive = true;
    }

    /// Sends `bytes` as `request`, opening the connection first when needed.
    pub(super) fn send(
        &mut self,
        out: &mut Outbox,
        request: ApiRequest,
        bytes: Vec<u8>,
        deadline: Instant,
        now: Instant,
    ) {
        let pending = Pending::new(&bytes, now, deadline);
        let api = match self.conn.as_mut() {
            Some(api) => {
                api.reader.reset(false);
                api
            }
            None => self.conn.insert(ApiConn {
                conn: out.connect(),
                reader: ResponseReader::new(false, Limits::default()),
                in_flight: None,
            }),
        };
        api.in_flight = Some((request, pending));
        out.push(Action::DockerSend(api.conn, bytes));
    }

    pub(super) fn on_data(&mut self, out: &mut Outbox, data: &[u8]) -> Reply {
        let Some(api) = self.conn.as_mut() else {
            return Reply::Nothing;
        };
        let Some((request, _)) = api.in_flight else {
            // dockerd never speaks unasked on a keep-alive connection.
            self.close(out);
            return Reply::Idle(DaemonFault::Unsolicited);
        };
        match api.reader.feed(data) {
            Ok(Progress::Partial)
                if request.streams()
                    && api.reader.head().is_some_and(|(status, _)| status == 200) =>
            {
                match api.reader.take_body() {
                    body if body.is_empty() => Reply::Nothing,
                    body => Reply::Body(request, body),
                }
            }
            Ok(Progress::Partial) => Reply::Nothing,
            Ok(Progress::Complete { response, .. }) => {
                api.in_flight = None;
                Reply::Answer(request, response)
            }
            Err(source) => {
                self.close(out);
                Reply::Failed(
                    request,
                    DaemonFault::BadReply {
                        what: "",
                        cause: source,
                    },
                )
            }
        }
    }

    /// The daemon closed the connection: a close-delimited body may end here; an idle
    /// keep-alive connection closing is fine (the next request reconnects).
    pub(super) fn on_eof(&mut self, out: &mut Outbox) -> Reply {
        let Some(mut api) = self.conn.take() else {
            return Reply::Nothing;
        };
        out.push(Action::DockerClose(api.conn));
        match api.in_flight.take() {
            None => Reply::Nothing,
            Some((request, _)) => match api.reader.finish() {
                Ok(response) => Reply::Answer(request, response),
                Err(e) => Reply::Failed(request, DaemonFault::ClosedMidReply(e)),
            },
        }
    }

    pub(super) fn on_connect_failed(&mut self, fault: DaemonFault) -> Reply {
        match self.conn.take().and_then(|api| api.in_flight) {
            Some((request, _)) => Reply::Failed(request, fault),
            None => Reply::Idle(fault),
        }
    }

    /// The request in flight, if its deadline has passed: the connection is closed and the
    /// daemon marked unresponsive.
    pub(super) fn take_overdue(&mut self, out: &mut Outbox, now: Instant) -> Reply {
        let overdue = |a: &mut ApiConn| a.in_flight.as_ref().is_some_and(|(_, p)| p.due(now));
        let Some(api) = self.conn.take_if(overdue) else {
            return Reply::Nothing;
        };
        out.push(Action::DockerClose(api.conn));
        self.unresponsive = true;
        match api.in_flight {
            Some((request, pending)) => Reply::Failed(request, pending.timed_out()),
            None => Reply::Nothing,
        }
    }

    /// What is in flight gets until `latest`, no more.
    pub(super) fn cap_deadline(&mut self, latest: Instant) {
        if let Some((_, pending)) = self.conn.as_mut().and_then(|a| a.in_flight.as_mut()) {
            pending.deadline = pending.deadline.min(latest);
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.conn
            .as_ref()
            .and_then(|c| c.in_flight.as_ref())
            .map(|(_, p)| p.deadline)
    }

    pub(super) fn close(&mut self, out: &mut Outbox) {
        if let Some(api) = self.conn.take() {
            out.push(Action::DockerClose(api.conn));
        }
    }
}

/// `METHOD /path` of an HTTP request, without the API version prefix and the query: how
/// messages name a request.
pub(super) fn request_line(bytes: &[u8]) -> String {
    let line = bytes
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let path = match path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            rest.find('/').map_or(path, |i| &rest[i..])
        }
        _ => path,
    };
    format!("{method} {path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::errors::seconds;
    use std::time::Duration;

    fn sent(out: &mut Outbox) -> Vec<Action> {
        std::iter::from_fn(|| out.pop()).collect()
    }

    #[test]
    fn one_connection_carries_requests_in_turn_and_an_answer_frees_it() {
        let now = Instant::now();
        let mut out = Outbox::new(false);
        let mut requests = Requests::default();
        assert!(requests.is_idle());
        let bytes = b"GET /v1.41/version HTTP/1.1\r\nHost: docker\r\n\r\n".to_vec();
        requests.send(&mut out, ApiRequest::Version, bytes.clone(), now, now);
        assert!(!requests.is_idle());
        let actions = sent(&mut out);
        assert!(
            matches!(actions.as_slice(), [Action::DockerConnect(DockerConn(0)), Action::DockerSend(DockerConn(0), b)] if *b == bytes)
        );
        let reply = requests.on_data(&mut out, b"HTTP/1.1 204 No Content\r\n\r\n");
        assert!(matches!(reply, Reply::Answer(ApiRequest::Version, r) if r.status == 204));
        assert!(requests.is_idle());
        requests.send(&mut out, ApiRequest::Start, bytes, now, now);
        assert!(
            matches!(
                sent(&mut out).as_slice(),
                [Action::DockerSend(DockerConn(0), _)]
            ),
            "the connection is reused"
        );
    }

    #[test]
    fn an_overdue_request_is_named_closed_and_marks_the_daemon_unresponsive() {
        let now = Instant::now();
        let mut out = Outbox::new(false);
        let mut requests = Requests::default();
        let bytes = b"POST /v1.41/containers/x/stop?t=3 HTTP/1.1\r\n\r\n".to_vec();
        requests.send(
            &mut out,
            ApiRequest::Stop,
            bytes,
            now + Duration::from_secs(8),
            now,
        );
        let _ = sent(&mut out);
        assert!(matches!(
            requests.take_overdue(&mut out, now),
            Reply::Nothing
        ));
        requests.cap_deadline(now + Duration::from_secs(5));
        assert_eq!(requests.deadline(), Some(now + Duration::from_secs(5)));
        let reply = requests.take_overdue(&mut out, now + Duration::from_secs(5));
        let Reply::Failed(ApiRequest::Stop, fault) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(
            fault.to_string(),
            "docker daemon did not answer POST /containers/x/stop within 5 s"
        );
        assert!(requests.daemon_unresponsive() && requests.is_idle());
        assert!(matches!(
            sent(&mut out).as_slice(),
            [Action::DockerClose(DockerConn(0))]
        ));
    }

    #[test]
    fn a_close_mid_reply_fails_the_request_and_an_idle_close_is_fine() {
        let now = Instant::now();
        let mut out = Outbox::new(false);
        let mut requests = Requests::default();
        assert!(matches!(requests.on_eof(&mut out), Reply::Nothing));
        requests.send(
            &mut out,
            ApiRequest::Create,
            b"POST /x HTTP/1.1\r\n\r\n".to_vec(),
            now,
            now,
        );
        let _ = requests.on_data(&mut out, b"HTTP/1.1 201 Created\r\nContent-Le");
        assert!(matches!(
            requests.on_eof(&mut out),
            Reply::Failed(ApiRequest::Create, DaemonFault::ClosedMidReply(_))
        ));
        assert!(matches!(
            requests.on_data(&mut out, b"late"),
            Reply::Nothing
        ));
    }

    #[test]
    fn request_lines_name_the_request_without_version_or_query() {
        assert_eq!(
            request_line(
                b"POST /v1.41/containers/create?name=app.ini HTTP/1.1\r\nHost: docker\r\n\r\n"
            ),
            "POST /containers/create"
        );
        assert_eq!(request_line(b"GET /version HTTP/1.1\r\n"), "GET /version");
    }

    #[test]
    fn seconds_are_whole_or_tenths() {
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
    }
}
