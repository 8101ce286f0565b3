//! The operator's policy: which vassal requests a tenant may make, and what is forced on
//! every container, read from one ini file the Emperor names.
//!
//! Sans-IO: the runtime reads the file (at each vassal start, so an edit applies to the next
//! spawn), finds the tenant (the vassal file's owner, or [`Policy::tenant_for_vassal`] for a
//! pushed config), and asks [`Policy::enforce`], which checks the parsed
//! [`VassalSpec`] and fills in what the policy forces. A vassal that breaks a rule does not
//! start; the [`PolicyViolation`] names the vassal, the key, the value, the rule and its line.
//!
//! # The file
//!
//! Ini, read as uWSGI reads ini: one `key = value` per line, split at the first `=`; `;` or
//! `#` start a comment only at the start of a line; no quotes, escapes or continuation lines.
//! Every line must make sense: an unknown section or key, a line without `=`, or a bad value
//! is a [`PolicyError`] naming the line (and the nearest known key).
//!
//! ```ini
//! ; /etc/uwsgi/policy.ini
//! [default]
//! ; the images tenants may run (globs: * and ? never match /, a ** component matches any)
//! images = psgi* registry.example/apps/**
//! ; host directories tenants may mount: read-only unless the item says :rw
//! mounts = /srv/%u %h/shared:rw
//! network-modes = bridge none
//! ; the container runs as the vassal file's owner
//! user = owner
//! publish = 127.0.0.1:8000-8999 [::1]:8000-8999
//! sockets = /run/uwsgi-docker/tenants/%u/ 127.0.0.1:9000-9999
//! socket-owners = %u :www-data
//! proxy = /run/uwsgi-docker/tenants/%u/
//! cidfile-dirs = /run/uwsgi-docker/tenants/%u
//! memory-default = 256m
//! memory-max = 1g
//! swap-max = 0
//! cpus-default = 0.5
//! cpus-max = 2
//! pids-max = 256
//! cap-add = NET_BIND_SERVICE
//! no-new-privileges = true
//! read-only-rootfs = false
//! pull-modes = missing never
//! registry-auth = /etc/uwsgi/registry-auth/%u.json
//!
//! ; a tenant's own section: each key it sets replaces [default]'s, the others fall through
//! [user:alice]
//! images = alice/*
//! memory-max = 4g
//!
//! [uid:1002]
//! ; an empty value is the empty list: no mounts at all for this tenant
//! mounts =
//!
//! ; configs with no file owner (pushed by pg:// and other imperial monitors)
//! [vassals]
//! shop-*.ini = alice
//! legacy.ini = uid:1002
//! ```
//!
//! ## Sections
//!
//! * `[default]` applies to every tenant.
//! * `[uid:N]` and `[user:NAME]` are a tenant's own section. A tenant's section is `[uid:N]`
//!   for its uid if the file has one, else `[user:NAME]` for its name; only one applies. A
//!   key set there replaces `[default]`'s value for that key; every other key falls through
//!   to `[default]`, then to the built-in default below.
//! * `[vassals]` holds `VASSAL_GLOB = USER` or `VASSAL_GLOB = uid:N` lines: the tenant of a
//!   config that has no file owner, first match in file order. Without a match the runtime
//!   applies `[default]`.
//!
//! A section written twice is one section. In one section, a list key may be written on
//! several lines (they add up); a single-valued key only once.
//!
//! ## Rules
//!
//! Lists are separated by spaces or commas. In globs, `*` is any run of characters and `?`
//! any one character, neither matching `/`; a whole `**` component matches any number of
//! components (`registry.example/**`; `**` alone matches every image). Host paths are absolute, may use `%u` (the
//! tenant's name, else its uid), `%h` (its home, at the start only) and `%%`, and are
//! compared by whole components (`/srv/a` allows `/srv/a/x`, not `/srv/ab`), lexically: a
//! vassal path with a `.`, `..` or empty (`//`) component is refused. A `%h` item allows
//! nothing for a tenant without a home or with `/` as home.
//!
//! | key | value | not set |
//! |-----|-------|---------|
//! | `images` | globs the image must match (`*`, `?`, `**`) | any image |
//! | `mounts` | host path prefixes, each optionally `:rw` | no mounts |
//! | `network-modes` | globs: `bridge`, `none`, `host`, `container:NAME`, `container:*`, a network name | `bridge none` |
//! | `user` | `owner`, `UID:GID`, `any-nonroot` or `root` | `owner` |
//! | `publish` | `ADDR:PORTS` for `docker-port` | nothing published |
//! | `sockets` | unix directories and `ADDR:PORTS` for `docker-socket` | `/run/uwsgi-docker/tenants/%u/` |
//! | `socket-owners` | users (`%u`: the tenant) and `:GROUP`s for `docker-socket-owner` | the tenant, no group |
//! | `proxy` | directories for `docker-proxy`'s host path | `docker-proxy` refused |
//! | `cidfile-dirs` | directories for `docker-cidfile` | `docker-cidfile` refused |
//! | `memory-default`, `memory-max` | sizes (`512m`, as `docker-memory`) | no limit |
//! | `swap-default`, `swap-max` | sizes, as `docker-swap` | Docker's default; at most `1g` |
//! | `cpus-default`, `cpus-max` | CPUs (`0.5`, as `docker-cpus`) | no limit |
//! | `pids-default`, `pids-max` | process counts (`pids-default` may be -1) | no limit |
//! | `cap-add` | capabilities `docker-cap-add` may name (`ALL` allows any) | none |
//! | `no-new-privileges` | boolean | `true` |
//! | `read-only-rootfs` | boolean: `true` forces a read-only root filesystem | `false` |
//! | `tmpfs-max` | size each `docker-tmpfs` may have (`size=` is filled in when missing) | `64m` |
//! | `tmpfs-count-max` | how many `docker-tmpfs` a vassal may have | `4` |
//! | `stop-timeout-max` | seconds `docker-stop-timeout` may be | `25` (the Emperor's default curse tolerance, 30 s, less the bridge's 5 s grace) |
//! | `native-vassals` | boolean: this tenant's vassals without `docker-image` may run (on the host, as the Emperor's user: root) | `false` |
//! | `pull-modes` | the `docker-pull` values a vassal may use: `missing`, `always`, `never` | any |
//! | `pull-default` | the `docker-pull` of a vassal that does not say (one of `pull-modes`) | the operator's `UWSGIDOCKER_PULL` |
//! | `registry-auth` | the tenant's own registry credentials file (`%u`, `%h`), used instead of the operator's; empty: none | the operator's `UWSGIDOCKER_REGISTRY_AUTH` |
//!
//! * **mounts**: a mount no item allows is refused. A mount only read-only items allow is
//!   made read-only (`docker-mount = /srv/alice/data:/data` runs as `…:ro`), and one that
//!   says `:rw` is refused. Never allowed, whatever the rules say: `/`; the daemon socket
//!   in use, `/var/run/docker.sock`, `/run/docker.sock`, `/run/podman/podman.sock` and every
//!   directory above them (`/var/run`, `/run`, `/var`…); anything in or under `/proc`, `/sys`
//!   or `/dev`. The check is lexical: the runtime must still refuse a source with a symlink
//!   in any component ([`Decision::host_paths`]).
//! * **network-modes**: a vassal without `docker-network-mode` asks for `bridge`
//!   (`default` is `bridge` too). `host` and `container:…` are allowed only when an item
//!   matches them (mind that a `*` item matches `host`).
//! * **user**: `owner` forces the tenant's `uid:gid` (for a root-owned vassal file, `0:0`,
//!   the operator's own); `UID:GID` forces that. A `docker-user` other than the forced one is
//!   refused, not overridden; the bare uid of the forced user is completed with its gid.
//!   `any-nonroot` takes the vassal's numeric `UID[:GID]` with neither 0 (a missing gid is
//!   the tenant's), and the owner when it names none. `root` allows any `docker-user`, root
//!   and names included, and the owner when it names none.
//! * **publish** and tcp **sockets**: `ADDR:PORT` or `ADDR:LOW-HIGH`, optionally `/tcp` or
//!   `/udp`; `ADDR` is an IPv4 address, `[IPV6]`, `0.0.0.0` (any IPv4 address) or `*` (any
//!   address). Binding all addresses (`docker-port = 8000:3031`, `docker-socket = :9000`)
//!   needs `0.0.0.0` or `*`. A port Docker chooses (`docker-port = :3031`) is allowed on an
//!   address some item allows. Privileged ports need a range that includes them.
//! * unix **sockets**, **proxy**, **cidfile-dirs**: the path must be below one of the
//!   directories; never a Docker socket, nor under `/proc`, `/sys` or `/dev`.
//! * **socket-owners**: `docker-socket-owner = USER[:GROUP]` needs `USER` (when not empty)
//!   among the user items and `GROUP` among the `:GROUP` items. `%u` is the tenant by name or
//!   uid.
//! * **limits**: a value above its maximum is refused, not clamped. A vassal without the
//!   value gets the default, or the maximum when only that is set (a default above the
//!   maximum of a tenant's section acts as the maximum). `docker-pids-limit = -1`
//!   (unlimited) is above every maximum. Swap is filled in only when memory is limited.
//! * **capabilities**: under a policy `docker-cap-drop` is always `ALL`; `docker-cap-add`
//!   may name only what `cap-add` lists.
//! * **built-in bounds**: `swap-max`, `tmpfs-max`, `tmpfs-count-max` and
//!   `stop-timeout-max` have a built-in value that applies when the policy sets none; a
//!   value above it is refused (a tmpfs without `size=` gets the maximum).
//! * **groups**: a container group that owns a daemon socket (the runtime stats them) is
//!   refused under every `user` rule, and so is gid 0 for a non-root uid.
//! * **native vassals**: a vassal without `docker-image` (or not an ini file) runs on the
//!   host as the Emperor's user; under a policy only root's own vassal files may, or a
//!   tenant whose section says `native-vassals = true` ([`Policy::judge_native`]).
//! * **pulls**: a `docker-pull` that `pull-modes` does not list is refused. A vassal
//!   without one gets `pull-default`, else the operator's `UWSGIDOCKER_PULL`
//!   ([`Policy::with_operator_pull`]); when `pull-modes` does not allow that, the first
//!   mode it lists (`pull-modes = never` keeps a tenant from asking any registry).
//! * **registry-auth**: a vassal file never carries credentials. A tenant's pulls use
//!   the operator's `UWSGIDOCKER_REGISTRY_AUTH`, or the file its section names
//!   ([`Decision::registry_auth`]), which the runtime refuses unless it is root's, not
//!   readable by group or others, and reached through root's directories with no symlink.
//!   An empty value gives the tenant no credentials. Nothing read from it is ever printed.
//! * `docker-hostname`, `docker-dns`, `docker-env`, `docker-label`, `docker-workdir`,
//!   `docker-tty`, `docker-stop-signal`, `docker-uwsgi` and `docker-handoff` are the
//!   vassal's own business.
use crate::spec::{PullPolicy, VassalSpec};

