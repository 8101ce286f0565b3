//! The Emperor ↔ vassal protocol: control bytes and config packets.
//!
//! The control channel carries single bytes each way; unknown bytes are kept as `Other`
//! so a newer Emperor's messages can be logged and ignored rather than misread. The config
//! channel carries uwsgi packets (`modifier1` 115) of at most 65535 config bytes each.
//!
//! The vassal's end of the control channel arrives as `UWSGI_EMPEROR_FD`, the config
//! channel's (when the Emperor pipes the config) as `UWSGI_EMPEROR_FD_CONFIG`.
//!
//! ```
//! use uwsgi_docker_core::emperor::{encode_config, ConfigDecoder, EmperorMessage, VassalMessage};
//!
//! assert_eq!(EmperorMessage::from_byte(1), EmperorMessage::Reload);
//! assert_eq!(VassalMessage::Loyal.to_byte(), 17);
//!
//! let mut wire = Vec::new();
//! encode_config(b"[uwsgi]\nmaster = true\n", &mut wire)?;
//! assert_eq!(&wire[..4], &[115, 22, 0, 0]);
//!
//! let mut decoder = ConfigDecoder::default();
//! let mut configs = Vec::new();
//! for byte in &wire {
//!     decoder.feed(std::slice::from_ref(byte), &mut |config| configs.push(config))?;
//! }
//! assert_eq!(configs, [b"[uwsgi]\nmaster = true\n".to_vec()]);
//! assert!(decoder.is_idle());
//! # Ok::<(), uwsgi_docker_core::emperor::ConfigError>(())
//! ```

/// A byte the Emperor sends to its vassal. Unknown bytes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmperorMessage {
    /// `0`
    Stop,
    /// `1`
    Reload,
    /// `2` (with `emperor-graceful-shutdown`)
    GracefulStop,
    /// Any other byte, kept as it came.
    Other(u8),
}

/// A byte a vassal sends to its Emperor. Unknown bytes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VassalMessage {
    /// `1`
    Spawned,
    /// `2`: "push my config again", sent before a reload re-exec.
    ConfigRequest,
    /// `5`
    Accepting,
    /// `17`
    Loyal,
    /// `22`
    StopMe,
    /// `26`
    Heartbeat,
    /// `30`
    Broodlord,
    /// Any other byte, kept as it came.
    Other(u8),
}

impl EmperorMessage {
    /// The message a control byte carries.
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            0 => EmperorMessage::Stop,
            1 => EmperorMessage::Reload,
            2 => EmperorMessage::GracefulStop,
            other => EmperorMessage::Other(other),
        }
    }
    /// `Other` keeps its byte as is, so `from_byte(b).to_byte() == b` for every byte.
    pub fn to_byte(self) -> u8 {
        match self {
            EmperorMessage::Stop => 0,
            EmperorMessage::Reload => 1,
            EmperorMessage::GracefulStop => 2,
            EmperorMessage::Other(byte) => byte,
        }
    }
}

impl VassalMessage {
    /// The message a control byte carries.
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            1 => VassalMessage::Spawned,
            2 => VassalMessage::ConfigRequest,
            5 => VassalMessage::Accepting,
            17 => VassalMessage::Loyal,
            22 => VassalMessage::StopMe,
            26 => VassalMessage::Heartbeat,
            30 => VassalMessage::Broodlord,
            other => VassalMessage::Other(other),
        }
    }
    /// `Other` keeps its byte as is, so `from_byte(b).to_byte() == b` for every byte.
    pub fn to_byte(self) -> u8 {
        match self {
            VassalMessage::Spawned => 1,
            VassalMessage::ConfigRequest => 2,
            VassalMessage::Accepting => 5,
            VassalMessage::Loyal => 17,
            VassalMessage::StopMe => 22,
            VassalMessage::Heartbeat => 26,
            VassalMessage::Broodlord => 30,
            VassalMessage::Other(byte) => byte,
        }
    }
}

/// uwsgi packet `modifier1` of a config push.
pub const CONFIG_MODIFIER1: u8 = 115;
/// The most config bytes one packet can carry (`pktsize` is a u16).
pub const MAX_CONFIG_LEN: usize = u16::MAX as usize;
/// Length of the uwsgi packet header: modifier1, pktsize (u16 LE), modifier2.
const HEADER_LEN: usize = 4;

/// A config that cannot be sent, or a config stream that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A config longer than [`MAX_CONFIG_LEN`] cannot be pushed.
    #[error("the vassal config is {len} bytes; the Emperor protocol carries at most 65535")]
    TooLarge {
        /// The config's length in bytes.
        len: usize,
    },
    /// Also what [`ConfigDecoder`] reports for a zero-length packet, which uWSGI rejects
    /// as an invalid config.
    #[error("the vassal config is empty; uWSGI refuses an empty config push")]
    Empty,
    /// A packet header whose `modifier1` is not [`CONFIG_MODIFIER1`].
    #[error("config packet has modifier1 {0}, expected 115")]
    BadModifier(u8),
}

