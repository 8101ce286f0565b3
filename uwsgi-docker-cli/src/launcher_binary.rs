//! Finding the static launcher that launcher-mode containers run, and making sure it is
//! static: it is bind-mounted into images whose libc we know nothing about.
use std::path::{Path, PathBuf};

/// The launcher's file name, looked for next to `uwsgi-docker`.
pub const LAUNCHER_NAME: &str = "uwsgi-docker-launcher";

const HOW_TO_BUILD: &str = "build it with scripts/build-launcher.sh and install it next to uwsgi-docker, or point UWSGIDOCKER_LAUNCHER at it; or set docker-handoff = native for an image with uWSGI master";

/// `configured` (`UWSGIDOCKER_LAUNCHER`), else `uwsgi-docker-launcher` next to our own
/// executable; it must be a statically linked executable.
pub fn find(configured: Option<&Path>) -> Result<PathBuf, String> {
    let path = match configured {
        Some(path) => path.to_path_buf(),
        None => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find our own executable ({e}); {HOW_TO_BUILD}"))?;
            exe.with_file_name(LAUNCHER_NAME)
        }
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    check(&path)?;
    Ok(path)
}

/// A readable, executable, statically linked ELF file.
pub fn check(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| format!("the launcher {shown} cannot be read ({e}); {HOW_TO_BUILD}"))?;
    let mode =
        std::fs::metadata(path).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    if mode.is_ok_and(|m| m & 0o111 == 0) {
        return Err(format!(
            "the launcher {shown} is not executable; chmod +x it"
        ));
    }
    match is_static_elf(&bytes) {
        Some(true) => Ok(()),
        Some(false) => Err(format!(
            "the launcher {shown} is dynamically linked, so it would not run in every image; {HOW_TO_BUILD}"
        )),
        None => Err(format!(
            "the launcher {shown} is not a 64-bit little-endian ELF executable; {HOW_TO_BUILD}"
        )),
    }
}

/// `Some(true)` for an ELF64 LE executable without a program interpreter (`PT_INTERP`):
/// the kernel runs it as it is. `None` when it is not such a file.
pub fn is_static_elf(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..4)? != b"\x7fELF" || *bytes.get(4)? != 2 || *bytes.get(5)? != 1 {
        return None;
    }
    let u16_at = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 2)?;
        Some(usize::from(u16::from_le_bytes([*b.first()?, *b.get(1)?])))
    };
    let phoff =
        usize::try_from(u64::from_le_bytes(bytes.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let phentsize = u16_at(0x36)?;
    let phnum = u16_at(0x38)?;
    if phentsize < 4 {
        return None;
    }
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?);
        if p_type == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_is_refused_with_what_to_do() {
        // Our own test binary is dynamically linked.
        let exe = std::env::current_exe().expect("exe");
        let bytes = std::fs::read(&exe).expect("read");
        assert_eq!(is_static_elf(&bytes), Some(false));
        let err = check(&exe).expect_err("dynamic");
        assert!(
            err.contains("dynamically linked") && err.contains("build-launcher.sh"),
            "{err}"
        );
    }

    #[test]
    fn not_elf_and_missing_files_are_refused() {
        assert_eq!(is_static_elf(b"#!/bin/sh\n"), None);
        assert_eq!(is_static_elf(b""), None);
        // A truncated header never panics.
        assert_eq!(is_static_elf(b"\x7fELF\x02\x01\x01"), None);
        let err = check(Path::new("/nonexistent/uwsgi-docker-launcher")).expect_err("missing");
        assert!(
            err.contains("/nonexistent/uwsgi-docker-launcher")
                && err.contains("UWSGIDOCKER_LAUNCHER"),
            "{err}"
        );
        let err = find(Some(Path::new("/nonexistent/l"))).expect_err("missing");
        assert!(err.contains("/nonexistent/l"), "{err}");
    }

    #[test]
    fn a_header_without_an_interpreter_is_static() {
        // A minimal ELF64 header with one PT_LOAD program header.
        let mut elf = vec![0u8; 0x40 + 0x38];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(is_static_elf(&elf), Some(true));
        elf[0x40..0x44].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(is_static_elf(&elf), Some(false));
        // Program headers past the end of the file: not an executable we can judge.
        elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&9u16.to_le_bytes());
        assert_eq!(is_static_elf(&elf), None);
    }
}
