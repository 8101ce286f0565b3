//! Why a bridge cannot start, by who has to act on it: the vassal file's author, the
//! operator (the Emperor's settings, the policy file, the launcher), or the host the bridge
//! runs on. Once started, a bridge's
//! failures are the core's `BridgeError`s. Each wraps the typed error of the step that
//! failed; the message is that error's, and the front-end names the vassal once when it
//! prints it.

use uwsgi_docker_core::plan::PlanError;
use uwsgi_docker_core::settings::SettingsError;
use uwsgi_docker_core::spec::SpecError;

use crate::host::hostfs::HostFsError;
use crate::host::launcher_binary::LauncherError;
use crate::host::users::OwnerError;
use crate::host::vassal_file::VassalFileError;
use crate::runtime::tenancy::{PolicyFileError, TenancyError};

/// A bridge that cannot start, by fault family (boxed: a `Result` stays small).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Vassal(Box<VassalStartError>),
    #[error(transparent)]
    Operator(Box<OperatorStartError>),
    #[error(transparent)]
    Environment(Box<EnvironmentStartError>),
}

impl From<VassalStartError> for StartError {
    fn from(e: VassalStartError) -> StartError {
        StartError::Vassal(Box::new(e))
    }
}

impl From<OperatorStartError> for StartError {
    fn from(e: OperatorStartError) -> StartError {
        StartError::Operator(Box::new(e))
    }
}

impl From<EnvironmentStartError> for StartError {
    fn from(e: EnvironmentStartError) -> StartError {
        StartError::Environment(Box::new(e))
    }
}

/// What the vassal file asks for that cannot be done; its author fixes the file.
#[derive(Debug, thiserror::Error)]
pub enum VassalStartError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    File(#[from] VassalFileError),
    /// The policy refuses it, or it runs on the host for a tenant.
    #[error(transparent)]
    Tenancy(TenancyError),
    #[error(
        "vassal {vassal} has no docker-image in its [emperor] section; add one, or run it with uwsgi itself"
    )]
    NoDockerImage { vassal: String },
    #[error("vassal {vassal} has no docker-image in its [emperor] section: the Emperor runs it with uwsgi, not in Docker")]
    NotDocker { vassal: String },
    #[error("vassal {vassal}: docker-mount = {host}:{container}: {cause}; under a policy a mount source must be an existing real path that only root can redirect (README: Hosting many tenants)")]
    MountPath {
        vassal: String,
        host: String,
        container: String,
        cause: HostFsError,
    },
    #[error("vassal {vassal}: the proxy socket {path}: {cause}; under a policy the proxy socket's directory must be one only root can change, as the daemon mounts the socket by its path (leave docker-proxy and UWSGIDOCKER_SOCKET_DIR unset for the Emperor's private runtime directory)")]
    ProxyPath {
        vassal: String,
        path: String,
        cause: HostFsError,
    },
    /// `docker-mount` names a host path that does not exist (the core's message).
    #[error("{0}")]
    MissingMountSource(String),
    #[error("docker-cidfile = {path}: {cause}")]
    Cidfile { path: String, cause: HostFsError },
    #[error("docker-socket-owner = {value}: {cause}")]
    SocketOwner { value: String, cause: OwnerError },
    #[error("docker-socket = {address}: {cause}")]
    Socket {
        address: String,
        cause: crate::host::listen::ListenSocketError,
    },
}

/// What the operator set up that does not work: settings, the policy file, the launcher.
#[derive(Debug, thiserror::Error)]
pub enum OperatorStartError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    PolicyFile(PolicyFileError),
    #[error("vassal {vassal}: docker-handoff = {mode} needs the static launcher: {cause}")]
    LauncherNeeded {
        vassal: String,
        mode: &'static str,
        cause: LauncherError,
    },
    #[error("UWSGIDOCKER_SOCKET_OWNER = {value}: {cause}")]
    SocketOwner { value: String, cause: OwnerError },
    #[error(transparent)]
    RegistryAuth(#[from] crate::host::registry_auth::RegistryAuthError),
}

/// What the host or the Emperor did not give the bridge.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentStartError {
    #[error(transparent)]
    Setup(#[from] crate::runtime::bridge::SetupError),
}

impl From<SpecError> for StartError {
    fn from(e: SpecError) -> StartError {
        VassalStartError::from(e).into()
    }
}

impl From<PlanError> for StartError {
    fn from(e: PlanError) -> StartError {
        VassalStartError::from(e).into()
    }
}

impl From<TenancyError> for StartError {
    fn from(e: TenancyError) -> StartError {
        match e {
            TenancyError::PolicyFile(e) => OperatorStartError::PolicyFile(e).into(),
            e => VassalStartError::Tenancy(e).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    /// One convention: a cause printed in the message is not handed out again as the
    /// `source()`, so a caller that walks the chain prints it once.
    #[test]
    fn a_printed_cause_is_not_also_the_source() {
        let cause = HostFsError::Io {
            what: "open",
            path: "/srv/a/cid".into(),
            cause: rustix::io::Errno::ACCESS,
        };
        let error = StartError::from(VassalStartError::Cidfile {
            path: "/srv/a/cid".into(),
            cause,
        });
        let text = error.to_string();
        assert!(
            text.contains("docker-cidfile = /srv/a/cid: cannot open /srv/a/cid"),
            "{text}"
        );
        let mut chain = 0;
        let mut next = error.source();
        while let Some(e) = next {
            assert!(
                !text.contains(&e.to_string()) || e.to_string() == text,
                "{e} printed twice"
            );
            chain += 1;
            next = e.source();
        }
        assert!(chain <= 1, "transparent wrappers only");
    }
}
