//! Rollover of a `docker-socket` vassal on the simulated clock: a changed `[emperor]`
//! section brings up a second container beside the first, on the same socket.
use super::*;

const SOCKET_CONFIG: &[u8] = b"[emperor]\ndocker-image = app\ndocker-stop-timeout = 3\ndocker-socket = 127.0.0.1:3031\n\n[uwsgi]\nmaster = true\n";
const NEW_CONFIG: &[u8] = b"[emperor]\ndocker-image = app:2\ndocker-stop-timeout = 3\ndocker-socket = 127.0.0.1:3031\n\n[uwsgi]\nmaster = true\n";
const THIRD_CONFIG: &[u8] = b"[emperor]\ndocker-image = app:3\ndocker-stop-timeout = 3\ndocker-socket = 127.0.0.1:3031\n\n[uwsgi]\nmaster = true\n";
const THIRD_ID: &str = "cafe03";
const FIRST: Generation = Generation(0);
const SECOND: Generation = Generation(1);

fn sibling_name() -> String {
    crate::plan::sibling_container_name(None, "app.ini", "app.ini")
}

impl Harness {
    /// A `docker-socket` vassal that runs: the socket goes with its handoff.
    fn running_with_socket() -> Harness {
        let (plan, spec) = plan_for(SOCKET_CONFIG);
        assert!(plan.passes_socket);
        let mut h = Harness::new(BridgeConfig::new(plan, spec, SOCKET_CONFIG.to_vec()));
        h.file = SOCKET_CONFIG.to_vec();
        h.run();
        h.vassal_connects(1);
        assert_eq!(
            h.handoffs[0].2,
            [HandedFd::Control, HandedFd::Config, HandedFd::Socket]
        );
        h.daemon.next_id = Some(NEW_ID);
        h
    }

    /// The file changed and the Emperor reloads the vassal. The bridge reads the file
    /// first; when it relays the reload byte, the reloading vassal asks for its config and
    /// the bridge reads the file again.
    fn file_changes_to(&mut self, config: &[u8]) {
        self.file = config.to_vec();
        let (relayed, reads) = (self.to_vassal_control.len(), self.config_reads);
        self.emperor_sends(&[EmperorMessage::Reload.to_byte()]);
        assert_eq!(
            self.config_reads,
            reads + 1,
            "the file is read before the reload"
        );
        if self.to_vassal_control.len() > relayed {
            self.vassal_sends(&[2]);
        }
    }

    fn new_vassal_connects(&mut self, peer: u64) {
        assert!(self.proxy == ProxySeen::Accepting, "{:#?}", self.logs());
        let identity = peer_in(Some(NEW_INIT_PID), Some(NEW_CONTAINER_NS));
        self.bridge
            .handle_proxy_peer(ProxyPeer(peer), identity, self.now);
        self.run();
    }

    fn other_container_exits(&mut self, id: &str, code: i64) {
        let conn = self.daemon.other_waits[id];
        let body = format!("{{\"Error\":null,\"StatusCode\":{code}}}\n");
        let chunk = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
        self.bridge
            .handle_docker_data(conn, chunk.as_bytes(), self.now);
        self.run();
    }

    /// The last `n` requests the daemon saw, oldest first.
    fn last_requests(&self, n: usize) -> Vec<&str> {
        last(&self.daemon.requests, n)
    }

    /// The same with their queries.
    fn last_targets(&self, n: usize) -> Vec<&str> {
        last(&self.daemon.targets, n)
    }

    /// Why the rollover was abandoned, if it was.
    fn abandoned(&self) -> Option<&BridgeError> {
        self.events.iter().find_map(|e| match e {
            Event::Notice(Notice::RolloverAbandoned(error)) => Some(&**error),
            _ => None,
        })
    }
}

fn last(seen: &[String], n: usize) -> Vec<&str> {
    seen[seen.len().saturating_sub(n)..]
        .iter()
        .map(String::as_str)
        .collect()
}

