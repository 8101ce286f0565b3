//! The runtime's errors, by who has to act on them: the vassal file's author, the operator
//! (the Emperor's settings, the policy file, the launcher), or the host the bridge runs on.
//! (The Docker daemon's errors are [`crate::docker_client::ClientError`] and the core's
//! `Outcome`.) Each wraps the typed error of the step that failed; the message is that
//! error's, and the front-end names the vassal once when it prints it.
use std::io;

use uwsgi_docker_core::plan::PlanError;
use uwsgi_docker_core::policy::PolicyViolation;
use uwsgi_docker_core::settings::SettingsError;
use uwsgi_docker_core::spec::SpecError;

use crate::launcher_binary::LauncherError;
use crate::runtime::hostfs::HostFsError;
use crate::runtime::users::OwnerError;
use crate::tenancy::{MountPathError, PolicyFileError};
use crate::vassal_file::VassalFileError;

/// A bridge that cannot start, by fault family (boxed: a `Result` stays small).
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error(transparent)]
    Vassal(Box<VassalFault>),
    #[error(transparent)]
    Operator(Box<OperatorFault>),
    #[error(transparent)]
    Environment(Box<EnvironmentFault>),
}

impl From<VassalFault> for Fault {
    fn from(e: VassalFault) -> Fault {
        Fault::Vassal(Box::new(e))
    }
}

impl From<OperatorFault> for Fault {
    fn from(e: OperatorFault) -> Fault {
        Fault::Operator(Box::new(e))
    }
}

impl From<EnvironmentFault> for Fault {
    fn from(e: EnvironmentFault) -> Fault {
        Fault::Environment(Box::new(e))
    }
}

/// What the vassal file asks for that cannot be done; its author fixes the file.
#[derive(Debug, thiserror::Error)]
pub enum VassalFault {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    File(#[from] VassalFileError),
    /// The policy refuses it.
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    #[error(
        "vassal {vassal} has no docker-image in its [emperor] section; add one, or run it with uwsgi itself"
    )]
    NoDockerImage { vassal: String },
    #[error("vassal {vassal} has no docker-image in its [emperor] section: the Emperor runs it with uwsgi, not in Docker")]
    NotDocker { vassal: String },
    #[error("vassal {vassal}: the policy maps it to user {user:?}, who does not exist on this host; add the user or fix the [vassals] section")]
    UnknownTenant { vassal: String, user: String },
    #[error("vassal {vassal}: docker-mount = {host}:{container}: {source}; under a policy a mount source must be an existing real path, with no symlink in any component")]
    MountPath {
        vassal: String,
        host: String,
        container: String,
        source: MountPathError,
    },
    /// `docker-mount` names a host path that does not exist (the core's message).
    #[error("{0}")]
    MissingMountSource(String),
    #[error("docker-cidfile = {path}: {source}")]
    Cidfile { path: String, source: HostFsError },
    #[error("docker-socket-owner = {value}: {source}")]
    SocketOwner { value: String, source: OwnerError },
    #[error("docker-socket = {address}: {source}")]
    Socket {
        address: String,
        source: crate::runtime::start::ListenSocketError,
    },
}

/// What the operator set up that does not work: settings, the policy file, the launcher.
#[derive(Debug, thiserror::Error)]
pub enum OperatorFault {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    PolicyFile(#[from] PolicyFileError),
    #[error("vassal {vassal}: docker-handoff = {mode} needs the static launcher: {source}")]
    LauncherNeeded {
        vassal: String,
        mode: &'static str,
        source: LauncherError,
    },
    #[error("UWSGIDOCKER_SOCKET_OWNER = {value}: {source}")]
    SocketOwner { value: String, source: OwnerError },
    #[error(transparent)]
    RegistryAuth(#[from] crate::registry_auth::RegistryAuthError),
}

/// What the host or the Emperor did not give the bridge.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentFault {
    #[error("cannot stat {path}: {source}")]
    Stat { path: String, source: io::Error },
    #[error(transparent)]
    Setup(#[from] crate::runtime::bridge::SetupError),
}

impl From<SpecError> for Fault {
    fn from(e: SpecError) -> Fault {
        VassalFault::from(e).into()
    }
}

impl From<PlanError> for Fault {
    fn from(e: PlanError) -> Fault {
        VassalFault::from(e).into()
    }
}

impl From<PolicyViolation> for Fault {
    fn from(e: PolicyViolation) -> Fault {
        VassalFault::from(e).into()
    }
}

impl From<PolicyFileError> for Fault {
    fn from(e: PolicyFileError) -> Fault {
        OperatorFault::from(e).into()
    }
}
