//! `uwsgi-docker run FILE.ini`: one Docker vassal in the foreground, without an Emperor,
//! through the same bridge start as wrapper mode ([`crate::runtime::start`]).
use std::path::Path;
use std::process::ExitCode;

use uwsgi_docker_core::spec;

use crate::host::vassal_file;
use crate::output::{fail, fail_naming};
use crate::runtime::start::{run_bridge, BridgeStart};
use crate::runtime::start_error::VassalStartError;
use crate::runtime::tenancy::Origin;
use crate::settings::RuntimeSettings;

/// The vassal name of a file: its file name, as a `dir://` Emperor names it.
pub fn vassal_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_string_lossy().into_owned())
}

pub fn run(settings: &RuntimeSettings, file: &Path) -> ExitCode {
    let name = vassal_name(file);
    let file_read = match vassal_file::open(file) {
        Ok(read) => read,
        Err(e) => return fail_naming(&name, &e),
    };
    // Two tenants controlling the file matter only under a policy.
    let origin = match Origin::of_file(&file_read, file) {
        Ok(origin) => origin,
        Err(_) if settings.policy.is_none() => Origin::Pushed,
        Err(e) => return fail_naming(&name, &e),
    };
    let text = file_read.text;
    if let Err(e) = spec::check_pushable(&name, text.len()) {
        return fail(&e.to_string());
    }
    let spec = match spec::parse_vassal(&name, &text) {
        Ok(Some(spec)) => spec,
        Ok(None) => return fail(&VassalStartError::NoDockerImage { vassal: name }.to_string()),
        Err(e) => return fail(&e.to_string()),
    };
    run_bridge(
        settings,
        spec,
        BridgeStart {
            name,
            config: text,
            config_file: Some(file.to_path_buf()),
            emperor_control: None,
            emperor_config: None,
            inherited_socket: None,
            origin,
        },
    )
}