mod enforce;
mod parse;
mod rules;
#[cfg(test)]
mod tests;

pub use parse::POLICY_KEYS;
use rules::{Glob, Rules};

/// The daemon sockets that are never mountable, besides the one in use.
pub const WELL_KNOWN_DAEMON_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
];

/// `sockets` when the policy does not set it: a directory per tenant.
pub const DEFAULT_TENANT_SOCKET_DIR: &str = "/run/uwsgi-docker/tenants/%u/";

/// A bound that applies under every policy, unless the policy sets its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The policy key that replaces it.
    pub key: &'static str,
    /// The bound: bytes, a count or seconds.
    pub value: u64,
}

/// `swap-max` when the policy sets none: 1 GiB of swap on top of the memory limit.
pub const BUILTIN_SWAP_MAX: Bound = Bound {
    key: "swap-max",
    value: 1 << 30,
};
/// `tmpfs-max` when the policy sets none: each tmpfs at most 64 MiB (Docker's own default
/// is half the host's memory).
pub const BUILTIN_TMPFS_MAX: Bound = Bound {
    key: "tmpfs-max",
    value: 64 << 20,
};
/// `tmpfs-count-max` when the policy sets none.
pub const BUILTIN_TMPFS_COUNT_MAX: Bound = Bound {
    key: "tmpfs-count-max",
    value: 4,
};
/// `stop-timeout-max` when the policy sets none, in seconds: the Emperor's default curse
/// tolerance (30 s) less the 5 s the bridge waits past the stop timeout, so a container
/// that ignores its stop signal is killed before the Emperor gives up on the bridge.
pub const BUILTIN_STOP_TIMEOUT_MAX: Bound = Bound {
    key: "stop-timeout-max",
    value: 25,
};

