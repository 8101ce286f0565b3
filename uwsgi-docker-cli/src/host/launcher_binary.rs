//! The static launcher that launcher-mode containers run. It is bind-mounted into images
//! whose libc we know nothing about, so it must be static. `uwsgi-docker` carries one
//! (build.rs builds it static and embeds it) and writes it out, named by its content, in
//! the runtime directory; `UWSGIDOCKER_LAUNCHER` names another.
use std::path::{Path, PathBuf};

use crate::host::{elf, hostfs};

/// The launcher this binary carries.
static EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/uwsgi-docker-launcher"));

const HOW_TO_BUILD: &str = "point UWSGIDOCKER_LAUNCHER at a statically linked launcher (scripts/build-launcher.sh builds one), or unset it to use the one uwsgi-docker carries; or set docker-handoff = native for an image with uWSGI 2.0.x";

/// Why there is no launcher to mount; the operator fixes it (or picks native handoff).
#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    #[error("the launcher {path} cannot be read ({cause}); {HOW_TO_BUILD}")]
    Unreadable { path: String, cause: std::io::Error },
    #[error("the launcher {path} is not executable; chmod +x it")]
    NotExecutable { path: String },
    #[error("the launcher {path} is dynamically linked, so it would not run in every image; {HOW_TO_BUILD}")]
    Dynamic { path: String },
    #[error("the launcher {path} is not a 64-bit little-endian ELF executable; {HOW_TO_BUILD}")]
    NotElf { path: String },
    #[error("this uwsgi-docker was built without its launcher; {HOW_TO_BUILD}")]
    NotEmbedded,
    #[error("cannot write the launcher uwsgi-docker carries: {0}; or set UWSGIDOCKER_LAUNCHER")]
    Write(hostfs::HostFsError),
}

/// The launcher for a bridge: `configured` (`UWSGIDOCKER_LAUNCHER`), checked static, else
/// the embedded one at its place in `runtime_dir`. With `install`, the embedded one is
/// written there if it is not already; without (`check`'s dry run), only named.
pub fn find(
    configured: Option<&Path>,
    runtime_dir: &Path,
    install: bool,
) -> Result<PathBuf, LauncherError> {
    if let Some(path) = configured {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        check(&path)?;
        return Ok(path);
    }
    if EMBEDDED.is_empty() {
        // Only the inner build of build.rs (or scripts/build-launcher.sh) embeds nothing.
        return Err(LauncherError::NotEmbedded);
    }
    let name = embedded_name();
    if !install {
        return Ok(runtime_dir.join(name));
    }
    hostfs::install_file(runtime_dir, name, EMBEDDED, 0o755).map_err(LauncherError::Write)
}

/// `uwsgi-docker-launcher-<hash of its bytes>`, hashed by build.rs (not at every spawn):
/// bridges of different builds sharing a runtime directory each find their own.
fn embedded_name() -> &'static str {
    env!("UWSGIDOCKER_LAUNCHER_NAME")
}

/// The most of a launcher read to judge it: its headers, not the program.
const MAX_HEADERS_LEN: usize = 64 * 1024;

