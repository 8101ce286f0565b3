//! `uwsgi-docker`: the runtime that runs uWSGI vassals in Docker containers. The one place
//! that touches sockets and processes; every decision is the core's.
// Layers, each importing only from those below it: `commands` and `wrapper` on top,
// `runtime` (a bridge's start and loop) in the middle, `host` (files, users, processes,
// sockets) at the bottom; `args`, `output` and `settings` are leaves any layer may use.
mod args;
mod commands;
mod host;
mod output;
mod runtime;
mod settings;
mod wrapper;

use std::process::ExitCode;

use args::Command;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let emperor_fd_set = std::env::var_os("UWSGI_EMPEROR_FD").is_some();
    let command = match args::parse(&argv, emperor_fd_set) {
        Ok(command) => command,
        Err(e) => {
            output::warn(&e.to_string());
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Wrapper(wrapper_args) => wrapper::run(wrapper_args),
        Command::Help(topic) => {
            output::say(args::help(topic).trim_end());
            ExitCode::SUCCESS
        }
        Command::Version => {
            output::say(format_args!(
                "uwsgi-docker {} (git {})",
                env!("CARGO_PKG_VERSION"),
                env!("UWSGIDOCKER_GIT_COMMIT")
            ));
            ExitCode::SUCCESS
        }
        Command::Run { file } => with_settings(|s| commands::run::run(s, &file)),
        Command::Check { file, policy } => with_settings(|s| {
            let mut settings = s.clone();
            if policy.is_some() {
                settings.policy = policy;
            }
            commands::check::run(&settings, &file)
        }),
        Command::Ps { json, emperor } => {
            with_settings(|s| commands::ps::run(s, json, emperor.as_deref()))
        }
        Command::Metrics {
            listen,
            emperor,
            once,
        } => with_settings(|s| {
            commands::metrics::run(s, listen.as_deref(), emperor.as_deref(), once)
        }),
        Command::Gc { dry_run } => with_settings(|s| commands::gc::run(s, dry_run)),
        Command::Update { dirs, dry_run } => {
            with_settings(|s| commands::update::run(s, &dirs, dry_run))
        }
    }
}

fn with_settings(f: impl FnOnce(&settings::RuntimeSettings) -> ExitCode) -> ExitCode {
    match settings::from_process_env() {
        Ok(settings) => f(&settings),
        Err(e) => output::fail(&e.to_string()),
    }
}
