//! `uwsgi-docker update [--dry-run] DIR…`: for each vassal file of ours in DIR, pull its
//! image's tag; where the tag now names another image than the vassal's running container
//! runs, move the file's mtime forward, so that the Emperor reloads it and the bridge,
//! seeing the moved tag, rolls over (socket vassals) or recreates (the others). Meant for
//! cron or a systemd timer. `--dry-run` pulls (so the host holds the new image) but
//! touches no file. A vassal pulls as its bridge would: not at all with `docker-pull =
//! never`, and under a policy with its tenant's credentials and `pull-modes`.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use uwsgi_docker_core::docker::{self, PullFailure, PullProgress, RegistryCredentials};
use uwsgi_docker_core::plan::labels;
use uwsgi_docker_core::policy::RegistryAuth;
use uwsgi_docker_core::spec::{self, PullPolicy, VassalSpec};

use crate::commands::vassals::{is_ours, label};
use crate::host::docker_client::{Client, ClientError};
use crate::output::{self, fail};
use crate::runtime::start::registry_credentials;
use crate::runtime::start_error::{StartError, VassalStartError};
use crate::runtime::tenancy::{self, Origin};
use crate::settings::RuntimeSettings;

/// One vassal's row.
struct Row {
    vassal: String,
    image: String,
    running: String,
    new: String,
    action: String,
}

