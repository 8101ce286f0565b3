//! Reading a vassal file: the one function every reader uses (`run`, `check`, wrapper mode,
//! and the bridge's re-read on reload).
//!
//! The Emperor names the file, not the tenant, so a symlink is followed. But whatever the
//! path is, reading it must not block or exhaust memory: it is refused unless it is a
//! regular file (a FIFO or a device is never opened for reading), and refused unread when
//! it is over [`MAX_VASSAL_FILE`].
//!
//! **One open, one owner.** The path is resolved here, one component at a time from a
//! pinned directory (`O_PATH|O_NOFOLLOW`), each symlink read through its own handle, and
//! the file is opened from the handle the walk ended on; its text is read from that
//! descriptor and its owner taken with `fstat` on it. So the text and the owner are the
//! same file's, and a rename between two lookups cannot pair a tenant's text with root's
//! owner. The walk also notes who controls each name on the way: the owner of each
//! directory a name is looked up in, of each symlink, and of the file. The tenant is the
//! one user other than root among them ([`VassalFile::tenant_uid`]): a tenant's link to
//! root's file, or root's link into a tenant's directory, is the tenant's.
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, Stat};
use uwsgi_docker_core::spec::MAX_VASSAL_FILE;

/// As the kernel's limit on symlinks followed in one lookup.
const MAX_LINKS: usize = 40;

/// A vassal file's text, and who controls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VassalFile {
    pub text: Vec<u8>,
    /// The owner of each directory a name was looked up in, each symlink followed and the
    /// file, in walk order.
    pub controllers: Vec<u32>,
    /// A directory on the way that others than its owner may write without a sticky bit
    /// (mode `o+w` or `g+w`): anyone with that access controls the names in it.
    pub shared_dir: bool,
}

impl VassalFile {
    /// The tenant: the one user other than root who controls the file, its links or the
    /// directories they are in; 0 (root) when root controls all of them.
    ///
    /// # Errors
    ///
    /// Two users other than root: a chain through two tenants is nobody's.
    pub fn tenant_uid(&self, path: &Path) -> Result<u32, VassalFileError> {
        if self.shared_dir {
            return Err(VassalFileError::SharedDirectory {
                path: path.display().to_string(),
            });
        }
        let mut tenant = None;
        for &uid in self.controllers.iter().filter(|&&uid| uid != 0) {
            match tenant {
                None => tenant = Some(uid),
                Some(first) if first == uid => {}
                Some(first) => {
                    return Err(VassalFileError::TwoTenants {
                        path: path.display().to_string(),
                        first,
                        second: uid,
                    })
                }
            }
        }
        Ok(tenant.unwrap_or(0))
    }
}

/// The whole file, or why not (naming the path, not the vassal: callers add that).
pub fn read(path: &Path) -> Result<Vec<u8>, VassalFileError> {
    open(path).map(|file| file.text)
}

/// The file's text and who controls it (see the module docs).
pub fn open(path: &Path) -> Result<VassalFile, VassalFileError> {
    let shown = || path.display().to_string();
    let unreadable = |e: std::io::Error| VassalFileError::Read {
        path: shown(),
        cause: e,
    };
    let (handle, stat, walked) = resolve(path).map_err(|e| unreadable(e.into()))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(VassalFileError::NotRegular {
            path: shown(),
            kind: describe(kind),
        });
    }
    let too_large = |size: u64| VassalFileError::TooLarge {
        path: shown(),
        size,
    };
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let cap = u64::try_from(MAX_VASSAL_FILE).unwrap_or(u64::MAX);
    if size > cap {
        return Err(too_large(size));
    }
    // Reopened through its handle: the very inode the walk ended on, whatever the path
    // names by now.
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let reopen = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let fd = rustix::fs::open(reopen.as_str(), flags, Mode::empty())
        .map_err(|e| unreadable(e.into()))?;
    let mut text = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // It may grow while we read: never more than the cap plus one byte to notice.
    std::fs::File::from(fd)
        .take(cap + 1)
        .read_to_end(&mut text)
        .map_err(unreadable)?;
    if text.len() > MAX_VASSAL_FILE {
        return Err(too_large(text.len() as u64));
    }
    Ok(VassalFile {
        text,
        controllers: walked.controllers,
        shared_dir: walked.shared_dir,
    })
}

