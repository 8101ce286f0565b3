//! An incremental HTTP/1.1 response reader, for replies from dockerd.
//!
//! Feed bytes as they arrive; the reader returns [`Progress::Partial`] until one whole
//! response is in, then [`Progress::Complete`] with how many of the fed bytes it used. Handles Content-Length, chunked (with trailers), close-delimited
//! bodies (finished by [`ResponseReader::finish`] at EOF), no-body statuses (1xx, 204,
//! 304, replies to HEAD) and `101` upgrades, where the bytes past the head are stream data
//! and are left unconsumed for the caller. Hard caps turn a misbehaving daemon into an error.
//!
//! [`ResponseReader::head`] shows the status and headers as soon as the head is in, before
//! the body: `/wait` sends its head at once and its body only when the container exits.
//! Chunk extensions and trailers are checked for shape and size, then dropped.
//!
//! ```
//! use uwsgi_docker_core::http_reader::{Limits, Progress, ResponseReader};
//!
//! let mut reader = ResponseReader::new(false, Limits::default());
//! // A chunked reply, split anywhere across reads.
//! assert_eq!(reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")?, Progress::Partial);
//! assert_eq!(reader.head().map(|(status, _)| status), Some(200));
//! let Progress::Complete { response, consumed } = reader.feed(b"lo\r\n0\r\n\r\nNEXT")? else {
//!     panic!("the reply is complete");
//! };
//! assert_eq!(response.body, b"hello");
//! assert_eq!(consumed, 9); // "NEXT" belongs to whatever comes next
//! # Ok::<(), uwsgi_docker_core::http_reader::HttpError>(())
//! ```

/// One header: the name lower-cased, the value as sent.
pub type Header = (String, Vec<u8>);

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The status code (`200`, `101`, `404`, …).
    pub status: u16,
    /// Header names lower-cased, values as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The de-chunked body; empty for an upgrade.
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// What [`ResponseReader::feed`] made of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// All input was consumed; more is needed.
    Partial,
    /// One response is complete; `consumed` bytes of this call's input belong to it. For a
    /// `101`, the rest of the input is the upgraded stream.
    Complete {
        /// The whole response.
        response: Response,
        /// How many bytes of this call's input the response used.
        consumed: usize,
    },
}

/// Size limits, past which a response is an error instead of more memory.
///
/// [`Limits::default`] suits every reply the daemon sends to this crate's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Bytes of status line and headers (default 64 KiB).
    pub max_head: usize,
    /// Number of headers (default 64).
    pub max_headers: usize,
    /// Bytes of (de-chunked) body (default 8 MiB).
    pub max_body: usize,
}

impl Limits {
    /// These limits with another body cap, in bytes.
    #[must_use]
    pub fn with_max_body(mut self, max_body: usize) -> Limits {
        self.max_body = max_body;
        self
    }

    /// These limits with another head cap, in bytes.
    #[must_use]
    pub fn with_max_head(mut self, max_head: usize) -> Limits {
        self.max_head = max_head;
        self
    }

    /// These limits with another cap on the number of headers.
    #[must_use]
    pub fn with_max_headers(mut self, max_headers: usize) -> Limits {
        self.max_headers = max_headers;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            max_headers: 64,
            max_body: 8 * 1024 * 1024,
        }
    }
}

/// Why a response could not be read: the daemon misbehaved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The status line or a header is not HTTP/1.x, or there are too many headers.
    #[error("malformed response head: {0}")]
    BadHead(String),
    /// The head is longer than [`Limits::max_head`].
    #[error("response head larger than {limit} bytes")]
    HeadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is longer than [`Limits::max_body`].
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A chunk size line, chunk end or trailer is malformed.
    #[error("malformed chunked body: {0}")]
    BadChunk(String),
    /// [`ResponseReader::finish`]: the peer closed in the middle of a response.
    #[error("connection closed before the response was complete")]
    Truncated,
    /// The reader was fed after its response was complete; [`ResponseReader::reset`] it.
    #[error("the reader was used after it finished")]
    Finished,
}

/// Reads one response; make a new one (or call [`ResponseReader::reset`]) per request.
///
/// After [`Progress::Complete`] (or a successful [`ResponseReader::finish`]) the reader is
/// finished: further calls fail with [`HttpError::Finished`] until it is reset.
#[derive(Debug)]
pub struct ResponseReader {
    head_request: bool,
    limits: Limits,
    phase: Phase,
    /// Status and headers, kept from the moment the head is parsed.
    head: Option<(u16, Vec<Header>)>,
    body: Vec<u8>,
}

