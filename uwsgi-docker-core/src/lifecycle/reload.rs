//! What a config from the Emperor or the file comes to: pushed to the vassal (a reload),
//! a rollover to a new container beside the running one, or a recreate through the
//! Emperor. A config that comes during a rollover waits for its end.
use std::io;
use std::time::Instant;

use super::channels::{ChannelRelay, ConfigVerdict};
use super::events::Notice;
use super::instance::Container;
use super::interface::{Action, Outcome};
use super::requests::ApiRequest;
use super::{Bridge, Step};
use crate::emperor::{encode_config, EmperorMessage};
use crate::spec::{self, VassalSpec};

/// A reload of unchanged settings whose tag the daemon is being asked about.
#[derive(Debug)]
pub(super) struct ImageCheck {
    config: Vec<u8>,
    spec: VassalSpec,
    /// The Emperor's reload byte waits for the answer (a file vassal); else the reload
    /// went ahead (a pushed config: uWSGI reloads in place while the daemon is asked).
    held: bool,
}

impl Bridge {
    /// Judges a config for the running vassal and pushes it or acts on its changed
    /// section; `true` when it was pushed as it is (unchanged settings).
    pub(super) fn push_config(&mut self, config: &[u8], now: Instant) -> bool {
        if self.is_stopping() {
            return false;
        }
        match ChannelRelay::judge(config, &self.config, &mut self.out) {
            ConfigVerdict::Push(packet) => {
                self.note_config_during_rollover(config);
                self.config.config = config.to_vec();
                let generation = self.current.generation();
                self.out.push(Action::ToVassalConfig(generation, packet));
                true
            }
            ConfigVerdict::Changed(spec) => {
                self.on_settings_changed(config, spec, now);
                false
            }
            ConfigVerdict::Drop => false,
        }
    }

    /// A config the Emperor pushed (an imperial monitor's reload, e.g. a fleet row's `ts`
    /// moved) with unchanged settings, now pushed to the reloading vassal: as for a file
    /// vassal's reload, one request asks which image the tag names, and a moved tag rolls
    /// over or recreates. Only for a running vassal with no rollover and no request in
    /// flight; otherwise the reload is just the reload.
    pub(super) fn check_pushed_image(&mut self, config: Vec<u8>, now: Instant) {
        if self.rollover.is_some()
            || self.image_check.is_some()
            || !matches!(self.step, Step::Running)
            || !self.current.instance.proxy.is_handed_off()
        {
            return;
        }
        if let Ok(Some(spec)) = spec::parse_vassal(&self.config.plan.vassal_name, &config) {
            self.ask_image(config, spec, false, now);
        }
    }

    /// Whether a changed section can roll over: an Emperor to keep, a running vassal that
    /// has its channels, a listening socket the bridge holds that both containers share,
    /// and no published port (two containers cannot publish the same host port).
    pub(super) fn can_roll_over(&self, spec: &VassalSpec) -> bool {
        let plan = &self.config.plan;
        self.config.emperor.has_control()
            && plan.passes_socket
            && matches!(self.step, Step::Running)
            && self.current.instance.proxy.is_handed_off()
            && matches!(self.current.instance.container, Container::Started(_))
            && spec.socket == plan.spec.socket
            && spec.ports.is_empty()
            && plan.spec.ports.is_empty()
    }

    /// Whether the Emperor's reload byte waits for the file to be read first: a running
    /// vassal whose config the bridge reads itself (no config channel). A changed
    /// `[emperor]` section then rolls over, or recreates, without reloading the old vassal
    /// first (a reloading uWSGI that gets no config waits 5 s for one before it exits).
    pub(super) fn reads_before_reload(&self) -> bool {
        self.config.emperor.has_control()
            && !self.config.emperor.has_config()
            && matches!(self.step, Step::Running)
            && self.current.instance.proxy.is_handed_off()
            && self.rollover.is_none()
    }

    /// The file, read for a held reload byte: a changed section rolls over where it can
    /// (the running vassal serves on, not reloading) and recreates the container where it
    /// cannot; anything else is an ordinary reload, relayed now.
    pub(super) fn on_reload_read(&mut self, config: io::Result<Vec<u8>>, now: Instant) {
        let read_again = config.ok().and_then(|config| {
            match spec::parse_vassal(&self.config.plan.vassal_name, &config) {
                Ok(Some(spec)) => Some((config, spec)),
                _ => None,
            }
        });
        let (changed, read_again) = match read_again {
            Some((config, spec)) if spec != self.config.requested_spec => {
                (Some((config, spec)), None)
            }
            unchanged => (None, unchanged),
        };
        match changed {
            Some((config, spec)) if self.can_roll_over(&spec) && !self.is_stopping() => {
                self.start_rollover(&config, spec)
            }
            Some(_) if !self.is_stopping() => {
                self.out.notice(Notice::Recreating);
                self.stop(Outcome::Recreate, now);
            }
            None if self.image_check.is_none() => match read_again {
                Some((config, spec)) => self.check_image(config, spec, now),
                None => self.relay_reload(),
            },
            _ => self.relay_reload(),
        }
    }

    fn relay_reload(&mut self) {
        let relaying = self.relaying().then_some(self.current.generation());
        let reload = [EmperorMessage::Reload.to_byte()];
        ChannelRelay::relay_emperor_control(&reload, relaying, &mut self.out);
    }

