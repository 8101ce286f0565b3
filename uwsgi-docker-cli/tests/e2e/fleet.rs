//! End to end: a fleet of Emperors fed from one PostgreSQL (issue 9). Each test starts a
//! private PostgreSQL (`scripts/pg-fleet.sh`: unix socket only, its own data directory,
//! `scripts/fleet-schema.sql` loaded) and two Emperors as hosts `h1` and `h2`, each with
//! `--plugin emperor_pg`, its own `WHERE host = …` query, name prefix, identity and
//! private runtime directory, all on this machine's one Docker daemon. Every test asserts
//! over HTTP and leaves nothing behind: no container, socket, process or database.
//!
//! The README's "Running a fleet" shows the same schema file and Emperor line
//! ([`readme_shows_the_schema_and_the_emperor_line_the_tests_use`] checks it).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::load::{rolling_vassal, Load};

/// The pg imperial monitor, from Debian's `uwsgi-plugin-emperor-pg`.
const EMPEROR_PG: &str = "/usr/lib/uwsgi/plugins/emperor_pg_plugin.so";
/// uWSGI's master says this when it exits after its workers (`core/master_checks.c`).
const GOODBYE: &str = "goodbye to uWSGI.";
/// The conninfo the README shows; the tests use their private socket directory instead.
const README_CONNINFO: &str = "host=/run/postgresql dbname=fleet user=postgres";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Host `host`'s query: the monitor's columns in its order, `ts` as epoch seconds.
fn query(host: &str) -> String {
    format!("SELECT name, config, EXTRACT(epoch FROM ts) FROM vassals WHERE host = '{host}'")
}

/// The `emperor = …` value of host `host`.
fn emperor_line(conninfo: &str, host: &str) -> String {
    format!("pg://{conninfo};{}", query(host))
}

/// Newest `/usr/lib/postgresql/N/bin` (Debian's layout), if any.
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

/// `Some(())` when the fleet can run here: the e2e prerequisites, PostgreSQL and the pg
/// monitor; otherwise [`skip`] (a failure under `CI`).
fn fleet_prerequisites(test: &str) -> Option<()> {
    prerequisites(test)?;
    let missing = if pg_bin().is_none() {
        Some("no /usr/lib/postgresql/*/bin/pg_ctl; apt-get install postgresql".to_owned())
    } else if !Path::new(EMPEROR_PG).exists() {
        Some(format!(
            "{EMPEROR_PG} is missing; apt-get install uwsgi-plugin-emperor-pg"
        ))
    } else if Command::new("runuser").arg("--help").output().is_err() {
        Some("runuser (util-linux) is missing".to_owned())
    } else {
        None
    };
    let Some(why) = missing else {
        return Some(());
    };
    skip(format_args!("{test}: fleet prerequisites missing: {why}"));
    None
}

static NEXT_FLEET: AtomicU32 = AtomicU32::new(0);

/// A private PostgreSQL, removed on drop.
struct Pg {
    dir: PathBuf,
    conninfo: String,
}

impl Pg {
    fn script(cmd: &str, dir: &Path) -> String {
        let out = Command::new(repo().join("scripts/pg-fleet.sh"))
            .arg(cmd)
            .arg(dir)
            .output()
            .expect("run scripts/pg-fleet.sh");
        assert!(
            out.status.success(),
            "scripts/pg-fleet.sh {cmd} {}: {}",
            dir.display(),
            lossy(&out.stderr)
        );
        lossy(&out.stdout).trim().to_owned()
    }

    fn start(dir: PathBuf) -> Pg {
        let conninfo = Pg::script("start", &dir);
        Pg { dir, conninfo }
    }

    fn stop(&self) {
        Pg::script("stop", &self.dir);
    }

    fn restart(&self) {
        assert_eq!(Pg::script("start", &self.dir), self.conninfo);
    }

