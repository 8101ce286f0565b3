//! The typed rules of one policy section, and the matchers they use: globs, host path
//! prefixes with `%u`/`%h`, and address:port ranges.
use core::net::IpAddr;

use super::Tenant;
use crate::spec::{Protocol, PullPolicy};

/// Where a rule comes from: its text as written and its line (0: built in, not in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RuleRef {
    pub text: String,
    pub line: usize,
}

impl RuleRef {
    pub fn builtin(text: impl Into<String>) -> RuleRef {
        RuleRef {
            text: text.into(),
            line: 0,
        }
    }

    /// `line 4: mounts = /srv/%u` or `built in: …`, for decision lines.
    pub fn at(&self) -> String {
        if self.line == 0 {
            format!("built in: {}", self.text)
        } else {
            format!("line {}: {}", self.line, self.text)
        }
    }
}

/// One list item with the line it was written on.
#[derive(Debug, Clone)]
pub(super) struct Item<T> {
    pub line: usize,
    /// The whole line, `key = value`, trimmed.
    pub text: String,
    pub value: T,
}

impl<T> Item<T> {
    pub fn rule(&self) -> RuleRef {
        RuleRef {
            text: self.text.clone(),
            line: self.line,
        }
    }
}

/// A list-valued key: every line that sets it in one section, in file order.
#[derive(Debug, Clone)]
pub(super) struct List<T> {
    /// `(line, text)` of each line; never empty.
    pub lines: Vec<(usize, String)>,
    pub items: Vec<Item<T>>,
}

impl<T> List<T> {
    /// The whole rule: its first line, and every line's text.
    pub fn rule(&self) -> RuleRef {
        RuleRef {
            text: self
                .lines
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            line: self.lines.first().map_or(0, |(l, _)| *l),
        }
    }
}

/// A single-valued key.
#[derive(Debug, Clone)]
pub(super) struct Scalar<T> {
    pub line: usize,
    pub text: String,
    pub value: T,
}

impl<T> Scalar<T> {
    pub fn rule(&self) -> RuleRef {
        RuleRef {
            text: self.text.clone(),
            line: self.line,
        }
    }
}

/// `user = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UserRule {
    /// The tenant's own `uid:gid`.
    Owner,
    /// A fixed `uid:gid`.
    Fixed(u32, u32),
    /// Any numeric non-root `uid[:gid]` the vassal names; the owner when it names none.
    AnyNonRoot,
    /// Anything, root included; the owner when the vassal names none.
    Root,
}

/// One `sockets` item.
#[derive(Debug, Clone)]
pub(super) enum SocketItem {
    /// A directory (template) under which unix sockets may be bound.
    Unix(String),
    Tcp(AddrRange),
}

/// One `socket-owners` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OwnerItem {
    /// A user (`%u` is the tenant, by name or uid).
    User(String),
    /// A group, written `:GROUP`.
    Group(String),
}

/// One `mounts` item.
#[derive(Debug, Clone)]
pub(super) struct MountItem {
    pub prefix: String,
    pub rw: bool,
}

/// Every rule of one section; `None` is "not set here".
#[derive(Debug, Clone, Default)]
pub(super) struct Rules {
    pub images: Option<List<Glob>>,
    pub mounts: Option<List<MountItem>>,
    pub network_modes: Option<List<Glob>>,
    pub user: Option<Scalar<UserRule>>,
    pub publish: Option<List<AddrRange>>,
    pub sockets: Option<List<SocketItem>>,
    pub socket_owners: Option<List<OwnerItem>>,
    pub proxy: Option<List<String>>,
    pub memory_default: Option<Scalar<u64>>,
    pub memory_max: Option<Scalar<u64>>,
    pub swap_default: Option<Scalar<u64>>,
    pub swap_max: Option<Scalar<u64>>,
    pub cpus_default: Option<Scalar<u64>>,
    pub cpus_max: Option<Scalar<u64>>,
    pub pids_default: Option<Scalar<i64>>,
    pub pids_max: Option<Scalar<i64>>,
    pub cap_add: Option<List<String>>,
    pub no_new_privileges: Option<Scalar<bool>>,
    pub read_only_rootfs: Option<Scalar<bool>>,
    pub cidfile_dirs: Option<List<String>>,
    pub tmpfs_max: Option<Scalar<u64>>,
    pub tmpfs_count_max: Option<Scalar<u64>>,
    pub stop_timeout_max: Option<Scalar<u64>>,
    pub native_vassals: Option<Scalar<bool>>,
    pub pull_modes: Option<List<PullPolicy>>,
    pub pull_default: Option<Scalar<PullPolicy>>,
    /// A path template; `None` inside: no credentials at all (`registry-auth =`).
    pub registry_auth: Option<Scalar<Option<String>>>,
}

