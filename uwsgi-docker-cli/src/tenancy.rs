//! Tenant mode: the operator's policy applied to every Docker vassal at its start.
//!
//! The policy file (`UWSGIDOCKER_POLICY`, the plugin's `docker-policy`) is read again for
//! each vassal start, so an edit applies to the next spawn without restarting the Emperor.
//! The tenant is the owner of the vassal file. A config pushed by an imperial monitor
//! (`emperor://NAME`) has no file: the policy's `[vassals]` section maps its name to a
//! tenant, and an unmapped one runs as `nobody` under the `[default]` rules.
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use uwsgi_docker_core::policy::{Decision, Policy, Tenant, TenantName};
use uwsgi_docker_core::spec::VassalSpec;

use crate::runtime::{hostfs, users};
use crate::settings::RuntimeSettings;

/// The largest policy file we read.
pub const MAX_POLICY_FILE: u64 = 1024 * 1024;

/// Who the tenant of an unmapped pushed config is: `nobody`.
const NOBODY: u32 = 65534;

/// Where a vassal's config came from, as far as its tenant goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A vassal file owned by this uid and gid.
    File { uid: u32, gid: u32 },
    /// Pushed by the Emperor (an imperial monitor): no file owner.
    Pushed,
}

impl Origin {
    /// The owner of the vassal file at `path`, as tenant mode sees it: the owner of the
    /// directory entry itself. A symlink made by a non-root user gives that user (so a
    /// tenant cannot borrow the owner of a file it points at); a root-owned symlink is the
    /// operator's, and the file it points at decides.
    pub fn of_file(path: &Path) -> std::io::Result<Origin> {
        let entry = std::fs::symlink_metadata(path)?;
        let meta = if entry.file_type().is_symlink() && entry.uid() == 0 {
            std::fs::metadata(path)?
        } else {
            entry
        };
        Ok(Origin::File {
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }
}

/// The policy's verdict for one vassal, with `spec` changed to what the policy forces.
/// `Ok(None)`: no policy is configured, nothing changed.
pub fn apply(
    settings: &RuntimeSettings,
    vassal: &str,
    origin: Origin,
    spec: &mut VassalSpec,
) -> Result<Option<(Tenant, Decision)>, String> {
    let Some(path) = &settings.policy else {
        return Ok(None);
    };
    let policy = load(path)?;
    let tenant = tenant(&policy, vassal, origin)?;
    let decision = policy
        .enforce(vassal, &tenant, &settings.emperor.daemon_socket, spec)
        .map_err(|e| e.to_string())?;
    for mount in &spec.mounts {
        check_no_symlinks(Path::new(&mount.host)).map_err(|e| {
            format!(
                "vassal {vassal}: docker-mount = {}:{}: {e}; under a policy a mount source must be an existing real path, with no symlink in any component",
                mount.host, mount.container
            )
        })?;
    }
    Ok(Some((tenant, decision)))
}

/// Read and parse the policy file: a regular file no one but root (or us) can write.
pub fn load(path: &Path) -> Result<Policy, String> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the policy {shown}: {e} (UWSGIDOCKER_POLICY)"))?;
    if !meta.file_type().is_file() {
        return Err(format!("the policy {shown} is not a regular file"));
    }
    if meta.len() > MAX_POLICY_FILE {
        return Err(format!(
            "the policy {shown} is {} bytes; the limit is {MAX_POLICY_FILE}",
            meta.len()
        ));
    }
    let euid = rustix::process::geteuid().as_raw();
    if (meta.uid() != 0 && meta.uid() != euid) || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the policy {shown} can be changed by others (owner uid {}, mode {:o}); make it owned by root and not group- or world-writable (chown root: {shown}; chmod go-w {shown})",
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    let text = std::fs::read(path).map_err(|e| format!("cannot read the policy {shown}: {e}"))?;
    Policy::parse(&shown, &text).map_err(|e| e.to_string())
}

/// The tenant of a vassal: its file's owner, or for a pushed config the policy's mapping.
pub fn tenant(policy: &Policy, vassal: &str, origin: Origin) -> Result<Tenant, String> {
    match origin {
        Origin::File { uid, gid } => Ok(tenant_of_uid(uid, Some(gid))),
        Origin::Pushed => match policy.tenant_for_vassal(vassal) {
            Some(TenantName::Uid(uid)) => Ok(tenant_of_uid(uid, None)),
            Some(TenantName::User(name)) => match users::user_by_name(&name) {
                Some(user) => Ok(user.into_tenant()),
                None => Err(format!(
                    "vassal {vassal}: the policy maps it to user {name:?}, who does not exist on this host; add the user or fix the [vassals] section"
                )),
            },
            None => Ok(tenant_of_uid(NOBODY, Some(NOBODY))),
        },
    }
}

/// The tenant with this uid: name, home and primary group from the passwd database when
/// it has the uid; `gid` (the file's group) wins when given.
fn tenant_of_uid(uid: u32, gid: Option<u32>) -> Tenant {
    match users::user_by_uid(uid) {
        Some(user) => {
            let mut tenant = user.into_tenant();
            if let Some(gid) = gid {
                tenant.gid = gid;
            }
            tenant
        }
        None => Tenant::new(uid, gid.unwrap_or(uid)),
    }
}

/// `Some(message)` when this bridge was started by an Emperor in tyrant mode: we run as
/// a non-root user while our parent (the Emperor) is root. Then nothing can reach the
/// daemon safely, and tenant mode is what the operator wants instead.
pub fn tyrant_mode_message(vassal: &str) -> Option<String> {
    let uid = rustix::process::getuid().as_raw();
    if uid == 0 {
        return None;
    }
    let ppid = rustix::process::getppid()?.as_raw_nonzero().get();
    let status = std::fs::read_to_string(format!("/proc/{ppid}/status")).ok()?;
    let parent_uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    (parent_uid == 0).then(|| {
        format!(
            "vassal {vassal}: the Emperor dropped to uid {uid} before starting the bridge (emperor-tyrant), so it cannot reach the Docker daemon; run the Emperor as root without emperor-tyrant and set a policy (UWSGIDOCKER_POLICY, or docker-policy in plugin mode): each vassal then runs as its file's owner, under that owner's rules (README: Hosting many tenants)"
        )
    })
}

/// Fails when any component of `path` is a symlink (or the path does not exist): dockerd
/// follows symlinks when it mounts, so a tenant's link inside an allowed directory would
/// otherwise reach anywhere.
fn check_no_symlinks(path: &Path) -> Result<(), String> {
    let (dir, name) = hostfs::open_parent(path).map_err(|e| e.to_string())?;
    let stat = rustix::fs::statat(
        &dir,
        name.as_os_str(),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| format!("cannot stat it: {e}"))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Symlink {
        return Err("it is a symlink".into());
    }
    Ok(())
}