#[test]
fn a_changed_section_rolls_over_to_a_new_container_and_the_emperor_sees_one_vassal() {
    let mut h = Harness::running_with_socket();
    let first_push = h.to_vassal_config.len();
    h.file_changes_to(NEW_CONFIG);
    // The running vassal is not reloaded: it serves on as it is.
    assert!(h.to_vassal_control.is_empty());
    assert_eq!(h.to_vassal_config.len(), first_push);
    assert_eq!(h.plans, [NEW_CONFIG.to_vec()]);
    assert_eq!(h.prepared, [SECOND]);
    assert_eq!(h.bridge.phase(), Phase::RollingOver);
    let sibling = sibling_name();
    assert_eq!(
        h.daemon.containers.get(&sibling).map(String::as_str),
        Some(NEW_ID)
    );
    let tail = h.last_targets(4);
    assert_eq!(
        tail,
        [
            format!("POST /containers/create?name={sibling}").as_str(),
            "POST /containers/beef02/attach?stream=1&stdout=1&stderr=1",
            "POST /containers/beef02/wait?condition=next-exit",
            "POST /containers/beef02/start?",
        ]
    );
    assert!(h.proxy == ProxySeen::Accepting, "the proxy is bound again");
    assert!(h.noticed(|n| matches!(n, Notice::RollingOver { image } if image == "app:2")));

    // A peer from the old container's namespace is not the new vassal.
    h.bridge.handle_proxy_peer(
        ProxyPeer(8),
        peer_in(Some(INIT_PID), Some(CONTAINER_NS)),
        h.now,
    );
    h.run();
    assert_eq!(h.refused, [ProxyPeer(8)]);

    h.new_vassal_connects(9);
    assert_eq!(h.handoff_generations, [FIRST, SECOND]);
    assert_eq!(
        h.handoffs[1].2,
        [HandedFd::Control, HandedFd::Config, HandedFd::Socket]
    );
    assert_eq!(h.config_of[&SECOND], config_packet(NEW_CONFIG));
    assert!(h.proxy == ProxySeen::Closed);

    // Before it accepts, the new vassal's bytes do not reach the Emperor.
    let to_emperor = h.to_emperor.len();
    h.generation_sends(SECOND, &[1]);
    assert_eq!(h.to_emperor.len(), to_emperor);
    assert_eq!(h.bridge.current_generation(), FIRST);

    // Accepting: the switch. The old vassal is stopped gracefully on its own channel.
    h.generation_sends(SECOND, &[5, 17]);
    assert_eq!(h.bridge.current_generation(), SECOND);
    assert_eq!(h.bridge.container_id(), Some(NEW_ID));
    assert_eq!(
        h.to_vassal_control,
        [2],
        "the graceful stop, and nothing else"
    );
    assert_eq!(
        &h.to_emperor[to_emperor..],
        [17],
        "bytes after the switch are relayed"
    );
    assert!(h.noticed(
        |n| matches!(n, Notice::RolledOver { from, to } if from == CONTAINER_ID && to == NEW_ID)
    ));

    // The Emperor's bytes now go to the new vassal; the old one is not heard any more.
    h.emperor_sends(&[1]);
    assert_eq!(h.control_of[&SECOND], [1]);
    h.vassal_sends(&[22]);
    h.bridge.handle_vassal_control_eof(FIRST, h.now);
    h.run();
    assert_eq!(h.exit, None);
    assert_eq!(&h.to_emperor[to_emperor..], [17]);

    // The old container exits by itself and is removed.
    h.container_exits(0);
    assert_eq!(
        h.daemon.requests.last().map(String::as_str),
        Some("DELETE /containers/c0ffee")
    );
    assert_eq!(h.dropped, [FIRST]);
    assert!(h.noticed(|n| matches!(n, Notice::RetiredRemoved(id) if id == CONTAINER_ID)));
    // The wording, once.
    assert!(h
        .logs()
        .contains(&"[uwsgi-docker] vassal app.ini: removed the old container c0ffee; the rollover is complete".to_owned()));
    assert_eq!(h.bridge.phase(), Phase::Running);
    assert_eq!(h.exit, None, "the bridge never exits: no curse, no respawn");
    assert_eq!(h.bridge.poll_timeout(), None);
    assert_eq!(h.daemon.containers.len(), 1);

    // The same file again is a reload, not another rollover.
    h.file_changes_to(NEW_CONFIG);
    assert_eq!(h.control_of[&SECOND], [1, 1], "relayed after the read");
    assert_eq!(h.plans.len(), 1);
    assert!(h.config_of[&SECOND].ends_with(&config_packet(NEW_CONFIG)));

    // The new container is the vassal's now: a stop removes it.
    h.emperor_stops();
    assert!(h
        .daemon
        .requests
        .iter()
        .any(|r| r == "POST /containers/beef02/stop"));
    h.assert_clean(0);
}

#[test]
fn an_old_container_that_does_not_exit_in_time_is_stopped_then_removed() {
    let mut h = Harness::running_with_socket();
    h.file_changes_to(NEW_CONFIG);
    h.new_vassal_connects(2);
    h.generation_sends(SECOND, &[5]);
    // Stop timeout (3 s) and grace (5 s) pass without its exit.
    h.advance(Duration::from_secs(8));
    let tail = h.last_requests(2);
    assert_eq!(
        tail,
        ["POST /containers/c0ffee/stop", "DELETE /containers/c0ffee"]
    );
    assert_eq!(h.daemon.containers.values().collect::<Vec<_>>(), [NEW_ID]);
    assert_eq!(h.dropped, [FIRST]);
    assert_eq!(h.bridge.phase(), Phase::Running);
}

/// Where the new container fails.
#[derive(Debug, Clone, Copy)]
enum FailAt {
    PlanRefused,
    Channels,
    ImageMissing,
    StartRefused,
    ExitsBeforeHandoff,
    NeverConnects,
    NeverAccepts,
    LeavesAfterHandoff,
    AsksToStop,
}

#[test]
fn a_new_container_failing_at_any_step_is_removed_and_the_old_one_serves_on() {
    use FailAt::*;
    type Why = fn(&BridgeError) -> bool;
    let cases: [(FailAt, Why); 9] = [
        (PlanRefused, |e| {
            matches!(e, BridgeError::Vassal(VassalError::SettingsRefused { reason })
                if reason == "vassal app.ini: docker-memory = 9t")
        }),
        (Channels, |e| {
            matches!(e, BridgeError::Host(HostError::Channels { .. }))
        }),
        // A changed image not on the host, whose pull fails.
        (
            ImageMissing,
            |e| matches!(e, BridgeError::Vassal(VassalError::PullFailed { image, cause: crate::docker::PullFailure::NotFound(_), .. }) if image == "app:2"),
        ),
        (StartRefused, |e| {
            matches!(e, BridgeError::Vassal(VassalError::StartRefused(_)))
        }),
        (ExitsBeforeHandoff, |e| {
            matches!(
                e,
                BridgeError::Vassal(VassalError::ExitedBeforeAccepting { status: 127 })
            )
        }),
        (NeverConnects, |e| {
            matches!(e, BridgeError::Vassal(VassalError::NeverConnected { .. }))
        }),
        (NeverAccepts, |e| {
            matches!(e, BridgeError::Vassal(VassalError::NeverAccepting { within })
                if *within == Duration::from_secs(30))
        }),
        (LeavesAfterHandoff, |e| {
            matches!(e, BridgeError::Vassal(VassalError::LeftBeforeAccepting))
        }),
        (AsksToStop, |e| {
            matches!(e, BridgeError::Vassal(VassalError::LeftBeforeAccepting))
        }),
    ];
    for (step, why) in cases {
        let mut h = Harness::running_with_socket();
        match step {
            PlanRefused => h.plan_refusal = Some("vassal app.ini: docker-memory = 9t".into()),
            Channels => {
                h.host_faults.insert(HostFault::Channels);
            }
            ImageMissing => {
                h.daemon.quirks.insert(Quirk::ImageMissing);
                h.daemon.pull_answer = PullAnswer::NotFound;
            }
            StartRefused => h.daemon.other_fails.push("POST /containers/beef02/start"),
            _ => {}
        }
        h.file_changes_to(NEW_CONFIG);
        match step {
            ExitsBeforeHandoff => h.other_container_exits(NEW_ID, 127),
            NeverConnects => h.advance(Duration::from_secs(30)),
            NeverAccepts => {
                h.new_vassal_connects(2);
                h.advance(Duration::from_secs(30));
            }
            LeavesAfterHandoff => {
                h.new_vassal_connects(2);
                h.bridge.handle_vassal_control_eof(SECOND, h.now);
                h.run();
            }
            AsksToStop => {
                h.new_vassal_connects(2);
                h.generation_sends(SECOND, &[22]);
            }
            _ => {}
        }
        let context = format!("{step:?}: {:#?}", h.logs());
        assert!(h.abandoned().is_some_and(why), "{context}");
        assert_eq!(
            h.daemon.containers,
            BTreeMap::from([("app.ini".to_owned(), CONTAINER_ID.to_owned())]),
            "{context}"
        );
        assert!(h.proxy == ProxySeen::Closed, "{context}");
        assert_eq!(h.dropped, [SECOND], "{context}");
        assert_eq!(h.exit, None, "{context}");
        assert_eq!(h.bridge.phase(), Phase::Running, "{context}");
        assert_eq!(h.bridge.container_id(), Some(CONTAINER_ID));
        assert_eq!(h.bridge.poll_timeout(), None, "{context}");
        assert!(
            h.open_conns.len() <= 3,
            "only the old container's connections: {context}"
        );
        // The Emperor's bytes still go to the old vassal, and none went to the new one.
        assert!(h.control_of.is_empty(), "{context}");
        h.emperor_stops();
        assert_eq!(h.to_vassal_control.last(), Some(&0), "{context}");
        h.assert_clean(0);
    }
}

