//! Small facts about processes, from `/proc` and rustix.
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// This host's name, as `gc` compares it with bridge labels.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Field 22 of `/proc/PID/stat` (start time in clock ticks since boot): with the pid it
/// names one process for good, so a recycled pid is not mistaken for a live bridge.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// The comm field may hold spaces and parentheses: split after the last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    // Fields after comm start at field 3, so field 22 is the 20th.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

pub fn own_pid() -> u32 {
    std::process::id()
}

/// The bridge label `{hostname}:{pid}:{starttime}`.
pub fn bridge_id() -> String {
    let pid = own_pid();
    let start = start_time(pid).unwrap_or(0);
    format!("{}:{pid}:{start}", hostname())
}

/// The default Emperor label `{hostname}:{ppid}`.
pub fn default_emperor_id() -> String {
    let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
    format!("{}:{ppid}", hostname())
}

/// A parsed bridge label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeLabel {
    pub host: String,
    pub pid: u32,
    pub start_time: u64,
}

pub fn parse_bridge_label(label: &str) -> Option<BridgeLabel> {
    let mut parts = label.rsplitn(3, ':');
    let start_time = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    let host = parts.next()?.to_owned();
    Some(BridgeLabel {
        host,
        pid,
        start_time,
    })
}

/// Is the process this label names still running (same pid and start time)?
pub fn bridge_alive(label: &BridgeLabel) -> bool {
    start_time(label.pid) == Some(label.start_time)
}

/// The answer to the bridge's `QueryBridgeAlive`: is the bridge this label names alive?
/// A label of another host, or one we cannot read, counts as alive: not ours to judge, so
/// its container is never forced.
pub fn bridge_label_alive(label: &str) -> bool {
    match parse_bridge_label(label) {
        Some(bridge) if bridge.host == hostname() => bridge_alive(&bridge),
        _ => true,
    }
}

/// The pid namespace inode of `pid`, as the host sees it.
pub fn pid_namespace(pid: u32) -> Option<u64> {
    rustix::fs::stat(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|st| st.st_ino)
}

/// Longest `/proc/PID/cgroup` read: a cgroup v1 host lists a dozen hierarchies.
const MAX_PROC_CGROUP: usize = 4096;

/// `/proc/PID/cgroup` (at most [`MAX_PROC_CGROUP`] bytes); `None` when it cannot be read.
pub fn proc_cgroup(pid: u32) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(format!("/proc/{pid}/cgroup")).ok()?;
    let mut text = String::new();
    file.take(MAX_PROC_CGROUP as u64)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// What tells this daemon from a restarted or replaced one: its socket's path, device,
/// inode and change time (a daemon makes its socket anew when it starts). `None` when
/// the path is not a unix socket.
pub fn daemon_identity(socket: &str) -> Option<String> {
    let st = rustix::fs::stat(socket).ok()?;
    let is_socket = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket;
    is_socket.then(|| {
        format!(
            "{socket} {}:{}:{}.{}",
            st.st_dev, st.st_ino, st.st_ctime, st.st_ctime_nsec
        )
    })
}

/// An Emperor channel variable that names no fd we can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InheritedFdError {
    #[error("{var}={value:?} is not an fd number")]
    NotANumber { var: &'static str, value: String },
    #[error("{var}={fd} names a standard stream, not an Emperor channel")]
    StandardStream { var: &'static str, fd: RawFd },
    #[error("{var}={fd}: no such open fd; was this started by a uWSGI Emperor?")]
    NotOpen { var: &'static str, fd: RawFd },
}

/// Take ownership of an fd the Emperor left open for us, named by an env variable.
pub fn adopt_inherited_fd(var: &'static str, value: &str) -> Result<OwnedFd, InheritedFdError> {
    let fd: RawFd = value
        .trim()
        .parse()
        .map_err(|_| InheritedFdError::NotANumber {
            var,
            value: value.to_owned(),
        })?;
    // 0-2 are stdio, which we own already; taking them would close them twice.
    if fd <= 2 {
        return Err(InheritedFdError::StandardStream { var, fd });
    }
    // Only adopt a number that is open right now.
    if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
        return Err(InheritedFdError::NotOpen { var, fd });
    }
    // SAFETY: the fd is open (checked above), it was inherited across exec, so nothing in
    // this process owns it yet, and each variable is adopted exactly once (at startup, by
    // the one caller in wrapper mode). After this, the OwnedFd is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The Emperor's on-demand socket: a listening socket on fd 0, duplicated close-on-exec.
/// `None` when fd 0 is anything else (usually `/dev/null`).
pub fn inherited_listening_socket() -> Option<OwnedFd> {
    let stdin = std::io::stdin();
    let fd = std::os::fd::AsFd::as_fd(&stdin);
    match rustix::net::sockopt::socket_acceptconn(fd) {
        Ok(true) => rustix::io::fcntl_dupfd_cloexec(fd, 3).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_reads_this_process() {
        let text = proc_cgroup(std::process::id()).expect("our own cgroup");
        assert!(
            text.lines().all(|l| l.splitn(3, ':').count() == 3),
            "{text:?}"
        );
        assert_eq!(proc_cgroup(u32::MAX), None);
    }

    #[test]
    fn start_time_skips_a_tricky_comm() {
        let stat =
            "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn our_own_start_time_and_bridge_label() {
        let start = start_time(own_pid()).expect("our own /proc/self/stat");
        let label = parse_bridge_label(&bridge_id()).expect("parses");
        assert_eq!(label.pid, own_pid());
        assert_eq!(label.start_time, start);
        assert_eq!(label.host, hostname());
        assert!(bridge_alive(&label));
        let recycled = BridgeLabel {
            start_time: start + 1,
            ..label
        };
        assert!(!bridge_alive(&recycled));
        assert_eq!(parse_bridge_label("h:x:1"), None);
        assert_eq!(
            parse_bridge_label("a:b:12:34"),
            Some(BridgeLabel {
                host: "a:b".into(),
                pid: 12,
                start_time: 34
            })
        );
    }

    #[test]
    fn only_a_dead_bridge_of_this_host_counts_as_gone() {
        let me = bridge_id();
        assert!(bridge_label_alive(&me), "we are alive");
        let label = parse_bridge_label(&me).expect("parses");
        let dead = format!("{}:{}:{}", label.host, label.pid, label.start_time + 1);
        assert!(
            !bridge_label_alive(&dead),
            "a recycled pid is not our bridge"
        );
        let elsewhere = format!("not-{}:{}:{}", label.host, label.pid, label.start_time + 1);
        assert!(
            bridge_label_alive(&elsewhere),
            "another host's bridge is not ours to judge"
        );
        assert!(
            bridge_label_alive("garbage"),
            "an unreadable label is not ours to judge"
        );
    }

    #[test]
    fn pid_namespace_of_our_process() {
        let ns = pid_namespace(own_pid()).expect("our pid namespace");
        let via_self = rustix::fs::stat("/proc/self/ns/pid").expect("stat").st_ino;
        assert_eq!(ns, via_self);
        assert_eq!(pid_namespace(u32::MAX), None);
    }

    #[test]
    fn adopting_refuses_stdio_and_closed_fds() {
        assert!(adopt_inherited_fd("UWSGI_EMPEROR_FD", "1").is_err());
        assert!(adopt_inherited_fd("UWSGI_EMPEROR_FD", "x").is_err());
        assert!(adopt_inherited_fd("UWSGI_EMPEROR_FD", "999999").is_err());
    }
}
