//! Host file operations on paths a vassal names (`docker-socket`, `docker-proxy`,
//! `docker-cidfile`), done so that a hostile vassal author cannot redirect them:
//!
//! * every path is opened with no symlink in any component: `openat2` with
//!   `RESOLVE_NO_SYMLINKS`, or a walk from `/` with `O_PATH|O_NOFOLLOW|O_DIRECTORY` on
//!   kernels without it. The directory stays pinned as an fd; everything after that acts on
//!   `dir fd + name`, never on the path again;
//! * files are created new (`O_EXCL|O_NOFOLLOW`), and sockets are bound through
//!   `/proc/self/fd/DIR/NAME` (which also lifts the 108-byte `sun_path` limit on the
//!   directory part);
//! * a directory entry is unlinked only after the entry we checked (opened `O_PATH|O_NOFOLLOW`
//!   and fstat'ed) is proven to be the one still under that name (same dev/ino by
//!   `fstatat(AT_SYMLINK_NOFOLLOW)`), and only when it is ours: a stale unix stream socket
//!   that refuses connections, our own socket, or a cidfile still holding our id.
//!
//! Unlinking `dir fd + name` can only ever remove a name in the pinned directory: a symlink
//! swapped in is removed as a symlink, never its target, and a directory swapped for a
//! symlink does not move the pinned fd.
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, RenameFlags, ResolveFlags, Stat, Uid};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// How long a connect to a unix socket may wait for room in a full backlog.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a host file operation was refused or failed. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum HostFsError {
    /// The vassal's path is not one we act on (its author's to fix).
    #[error("{path}: {why}")]
    Refused { path: String, why: String },
    /// A system call failed.
    #[error("cannot {what} {path}: {cause}")]
    Io {
        what: &'static str,
        path: String,
        cause: Errno,
    },
}

impl HostFsError {
    pub(crate) fn refused(path: &Path, why: impl fmt::Display) -> HostFsError {
        HostFsError::Refused {
            path: path.display().to_string(),
            why: why.to_string(),
        }
    }

    pub(crate) fn io(what: &'static str, path: &Path, source: Errno) -> HostFsError {
        HostFsError::Io {
            what,
            path: path.display().to_string(),
            cause: source,
        }
    }
}

type Result<T, E = HostFsError> = std::result::Result<T, E>;

/// `O_PATH|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC`: a handle on a directory, never a symlink.
fn dir_flags() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The normal components of an absolute path with no `.` or `..`; `None` otherwise.
fn plain_components(path: &Path) -> Option<Vec<&OsStr>> {
    let mut components = path.components();
    if components.next() != Some(Component::RootDir) {
        return None;
    }
    let mut names = Vec::new();
    for component in components {
        match component {
            Component::Normal(name) => names.push(name),
            _ => return None,
        }
    }
    // `Path::components` drops `.` in the middle; refuse it in the raw bytes too.
    let raw = path.as_os_str().as_bytes();
    if raw
        .split(|&b| b == b'/')
        .any(|part| part == b"." || part == b"..")
    {
        return None;
    }
    Some(names)
}

/// Open the directory `path` with no symlink in any component: an `O_PATH` fd.
/// Relative paths and paths with `.` or `..` are refused.
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    let Some(names) = plain_components(path) else {
        return Err(HostFsError::refused(
            path,
            "not an absolute path without . or .. components",
        ));
    };
    match rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        dir_flags(),
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => return Ok(fd),
        // No openat2 here (before Linux 5.6, or filtered): walk instead.
        Err(Errno::NOSYS | Errno::PERM) => {}
        Err(Errno::LOOP | Errno::NOTDIR) => return Err(symlink_in(path, &names)),
        Err(e) => return Err(HostFsError::io("open the directory", path, e)),
    }
    walk(path, &names)
}