#[test]
fn a_later_change_tries_again_after_a_failed_rollover() {
    let mut h = Harness::running_with_socket();
    h.daemon.quirks.insert(Quirk::ImageMissing);
    h.daemon.pull_answer = PullAnswer::NotFound;
    h.file_changes_to(NEW_CONFIG);
    assert!(h.abandoned().is_some());
    h.daemon.quirks.remove(&Quirk::ImageMissing);
    // The image is there now; the next reload sees the same change and rolls over.
    h.file_changes_to(NEW_CONFIG);
    assert_eq!(h.plans.len(), 2);
    h.new_vassal_connects(3);
    assert_eq!(
        h.handoff_generations,
        [FIRST, SECOND],
        "the abandoned generation is reused"
    );
    h.generation_sends(SECOND, &[5]);
    h.container_exits(0);
    assert_eq!(h.daemon.containers.values().collect::<Vec<_>>(), [NEW_ID]);
    assert_eq!(h.bridge.config.requested_spec.image, "app:2");
}

#[test]
fn a_section_that_cannot_run_beside_the_old_one_recreates_as_before() {
    // A published port cannot be taken by two containers; a changed socket is the
    // bridge's own, bound once.
    for changed in [
        &b"[emperor]\ndocker-image = app:2\ndocker-socket = 127.0.0.1:3031\ndocker-port = 9001:3031\n"[..],
        b"[emperor]\ndocker-image = app:2\ndocker-socket = 127.0.0.1:3032\n",
    ] {
        let mut h = Harness::running_with_socket();
        h.file_changes_to(changed);
        assert!(h.plans.is_empty());
        assert!(h.noticed(|n| matches!(n, Notice::Recreating)));
        h.assert_clean(1);
        assert!(matches!(h.bridge.is_finished(), Some(Outcome::Recreate)));
    }
}

#[test]
fn an_emperor_stop_during_a_rollover_removes_both_containers_within_the_bound() {
    for stop_when in [
        "awaiting the vassal",
        "awaiting accepting",
        "retiring the old one",
    ] {
        let mut h = Harness::running_with_socket();
        h.file_changes_to(NEW_CONFIG);
        if stop_when != "awaiting the vassal" {
            h.new_vassal_connects(2);
        }
        if stop_when == "retiring the old one" {
            h.generation_sends(SECOND, &[5]);
        }
        let stopped_at = h.now;
        let bound = h.bridge.shutdown_bound();
        h.emperor_sends(&[0]);
        h.run_clock_until(stopped_at + bound);
        assert!(
            h.daemon.containers.is_empty(),
            "{stop_when}: {:?}",
            h.daemon.containers
        );
        assert!(
            h.dropped.contains(&FIRST) || h.dropped.contains(&SECOND),
            "{stop_when}"
        );
        assert!(h.now <= stopped_at + bound, "{stop_when}");
        h.assert_clean(0);
    }
}

#[test]
fn a_stop_during_a_rollover_is_bounded_when_the_daemon_stops_answering() {
    let mut h = Harness::running_with_socket();
    h.file_changes_to(NEW_CONFIG);
    h.daemon.hang.push("DELETE /containers/beef02");
    let stopped_at = h.now;
    let bound = h.bridge.shutdown_bound();
    h.emperor_sends(&[0]);
    h.run_clock_until(stopped_at + bound);
    assert_eq!(h.exit, Some(0), "{:#?}", h.logs());
    assert!(h.now <= stopped_at + bound);
    assert!(
        !h.daemon.containers.contains_key("app.ini"),
        "ours is removed"
    );
}

#[test]
fn a_second_change_during_a_rollover_is_rolled_to_once_the_first_is_done() {
    let mut h = Harness::running_with_socket();
    h.file_changes_to(NEW_CONFIG);
    // Another change while the new container comes up: the reload is relayed, the old
    // vassal reloads and gets its own config; the newest change waits.
    let pushes = h.to_vassal_config.len();
    h.file = THIRD_CONFIG.to_vec();
    h.emperor_sends(&[1]);
    h.vassal_sends(&[2]);
    assert!(h.noticed(|n| matches!(n, Notice::RolloverQueued)));
    assert_eq!(&h.to_vassal_config[pushes..], config_packet(SOCKET_CONFIG));
    assert_eq!(h.plans.len(), 1);
    // The first rollover completes, then the second starts, under the first name again.
    h.new_vassal_connects(2);
    h.generation_sends(SECOND, &[5]);
    h.daemon.next_id = Some(THIRD_ID);
    h.container_exits(0);
    assert_eq!(h.plans, [NEW_CONFIG.to_vec(), THIRD_CONFIG.to_vec()]);
    assert_eq!(
        h.daemon.containers.get("app.ini").map(String::as_str),
        Some(THIRD_ID)
    );
    h.new_vassal_connects(3);
    h.generation_sends(Generation(2), &[5]);
    assert_eq!(
        h.control_of[&SECOND],
        [2],
        "the second vassal is stopped gracefully"
    );
    h.other_container_exits(NEW_ID, 0);
    assert_eq!(
        h.daemon.containers,
        BTreeMap::from([("app.ini".to_owned(), THIRD_ID.to_owned())])
    );
    assert_eq!(h.dropped, [FIRST, SECOND]);
    assert_eq!(h.bridge.config.requested_spec.image, "app:3");
    assert_eq!(h.bridge.phase(), Phase::Running);
    h.emperor_stops();
    h.assert_clean(0);
}

