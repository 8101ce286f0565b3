//! The bridge's connections to the Docker daemon: one unix stream per request, opened,
//! written and read as the bridge asks.
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Instant;

use rustix::event::PollFlags;
use uwsgi_docker_core::lifecycle::DockerConn;

use super::{head, read_some, Channel, ReadOutcome, Runtime};
use crate::host::hostfs;

impl Runtime {
    pub(super) fn docker_connect(&mut self, conn: DockerConn, now: Instant) {
        // Bounded: a daemon whose backlog stays full fails the vassal, naming it.
        let connected =
            hostfs::connect_unix(Path::new(&self.io.daemon_socket), hostfs::CONNECT_TIMEOUT)
                .and_then(Channel::new);
        match connected {
            Ok(ch) => {
                self.docker.insert(conn, ch);
            }
            Err(e) => self.bridge.handle_docker_connect_failed(conn, e, now),
        }
    }

    pub(super) fn docker_send(&mut self, conn: DockerConn, bytes: &[u8], now: Instant) {
        match self.docker.get_mut(&conn).map(|ch| ch.send(bytes)) {
            Some(Ok(())) => {}
            Some(Err(e)) => self.docker_gone(conn, &format!("write failed: {e}"), now),
            None => self.say_debug(&format!("send on closed docker connection {}", conn.0)),
        }
    }

    /// A daemon connection is ready: flush the request, read the reply.
    pub(super) fn docker_ready(
        &mut self,
        conn: DockerConn,
        revents: PollFlags,
        readable: bool,
        buf: &mut Vec<u8>,
        now: Instant,
    ) {
        if revents.contains(PollFlags::OUT) {
            if let Some(Err(e)) = self.docker.get_mut(&conn).map(Channel::flush) {
                self.docker_gone(conn, &e.to_string(), now);
                return;
            }
        }
        let Some(ch) = self.docker.get(&conn).filter(|_| readable) else {
            return;
        };
        match read_some(ch.fd.as_fd(), buf) {
            ReadOutcome::Data(n) => self.bridge.handle_docker_data(conn, head(buf, n), now),
            ReadOutcome::Eof => self.docker_gone(conn, "closed", now),
            ReadOutcome::Nothing => {}
        }
    }

    pub(super) fn docker_gone(&mut self, conn: DockerConn, why: &str, now: Instant) {
        self.say_debug(&format!("docker connection {} {why}", conn.0));
        self.docker.remove(&conn);
        self.bridge.handle_docker_eof(conn, now);
    }
}