/// A readable, executable, statically linked ELF file. Only its headers are read: a bridge
/// checks the operator's launcher at every spawn.
pub fn check(path: &Path) -> Result<(), LauncherError> {
    let shown = || path.display().to_string();
    let unreadable = |source| LauncherError::Unreadable {
        path: shown(),
        cause: source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mode = file
        .metadata()
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    if mode.is_ok_and(|m| m & 0o111 == 0) {
        return Err(LauncherError::NotExecutable { path: shown() });
    }
    let headers = read_headers(&file).map_err(unreadable)?;
    match elf::is_static_elf(&headers) {
        Some(true) => Ok(()),
        Some(false) => Err(LauncherError::Dynamic { path: shown() }),
        None => Err(LauncherError::NotElf { path: shown() }),
    }
}

/// The ELF header, then as much more as its program headers reach (at most
/// [`MAX_HEADERS_LEN`]); a file that is not ELF gives what its start holds.
fn read_headers(file: &std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut headers = Vec::with_capacity(elf::ELF_HEADER_LEN);
    let header_len = elf::ELF_HEADER_LEN as u64;
    file.take(header_len).read_to_end(&mut headers)?;
    let end = elf::headers_end(&headers).map_or(0, |end| end.min(MAX_HEADERS_LEN));
    if let Some(more) = end.checked_sub(headers.len()).filter(|more| *more > 0) {
        file.take(more as u64).read_to_end(&mut headers)?;
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::elf::is_static_elf;

    #[test]
    fn a_dynamic_executable_is_refused_with_what_to_do() {
        // Our own test binary is dynamically linked.
        let exe = std::env::current_exe().expect("exe");
        let bytes = std::fs::read(&exe).expect("read");
        assert_eq!(is_static_elf(&bytes), Some(false));
        let err = check(&exe).expect_err("dynamic").to_string();
        assert!(
            err.contains("dynamically linked") && err.contains("UWSGIDOCKER_LAUNCHER"),
            "{err}"
        );
    }

    #[test]
    fn the_name_build_rs_gave_is_the_hash_of_the_embedded_bytes() {
        // FNV-1a, as build.rs hashes it: a launcher of other bytes gets another name.
        let hash = EMBEDDED.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        assert_eq!(
            embedded_name(),
            format!("uwsgi-docker-launcher-{hash:016x}")
        );
    }

    #[test]
    fn not_elf_and_missing_files_are_refused() {
        assert_eq!(is_static_elf(b"#!/bin/sh\n"), None);
        assert_eq!(is_static_elf(b""), None);
        // A truncated header never panics.
        assert_eq!(is_static_elf(b"\x7fELF\x02\x01\x01"), None);
        let err = check(Path::new("/nonexistent/uwsgi-docker-launcher"))
            .expect_err("missing")
            .to_string();
        assert!(
            err.contains("/nonexistent/uwsgi-docker-launcher")
                && err.contains("UWSGIDOCKER_LAUNCHER"),
            "{err}"
        );
        let err = find(
            Some(Path::new("/nonexistent/l")),
            Path::new("/run/ud"),
            true,
        )
        .expect_err("missing")
        .to_string();
        assert!(err.contains("/nonexistent/l"), "{err}");
    }

    #[test]
    fn the_embedded_launcher_is_static_and_written_once_by_content() {
        assert_eq!(
            is_static_elf(EMBEDDED),
            Some(true),
            "build.rs embeds a static one"
        );
        let base = std::env::temp_dir().join(format!("ud-launcher-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let named = find(None, &base, false).expect("named");
        assert!(!base.exists(), "a dry run writes nothing");
        let path = find(None, &base, true).expect("installed");
        assert_eq!(path, named);
        assert_eq!(std::fs::read(&path).expect("read"), EMBEDDED);
        let mode = |p: &Path| {
            std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(p).expect("stat").permissions(),
            )
        };
        assert_eq!(mode(&path) & 0o7777, 0o755);
        assert_eq!(mode(&base) & 0o777, 0o700);
        // A copy that is not the embedded one is replaced.
        std::fs::write(&path, b"not the launcher").expect("spoil");
        assert_eq!(find(None, &base, true).expect("again"), path);
        assert_eq!(std::fs::read(&path).expect("read"), EMBEDDED);
        // So is one of the same size that differs in its last byte only.
        let mut spoiled = EMBEDDED.to_vec();
        if let Some(last) = spoiled.last_mut() {
            *last ^= 0xff;
        }
        std::fs::write(&path, &spoiled).expect("spoil");
        assert_eq!(find(None, &base, true).expect("again"), path);
        assert_eq!(std::fs::read(&path).expect("read"), EMBEDDED);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_launcher_is_judged_by_its_headers_alone() {
        let base = std::env::temp_dir().join(format!("ud-launcher-head-{}", std::process::id()));
        std::fs::create_dir_all(&base).expect("dir");
        let cut = |from: &[u8], name: &str| {
            // The headers and nothing after them: enough to judge, never enough to run.
            let end = elf::headers_end(from).expect("an ELF header");
            let path = base.join(name);
            std::fs::write(&path, from.get(..end).expect("headers")).expect("write");
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(&path, mode).expect("chmod");
            path
        };
        check(&cut(EMBEDDED, "static")).expect("the embedded launcher's headers are static");
        let exe = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        let err = check(&cut(&exe, "dynamic")).expect_err("dynamic");
        assert!(matches!(err, LauncherError::Dynamic { .. }), "{err}");
        // Cut inside its program headers: not a file we can judge.
        let short = base.join("short");
        std::fs::write(
            &short,
            EMBEDDED.get(..elf::ELF_HEADER_LEN + 8).expect("start"),
        )
        .expect("write");
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&short, mode).expect("chmod");
        let err = check(&short).expect_err("cut short");
        assert!(matches!(err, LauncherError::NotElf { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&base);
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
