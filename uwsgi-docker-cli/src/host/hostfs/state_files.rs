//! The vassals' state files (`NAME.state`) in the Emperors' private runtime directories:
//! written by bridges (a new file renamed over the old, so a reader never sees half of
//! one), read by `metrics` and `ps`. Every directory is opened with no symlink following
//! and checked as [`private_dir`](super::private_dir) checks it.
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{check_dir, create_new, dir_flags, is_type, open_dir, open_read, write_all};
use super::{HostFsError, Result};

/// The suffix of a state file's name.
pub const STATE_SUFFIX: &str = ".state";

/// The state file's name for a vassal: its name made safe as a file name.
pub fn state_file_name(vassal: &str) -> String {
    format!("{}{STATE_SUFFIX}", super::sanitise_dir_name(vassal))
}

/// Replace `dir/name` with `bytes` (mode 0600): written to a new file of our own, then
/// renamed over the name.
pub fn replace_file(dir: BorrowedFd<'_>, dir_path: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let temporary = format!(".{name}.{}.tmp", std::process::id());
    let _ = rustix::fs::unlinkat(dir, temporary.as_str(), AtFlags::empty());
    let path = dir_path.join(name);
    let file = create_new(dir, OsStr::new(&temporary), 0o600)
        .map_err(|e| HostFsError::io("create", &dir_path.join(&temporary), e))?;
    let written = write_all(file.as_fd(), bytes)
        .and_then(|()| rustix::fs::renameat(dir, temporary.as_str(), dir, name));
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(dir, temporary.as_str(), AtFlags::empty());
        return Err(HostFsError::io("write", &path, e));
    }
    Ok(())
}

/// Read `dir/name` when it is a regular file of at most `max` bytes; `None` when it is
/// missing, not a regular file, or too large.
pub fn read_file(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &OsStr,
    max: usize,
) -> Option<Vec<u8>> {
    let path = dir_path.join(name);
    let (fd, st) = open_read(dir, name, &path).ok()??;
    let size = usize::try_from(st.st_size).ok()?;
    if !is_type(&st, FileType::RegularFile) || size > max {
        return None;
    }
    let mut out = vec![0u8; size];
    let mut filled = 0;
    while filled < size {
        match rustix::io::read(&fd, out.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    out.truncate(filled);
    Some(out)
}

/// The names in a directory (an `O_PATH` fd is reopened for reading).
fn names_in(dir: BorrowedFd<'_>) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(readable) = rustix::fs::openat(dir, ".", flags, Mode::empty()) else {
        return Vec::new();
    };
    let Ok(entries) = rustix::fs::Dir::read_from(&readable) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .map(|entry| OsStr::from_bytes(entry.file_name().to_bytes()).to_owned())
        .filter(|name| !name.as_bytes().starts_with(b"."))
        .collect()
}

/// Every state file under `base` (`UWSGIDOCKER_RUNTIME_DIR`): `(its path, its bytes)`,
/// from each Emperor's private runtime directory that passes the private directory's
/// checks. A missing `base` is no state at all.
pub fn read_state_files(base: &Path, max: usize) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let base_fd = match open_dir(base) {
        Ok(fd) => fd,
        Err(HostFsError::Io {
            cause: Errno::NOENT,
            ..
        }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let euid = rustix::process::geteuid().as_raw();
    check_dir(base_fd.as_fd(), base, euid, 0o022)?;
    let mut out = Vec::new();
    for sub in names_in(base_fd.as_fd()) {
        let sub_path = base.join(&sub);
        let Ok(dir) = rustix::fs::openat(&base_fd, &sub, dir_flags(), Mode::empty()) else {
            continue;
        };
        if check_dir(dir.as_fd(), &sub_path, euid, 0o077).is_err() {
            continue;
        }
        for name in names_in(dir.as_fd()) {
            let is_state = name.to_str().is_some_and(|n| n.ends_with(STATE_SUFFIX));
            if !is_state {
                continue;
            }
            if let Some(bytes) = read_file(dir.as_fd(), &sub_path, &name, max) {
                out.push((sub_path.join(&name), bytes));
            }
        }
    }
    Ok(out)
}

/// Remove the state file at `path` (one that [`read_state_files`] returned) under `base`:
/// its directory is checked as a private runtime directory again, and only a regular file
/// is unlinked.
pub fn remove_state_file(base: &Path, path: &Path) -> Result<bool> {
    let (Some(sub), Some(name)) = (
        path.parent().and_then(|p| p.strip_prefix(base).ok()),
        path.file_name(),
    ) else {
        return Err(HostFsError::refused(
            path,
            "not a state file under the runtime directory",
        ));
    };
    let sub = sub
        .to_str()
        .filter(|s| !s.contains('/'))
        .unwrap_or_default();
    let dir = super::private_dir(base, sub)?;
    let Some((_, st)) = open_read(dir.as_fd(), name, path)? else {
        return Ok(false);
    };
    if !is_type(&st, FileType::RegularFile) {
        return Ok(false);
    }
    super::unlink_same_entry(dir.as_fd(), name, &st, path)?;
    Ok(true)
}

/// A vassal's state file in its Emperor's private runtime directory, pinned.
#[derive(Debug)]
pub struct StateFile {
    dir: OwnedFd,
    dir_path: PathBuf,
    name: String,
}

impl StateFile {
    /// Opens (making it if needed) the private runtime directory `base/sub` for vassal
    /// `vassal`'s state file.
    pub fn open(base: &Path, sub: &str, vassal: &str) -> Result<StateFile> {
        let dir = super::private_dir(base, sub)?;
        Ok(StateFile {
            dir,
            dir_path: base.join(sub),
            name: state_file_name(vassal),
        })
    }

    /// What the file holds now (a previous bridge's state), if anything.
    pub fn read(&self, max: usize) -> Option<Vec<u8>> {
        read_file(
            self.dir.as_fd(),
            &self.dir_path,
            OsStr::new(&self.name),
            max,
        )
    }

    /// Remove the file (the vassal was stopped on purpose: nothing to continue from).
    pub fn remove(&self) -> Result<()> {
        match rustix::fs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(HostFsError::io(
                "remove",
                &self.dir_path.join(&self.name),
                e,
            )),
        }
    }

    /// Replace the file's content.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        replace_file(self.dir.as_fd(), &self.dir_path, &self.name, bytes)
    }
}
