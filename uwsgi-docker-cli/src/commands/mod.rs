//! The subcommands.
pub mod check;
pub mod gc;
pub mod ps;
pub use crate::runtime::start as run;

use std::io::{ErrorKind, Write};

/// Writes one line of a subcommand's output to stdout. A reader that went away
/// (`uwsgi-docker ps | head`) ends the command quietly, as it would any Unix tool:
/// Rust ignores SIGPIPE, so without this the write error would be a panic.
pub fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("uwsgi-docker: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }
}