#[derive(Debug)]
enum Phase {
    /// Accumulating the head; holds the bytes seen so far.
    Head(Vec<u8>),
    Body(Framing),
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Length {
        remaining: u64,
    },
    Chunked(ChunkState),
    /// Ends when the peer closes.
    Close,
}

/// Where the chunked decoder is, one byte at a time outside chunk data.
#[derive(Debug, Clone, Copy)]
enum ChunkState {
    /// Hex digits of a chunk size.
    Size {
        size: u64,
        digits: u8,
    },
    /// Chunk extensions (or padding) up to the end of the size line.
    Extension {
        size: u64,
        len: usize,
    },
    /// `\r` of the size line seen.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines, discarded. `total` counts their bytes.
    Trailer {
        line_len: usize,
        total: usize,
    },
    TrailerLf {
        line_len: usize,
        total: usize,
    },
}

/// Longest chunk-size hex number we accept (16 digits fill a u64).
const MAX_SIZE_DIGITS: u8 = 16;

impl ResponseReader {
    /// `head_request`: the request was `HEAD`, so no body follows whatever the headers say.
    pub fn new(head_request: bool, limits: Limits) -> Self {
        ResponseReader {
            head_request,
            limits,
            phase: Phase::Head(Vec::new()),
            head: None,
            body: Vec::new(),
        }
    }

    /// Ready for the next response on the same connection, keeping the limits.
    pub fn reset(&mut self, head_request: bool) {
        *self = ResponseReader::new(head_request, self.limits);
    }

    /// Status and headers (names lower-cased) as soon as the head is parsed, before the
    /// body is complete.
    ///
    /// `POST /containers/{id}/wait` sends its head at once and its body only when the
    /// container exits: a `200` head here means the wait is armed, so the caller may start
    /// the container without racing its exit.
    pub fn head(&self) -> Option<(u16, &[Header])> {
        self.head
            .as_ref()
            .map(|(status, headers)| (*status, headers.as_slice()))
    }