/// The component walk from `/`, one `openat(O_NOFOLLOW)` per name.
fn walk(path: &Path, names: &[&OsStr]) -> Result<OwnedFd> {
    let mut dir = rustix::fs::open("/", dir_flags(), Mode::empty())
        .map_err(|e| HostFsError::io("open", Path::new("/"), e))?;
    for name in names {
        dir = match rustix::fs::openat(&dir, *name, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            // O_PATH|O_NOFOLLOW opens a symlink itself, and O_DIRECTORY then fails.
            Err(Errno::NOTDIR | Errno::LOOP) => return Err(symlink_in(path, names)),
            Err(e) => return Err(HostFsError::io("open the directory", path, e)),
        };
    }
    Ok(dir)
}

/// The error for a path that did not open as a directory: names the first symlinked
/// component when there is one (the lookup is only for the message).
fn symlink_in(path: &Path, names: &[&OsStr]) -> HostFsError {
    let mut prefix = PathBuf::from("/");
    for name in names {
        prefix.push(name);
        if std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink()) {
            return HostFsError::refused(
                path,
                format!(
                    "{} is a symlink; paths given to uwsgi-docker must not go through symlinks: name the real directory",
                    prefix.display()
                ),
            );
        }
    }
    HostFsError::refused(
        path,
        "a component is not a directory (or is a symlink); name the real directory",
    )
}

/// Refuses `path` unless only root can change what it names: every directory from `/` down
/// to the one holding its last component is root's (or ours) and writable by no group or
/// other (a sticky bit does not help: a tenant may still rename its own entries), and no
/// component is a symlink. A path handed to dockerd as a mount source is looked up again
/// when the container starts; for such a path that lookup finds what was checked here,
/// whatever a tenant renames in between. `last_may_be_absent`: the last component may not
/// exist yet (a socket about to be bound).
pub fn check_fixed_path(path: &Path, last_may_be_absent: bool) -> Result<()> {
    let Some(names) = plain_components(path).filter(|n| !n.is_empty()) else {
        return Err(HostFsError::refused(
            path,
            "not an absolute path to something below / without . or .. components",
        ));
    };
    let euid = rustix::process::geteuid().as_raw();
    let mut dir = rustix::fs::open("/", dir_flags(), Mode::empty())
        .map_err(|e| HostFsError::io("open", Path::new("/"), e))?;
    let mut shown = PathBuf::from("/");
    for (index, name) in names.iter().enumerate() {
        let st = rustix::fs::fstat(&dir).map_err(|e| HostFsError::io("stat", &shown, e))?;
        if (st.st_uid != 0 && st.st_uid != euid) || st.st_mode & 0o022 != 0 {
            return Err(HostFsError::refused(
                path,
                format!(
                    "the directory {} can be changed by others than root (owner uid {}, mode {:o}), so what the path names could be swapped (for a symlink to anywhere) after it is checked and before the daemon uses it; use a path whose every directory above it is root's and not group- or world-writable (e.g. /srv/TENANT, with /srv root's), or have root own {} and chmod go-w it",
                    shown.display(),
                    st.st_uid,
                    st.st_mode & 0o7777,
                    shown.display()
                ),
            ));
        }
        shown.push(name);
        let last = index + 1 == names.len();
        let handle = match rustix::fs::openat(
            &dir,
            *name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(handle) => handle,
            Err(Errno::NOENT) if last && last_may_be_absent => return Ok(()),
            Err(e) => return Err(HostFsError::io("open", &shown, e)),
        };
        let st = rustix::fs::fstat(&handle).map_err(|e| HostFsError::io("stat", &shown, e))?;
        if is_type(&st, FileType::Symlink) {
            return Err(HostFsError::refused(
                path,
                format!(
                    "{} is a symlink, which the daemon would follow; name the real path",
                    shown.display()
                ),
            ));
        }
        if !last {
            if !is_type(&st, FileType::Directory) {
                return Err(HostFsError::refused(
                    path,
                    format!("{} is not a directory", shown.display()),
                ));
            }
            dir = handle;
        }
    }
    Ok(())
}

