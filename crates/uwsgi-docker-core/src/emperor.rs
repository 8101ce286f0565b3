//! The Emperor ↔ vassal protocol: control bytes and config packets.
//!
//! CONTRACT (filled in by the stream work). Facts: `shared/DESIGN.md`, "The Emperor ↔ vassal protocol".

/// A byte the Emperor sends to its vassal. Unknown bytes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmperorMessage {
    /// `0`
    Stop,
    /// `1`
    Reload,
    /// `2` (with `emperor-graceful-shutdown`)
    GracefulStop,
    Other(u8),
}

/// A byte a vassal sends to its Emperor. Unknown bytes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    Other(u8),
}

impl EmperorMessage {
    pub fn from_byte(byte: u8) -> Self {
        let _ = byte;
        todo!()
    }
    pub fn to_byte(self) -> u8 {
        todo!()
    }
}

impl VassalMessage {
    pub fn from_byte(byte: u8) -> Self {
        let _ = byte;
        todo!()
    }
    pub fn to_byte(self) -> u8 {
        todo!()
    }
}

/// uwsgi packet `modifier1` of a config push.
pub const CONFIG_MODIFIER1: u8 = 115;
/// The most config bytes one packet can carry (`pktsize` is a u16).
pub const MAX_CONFIG_LEN: usize = u16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the vassal config is {len} bytes; the Emperor protocol carries at most 65535")]
    TooLarge { len: usize },
    #[error("the vassal config is empty; uWSGI refuses an empty config push")]
    Empty,
    #[error("config packet has modifier1 {0}, expected 115")]
    BadModifier(u8),
}

/// Appends one config packet (4-byte header: 115, size u16 LE, 0; then the bytes) to `out`.
pub fn encode_config(config: &[u8], out: &mut Vec<u8>) -> Result<(), ConfigError> {
    let _ = (config, out);
    todo!()
}

/// Reassembles config packets from a stream.
#[derive(Debug, Default)]
pub struct ConfigDecoder {
    _todo: (),
}

impl ConfigDecoder {
    /// Consumes all of `input`, calling `on_config` with each whole config.
    pub fn feed(
        &mut self,
        input: &[u8],
        on_config: &mut dyn FnMut(Vec<u8>),
    ) -> Result<(), ConfigError> {
        let _ = (input, on_config);
        todo!()
    }
}