    /// Takes the body read so far, for a caller that reads a long streamed body (a pull's
    /// progress) as it comes: the body cap then bounds what is held between two calls, and
    /// the completed response carries only the rest.
    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.body)
    }

    /// Reads `input`, the next bytes from the connection.
    ///
    /// [`Progress::Partial`] when all of it was used and the response is not complete
    /// yet; [`Progress::Complete`] once it is, with how much of `input` it used. For a
    /// `101` reply the rest of `input` is the upgraded stream's first bytes.
    ///
    /// # Errors
    ///
    /// An [`HttpError`] when the bytes are not an HTTP/1.1 response within the
    /// [`Limits`], or when the reader is already finished.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, HttpError> {
        let mut used = 0;
        if matches!(self.phase, Phase::Head(_)) {
            let Some((head_used, framing)) = self.read_head_from(input)? else {
                return Ok(Progress::Partial);
            };
            used = head_used;
            match framing {
                None => return Ok(self.complete(used)),
                Some(framing) => self.phase = Phase::Body(framing),
            }
        }
        let rest = input.get(used..).unwrap_or_default();
        match &mut self.phase {
            Phase::Head(_) => Ok(Progress::Partial),
            Phase::Done => Err(HttpError::Finished),
            Phase::Body(framing) => {
                let limit = self.limits.max_body;
                match read_body(framing, &mut self.body, rest, limit)? {
                    Some(body_used) => Ok(self.complete(used + body_used)),
                    None => Ok(Progress::Partial),
                }
            }
        }
    }

    /// The peer closed: completes a close-delimited body, else [`HttpError::Truncated`].
    ///
    /// # Errors
    ///
    /// [`HttpError::Truncated`] unless the body runs to the close;
    /// [`HttpError::Finished`] when the response was already complete.
    pub fn finish(&mut self) -> Result<Response, HttpError> {
        match self.phase {
            Phase::Done => Err(HttpError::Finished),
            Phase::Body(Framing::Close) => match self.complete(0) {
                Progress::Complete { response, .. } => Ok(response),
                Progress::Partial => Err(HttpError::Truncated),
            },
            _ => Err(HttpError::Truncated),
        }
    }

    /// Parses the head if `input` completes it. Returns how many bytes of `input` the head
    /// used and the body framing (`None`: no body).
    fn read_head_from(
        &mut self,
        input: &[u8],
    ) -> Result<Option<(usize, Option<Framing>)>, HttpError> {
        let Phase::Head(buffered) = &mut self.phase else {
            return Ok(None);
        };
        let before = buffered.len();
        let room = self.limits.max_head.saturating_sub(before);
        let taken = input.get(..room).unwrap_or(input);
        buffered.extend_from_slice(taken);
        // Parse on every read: httparse's verdict on a prefix is final once it is not
        // Partial, so the outcome never depends on how the head was split across reads.
        // Heads are capped, so the re-parsing stays cheap.
        let mut slots = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut parsed = httparse::Response::new(&mut slots);
        let head_len = match parsed.parse(buffered) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                return if taken.len() < input.len() || buffered.len() >= self.limits.max_head {
                    Err(HttpError::HeadTooLarge {
                        limit: self.limits.max_head,
                    })
                } else {
                    Ok(None)
                };
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError::BadHead(format!(
                    "more than {} headers",
                    self.limits.max_headers
                )))
            }
            Err(e) => return Err(HttpError::BadHead(e.to_string())),
        };
        let status = parsed.code.unwrap_or(0);
        let headers: Vec<(String, Vec<u8>)> = parsed
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect();
        let framing = self.framing(status, &headers)?;
        self.head = Some((status, headers));
        Ok(Some((head_len.saturating_sub(before), framing)))
    }

    /// RFC 9112 section 6.3, for responses.
    fn framing(
        &self,
        status: u16,
        headers: &[(String, Vec<u8>)],
    ) -> Result<Option<Framing>, HttpError> {
        // A 101's body is the upgraded stream, not ours.
        if self.head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(None);
        }
        let mut transfer_encoding: Option<&[u8]> = None;
        let mut length: Option<u64> = None;
        for (name, value) in headers {
            if name == "transfer-encoding" {
                // Several headers form one list; the last coding decides.
                transfer_encoding = Some(value);
            } else if name == "content-length" {
                for part in value.split(|&b| b == b',') {
                    let parsed = parse_content_length(part).ok_or_else(|| {
                        HttpError::BadHead(format!(
                            "bad Content-Length {:?}",
                            String::from_utf8_lossy(value)
                        ))
                    })?;
                    if length.is_some_and(|l| l != parsed) {
                        return Err(HttpError::BadHead(
                            "conflicting Content-Length headers".into(),
                        ));
                    }
                    length = Some(parsed);
                }
            }
        }
        if let Some(codings) = transfer_encoding {
            let last = codings
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            return Ok(Some(if last.eq_ignore_ascii_case(b"chunked") {
                Framing::Chunked(ChunkState::Size { size: 0, digits: 0 })
            } else {
                Framing::Close
            }));
        }
        match length {
            Some(0) => Ok(None),
            Some(n) if n > self.limits.max_body as u64 => Err(HttpError::BodyTooLarge {
                limit: self.limits.max_body,
            }),
            Some(n) => Ok(Some(Framing::Length { remaining: n })),
            None => Ok(Some(Framing::Close)),
        }
    }

    fn complete(&mut self, consumed: usize) -> Progress {
        self.phase = Phase::Done;
        let (status, headers) = self.head.clone().unwrap_or_default();
        Progress::Complete {
            response: Response {
                status,
                headers,
                body: std::mem::take(&mut self.body),
            },
            consumed,
        }
    }
}

