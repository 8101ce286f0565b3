//! The sans-IO core of uwsgi-docker: run uWSGI Emperor vassals in Docker containers.
//!
//! Nothing in this crate opens a socket, reads a clock or spawns a process. Bytes and
//! time go in, decisions and bytes come out; the caller does the I/O, with whatever
//! runtime it likes (the `uwsgi-docker` binary uses blocking `poll`, and
//! `examples/tokio_lifecycle.rs` drives a container from tokio).
//!
//! ```text
//!  vassal ini ──► spec::parse_vassal ──► plan::ContainerPlan ──► docker::Api ──► requests ──► dockerd
//!                                                                                               │
//!  replies ◄── docker::parse_* ◄── http_reader::ResponseReader ◄────────────────────────────────┘
//!  attach stream ──► attach::{Demuxer, LineSplitter} ──► log lines
//!  Emperor fds ◄──► emperor::{EmperorMessage, VassalMessage, ConfigDecoder, encode_config}
//!  proxy socket ──► handoff::encode (+ SCM_RIGHTS, sent by the caller)
//!  all of the above, in order, for one vassal: lifecycle::Bridge (handle_* in, poll_* out)
//! ```
//!
//! * [`spec`]: the `[emperor]` section of a vassal file, parsed and validated.
//! * [`policy`]: the operator's policy: what a tenant's vassal may ask for, and what is forced.
//! * [`settings`]: the `UWSGIDOCKER_*` variables the front-ends hand the bridge runtime.
//! * [`plan`]: the container name, labels, proxy paths and command for one vassal.
//! * [`docker`]: Docker Engine API requests ([`http::Request`] or HTTP/1.1 bytes), and
//!   typed replies.
//! * [`http_reader`]: an incremental HTTP/1.1 response reader with hard caps.
//! * [`attach`]: the attach stream (raw tty or multiplexed) and whole log lines.
//! * [`emperor`]: the Emperor's control bytes and config packets.
//! * [`handoff`]: the proxy handoff message.
//! * [`lifecycle`]: one vassal's whole life as a state machine.
//! * [`health`]: the container's health as the daemon reports it, and when it ends the vassal.
//! * [`vassal_state`]: a vassal's counters kept between bridges, for metrics and `ps`.
//!
//! # From a vassal file to a create request
//!
//! ```
//! use uwsgi_docker_core::docker::{Api, ApiVersion};
//! use uwsgi_docker_core::plan::{ContainerPlan, VassalIdentity};
//! use uwsgi_docker_core::spec;
//!
//! let vassal = b"[emperor]\ndocker-image = psgi001\ndocker-port = 127.0.0.1:9001:3031\n\n[uwsgi]\nhttp-socket = :3031\n";
//! let spec = spec::parse_vassal("app.ini", vassal)?.expect("a Docker vassal");
//! let identity = VassalIdentity::new("app.ini", "/etc/uwsgi/vassals", "host:1", "host:4242:1");
//! let plan = ContainerPlan::new(spec, &identity);
//! plan.validate()?;
//!
//! // The daemon's /version said 1.41.
//! let api = Api::negotiate(ApiVersion { major: 1, minor: 41 })?;
//! let request = api.create_request(&plan)?;
//! assert_eq!(request.uri(), "/v1.41/containers/create?name=app.ini");
//! let body: serde_json::Value = serde_json::from_slice(request.body())?;
//! assert_eq!(body["HostConfig"]["PortBindings"]["3031/tcp"][0]["HostPort"], "9001");
//!
//! // Or as bytes, to write to /var/run/docker.sock as they are.
//! let mut bytes = Vec::new();
//! api.create(&plan, &mut bytes);
//! assert!(bytes.starts_with(b"POST /v1.41/containers/create?name=app.ini HTTP/1.1\r\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attach;
pub mod docker;
pub mod emperor;
pub mod handoff;
pub mod health;
pub mod http_reader;
pub mod lifecycle;
pub mod plan;
pub mod policy;
pub mod settings;
pub mod spec;
pub mod vassal_state;

/// The crate README's example, run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
