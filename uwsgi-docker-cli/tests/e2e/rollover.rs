//! End to end for zero-downtime rollover: a `docker-socket` vassal whose `[emperor]`
//! section changes is moved to a new container while clients keep sending requests, and a
//! broken new image leaves the old container serving.
//!
//! Same rules as `e2e.rs`: a real Emperor per test, real containers and real HTTP through
//! the host's socket, nothing left behind, skipped without Docker, uWSGI or the test image
//! (failing under `CI`).

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::load::{rolling_vassal, Load};

/// Two tags of the test image: the same files, told apart by the app's greeting.
const TAG_A: &str = "roll-a";
const TAG_B: &str = "roll-b";

/// A World for this test (the bridge carries the static launcher that passes the socket
/// on fd 0).
fn world(test: &str) -> Option<World> {
    prerequisites(test)?;
    World::start(test)
}

/// `image()` tagged `tag` (same repository), made once per run.
fn tagged(tag: &str) -> String {
    let image = image();
    let repository = image.rsplit_once(':').map_or(image.as_str(), |(r, _)| r);
    let target = format!("{repository}:{tag}");
    docker_ok(&["tag", &image, &target]);
    target
}

fn bridge_pids(name: &str) -> Vec<u32> {
    processes_matching(&bridge_title(name))
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// Done means: under load for the whole change from tag A to tag B, no request fails, tag
/// B answers afterwards, one container is left, and the Emperor saw one vassal (its bridge
/// is the same process, never cursed or respawned).
#[test]
fn an_image_change_under_load_rolls_over_without_a_failed_request() {
    let Some(mut w) = world("rollover_load") else {
        return;
    };
    let (image_a, image_b) = (tagged(TAG_A), tagged(TAG_B));
    let port = free_port();
    let name = w.vassal_name("roll");
    w.write_vassal(&name, &rolling_vassal(port, &image_a, "from-a", ""));
    w.wait_for_body(port, "from-a", SPAWN_TIMEOUT);
    let bridges = bridge_pids(&name);
    assert_eq!(bridges.len(), 1, "one bridge: {bridges:?}");
    let first = containers_labelled(LABEL_VASSAL, &name);
    assert_eq!(first.len(), 1);

    let load = Load::start(port);
    load.warm_up("the change");
    let changed_at = Instant::now();
    w.rewrite_vassal(&name, &rolling_vassal(port, &image_b, "from-b", ""));
    w.wait_for_log_line(&[&name, "starting a new container (image"], SPAWN_TIMEOUT);
    w.wait_for_log_line(
        &[&name, "accepts requests and has the Emperor's channels"],
        SPAWN_TIMEOUT,
    );
    w.wait_for_log_line(&[&name, "the rollover is complete"], SPAWN_TIMEOUT);
    let rolled_in = changed_at.elapsed();
    // A moment of load on the new container alone.
    let tally = load.finish_after_more("the change");
    tally.assert_none_failed(
        &format!("the rollover (rolled over in {rolled_in:?})"),
        &w.log_tail(60),
    );
    assert!(tally.bodies.contains_key("from-a") && tally.bodies.contains_key("from-b"));
    w.wait_for_body(port, "from-b", Duration::from_secs(5));

    let now = containers_labelled(LABEL_VASSAL, &name);
    assert_eq!(now.len(), 1, "one container left: {now:?}");
    assert_ne!(now, first, "it is the new one");
    // Podman names it in full (`docker.io/library/…`).
    let running_image = inspect(&now[0], "{{.Config.Image}}");
    assert!(running_image.ends_with(&image_b), "{running_image}");
    assert_eq!(
        bridge_pids(&name),
        bridges,
        "the same bridge: no curse, no respawn"
    );
    assert!(
        !w.log().contains("curse"),
        "the Emperor cursed a vassal:\n{}",
        w.log_tail(60)
    );

    // The vassal is still the Emperor's: a touch reloads the new container, and removing
    // the file removes it with everything else.
    w.rewrite_vassal(&name, &rolling_vassal(port, &image_b, "from-b2", ""));
    w.wait_for_body(port, "from-b2", SPAWN_TIMEOUT);
    assert_eq!(containers_labelled(LABEL_VASSAL, &name), now);
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the rolled-over vassal was removed");
}

/// Done means: a broken new image (a tag that does not exist; an image whose uWSGI cannot
/// run) leaves the old container serving, the error logged, and nothing behind once the
/// vassal is removed.
#[test]
fn a_broken_new_image_leaves_the_old_container_serving() {
    let Some(mut w) = world("rollover_broken") else {
        return;
    };
    let image_a = tagged(TAG_A);
    let port = free_port();
    let name = w.vassal_name("broken");
    w.write_vassal(&name, &rolling_vassal(port, &image_a, "still-a", ""));
    w.wait_for_body(port, "still-a", SPAWN_TIMEOUT);
    let first = containers_labelled(LABEL_VASSAL, &name);
    let bridges = bridge_pids(&name);

    for (broken, error) in [
        (
            rolling_vassal(
                port,
                "uwsgi-docker-no-such-image:never",
                "never",
                "docker-pull = never",
            ),
            "docker image \"uwsgi-docker-no-such-image:never\" not found",
        ),
        (
            rolling_vassal(
                port,
                &image_a,
                "never",
                "docker-uwsgi = /usr/bin/no-uwsgi-here",
            ),
            "the rollover is abandoned",
        ),
    ] {
        let load = Load::start(port);
        w.rewrite_vassal(&name, &broken);
        let line = w.wait_for_log_line(&[&name, error], SPAWN_TIMEOUT);
        assert!(line.contains(&name), "{line}");
        w.wait_for_log_line(&[&name, "the rollover is abandoned"], SPAWN_TIMEOUT);
        // Its container is removed; the old one is the only one.
        let settled = wait_for(CLEANUP_TIMEOUT, || {
            (containers_labelled(LABEL_VASSAL, &name) == first).then_some(())
        });
        assert!(
            settled.is_some(),
            "containers: {:?}\n{}",
            containers_labelled(LABEL_VASSAL, &name),
            w.log_tail(40)
        );
        let tally = load.finish();
        assert!(
            tally.failures.is_empty(),
            "requests failed during a broken rollover: {:?}\n{}",
            &tally.failures[..tally.failures.len().min(10)],
            w.log_tail(40)
        );
        assert_eq!(tally.bodies.keys().collect::<Vec<_>>(), ["still-a"]);
        w.wait_for_body(port, "still-a", Duration::from_secs(5));
        assert_eq!(bridge_pids(&name), bridges, "the same bridge serves on");
    }

    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassal was removed");
}

/// A published port cannot be shared by two containers: such a vassal keeps today's
/// behaviour (the bridge removes the container and the Emperor starts a new one).
#[test]
fn a_published_port_vassal_is_recreated_as_before() {
    let Some(mut w) = world("rollover_port") else {
        return;
    };
    let port = free_port();
    let name = w.vassal_name("port");
    w.write_vassal(&name, &docker_vassal(port, "", "env = GREETING=one"));
    w.wait_for_body(port, "one", SPAWN_TIMEOUT);
    let bridges = bridge_pids(&name);
    w.rewrite_vassal(
        &name,
        &docker_vassal(port, "docker-env = X=1", "env = GREETING=two"),
    );
    w.wait_for_log_line(
        &[&name, "the Emperor starts the vassal again"],
        SPAWN_TIMEOUT,
    );
    w.wait_for_body(port, "two", SPAWN_TIMEOUT);
    assert!(!w.log().contains("starting a new container"));
    assert_ne!(bridge_pids(&name), bridges, "a new bridge");
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassal was removed");
}

/// A bridge killed after a rollover leaves its container on the vassal's other name: its
/// uWSGI ends with the relayed channel and `AutoRemove` takes the container, so the vassal
/// the Emperor starts again is served by one new container, and nothing waits for `gc`.
#[test]
fn a_bridge_killed_after_a_rollover_leaves_nothing_for_gc() {
    let Some(mut w) = world("rollover_killed") else {
        return;
    };
    let (image_a, image_b) = (tagged(TAG_A), tagged(TAG_B));
    let port = free_port();
    let name = w.vassal_name("killed");
    w.write_vassal(&name, &rolling_vassal(port, &image_a, "before", ""));
    w.wait_for_body(port, "before", SPAWN_TIMEOUT);
    w.rewrite_vassal(&name, &rolling_vassal(port, &image_b, "after", ""));
    w.wait_for_log_line(&[&name, "the rollover is complete"], SPAWN_TIMEOUT);
    let rolled = containers_labelled(LABEL_VASSAL, &name);
    assert_eq!(rolled.len(), 1);
    let bridges = bridge_pids(&name);
    assert_eq!(bridges.len(), 1, "{bridges:?}");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &bridges[0].to_string()])
        .status();
    let settled = wait_for(SPAWN_TIMEOUT, || {
        let now = containers_labelled(LABEL_VASSAL, &name);
        let served = matches!(http_get(port, "/"), Ok((200, b)) if b == "after");
        (served && now.len() == 1 && now != rolled).then_some(())
    });
    assert!(
        settled.is_some(),
        "containers: {:?}\n{}",
        containers_labelled(LABEL_VASSAL, &name),
        w.log_tail(40)
    );
    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassal was removed");
}