pub fn run(settings: &RuntimeSettings, dirs: &[PathBuf], dry_run: bool) -> ExitCode {
    let credentials = match settings.registry_auth.as_deref().map(|path| {
        crate::host::registry_auth::read(path, crate::host::registry_auth::NamedBy::Operator)
    }) {
        None => RegistryCredentials::default(),
        Some(Ok(credentials)) => credentials,
        Some(Err(e)) => return fail(&e.to_string()),
    };
    let client = match Client::negotiate(&settings.emperor.daemon_socket) {
        Ok(client) => client,
        Err(e) => return fail(&e.to_string()),
    };
    let mut rows = Vec::new();
    let mut failed = false;
    for dir in dirs {
        let files = match vassal_files(dir) {
            Ok(files) => files,
            Err(e) => {
                eprintln!("uwsgi-docker: {}: {e}", dir.display());
                failed = true;
                continue;
            }
        };
        for (name, path, spec) in files {
            let row = update_one(
                &client,
                settings,
                &credentials,
                &name,
                &path,
                &spec,
                dry_run,
            );
            failed |= row.action.starts_with("error");
            rows.push(row);
        }
    }
    print_table(&rows);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The Docker vassal files in `dir` (regular files, not symlinks), sorted by name.
fn vassal_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf, VassalSpec)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Ok(text) = crate::host::vassal_file::read(&path) else {
            continue;
        };
        if let Ok(Some(spec)) = spec::parse_vassal(&name, &text) {
            files.push((name, path, spec));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn update_one(
    client: &Client,
    settings: &RuntimeSettings,
    credentials: &RegistryCredentials,
    name: &str,
    path: &Path,
    spec: &VassalSpec,
    dry_run: bool,
) -> Row {
    let mut row = Row {
        vassal: name.to_owned(),
        image: spec.image.clone(),
        running: "-".into(),
        new: "-".into(),
        action: String::new(),
    };
    let running = match running_images(client, settings, name) {
        Ok(running) => running,
        Err(e) => {
            row.action = format!("error: {e}");
            return row;
        }
    };
    let Some(first) = running.first() else {
        row.action = "not running".into();
        return row;
    };
    row.running = short(first);
    let (pull_policy, tenants) = match pull_for(settings, name, path, spec) {
        Ok(found) => found,
        Err(e) => {
            row.action = format!("error: {}", output::unnamed(name, &e.to_string()));
            return row;
        }
    };
    if pull_policy == PullPolicy::Never {
        row.action = "not pulled (docker-pull = never)".into();
        return row;
    }
    let credentials = tenants.as_ref().unwrap_or(credentials);
    let new = match pull(client, credentials, &spec.image).and_then(|()| {
        let response = client.call(|api, out| api.inspect_image(&spec.image, out))?;
        Ok::<_, UpdateError>(docker::parse_image_id(&response)?)
    }) {
        Ok(id) => id,
        Err(e) => {
            row.action = format!("error: {e}");
            return row;
        }
    };
    row.new = short(&new);
    if running.iter().all(|id| *id == new) {
        row.action = "up to date".into();
        return row;
    }
    let how = if spec.socket.is_some() && spec.ports.is_empty() {
        "rollover"
    } else {
        "recreate"
    };
    row.action = if dry_run {
        format!("would reload ({how})")
    } else {
        match touch_forward(path) {
            Ok(()) => format!("reloaded ({how})"),
            Err(e) => format!("error: cannot touch {}: {e}", path.display()),
        }
    };
    row
}

/// How the vassal pulls, as its bridge would: its `docker-pull` (under a policy, as the
/// policy makes it), else the operator's; and under a policy its tenant's credentials
/// (`None`: the operator's). A vassal the policy refuses is an error.
fn pull_for(
    settings: &RuntimeSettings,
    name: &str,
    path: &Path,
    spec: &VassalSpec,
) -> Result<(PullPolicy, Option<RegistryCredentials>), StartError> {
    if settings.policy.is_none() {
        return Ok((spec.pull.unwrap_or(settings.pull), None));
    }
    let file = crate::host::vassal_file::open(path).map_err(VassalStartError::from)?;
    let origin = Origin::of_file(&file, path).map_err(VassalStartError::from)?;
    let mut judged = spec.clone();
    let Some((_, decision)) = tenancy::apply(settings, name, origin, &mut judged)? else {
        return Ok((spec.pull.unwrap_or(settings.pull), None));
    };
    let credentials = match decision.registry_auth {
        RegistryAuth::Operator => None,
        ref own => Some(registry_credentials(settings, own)?),
    };
    Ok((judged.pull.unwrap_or(settings.pull), credentials))
}

/// The image ids of the vassal's running containers (ours, and this Emperor's prefix's).
fn running_images(
    client: &Client,
    settings: &RuntimeSettings,
    vassal: &str,
) -> Result<Vec<String>, UpdateError> {
    let response = client.call(|api, out| api.list_by_labels(&[(labels::VASSAL, vassal)], out))?;
    let prefix = settings.emperor.name_prefix.as_deref();
    let mut images = Vec::new();
    for summary in docker::parse_list(&response)? {
        if !is_ours(&summary)
            || summary.state != "running"
            || label(&summary, labels::PREFIX) != prefix
        {
            continue;
        }
        let response = client.call(|api, out| api.inspect(&summary.id, out))?;
        let info = docker::parse_inspect(&response)?;
        if !info.image.is_empty() {
            images.push(info.image);
        }
    }
    Ok(images)
}

/// Why a vassal could not be updated.
#[derive(Debug, thiserror::Error)]
enum UpdateError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Daemon(#[from] docker::DaemonError),
    #[error("cannot pull: {0}")]
    Pull(PullFailure),
    #[error(transparent)]
    Stream(#[from] docker::PullStreamError),
}

fn pull(
    client: &Client,
    credentials: &RegistryCredentials,
    image: &str,
) -> Result<(), UpdateError> {
    let auth = credentials.header_for(image);
    let response = client.call(|api, out| api.pull(image, auth.as_deref(), out))?;
    if let Err(docker::DaemonError::Status { status, message }) = docker::parse_empty(&response) {
        return Err(UpdateError::Pull(PullFailure::classify(
            Some(status),
            &message,
        )));
    }
    let mut progress = PullProgress::new();
    progress.feed(&response.body)?;
    progress.finish()?;
    match progress.failure() {
        Some(message) => Err(UpdateError::Pull(PullFailure::classify(None, message))),
        None => Ok(()),
    }
}

/// Moves the file's mtime forward (never through a symlink): to now, and at least one
/// second past what it was, since the Emperor compares whole seconds.
fn touch_forward(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let now = SystemTime::now();
    let later = meta.modified()? + Duration::from_secs(1);
    let when = now.max(later);
    let since_epoch = when
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = |seconds, nanoseconds| rustix::fs::Timespec {
        tv_sec: seconds,
        tv_nsec: nanoseconds,
    };
    let times = rustix::fs::Timestamps {
        last_access: stamp(0, rustix::fs::UTIME_OMIT),
        last_modification: stamp(
            i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
            i64::from(since_epoch.subsec_nanos()),
        ),
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// `sha256:0123456789ab…` as its first 12 hex digits.
fn short(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

fn print_table(rows: &[Row]) {
    let header = ["VASSAL", "IMAGE", "RUNNING", "NEW", "ACTION"];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| [r.vassal.as_str(), &r.image, &r.running, &r.new, &r.action])
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..4).map(width).collect();
    let line = |c: [&str; 5]| {
        let text = format!(
            "{:w0$}  {:w1$}  {:>w2$} → {:w3$}  {}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        println!(
            "{}",
            uwsgi_docker_core::attach::escape_control(text.trim_end())
        );
    };
    line(header);
    for c in cells {
        line(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_vassal_pulls_as_its_bridge_would() {
        let dir = std::env::temp_dir().join(format!("ud-update-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("written");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            path
        };
        let spec_of = |text: &str| {
            spec::parse_vassal("app.ini", text.as_bytes())
                .expect("parses")
                .expect("a Docker vassal")
        };
        let (plain, never) = (
            "[emperor]\ndocker-image = app\n",
            "[emperor]\ndocker-image = app\ndocker-pull = never\n",
        );
        let mut settings = RuntimeSettings::default();
        let vassal = write("app.ini", plain);
        // Without a policy: the vassal's docker-pull, else the operator's.
        let (pull, own) = pull_for(&settings, "app.ini", &vassal, &spec_of(never)).expect("ok");
        assert_eq!((pull, own.is_none()), (PullPolicy::Never, true));
        settings.pull = PullPolicy::Always;
        let (pull, _) = pull_for(&settings, "app.ini", &vassal, &spec_of(plain)).expect("ok");
        assert_eq!(pull, PullPolicy::Always);
        // Under a policy: as the policy makes it (root's file: the [default] rules).
        settings.policy = Some(write(
            "policy.ini",
            "[default]\npull-modes = never\nregistry-auth =\n",
        ));
        let (pull, own) = pull_for(&settings, "app.ini", &vassal, &spec_of(plain)).expect("ok");
        assert_eq!(pull, PullPolicy::Never);
        assert!(
            own.is_some_and(|c| c.registries().count() == 0),
            "no credentials"
        );
        let always = write(
            "always.ini",
            "[emperor]\ndocker-image = app\ndocker-pull = always\n",
        );
        let err = pull_for(
            &settings,
            "always.ini",
            &always,
            &spec_of("[emperor]\ndocker-image = app\ndocker-pull = always\n"),
        )
        .expect_err("refused")
        .to_string();
        assert!(err.contains("pull-modes = never"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
