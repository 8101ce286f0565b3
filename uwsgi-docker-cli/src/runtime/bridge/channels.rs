//! The Emperor's channels and the vassal's: bytes each way, relayed through the bridge,
//! which reads the Emperor's control and config channels and writes the vassal's.
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use rustix::event::PollFlags;
use uwsgi_docker_core::lifecycle::Generation;

use super::{head, read_some, Channel, ReadOutcome, Runtime, SetupError};
use crate::host::proxy;

/// One generation's relayed channels: the bridge's ends, and the vassal's ends, held until
/// the handoff. The first generation's are made at start, a rollover's on
/// `Action::PrepareChannels`.
#[derive(Debug)]
pub(super) struct VassalChannels {
    pub(super) control: Option<Channel>,
    pub(super) config: Option<Channel>,
    pub(super) vassal_control: Option<OwnedFd>,
    pub(super) vassal_config: Option<OwnedFd>,
}

impl VassalChannels {
    pub(super) fn new() -> Result<VassalChannels, SetupError> {
        let (control, vassal_control) =
            proxy::stream_pair().map_err(|e| SetupError::Pair("control", e))?;
        let (config, vassal_config) =
            proxy::stream_pair().map_err(|e| SetupError::Pair("config", e))?;
        let nonblocking = |fd: OwnedFd, what: &'static str| {
            Channel::new(fd).map_err(|e| SetupError::Nonblocking(what, e))
        };
        Ok(VassalChannels {
            control: Some(nonblocking(control, "relayed control channel")?),
            config: Some(nonblocking(config, "relayed config channel")?),
            vassal_control: Some(vassal_control),
            vassal_config: Some(vassal_config),
        })
    }
}

impl Runtime {
    /// The Emperor's control channel is ready: flush what waits, read what came.
    pub(super) fn emperor_control_ready(
        &mut self,
        revents: PollFlags,
        readable: bool,
        buf: &mut Vec<u8>,
        now: Instant,
    ) {
        let (flush_error, read) = service(&mut self.emperor_control, revents, readable, buf);
        if let Some(e) = flush_error {
            self.say_debug(&format!("write to the Emperor failed: {e}"));
        }
        match read {
            ReadOutcome::Data(n) => self.bridge.handle_emperor_control(head(buf, n), now),
            ReadOutcome::Eof => self.bridge.handle_emperor_control_eof(now),
            ReadOutcome::Nothing => {}
        }
    }

    /// The Emperor pushed config bytes (or closed the config channel).
    pub(super) fn emperor_config_ready(&mut self, buf: &mut Vec<u8>, now: Instant) {
        let Some(fd) = self.emperor_config.as_ref() else {
            return;
        };
        match read_some(fd.as_fd(), buf) {
            ReadOutcome::Data(n) => self.bridge.handle_emperor_config(head(buf, n), now),
            // No input for this: the control channel's EOF is what ends a vassal.
            ReadOutcome::Eof => {
                self.say_debug("the Emperor closed the config channel");
                self.emperor_config = None;
            }
            ReadOutcome::Nothing => {}
        }
    }

    /// A generation's control channel is ready: flush what waits, read what came.
    pub(super) fn vassal_control_ready(
        &mut self,
        generation: Generation,
        revents: PollFlags,
        readable: bool,
        buf: &mut Vec<u8>,
        now: Instant,
    ) {
        let Some(vassal) = self.vassals.get_mut(&generation) else {
            return;
        };
        let (flush_error, read) = service(&mut vassal.control, revents, readable, buf);
        if let Some(e) = flush_error {
            self.say_debug(&format!(
                "write to the vassal's control channel failed: {e}"
            ));
        }
        match read {
            ReadOutcome::Data(n) => {
                self.bridge
                    .handle_vassal_control(generation, head(buf, n), now)
            }
            ReadOutcome::Eof => self.bridge.handle_vassal_control_eof(generation, now),
            ReadOutcome::Nothing => {}
        }
    }

    /// A generation's config channel is writable again, or gone.
    pub(super) fn vassal_config_ready(&mut self, generation: Generation, revents: PollFlags) {
        let Some(vassal) = self.vassals.get_mut(&generation) else {
            return;
        };
        let failed = revents.intersects(PollFlags::HUP | PollFlags::ERR)
            || matches!(vassal.config.as_mut().map(Channel::flush), Some(Err(_)));
        if failed {
            vassal.config = None;
            self.say_debug("the vassal closed its config channel");
        }
    }

    pub(super) fn send_to_emperor(&mut self, bytes: &[u8]) {
        match self.emperor_control.as_mut().map(|ch| ch.send(bytes)) {
            Some(Ok(())) => {}
            Some(Err(e)) => self.say_debug(&format!("write to the Emperor failed: {e}")),
            None => self.say_debug("no Emperor control channel to write to"),
        }
    }

    pub(super) fn send_to_vassal_control(&mut self, generation: Generation, bytes: &[u8]) {
        let vassal = self.vassals.get_mut(&generation);
        if let Some(Err(e)) = vassal
            .and_then(|v| v.control.as_mut())
            .map(|ch| ch.send(bytes))
        {
            self.say_debug(&format!(
                "write to the vassal's control channel failed: {e}"
            ));
        }
    }

    pub(super) fn send_to_vassal_config(&mut self, generation: Generation, bytes: &[u8]) {
        let Some(vassal) = self.vassals.get_mut(&generation) else {
            return self.say_debug("the vassal's config channel is closed");
        };
        match vassal.config.as_mut().map(|ch| ch.send(bytes)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                vassal.config = None;
                self.say_debug(&format!("write to the vassal's config channel failed: {e}"));
            }
            None => self.say_debug("the vassal's config channel is closed"),
        }
    }

    /// A rollover's new generation of relayed channels.
    pub(super) fn prepare_channels(&mut self, generation: Generation, now: Instant) {
        match VassalChannels::new() {
            Ok(channels) => {
                self.vassals.insert(generation, channels);
                self.bridge
                    .handle_channels_prepared(generation, Ok(()), now);
            }
            Err(e) => {
                let e = io::Error::other(e);
                self.bridge
                    .handle_channels_prepared(generation, Err(e), now);
            }
        }
    }

    /// The vassal file again, for a reload (a pushed config has none).
    pub(super) fn read_config(&mut self, now: Instant) {
        let config = match &self.io.config_file {
            Some(path) => crate::host::vassal_file::read(path).map_err(io::Error::other),
            None => Err(io::Error::other(
                "the config came from the Emperor; there is no file to read again",
            )),
        };
        self.bridge.handle_config(config, now);
    }
}

/// One ready control channel: what is queued is flushed (on `POLLOUT`), then one read (when
/// readable). At EOF the channel is dropped. Returns the flush's error, if any, and the read.
fn service(
    channel: &mut Option<Channel>,
    revents: PollFlags,
    readable: bool,
    buf: &mut Vec<u8>,
) -> (Option<io::Error>, ReadOutcome) {
    let flush_error = if revents.contains(PollFlags::OUT) {
        channel.as_mut().and_then(|ch| ch.flush().err())
    } else {
        None
    };
    let read = match channel.as_ref().filter(|_| readable) {
        Some(ch) => read_some(ch.fd.as_fd(), buf),
        None => ReadOutcome::Nothing,
    };
    if matches!(read, ReadOutcome::Eof) {
        *channel = None;
    }
    (flush_error, read)
}
