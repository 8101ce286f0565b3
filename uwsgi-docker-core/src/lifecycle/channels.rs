//! Relaying the Emperor's channels: control bytes both ways, and configs (with the check
//! that tells a reload from a changed `[emperor]` section).
use super::events::Notice;
#[cfg(test)]
use super::interface::EmperorChannels;
use super::interface::{Action, BridgeConfig, Generation};
use super::outbox::Outbox;
use crate::emperor::{encode_config, ConfigDecoder, EmperorMessage, VassalMessage};
use crate::spec;

/// What a config the vassal should get comes to.
#[derive(Debug, PartialEq)]
pub(super) enum ConfigVerdict {
    /// Push this packet to the vassal.
    Push(Vec<u8>),
    /// The `[emperor]` section changed (to this one; `None`: it is no longer a Docker
    /// vassal) and there is an Emperor: roll over to a new container, or stop so that the
    /// Emperor starts the vassal again.
    Changed(Option<Box<spec::VassalSpec>>),
    /// Nothing to push (the config cannot be encoded).
    Drop,
}

#[derive(Debug, Default)]
pub(super) struct ChannelRelay {
    emperor_config: ConfigDecoder,
    /// The Emperor's config channel sent something undecodable; it is no longer read.
    emperor_config_broken: bool,
}

impl ChannelRelay {
    /// Control bytes from the Emperor, relayed to the vassal of the `relaying` generation,
    /// if any. Returns whether one of them asks the vassal to stop.
    pub(super) fn relay_emperor_control(
        data: &[u8],
        relaying: Option<Generation>,
        out: &mut Outbox,
    ) -> bool {
        let stop_at = data.iter().position(|&byte| {
            matches!(
                EmperorMessage::from_byte(byte),
                EmperorMessage::Stop | EmperorMessage::GracefulStop
            )
        });
        // Up to the stop byte: the vassal stops, and nothing is relayed after that.
        let data = stop_at.map_or(data, |at| &data[..=at]);
        if let Some(generation) = relaying {
            out.push(Action::ToVassalControl(generation, data.to_vec()));
        }
        for &byte in data {
            match EmperorMessage::from_byte(byte) {
                EmperorMessage::Stop | EmperorMessage::GracefulStop => {
                    out.debug(|| format!("the Emperor asks the vassal to stop (byte {byte})"))
                }
                EmperorMessage::Reload => {
                    out.debug(|| "the Emperor asks the vassal to reload".into())
                }
                EmperorMessage::Other(b) => {
                    out.debug(|| format!("relayed byte {b} from the Emperor"))
                }
            }
        }
        stop_at.is_some()
    }

    /// Control bytes from the vassal: relayed to the Emperor, or, without one, answered
    /// here. Returns whether the vassal asks to be stopped (only without an Emperor).
    pub(super) fn relay_vassal_control(
        data: &[u8],
        config: &BridgeConfig,
        out: &mut Outbox,
    ) -> bool {
        let mut stop = false;
        for &byte in data {
            match VassalMessage::from_byte(byte) {
                VassalMessage::ConfigRequest if !config.emperor.has_config() => {
                    out.debug(|| "the vassal asks for its config again".into());
                    out.push(Action::ReadConfig);
                }
                VassalMessage::StopMe if !config.emperor.has_control() => stop = true,
                _ if config.emperor.has_control() => out.push(Action::ToEmperor(vec![byte])),
                _ => {}
            }
        }
        stop
    }

    /// Bytes from the Emperor's config channel: the configs they complete.
    pub(super) fn decode_emperor_config(&mut self, data: &[u8], out: &mut Outbox) -> Vec<Vec<u8>> {
        let mut configs = Vec::new();
        if self.emperor_config_broken {
            return configs;
        }
        if let Err(e) = self.emperor_config.feed(data, &mut |c| configs.push(c)) {
            self.emperor_config_broken = true;
            out.notice(Notice::EmperorConfigIgnored(e));
        }
        configs
    }