/// Appends one config packet (4-byte header: 115, size u16 LE, 0; then the bytes) to `out`.
/// On error `out` is left as it was.
///
/// # Errors
///
/// [`ConfigError::Empty`] for an empty config, [`ConfigError::TooLarge`] for one longer
/// than [`MAX_CONFIG_LEN`].
pub fn encode_config(config: &[u8], out: &mut Vec<u8>) -> Result<(), ConfigError> {
    if config.is_empty() {
        return Err(ConfigError::Empty);
    }
    let len =
        u16::try_from(config.len()).map_err(|_| ConfigError::TooLarge { len: config.len() })?;
    let [size_lo, size_hi] = len.to_le_bytes();
    out.reserve(HEADER_LEN + config.len());
    out.extend_from_slice(&[CONFIG_MODIFIER1, size_lo, size_hi, 0]);
    out.extend_from_slice(config);
    Ok(())
}

/// Reassembles config packets from a stream.
///
/// Headers and bodies may be split anywhere across [`ConfigDecoder::feed`] calls. A body is
/// at most 65535 bytes, so that bounds what is buffered. `modifier2` is not checked (uWSGI
/// writes 0 and does not read it). After an error every later feed returns the same error.
#[derive(Debug, Default)]
pub struct ConfigDecoder {
    header: [u8; HEADER_LEN],
    header_filled: usize,
    /// Body bytes still to come of the current packet; 0 while reading a header.
    body_remaining: usize,
    body: Vec<u8>,
    failed: Option<ConfigError>,
}

/// The body length a config packet header announces.
fn config_body_len(header: [u8; HEADER_LEN]) -> Result<usize, ConfigError> {
    let [modifier1, size_lo, size_hi, _modifier2] = header;
    if modifier1 != CONFIG_MODIFIER1 {
        return Err(ConfigError::BadModifier(modifier1));
    }
    match usize::from(u16::from_le_bytes([size_lo, size_hi])) {
        0 => Err(ConfigError::Empty),
        len => Ok(len),
    }
}

/// The whole length (header included) of the config packet `bytes` starts with, once its
/// header is in; `Ok(None)` before that. For looking at a packet without consuming it.
///
/// # Errors
///
/// [`ConfigError::BadModifier`] or [`ConfigError::Empty`] for a header no config packet has.
pub fn config_packet_len(bytes: &[u8]) -> Result<Option<usize>, ConfigError> {
    let Some(&[a, b, c, d]) = bytes.get(..HEADER_LEN) else {
        return Ok(None);
    };
    Ok(Some(HEADER_LEN + config_body_len([a, b, c, d])?))
}

