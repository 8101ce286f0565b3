//! The container plan: what the spec alone does not say (name, labels, proxy paths,
//! command, environment), decided deterministically from the vassal's identity.
//!
//! ```
//! use uwsgi_docker_core::plan::{labels, ContainerPlan, VassalIdentity};
//! use uwsgi_docker_core::spec::{parse_vassal, HandoffMode};
//!
//! let spec = parse_vassal("my app.ini", b"[emperor]\ndocker-image = psgi001\n")?.expect("a Docker vassal");
//! let identity = VassalIdentity::new("my app.ini", "/etc/uwsgi/vassals", "host:1", "host:4242:1");
//! let plan = ContainerPlan::new(spec, &identity);
//! plan.validate()?;
//! // A name Docker refuses is mapped to a valid one; the real name is kept in a label.
//! assert!(plan.container_name.starts_with("my_app.ini-"));
//! assert!(plan.labels.contains(&(labels::VASSAL.into(), "my app.ini".into())));
//! assert_eq!(plan.proxy_host_path, "/etc/uwsgi/vassals/my app.ini.sock");
//! assert_eq!(plan.handoff, HandoffMode::Launcher);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use std::collections::HashSet;

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
    /// The Emperor's container-name prefix (`docker-name-prefix`), only when it has one.
    pub const PREFIX: &str = "io.uwsgi-docker.prefix";
    /// The tenant's uid, when an operator policy is in force (tenant mode).
    pub const TENANT: &str = "io.uwsgi-docker.tenant";
    /// The `docker-cidfile` path on the host, when one is set, so `ps` and `gc` see it.
    pub const CIDFILE: &str = "io.uwsgi-docker.cidfile";
    /// The image's digest (`sha256:…`), when the bridge pulled the image just before
    /// creating the container (a pull reports it; an image already there is not asked).
    pub const IMAGE_DIGEST: &str = "io.uwsgi-docker.image-digest";
}

/// Who a vassal is and where it lives; supplied by the runtime.
///
/// Make one with [`VassalIdentity::new`] (and [`VassalIdentity::with_name_prefix`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The Emperor's container-name prefix (`docker-name-prefix`, `UWSGIDOCKER_NAME_PREFIX`),
    /// already checked with [`check_name_prefix`]; it also scopes which containers are ours.
    pub name_prefix: Option<String>,
}

impl VassalIdentity {
    /// The identity of vassal `name` (as the Emperor knows it), whose default proxy socket
    /// goes in `proxy_dir`, labelled with `emperor_id` and `bridge_id`; no name prefix.
    pub fn new(
        name: impl Into<String>,
        proxy_dir: impl Into<String>,
        emperor_id: impl Into<String>,
        bridge_id: impl Into<String>,
    ) -> VassalIdentity {
        VassalIdentity {
            name: name.into(),
            proxy_dir: proxy_dir.into(),
            emperor_id: emperor_id.into(),
            bridge_id: bridge_id.into(),
            name_prefix: None,
        }
    }

    /// With the Emperor's container-name prefix (already checked with
    /// [`check_name_prefix`]); `None` for none.
    #[must_use]
    pub fn with_name_prefix(mut self, prefix: Option<String>) -> VassalIdentity {
        self.name_prefix = prefix;
        self
    }
}

/// Everything needed to create one vassal's container.
///
/// Made by [`ContainerPlan::new`] or [`ContainerPlan::with_options`]; check it with
/// [`ContainerPlan::validate`] before binding or creating anything.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ContainerPlan {
    /// The vassal's spec (after any policy has filled it in).
    pub spec: VassalSpec,
    /// The vassal name as the Emperor knows it ([`VassalIdentity::name`]).
    pub vassal_name: String,
    /// The Emperor's name prefix, if any ([`VassalIdentity::name_prefix`]).
    pub name_prefix: Option<String>,
    /// Docker-valid and collision-free for one prefix (see [`prefixed_container_name`]).
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
///
/// Start from [`PlanOptions::default`] (no launcher, no inherited socket) and use the
/// `with_*` methods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlanOptions {
    /// The static launcher executable on the host (needed in launcher mode).
    pub launcher_host_path: Option<String>,
    /// The Emperor gave us a listening socket on fd 0 (an on-demand vassal).
    pub inherited_socket: bool,
}

