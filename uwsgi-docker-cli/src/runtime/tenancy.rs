//! Tenant mode: the operator's policy applied to every Docker vassal at its start.
//!
//! The policy file (`UWSGIDOCKER_POLICY`, the plugin's `docker-policy`) is read again for
//! each vassal start, so an edit applies to the next spawn without restarting the Emperor.
//! The tenant is the owner of the vassal file (judged as [`VassalFile::tenant_uid`] says),
//! its container group that user's primary group. A vassal that is not a Docker vassal is
//! judged too ([`judge_native`]): uWSGI would run it on the host as root. A config pushed by an imperial monitor
//! (`emperor://NAME`) has no file: the policy's `[vassals]` section maps its name to a
//! tenant, and an unmapped one runs as `nobody` under the `[default]` rules.
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use uwsgi_docker_core::policy::{
    Decision, NativeRefusal, NativeVerdict, Policy, PolicyError, PolicyViolation, Tenant,
    TenantName, WELL_KNOWN_DAEMON_SOCKETS,
};
use uwsgi_docker_core::spec::VassalSpec;

use crate::host::users;
use crate::host::vassal_file::{VassalFile, VassalFileError};
use crate::settings::RuntimeSettings;

/// The largest policy file we read.
pub const MAX_POLICY_FILE: u64 = 1024 * 1024;

/// Who the tenant of an unmapped pushed config is: `nobody`.
const NOBODY: u32 = 65534;

/// Where a vassal's config came from, as far as its tenant goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A vassal file whose tenant (see [`VassalFile::tenant_uid`]) is this uid; 0: root's.
    File { uid: u32 },
    /// Pushed by the Emperor (an imperial monitor): no file owner.
    Pushed,
}

impl Origin {
    /// The origin of `file`, read from `path`: its tenant, judged on the descriptor its
    /// text was read from and the links and directories on the way.
    pub fn of_file(file: &VassalFile, path: &Path) -> Result<Origin, VassalFileError> {
        Ok(Origin::File {
            uid: file.tenant_uid(path)?,
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
) -> Result<Option<(Tenant, Decision)>, TenancyError> {
    let Some(path) = &settings.policy else {
        return Ok(None);
    };
    let policy = load(path)?
        .with_daemon_groups(daemon_groups(&settings.emperor.daemon_socket))
        .with_operator_pull(settings.pull);
    let tenant = tenant(&policy, vassal, origin)?;
    let decision = policy.enforce(vassal, &tenant, &settings.emperor.daemon_socket, spec)?;
    Ok(Some((tenant, decision)))
}

/// The policy's verdict for a vassal that is not a Docker vassal (no `docker-image`, or
/// not an ini file), which uWSGI would run on the host: `Ok(None)` without a policy,
/// `Ok(Some(verdict))` when it may run, a refusal naming the file, its owner and the ways out when it may not.
pub fn judge_native(
    settings: &RuntimeSettings,
    vassal: &str,
    origin: Origin,
    file: Option<&Path>,
) -> Result<Option<(Tenant, NativeVerdict)>, TenancyError> {
    let Some(path) = &settings.policy else {
        return Ok(None);
    };
    let policy = load(path)?;
    let tenant = tenant(&policy, vassal, origin)?;
    let file = file.map(|f| f.display().to_string());
    let verdict = policy.judge_native(vassal, file.as_deref(), &tenant)?;
    Ok(Some((tenant, verdict)))
}

/// The groups of the daemon sockets (the one in use and the well-known ones) that exist:
/// never a container's group.
fn daemon_groups(in_use: &str) -> Vec<u32> {
    std::iter::once(in_use)
        .chain(WELL_KNOWN_DAEMON_SOCKETS.iter().copied())
        .filter_map(|socket| std::fs::metadata(socket).ok())
        .map(|meta| meta.gid())
        .collect()
}

/// Why tenant mode cannot let a vassal start: the operator's policy file is unusable, or
/// the vassal goes beyond what the policy allows its tenant.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The operator fixes the policy file.
    #[error(transparent)]
    PolicyFile(#[from] PolicyFileError),
    /// The vassal asks for what its tenant's rules refuse.
    #[error(transparent)]
    Violation(Box<PolicyViolation>),
    /// A tenant's vassal that would run on the host.
    #[error(transparent)]
    Native(#[from] NativeRefusal),
    /// A pushed config mapped to a user the host does not have.
    #[error("vassal {vassal}: the policy maps it to user {user:?}, who does not exist on this host; add the user or fix the [vassals] section")]
    UnknownTenant { vassal: String, user: String },
}

impl From<PolicyViolation> for TenancyError {
    fn from(e: PolicyViolation) -> TenancyError {
        TenancyError::Violation(Box::new(e))
    }
}

/// Why the policy file is not used; the operator fixes it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("cannot read the policy {path}: {cause} (UWSGIDOCKER_POLICY)")]
    Missing { path: String, cause: std::io::Error },
    #[error("the policy {path} is not a regular file")]
    NotRegular { path: String },
    #[error("the policy {path} is {size} bytes; the limit is {MAX_POLICY_FILE}")]
    TooLarge { path: String, size: u64 },
    #[error("the policy {path} can be changed by others (owner uid {uid}, mode {mode:o}); make it owned by root and not group- or world-writable (chown root: {path}; chmod go-w {path})")]
    Writable { path: String, uid: u32, mode: u32 },
    #[error("cannot read the policy {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error(transparent)]
    Parse(#[from] PolicyError),
}

/// Read and parse the policy file: a regular file no one but root (or us) can write.
pub fn load(path: &Path) -> Result<Policy, PolicyFileError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| PolicyFileError::Missing {
        path: shown.clone(),
        cause: source,
    })?;
    if !meta.file_type().is_file() {
        return Err(PolicyFileError::NotRegular { path: shown });
    }
    if meta.len() > MAX_POLICY_FILE {
        return Err(PolicyFileError::TooLarge {
            path: shown,
            size: meta.len(),
        });
    }
    let euid = rustix::process::geteuid().as_raw();
    if (meta.uid() != 0 && meta.uid() != euid) || meta.mode() & 0o022 != 0 {
        return Err(PolicyFileError::Writable {
            path: shown,
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
        });
    }
    let text = std::fs::read(path).map_err(|source| PolicyFileError::Read {
        path: shown.clone(),
        cause: source,
    })?;
    Ok(Policy::parse(&shown, &text)?)
}

/// The tenant of a vassal: its file's owner, or for a pushed config the policy's mapping.
pub fn tenant(policy: &Policy, vassal: &str, origin: Origin) -> Result<Tenant, TenancyError> {
    match origin {
        Origin::File { uid } => Ok(tenant_of_uid(uid)),
        Origin::Pushed => match policy.tenant_for_vassal(vassal) {
            Some(TenantName::Uid(uid)) => Ok(tenant_of_uid(uid)),
            Some(TenantName::User(name)) => match users::user_by_name(&name) {
                Some(user) => Ok(user.into_tenant()),
                None => Err(TenancyError::UnknownTenant {
                    vassal: vassal.to_owned(),
                    user: name,
                }),
            },
            None => Ok(tenant_of_uid(NOBODY)),
        },
    }
}

/// The tenant with this uid: name, home and primary group from the passwd database (never
/// the vassal file's group, which a `chown USER FILE` leaves as it was); a uid with no
/// entry gets its own number as its group, as with per-user groups.
fn tenant_of_uid(uid: u32) -> Tenant {
    match users::user_by_uid(uid) {
        Some(user) => user.into_tenant(),
        None => Tenant::new(uid, uid),
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