    /// Unchanged settings: the reload waits while the daemon says which image the tag
    /// names now (one request; relayed as it is when that cannot be asked).
    fn check_image(&mut self, config: Vec<u8>, spec: VassalSpec, now: Instant) {
        if !self.ask_image(config, spec, true, now) {
            self.relay_reload();
        }
    }

    /// Asks the daemon which image `spec`'s tag names now (first, once, which image the
    /// container runs); `false` when it cannot be asked (no daemon yet, no container,
    /// stopping, a request in flight).
    fn ask_image(&mut self, config: Vec<u8>, spec: VassalSpec, held: bool, now: Instant) -> bool {
        let Some(api) = self.api else {
            return false;
        };
        if self.is_stopping() || !self.current.requests.is_idle() {
            return false;
        }
        let mut bytes = Vec::new();
        let request = match (&self.current.image_id, self.current.instance.container.id()) {
            (Some(_), _) => {
                api.inspect_image(&spec.image, &mut bytes);
                ApiRequest::InspectImage
            }
            (None, Some(id)) => {
                api.inspect(id, &mut bytes);
                ApiRequest::InspectRunningImage
            }
            (None, None) => return false,
        };
        let deadline = now + self.config.request_timeout;
        self.current
            .requests
            .send(&mut self.out, request, bytes, deadline, now);
        self.image_check = Some(ImageCheck { config, spec, held });
        true
    }

    /// The image the container runs is known now: ask which one the tag names.
    pub(super) fn on_running_image(&mut self, image_id: Option<String>, now: Instant) {
        self.current.image_id = image_id.filter(|id| !id.is_empty());
        let Some(ImageCheck { config, spec, held }) = self.image_check.take() else {
            return;
        };
        let asked = self.current.image_id.is_some() && self.ask_image(config, spec, held, now);
        if !asked && held {
            self.relay_reload();
        }
    }

    /// Which image the tag names now (`None`: it could not be told): another than the
    /// container runs rolls over or recreates; else a held reload is relayed.
    pub(super) fn on_image_checked(&mut self, image_id: Option<String>, now: Instant) {
        let Some(ImageCheck { config, spec, held }) = self.image_check.take() else {
            return;
        };
        // Docker and Podman both write `sha256:…` in both places; a bare id is the same id.
        let bare = |id: &str| id.strip_prefix("sha256:").unwrap_or(id).to_owned();
        let moved = match (&image_id, &self.current.image_id) {
            (Some(now_named), Some(running)) => bare(now_named) != bare(running),
            _ => false,
        };
        if !moved || self.is_stopping() {
            if held {
                self.relay_reload();
            }
            return;
        }
        self.out.notice(Notice::ImageMoved {
            image: spec.image.clone(),
        });
        if self.can_roll_over(&spec) {
            self.start_rollover(&config, spec);
        } else {
            self.out.notice(Notice::Recreating);
            self.stop(Outcome::Recreate, now);
        }
    }

    /// A reload brought a changed `[emperor]` section (`None`: no longer a Docker vassal).
    pub(super) fn on_settings_changed(
        &mut self,
        config: &[u8],
        spec: Option<Box<VassalSpec>>,
        now: Instant,
    ) {
        if let Some(rollover) = &mut self.rollover {
            if spec.as_deref() != Some(&rollover.target) {
                rollover.pending = Some(config.to_vec());
                self.out.notice(Notice::RolloverQueued);
            }
            // The running vassal is reloading: it gets its own config again.
            return self.push_last_config();
        }
        match spec {
            Some(spec) if self.can_roll_over(&spec) => {
                // The running vassal is reloading: it serves on with its own config.
                self.push_last_config();
                self.start_rollover(config, *spec);
            }
            _ => {
                self.out.notice(Notice::Recreating);
                self.stop(Outcome::Recreate, now);
            }
        }
    }

    /// A config with the running settings came during a rollover (it was pushed): it is
    /// the newest, so it is judged again after the rollover.
    pub(super) fn note_config_during_rollover(&mut self, config: &[u8]) {
        let Some(rollover) = &mut self.rollover else {
            return;
        };
        if let Ok(Some(_)) = spec::parse_vassal(&self.config.plan.vassal_name, config) {
            rollover.pending = Some(config.to_vec());
            self.out.notice(Notice::RolloverQueued);
        }
    }

    fn push_last_config(&mut self) {
        let mut packet = Vec::new();
        if encode_config(&self.config.config, &mut packet).is_ok() {
            let generation = self.current.generation();
            self.out.push(Action::ToVassalConfig(generation, packet));
        }
    }

    /// The newest config that came during a rollover, now that it is done.
    pub(super) fn on_config_after_rollover(&mut self, config: &[u8], now: Instant) {
        match ChannelRelay::judge(config, &self.config, &mut self.out) {
            ConfigVerdict::Changed(Some(spec)) if self.can_roll_over(&spec) => {
                // The running vassal is not reloading: nothing to push to it.
                self.start_rollover(config, *spec);
            }
            ConfigVerdict::Changed(_) => {
                self.out.notice(Notice::Recreating);
                self.stop(Outcome::Recreate, now);
            }
            // The running vassal has these settings already.
            ConfigVerdict::Push(_) | ConfigVerdict::Drop => {}
        }
    }
}