impl PlanOptions {
    /// With the static launcher's host path (`None`: not installed).
    #[must_use]
    pub fn with_launcher(mut self, launcher_host_path: Option<String>) -> PlanOptions {
        self.launcher_host_path = launcher_host_path;
        self
    }

    /// With whether the Emperor gave a listening socket on fd 0.
    #[must_use]
    pub fn with_inherited_socket(mut self, inherited_socket: bool) -> PlanOptions {
        self.inherited_socket = inherited_socket;
        self
    }
}

/// The longest unix socket path: `sun_path` is 108 bytes, including the NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// Where the bridge binds the proxy socket when `docker-proxy` does not say:
/// `DIR/NAME.sock`, the original plugin's default, at any length: the runtime binds it
/// relative to the directory it opened, so the host path is not limited to a `sun_path`.
pub fn default_proxy_host_path(dir: &str, vassal: &str) -> String {
    format!("{}/{vassal}.sock", dir.trim_end_matches('/'))
}

/// Where the proxy socket appears in the container when `docker-proxy` does not say:
/// `/NAME.sock` (the original plugin's default) with `NAME` the container name, or, when
/// that would be longer than a unix socket path may be (container names reach 128
/// characters), `/uwsgi-docker-HASH.sock` with the vassal name's 64-bit FNV-1a hash, which
/// always fits.
pub fn default_proxy_container_path(vassal: &str, container_name: &str) -> String {
    let seed = format!("/{container_name}.sock");
    if seed.len() <= MAX_SOCKET_PATH {
        seed
    } else {
        format!("/uwsgi-docker-{:016x}.sock", fnv1a64(vassal.as_bytes()))
    }
}

/// A plan the daemon, the kernel or the handoff would refuse; names the vassal and says
/// how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A proxy socket path longer than [`MAX_SOCKET_PATH`].
    #[error("vassal {vassal}: the proxy socket path {path:?} {place} is {len} bytes, longer than the {MAX_SOCKET_PATH} a unix socket path may have; {fix}")]
    ProxyPathTooLong {
        /// The vassal's name.
        vassal: String,
        /// "on the host" or "in the container".
        place: &'static str,
        /// The path.
        path: String,
        /// Its length in bytes.
        len: usize,
        /// How to fix it.
        fix: &'static str,
    },
    /// A `docker-mount` or `docker-tmpfs` that would cover the proxy socket or the launcher.
    #[error("vassal {vassal}: {key} = {value:?} would mount over {path}, {what}, and the container's uWSGI could not reach it; mount at another container path")]
    HidesOurPath {
        /// The vassal's name.
        vassal: String,
        /// `docker-mount` or `docker-tmpfs`.
        key: &'static str,
        /// The attribute's value.
        value: String,
        /// The path it would hide.
        path: String,
        /// What lives at `path`.
        what: &'static str,
    },
}

/// The longest container name [`container_name`] produces; a name prefix adds at most
/// [`MAX_NAME_PREFIX`] more.
pub const MAX_CONTAINER_NAME: usize = 128;

/// The longest container-name prefix an Emperor may set.
pub const MAX_NAME_PREFIX: usize = 32;

/// Checks an Emperor's container-name prefix: 1 to [`MAX_NAME_PREFIX`] characters of
/// Docker's name alphabet (`a-z A-Z 0-9 _ . -`), the first a letter or digit, since it starts
/// the name.
///
/// # Errors
///
/// [`NamePrefixError`]: what is wrong with the prefix and how to fix it.
pub fn check_name_prefix(prefix: &str) -> Result<(), NamePrefixError> {
    if prefix.is_empty() {
        return Err(NamePrefixError::Empty);
    }
    if prefix.len() > MAX_NAME_PREFIX {
        return Err(NamePrefixError::TooLong { len: prefix.len() });
    }
    if !prefix.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(NamePrefixError::BadStart);
    }
    if let Some(bad) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(NamePrefixError::BadChar(bad));
    }
    Ok(())
}