macro_rules! overlay {
    ($own:ident, $fallback:ident, $($field:ident),* $(,)?) => {
        Rules { $( $field: $own.$field.clone().or_else(|| $fallback.$field.clone()), )* }
    };
}

impl Rules {
    /// `own`'s rules, and `fallback`'s for every key `own` does not set.
    pub fn over(own: &Rules, fallback: &Rules) -> Rules {
        overlay!(
            own,
            fallback,
            images,
            mounts,
            network_modes,
            user,
            publish,
            sockets,
            socket_owners,
            proxy,
            memory_default,
            memory_max,
            swap_default,
            swap_max,
            cpus_default,
            cpus_max,
            pids_default,
            pids_max,
            cap_add,
            no_new_privileges,
            read_only_rootfs,
            cidfile_dirs,
            tmpfs_max,
            tmpfs_count_max,
            stop_timeout_max,
            native_vassals,
            pull_modes,
            pull_default,
            registry_auth,
        )
    }
}

/// A glob: `*` is any run of characters but `/`, `?` one character but `/`, and a whole
/// `**` component any number of components (`registry.example/**`, or `**` for anything);
/// the rest is literal. Matching is on whole strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Glob(pub String);

impl Glob {
    pub fn matches(&self, text: &str) -> bool {
        let pattern: Vec<&str> = self.0.split('/').collect();
        let text: Vec<&str> = text.split('/').collect();
        wildcard(
            &pattern,
            &text,
            |p| *p == "**",
            |p, t| segment_matches(p, t),
        )
    }
}

/// Glob match of one `/`-free segment: `*` any run of characters, `?` any one.
fn segment_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    wildcard(&p, &t, |c| *c == '*', |c, t| *c == '?' || c == t)
}

/// Wildcard matching of whole sequences: `is_star` marks a pattern item that matches any
/// run of text items, `one` says whether a pattern item matches one text item. Greedy,
/// backtracking to the last star only, which is exact when a star cannot match what
/// separates the items (a `/` between components, nothing between characters).
fn wildcard<P, T>(
    pattern: &[P],
    text: &[T],
    is_star: impl Fn(&P) -> bool,
    one: impl Fn(&P, &T) -> bool,
) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(t) = text.get(ti) {
        match pattern.get(pi) {
            Some(p) if is_star(p) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(p) if one(p, t) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(pi..).unwrap_or_default().iter().all(is_star)
}

/// The components of an absolute path written plainly: `None` for a relative path, or one
/// with an empty (`//`), `.` or `..` component. One trailing `/` is allowed. `/` is `[]`.
pub(super) fn components(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('\0'))
    {
        return None;
    }
    Some(parts)
}

/// `path` is `prefix` or below it, by whole components.
pub(super) fn is_at_or_under(path: &[&str], prefix: &[&str]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

/// The host paths whose contents are the kernel's or the devices: never mountable.
pub(super) const KERNEL_TREES: &[&str] = &["/proc", "/sys", "/dev"];

/// Checks a template at parse time: absolute, plain, `%` only in `%u`, `%h`, `%%`.
pub(super) fn check_template(template: &str) -> Result<(), String> {
    if template.match_indices("%h").any(|(at, _)| at != 0) {
        return Err(format!(
            "{template:?} has %h past its start; %h is a whole path, as in %h/data"
        ));
    }
    let mut sample = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            sample.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => sample.push('x'),
            // `%h` stands for a whole absolute path.
            Some('h') => sample.push_str("/x"),
            Some('%') => sample.push('%'),
            other => {
                return Err(format!(
                    "{template:?} has %{}: write %u (the tenant's name, else uid), %h (its home) or %% (a %)",
                    other.map(String::from).unwrap_or_default()
                ))
            }
        }
    }
    if components(&sample).is_none() {
        return Err(format!(
            "{template:?} is not a plain absolute path: start it with / or %h (only there), and leave out ., .. and //"
        ));
    }
    Ok(())
}

/// A tenant's name when it can be a path component.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

