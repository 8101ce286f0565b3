//! The operator's registry credentials file (`UWSGIDOCKER_REGISTRY_AUTH`): Docker's
//! `config.json` format, opened without following a symlink, refused when its group or
//! others may read it. Nothing read from it is ever printed.
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use uwsgi_docker_core::docker::{CredentialsError, RegistryCredentials};

/// The largest credentials file read (a `config.json` is a few hundred bytes).
const MAX_FILE: u64 = 1 << 20;

/// Why the credentials file cannot be used; names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum RegistryAuthError {
    #[error("UWSGIDOCKER_REGISTRY_AUTH = {path}: cannot read it: {source}")]
    Read { path: String, source: io::Error },
    #[error("UWSGIDOCKER_REGISTRY_AUTH = {path} may be read by its group or by others (mode {mode:o}); chmod 600 it")]
    Exposed { path: String, mode: u32 },
    #[error("UWSGIDOCKER_REGISTRY_AUTH = {path} is larger than 1 MiB")]
    TooLarge { path: String },
    #[error("UWSGIDOCKER_REGISTRY_AUTH = {path}: {source}")]
    Format {
        path: String,
        source: CredentialsError,
    },
}

/// Reads the credentials in `path`.
pub fn read(path: &Path) -> Result<RegistryCredentials, RegistryAuthError> {
    let shown = || path.display().to_string();
    let read_error = |source| RegistryAuthError::Read {
        path: shown(),
        source,
    };
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o044 != 0 {
        return Err(RegistryAuthError::Exposed {
            path: shown(),
            mode,
        });
    }
    if meta.len() > MAX_FILE {
        return Err(RegistryAuthError::TooLarge { path: shown() });
    }
    let mut text = Vec::new();
    file.by_ref()
        .take(MAX_FILE + 1)
        .read_to_end(&mut text)
        .map_err(read_error)?;
    RegistryCredentials::from_config_json(&text).map_err(|source| RegistryAuthError::Format {
        path: shown(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_file_is_read_and_a_shared_or_linked_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("ud-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("auth.json");
        std::fs::write(
            &file,
            br#"{"auths": {"127.0.0.1:5000": {"auth": "YWxpY2U6czNjcjN0"}}}"#,
        )
        .expect("written");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let credentials = read(&file).expect("a private file");
        assert_eq!(
            credentials.registries().collect::<Vec<_>>(),
            ["127.0.0.1:5000"]
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let error = read(&file).unwrap_err();
        assert!(
            matches!(error, RegistryAuthError::Exposed { mode: 0o640, .. }),
            "{error}"
        );
        assert!(!error.to_string().contains("YWxp"), "{error}");
        let link = dir.join("link.json");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert!(matches!(read(&link), Err(RegistryAuthError::Read { .. })));
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
