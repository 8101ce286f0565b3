//! `uwsgi-docker run FILE.ini`: one Docker vassal in the foreground, without an Emperor,
//! through the same bridge start as wrapper mode ([`crate::runtime::start`]).
use std::path::Path;
use std::process::ExitCode;

use uwsgi_docker_core::spec;

use crate::fault::VassalFault;
use crate::output::{fail, fail_naming};
use crate::runtime::start::{run_bridge, BridgeStart};
use crate::settings::RuntimeSettings;
use crate::tenancy::Origin;
use crate::vassal_file;

/// The vassal name of a file: its file name, as a `dir://` Emperor names it.
pub fn vassal_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_string_lossy().into_owned())
}

pub fn run(settings: &RuntimeSettings, file: &Path) -> ExitCode {
    let name = vassal_name(file);
    let text = match vassal_file::read(file) {
        Ok(text) => text,
        Err(e) => return fail_naming(&name, &e),
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
        Ok(None) => return fail(&VassalFault::NoDockerImage { vassal: name }.to_string()),
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
