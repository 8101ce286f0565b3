//! The log relay: the bridge's events and the loop's own lines, to the Emperor's log
//! (stderr, batched by [`LogSink`](super::log_sink::LogSink)), with control bytes escaped.
use uwsgi_docker_core::attach::push_relay_line;
use uwsgi_docker_core::lifecycle::{Event, LogLevel};

use super::Runtime;

impl Runtime {
    pub(super) fn say_debug(&self, message: &str) {
        self.say(LogLevel::Debug, message);
    }

    /// A line of the loop's own, naming the vassal as the bridge's lines do.
    pub(super) fn say(&self, level: LogLevel, message: &str) {
        let vassal = &self.io.vassal;
        self.log(level, &format!("[uwsgi-docker] vassal {vassal}: {message}"));
    }

    /// One of the bridge's events: container output (with the vassal's name as its
    /// prefix unless `UWSGIDOCKER_LOG_PREFIX=0`), or a line about the vassal.
    pub(super) fn log_event(&self, event: &Event) {
        match event {
            // Straight into the batch: no line of its own is built for each relayed line.
            Event::Output { line, .. } => self.log.line_with(|batch| {
                batch.extend_from_slice(self.io.output_prefix.as_bytes());
                push_relay_line(line, batch);
            }),
            _ => self.say(event.level(), &event.to_string()),
        }
    }

    /// A line as it is.
    fn log(&self, level: LogLevel, line: &str) {
        if level == LogLevel::Debug && !self.io.debug {
            return;
        }
        // Vassal names, values and container output are tenant text: no control byte
        // reaches the log raw.
        self.log.line(&crate::output::escaped(line));
    }
}

/// The prefix of relayed output lines: the vassal's name (tenant text, escaped) unless
/// `UWSGIDOCKER_LOG_PREFIX=0` asked for none.
pub(super) fn output_prefix(vassal: &str, log_prefix: bool) -> String {
    if log_prefix {
        format!("[{}] ", crate::output::escaped(vassal))
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_prefix_names_the_vassal_escaped_or_is_empty() {
        assert_eq!(output_prefix("app.ini", true), "[app.ini] ");
        assert_eq!(output_prefix("a\u{1b}[2J.ini", true), "[a\\x1b[2J.ini] ");
        assert_eq!(output_prefix("app.ini", false), "");
    }
}
