//! The runtime's settings: the core's `UWSGIDOCKER_*` contract, read from this process's
//! environment (the only place the CLI reads it for settings).
pub use uwsgi_docker_core::settings::{var, RuntimeSettings, SettingsError};

/// The settings in the process environment.
pub fn from_process_env() -> Result<RuntimeSettings, SettingsError> {
    RuntimeSettings::from_env(&process_env)
}

/// One variable of the process environment (`None` when unset or not UTF-8).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