/// `path` split into its pinned parent directory and its last component.
pub fn open_parent(path: &Path) -> Result<(OwnedFd, OsString)> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(HostFsError::refused(path, "not an absolute path to a file"));
    };
    if plain_components(path).is_none() {
        return Err(HostFsError::refused(
            path,
            "not an absolute path without . or .. components",
        ));
    }
    Ok((open_dir(parent)?, name.to_owned()))
}

fn is_type(st: &Stat, kind: FileType) -> bool {
    FileType::from_raw_mode(st.st_mode) == kind
}

/// `/proc/self/fd/N`, optionally followed by `/NAME`: how we name an fd (and an entry
/// in a pinned directory) to calls that only take paths.
fn proc_path(fd: BorrowedFd<'_>, name: Option<&OsStr>) -> PathBuf {
    use std::os::fd::AsRawFd;
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    if let Some(name) = name {
        path.push(name);
    }
    path
}

/// Create `name` in `dir` new: `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`, write-only.
pub fn create_new(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
}

/// Connect a close-on-exec stream socket to the unix socket at `path`, waiting at most
/// `timeout` for room in a full backlog. Nonblocking: a unix connect either completes at
/// once or fails with `EAGAIN` (backlog full), so this retries until the deadline. The
/// socket comes back blocking.
pub fn connect_unix(path: &Path, timeout: Duration) -> io::Result<OwnedFd> {
    let addr = SocketAddrUnix::new(path)?;
    let deadline = Instant::now() + timeout;
    loop {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => {
                rustix::io::ioctl_fionbio(&fd, false)?;
                return Ok(fd);
            }
            Err(Errno::AGAIN | Errno::INPROGRESS) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(Errno::AGAIN | Errno::INPROGRESS) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "connecting timed out after {} s: its listen backlog stays full",
                        timeout.as_secs()
                    ),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What the probe of an existing socket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// A stream socket nobody listens on.
    Stale,
    /// Somebody listens (or the backlog is full).
    Listening,
    /// A datagram or seqpacket socket.
    OtherType,
}

/// Connect to the socket open as `entry` (an `O_PATH` fd) through `/proc/self/fd/M`, with
/// a nonblocking stream socket: the entry's path is not looked up again.
fn probe(entry: BorrowedFd<'_>) -> io::Result<Probe> {
    let addr = SocketAddrUnix::new(proc_path(entry, None))?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    match rustix::net::connect(&fd, &addr) {
        Err(Errno::CONNREFUSED) => Ok(Probe::Stale),
        Err(Errno::PROTOTYPE) => Ok(Probe::OtherType),
        Ok(()) | Err(Errno::AGAIN | Errno::INPROGRESS) => Ok(Probe::Listening),
        Err(e) => Err(e.into()),
    }
}

/// Open `name` in `dir` as an `O_PATH|O_NOFOLLOW` handle and fstat it; `None` when absent.
fn open_entry(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<Option<(OwnedFd, Stat)>> {
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(HostFsError::io("open", path, e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| HostFsError::io("stat", path, e))?;
    Ok(Some((fd, st)))
}

/// Unlink `name` from `dir` if it is still the entry `st` describes (same dev and inode,
/// by a no-follow `fstatat` in the pinned directory). Nothing else is ever unlinked.
fn unlink_same_entry(dir: BorrowedFd<'_>, name: &OsStr, st: &Stat, path: &Path) -> Result<()> {
    let now = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| HostFsError::io("stat", path, e))?;
    if now.st_dev != st.st_dev || now.st_ino != st.st_ino {
        return Err(HostFsError::refused(
            path,
            "the entry changed while it was being checked; nothing was removed",
        ));
    }
    rustix::fs::unlinkat(dir, name, AtFlags::empty())
        .map_err(|e| HostFsError::io("remove", path, e))
}

/// What [`remove_stale_socket`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleOutcome {
    /// Nothing was at that name.
    Absent,
    /// A stale socket was removed.
    Removed,
}

