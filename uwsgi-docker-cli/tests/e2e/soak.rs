//! The soak (`scripts/soak.sh`, RELIABILITY.md): vassals churning under one Emperor, and
//! the figures that must not grow. Ignored by default: it loads the machine for as long as
//! it runs. `cargo test -p uwsgi-docker-cli --test e2e -- --ignored soak::` runs it small.
//!
//! Env: `UWSGIDOCKER_SOAK_SLOTS` (vassals, default 10), `UWSGIDOCKER_SOAK_SECONDS` (the
//! churn, default 30), `UWSGIDOCKER_SOAK_PAUSE_MS` (between actions, default 400),
//! `UWSGIDOCKER_SOAK_SEED` (the actions' random seed, default the clock's; printed).

use std::fs;
use std::time::{Duration, Instant, SystemTime};

use crate::harness::*;

fn setting(key: &str, default: u64) -> u64 {
    match std::env::var(key) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v:?} is not a number")),
        _ => default,
    }
}

/// xorshift64: the churn's actions, replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What must be the same at the start and at the end, with every vassal serving.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Figures {
    emperor_fds: usize,
    bridges: usize,
    containers: usize,
    /// Every process naming the test's id but the Emperor: bridges, and each container's
    /// uWSGI master and worker (the host's /proc shows them).
    processes: usize,
}

/// The bridges' USS (`Private_Clean + Private_Dirty`), KiB, sorted: reported, not
/// asserted (memory is the benchmarks' business).
fn bridge_uss(slots: &[String]) -> Vec<u64> {
    let mut uss: Vec<u64> = slots
        .iter()
        .flat_map(|name| processes_matching(&bridge_title(name)))
        .filter_map(|(pid, _)| fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .map(|rollup| {
            rollup
                .lines()
                .filter(|l| l.starts_with("Private_Clean:") || l.starts_with("Private_Dirty:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        })
        .collect();
    uss.sort_unstable();
    uss
}

fn figures(w: &World, slots: &[String]) -> Figures {
    let emperor = w.emperor_pid();
    Figures {
        emperor_fds: fs::read_dir(format!("/proc/{emperor}/fd"))
            .map(|d| d.count())
            .unwrap_or(0),
        bridges: slots
            .iter()
            .map(|name| processes_matching(&bridge_title(name)).len())
            .sum(),
        containers: containers_labelled(LABEL_EMPEROR, &w.id).len(),
        processes: processes_matching(&w.id)
            .into_iter()
            .filter(|(pid, _)| *pid != emperor)
            .count(),
    }
}

/// Waits until the figures hold still for two readings a second apart; returns them.
fn settled(w: &World, slots: &[String]) -> Figures {
    wait_for(Duration::from_secs(60), || {
        let a = figures(w, slots);
        std::thread::sleep(Duration::from_secs(1));
        let b = figures(w, slots);
        (a == b).then_some(b)
    })
    .unwrap_or_else(|| panic!("the figures never held still:\n{}", w.log_tail(40)))
}

/// Spawn, touch (a reload with a new greeting), `docker kill` and delete at random on
/// SLOTS vassals for SECONDS; then every vassal serves its last greeting, and the Emperor's
/// fds, the bridges, containers and processes are what they were at the start. Once all
/// are deleted, nothing is left (the World's guard: containers, socket files, processes).
#[test]
#[ignore = "a soak, minutes of load: scripts/soak.sh runs it"]
fn churn_leaves_nothing() {
    let slots = setting("UWSGIDOCKER_SOAK_SLOTS", 10) as usize;
    let churn = Duration::from_secs(setting("UWSGIDOCKER_SOAK_SECONDS", 30));
    let pause = Duration::from_millis(setting("UWSGIDOCKER_SOAK_PAUSE_MS", 400));
    let clock = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let seed = setting("UWSGIDOCKER_SOAK_SEED", clock).max(1);
    let Some(mut w) = World::start("soak") else {
        return;
    };
    w.cleanup_timeout = Duration::from_secs(120);
    let names: Vec<String> = (0..slots)
        .map(|i| w.vassal_name(&format!("s{i:02}")))
        .collect();
    let ports: Vec<u16> = (0..slots).map(|_| free_port()).collect();
    let mut greeting: Vec<String> = vec![String::new(); slots];
    let mut present = vec![false; slots];
    let mut generation = 0u64;
    let mut write =
        |w: &mut World, slot: usize, greeting: &mut Vec<String>, present: &mut Vec<bool>| {
            generation += 1;
            greeting[slot] = format!("soak {slot} gen {generation}");
            let text = docker_vassal(
                ports[slot],
                "",
                &format!("env = GREETING={}", greeting[slot]),
            );
            if present[slot] {
                w.rewrite_vassal(&names[slot], &text);
            } else {
                w.write_vassal(&names[slot], &text);
            }
            present[slot] = true;
        };
    for slot in 0..slots {
        write(&mut w, slot, &mut greeting, &mut present);
    }
    for slot in 0..slots {
        w.wait_for_body(ports[slot], &greeting[slot], Duration::from_secs(300));
    }
    let start = settled(&w, &names);
    let start_uss = bridge_uss(&names);

    let mut rng = Rng(seed);
    let (mut spawns, mut touches, mut kills, mut deletes) = (0, 0, 0, 0);
    let began = Instant::now();
    while began.elapsed() < churn {
        let slot = rng.below(slots as u64) as usize;
        if !present[slot] {
            write(&mut w, slot, &mut greeting, &mut present);
            spawns += 1;
        } else {
            match rng.below(10) {
                0..=4 => {
                    write(&mut w, slot, &mut greeting, &mut present);
                    touches += 1;
                }
                5..=7 => {
                    let _ = docker(&["kill", &names[slot]]);
                    kills += 1;
                }
                _ => {
                    w.remove_vassal(&names[slot]);
                    present[slot] = false;
                    deletes += 1;
                }
            }
        }
        std::thread::sleep(pause);
    }
    // Back to the start's shape: every vassal present, each serving its last config.
    for slot in 0..slots {
        if !present[slot] {
            write(&mut w, slot, &mut greeting, &mut present);
        }
    }
    for slot in 0..slots {
        w.wait_for_body(ports[slot], &greeting[slot], Duration::from_secs(300));
    }
    let end = settled(&w, &names);
    let end_uss = bridge_uss(&names);
    let report = format!(
        "soak: {slots} vassals, {churn:?} of churn (seed {seed}): {spawns} spawns, {touches} \
         touches, {kills} container kills, {deletes} deletes\n  start {start:?}, bridge USS \
         KiB min/median/max {:?}\n  end   {end:?}, bridge USS KiB min/median/max {:?}\n",
        spread(&start_uss),
        spread(&end_uss)
    );
    // Printed whether or not libtest captures output: the figures are the soak's result.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes());
    assert_eq!(
        start.bridges, slots,
        "one bridge per vassal at the start: {start:?}"
    );
    assert_eq!(start, end, "the figures grew over the churn\n{report}");

    for name in &names {
        w.remove_vassal(name);
    }
    w.assert_clean_within(Duration::from_secs(120), "all vassals were removed");
}

/// (min, median, max) of a sorted list.
fn spread(sorted: &[u64]) -> Option<(u64, u64, u64)> {
    Some((*sorted.first()?, sorted[sorted.len() / 2], *sorted.last()?))
}
