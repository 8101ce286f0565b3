//! The attach stream: raw tty bytes or multiplexed frames, turned into whole log lines.
//!
//! After `POST /containers/{id}/attach` is upgraded, dockerd sends the container's output
//! until it closes. Its framing follows the container's `Tty` setting:
//!
//! * `Tty` on: raw pty bytes, all of it "stdout", with CRLF line ends.
//! * `Tty` off: frames of `[stream u8, 0, 0, 0, len u32 big-endian]` followed by `len`
//!   payload bytes; stream 1 is stdout, 2 is stderr, and 3 carries an error from the daemon.
//!
//! [`Demuxer`] undoes the framing without ever holding a whole payload: payload pieces are
//! passed on as they arrive, so a 1 GB frame costs nothing but the 8-byte header buffer.
//! [`LineSplitter`] then cuts each stream into log lines of bounded length.
//!
//! Each stream needs its own [`LineSplitter`]: stdout and stderr pieces interleave at frame
//! boundaries, not at line boundaries, so one splitter fed both would glue their halves.
//!
//! ```
//! use uwsgi_docker_core::attach::{Demuxer, LineSplitter, StreamKind};
//!
//! // Tty off: two frames, stdout "hello\nwor" then stderr "oops\n", split mid-header.
//! let stream = b"\x01\0\0\0\0\0\0\x09hello\nwor\x02\0\0\0\0\0\0\x05oops\n";
//! let mut demuxer = Demuxer::new(false);
//! let mut stdout = LineSplitter::new(Some("[app.ini] ".into()), 4096);
//! let mut stderr = LineSplitter::new(Some("[app.ini] ".into()), 4096);
//! let mut lines = Vec::new();
//! for part in [&stream[..3], &stream[3..]] {
//!     demuxer.feed(part, &mut |kind, piece| {
//!         let splitter = if kind == StreamKind::Stderr { &mut stderr } else { &mut stdout };
//!         splitter.push(piece, &mut |line| lines.push(String::from_utf8_lossy(line).into_owned()));
//!     })?;
//! }
//! stdout.flush(&mut |line| lines.push(String::from_utf8_lossy(line).into_owned()));
//! assert_eq!(lines, ["[app.ini] hello", "[app.ini] oops", "[app.ini] wor"]);
//! # Ok::<(), uwsgi_docker_core::attach::AttachError>(())
//! ```

/// Which output a chunk came from (always `Stdout` on a tty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Stream 0 (only echoed input; never sent for a container attached without stdin).
    Stdin,
    /// Stream 1, and everything on a tty.
    Stdout,
    /// Stream 2.
    Stderr,
}

impl StreamKind {
    /// The frame header's stream byte, `None` for anything but 0, 1 and 2.
    pub fn from_byte(byte: u8) -> Option<StreamKind> {
        match byte {
            0 => Some(StreamKind::Stdin),
            1 => Some(StreamKind::Stdout),
            2 => Some(StreamKind::Stderr),
            _ => None,
        }
    }
}

/// The daemon broke the attach stream's framing or reported an error in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// A frame header's stream byte is not 0, 1, 2 or 3.
    #[error("bad attach frame header: stream byte {0}")]
    BadStream(u8),
    /// A stream-3 ("system error") frame: dockerd's own message, e.g. when attaching failed.
    #[error("dockerd reported an error in the attach stream: {0}")]
    Daemon(String),
}

/// Length of a multiplexed frame header.
const HEADER_LEN: usize = 8;
/// Stream byte of a frame carrying a daemon error instead of container output.
const SYSTEM_ERROR_STREAM: u8 = 3;
/// How much of a daemon error message is kept; the rest of its frame is skipped.
const MAX_DAEMON_MESSAGE: usize = 1024;

