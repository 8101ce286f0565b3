//! A bridge's start, shared by wrapper mode and `uwsgi-docker run`: the policy applied,
//! the plan made (with its launcher), `docker-socket` bound, then the poll loop
//! ([`crate::runtime::bridge`]) run to the end.
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use uwsgi_docker_core::docker::RegistryCredentials;
use uwsgi_docker_core::lifecycle::{BridgeConfig, BridgeError, EmperorChannels, VassalError};
use uwsgi_docker_core::plan::{ContainerPlan, PlanOptions, VassalIdentity};
use uwsgi_docker_core::policy::RegistryAuth;
use uwsgi_docker_core::spec::{self, HandoffMode, VassalSpec};

use crate::host::hostfs::{self, SocketOwner};
use crate::host::start_slots::StartSlots;
use crate::host::users;
use crate::host::{launcher_binary, listen, proxy, registry_auth, sys};
use crate::output::{self, fail_naming};
use crate::runtime::bridge::{self, ApiMemory, LoopIo, RolloverPlanner};
use crate::runtime::start_error::{OperatorStartError, StartError, VassalStartError};
use crate::runtime::tenancy::{self, Origin};
use crate::settings::RuntimeSettings;

/// Extra time past the container's stop timeout before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Everything a bridge needs besides the spec.
#[derive(Debug)]
pub struct BridgeStart {
    pub name: String,
    /// The first config pushed to the vassal.
    pub config: Vec<u8>,
    /// Where `ReadConfig` reads from.
    pub config_file: Option<PathBuf>,
    pub emperor_control: Option<OwnedFd>,
    pub emperor_config: Option<OwnedFd>,
    /// The Emperor's on-demand socket (it was on our fd 0).
    pub inherited_socket: Option<OwnedFd>,
    /// Whose vassal this is, for the policy (tenant mode).
    pub origin: Origin,
}

/// The Emperor's id: `UWSGIDOCKER_EMPEROR_ID`, else `HOST:PPID`.
pub fn emperor_id(settings: &RuntimeSettings) -> String {
    settings
        .emperor_id
        .clone()
        .unwrap_or_else(sys::default_emperor_id)
}

/// The Emperor's private runtime directory, the default home of proxy sockets:
/// `UWSGIDOCKER_RUNTIME_DIR/<emperor id, sanitised>` (made root-only, 0700, at bind).
/// Returns the base and the directory's name in it.
pub fn private_dir(settings: &RuntimeSettings, emperor_id: &str) -> (PathBuf, String) {
    (
        settings.runtime_dir.clone(),
        hostfs::sanitise_dir_name(emperor_id),
    )
}

/// The vassal's identity as the plan needs it. Proxy sockets go in the operator's
/// `UWSGIDOCKER_SOCKET_DIR` when set, else in the Emperor's private runtime directory.
pub fn identity(settings: &RuntimeSettings, name: &str, bridge_id: String) -> VassalIdentity {
    let emperor_id = emperor_id(settings);
    let proxy_dir = match &settings.emperor.socket_dir {
        Some(dir) => dir.clone(),
        None => {
            let (base, sub) = private_dir(settings, &emperor_id);
            base.join(sub).to_string_lossy().into_owned()
        }
    };
    VassalIdentity::new(name, proxy_dir, emperor_id, bridge_id)
        .with_name_prefix(settings.emperor.name_prefix.clone())
}

