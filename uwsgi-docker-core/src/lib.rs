//! The sans-IO core of uwsgi-docker.
//!
//! Nothing in this crate opens a socket, reads a clock or spawns a process. Bytes and
//! time go in, decisions and bytes come out; the `uwsgi-docker` runtime does the I/O.
//!
//! ```text
//!  vassal ini ──► spec::parse_vassal ──► plan::ContainerPlan ──► docker::Api (request bytes)
//!                                                                   │
//!  Emperor fds ─► emperor::{ControlDecoder, ConfigDecoder}          ▼
//!                      │                       lifecycle::Bridge ◄─ http_reader::ResponseReader ◄─ dockerd
//!                      └──────────────────────► (handle_* / poll_*) ─► attach::{Demuxer, LineSplitter} ─► log
//!                                                    │
//!                                                    └─► handoff::HandoffMessage ─► proxy socket (SCM_RIGHTS)
//! ```
//!
//! * [`spec`]: the `[emperor]` section of a vassal file, parsed and validated.
//! * [`policy`]: the operator's policy: what a tenant's vassal may ask for, and what is forced.
//! * [`settings`]: the `UWSGIDOCKER_*` variables the front-ends hand the bridge runtime.
//! * [`plan`]: the container name, labels, proxy paths and command for one vassal.
//! * [`docker`]: Docker Engine API requests as HTTP/1.1 bytes, and typed replies.
//! * [`http_reader`]: an incremental HTTP/1.1 response reader with hard caps.
//! * [`attach`]: the attach stream (raw tty or multiplexed) and whole log lines.
//! * [`emperor`]: the Emperor's control bytes and config packets.
//! * [`handoff`]: the proxy handoff message.
//! * [`lifecycle`]: one vassal's life as a state machine.
#![forbid(unsafe_code)]

pub mod attach;
pub mod docker;
pub mod emperor;
pub mod handoff;
pub mod http_reader;
pub mod lifecycle;
pub mod plan;
pub mod policy;
pub mod settings;
pub mod spec;