/// Where the demuxer is inside the multiplexed stream.
#[derive(Debug)]
enum Frame {
    /// Collecting a header; `filled` bytes of it are in.
    Header {
        buf: [u8; HEADER_LEN],
        filled: usize,
    },
    /// Passing on `remaining` payload bytes of `stream`.
    Payload { stream: StreamKind, remaining: u32 },
    /// Collecting a stream-3 frame's message (bounded); it ends the stream.
    SystemError { message: Vec<u8>, remaining: u32 },
}

/// Splits the attach stream into payload chunks. With `tty` the stream is raw; without, it
/// is frames of `[stream, 0, 0, 0, len u32 BE] + payload`. Partial frames are carried over.
///
/// The three padding bytes are not checked, as dockerd's own reader does not check them.
/// After an error every later [`Demuxer::feed`] returns the same error.
#[derive(Debug)]
pub struct Demuxer {
    /// `None` for a tty: raw bytes.
    frame: Option<Frame>,
    failed: Option<AttachError>,
}

impl Demuxer {
    /// A demuxer for a container created with `Tty` set to `tty` (raw bytes when true,
    /// frames when false).
    pub fn new(tty: bool) -> Self {
        let frame = (!tty).then_some(Frame::Header {
            buf: [0; HEADER_LEN],
            filled: 0,
        });
        Demuxer {
            frame,
            failed: None,
        }
    }

    /// Calls `sink` with each payload piece (possibly part of a frame) in order.
    ///
    /// Pieces are never empty. On a tty, `input` is passed on whole as stdout.
    ///
    /// # Errors
    ///
    /// [`AttachError::BadStream`] for a frame header that is not one, and
    /// [`AttachError::Daemon`] when the daemon sent an error frame; the stream is unusable
    /// after either.
    pub fn feed(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(StreamKind, &[u8]),
    ) -> Result<(), AttachError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let Some(frame) = &mut self.frame else {
            if !input.is_empty() {
                sink(StreamKind::Stdout, input);
            }
            return Ok(());
        };
        match demux(frame, input, sink) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }
}