    /// Runs `sql` as the superuser; the rows, `|`-separated.
    fn sql(&self, sql: &str) -> String {
        let psql = pg_bin().expect("postgresql").join("psql");
        let out = Command::new(psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.dir)
            .args(["-U", "postgres", "-d", "fleet", "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql:?}: {}", lossy(&out.stderr));
        lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/pg-fleet.sh"))
            .arg("clean")
            .arg(&self.dir)
            .output();
    }
}

/// A config as SQL text: dollar-quoted, so the tenant text needs no escaping.
fn literal(text: &str) -> String {
    assert!(!text.contains("$cfg$"));
    format!("$cfg${text}$cfg$")
}

// The statements the tests run, as the README shows them (names are plain, configs
// dollar-quoted).

fn insert_sql(host: &str, name: &str, config: &str) -> String {
    format!(
        "INSERT INTO vassals (host, name, config) VALUES ('{host}', '{name}', {});",
        literal(config)
    )
}

/// A new config, and `ts` moved forward by whole seconds so the monitor sees it.
fn update_sql(host: &str, name: &str, config: &str) -> String {
    format!(
        "UPDATE vassals SET config = {}, ts = ts + interval '2 seconds' WHERE host = '{host}' AND name = '{name}';",
        literal(config)
    )
}

/// The same config, `ts` moved: a reload, at which the bridge asks which image the tag
/// names (what `uwsgi-docker update` has the Emperor do for vassal files).
fn reload_sql(host: &str, name: &str) -> String {
    format!("UPDATE vassals SET ts = ts + interval '2 seconds' WHERE host = '{host}' AND name = '{name}';")
}

fn delete_sql(host: &str, name: &str) -> String {
    format!("DELETE FROM vassals WHERE host = '{host}' AND name = '{name}';")
}

fn move_sql(from: &str, to: &str, name: &str) -> String {
    format!(
        "UPDATE vassals SET host = '{to}', ts = now() WHERE host = '{from}' AND name = '{name}';"
    )
}

/// A fleet: one PostgreSQL, Emperors `h1`, `h2`… on this machine's daemon. Dropping it stops
/// the Emperors, then checks that nothing named by its tag is left (and cleans by force).
struct Fleet {
    /// In every vassal name, Emperor id and temp path of this fleet.
    tag: String,
    hosts: Vec<(String, World)>,
    pg: Pg,
    /// What every host's Emperor starts from (the mode, extra settings).
    base: EmperorOptions,
}

impl Fleet {
    fn start(test: &str, hosts: &[&str]) -> Option<Fleet> {
        Fleet::start_with(test, hosts, EmperorOptions::from_env())
    }

    /// As [`Fleet::start`], each host's Emperor starting from `base`.
    fn start_with(test: &str, hosts: &[&str], base: EmperorOptions) -> Option<Fleet> {
        fleet_prerequisites(test)?;
        let (pid, n) = (
            std::process::id(),
            NEXT_FLEET.fetch_add(1, Ordering::Relaxed),
        );
        let tag = format!("fl{pid}x{n}");
        // Not named by the tag: the Emperors' command lines name this directory, and
        // `leftovers` looks for processes naming the tag.
        let pg = Pg::start(std::env::temp_dir().join(format!("uwsgi-docker-pg{pid}y{n}")));
        let mut fleet = Fleet {
            tag,
            hosts: Vec::new(),
            pg,
            base,
        };
        for host in hosts {
            let world = fleet.start_host(test, host)?;
            fleet.hosts.push(((*host).to_owned(), world));
        }
        Some(fleet)
    }

    /// Host `host`'s Emperor: the pg monitor for its rows, prefix `host-`, id `<tag>-host`.
    fn start_host(&self, test: &str, host: &str) -> Option<World> {
        let prefix = format!("{host}-");
        let options = self
            .base
            .clone()
            .with_arg("--plugin")
            .with_arg(EMPEROR_PG)
            // A vassal whose row goes finishes its requests (message 2, not 0).
            .with_arg("--emperor-graceful-shutdown")
            .with_emperor(&emperor_line(&self.pg.conninfo, host))
            .with_env("UWSGIDOCKER_EMPEROR_ID", &format!("{}-{host}", self.tag));
        let options = if options.mode == Mode::Plugin {
            options.with_option("docker-name-prefix", &prefix)
        } else {
            options.with_env("UWSGIDOCKER_NAME_PREFIX", &prefix)
        };
        let world = World::start_with(&format!("{test}/{host}"), options)?;
        world.wait_for_log_line(&["enabled emperor PostgreSQL monitor"], SPAWN_TIMEOUT);
        Some(world)
    }

    fn host(&self, host: &str) -> &World {
        &self
            .hosts
            .iter()
            .find(|(h, _)| h == host)
            .unwrap_or_else(|| panic!("no host {host}"))
            .1
    }

    /// Stops (SIGKILL) host `host`'s Emperor, as a crash would.
    fn kill_host(&mut self, host: &str) {
        let (_, world) = self
            .hosts
            .iter_mut()
            .find(|(h, _)| h == host)
            .expect("the host");
        world.kill_emperor();
    }

    /// A vassal name of this fleet: `<tag>-<short>.ini`.
    fn vassal(&self, short: &str) -> String {
        format!("{}-{short}.ini", self.tag)
    }

    /// The container host `host` runs for vassal `name`.
    fn container(host: &str, name: &str) -> String {
        format!("{host}-{name}")
    }