impl Tenant {
    /// What the tenant's `%u` stands for: its name when it has one, else its uid.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => self.uid.to_string(),
        }
    }

    /// `template` with `%u` (the tenant's name, else uid), `%h` (its home) and `%%`
    /// expanded; `Err` says why it cannot stand for a plain absolute path for this tenant
    /// (no home, a home of `/`, a name that is not a path component, …).
    pub fn expand(&self, template: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('u') => match &self.name {
                    Some(name) if safe_name(name) => out.push_str(name),
                    Some(name) => {
                        return Err(format!(
                            "the tenant's name {name:?} cannot be part of a path"
                        ))
                    }
                    None => out.push_str(&self.uid.to_string()),
                },
                Some('h') => match &self.home {
                    Some(home) => match components(home) {
                        Some(parts) if !parts.is_empty() => {
                            out.push('/');
                            out.push_str(&parts.join("/"));
                        }
                        _ => {
                            return Err(format!(
                                "the tenant's home {home:?} is / or not a plain absolute path"
                            ))
                        }
                    },
                    None => return Err("the tenant has no home directory".into()),
                },
                Some('%') => out.push('%'),
                _ => return Err(format!("{template:?} has a stray %")),
            }
        }
        if components(&out).is_none() {
            return Err(format!("{out:?} is not a plain absolute path"));
        }
        Ok(out)
    }
}

/// The address part of an `ADDR:PORTS` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Addr {
    /// `*`: any address, and all addresses.
    Any,
    /// `0.0.0.0`: any IPv4 address, and all addresses.
    AllV4,
    /// `[::]`: any IPv6 address.
    AllV6,
    Ip(IpAddr),
}

/// `ADDR:LO[-HI][/tcp|/udp]`: host addresses and ports that may be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AddrRange {
    pub addr: Addr,
    pub lo: u16,
    pub hi: u16,
    /// `None`: both protocols.
    pub protocol: Option<Protocol>,
}

pub(super) const ADDR_RANGE_EXPECTED: &str = "write ADDRESS:PORT or ADDRESS:LOW-HIGH, optionally /tcp or /udp, with ADDRESS an IPv4 address, [IPV6], 0.0.0.0 or * (all addresses) and ports 1-65535, e.g. 127.0.0.1:8000-8999";

impl AddrRange {
    pub fn parse(v: &str) -> Result<AddrRange, String> {
        let bad = || format!("{v:?}: {ADDR_RANGE_EXPECTED}");
        let (spec, protocol) = match v.rsplit_once('/') {
            Some((s, p)) if p.eq_ignore_ascii_case("tcp") => (s, Some(Protocol::Tcp)),
            Some((s, p)) if p.eq_ignore_ascii_case("udp") => (s, Some(Protocol::Udp)),
            Some(_) => return Err(bad()),
            None => (v, None),
        };
        let (addr, ports) = if let Some(rest) = spec.strip_prefix('[') {
            let (ip, ports) = rest.split_once("]:").ok_or_else(bad)?;
            let ip: core::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
            let addr = if ip.is_unspecified() {
                Addr::AllV6
            } else {
                Addr::Ip(IpAddr::V6(ip))
            };
            (addr, ports)
        } else {
            let (host, ports) = spec.rsplit_once(':').ok_or_else(bad)?;
            let addr = match host {
                "*" => Addr::Any,
                _ => {
                    let ip: core::net::Ipv4Addr = host.parse().map_err(|_| bad())?;
                    if ip.is_unspecified() {
                        Addr::AllV4
                    } else {
                        Addr::Ip(IpAddr::V4(ip))
                    }
                }
            };
            (addr, ports)
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0 && p.bytes().all(|b| b.is_ascii_digit()))
        };
        let (lo, hi) = match ports.split_once('-') {
            Some((lo, hi)) => (port(lo).ok_or_else(bad)?, port(hi).ok_or_else(bad)?),
            None => {
                let p = port(ports).ok_or_else(bad)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(format!(
                "{v:?}: the range {lo}-{hi} is empty; write LOW-HIGH"
            ));
        }
        Ok(AddrRange {
            addr,
            lo,
            hi,
            protocol,
        })
    }

    /// A bind of `ip` (`None` or empty: all addresses) and `port` (`None`: Docker chooses).
    pub fn allows(&self, ip: Option<&str>, port: Option<u16>, protocol: Protocol) -> bool {
        if self.protocol.is_some_and(|p| p != protocol) {
            return false;
        }
        let addr_ok = match ip.filter(|ip| !ip.is_empty()) {
            None => matches!(self.addr, Addr::Any | Addr::AllV4),
            Some(ip) => match ip.parse::<IpAddr>() {
                Ok(ip) if ip.is_unspecified() => match ip {
                    IpAddr::V4(_) => matches!(self.addr, Addr::Any | Addr::AllV4),
                    IpAddr::V6(_) => matches!(self.addr, Addr::Any | Addr::AllV6),
                },
                Ok(ip) => match self.addr {
                    Addr::Any => true,
                    Addr::AllV4 => ip.is_ipv4(),
                    Addr::AllV6 => ip.is_ipv6(),
                    Addr::Ip(allowed) => allowed == ip,
                },
                Err(_) => false,
            },
        };
        addr_ok && port.is_none_or(|p| (self.lo..=self.hi).contains(&p))
    }
}
