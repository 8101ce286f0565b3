//! The bridge's log output, batched: lines are gathered and written together, once per
//! poll-loop turn (or when a batch fills), instead of two `write`s per line. A chatty
//! container's relayed lines come in bursts of hundreds per read, and the syscalls were
//! most of the relay's cost.
use std::cell::RefCell;
use std::io::{self, Write};

/// A batch is written out as soon as it holds this much.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Whole lines for `out` (stderr, the Emperor's log), kept in order.
#[derive(Debug)]
pub struct LogSink<W: Write> {
    batch: RefCell<Vec<u8>>,
    out: RefCell<W>,
}

impl LogSink<io::Stderr> {
    pub fn stderr() -> Self {
        LogSink::new(io::stderr())
    }
}

impl<W: Write> LogSink<W> {
    pub fn new(out: W) -> Self {
        LogSink {
            batch: RefCell::new(Vec::with_capacity(BATCH_BYTES)),
            out: RefCell::new(out),
        }
    }

    /// Adds `line` and its line end; writes the batch once it is full.
    pub fn line(&self, line: &str) {
        self.line_with(|batch| batch.extend_from_slice(line.as_bytes()));
    }

    /// Adds the line `fill` appends to the batch, and its line end; writes the batch once
    /// it is full. For lines built in place rather than in a string of their own.
    pub fn line_with(&self, fill: impl FnOnce(&mut Vec<u8>)) {
        let full = {
            let mut batch = self.batch.borrow_mut();
            fill(&mut batch);
            batch.push(b'\n');
            batch.len() >= BATCH_BYTES
        };
        if full {
            self.flush();
        }
    }

    /// Writes what is gathered. A failed write drops the batch: a log that cannot be
    /// written is no reason to stop the vassal, nor to hold its lines forever.
    pub fn flush(&self) {
        let mut batch = self.batch.borrow_mut();
        if batch.is_empty() {
            return;
        }
        let mut out = self.out.borrow_mut();
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
    }

    #[cfg(test)]
    fn into_out(self) -> W {
        self.out.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the writes it gets.
    #[derive(Debug, Default)]
    struct Recorder {
        bytes: Vec<u8>,
        writes: usize,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_wait_for_the_flush_and_go_in_one_write_in_order() {
        let sink = LogSink::new(Recorder::default());
        for n in 0..100 {
            sink.line(&format!("line {n}"));
        }
        assert_eq!(sink.out.borrow().writes, 0);
        sink.flush();
        sink.flush();
        let out = sink.into_out();
        assert_eq!(out.writes, 1);
        let expected: String = (0..100).map(|n| format!("line {n}\n")).collect();
        assert_eq!(String::from_utf8(out.bytes).expect("utf-8"), expected);
    }

    #[test]
    fn lines_built_in_place_get_their_line_end_in_order() {
        let sink = LogSink::new(Recorder::default());
        sink.line("first");
        sink.line_with(|batch| batch.extend_from_slice(b"[app.ini] second"));
        sink.flush();
        let out = sink.into_out();
        assert_eq!(out.writes, 1);
        assert_eq!(out.bytes, b"first\n[app.ini] second\n");
    }

    #[test]
    fn a_full_batch_is_written_at_once() {
        let sink = LogSink::new(Recorder::default());
        let line = "x".repeat(99);
        let lines = BATCH_BYTES / 100 + 1;
        for _ in 0..lines {
            sink.line(&line);
        }
        assert_eq!(sink.out.borrow().writes, 1);
        assert!(sink.batch.borrow().is_empty());
        sink.line("last");
        sink.flush();
        let out = sink.into_out();
        assert_eq!(out.bytes.len(), lines * 100 + 5);
        assert!(out.bytes.ends_with(b"last\n"));
    }

    #[test]
    fn a_failed_write_drops_the_batch() {
        #[derive(Debug)]
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = LogSink::new(Broken);
        sink.line("lost");
        sink.flush();
        assert!(sink.batch.borrow().is_empty());
    }
}
