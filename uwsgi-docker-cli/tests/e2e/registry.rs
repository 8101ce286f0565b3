//! End to end for deploying from a registry: a real CNCF distribution registry (Debian's
//! `docker-registry`) with htpasswd auth on 127.0.0.1, started by each test with its own
//! config and storage in a temp dir, and killed and removed after (also on failure).
//! dockerd trusts registries on 127.0.0.0/8 over plain HTTP.
//!
//! Docker only: Podman's compat API would need the registry marked insecure in a
//! registries.conf, so these tests skip on Podman (the Podman CI stage does not run them).
//!
//! Same rules as `e2e.rs`: a real Emperor per test, real containers, real HTTP, nothing
//! left behind, skipped without Docker, uWSGI, the test image or the registry's packages
//! (failing under `CI`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::load::{rolling_vassal, Load};

const USER: &str = "uwsgi-docker-e2e";
const PASSWORD: &str = "pull-me-9b1c";
const IMAGE_DIGEST_LABEL: &str = "io.uwsgi-docker.image-digest";

/// A registry on a free loopback port, with one user; killed and removed on drop, with the
/// image tags the test made.
struct Registry {
    dir: PathBuf,
    port: u16,
    child: Child,
    /// A `DOCKER_CONFIG` dir whose `config.json` (mode 600) has the user's credentials:
    /// pushes go through it, and it is the bridges' `UWSGIDOCKER_REGISTRY_AUTH`.
    docker_config: PathBuf,
    /// Tags made on the engine (pushed or pulled), untagged on drop.
    tags: Vec<String>,
}

