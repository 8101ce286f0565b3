//! The vassal's `docker-socket`, bound on the host as uWSGI would bind it.
use std::os::fd::OwnedFd;
use std::path::Path;

use uwsgi_docker_core::spec::ListenAddress;

use crate::host::hostfs::{self, HostFsError, SocketEntry, SocketOwner};
use crate::host::proxy::{self, TcpBindError};

/// Why `docker-socket` cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum ListenSocketError {
    #[error(transparent)]
    Unix(#[from] HostFsError),
    #[error("cannot make the socket blocking: {0}")]
    Blocking(rustix::io::Errno),
    #[error("{0}; another process listens there: stop it or choose another docker-socket")]
    InUse(TcpBindError),
    #[error(transparent)]
    Tcp(TcpBindError),
}

/// Bind `docker-socket` as uWSGI would: a blocking listener (uWSGI sets its own flags),
/// mode from the Emperor settings and `owner` for a unix path, bound with no symlink
/// following (see [`hostfs::bind_unix`]). Returns the socket file's entry, removed at exit.
pub fn bind_listen_socket(
    address: &ListenAddress,
    mode: u32,
    owner: SocketOwner,
) -> Result<(OwnedFd, Option<SocketEntry>), ListenSocketError> {
    match address {
        ListenAddress::Unix(path) => {
            let bound = hostfs::bind_unix(Path::new(path), mode, owner)?;
            if let Err(e) = rustix::io::ioctl_fionbio(&bound.listener, false) {
                let _ = bound.entry.remove();
                return Err(ListenSocketError::Blocking(e));
            }
            Ok((bound.listener, Some(bound.entry)))
        }
        ListenAddress::Tcp { ip, port } => match proxy::bind_tcp(ip, *port) {
            Ok(fd) => Ok((fd, None)),
            Err(e) if e.is_in_use() => Err(ListenSocketError::InUse(e)),
            Err(e) => Err(ListenSocketError::Tcp(e)),
        },
    }
}