    fn insert(&self, host: &str, name: &str, config: &str) {
        self.pg.sql(&insert_sql(host, name, config));
    }

    fn update(&self, host: &str, name: &str, config: &str) {
        self.pg.sql(&update_sql(host, name, config));
    }

    fn delete(&self, host: &str, name: &str) {
        self.pg.sql(&delete_sql(host, name));
    }

    /// Logs of every host, for a failure message.
    fn logs(&self) -> String {
        self.hosts
            .iter()
            .map(|(h, w)| format!("--- {h}:\n{}\n", w.log_tail(30)))
            .collect()
    }

    /// Everything of this fleet that exists: containers by name or vassal label, and
    /// processes naming the tag (bridges, Emperors: these are stopped by then).
    fn leftovers(&self) -> Vec<String> {
        let format = format!("{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.Label \"{LABEL_VASSAL}\"}}}}");
        let mut left: Vec<String> = docker_ok(&["ps", "-a", "--no-trunc", "--format", &format])
            .lines()
            .filter(|l| l.contains(&self.tag))
            .map(|l| format!("container {l}"))
            .collect();
        left.extend(
            processes_matching(&self.tag)
                .into_iter()
                .map(|(pid, cmd)| format!("process {pid}: {cmd}")),
        );
        left
    }

    fn assert_clean_within(&self, timeout: Duration, after: &str) {
        let mut left = Vec::new();
        let clean = wait_for(timeout, || {
            left = self.leftovers();
            left.is_empty().then_some(())
        });
        assert!(
            clean.is_some(),
            "{after}, still left after {timeout:?}: {left:#?}\n{}",
            self.logs()
        );
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Each World stops its Emperor and checks its own runtime directory.
        let mut worlds: Vec<World> = self.hosts.drain(..).map(|(_, w)| w).collect();
        for w in &mut worlds {
            w.stop_emperor();
        }
        let mut left = Vec::new();
        wait_for(CLEANUP_TIMEOUT, || {
            left = self.leftovers();
            left.is_empty().then_some(())
        });
        for line in &left {
            if let Some(id) = line
                .strip_prefix("container ")
                .and_then(|l| l.split('\t').next())
            {
                let _ = docker(&["rm", "-f", id]);
            }
        }
        drop(worlds);
        if !left.is_empty() && !thread::panicking() {
            panic!("fleet {}: left behind: {left:#?}", self.tag);
        }
    }
}

fn serves(port: u16, body: &str) -> bool {
    matches!(http_get(port, "/"), Ok((200, b)) if b == body)
}

fn wait_serving(fleet: &Fleet, port: u16, body: &str) {
    let ok = wait_for(SPAWN_TIMEOUT, || serves(port, body).then_some(()));
    assert!(
        ok.is_some(),
        "port {port} never answered {body:?}: {:?}\n{}",
        http_get(port, "/"),
        fleet.logs()
    );
}

/// A vassal of the fleet: HTTP on 127.0.0.1:`port`, answering `greeting`.
fn vassal_config(port: u16, extra_emperor: &str, greeting: &str) -> String {
    docker_vassal(port, extra_emperor, &format!("env = GREETING={greeting}"))
}

/// Which hosts' logs name `name`.
fn hosts_naming(fleet: &Fleet, name: &str) -> Vec<String> {
    fleet
        .hosts
        .iter()
        .filter(|(_, w)| w.log().contains(name))
        .map(|(h, _)| h.clone())
        .collect()
}

/// Issue 9: an inserted row is served by its host's Emperor, in a container of that host's
/// prefix and identity, and the other host never hears of it.
#[test]
fn an_inserted_row_is_served_by_its_host_only() {
    let Some(fleet) = Fleet::start("fleet-insert", &["h1", "h2"]) else {
        return;
    };
    let name = fleet.vassal("insert");
    let port = free_port();
    let greeting = format!("h1 serves {}", fleet.tag);
    fleet.insert("h1", &name, &vassal_config(port, "", &greeting));
    wait_serving(&fleet, port, &greeting);

    let id = container_id(&Fleet::container("h1", &name)).expect("h1's container");
    assert_eq!(
        inspect(
            &id,
            &format!("{{{{index .Config.Labels \"{LABEL_EMPEROR}\"}}}}")
        ),
        format!("{}-h1", fleet.tag)
    );
    // A pushed config has no directory: the proxy socket was in h1's private runtime
    // directory, named with h1's prefix, not in the Emperor's working directory.
    let h1 = fleet.host("h1");
    assert!(h1.proxy_dir.ends_with(format!("{}-h1", fleet.tag)));
    assert_eq!(
        inspect(&id, r#"{{index .Config.Labels "io.uwsgi-docker.proxy"}}"#),
        h1.proxy_dir
            .join(format!("{}.sock", Fleet::container("h1", &name)))
            .to_string_lossy()
    );
    assert!(container_id(&Fleet::container("h2", &name)).is_none());
    assert_eq!(hosts_naming(&fleet, &name), ["h1"], "{}", fleet.logs());
}

/// Issue 9: a new `[uwsgi]` section and a later `ts` reload the vassal in the same container.
#[test]
fn a_new_uwsgi_section_reloads_in_the_same_container() {
    let Some(fleet) = Fleet::start("fleet-reload", &["h1"]) else {
        return;
    };
    let name = fleet.vassal("reload");
    let port = free_port();
    fleet.insert("h1", &name, &vassal_config(port, "", "before"));
    wait_serving(&fleet, port, "before");
    let before = container_id(&Fleet::container("h1", &name)).expect("the container");

    let after = format!("after {}", fleet.tag);
    fleet.update("h1", &name, &vassal_config(port, "", &after));
    wait_serving(&fleet, port, &after);
    assert_eq!(
        container_id(&Fleet::container("h1", &name)),
        Some(before),
        "a reload replaced the container\n{}",
        fleet.logs()
    );
}

/// Issue 9: a new `[emperor]` section gets a new container made to the new settings.
#[test]
fn a_new_emperor_section_makes_a_new_container() {
    let Some(fleet) = Fleet::start("fleet-recreate", &["h1"]) else {
        return;
    };
    let name = fleet.vassal("recreate");
    let port = free_port();
    fleet.insert("h1", &name, &vassal_config(port, "", "first"));
    wait_serving(&fleet, port, "first");
    let before = container_id(&Fleet::container("h1", &name)).expect("the container");

    fleet.update(
        "h1",
        &name,
        &vassal_config(port, "docker-env = FLEET_MARK=second", "second"),
    );
    wait_serving(&fleet, port, "second");
    let after = container_id(&Fleet::container("h1", &name)).expect("the new container");
    assert_ne!(after, before, "the settings changed, the container did not");
    assert!(inspect(&after, "{{json .Config.Env}}").contains("FLEET_MARK=second"));
}

/// Issue 9: a deleted row's container, proxy socket and bridge go.
#[test]
fn a_deleted_row_is_removed() {
    let Some(fleet) = Fleet::start("fleet-delete", &["h1"]) else {
        return;
    };
    let name = fleet.vassal("delete");
    let port = free_port();
    fleet.insert("h1", &name, &vassal_config(port, "", "doomed"));
    wait_serving(&fleet, port, "doomed");

    fleet.delete("h1", &name);
    fleet.assert_clean_within(CLEANUP_TIMEOUT, "after the row was deleted");
    assert!(http_get(port, "/").is_err(), "port {port} still answers");
    fleet
        .host("h1")
        .wait_for_log_line(&["stop the uwsgi instance", &name], SPAWN_TIMEOUT);
}

/// Requests `ports` in order every 20 ms until stopped; a round fails when none of them
/// answers 200 with a body in `bodies`. The load balancer of a real fleet, in small.
struct Client {
    stop: Arc<AtomicBool>,
    /// (when, ok) of each round.
    rounds: Arc<Mutex<Vec<(Instant, bool)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    fn start(ports: Vec<u16>, bodies: Vec<String>) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ok = ports.iter().any(
                        |&port| matches!(http_get(port, "/"), Ok((200, b)) if bodies.contains(&b)),
                    );
                    rounds
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((Instant::now(), ok));
                    thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Client {
            stop,
            rounds,
            thread: Some(thread),
        }
    }

    /// Stops; returns (rounds, failed rounds, longest run without service).
    fn finish(mut self) -> (usize, usize, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the client thread");
        }
        let rounds = self.rounds.lock().unwrap_or_else(|e| e.into_inner());
        let failed = rounds.iter().filter(|(_, ok)| !ok).count();
        let mut gap = Duration::ZERO;
        let mut last_ok: Option<Instant> = None;
        let mut failing_since: Option<Instant> = None;
        for &(when, ok) in rounds.iter() {
            if ok {
                if let Some(since) = failing_since.take() {
                    // From the last good answer before the failures to the first one after.
                    gap = gap.max(when - last_ok.unwrap_or(since));
                }
                last_ok = Some(when);
            } else if failing_since.is_none() {
                failing_since = Some(when);
            }
        }
        (rounds.len(), failed, gap)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Issue 9: moving a row from h1 to h2 by updating `host`. h2 serves it, and h1's container
/// ends with uWSGI's own graceful exit (its goodbye line in h1's log), not a forced
/// removal. On one daemon the two containers publish the same port, so h2's can start only
/// once h1's is gone: the gap in service is printed.
#[test]
fn a_row_moved_to_another_host_is_served_there_after_a_graceful_stop() {
    let Some(fleet) = Fleet::start("fleet-move", &["h1", "h2"]) else {
        return;
    };
    let name = fleet.vassal("move");
    let port = free_port();
    let greeting = format!("moving {}", fleet.tag);
    fleet.insert("h1", &name, &vassal_config(port, "", &greeting));
    wait_serving(&fleet, port, &greeting);
    let old = container_id(&Fleet::container("h1", &name)).expect("h1's container");

    let client = Client::start(vec![port], vec![greeting.clone()]);
    thread::sleep(Duration::from_millis(500));
    fleet.pg.sql(&move_sql("h1", "h2", &name));
    let moved = wait_for(SPAWN_TIMEOUT, || {
        container_id(&Fleet::container("h2", &name))
            .filter(|_| serves(port, &greeting))
            .filter(|_| container_id(&old).is_none())
    });
    assert!(
        moved.is_some(),
        "h2 never took the vassal over\n{}",
        fleet.logs()
    );
    // A few good rounds after the move, so the gap is closed by an answer from h2.
    thread::sleep(Duration::from_millis(500));
    let (rounds, failed, gap) = client.finish();
    eprintln!(
        "fleet-move: plain move h1 -> h2 on one daemon: {failed} of {rounds} requests failed, gap in service {gap:?}"
    );

    let h1 = fleet.host("h1");
    h1.wait_for_log_line(&["stop the uwsgi instance", &name], SPAWN_TIMEOUT);
    h1.wait_for_log_line(&[&name, "received message 2 from emperor"], SPAWN_TIMEOUT);
    h1.wait_for_log_line(&[&name, "graceful shutdown triggered"], SPAWN_TIMEOUT);
    h1.wait_for_log_line(&[&name, GOODBYE], SPAWN_TIMEOUT);
    assert!(
        !h1.log().contains("by force"),
        "h1's container was forced:\n{}",
        h1.log_tail(40)
    );
    assert!(
        !fleet.host("h2").log().contains("is taken by container"),
        "h2 fought over a name:\n{}",
        fleet.logs()
    );
    assert!(serves(port, &greeting));
}

/// Issue 9: the make-before-break move. A new name on h2 (its own port) first; once it
/// serves, h1's row goes. A client that knows both addresses, as a load balancer would,
/// never fails a request.
#[test]
fn make_before_break_moves_a_vassal_with_no_failed_request() {
    let Some(fleet) = Fleet::start("fleet-mbb", &["h1", "h2"]) else {
        return;
    };
    let (old_name, new_name) = (fleet.vassal("blue"), fleet.vassal("green"));
    let (old_port, new_port) = (free_port(), free_port());
    let (old_body, new_body) = (
        format!("blue {}", fleet.tag),
        format!("green {}", fleet.tag),
    );
    fleet.insert("h1", &old_name, &vassal_config(old_port, "", &old_body));
    wait_serving(&fleet, old_port, &old_body);

    let client = Client::start(
        vec![old_port, new_port],
        vec![old_body.clone(), new_body.clone()],
    );
    thread::sleep(Duration::from_millis(500));
    fleet.insert("h2", &new_name, &vassal_config(new_port, "", &new_body));
    wait_serving(&fleet, new_port, &new_body);
    fleet.delete("h1", &old_name);
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        container_id(&Fleet::container("h1", &old_name))
            .is_none()
            .then_some(())
    });
    assert!(gone.is_some(), "h1's container stayed\n{}", fleet.logs());
    thread::sleep(Duration::from_millis(500));
    let (rounds, failed, gap) = client.finish();
    eprintln!("fleet-mbb: make-before-break h1 -> h2: {failed} of {rounds} requests failed, gap in service {gap:?}");
    assert_eq!(
        failed,
        0,
        "requests failed during the move\n{}",
        fleet.logs()
    );
    assert!(rounds > 10, "the client hardly ran: {rounds} rounds");
    fleet
        .host("h1")
        .wait_for_log_line(&[GOODBYE], SPAWN_TIMEOUT);
    assert!(serves(new_port, &new_body));
}

