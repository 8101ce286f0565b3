//! A test that cannot run here says so and is not counted as passed. Shared by the
//! end-to-end suites and the CLI's unit tests (`src/host/mod.rs` includes this file), so
//! it is std-only.
//!
//! Outside `CI` a skip prints `SKIPPED <test>: <why>` straight to stderr (libtest captures
//! `eprintln!`, not writes to the stream itself) and appends the same line to the file
//! named by `UWSGIDOCKER_SKIP_LOG`: `scripts/test.sh` counts those lines as skipped, not
//! passed. Under `CI` a skip is a failure: CI installs every prerequisite, and a test that
//! does not belong to a stage is left out of it with `--skip`.
use std::io::Write;

/// Skips the running test (the caller returns right after), or fails it under `CI`.
pub fn skip(why: impl std::fmt::Display) {
    let thread = std::thread::current();
    // libtest runs each test on a thread named after it: `suite::test_name`.
    let test = thread.name().unwrap_or("(a test)");
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test} cannot run here, and CI runs every test of its stage: {why}");
    }
    let line = format!("SKIPPED {test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os("UWSGIDOCKER_SKIP_LOG").filter(|v| !v.is_empty()) {
        // One write of one short line: concurrent tests' lines do not interleave (O_APPEND).
        let logged = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = logged {
            panic!(
                "{test}: cannot record its skip in UWSGIDOCKER_SKIP_LOG={}: {e}",
                std::path::Path::new(&log).display()
            );
        }
    }
}
