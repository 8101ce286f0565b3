//! An incremental HTTP/1.1 response reader, for replies from dockerd.
//!
//! CONTRACT (filled in by the HTTP/Docker work): feed bytes as they arrive; the reader
//! returns `Partial` until one whole response is in, then `Complete` with how many of the
//! fed bytes it used. Handles Content-Length, chunked (with trailers), close-delimited
//! bodies (finished by [`ResponseReader::finish`] at EOF), no-body statuses (1xx, 204,
//! 304, replies to HEAD) and `101` upgrades, where the bytes past the head are stream data
//! and are left unconsumed for the caller. Hard caps turn a misbehaving daemon into an error.

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
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
    Complete { response: Response, consumed: usize },
}

/// Size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_head: usize,
    pub max_headers: usize,
    pub max_body: usize,
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
pub enum HttpError {
    #[error("malformed response head: {0}")]
    BadHead(String),
    #[error("response head larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("malformed chunked body: {0}")]
    BadChunk(String),
    #[error("connection closed before the response was complete")]
    Truncated,
    #[error("the reader was used after it finished")]
    Finished,
}

/// Reads one response; make a new one (or call [`ResponseReader::reset`]) per request.
#[derive(Debug)]
pub struct ResponseReader {
    _todo: (),
}

impl ResponseReader {
    /// `head_request`: the request was `HEAD`, so no body follows whatever the headers say.
    pub fn new(head_request: bool, limits: Limits) -> Self {
        let _ = (head_request, limits);
        todo!()
    }
    pub fn reset(&mut self, head_request: bool) {
        let _ = head_request;
        todo!()
    }
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, HttpError> {
        let _ = input;
        todo!()
    }
    /// The status and headers, as soon as the head is parsed (before the body is in).
    pub fn head(&self) -> Option<(u16, &[(String, Vec<u8>)])> {
        todo!()
    }
    /// The peer closed: completes a close-delimited body, else [`HttpError::Truncated`].
    pub fn finish(&mut self) -> Result<Response, HttpError> {
        todo!()
    }
}
