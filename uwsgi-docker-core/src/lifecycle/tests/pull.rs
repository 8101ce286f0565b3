//! Pulling the image: after create's "no such image" (`missing`), before create
//! (`always`), never (`never`); each way a pull fails; a stop during a pull; progress in
//! the log; the handoff deadline after the pull.
use super::*;
use crate::docker::{PullFailure, RegistryCredentials};
use crate::spec::PullPolicy;

/// The creates and pulls the daemon saw, with their queries.
fn creates_and_pulls(h: &Harness) -> Vec<&str> {
    h.daemon
        .targets
        .iter()
        .map(String::as_str)
        .filter(|t| {
            t.starts_with("POST /containers/create") || t.starts_with("POST /images/create")
        })
        .map(|t| t.split_once("?name=").map_or(t, |(create, _)| create))
        .collect()
}

#[test]
fn a_missing_image_is_pulled_then_created_and_the_digest_is_logged() {
    let mut h = Harness::new(test_config());
    h.daemon.quirks.insert(Quirk::ImageMissing);
    h.run();
    h.vassal_connects(1);
    assert_eq!(h.handoffs.len(), 1, "{:#?}", h.logs());
    assert_eq!(
        creates_and_pulls(&h),
        [
            "POST /containers/create",
            "POST /images/create?fromImage=app&tag=latest",
            "POST /containers/create",
        ]
    );
    assert!(h.noticed(
        |n| matches!(n, Notice::Pulled { image, digest: Some(d), .. }
        if image == "app" && d == "sha256:feed")
    ));
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("pulled app (sha256:feed) in 0 s")),
        "{:#?}",
        h.logs()
    );
    assert_eq!(h.daemon.pull_auth, None, "no credentials, no header");
    let labels = h.daemon.created_labels.as_ref().expect("created");
    assert_eq!(labels[crate::plan::labels::IMAGE_DIGEST], "sha256:feed");
}

#[test]
fn always_pulls_before_the_first_create_and_missing_pulls_nothing_that_is_there() {
    let mut config = test_config();
    config.pull = PullPolicy::Always;
    let mut h = Harness::new(config);
    h.run();
    h.vassal_connects(1);
    assert_eq!(
        creates_and_pulls(&h),
        [
            "POST /images/create?fromImage=app&tag=latest",
            "POST /containers/create",
        ]
    );
    let h = Harness::running();
    assert_eq!(creates_and_pulls(&h), ["POST /containers/create"]);
    let labels = h.daemon.created_labels.as_ref().expect("created");
    assert!(
        labels.get(crate::plan::labels::IMAGE_DIGEST).is_none(),
        "not pulled: no digest known"
    );
}

#[test]
fn the_vassal_s_own_docker_pull_wins_over_the_operator_s_default() {
    let mut config = test_config();
    config.pull = PullPolicy::Always;
    config.plan.spec.pull = Some(PullPolicy::Never);
    let mut h = Harness::new(config);
    h.daemon.quirks.insert(Quirk::ImageMissing);
    h.run();
    assert!(matches!(
        h.failure(),
        Some(BridgeError::Vassal(VassalError::ImageNotFound {
            pulled: false,
            ..
        }))
    ));
    assert_eq!(creates_and_pulls(&h), ["POST /containers/create"]);
    h.assert_clean(1);
}

#[test]
fn each_failed_pull_names_the_image_and_the_cause_and_leaves_nothing() {
    type Why = fn(&BridgeError) -> bool;
    let cases: [(PullAnswer, Why, &str); 4] = [
        (
            PullAnswer::NotFound,
            |e| {
                matches!(
                    e,
                    BridgeError::Vassal(VassalError::PullFailed {
                        cause: PullFailure::NotFound(_),
                        ..
                    })
                )
            },
            "check docker-image's name and tag",
        ),
        (
            PullAnswer::Unauthorized,
            |e| {
                matches!(
                    e,
                    BridgeError::Vassal(VassalError::PullFailed {
                        cause: PullFailure::Unauthorized(_),
                        ..
                    })
                )
            },
            "UWSGIDOCKER_REGISTRY_AUTH",
        ),
        (
            PullAnswer::Unreachable,
            |e| {
                matches!(
                    e,
                    BridgeError::Vassal(VassalError::PullFailed {
                        cause: PullFailure::Unreachable(_),
                        ..
                    })
                )
            },
            "is up and reachable",
        ),
        (
            PullAnswer::Garbage,
            |e| matches!(e, BridgeError::Daemon(DaemonFault::BadPullStream(_))),
            "pull progress stream",
        ),
    ];
    for (answer, why, wording) in cases {
        let mut h = Harness::new(test_config());
        h.daemon.quirks.insert(Quirk::ImageMissing);
        h.daemon.pull_answer = answer;
        h.run();
        let context = format!("{answer:?}: {:#?}", h.logs());
        let failure = h.failure().expect("the vassal fails");
        assert!(why(failure), "{context}");
        let line = log_line(&Event::Failed(failure.clone()));
        assert!(line.contains("vassal app.ini"), "{context}");
        assert!(line.contains(wording), "{context}");
        if answer != PullAnswer::Garbage {
            assert!(
                line.contains("cannot pull docker image \"app\""),
                "{context}"
            );
        }
        assert_eq!(
            creates_and_pulls(&h),
            [
                "POST /containers/create",
                "POST /images/create?fromImage=app&tag=latest"
            ],
            "no create after a failed pull: {context}"
        );
        h.assert_clean(1);
    }
}