/// The plan for this vassal: the launcher found (and written out, with `install_launcher`)
/// when the handoff needs it, and the plan validated, so a missing launcher or a proxy
/// path that cannot work fails before anything is bound or created. The error names the
/// vassal.
pub fn plan(
    settings: &RuntimeSettings,
    spec: VassalSpec,
    identity: &VassalIdentity,
    inherited_socket: bool,
    install_launcher: bool,
) -> Result<ContainerPlan, StartError> {
    let mut spec = spec;
    let (handoff, passes_socket) = spec.handoff_for(inherited_socket);
    let launcher_host_path = match handoff {
        HandoffMode::Launcher => match launcher_binary::find(
            settings.launcher.as_deref(),
            &settings.runtime_dir,
            install_launcher,
        ) {
            Ok(path) => Some(path.to_string_lossy().into_owned()),
            Err(e) => match spec.handoff.resolve_without_launcher(passes_socket) {
                // The default, with nothing but the two channels to pass: native handoff
                // works with uWSGI 2.0.x (not with master, which crashes on it).
                Some(fallback) => {
                    output::warn(&format!(
                        "vassal {}: the static launcher is not installed ({e}); using docker-handoff = native, which needs uWSGI 2.0.x in the image (uWSGI master crashes on it)",
                        identity.name
                    ));
                    spec.handoff = fallback;
                    None
                }
                None => {
                    return Err(OperatorStartError::LauncherNeeded {
                        vassal: identity.name.clone(),
                        mode: spec.handoff.as_str(),
                        cause: e,
                    }
                    .into());
                }
            },
        },
        _ => None,
    };
    let options = PlanOptions::default()
        .with_launcher(launcher_host_path)
        .with_inherited_socket(inherited_socket);
    let mut plan = ContainerPlan::with_options(spec, identity, &options);
    plan.proxy_in_private_dir = settings.emperor.socket_dir.is_none() && plan.spec.proxy.is_none();
    plan.validate()?;
    Ok(plan)
}

/// The container plan for a vassal's spec as its file asks for it: the operator policy
/// applied (tenant mode), the launcher found, the plan validated, and the host paths it
/// names checked, before anything is bound or created. The start and every rollover plan
/// with this. Also returns whose registry credentials the vassal's pulls use.
pub fn plan_vassal(
    settings: &RuntimeSettings,
    name: &str,
    origin: Origin,
    requested: &VassalSpec,
    inherited_socket: bool,
) -> Result<(ContainerPlan, RegistryAuth), StartError> {
    let mut spec = requested.clone();
    let tenant_mode = settings.policy.is_some();
    let mut registry_auth = RegistryAuth::Operator;
    if let Some((tenant, decision)) = tenancy::apply(settings, name, origin, &mut spec)? {
        registry_auth = decision.registry_auth.clone();
        if settings.emperor.debug {
            for line in &decision.applied {
                output::warn(&format!("vassal {name}: policy: {line}"));
            }
        }
        spec.labels.push((
            uwsgi_docker_core::plan::labels::TENANT.to_owned(),
            tenant.uid.to_string(),
        ));
    }
    let identity = identity(settings, name, sys::bridge_id());
    let plan = plan(settings, spec, &identity, inherited_socket, true)?;
    // Refused before anything exists; the write checks again.
    if let Some(path) = &plan.spec.cidfile {
        if let Err(source) = hostfs::check_cidfile(Path::new(path)) {
            let path = path.clone();
            return Err(VassalStartError::Cidfile {
                path,
                cause: source,
            }
            .into());
        }
    }
    // A missing mount source is refused, not created: Docker refuses it for
    // HostConfig.Mounts, but Podman's compat API makes it a root-owned directory (as Binds
    // did), so the bridge looks first. Only a definite "not there" refuses; the daemon
    // judges the rest.
    for mount in &plan.spec.mounts {
        if matches!(
            std::fs::symlink_metadata(&mount.host),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        ) {
            let message = uwsgi_docker_core::docker::missing_mount_source(mount);
            return Err(VassalStartError::MissingMountSource(message).into());
        }
    }
    if tenant_mode {
        check_fixed_paths(name, &plan)?;
    }
    Ok((plan, registry_auth))
}

