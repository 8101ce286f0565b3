use super::*;
use std::collections::HashMap;

use proptest::prelude::*;

fn with(vars: &[(&str, &str)]) -> Result<RuntimeSettings, SettingsError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    RuntimeSettings::from_env(&|k| map.get(k).cloned())
}

/// Settings → env → settings.
fn round_trip(settings: &RuntimeSettings) -> RuntimeSettings {
    let env = settings.to_env();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    with(&pairs).expect("what to_env writes, from_env reads")
}

#[test]
fn defaults() {
    let s = with(&[]).expect("defaults");
    assert_eq!(s, RuntimeSettings::default());
    assert_eq!(s.emperor, EmperorSettings::default());
    assert!(s.log_prefix, "prefixed unless asked otherwise");
    assert_eq!(s.policy, None, "no tenant mode unless a policy is named");
    assert_eq!(s.runtime_dir, PathBuf::from("/run/uwsgi-docker"));
    assert_eq!(s.handoff_timeout_secs, DEFAULT_HANDOFF_TIMEOUT_SECS);
    assert_eq!(s.max_starts, 8);
    assert!(s.to_env().is_empty(), "defaults need no variables");
}

#[test]
fn every_variable_is_read_and_written_back() {
    let env = [
        (var::DAEMON_SOCKET, "/run/podman.sock"),
        (var::SOCKET_DIR, "/run/vassals"),
        (var::RUNTIME_DIR, "/var/lib/ud"),
        (var::REQUIRED, "1"),
        (var::DEBUG, "1"),
        (var::LOG_PREFIX, "0"),
        (var::SOCKET_MODE, "660"),
        (var::SOCKET_OWNER, "root:www-data"),
        (var::LAUNCHER, "/opt/ud/launcher"),
        (var::HANDOFF_TIMEOUT, "5"),
        (var::PULL, "always"),
        (var::PULL_TIMEOUT, "120"),
        (var::MAX_STARTS, "16"),
        (var::REGISTRY_AUTH, "/etc/uwsgi/registry.json"),
        (var::UWSGI, "/usr/bin/uwsgi-core"),
        (var::EMPEROR_ID, "host-a:emperor"),
        (var::POLICY, "/etc/uwsgi/policy.ini"),
        (var::NAME_PREFIX, "tenant1-"),
    ];
    let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
    assert_eq!(names, var::ALL, "every setting, in to_env's order");
    let s = with(&env).expect("valid");
    assert_eq!(s.emperor.daemon_socket, "/run/podman.sock");
    assert_eq!(s.emperor.socket_dir.as_deref(), Some("/run/vassals"));
    assert_eq!(s.runtime_dir, PathBuf::from("/var/lib/ud"));
    assert!(s.emperor.docker_required && s.emperor.debug && !s.log_prefix);
    assert_eq!(s.emperor.socket_mode, Some(0o660));
    assert_eq!(s.socket_owner.as_deref(), Some("root:www-data"));
    assert_eq!(s.launcher, Some(PathBuf::from("/opt/ud/launcher")));
    assert_eq!(s.handoff_timeout_secs, 5);
    assert_eq!(s.pull, crate::spec::PullPolicy::Always);
    assert_eq!(s.pull_timeout_secs, 120);
    assert_eq!(s.max_starts, 16);
    assert_eq!(
        s.registry_auth,
        Some(PathBuf::from("/etc/uwsgi/registry.json"))
    );
    assert_eq!(s.uwsgi, Some(PathBuf::from("/usr/bin/uwsgi-core")));
    assert_eq!(s.emperor_id.as_deref(), Some("host-a:emperor"));
    assert_eq!(s.policy, Some(PathBuf::from("/etc/uwsgi/policy.ini")));
    assert_eq!(s.emperor.name_prefix.as_deref(), Some("tenant1-"));
    let written: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    assert_eq!(s.to_env(), written);
    assert_eq!(round_trip(&s), s);
}

