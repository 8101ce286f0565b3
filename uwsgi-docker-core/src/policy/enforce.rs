//! Checking one vassal spec against the rules for its tenant, and filling in what they force.
use super::parse::pids_rank;
use super::rules::{
    components, is_at_or_under, AddrRange, Glob, List, OwnerItem, RuleRef, Rules, Scalar,
    SocketItem, UserRule, KERNEL_TREES,
};
use super::{
    escape_controls, Bound, Decision, Policy, PolicyViolation, RegistryAuth, Tenant,
    BUILTIN_STOP_TIMEOUT_MAX, BUILTIN_SWAP_MAX, BUILTIN_TMPFS_COUNT_MAX, BUILTIN_TMPFS_MAX,
    DEFAULT_TENANT_SOCKET_DIR, WELL_KNOWN_DAEMON_SOCKETS,
};
use crate::spec::{format_size, ListenAddress, Mount, Protocol, PullPolicy, VassalSpec};

/// The result of one check; boxed, as refusals are rare and large.
type Checked = Result<(), Box<PolicyViolation>>;

pub(super) fn enforce(
    policy: &Policy,
    vassal: &str,
    tenant: &Tenant,
    daemon_socket: &str,
    spec: &mut VassalSpec,
) -> Result<Decision, Box<PolicyViolation>> {
    let (section, rules) = policy.rules_for(tenant);
    let mut cx = Cx {
        file: &policy.file,
        vassal,
        tenant,
        daemon_socket,
        daemon_groups: &policy.daemon_groups,
        rules: &rules,
        applied: Vec::new(),
        host_paths: Vec::new(),
    };
    let mut out = spec.clone();
    cx.image(&out)?;
    cx.user(&mut out)?;
    cx.network(&out)?;
    for mount in &mut out.mounts {
        cx.mount(mount)?;
    }
    for port in &out.ports {
        cx.publish(port)?;
    }
    cx.socket(&out)?;
    cx.socket_owner(&out)?;
    cx.proxy(&out)?;
    cx.cidfile(&out)?;
    cx.capabilities(&mut out)?;
    cx.limits(&mut out)?;
    cx.flags(&mut out);
    cx.pull(&mut out, policy.operator_pull)?;
    let registry_auth = cx.registry_auth()?;
    *spec = out;
    Ok(Decision {
        section,
        applied: cx.applied,
        host_paths: cx.host_paths,
        registry_auth,
    })
}

struct Cx<'a> {
    file: &'a str,
    vassal: &'a str,
    tenant: &'a Tenant,
    daemon_socket: &'a str,
    daemon_groups: &'a [u32],
    rules: &'a Rules,
    applied: Vec<String>,
    host_paths: Vec<String>,
}

/// A list rule as set, or the built-in default's description.
fn list_rule<T>(list: Option<&List<T>>, builtin: &str) -> RuleRef {
    list.map_or_else(|| RuleRef::builtin(builtin), List::rule)
}

fn scalar_rule<T>(scalar: Option<&Scalar<T>>, builtin: &str) -> RuleRef {
    scalar.map_or_else(|| RuleRef::builtin(builtin), Scalar::rule)
}

fn format_cpus(nanos: u64) -> String {
    let (whole, frac) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:09}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

fn format_mount(m: &Mount) -> String {
    let suffix = match (m.read_only, m.explicit_mode) {
        (true, _) => ":ro",
        (false, true) => ":rw",
        (false, false) => "",
    };
    format!("{}:{}{suffix}", m.host, m.container)
}