/// Why a container name prefix cannot be used ([`check_name_prefix`]); each says how to
/// fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NamePrefixError {
    /// An empty prefix.
    #[error("the prefix is empty; unset it, or give e.g. `tenant1-`")]
    Empty,
    /// Longer than [`MAX_NAME_PREFIX`] bytes.
    #[error("the prefix is {len} bytes long; at most {MAX_NAME_PREFIX} are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// It does not start with an ASCII letter or digit.
    #[error("the prefix must start with a letter or a digit (it starts the container name)")]
    BadStart,
    /// A character Docker does not allow in a container name.
    #[error("{0:?} is not allowed in a container name; use letters, digits, `_`, `.` and `-`")]
    BadChar(char),
}

/// The container's name: the Emperor's prefix, then [`container_name`] of the vassal.
///
/// For one prefix, two vassals never share a name: the prefix is the same, and
/// [`container_name`] is collision-free. Names under different prefixes can meet (prefix
/// `a-` with vassal `bc.ini`, prefix `a-b` with `c.ini`, no prefix with `a-bc.ini`); that is
/// why a name conflict replaces only a container that carries our labels for the same vassal
/// *and the same prefix* (see [`ContainerPlan::why_not_ours`]): a meeting is an error naming
/// the other container, never a removal. Emperors that share a daemon should each have a
/// prefix, none of them a prefix of another (e.g. `tenant1-`, `tenant2-`).
pub fn prefixed_container_name(prefix: Option<&str>, vassal: &str) -> String {
    format!("{}{}", prefix.unwrap_or_default(), container_name(vassal))
}

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
///
/// An Emperor's name prefix goes in front ([`prefixed_container_name`]); the argument holds
/// among the vassals of one prefix.
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