/// A health check that passes in the test image (it has no shell: exec form), checked
/// every second.
const PASSING_CHECK: &str =
    "docker-healthcheck = [\"uwsgi\", \"--version\"]\ndocker-health-interval = 1s";
/// One that never passes: the daemon reports unhealthy after two failures in a row.
const FAILING_CHECK: &str = "docker-healthcheck = [\"/no/such/check\"]\ndocker-health-interval = 1s\ndocker-health-retries = 2";

/// Where `needles` first shows in the log, as a line number.
fn log_position(w: &World, needles: &[&str]) -> Option<usize> {
    w.log()
        .lines()
        .position(|l| needles.iter().all(|n| l.contains(n)))
}

/// Done means: a rollover to a container with a health check waits, under load, for the
/// daemon's word that it is healthy before the old container is stopped, and no request
/// fails.
#[test]
fn a_health_gated_rollover_under_load_switches_once_healthy_without_a_failed_request() {
    let Some(mut w) = world("rollover_health") else {
        return;
    };
    let (image_a, image_b) = (tagged(TAG_A), tagged(TAG_B));
    let port = free_port();
    let name = w.vassal_name("healthy");
    w.write_vassal(&name, &rolling_vassal(port, &image_a, "from-a", ""));
    w.wait_for_body(port, "from-a", SPAWN_TIMEOUT);
    let first = containers_labelled(LABEL_VASSAL, &name);
    let bridges = bridge_pids(&name);

    let load = Load::start(port);
    load.warm_up("the change");
    let changed_at = Instant::now();
    w.rewrite_vassal(
        &name,
        &rolling_vassal(port, &image_b, "from-b", PASSING_CHECK),
    );
    let waiting = w.wait_for_log_line(
        &[
            &name,
            "waiting up to",
            "health check to pass before switching",
        ],
        SPAWN_TIMEOUT,
    );
    w.wait_for_log_line(
        &[&name, "accepts requests and has the Emperor's channels"],
        SPAWN_TIMEOUT,
    );
    let switched_after = changed_at.elapsed();
    w.wait_for_log_line(&[&name, "the rollover is complete"], SPAWN_TIMEOUT);
    let tally = load.finish_after_more("the change");
    tally.assert_none_failed(
        &format!("the health-gated rollover (switched after {switched_after:?}; {waiting})"),
        &w.log_tail(60),
    );
    assert!(tally.bodies.contains_key("from-a") && tally.bodies.contains_key("from-b"));
    // The switch came after the wait, and the container switched to is healthy.
    let waited = log_position(&w, &[&name, "health check to pass before switching"]);
    let switched = log_position(&w, &[&name, "has the Emperor's channels"]);
    assert!(waited < switched, "{}", w.log_tail(40));
    assert!(
        !w.log().contains("the rollover is abandoned"),
        "{}",
        w.log_tail(40)
    );
    let now = containers_labelled(LABEL_VASSAL, &name);
    assert_eq!(now.len(), 1, "one container left: {now:?}");
    assert_ne!(now, first, "it is the new one");
    assert_eq!(inspect(&now[0], "{{.State.Health.Status}}"), "healthy");
    w.wait_for_body(port, "from-b", Duration::from_secs(5));
    assert_eq!(bridge_pids(&name), bridges, "the same bridge");

    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassal was removed");
}