impl Cx<'_> {
    fn refuse(
        &self,
        key: &str,
        value: impl Into<String>,
        rule: RuleRef,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Box<PolicyViolation> {
        Box::new(PolicyViolation {
            vassal: self.vassal.into(),
            key: key.into(),
            value: value.into(),
            rule: rule.text,
            file: self.file.into(),
            line: rule.line,
            why: why.into(),
            fix: fix.into(),
        })
    }

    fn note(&mut self, key: &str, value: &str, what: &str, rule: &RuleRef) {
        let value = escape_controls(value);
        self.applied
            .push(format!("{key} = {value}: {what} (policy {})", rule.at()));
    }

    fn image(&self, spec: &VassalSpec) -> Checked {
        let Some(list) = &self.rules.images else {
            return Ok(());
        };
        if list.items.iter().any(|g| g.value.matches(&spec.image)) {
            return Ok(());
        }
        let allowed = join(list.items.iter().map(|g| g.value.0.clone()));
        let (why, fix) = if list.items.is_empty() {
            (
                "no image is allowed for this tenant".to_string(),
                "ask the operator to allow the image".to_string(),
            )
        } else {
            (
                format!("the image matches none of {allowed}"),
                format!(
                    "use an image matching one of {allowed}, or ask the operator to allow this one"
                ),
            )
        };
        Err(self.refuse("docker-image", &spec.image, list.rule(), why, fix))
    }

    fn user(&mut self, spec: &mut VassalSpec) -> Checked {
        let rule_ref = scalar_rule(self.rules.user.as_ref(), "user = owner (the default)");
        let rule = self
            .rules
            .user
            .as_ref()
            .map_or(UserRule::Owner, |s| s.value);
        let owner = (self.tenant.uid, self.tenant.gid);
        let forced = match (rule, spec.user.as_deref()) {
            (UserRule::Owner, _) => owner,
            (UserRule::Fixed(uid, gid), _) => (uid, gid),
            (UserRule::AnyNonRoot | UserRule::Root, None) => owner,
            (UserRule::Root, Some(asked)) => {
                return match asked
                    .split_once(':')
                    .map(|(u, g)| (u.parse::<u32>(), g.parse::<u32>()))
                {
                    Some((Ok(uid), Ok(gid))) => self.asked_group(uid, gid, asked, rule_ref),
                    _ => Ok(()),
                }
            }
            // The owner is what a vassal without docker-user gets, so it may also ask for it
            // (for a root-owned vassal file, 0:0: the operator's own).
            (UserRule::AnyNonRoot, Some(asked)) if asked == format!("{}:{}", owner.0, owner.1) => {
                return self.asked_group(owner.0, owner.1, asked, rule_ref)
            }
            (UserRule::AnyNonRoot, Some(asked)) => {
                return self.any_nonroot(spec, asked.to_owned(), rule_ref)
            }
        };
        let forced_text = format!("{}:{}", forced.0, forced.1);
        if let Err(why) = self.group_allowed(forced.0, forced.1) {
            let asked = spec.user.clone().unwrap_or_else(|| forced_text.clone());
            return Err(self.refuse(
                "docker-user",
                asked,
                rule_ref,
                why,
                "ask the operator to give the tenant a primary group of its own (usermod -g), or to set user = UID:GID with another group",
            ));
        }
        match spec.user.as_deref() {
            None => {
                self.note("docker-user", &forced_text, "forced", &rule_ref);
                spec.user = Some(forced_text);
                Ok(())
            }
            Some(asked) if asked == forced_text => Ok(()),
            Some(asked) if asked == forced.0.to_string() => {
                self.note(
                    "docker-user",
                    &forced_text,
                    "the group completed",
                    &rule_ref,
                );
                spec.user = Some(forced_text);
                Ok(())
            }
            Some(asked) => {
                let why = if is_root(asked) {
                    format!("root is refused; this tenant's containers run as {forced_text}")
                } else {
                    format!("this tenant's containers run as {forced_text}")
                };
                Err(self.refuse(
                    "docker-user",
                    asked,
                    rule_ref,
                    why,
                    format!("remove docker-user or set it to {forced_text}"),
                ))
            }
        }
    }

    /// A container group that must never be given: one owning a daemon socket (its
    /// members reach the daemon, root on the host), or root's group for a non-root user.
    fn group_allowed(&self, uid: u32, gid: u32) -> Result<(), String> {
        if self.daemon_groups.contains(&gid) {
            return Err(format!(
                "group {gid} owns the container daemon's socket, and its members are root on the host"
            ));
        }
        if uid != 0 && gid == 0 {
            return Err(format!("gid 0 is root's group, and uid {uid} is not root"));
        }
        Ok(())
    }

    /// [`group_allowed`](Self::group_allowed) for the `docker-user` the vassal asked for.
    fn asked_group(&self, uid: u32, gid: u32, asked: &str, rule: RuleRef) -> Checked {
        self.group_allowed(uid, gid).map_err(|why| {
            self.refuse(
                "docker-user",
                asked,
                rule,
                why,
                "name another group, or remove docker-user",
            )
        })
    }

    fn any_nonroot(&mut self, spec: &mut VassalSpec, asked: String, rule_ref: RuleRef) -> Checked {
        const FIX: &str = "set docker-user = UID:GID with numbers other than 0, or remove it to run as the vassal file's owner";
        let num = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
        };
        let (uid, gid) = match asked.split_once(':') {
            Some((u, g)) => (num(u), Some(num(g))),
            None => (num(&asked), None),
        };
        let refuse = |why: &str| self.refuse("docker-user", &asked, rule_ref.clone(), why, FIX);
        let Some(uid) = uid else {
            return Err(refuse(
                "only a numeric UID[:GID] can be checked (a name is looked up inside the image)",
            ));
        };
        if uid == 0 {
            return Err(refuse("uid 0 is root"));
        }
        match gid {
            Some(None) => Err(refuse(
                "only a numeric UID[:GID] can be checked (a name is looked up inside the image)",
            )),
            Some(Some(0)) => Err(refuse("gid 0 is root's group")),
            Some(Some(gid)) => self.group_allowed(uid, gid).map_err(|why| refuse(&why)),
            None if self.tenant.gid == 0 => Err(refuse(
                "without a gid the container's group would be root's; name a gid",
            )),
            None => {
                self.group_allowed(uid, self.tenant.gid)
                    .map_err(|why| refuse(&why))?;
                let full = format!("{uid}:{}", self.tenant.gid);
                self.note(
                    "docker-user",
                    &full,
                    "the tenant's group completed",
                    &rule_ref,
                );
                spec.user = Some(full);
                Ok(())
            }
        }
    }

    fn network(&self, spec: &VassalSpec) -> Checked {
        let asked = spec.network_mode.as_deref().unwrap_or("bridge");
        let mode = if asked == "default" { "bridge" } else { asked };
        let builtin = [Glob("bridge".into()), Glob("none".into())];
        let (allowed, rule): (Vec<&Glob>, RuleRef) = match &self.rules.network_modes {
            Some(list) => (list.items.iter().map(|i| &i.value).collect(), list.rule()),
            None => (
                builtin.iter().collect(),
                RuleRef::builtin("network-modes = bridge none (the default)"),
            ),
        };
        if allowed.iter().any(|g| g.matches(mode)) {
            return Ok(());
        }
        let why = if mode == "host" {
            "the host network shares the host's interfaces and every port on them".to_string()
        } else if mode.starts_with("container:") {
            "it joins another container's network namespace".to_string()
        } else {
            "it is not an allowed network mode".to_string()
        };
        let names = join(allowed.iter().map(|g| g.0.clone()));
        let fix = if spec.network_mode.is_none() {
            format!("set docker-network-mode to one of {names}")
        } else {
            format!("use one of {names}, or remove docker-network-mode for bridge if allowed")
        };
        Err(self.refuse("docker-network-mode", asked, rule, why, fix))
    }

    /// The daemon sockets as components; the one in use resolved lexically (`.`, `..`,
    /// `//`), since the operator's `DOCKER_HOST` need not be written plainly.
    fn daemon_sockets(&self) -> Vec<Vec<&str>> {
        let mut in_use: Vec<&str> = Vec::new();
        for part in self.daemon_socket.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    in_use.pop();
                }
                part => in_use.push(part),
            }
        }
        core::iter::once(in_use)
            .chain(
                WELL_KNOWN_DAEMON_SOCKETS
                    .iter()
                    .filter_map(|s| components(s)),
            )
            .filter(|parts| !parts.is_empty())
            .collect()
    }

    fn mount(&mut self, mount: &mut Mount) -> Checked {
        const NEVER: &str = "no mount of /, a daemon socket or a directory above one, or anything under /proc, /sys or /dev";
        let value = format_mount(mount);
        let refuse_builtin = |cx: &Self, why: String| {
            cx.refuse(
                "docker-mount",
                &value,
                RuleRef::builtin(NEVER),
                why,
                "mount a directory of your own instead",
            )
        };
        let Some(parts) = components(&mount.host) else {
            return Err(self.refuse(
                "docker-mount",
                &value,
                RuleRef::builtin("mount sources are plain absolute paths"),
                "the source has a ., .. or empty (//) component",
                "write the source path plainly, e.g. /srv/alice/data",
            ));
        };
        if parts.is_empty() {
            return Err(refuse_builtin(
                self,
                "mounting / gives the container the whole host".into(),
            ));
        }
        for socket in self.daemon_sockets() {
            if is_at_or_under(&socket, &parts) {
                return Err(refuse_builtin(
                    self,
                    format!(
                        "{} is or holds the container daemon's socket /{}, which is root on the host",
                        mount.host,
                        socket.join("/")
                    ),
                ));
            }
        }
        for tree in KERNEL_TREES {
            if is_at_or_under(&parts, &components(tree).unwrap_or_default()) {
                return Err(refuse_builtin(
                    self,
                    format!("{tree} belongs to the host's kernel and devices"),
                ));
            }
        }
        let rule = list_rule(
            self.rules.mounts.as_ref(),
            "mounts not set: no host path may be mounted",
        );
        let items = self
            .rules
            .mounts
            .as_ref()
            .map(|l| l.items.as_slice())
            .unwrap_or_default();
        let mut allowed = Vec::new();
        let mut matching = Vec::new();
        for item in items {
            let Ok(prefix) = self.tenant.expand(&item.value.prefix) else {
                continue;
            };
            let prefix_parts = components(&prefix).unwrap_or_default();
            if !prefix_parts.is_empty() && is_at_or_under(&parts, &prefix_parts) {
                matching.push(item);
            }
            allowed.push(prefix);
        }
        if matching.is_empty() {
            let (why, fix) = if allowed.is_empty() {
                (
                    "no host path may be mounted by this tenant".to_string(),
                    "remove docker-mount, or ask the operator for a mounts rule".to_string(),
                )
            } else {
                let list = join(allowed.iter().cloned());
                (
                    format!("{} is not under any of {list}", mount.host),
                    format!("mount a path under one of {list}"),
                )
            };
            return Err(self.refuse("docker-mount", &value, rule, why, fix));
        }
        self.host_paths.push(mount.host.clone());
        if mount.read_only || matching.iter().any(|i| i.value.rw) {
            return Ok(());
        }
        let item = matching[0].rule();
        if mount.explicit_mode {
            return Err(self.refuse(
                "docker-mount",
                &value,
                item,
                "the rule allows this path read-only",
                "write :ro or no suffix, or ask the operator for :rw on the rule",
            ));
        }
        mount.read_only = true;
        let shown = format_mount(mount);
        self.note("docker-mount", &shown, "made read-only", &item);
        Ok(())
    }

    fn addr_ranges(list: Option<&List<AddrRange>>) -> Vec<&AddrRange> {
        list.map(|l| l.items.iter().map(|i| &i.value).collect())
            .unwrap_or_default()
    }

    fn publish(&self, port: &crate::spec::PortMapping) -> Checked {
        let ranges = Self::addr_ranges(self.rules.publish.as_ref());
        if ranges
            .iter()
            .any(|r| r.allows(port.host_ip.as_deref(), port.host_port, port.protocol))
        {
            return Ok(());
        }
        let rule = list_rule(
            self.rules.publish.as_ref(),
            "publish not set: no port may be published",
        );
        let (why, fix) = if ranges.is_empty() {
            (
                "this tenant may not publish ports".to_string(),
                "remove docker-port, or use docker-socket".to_string(),
            )
        } else {
            let what = match (port.host_ip.as_deref(), port.host_port) {
                (None, _) => "all host addresses are not allowed".to_string(),
                (Some(ip), Some(p)) => format!("port {p} on {ip} is not in an allowed range"),
                (Some(ip), None) => format!("{ip} is not an allowed address"),
            };
            (
                what,
                "publish on an address and port the rule allows, e.g. 127.0.0.1:PORT:CTRPORT"
                    .to_string(),
            )
        };
        Err(self.refuse("docker-port", port.to_string(), rule, why, fix))
    }

    /// A host path we will create (socket, proxy, cidfile): plain, below one of `dirs`
    /// (templates), never a daemon socket nor under a kernel tree.
    fn host_file(
        &mut self,
        key: &str,
        value: &str,
        path: &str,
        dirs: &[String],
        rule: RuleRef,
    ) -> Checked {
        let Some(parts) = components(path).filter(|_| !path.ends_with('/')) else {
            return Err(self.refuse(
                key,
                value,
                RuleRef::builtin("host paths are plain absolute file paths"),
                "the path has a ., .. or empty (//) component, or ends in /",
                "write the path plainly",
            ));
        };
        let never = self.daemon_sockets().contains(&parts)
            || KERNEL_TREES
                .iter()
                .any(|t| is_at_or_under(&parts, &components(t).unwrap_or_default()));
        if never {
            return Err(self.refuse(
                key,
                value,
                RuleRef::builtin("no host file at a daemon socket or under /proc, /sys or /dev"),
                "the path is a container daemon's socket or the kernel's",
                "choose a path in your own directory",
            ));
        }
        let mut expanded = Vec::new();
        for dir in dirs {
            let Ok(dir) = self.tenant.expand(dir) else {
                continue;
            };
            let dir_parts = components(&dir).unwrap_or_default();
            if parts.len() > dir_parts.len() && is_at_or_under(&parts, &dir_parts) {
                self.host_paths.push(path.into());
                return Ok(());
            }
            expanded.push(dir);
        }
        let (why, fix) = if expanded.is_empty() {
            (
                format!("this tenant may not set {key}"),
                format!("remove {key}, or ask the operator to allow a directory for it"),
            )
        } else {
            let list = join(expanded.iter().cloned());
            (
                format!("{path} is not below any of {list}"),
                format!("choose a path below one of {list}"),
            )
        };
        Err(self.refuse(key, value, rule, why, fix))
    }

    fn socket(&mut self, spec: &VassalSpec) -> Checked {
        let Some(socket) = &spec.socket else {
            return Ok(());
        };
        let value = socket.to_string();
        let builtin = format!("sockets = {DEFAULT_TENANT_SOCKET_DIR} (the default)");
        let rule = list_rule(self.rules.sockets.as_ref(), &builtin);
        let items: Vec<SocketItem> = match &self.rules.sockets {
            Some(list) => list.items.iter().map(|i| i.value.clone()).collect(),
            None => vec![SocketItem::Unix(DEFAULT_TENANT_SOCKET_DIR.into())],
        };
        match socket {
            ListenAddress::Unix(path) => {
                let dirs: Vec<String> = items
                    .iter()
                    .filter_map(|i| match i {
                        SocketItem::Unix(d) => Some(d.clone()),
                        SocketItem::Tcp(_) => None,
                    })
                    .collect();
                self.host_file("docker-socket", &value, path, &dirs, rule)
            }
            ListenAddress::Tcp { ip, port } => {
                let ranges: Vec<&AddrRange> = items
                    .iter()
                    .filter_map(|i| match i {
                        SocketItem::Tcp(r) => Some(r),
                        SocketItem::Unix(_) => None,
                    })
                    .collect();
                if ranges
                    .iter()
                    .any(|r| r.allows(Some(ip), Some(*port), Protocol::Tcp))
                {
                    return Ok(());
                }
                let why = if ranges.is_empty() {
                    "this tenant may bind only unix sockets".to_string()
                } else if ip.is_empty() {
                    "all host addresses are not allowed".to_string()
                } else {
                    format!("port {port} on {ip} is not in an allowed range")
                };
                Err(self.refuse(
                    "docker-socket",
                    value,
                    rule,
                    why,
                    "bind an address and port the rule allows, or a unix socket in your directory",
                ))
            }
        }
    }

    fn socket_owner(&self, spec: &VassalSpec) -> Checked {
        let Some(owner) = &spec.socket_owner else {
            return Ok(());
        };
        let default_items = [OwnerItem::User("%u".into())];
        let items: Vec<&OwnerItem> = match &self.rules.socket_owners {
            Some(list) => list.items.iter().map(|i| &i.value).collect(),
            None => default_items.iter().collect(),
        };
        let rule = list_rule(
            self.rules.socket_owners.as_ref(),
            "socket-owners = %u (the default: the tenant itself, no group)",
        );
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (owner.as_str(), None),
        };
        let tenant_uid = self.tenant.uid.to_string();
        let user_ok = user.is_empty()
            || items.iter().any(|i| match i {
                OwnerItem::User(u) if u == "%u" => {
                    self.tenant.name.as_deref() == Some(user) || user == tenant_uid
                }
                OwnerItem::User(u) => u == user,
                OwnerItem::Group(_) => false,
            });
        let group_ok = group.is_none_or(|g| {
            g.is_empty()
                || items
                    .iter()
                    .any(|i| matches!(i, OwnerItem::Group(allowed) if allowed == g))
        });
        if user_ok && group_ok {
            return Ok(());
        }
        let why = if !user_ok {
            format!("{user} may not own this tenant's sockets")
        } else {
            format!(
                "group {} may not own this tenant's sockets",
                group.unwrap_or_default()
            )
        };
        Err(self.refuse(
            "docker-socket-owner",
            owner,
            rule,
            why,
            "use a user and group the rule lists, or remove docker-socket-owner",
        ))
    }

    fn proxy(&mut self, spec: &VassalSpec) -> Checked {
        let Some(proxy) = &spec.proxy else {
            return Ok(());
        };
        let value = match &proxy.container {
            Some(c) => format!("{}:{c}", proxy.host),
            None => proxy.host.clone(),
        };
        let dirs = template_items(self.rules.proxy.as_ref());
        let rule = list_rule(
            self.rules.proxy.as_ref(),
            "proxy not set: docker-proxy is not allowed",
        );
        self.host_file("docker-proxy", &value, &proxy.host, &dirs, rule)
    }

    fn cidfile(&mut self, spec: &VassalSpec) -> Checked {
        let Some(cidfile) = &spec.cidfile else {
            return Ok(());
        };
        let dirs = template_items(self.rules.cidfile_dirs.as_ref());
        let rule = list_rule(
            self.rules.cidfile_dirs.as_ref(),
            "cidfile-dirs not set: docker-cidfile is not allowed",
        );
        self.host_file("docker-cidfile", cidfile, cidfile, &dirs, rule)
    }

    fn capabilities(&mut self, spec: &mut VassalSpec) -> Checked {
        let allowed = template_items(self.rules.cap_add.as_ref());
        for cap in &spec.cap_add {
            if !allowed.iter().any(|a| a == cap || a == "ALL") {
                let rule = list_rule(
                    self.rules.cap_add.as_ref(),
                    "cap-add not set: no capability may be added",
                );
                let fix = if allowed.is_empty() {
                    "remove docker-cap-add".to_string()
                } else {
                    format!("add only {}", join(allowed.iter().cloned()))
                };
                return Err(self.refuse(
                    "docker-cap-add",
                    cap,
                    rule,
                    format!("{cap} is not among the capabilities this tenant may add"),
                    fix,
                ));
            }
        }
        if spec.cap_drop != ["ALL"] {
            spec.cap_drop = vec!["ALL".into()];
            self.note(
                "docker-cap-drop",
                "ALL",
                "forced",
                &RuleRef::builtin("every capability is dropped under a policy"),
            );
        }
        Ok(())
    }

    /// A limit: refused above the maximum; the default (or the maximum) when not set.
    fn limit(
        &mut self,
        key: &str,
        current: &mut Option<u64>,
        default: Option<&Scalar<u64>>,
        max: Option<&Scalar<u64>>,
        show: impl Fn(u64) -> String,
    ) -> Checked {
        match (*current, max) {
            (Some(value), Some(max)) if value > max.value => Err(self.refuse(
                key,
                show(value),
                max.rule(),
                format!("it is above the maximum {}", show(max.value)),
                format!("set {key} to at most {}", show(max.value)),
            )),
            (Some(_), _) => Ok(()),
            (None, _) => {
                let fill = match (default, max) {
                    (Some(d), Some(m)) if d.value > m.value => Some((m.value, m.rule())),
                    (Some(d), _) => Some((d.value, d.rule())),
                    (None, Some(m)) => Some((m.value, m.rule())),
                    (None, None) => None,
                };
                if let Some((value, rule)) = fill {
                    *current = Some(value);
                    self.note(key, &show(value), "the default", &rule);
                }
                Ok(())
            }
        }
    }

    fn limits(&mut self, spec: &mut VassalSpec) -> Checked {
        let rules = self.rules;
        self.limit(
            "docker-memory",
            &mut spec.memory,
            rules.memory_default.as_ref(),
            rules.memory_max.as_ref(),
            format_size,
        )?;
        // Without a memory limit, Docker ignores swap (and so does the create body).
        if spec.memory.is_some() || spec.swap.is_some() {
            let mut swap = spec.swap;
            self.limit(
                "docker-swap",
                &mut swap,
                rules.swap_default.as_ref(),
                rules.swap_max.as_ref(),
                format_size,
            )?;
            if spec.memory.is_some() {
                spec.swap = swap;
            }
        }
        if rules.swap_max.is_none() {
            self.builtin_max("docker-swap", spec.swap, &BUILTIN_SWAP_MAX, format_size)?;
        }
        self.tmpfs(spec)?;
        self.stop_timeout(spec)?;
        self.limit(
            "docker-cpus",
            &mut spec.nano_cpus,
            rules.cpus_default.as_ref(),
            rules.cpus_max.as_ref(),
            format_cpus,
        )?;
        let as_rank = |s: &Scalar<i64>| Scalar {
            line: s.line,
            text: s.text.clone(),
            value: pids_rank(s.value),
        };
        let default = rules.pids_default.as_ref().map(as_rank);
        let max = rules.pids_max.as_ref().map(as_rank);
        let mut pids = spec.pids_limit.map(pids_rank);
        let show_pids = |v: u64| i64::try_from(v).unwrap_or(-1).to_string();
        self.limit(
            "docker-pids-limit",
            &mut pids,
            default.as_ref(),
            max.as_ref(),
            show_pids,
        )?;
        spec.pids_limit = pids.map(|v| i64::try_from(v).unwrap_or(-1));
        Ok(())
    }

    /// A value above a built-in bound (one the policy does not set) is refused; nothing
    /// is filled in.
    fn builtin_max(
        &self,
        key: &str,
        value: Option<u64>,
        bound: &Bound,
        show: impl Fn(u64) -> String,
    ) -> Checked {
        match value {
            Some(value) if value > bound.value => Err(self.refuse(
                key,
                show(value),
                RuleRef::builtin(format!(
                    "{} = {} when the policy sets none",
                    bound.key,
                    show(bound.value)
                )),
                format!("it is above the maximum {}", show(bound.value)),
                format!(
                    "set {key} to at most {}, or ask the operator to set {} higher",
                    show(bound.value),
                    bound.key
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The policy's maximum for a key, else the built-in bound, as a scalar rule.
    fn max_or_builtin(
        set: Option<&Scalar<u64>>,
        bound: &Bound,
        show: impl Fn(u64) -> String,
    ) -> Scalar<u64> {
        set.cloned().unwrap_or_else(|| Scalar {
            line: 0,
            text: format!(
                "{} = {} when the policy sets none",
                bound.key,
                show(bound.value)
            ),
            value: bound.value,
        })
    }

    /// `docker-tmpfs`: at most `tmpfs-count-max` of them, each with a `size=` of at most
    /// `tmpfs-max` (filled in when missing: Docker's default is half the host's memory).
    fn tmpfs(&mut self, spec: &mut VassalSpec) -> Checked {
        let count_max = Self::max_or_builtin(
            self.rules.tmpfs_count_max.as_ref(),
            &BUILTIN_TMPFS_COUNT_MAX,
            |v| v.to_string(),
        );
        let count = u64::try_from(spec.tmpfs.len()).unwrap_or(u64::MAX);
        if count > count_max.value {
            let value = spec
                .tmpfs
                .iter()
                .map(|(p, _)| p.clone())
                .collect::<Vec<_>>()
                .join(" ");
            return Err(self.refuse(
                "docker-tmpfs",
                value,
                count_max.rule(),
                format!(
                    "{count} tmpfs mounts are more than the {} allowed",
                    count_max.value
                ),
                format!("use at most {} docker-tmpfs lines", count_max.value),
            ));
        }
        let size_max = Self::max_or_builtin(
            self.rules.tmpfs_max.as_ref(),
            &BUILTIN_TMPFS_MAX,
            format_size,
        );
        for (path, options) in &mut spec.tmpfs {
            let value = if options.is_empty() {
                path.clone()
            } else {
                format!("{path}:{options}")
            };
            let size = options.rsplit(',').find_map(|o| o.strip_prefix("size="));
            match size.map(crate::spec::parse_size) {
                None => {
                    let filled = format!("size={}", format_size(size_max.value));
                    *options = if options.is_empty() {
                        filled
                    } else {
                        format!("{options},{filled}")
                    };
                    let shown = format!("{path}:{options}");
                    let value = escape_controls(&shown).into_owned();
                    self.applied.push(format!(
                        "docker-tmpfs = {value}: the size bounded (policy {})",
                        size_max.rule().at()
                    ));
                }
                Some(Ok(bytes)) if bytes > 0 && bytes <= size_max.value => {}
                Some(Ok(bytes)) => {
                    let why = if bytes == 0 {
                        "size=0 is no limit".to_string()
                    } else {
                        format!(
                            "its size is above the maximum {}",
                            format_size(size_max.value)
                        )
                    };
                    return Err(self.refuse(
                        "docker-tmpfs",
                        value,
                        size_max.rule(),
                        why,
                        format!("give it size= of at most {}", format_size(size_max.value)),
                    ));
                }
                Some(Err(_)) => return Err(self.refuse(
                    "docker-tmpfs",
                    value,
                    size_max.rule(),
                    "its size= is not a size the policy can check (a % of memory, or not a number)",
                    format!(
                        "write size= as a size, at most {}, e.g. size=64m",
                        format_size(size_max.value)
                    ),
                )),
            }
        }
        Ok(())
    }

    /// `docker-stop-timeout`: at most `stop-timeout-max`, so a vassal that ignores its
    /// stop signal is killed while its bridge still waits (within the curse tolerance).
    fn stop_timeout(&mut self, spec: &mut VassalSpec) -> Checked {
        let max = Self::max_or_builtin(
            self.rules.stop_timeout_max.as_ref(),
            &BUILTIN_STOP_TIMEOUT_MAX,
            |v| v.to_string(),
        );
        let effective = u64::from(spec.stop_timeout_secs());
        if effective <= max.value {
            return Ok(());
        }
        match spec.stop_timeout {
            Some(asked) => Err(self.refuse(
                "docker-stop-timeout",
                asked.to_string(),
                max.rule(),
                format!("it is above the maximum {} s", max.value),
                format!("set docker-stop-timeout to at most {}", max.value),
            )),
            None => {
                let value = u32::try_from(max.value).unwrap_or(u32::MAX);
                spec.stop_timeout = Some(value);
                self.note(
                    "docker-stop-timeout",
                    &value.to_string(),
                    "the default",
                    &max.rule(),
                );
                Ok(())
            }
        }
    }

    /// `docker-pull`: one of `pull-modes`; a vassal without it gets `pull-default`, else
    /// the operator's, else (when `pull-modes` allows neither) the first allowed mode.
    fn pull(&mut self, spec: &mut VassalSpec, operator: PullPolicy) -> Checked {
        let modes = self.rules.pull_modes.as_ref();
        let allows = |p: PullPolicy| modes.is_none_or(|l| l.items.iter().any(|i| i.value == p));
        match spec.pull {
            Some(asked) if allows(asked) => Ok(()),
            Some(asked) => {
                let Some(list) = modes else { return Ok(()) };
                let names = join(list.items.iter().map(|i| i.value.as_str().to_owned()));
                let fix = format!("use one of {names}, or remove docker-pull");
                let why = match asked {
                    PullPolicy::Missing => {
                        "this tenant's vassals may not pull an image the host lacks"
                    }
                    PullPolicy::Always => "this tenant's vassals may not pull at every start",
                    PullPolicy::Never => "this tenant's vassals must pull as the operator says",
                };
                Err(self.refuse("docker-pull", asked.as_str(), list.rule(), why, fix))
            }
            None => {
                let fill = match (&self.rules.pull_default, modes) {
                    (Some(d), _) if allows(d.value) => Some((d.value, d.rule(), "the default")),
                    (_, Some(list)) if !allows(operator) || self.rules.pull_default.is_some() => {
                        list.items.first().map(|i| (i.value, list.rule(), "forced"))
                    }
                    _ => None,
                };
                if let Some((value, rule, what)) = fill {
                    spec.pull = Some(value);
                    self.note("docker-pull", value.as_str(), what, &rule);
                }
                Ok(())
            }
        }
    }

    /// `registry-auth`: the tenant's own credentials file, `%u`/`%h` expanded.
    fn registry_auth(&self) -> Result<RegistryAuth, Box<PolicyViolation>> {
        let Some(rule) = &self.rules.registry_auth else {
            return Ok(RegistryAuth::Operator);
        };
        let at = format!("policy {} line {}: {}", self.file, rule.line, rule.text);
        let Some(template) = &rule.value else {
            return Ok(RegistryAuth::None { rule: at });
        };
        match self.tenant.expand(template) {
            Ok(path) => Ok(RegistryAuth::File { path, rule: at }),
            Err(why) => Err(self.refuse(
                "registry-auth",
                template,
                rule.rule(),
                format!("the tenant's credentials file cannot be named: {why}"),
                "ask the operator to name the file without %h, or give the tenant a home",
            )),
        }
    }

    fn flags(&mut self, spec: &mut VassalSpec) {
        let nnp = self.rules.no_new_privileges.as_ref();
        if nnp.is_none_or(|s| s.value) && !spec.no_new_privileges {
            spec.no_new_privileges = true;
            let rule = scalar_rule(nnp, "no-new-privileges = true (the default)");
            self.note("docker-no-new-privileges", "true", "forced", &rule);
        }
        if let Some(ro) = &self.rules.read_only_rootfs {
            if ro.value && !spec.read_only {
                spec.read_only = true;
                self.note("docker-read-only", "true", "forced", &ro.rule());
            }
        }
    }
}

fn template_items(list: Option<&List<String>>) -> Vec<String> {
    list.map(|l| l.items.iter().map(|i| i.value.clone()).collect())
        .unwrap_or_default()
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(" ")
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or(user);
    name == "0" || name == "root"
}
