//! The runtime: the one place that touches sockets and processes.
//!
//! * [`start`]: a bridge's start, which wrapper mode and `uwsgi-docker run` both call;
//! * [`bridge`]: the poll loop that drives the core's `Bridge`, split along its jobs;
//! * [`hostfs`]: safe file and socket operations on paths a vassal names;
//! * [`users`]: the little it needs to know about host users.
pub mod bridge;
pub mod cgroup;
pub mod hostfs;
pub mod start;
pub mod users;
