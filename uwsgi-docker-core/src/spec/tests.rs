use super::*;
use proptest::prelude::*;

fn parse(text: &str) -> Result<Option<VassalSpec>, SpecError> {
    parse_vassal("app.ini", text.as_bytes())
}

fn spec(emperor_lines: &str) -> VassalSpec {
    parse(&format!("[emperor]\ndocker-image = img\n{emperor_lines}\n"))
        .unwrap()
        .unwrap()
}

fn bad(emperor_lines: &str) -> SpecError {
    parse(&format!("[emperor]\ndocker-image = img\n{emperor_lines}\n")).unwrap_err()
}

fn expected_of(err: &SpecError) -> &str {
    match err {
        SpecError::BadValue { expected, .. } => expected,
        other => panic!("not a BadValue: {other:?}"),
    }
}

// The seed README's vassals, verbatim (shared with the example and the plugin's e2e tests).
const SEED_QUICKSTART: &str = include_str!("../../tests/seed/quickstart.ini");

const SEED_SOCKET: &str = include_str!("../../tests/seed/socket.ini");

const SEED_PROXY: &str = include_str!("../../tests/seed/proxy.ini");

const SEED_FORKPTY: &str = include_str!("../../tests/seed/forkpty.ini");

#[test]
fn seed_quickstart_vassal() {
    let spec = parse(SEED_QUICKSTART).unwrap().unwrap();
    let mut want = VassalSpec::with_image("psgi001");
    want.ports = vec![
        PortMapping {
            host_ip: None,
            host_port: Some(9001),
            container_port: 3031,
            protocol: Protocol::Tcp,
        },
        PortMapping {
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(5001),
            container_port: 5000,
            protocol: Protocol::Tcp,
        },
    ];
    assert_eq!(spec, want);
}

#[test]
fn seed_socket_and_proxy_vassals() {
    let socket = ListenAddress::Unix("/var/run/example.com.socket".into());
    let mut want = VassalSpec::with_image("psgi001");
    want.socket = Some(socket);
    assert_eq!(parse(SEED_SOCKET).unwrap().unwrap(), want);

    want.proxy = Some(ProxyPaths {
        host: "/var/run/foobar.sock".into(),
        container: Some("/tmp/foosocket".into()),
    });
    assert_eq!(parse(SEED_PROXY).unwrap().unwrap(), want);
}

#[test]
fn seed_forkpty_vassal() {
    let spec = parse(SEED_FORKPTY).unwrap().unwrap();
    assert_eq!(
        spec.mounts,
        vec![Mount {
            host: "/pty/foo".into(),
            container: "/pty".into(),
            read_only: false,
            explicit_mode: false,
        }]
    );
    assert_eq!(
        spec.socket,
        Some(ListenAddress::Unix("/var/run/example.com.socket".into()))
    );
}