#[test]
fn credentials_go_only_to_the_image_s_registry_and_never_into_the_log() {
    let file = br#"{"auths": {"127.0.0.1:5000": {"auth": "YWxpY2U6czNjcjN0"}}}"#;
    let credentials = RegistryCredentials::from_config_json(file).expect("valid");
    for (image, sent) in [("127.0.0.1:5000/app:1.4", true), ("app", false)] {
        let mut config = test_config();
        config.plan.spec.image = image.into();
        config.registry_credentials = credentials.clone();
        let mut h = Harness::new(config);
        h.daemon.quirks.insert(Quirk::ImageMissing);
        h.daemon.pull_answer = PullAnswer::Unauthorized;
        h.run();
        assert_eq!(h.daemon.pull_auth.is_some(), sent, "{image}");
        let logs = h.logs().join("\n");
        assert!(
            !logs.contains("s3cr3t") && !logs.contains("alice"),
            "{logs}"
        );
        if let Some(header) = &h.daemon.pull_auth {
            assert!(!logs.contains(header.as_str()), "{logs}");
        }
        h.assert_clean(1);
    }
}

#[test]
fn a_stop_during_a_pull_ends_it_at_once_and_leaves_nothing() {
    let mut h = Harness::new(test_config());
    h.daemon.quirks.insert(Quirk::ImageMissing);
    h.daemon.pull_answer = PullAnswer::Hang;
    h.run();
    let conn = h.daemon.pull_conn.expect("pulling");
    assert!(h.open_conns.contains(&conn));
    h.bridge.handle_signal(h.now);
    h.run();
    assert!(
        !h.open_conns.contains(&conn),
        "the pull's connection is closed at once, which cancels it"
    );
    assert_eq!(
        creates_and_pulls(&h).last(),
        Some(&"POST /images/create?fromImage=app&tag=latest")
    );
    h.assert_clean(0);
}

#[test]
fn progress_reaches_the_log_at_most_once_a_second_and_the_handoff_deadline_starts_after_the_pull() {
    let mut h = Harness::new(test_config());
    h.daemon.quirks.insert(Quirk::ImageMissing);
    h.daemon.pull_answer = PullAnswer::Hang;
    h.run();
    let conn = h.daemon.pull_conn.expect("pulling");
    let head =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    h.bridge.handle_docker_data(conn, head, h.now);
    h.run();
    let chunk = |line: String| format!("{:x}\r\n{line}\r\n", line.len()).into_bytes();
    for mb in 1..=10u64 {
        // 40 s in all: more than the 30 s handoff deadline, far less than the pull's.
        h.advance(Duration::from_secs(4));
        let line = format!(
            "{{\"status\":\"Downloading\",\"progressDetail\":{{\"current\":{},\"total\":10000000}},\"id\":\"aaa\"}}\r\n",
            mb * 1_000_000
        );
        h.bridge.handle_docker_data(conn, &chunk(line), h.now);
        h.run();
    }
    let progress: Vec<String> = h
        .logs()
        .into_iter()
        .filter(|l| l.contains("pulling app:"))
        .collect();
    assert_eq!(progress.len(), 10, "one a chunk, 4 s apart: {progress:#?}");
    assert!(
        progress[9].contains("pulling app: 0/1 layers, 10/10 MB"),
        "{progress:#?}"
    );
    // A burst within one second: reported once.
    for _ in 0..5 {
        h.now += Duration::from_millis(100);
        let line = "{\"status\":\"Extracting\",\"id\":\"aaa\"}\r\n".to_owned();
        h.bridge.handle_docker_data(conn, &chunk(line), h.now);
        h.run();
    }
    let count = h
        .logs()
        .iter()
        .filter(|l| l.contains("pulling app:"))
        .count();
    assert_eq!(count, 10, "nothing within a second of the last report");
    let end = "{\"status\":\"Digest: sha256:feed\"}\r\n".to_owned();
    let mut rest = chunk(end);
    rest.extend_from_slice(b"0\r\n\r\n");
    h.daemon.quirks.remove(&Quirk::ImageMissing);
    h.bridge.handle_docker_data(conn, &rest, h.now);
    h.run();
    assert!(
        h.noticed(|n| matches!(n, Notice::Pulled { took, .. } if *took >= Duration::from_secs(40)))
    );
    assert_eq!(h.failure().map(ToString::to_string), None);
    h.advance(Duration::from_secs(20));
    h.vassal_connects(1);
    assert_eq!(h.handoffs.len(), 1, "{:#?}", h.logs());
}