/// Container ids of `names` (host, vassal) now.
fn ids(names: &[(&str, &str)]) -> Vec<Option<String>> {
    names
        .iter()
        .map(|(host, name)| container_id(&Fleet::container(host, name)))
        .collect()
}

/// Every `(port, body)` serves and the containers stay the same for `how_long`.
fn steady(fleet: &Fleet, served: &[(u16, &str)], names: &[(&str, &str)], how_long: Duration) {
    let before = ids(names);
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        for &(port, body) in served {
            assert!(
                serves(port, body),
                "port {port} stopped answering {body:?}: {:?}\n{}",
                http_get(port, "/"),
                fleet.logs()
            );
        }
        assert_eq!(ids(names), before, "a container changed\n{}", fleet.logs());
        thread::sleep(Duration::from_millis(300));
    }
}

/// Issue 9: with the database stopped every vassal keeps serving and nothing churns (each
/// poll fails, and a failed poll stops nothing). Nothing can change in a stopped database,
/// so the changes are made the moment it is back: they apply, and the rows that did not
/// change are not restarted.
#[test]
fn a_database_outage_stops_nothing_and_changes_apply_when_it_is_back() {
    let Some(fleet) = Fleet::start("fleet-outage", &["h1", "h2"]) else {
        return;
    };
    let (a, b) = (fleet.vassal("a"), fleet.vassal("b"));
    let (port_a, port_b) = (free_port(), free_port());
    fleet.insert("h1", &a, &vassal_config(port_a, "", "a"));
    fleet.insert("h2", &b, &vassal_config(port_b, "", "b"));
    wait_serving(&fleet, port_a, "a");
    wait_serving(&fleet, port_b, "b");
    let names = [("h1", a.as_str()), ("h2", b.as_str())];
    let before = ids(&names);

    fleet.pg.stop();
    for host in ["h1", "h2"] {
        fleet
            .host(host)
            .wait_for_log_line(&["libpq-error"], Duration::from_secs(10));
    }
    steady(
        &fleet,
        &[(port_a, "a"), (port_b, "b")],
        &names,
        Duration::from_secs(5),
    );

    fleet.pg.restart();
    let c = fleet.vassal("c");
    let port_c = free_port();
    fleet.update("h1", &a, &vassal_config(port_a, "", "a, changed"));
    fleet.insert("h2", &c, &vassal_config(port_c, "", "c"));
    wait_serving(&fleet, port_a, "a, changed");
    wait_serving(&fleet, port_c, "c");
    // a reloaded in place, b untouched.
    assert_eq!(ids(&names), before, "{}", fleet.logs());
    assert!(serves(port_b, "b"));
}