#[test]
fn a_leftover_of_ours_on_the_sibling_name_is_replaced_when_its_bridge_is_gone() {
    let mut h = Harness::running_with_socket();
    h.daemon
        .holder(&sibling_name(), "dead01", &our_labels("host:9:99"));
    h.file_changes_to(NEW_CONFIG);
    assert_eq!(h.bridge_queries, ["host:9:99"]);
    assert!(h
        .daemon
        .requests
        .iter()
        .any(|r| r == "DELETE /containers/dead01"));
    // Create is tried again after the start-up's back-off.
    h.advance(FIRST_CONFLICT_BACKOFF);
    assert_eq!(
        h.daemon.containers.get(&sibling_name()).map(String::as_str),
        Some(NEW_ID)
    );
    h.new_vassal_connects(2);
    h.generation_sends(SECOND, &[5]);
    assert_eq!(h.bridge.container_id(), Some(NEW_ID));
}

#[test]
fn a_foreign_container_on_the_sibling_name_abandons_the_rollover_and_is_left_alone() {
    let mut h = Harness::running_with_socket();
    h.daemon.holder(&sibling_name(), "f0f0f0", &[("x", "y")]);
    h.file_changes_to(NEW_CONFIG);
    assert!(
        matches!(
            h.abandoned(),
            Some(BridgeError::Operator(OperatorError::NameHeldByForeign { holder, .. }))
                if holder == "f0f0f0"
        ),
        "{:#?}",
        h.logs()
    );
    assert_eq!(
        h.daemon.containers.get(&sibling_name()).map(String::as_str),
        Some("f0f0f0")
    );
    assert_eq!(h.exit, None);
    assert_eq!(h.bridge.container_id(), Some(CONTAINER_ID));
}

#[test]
fn with_a_config_channel_the_pushed_config_starts_the_rollover_and_the_old_vassal_serves_on() {
    let (plan, spec) = plan_for(SOCKET_CONFIG);
    let mut config = BridgeConfig::new(plan, spec, SOCKET_CONFIG.to_vec());
    config.emperor = EmperorChannels::ControlAndConfig;
    let mut h = Harness::new(config);
    h.run();
    h.vassal_connects(1);
    h.daemon.next_id = Some(NEW_ID);
    // The Emperor sends the reload byte, then pushes the new config.
    h.emperor_sends(&[1]);
    assert_eq!(
        h.to_vassal_control,
        [1],
        "relayed: the config comes separately"
    );
    let pushes = h.to_vassal_config.len();
    h.bridge
        .handle_emperor_config(&config_packet(NEW_CONFIG), h.now);
    h.run();
    assert_eq!(h.plans, [NEW_CONFIG.to_vec()]);
    assert_eq!(
        &h.to_vassal_config[pushes..],
        config_packet(SOCKET_CONFIG),
        "the reloading vassal gets its own config"
    );
    h.new_vassal_connects(2);
    h.generation_sends(SECOND, &[5]);
    h.container_exits(0);
    assert_eq!(h.bridge.config.requested_spec.image, "app:2");
    assert_eq!(h.config_of[&SECOND], config_packet(NEW_CONFIG));
}

#[test]
fn losing_the_daemon_during_a_rollover_abandons_it_and_keeps_the_old_vassal() {
    let mut h = Harness::running_with_socket();
    h.file_changes_to(NEW_CONFIG);
    h.daemon_stops();
    assert!(h.abandoned().is_some(), "{:#?}", h.logs());
    assert!(h.noticed(|n| matches!(n, Notice::DaemonLost(_))));
    assert_eq!(h.bridge.phase(), Phase::Reattaching);
    assert_eq!(h.bridge.container_id(), Some(CONTAINER_ID));
    assert_eq!(h.exit, None);
    assert_eq!(h.dropped, [SECOND]);
}

#[test]
fn a_live_bridge_on_the_sibling_name_is_waited_for_as_at_start_up_then_named() {
    let mut h = Harness::running_with_socket();
    h.daemon
        .holder(&sibling_name(), "1eaf01", &our_labels("host:9:99"));
    h.alive_answers = usize::MAX;
    h.file_changes_to(NEW_CONFIG);
    for _ in 0..MAX_CREATE_ATTEMPTS {
        h.advance(Duration::from_secs(2));
    }
    let creates = h
        .daemon
        .requests
        .iter()
        .filter(|r| *r == "POST /containers/create")
        .count();
    assert_eq!(
        creates,
        1 + usize::from(MAX_CREATE_ATTEMPTS),
        "start-up's tries"
    );
    assert!(
        matches!(
            h.abandoned(),
            Some(BridgeError::Operator(OperatorError::NameHeldByLiveBridge { bridge, .. }))
                if bridge == "host:9:99"
        ),
        "{:#?}",
        h.logs()
    );
    assert_eq!(
        h.daemon.containers.get(&sibling_name()).map(String::as_str),
        Some("1eaf01"),
        "a live bridge's container is never forced"
    );
    assert_eq!(h.bridge.container_id(), Some(CONTAINER_ID));
    assert_eq!(h.bridge.phase(), Phase::Running);
}

