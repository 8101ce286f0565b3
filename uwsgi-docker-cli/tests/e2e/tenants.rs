//! Tenant mode end to end: a real Emperor with an operator policy (`UWSGIDOCKER_POLICY`),
//! vassal files owned by a tenant, the real daemon. Each forbidden request is refused with
//! its rule named and no container made; an allowed vassal runs as its file's owner.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// The tenant: a uid with no passwd entry, as a hosting customer's often is.
const TENANT: (u32, u32) = (4242, 4242);

/// The policy every test here runs under; `data` is the one mountable directory.
fn policy(data: &Path, cids: &Path) -> String {
    format!(
        "; e2e policy\n\
         [default]\n\
         images = {image}\n\
         mounts = {data}\n\
         network-modes = bridge none\n\
         user = owner\n\
         publish = 127.0.0.1:1024-65535\n\
         memory-max = 512m\n\
         cidfile-dirs = {cids}\n\
         proxy = {proxy}\n",
        image = image(),
        data = data.display(),
        cids = cids.display(),
        proxy = data.with_file_name("tenant-proxy").display(),
    )
}

/// A directory of root's for one test's policy paths: `/run/uwsgi-docker-e2e-TEST-PID`.
fn policy_base(test: &str) -> std::path::PathBuf {
    let base = Path::new("/run").join(format!("uwsgi-docker-e2e-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).expect("the policy base dir");
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).expect("chmod");
    base
}

/// A World whose Emperor runs with `policy(…)` written to its root.
fn world_with_policy(test: &str) -> Option<(World, std::path::PathBuf)> {
    // The policy's paths must exist before the Emperor is told about it; the World's root
    // is made by `start_with`, so use a directory of our own. Not under /tmp: a mount
    // source's every directory must be root's and not world-writable.
    let base = policy_base(test);
    let data = base.join("data");
    let cids = base.join("cids");
    fs::create_dir_all(&data).expect("data dir");
    fs::create_dir_all(&cids).expect("cidfile dir");
    // A proxy directory the tenant owns: it could swap its socket for a symlink.
    let tenant_proxy = base.join("tenant-proxy");
    fs::create_dir_all(&tenant_proxy).expect("proxy dir");
    std::os::unix::fs::chown(&tenant_proxy, Some(TENANT.0), Some(TENANT.1)).expect("chown");
    for dir in [&base, &data, &cids] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let policy_path = base.join("policy.ini");
    fs::write(&policy_path, policy(&data, &cids)).expect("write the policy");
    fs::set_permissions(&policy_path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let options = EmperorOptions::from_env()
        .with_env("UWSGIDOCKER_POLICY", policy_path.to_str().expect("utf-8"));
    let world = World::start_with(test, options)?;
    Some((world, base))
}

#[test]
fn policy_refuses_each_forbidden_request_and_creates_nothing() {
    let Some((mut w, base)) = world_with_policy("policy-refuse") else {
        return;
    };
    let data = base.join("data");
    let port = free_port;
    // (short name, extra [emperor] lines, the attribute and the rule the refusal must name;
    // a rule of the file is named with its line)
    let cases: Vec<(&str, String, &str, &str)> = vec![
        // Never mountable, whatever the rules say: the refusal names the built-in rule.
        (
            "root-mount",
            "docker-mount = /:/host".into(),
            "docker-mount",
            "built in",
        ),
        (
            "docker-sock",
            "docker-mount = /var/run/docker.sock:/var/run/docker.sock".into(),
            "docker-mount",
            "built in",
        ),
        (
            "host-net",
            "docker-network-mode = host".into(),
            "docker-network-mode",
            "network-modes",
        ),
        (
            "ctr-net",
            "docker-network-mode = container:someone-else".into(),
            "docker-network-mode",
            "network-modes",
        ),
        (
            "root-user",
            "docker-user = 0:0".into(),
            "docker-user",
            "user",
        ),
        (
            "big-memory",
            "docker-memory = 1g".into(),
            "docker-memory",
            "memory-max",
        ),
        (
            "cidfile",
            "docker-cidfile = /tmp/uwsgi-docker-not-allowed.cid".into(),
            "docker-cidfile",
            "cidfile-dirs",
        ),
        (
            "low-port",
            "docker-port = 127.0.0.1:80:3031".into(),
            "docker-port",
            "publish",
        ),
        (
            "data-rw",
            format!("docker-mount = {}:/data:rw", data.display()),
            "docker-mount",
            "mounts",
        ),
        // Bounds that hold when the policy names none.
        (
            "big-swap",
            "docker-memory = 256m\ndocker-swap = 8000000g".into(),
            "docker-swap",
            "built in",
        ),
        (
            "long-stop",
            "docker-stop-timeout = 4294967295\ndocker-stop-signal = SIGCONT".into(),
            "docker-stop-timeout",
            "built in",
        ),
        (
            "big-tmpfs",
            "docker-tmpfs = /scratch:size=1g".into(),
            "docker-tmpfs",
            "built in",
        ),
    ];
    let mut names = Vec::new();
    for (short, extra, _, _) in &cases {
        let name = w.vassal_name(short);
        let mut text = docker_vassal(port(), extra, "");
        if extra.contains("container:") {
            // A container on another's network publishes nothing (refused before the policy).
            text = text
                .lines()
                .filter(|l| !l.starts_with("docker-port"))
                .map(|l| format!("{l}\n"))
                .collect();
        }
        w.write_vassal_owned(&name, &text, Some(TENANT));
        names.push(name);
    }
    // A proxy socket in a directory the tenant can write: the daemon would look its path up
    // again after our check, so it is refused.
    let proxy_vassal = w.vassal_name("tenant-proxy");
    let text = docker_vassal(
        port(),
        &format!(
            "docker-proxy = {}/p.sock",
            base.join("tenant-proxy").display()
        ),
        "",
    );
    w.write_vassal_owned(&proxy_vassal, &text, Some(TENANT));
    names.push(proxy_vassal.clone());
    // A foreign image: any image the policy does not name.
    let foreign = w.vassal_name("foreign-image");
    let text = docker_vassal(port(), "", "").replace(&image(), "busybox:latest");
    w.write_vassal_owned(&foreign, &text, Some(TENANT));

    for ((_, _, key, rule), name) in cases.iter().zip(&names) {
        let mut needles = vec![name.as_str(), key, rule, "is not allowed"];
        if *rule != "built in" {
            needles.push("line ");
        }
        let line = w.wait_for_log_line(&needles, SPAWN_TIMEOUT);
        assert!(line.contains("policy"), "{line}");
    }
    w.wait_for_log_line(
        &[foreign.as_str(), "docker-image", "images", "line "],
        SPAWN_TIMEOUT,
    );
    w.wait_for_log_line(
        &[
            proxy_vassal.as_str(),
            "the proxy socket",
            "can be changed by others than root",
        ],
        SPAWN_TIMEOUT,
    );
    for name in names.iter().chain([&foreign]) {
        assert!(
            containers_labelled(LABEL_VASSAL, name).is_empty(),
            "a container was made for the refused vassal {name}"
        );
        assert!(container_id(name).is_none(), "{name} has a container");
    }
    assert!(
        !Path::new("/tmp/uwsgi-docker-not-allowed.cid").exists(),
        "a refused cidfile was written"
    );
    for name in names.iter().chain([&foreign]) {
        w.remove_vassal(name);
    }
    w.assert_clean_within(CLEANUP_TIMEOUT, "the refused vassals were removed");
    drop(w);
    let _ = fs::remove_dir_all(&base);
}

/// A vassal that mounts `data` at /data and serves the psgi app /data/app.pl on `port`.
fn data_app_vassal(port: u16, data: &Path) -> String {
    format!(
        "[emperor]\n\
         docker-image = {image}\n\
         docker-port = 127.0.0.1:{port}:3031\n\
         docker-mount = {data}:/data\n\
         \n\
         [uwsgi]\n\
         master = true\n\
         plugin = psgi\n\
         psgi = /data/app.pl\n\
         http-socket = 0.0.0.0:3031\n",
        image = image(),
        data = data.display(),
    )
}

/// The app a tenant's vassal serves from the allowed mount: it says who it runs as and
/// whether it can read a root-only file through the same mount.
const WHOAMI_APP: &str = r#"my $app = sub {
    my $secret = open(my $f, '<', '/data/secret') ? 'readable' : 'denied';
    my $greeting = $ENV{GREETING} // 'none';
    return [200, ['Content-Type' => 'text/plain'], ["uid=$< secret=$secret greeting=$greeting"]];
};
"#;

#[test]
fn an_allowed_vassal_runs_as_its_owner_and_cannot_read_root_files() {
    let Some((mut w, base)) = world_with_policy("policy-allow") else {
        return;
    };
    let data = base.join("data");
    fs::write(data.join("app.pl"), WHOAMI_APP).expect("write the app");
    fs::set_permissions(data.join("app.pl"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::write(data.join("secret"), "root only").expect("write the secret");
    fs::set_permissions(data.join("secret"), fs::Permissions::from_mode(0o600)).expect("chmod");

    let port = free_port();
    let name = w.vassal_name("tenant-app");
    let text = data_app_vassal(port, &data);
    w.write_vassal_owned(&name, &text, Some(TENANT));
    let expected = format!("uid={} secret=denied greeting=none", TENANT.0);
    w.wait_for_body(port, &expected, SPAWN_TIMEOUT);

    assert_eq!(
        inspect(&name, "{{.Config.User}}"),
        format!("{}:{}", TENANT.0, TENANT.1)
    );
    // Docker shows the request's ["ALL"]; Podman's compat inspect lists what was dropped:
    // every capability of its default set (containers.conf default_capabilities).
    let cap_drop = match engine() {
        Engine::Docker => r#"["ALL"]"#,
        Engine::Podman => {
            r#"["AUDIT_WRITE","CHOWN","DAC_OVERRIDE","FOWNER","FSETID","KILL","MKNOD","NET_BIND_SERVICE","NET_RAW","SETFCAP","SETGID","SETPCAP","SETUID","SYS_CHROOT"]"#
        }
    };
    assert_eq!(inspect(&name, "{{json .HostConfig.CapDrop}}"), cap_drop);
    let security = inspect(&name, "{{json .HostConfig.SecurityOpt}}");
    assert!(security.contains("no-new-privileges"), "{security}");
    let mounts = inspect(&name, "{{range .Mounts}}{{.Destination}}={{.RW}}\n{{end}}");
    assert!(
        mounts.lines().any(|m| m == "/data=false"),
        "the data mount is read-only: {mounts}"
    );
    assert_eq!(
        inspect(&name, "{{index .Config.Labels \"io.uwsgi-docker.tenant\"}}"),
        TENANT.0.to_string()
    );

    // What the policy forced is not a change of the file: a touch reloads in place.
    let id = container_id(&name).expect("the container");
    let reloaded = text.replace("master = true", "master = true\nenv = GREETING=reloaded");
    w.rewrite_vassal_owned(&name, &reloaded, Some(TENANT));
    let after = format!("uid={} secret=denied greeting=reloaded", TENANT.0);
    w.wait_for_body(port, &after, SPAWN_TIMEOUT);
    assert_eq!(
        container_id(&name),
        Some(id),
        "a touch must not recreate the container"
    );

    // The verdict as `check --policy` prints it.
    let check = Command::new(bin())
        .args(["check", "--policy"])
        .arg(base.join("policy.ini"))
        .arg(w.vassal_path(&name))
        .output()
        .expect("run check --policy");
    assert!(check.status.success(), "{}", lossy(&check.stderr));
    let report = lossy(&check.stdout);
    assert!(report.contains("\"verdict\": \"allowed\""), "{report}");
    assert!(
        report.contains(&format!("\"uid\": {}", TENANT.0)),
        "{report}"
    );

    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
    drop(w);
    let _ = fs::remove_dir_all(&base);
}

#[test]
fn policy_edits_apply_to_the_next_spawn() {
    let Some((mut w, base)) = world_with_policy("policy-edit") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("later");
    // 1 GiB is over the policy's maximum: refused.
    let text = docker_vassal(port, "docker-memory = 1g", "");
    w.write_vassal_owned(&name, &text, Some(TENANT));
    w.wait_for_log_line(&[name.as_str(), "memory-max"], SPAWN_TIMEOUT);
    // The operator raises the maximum; the Emperor's next try (or a touch) picks it up.
    let raised = policy(&base.join("data"), &base.join("cids")).replace("512m", "2g");
    fs::write(base.join("policy.ini"), raised).expect("edit the policy");
    w.rewrite_vassal_owned(&name, &text, Some(TENANT));
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    assert_eq!(
        inspect(&name, "{{.HostConfig.Memory}}"),
        (1u64 << 30).to_string()
    );
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
    drop(w);
    let _ = fs::remove_dir_all(&base);
}

#[test]
fn under_emperor_tyrant_the_vassal_fails_saying_what_to_do() {
    let Some(mut w) = World::start_with(
        "tyrant",
        EmperorOptions::from_env().with_arg("--emperor-tyrant"),
    ) else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("tyrant");
    // Tyrant mode needs a user it can look up: nobody.
    w.write_vassal_owned(&name, &docker_vassal(port, "", ""), Some((65534, 65534)));
    let line = w.wait_for_log_line(&[name.as_str(), "UWSGIDOCKER_POLICY"], SPAWN_TIMEOUT);
    assert!(line.contains("emperor-tyrant"), "{line}");
    assert!(
        container_id(&name).is_none(),
        "no container under tyrant mode"
    );
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
}

/// The app the swap test mounts: it says what /data holds.
const MARKER_APP: &str = r#"my $app = sub {
    my $marker = 'none';
    if (open(my $f, '<', '/data/marker')) { $marker = <$f>; }
    return [200, ['Content-Type' => 'text/plain'], ["marker=$marker"]];
};
"#;

/// Issue 17's third route: a tenant who can write the directory holding its mount source
/// swaps the source for a symlink (renameat2 RENAME_EXCHANGE, in a loop) between the
/// bridge's check and the daemon's lookup at start, and gets any host path mounted. Each
/// attempt is a fresh vassal; the daemon must never mount the decoy's target. Against a
/// symlink check at plan time this fails within a few attempts (the daemon follows the
/// symlink half the time); with the check that every directory above the source is root's,
/// the layout is refused outright, naming the tenant's directory.
#[test]
fn a_mount_source_swapped_for_a_symlink_never_reaches_the_daemon() {
    let base = policy_base("mount-swap");
    let tenant_dir = base.join("tenant");
    let data = tenant_dir.join("data");
    let secret = base.join("secret");
    for (dir, marker) in [(&data, "public"), (&secret, "secret")] {
        fs::create_dir_all(dir).expect("mkdir");
        fs::write(dir.join("marker"), marker).expect("marker");
        fs::write(dir.join("app.pl"), MARKER_APP).expect("app");
        for file in ["marker", "app.pl"] {
            fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::os::unix::fs::symlink(&secret, tenant_dir.join("decoy")).expect("the decoy");
    // The tenant owns its directory: it may rename what is in it.
    std::os::unix::fs::chown(&tenant_dir, Some(TENANT.0), Some(TENANT.1)).expect("chown");
    fs::set_permissions(&tenant_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let policy_path = base.join("policy.ini");
    fs::write(
        &policy_path,
        format!(
            "[default]\nimages = {}\nmounts = {}\npublish = 127.0.0.1:1024-65535\n",
            image(),
            tenant_dir.display()
        ),
    )
    .expect("policy");
    let options = EmperorOptions::from_env()
        .with_env("UWSGIDOCKER_POLICY", policy_path.to_str().expect("utf-8"));
    let Some(mut w) = World::start_with("mount-swap", options) else {
        let _ = fs::remove_dir_all(&base);
        return;
    };

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, dir) = (stop.clone(), tenant_dir.clone());
        std::thread::spawn(move || {
            let dir = rustix::fs::open(
                &dir,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .expect("pin the tenant's dir");
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    &dir,
                    "data",
                    &dir,
                    "decoy",
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .expect("exchange data and decoy");
                swaps += 1;
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
            swaps
        })
    };

    let mut outcomes = Vec::new();
    for attempt in 0..6 {
        let name = w.vassal_name(&format!("swap{attempt}"));
        let port = free_port();
        let text = data_app_vassal(port, &data);
        w.write_vassal_owned(&name, &text, Some(TENANT));
        let outcome = wait_for(SPAWN_TIMEOUT, || {
            if let Ok((200, body)) = http_get(port, "/") {
                return Some(body);
            }
            w.log()
                .lines()
                .find(|l| {
                    l.contains(name.as_str()) && l.contains("can be changed by others than root")
                })
                .map(|l| format!("refused: {l}"))
        })
        .unwrap_or_else(|| {
            panic!(
                "attempt {attempt}: no answer and no refusal; log:\n{}",
                w.log_tail(40)
            )
        });
        w.remove_vassal(&name);
        w.assert_clean_within(CLEANUP_TIMEOUT, "the attempt's vassal was removed");
        let leaked = outcome.contains("marker=secret");
        outcomes.push(outcome);
        if leaked {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().expect("the swapper");
    assert!(swaps > 0, "the swapper never ran");
    assert!(
        !outcomes.iter().any(|o| o.contains("marker=secret")),
        "the daemon mounted the swapped-in symlink's target: {outcomes:#?}"
    );
    // The layout is refused, naming the tenant's directory, every time.
    for outcome in &outcomes {
        assert!(
            outcome.starts_with("refused: ") && outcome.contains(&tenant_dir.display().to_string()),
            "{outcome}"
        );
    }
    // check --policy gives the same verdict, without a daemon.
    let vassal = base.join("swap.ini");
    fs::write(
        &vassal,
        format!(
            "[emperor]\ndocker-image = {}\ndocker-mount = {}:/data\n",
            image(),
            data.display()
        ),
    )
    .expect("vassal");
    let check = Command::new(bin())
        .args(["check", "--policy"])
        .arg(&policy_path)
        .arg(&vassal)
        .output()
        .expect("run check --policy");
    assert!(!check.status.success());
    let err = lossy(&check.stderr);
    assert!(err.contains("can be changed by others than root"), "{err}");
    drop(w);
    let _ = fs::remove_dir_all(&base);
}

/// Issue 17's first route: a tenant's vassal that is not a Docker vassal would run on the
/// host as root. Under a policy it is refused, whatever its format, naming the file, its
/// owner and the ways out; root's own runs as before.
#[test]
fn a_tenants_vassal_without_docker_image_never_runs_on_the_host() {
    let base = policy_base("native");
    let policy_path = base.join("policy.ini");
    fs::write(&policy_path, format!("[default]\nimages = {}\n", image())).expect("policy");
    let options = EmperorOptions::allowing_host_vassals()
        .with_env("UWSGIDOCKER_POLICY", policy_path.to_str().expect("utf-8"));
    let Some(mut w) = World::start_with("native", options) else {
        let _ = fs::remove_dir_all(&base);
        return;
    };
    let pwned = base.join("pwned");
    let hook = format!("hook-as-root = exec:touch {}\n", pwned.display());
    let ini = w.vassal_name("native-ini");
    w.write_vassal_owned(
        &ini,
        &format!("[uwsgi]\n{hook}http-socket = 127.0.0.1:0\n"),
        Some(TENANT),
    );
    let xml_name = format!(
        "{}.xml",
        w.vassal_name("native-xml").trim_end_matches(".ini")
    );
    let xml = format!(
        "<uwsgi>\n<hook-as-root>exec:touch {}</hook-as-root>\n<http-socket>127.0.0.1:0</http-socket>\n</uwsgi>\n",
        pwned.display()
    );
    w.write_vassal_owned(&xml_name, &xml, Some(TENANT));
    for name in [&ini, &xml_name] {
        let line = w.wait_for_log_line(
            &[name.as_str(), "not root", "has no docker-image"],
            SPAWN_TIMEOUT,
        );
        assert!(line.contains(&format!("uid {}", TENANT.0)), "{line}");
        assert!(
            line.contains("give it a docker-image, or have root own it"),
            "{line}"
        );
        assert!(line.contains("chown root"), "{line}");
    }
    // A root-owned native vassal still runs (its hook touches the marker).
    let root_native = w.vassal_name("native-root");
    let root_marker = base.join("root-ran");
    w.write_vassal(
        &root_native,
        &format!(
            "[uwsgi]\nhook-as-root = exec:touch {}\nhttp-socket = 127.0.0.1:0\n",
            root_marker.display()
        ),
    );
    wait_for(SPAWN_TIMEOUT, || root_marker.exists().then_some(()))
        .unwrap_or_else(|| panic!("root's native vassal did not run; log:\n{}", w.log_tail(40)));
    assert!(!pwned.exists(), "a tenant's native vassal ran as root");

    // The verdict as check --policy prints it.
    let check = Command::new(bin())
        .args(["check", "--policy"])
        .arg(&policy_path)
        .arg(w.vassal_path(&ini))
        .output()
        .expect("run check --policy");
    assert!(!check.status.success());
    assert!(
        lossy(&check.stderr).contains("has no docker-image"),
        "{}",
        lossy(&check.stderr)
    );
    let check = Command::new(bin())
        .args(["check", "--policy"])
        .arg(&policy_path)
        .arg(w.vassal_path(&root_native))
        .output()
        .expect("run check --policy");
    assert!(check.status.success(), "{}", lossy(&check.stderr));
    assert!(
        lossy(&check.stdout).contains("\"verdict\": \"allowed on the host\""),
        "{}",
        lossy(&check.stdout)
    );

    for name in [&ini, &xml_name, &root_native] {
        w.remove_vassal(name);
    }
    drop(w);
    assert!(!pwned.exists(), "a tenant's native vassal ran as root");
    let _ = fs::remove_dir_all(&base);
}

/// Issue 17's second route and fourth spot: a tenant's symlink to a file root owns is the
/// tenant's (docker-user = 0:0 refused), and a file handed over with `chown tenant FILE`
/// (group still root) runs as the tenant's uid and primary group, not gid 0.
#[test]
fn a_tenants_link_to_roots_file_is_the_tenants_and_the_group_is_never_the_files() {
    let Some((mut w, base)) = world_with_policy("policy-link") else {
        return;
    };
    // Root's file, with text the tenant "controls" (as a setuid program's environ would be).
    let roots = base.join("roots.ini");
    let port = free_port();
    fs::write(&roots, docker_vassal(port, "docker-user = 0:0", "")).expect("root's file");
    let link = w.vassal_name("link");
    let staging = w.root.join(".link.new");
    std::os::unix::fs::symlink(&roots, &staging).expect("symlink");
    rustix::fs::chownat(
        rustix::fs::CWD,
        &staging,
        Some(rustix::fs::Uid::from_raw(TENANT.0)),
        Some(rustix::fs::Gid::from_raw(TENANT.1)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("chown the link");
    fs::rename(&staging, w.vassal_path(&link)).expect("move the link in");
    let line = w.wait_for_log_line(
        &[link.as_str(), "docker-user", "is not allowed"],
        SPAWN_TIMEOUT,
    );
    assert!(
        line.contains(&format!("{}:{}", TENANT.0, TENANT.1)),
        "{line}"
    );
    assert!(container_id(&link).is_none(), "the link's vassal ran");
    fs::remove_file(w.vassal_path(&link)).expect("remove the link");

    // The daemon socket's group is never a container's group, even under any-nonroot. A
    // socket of root's group (Podman's) is refused by the rule for gid 0 before that.
    let socket = daemon_socket().unwrap_or_else(|| "/var/run/docker.sock".into());
    let socket_gid = std::os::unix::fs::MetadataExt::gid(
        &fs::metadata(&socket).expect("stat the daemon socket"),
    );
    let refusal = if socket_gid == 0 {
        "gid 0 is root's group".to_owned()
    } else {
        format!("group {socket_gid} owns the container daemon's socket")
    };
    let any = base.join("any-nonroot.ini");
    fs::write(
        &any,
        format!("[default]\nimages = {}\nuser = any-nonroot\n", image()),
    )
    .expect("policy");
    let vassal = base.join("group.ini");
    fs::write(
        &vassal,
        docker_vassal(
            free_port(),
            &format!("docker-user = {}:{socket_gid}", TENANT.0),
            "",
        ),
    )
    .expect("vassal");
    std::os::unix::fs::chown(&vassal, Some(TENANT.0), Some(TENANT.1)).expect("chown");
    let check = Command::new(bin())
        .args(["check", "--policy"])
        .arg(&any)
        .arg(&vassal)
        .env("UWSGIDOCKER_DAEMON_SOCKET", &socket)
        .output()
        .expect("run check --policy");
    let err = lossy(&check.stderr);
    assert!(
        !check.status.success() && err.contains(&refusal),
        "not refused with {refusal:?}: {err}"
    );

    // chown TENANT FILE leaves the group root's: the container's group is the tenant's own.
    let port = free_port();
    let name = w.vassal_name("group");
    w.write_vassal_owned(&name, &docker_vassal(port, "", ""), Some((TENANT.0, 0)));
    w.wait_for_body(port, DEFAULT_GREETING, SPAWN_TIMEOUT);
    assert_eq!(
        inspect(&name, "{{.Config.User}}"),
        format!("{}:{}", TENANT.0, TENANT.0)
    );
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "the vassal was removed");
    drop(w);
    let _ = fs::remove_dir_all(&base);
}