/// Issue 9: a host's Emperor SIGKILLed: its bridges see the Emperor's channel close and
/// remove their containers; the other host's vassals are untouched.
#[test]
fn a_killed_emperor_takes_its_containers_and_only_its_own() {
    let Some(mut fleet) = Fleet::start("fleet-kill", &["h1", "h2"]) else {
        return;
    };
    let (a1, a2, b) = (fleet.vassal("a1"), fleet.vassal("a2"), fleet.vassal("b"));
    let (port_a1, port_a2, port_b) = (free_port(), free_port(), free_port());
    fleet.insert("h1", &a1, &vassal_config(port_a1, "", "a1"));
    fleet.insert("h1", &a2, &vassal_config(port_a2, "", "a2"));
    fleet.insert("h2", &b, &vassal_config(port_b, "", "b"));
    for (port, body) in [(port_a1, "a1"), (port_a2, "a2"), (port_b, "b")] {
        wait_serving(&fleet, port, body);
    }
    let b_id = container_id(&Fleet::container("h2", &b)).expect("h2's container");

    fleet.kill_host("h1");
    let gone = wait_for(CLEANUP_TIMEOUT, || {
        let left: Vec<String> = [&a1, &a2]
            .iter()
            .map(|n| Fleet::container("h1", n))
            .filter(|c| container_id(c).is_some())
            .chain(
                processes_matching(&format!("{}-h1", fleet.tag))
                    .into_iter()
                    .map(|(pid, cmd)| format!("{pid} {cmd}")),
            )
            .chain(
                [&a1, &a2]
                    .iter()
                    .flat_map(|n| processes_matching(&bridge_title(n)))
                    .map(|(pid, cmd)| format!("{pid} {cmd}")),
            )
            .collect();
        left.is_empty().then_some(())
    });
    assert!(gone.is_some(), "h1's vassals outlived it\n{}", fleet.logs());
    assert!(http_get(port_a1, "/").is_err() && http_get(port_a2, "/").is_err());
    steady(
        &fleet,
        &[(port_b, "b")],
        &[("h2", b.as_str())],
        Duration::from_secs(2),
    );
    assert_eq!(
        container_id(&Fleet::container("h2", &b)),
        Some(b_id),
        "{}",
        fleet.logs()
    );
}

