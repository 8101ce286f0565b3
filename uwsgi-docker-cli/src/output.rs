//! Lines the front-ends print: a failure on stderr (for the Emperor's log), one line of
//! a subcommand's output on stdout.
use std::io::{ErrorKind, Write};
use std::process::ExitCode;

/// `message` as a line that names vassal `name` (once: most errors already do).
pub fn naming(name: &str, message: String) -> String {
    if message.starts_with(&format!("vassal {name}")) {
        message
    } else {
        format!("vassal {name}: {message}")
    }
}

/// `message` without a leading `vassal NAME: `, for a caller that names the vassal itself.
pub fn unnamed<'m>(name: &str, message: &'m str) -> &'m str {
    message
        .strip_prefix("vassal ")
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(message)
}

/// Prints `error` as one line that names vassal `name` (see [`naming`]).
pub fn fail_naming(name: &str, error: &dyn std::fmt::Display) -> ExitCode {
    fail(&naming(name, error.to_string()))
}

/// Prints `message` as one line and fails (see [`warn`]).
pub fn fail(message: &str) -> ExitCode {
    warn(message);
    ExitCode::FAILURE
}

/// Prints `message` as one `uwsgi-docker: ` line on stderr (the Emperor's log). Vassal
/// names, paths, values and policy lines in it are tenant text, so their control bytes are
/// escaped: every line the front-ends print to stderr goes through here.
pub fn warn(message: &str) {
    eprintln!("uwsgi-docker: {}", escaped(message));
}

/// `text` with its control bytes escaped, as [`warn`] prints it.
pub fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    uwsgi_docker_core::attach::escape_control(text)
}

/// Writes one line of a subcommand's output to stdout. A reader that went away
/// (`uwsgi-docker ps | head`) ends the command quietly, as it would any Unix tool:
/// Rust ignores SIGPIPE, so without this the write error would be a panic.
pub fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            warn(&format!("cannot write to stdout: {e}"));
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_text_is_escaped() {
        assert_eq!(
            escaped("vassal a\u{1b}[2J.ini: x"),
            "vassal a\\x1b[2J.ini: x"
        );
        assert_eq!(escaped("plain"), "plain");
    }

    #[test]
    fn errors_name_the_vassal_once() {
        assert_eq!(
            naming("app.ini", "cannot read the policy /p: gone".into()),
            "vassal app.ini: cannot read the policy /p: gone"
        );
        assert_eq!(
            naming("app.ini", "vassal app.ini: bad docker-memory".into()),
            "vassal app.ini: bad docker-memory"
        );
        assert_eq!(
            unnamed("app.ini", "vassal app.ini: bad docker-memory"),
            "bad docker-memory"
        );
        assert_eq!(unnamed("app.ini", "vassal b.ini: x"), "vassal b.ini: x");
        assert_eq!(unnamed("app.ini", "no name here"), "no name here");
    }
}