/// Remove `name` in `dir` only if it is a unix stream socket that refuses connections.
/// A live socket of any type, or anything that is not a socket, is an error naming `path`.
pub fn remove_stale_socket(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<StaleOutcome> {
    let Some((entry, st)) = open_entry(dir, name, path)? else {
        return Ok(StaleOutcome::Absent);
    };
    if !is_type(&st, FileType::Socket) {
        return Err(HostFsError::refused(
            path,
            "it exists and is not a socket; remove it or choose another path",
        ));
    }
    match probe(entry.as_fd()) {
        Ok(Probe::Stale) => {}
        Ok(Probe::Listening) => {
            return Err(HostFsError::refused(
                path,
                "the socket is in use: another process listens on it; stop it or choose another path",
            ))
        }
        Ok(Probe::OtherType) => {
            return Err(HostFsError::refused(
                path,
                "it is a live datagram or seqpacket socket of another process; choose another path",
            ))
        }
        Err(e) => {
            return Err(HostFsError::refused(
                path,
                format!("cannot tell whether the socket is stale ({e}); remove it by hand or choose another path"),
            ))
        }
    }
    unlink_same_entry(dir, name, &st, path)?;
    Ok(StaleOutcome::Removed)
}

/// Who a socket we bind belongs to: `None` leaves our own uid or gid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketOwner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl SocketOwner {
    fn is_set(self) -> bool {
        self.uid.is_some() || self.gid.is_some()
    }
}