#[test]
fn a_leftover_of_this_very_bridge_on_the_sibling_name_is_removed_without_asking() {
    let mut h = Harness::running_with_socket();
    h.daemon
        .holder(&sibling_name(), "1eff01", &our_labels("host:2:3"));
    h.file_changes_to(NEW_CONFIG);
    h.advance(FIRST_CONFLICT_BACKOFF);
    assert!(
        h.bridge_queries.is_empty(),
        "our own bridge is not asked about"
    );
    assert!(h
        .daemon
        .requests
        .iter()
        .any(|r| r == "DELETE /containers/1eff01"));
    h.new_vassal_connects(2);
    h.generation_sends(SECOND, &[5]);
    assert_eq!(h.bridge.container_id(), Some(NEW_ID));
}

#[test]
fn a_stop_while_the_new_proxy_binds_waits_for_its_answer_then_exits_clean() {
    for bound in [true, false] {
        let mut h = Harness::running_with_socket();
        h.host_faults.insert(HostFault::BindHangs);
        h.file_changes_to(NEW_CONFIG);
        assert_eq!(h.bridge.phase(), Phase::RollingOver);
        h.emperor_sends(&[EmperorMessage::Stop.to_byte()]);
        assert_eq!(
            h.exit, None,
            "the bind's answer says whether to unlink a socket"
        );
        let answer = if bound {
            h.proxy = ProxySeen::Bound;
            Ok(())
        } else {
            Err(std::io::Error::other("address in use"))
        };
        h.bridge.handle_proxy_bound(answer, h.now);
        h.run();
        assert_eq!(h.dropped, [SECOND], "bound: {bound}");
        // The old vassal had the stop byte and ignores it here: stopped after its timeout.
        let now = h.now;
        h.run_clock_until(now + h.bridge.shutdown_bound());
        h.assert_clean(0);
    }
}

#[test]
fn a_changed_image_not_on_the_host_is_pulled_before_the_old_container_is_touched() {
    let mut h = Harness::running_with_socket();
    h.daemon.quirks.insert(Quirk::ImageMissing);
    let seen = h.daemon.targets.len();
    h.file_changes_to(NEW_CONFIG);
    let since: Vec<&str> = h.daemon.targets[seen..]
        .iter()
        .map(String::as_str)
        .collect();
    let pull = since
        .iter()
        .position(|t| *t == "POST /images/create?fromImage=app&tag=2")
        .unwrap_or_else(|| panic!("pulled: {since:#?}"));
    assert!(
        !since[..pull].iter().any(|t| t.contains(CONTAINER_ID)),
        "nothing touched the old container before the pull: {since:#?}"
    );
    assert!(h.noticed(|n| matches!(n, Notice::Pulled { image, .. } if image == "app:2")));
    h.new_vassal_connects(2);
    h.generation_sends(SECOND, &[5]);
    assert_eq!(h.bridge.current_generation(), SECOND, "{:#?}", h.logs());
    assert_eq!(h.bridge.container_id(), Some(NEW_ID));
}

#[test]
fn a_stop_during_a_rollover_s_pull_ends_the_pull_and_the_old_container_stops_as_usual() {
    let mut h = Harness::running_with_socket();
    h.daemon.quirks.insert(Quirk::ImageMissing);
    h.daemon.pull_answer = PullAnswer::Hang;
    h.file_changes_to(NEW_CONFIG);
    let conn = h.daemon.pull_conn.expect("pulling");
    h.bridge.handle_signal(h.now);
    h.run();
    assert!(!h.open_conns.contains(&conn), "the pull ends at once");
    h.container_exits(0);
    h.advance(Duration::from_secs(10));
    assert_eq!(h.exit, Some(0), "{:#?}", h.logs());
    assert!(h.daemon.containers.is_empty(), "{:?}", h.daemon.containers);
}

#[test]
fn a_reload_whose_tag_now_names_another_image_rolls_over_to_it() {
    let mut h = Harness::running_with_socket();
    // `uwsgi-docker update` pulled the moved tag, then touched the file.
    h.daemon.tag_names = "sha256:0002";
    let relayed = h.to_vassal_control.len();
    h.file_changes_to(SOCKET_CONFIG);
    assert!(h
        .daemon
        .requests
        .iter()
        .any(|r| r == "GET /images/app/json"));
    assert_eq!(
        h.to_vassal_control.len(),
        relayed,
        "the reload is not relayed"
    );
    assert!(h.noticed(|n| matches!(n, Notice::ImageMoved { image } if image == "app")));
    assert_eq!(h.bridge.phase(), Phase::RollingOver, "{:#?}", h.logs());
    h.new_vassal_connects(2);
    h.generation_sends(SECOND, &[5]);
    assert_eq!(h.bridge.container_id(), Some(NEW_ID));
    assert_eq!(h.daemon.image_of.get(NEW_ID).copied(), Some("sha256:0002"));
    h.container_exits(0);
    // The new container runs what the tag names: the next reload is an ordinary one.
    let relayed = h.control_of.get(&SECOND).map_or(0, Vec::len);
    h.file_changes_to(SOCKET_CONFIG);
    let reload = EmperorMessage::Reload.to_byte();
    assert_eq!(h.control_of[&SECOND].len(), relayed + 1, "{:#?}", h.logs());
    assert_eq!(h.control_of[&SECOND].last(), Some(&reload));
    assert_eq!(h.bridge.phase(), Phase::Running);
}

#[test]
fn a_reload_whose_tag_names_the_running_image_is_relayed_after_one_request() {
    let mut h = Harness::running_with_socket();
    let (requests, relayed) = (h.daemon.requests.len(), h.to_vassal_control.len());
    h.file_changes_to(SOCKET_CONFIG);
    // The first reload also asks which image the container runs (start-up did not).
    assert_eq!(
        &h.daemon.requests[requests..],
        ["GET /containers/c0ffee/json", "GET /images/app/json"]
    );
    assert_eq!(h.to_vassal_control.len(), relayed + 1);
    let (requests, relayed) = (h.daemon.requests.len(), h.to_vassal_control.len());
    h.file_changes_to(SOCKET_CONFIG);
    assert_eq!(&h.daemon.requests[requests..], ["GET /images/app/json"]);
    assert_eq!(h.to_vassal_control.len(), relayed + 1);
    assert_eq!(h.bridge.phase(), Phase::Running);
    // The daemon cannot tell: the reload is relayed all the same.
    h.daemon.hang.push("GET /images");
    let relayed = h.to_vassal_control.len();
    h.file_changes_to(SOCKET_CONFIG);
    assert_eq!(
        h.to_vassal_control.len(),
        relayed,
        "held while the daemon is asked"
    );
    h.advance(DEFAULT_REQUEST_TIMEOUT);
    assert_eq!(h.to_vassal_control.len(), relayed + 1, "{:#?}", h.logs());
    assert_eq!(h.bridge.phase(), Phase::Running);
}

