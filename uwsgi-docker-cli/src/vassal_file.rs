//! Reading a vassal file: the one function every reader uses (`run`, `check`, wrapper mode,
//! and the bridge's re-read on reload).
//!
//! The Emperor names the file, not the tenant, so a symlink is followed. But whatever the
//! path is, reading it must not block or exhaust memory: it is opened non-blocking (a FIFO
//! or a device would otherwise hang the open or the read), refused unless it is a regular
//! file, and refused unread when it is over [`MAX_VASSAL_FILE`].
use std::io::Read;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use uwsgi_docker_core::spec::MAX_VASSAL_FILE;

/// The whole file, or why not (naming the path, not the vassal: callers add that).
pub fn read(path: &Path) -> Result<Vec<u8>, VassalFileError> {
    let shown = || path.display().to_string();
    let unreadable = |e: std::io::Error| VassalFileError::Read {
        path: shown(),
        source: e,
    };
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| unreadable(e.into()))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| unreadable(e.into()))?;
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
    let mut text = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // It may grow while we read: never more than the cap plus one byte to notice.
    std::fs::File::from(fd)
        .take(cap + 1)
        .read_to_end(&mut text)
        .map_err(unreadable)?;
    if text.len() > MAX_VASSAL_FILE {
        return Err(too_large(text.len() as u64));
    }
    Ok(text)
}

/// Why a vassal file is not read.
#[derive(Debug, thiserror::Error)]
pub enum VassalFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {kind}, not a regular file; a vassal file must be a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path} is {size} bytes, more than the {MAX_VASSAL_FILE} (1 MiB) a vassal file may have; a config pushed to a Docker vassal is at most 65535 bytes anyway")]
    TooLarge { path: String, size: u64 },
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
