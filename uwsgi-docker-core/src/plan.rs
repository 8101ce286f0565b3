//! The container plan: what the spec alone does not say (name, labels, proxy paths,
//! command, environment), decided deterministically from the vassal's identity.
//!
use crate::spec::{HandoffMode, VassalSpec};

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
    /// The `docker-cidfile` path on the host, when one is set, so `ps` and `gc` see it.
    pub const CIDFILE: &str = "io.uwsgi-docker.cidfile";
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
    /// The proxy socket is in the Emperor's private runtime directory (set by the runtime,
    /// which owns that directory): mode 0666 there, so any container user can connect.
    pub proxy_in_private_dir: bool,
    /// The container's command. Native handoff: `[uwsgi, "--ini", "emperor://NAME"]`.
    /// Launcher: `[LAUNCHER_CONTAINER_PATH, proxy_container_path, uwsgi, "--ini",
    /// "emperor://NAME"]`.
    pub cmd: Vec<String>,
    /// `K=V` entries: `UWSGI_EMPEROR_PROXY=…` first (native handoff only: the launcher
    /// takes the proxy path as an argument, and uWSGI must not look for a proxy again),
    /// then `docker-env` in file order.
    pub env: Vec<String>,
    /// How the fds reach uWSGI: never [`HandoffMode::Auto`] here.
    pub handoff: HandoffMode,
    /// A listening socket goes with the handoff (`docker-socket` or an inherited
    /// on-demand socket), after the control and config fds.
    pub passes_socket: bool,
    /// The static launcher on the host, bind-mounted read-only at
    /// [`LAUNCHER_CONTAINER_PATH`] in launcher mode.
    pub launcher_host_path: Option<String>,
}

/// Where the launcher appears inside the container: at the root, beside nothing an image
/// would ship.
pub const LAUNCHER_CONTAINER_PATH: &str = "/.uwsgi-docker-launcher";

/// What the runtime knows that the spec does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// The static launcher executable on the host (needed in launcher mode).
    pub launcher_host_path: Option<String>,
    /// The Emperor gave us a listening socket on fd 0 (an on-demand vassal).
    pub inherited_socket: bool,
}

/// The longest container name we produce.
pub const MAX_CONTAINER_NAME: usize = 128;

/// Hex digits of the FNV-1a 64 hash that marks a sanitised name.
const HASH_HEX: usize = 16;

/// A Docker-valid (`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`), deterministic and collision-free
/// container name for any vassal name: valid names pass through unchanged; others are
/// sanitised and suffixed with a short hash of the original.
///
/// Why two vassals never share a name:
/// * Every sanitised name ends in `-` and 16 lowercase hex digits (the hash of the whole
///   original name). A name that already ends that way is never passed through: it is
///   sanitised (hashed) too. So pass-through outputs never look like sanitised outputs, and
///   two different pass-through names are different outputs.
/// * Two different sanitised names differ in their hash, unless FNV-1a 64 collides on two
///   vassal names of one host, which we accept (about 2^-64 per pair).
pub fn container_name(vassal: &str) -> String {
    if is_valid_name(vassal) && !looks_hashed(vassal) {
        return vassal.to_owned();
    }
    let mut prefix: String = vassal
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '_',
        })
        .take(MAX_CONTAINER_NAME - HASH_HEX - 1)
        .collect();
    if !prefix.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        // Docker wants a letter or digit first; `v` for vassal.
        prefix.insert(0, 'v');
        prefix.truncate(MAX_CONTAINER_NAME - HASH_HEX - 1);
    }
    format!("{prefix}-{:016x}", fnv1a64(vassal.as_bytes()))
}

/// Docker's rule for names, plus our length cap.
fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes.len() <= MAX_CONTAINER_NAME
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Ends in `-` and 16 lowercase hex digits, as every sanitised name does.
fn looks_hashed(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(hash) = bytes
        .len()
        .checked_sub(HASH_HEX + 1)
        .and_then(|start| bytes.get(start..))
    else {
        return false;
    };
    hash.first() == Some(&b'-')
        && hash
            .iter()
            .skip(1)
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// FNV-1a, 64 bits: tiny, stable across versions and platforms.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl ContainerPlan {
    /// Decide everything about the container that the spec leaves open, with no
    /// launcher and no inherited socket (see [`ContainerPlan::with_options`]).
    pub fn new(spec: VassalSpec, identity: &VassalIdentity) -> ContainerPlan {
        ContainerPlan::with_options(spec, identity, &PlanOptions::default())
    }

    /// Decide everything about the container that the spec leaves open.
    ///
    /// In launcher mode without `options.launcher_host_path` the command still names the
    /// launcher; the runtime refuses such a plan before creating anything.
    pub fn with_options(
        spec: VassalSpec,
        identity: &VassalIdentity,
        options: &PlanOptions,
    ) -> ContainerPlan {
        let vassal_name = identity.name.clone();
        let container_name = container_name(&vassal_name);
        let proxy_host_path = match &spec.proxy {
            Some(proxy) => proxy.host.clone(),
            None => format!(
                "{}/{}.sock",
                identity.proxy_dir.trim_end_matches('/'),
                vassal_name
            ),
        };
        let proxy_container_path = spec
            .proxy
            .as_ref()
            .and_then(|p| p.container.clone())
            .unwrap_or_else(|| format!("/{container_name}.sock"));
        let mut labels = vec![
            (labels::MANAGED.to_owned(), "1".to_owned()),
            (labels::VASSAL.to_owned(), vassal_name.clone()),
            (labels::EMPEROR.to_owned(), identity.emperor_id.clone()),
            (labels::BRIDGE.to_owned(), identity.bridge_id.clone()),
            (labels::PROXY.to_owned(), proxy_host_path.clone()),
        ];
        if let Some(cidfile) = &spec.cidfile {
            labels.push((labels::CIDFILE.to_owned(), cidfile.clone()));
        }
        // `parse_vassal` refuses user labels under our prefix; should a hand-built spec
        // carry one anyway, ours win.
        for (key, value) in &spec.labels {
            if !labels.iter().any(|(k, _)| k == key) {
                labels.push((key.clone(), value.clone()));
            }
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let (handoff, passes_socket) = spec.handoff_for(options.inherited_socket);
        let uwsgi = [
            spec.uwsgi.clone(),
            "--ini".to_owned(),
            format!("emperor://{vassal_name}"),
        ];
        let user_env = spec.env.iter().map(|(k, v)| format!("{k}={v}"));
        let (cmd, env) = if handoff == HandoffMode::Launcher {
            let launcher = [
                LAUNCHER_CONTAINER_PATH.to_owned(),
                proxy_container_path.clone(),
            ];
            (
                launcher.into_iter().chain(uwsgi).collect(),
                user_env.collect(),
            )
        } else {
            let proxy = format!("UWSGI_EMPEROR_PROXY={proxy_container_path}");
            (
                uwsgi.into(),
                core::iter::once(proxy).chain(user_env).collect(),
            )
        };
        ContainerPlan {
            spec,
            vassal_name,
            container_name,
            labels,
            proxy_host_path,
            proxy_container_path,
            proxy_in_private_dir: false,
            cmd,
            env,
            handoff,
            passes_socket,
            launcher_host_path: options.launcher_host_path.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
