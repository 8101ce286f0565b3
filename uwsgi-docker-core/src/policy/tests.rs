use super::*;
use crate::spec::{self, ListenAddress, Mount, PortMapping, Protocol, ProxyPaths, VassalSpec};
use proptest::prelude::*;

const FILE: &str = "/etc/uwsgi/policy.ini";
const DOCKER: &str = "/var/run/docker.sock";

fn policy(text: &str) -> Policy {
    Policy::parse(FILE, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn bad_policy(text: &str) -> PolicyError {
    Policy::parse(FILE, text.as_bytes()).expect_err("the policy should be refused")
}

fn alice() -> Tenant {
    Tenant::new(1000, 1000)
        .with_name("alice")
        .with_home("/home/alice")
}

/// A vassal with image psgi001 and these `[emperor]` lines, as the spec parser reads it.
fn vassal(lines: &str) -> VassalSpec {
    spec::parse_vassal(
        "app.ini",
        format!("[emperor]\ndocker-image = psgi001\n{lines}\n").as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .expect("a docker vassal")
}

#[allow(
    clippy::result_large_err,
    reason = "a test helper mirroring Policy::enforce"
)]
fn enforce_as(
    policy_text: &str,
    tenant: &Tenant,
    lines: &str,
) -> Result<(VassalSpec, Decision), PolicyViolation> {
    let mut spec = vassal(lines);
    let before = spec.clone();
    let result = policy(policy_text).enforce("app.ini", tenant, DOCKER, &mut spec);
    match result {
        Ok(decision) => Ok((spec, decision)),
        Err(violation) => {
            assert_eq!(spec, before, "a refused spec is left as it was");
            Err(violation)
        }
    }
}

fn allowed(policy_text: &str, lines: &str) -> (VassalSpec, Decision) {
    enforce_as(policy_text, &alice(), lines).unwrap_or_else(|v| panic!("refused: {v}"))
}

fn refused(policy_text: &str, lines: &str) -> PolicyViolation {
    match enforce_as(policy_text, &alice(), lines) {
        Ok((spec, _)) => panic!("allowed: {lines:?} -> {spec:?}"),
        Err(v) => v,
    }
}

/// Asserts the refusal names `key`, the rule `rule` (as written) and its `line`.
#[track_caller]
fn assert_rule(v: &PolicyViolation, key: &str, rule: &str, line: usize) {
    assert_eq!(
        (v.key.as_str(), v.rule.as_str(), v.line),
        (key, rule, line),
        "{v}"
    );
    assert_eq!(v.vassal, "app.ini");
    assert_eq!(v.file, FILE);
}

/// The example in the module docs, cut out of mod.rs so that the docs stay true.
fn doc_example() -> String {
    let source = include_str!("mod.rs");
    let start = source
        .find("//! ```ini\n")
        .expect("the docs have an ini example");
    source[start..]
        .lines()
        .skip(1)
        .take_while(|l| *l != "//! ```")
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_documented_example_parses_and_works() {
    let text = doc_example();
    let p = policy(&text);
    // alice's own section allows only alice/* images.
    let v = enforce_as(&text, &alice(), "").unwrap_err();
    assert_eq!((v.rule.as_str(), v.line), ("images = alice/*", 29), "{v}");
    let mut spec = vassal(
        "docker-mount = /srv/alice/data:/data\ndocker-port = 127.0.0.1:8080:3031\ndocker-socket = /run/uwsgi-docker/tenants/alice/app.sock\ndocker-socket-owner = alice:www-data",
    );
    spec.image = "alice/shop:1".into();
    let decision = p.enforce("app.ini", &alice(), DOCKER, &mut spec).unwrap();
    assert_eq!(decision.section, "[user:alice]");
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
    assert!(spec.mounts[0].read_only);
    assert_eq!(spec.memory, Some(256 << 20));
    assert_eq!(spec.swap, Some(0));
    assert_eq!(spec.nano_cpus, Some(500_000_000));
    assert_eq!(spec.pids_limit, Some(256));
    assert_eq!(
        decision.host_paths,
        vec![
            "/srv/alice/data".to_string(),
            "/run/uwsgi-docker/tenants/alice/app.sock".into()
        ]
    );
    // uid 1002 has no mounts at all; `shop-*.ini` vassals are alice's.
    let tenant = Tenant::new(1002, 1002);
    let mut spec = vassal("docker-mount = /srv/1002:/data");
    let v = p.enforce("x.ini", &tenant, DOCKER, &mut spec).unwrap_err();
    assert_eq!((v.rule.as_str(), v.line), ("mounts =", 34), "{v}");
    assert_eq!(
        p.tenant_for_vassal("shop-1.ini"),
        Some(TenantName::User("alice".into()))
    );
    assert_eq!(
        p.tenant_for_vassal("legacy.ini"),
        Some(TenantName::Uid(1002))
    );
    assert_eq!(p.tenant_for_vassal("other.ini"), None);
    // Pulls: missing or never, and alice's own credentials file.
    assert_eq!(
        decision.registry_auth,
        RegistryAuth::File {
            path: "/etc/uwsgi/registry-auth/alice.json".into(),
            rule: format!(
                "policy {FILE} line 25: registry-auth = /etc/uwsgi/registry-auth/%u.json"
            ),
        }
    );
    let mut spec = vassal("docker-pull = always");
    spec.image = "alice/shop:1".into();
    let v = p
        .enforce("app.ini", &alice(), DOCKER, &mut spec)
        .unwrap_err();
    assert_eq!((v.key.as_str(), v.line), ("docker-pull", 24), "{v}");
}

#[test]
fn an_empty_policy_forces_the_owner_caps_and_no_new_privileges() {
    let (spec, decision) = allowed("", "docker-cap-drop = NET_RAW");
    assert_eq!(decision.section, "[default]");
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
    assert_eq!(spec.cap_drop, vec!["ALL".to_string()]);
    assert!(spec.no_new_privileges);
    assert!(!spec.read_only, "read-only-rootfs defaults to false");
    assert_eq!(
        decision.applied,
        vec![
            "docker-user = 1000:1000: forced (policy built in: user = owner (the default))",
            "docker-cap-drop = ALL: forced (policy built in: every capability is dropped under a policy)",
            "docker-no-new-privileges = true: forced (policy built in: no-new-privileges = true (the default))",
        ]
    );
    // Any image without an images rule; nothing else is granted.
    allowed("", "");
    let mut spec = vassal("");
    spec.image = "anything/at:all".into();
    policy("")
        .enforce("app.ini", &alice(), DOCKER, &mut spec)
        .unwrap();
}

#[test]
fn images() {
    let text = "[default]\n; images\nimages = psgi* registry.example/apps/*\n";
    allowed(text, "");
    for image in [
        "registry.example/apps/shop:1",
        "psgi",
        "psgi001:latest",
        "psgi@sha256:ab",
    ] {
        let mut spec = vassal("");
        spec.image = image.into();
        policy(text)
            .enforce("app.ini", &alice(), DOCKER, &mut spec)
            .unwrap_or_else(|v| panic!("{image}: {v}"));
    }
    for image in [
        "evil",
        "psgi.evil.example/x",
        "registry.example/apps/a/b",
        "xpsgi",
    ] {
        let mut spec = vassal("");
        spec.image = image.into();
        let v = policy(text)
            .enforce("app.ini", &alice(), DOCKER, &mut spec)
            .unwrap_err();
        assert_rule(
            &v,
            "docker-image",
            "images = psgi* registry.example/apps/*",
            3,
        );
        assert_eq!(v.value, image);
    }
    // `**` spans components; `*` alone does not.
    let deep = "[default]\nimages = registry.example/** x/**/y\n";
    for (image, ok) in [
        ("registry.example/a", true),
        ("registry.example/a/b:1", true),
        ("registry.example", true),
        ("x/y", true),
        ("x/a/b/y", true),
        ("x/a/b/z", false),
        ("registry.example.evil/a", false),
    ] {
        let mut spec = vassal("");
        spec.image = image.into();
        let result = policy(deep).enforce("app.ini", &alice(), DOCKER, &mut spec);
        assert_eq!(result.is_ok(), ok, "{image}: {result:?}");
    }
    for (pattern, image, ok) in [
        ("*", "alice/app", false),
        ("**", "alice/app", true),
        ("**", "psgi001", true),
        ("a?c", "abc", true),
        ("a?c", "a/c", false),
        ("*a*b*", "xaybz", true),
        ("*a*b*", "xbya", false),
    ] {
        let mut spec = vassal("");
        spec.image = image.into();
        let text = format!("[default]\nimages = {pattern}\n");
        let result = policy(&text).enforce("app.ini", &alice(), DOCKER, &mut spec);
        assert_eq!(result.is_ok(), ok, "{pattern} vs {image}: {result:?}");
    }
    let v = refused("[default]\nimages =\n", "");
    assert_rule(&v, "docker-image", "images =", 2);
    assert!(v.why.contains("no image is allowed"), "{v}");
    // Several lines add up, and the rule names them all.
    let two = "[default]\nimages = a*\nimages = psgi*\n";
    allowed(two, "");
    let mut spec = vassal("");
    spec.image = "b".into();
    let v = policy(two)
        .enforce("app.ini", &alice(), DOCKER, &mut spec)
        .unwrap_err();
    assert_rule(&v, "docker-image", "images = a*; images = psgi*", 2);
}

#[test]
fn the_violation_reads_as_documented() {
    let v = refused("[default]\nmounts = /srv/%u\n", "docker-mount = /:/host");
    assert_eq!(
        v.to_string(),
        "vassal app.ini: docker-mount = \"/:/host\" is not allowed: mounting / gives the container the whole host (policy /etc/uwsgi/policy.ini, built in: no mount of /, a daemon socket or a directory above one, or anything under /proc, /sys or /dev); mount a directory of your own instead"
    );
    let v = refused(
        "[default]\n\nmounts = /srv/%u\n",
        "docker-mount = /srv/bob:/data",
    );
    assert_eq!(
        v.to_string(),
        "vassal app.ini: docker-mount = \"/srv/bob:/data\" is not allowed: /srv/bob is not under any of /srv/alice (policy /etc/uwsgi/policy.ini line 3: mounts = /srv/%u); mount a path under one of /srv/alice"
    );
}

#[test]
fn control_bytes_of_the_vassal_are_escaped_in_messages() {
    let text = "[default]\nmounts = /srv/%u\n";
    let mut spec = vassal("");
    spec.mounts.push(Mount {
        host: "/srv/bob/\x1b[2J".into(),
        container: "/x".into(),
        read_only: false,
        explicit_mode: false,
    });
    let v = policy(text)
        .enforce("evil\r\n.ini", &alice(), DOCKER, &mut spec)
        .unwrap_err();
    let shown = v.to_string();
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(shown.starts_with("vassal evil\\r\\n.ini: "), "{shown}");
    assert!(
        shown.contains("/srv/bob/\\u{1b}[2J is not under"),
        "{shown}"
    );
    // The fields keep the raw text.
    assert_eq!(v.vassal, "evil\r\n.ini");
    let mut spec = vassal("");
    spec.mounts.push(Mount {
        host: "/srv/alice/\x07".into(),
        container: "/x".into(),
        read_only: false,
        explicit_mode: false,
    });
    let d = policy(text)
        .enforce("app.ini", &alice(), DOCKER, &mut spec)
        .unwrap();
    assert!(
        d.applied.iter().all(|l| !l.chars().any(char::is_control)),
        "{:?}",
        d.applied
    );
}

#[test]
fn mounts_are_read_only_unless_the_rule_says_rw() {
    let text = "[default]\nmounts = /srv/%u\nmounts = %h/data:rw\n";
    let (spec, decision) = allowed(text, "docker-mount = /srv/alice/site:/site");
    assert_eq!(
        spec.mounts,
        vec![Mount {
            host: "/srv/alice/site".into(),
            container: "/site".into(),
            read_only: true,
            explicit_mode: false,
        }]
    );
    assert!(decision.applied.contains(
        &"docker-mount = /srv/alice/site:/site:ro: made read-only (policy line 2: mounts = /srv/%u)"
            .to_string()
    ));
    assert_eq!(decision.host_paths, vec!["/srv/alice/site".to_string()]);
    // `:ro` is fine, `:rw` is refused where the rule is read-only.
    allowed(text, "docker-mount = /srv/alice:/site:ro");
    let v = refused(text, "docker-mount = /srv/alice/site:/site:rw");
    assert_rule(&v, "docker-mount", "mounts = /srv/%u", 2);
    assert!(v.why.contains("read-only"), "{v}");
    // An rw item allows writing, and does not force anything.
    let (spec, _) = allowed(text, "docker-mount = /home/alice/data/x:/x:rw");
    assert!(!spec.mounts[0].read_only);
    let (spec, _) = allowed(text, "docker-mount = /home/alice/data:/x");
    assert!(!spec.mounts[0].read_only);
    let (spec, _) = allowed(text, "docker-mount = /home/alice/data:/x:ro");
    assert!(spec.mounts[0].read_only);
}

#[test]
fn mount_prefixes_are_whole_components_and_paths_are_plain() {
    let text = "[default]\nmounts = /srv/%u:rw\n";
    allowed(text, "docker-mount = /srv/alice:/a");
    allowed(text, "docker-mount = /srv/alice/:/a");
    allowed(text, "docker-mount = /srv/alice/x/y:/a");
    let v = refused(text, "docker-mount = /srv/alice2:/a");
    assert_rule(&v, "docker-mount", "mounts = /srv/%u:rw", 2);
    let v = refused(text, "docker-mount = /srv:/a");
    assert_rule(&v, "docker-mount", "mounts = /srv/%u:rw", 2);
    for trick in [
        "/srv/alice/../bob",
        "/srv/alice/..",
        "/srv/./alice",
        "/srv//alice",
        "/srv/alice/./x",
    ] {
        let v = refused(text, &format!("docker-mount = {trick}:/a"));
        assert_eq!(v.line, 0, "{trick}: {v}");
        assert!(v.why.contains(".."), "{trick}: {v}");
    }
}

#[test]
fn some_paths_are_never_mountable_whatever_the_rules_say() {
    let text = "[default]\nmounts = /var:rw /run:rw /opt:rw /home:rw /srv:rw\n";
    let never = [
        "/",
        "/var/run/docker.sock",
        "/var/run",
        "/var",
        "/run",
        "/run/docker.sock",
        "/run/podman",
        "/run/podman/podman.sock",
        "/opt/docker",
        "/opt/docker/d.sock",
        "/opt",
        "/proc",
        "/proc/1",
        "/proc/self/root",
        "/sys",
        "/sys/fs/cgroup",
        "/dev",
        "/dev/sda",
    ];
    let tenant = alice();
    for path in never {
        let mut spec = vassal(&format!("docker-mount = {path}:/x"));
        let v = policy(text)
            .enforce("app.ini", &tenant, "/opt/docker/d.sock", &mut spec)
            .unwrap_err();
        assert_eq!(v.line, 0, "{path}: {v}");
        assert_eq!(v.key, "docker-mount");
        assert!(
            v.rule.contains("never") || v.rule.contains("no mount"),
            "{v}"
        );
    }
    // The daemon socket in use counts however DOCKER_HOST spells it.
    for spelled in ["/opt/./docker//d.sock", "/opt/x/../docker/d.sock"] {
        let mut spec = vassal("docker-mount = /opt/docker:/x");
        let v = policy(text)
            .enforce("app.ini", &tenant, spelled, &mut spec)
            .unwrap_err();
        assert_eq!(v.line, 0, "{spelled}: {v}");
    }
    // `/dev/..` is `/` in disguise: refused as a path trick.
    let v = refused(text, "docker-mount = /dev/..:/x");
    assert_eq!(v.line, 0, "{v}");
    // Next to them is fine.
    allowed(text, "docker-mount = /var/lib/app:/x");
    allowed(text, "docker-mount = /run/user:/x");
    allowed(text, "docker-mount = /var/run/docker.sock.d:/x");
    // A rule can never even name them.
    for item in ["/", "/proc", "/proc/%u", "/sys/fs", "/dev:rw"] {
        let e = bad_policy(&format!("[default]\nmounts = /srv {item}\n"));
        assert_eq!(e.line, 2, "{item}: {e}");
    }
}

#[test]
fn mounts_are_refused_without_a_rule() {
    let v = refused("", "docker-mount = /srv/alice:/a");
    assert_eq!(v.line, 0);
    assert!(v.rule.contains("mounts not set"), "{v}");
    let v = refused("[default]\nmounts =\n", "docker-mount = /srv/alice:/a");
    assert_rule(&v, "docker-mount", "mounts =", 2);
}

#[test]
fn percent_u_and_h_expand_per_tenant() {
    let text = "[default]\nmounts = /srv/%u:rw %h/data:rw /lit/100%%:rw\n";
    let p = policy(text);
    let check = |tenant: &Tenant, path: &str| {
        let mut spec = vassal(&format!("docker-mount = {path}:/x"));
        p.enforce("app.ini", tenant, DOCKER, &mut spec).is_ok()
    };
    let bob = Tenant::new(1001, 1001);
    assert!(check(&alice(), "/srv/alice"));
    assert!(check(&alice(), "/home/alice/data/x"));
    assert!(!check(&alice(), "/home/alice"));
    assert!(check(&alice(), "/lit/100%"));
    assert!(check(&bob, "/srv/1001"), "no name: %u is the uid");
    assert!(!check(&bob, "/srv/alice"));
    assert!(!check(&bob, "/data"), "no home: %h allows nothing");
    let rooted = Tenant::new(5, 5).with_name("daemon").with_home("/");
    assert!(!check(&rooted, "/data"), "a home of / allows nothing");
    assert!(!check(&rooted, "/etc"));
    let dotted = Tenant::new(6, 6).with_name("..");
    assert!(!check(&dotted, "/srv"));
    assert_eq!(alice().expand("%h/x/%u"), Ok("/home/alice/x/alice".into()));
    assert!(Tenant::new(1, 1)
        .with_name("a/b")
        .expand("/srv/%u")
        .is_err());
}

#[test]
fn network_modes() {
    allowed("", "");
    allowed("", "docker-network-mode = none");
    allowed("", "docker-network-mode = bridge");
    allowed("", "docker-network-mode = default");
    let v = refused("", "docker-network-mode = host");
    assert_eq!((v.key.as_str(), v.line), ("docker-network-mode", 0));
    assert!(v.why.contains("host network"), "{v}");
    let v = refused("", "docker-network-mode = container:db");
    assert!(v.why.contains("another container"), "{v}");
    refused("", "docker-network-mode = mynet");

    let text = "[default]\nnetwork-modes = bridge host container:alice-*\n";
    allowed(text, "docker-network-mode = host");
    allowed(text, "docker-network-mode = container:alice-db");
    let v = refused(text, "docker-network-mode = container:bob-db");
    assert_rule(
        &v,
        "docker-network-mode",
        "network-modes = bridge host container:alice-*",
        2,
    );
    refused(text, "docker-network-mode = none");
    // Without bridge, a vassal must name a mode.
    let v = refused("[default]\nnetwork-modes = none\n", "");
    assert_eq!(v.value, "bridge");
    assert!(v.fix.contains("set docker-network-mode"), "{v}");
}

#[test]
fn user_owner_is_forced_and_a_different_user_refused() {
    let (spec, _) = allowed("", "docker-user = 1000:1000");
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
    let (spec, d) = allowed("", "docker-user = 1000");
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
    assert!(d.applied[0].contains("group completed"), "{:?}", d.applied);
    for other in [
        "0",
        "0:0",
        "root",
        "www-data",
        "1001:1000",
        "1000:0",
        "alice",
    ] {
        let v = refused("", &format!("docker-user = {other}"));
        assert_eq!(v.key, "docker-user");
        assert_eq!(v.value, other);
        assert!(v.fix.contains("1000:1000"), "{v}");
    }
    let v = refused("[default]\nuser = owner\n", "docker-user = root");
    assert_rule(&v, "docker-user", "user = owner", 2);
    assert!(v.why.contains("root is refused"), "{v}");
    // A root-owned vassal file is the operator's: 0:0 is its owner.
    let root = Tenant::new(0, 0).with_name("root");
    let (spec, _) = enforce_as("", &root, "").unwrap();
    assert_eq!(spec.user.as_deref(), Some("0:0"));
    enforce_as("", &root, "docker-user = 0:0").unwrap();
}

#[test]
fn user_fixed_any_nonroot_and_root() {
    let fixed = "[default]\nuser = 2000:3000\n";
    let (spec, _) = allowed(fixed, "");
    assert_eq!(spec.user.as_deref(), Some("2000:3000"));
    allowed(fixed, "docker-user = 2000:3000");
    let v = refused(fixed, "docker-user = 1000:1000");
    assert_rule(&v, "docker-user", "user = 2000:3000", 2);

    let any = "[default]\nuser = any-nonroot\n";
    let (spec, _) = allowed(any, "");
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
    let (spec, _) = allowed(any, "docker-user = 1234:5678");
    assert_eq!(spec.user.as_deref(), Some("1234:5678"));
    let (spec, _) = allowed(any, "docker-user = 1234");
    assert_eq!(spec.user.as_deref(), Some("1234:1000"));
    for bad in ["0", "0:0", "0:5", "5:0", "root", "www-data", "5:staff"] {
        let v = refused(any, &format!("docker-user = {bad}"));
        assert_rule(&v, "docker-user", "user = any-nonroot", 2);
    }

    // A root-owned vassal file gets 0:0 as its owner, and may say so.
    let root_tenant = Tenant::new(0, 0);
    let (spec, _) = enforce_as(any, &root_tenant, "").unwrap();
    assert_eq!(spec.user.as_deref(), Some("0:0"));
    enforce_as(any, &root_tenant, "docker-user = 0:0").unwrap();
    enforce_as(any, &root_tenant, "docker-user = 0").unwrap_err();

    let root = "[default]\nuser = root\n";
    allowed(root, "docker-user = root");
    allowed(root, "docker-user = 0:0");
    allowed(root, "docker-user = www-data");
    let (spec, _) = allowed(root, "");
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
}

#[test]
fn publish() {
    let v = refused("", "docker-port = 127.0.0.1:8080:3031");
    assert_eq!(v.line, 0);
    assert!(v.rule.contains("publish not set"), "{v}");

    let text = "[default]\npublish = 127.0.0.1:8000-8999 [::1]:8000-8999\n";
    allowed(text, "docker-port = 127.0.0.1:8080:3031");
    allowed(text, "docker-port = 127.0.0.1::3031");
    allowed(text, "docker-port = [::1]:8000:3031/udp");
    allowed(text, "docker-port = [0:0::1]:8999:3031");
    for bad in [
        "8080:3031",
        "0.0.0.0:8080:3031",
        "127.0.0.1:80:3031",
        "127.0.0.1:9000:3031",
        "10.0.0.1:8080:3031",
        ":3031",
        "[::]:8080:3031",
    ] {
        let v = refused(text, &format!("docker-port = {bad}"));
        assert_rule(
            &v,
            "docker-port",
            "publish = 127.0.0.1:8000-8999 [::1]:8000-8999",
            2,
        );
    }
    let v = refused(text, "docker-port = 8080:3031");
    assert!(v.why.contains("all host addresses"), "{v}");

    let all = "[default]\npublish = *:8000-8999\n";
    allowed(all, "docker-port = 8080:3031");
    allowed(all, "docker-port = :3031");
    allowed(all, "docker-port = [::]:8080:3031");
    refused(all, "docker-port = 80:3031");
    let v4 = "[default]\npublish = 0.0.0.0:80\n";
    allowed(v4, "docker-port = 80:3031");
    allowed(v4, "docker-port = 10.1.2.3:80:3031");
    refused(v4, "docker-port = [::1]:80:3031");
    let udp = "[default]\npublish = 127.0.0.1:5353/udp\n";
    allowed(udp, "docker-port = 127.0.0.1:5353:53/udp");
    refused(udp, "docker-port = 127.0.0.1:5353:53");
}

#[test]
fn sockets() {
    allowed(
        "",
        "docker-socket = /run/uwsgi-docker/tenants/alice/app.sock",
    );
    let (_, d) = allowed(
        "",
        "docker-socket = /run/uwsgi-docker/tenants/alice/sub/app.sock",
    );
    assert_eq!(
        d.host_paths,
        vec!["/run/uwsgi-docker/tenants/alice/sub/app.sock".to_string()]
    );
    for bad in [
        "/run/uwsgi-docker/tenants/bob/app.sock",
        "/run/uwsgi-docker/tenants/alice",
        "/run/uwsgi-docker/tenants/alice/",
        "/run/uwsgi-docker/tenants/alice/../bob/x.sock",
        "/tmp/app.sock",
        "127.0.0.1:9000",
    ] {
        let v = refused("", &format!("docker-socket = {bad}"));
        assert_eq!((v.key.as_str(), v.line), ("docker-socket", 0), "{bad}: {v}");
    }
    let text = "[default]\nsockets = /var/run/ /run/%u/ 127.0.0.1:9000-9999\n";
    allowed(text, "docker-socket = /run/alice/a.sock");
    allowed(text, "docker-socket = 127.0.0.1:9000");
    for bad in [":9000", "127.0.0.1:80", "0.0.0.0:9000", "[::1]:9000"] {
        let v = refused(text, &format!("docker-socket = {bad}"));
        assert_rule(
            &v,
            "docker-socket",
            "sockets = /var/run/ /run/%u/ 127.0.0.1:9000-9999",
            2,
        );
    }
    // A daemon socket is never ours to bind (or to remove as stale), whatever the rule.
    let v = refused(text, "docker-socket = /var/run/docker.sock");
    assert_eq!(v.line, 0, "{v}");
    allowed(
        "[default]\nsockets = 127.0.0.1:80\n",
        "docker-socket = 127.0.0.1:80",
    );
}

#[test]
fn socket_owners() {
    allowed(
        "",
        "docker-socket = /run/uwsgi-docker/tenants/alice/app.sock\ndocker-socket-owner = alice",
    );
    allowed(
        "",
        "docker-socket = /run/uwsgi-docker/tenants/alice/app.sock\ndocker-socket-owner = 1000",
    );
    let v = refused(
        "",
        "docker-socket = /run/uwsgi-docker/tenants/alice/app.sock\ndocker-socket-owner = www-data",
    );
    assert_eq!((v.key.as_str(), v.line), ("docker-socket-owner", 0));
    let v = refused("", "docker-socket = /run/uwsgi-docker/tenants/alice/app.sock\ndocker-socket-owner = alice:www-data");
    assert!(v.why.contains("group www-data"), "{v}");
    let text = "[default]\nsocket-owners = %u :www-data\n";
    allowed(text, "docker-socket = /run/uwsgi-docker/tenants/alice/app.sock\ndocker-socket-owner = alice:www-data");
    allowed(text, "docker-socket = /run/uwsgi-docker/tenants/alice/app.sock\ndocker-socket-owner = 1000:www-data");
    let v = refused(text, "docker-socket = /run/uwsgi-docker/tenants/alice/app.sock\ndocker-socket-owner = root:www-data");
    assert_rule(&v, "docker-socket-owner", "socket-owners = %u :www-data", 2);
    refused(text, "docker-socket = /run/uwsgi-docker/tenants/alice/app.sock\ndocker-socket-owner = alice:root");
}

#[test]
fn proxy_and_cidfile_need_their_directories() {
    let v = refused("", "docker-proxy = /run/uwsgi-docker/tenants/alice/p.sock");
    assert!(v.rule.contains("proxy not set"), "{v}");
    let text = "[default]\nproxy = /run/uwsgi-docker/tenants/%u/\ncidfile-dirs = /run/cid/%u\n";
    let (_, d) = allowed(
        text,
        "docker-proxy = /run/uwsgi-docker/tenants/alice/p.sock:/p.sock",
    );
    assert_eq!(
        d.host_paths,
        vec!["/run/uwsgi-docker/tenants/alice/p.sock".to_string()]
    );
    let v = refused(text, "docker-proxy = /etc/p.sock");
    assert_rule(
        &v,
        "docker-proxy",
        "proxy = /run/uwsgi-docker/tenants/%u/",
        2,
    );

    let v = refused("", "docker-cidfile = /etc/passwd");
    assert!(v.rule.contains("cidfile-dirs not set"), "{v}");
    allowed(text, "docker-cidfile = /run/cid/alice/app.cid");
    let v = refused(text, "docker-cidfile = /etc/passwd");
    assert_rule(&v, "docker-cidfile", "cidfile-dirs = /run/cid/%u", 3);
    let v = refused(text, "docker-cidfile = /run/cid/alice/../bob/app.cid");
    assert_eq!(v.line, 0);
    refused(text, "docker-cidfile = /run/cid/alice");
}

#[test]
fn limits_default_max_and_refusal() {
    let text = "[default]\nmemory-default = 256m\nmemory-max = 1g\nswap-max = 0\ncpus-max = 2\npids-default = 50\npids-max = 100\n";
    let (spec, d) = allowed(text, "");
    assert_eq!(spec.memory, Some(256 << 20));
    assert_eq!(spec.swap, Some(0), "swap-max is the default");
    assert_eq!(spec.nano_cpus, Some(2_000_000_000));
    assert_eq!(spec.pids_limit, Some(50));
    assert!(d.applied.contains(
        &"docker-memory = 256m: the default (policy line 2: memory-default = 256m)".to_string()
    ));
    assert!(d
        .applied
        .contains(&"docker-cpus = 2: the default (policy line 5: cpus-max = 2)".to_string()));
    let (spec, _) = allowed(
        text,
        "docker-memory = 1g\ndocker-cpus = 1.25\ndocker-pids-limit = 100",
    );
    assert_eq!(spec.memory, Some(1 << 30));
    assert_eq!(spec.nano_cpus, Some(1_250_000_000));
    let v = refused(text, "docker-memory = 1025m");
    assert_rule(&v, "docker-memory", "memory-max = 1g", 3);
    assert_eq!(v.value, "1025m");
    assert!(v.fix.contains("at most 1g"), "{v}");
    let v = refused(text, "docker-memory = 512m\ndocker-swap = 1");
    assert_rule(&v, "docker-swap", "swap-max = 0", 4);
    let v = refused(text, "docker-cpus = 2.5");
    assert_rule(&v, "docker-cpus", "cpus-max = 2", 5);
    assert_eq!(v.value, "2.5");
    let v = refused(text, "docker-pids-limit = -1");
    assert_rule(&v, "docker-pids-limit", "pids-max = 100", 7);
    assert_eq!(v.value, "-1");
    // Swap is filled in only when memory is limited.
    let (spec, _) = allowed("[default]\nswap-default = 64m\n", "");
    assert_eq!(spec.swap, None);
    let (spec, _) = allowed("[default]\nswap-default = 64m\n", "docker-memory = 128m");
    assert_eq!(spec.swap, Some(64 << 20));
    // Without limits, nothing is filled.
    let (spec, _) = allowed("", "");
    assert_eq!(
        (spec.memory, spec.nano_cpus, spec.pids_limit),
        (None, None, None)
    );
}

#[test]
fn a_tenants_default_above_the_inherited_maximum_acts_as_the_maximum() {
    let text = "[default]\nmemory-max = 1g\n[user:alice]\nmemory-default = 2g\n";
    let (spec, d) = allowed(text, "");
    assert_eq!(spec.memory, Some(1 << 30));
    assert!(
        d.applied
            .iter()
            .any(|l| l.contains("line 2: memory-max = 1g")),
        "{:?}",
        d.applied
    );
}

#[test]
fn capabilities() {
    let v = refused("", "docker-cap-add = NET_ADMIN");
    assert!(v.rule.contains("cap-add not set"), "{v}");
    let text = "[default]\ncap-add = NET_BIND_SERVICE, CHOWN\n";
    let (spec, _) = allowed(
        text,
        "docker-cap-add = net_bind_service\ndocker-cap-drop = NET_RAW",
    );
    assert_eq!(spec.cap_add, vec!["NET_BIND_SERVICE".to_string()]);
    assert_eq!(spec.cap_drop, vec!["ALL".to_string()]);
    let v = refused(text, "docker-cap-add = SYS_ADMIN");
    assert_rule(&v, "docker-cap-add", "cap-add = NET_BIND_SERVICE, CHOWN", 2);
    allowed("[default]\ncap-add = ALL\n", "docker-cap-add = SYS_ADMIN");
}

#[test]
fn no_new_privileges_and_read_only_rootfs() {
    let (spec, d) = allowed("[default]\nno-new-privileges = false\n", "");
    assert!(!spec.no_new_privileges);
    assert!(d.applied.iter().all(|l| !l.contains("no-new-privileges")));
    let (spec, _) = allowed(
        "[default]\nno-new-privileges = false\n",
        "docker-no-new-privileges = true",
    );
    assert!(spec.no_new_privileges);
    let (spec, d) = allowed("[default]\nread-only-rootfs = true\n", "");
    assert!(spec.read_only);
    assert!(d.applied.contains(
        &"docker-read-only = true: forced (policy line 2: read-only-rootfs = true)".to_string()
    ));
    let (spec, _) = allowed(
        "[default]\nread-only-rootfs = false\n",
        "docker-read-only = true",
    );
    assert!(spec.read_only, "the vassal may still ask for it");
}

#[test]
fn sections_fall_through_to_default() {
    let text = "\
[default]
images = psgi*
mounts = /srv/%u
[user:alice]
images = alice/*
[uid:1000]
memory-max = 1g
[user:bob]
images = *
";
    let p = policy(text);
    // uid 1000 has its own section, which wins over [user:alice]: images fall through to
    // [default], not to [user:alice].
    let mut spec = vassal("docker-mount = /srv/alice:/a");
    let d = p.enforce("app.ini", &alice(), DOCKER, &mut spec).unwrap();
    assert_eq!(d.section, "[uid:1000]");
    assert_eq!(spec.memory, Some(1 << 30));
    // Alice under another uid gets [user:alice]: alice/* only.
    let other = Tenant::new(1500, 1500).with_name("alice");
    let mut spec = vassal("");
    let v = p.enforce("app.ini", &other, DOCKER, &mut spec).unwrap_err();
    assert_eq!((v.rule.as_str(), v.line), ("images = alice/*", 5));
    assert_eq!(p.section_for(&other), "[user:alice]");
    // Bob: any image, [default]'s mounts.
    let bob = Tenant::new(1001, 1001).with_name("bob");
    let mut spec = vassal("docker-mount = /srv/bob:/a");
    let d = p.enforce("app.ini", &bob, DOCKER, &mut spec).unwrap();
    assert_eq!(d.section, "[user:bob]");
    assert!(spec.mounts[0].read_only);
    // Nobody in particular: [default].
    let carol = Tenant::new(1002, 1002).with_name("carol");
    assert_eq!(p.section_for(&carol), "[default]");
    // A section written twice is one section.
    let twice = "[user:alice]\nimages = a*\n[default]\n[user:alice]\nimages = psgi*\n";
    let (_, d) = enforce_as(twice, &Tenant::new(7, 7).with_name("alice"), "").unwrap();
    assert_eq!(d.section, "[user:alice]");
}

#[test]
fn vassals_map_pushed_configs_to_tenants() {
    let p = policy(
        "[vassals]\nshop-*.ini = alice\nshop-9.ini = bob\n* = uid:1002\n[default]\nimages = *\n",
    );
    assert_eq!(
        p.vassal_mapping("shop-9.ini"),
        Some((TenantName::User("alice".into()), 2))
    );
    assert_eq!(p.tenant_for_vassal("blog.ini"), Some(TenantName::Uid(1002)));
    assert_eq!(TenantName::Uid(1002).to_string(), "uid:1002");
    assert_eq!(policy("").tenant_for_vassal("x"), None);
}

#[test]
fn bad_files_name_their_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("[defaults]\n", 1, "did you mean [default]?"),
        ("[default]\nimage = x\n", 2, "did you mean images?"),
        (
            "[default]\n\n; c\nmount = /srv\n",
            4,
            "did you mean mounts?",
        ),
        ("[default]\ndocker-images = x\n", 2, "did you mean images?"),
        (
            "[default]\nfrobnicate = 1\n",
            2,
            "the keys are images, mounts",
        ),
        ("[users:alice]\n", 1, "did you mean [user:alice]?"),
        ("[wat]\n", 1, "[default], [user:NAME], [uid:N] or [vassals]"),
        ("[uid:abc]\n", 1, "numeric uid"),
        ("[uid:-1]\n", 1, "numeric uid"),
        ("[user:]\n", 1, "user name"),
        ("[default\nimages = x\n", 1, "end it with ]"),
        ("images = x\n", 1, "before any section"),
        ("[default]\nimages\n", 2, "has no ="),
        (
            "[default]\nuser = owner\nimages = *\nuser = root\n",
            4,
            "already set in this section on line 2",
        ),
        ("[default]\nmemory-max = lots\n", 2, "bad memory-max"),
        ("[default]\nmemory-max = 0\n", 2, "0 is not a limit"),
        ("[default]\npids-max = -1\n", 2, "not a maximum"),
        ("[default]\nuser = nobody\n", 2, "any-nonroot"),
        ("[default]\nmounts = srv\n", 2, "plain absolute path"),
        ("[default]\nmounts = /srv/%x\n", 2, "%u"),
        (
            "[default]\nmounts = /srv/../etc\n",
            2,
            "plain absolute path",
        ),
        ("[default]\nmounts = /srv/%h\n", 2, "%h past its start"),
        ("[default]\nmounts = /srv/a%h\n", 2, "%h past its start"),
        ("[default]\nmounts = /srv:rx\n", 2, ":rw"),
        ("[default]\npublish = localhost:80\n", 2, "ADDRESS:PORT"),
        ("[default]\npublish = 127.0.0.1:90-80\n", 2, "empty"),
        ("[default]\npublish = 127.0.0.1:0\n", 2, "ports 1-65535"),
        ("[default]\nsockets = 127.0.0.1:53/udp\n", 2, "drop /udp"),
        ("[default]\nsocket-owners = a:b\n", 2, ":GROUP"),
        ("[default]\ncap-add = SYS ADMIN!\n", 2, "capability"),
        ("[default]\nno-new-privileges = maybe\n", 2, "true/false"),
        ("[default]\ncpus-max = 0\n", 2, "from 0.01"),
        (
            "[default]\nmemory-default = 2g\nmemory-max = 1g\n",
            2,
            "memory-default = 2g is above memory-max = 1g (line 3)",
        ),
        ("[default]\npids-default = -1\npids-max = 10\n", 2, "above"),
        ("[vassals]\nshop.ini =\n", 2, "names no tenant"),
        ("[vassals]\nshop.ini = uid:x\n", 2, "uid:N"),
        ("[vassals]\nshop.ini = a b\n", 2, "names no tenant"),
        ("[default]\r\nimages = *\r\n\u{FEFF}\n", 3, "has no ="),
    ];
    for (text, line, fragment) in cases {
        let e = bad_policy(text);
        assert_eq!(e.line, *line, "{text:?}: {e}");
        assert_eq!(e.file, FILE);
        assert!(
            e.message.contains(fragment),
            "{text:?}: {e} lacks {fragment:?}"
        );
        assert!(e
            .to_string()
            .starts_with(&format!("policy {FILE} line {line}: ")));
    }
    assert_eq!(
        PolicyError::new(FILE, 1, "too big").to_string(),
        format!("policy {FILE} line 1: too big")
    );
    let e = Policy::parse(FILE, b"[default]\nimages = *\nimages = \xff\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.message.contains("UTF-8"), "{e}");
    // A BOM, CRLF line ends, comments and blank lines are fine, and do not shift lines.
    let e = bad_policy("\u{FEFF}; policy\r\n\r\n[default]\r\n# c\r\nimages\r\n");
    assert_eq!(e.line, 5, "{e}");
}

#[test]
fn a_refused_spec_is_left_untouched() {
    // `enforce_as` checks this for every refusal; here one that fails late, after
    // earlier rules would have filled values in.
    let mut spec = vassal("docker-mount = /srv/alice:/a\ndocker-cap-add = SYS_ADMIN");
    let before = spec.clone();
    let p = policy("[default]\nmounts = /srv/%u\nmemory-max = 1g\n");
    p.enforce("app.ini", &alice(), DOCKER, &mut spec)
        .unwrap_err();
    assert_eq!(spec, before);
}

// ---- properties ----

const POLICY_LINES: &[&str] = &[
    "images = psgi*",
    "images = *",
    "images =",
    "images = alice/* x?z",
    "images=xyz",
    "mounts=/srv/%u",
    "mounts = /srv/%u",
    "mounts = /srv/%u:rw /var",
    "mounts = %h/data:rw",
    "mounts = /run:rw /opt /home",
    "mounts =",
    "network-modes = bridge host",
    "network-modes = container:*",
    "network-modes = none",
    "user = owner",
    "user = any-nonroot",
    "user = root",
    "user = 2000:2000",
    "publish = 127.0.0.1:8000-8999",
    "publish = *:1-65535",
    "publish = 0.0.0.0:80 [::1]:443/tcp",
    "sockets = /run/%u/ 127.0.0.1:9000-9999",
    "sockets = /var/run/ *:80",
    "socket-owners = %u :www-data",
    "socket-owners = root",
    "proxy = /run/%u/",
    "proxy = /var/run/",
    "cidfile-dirs = /run/%u",
    "cidfile-dirs = /var/run/",
    "memory-default = 256m",
    "memory-max = 1g",
    "swap-default = 0",
    "swap-max = 64m",
    "cpus-default = 0.5",
    "cpus-max = 2",
    "pids-default = 50",
    "pids-max = 100",
    "cap-add = NET_BIND_SERVICE",
    "cap-add = ALL",
    "no-new-privileges = false",
    "no-new-privileges = true",
    "read-only-rootfs = true",
];

const SECTIONS: &[&str] = &["[default]", "[user:alice]", "[uid:1000]", "[user:bob]"];

fn arb_policy() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (0..SECTIONS.len(), proptest::sample::select(POLICY_LINES)),
        0..10,
    )
    .prop_map(|lines| {
        let mut text = String::from("; generated\n");
        for (section, line) in lines {
            text.push_str(SECTIONS[section]);
            text.push('\n');
            text.push_str(line);
            text.push('\n');
        }
        text
    })
}

const PATHS: &[&str] = &[
    "/",
    "/proc",
    "/proc/1",
    "/sys/fs",
    "/dev",
    "/dev/null",
    "/dev/..",
    "/var",
    "/var/run",
    "/var/run/docker.sock",
    "/var/run/app.sock",
    "/run",
    "/run/docker.sock",
    "/run/podman",
    "/run/alice/s.sock",
    "/run/alice/",
    "/run/uwsgi-docker/tenants/alice/a.sock",
    "/srv/alice",
    "/srv/alice/data",
    "/srv/alice2",
    "/srv/alice/../bob",
    "/srv//alice",
    "/srv/./alice",
    "/home/alice/data",
    "/home/alice/data/x",
    "/opt/x",
    "/etc",
    "/etc/passwd",
];

/// Paths built from components that matter: kernel trees, socket directories, tricks.
fn arb_component_path() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(
            &[
                "",
                ".",
                "..",
                "proc",
                "sys",
                "dev",
                "var",
                "run",
                "docker.sock",
                "podman",
                "podman.sock",
                "srv",
                "alice",
                "home",
                "data",
                "opt",
                "d",
                "1",
            ][..],
        ),
        0..5,
    )
    .prop_map(|parts| format!("/{}", parts.join("/")))
}

fn arb_path() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(PATHS).prop_map(String::from),
        "/[a-z./]{0,14}",
        arb_component_path(),
    ]
}

/// An empty list three times out of four, else one from `items`.
fn sometimes<T: core::fmt::Debug + Clone + 'static>(
    items: impl Strategy<Value = Vec<T>> + 'static,
) -> impl Strategy<Value = Vec<T>> {
    prop_oneof![3 => Just(Vec::new()), 1 => items]
}

fn arb_spec() -> impl Strategy<Value = VassalSpec> {
    let images = proptest::sample::select(&["psgi001", "alice/app", "xyz", "a/b/c", "evil:1"][..]);
    let mounts = sometimes(proptest::collection::vec(
        (arb_path(), any::<bool>(), any::<bool>()).prop_map(|(host, ro, explicit)| Mount {
            host,
            container: "/c".into(),
            read_only: ro,
            explicit_mode: ro || explicit,
        }),
        1..3,
    ));
    let networks = proptest::option::weighted(
        0.15,
        proptest::sample::select(
            &["bridge", "none", "host", "container:db", "default", "mynet"][..],
        ),
    );
    let users = proptest::option::weighted(
        0.15,
        proptest::sample::select(
            &[
                "1000:1000",
                "1000",
                "0",
                "0:0",
                "root",
                "www-data",
                "1234:5",
                "1234",
                "2000:2000",
                "5:0",
            ][..],
        ),
    );
    let ports = sometimes(proptest::collection::vec(
        (
            proptest::option::weighted(
                0.15,
                proptest::sample::select(&["127.0.0.1", "0.0.0.0", "::1", "::", "10.0.0.1"][..]),
            ),
            proptest::option::weighted(
                0.15,
                proptest::sample::select(&[80u16, 443, 8080, 9000, 65535][..]),
            ),
            any::<bool>(),
        )
            .prop_map(|(ip, port, udp)| PortMapping {
                host_ip: ip.map(String::from),
                host_port: port,
                container_port: 3031,
                protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
            }),
        1..3,
    ));
    let socket = proptest::option::weighted(
        0.15,
        prop_oneof![
            arb_path().prop_map(ListenAddress::Unix),
            (
                proptest::sample::select(&["", "127.0.0.1", "::1", "0.0.0.0"][..]),
                proptest::sample::select(&[80u16, 9000, 9999, 10000][..]),
            )
                .prop_map(|(ip, port)| ListenAddress::Tcp {
                    ip: ip.into(),
                    port
                }),
        ],
    );
    let owners = proptest::option::weighted(
        0.15,
        proptest::sample::select(
            &[
                "alice",
                "1000",
                "alice:www-data",
                ":www-data",
                "root",
                "bob:x",
            ][..],
        ),
    );
    let files = (
        proptest::option::weighted(0.15, arb_path()),
        proptest::option::weighted(0.15, arb_path()),
    );
    let limits = (
        proptest::option::weighted(
            0.15,
            proptest::sample::select(&[1u64 << 20, 256 << 20, 1 << 30, 2 << 30][..]),
        ),
        proptest::option::weighted(
            0.15,
            proptest::sample::select(&[0u64, 64 << 20, 1 << 30][..]),
        ),
        proptest::option::weighted(
            0.15,
            proptest::sample::select(&[100_000_000u64, 2_000_000_000, 3_000_000_000][..]),
        ),
        proptest::option::weighted(0.15, proptest::sample::select(&[-1i64, 10, 100, 1000][..])),
    );
    let caps = (
        sometimes(proptest::collection::vec(
            proptest::sample::select(&["NET_BIND_SERVICE", "SYS_ADMIN", "CHOWN"][..]),
            1..3,
        )),
        proptest::collection::vec(proptest::sample::select(&["ALL", "NET_RAW"][..]), 0..2),
        any::<bool>(),
        any::<bool>(),
    );
    (
        images, mounts, networks, users, ports, socket, owners, files, limits, caps,
    )
        .prop_map(
            |(
                image,
                mounts,
                network,
                user,
                ports,
                socket,
                owner,
                (proxy, cidfile),
                (memory, swap, cpus, pids),
                (cap_add, cap_drop, nnp, ro),
            )| {
                let mut spec = VassalSpec::with_image(image);
                spec.mounts = mounts;
                spec.network_mode = network.map(String::from);
                spec.user = user.map(String::from);
                spec.ports = ports;
                spec.socket = socket;
                spec.socket_owner = owner.map(String::from);
                spec.proxy = proxy.map(|host| ProxyPaths {
                    host,
                    container: None,
                });
                spec.cidfile = cidfile;
                spec.memory = memory;
                spec.swap = swap;
                spec.nano_cpus = cpus;
                spec.pids_limit = pids;
                spec.cap_add = cap_add.into_iter().map(String::from).collect();
                spec.cap_drop = cap_drop.into_iter().map(String::from).collect();
                spec.no_new_privileges = nnp;
                spec.read_only = ro;
                spec
            },
        )
}

fn arb_tenant() -> impl Strategy<Value = Tenant> {
    prop_oneof![
        Just(alice()),
        Just(Tenant::new(1001, 1001).with_name("bob")),
        Just(Tenant::new(1500, 1500)),
        Just(Tenant::new(0, 0).with_name("root").with_home("/root")),
        Just(Tenant::new(5, 5).with_name("daemon").with_home("/")),
    ]
}

/// Written independently of the module: `path` is `/`, a kernel tree or below one, or a
/// daemon socket or a directory above one, or not plain.
fn never_mountable(path: &str, daemon_socket: &str) -> bool {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let parts: Vec<&str> = trimmed.split('/').skip(1).collect();
    if !path.starts_with('/')
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return true;
    }
    let joined = format!("/{}", parts.join("/"));
    if joined == "/" || trimmed.is_empty() {
        return true;
    }
    let under = |p: &str, dir: &str| p == dir || p.starts_with(&format!("{dir}/"));
    ["/proc", "/sys", "/dev"].iter().any(|t| under(&joined, t))
        || [
            daemon_socket,
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/run/podman/podman.sock",
        ]
        .iter()
        .any(|s| under(s, &joined))
}

const MOUNT_LINES: &[&str] = &[
    "mounts = /var:rw",
    "mounts = /run /opt:rw",
    "mounts = /home:rw /srv",
    "mounts = /srv/%u:rw %h/data",
    "mounts = /var/run:rw /opt/d",
    "mounts = /run/podman:rw",
    "mounts = /etc /usr",
];

proptest! {
    #[test]
    fn a_mount_never_passes_to_the_forbidden(
        lines in proptest::collection::vec(proptest::sample::select(MOUNT_LINES), 1..4),
        mounts in proptest::collection::vec((arb_path(), any::<bool>(), any::<bool>()), 1..4),
        tenant in arb_tenant(),
        daemon_socket in proptest::sample::select(&["/var/run/docker.sock", "/opt/d/docker.sock", "/srv/alice/d.sock", "/run/podman/podman.sock"][..]),
    ) {
        let text = format!("[default]\n{}\n", lines.join("\n"));
        let p = policy(&text);
        let mut spec = VassalSpec::with_image("psgi001");
        spec.mounts = mounts
            .into_iter()
            .map(|(host, ro, explicit)| Mount {
                host,
                container: "/c".into(),
                read_only: ro,
                explicit_mode: ro || explicit,
            })
            .collect();
        if p.enforce("app.ini", &tenant, daemon_socket, &mut spec).is_ok() {
            for mount in &spec.mounts {
                prop_assert!(!never_mountable(&mount.host, daemon_socket), "{:?} with {}", mount, daemon_socket);
            }
        }
        // Each mount alone: refused exactly when forbidden, or not under an allowed prefix.
        for mount in spec.mounts.clone() {
            let mut one = VassalSpec::with_image("psgi001");
            one.mounts = vec![mount.clone()];
            let result = p.enforce("app.ini", &tenant, daemon_socket, &mut one);
            if never_mountable(&mount.host, daemon_socket) {
                let v = result.expect_err("a forbidden mount passed");
                prop_assert_eq!(v.line, 0, "{}", v);
            }
        }
    }

    #[test]
    fn parse_never_panics_and_errors_name_a_real_line(
        bytes in proptest::collection::vec(any::<u8>(), 0..400)
    ) {
        let lines = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes).split(|&b| b == b'\n').count();
        if let Err(e) = Policy::parse(FILE, &bytes) {
            prop_assert!(e.line >= 1 && e.line <= lines, "{e}");
        }
    }

    #[test]
    fn parse_errors_on_policy_like_text_name_a_real_line(
        lines in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(POLICY_LINES).prop_map(String::from),
                proptest::sample::select(SECTIONS).prop_map(String::from),
                "[a-z:\\[\\] =%/*0-9-]{0,16}",
            ],
            0..12,
        )
    ) {
        let text = lines.join("\n");
        if let Err(e) = Policy::parse(FILE, text.as_bytes()) {
            prop_assert!(e.line >= 1 && e.line <= lines.len().max(1), "{e}");
        }
    }

    #[test]
    fn enforce_is_total_idempotent_and_never_mounts_the_forbidden(
        text in arb_policy(),
        spec in arb_spec(),
        tenant in arb_tenant(),
        daemon_socket in proptest::sample::select(&["/var/run/docker.sock", "/opt/d/docker.sock", "/srv/alice/d.sock"][..]),
    ) {
        let Ok(p) = Policy::parse(FILE, text.as_bytes()) else {
            // Repeated scalars or a default above its maximum: not this property's business.
            return Ok(());
        };
        let mut once = spec.clone();
        match p.enforce("app.ini", &tenant, daemon_socket, &mut once) {
            Ok(decision) => {
                let mut twice = once.clone();
                let again = p.enforce("app.ini", &tenant, daemon_socket, &mut twice);
                prop_assert!(again.is_ok(), "not idempotent: {:?}", again);
                prop_assert_eq!(&twice, &once);
                for mount in &once.mounts {
                    prop_assert!(!never_mountable(&mount.host, daemon_socket), "{:?}", mount);
                }
                prop_assert_eq!(&once.cap_drop, &vec!["ALL".to_string()]);
                prop_assert!(once.user.is_some());
                let rules_root = text.contains("user = root");
                if tenant.uid != 0 && !rules_root {
                    let user = once.user.as_deref().unwrap_or_default();
                    prop_assert!(!user.starts_with("0:") && user != "0" && user != "root", "{}", user);
                }
                if !text.contains("no-new-privileges = false") {
                    prop_assert!(once.no_new_privileges);
                }
                prop_assert!(decision.section.starts_with('['));
                for path in &decision.host_paths {
                    prop_assert!(path.starts_with('/'));
                }
            }
            Err(v) => {
                prop_assert_eq!(&once, &spec, "a refused spec is unchanged");
                let file_lines: Vec<&str> = text.lines().collect();
                if v.line > 0 {
                    let line = file_lines.get(v.line - 1).map(|l| l.trim()).unwrap_or_default();
                    let key = v.rule.split('=').next().unwrap_or_default().trim();
                    prop_assert!(line.starts_with(key) && !key.is_empty(), "line {} {:?} vs rule {:?}", v.line, line, v.rule);
                    prop_assert!(v.rule.starts_with(line), "{:?} vs {:?}", v.rule, line);
                }
                prop_assert!(v.to_string().contains(&v.key));
            }
        }
    }
}

fn enforce_with_groups(
    policy_text: &str,
    tenant: &Tenant,
    groups: &[u32],
    lines: &str,
) -> Result<VassalSpec, Box<PolicyViolation>> {
    let mut spec = vassal(lines);
    policy(policy_text)
        .with_daemon_groups(groups.iter().copied())
        .enforce("app.ini", tenant, DOCKER, &mut spec)
        .map(|_| spec)
        .map_err(Box::new)
}

#[test]
fn a_daemon_sockets_group_is_refused_under_every_user_rule() {
    // alice's primary group is the docker group (999): user = owner would hand it over.
    let in_docker = Tenant::new(1000, 999).with_name("alice");
    let v = enforce_with_groups("", &in_docker, &[999], "").expect_err("owner");
    assert_eq!(v.key, "docker-user");
    assert!(
        v.why
            .contains("group 999 owns the container daemon's socket"),
        "{v}"
    );
    for (rule, lines) in [
        ("user = any-nonroot", "docker-user = 1000:999"),
        ("user = any-nonroot", "docker-user = 1000"),
        ("user = root", "docker-user = 1000:999"),
        ("user = 1000:999", ""),
    ] {
        let text = format!("[default]\n{rule}\n");
        let v = enforce_with_groups(&text, &in_docker, &[999], lines).expect_err(rule);
        assert!(v.why.contains("group 999"), "{rule} {lines}: {v}");
    }
    // Other groups pass; root's own vassal stays 0:0 although a socket may be root:root.
    enforce_with_groups(
        "[default]\nuser = any-nonroot\n",
        &alice(),
        &[999],
        "docker-user = 1000:1000",
    )
    .expect("another group");
    let root = Tenant::new(0, 0).with_name("root");
    let spec = enforce_with_groups("", &root, &[0, 999], "").expect("root");
    assert_eq!(spec.user.as_deref(), Some("0:0"));
    // A non-root tenant whose primary group is root's is refused.
    let v = enforce_with_groups("", &Tenant::new(1001, 0), &[], "").expect_err("gid 0");
    assert!(v.why.contains("gid 0 is root's group"), "{v}");
}

#[test]
fn built_in_bounds_apply_when_the_policy_sets_none() {
    // Swap: refused above 1g, nothing filled in.
    let v = refused("", "docker-memory = 256m\ndocker-swap = 8000000g");
    assert_rule(
        &v,
        "docker-swap",
        "swap-max = 1g when the policy sets none",
        0,
    );
    let (spec, _) = allowed("", "docker-memory = 256m");
    assert_eq!(spec.swap, None);
    let (spec, _) = allowed(
        "[default]\nswap-max = 4g\n",
        "docker-memory = 256m\ndocker-swap = 2g",
    );
    assert_eq!(spec.swap, Some(2 << 30));
    // Stop timeout: at most 25 s, or the policy's own.
    let v = refused(
        "",
        "docker-stop-timeout = 4294967295\ndocker-stop-signal = SIGCONT",
    );
    assert_rule(
        &v,
        "docker-stop-timeout",
        "stop-timeout-max = 25 when the policy sets none",
        0,
    );
    let (spec, _) = allowed("", "docker-stop-timeout = 25");
    assert_eq!(spec.stop_timeout, Some(25));
    let v = refused(
        "[default]\nstop-timeout-max = 5\n",
        "docker-stop-timeout = 6",
    );
    assert_rule(&v, "docker-stop-timeout", "stop-timeout-max = 5", 2);
    // The default 10 s is above a maximum of 5: the maximum is filled in.
    let (spec, d) = allowed("[default]\nstop-timeout-max = 5\n", "");
    assert_eq!(spec.stop_timeout, Some(5));
    assert!(
        d.applied
            .iter()
            .any(|l| l.contains("docker-stop-timeout = 5")),
        "{:?}",
        d.applied
    );
    // tmpfs: a size filled in, a larger one or a percentage refused, and a count.
    let (spec, d) = allowed("", "docker-tmpfs = /tmp\ndocker-tmpfs = /run:rw,mode=1777");
    assert_eq!(
        spec.tmpfs,
        vec![
            ("/tmp".to_string(), "size=64m".to_string()),
            ("/run".to_string(), "rw,mode=1777,size=64m".to_string())
        ]
    );
    assert!(
        d.applied
            .iter()
            .any(|l| l.contains("docker-tmpfs = /tmp:size=64m")),
        "{:?}",
        d.applied
    );
    allowed("", "docker-tmpfs = /tmp:size=64m");
    let v = refused("", "docker-tmpfs = /tmp:size=65m");
    assert_rule(
        &v,
        "docker-tmpfs",
        "tmpfs-max = 64m when the policy sets none",
        0,
    );
    let v = refused(
        "[default]\ntmpfs-max = 16m\n",
        "docker-tmpfs = /tmp:size=50%",
    );
    assert_rule(&v, "docker-tmpfs", "tmpfs-max = 16m", 2);
    let five: String = (0..5).map(|i| format!("docker-tmpfs = /t{i}\n")).collect();
    let v = refused("", &five);
    assert_rule(
        &v,
        "docker-tmpfs",
        "tmpfs-count-max = 4 when the policy sets none",
        0,
    );
    allowed("[default]\ntmpfs-count-max = 5\n", &five);
    let v = refused("[default]\ntmpfs-count-max = 0\n", "docker-tmpfs = /tmp");
    assert!(v.why.contains("more than the 0 allowed"), "{v}");
}

#[test]
fn a_tenants_native_vassal_is_refused_unless_the_policy_allows_it() {
    let p = policy("[default]\nmemory-max = 1g\n\n[user:bob]\nnative-vassals = true\n");
    let err = p
        .judge_native("app.ini", Some("/etc/uwsgi/vassals/app.ini"), &alice())
        .expect_err("alice's native vassal");
    let text = err.to_string();
    for needle in [
        "vassal app.ini",
        "/etc/uwsgi/vassals/app.ini is owned by alice (uid 1000), not root",
        "docker-image",
        "chown root /etc/uwsgi/vassals/app.ini",
        "native-vassals is not set for [default]",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let pushed = p
        .judge_native("shop.ini", None, &Tenant::new(65534, 65534))
        .expect_err("pushed");
    assert!(
        pushed
            .to_string()
            .contains("the pushed config is owned by uid 65534"),
        "{pushed}"
    );
    assert!(pushed.to_string().contains("[vassals]"), "{pushed}");
    let root = Tenant::new(0, 0).with_name("root");
    let ok = p
        .judge_native("app.ini", Some("/x.ini"), &root)
        .expect("root's");
    assert!(ok.reason.contains("root owns it"), "{ok:?}");
    let bob = Tenant::new(1002, 1002).with_name("bob");
    let ok = p
        .judge_native("app.ini", Some("/x.ini"), &bob)
        .expect("bob may");
    assert_eq!(ok.section, "[user:bob]");
    assert!(
        ok.reason.contains("line 5: native-vassals = true"),
        "{ok:?}"
    );
    // Said explicitly false, the refusal names the line.
    let p = policy("[default]\nnative-vassals = false\n");
    let err = p
        .judge_native("a.ini", Some("/a.ini"), &alice())
        .expect_err("false");
    assert!(
        err.to_string().contains("line 2: native-vassals = false"),
        "{err}"
    );
    // A file name with control bytes is escaped.
    let err = p
        .judge_native("a\u{1b}.ini", Some("/a\u{1b}.ini"), &alice())
        .expect_err("escaped");
    assert!(!err.to_string().contains('\u{1b}'), "{err}");
}

#[test]
fn pull_modes_restrict_docker_pull_and_name_their_line() {
    let text = "[default]\npull-modes = missing, never\n";
    let v = refused(text, "docker-pull = always");
    assert_rule(&v, "docker-pull", "pull-modes = missing, never", 2);
    assert!(
        v.to_string()
            .contains("use one of missing never, or remove docker-pull"),
        "{v}"
    );
    for asked in ["missing", "never"] {
        let (spec, decision) = allowed(text, &format!("docker-pull = {asked}"));
        assert_eq!(spec.pull.map(PullPolicy::as_str), Some(asked));
        assert!(!decision
            .applied
            .iter()
            .any(|l| l.starts_with("docker-pull")));
    }
    // Not said: the operator's default when allowed, left for the runtime to fill in.
    let (spec, _) = allowed(text, "");
    assert_eq!(spec.pull, None);
    // The operator's default not allowed: the first allowed mode, noted.
    let mut spec = vassal("");
    let p = policy("[default]\npull-modes = never\n").with_operator_pull(PullPolicy::Always);
    let decision = p.enforce("app.ini", &alice(), DOCKER, &mut spec).unwrap();
    assert_eq!(spec.pull, Some(PullPolicy::Never));
    assert!(
        decision.applied.contains(
            &"docker-pull = never: forced (policy line 2: pull-modes = never)".to_string()
        ),
        "{:?}",
        decision.applied
    );
    // pull-default fills in; the tenant's section replaces [default]'s.
    let text = "[default]\npull-default = always\n\n[user:alice]\npull-modes = never\n";
    let (spec, decision) = allowed(text, "");
    assert_eq!(spec.pull, Some(PullPolicy::Never), "{:?}", decision.applied);
    let (spec, decision) = enforce_as(text, &Tenant::new(1001, 1001), "").unwrap();
    assert_eq!(spec.pull, Some(PullPolicy::Always));
    assert!(
        decision.applied.contains(
            &"docker-pull = always: the default (policy line 2: pull-default = always)".to_string()
        ),
        "{:?}",
        decision.applied
    );
    // A refused docker-pull = never says why.
    let v = refused("[default]\npull-modes = always\n", "docker-pull = never");
    assert!(v.why.contains("must pull"), "{v}");
}

#[test]
fn pull_keys_that_make_no_sense_are_refused_by_line() {
    let e = bad_policy("[default]\npull-modes = sometimes\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("\"sometimes\""), "{e}");
    let e = bad_policy("[default]\npull-modes =\n");
    assert!(e.message.contains("lists no mode"), "{e}");
    let e = bad_policy("[default]\npull-modes = never\npull-default = always\n");
    assert_eq!(e.line, 3, "{e}");
    assert!(
        e.message
            .contains("is not among pull-modes = never (line 2)"),
        "{e}"
    );
    let e = bad_policy("[default]\npull-default = always\npull-default = never\n");
    assert!(e.message.contains("already set"), "{e}");
    let e = bad_policy("[default]\npull-mode = never\n");
    assert!(e.message.contains("did you mean pull-modes"), "{e}");
    for bad in [
        "etc/auth.json",
        "/etc/auth dir.json",
        "/etc/%x.json",
        "/etc/auth/",
        "/etc/../auth.json",
    ] {
        let e = bad_policy(&format!("[default]\nregistry-auth = {bad}\n"));
        assert_eq!(e.line, 2, "{bad}: {e}");
    }
}

#[test]
fn registry_auth_names_the_tenants_file_or_none() {
    let (_, decision) = allowed("[default]\nimages = **\n", "");
    assert_eq!(decision.registry_auth, RegistryAuth::Operator);
    let text = "[default]\nregistry-auth = %h/.docker/config.json\n\n[uid:1001]\nregistry-auth =\n";
    let (_, decision) = allowed(text, "");
    assert_eq!(
        decision.registry_auth,
        RegistryAuth::File {
            path: "/home/alice/.docker/config.json".into(),
            rule: format!("policy {FILE} line 2: registry-auth = %h/.docker/config.json"),
        }
    );
    let (_, decision) = enforce_as(text, &Tenant::new(1001, 1001), "").unwrap();
    assert_eq!(
        decision.registry_auth,
        RegistryAuth::None {
            rule: format!("policy {FILE} line 5: registry-auth =")
        }
    );
    // A tenant without a home cannot have a %h file: refused, naming the rule.
    let v = enforce_as(text, &Tenant::new(1002, 1002), "").unwrap_err();
    assert_rule(
        &v,
        "registry-auth",
        "registry-auth = %h/.docker/config.json",
        2,
    );
}