/// The registry credentials a vassal's pulls use: the tenant's file when the policy names
/// one, none when it says so, else the operator's `UWSGIDOCKER_REGISTRY_AUTH` (or none).
/// Read when the bridge starts, before anything is bound; a rollover uses the same.
pub fn registry_credentials(
    settings: &RuntimeSettings,
    auth: &RegistryAuth,
) -> Result<RegistryCredentials, StartError> {
    let read = match auth {
        RegistryAuth::File { path, rule } => {
            registry_auth::read(Path::new(path), registry_auth::NamedBy::Policy(rule))
        }
        RegistryAuth::None { .. } => return Ok(RegistryCredentials::default()),
        _ => match &settings.registry_auth {
            Some(path) => registry_auth::read(path, registry_auth::NamedBy::Operator),
            None => return Ok(RegistryCredentials::default()),
        },
    };
    read.map_err(|e| OperatorStartError::from(e).into())
}

/// Under a policy: every path the daemon will look up (the mount sources, and the proxy
/// socket outside the Emperor's private runtime directory) must be one only root can
/// redirect ([`hostfs::check_fixed_path`]). A symlink check alone would not do: the daemon
/// looks the path up again when the container starts, after any check of ours.
pub fn check_fixed_paths(name: &str, plan: &ContainerPlan) -> Result<(), StartError> {
    for mount in &plan.spec.mounts {
        if let Err(source) = hostfs::check_fixed_path(Path::new(&mount.host), false) {
            return Err(VassalStartError::MountPath {
                vassal: name.to_owned(),
                host: mount.host.clone(),
                container: mount.container.clone(),
                cause: source,
            }
            .into());
        }
    }
    if !plan.proxy_in_private_dir {
        let path = &plan.proxy_host_path;
        if let Err(source) = hostfs::check_fixed_path(Path::new(path), true) {
            let (vassal, path) = (name.to_owned(), path.clone());
            return Err(VassalStartError::ProxyPath {
                vassal,
                path,
                cause: source,
            }
            .into());
        }
    }
    Ok(())
}

/// Plans a rollover's container from a changed config, exactly as the start did.
fn rollover_planner(
    settings: &RuntimeSettings,
    start: &BridgeStart,
    inherited: bool,
) -> RolloverPlanner {
    let settings = settings.clone();
    let name = start.name.clone();
    let origin = start.origin;
    RolloverPlanner(Box::new(move |config: &[u8]| {
        let planned = (|| {
            let Some(requested) = spec::parse_vassal(&name, config)? else {
                let vassal = name.clone();
                return Err(VassalStartError::NotDocker { vassal }.into());
            };
            let (plan, _) = plan_vassal(&settings, &name, origin, &requested, inherited)?;
            Ok((plan, requested))
        })();
        planned.map_err(|e: StartError| {
            let reason = output::unnamed(&name, &e.to_string()).to_owned();
            BridgeError::from(VassalError::SettingsRefused { reason })
        })
    }))
}