/// Issue 9: a row whose config is bad: the host's log says what is wrong, naming the
/// vassal, and the other vassals keep serving in the same containers.
#[test]
fn a_bad_row_is_named_in_the_log_and_the_others_keep_serving() {
    let Some(fleet) = Fleet::start("fleet-bad", &["h1", "h2"]) else {
        return;
    };
    let (good1, good2, bad) = (
        fleet.vassal("good1"),
        fleet.vassal("good2"),
        fleet.vassal("bad"),
    );
    let (port1, port2) = (free_port(), free_port());
    fleet.insert("h1", &good1, &vassal_config(port1, "", "good1"));
    fleet.insert("h2", &good2, &vassal_config(port2, "", "good2"));
    wait_serving(&fleet, port1, "good1");
    wait_serving(&fleet, port2, "good2");
    let names = [("h1", good1.as_str()), ("h2", good2.as_str())];

    fleet.insert(
        "h1",
        &bad,
        &vassal_config(free_port(), "docker-memory = lots", "bad"),
    );
    let line = fleet
        .host("h1")
        .wait_for_log_line(&[&bad, "docker-memory", "lots"], SPAWN_TIMEOUT);
    eprintln!("fleet-bad: h1 says: {line}");
    steady(
        &fleet,
        &[(port1, "good1"), (port2, "good2")],
        &names,
        Duration::from_secs(3),
    );
    assert!(container_id(&Fleet::container("h1", &bad)).is_none());
    fleet.delete("h1", &bad);
}

