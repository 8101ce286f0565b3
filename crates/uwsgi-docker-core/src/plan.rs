//! The container plan: what the spec alone does not say (name, labels, proxy paths,
//! command, environment), decided deterministically from the vassal's identity.
//!
//! CONTRACT (filled in by the spec work).
use crate::spec::VassalSpec;

/// Label keys on every container we create.
pub mod labels {
    /// Marks a container as ours; value `"1"`.
    pub const MANAGED: &str = "io.uwsgi-docker.managed";
    /// The real vassal name, unmangled.
    pub const VASSAL: &str = "io.uwsgi-docker.vassal";
    /// The owning Emperor's identity, as given by the runtime.
    pub const EMPEROR: &str = "io.uwsgi-docker.emperor";
    /// The bridge that owns the container, as given by the runtime (e.g. `host:pid:starttime`).
    pub const BRIDGE: &str = "io.uwsgi-docker.bridge";
    /// The proxy socket path on the host, so `gc` can remove stale ones.
    pub const PROXY: &str = "io.uwsgi-docker.proxy";
}

/// Who a vassal is and where it lives; supplied by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VassalIdentity {
    /// The vassal name as the Emperor knows it (`foo.ini`, `x.ini:zerg`, …).
    pub name: String,
    /// Directory for the default proxy socket: the vassal file's directory, or the
    /// Emperor's socket directory when one is set.
    pub proxy_dir: String,
    /// Value of the [`labels::EMPEROR`] label.
    pub emperor_id: String,
    /// Value of the [`labels::BRIDGE`] label.
    pub bridge_id: String,
}

/// Everything needed to create one vassal's container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerPlan {
    pub spec: VassalSpec,
    pub vassal_name: String,
    /// Docker-valid and collision-free (see [`container_name`]).
    pub container_name: String,
    /// Our labels and the user's `docker-label`s, sorted by key.
    pub labels: Vec<(String, String)>,
    /// Where the bridge binds the proxy socket on the host.
    pub proxy_host_path: String,
    /// Where the proxy socket appears inside the container.
    pub proxy_container_path: String,
    /// The container's command: `[uwsgi, "--ini", "emperor://NAME"]` (native handoff).
    pub cmd: Vec<String>,
    /// `K=V` entries: `UWSGI_EMPEROR_PROXY=…` first, then `docker-env` in file order.
    pub env: Vec<String>,
}

/// A Docker-valid (`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`), deterministic and collision-free
/// container name for any vassal name: valid names pass through unchanged; others are
/// sanitised and suffixed with a short hash of the original.
pub fn container_name(vassal: &str) -> String {
    let _ = vassal;
    todo!()
}

impl ContainerPlan {
    pub fn new(spec: VassalSpec, identity: &VassalIdentity) -> ContainerPlan {
        let _ = (spec, identity);
        todo!()
    }
}