impl ConfigDecoder {
    /// Consumes all of `input`, calling `on_config` with each whole config.
    ///
    /// # Errors
    ///
    /// [`ConfigError::BadModifier`] or [`ConfigError::Empty`] for a packet header no
    /// Emperor writes; the stream is unusable after it.
    pub fn feed(
        &mut self,
        input: &[u8],
        on_config: &mut dyn FnMut(Vec<u8>),
    ) -> Result<(), ConfigError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        self.decode(input, on_config).inspect_err(|error| {
            self.failed = Some(error.clone());
        })
    }

    /// True when no packet is partly read, so an EOF here loses nothing.
    pub fn is_idle(&self) -> bool {
        self.header_filled == 0 && self.body_remaining == 0 && self.failed.is_none()
    }

    fn decode(
        &mut self,
        mut input: &[u8],
        on_config: &mut dyn FnMut(Vec<u8>),
    ) -> Result<(), ConfigError> {
        while !input.is_empty() {
            if self.body_remaining == 0 {
                let take = (HEADER_LEN - self.header_filled).min(input.len());
                let (head, rest) = input.split_at(take);
                for (slot, byte) in self.header.iter_mut().skip(self.header_filled).zip(head) {
                    *slot = *byte;
                }
                self.header_filled += take;
                input = rest;
                if self.header_filled < HEADER_LEN {
                    break;
                }
                self.header_filled = 0;
                let len = config_body_len(self.header)?;
                self.body_remaining = len;
                self.body = Vec::with_capacity(len);
            } else {
                let take = self.body_remaining.min(input.len());
                let (piece, rest) = input.split_at(take);
                self.body.extend_from_slice(piece);
                self.body_remaining -= take;
                input = rest;
                if self.body_remaining == 0 {
                    on_config(std::mem::take(&mut self.body));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn packet_len_is_known_once_the_header_is_in() {
        let mut packet = Vec::new();
        encode_config(b"[uwsgi]\n", &mut packet).unwrap();
        assert_eq!(config_packet_len(&packet[..3]), Ok(None));
        assert_eq!(config_packet_len(&packet[..4]), Ok(Some(packet.len())));
        assert_eq!(config_packet_len(&packet), Ok(Some(packet.len())));
        assert_eq!(
            config_packet_len(&[7, 1, 0, 0]),
            Err(ConfigError::BadModifier(7))
        );
        assert_eq!(config_packet_len(&[115, 0, 0, 0]), Err(ConfigError::Empty));
    }

    use super::*;
    use proptest::prelude::*;

    fn decode_chunks(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<ConfigError>) {
        let mut decoder = ConfigDecoder::default();
        let mut configs = Vec::new();
        for chunk in chunks {
            if let Err(error) = decoder.feed(chunk, &mut |config| configs.push(config)) {
                return (configs, Some(error));
            }
        }
        (configs, None)
    }

    #[test]
    fn every_byte_round_trips() {
        for byte in 0..=u8::MAX {
            assert_eq!(EmperorMessage::from_byte(byte).to_byte(), byte);
            assert_eq!(VassalMessage::from_byte(byte).to_byte(), byte);
        }
    }

    #[test]
    fn known_bytes_map_to_named_messages() {
        assert_eq!(EmperorMessage::from_byte(0), EmperorMessage::Stop);
        assert_eq!(EmperorMessage::from_byte(1), EmperorMessage::Reload);
        assert_eq!(EmperorMessage::from_byte(2), EmperorMessage::GracefulStop);
        assert_eq!(EmperorMessage::from_byte(3), EmperorMessage::Other(3));
        let named = [
            (1, VassalMessage::Spawned),
            (2, VassalMessage::ConfigRequest),
            (5, VassalMessage::Accepting),
            (17, VassalMessage::Loyal),
            (22, VassalMessage::StopMe),
            (26, VassalMessage::Heartbeat),
            (30, VassalMessage::Broodlord),
        ];
        for (byte, message) in named {
            assert_eq!(VassalMessage::from_byte(byte), message);
        }
        assert_eq!(VassalMessage::from_byte(0), VassalMessage::Other(0));
    }

    #[test]
    fn encode_writes_the_uwsgi_header() {
        let mut out = vec![9];
        encode_config(b"[uwsgi]\n", &mut out).unwrap();
        assert_eq!(out, b"\x09\x73\x08\x00\x00[uwsgi]\n");
    }

    #[test]
    fn encode_rejects_empty_and_too_large() {
        let mut out = Vec::new();
        assert_eq!(encode_config(b"", &mut out), Err(ConfigError::Empty));
        let big = vec![b'x'; MAX_CONFIG_LEN + 1];
        assert_eq!(
            encode_config(&big, &mut out),
            Err(ConfigError::TooLarge { len: 65536 })
        );
        assert!(out.is_empty());
        encode_config(&big[1..], &mut out).unwrap();
        assert_eq!(&out[..4], &[115, 0xff, 0xff, 0]);
    }

    #[test]
    fn decoder_rejects_a_bad_modifier_and_stays_failed() {
        let (configs, error) = decode_chunks(&[b"\x73\x01\x00\x00a\x00\x01\x00\x00b"]);
        assert_eq!(configs, vec![b"a".to_vec()]);
        assert_eq!(error, Some(ConfigError::BadModifier(0)));
        let mut decoder = ConfigDecoder::default();
        let _ = decoder.feed(b"\x01\x01\x00\x00", &mut |_| {});
        assert_eq!(
            decoder.feed(b"\x73\x01\x00\x00a", &mut |_| panic!("after error")),
            Err(ConfigError::BadModifier(1))
        );
    }

    #[test]
    fn decoder_rejects_a_zero_length_packet() {
        assert_eq!(
            decode_chunks(&[b"\x73\x00", b"\x00\x00"]),
            (vec![], Some(ConfigError::Empty))
        );
    }

    #[test]
    fn decoder_tracks_idleness() {
        let mut decoder = ConfigDecoder::default();
        assert!(decoder.is_idle());
        decoder.feed(b"\x73\x02", &mut |_| {}).unwrap();
        assert!(!decoder.is_idle());
        decoder.feed(b"\x00\x00a", &mut |_| {}).unwrap();
        assert!(!decoder.is_idle());
        decoder.feed(b"b", &mut |_| {}).unwrap();
        assert!(decoder.is_idle());
    }

    proptest! {
        #[test]
        fn packets_round_trip_split_anywhere(
            configs in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..5),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut stream = Vec::new();
            for config in &configs {
                encode_config(config, &mut stream).unwrap();
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&stream[start..cut]);
                start = cut;
            }
            chunks.push(&stream[start..]);
            prop_assert_eq!(decode_chunks(&chunks), (configs, None));
        }

        #[test]
        fn arbitrary_bytes_decode_the_same_split_or_whole(input in prop::collection::vec(any::<u8>(), 0..64)) {
            let whole = decode_chunks(&[&input]);
            for at in 0..=input.len() {
                let (a, b) = input.split_at(at);
                prop_assert_eq!(&decode_chunks(&[a, b]), &whole);
            }
        }
    }
}
