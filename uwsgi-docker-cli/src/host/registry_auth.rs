//! Registry credentials files (the operator's `UWSGIDOCKER_REGISTRY_AUTH`, a tenant's
//! `registry-auth` in the policy): Docker's `config.json` format, opened without following
//! a symlink, refused when its group or others may read it. Nothing read from it is ever
//! printed.
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use uwsgi_docker_core::docker::{CredentialsError, RegistryCredentials};

/// The largest credentials file read (a `config.json` is a few hundred bytes).
const MAX_FILE: u64 = 1 << 20;

/// Why the credentials file cannot be used; names the file and who named it
/// (`UWSGIDOCKER_REGISTRY_AUTH = PATH`, or `registry-auth = PATH (policy …)`), never its
/// content.
#[derive(Debug, thiserror::Error)]
pub enum RegistryAuthError {
    #[error("{named}: cannot read it: {source}")]
    Read { named: String, source: io::Error },
    #[error("{named} may be read by its group or by others (mode {mode:o}); chmod 600 it")]
    Exposed { named: String, mode: u32 },
    #[error("{named} is owned by uid {uid}, and a tenant's credentials file must be root's, as the policy is; chown root it")]
    NotRoots { named: String, uid: u32 },
    #[error("{named}: {source}")]
    Path {
        named: String,
        source: crate::host::hostfs::HostFsError,
    },
    #[error("{named} is larger than 1 MiB")]
    TooLarge { named: String },
    #[error("{named}: {source}")]
    Format {
        named: String,
        source: CredentialsError,
    },
}

/// Who named a credentials file.
#[derive(Debug, Clone, Copy)]
pub enum NamedBy<'a> {
    /// The operator's `UWSGIDOCKER_REGISTRY_AUTH`.
    Operator,
    /// A tenant's `registry-auth` rule, as `policy FILE line N: registry-auth = …`: the file
    /// must also be root's, and reached through root's directories and no symlink, so that
    /// no tenant can put another file (the operator's) in its place.
    Policy(&'a str),
}

/// Reads the credentials in `path`.
pub fn read(path: &Path, by: NamedBy<'_>) -> Result<RegistryCredentials, RegistryAuthError> {
    let named = || match by {
        NamedBy::Operator => format!("UWSGIDOCKER_REGISTRY_AUTH = {}", path.display()),
        NamedBy::Policy(rule) => format!("registry-auth = {} ({rule})", path.display()),
    };
    let read_error = |source| RegistryAuthError::Read {
        named: named(),
        source,
    };
    if let NamedBy::Policy(_) = by {
        crate::host::hostfs::check_fixed_path(path, false).map_err(|source| {
            RegistryAuthError::Path {
                named: named(),
                source,
            }
        })?;
    }
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
            named: named(),
            mode,
        });
    }
    let euid = rustix::process::geteuid().as_raw();
    if matches!(by, NamedBy::Policy(_)) && meta.uid() != 0 && meta.uid() != euid {
        return Err(RegistryAuthError::NotRoots {
            named: named(),
            uid: meta.uid(),
        });
    }
    if meta.len() > MAX_FILE {
        return Err(RegistryAuthError::TooLarge { named: named() });
    }
    let mut text = Vec::new();
    file.by_ref()
        .take(MAX_FILE + 1)
        .read_to_end(&mut text)
        .map_err(read_error)?;
    RegistryCredentials::from_config_json(&text).map_err(|source| RegistryAuthError::Format {
        named: named(),
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
        let credentials = read(&file, NamedBy::Operator).expect("a private file");
        assert_eq!(
            credentials.registries().collect::<Vec<_>>(),
            ["127.0.0.1:5000"]
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let error = read(&file, NamedBy::Operator).unwrap_err();
        assert!(
            matches!(error, RegistryAuthError::Exposed { mode: 0o640, .. }),
            "{error}"
        );
        assert!(!error.to_string().contains("YWxp"), "{error}");
        let link = dir.join("link.json");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert!(matches!(
            read(&link, NamedBy::Operator),
            Err(RegistryAuthError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
