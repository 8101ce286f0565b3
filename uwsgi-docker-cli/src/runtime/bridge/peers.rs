//! The proxy socket and its peers: bind it, accept the container's uWSGI (or launcher),
//! tell the bridge who the peer is so it can authenticate it, and hand it the vassal's
//! ends with SCM_RIGHTS.
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use uwsgi_docker_core::handoff::HandedFd;
use uwsgi_docker_core::lifecycle::{Generation, LogLevel, PeerIdentity, ProxyPeer};

use super::Runtime;
use crate::host::hostfs::{self, SocketEntry, SocketOwner};
use crate::host::{proxy, sys};

/// Mode of proxy sockets in the Emperor's private runtime directory: the directory keeps
/// host users out, the container reaches the socket through its bind mount whatever its
/// user, and the peer check (its cgroup, else its pid namespace) decides who gets the
/// channels.
const PRIVATE_SOCKET_MODE: u32 = 0o666;

#[derive(Debug)]
pub(super) struct ProxyListener {
    pub(super) fd: OwnedFd,
    entry: SocketEntry,
    pub(super) accepting: bool,
}

/// Why the proxy socket cannot be bound.
#[derive(Debug, thiserror::Error)]
enum ProxyBindError {
    #[error(transparent)]
    HostFs(#[from] hostfs::HostFsError),
    #[error("{path} is not in the private runtime directory {dir}")]
    OutsidePrivateDir { path: String, dir: String },
}

impl Runtime {
    pub(super) fn proxy_bind(&mut self, path: &Path, now: Instant) {
        match self.bind_proxy(path) {
            Ok(bound) => {
                self.proxy = Some(ProxyListener {
                    fd: bound.listener,
                    entry: bound.entry,
                    accepting: false,
                });
                self.bridge.handle_proxy_bound(Ok(()), now);
            }
            Err(reason) => self
                .bridge
                .handle_proxy_bound(Err(io::Error::other(reason)), now),
        }
    }

    /// The bridge is ready for peers: poll the listener from now on.
    pub(super) fn proxy_accepting(&mut self) {
        if let Some(listener) = &mut self.proxy {
            listener.accepting = true;
        }
    }

    pub(super) fn accept_peers(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.proxy else { return };
            match proxy::accept(listener.fd.as_fd()) {
                Ok(Some(fd)) => {
                    let pid = proxy::peer_pid(fd.as_fd());
                    let identity = PeerIdentity {
                        pid,
                        pid_ns: pid.and_then(sys::pid_namespace),
                        cgroup: pid.and_then(sys::proc_cgroup),
                    };
                    let peer = ProxyPeer(self.next_peer);
                    self.next_peer += 1;
                    self.peers.insert(peer, fd);
                    self.bridge.handle_proxy_peer(peer, identity, now);
                }
                Ok(None) => return,
                Err(e) => {
                    self.say(
                        LogLevel::Error,
                        &format!("accept on the proxy socket failed: {e}"),
                    );
                    return;
                }
            }
        }
    }

    /// Pass `generation`'s vassal ends (and the listening socket) to the peer, then close
    /// our copies of the ends so that the container's death shows as EOF on the bridge's
    /// ends. A failed send also ends in that EOF.
    pub(super) fn handoff(
        &mut self,
        generation: Generation,
        peer: ProxyPeer,
        data: &[u8],
        fds: &[HandedFd],
    ) {
        let Some(socket) = self.peers.remove(&peer) else {
            self.say(LogLevel::Error, "handoff to a peer that is gone");
            return;
        };
        let vassal = self.vassals.get(&generation);
        let mut borrowed: Vec<BorrowedFd<'_>> = Vec::with_capacity(fds.len());
        let mut missing = Vec::new();
        for which in fds {
            let fd = match which {
                HandedFd::Control => vassal.and_then(|v| v.vassal_control.as_ref()),
                HandedFd::Config => vassal.and_then(|v| v.vassal_config.as_ref()),
                HandedFd::Socket => self.listen_socket.as_ref(),
            };
            match fd {
                Some(fd) => borrowed.push(fd.as_fd()),
                None => missing.push(*which),
            }
        }
        let result = if missing.is_empty() {
            proxy::send_with_fds(socket.as_fd(), data, &borrowed).map_err(|e| e.to_string())
        } else {
            Err(format!("no fd to hand over for {missing:?}"))
        };
        drop(borrowed);
        if let Err(e) = result {
            self.say(LogLevel::Error, &format!("the handoff failed: {e}"));
        }
        if let Some(vassal) = self.vassals.get_mut(&generation) {
            vassal.vassal_control = None;
            vassal.vassal_config = None;
        }
    }

    /// Bind the proxy socket: in the private runtime directory (made or checked first)
    /// with [`PRIVATE_SOCKET_MODE`], else where the operator or the vassal said, with the
    /// Emperor's socket mode. No symlink is followed either way.
    fn bind_proxy(&self, path: &Path) -> Result<hostfs::BoundSocket, ProxyBindError> {
        let Some((base, sub)) = &self.io.proxy_private_dir else {
            return Ok(hostfs::bind_unix(
                path,
                self.io.socket_mode,
                SocketOwner::default(),
            )?);
        };
        let dir_path = base.join(sub);
        let name = match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) if parent == dir_path => name,
            _ => {
                return Err(ProxyBindError::OutsidePrivateDir {
                    path: path.display().to_string(),
                    dir: dir_path.display().to_string(),
                })
            }
        };
        let dir = hostfs::private_dir(base, sub)?;
        Ok(hostfs::bind_unix_at(
            dir,
            name,
            path,
            PRIVATE_SOCKET_MODE,
            SocketOwner::default(),
        )?)
    }

    pub(super) fn close_proxy(&mut self) {
        if let Some(listener) = self.proxy.take() {
            drop(listener.fd);
            self.remove_entry(listener.entry);
        }
        self.peers.clear();
    }

    /// Remove a socket file of ours; one that is no longer ours stays, with a log line.
    pub(super) fn remove_entry(&self, entry: SocketEntry) {
        if let Err(e) = entry.remove() {
            self.say(LogLevel::Error, &e.to_string());
        }
    }
}