/// A parsed policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    file: String,
    default: Rules,
    users: Vec<(String, Rules)>,
    uids: Vec<(u32, Rules)>,
    vassals: Vec<VassalRule>,
    /// The groups owning a daemon socket: never a container's group.
    daemon_groups: Vec<u32>,
    /// The operator's `docker-pull` for a vassal that does not say (`UWSGIDOCKER_PULL`).
    operator_pull: PullPolicy,
}

/// One `[vassals]` line.
#[derive(Debug, Clone)]
struct VassalRule {
    glob: Glob,
    tenant: TenantName,
    line: usize,
}

impl Policy {
    /// Parses the policy file's `text`. `file` is only for messages (the policy file's path).
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming the first line that makes no sense: an unknown section or
    /// key, a line without `=`, a bad value, a single-valued key written twice.
    pub fn parse(file: &str, text: &[u8]) -> Result<Policy, PolicyError> {
        parse::parse(file, text)
    }

    /// The groups that own the daemon sockets (the runtime stats them): never a
    /// container's group, whatever the `user` rule. Root's group (0) is left out here: a
    /// non-root user with gid 0 is refused anyway, and root is root.
    #[must_use]
    pub fn with_daemon_groups(mut self, gids: impl IntoIterator<Item = u32>) -> Policy {
        self.daemon_groups = gids.into_iter().filter(|&g| g != 0).collect();
        self.daemon_groups.sort_unstable();
        self.daemon_groups.dedup();
        self
    }