/// The name of a vassal's container during a rollover, beside the one named `current`:
/// containers alternate between [`prefixed_container_name`] and this name's sibling, the
/// container name of `VASSAL` followed by a NUL and `next`. No vassal name holds a NUL, so
/// that name is always sanitised (`VASSAL_next-HASH`) and never another vassal's; both
/// carry the vassal's labels, so the conflict rules, `ps` and `gc` treat them alike.
pub fn sibling_container_name(prefix: Option<&str>, vassal: &str, current: &str) -> String {
    let primary = prefixed_container_name(prefix, vassal);
    if current == primary {
        prefixed_container_name(prefix, &format!("{vassal}\0next"))
    } else {
        primary
    }
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
        let name_prefix = identity.name_prefix.clone();
        let prefix = name_prefix.as_deref().unwrap_or_default();
        let container_name = prefixed_container_name(name_prefix.as_deref(), &vassal_name);
        // Two Emperors that share a socket directory keep their sockets apart by prefix too.
        let proxy_host_path = match &spec.proxy {
            Some(proxy) => proxy.host.clone(),
            None => default_proxy_host_path(&identity.proxy_dir, &format!("{prefix}{vassal_name}")),
        };
        // Inside the container nothing else lives: the unprefixed name is enough.
        let proxy_container_path = spec
            .proxy
            .as_ref()
            .and_then(|p| p.container.clone())
            .unwrap_or_else(|| {
                default_proxy_container_path(&vassal_name, &self::container_name(&vassal_name))
            });
        let mut labels = vec![
            (labels::MANAGED.to_owned(), "1".to_owned()),
            (labels::VASSAL.to_owned(), vassal_name.clone()),
            (labels::EMPEROR.to_owned(), identity.emperor_id.clone()),
            (labels::BRIDGE.to_owned(), identity.bridge_id.clone()),
            (labels::PROXY.to_owned(), proxy_host_path.clone()),
        ];
        if let Some(prefix) = &name_prefix {
            labels.push((labels::PREFIX.to_owned(), prefix.clone()));
        }
        if let Some(cidfile) = &spec.cidfile {
            labels.push((labels::CIDFILE.to_owned(), cidfile.clone()));
        }
        // `parse_vassal` refuses user labels under our prefix and repeated keys; should a
        // hand-built spec carry either anyway, ours win, then the first.
        let mut taken: HashSet<String> = labels.iter().map(|(k, _)| k.clone()).collect();
        for (key, value) in &spec.labels {
            if taken.insert(key.clone()) {
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
            name_prefix,
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

impl ContainerPlan {
    /// Refuses what the spec alone cannot show is wrong: a proxy socket path in the container
    /// longer than a unix socket path may be (the vassal connects to it by path), and a
    /// `docker-mount` or `docker-tmpfs` at or above the proxy socket's container path, or
    /// at the launcher's, which would hide them. Call it wherever a plan is made, before
    /// anything is bound or created.
    ///
    /// # Errors
    ///
    /// The first [`PlanError`] found.
    pub fn validate(&self) -> Result<(), PlanError> {
        let vassal = &self.vassal_name;
        let too_long = |place, path: &str, fix| PlanError::ProxyPathTooLong {
            vassal: vassal.clone(),
            place,
            path: path.to_owned(),
            len: path.len(),
            fix,
        };
        if self.proxy_container_path.len() > MAX_SOCKET_PATH {
            return Err(too_long(
                "in the container",
                &self.proxy_container_path,
                "give a shorter one with docker-proxy = /HOST/PATH:/CONTAINER/PATH",
            ));
        }
        let proxy = crate::spec::clean_path(&self.proxy_container_path);
        let launcher = (self.handoff == HandoffMode::Launcher).then_some(LAUNCHER_CONTAINER_PATH);
        let hides = |destination: &str| {
            let destination = crate::spec::clean_path(destination);
            let covers = |path: &str| {
                path == destination
                    || path
                        .strip_prefix(destination.as_str())
                        .is_some_and(|rest| rest.starts_with('/') || destination == "/")
            };
            if covers(&proxy) {
                Some((
                    self.proxy_container_path.clone(),
                    "where the proxy socket that hands the vassal its Emperor channels appears",
                ))
            } else if launcher.is_some_and(covers) {
                Some((
                    LAUNCHER_CONTAINER_PATH.to_owned(),
                    "where the launcher is mounted",
                ))
            } else {
                None
            }
        };
        let mounts = self.spec.mounts.iter().map(|m| {
            let mode = if m.read_only { ":ro" } else { "" };
            (
                "docker-mount",
                format!("{}:{}{mode}", m.host, m.container),
                m.container.as_str(),
            )
        });
        let tmpfs = self.spec.tmpfs.iter().map(|(path, options)| {
            let value = if options.is_empty() {
                path.clone()
            } else {
                format!("{path}:{options}")
            };
            ("docker-tmpfs", value, path.as_str())
        });
        for (key, value, destination) in mounts.chain(tmpfs) {
            if let Some((path, what)) = hides(destination) {
                return Err(PlanError::HidesOurPath {
                    vassal: vassal.clone(),
                    key,
                    value,
                    path,
                    what,
                });
            }
        }
        Ok(())
    }

    /// Whether a container carrying `labels` is one of ours for this very vassal: our
    /// managed label, our vassal name and our prefix (none when we have none). `None` when it
    /// is; otherwise why not, in words for the vassal's error.
    pub fn why_not_ours(&self, labels: &[(String, String)]) -> Option<String> {
        let get = |key: &str| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if get(labels::MANAGED) != Some("1") {
            return Some(
                "it was not made by uwsgi-docker (no io.uwsgi-docker.managed=1 label)".into(),
            );
        }
        match get(labels::VASSAL) {
            Some(vassal) if vassal == self.vassal_name => {}
            Some(vassal) => return Some(format!("it belongs to another vassal, {vassal:?}")),
            None => return Some("it carries no vassal label".into()),
        }
        match (get(labels::PREFIX), self.name_prefix.as_deref()) {
            (None, None) => None,
            (Some(theirs), Some(ours)) if theirs == ours => None,
            (Some(theirs), _) => Some(format!(
                "it belongs to the Emperor with name prefix {theirs:?}"
            )),
            (None, Some(_)) => Some("it belongs to an Emperor without a name prefix".into()),
        }
    }
}

#[cfg(test)]
mod tests;