/// Issue 9, "the conflict fight cannot happen": two hosts on one daemon both get a row
/// named the same; both serve, side by side, and neither container is ever replaced.
#[test]
fn two_hosts_with_the_same_vassal_name_on_one_daemon_both_serve() {
    let Some(fleet) = Fleet::start("fleet-same-name", &["h1", "h2"]) else {
        return;
    };
    let name = fleet.vassal("app");
    let (port1, port2) = (free_port(), free_port());
    let (body1, body2) = (format!("h1 {}", fleet.tag), format!("h2 {}", fleet.tag));
    fleet.insert("h1", &name, &vassal_config(port1, "", &body1));
    fleet.insert("h2", &name, &vassal_config(port2, "", &body2));
    wait_serving(&fleet, port1, &body1);
    wait_serving(&fleet, port2, &body2);
    let names = [("h1", name.as_str()), ("h2", name.as_str())];
    assert!(ids(&names).iter().all(Option::is_some));
    steady(
        &fleet,
        &[(port1, &body1), (port2, &body2)],
        &names,
        Duration::from_secs(6),
    );
    for (host, w) in &fleet.hosts {
        assert!(
            !w.log().contains("is taken by container"),
            "{host} reported a conflict:\n{}",
            w.log_tail(30)
        );
    }
}

/// The README's "Running a fleet" shows the schema file the tests load, and the Emperor
/// line they run (with the README's conninfo).
#[test]
fn readme_shows_the_schema_and_the_emperor_line_the_tests_use() {
    let readme = fs::read_to_string(repo().join("README.md")).expect("README.md");
    let schema = fs::read_to_string(repo().join("scripts/fleet-schema.sql")).expect("schema");
    assert!(
        readme.contains(schema.trim_end()),
        "README.md does not show scripts/fleet-schema.sql as it is"
    );
    let line = format!("emperor = {}", emperor_line(README_CONNINFO, "h1"));
    assert!(readme.contains(&line), "README.md lacks {line:?}");
    assert!(readme.contains("scripts/pg-fleet.sh start"));
    let example = "app.ini";
    for sql in [
        insert_sql("h1", example, "[emperor]"),
        update_sql("h1", example, "…"),
        reload_sql("h1", example),
        delete_sql("h1", example),
        move_sql("h1", "h2", example),
    ] {
        // The insert's config runs on over several lines in the README.
        let shown = sql.strip_suffix("[emperor]$cfg$);").unwrap_or(&sql);
        assert!(readme.contains(shown), "README.md lacks {shown:?}");
    }
}

