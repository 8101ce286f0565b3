//! The start slots: at most `UWSGIDOCKER_MAX_STARTS` containers being created and started
//! at once against one daemon, host-wide. A storm of spawns (a deploy of 100 vassals) would
//! otherwise hand dockerd 100 creates at once, which it serves slower than a few at a time;
//! so a bridge holds a slot from its create until its start is answered.
//!
//! A slot is an `flock` on one of `count` files, so that the kernel frees the slot of a
//! bridge that is killed while it holds one. The files are named after the daemon's socket,
//! so that Emperors sharing a daemon (and the runtime directory) share the limit.
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::hostfs::{self, HostFsError};

/// The slots for one daemon: `count` files `start-slot.<daemon>.<i>` in the runtime directory.
#[derive(Debug)]
pub struct StartSlots {
    base: PathBuf,
    prefix: String,
    count: u32,
}

/// One slot, held until dropped.
#[derive(Debug)]
pub struct StartSlot {
    file: OwnedFd,
}

impl StartSlots {
    /// None when count == 0 (no limit). `daemon_socket` is the daemon's socket path.
    pub fn new(runtime_dir: &Path, daemon_socket: &str, count: u32) -> Option<StartSlots> {
        (count > 0).then(|| StartSlots {
            base: runtime_dir.to_owned(),
            prefix: format!("start-slot.{}", hostfs::sanitise_dir_name(daemon_socket)),
            count,
        })
    }

    /// A free slot, Ok(None) when every slot is held.
    ///
    /// # Errors
    /// The runtime directory or a slot file is not one we may use (a symlink, not ours),
    /// or a system call failed.
    pub fn try_take(&self) -> Result<Option<StartSlot>, HostFsError> {
        let dir = hostfs::checked_base(&self.base)?;
        // Each bridge starts at its own file, so that bridges starting together spread
        // over the files instead of all trying the first ones.
        let first = std::process::id().checked_rem(self.count).unwrap_or(0);
        for index in (first..self.count).chain(0..first) {
            let name = format!("{}.{index}", self.prefix);
            let path = self.base.join(&name);
            let file = open_slot_file(dir.as_fd(), &name, &path)?;
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Some(StartSlot { file })),
                Err(Errno::WOULDBLOCK) => {}
                Err(e) => return Err(HostFsError::io("lock", &path, e)),
            }
        }
        Ok(None)
    }
}

impl Drop for StartSlot {
    fn drop(&mut self) {
        // Unlocked before the fd closes, so that the lock is gone before anything that
        // watches the close could see it (and a forked copy of the fd cannot keep it).
        let _ = rustix::fs::flock(&self.file, FlockOperation::Unlock);
    }
}

/// Open `name` in `dir`, made if missing: a regular file of ours, never through a symlink.
fn open_slot_file(dir: BorrowedFd<'_>, name: &str, path: &Path) -> Result<OwnedFd, HostFsError> {
    let flags =
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let file =
        rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600)).map_err(|e| match e {
            Errno::LOOP => HostFsError::refused(
                path,
                "it is a symlink; uwsgi-docker does not lock through symlinks: remove it",
            ),
            e => HostFsError::io("open", path, e),
        })?;
    let st = rustix::fs::fstat(&file).map_err(|e| HostFsError::io("stat", path, e))?;
    let euid = rustix::process::geteuid().as_raw();
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_uid != euid {
        return Err(HostFsError::refused(
            path,
            format!("not a regular file owned by uid {euid}; remove it"),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    const SOCKET: &str = "/var/run/docker.sock";

    /// A runtime directory as root keeps it: `<temp>/run`, made 0700 by the first take.
    fn runtime_dir(tag: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "uwsgi-docker-start-slots-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let base = dir.join("run");
        (dir, base)
    }

    fn slot_path(base: &Path, index: u32) -> PathBuf {
        base.join(format!(
            "start-slot.{}.{index}",
            hostfs::sanitise_dir_name(SOCKET)
        ))
    }

    #[test]
    fn slots_are_taken_until_none_is_left_and_freed_when_dropped() {
        let (dir, base) = runtime_dir("take");
        let slots = StartSlots::new(&base, SOCKET, 2).expect("a limit");
        let first = slots.try_take().expect("take").expect("a free slot");
        let second = slots.try_take().expect("take").expect("another free slot");
        // A lock on another open file description conflicts, even in this process.
        assert!(slots.try_take().expect("take").is_none(), "both held");
        drop(first);
        let again = slots.try_take().expect("take");
        assert!(again.is_some(), "the dropped slot is free again");
        drop((second, again));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_limit_has_no_slots() {
        assert!(StartSlots::new(Path::new("/run/uwsgi-docker"), SOCKET, 0).is_none());
    }

    #[test]
    fn slot_files_are_regular_and_private() {
        let (dir, base) = runtime_dir("mode");
        let slots = StartSlots::new(&base, SOCKET, 2).expect("a limit");
        let held = (
            slots.try_take().expect("take"),
            slots.try_take().expect("take"),
        );
        for index in 0..2 {
            let meta = std::fs::symlink_metadata(slot_path(&base, index)).expect("slot file");
            assert!(meta.file_type().is_file(), "{index}");
            assert_eq!(meta.mode() & 0o7777, 0o600, "{index}");
        }
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlink_at_a_slot_is_refused_and_its_target_untouched() {
        let (dir, base) = runtime_dir("symlink");
        std::fs::create_dir(&base).expect("mkdir");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        // One slot: index 0 is the one tried.
        std::os::unix::fs::symlink(&victim, slot_path(&base, 0)).expect("symlink");
        let slots = StartSlots::new(&base, SOCKET, 1).expect("a limit");
        let err = slots.try_take().expect_err("a symlink");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        let meta = std::fs::metadata(&victim).expect("stat");
        assert_eq!(meta.mode() & 0o7777, 0o644);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_runtime_directory_others_may_write_is_refused() {
        let (dir, base) = runtime_dir("writable");
        std::fs::create_dir(&base).expect("mkdir");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o770)).expect("chmod");
        let slots = StartSlots::new(&base, SOCKET, 2).expect("a limit");
        assert!(slots.try_take().is_err(), "group-writable");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