fn parse_content_length(text: &[u8]) -> Option<u64> {
    let text = text.trim_ascii();
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Feeds body bytes; `Some(n)` when the body ended after `n` bytes of `input`.
fn read_body(
    framing: &mut Framing,
    body: &mut Vec<u8>,
    input: &[u8],
    max_body: usize,
) -> Result<Option<usize>, HttpError> {
    match framing {
        Framing::Length { remaining } => {
            let take = input
                .len()
                .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
            body.extend_from_slice(input.get(..take).unwrap_or_default());
            *remaining -= take as u64;
            Ok((*remaining == 0).then_some(take))
        }
        Framing::Close => {
            if body.len().saturating_add(input.len()) > max_body {
                return Err(HttpError::BodyTooLarge { limit: max_body });
            }
            body.extend_from_slice(input);
            Ok(None)
        }
        Framing::Chunked(state) => read_chunked(state, body, input, max_body),
    }
}

fn bad_chunk(what: &str, byte: u8) -> HttpError {
    HttpError::BadChunk(format!("{what}, got byte 0x{byte:02x}"))
}

fn read_chunked(
    state: &mut ChunkState,
    body: &mut Vec<u8>,
    input: &[u8],
    max_body: usize,
) -> Result<Option<usize>, HttpError> {
    // Extensions and trailers are skipped, but not without end.
    let max_line = 64 * 1024;
    let mut at = 0;
    while let Some(&byte) = input.get(at) {
        if let ChunkState::Data { remaining } = state {
            let avail = input.len() - at;
            let take = avail.min(usize::try_from(*remaining).unwrap_or(usize::MAX));
            body.extend_from_slice(input.get(at..at + take).unwrap_or_default());
            *remaining -= take as u64;
            at += take;
            if *remaining == 0 {
                *state = ChunkState::DataCr;
            }
            continue;
        }
        at += 1;
        *state = match *state {
            ChunkState::Size { size, digits } => match byte {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits >= MAX_SIZE_DIGITS {
                        return Err(HttpError::BadChunk("chunk size too long".into()));
                    }
                    let value = (byte as char).to_digit(16).unwrap_or(0) as u64;
                    ChunkState::Size {
                        size: size << 4 | value,
                        digits: digits + 1,
                    }
                }
                b';' | b' ' | b'\t' if digits > 0 => ChunkState::Extension { size, len: 0 },
                b'\r' if digits > 0 => ChunkState::SizeLf { size },
                _ => return Err(bad_chunk("expected a hex chunk size", byte)),
            },
            ChunkState::Extension { size, len } => match byte {
                b'\r' => ChunkState::SizeLf { size },
                _ if len >= max_line => {
                    return Err(HttpError::BadChunk("chunk extension too long".into()))
                }
                _ => ChunkState::Extension { size, len: len + 1 },
            },
            ChunkState::SizeLf { size } => match byte {
                b'\n' if size == 0 => ChunkState::Trailer {
                    line_len: 0,
                    total: 0,
                },
                b'\n' => {
                    if (body.len() as u64).saturating_add(size) > max_body as u64 {
                        return Err(HttpError::BodyTooLarge { limit: max_body });
                    }
                    ChunkState::Data { remaining: size }
                }
                _ => return Err(bad_chunk("expected LF after the chunk size", byte)),
            },
            ChunkState::Data { .. } => *state,
            ChunkState::DataCr => match byte {
                b'\r' => ChunkState::DataLf,
                _ => return Err(bad_chunk("expected CR after chunk data", byte)),
            },
            ChunkState::DataLf => match byte {
                b'\n' => ChunkState::Size { size: 0, digits: 0 },
                _ => return Err(bad_chunk("expected LF after chunk data", byte)),
            },
            ChunkState::Trailer { line_len, total } => match byte {
                b'\r' => ChunkState::TrailerLf { line_len, total },
                _ if total >= max_line => {
                    return Err(HttpError::BadChunk("trailers too long".into()))
                }
                _ => ChunkState::Trailer {
                    line_len: line_len + 1,
                    total: total + 1,
                },
            },
            ChunkState::TrailerLf { line_len, total } => match byte {
                b'\n' if line_len == 0 => return Ok(Some(at)),
                b'\n' => ChunkState::Trailer { line_len: 0, total },
                _ => return Err(bad_chunk("expected LF in the trailers", byte)),
            },
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `pieces` in order; returns the response and how many bytes of the whole
    /// input belonged to it.
    fn read_pieces(
        reader: &mut ResponseReader,
        pieces: &[&[u8]],
    ) -> Result<Option<(Response, usize)>, HttpError> {
        let mut offset = 0;
        for piece in pieces {
            match reader.feed(piece)? {
                Progress::Partial => offset += piece.len(),
                Progress::Complete { response, consumed } => {
                    assert!(consumed <= piece.len());
                    return Ok(Some((response, offset + consumed)));
                }
            }
        }
        Ok(None)
    }

    fn read_whole(input: &[u8]) -> Result<Option<(Response, usize)>, HttpError> {
        read_pieces(&mut ResponseReader::new(false, Limits::default()), &[input])
    }

    fn split_at_points<'a>(input: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = points.iter().map(|p| p % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in cuts {
            pieces.push(&input[start..cut]);
            start = cut;
        }
        pieces.push(&input[start..]);
        pieces
    }

    const VERSION_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"ApiVersion\":1}\n";

    #[test]
    fn content_length_reply() {
        let (response, consumed) = read_whole(VERSION_REPLY).unwrap().unwrap();
        assert_eq!(consumed, VERSION_REPLY.len());
        assert_eq!(response.status, 200);
        assert_eq!(response.header("API-VERSION"), Some(&b"1.41"[..]));
        assert_eq!(response.headers[0].0, "api-version");
        assert_eq!(response.body, b"{\"ApiVersion\":1}\n");
    }

    #[test]
    fn byte_at_a_time() {
        let pieces: Vec<&[u8]> = VERSION_REPLY.chunks(1).collect();
        let mut reader = ResponseReader::new(false, Limits::default());
        let (response, consumed) = read_pieces(&mut reader, &pieces).unwrap().unwrap();
        assert_eq!(consumed, VERSION_REPLY.len());
        assert_eq!(response.body, b"{\"ApiVersion\":1}\n");
        assert_eq!(reader.feed(b"x"), Err(HttpError::Finished));
        assert_eq!(reader.finish(), Err(HttpError::Finished));
        reader.reset(false);
        assert_eq!(reader.head(), None);
        assert!(read_pieces(&mut reader, &[VERSION_REPLY])
            .unwrap()
            .is_some());
    }

    #[test]
    fn wait_head_is_visible_before_the_body() {
        let mut reader = ResponseReader::new(false, Limits::default());
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(reader.head(), None);
        assert_eq!(reader.feed(head), Ok(Progress::Partial));
        let (status, headers) = reader.head().unwrap();
        assert_eq!(status, 200);
        assert_eq!(headers.len(), 2);
        // What dockerd sends at exit: the JSON ends with a newline, 0x20 bytes in all.
        let body = b"20\r\n{\"Error\":null,\"StatusCode\":137}\n\r\n0\r\n\r\n";
        match reader.feed(body).unwrap() {
            Progress::Complete { response, consumed } => {
                assert_eq!(consumed, body.len());
                assert_eq!(response.body, b"{\"Error\":null,\"StatusCode\":137}\n");
            }
            Progress::Partial => panic!("wait body not complete"),
        }
    }

    #[test]
    fn upgrade_leaves_stream_bytes_unconsumed() {
        let head = b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
        let mut input = head.to_vec();
        input.extend_from_slice(b"hello from the container\r\n");
        let (response, consumed) = read_whole(&input).unwrap().unwrap();
        assert_eq!(response.status, 101);
        assert_eq!(consumed, head.len());
        assert!(response.body.is_empty());

        // The head split so that its last byte comes with stream data.
        let mut reader = ResponseReader::new(false, Limits::default());
        let cut = head.len() - 1;
        let (_, consumed) = read_pieces(&mut reader, &[&input[..cut], &input[cut..]])
            .unwrap()
            .unwrap();
        assert_eq!(consumed, head.len());
    }

    #[test]
    fn bodiless_statuses_ignore_framing_headers() {
        for status in ["204 No Content", "304 Not Modified", "100 Continue"] {
            let input = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\nHTTP/");
            let (response, consumed) = read_whole(input.as_bytes()).unwrap().unwrap();
            assert!(response.body.is_empty(), "{status}");
            assert_eq!(consumed, input.len() - 5, "{status}");
        }
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let mut reader = ResponseReader::new(true, Limits::default());
        let (response, consumed) = read_pieces(&mut reader, &[input]).unwrap().unwrap();
        assert_eq!((response.status, consumed), (200, input.len()));
    }

    #[test]
    fn close_delimited_attach_error() {
        let mut reader = ResponseReader::new(false, Limits::default());
        let input = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\nNo such container: nonexist\n";
        assert_eq!(reader.feed(input), Ok(Progress::Partial));
        let response = reader.finish().unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.body, b"No such container: nonexist\n");
    }

    #[test]
    fn truncated_replies() {
        let mut reader = ResponseReader::new(false, Limits::default());
        assert_eq!(reader.finish(), Err(HttpError::Truncated));
        let mut reader = ResponseReader::new(false, Limits::default());
        reader
            .feed(&VERSION_REPLY[..VERSION_REPLY.len() - 3])
            .unwrap();
        assert_eq!(reader.finish(), Err(HttpError::Truncated));
        let mut reader = ResponseReader::new(false, Limits::default());
        reader
            .feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
            .unwrap();
        assert_eq!(reader.finish(), Err(HttpError::Truncated));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_head: 64,
            max_headers: 2,
            max_body: 10,
        };
        let read = |input: &[u8]| read_pieces(&mut ResponseReader::new(false, limits), &[input]);
        let long_header = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 64]].concat();
        assert_eq!(
            read(&long_header),
            Err(HttpError::HeadTooLarge { limit: 64 })
        );
        assert!(matches!(
            read(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            Err(HttpError::BadHead(_))
        ));
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"),
            Err(HttpError::BodyTooLarge { limit: 10 })
        );
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\n"),
            Err(HttpError::BodyTooLarge { limit: 10 })
        );
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\n\r\n0123456789a"),
            Err(HttpError::BodyTooLarge { limit: 10 })
        );
        // A head of exactly the limit is fine.
        let exact = b"HTTP/1.1 204 No Content\r\nX: 01234567890123456789012345678901\r\n\r\n";
        assert_eq!(exact.len(), 64);
        assert!(read(exact).unwrap().is_some());
    }

    #[test]
    fn malformed_heads_and_chunks() {
        for input in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(
                matches!(read_whole(input), Err(HttpError::BadHead(_))),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        for body in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"3\nabc",
            b"11111111111111111\r\n",
        ] {
            let mut input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            input.extend_from_slice(body);
            assert!(
                matches!(read_whole(&input), Err(HttpError::BadChunk(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// A chunked reply: the chunks, the extensions after each size, trailer lines.
    fn chunked_reply(chunks: &[Vec<u8>], extensions: &[String], trailers: &[String]) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut extension = extensions.iter().cycle();
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            out.extend_from_slice(format!("{:X}", chunk.len()).as_bytes());
            out.extend_from_slice(extension.next().map_or("", |e| e.as_str()).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0");
        out.extend_from_slice(extension.next().map_or("", |e| e.as_str()).as_bytes());
        out.extend_from_slice(b"\r\n");
        for trailer in trailers {
            out.extend_from_slice(trailer.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    const NEXT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

    proptest! {
        #[test]
        fn chunked_decodes_the_same_at_any_split(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..8),
            extensions in prop::collection::vec("(;[a-z]{1,5}(=[a-z0-9\"]{0,6})?)?", 1..4),
            trailers in prop::collection::vec("[A-Za-z-]{1,8}: [ -~]{0,10}", 0..3),
            points in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            let reply = chunked_reply(&chunks, &extensions, &trailers);
            let mut input = reply.clone();
            input.extend_from_slice(NEXT);
            let mut reader = ResponseReader::new(false, Limits::default());
            let (response, consumed) = read_pieces(&mut reader, &split_at_points(&input, &points))
                .unwrap()
                .unwrap();
            prop_assert_eq!(consumed, reply.len());
            prop_assert_eq!(response.body, chunks.concat());
            // The rest is the next response, whole.
            let (next, used) = read_whole(&input[consumed..]).unwrap().unwrap();
            prop_assert_eq!((next.status, used), (204, NEXT.len()));
        }

        #[test]
        fn content_length_decodes_the_same_at_any_split(
            body in prop::collection::vec(any::<u8>(), 0..200),
            points in prop::collection::vec(any::<usize>(), 0..6),
            pipelined in any::<bool>(),
        ) {
            let mut reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            reply.extend_from_slice(&body);
            let mut input = reply.clone();
            if pipelined {
                input.extend_from_slice(NEXT);
            }
            let whole = read_whole(&input).unwrap().unwrap();
            let mut reader = ResponseReader::new(false, Limits::default());
            let split = read_pieces(&mut reader, &split_at_points(&input, &points)).unwrap().unwrap();
            prop_assert_eq!(&whole, &split);
            prop_assert_eq!(split.1, reply.len());
            prop_assert_eq!(split.0.body, body);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(
            input in prop::collection::vec(any::<u8>(), 0..300),
            points in prop::collection::vec(any::<usize>(), 0..6),
            head_request in any::<bool>(),
        ) {
            let limits = Limits { max_head: 128, max_headers: 4, max_body: 64 };
            let mut reader = ResponseReader::new(head_request, limits);
            let mut total = 0;
            for piece in split_at_points(&input, &points) {
                match reader.feed(piece) {
                    Ok(Progress::Partial) => total += piece.len(),
                    Ok(Progress::Complete { consumed, .. }) => {
                        prop_assert!(consumed <= piece.len());
                        total += consumed;
                        prop_assert!(total <= input.len());
                        break;
                    }
                    Err(_) => break,
                }
            }
            let _ = reader.finish();
        }

        #[test]
        fn never_panics_after_a_valid_head(
            body in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            input.extend_from_slice(&body);
            let _ = read_whole(&input);
        }
    }
}