    /// The operator's default `docker-pull` (`UWSGIDOCKER_PULL`, default `missing`): what a
    /// vassal without `docker-pull` (and a section without `pull-default`) gets, when
    /// `pull-modes` allows it.
    #[must_use]
    pub fn with_operator_pull(mut self, pull: PullPolicy) -> Policy {
        self.operator_pull = pull;
        self
    }

    /// Whether a vassal that is not a Docker vassal may run: uWSGI runs it on the host as
    /// the Emperor's user (root, unless `emperor-tyrant`), so only root's own vassal files,
    /// or a tenant the policy names with `native-vassals = true`. `file` is the vassal file
    /// (`None`: a config pushed by an imperial monitor); `tenant` is judged as for
    /// [`enforce`](Self::enforce).
    ///
    /// # Errors
    ///
    /// A [`NativeRefusal`] naming the file, its owner and the ways out.
    pub fn judge_native(
        &self,
        vassal: &str,
        file: Option<&str>,
        tenant: &Tenant,
    ) -> Result<NativeVerdict, NativeRefusal> {
        let (section, rules) = self.rules_for(tenant);
        if tenant.uid == 0 {
            return Ok(NativeVerdict {
                section,
                reason: "root owns it: the operator's own vassal".into(),
            });
        }
        if let Some(rule) = rules.native_vassals.as_ref().filter(|r| r.value) {
            return Ok(NativeVerdict {
                section,
                reason: format!(
                    "this tenant may run vassals outside containers (policy {})",
                    rule.rule().at()
                ),
            });
        }
        let owner = match &tenant.name {
            Some(name) => format!("{name} (uid {})", tenant.uid),
            None => format!("uid {}", tenant.uid),
        };
        let rule = match &rules.native_vassals {
            Some(r) => format!("policy {} line {}: {}", self.file, r.line, r.text),
            None => format!(
                "policy {}: native-vassals is not set for {section}",
                self.file
            ),
        };
        Err(NativeRefusal {
            vassal: vassal.into(),
            file: file.map(str::to_owned),
            owner,
            rule,
        })
    }

    /// The policy file's path, as given to [`parse`](Self::parse).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// A pushed config (pg://, no file owner): the tenant the `[vassals]` section maps this
    /// vassal name to (first matching glob), if any.
    pub fn tenant_for_vassal(&self, vassal: &str) -> Option<TenantName> {
        self.vassal_mapping(vassal).map(|(tenant, _)| tenant)
    }

