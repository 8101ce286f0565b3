//! The end-to-end suites, one test binary (`cargo test -p uwsgi-docker-cli --test e2e`):
//! the harness is built and linked once, and each suite is a module, so filters pick
//! suites (`-- socket:: plugin::`) and `--skip` leaves tests out.
//!
//! Each test starts its own Emperor and containers through [`harness::World`]; a test that
//! cannot run here says so with [`skip::skip`] (a failure under `CI`).

mod harness;
mod load;
mod skip;

mod basics;
mod conflicts;
mod faults;
mod fleet;
mod hostfs;
mod metrics;
mod plugin;
mod registry;
mod rollover;
mod soak;
mod socket;
mod tenants;