/// The directory entry of a socket we bound: removed at exit only while it is still ours.
#[derive(Debug)]
pub struct SocketEntry {
    dir: OwnedFd,
    name: OsString,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketEntry {
    /// Unlink the socket file if the name still holds the socket we bound (same entry,
    /// a socket); anything else there is left alone.
    pub fn remove(self) -> Result<()> {
        let Some((_, st)) = open_entry(self.dir.as_fd(), &self.name, &self.path)? else {
            return Ok(());
        };
        if !is_type(&st, FileType::Socket) || st.st_dev != self.dev || st.st_ino != self.ino {
            return Err(HostFsError::refused(
                &self.path,
                "no longer our socket (replaced since we bound it); left in place",
            ));
        }
        unlink_same_entry(self.dir.as_fd(), &self.name, &st, &self.path)
    }
}

/// A listening unix socket and its directory entry.
#[derive(Debug)]
pub struct BoundSocket {
    /// Nonblocking and close-on-exec.
    pub listener: OwnedFd,
    pub entry: SocketEntry,
}

/// The longest `sun_path` we hand the kernel (108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// Bind and listen on a unix stream socket at `dir + name` (`path` is only for messages):
/// a stale socket is removed first (see [`remove_stale_socket`]), the socket gets `mode` and
/// `owner` before `listen`, so nobody can connect before both are right.
///
/// * Bind goes through `/proc/self/fd/DIR/NAME`: no path walk, and only the name counts
///   against `sun_path`. A name too long even for that is bound under a short temporary
///   name and renamed into place (`RENAME_NOREPLACE`).
/// * The new entry is opened `O_PATH|O_NOFOLLOW` and must be a socket owned by us with one
///   link (a hard link to somebody else's socket swapped in would have two, or their owner).
/// * The mode is set through that handle (`chmod("/proc/self/fd/M")`, which acts on the
///   handle's inode, not on a name), and the owner with `fchownat(AT_EMPTY_PATH)` on it.
///   Not a umask around `bind`: the umask is process-wide, so any other thread creating a
///   file at that moment (the unit tests do) would get it too.
pub fn bind_unix_at(
    dir: OwnedFd,
    name: &OsStr,
    path: &Path,
    mode: u32,
    owner: SocketOwner,
) -> Result<BoundSocket> {
    if name.is_empty() || name.as_bytes().contains(&b'/') || name == "." || name == ".." {
        return Err(HostFsError::refused(path, "not a file name"));
    }
    remove_stale_socket(dir.as_fd(), name, path)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(|e| HostFsError::io("create a socket for", path, e))?;
    let direct = proc_path(dir.as_fd(), Some(name));
    let temp: Option<OsString> = (direct.as_os_str().len() > SUN_PATH_MAX)
        .then(|| OsString::from(format!(".uwsgi-docker-{}.tmp", std::process::id())));
    if let Some(temp) = &temp {
        // A crashed bridge of the same pid may have left one.
        remove_stale_socket(dir.as_fd(), temp, path)?;
    }
    let bind_name = temp.as_deref().unwrap_or(name);
    let addr = SocketAddrUnix::new(proc_path(dir.as_fd(), Some(bind_name)))
        .map_err(|e| HostFsError::io("use the socket path", path, e))?;
    rustix::net::bind(&fd, &addr).map_err(|e| match e {
        Errno::ADDRINUSE => HostFsError::refused(
            path,
            "something appeared at that name while we bound it; try again or choose another path",
        ),
        e => HostFsError::io("bind", path, e),
    })?;
    // From here on, a failure removes what we bound (checked as ours).
    let undo = |name: &OsStr, err: HostFsError| {
        if let Ok(Some((_, st))) = open_entry(dir.as_fd(), name, path) {
            if is_type(&st, FileType::Socket) && st.st_nlink == 1 {
                let _ = unlink_same_entry(dir.as_fd(), name, &st, path);
            }
        }
        err
    };
    if let Some(temp) = &temp {
        if let Err(e) = rustix::fs::renameat_with(&dir, temp, &dir, name, RenameFlags::NOREPLACE) {
            return Err(undo(
                temp,
                HostFsError::io("move the bound socket into place at", path, e),
            ));
        }
    }
    let entry = match open_entry(dir.as_fd(), name, path) {
        Ok(Some(entry)) => entry,
        Ok(None) => {
            return Err(HostFsError::refused(
                path,
                "the socket vanished right after bind",
            ))
        }
        Err(e) => return Err(undo(name, e)),
    };
    let (handle, st) = entry;
    let euid = rustix::process::geteuid().as_raw();
    if !is_type(&st, FileType::Socket) || st.st_uid != euid || st.st_nlink != 1 {
        // Not what we bound: leave it, and say so.
        return Err(HostFsError::refused(
            path,
            "the entry was replaced right after bind; nothing was changed or removed",
        ));
    }
    // Nobody can connect yet (no listen), whatever the mode is now.
    let mode = Mode::from_raw_mode(mode & 0o777);
    if let Err(e) = rustix::fs::chmod(proc_path(handle.as_fd(), None), mode) {
        return Err(undo(name, HostFsError::io("set the mode of", path, e)));
    }
    if owner.is_set() {
        let uid = owner.uid.map(Uid::from_raw);
        let gid = owner.gid.map(Gid::from_raw);
        if let Err(e) = rustix::fs::chownat(&handle, "", uid, gid, AtFlags::EMPTY_PATH) {
            return Err(undo(name, HostFsError::io("set the owner of", path, e)));
        }
    }
    if let Err(e) = rustix::net::listen(&fd, 128) {
        return Err(undo(name, HostFsError::io("listen on", path, e)));
    }
    Ok(BoundSocket {
        listener: fd,
        entry: SocketEntry {
            dir,
            name: name.to_owned(),
            path: path.to_owned(),
            dev: st.st_dev,
            ino: st.st_ino,
        },
    })
}

/// [`bind_unix_at`] for an absolute path: its parent is opened with [`open_dir`].
pub fn bind_unix(path: &Path, mode: u32, owner: SocketOwner) -> Result<BoundSocket> {
    let (dir, name) = open_parent(path)?;
    bind_unix_at(dir, &name, path, mode, owner)
}

/// Remove the stale socket at an absolute `path` (see [`remove_stale_socket`]).
pub fn remove_stale_socket_path(path: &Path) -> Result<StaleOutcome> {
    let (dir, name) = open_parent(path)?;
    remove_stale_socket(dir.as_fd(), &name, path)
}

/// A Docker container id: 64 lowercase hex digits.
pub fn is_container_id(text: &[u8]) -> bool {
    text.len() == 64 && text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The longest cidfile we read back.
const CIDFILE_READ_MAX: usize = 128;

/// Read the regular file open as `fd` (at most [`CIDFILE_READ_MAX`] bytes).
fn read_small(fd: BorrowedFd<'_>, path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; CIDFILE_READ_MAX + 1];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(buf.get(..n).unwrap_or_default());
                if out.len() > CIDFILE_READ_MAX {
                    return Ok(out);
                }
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(HostFsError::io("read", path, e)),
        }
    }
}