#[test]
fn every_attribute() {
    let text = "[emperor]
docker-image = registry.example/app:1.2
docker-socket = /run/app-listen.sock
docker-port = 9001:3031
docker-port = [::1]:9002:3032/udp
docker-port = :3033
docker-workdir = /srv/app
docker-mount = /data:/data:ro
docker-mount = /logs:/var/log:rw
docker-network-mode = backend-net
docker-hostname = web-1.example
docker-proxy = /run/app.sock
docker-env = A=1
docker-env = PATH=/bin:/usr/bin
docker-env = EMPTY=
docker-user = www-data:www-data
docker-memory = 512M
docker-swap = 1g
docker-cidfile = /run/app.cid
docker-dns = 8.8.8.8
docker-dns = 2001:4860:4860::8888
docker-label = team=web
docker-label = tier = front
docker-cpus = 1.5
docker-pids-limit = 100
docker-read-only = yes
docker-cap-drop = cap_net_raw
docker-cap-drop = ALL
docker-cap-add = net_bind_service
docker-cap-add = CAP_CHOWN
docker-no-new-privileges = yes
docker-socket-owner = alice:www-data
docker-tmpfs = /tmp:rw,size=64m
docker-tmpfs = /run
docker-stop-signal = quit
docker-stop-timeout = 20
docker-tty = off
docker-uwsgi = /usr/local/bin/uwsgi
docker-handoff = launcher
docker-healthcheck = [\"/usr/bin/uwsgi\", \"--version\"]
docker-health-interval = 2s
docker-health-timeout = 500ms
docker-health-retries = 3
docker-health-start-period = 1m
docker-health-restart = true
docker-pull = always
";
    let spec = parse(text).unwrap().unwrap();
    let want = VassalSpec {
        image: "registry.example/app:1.2".into(),
        socket: Some(ListenAddress::Unix("/run/app-listen.sock".into())),
        ports: vec![
            PortMapping {
                host_ip: None,
                host_port: Some(9001),
                container_port: 3031,
                protocol: Protocol::Tcp,
            },
            PortMapping {
                host_ip: Some("::1".into()),
                host_port: Some(9002),
                container_port: 3032,
                protocol: Protocol::Udp,
            },
            PortMapping {
                host_ip: None,
                host_port: None,
                container_port: 3033,
                protocol: Protocol::Tcp,
            },
        ],
        workdir: Some("/srv/app".into()),
        mounts: vec![
            Mount {
                host: "/data".into(),
                container: "/data".into(),
                read_only: true,
                explicit_mode: true,
            },
            Mount {
                host: "/logs".into(),
                container: "/var/log".into(),
                read_only: false,
                explicit_mode: true,
            },
        ],
        network_mode: Some("backend-net".into()),
        hostname: Some("web-1.example".into()),
        proxy: Some(ProxyPaths {
            host: "/run/app.sock".into(),
            container: None,
        }),
        env: vec![
            ("A".into(), "1".into()),
            ("PATH".into(), "/bin:/usr/bin".into()),
            ("EMPTY".into(), "".into()),
        ],
        user: Some("www-data:www-data".into()),
        memory: Some(512 << 20),
        swap: Some(1 << 30),
        cidfile: Some("/run/app.cid".into()),
        dns: vec!["8.8.8.8".into(), "2001:4860:4860::8888".into()],
        labels: vec![
            ("team".into(), "web".into()),
            ("tier".into(), "front".into()),
        ],
        nano_cpus: Some(1_500_000_000),
        pids_limit: Some(100),
        read_only: true,
        cap_drop: vec!["NET_RAW".into(), "ALL".into()],
        cap_add: vec!["NET_BIND_SERVICE".into(), "CHOWN".into()],
        no_new_privileges: true,
        socket_owner: Some("alice:www-data".into()),
        tmpfs: vec![
            ("/tmp".into(), "rw,size=64m".into()),
            ("/run".into(), "".into()),
        ],
        stop_signal: "SIGQUIT".into(),
        stop_timeout: Some(20),
        tty: false,
        uwsgi: "/usr/local/bin/uwsgi".into(),
        handoff: HandoffMode::Launcher,
        health: HealthSpec {
            test: Some(HealthTest::Exec(vec![
                "/usr/bin/uwsgi".into(),
                "--version".into(),
            ])),
            interval_ns: Some(2_000_000_000),
            timeout_ns: Some(500_000_000),
            retries: Some(3),
            start_period_ns: Some(60_000_000_000),
            restart: true,
        },
        pull: Some(crate::spec::PullPolicy::Always),
    };
    assert_eq!(spec, want);
}

#[test]
fn defaults() {
    let spec = spec("");
    assert_eq!(spec.stop_signal, "SIGINT");
    assert!(spec.tty);
    assert!(!spec.read_only);
    assert!(spec.cap_add.is_empty());
    assert!(!spec.no_new_privileges);
    assert_eq!(spec.socket_owner, None);
    assert_eq!(spec.uwsgi, "uwsgi");
    assert_eq!(spec.handoff, HandoffMode::Auto);
    assert_eq!(spec, VassalSpec::with_image("img"));
}

#[test]
fn cap_add_repeats_no_new_privileges_and_socket_owner_do_not() {
    let s = spec("docker-cap-add = sys_ptrace\ndocker-cap-add = NET_ADMIN");
    assert_eq!(
        s.cap_add,
        vec!["SYS_PTRACE".to_string(), "NET_ADMIN".into()]
    );
    assert!(spec("docker-no-new-privileges = on").no_new_privileges);
    assert!(!spec("docker-no-new-privileges = 0").no_new_privileges);
    assert_eq!(
        spec("docker-socket = /run/app.sock\ndocker-socket-owner = www-data")
            .socket_owner
            .as_deref(),
        Some("www-data")
    );
    for key in ["docker-no-new-privileges = 1", "docker-socket-owner = a"] {
        let err = bad(&format!("{key}\n{key}"));
        assert!(matches!(err, SpecError::Repeated { .. }), "{key}: {err:?}");
    }
    let mount = |text: &str| spec(&format!("docker-mount = {text}")).mounts[0].clone();
    assert!(!mount("/a:/b").explicit_mode);
    assert!(mount("/a:/b:rw").explicit_mode && !mount("/a:/b:rw").read_only);
    assert!(mount("/a:/b:ro").explicit_mode && mount("/a:/b:ro").read_only);
}

#[test]
fn no_docker_keys_is_not_a_docker_vassal() {
    assert_eq!(parse("[uwsgi]\nsocket = :3031\n").unwrap(), None);
    assert_eq!(parse("[emperor]\nsome-other = 1\n").unwrap(), None);
    // docker-* keys outside [emperor] are uWSGI's business.
    assert_eq!(parse("[uwsgi]\ndocker-image = x\n").unwrap(), None);
    assert_eq!(parse("").unwrap(), None);
}

#[test]
fn other_emperor_keys_are_ignored() {
    let s = parse("[emperor]\nfoo = bar\nbare-flag\ndocker-image = img\n")
        .unwrap()
        .unwrap();
    assert_eq!(s.image, "img");
}

#[test]
fn weird_uwsgi_section_still_parses() {
    let text = "[uwsgi]
master
socket = %d/app.sock
route-run = return:200
plugin = psgi
plugin = router_static
key:with:colons = \"quoted\" ; not a comment
\\ backslash \\
  indented = 1
[broken section
= no key
[emperor]
docker-image = img
# a comment
; another
docker-env = X=\"kept quotes\"
[uwsgi]
more = stuff
";
    let spec = parse(text).unwrap().unwrap();
    assert_eq!(spec.image, "img");
    // uWSGI does not strip quotes, and neither do we.
    assert_eq!(spec.env, vec![("X".into(), "\"kept quotes\"".into())]);
}

#[test]
fn repeated_emperor_sections_are_merged_crlf_is_fine() {
    let text =
        "[emperor]\r\ndocker-image = img\r\n[uwsgi]\r\nx=1\r\n[emperor]\r\ndocker-port = 1:2\r\n";
    let spec = parse(text).unwrap().unwrap();
    assert_eq!(spec.image, "img");
    assert_eq!(spec.ports.len(), 1);
}

#[test]
fn bom_is_skipped() {
    let spec = parse_vassal("app.ini", b"\xEF\xBB\xBF[emperor]\ndocker-image=img\n")
        .unwrap()
        .unwrap();
    assert_eq!(spec.image, "img");
}

#[test]
fn not_utf8_in_emperor_names_the_offset() {
    let text = b"[emperor]\ndocker-image = im\xffg\n";
    let err = parse_vassal("app.ini", text).unwrap_err();
    assert_eq!(
        err,
        SpecError::NotUtf8 {
            vassal: "app.ini".into(),
            offset: 27
        }
    );
    assert_eq!(text.get(27), Some(&0xff));
    assert_eq!(
        err.to_string(),
        "vassal app.ini: the file is not UTF-8 text (byte 27); save it as UTF-8"
    );
}

#[test]
fn not_utf8_elsewhere_is_uwsgis_business() {
    let text = b"[uwsgi]\nenv = caf\xe9\n[emperor]\ndocker-image = img\n";
    assert!(parse_vassal("app.ini", text).unwrap().is_some());
}

#[test]
fn missing_image() {
    let err = parse("[emperor]\ndocker-port = 1:2\n").unwrap_err();
    assert!(matches!(&err, SpecError::Missing { key, .. } if key == "docker-image"));
    assert_eq!(
        err.to_string(),
        "vassal app.ini: docker-image is required when any docker-* attribute is given \
         (docker-port = \"1:2\"); add docker-image = IMAGE or remove the docker-* attributes"
    );
}

#[test]
fn swap_needs_memory() {
    let err = bad("docker-swap = 1g");
    assert!(matches!(&err, SpecError::Missing { key, .. } if key == "docker-memory"));
    assert!(err
        .to_string()
        .starts_with("vassal app.ini: docker-memory is required when docker-swap is given"));
    assert_eq!(spec("docker-memory=1g\ndocker-swap=0").swap, Some(0));
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let err = bad("docker-mem = 1g");
    assert_eq!(
        err,
        SpecError::UnknownKey {
            vassal: "app.ini".into(),
            key: "docker-mem".into(),
            value: "1g".into(),
            suggestion: Some("docker-memory".into()),
        }
    );
    assert_eq!(
        err.to_string(),
        "vassal app.ini: unknown attribute docker-mem = \"1g\"; did you mean docker-memory?"
    );
    let err = bad("docker-potato-salad = 1");
    assert_eq!(
        err.to_string(),
        "vassal app.ini: unknown attribute docker-potato-salad = \"1\""
    );
    assert_eq!(nearest_key("docker-imgae"), Some("docker-image"));
    assert_eq!(nearest_key("docker-readonly"), Some("docker-read-only"));
}

#[test]
fn unknown_key_is_found_even_without_image() {
    let err = parse("[emperor]\ndocker-imag = x\n").unwrap_err();
    assert!(
        matches!(err, SpecError::UnknownKey { suggestion: Some(s), .. } if s == "docker-image")
    );
}

#[test]
fn single_valued_keys_may_not_repeat() {
    let err = bad("docker-memory = 1g\ndocker-memory = 2g");
    assert_eq!(
        err.to_string(),
        "vassal app.ini: docker-memory is given more than once (\"1g\", then \"2g\"); keep one"
    );
    let err =
        parse("[emperor]\ndocker-image = a\n[uwsgi]\n[emperor]\ndocker-image = b\n").unwrap_err();
    assert!(matches!(err, SpecError::Repeated { key, .. } if key == "docker-image"));
    for key in KNOWN_KEYS {
        if REPEATABLE_KEYS.contains(key) || *key == "docker-image" {
            continue;
        }
        let err = bad(&format!("{key} = x\n{key} = y"));
        assert!(
            matches!(&err, SpecError::Repeated { key: k, .. } if k == key),
            "{key}: {err:?}"
        );
    }
}

#[test]
fn bad_value_messages() {
    let err = bad("docker-port = 9001");
    assert_eq!(
        err.to_string(),
        "vassal app.ini: bad docker-port = \"9001\": expected HOSTPORT:CTRPORT, \
         HOSTIP:HOSTPORT:CTRPORT or [IPV6]:HOSTPORT:CTRPORT, optionally /tcp or /udp; \
         HOSTPORT may be empty for any port, ports are 1-65535"
    );
    let err = bad("docker-memory = lots");
    assert_eq!(
        err,
        SpecError::BadValue {
            vassal: "app.ini".into(),
            key: "docker-memory".into(),
            value: "lots".into(),
            expected: SIZE_EXPECTED_FOR_TESTS.into(),
        }
    );
}

const SIZE_EXPECTED_FOR_TESTS: &str =
    "expected a size in bytes, optionally with a k, m or g suffix (binary, 1k = 1024), e.g. 512m";

#[test]
fn every_key_rejects_garbage() {
    let cases: &[(&str, &str, &str)] = &[
        ("docker-image", "two words", "image reference"),
        ("docker-image", "", "image reference"),
        ("docker-socket", "relative.sock", "unix socket path"),
        ("docker-socket", "host:3031", "IP:PORT"),
        ("docker-socket", "127.0.0.1:0", "PORT 1-65535"),
        ("docker-socket", "::1:3031", "[IPV6]:PORT"),
        ("docker-port", "1:2:3:4", "HOSTPORT:CTRPORT"),
        ("docker-port", "1:70000", "1-65535"),
        ("docker-port", "1:2/sctp", "/udp"),
        ("docker-port", "localhost:1:2", "HOSTIP"),
        ("docker-port", "9001:", "CTRPORT"),
        ("docker-workdir", "srv", "absolute path"),
        ("docker-mount", "/a", "/HOST:/CONTAINER"),
        ("docker-mount", "a:/b", "absolute"),
        ("docker-mount", "/a:/b:rx", ":ro"),
        ("docker-network-mode", "container:", "container:NAME_OR_ID"),
        ("docker-network-mode", "my net", "network name"),
        ("docker-hostname", "-bad", "host name"),
        ("docker-hostname", "a..b", "host name"),
        ("docker-proxy", "rel.sock", "absolute"),
        ("docker-proxy", "/a:b", "absolute"),
        ("docker-env", "NOVALUE", "NAME=VALUE"),
        ("docker-env", "1A=x", "letters, digits and _"),
        ("docker-env", "UWSGI_EMPEROR_PROXY=/x", "UWSGI_EMPEROR_*"),
        ("docker-user", "a b", "USER:GROUP"),
        ("docker-user", "a:", "USER:GROUP"),
        ("docker-memory", "0", "at least 6m"),
        ("docker-memory", "6291455", "at least 6m"),
        ("docker-memory", "8589934592g", "signed 64-bit"),
        ("docker-swap", "8589934592g", "signed 64-bit"),
        ("docker-memory", "1t", "k, m or g"),
        ("docker-memory", "99999999999g", "2^64"),
        ("docker-swap", "-1", "k, m or g"),
        ("docker-cidfile", "cid", "absolute path"),
        ("docker-dns", "dns.google", "IPv4 or IPv6"),
        ("docker-label", "novalue", "KEY=VALUE"),
        ("docker-label", "=v", "non-empty KEY"),
        (
            "docker-label",
            "io.uwsgi-docker.managed=0",
            "io.uwsgi-docker.",
        ),
        ("docker-cpus", "0", "from 0.01"),
        (
            "docker-cpus",
            "0.009999999",
            "below 0.01 the container cannot start",
        ),
        ("docker-cpus", "0.0000000001", "9 decimals"),
        ("docker-cpus", "-1", "from 0.01"),
        ("docker-cpus", "9300000000", "signed 64-bit"),
        ("docker-cpus", "99999999999999999999", "signed 64-bit"),
        ("docker-image", "Psgi001", "must be lowercase"),
        ("docker-image", "app:", "the tag"),
        ("docker-image", "app@sha256:abc", "the digest"),
        ("docker-image", "-app", "component"),
        ("docker-mount", "/srv:/", "other than /"),
        ("docker-mount", "/srv:/a/..", "other than /"),
        ("docker-mount", "/srv:/.uwsgi-docker-launcher", "launcher"),
        ("docker-tmpfs", "/", "other than /"),
        ("docker-cpus", ".", "number of CPUs"),
        ("docker-pids-limit", "0", "-1 (unlimited)"),
        ("docker-pids-limit", "-2", "-1 (unlimited)"),
        ("docker-read-only", "maybe", "true/false"),
        ("docker-cap-drop", "NET RAW", "capability name"),
        ("docker-cap-drop", "", "capability name"),
        ("docker-cap-add", "SYS ADMIN", "capability name"),
        ("docker-no-new-privileges", "sure", "true/false"),
        ("docker-socket-owner", "www data", "USER:GROUP"),
        ("docker-tmpfs", "tmp", "/PATH"),
        ("docker-stop-signal", "SIGFOO", "signal name"),
        ("docker-stop-signal", "0", "number 1-31"),
        ("docker-stop-signal", "32", "number 1-31"),
        ("docker-stop-timeout", "-1", "whole number of seconds"),
        ("docker-stop-timeout", "1.5", "whole number of seconds"),
        ("docker-tty", "2", "true/false"),
        ("docker-uwsgi", "", "uWSGI binary"),
        (
            "docker-handoff",
            "magic",
            "native (uWSGI's own UWSGI_EMPEROR_PROXY), launcher",
        ),
    ];
    for (key, value, fragment) in cases {
        let err = if *key == "docker-image" {
            parse(&format!("[emperor]\n{key} = {value}\n")).unwrap_err()
        } else {
            bad(&format!("{key} = {value}"))
        };
        match &err {
            SpecError::BadValue {
                vassal,
                key: k,
                value: v,
                expected,
            } => {
                assert_eq!(vassal, "app.ini");
                assert_eq!(k, key);
                assert_eq!(v, value);
                assert!(
                    expected.contains(fragment),
                    "{key} = {value}: {expected:?} lacks {fragment:?}"
                );
                assert!(err.to_string().contains(&format!("{key} = {value:?}")));
            }
            other => panic!("{key} = {value}: {other:?}"),
        }
    }
    let err = bad("docker-label = a=1\ndocker-label = a=2");
    assert!(expected_of(&err).contains("a is already set"));
}

#[test]
fn socket_forms() {
    let tcp = |ip: &str, port| {
        Some(ListenAddress::Tcp {
            ip: ip.into(),
            port,
        })
    };
    assert_eq!(spec("docker-socket = :3031").socket, tcp("", 3031));
    assert_eq!(
        spec("docker-socket = 0.0.0.0:80").socket,
        tcp("0.0.0.0", 80)
    );
    assert_eq!(spec("docker-socket = [::]:3031").socket, tcp("::", 3031));
    let long = format!("/{}", "s".repeat(107));
    assert!(expected_of(&bad(&format!("docker-socket = {long}"))).contains("107 bytes"));
}

#[test]
fn sizes() {
    for (text, bytes) in [
        ("1", 1u64),
        ("10b", 10),
        ("2k", 2048),
        ("2KB", 2048),
        ("3m", 3 << 20),
        ("3Mb", 3 << 20),
        ("1G", 1 << 30),
        ("1gb", 1 << 30),
    ] {
        assert_eq!(parse_size(text), Ok(bytes), "{text}");
    }
    for text in ["", "k", "1t", "-1", "1.5g", "1 g"] {
        assert_eq!(parse_size(text), Err(SizeError::Malformed), "{text:?}");
    }
    assert_eq!(parse_size("99999999999g"), Err(SizeError::TooLarge));
    assert!(SizeError::TooLarge
        .to_string()
        .ends_with("more than 2^64 bytes"));
    assert_eq!(format_size(0), "0");
    assert_eq!(format_size(1536), "1536");
    assert_eq!(format_size(3 << 20), "3m");
}

#[test]
fn cpus() {
    for (text, nanos) in [
        ("1", 1_000_000_000u64),
        ("0.5", 500_000_000),
        (".25", 250_000_000),
        ("2.", 2_000_000_000),
        ("0.01", 10_000_000),
        ("0.010000001", 10_000_001),
        ("9223372036.854775807", i64::MAX as u64),
    ] {
        assert_eq!(
            spec(&format!("docker-cpus={text}")).nano_cpus,
            Some(nanos),
            "{text}"
        );
    }
}

#[test]
fn signals() {
    for (text, name) in [
        ("INT", "SIGINT"),
        ("sigquit", "SIGQUIT"),
        ("SIGTERM", "SIGTERM"),
        ("3", "SIGQUIT"),
        ("15", "SIGTERM"),
        ("31", "SIGSYS"),
        ("1", "SIGHUP"),
    ] {
        assert_eq!(
            spec(&format!("docker-stop-signal={text}")).stop_signal,
            name
        );
    }
}

#[test]
fn booleans() {
    for (text, value) in [
        ("true", true),
        ("Yes", true),
        ("ON", true),
        ("1", true),
        ("false", false),
        ("no", false),
        ("off", false),
        ("0", false),
    ] {
        assert_eq!(spec(&format!("docker-read-only={text}")).read_only, value);
        assert_eq!(spec(&format!("docker-tty={text}")).tty, value);
    }
}

#[test]
fn network_modes() {
    for mode in ["bridge", "host", "none", "container:abc123", "my_net.1"] {
        assert_eq!(
            spec(&format!("docker-network-mode={mode}"))
                .network_mode
                .as_deref(),
            Some(mode)
        );
    }
}

#[test]
fn bare_key_in_emperor_has_empty_value() {
    let err = bad("docker-workdir");
    assert!(matches!(err, SpecError::BadValue { value, .. } if value.is_empty()));
}

#[test]
fn docker_host() {
    let env = |v: Option<&'static str>| {
        move |k: &str| {
            (k == "DOCKER_HOST")
                .then_some(v)
                .flatten()
                .map(String::from)
        }
    };
    assert_eq!(
        EmperorSettings::from_env(env(None)).unwrap(),
        EmperorSettings::default()
    );
    assert_eq!(
        EmperorSettings::from_env(env(Some(""))).unwrap(),
        EmperorSettings::default()
    );
    assert_eq!(
        EmperorSettings::from_env(env(Some("unix:///run/user/1000/docker.sock")))
            .unwrap()
            .daemon_socket,
        "/run/user/1000/docker.sock"
    );
    let err = EmperorSettings::from_env(env(Some("tcp://10.0.0.1:2375"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "DOCKER_HOST=\"tcp://10.0.0.1:2375\": only unix sockets are supported; \
         use unix:///path/to/docker.sock or unset DOCKER_HOST"
    );
    assert!(matches!(
        EmperorSettings::from_env(env(Some("unix://docker.sock"))),
        Err(SettingsError::RelativeDockerHost { .. })
    ));
}

fn arb_port_mapping() -> impl Strategy<Value = PortMapping> {
    let ip = prop_oneof![
        Just(None),
        any::<[u8; 4]>().prop_map(|o| Some(core::net::Ipv4Addr::from(o).to_string())),
        any::<[u16; 8]>().prop_map(|s| Some(core::net::Ipv6Addr::from(s).to_string())),
    ];
    (
        ip,
        proptest::option::of(1u16..),
        1u16..,
        prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
    )
        .prop_map(
            |(host_ip, host_port, container_port, protocol)| PortMapping {
                host_ip,
                host_port,
                container_port,
                protocol,
            },
        )
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_vassal("fuzz.ini", &bytes);
    }

    #[test]
    fn parse_never_panics_on_emperor_lines(
        lines in proptest::collection::vec(
            (proptest::sample::select(KNOWN_KEYS), "[ -~]{0,24}"), 0..8)
    ) {
        let mut text = String::from("[emperor]\n");
        for (k, v) in &lines {
            text.push_str(&format!("{k} = {v}\n"));
        }
        let _ = parse_vassal("fuzz.ini", text.as_bytes());
    }

    #[test]
    fn port_round_trips(mapping in arb_port_mapping()) {
        let text = mapping.to_string();
        prop_assert_eq!(values::port_mapping(&text), Ok(mapping));
    }

    #[test]
    fn size_round_trips(bytes in any::<u64>()) {
        prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
    }

    #[test]
    fn listen_address_round_trips(ip in proptest::option::of(any::<core::net::IpAddr>()), port in 1u16..) {
        let address = ListenAddress::Tcp { ip: ip.map(|i| i.to_string()).unwrap_or_default(), port };
        prop_assert_eq!(values::listen_address(&address.to_string()), Ok(address));
    }
}

#[test]
fn a_colon_separates_nothing() {
    // uWSGI splits only at `=`: this line is the key `docker-image: foo`, with no value.
    let err = parse("[emperor]\ndocker-image: foo\n").unwrap_err();
    match &err {
        SpecError::UnknownKey {
            key,
            value,
            suggestion,
            ..
        } => {
            assert_eq!(key, "docker-image: foo");
            assert_eq!(value, "");
            assert!(
                suggestion
                    .as_deref()
                    .is_some_and(|s| s.starts_with("docker-image = foo ")),
                "{suggestion:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // So it is not a Docker vassal's image, whatever a generic ini parser thinks.
    assert_eq!(parse("[emperor]\nx: docker-image=img\n"), Ok(None));
    // A `:` before the `=` stays in the key, one after it in the value.
    let err = parse("[emperor]\ndocker-image = img\ndocker-env: A=1\n").unwrap_err();
    assert!(
        matches!(&err, SpecError::UnknownKey { key, value, .. } if key == "docker-env: A" && value == "1"),
        "{err:?}"
    );
    assert_eq!(
        spec("docker-env = PATH=/bin:/usr/bin").env,
        vec![("PATH".into(), "/bin:/usr/bin".into())]
    );
}

#[test]
fn a_section_line_loses_its_last_character() {
    // `[emperor` names `empero`: not our section.
    assert_eq!(parse("[emperor\ndocker-image = img\n"), Ok(None));
    assert_eq!(parse("[emperor]]\ndocker-image = img\n"), Ok(None));
    assert_eq!(parse("[ emperor]\ndocker-image = img\n"), Ok(None));
    // And whatever the last character is, it goes: uWSGI reads `[emperor;` as `[emperor]`.
    assert_eq!(
        parse("[emperor;\ndocker-image = img\n")
            .unwrap()
            .map(|s| s.image),
        Some("img".into())
    );
    // Trailing blanks go before that.
    assert!(parse("[emperor] \t\r\ndocker-image = img\n")
        .unwrap()
        .is_some());
    // A later broken header ends the section.
    assert_eq!(
        parse("[emperor]\ndocker-image = img\n[uwsgi\ndocker-port = 1:2\n")
            .unwrap()
            .unwrap()
            .ports,
        vec![]
    );
}

#[test]
fn only_spaces_tabs_and_cr_are_trimmed() {
    assert_eq!(
        spec("docker-workdir =\t /srv \t\r").workdir,
        Some("/srv".into())
    );
    // uWSGI keeps a form feed, so the value is not a valid image any more.
    let err = parse("[emperor]\ndocker-image = img\u{c}\n").unwrap_err();
    assert!(expected_of(&err).contains("image reference"), "{err:?}");
}

#[test]
fn image_references_follow_dockers_grammar() {
    let hex = "0123456789abcdef".repeat(4);
    let good = [
        "psgi001".to_owned(),
        "uwsgi-docker-test:latest".into(),
        "registry.example/app:1.2".into(),
        "Registry.Example:5000/team/app".into(),
        "localhost/app".into(),
        "localhost:5000/app".into(),
        "localhost:5000".into(),
        "[::1]:5000/app:v1".into(),
        "a/b/c".into(),
        "a__b".into(),
        "a-b".into(),
        "a---b".into(),
        "a.b_c".into(),
        "app:_Tag.1-x".into(),
        format!("app:{}", "t".repeat(128)),
        format!("app@sha256:{hex}"),
        format!("registry.example/app:1.2@sha256:{hex}"),
        format!("sha256:{hex}"),
        "n".repeat(255),
    ];
    for image in &good {
        let parsed = parse(&format!("[emperor]\ndocker-image = {image}\n"));
        assert_eq!(parsed.map(|s| s.map(|s| s.image)), Ok(Some(image.clone())));
    }
    let bad_ones = [
        "UPPER",
        "team/App",
        "app:",
        "app:-tag",
        ":tag",
        "/app",
        "app/",
        "a//b",
        "a..b",
        "a___b",
        "a_.b",
        "-a",
        "a-",
        "app@sha256:xyz",
        "app@sha256",
        "app@@x",
        "app:tag:more",
        "registry.example:port/app",
        "registry-.example/app",
        "[::1/app",
        "[nope]:5000/app",
        "a b",
        "app;rm",
    ];
    for image in bad_ones {
        let err = parse(&format!("[emperor]\ndocker-image = {image}\n")).unwrap_err();
        assert!(
            expected_of(&err).starts_with("expected an image reference"),
            "{image}: {err:?}"
        );
    }
    for image in [format!("app:{}", "t".repeat(129)), "n".repeat(256)] {
        assert!(parse(&format!("[emperor]\ndocker-image = {image}\n")).is_err());
    }
    let err = parse("[emperor]\ndocker-image = MyApp\n").unwrap_err();
    assert!(expected_of(&err).ends_with("must be lowercase"), "{err}");
}

#[test]
fn memory_within_what_the_daemon_takes() {
    assert_eq!(spec("docker-memory = 6m").memory, Some(MIN_MEMORY));
    assert_eq!(
        spec("docker-memory = 8589934591g").memory,
        Some(8_589_934_591 << 30)
    );
    assert!(expected_of(&bad("docker-memory = 8589934592g")).contains("signed 64-bit"));
    assert!(expected_of(&bad("docker-memory = 5m")).contains("under 6 MiB"));
}

#[test]
fn memory_plus_swap_must_fit_docker() {
    assert_eq!(
        spec("docker-memory = 1g\ndocker-swap = 8589934590g").swap,
        Some(8_589_934_590 << 30)
    );
    let err = bad("docker-memory = 1g\ndocker-swap = 8589934591g");
    match &err {
        SpecError::Conflict {
            key,
            value,
            other_key,
            other_value,
            why,
            ..
        } => {
            assert_eq!((*key, value.as_str()), ("docker-swap", "8589934591g"));
            assert_eq!((*other_key, other_value.as_str()), ("docker-memory", "1g"));
            assert!(why.contains("memory plus swap"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().starts_with(
        "vassal app.ini: docker-swap = \"8589934591g\" cannot go with docker-memory = \"1g\""
    ));
}

#[test]
fn a_mount_destination_is_taken_once() {
    let s = spec("docker-mount = /a:/data\ndocker-mount = /b:/data2\ndocker-tmpfs = /tmp");
    assert_eq!(s.mounts.len(), 2);
    for lines in [
        "docker-mount = /a:/data\ndocker-mount = /b:/data/",
        "docker-mount = /a:/data\ndocker-mount = /b://data:ro",
        "docker-mount = /a:/data\ndocker-tmpfs = /data:size=1m",
        "docker-tmpfs = /data\ndocker-mount = /b:/x/../data",
        "docker-tmpfs = /data\ndocker-tmpfs = /data/.",
    ] {
        let err = bad(lines);
        let expected = expected_of(&err);
        assert!(
            expected.contains("/data is already taken by docker-"),
            "{lines}: {expected}"
        );
    }
    let err = bad("docker-mount = /a:/data\ndocker-tmpfs = /data");
    assert!(
        matches!(&err, SpecError::BadValue { key, value, expected, .. }
            if key == "docker-tmpfs" && value == "/data" && expected.ends_with("docker-mount = /a:/data")),
        "{err:?}"
    );
}

#[test]
fn joining_a_containers_network_excludes_hostname_dns_and_ports() {
    assert_eq!(
        spec("docker-network-mode = container:db").network_mode,
        Some("container:db".into())
    );
    // Host networking with a host name is fine for today's daemons.
    assert!(spec("docker-network-mode = host\ndocker-hostname = web")
        .hostname
        .is_some());
    for (line, key) in [
        ("docker-hostname = web", "docker-hostname"),
        ("docker-dns = 1.1.1.1", "docker-dns"),
        ("docker-port = 9001:3031", "docker-port"),
    ] {
        let err = bad(&format!("docker-network-mode = container:db\n{line}"));
        match &err {
            SpecError::Conflict {
                vassal,
                key: k,
                other_key,
                other_value,
                why,
                ..
            } => {
                assert_eq!(vassal, "app.ini");
                assert_eq!(*k, key);
                assert_eq!(*other_key, "docker-network-mode");
                assert_eq!(other_value, "container:db");
                assert!(why.contains(&format!("remove {key}")), "{why}");
            }
            other => panic!("{line}: {other:?}"),
        }
    }
}

#[test]
fn a_file_that_cannot_be_pushed_is_refused() {
    assert_eq!(check_pushable("app.ini", MAX_PUSHED_CONFIG), Ok(()));
    let err = check_pushable("app.ini", MAX_PUSHED_CONFIG + 1).unwrap_err();
    assert_eq!(
        err,
        SpecError::TooLargeToPush {
            vassal: "app.ini".into(),
            size: 65_536
        }
    );
    let text = err.to_string();
    assert!(
        text.starts_with("vassal app.ini: the file is 65536 bytes")
            && text.contains("at most 65535 bytes"),
        "{text}"
    );
}

#[test]
fn docker_socket_owner_needs_a_unix_docker_socket() {
    let s = spec("docker-socket = /run/app.sock\ndocker-socket-owner = root:www-data");
    assert_eq!(s.socket_owner.as_deref(), Some("root:www-data"));
    assert_eq!(
        spec("docker-socket = /run/app.sock\ndocker-socket-owner = 33")
            .socket_owner
            .as_deref(),
        Some("33")
    );
    assert!(matches!(
        bad("docker-socket = 127.0.0.1:3031\ndocker-socket-owner = www-data"),
        SpecError::Missing { .. }
    ));
    assert!(matches!(
        bad("docker-socket-owner = www-data"),
        SpecError::Missing { .. }
    ));
    let err = bad("docker-socket = /run/app.sock\ndocker-socket-owner = www data");
    assert!(expected_of(&err).contains("USER:GROUP"), "{err}");
}

#[test]
fn healthchecks_shell_exec_none_and_bad_values() {
    let shell = spec("docker-healthcheck = curl -fs http://127.0.0.1:3031/ || exit 1");
    assert_eq!(
        shell.health.test.as_ref().map(HealthTest::to_docker),
        Some(vec![
            "CMD-SHELL".to_owned(),
            "curl -fs http://127.0.0.1:3031/ || exit 1".to_owned()
        ])
    );
    assert!(!shell.health.restart);
    let none = spec("docker-healthcheck = none");
    assert_eq!(none.health.test, Some(HealthTest::Disabled));
    assert_eq!(
        none.health.test.as_ref().map(HealthTest::to_docker),
        Some(vec!["NONE".to_owned()])
    );
    assert!(!spec("").health.is_set());
    assert!(spec("docker-health-retries = 2").health.is_set());
    for (line, key) in [
        ("docker-health-interval = 0s", "docker-health-interval"),
        ("docker-health-interval = 5x", "docker-health-interval"),
        (
            "docker-health-timeout = 99999999999h",
            "docker-health-timeout",
        ),
        ("docker-health-retries = 0", "docker-health-retries"),
        ("docker-healthcheck = [1, 2]", "docker-healthcheck"),
        ("docker-healthcheck = []", "docker-healthcheck"),
        ("docker-health-restart = maybe", "docker-health-restart"),
    ] {
        let err = bad(line);
        assert!(
            matches!(&err, SpecError::BadValue { key: k, .. } if k == key),
            "{line}: {err}"
        );
    }
    let err = bad("docker-healthcheck = none\ndocker-health-restart = yes");
    let text = err.to_string();
    assert!(
        text.contains("docker-health-restart") && text.contains("never turns unhealthy"),
        "{text}"
    );
}