fn demux(
    frame: &mut Frame,
    mut input: &[u8],
    sink: &mut dyn FnMut(StreamKind, &[u8]),
) -> Result<(), AttachError> {
    while !input.is_empty() {
        match frame {
            Frame::Header { buf, filled } => {
                let take = (HEADER_LEN - *filled).min(input.len());
                let (head, rest) = input.split_at(take);
                for (slot, byte) in buf.iter_mut().skip(*filled).zip(head) {
                    *slot = *byte;
                }
                *filled += take;
                input = rest;
                if *filled == HEADER_LEN {
                    *frame = parse_header(buf)?;
                }
            }
            Frame::Payload { stream, remaining } => {
                let take = input.len().min(*remaining as usize);
                let (piece, rest) = input.split_at(take);
                sink(*stream, piece);
                // `take <= remaining`, which is a u32.
                *remaining -= take as u32;
                input = rest;
            }
            Frame::SystemError { message, remaining } => {
                let take = input.len().min(*remaining as usize);
                let (piece, rest) = input.split_at(take);
                let room = MAX_DAEMON_MESSAGE.saturating_sub(message.len());
                message.extend(piece.iter().take(room));
                *remaining -= take as u32;
                input = rest;
            }
        }
        match frame {
            Frame::Payload { remaining: 0, .. } => *frame = empty_header(),
            Frame::SystemError {
                message,
                remaining: 0,
            } => {
                let text = String::from_utf8_lossy(message);
                return Err(AttachError::Daemon(text.trim_end().to_owned()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn empty_header() -> Frame {
    Frame::Header {
        buf: [0; HEADER_LEN],
        filled: 0,
    }
}

fn parse_header(header: &[u8; HEADER_LEN]) -> Result<Frame, AttachError> {
    let [stream, _, _, _, l0, l1, l2, l3] = *header;
    let remaining = u32::from_be_bytes([l0, l1, l2, l3]);
    if stream == SYSTEM_ERROR_STREAM {
        let frame = Frame::SystemError {
            message: Vec::new(),
            remaining,
        };
        if remaining == 0 {
            return Err(AttachError::Daemon(String::new()));
        }
        return Ok(frame);
    }
    let stream = StreamKind::from_byte(stream).ok_or(AttachError::BadStream(stream))?;
    if remaining == 0 {
        // An empty frame carries nothing; wait for the next header.
        return Ok(empty_header());
    }
    Ok(Frame::Payload { stream, remaining })
}

/// Turns output chunks into whole lines, CR/LF normalised, each optionally prefixed.
/// A line longer than `max_line` is emitted in pieces of `max_line`, so memory stays bounded.
///
/// Line ends are `\n`; a `\r` right before a `\n` is dropped with it (a tty writes CRLF).
/// A lone `\r` is kept as line content: it is the tty's "rewrite this line", and dropping
/// or splitting on it would lose or invent output. Bytes need not be UTF-8.
///
/// `max_line` counts content bytes, not the prefix; `0` is taken as `1`. Use one splitter
/// per stream (see the module docs).
#[derive(Debug)]
pub struct LineSplitter {
    /// The prefix followed by the current line's content so far.
    line: Vec<u8>,
    prefix_len: usize,
    max_line: usize,
    /// The last byte seen was a `\r` that is not yet in `line`: it is dropped if a `\n`
    /// follows, kept otherwise.
    pending_cr: bool,
}

impl LineSplitter {
    /// A splitter that puts `prefix` before every line and cuts lines at `max_line`
    /// content bytes.
    pub fn new(prefix: Option<String>, max_line: usize) -> Self {
        let line = prefix.map(String::into_bytes).unwrap_or_default();
        LineSplitter {
            prefix_len: line.len(),
            line,
            max_line: max_line.max(1),
            pending_cr: false,
        }
    }

    /// Calls `emit` with each complete line, prefix included, without its line end.
    pub fn push(&mut self, mut chunk: &[u8], emit: &mut dyn FnMut(&[u8])) {
        if self.pending_cr {
            let Some((&first, rest)) = chunk.split_first() else {
                return;
            };
            self.pending_cr = false;
            if first == b'\n' {
                self.end_line(emit);
                chunk = rest;
            } else {
                self.append(b"\r", emit);
            }
        }
        while let Some(at) = memchr::memchr(b'\n', chunk) {
            let (content, rest) = chunk.split_at(at);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if self.line.is_empty() && content.len() <= self.max_line {
                // A whole line in the chunk, nothing before it: passed on where it lies.
                emit(content);
            } else {
                self.append(content, emit);
                self.end_line(emit);
            }
            chunk = rest.get(1..).unwrap_or_default();
        }
        match chunk.strip_suffix(b"\r") {
            Some(content) => {
                self.append(content, emit);
                self.pending_cr = true;
            }
            None => self.append(chunk, emit),
        }
    }

    /// Emits what is left (a last line without a line end).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if std::mem::take(&mut self.pending_cr) {
            self.append(b"\r", emit);
        }
        if self.line.len() > self.prefix_len {
            self.end_line(emit);
        }
    }

    /// Adds line content, emitting a full `max_line` piece only once more content
    /// arrives, so a line of exactly `max_line` bytes is one line, not a line and an empty one.
    fn append(&mut self, mut content: &[u8], emit: &mut dyn FnMut(&[u8])) {
        while !content.is_empty() {
            let mut room = self.max_line - self.content_len();
            if room == 0 {
                self.end_line(emit);
                room = self.max_line;
            }
            let (piece, rest) = content.split_at(room.min(content.len()));
            self.line.extend_from_slice(piece);
            content = rest;
        }
    }

    fn end_line(&mut self, emit: &mut dyn FnMut(&[u8])) {
        emit(&self.line);
        self.line.truncate(self.prefix_len);
    }

    fn content_len(&self) -> usize {
        self.line.len() - self.prefix_len
    }
}

/// `text` with its control characters made visible, for a log line: every C0 control
/// byte but `\t`, and DEL, becomes `\xNN`; every C1 control (U+0080 to U+009F, which
/// terminals also obey: U+009B is CSI) becomes `\u{NN}`. Vassal names, attribute values
/// and container output are tenant text, and a raw `\n`, `\r` or escape sequence in a log
/// line could forge other lines or rewrite the operator's terminal. Borrowed when there
/// is nothing to do.
pub fn escape_control(text: &str) -> std::borrow::Cow<'_, str> {
    // A byte scan finds them without decoding (this runs on every relayed line): C0 and
    // DEL are ASCII bytes, and a C1 control is encoded as 0xC2 then 0x80 to 0x9F, a pair
    // no other character's encoding contains.
    // Printable ASCII is skipped eight bytes at a time; the byte scan starts at the first
    // word that holds anything else (a C1 pair's 0xC2 included).
    let bytes = text.as_bytes();
    let c1 =
        |i: usize| bytes[i] == 0xc2 && bytes.get(i + 1).is_some_and(|b| (0x80..=0x9f).contains(b));
    let from = printable_ascii_words(bytes);
    if !(from..bytes.len()).any(|i| (bytes[i].is_ascii_control() && bytes[i] != b'\t') || c1(i)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_ascii_control() && c != '\t' {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else if ('\u{80}'..='\u{9f}').contains(&c) {
            out.push_str(&format!("\\u{{{:02x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// One line of container output as text: a trailing `\r` (a tty's line end that
/// [`LineSplitter`] had to keep) dropped, and invalid UTF-8 replaced. Control bytes are
/// left as they are; [`relay_line`] escapes them too.
pub fn line_text(line: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line))
}

/// One line of container output as it is relayed to the log: [`line_text`], then control
/// bytes escaped by [`escape_control`].
pub fn relay_line(line: &[u8]) -> String {
    let mut out = Vec::with_capacity(line.len());
    push_relay_line(line, &mut out);
    // Both ways of filling `out` push UTF-8 only.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends [`relay_line`]'s text to `out`, without a line end. A line of printable ASCII
/// (most log lines) is copied as it is, without decoding or an allocation of its own: this
/// runs on every relayed line.
pub fn push_relay_line(line: &[u8], out: &mut Vec<u8>) {
    let content = line.strip_suffix(b"\r").unwrap_or(line);
    if is_printable_ascii(content) {
        out.extend_from_slice(content);
    } else {
        out.extend_from_slice(escape_control(&line_text(line)).as_bytes());
    }
}

/// Whether every byte of `bytes` is printable ASCII (0x20 to 0x7E): text with nothing to
/// decode or escape.
fn is_printable_ascii(bytes: &[u8]) -> bool {
    let from = printable_ascii_words(bytes);
    bytes
        .get(from..)
        .unwrap_or_default()
        .iter()
        .all(|b| (0x20..0x7f).contains(b))
}

/// The length of the longest run of whole 8-byte words at the start of `bytes` that hold
/// printable ASCII only (a multiple of 8). Word-at-a-time tests: the release profile
/// optimises for size, which leaves byte loops unvectorised.
fn printable_ascii_words(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);
    const DELS: u64 = u64::from_ne_bytes([0x7f; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut clean = 0;
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let w = u64::from_ne_bytes(eight);
        // A byte below 0x20, a byte equal to 0x7F (its XOR with 0x7F is zero), or a byte
        // with its high bit set: each sets a high bit somewhere (the classic has-less and
        // has-zero tests, exact as to whether any byte matches).
        let below_space = w.wrapping_sub(SPACES) & !w;
        let del = (w ^ DELS).wrapping_sub(ONES) & !(w ^ DELS);
        if (w | below_space | del) & HIGH != 0 {
            break;
        }
        clean += 8;
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_bytes_are_escaped_tabs_are_kept() {
        assert!(matches!(
            escape_control("plain text, ü and\ttab"),
            std::borrow::Cow::Borrowed("plain text, ü and\ttab")
        ));
        assert_eq!(
            escape_control("a\nforged [uwsgi-docker] line\r\x1b[2J\x00\x7f\x1f end"),
            "a\\x0aforged [uwsgi-docker] line\\x0d\\x1b[2J\\x00\\x7f\\x1f end"
        );
    }

    #[test]
    fn c1_controls_are_escaped_and_their_neighbours_kept() {
        // U+009B is CSI: `\u{9b}2J` clears a terminal that obeys C1 controls.
        assert_eq!(
            escape_control("a\u{80}b\u{85}c\u{9b}2J\u{9f}"),
            "a\\u{80}b\\u{85}c\\u{9b}2J\\u{9f}"
        );
        // Next to them, and sharing their 0xC2 lead byte: not controls.
        assert!(matches!(
            escape_control("\u{7e}\u{a0}\u{a9}\u{100}é"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(relay_line("x\u{9b}31m".as_bytes()), "x\\u{9b}31m");
    }

    proptest! {
        #[test]
        fn no_control_character_survives_escaping(text in "\\PC*|[\\x00-\\x{ff}]*") {
            let escaped = escape_control(&text);
            prop_assert!(!escaped.chars().any(|c| c.is_control() && c != '\t'), "{escaped:?}");
        }
    }

    proptest! {
        #[test]
        fn the_word_test_agrees_with_a_byte_loop(bytes in prop::collection::vec(prop::sample::select(vec![0u8, 0x09, 0x1f, 0x20, 0x41, 0x7e, 0x7f, 0x80, 0xc2, 0x9b, 0xff]), 0..40)) {
            let printable = |b: &u8| (0x20..0x7f).contains(b);
            prop_assert_eq!(is_printable_ascii(&bytes), bytes.iter().all(printable));
            let words = printable_ascii_words(&bytes);
            prop_assert_eq!(words % 8, 0);
            prop_assert!(bytes[..words].iter().all(printable));
            let next_word = bytes.get(words..words + 8);
            prop_assert!(next_word.is_none_or(|word| !word.iter().all(printable)));
        }

        #[test]
        fn pushed_lines_are_relay_lines(line in prop::collection::vec(any::<u8>(), 0..40), ascii in "[ -~\t\r]{0,40}") {
            for line in [line.as_slice(), ascii.as_bytes()] {
                let mut out = b"before ".to_vec();
                push_relay_line(line, &mut out);
                let expected = escape_control(&line_text(line)).into_owned();
                prop_assert_eq!(out, [b"before ".as_slice(), expected.as_bytes()].concat());
            }
        }
    }

    #[test]
    fn relayed_lines_lose_a_trailing_cr_then_are_escaped() {
        assert_eq!(relay_line(b"worker 1 ready\r"), "worker 1 ready");
        assert_eq!(relay_line(b"50%\r100%\r"), "50%\\x0d100%");
        // One CR is the line end's, the other content.
        assert_eq!(relay_line(b"\r\r"), "\\x0d");
        assert_eq!(
            relay_line(b"\x1b[31mred\x1b[0m\tok"),
            "\\x1b[31mred\\x1b[0m\tok"
        );
        assert_eq!(relay_line(b"caf\xe9"), "caf\u{fffd}");
    }

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Feeds `chunks` and returns the output with adjacent pieces of one stream merged,
    /// plus the first error.
    fn demux_chunks(
        tty: bool,
        chunks: &[&[u8]],
    ) -> (Vec<(StreamKind, Vec<u8>)>, Option<AttachError>) {
        let mut demuxer = Demuxer::new(tty);
        let mut out: Vec<(StreamKind, Vec<u8>)> = Vec::new();
        let mut sink = |stream: StreamKind, piece: &[u8]| {
            assert!(!piece.is_empty(), "empty piece");
            match out.last_mut() {
                Some((last, bytes)) if *last == stream => bytes.extend_from_slice(piece),
                _ => out.push((stream, piece.to_vec())),
            }
        };
        for chunk in chunks {
            if let Err(error) = demuxer.feed(chunk, &mut sink) {
                return (out, Some(error));
            }
        }
        (out, None)
    }

    fn lines(prefix: Option<&str>, max_line: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut splitter = LineSplitter::new(prefix.map(str::to_owned), max_line);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, &mut |line| out.push(line.to_vec()));
        }
        splitter.flush(&mut |line| out.push(line.to_vec()));
        out
    }

    #[test]
    fn tty_passes_bytes_through_as_stdout() {
        let (out, error) = demux_chunks(true, &[b"\x01\x00hello\r\n", b"", b"more"]);
        assert_eq!(error, None);
        assert_eq!(
            out,
            vec![(StreamKind::Stdout, b"\x01\x00hello\r\nmore".to_vec())]
        );
    }

    #[test]
    fn multiplexed_frames_are_split_by_stream() {
        let mut input = frame(1, b"out one\n");
        input.extend(frame(2, b"err\n"));
        input.extend(frame(1, b""));
        input.extend(frame(1, b"out two\n"));
        let (out, error) = demux_chunks(false, &[&input]);
        assert_eq!(error, None);
        assert_eq!(
            out,
            vec![
                (StreamKind::Stdout, b"out one\n".to_vec()),
                (StreamKind::Stderr, b"err\n".to_vec()),
                (StreamKind::Stdout, b"out two\n".to_vec()),
            ]
        );
    }

    #[test]
    fn payload_pieces_are_passed_on_before_the_frame_is_complete() {
        let mut demuxer = Demuxer::new(false);
        let mut seen = Vec::new();
        // A frame announcing 4 GiB - 1 bytes: nothing is buffered, the piece comes out now.
        let header = [2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        demuxer
            .feed(&header, &mut |_, _| panic!("no payload yet"))
            .unwrap();
        demuxer
            .feed(b"abc", &mut |stream, piece| {
                seen.push((stream, piece.to_vec()))
            })
            .unwrap();
        assert_eq!(seen, vec![(StreamKind::Stderr, b"abc".to_vec())]);
    }

    #[test]
    fn bad_stream_byte_is_an_error_and_stays_one() {
        let mut input = frame(1, b"ok");
        input.extend(frame(7, b"bad"));
        let mut demuxer = Demuxer::new(false);
        let mut out = Vec::new();
        let error = demuxer.feed(&input, &mut |_, piece| out.extend_from_slice(piece));
        assert_eq!(error, Err(AttachError::BadStream(7)));
        assert_eq!(out, b"ok");
        assert_eq!(
            demuxer.feed(&frame(1, b"late"), &mut |_, _| panic!("after error")),
            Err(AttachError::BadStream(7))
        );
    }

    #[test]
    fn system_error_frame_reports_the_daemon_message() {
        let mut input = frame(1, b"before");
        input.extend(frame(3, b"container not running\n"));
        let (out, error) = demux_chunks(false, &[&input[..10], &input[10..20], &input[20..]]);
        assert_eq!(out, vec![(StreamKind::Stdout, b"before".to_vec())]);
        assert_eq!(
            error,
            Some(AttachError::Daemon("container not running".into()))
        );
    }

    #[test]
    fn system_error_message_is_bounded() {
        let input = frame(3, &[b'x'; 5000]);
        let (_, error) = demux_chunks(false, &[&input]);
        let Some(AttachError::Daemon(message)) = error else {
            panic!("expected a daemon error, got {error:?}");
        };
        assert_eq!(message.len(), MAX_DAEMON_MESSAGE);
    }

    #[test]
    fn crlf_is_normalised_and_prefix_prepended() {
        let out = lines(Some("[app] "), 100, &[b"one\r\ntwo\nthree\r", b"\nlast"]);
        let expected: Vec<&[u8]> = vec![b"[app] one", b"[app] two", b"[app] three", b"[app] last"];
        assert_eq!(out, expected);
    }

    #[test]
    fn lone_cr_is_content() {
        let out = lines(None, 100, &[b"10%\r20%\r", b"done\n\r"]);
        let expected: Vec<&[u8]> = vec![b"10%\r20%\rdone", b"\r"];
        assert_eq!(out, expected);
    }

    #[test]
    fn empty_lines_are_kept_and_flush_adds_nothing_after_a_line_end() {
        let out = lines(Some("> "), 100, &[b"\n\r\na\n"]);
        let expected: Vec<&[u8]> = vec![b"> ", b"> ", b"> a"];
        assert_eq!(out, expected);
    }

    #[test]
    fn long_lines_are_cut_into_max_line_pieces() {
        let out = lines(Some("p"), 3, &[b"abcdefg", b"h\nxyz\r\n"]);
        let expected: Vec<&[u8]> = vec![b"pabc", b"pdef", b"pgh", b"pxyz"];
        assert_eq!(out, expected);
    }

    #[test]
    fn invalid_utf8_is_passed_as_bytes() {
        let out = lines(None, 100, &[b"\xff\xfe\n"]);
        assert_eq!(out, vec![b"\xff\xfe".to_vec()]);
    }

    /// The model: CRLF becomes LF, lines are split on LF, no line after a final LF.
    fn model_lines(input: &[u8]) -> Vec<Vec<u8>> {
        let mut normalised = Vec::new();
        let mut bytes = input.iter().peekable();
        while let Some(&byte) = bytes.next() {
            if byte == b'\r' && bytes.peek() == Some(&&b'\n') {
                continue;
            }
            normalised.push(byte);
        }
        let mut lines: Vec<Vec<u8>> = normalised
            .split(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        if lines.last().is_some_and(Vec::is_empty) {
            lines.pop();
        }
        lines
    }

    fn frames_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec((0u8..3, prop::collection::vec(any::<u8>(), 0..40)), 0..8)
            .prop_map(|frames| frames.iter().flat_map(|(s, p)| frame(*s, p)).collect())
    }

    proptest! {
        #[test]
        fn demux_split_anywhere_matches_whole(
            input in frames_strategy(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&input[start..cut]);
                start = cut;
            }
            chunks.push(&input[start..]);
            prop_assert_eq!(demux_chunks(false, &chunks), demux_chunks(false, &[&input]));
        }

        #[test]
        fn demux_every_single_split_matches_whole(input in frames_strategy(), garbage in any::<u8>()) {
            let mut input = input;
            input.push(garbage);
            let whole = demux_chunks(false, &[&input]);
            for at in 0..=input.len() {
                let (a, b) = input.split_at(at);
                prop_assert_eq!(&demux_chunks(false, &[a, b]), &whole);
            }
        }

        #[test]
        fn lines_match_the_model(input in prop::collection::vec(prop::sample::select(b"ab\r\n".to_vec()), 0..64), at in any::<prop::sample::Index>()) {
            let (a, b) = input.split_at(at.index(input.len() + 1));
            prop_assert_eq!(lines(None, usize::MAX, &[a, b]), model_lines(&input));
        }

        #[test]
        fn pieces_are_bounded_and_reassemble(input in prop::collection::vec(prop::sample::select(b"abc\r\n".to_vec()), 0..64), max_line in 1usize..6) {
            // Without a prefix, whole lines are passed on from the chunk itself.
            for prefix in ["", "#"] {
                let out = lines(Some(prefix).filter(|p| !p.is_empty()), max_line, &[&input]);
                let mut content = Vec::new();
                for piece in &out {
                    prop_assert!(piece.starts_with(prefix.as_bytes()));
                    prop_assert!(piece.len() <= max_line + prefix.len());
                    content.extend_from_slice(&piece[prefix.len()..]);
                }
                let expected: Vec<u8> = model_lines(&input).concat();
                prop_assert_eq!(content, expected);
            }
        }
    }
}