/// Open `name` in `dir` for reading with no symlink following, without blocking on a FIFO.
fn open_read(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<Option<(OwnedFd, Stat)>> {
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => {
            return Err(HostFsError::refused(
                path,
                "it is a symlink; uwsgi-docker does not write through symlinks",
            ))
        }
        Err(e) => return Err(HostFsError::io("open", path, e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| HostFsError::io("stat", path, e))?;
    Ok(Some((fd, st)))
}

/// A cidfile we wrote: removed at exit only while it still holds our id.
#[derive(Debug)]
pub struct CidFile {
    dir: OwnedFd,
    name: OsString,
    path: PathBuf,
    id: String,
}

impl CidFile {
    /// Unlink the cidfile if it is still the regular file holding our id.
    pub fn remove(self) -> Result<()> {
        let Some((fd, st)) = open_read(self.dir.as_fd(), &self.name, &self.path)? else {
            return Ok(());
        };
        let ours = is_type(&st, FileType::RegularFile)
            && read_small(fd.as_fd(), &self.path)? == self.id.as_bytes();
        if !ours {
            return Err(HostFsError::refused(
                &self.path,
                "no longer holds our container id; left in place",
            ));
        }
        unlink_same_entry(self.dir.as_fd(), &self.name, &st, &self.path)
    }
}

/// The existing entry at `name`, if any, when it is a cidfile we may replace: a regular
/// file owned by us, with one link, holding exactly a container id. Anything else is an error.
fn existing_cidfile(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<Option<Stat>> {
    let Some((fd, st)) = open_read(dir, name, path)? else {
        return Ok(None);
    };
    let euid = rustix::process::geteuid().as_raw();
    let ours = is_type(&st, FileType::RegularFile)
        && st.st_uid == euid
        && st.st_nlink == 1
        && is_container_id(&read_small(fd.as_fd(), path)?);
    if !ours {
        return Err(HostFsError::refused(
            path,
            "it exists and is not a cidfile left by uwsgi-docker (a regular file of ours holding only a container id); remove it or choose another docker-cidfile",
        ));
    }
    Ok(Some(st))
}

/// Before anything is created: would [`write_cidfile`] accept `path` now? (It checks
/// again when it writes.)
pub fn check_cidfile(path: &Path) -> Result<()> {
    let (dir, name) = open_parent(path)?;
    existing_cidfile(dir.as_fd(), &name, path).map(|_| ())
}

/// Write container `id` to the cidfile at `path`, created new (`O_EXCL`) in its pinned
/// directory. An existing file is replaced only if it is one we wrote (see
/// [`check_cidfile`]). Anything else is an error.
pub fn write_cidfile(path: &Path, id: &str) -> Result<CidFile> {
    let (dir, name) = open_parent(path)?;
    if let Some(st) = existing_cidfile(dir.as_fd(), &name, path)? {
        unlink_same_entry(dir.as_fd(), &name, &st, path)?;
    }
    let fd = create_new(dir.as_fd(), &name, 0o644).map_err(|e| match e {
        Errno::EXIST => HostFsError::refused(
            path,
            "something appeared at that name while we wrote it; nothing was replaced",
        ),
        e => HostFsError::io("create", path, e),
    })?;
    if let Err(e) = write_all(fd.as_fd(), id.as_bytes()) {
        if let Ok(st) = rustix::fs::fstat(&fd) {
            let _ = unlink_same_entry(dir.as_fd(), &name, &st, path);
        }
        return Err(HostFsError::io("write", path, e));
    }
    Ok(CidFile {
        dir,
        name,
        path: path.to_owned(),
        id: id.to_owned(),
    })
}

/// Remove the cidfile at `path` if it holds exactly `id` (`gc`, for an orphan's cidfile).
pub fn remove_cidfile_if(path: &Path, id: &str) -> Result<bool> {
    let (dir, name) = open_parent(path)?;
    let Some((fd, st)) = open_read(dir.as_fd(), &name, path)? else {
        return Ok(false);
    };
    if !is_type(&st, FileType::RegularFile) || read_small(fd.as_fd(), path)? != id.as_bytes() {
        return Ok(false);
    }
    unlink_same_entry(dir.as_fd(), &name, &st, path)?;
    Ok(true)
}

/// Make a directory name out of an Emperor id: `[A-Za-z0-9_.-]` kept, anything else `_`;
/// a changed (or dot-led) id gets a hash of the original, so two ids never share a dir.
pub fn sanitise_dir_name(id: &str) -> String {
    const MAX: usize = 64;
    let kept: String = id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '_',
        })
        .take(MAX)
        .collect();
    if kept == id && !id.is_empty() && !id.starts_with('.') {
        return kept;
    }
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("v{kept}-{hash:016x}")
}

/// Create (or check) `base/sub`, the Emperor's private runtime directory: `base` is made
/// 0700 if missing and must be ours and writable by nobody else; `base/sub` is made 0700
/// and must be a real directory, ours, with no group or other bits. Returns it pinned.
pub fn private_dir(base: &Path, sub: &str) -> Result<OwnedFd> {
    let base_fd = checked_base(base)?;
    let euid = rustix::process::geteuid().as_raw();
    let path = base.join(sub);
    if sub.is_empty() || sub.contains('/') || sub == "." || sub == ".." {
        return Err(HostFsError::refused(&path, "not a directory name"));
    }
    let dir = make_dir(base_fd.as_fd(), OsStr::new(sub), &path)?;
    check_dir(dir.as_fd(), &path, euid, 0o077)?;
    Ok(dir)
}

/// The directory `base` for files of ours (the runtime directory), pinned: made 0700 if
/// missing, and refused unless it is ours and writable by nobody else, so that no one else
/// can put or swap an entry in it.
pub(crate) fn checked_base(base: &Path) -> Result<OwnedFd> {
    let (parent, base_name) = open_parent(base)?;
    let euid = rustix::process::geteuid().as_raw();
    let dir = make_dir(parent.as_fd(), &base_name, base)?;
    check_dir(dir.as_fd(), base, euid, 0o022)?;
    Ok(dir)
}

/// Make sure `base/name` is a regular file of ours holding exactly `bytes`, with `mode`,
/// writing it (new, then renamed over the name) when it is not. `base` is made 0700 if
/// missing and must be ours and writable by nobody else, as for [`private_dir`]; so no
/// one else can have put, or change, what is there. Returns the file's path.
pub fn install_file(base: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf> {
    let dir = checked_base(base)?;
    let euid = rustix::process::geteuid().as_raw();
    let path = base.join(name);
    if holds(dir.as_fd(), OsStr::new(name), bytes, mode, euid) {
        return Ok(path);
    }
    // A name of our own for the new copy: bridges starting together each write theirs.
    let temporary = format!(".{name}.{}", std::process::id());
    let _ = rustix::fs::unlinkat(dir.as_fd(), temporary.as_str(), AtFlags::empty());
    let file = create_new(dir.as_fd(), OsStr::new(&temporary), mode)
        .map_err(|e| HostFsError::io("create", &base.join(&temporary), e))?;
    let written = write_all(file.as_fd(), bytes)
        .and_then(|()| rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)))
        .and_then(|()| rustix::fs::renameat(dir.as_fd(), temporary.as_str(), dir.as_fd(), name));
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(dir.as_fd(), temporary.as_str(), AtFlags::empty());
        return Err(HostFsError::io("write", &path, e));
    }
    Ok(path)
}