    /// [`tenant_for_vassal`](Self::tenant_for_vassal), with the line of the `[vassals]`
    /// entry that matched, for messages.
    pub fn vassal_mapping(&self, vassal: &str) -> Option<(TenantName, usize)> {
        self.vassals
            .iter()
            .find(|rule| rule.glob.matches(vassal))
            .map(|rule| (rule.tenant.clone(), rule.line))
    }

    /// The section that applies to `tenant`: `[uid:N]`, else `[user:NAME]`, else
    /// `[default]` (also when the file has no `[default]`).
    pub fn section_for(&self, tenant: &Tenant) -> String {
        self.own_rules(tenant)
            .map_or_else(|| "[default]".into(), |(section, _)| section)
    }

    fn own_rules(&self, tenant: &Tenant) -> Option<(String, &Rules)> {
        if let Some((uid, rules)) = self.uids.iter().find(|(uid, _)| *uid == tenant.uid) {
            return Some((format!("[uid:{uid}]"), rules));
        }
        let name = tenant.name.as_deref()?;
        self.users
            .iter()
            .find(|(user, _)| user == name)
            .map(|(user, rules)| (format!("[user:{user}]"), rules))
    }

    /// The section's name and its rules with `[default]` filled in.
    fn rules_for(&self, tenant: &Tenant) -> (String, Rules) {
        match self.own_rules(tenant) {
            Some((section, own)) => (section, Rules::over(own, &self.default)),
            None => ("[default]".into(), self.default.clone()),
        }
    }

    /// Check `spec` against the rules for `tenant` and fill in what the policy forces
    /// (container user, defaults, cap-drop ALL, no-new-privileges, read-only root fs…).
    /// `daemon_socket` is the daemon socket path in use (never mountable).
    ///
    /// On `Err`, `spec` is left as it was.
    ///
    /// # Errors
    ///
    /// The first [`PolicyViolation`]: the vassal's key and value, and the rule it breaks.
    #[allow(
        clippy::result_large_err,
        reason = "the signature the runtime is written against; a refusal is rare and ends the spawn"
    )]
    pub fn enforce(
        &self,
        vassal: &str,
        tenant: &Tenant,
        daemon_socket: &str,
        spec: &mut VassalSpec,
    ) -> Result<Decision, PolicyViolation> {
        enforce::enforce(self, vassal, tenant, daemon_socket, spec).map_err(|v| *v)
    }
}

/// A tenant as a `[vassals]` line names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TenantName {
    /// `uid:N`.
    Uid(u32),
    /// A user name, to look up in the host's user database.
    User(String),
}

impl core::fmt::Display for TenantName {
    /// As written in the policy: `uid:1002` or `alice`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TenantName::Uid(uid) => write!(f, "uid:{uid}"),
            TenantName::User(name) => f.write_str(name),
        }
    }
}

/// The tenant a vassal runs for: the vassal file's owner, or the user a `[vassals]` line
/// names, as the host's user database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tenant {
    /// The user id; the container user under `user = owner`.
    pub uid: u32,
    /// The primary group id; the container group under `user = owner`.
    pub gid: u32,
    /// The user name, when the user database has one: `[user:NAME]` and `%u`.
    pub name: Option<String>,
    /// The home directory, when known: `%h`.
    pub home: Option<String>,
}

impl Tenant {
    /// A tenant known only by its ids (no name, no home).
    pub fn new(uid: u32, gid: u32) -> Tenant {
        Tenant {
            uid,
            gid,
            name: None,
            home: None,
        }
    }

    /// With a user name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Tenant {
        self.name = Some(name.into());
        self
    }

    /// With a home directory.
    #[must_use]
    pub fn with_home(mut self, home: impl Into<String>) -> Tenant {
        self.home = Some(home.into());
        self
    }
}

/// What [`Policy::enforce`] decided for an allowed vassal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// The section that applied: e.g. `"[user:alice]"`, `"[uid:1000]"` or `"[default]"`.
    pub section: String,
    /// Human lines, one per value the policy forced or filled in, each naming the rule and
    /// its line, e.g. `docker-user = 1000:1000: forced (policy line 5: user = owner)`.
    pub applied: Vec<String>,
    /// Every host path of the vassal's the policy allowed by lexical prefix (mount sources,
    /// the unix `docker-socket`, the `docker-proxy` host path, the cidfile). A tenant who can
    /// write below an allowed directory can plant a symlink there, so the runtime must
    /// refuse these paths if any component is a symlink, and open them without following.
    pub host_paths: Vec<String>,
    /// Whose registry credentials the vassal's pulls use.
    pub registry_auth: RegistryAuth,
}