/// Who controls the names on the way (see [`VassalFile`]).
#[derive(Debug, Default)]
struct Walked {
    controllers: Vec<u32>,
    shared_dir: bool,
}

/// Walks `path` as the kernel would, but one name at a time, so that every symlink and
/// directory on the way is seen: the `O_PATH` handle of what it names, its stat, and the
/// controllers (see [`VassalFile::controllers`]).
fn resolve(path: &Path) -> rustix::io::Result<(OwnedFd, Stat, Walked)> {
    use rustix::io::Errno;
    let handle_flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root = || rustix::fs::open("/", dir_flags, Mode::empty());
    let split = |bytes: &[u8]| -> VecDeque<OsString> {
        bytes
            .split(|&b| b == b'/')
            .filter(|part| !part.is_empty() && *part != b".")
            .map(|part| OsStr::from_bytes(part).to_owned())
            .collect()
    };
    let raw = path.as_os_str().as_bytes();
    let mut dir = if raw.starts_with(b"/") {
        root()?
    } else {
        rustix::fs::open(".", dir_flags, Mode::empty())?
    };
    let mut pending = split(raw);
    let mut walked = Walked::default();
    let mut links = 0;
    loop {
        let Some(name) = pending.pop_front() else {
            // The path names a directory (or /): not a vassal file, said by the caller.
            let stat = rustix::fs::fstat(&dir)?;
            return Ok((dir, stat, walked));
        };
        let dir_stat = rustix::fs::fstat(&dir)?;
        walked.controllers.push(dir_stat.st_uid);
        let sticky = dir_stat.st_mode & 0o1000 != 0;
        walked.shared_dir |= dir_stat.st_mode & 0o022 != 0 && !sticky;
        let handle = rustix::fs::openat(&dir, name.as_os_str(), handle_flags, Mode::empty())?;
        let stat = rustix::fs::fstat(&handle)?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::LOOP);
                }
                walked.controllers.push(stat.st_uid);
                let target = rustix::fs::readlinkat(&handle, "", Vec::new())?;
                let target = target.as_bytes();
                let mut next = split(target);
                next.extend(pending);
                pending = next;
                if target.starts_with(b"/") {
                    dir = root()?;
                }
            }
            FileType::Directory if !pending.is_empty() => dir = handle,
            _ if pending.is_empty() => {
                walked.controllers.push(stat.st_uid);
                return Ok((handle, stat, walked));
            }
            _ => return Err(Errno::NOTDIR),
        }
    }
}

/// Why a vassal file is not read.
#[derive(Debug, thiserror::Error)]
pub enum VassalFileError {
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path} is {kind}, not a regular file; a vassal file must be a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path} is {size} bytes, more than the {MAX_VASSAL_FILE} (1 MiB) a vassal file may have; a config pushed to a Docker vassal is at most 65535 bytes anyway")]
    TooLarge { path: String, size: u64 },
    #[error("{path} is controlled by two users other than root, uid {first} and uid {second} (through a symlink or a directory of one of them), so it is no one tenant's; under a policy put each tenant's vassal file where only root and that tenant control it")]
    TwoTenants {
        path: String,
        first: u32,
        second: u32,
    },
    #[error("{path} is reached through a directory that others than its owner may write (group- or world-writable without the sticky bit), so anyone with that access controls what it names; under a policy make every directory on the way writable by its owner only")]
    SharedDirectory { path: String },
}

fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Symlink => "a symlink",
        _ => "not a regular file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "uwsgi-docker-vassal-file-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn reads_a_regular_file_and_follows_a_symlink() {
        let dir = scratch("regular");
        let file = dir.join("app.ini");
        std::fs::write(&file, b"[emperor]\ndocker-image = x\n").expect("write");
        assert_eq!(read(&file).expect("read"), b"[emperor]\ndocker-image = x\n");
        let link = dir.join("link.ini");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert_eq!(read(&link).expect("read"), b"[emperor]\ndocker-image = x\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn chown_entry(path: &Path, uid: u32) {
        rustix::fs::chownat(
            rustix::fs::CWD,
            path,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(uid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .expect("chown");
    }

    /// Issue 17's second route: whoever controls a link or a directory on the way is the
    /// tenant, and two of them make the file no one's.
    #[test]
    fn the_tenant_is_the_one_non_root_controller_on_the_way() {
        if !rustix::process::geteuid().is_root() {
            return crate::host::test_skip::skip("needs root to chown");
        }
        let dir = scratch("owners");
        let roots = dir.join("roots.ini");
        std::fs::write(&roots, b"[uwsgi]\n").expect("write");
        let judge = |path: &Path| {
            let file = open(path).expect("open");
            file.tenant_uid(path)
        };
        assert_eq!(judge(&roots).expect("root's"), 0);
        // A tenant's symlink to root's file is the tenant's.
        let link = dir.join("link.ini");
        std::os::unix::fs::symlink(&roots, &link).expect("symlink");
        chown_entry(&link, 4242);
        assert_eq!(judge(&link).expect("the link's owner"), 4242);
        // Root's link to root's link of the tenant's: still the tenant's.
        let outer = dir.join("outer.ini");
        std::os::unix::fs::symlink(&link, &outer).expect("symlink");
        assert_eq!(judge(&outer).expect("the chain"), 4242);
        // Root's file in a tenant's directory: the tenant can swap it.
        let tenant_dir = dir.join("tenant");
        std::fs::create_dir(&tenant_dir).expect("mkdir");
        std::fs::write(tenant_dir.join("app.ini"), b"[uwsgi]\n").expect("write");
        chown_entry(&tenant_dir, 4243);
        assert_eq!(
            judge(&tenant_dir.join("app.ini")).expect("the dir's owner"),
            4243
        );
        // A link of one tenant into another's directory: nobody's.
        let across = dir.join("across.ini");
        std::os::unix::fs::symlink(tenant_dir.join("app.ini"), &across).expect("symlink");
        chown_entry(&across, 4242);
        let err = judge(&across).expect_err("two tenants").to_string();
        assert!(
            err.contains("uid 4242") && err.contains("uid 4243"),
            "{err}"
        );
        // A directory others may write without a sticky bit: anyone there controls it.
        let shared = dir.join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::write(shared.join("app.ini"), b"[uwsgi]\n").expect("write");
        std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        let err = judge(&shared.join("app.ini"))
            .expect_err("shared")
            .to_string();
        assert!(err.contains("writable by its owner only"), "{err}");
        // The text is the file's that was judged, read from one descriptor.
        assert_eq!(open(&link).expect("open").text, b"[uwsgi]\n");
        // A relative path walks from the cwd, and a loop is refused.
        let looped = dir.join("loop.ini");
        std::os::unix::fs::symlink(&looped, &looped).expect("symlink");
        assert!(open(&looped).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = scratch("fifo");
        let fifo = dir.join("app.ini");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        // With no writer, a blocking open would never return.
        let err = read(&fifo).expect_err("a FIFO").to_string();
        assert!(err.contains("is a FIFO, not a regular file"), "{err}");
        let err = read(&dir).expect_err("a directory").to_string();
        assert!(err.contains("is a directory"), "{err}");
        let err = read(Path::new("/dev/null"))
            .expect_err("a device")
            .to_string();
        assert!(err.contains("character device"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = scratch("large");
        let file = dir.join("big.ini");
        std::fs::write(&file, vec![b'#'; MAX_VASSAL_FILE]).expect("write");
        assert_eq!(read(&file).expect("at the cap").len(), MAX_VASSAL_FILE);
        std::fs::write(&file, vec![b'#'; MAX_VASSAL_FILE + 1]).expect("write");
        let err = read(&file).expect_err("over the cap").to_string();
        assert!(
            err.contains("1048577 bytes") && err.contains("1 MiB"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