#[test]
fn spellings_of_yes_and_no_and_modes_are_read() {
    let s = with(&[(var::DEBUG, "yes"), (var::SOCKET_MODE, "0660")]).expect("valid");
    assert!(s.emperor.debug);
    assert_eq!(s.emperor.socket_mode, Some(0o660));
    assert_eq!(
        with(&[(var::DEBUG, "0")]).map(|s| s.emperor.debug),
        Ok(false)
    );
    assert_eq!(
        with(&[(var::LOG_PREFIX, "on")]).map(|s| s.log_prefix),
        Ok(true)
    );
    assert_eq!(
        with(&[(var::LOG_PREFIX, "")]).map(|s| s.log_prefix),
        Ok(false),
        "set but empty is no"
    );
}

#[test]
fn the_handoff_deadline_is_whole_seconds_within_bounds() {
    let secs = |v: &str| with(&[(var::HANDOFF_TIMEOUT, v)]).map(|s| s.handoff_timeout_secs);
    assert_eq!(secs("5"), Ok(5));
    assert_eq!(secs("3600"), Ok(3600));
    for bad in ["0", "3601", "-1", "1.5", "5s", "lots"] {
        assert!(
            matches!(secs(bad), Err(SettingsError::BadHandoffTimeout { .. })),
            "{bad}"
        );
    }
}

