//! The bottom layer: everything that touches the host's files, users, processes and
//! sockets by itself. It imports nothing from the layers above (`runtime`, `commands`,
//! `wrapper`).
//!
//! * [`hostfs`]: safe file and socket operations on paths a vassal names;
//! * [`vassal_file`]: a vassal file opened once, its text and its owner from one descriptor;
//! * [`users`]: the little it needs to know about host users;
//! * [`proxy`]: the proxy socket's fd passing and TCP listeners;
//! * [`listen`]: the vassal's `docker-socket`, bound as uWSGI would;
//! * [`registry_auth`]: the operator's registry credentials file, read safely;
//! * [`start_slots`]: the host-wide bound on containers being created and started at once;
//! * [`sys`]: processes, namespaces and signals;
//! * [`cgroup`]: a container's memory and CPU from its cgroup files;
//! * [`docker_client`]: a blocking client for the commands (`ps`, `gc`);
//! * [`launcher_binary`] and [`elf`]: the static launcher written out and checked.
pub mod cgroup;
pub mod docker_client;
pub mod elf;
pub mod hostfs;
pub mod launcher_binary;
pub mod listen;
pub mod proxy;
pub mod registry_auth;
pub mod start_slots;
pub mod sys;
/// A unit test that cannot run here (not root): `SKIPPED …`, and a failure under `CI`;
/// the end-to-end suites' own helper.
#[cfg(test)]
#[path = "../../tests/e2e/skip.rs"]
pub mod test_skip;
pub mod users;
pub mod vassal_file;
