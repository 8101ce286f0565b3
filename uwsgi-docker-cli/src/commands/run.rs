//! `uwsgi-docker run FILE.ini`, and the bridge start shared with wrapper mode.
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use uwsgi_docker_core::lifecycle::{BridgeConfig, DEFAULT_REQUEST_TIMEOUT};
use uwsgi_docker_core::plan::{ContainerPlan, PlanOptions, VassalIdentity};
use uwsgi_docker_core::spec::{self, HandoffMode, ListenAddress, VassalSpec};

use crate::bridge_loop::{self, LoopIo};
use crate::settings::{self, RuntimeSettings};
use crate::tenancy::{self, Origin};
use crate::{launcher_binary, proxy, sys, vassal_file};

/// How long the vassal has to connect to the proxy after its container starts.
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra time past the container's stop timeout before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Everything a bridge needs besides the spec.
#[derive(Debug)]
pub struct BridgeStart {
    pub name: String,
    /// Directory of the vassal file (absolute), the default home of the proxy socket.
    pub vassal_dir: PathBuf,
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

/// The vassal's identity as the plan needs it.
pub fn identity(
    settings: &RuntimeSettings,
    name: &str,
    vassal_dir: &Path,
    bridge_id: String,
) -> VassalIdentity {
    VassalIdentity {
        name: name.to_owned(),
        proxy_dir: settings
            .emperor
            .socket_dir
            .clone()
            .unwrap_or_else(|| vassal_dir.to_string_lossy().into_owned()),
        emperor_id: settings
            .emperor_id
            .clone()
            .unwrap_or_else(sys::default_emperor_id),
        bridge_id,
        name_prefix: settings.emperor.name_prefix.clone(),
    }
}

/// The plan for this vassal: the launcher looked up (and checked static) when the handoff
/// needs it, and the plan validated, so a missing launcher or a proxy path that cannot
/// work fails before anything is bound or created. The error names the vassal.
pub fn plan(
    spec: VassalSpec,
    identity: &VassalIdentity,
    inherited_socket: bool,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<ContainerPlan, String> {
    let launcher_host_path = match spec.handoff_for(inherited_socket).0 {
        HandoffMode::Launcher => {
            let path = launcher_binary::find(get).map_err(|e| {
                format!("vassal {}: docker-handoff = launcher (the default when a socket is passed) needs the static launcher: {e}", identity.name)
            })?;
            Some(path.to_string_lossy().into_owned())
        }
        _ => None,
    };
    let options = PlanOptions {
        launcher_host_path,
        inherited_socket,
    };
    let plan = ContainerPlan::with_options(spec, identity, &options);
    plan.validate().map_err(|e| e.to_string())?;
    Ok(plan)
}

/// Bind `docker-socket` (the runtime's job: no action asks for it), or take the Emperor's
/// on-demand socket, and run the bridge.
pub fn run_bridge(settings: &RuntimeSettings, spec: VassalSpec, start: BridgeStart) -> ExitCode {
    let requested = spec.clone();
    let mut spec = spec;
    match tenancy::apply(settings, &start.name, start.origin, &mut spec) {
        Ok(None) => {}
        Ok(Some((tenant, decision))) => {
            if settings.emperor.debug {
                for line in &decision.applied {
                    eprintln!("uwsgi-docker: vassal {}: policy: {line}", start.name);
                }
            }
            spec.labels.push((
                uwsgi_docker_core::plan::labels::TENANT.to_owned(),
                tenant.uid.to_string(),
            ));
        }
        Err(e) => return fail(&e),
    }
    let socket_mode = settings
        .emperor
        .socket_mode
        .unwrap_or(proxy::DEFAULT_SOCKET_MODE);
    let name = start.name.clone();
    let mut inherited = start.inherited_socket;
    if spec.socket.is_some() && inherited.take().is_some() {
        eprintln!("uwsgi-docker: vassal {name}: docker-socket is set, so the Emperor's on-demand socket is not passed to the container");
    }
    let identity = identity(settings, &start.name, &start.vassal_dir, sys::bridge_id());
    let plan = match plan(spec, &identity, inherited.is_some(), &settings::process_env) {
        Ok(plan) => plan,
        Err(e) => return fail(&e),
    };
    let (listen_socket, listen_socket_path) = match &plan.spec.socket {
        None => (inherited, None),
        Some(address) => match bind_listen_socket(address, socket_mode) {
            Ok((fd, path)) => (Some(fd), path),
            Err(e) => return fail(&format!("vassal {name}: docker-socket = {address}: {e}")),
        },
    };
    let config = BridgeConfig {
        plan,
        requested_spec: requested,
        config: start.config,
        emperor_config_channel: start.emperor_config.is_some(),
        emperor_control_channel: start.emperor_control.is_some(),
        handoff_timeout: HANDOFF_TIMEOUT,
        stop_grace: STOP_GRACE,
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
        log_prefix: settings.log_prefix,
        debug: settings.emperor.debug,
    };
    let io = LoopIo {
        emperor_control: start.emperor_control,
        emperor_config: start.emperor_config,
        config_file: start.config_file,
        listen_socket,
        listen_socket_path: listen_socket_path.clone(),
        daemon_socket: settings.emperor.daemon_socket.clone(),
        socket_mode,
        debug: settings.emperor.debug,
    };
    match bridge_loop::run(config, io) {
        Ok(code) => exit_code(code),
        Err(e) => {
            if let Some(path) = listen_socket_path {
                bridge_loop::remove_socket_file(&path);
            }
            fail(&format!("vassal {}: {e}", start.name))
        }
    }
}

/// Bind `docker-socket` as uWSGI would: a blocking listener (uWSGI sets its own flags),
/// mode from the Emperor settings for a unix path. Returns the path to unlink at exit.
fn bind_listen_socket(
    address: &ListenAddress,
    mode: u32,
) -> Result<(OwnedFd, Option<PathBuf>), String> {
    let in_use = |e: String| {
        if e.contains("in use") {
            format!("{e}; another process listens there: stop it or choose another docker-socket")
        } else {
            e
        }
    };
    match address {
        ListenAddress::Unix(path) => {
            let fd = proxy::bind_unix(Path::new(path), mode).map_err(in_use)?;
            if let Err(e) = rustix::io::ioctl_fionbio(&fd, false) {
                bridge_loop::remove_socket_file(Path::new(path));
                return Err(format!("cannot make the socket blocking: {e}"));
            }
            Ok((fd, Some(PathBuf::from(path))))
        }
        ListenAddress::Tcp { ip, port } => Ok((proxy::bind_tcp(ip, *port).map_err(in_use)?, None)),
    }
}

pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Prints `message` as one line: vassal names and values in it are tenant text, so their
/// control bytes are escaped.
pub fn fail(message: &str) -> ExitCode {
    eprintln!(
        "uwsgi-docker: {}",
        uwsgi_docker_core::attach::escape_control(message)
    );
    ExitCode::FAILURE
}

/// The vassal name of a file: its file name, as a `dir://` Emperor names it.
pub fn vassal_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_string_lossy().into_owned())
}

/// The absolute directory holding `file`.
pub fn absolute_dir(file: &Path) -> PathBuf {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

pub fn run(settings: &RuntimeSettings, file: &Path) -> ExitCode {
    let name = vassal_name(file);
    let text = match vassal_file::read(file) {
        Ok(text) => text,
        Err(e) => return fail(&format!("vassal {name}: {e}")),
    };
    if let Err(e) = spec::check_pushable(&name, text.len()) {
        return fail(&e.to_string());
    }
    let origin = match Origin::of_file(file) {
        Ok(origin) => origin,
        Err(e) => return fail(&format!("cannot stat {}: {e}", file.display())),
    };
    let spec = match spec::parse_vassal(&name, &text) {
        Ok(Some(spec)) => spec,
        Ok(None) => {
            return fail(&format!(
                "vassal {name} has no docker-image in its [emperor] section; add one, or run it with uwsgi itself"
            ))
        }
        Err(e) => return fail(&e.to_string()),
    };
    run_bridge(
        settings,
        spec,
        BridgeStart {
            name,
            vassal_dir: absolute_dir(file),
            config: text,
            config_file: Some(file.to_path_buf()),
            emperor_control: None,
            emperor_config: None,
            inherited_socket: None,
            origin,
        },
    )
}
