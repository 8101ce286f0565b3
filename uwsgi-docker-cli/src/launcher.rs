//! `uwsgi-docker-launcher PROXY UWSGI [ARGS…]`: the container's command in launcher mode.
//!
//! A uWSGI 2.0.x vassal takes at most two fds from `UWSGI_EMPEROR_PROXY`, so it cannot
//! receive a listening socket that way. But every uWSGI serves on a listening socket it
//! finds on fd 0 when no `socket` option is given. So this launcher, bind-mounted
//! read-only into the container, takes the handoff itself:
//! 1. connects to the proxy socket `PROXY`;
//! 2. receives one message with the control, config and socket fds (the core's codec);
//! 3. puts the socket on fd 0;
//! 4. sets `UWSGI_EMPEROR_FD` / `UWSGI_EMPEROR_FD_CONFIG` (and removes
//!    `UWSGI_EMPEROR_PROXY`, so uWSGI does not look for a proxy again);
//! 5. execs `UWSGI ARGS…`.
//!
//! It is built statically (`scripts/build-launcher.sh`), so it runs in any image.
use std::ffi::OsString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, IntoRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use rustix::io::{Errno, FdFlags};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SocketAddrUnix, SocketFlags, SocketType,
};
use uwsgi_docker_core::handoff::{self, HandedFd, MAX_FDS, MESSAGE_LEN};

/// The proxy socket exists before the container does; this only covers a slow start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_RETRY: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(proxy), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: uwsgi-docker-launcher PROXY_SOCKET UWSGI [ARGS...]; uwsgi-docker makes this the container's command in launcher mode");
        return ExitCode::from(2);
    };
    let rest: Vec<OsString> = args.collect();
    let fds = match receive(&proxy) {
        Ok(fds) => fds,
        Err(e) => {
            eprintln!(
                "uwsgi-docker-launcher: {}: {e}",
                std::path::Path::new(&proxy).display()
            );
            return ExitCode::FAILURE;
        }
    };
    let err = exec(fds, &program, &rest);
    eprintln!(
        "uwsgi-docker-launcher: cannot exec {}: {err}; set docker-uwsgi to the uWSGI binary in the image",
        std::path::Path::new(&program).display()
    );
    ExitCode::FAILURE
}

/// Why the launcher got no handoff.
#[derive(Debug, thiserror::Error)]
enum HandoffError {
    #[error("not a usable socket path: {0}")]
    Path(Errno),
    #[error("cannot create a socket: {0}")]
    Socket(Errno),
    #[error("cannot connect within {secs} s: {cause}")]
    Timeout { secs: u64, cause: Errno },
    #[error("cannot connect: {0}")]
    Connect(Errno),
    #[error("cannot receive the handoff: {0}")]
    Receive(Errno),
    #[error("the handoff carried more fds than a vassal takes")]
    Truncated,
    #[error("bad handoff from uwsgi-docker: {0}")]
    Message(handoff::HandoffError),
    #[error("the handoff announces {announced} fds but carries {carried}")]
    Count { announced: usize, carried: usize },
    #[error("the handoff carried no control channel")]
    NoControl,
}

/// The fds of one handoff, by role.
#[derive(Debug)]
struct Received {
    control: OwnedFd,
    config: Option<OwnedFd>,
    socket: Option<OwnedFd>,
}

/// Connect to the proxy and receive the handoff message.
fn receive(proxy: &OsString) -> Result<Received, HandoffError> {
    let addr = SocketAddrUnix::new(std::path::Path::new(proxy)).map_err(HandoffError::Path)?;
    let socket = connect(&addr)?;
    let mut data = [0u8; MESSAGE_LEN + 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        // No CMSG_CLOEXEC: the channels must survive the exec into uWSGI.
        match rustix::net::recvmsg(
            &socket,
            &mut [io::IoSliceMut::new(&mut data)],
            &mut control,
            RecvFlags::empty(),
        ) {
            Ok(msg) => break msg,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(HandoffError::Receive(e)),
        }
    };
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        return Err(HandoffError::Truncated);
    }
    let announced = handoff::decode(data.get(..msg.bytes).unwrap_or_default())
        .map_err(HandoffError::Message)?;
    if announced != fds.len() {
        return Err(HandoffError::Count {
            announced,
            carried: fds.len(),
        });
    }
    by_role(fds)
}

/// Protocol order: control, config (the bridge always relays one), socket.
fn by_role(fds: Vec<OwnedFd>) -> Result<Received, HandoffError> {
    let mut fds = fds.into_iter();
    let roles = [HandedFd::Control, HandedFd::Config, HandedFd::Socket];
    let mut received = Received {
        control: fds.next().ok_or(HandoffError::NoControl)?,
        config: None,
        socket: None,
    };
    for (fd, role) in fds.zip(roles.into_iter().skip(1)) {
        match role {
            HandedFd::Config => received.config = Some(fd),
            HandedFd::Socket => received.socket = Some(fd),
            HandedFd::Control => {}
        }
    }
    Ok(received)
}

fn connect(addr: &SocketAddrUnix) -> Result<OwnedFd, HandoffError> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(HandoffError::Socket)?;
        match rustix::net::connect(&socket, addr) {
            Ok(()) => return Ok(socket),
            Err(e @ (Errno::NOENT | Errno::CONNREFUSED | Errno::INTR)) => {
                if Instant::now() >= deadline {
                    return Err(HandoffError::Timeout {
                        secs: CONNECT_TIMEOUT.as_secs(),
                        cause: e,
                    });
                }
                std::thread::sleep(CONNECT_RETRY);
            }
            Err(e) => return Err(HandoffError::Connect(e)),
        }
    }
}

/// Arrange the fds and env, then exec; returns only on failure.
fn exec(fds: Received, program: &OsString, rest: &[OsString]) -> io::Error {
    let mut command = Command::new(program);
    command.args(rest).env_remove("UWSGI_EMPEROR_PROXY");
    if let Some(socket) = fds.socket {
        // uWSGI serves on a listening socket it finds on fd 0. dup2 leaves the copy
        // without close-on-exec; the original closes here.
        if let Err(e) = rustix::stdio::dup2_stdin(socket.as_fd()) {
            return io::Error::other(format!("cannot put the socket on fd 0: {e}"));
        }
    }
    match keep_open(fds.control) {
        Ok(fd) => command.env("UWSGI_EMPEROR_FD", fd.to_string()),
        Err(e) => return e,
    };
    match fds.config.map(keep_open).transpose() {
        Ok(Some(fd)) => command.env("UWSGI_EMPEROR_FD_CONFIG", fd.to_string()),
        Ok(None) => command.env_remove("UWSGI_EMPEROR_FD_CONFIG"),
        Err(e) => return e,
    };
    command.exec()
}

/// Clear close-on-exec and give up ownership: the fd now belongs to the exec'd uWSGI.
fn keep_open(fd: OwnedFd) -> Result<i32, io::Error> {
    rustix::io::fcntl_setfd(&fd, FdFlags::empty())?;
    Ok(fd.into_raw_fd())
}
