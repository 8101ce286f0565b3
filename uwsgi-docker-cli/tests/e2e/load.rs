//! Client threads that loop `GET /` on a port while a vassal changes, and what they saw:
//! the zero-downtime tests' measure (shared by rollover:: and registry::).
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::harness::{http_get, wait_for, APP_IN_IMAGE};

/// Client threads that loop requests during the whole change.
pub const CLIENTS: usize = 4;
/// Each client's pause between requests: a few hundred requests a second in all. Without
/// one the clients hit, about once in a dozen runs, a race inside uWSGI's own graceful
/// worker stop (a worker told to stop just after it accepted a connection exits without
/// answering it; a touch-reload has the same race), which no bridge can close.
pub const CLIENT_PAUSE: Duration = Duration::from_millis(10);
/// How many answers count as "the clients get answers".
const SOME_ANSWERS: usize = 20;

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: usize,
    /// By answer: how many times each body came.
    pub bodies: BTreeMap<String, usize>,
    pub failures: Vec<String>,
}

impl Tally {
    /// Prints what the clients saw during `change` and fails the test on any failed
    /// request, showing `log`.
    pub fn assert_none_failed(&self, change: &str, log: &str) {
        eprintln!(
            "{change} under {CLIENTS} clients: {} ok, {} failed, answers {:?}",
            self.ok,
            self.failures.len(),
            self.bodies
        );
        assert!(
            self.failures.is_empty(),
            "{} of {} requests failed during {change}: {:?}\n{log}",
            self.failures.len(),
            self.ok + self.failures.len(),
            &self.failures[..self.failures.len().min(10)],
        );
    }
}

/// Clients that loop `GET /` on `port` until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let threads = (0..CLIENTS)
            .map(|_| {
                let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let got = http_get(port, "/");
                        let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
                        match got {
                            Ok((200, body)) => {
                                tally.ok += 1;
                                *tally.bodies.entry(body).or_default() += 1;
                            }
                            other => tally.failures.push(format!("{other:?}")),
                        }
                        drop(tally);
                        thread::sleep(CLIENT_PAUSE);
                    }
                })
            })
            .collect();
        Load {
            stop,
            tally,
            threads,
        }
    }

    pub fn ok(&self) -> usize {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).ok
    }

    /// Waits until the clients get answers before `change`; fails the test if they do not.
    pub fn warm_up(&self, change: &str) {
        let warm = wait_for(Duration::from_secs(10), || {
            (self.ok() > SOME_ANSWERS).then_some(())
        });
        assert!(warm.is_some(), "the clients get answers before {change}");
    }

    /// A moment more load after `change` (the clients must get answers), then stops them.
    pub fn finish_after_more(self, change: &str) -> Tally {
        let ok_after = self.ok();
        let more = wait_for(Duration::from_secs(10), || {
            (self.ok() > ok_after + SOME_ANSWERS).then_some(())
        });
        assert!(more.is_some(), "the clients get answers after {change}");
        self.finish()
    }

    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        Arc::try_unwrap(self.tally)
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_default()
    }
}

/// A vassal serving HTTP on the host's `127.0.0.1:port` through `docker-socket`, its app
/// greeting with `greeting`.
pub fn rolling_vassal(port: u16, image: &str, greeting: &str, extra_emperor: &str) -> String {
    format!(
        "[emperor]\n\
         docker-image = {image}\n\
         docker-socket = 127.0.0.1:{port}\n\
         docker-stop-timeout = 10\n\
         {extra_emperor}\n\
         \n\
         [uwsgi]\n\
         master = true\n\
         plugin = psgi\n\
         psgi = {APP_IN_IMAGE}\n\
         protocol = http\n\
         processes = 2\n\
         env = GREETING={greeting}\n"
    )
}