/// Whose registry credentials a tenant's pulls use (`registry-auth`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RegistryAuth {
    /// The policy does not say: the operator's (`UWSGIDOCKER_REGISTRY_AUTH`, if set).
    #[default]
    Operator,
    /// The tenant's own file, instead of the operator's. The runtime reads it as it reads
    /// the operator's, and also refuses it unless root owns it and every directory above it.
    File {
        /// The path, `%u`/`%h` expanded.
        path: String,
        /// The rule, as `policy FILE line N: registry-auth = …`, for messages.
        rule: String,
    },
    /// `registry-auth =` (empty): no credentials; pulls are anonymous.
    None {
        /// The rule, for messages.
        rule: String,
    },
}

/// Why a vassal that is not a Docker vassal may run on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NativeVerdict {
    /// The section that applied.
    pub section: String,
    /// Why, naming the rule.
    pub reason: String,
}

/// A tenant's vassal that is not a Docker vassal: uWSGI would run it on the host as root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "vassal {}: {} is owned by {}, not root, and has no docker-image: under a policy a tenant's vassal runs only in a container, since uWSGI would run it on the host as root ({}); give it a docker-image, or have root own it{}",
    escape_controls(.vassal),
    escape_controls(&.file.as_ref().map_or_else(|| "the pushed config".to_string(), |f| format!("the file {f}"))),
    .owner,
    escape_controls(.rule),
    match .file { Some(f) => format!(" (chown root {})", escape_controls(f)), None => " (map it to root in the policy's [vassals])".to_string() }
)]
#[non_exhaustive]
pub struct NativeRefusal {
    /// The vassal's name.
    pub vassal: String,
    /// The vassal file; `None` for a pushed config.
    pub file: Option<String>,
    /// Its owner: `alice (uid 1001)` or `uid 4242`.
    pub owner: String,
    /// The rule that did not allow it.
    pub rule: String,
}

/// A policy file we cannot use; the operator's mistake, named by line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {file} line {line}: {message}")]
#[non_exhaustive]
pub struct PolicyError {
    /// The policy file's path, as given to [`Policy::parse`].
    pub file: String,
    /// 1-based line of the file (a leading BOM does not count).
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// A vassal request the policy refuses: the vassal author's to fix (or the operator's to
/// allow).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "vassal {}: {key} = {value:?} is not allowed: {} ({}); {}",
    escape_controls(.vassal),
    escape_controls(.why),
    rule_at(.file, *.line, .rule),
    escape_controls(.fix)
)]
#[non_exhaustive]
pub struct PolicyViolation {
    /// The vassal's name.
    pub vassal: String,
    /// The vassal key, e.g. `docker-mount`.
    pub key: String,
    /// Its value, in the canonical form of the key (e.g. `/:/host`).
    pub value: String,
    /// The rule as written, e.g. `images = psgi*` (several lines of one list key are joined
    /// with `; `); for a built-in rule, what it says.
    pub rule: String,
    /// The policy file's path.
    pub file: String,
    /// The rule's line in the policy file (its first line for a list on several lines);
    /// 0 for a built-in rule or default, which no line of the file holds.
    pub line: usize,
    /// Why the value breaks the rule.
    pub why: String,
    /// How to fix it.
    pub fix: String,
}

impl PolicyError {
    /// An error at `line` of `file` (for the runtime's own checks of the file, such as its
    /// size, use line 1).
    pub fn new(file: impl Into<String>, line: usize, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

/// `text` with control characters escaped (`\u{1b}`), for log lines: the vassal's name,
/// and paths and names it wrote, may hold any byte but NUL.
pub(crate) fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

fn rule_at(file: &str, line: usize, rule: &str) -> String {
    let rule = escape_controls(rule);
    if line == 0 {
        format!("policy {file}, built in: {rule}")
    } else {
        format!("policy {file} line {line}: {rule}")
    }
}