/// `Some` when a registry can be run here; fails under `CI` when it cannot.
fn registry_prerequisites(test: &str) -> Option<()> {
    prerequisites(test)?;
    let missing = ["docker-registry", "htpasswd"].into_iter().find(|tool| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if engine() == Engine::Podman {
        skip(format_args!(
            "{test}: Podman needs the registry in registries.conf (Docker only)"
        ));
        return None;
    }
    let Some(tool) = missing else {
        return Some(());
    };
    skip(format_args!(
        "{test}: {tool} is missing (apt-get install docker-registry apache2-utils)"
    ));
    None
}

impl Registry {
    fn start(test: &str) -> Registry {
        let dir = std::env::temp_dir().join(format!("ud-registry-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("docker")).expect("registry dir");
        let port = free_port();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd runs");
        assert!(
            htpasswd.status.success(),
            "htpasswd: {}",
            lossy(&htpasswd.stderr)
        );
        fs::write(dir.join("htpasswd"), &htpasswd.stdout).expect("htpasswd written");
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: uwsgi-docker-e2e\n    path: {}\n",
            dir.join("data").display(),
            dir.join("htpasswd").display()
        );
        fs::write(dir.join("config.yml"), config).expect("config written");
        let log = fs::File::create(dir.join("registry.log")).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let docker_config = dir.join("docker");
        let registry = Registry {
            dir,
            port,
            child,
            docker_config,
            tags: Vec::new(),
        };
        let up = wait_for(Duration::from_secs(10), || {
            matches!(http_get(port, "/v2/"), Ok((401, _))).then_some(())
        });
        assert!(up.is_some(), "the registry answers:\n{}", registry.log());
        let auth = base64(format!("{USER}:{PASSWORD}").as_bytes());
        registry.write_auth("config.json", &auth);
        registry
    }

    /// `host:port` as image references name it.
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Writes a `config.json` named `file` (mode 600) with `auth` for this registry.
    fn write_auth(&self, file: &str, auth: &str) -> PathBuf {
        let path = self.docker_config.join(file);
        let json = format!(
            "{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}",
            self.host()
        );
        fs::write(&path, json).expect("auth file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
        path
    }

    fn auth_file(&self) -> PathBuf {
        self.docker_config.join("config.json")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Pushes `local` as `repository:tag` and untags it on the engine, so that the image
    /// is only in the registry (its layers may stay: the test image's are shared).
    fn push(&mut self, local: &str, repository: &str, tag: &str) -> String {
        let reference = format!("{}/{repository}:{tag}", self.host());
        docker_ok(&["tag", local, &reference]);
        self.tags.push(reference.clone());
        let out = docker_command()
            .env("DOCKER_CONFIG", &self.docker_config)
            .args(["push", "-q", &reference])
            .output()
            .expect("docker push runs");
        assert!(
            out.status.success(),
            "push {reference}: {}",
            lossy(&out.stderr)
        );
        docker_ok(&["rmi", &reference]);
        reference
    }

    /// Builds an image that differs from the test image by one small file (`marker`),
    /// pushes it as `repository:tag` (moving the tag if it was pushed before) and untags
    /// it on the engine.
    fn push_variant(&mut self, repository: &str, tag: &str, marker: &str) -> String {
        let reference = format!("{}/{repository}:{tag}", self.host());
        let context = self.dir.join(format!("context-{marker}"));
        fs::create_dir_all(&context).expect("build context");
        fs::write(context.join("marker"), marker).expect("marker");
        fs::write(
            context.join("Dockerfile"),
            format!("FROM {}\nCOPY marker /marker\n", image()),
        )
        .expect("Dockerfile");
        let context = context.display().to_string();
        docker_ok(&["build", "-q", "-t", &reference, &context]);
        self.tags.push(reference.clone());
        let out = docker_command()
            .env("DOCKER_CONFIG", &self.docker_config)
            .args(["push", "-q", &reference])
            .output()
            .expect("docker push runs");
        assert!(
            out.status.success(),
            "push {reference}: {}",
            lossy(&out.stderr)
        );
        let id = docker_ok(&["image", "inspect", "-f", "{{.Id}}", &reference]);
        docker_ok(&["rmi", &reference]);
        id.trim().to_owned()
    }

    /// A World whose bridges have this registry's credentials in `auth`.
    fn world(&self, test: &str, auth: &Path) -> Option<World> {
        let options = EmperorOptions::from_env()
            .with_env("UWSGIDOCKER_REGISTRY_AUTH", &auth.display().to_string());
        World::start_with(test, options)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for tag in &self.tags {
            let _ = docker(&["rmi", tag]);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Standard base64, for the `config.json` entry.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// A test's repository in the registry.
fn repository(test: &str) -> String {
    format!("ud-e2e/{test}")
}

/// Done means: a vassal whose image is only in the registry pulls it with the operator's
/// credentials and serves; the log says the digest; the container carries it in a label.
#[test]
fn a_vassal_whose_image_is_only_in_the_registry_pulls_and_serves() {
    let test = "registry_pull";
    if registry_prerequisites(test).is_none() {
        return;
    }
    let mut registry = Registry::start(test);
    let reference = registry.push(&image(), &repository(test), "1");
    let auth = registry.auth_file();
    let Some(mut w) = registry.world(test, &auth) else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("pulled");
    w.write_vassal(&name, &rolling_vassal(port, &reference, "pulled", ""));
    w.wait_for_body(port, "pulled", SPAWN_TIMEOUT);
    let line = w.wait_for_log_line(
        &[&name, &format!("pulled {reference} (sha256:")],
        SPAWN_TIMEOUT,
    );
    let digest = line
        .split("(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("a digest in the line")
        .to_owned();
    let ids = containers_labelled(LABEL_VASSAL, &name);
    assert_eq!(ids.len(), 1);
    let label = inspect(
        &ids[0],
        &format!("{{{{index .Config.Labels \"{IMAGE_DIGEST_LABEL}\"}}}}"),
    );
    assert_eq!(label.trim(), digest);
    assert!(!w.log().contains(PASSWORD), "the password is never logged");
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the pulled vassal was removed");
}

/// Done means: `docker-pull = never` gives today's error and asks no registry.
#[test]
fn never_errors_without_asking_the_registry() {
    let test = "registry_never";
    if registry_prerequisites(test).is_none() {
        return;
    }
    let mut registry = Registry::start(test);
    let reference = registry.push(&image(), &repository(test), "1");
    let auth = registry.auth_file();
    let Some(mut w) = registry.world(test, &auth) else {
        return;
    };
    let asked_before = registry.log().matches("/manifests/").count();
    let port = free_port();
    let name = w.vassal_name("never");
    w.write_vassal(
        &name,
        &rolling_vassal(port, &reference, "never", "docker-pull = never"),
    );
    let line = w.wait_for_log_line(&[&name, "not found"], SPAWN_TIMEOUT);
    assert!(line.contains("docker-pull = missing"), "{line}");
    assert_eq!(
        registry.log().matches("/manifests/").count(),
        asked_before,
        "no manifest was asked for:\n{}",
        registry.log()
    );
    assert!(containers_labelled(LABEL_VASSAL, &name).is_empty());
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassal was removed");
}

/// Done means: wrong credentials give a clear error naming the image, with no credential
/// in it, and leave nothing.
#[test]
fn wrong_credentials_give_a_clear_error_and_leave_nothing() {
    let test = "registry_wrong_auth";
    if registry_prerequisites(test).is_none() {
        return;
    }
    let mut registry = Registry::start(test);
    let reference = registry.push(&image(), &repository(test), "1");
    let wrong_password = "not-the-password-77";
    let auth = registry.write_auth(
        "wrong.json",
        &base64(format!("{USER}:{wrong_password}").as_bytes()),
    );
    let Some(mut w) = registry.world(test, &auth) else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("wrong");
    w.write_vassal(&name, &rolling_vassal(port, &reference, "wrong", ""));
    let line = w.wait_for_log_line(&[&name, "cannot pull docker image"], SPAWN_TIMEOUT);
    assert!(line.contains(&reference), "{line}");
    assert!(line.contains("unauthorized"), "{line}");
    let log = w.log();
    assert!(
        !log.contains(wrong_password) && !log.contains(PASSWORD),
        "{log}"
    );
    assert!(containers_labelled(LABEL_VASSAL, &name).is_empty());
    assert!(
        docker(&["image", "inspect", &reference]).status.code() != Some(0),
        "nothing was pulled"
    );
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassal was removed");
}

/// Done means: an image change to a tag that is only in the registry is pulled first, then
/// rolled over to under load with no failed request.
#[test]
fn an_image_change_to_a_tag_only_in_the_registry_rolls_over_under_load() {
    let test = "registry_rollover";
    if registry_prerequisites(test).is_none() {
        return;
    }
    let mut registry = Registry::start(test);
    let repository = repository(test);
    let image_a = registry.push(&image(), &repository, "a");
    let image_b = registry.push(&image(), &repository, "b");
    let auth = registry.auth_file();
    let Some(mut w) = registry.world(test, &auth) else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("roll");
    w.write_vassal(&name, &rolling_vassal(port, &image_a, "from-a", ""));
    w.wait_for_body(port, "from-a", SPAWN_TIMEOUT);
    let first = containers_labelled(LABEL_VASSAL, &name);
    let load = Load::start(port);
    load.warm_up("the change");
    let changed_at = Instant::now();
    w.rewrite_vassal(&name, &rolling_vassal(port, &image_b, "from-b", ""));
    w.wait_for_log_line(&[&name, &format!("pulled {image_b}")], SPAWN_TIMEOUT);
    w.wait_for_log_line(&[&name, "the rollover is complete"], SPAWN_TIMEOUT);
    let rolled_in = changed_at.elapsed();
    let tally = load.finish_after_more("the change");
    tally.assert_none_failed(
        &format!("pull + rollover (in {rolled_in:?})"),
        &w.log_tail(60),
    );
    w.wait_for_body(port, "from-b", Duration::from_secs(5));
    let now = containers_labelled(LABEL_VASSAL, &name);
    assert_eq!(now.len(), 1);
    assert_ne!(now, first);
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassal was removed");
}

/// Done means: a re-pushed tag plus `uwsgi-docker update` rolls the vassal over to the new
/// image under load with no failed request; a second update finds it up to date.
#[test]
fn a_re_pushed_tag_and_update_roll_over_under_load() {
    let test = "registry_update";
    if registry_prerequisites(test).is_none() {
        return;
    }
    let mut registry = Registry::start(test);
    let repository = repository(test);
    registry.push_variant(&repository, "live", "one");
    let reference = format!("{}/{repository}:live", registry.host());
    let auth = registry.auth_file();
    let Some(mut w) = registry.world(test, &auth) else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("update");
    w.write_vassal(&name, &rolling_vassal(port, &reference, "live", ""));
    w.wait_for_body(port, "live", SPAWN_TIMEOUT);
    let first = containers_labelled(LABEL_VASSAL, &name);
    let update = |dry_run: bool| {
        let mut command = Command::new(bin());
        command.arg("update");
        if dry_run {
            command.arg("--dry-run");
        }
        command
            .arg(&w.vassal_dir)
            .env("UWSGIDOCKER_REGISTRY_AUTH", &auth)
            .env("UWSGIDOCKER_EMPEROR_ID", &w.id);
        if let Some(socket) = daemon_socket() {
            command.env("UWSGIDOCKER_DAEMON_SOCKET", socket);
        }
        let out = command.output().expect("uwsgi-docker update runs");
        (out.status.success(), lossy(&out.stdout), lossy(&out.stderr))
    };
    let (ok, table, stderr) = update(false);
    assert!(ok, "{table}{stderr}");
    let line = table
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_default();
    assert!(line.contains("up to date"), "{table}");

    let new_id = registry.push_variant(&repository, "live", "two");
    let mtime = || {
        fs::metadata(w.vassal_path(&name))
            .and_then(|m| m.modified())
            .ok()
    };
    let before = mtime();
    let (ok, table, stderr) = update(true);
    assert!(ok, "{table}{stderr}");
    assert!(table.contains("would reload (rollover)"), "{table}");
    assert_eq!(mtime(), before, "a dry run touches no file");

    let load = Load::start(port);
    load.warm_up("the update");
    let (ok, table, stderr) = update(false);
    assert!(ok, "{table}{stderr}");
    eprintln!("{table}");
    assert!(table.contains("reloaded (rollover)"), "{table}");
    w.wait_for_log_line(&[&name, "names another image now"], SPAWN_TIMEOUT);
    w.wait_for_log_line(&[&name, "the rollover is complete"], SPAWN_TIMEOUT);
    let tally = load.finish_after_more("the update");
    tally.assert_none_failed("update + rollover", &w.log_tail(60));
    let now = containers_labelled(LABEL_VASSAL, &name);
    assert_eq!(now.len(), 1);
    assert_ne!(now, first);
    assert_eq!(inspect(&now[0], "{{.Image}}").trim(), new_id);
    let (ok, table, _) = update(false);
    assert!(
        ok && table
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("up to date")),
        "{table}"
    );
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassal was removed");
}

/// A directory of root's for a test's policy and the tenant's credentials, not under /tmp
/// (every directory above a tenant's credentials file must be root's and not writable by
/// others); removed on drop.
struct RootDir(PathBuf);

impl RootDir {
    fn new(test: &str) -> RootDir {
        let dir = Path::new("/run").join(format!("uwsgi-docker-e2e-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("root dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        RootDir(dir)
    }
}

impl Drop for RootDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The policy can give a tenant a credentials file of its own (`registry-auth`), used
/// instead of the operator's: here the operator's is wrong and the tenant's right. A file
/// the bridge refuses (readable by others) is named with its policy line, and no
/// credential reaches the log or `check --policy`.
#[test]
fn a_tenants_own_credentials_file_is_used_instead_of_the_operators() {
    let test = "registry_tenant_auth";
    if registry_prerequisites(test).is_none() {
        return;
    }
    let mut registry = Registry::start(test);
    let reference = registry.push(&image(), &repository(test), "1");
    let second = registry.push(&image(), &repository(test), "2");
    let wrong_password = "not-the-password-88";
    let operators = registry.write_auth(
        "wrong.json",
        &base64(format!("{USER}:{wrong_password}").as_bytes()),
    );
    let root = RootDir::new(test);
    let tenants = root.0.join("tenant.json");
    fs::copy(registry.auth_file(), &tenants).expect("the tenant's file");
    fs::set_permissions(&tenants, fs::Permissions::from_mode(0o600)).expect("chmod 600");
    let policy = root.0.join("policy.ini");
    fs::write(
        &policy,
        format!(
            "[default]\nsockets = 127.0.0.1:1024-65535\npull-modes = missing\nregistry-auth = {}\n",
            tenants.display()
        ),
    )
    .expect("policy");
    let options = EmperorOptions::from_env()
        .with_env(
            "UWSGIDOCKER_REGISTRY_AUTH",
            &operators.display().to_string(),
        )
        .with_env("UWSGIDOCKER_POLICY", &policy.display().to_string());
    let Some(mut w) = World::start_with(test, options) else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("tenant");
    w.write_vassal(&name, &rolling_vassal(port, &reference, "tenant", ""));
    w.wait_for_body(port, "tenant", SPAWN_TIMEOUT);
    w.wait_for_log_line(
        &[&name, &format!("pulled {reference} (sha256:")],
        SPAWN_TIMEOUT,
    );

    // check --policy names the file and its rule, never what is in it.
    let out = Command::new(bin())
        .args(["check", "--policy"])
        .arg(&policy)
        .arg(w.vassal_path(&name))
        .env("UWSGIDOCKER_REGISTRY_AUTH", &operators)
        .output()
        .expect("check runs");
    let shown = lossy(&out.stdout);
    assert!(out.status.success(), "{shown}{}", lossy(&out.stderr));
    assert!(
        shown.contains(&format!(
            "{} (policy {} line 4: registry-auth",
            tenants.display(),
            policy.display()
        )),
        "{shown}"
    );
    let secret = base64(format!("{USER}:{PASSWORD}").as_bytes());
    assert!(
        !shown.contains(PASSWORD) && !shown.contains(&secret),
        "{shown}"
    );

    // A file others may read is refused, naming the rule; nothing is made.
    fs::set_permissions(&tenants, fs::Permissions::from_mode(0o644)).expect("chmod 644");
    let other = w.vassal_name("exposed");
    let other_port = free_port();
    w.write_vassal(&other, &rolling_vassal(other_port, &second, "exposed", ""));
    let line = w.wait_for_log_line(
        &[&other, "may be read by its group or by others"],
        SPAWN_TIMEOUT,
    );
    assert!(line.contains("line 4: registry-auth"), "{line}");
    assert!(containers_labelled(LABEL_VASSAL, &other).is_empty());
    let log = w.log();
    for leaked in [PASSWORD, wrong_password, secret.as_str()] {
        assert!(!log.contains(leaked), "{log}");
    }
    w.remove_vassal(&other);
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassals were removed");
}