/// Bind `docker-socket` (the runtime's job: no action asks for it), or take the Emperor's
/// on-demand socket, and run the bridge.
pub fn run_bridge(
    settings: &RuntimeSettings,
    spec: VassalSpec,
    mut start: BridgeStart,
) -> ExitCode {
    let requested = spec;
    let socket_mode = settings
        .emperor
        .socket_mode
        .unwrap_or(proxy::DEFAULT_SOCKET_MODE);
    let name = start.name.clone();
    let mut inherited = start.inherited_socket.take();
    if requested.socket.is_some() && inherited.take().is_some() {
        output::warn(&format!("vassal {name}: docker-socket is set, so the Emperor's on-demand socket is not passed to the container"));
    }
    let (plan, registry_auth) = match plan_vassal(
        settings,
        &name,
        start.origin,
        &requested,
        inherited.is_some(),
    ) {
        Ok(planned) => planned,
        Err(e) => return fail_naming(&name, &e),
    };
    let planner = rollover_planner(settings, &start, inherited.is_some());
    let identity = identity(settings, &name, sys::bridge_id());
    let proxy_private_dir = plan
        .proxy_in_private_dir
        .then(|| private_dir(settings, &identity.emperor_id));
    // Before anything is bound: a refused file leaves nothing behind.
    let credentials = match registry_credentials(settings, &registry_auth) {
        Ok(credentials) => credentials,
        Err(e) => return fail_naming(&name, &e),
    };
    let (listen_socket, listen_socket_entry) = match &plan.spec.socket {
        None => (inherited, None),
        Some(address) => {
            let owner = match (&plan.spec.socket_owner, &settings.socket_owner) {
                (Some(value), _) => users::resolve_owner(value).map_err(|source| {
                    StartError::from(VassalStartError::SocketOwner {
                        value: value.clone(),
                        cause: source,
                    })
                }),
                (None, Some(value)) => users::resolve_owner(value).map_err(|source| {
                    StartError::from(OperatorStartError::SocketOwner {
                        value: value.clone(),
                        cause: source,
                    })
                }),
                (None, None) => Ok(SocketOwner::default()),
            };
            let owner = match owner {
                Ok(owner) => owner,
                Err(e) => return fail_naming(&name, &e),
            };
            match listen::bind_listen_socket(address, socket_mode, owner) {
                Ok((fd, entry)) => (Some(fd), entry),
                Err(source) => {
                    let address = address.to_string();
                    return fail_naming(
                        &name,
                        &VassalStartError::Socket {
                            address,
                            cause: source,
                        },
                    );
                }
            }
        }
    };
    let state_file = open_state_file(settings, &identity);
    let api_memory = ApiMemory::new(&settings.runtime_dir, &settings.emperor.daemon_socket);
    let start_slots = StartSlots::new(
        &settings.runtime_dir,
        &settings.emperor.daemon_socket,
        settings.max_starts,
    );
    let health_watch = plan
        .spec
        .health
        .restart
        .then(|| bridge::health_poll_interval(plan.spec.health.interval_ns));
    let mut config = BridgeConfig::new(plan, requested, start.config);
    config.emperor = match (&start.emperor_control, &start.emperor_config) {
        (None, _) => EmperorChannels::None,
        (Some(_), None) => EmperorChannels::Control,
        (Some(_), Some(_)) => EmperorChannels::ControlAndConfig,
    };
    config.handoff_timeout = Duration::from_secs(settings.handoff_timeout_secs);
    config.pull = settings.pull;
    config.pull_timeout = Duration::from_secs(settings.pull_timeout_secs);
    config.registry_credentials = credentials;
    config.stop_grace = STOP_GRACE;
    config.daemon_socket = settings.emperor.daemon_socket.clone();
    config.known_api = api_memory.as_ref().and_then(ApiMemory::recall);
    config.debug = settings.emperor.debug;
    config.start_limit = start_slots.is_some();
    let io = LoopIo {
        emperor_control: start.emperor_control,
        emperor_config: start.emperor_config,
        config_file: start.config_file,
        listen_socket,
        listen_socket_entry,
        daemon_socket: settings.emperor.daemon_socket.clone(),
        socket_mode,
        proxy_private_dir,
        debug: settings.emperor.debug,
        log_prefix: settings.log_prefix,
        planner,
        state_file,
        health_watch,
        api_memory,
        start_slots,
    };
    match bridge::run(config, io) {
        Ok(code) => exit_code(code),
        Err(e) => fail_naming(&start.name, &e),
    }
}

/// The vassal's state file in the Emperor's private runtime directory (made if needed),
/// with the Emperor's id and this bridge's label. Metrics are not worth a vassal: when the
/// directory cannot be had, the vassal runs without one, and the log says why.
fn open_state_file(
    settings: &RuntimeSettings,
    identity: &VassalIdentity,
) -> Option<(hostfs::StateFile, String, String)> {
    let (base, sub) = private_dir(settings, &identity.emperor_id);
    match hostfs::StateFile::open(&base, &sub, &identity.name) {
        Ok(file) => Some((
            file,
            identity.emperor_id.clone(),
            identity.bridge_id.clone(),
        )),
        Err(e) => {
            output::warn(&format!(
                "vassal {}: no state file for metrics: {e}",
                identity.name
            ));
            None
        }
    }
}

pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
