//! The proxy socket and the handoff: accept, read the peer's pid (SO_PEERCRED), and pass
//! fds with SCM_RIGHTS. Unix listeners are bound by [`crate::host::hostfs`]; TCP ones here.
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
#[cfg(test)]
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

/// Default mode of the sockets we bind.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;

/// Why a TCP `docker-socket` cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum TcpBindError {
    #[error("docker-socket address {ip:?} is not an IP address")]
    NotAnIp { ip: String },
    #[error("cannot {what} {addr}: {cause}")]
    Sys {
        what: &'static str,
        addr: SocketAddr,
        cause: rustix::io::Errno,
    },
}

impl TcpBindError {
    /// Another socket listens on the address.
    pub fn is_in_use(&self) -> bool {
        matches!(
            self,
            TcpBindError::Sys {
                cause: rustix::io::Errno::ADDRINUSE,
                ..
            }
        )
    }
}

/// Bind and listen on TCP `ip:port` (`ip` empty: all addresses; `[v6]` brackets allowed).
pub fn bind_tcp(ip: &str, port: u16) -> Result<OwnedFd, TcpBindError> {
    let ip_text = ip.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if ip_text.is_empty() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        ip_text
            .parse()
            .map_err(|_| TcpBindError::NotAnIp { ip: ip.to_owned() })?
    };
    let addr = SocketAddr::new(ip, port);
    let family = if ip.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fail = |what, source| TcpBindError::Sys {
        what,
        addr,
        cause: source,
    };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)
        .map_err(|e| fail("create a socket for", e))?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)
        .map_err(|e| fail("set SO_REUSEADDR on", e))?;
    rustix::net::bind(&fd, &addr).map_err(|e| fail("bind", e))?;
    rustix::net::listen(&fd, 128).map_err(|e| fail("listen on", e))?;
    Ok(fd)
}

/// Accept one pending connection, or `None` when there is none (nonblocking listener).
/// The accepted socket is blocking: it only ever carries one 17-byte message.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::AGAIN) => Ok(None),
        Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The peer's pid from SO_PEERCRED, as the host sees it.
pub fn peer_pid(fd: BorrowedFd<'_>) -> Option<u32> {
    let cred = rustix::net::sockopt::socket_peercred(fd).ok()?;
    u32::try_from(cred.pid.as_raw_nonzero().get()).ok()
}

/// Send `data` with `fds` in one SCM_RIGHTS message.
pub fn send_with_fds(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many fds for one handoff",
        ));
    }
    let sent = rustix::net::sendmsg(
        socket,
        &[io::IoSlice::new(data)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short handoff write",
        ));
    }
    Ok(())
}

/// Receive one message with up to 3 fds (the vassal's side, as the tests play it).
#[cfg(test)]
pub fn recv_with_fds(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        socket,
        &mut [io::IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    Ok((msg.bytes, fds))
}

/// A connected pair of close-on-exec stream sockets.
pub fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

pub fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::io::ioctl_fionbio(fd, true)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn scm_rights_round_trip() {
        let (ours, theirs) = stream_pair().expect("pair");
        let (control_a, control_b) = stream_pair().expect("pair");
        let data = b"uwsgi-emperor\x01\x00\x00\x00";
        send_with_fds(ours.as_fd(), data, &[control_b.as_fd()]).expect("send");
        drop(control_b);
        let mut buf = [0u8; 64];
        let (n, fds) = recv_with_fds(theirs.as_fd(), &mut buf).expect("recv");
        assert_eq!(buf.get(..n), Some(&data[..]));
        assert_eq!(fds.len(), 1);
        // The received fd is the other end of control_a: bytes go through.
        let mut received = UnixStream::from(fds.into_iter().next().expect("one fd"));
        received.write_all(b"\x05").expect("write");
        let mut a = UnixStream::from(control_a);
        let mut byte = [0u8; 1];
        a.read_exact(&mut byte).expect("read");
        assert_eq!(byte, [5]);
    }

    #[test]
    fn accept_and_peer_credentials_on_a_bound_socket() {
        use crate::host::hostfs::{bind_unix, SocketOwner};
        let dir = std::env::temp_dir().join(format!("uwsgi-docker-proxy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("proxy.sock");
        let bound = bind_unix(&path, 0o600, SocketOwner::default()).expect("bind");
        let listener = bound.listener;
        assert!(accept(listener.as_fd()).expect("accept").is_none());
        let client = UnixStream::connect(&path).expect("connect");
        let server = accept(listener.as_fd()).expect("accept").expect("a peer");
        assert_eq!(peer_pid(server.as_fd()), Some(std::process::id()));
        assert_eq!(peer_pid(client.as_fd()), Some(std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tcp_listener_refuses_a_port_in_use() {
        let first = bind_tcp("127.0.0.1", 0).expect("bind");
        let local = rustix::net::getsockname(&first).expect("name");
        let port = rustix::net::SocketAddrV4::try_from(local)
            .expect("v4")
            .port();
        let err = bind_tcp("127.0.0.1", port).expect_err("in use").to_string();
        assert!(err.contains("in use"), "{err}");
    }

    #[test]
    fn tcp_listener_binds_an_ephemeral_port() {
        let fd = bind_tcp("127.0.0.1", 0).expect("bind");
        let local = rustix::net::getsockname(&fd).expect("name");
        assert!(rustix::net::SocketAddrV4::try_from(local).is_ok());
        assert!(bind_tcp("not-an-ip", 1).is_err());
    }
}
