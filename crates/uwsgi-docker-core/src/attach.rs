//! The attach stream: raw tty bytes or multiplexed frames, turned into whole log lines.
//!
//! CONTRACT (filled in by the stream work).

/// Which output a chunk came from (always `Stdout` on a tty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdin,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("bad attach frame header: stream byte {0}")]
    BadStream(u8),
}

/// Splits the attach stream into payload chunks. With `tty` the stream is raw; without, it
/// is frames of `[stream, 0, 0, 0, len u32 BE] + payload`. Partial frames are carried over.
#[derive(Debug)]
pub struct Demuxer {
    _todo: (),
}

impl Demuxer {
    pub fn new(tty: bool) -> Self {
        let _ = tty;
        todo!()
    }
    /// Calls `sink` with each payload piece (possibly part of a frame) in order.
    pub fn feed(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(StreamKind, &[u8]),
    ) -> Result<(), AttachError> {
        let _ = (input, sink);
        todo!()
    }
}

/// Turns output chunks into whole lines, CR/LF normalised, each optionally prefixed.
/// A line longer than `max_line` is emitted in pieces of `max_line`, so memory stays bounded.
#[derive(Debug)]
pub struct LineSplitter {
    _todo: (),
}

impl LineSplitter {
    pub fn new(prefix: Option<String>, max_line: usize) -> Self {
        let _ = (prefix, max_line);
        todo!()
    }
    /// Calls `emit` with each complete line, prefix included, without its line end.
    pub fn push(&mut self, chunk: &[u8], emit: &mut dyn FnMut(&[u8])) {
        let _ = (chunk, emit);
        todo!()
    }
    /// Emits what is left (a last line without a line end).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) {
        let _ = emit;
        todo!()
    }
}
