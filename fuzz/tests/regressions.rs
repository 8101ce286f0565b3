//! Replays every committed input under `regressions/<target>/` through its target's
//! invariant checks, on stable: `cargo test --manifest-path fuzz/Cargo.toml --test regressions`.
//!
//! A crash found by `cargo fuzz` goes into `regressions/<target>/` (any file name) with its fix.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

use uwsgi_docker_fuzz::TARGETS;

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// Runs every input of `target`, reporting all failing files at once.
fn replay(target: &str) {
    let (_, check) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("{target} is not in TARGETS"));
    let dir = regressions_dir().join(target);
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} has no inputs", dir.display());
    let failures: Vec<String> = inputs
        .iter()
        .filter_map(|path| {
            let data = fs::read(path).expect("readable input");
            panic::catch_unwind(|| check(&data))
                .err()
                .map(|_| path.display().to_string())
        })
        .collect();
    assert!(failures.is_empty(), "failing inputs: {failures:#?}");
}

macro_rules! replay {
    ($($target:ident),* $(,)?) => {
        $( #[test] fn $target() { replay(stringify!($target)); } )*

        /// Every target is replayed here and every regressions folder is a target.
        #[test]
        fn every_target_is_replayed() {
            let mut replayed = vec![$(stringify!($target)),*];
            let mut targets: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
            replayed.sort_unstable();
            targets.sort_unstable();
            assert_eq!(replayed, targets);
            for entry in fs::read_dir(regressions_dir()).expect("regressions/ exists") {
                let name = entry.expect("readable directory entry").file_name();
                let name = name.to_string_lossy();
                assert!(targets.contains(&&*name), "regressions/{name} is not a target");
            }
        }
    };
}

replay!(
    vassal_spec,
    http_reader,
    attach_demux,
    emperor_codec,
    lifecycle_ops,
    policy_parse,
    pull_progress
);

/// The committed `lifecycle_ops` input `rollover` goes the whole rollover path: the first
/// vassal, a changed section, the new vassal handed off and switched to, the old one
/// retired (the replay above checks every rule on the way).
#[test]
fn a_committed_lifecycle_input_rolls_over() {
    use uwsgi_docker_core::lifecycle::Generation;
    let path = regressions_dir().join("lifecycle_ops/rollover");
    let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reached = uwsgi_docker_fuzz::lifecycle_ops_reach(&data);
    assert_eq!(reached.handoffs, [Generation(0), Generation(1)]);
    assert_eq!(reached.current, Generation(1), "switched to the new vassal");
}

/// The committed `lifecycle_ops` input `rollover-health` is `rollover` with a changed
/// section that sets a health check: the switch waits for the daemon's answer about the
/// new container's health (a cooperative daemon's inspect reports none), then comes.
#[test]
fn a_committed_lifecycle_input_rolls_over_after_the_health_inspect() {
    use uwsgi_docker_core::lifecycle::Generation;
    let path = regressions_dir().join("lifecycle_ops/rollover-health");
    let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reached = uwsgi_docker_fuzz::lifecycle_ops_reach(&data);
    assert_eq!(reached.handoffs, [Generation(0), Generation(1)]);
    assert_eq!(reached.current, Generation(1), "switched to the new vassal");
}