#[test]
fn the_pull_policy_and_deadline_are_checked() {
    let pull = |v: &str| with(&[(var::PULL, v)]).map(|s| s.pull);
    assert_eq!(pull("never"), Ok(crate::spec::PullPolicy::Never));
    assert!(matches!(
        pull("sometimes"),
        Err(SettingsError::BadPull { .. })
    ));
    let secs = |v: &str| with(&[(var::PULL_TIMEOUT, v)]).map(|s| s.pull_timeout_secs);
    assert_eq!(secs("86400"), Ok(86_400));
    for bad in ["0", "86401", "10m"] {
        assert!(
            matches!(secs(bad), Err(SettingsError::BadPullTimeout { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        with(&[(var::REGISTRY_AUTH, "auth.json")]),
        Err(SettingsError::NotAbsolute { .. })
    ));
}

#[test]
fn the_start_bound_is_a_whole_number_within_bounds() {
    let count = |v: &str| with(&[(var::MAX_STARTS, v)]).map(|s| s.max_starts);
    assert_eq!(count(""), Ok(DEFAULT_MAX_STARTS), "empty means unset");
    assert_eq!(count("0"), Ok(0), "0: no limit");
    assert_eq!(count("1024"), Ok(MAX_MAX_STARTS));
    let s = with(&[(var::MAX_STARTS, "16")]).expect("valid");
    assert_eq!(s.to_env(), [(var::MAX_STARTS, "16".to_owned())]);
    assert_eq!(round_trip(&s).max_starts, 16);
    for bad in ["1025", "-1", "x", "1.5"] {
        let err = with(&[(var::MAX_STARTS, bad)]).expect_err(bad);
        assert!(matches!(err, SettingsError::BadMaxStarts { .. }), "{bad}");
        assert_eq!(err.var(), var::MAX_STARTS, "{err}");
        assert!(err.to_string().contains(var::MAX_STARTS), "{err}");
    }
}

#[test]
fn docker_host_is_used_when_unix_and_our_variable_wins() {
    let s = with(&[("DOCKER_HOST", "unix:///run/user/1000/docker.sock")]).expect("valid");
    assert_eq!(s.emperor.daemon_socket, "/run/user/1000/docker.sock");
    assert_eq!(
        s.to_env(),
        [(var::DAEMON_SOCKET, "/run/user/1000/docker.sock".to_owned())],
        "passed on as our own variable"
    );
    let s = with(&[
        (var::DAEMON_SOCKET, "/run/podman.sock"),
        ("DOCKER_HOST", "tcp://ignored:2375"),
    ])
    .expect("valid");
    assert_eq!(s.emperor.daemon_socket, "/run/podman.sock");
    let err = with(&[("DOCKER_HOST", "tcp://1.2.3.4:2375")]).expect_err("tcp is refused");
    assert!(matches!(err, SettingsError::DockerHost(_)), "{err:?}");
    assert_eq!(err.var(), "DOCKER_HOST");
    let message = err.to_string();
    assert!(
        message.contains("tcp://1.2.3.4:2375") && message.contains("UWSGIDOCKER_DAEMON_SOCKET"),
        "{message}"
    );
}

#[test]
fn bad_values_are_refused_naming_the_variable() {
    let refused = |name: &'static str, value: &str| {
        let err = with(&[(name, value)]).expect_err(value);
        assert_eq!(err.var(), name, "{err}");
        assert!(err.to_string().contains(name), "{err}");
        err
    };
    assert!(matches!(
        refused(var::REQUIRED, "maybe"),
        SettingsError::BadBool { .. }
    ));
    assert!(matches!(
        refused(var::LOG_PREFIX, "maybe"),
        SettingsError::BadBool { .. }
    ));
    assert!(matches!(
        refused(var::SOCKET_MODE, "666x"),
        SettingsError::BadMode { .. }
    ));
    assert!(matches!(
        refused(var::SOCKET_MODE, "77777"),
        SettingsError::BadMode { .. }
    ));
    for name in [var::SOCKET_DIR, var::RUNTIME_DIR, var::POLICY] {
        assert!(matches!(
            refused(name, "rel/x"),
            SettingsError::NotAbsolute { .. }
        ));
    }
    for bad in ["www data", "root:", ":www-data", "a:b:c"] {
        assert!(matches!(
            refused(var::SOCKET_OWNER, bad),
            SettingsError::BadOwner { .. }
        ));
    }
    for bad in ["-x", "a/b", "a b", &"p".repeat(33)] {
        let err = refused(var::NAME_PREFIX, bad);
        assert!(
            matches!(err, SettingsError::BadNamePrefix { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("docker-name-prefix"), "{err}");
    }
    assert_eq!(
        with(&[(var::NAME_PREFIX, "")]).map(|s| s.emperor.name_prefix),
        Ok(None),
        "empty means unset"
    );
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9_.-]{1,12}"
}

fn absolute_path() -> impl Strategy<Value = String> {
    "(/[a-z0-9_.-]{1,8}){1,3}"
}

prop_compose! {
    fn any_settings()(
        daemon_socket in proptest::option::of(absolute_path()),
        socket_dir in proptest::option::of(absolute_path()),
        runtime_dir in proptest::option::of(absolute_path()),
        flags in any::<(bool, bool, bool)>(),
        socket_mode in proptest::option::of(0u32..=0o7777),
        socket_owner in proptest::option::of((text(), proptest::option::of(text()))),
        launcher in proptest::option::of(absolute_path()),
        handoff_timeout_secs in 1..=MAX_HANDOFF_TIMEOUT_SECS,
        max_starts in 0..=MAX_MAX_STARTS,
        uwsgi in proptest::option::of(text()),
        emperor_id in proptest::option::of("[a-z0-9:._-]{1,12}"),
        policy in proptest::option::of(absolute_path()),
        name_prefix in proptest::option::of("[a-z0-9][a-z0-9_.-]{0,10}"),
    ) -> RuntimeSettings {
        let mut s = RuntimeSettings::default();
        if let Some(socket) = daemon_socket {
            s.emperor.daemon_socket = socket;
        }
        s.emperor.socket_dir = socket_dir;
        if let Some(dir) = runtime_dir {
            s.runtime_dir = dir.into();
        }
        (s.emperor.docker_required, s.emperor.debug, s.log_prefix) = flags;
        s.emperor.socket_mode = socket_mode;
        s.socket_owner = socket_owner.map(|(user, group)| match group {
            Some(group) => format!("{user}:{group}"),
            None => user,
        });
        s.launcher = launcher.map(PathBuf::from);
        s.handoff_timeout_secs = handoff_timeout_secs;
        s.max_starts = max_starts;
        s.uwsgi = uwsgi.map(PathBuf::from);
        s.emperor_id = emperor_id;
        s.policy = policy.map(PathBuf::from);
        s.emperor.name_prefix = name_prefix;
        s
    }
}

proptest! {
    #[test]
    fn settings_survive_the_trip_through_the_environment(settings in any_settings()) {
        prop_assert_eq!(round_trip(&settings), settings);
    }
}