#[test]
fn a_moved_tag_recreates_a_vassal_that_cannot_roll_over() {
    let mut h = Harness::running();
    h.daemon.tag_names = "sha256:0002";
    h.emperor_sends(&[EmperorMessage::Reload.to_byte()]);
    assert!(
        h.noticed(|n| matches!(n, Notice::ImageMoved { .. })),
        "{:#?}",
        h.logs()
    );
    assert!(h.noticed(|n| matches!(n, Notice::Recreating)));
}

/// A changed image whose vassal sets a health check: checks every 500 ms, 2 s each, 2
/// retries, so the daemon's verdict comes within 3 × 2.5 s.
const HEALTH_CONFIG: &[u8] = b"[emperor]\ndocker-image = app:2\ndocker-stop-timeout = 3\ndocker-socket = 127.0.0.1:3031\ndocker-healthcheck = [\"/usr/bin/uwsgi\", \"--version\"]\ndocker-health-interval = 500ms\ndocker-health-timeout = 2s\ndocker-health-retries = 2\n\n[uwsgi]\nmaster = true\n";
const HEALTH_VERDICT: Duration = Duration::from_millis(7500);
const HEALTH_POLL: Duration = Duration::from_millis(500);
const NEW_INSPECT: &str = "GET /containers/beef02/json";

impl Harness {
    /// A rollover to [`HEALTH_CONFIG`] up to the new vassal's `Accepting` byte, its
    /// container's check still starting.
    fn rolling_to_a_checked_container() -> Harness {
        let mut h = Harness::running_with_socket();
        h.daemon.health.insert(NEW_ID.into(), "starting");
        h.file_changes_to(HEALTH_CONFIG);
        h.new_vassal_connects(2);
        h.generation_sends(SECOND, &[5]);
        h
    }

    /// How many times the new container was inspected.
    fn new_inspects(&self) -> usize {
        self.daemon
            .requests
            .iter()
            .filter(|r| *r == NEW_INSPECT)
            .count()
    }
}

#[test]
fn a_checked_container_takes_over_only_once_the_daemon_says_it_is_healthy() {
    let mut h = Harness::rolling_to_a_checked_container();
    assert!(
        h.noticed(|n| matches!(n, Notice::AwaitingHealth { within } if *within == HEALTH_VERDICT)),
        "{:#?}",
        h.logs()
    );
    assert!(h
        .logs()
        .contains(&"[uwsgi-docker] vassal app.ini: the new vassal accepts requests; waiting up to 7.5 s for its container's health check to pass before switching".to_owned()));
    // Asked at once (the launch's inspect was the first); still starting: no switch.
    assert_eq!(h.new_inspects(), 2);
    assert_eq!(h.bridge.current_generation(), FIRST);
    assert_eq!(h.bridge.phase(), Phase::RollingOver);
    assert_eq!(h.bridge.poll_timeout(), Some(h.now + HEALTH_POLL));
    // Meanwhile the old vassal serves: the Emperor's bytes go to it.
    h.emperor_sends(&[1]);
    assert!(h.control_of.is_empty());
    assert_eq!(h.to_vassal_control.last(), Some(&1));
    h.advance(HEALTH_POLL);
    assert_eq!(h.new_inspects(), 3);
    assert_eq!(h.bridge.current_generation(), FIRST);
    // Its check passes: the next answer switches.
    h.daemon.health.insert(NEW_ID.into(), "healthy");
    h.advance(HEALTH_POLL);
    assert_eq!(h.new_inspects(), 4);
    assert_eq!(h.bridge.current_generation(), SECOND, "{:#?}", h.logs());
    assert_eq!(h.bridge.container_id(), Some(NEW_ID));
    assert!(h.noticed(|n| matches!(n, Notice::RolledOver { to, .. } if to == NEW_ID)));
    assert!(h.abandoned().is_none());
    // No more asking; the old one retires as usual.
    h.advance(HEALTH_POLL);
    assert_eq!(h.new_inspects(), 4);
    h.container_exits(0);
    assert_eq!(h.daemon.containers.values().collect::<Vec<_>>(), [NEW_ID]);
    assert_eq!(h.bridge.phase(), Phase::Running);
    assert_eq!(h.bridge.poll_timeout(), None);
    h.emperor_stops();
    h.assert_clean(0);
}

#[test]
fn a_checked_container_the_daemon_runs_no_check_for_takes_over_after_one_answer() {
    // Only a health setting without a check (no image HEALTHCHECK): the daemon reports no
    // health, and the switch follows its first answer.
    let config = b"[emperor]\ndocker-image = app:2\ndocker-stop-timeout = 3\ndocker-socket = 127.0.0.1:3031\ndocker-health-interval = 1s\n\n[uwsgi]\nmaster = true\n";
    let mut h = Harness::running_with_socket();
    h.file_changes_to(config);
    h.new_vassal_connects(2);
    h.generation_sends(SECOND, &[5]);
    assert!(h.noticed(|n| matches!(n, Notice::AwaitingHealth { .. })));
    assert_eq!(h.new_inspects(), 2);
    assert_eq!(h.bridge.current_generation(), SECOND, "{:#?}", h.logs());
}

