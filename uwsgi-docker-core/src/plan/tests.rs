use super::*;
use crate::spec::{HandoffMode, ListenAddress, ProxyPaths, VassalSpec};
use proptest::prelude::*;
use std::collections::HashMap;

/// Docker's own rule, written independently of `is_valid_name`.
fn docker_accepts(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && name.len() <= MAX_CONTAINER_NAME
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn identity(name: &str) -> VassalIdentity {
    VassalIdentity {
        name: name.into(),
        proxy_dir: "/etc/uwsgi".into(),
        emperor_id: "emp1".into(),
        bridge_id: "host:42:1000".into(),
        name_prefix: None,
    }
}

#[test]
fn valid_names_pass_through() {
    for name in ["foobar.ini", "ab", "app_1-x.ini", "0.ini"] {
        assert_eq!(container_name(name), name);
    }
}

#[test]
fn invalid_names_are_sanitised_and_hashed() {
    for name in [
        "a",
        "",
        "my app.ini",
        "x.ini:zerg",
        "_x.ini",
        ".hidden.ini",
        "café.ini",
        &"n".repeat(255),
    ] {
        let out = container_name(name);
        assert!(docker_accepts(&out), "{name:?} -> {out:?}");
        assert!(looks_hashed(&out), "{name:?} -> {out:?}");
        assert_ne!(out, name);
    }
    assert_eq!(
        container_name("my app.ini"),
        format!("my_app.ini-{:016x}", fnv1a64(b"my app.ini"))
    );
    assert!(container_name("x.ini:zerg").starts_with("x.ini_zerg-"));
    assert!(container_name("_x.ini").starts_with("v_x.ini-"));
    assert_eq!(container_name(&"n".repeat(255)).len(), MAX_CONTAINER_NAME);
    // Non-ASCII becomes one `_` per character, not per byte.
    assert!(container_name("café.ini").starts_with("caf_.ini-"));
}

#[test]
fn fnv_matches_reference_vectors() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn names_that_look_sanitised_are_hashed_again() {
    // `my app.ini` sanitises to this; the valid name must not map onto it.
    let sanitised = container_name("my app.ini");
    let again = container_name(&sanitised);
    assert_ne!(again, sanitised);
    assert!(docker_accepts(&again));
    // A dash and 16 hex digits that are not lowercase hex are not our marker.
    assert_eq!(
        container_name("app-0123456789ABCDEF"),
        "app-0123456789ABCDEF"
    );
}

#[test]
fn plan_follows_the_seed_defaults() {
    // The seed's own handoff; the default (auto) is now the launcher, tested below.
    let mut spec = VassalSpec::with_image("psgi001");
    spec.handoff = HandoffMode::Native;
    let plan = ContainerPlan::new(spec, &identity("foobar.ini"));
    assert_eq!(plan.container_name, "foobar.ini");
    assert_eq!(plan.vassal_name, "foobar.ini");
    assert_eq!(plan.proxy_host_path, "/etc/uwsgi/foobar.ini.sock");
    assert_eq!(plan.proxy_container_path, "/foobar.ini.sock");
    assert_eq!(plan.cmd, ["uwsgi", "--ini", "emperor://foobar.ini"]);
    assert_eq!(plan.env, ["UWSGI_EMPEROR_PROXY=/foobar.ini.sock"]);
    let want: Vec<(String, String)> = [
        ("io.uwsgi-docker.bridge", "host:42:1000"),
        ("io.uwsgi-docker.emperor", "emp1"),
        ("io.uwsgi-docker.managed", "1"),
        ("io.uwsgi-docker.proxy", "/etc/uwsgi/foobar.ini.sock"),
        ("io.uwsgi-docker.vassal", "foobar.ini"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(plan.labels, want);
}

#[test]
fn plan_uses_docker_proxy_env_labels_and_uwsgi() {
    let mut spec = VassalSpec::with_image("img");
    spec.proxy = Some(ProxyPaths {
        host: "/var/run/foobar.sock".into(),
        container: Some("/tmp/foosocket".into()),
    });
    spec.env = vec![("A".into(), "1".into()), ("B".into(), "x=y".into())];
    spec.labels = vec![
        ("zz".into(), "last".into()),
        ("aa".into(), "first".into()),
        (labels::MANAGED.into(), "0".into()),
    ];
    spec.uwsgi = "/usr/bin/uwsgi".into();
    spec.handoff = HandoffMode::Native;
    let plan = ContainerPlan::new(spec, &identity("x.ini:zerg"));
    assert_eq!(plan.proxy_host_path, "/var/run/foobar.sock");
    assert_eq!(plan.proxy_container_path, "/tmp/foosocket");
    assert_eq!(
        plan.cmd,
        ["/usr/bin/uwsgi", "--ini", "emperor://x.ini:zerg"]
    );
    assert_eq!(
        plan.env,
        ["UWSGI_EMPEROR_PROXY=/tmp/foosocket", "A=1", "B=x=y"]
    );
    let keys: Vec<&str> = plan.labels.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.first(), Some(&"aa"));
    assert_eq!(keys.last(), Some(&"zz"));
    let managed: Vec<&str> = plan
        .labels
        .iter()
        .filter(|(k, _)| k == labels::MANAGED)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(managed, ["1"], "our label wins");
    assert!(plan
        .labels
        .contains(&(labels::VASSAL.into(), "x.ini:zerg".into())));
}

#[test]
fn proxy_host_only_keeps_default_container_path() {
    let mut spec = VassalSpec::with_image("img");
    spec.proxy = Some(ProxyPaths {
        host: "/run/p.sock".into(),
        container: None,
    });
    let mut id = identity("my app.ini");
    id.proxy_dir = "/srv/sockets/".into();
    let plan = ContainerPlan::new(spec.clone(), &id);
    assert_eq!(plan.proxy_host_path, "/run/p.sock");
    assert_eq!(
        plan.proxy_container_path,
        format!("/{}.sock", container_name("my app.ini"))
    );
    spec.proxy = None;
    let plan = ContainerPlan::new(spec, &id);
    assert_eq!(plan.proxy_host_path, "/srv/sockets/my app.ini.sock");
}

#[test]
fn a_name_prefix_goes_first_in_the_name_the_socket_and_a_label() {
    let mut id = identity("my app.ini");
    id.name_prefix = Some("tenant1-".into());
    let plan = ContainerPlan::new(VassalSpec::with_image("img"), &id);
    assert_eq!(
        plan.container_name,
        format!("tenant1-{}", container_name("my app.ini"))
    );
    assert!(docker_accepts(&plan.container_name));
    assert_eq!(plan.name_prefix.as_deref(), Some("tenant1-"));
    assert_eq!(plan.proxy_host_path, "/etc/uwsgi/tenant1-my app.ini.sock");
    // Inside the container the prefix is not needed.
    assert_eq!(
        plan.proxy_container_path,
        format!("/{}.sock", container_name("my app.ini"))
    );
    assert!(plan
        .labels
        .contains(&(labels::PREFIX.into(), "tenant1-".into())));
    let unprefixed = ContainerPlan::new(VassalSpec::with_image("img"), &identity("x.ini"));
    assert!(!unprefixed.labels.iter().any(|(k, _)| k == labels::PREFIX));
    // The longest prefix on the longest name is still a name Docker takes.
    let longest = prefixed_container_name(Some(&"p".repeat(MAX_NAME_PREFIX)), &"n".repeat(300));
    assert_eq!(longest.len(), MAX_CONTAINER_NAME + MAX_NAME_PREFIX);
    assert!(longest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
}

#[test]
fn name_prefixes_are_checked() {
    for good in ["a", "tenant1-", "T.2_x", &"p".repeat(MAX_NAME_PREFIX)] {
        assert_eq!(check_name_prefix(good), Ok(()), "{good:?}");
    }
    for (bad, says) in [
        ("", "empty"),
        ("-a", "start with a letter or a digit"),
        ("_a", "start with a letter or a digit"),
        ("a b", "' '"),
        ("a/b", "'/'"),
        ("é", "start with"),
        ("ab:", "':'"),
    ] {
        let error = check_name_prefix(bad).unwrap_err().to_string();
        assert!(error.contains(says), "{bad:?}: {error}");
    }
    let long = "p".repeat(MAX_NAME_PREFIX + 1);
    assert_eq!(
        check_name_prefix(&long),
        Err(NamePrefixError::TooLong {
            len: MAX_NAME_PREFIX + 1
        })
    );
}

#[test]
fn ownership_needs_our_labels_our_vassal_and_our_prefix() {
    let labelled = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let plan = ContainerPlan::new(VassalSpec::with_image("img"), &identity("app.ini"));
    // Our own labels are ours.
    assert_eq!(plan.why_not_ours(&plan.labels), None);
    let ours = labelled(&[(labels::MANAGED, "1"), (labels::VASSAL, "app.ini")]);
    assert_eq!(plan.why_not_ours(&ours), None);
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "not made by uwsgi-docker"),
        (&[(labels::VASSAL, "app.ini")], "not made by uwsgi-docker"),
        (&[(labels::MANAGED, "1")], "no vassal label"),
        (
            &[(labels::MANAGED, "1"), (labels::VASSAL, "other.ini")],
            "\"other.ini\"",
        ),
        (
            &[
                (labels::MANAGED, "1"),
                (labels::VASSAL, "app.ini"),
                (labels::PREFIX, "t1-"),
            ],
            "name prefix \"t1-\"",
        ),
    ];
    for (pairs, says) in cases {
        let why = plan.why_not_ours(&labelled(pairs)).expect("not ours");
        assert!(why.contains(says), "{pairs:?}: {why}");
    }
    let mut id = identity("app.ini");
    id.name_prefix = Some("t1-".into());
    let prefixed = ContainerPlan::new(VassalSpec::with_image("img"), &id);
    assert_eq!(prefixed.why_not_ours(&prefixed.labels), None);
    assert!(prefixed
        .why_not_ours(&ours)
        .expect("an unprefixed Emperor's")
        .contains("without a name prefix"));
    let other = labelled(&[
        (labels::MANAGED, "1"),
        (labels::VASSAL, "app.ini"),
        (labels::PREFIX, "t2-"),
    ]);
    assert!(prefixed.why_not_ours(&other).is_some());
}

proptest! {
    #[test]
    fn prefixed_names_are_injective_for_one_prefix(
        prefix in "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}",
        names in proptest::collection::hash_set(
            prop_oneof!["[a-z]{1,3}", "[a-zA-Z0-9_. :-]{0,12}", any::<String>()],
            0..32,
        )
    ) {
        prop_assert_eq!(check_name_prefix(&prefix), Ok(()));
        let mut seen: HashMap<String, String> = HashMap::new();
        for name in names {
            let out = prefixed_container_name(Some(&prefix), &name);
            prop_assert!(out.starts_with(&prefix));
            if let Some(other) = seen.insert(out.clone(), name.clone()) {
                prop_assert!(false, "{:?} and {:?} both map to {:?}", other, name, out);
            }
        }
    }

    #[test]
    fn container_names_are_always_valid(name in any::<String>()) {
        let out = container_name(&name);
        prop_assert!(docker_accepts(&out), "{:?} -> {:?}", name, out);
        prop_assert_eq!(container_name(&name), out);
    }

    #[test]
    fn container_names_are_valid_for_ascii_edge_cases(name in "[ -~]{0,300}") {
        prop_assert!(docker_accepts(&container_name(&name)));
    }

    #[test]
    fn container_names_are_injective(
        names in proptest::collection::hash_set(
            prop_oneof![
                "[a-z]{1,3}",
                "[a-zA-Z0-9_. :-]{0,12}",
                "[a-z]{1,4}-[0-9a-f]{16}",
                any::<String>(),
            ],
            0..64,
        )
    ) {
        let mut seen: HashMap<String, String> = HashMap::new();
        for name in names {
            let out = container_name(&name);
            if let Some(other) = seen.insert(out.clone(), name.clone()) {
                prop_assert!(false, "{:?} and {:?} both map to {:?}", other, name, out);
            }
        }
    }

    #[test]
    fn sanitised_outputs_never_collide_with_pass_through(name in any::<String>()) {
        let out = container_name(&name);
        if out != name {
            // Whatever `out` is, no input passes through to it.
            prop_assert_ne!(container_name(&out), out);
        }
    }
}

#[test]
fn auto_handoff_is_the_launcher_even_without_a_socket() {
    // uWSGI master crashes on native handoff, 2.0.x cannot take a socket: the default
    // trusts neither.
    let options = PlanOptions {
        launcher_host_path: Some("/usr/local/bin/uwsgi-docker-launcher".into()),
        inherited_socket: false,
    };
    let plan = ContainerPlan::with_options(
        VassalSpec::with_image("img"),
        &identity("app.ini"),
        &options,
    );
    assert_eq!(plan.handoff, HandoffMode::Launcher);
    assert!(!plan.passes_socket);
    assert_eq!(plan.cmd[0], LAUNCHER_CONTAINER_PATH);
    assert!(
        !plan
            .env
            .iter()
            .any(|e| e.starts_with("UWSGI_EMPEROR_PROXY=")),
        "{:?}",
        plan.env
    );
    // Without the launcher installed, only the socket-less default falls back to native.
    assert_eq!(
        HandoffMode::Auto.resolve_without_launcher(false),
        Some(HandoffMode::Native)
    );
    assert_eq!(HandoffMode::Auto.resolve_without_launcher(true), None);
    assert_eq!(HandoffMode::Launcher.resolve_without_launcher(false), None);
    assert_eq!(
        HandoffMode::Native.resolve_without_launcher(true),
        Some(HandoffMode::Native)
    );
}

#[test]
fn a_docker_socket_picks_the_launcher_which_takes_the_proxy_as_an_argument() {
    let mut spec = VassalSpec::with_image("img");
    spec.socket = Some(ListenAddress::Unix("/run/app.sock".into()));
    spec.env.push(("A".into(), "b".into()));
    let options = PlanOptions {
        launcher_host_path: Some("/usr/local/bin/uwsgi-docker-launcher".into()),
        inherited_socket: false,
    };
    let plan = ContainerPlan::with_options(spec, &identity("app.ini"), &options);
    assert_eq!(plan.handoff, HandoffMode::Launcher);
    assert!(plan.passes_socket);
    assert_eq!(
        plan.cmd,
        [
            LAUNCHER_CONTAINER_PATH,
            "/app.ini.sock",
            "uwsgi",
            "--ini",
            "emperor://app.ini"
        ]
    );
    // No UWSGI_EMPEROR_PROXY: uWSGI would look for the (gone) proxy again.
    assert_eq!(plan.env, ["A=b"]);
    assert_eq!(
        plan.launcher_host_path.as_deref(),
        Some("/usr/local/bin/uwsgi-docker-launcher")
    );
}

#[test]
fn explicit_handoff_wins_over_auto() {
    let mut spec = VassalSpec::with_image("img");
    spec.socket = Some(ListenAddress::Tcp {
        ip: "127.0.0.1".into(),
        port: 3031,
    });
    spec.handoff = HandoffMode::Native;
    let plan = ContainerPlan::new(spec.clone(), &identity("app.ini"));
    assert_eq!(plan.handoff, HandoffMode::Native);
    assert!(plan.passes_socket);
    assert_eq!(plan.cmd[0], "uwsgi");

    let mut spec = VassalSpec::with_image("img");
    spec.handoff = HandoffMode::Launcher;
    let plan = ContainerPlan::new(spec, &identity("app.ini"));
    assert_eq!(plan.handoff, HandoffMode::Launcher);
    assert!(!plan.passes_socket);
    assert_eq!(plan.cmd[0], LAUNCHER_CONTAINER_PATH);
}

#[test]
fn an_inherited_socket_is_passed_and_picks_the_launcher() {
    let options = PlanOptions {
        launcher_host_path: None,
        inherited_socket: true,
    };
    let plan = ContainerPlan::with_options(
        VassalSpec::with_image("img"),
        &identity("app.ini"),
        &options,
    );
    assert!(plan.passes_socket);
    assert_eq!(plan.handoff, HandoffMode::Launcher);
}

#[test]
fn a_long_name_gets_a_short_default_container_path() {
    // Up to 101 characters, the seed's `/NAME.sock` fits in 107 bytes.
    let fits = "f".repeat(101);
    let plan = ContainerPlan::new(VassalSpec::with_image("img"), &identity(&fits));
    assert_eq!(plan.proxy_container_path, format!("/{fits}.sock"));
    assert_eq!(plan.proxy_container_path.len(), MAX_SOCKET_PATH);
    // Longer container names (they reach 128 characters) get a hashed path instead.
    for name in [
        "g".repeat(102),
        "h".repeat(128),
        format!("{} x.ini", "i".repeat(200)),
    ] {
        let mut spec = VassalSpec::with_image("img");
        spec.handoff = HandoffMode::Native;
        let plan = ContainerPlan::new(spec, &identity(&name));
        let path = &plan.proxy_container_path;
        assert!(path.len() <= MAX_SOCKET_PATH, "{path}");
        assert_eq!(
            *path,
            format!("/uwsgi-docker-{:016x}.sock", fnv1a64(name.as_bytes()))
        );
        assert_eq!(plan.env, [format!("UWSGI_EMPEROR_PROXY={path}")]);
        // On the host the seed's name is kept at any length: the runtime binds it relative
        // to the directory it opened, with no sun_path limit.
        assert_eq!(plan.proxy_host_path, format!("/etc/uwsgi/{name}.sock"));
        assert_eq!(plan.validate(), Ok(()));
    }
    // Deterministic, and different for different names.
    assert_eq!(
        default_proxy_container_path("a", &"n".repeat(128)),
        default_proxy_container_path("a", &"n".repeat(128))
    );
    assert_ne!(
        default_proxy_container_path("a", &"n".repeat(128)),
        default_proxy_container_path("b", &"n".repeat(128))
    );
}

#[test]
fn a_proxy_path_too_long_for_a_socket_is_refused() {
    // A long directory on the host is fine (bound relative to the opened directory).
    let mut id = identity("app.ini");
    id.proxy_dir = format!("/{}", "d".repeat(100));
    let plan = ContainerPlan::new(VassalSpec::with_image("img"), &id);
    assert_eq!(plan.validate(), Ok(()));

    let mut spec = VassalSpec::with_image("img");
    spec.proxy = Some(ProxyPaths {
        host: "/run/p.sock".into(),
        container: Some(format!("/{}", "c".repeat(107))),
    });
    let err = ContainerPlan::new(spec, &identity("app.ini"))
        .validate()
        .unwrap_err();
    assert!(
        matches!(
            &err,
            PlanError::ProxyPathTooLong {
                place: "in the container",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_mount_that_hides_the_proxy_or_the_launcher_is_refused() {
    let mount = |container: &str| crate::spec::Mount {
        host: "/srv/data".into(),
        container: container.into(),
        read_only: true,
        explicit_mode: true,
    };
    let mut spec = VassalSpec::with_image("img");
    spec.proxy = Some(ProxyPaths {
        host: "/run/p.sock".into(),
        container: Some("/run/uwsgi/proxy.sock".into()),
    });
    for hidden in ["/run", "/run/", "/run/uwsgi", "/run/uwsgi/proxy.sock", "/"] {
        let mut spec = spec.clone();
        spec.mounts = vec![mount("/elsewhere"), mount(hidden)];
        let err = ContainerPlan::new(spec, &identity("app.ini"))
            .validate()
            .unwrap_err();
        match &err {
            PlanError::HidesOurPath {
                vassal,
                key,
                value,
                path,
                ..
            } => {
                assert_eq!(vassal, "app.ini");
                assert_eq!(*key, "docker-mount");
                assert_eq!(*value, format!("/srv/data:{hidden}:ro"));
                assert_eq!(path, "/run/uwsgi/proxy.sock");
            }
            other => panic!("{hidden}: {other:?}"),
        }
    }
    let mut tmpfs = spec.clone();
    tmpfs.tmpfs = vec![("/run/uwsgi".into(), "size=1m".into())];
    let err = ContainerPlan::new(tmpfs, &identity("app.ini"))
        .validate()
        .unwrap_err();
    assert!(
        matches!(&err, PlanError::HidesOurPath { key: "docker-tmpfs", value, .. } if value == "/run/uwsgi:size=1m"),
        "{err:?}"
    );
    // A sibling that merely shares a prefix hides nothing.
    for fine in ["/run2", "/run/uwsgi2", "/run/uwsgi/proxy.sock.d"] {
        let mut spec = spec.clone();
        spec.mounts = vec![mount(fine)];
        assert_eq!(
            ContainerPlan::new(spec, &identity("app.ini")).validate(),
            Ok(()),
            "{fine}"
        );
    }
    // The default path, `/NAME.sock`, is hidden only by `/` or itself.
    let mut spec = VassalSpec::with_image("img");
    spec.mounts = vec![mount("/app.ini.sock")];
    assert!(ContainerPlan::new(spec, &identity("app.ini"))
        .validate()
        .is_err());
    // In launcher mode the launcher's path is ours too.
    let mut spec = VassalSpec::with_image("img");
    spec.handoff = HandoffMode::Launcher;
    spec.mounts = vec![mount(LAUNCHER_CONTAINER_PATH)];
    let err = ContainerPlan::new(spec, &identity("app.ini"))
        .validate()
        .unwrap_err();
    assert!(
        matches!(&err, PlanError::HidesOurPath { path, .. } if path == LAUNCHER_CONTAINER_PATH),
        "{err:?}"
    );
}

#[test]
fn repeated_user_labels_keep_the_first() {
    let mut spec = VassalSpec::with_image("img");
    spec.labels = vec![
        ("a".into(), "first".into()),
        ("b".into(), "x".into()),
        ("a".into(), "second".into()),
        (labels::VASSAL.into(), "forged".into()),
    ];
    let plan = ContainerPlan::new(spec, &identity("app.ini"));
    let of = |key: &str| -> Vec<&str> {
        plan.labels
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(of("a"), ["first"]);
    assert_eq!(of("b"), ["x"]);
    assert_eq!(of(labels::VASSAL), ["app.ini"]);
    assert_eq!(plan.labels.len(), 7);
}

#[test]
fn a_cidfile_is_recorded_in_a_label() {
    let mut spec = VassalSpec::with_image("app");
    let plan = ContainerPlan::new(spec.clone(), &identity("app.ini"));
    assert!(!plan.labels.iter().any(|(k, _)| k == labels::CIDFILE));
    assert!(!plan.proxy_in_private_dir, "the runtime decides that");
    spec.cidfile = Some("/run/app.cid".into());
    let plan = ContainerPlan::new(spec, &identity("app.ini"));
    assert!(plan
        .labels
        .contains(&(labels::CIDFILE.to_owned(), "/run/app.cid".to_owned())));
    assert!(plan.labels.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
}

#[test]
fn rollover_names_alternate_and_are_never_another_vassals() {
    for (prefix, vassal) in [
        (None, "app.ini"),
        (Some("t1-"), "app.ini"),
        (None, "my app.ini"),
        (None, &"x".repeat(200)[..]),
    ] {
        let primary = prefixed_container_name(prefix, vassal);
        let sibling = sibling_container_name(prefix, vassal, &primary);
        assert_ne!(sibling, primary);
        assert!(docker_accepts(&sibling), "{sibling}");
        assert!(sibling.starts_with(prefix.unwrap_or_default()));
        assert!(sibling.len() <= prefix.map_or(0, str::len) + MAX_CONTAINER_NAME);
        // Each rollover moves to the other name.
        assert_eq!(sibling_container_name(prefix, vassal, &sibling), primary);
        // No vassal name maps there: names hold no NUL, so the sibling's input is one no
        // file can have, and its hash is not any real name's.
        for other in [
            format!("{vassal}_next"),
            format!("{vassal}\u{1}next"),
            sibling.clone(),
        ] {
            assert_ne!(
                prefixed_container_name(prefix, &other),
                sibling,
                "{other:?}"
            );
        }
    }
}
