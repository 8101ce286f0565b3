//! The middle layer: a bridge's start and its poll loop, on top of [`crate::host`].
//!
//! * [`tenancy`]: the operator's policy applied to a vassal file's owner;
//! * [`start_error`]: why a bridge cannot start, by who has to act;
//! * [`start`]: a bridge's start, which wrapper mode and `uwsgi-docker run` both call;
//! * [`bridge`]: the poll loop that drives the core's `Bridge`, split along its jobs.
pub mod bridge;
pub mod start;
pub mod start_error;
pub mod tenancy;