#[test]
fn without_a_check_the_switch_comes_with_accepting_and_no_extra_request() {
    let disabled = b"[emperor]\ndocker-image = app:2\ndocker-stop-timeout = 3\ndocker-socket = 127.0.0.1:3031\ndocker-healthcheck = none\n\n[uwsgi]\nmaster = true\n";
    for config in [NEW_CONFIG, &disabled[..]] {
        let mut h = Harness::running_with_socket();
        h.file_changes_to(config);
        h.new_vassal_connects(2);
        let requests = h.daemon.requests.len();
        h.generation_sends(SECOND, &[5]);
        assert_eq!(h.bridge.current_generation(), SECOND);
        assert!(!h.noticed(|n| matches!(n, Notice::AwaitingHealth { .. })));
        assert_eq!(
            h.daemon.requests[requests..],
            [] as [&str; 0],
            "the switch asks the daemon nothing"
        );
    }
}

#[test]
fn an_unhealthy_new_container_is_abandoned_and_the_old_one_serves_on() {
    let mut h = Harness::rolling_to_a_checked_container();
    h.advance(HEALTH_POLL);
    h.daemon.health.insert(NEW_ID.into(), "unhealthy");
    h.advance(HEALTH_POLL);
    let context = format!("{:#?}", h.logs());
    assert!(
        matches!(
            h.abandoned(),
            Some(BridgeError::Vassal(VassalError::UnhealthyBeforeSwitch { detail }))
                if detail.contains("3 failed checks in a row") && detail.contains("check says unhealthy")
        ),
        "{context}"
    );
    assert!(h
        .logs()
        .iter()
        .any(|l| l.contains("the rollover is abandoned and the running container keeps serving: the new container turned unhealthy before the switch (3 failed checks in a row")), "{context}");
    // It took requests on the shared socket: it is stopped gracefully, as the old one
    // would be at a switch, and removed once it exited.
    let graceful_stop = EmperorMessage::GracefulStop.to_byte();
    assert_eq!(h.control_of[&SECOND], [graceful_stop], "{context}");
    assert_eq!(h.bridge.phase(), Phase::RollingOver);
    assert_eq!(h.bridge.current_generation(), FIRST);
    assert!(h.daemon.containers.contains_key(&sibling_name()));
    h.other_container_exits(NEW_ID, 0);
    let context = format!("{:#?}", h.logs());
    assert_eq!(
        h.daemon.containers,
        BTreeMap::from([("app.ini".to_owned(), CONTAINER_ID.to_owned())]),
        "{context}"
    );
    assert_eq!(h.bridge.container_id(), Some(CONTAINER_ID));
    assert_eq!(h.bridge.current_generation(), FIRST);
    assert_eq!(h.bridge.phase(), Phase::Running);
    assert_eq!(h.dropped, [SECOND]);
    assert_eq!(h.exit, None);
    assert_eq!(h.bridge.poll_timeout(), None, "{context}");
    assert!(h.proxy == ProxySeen::Closed);
    assert!(!h.noticed(|n| matches!(n, Notice::RetiredRemoved(_))));
    // The Emperor's bytes still reach the old vassal; the new one got only its stop.
    h.emperor_stops();
    assert_eq!(h.control_of[&SECOND], [graceful_stop]);
    assert_eq!(h.to_vassal_control.last(), Some(&0));
    h.assert_clean(0);
}

#[test]
fn a_new_container_not_healthy_in_time_is_abandoned_at_the_verdict_deadline() {
    let mut h = Harness::rolling_to_a_checked_container();
    let waiting_since = h.now;
    h.run_clock_until(waiting_since + HEALTH_VERDICT - Duration::from_millis(1));
    assert!(h.abandoned().is_none());
    // Asked every poll interval, not more.
    assert_eq!(h.new_inspects(), 2 + 14);
    h.run_clock_until(waiting_since + HEALTH_VERDICT);
    let context = format!("{:#?}", h.logs());
    assert!(
        matches!(
            h.abandoned(),
            Some(BridgeError::Vassal(VassalError::NeverHealthy { within, detail }))
                if *within == HEALTH_VERDICT && detail.starts_with("starting; 0 failed checks")
        ),
        "{context}"
    );
    // It does not exit after its graceful stop: after its stop timeout (3 s) and the
    // grace (5 s) it is stopped and removed.
    assert!(h.daemon.containers.contains_key(&sibling_name()));
    h.run_clock_until(waiting_since + HEALTH_VERDICT + Duration::from_secs(8));
    let context = format!("{:#?}", h.logs());
    assert_eq!(
        h.last_requests(2),
        ["POST /containers/beef02/stop", "DELETE /containers/beef02"],
        "{context}"
    );
    assert_eq!(
        h.daemon.containers,
        BTreeMap::from([("app.ini".to_owned(), CONTAINER_ID.to_owned())]),
        "{context}"
    );
    assert_eq!(h.bridge.current_generation(), FIRST);
    assert_eq!(h.bridge.poll_timeout(), None, "{context}");
    assert_eq!(h.exit, None);
}

#[test]
fn a_daemon_that_does_not_answer_the_health_inspect_abandons_the_rollover() {
    let mut h = Harness::running_with_socket();
    h.daemon.health.insert(NEW_ID.into(), "starting");
    h.file_changes_to(HEALTH_CONFIG);
    h.new_vassal_connects(2);
    // From now on the new container's inspect is never answered.
    h.daemon.hang.push(NEW_INSPECT);
    h.generation_sends(SECOND, &[5]);
    let waiting_since = h.now;
    h.run_clock_until(waiting_since + HEALTH_VERDICT);
    assert!(
        matches!(
            h.abandoned(),
            Some(BridgeError::Vassal(VassalError::NeverHealthy { detail, .. }))
                if detail == "the daemon has not answered"
        ),
        "{:#?}",
        h.logs()
    );
    // The inspect in flight has its own deadline; then the new container is removed (by
    // force: a daemon that left a request unanswered gets no graceful stop).
    h.run_clock_until(waiting_since + HEALTH_VERDICT + DEFAULT_REQUEST_TIMEOUT);
    assert_eq!(
        h.daemon.containers,
        BTreeMap::from([("app.ini".to_owned(), CONTAINER_ID.to_owned())]),
        "{:#?}",
        h.logs()
    );
    assert_eq!(h.bridge.current_generation(), FIRST);
    assert_eq!(h.bridge.poll_timeout(), None);
    assert_eq!(h.exit, None);
}

