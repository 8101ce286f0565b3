//! `uwsgi-docker run FILE.ini`, and the bridge start shared with wrapper mode.
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use uwsgi_docker_core::lifecycle::BridgeConfig;
use uwsgi_docker_core::plan::{ContainerPlan, VassalIdentity};
use uwsgi_docker_core::spec::{self, ListenAddress, VassalSpec};

use crate::bridge_loop::{self, LoopIo};
use crate::settings::RuntimeSettings;
use crate::{proxy, sys};

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
    }
}

/// Bind `docker-socket` (the runtime's job: no action asks for it) and run the bridge.
pub fn run_bridge(settings: &RuntimeSettings, spec: VassalSpec, start: BridgeStart) -> ExitCode {
    let socket_mode = settings
        .emperor
        .socket_mode
        .unwrap_or(proxy::DEFAULT_SOCKET_MODE);
    let (listen_socket, listen_socket_path) = match &spec.socket {
        None => (None, None),
        Some(ListenAddress::Unix(path)) => match proxy::bind_unix(Path::new(path), socket_mode) {
            Ok(fd) => (Some(fd), Some(PathBuf::from(path))),
            Err(e) => return fail(&format!("vassal {}: docker-socket: {e}", start.name)),
        },
        Some(ListenAddress::Tcp { ip, port }) => match proxy::bind_tcp(ip, *port) {
            Ok(fd) => (Some(fd), None),
            Err(e) => return fail(&format!("vassal {}: docker-socket: {e}", start.name)),
        },
    };
    let identity = identity(settings, &start.name, &start.vassal_dir, sys::bridge_id());
    let config = BridgeConfig {
        plan: ContainerPlan::new(spec, &identity),
        config: start.config,
        emperor_config_channel: start.emperor_config.is_some(),
        emperor_control_channel: start.emperor_control.is_some(),
        handoff_timeout: HANDOFF_TIMEOUT,
        stop_grace: STOP_GRACE,
        log_prefix: true,
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

pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

pub fn fail(message: &str) -> ExitCode {
    eprintln!("uwsgi-docker: {message}");
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
    let text = match std::fs::read(file) {
        Ok(text) => text,
        Err(e) => return fail(&format!("cannot read {}: {e}", file.display())),
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
        },
    )
}