/// Issue 17's first route for pushed configs, in plugin mode: under a policy a row without
/// `docker-image` runs on the host only when the policy's `[vassals]` maps it to root.
/// The hook judges it as wrapper mode does (`check --policy emperor://NAME`, the config on
/// stdin): an unmapped row is nobody's and refused, naming the way out; a mapped one runs.
#[test]
fn plugin_mode_judges_a_pushed_config_without_docker_image_by_its_tenant() {
    let test = "fleet-native";
    let base = std::env::temp_dir().join(format!("uwsgi-docker-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).expect("dir");
    let policy = base.join("policy.ini");
    fs::write(&policy, "[vassals]\n*-legacy.ini = root\n").expect("policy");
    let options =
        EmperorOptions::plugin(false).with_option("docker-policy", &policy.display().to_string());
    let Some(fleet) = Fleet::start_with(test, &["h1"], options) else {
        let _ = fs::remove_dir_all(&base);
        return;
    };
    let native = |marker: &Path| {
        format!(
            "[uwsgi]\nhook-as-root = exec:touch {}\nhttp-socket = 127.0.0.1:0\n",
            marker.display()
        )
    };
    let (pwned, ran) = (base.join("pwned"), base.join("legacy-ran"));
    let unmapped = fleet.vassal("row");
    let legacy = fleet.vassal("legacy");
    fleet.insert("h1", &unmapped, &native(&pwned));
    fleet.insert("h1", &legacy, &native(&ran));
    let line = fleet.host("h1").wait_for_log_line(
        &[
            &unmapped,
            "the pushed config is owned by nobody",
            "has no docker-image",
        ],
        SPAWN_TIMEOUT,
    );
    assert!(
        line.contains("map it to root in the policy's [vassals]"),
        "{line}"
    );
    wait_for(SPAWN_TIMEOUT, || ran.exists().then_some(()))
        .unwrap_or_else(|| panic!("the mapped row did not run:\n{}", fleet.logs()));
    assert!(!pwned.exists(), "an unmapped row ran on the host as root");
    fleet.delete("h1", &unmapped);
    fleet.delete("h1", &legacy);
    drop(fleet);
    assert!(!pwned.exists(), "an unmapped row ran on the host as root");
    let _ = fs::remove_dir_all(&base);
}

/// Image tags a test made on the engine, untagged on drop (also on failure).
struct Tags(Vec<String>);

impl Drop for Tags {
    fn drop(&mut self) {
        for tag in &self.0 {
            let _ = docker(&["rmi", tag]);
        }
    }
}

/// Issue 18's fleet rows: after a host's tag moves (here `docker tag` of a new build, as a
/// pull of a re-pushed tag leaves it), the README's reload SQL (`ts` moved, config as it
/// was) has the Emperor reload the row; the bridge asks which image the tag names and
/// rolls the socket vassal over to it, under load, with no failed request.
#[test]
fn a_rows_reload_after_its_tag_moved_rolls_over_under_load() {
    let Some(fleet) = Fleet::start("fleet-tag", &["h1"]) else {
        return;
    };
    let reference = format!("uwsgi-docker-e2e-{}:live", fleet.tag);
    let mut tags = Tags(Vec::new());
    docker_ok(&["tag", &image(), &reference]);
    tags.0.push(reference.clone());
    let port = free_port();
    let name = fleet.vassal("tag");
    fleet.insert("h1", &name, &rolling_vassal(port, &reference, "live", ""));
    wait_serving(&fleet, port, "live");
    let first = containers_labelled(LABEL_VASSAL, &name);
    assert_eq!(first.len(), 1);
    // A reload with the tag where it was: the same container (the monitor polls every
    // 3 s; a reload relays to uWSGI in it).
    fleet.pg.sql(&reload_sql("h1", &name));
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(containers_labelled(LABEL_VASSAL, &name), first);
    assert!(!fleet.host("h1").log().contains("names another image now"));

    // The tag moves to a new build.
    let context = std::env::temp_dir().join(format!("uwsgi-docker-{}-context", fleet.tag));
    fs::create_dir_all(&context).expect("build context");
    fs::write(context.join("marker"), "two").expect("marker");
    fs::write(
        context.join("Dockerfile"),
        format!("FROM {}\nCOPY marker /marker\n", image()),
    )
    .expect("Dockerfile");
    docker_ok(&[
        "build",
        "-q",
        "-t",
        &reference,
        &context.display().to_string(),
    ]);
    let _ = fs::remove_dir_all(&context);
    let new_id = docker_ok(&["image", "inspect", "-f", "{{.Id}}", &reference])
        .trim()
        .to_owned();

    let load = Load::start(port);
    load.warm_up("the reload");
    fleet.pg.sql(&reload_sql("h1", &name));
    let h1 = fleet.host("h1");
    h1.wait_for_log_line(&[&name, "names another image now"], SPAWN_TIMEOUT);
    h1.wait_for_log_line(&[&name, "the rollover is complete"], SPAWN_TIMEOUT);
    let tally = load.finish_after_more("the rollover");
    tally.assert_none_failed("row reload + rollover", &fleet.logs());
    let now = containers_labelled(LABEL_VASSAL, &name);
    assert_eq!(now.len(), 1);
    assert_ne!(now, first);
    assert_eq!(inspect(&now[0], "{{.Image}}").trim(), new_id);
    fleet.delete("h1", &name);
    fleet.assert_clean_within(CLEANUP_TIMEOUT, "after the row was deleted");
    drop(fleet);
    drop(tags);
}