#[test]
fn a_stop_while_waiting_for_health_removes_the_new_container_and_then_the_old() {
    for (inspect_hangs, turns_unhealthy) in [(false, false), (true, false), (false, true)] {
        let mut h = Harness::running_with_socket();
        h.daemon.health.insert(NEW_ID.into(), "starting");
        h.file_changes_to(HEALTH_CONFIG);
        h.new_vassal_connects(2);
        if inspect_hangs {
            h.daemon.hang.push(NEW_INSPECT);
        }
        h.generation_sends(SECOND, &[5]);
        if turns_unhealthy {
            // The stop comes while the unhealthy one finishes its requests.
            h.daemon.health.insert(NEW_ID.into(), "unhealthy");
        }
        h.advance(HEALTH_POLL);
        assert_eq!(h.abandoned().is_some(), turns_unhealthy);
        let stopped_at = h.now;
        let bound = h.bridge.shutdown_bound();
        h.emperor_sends(&[EmperorMessage::Stop.to_byte()]);
        h.run_clock_until(stopped_at + bound);
        let context = format!(
            "inspect hangs: {inspect_hangs}, unhealthy: {turns_unhealthy}: {:#?}",
            h.logs()
        );
        assert!(h.daemon.containers.is_empty(), "{context}");
        assert!(h.now <= stopped_at + bound, "{context}");
        assert!(h.dropped.contains(&SECOND), "{context}");
        assert!(
            !h.noticed(|n| matches!(n, Notice::RolledOver { .. })),
            "{context}"
        );
        assert!(
            !h.noticed(|n| matches!(n, Notice::CleanupFailed(_))) || inspect_hangs,
            "{context}"
        );
        h.assert_clean(0);
    }
}

/// A socket vassal fed by an imperial monitor (a config channel), running.
fn pushed_running_with_socket() -> Harness {
    let (plan, spec) = plan_for(SOCKET_CONFIG);
    let mut config = BridgeConfig::new(plan, spec, SOCKET_CONFIG.to_vec());
    config.emperor = EmperorChannels::ControlAndConfig;
    let mut h = Harness::new(config);
    h.run();
    h.vassal_connects(1);
    h.daemon.next_id = Some(NEW_ID);
    h
}

/// The Emperor reloads a pushed vassal with `config` (a fleet row whose `ts` moved).
fn emperor_reloads_with(h: &mut Harness, config: &[u8]) {
    h.emperor_sends(&[EmperorMessage::Reload.to_byte()]);
    h.bridge
        .handle_emperor_config(&config_packet(config), h.now);
    h.run();
}

#[test]
fn a_pushed_reload_whose_tag_now_names_another_image_rolls_over_to_it() {
    let mut h = pushed_running_with_socket();
    // The host pulled the moved tag; the row's ts moved, its config did not.
    h.daemon.tag_names = "sha256:0002";
    let (requests, pushes) = (h.daemon.requests.len(), h.to_vassal_config.len());
    emperor_reloads_with(&mut h, SOCKET_CONFIG);
    assert_eq!(
        &h.to_vassal_config[pushes..],
        config_packet(SOCKET_CONFIG),
        "the reloading vassal gets its config, and serves on"
    );
    assert_eq!(
        h.daemon.requests[requests..requests + 2],
        ["GET /containers/c0ffee/json", "GET /images/app/json"]
    );
    assert!(h.noticed(|n| matches!(n, Notice::ImageMoved { image } if image == "app")));
    assert_eq!(h.bridge.phase(), Phase::RollingOver, "{:#?}", h.logs());
    h.new_vassal_connects(2);
    h.generation_sends(SECOND, &[5]);
    h.container_exits(0);
    assert_eq!(h.bridge.container_id(), Some(NEW_ID));
    assert_eq!(h.daemon.image_of.get(NEW_ID).copied(), Some("sha256:0002"));
    assert_eq!(h.config_of[&SECOND], config_packet(SOCKET_CONFIG));
    // Now the tag names the running image: the next pushed reload is an ordinary one.
    let requests = h.daemon.requests.len();
    emperor_reloads_with(&mut h, SOCKET_CONFIG);
    assert_eq!(&h.daemon.requests[requests..], ["GET /images/app/json"]);
    assert_eq!(h.bridge.phase(), Phase::Running);
}

#[test]
fn a_pushed_reload_of_an_unmoved_tag_costs_two_requests_and_nothing_else() {
    let mut h = pushed_running_with_socket();
    let (requests, pushes) = (h.daemon.requests.len(), h.to_vassal_config.len());
    emperor_reloads_with(&mut h, SOCKET_CONFIG);
    assert_eq!(
        &h.daemon.requests[requests..],
        ["GET /containers/c0ffee/json", "GET /images/app/json"]
    );
    assert_eq!(
        h.to_vassal_config.len(),
        pushes + config_packet(SOCKET_CONFIG).len()
    );
    assert_eq!(h.bridge.phase(), Phase::Running);
    assert!(!h.noticed(|n| matches!(n, Notice::ImageMoved { .. })));
    // A daemon that cannot tell changes nothing either.
    h.daemon.hang.push("GET /images");
    emperor_reloads_with(&mut h, SOCKET_CONFIG);
    h.advance(DEFAULT_REQUEST_TIMEOUT);
    assert_eq!(h.bridge.phase(), Phase::Running, "{:#?}", h.logs());
    assert_eq!(h.bridge.container_id(), Some(CONTAINER_ID));
}

#[test]
fn a_moved_tag_recreates_a_pushed_vassal_that_cannot_roll_over() {
    let mut h = Harness::running();
    // Harness::running has no config channel: give this one the Emperor's pushes.
    let (plan, spec) = plan_for(h.file.as_slice());
    let mut config = BridgeConfig::new(plan, spec, h.file.clone());
    config.emperor = EmperorChannels::ControlAndConfig;
    let file = h.file.clone();
    h = Harness::new(config);
    h.file = file.clone();
    h.run();
    h.vassal_connects(1);
    h.daemon.tag_names = "sha256:0002";
    emperor_reloads_with(&mut h, &file);
    assert!(
        h.noticed(|n| matches!(n, Notice::ImageMoved { .. })),
        "{:#?}",
        h.logs()
    );
    assert!(h.noticed(|n| matches!(n, Notice::Recreating)));
}
