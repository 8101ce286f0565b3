//! The proxy handoff message: 13 bytes `uwsgi-emperor`, a native-endian C int with the fd
//! count, and one SCM_RIGHTS with the fds in the order control, config, socket.
//!
//! The fd count is checked against 1..=3 on decode; whether a 2.0.x vassal takes the third
//! fd ([`MAX_FDS_UWSGI_2_0`]) is the sender's decision.
//!
//! ```
//! use uwsgi_docker_core::handoff::{decode, encode, HandedFd};
//!
//! let message = encode(&[HandedFd::Control, HandedFd::Config]);
//! assert!(message.starts_with(b"uwsgi-emperor"));
//! assert_eq!(decode(&message), Ok(2));
//! ```

/// The 13 bytes every handoff message starts with.
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

/// The most fds any uWSGI accepts in one handoff (control, config, socket).
pub const MAX_FDS: usize = 3;

/// A handoff message that a uWSGI vassal would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandoffError {
    /// The data part is not [`MESSAGE_LEN`] bytes long (the length it has).
    #[error("handoff message is {0} bytes, expected 17")]
    BadLength(usize),
    /// The data part does not start with [`MAGIC`].
    #[error("handoff message does not start with \"uwsgi-emperor\"")]
    BadMagic,
    /// The announced fd count is not 1 to [`MAX_FDS`] (the count it announces).
    #[error("handoff message announces {0} fds; a vassal takes 1 to 3 (control, config, socket)")]
    BadCount(i32),
}

/// The data part for `fds` (which must be in protocol order).
///
/// The count is a native-endian C int, as uWSGI reads it with a plain `memcpy`.
pub fn encode(fds: &[HandedFd]) -> [u8; MESSAGE_LEN] {
    let mut message = [0; MESSAGE_LEN];
    let (magic, count) = message.split_at_mut(MAGIC.len());
    magic.copy_from_slice(MAGIC);
    let fds = i32::try_from(fds.len()).unwrap_or(i32::MAX);
    count.copy_from_slice(&fds.to_ne_bytes());
    message
}

/// The announced fd count of a received data part.
///
/// # Errors
///
/// A [`HandoffError`] for anything a uWSGI vassal would reject.
pub fn decode(data: &[u8]) -> Result<usize, HandoffError> {
    let Ok(message) = <&[u8; MESSAGE_LEN]>::try_from(data) else {
        return Err(HandoffError::BadLength(data.len()));
    };
    let (magic, count) = message.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(HandoffError::BadMagic);
    }
    let mut count_bytes = [0; 4];
    count_bytes.copy_from_slice(count);
    let count = i32::from_ne_bytes(count_bytes);
    match usize::try_from(count) {
        Ok(fds @ 1..=MAX_FDS) => Ok(fds),
        _ => Err(HandoffError::BadCount(count)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encode_is_magic_then_native_count() {
        let message = encode(&[HandedFd::Control, HandedFd::Config]);
        assert_eq!(&message[..13], b"uwsgi-emperor");
        assert_eq!(&message[13..], &2i32.to_ne_bytes());
    }

    #[test]
    fn round_trips_for_every_valid_fd_set() {
        let sets: [&[HandedFd]; 4] = [
            &[HandedFd::Control],
            &[HandedFd::Control, HandedFd::Config],
            &[HandedFd::Control, HandedFd::Socket],
            &[HandedFd::Control, HandedFd::Config, HandedFd::Socket],
        ];
        for fds in sets {
            assert_eq!(decode(&encode(fds)), Ok(fds.len()));
        }
    }

    #[test]
    fn decode_rejects_bad_messages() {
        assert_eq!(decode(b"uwsgi-emperor"), Err(HandoffError::BadLength(13)));
        let mut long = encode(&[HandedFd::Control]).to_vec();
        long.push(0);
        assert_eq!(decode(&long), Err(HandoffError::BadLength(18)));
        let mut bad_magic = encode(&[HandedFd::Control]);
        bad_magic[0] = b'U';
        assert_eq!(decode(&bad_magic), Err(HandoffError::BadMagic));
        assert_eq!(decode(&encode(&[])), Err(HandoffError::BadCount(0)));
        let four = [HandedFd::Control; 4];
        assert_eq!(decode(&encode(&four)), Err(HandoffError::BadCount(4)));
        let mut negative = encode(&[HandedFd::Control]);
        negative[13..].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(decode(&negative), Err(HandoffError::BadCount(-1)));
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_accepts_only_1_to_3(data in prop::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(fds) = decode(&data) {
                prop_assert!((1..=MAX_FDS).contains(&fds));
                prop_assert_eq!(data.len(), MESSAGE_LEN);
                prop_assert!(data.starts_with(MAGIC));
            }
        }
    }
}