/// Done means: a new container whose health check fails is abandoned, under load: the old
/// container serves on, the new one finishes what it took from the shared socket and is
/// removed, and no request fails.
#[test]
fn a_new_container_failing_its_health_check_is_abandoned_under_load_without_a_failed_request() {
    let Some(mut w) = world("rollover_unhealthy") else {
        return;
    };
    let image_a = tagged(TAG_A);
    let port = free_port();
    let name = w.vassal_name("unhealthy");
    w.write_vassal(&name, &rolling_vassal(port, &image_a, "still-a", ""));
    w.wait_for_body(port, "still-a", SPAWN_TIMEOUT);
    let first = containers_labelled(LABEL_VASSAL, &name);
    let bridges = bridge_pids(&name);

    let load = Load::start(port);
    load.warm_up("the change");
    w.rewrite_vassal(
        &name,
        &rolling_vassal(port, &image_a, "sick", FAILING_CHECK),
    );
    w.wait_for_log_line(
        &[&name, "health check to pass before switching"],
        SPAWN_TIMEOUT,
    );
    let line = w.wait_for_log_line(
        &[
            &name,
            "the rollover is abandoned",
            "turned unhealthy before the switch",
        ],
        Duration::from_secs(60),
    );
    assert!(line.contains("failed checks in a row"), "{line}");
    // The new container is removed once it has stopped; the old one is the only one.
    let settled = wait_for(CLEANUP_TIMEOUT, || {
        (containers_labelled(LABEL_VASSAL, &name) == first).then_some(())
    });
    assert!(
        settled.is_some(),
        "containers: {:?}\n{}",
        containers_labelled(LABEL_VASSAL, &name),
        w.log_tail(40)
    );
    let tally = load.finish_after_more("the abandonment");
    tally.assert_none_failed("the abandoned health-gated rollover", &w.log_tail(60));
    assert!(!w
        .log()
        .contains("has the Emperor's channels; stopping the old"));
    w.wait_for_body(port, "still-a", Duration::from_secs(5));
    assert_eq!(bridge_pids(&name), bridges, "the same bridge serves on");
    assert!(
        !w.log().contains("curse"),
        "the Emperor cursed a vassal:\n{}",
        w.log_tail(60)
    );

    w.remove_vassal(&name);
    w.assert_clean_within(CLEANUP_TIMEOUT, "after the vassal was removed");
}