/// What `base/name` holds (a regular file of at most `max` bytes) when `base` passes the
/// checks [`install_file`] makes; `None` when it does not, or there is no such file.
pub fn read_installed(base: &Path, name: &str, max: usize) -> Option<Vec<u8>> {
    let dir = open_dir(base).ok()?;
    let euid = rustix::process::geteuid().as_raw();
    check_dir(dir.as_fd(), base, euid, 0o022).ok()?;
    state_files::read_file(dir.as_fd(), base, OsStr::new(name), max)
}

/// Whether `dir/name` is a regular file owned by `euid` with `mode`, holding `bytes`.
fn holds(dir: BorrowedFd<'_>, name: &OsStr, bytes: &[u8], mode: u32, euid: u32) -> bool {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let Ok(file) = rustix::fs::openat(dir, name, flags, Mode::empty()) else {
        return false;
    };
    let Ok(st) = rustix::fs::fstat(&file) else {
        return false;
    };
    let same_size = u64::try_from(st.st_size).ok() == u64::try_from(bytes.len()).ok();
    if !is_type(&st, FileType::RegularFile)
        || st.st_uid != euid
        || st.st_mode & 0o7777 != mode
        || !same_size
    {
        return false;
    }
    // Compared a chunk at a time: the launcher is over a megabyte, and a bridge asks at
    // every spawn.
    let mut chunk = vec![0u8; COMPARE_CHUNK_LEN];
    let mut rest = bytes;
    while !rest.is_empty() {
        let want = rest.len().min(chunk.len());
        match rustix::io::read(&file, chunk.get_mut(..want).unwrap_or_default()) {
            Ok(0) => return false,
            Ok(n) => {
                let (expected, after) = rest.split_at(n.min(rest.len()));
                if chunk.get(..n) != Some(expected) {
                    return false;
                }
                rest = after;
            }
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// How much of an installed file [`holds`] reads at a time.
const COMPARE_CHUNK_LEN: usize = 16 * 1024;

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> rustix::io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `mkdirat(dir, name, 0700)` unless it exists, then open it with no symlink following.
fn make_dir(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<OwnedFd> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(HostFsError::io("create the directory", path, e)),
    }
    rustix::fs::openat(dir, name, dir_flags(), Mode::empty()).map_err(|e| match e {
        Errno::NOTDIR | Errno::LOOP => HostFsError::refused(
            path,
            "exists and is not a directory (or is a symlink); remove it",
        ),
        e => HostFsError::io("open the directory", path, e),
    })
}

fn check_dir(dir: BorrowedFd<'_>, path: &Path, euid: u32, forbidden: u32) -> Result<()> {
    let st = rustix::fs::fstat(dir).map_err(|e| HostFsError::io("stat", path, e))?;
    if st.st_uid != euid || st.st_mode & forbidden != 0 {
        return Err(HostFsError::refused(
            path,
            format!(
                "the private runtime directory must be owned by uid {euid} with mode 0700 (found uid {}, mode {:o}); remove it, or fix its owner and mode",
                st.st_uid,
                st.st_mode & 0o7777
            ),
        ));
    }
    Ok(())
}

mod state_files;
pub use state_files::{read_state_files, remove_state_file, StateFile};

#[cfg(test)]
mod tests;
