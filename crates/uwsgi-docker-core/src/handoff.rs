//! The proxy handoff message: 13 bytes `uwsgi-emperor`, a native-endian C int with the fd
//! count, and one SCM_RIGHTS with the fds in the order control, config, socket.
//!
//! CONTRACT (filled in by the stream work).

pub const MAGIC: &[u8; 13] = b"uwsgi-emperor";
/// Length of the data part.
pub const MESSAGE_LEN: usize = 13 + 4;
/// A uWSGI 2.0.x vassal rejects a message with more fds than this.
pub const MAX_FDS_UWSGI_2_0: usize = 2;

/// Which fd goes in which SCM_RIGHTS slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandedFd {
    /// The vassal's end of the (relayed) control channel.
    Control,
    /// The vassal's end of the (relayed) config channel.
    Config,
    /// The listening socket of `docker-socket`.
    Socket,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    #[error("handoff message is {0} bytes, expected 17")]
    BadLength(usize),
    #[error("handoff message does not start with \"uwsgi-emperor\"")]
    BadMagic,
    #[error("handoff message announces {0} fds")]
    BadCount(i32),
}

/// The data part for `fds` (which must be in protocol order).
pub fn encode(fds: &[HandedFd]) -> [u8; MESSAGE_LEN] {
    let _ = fds;
    todo!()
}

/// The announced fd count of a received data part.
pub fn decode(data: &[u8]) -> Result<usize, HandoffError> {
    let _ = data;
    todo!()
}