    /// Judges a config for the running vassal (a reload's, or one read again).
    pub(super) fn judge(config: &[u8], settings: &BridgeConfig, out: &mut Outbox) -> ConfigVerdict {
        let mut packet = Vec::with_capacity(config.len() + 4);
        if let Err(e) = encode_config(config, &mut packet) {
            out.notice(Notice::ConfigUnpushable(e));
            return ConfigVerdict::Drop;
        }
        match spec::parse_vassal(&settings.plan.vassal_name, config) {
            Ok(Some(spec)) if spec == settings.requested_spec => {}
            // A container cannot take new settings, but a new one can (also when it is no
            // longer a Docker vassal: then the Emperor runs it itself).
            Ok(spec) if settings.emperor.has_control() => {
                return ConfigVerdict::Changed(spec.map(Box::new));
            }
            Ok(_) => out.notice(Notice::ChangeAppliesNextStart),
            Err(e) => out.notice(Notice::ConfigInvalid(e)),
        }
        ConfigVerdict::Push(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ContainerPlan, VassalIdentity};

    const FILE: &[u8] = b"[emperor]\ndocker-image = app\n\n[uwsgi]\nhttp-socket = :3031\n";

    fn settings() -> BridgeConfig {
        let spec = spec::parse_vassal("app.ini", FILE)
            .ok()
            .flatten()
            .expect("a Docker vassal");
        let identity = VassalIdentity {
            name: "app.ini".into(),
            proxy_dir: "/run".into(),
            emperor_id: "e".into(),
            bridge_id: "b".into(),
            name_prefix: None,
        };
        BridgeConfig::new(
            ContainerPlan::new(spec.clone(), &identity),
            spec,
            FILE.to_vec(),
        )
    }

    fn drain(out: &mut Outbox) -> Vec<Action> {
        std::iter::from_fn(|| out.pop()).collect()
    }

    #[test]
    fn emperor_bytes_are_relayed_up_to_a_stop() {
        let mut out = Outbox::new(false);
        let reload = EmperorMessage::Reload.to_byte();
        let stop = EmperorMessage::Stop.to_byte();
        let first = Some(Generation(0));
        assert!(!ChannelRelay::relay_emperor_control(
            &[reload],
            first,
            &mut out
        ));
        assert!(ChannelRelay::relay_emperor_control(
            &[reload, stop, reload],
            first,
            &mut out
        ));
        let relayed: Vec<Vec<u8>> = drain(&mut out)
            .into_iter()
            .filter_map(|a| match a {
                Action::ToVassalControl(Generation(0), b) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(relayed, [vec![reload], vec![reload, stop]]);
        assert!(!ChannelRelay::relay_emperor_control(
            &[reload],
            None,
            &mut out
        ));
        assert!(
            drain(&mut out).is_empty(),
            "nothing relayed before the handoff"
        );
    }

    #[test]
    fn vassal_bytes_go_to_the_emperor_or_are_answered_without_one() {
        let mut out = Outbox::new(false);
        let mut config = settings();
        let request = VassalMessage::ConfigRequest.to_byte();
        assert!(!ChannelRelay::relay_vassal_control(
            &[request],
            &config,
            &mut out
        ));
        assert!(matches!(drain(&mut out).as_slice(), [Action::ReadConfig]));
        config.emperor = EmperorChannels::ControlAndConfig;
        ChannelRelay::relay_vassal_control(&[request], &config, &mut out);
        assert!(matches!(drain(&mut out).as_slice(), [Action::ToEmperor(b)] if *b == [request]));
        config.emperor = EmperorChannels::None;
        let stop_me = VassalMessage::StopMe.to_byte();
        assert!(ChannelRelay::relay_vassal_control(
            &[stop_me],
            &config,
            &mut out
        ));
    }

    #[test]
    fn a_reload_pushes_the_same_section_and_reports_a_change() {
        let mut out = Outbox::new(false);
        let config = settings();
        assert!(matches!(
            ChannelRelay::judge(FILE, &config, &mut out),
            ConfigVerdict::Push(_)
        ));
        let changed = b"[emperor]\ndocker-image = app:2\n\n[uwsgi]\nhttp-socket = :3031\n";
        let ConfigVerdict::Changed(Some(spec)) = ChannelRelay::judge(changed, &config, &mut out)
        else {
            panic!("a changed section")
        };
        assert_eq!(spec.image, "app:2");
        let too_big = vec![b'x'; 70_000];
        assert_eq!(
            ChannelRelay::judge(&too_big, &config, &mut out),
            ConfigVerdict::Drop
        );
    }

    #[test]
    fn an_undecodable_emperor_config_stream_is_ignored_from_then_on() {
        let mut out = Outbox::new(false);
        let mut relay = ChannelRelay::default();
        let mut packet = Vec::new();
        encode_config(b"[uwsgi]\n", &mut packet).expect("small");
        assert_eq!(
            relay.decode_emperor_config(&packet, &mut out),
            [b"[uwsgi]\n".to_vec()]
        );
        assert!(relay.decode_emperor_config(&[0xff; 8], &mut out).is_empty());
        assert!(relay.decode_emperor_config(&packet, &mut out).is_empty());
    }
}
