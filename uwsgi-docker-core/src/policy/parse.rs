//! Reading a policy file: lines, sections and typed rules, each remembering its line.
//!
//! Read the way uWSGI reads ini files (and as `spec` reads the `[emperor]` section): one
//! `key = value` per line split at the first `=`, `;` or `#` starting a comment only at the
//! start of a line, no quotes, escapes or continuation lines. Unlike a vassal file, nothing
//! here belongs to anyone else, so every line must make sense: an unknown section or key,
//! a line without `=` or a bad value is an error naming its line.
use super::rules::{
    check_template, components, is_at_or_under, AddrRange, Glob, Item, List, MountItem, OwnerItem,
    Rules, Scalar, SocketItem, UserRule, KERNEL_TREES,
};
use super::{Policy, PolicyError, TenantName, VassalRule};
use crate::spec::{self, shared, Protocol, PullPolicy};

/// Every rule key, for suggestions and the docs.
pub const POLICY_KEYS: &[&str] = &[
    "images",
    "mounts",
    "network-modes",
    "user",
    "publish",
    "sockets",
    "socket-owners",
    "proxy",
    "memory-default",
    "memory-max",
    "swap-default",
    "swap-max",
    "cpus-default",
    "cpus-max",
    "pids-default",
    "pids-max",
    "cap-add",
    "no-new-privileges",
    "read-only-rootfs",
    "cidfile-dirs",
    "tmpfs-max",
    "tmpfs-count-max",
    "stop-timeout-max",
    "native-vassals",
    "pull-modes",
    "pull-default",
    "registry-auth",
];

/// Which section the lines being read belong to.
enum Section {
    /// Before the first header.
    None,
    Default,
    User(String),
    Uid(u32),
    Vassals,
}

pub(super) fn parse(file: &str, text: &[u8]) -> Result<Policy, PolicyError> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let err = |line: usize, message: String| PolicyError::new(file, line, message);
    let body = text.strip_prefix(BOM).unwrap_or(text);
    let mut policy = Policy {
        file: file.into(),
        default: Rules::default(),
        users: Vec::new(),
        uids: Vec::new(),
        vassals: Vec::new(),
        daemon_groups: Vec::new(),
        operator_pull: PullPolicy::Missing,
    };
    let mut section = Section::None;
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = raw.trim_ascii();
        if line.is_empty() || line.starts_with(b";") || line.starts_with(b"#") {
            continue;
        }
        let line = core::str::from_utf8(line).map_err(|_| {
            err(
                line_no,
                "is not UTF-8 text; save the policy file as UTF-8".into(),
            )
        })?;
        if let Some(header) = line.strip_prefix('[') {
            let Some(name) = header.strip_suffix(']') else {
                return Err(err(
                    line_no,
                    format!("{line:?} is not a section header; end it with ]"),
                ));
            };
            section = parse_section(name.trim()).map_err(|m| err(line_no, m))?;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(
                line_no,
                format!("{line:?} has no =; write key = value"),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        let rules = match &section {
            Section::None => {
                return Err(err(
                    line_no,
                    format!("{key} comes before any section; put it under [default], [user:NAME] or [uid:N]"),
                ))
            }
            Section::Vassals => {
                let rule = vassal_rule(key, value, line_no).map_err(|m| err(line_no, m))?;
                policy.vassals.push(rule);
                continue;
            }
            Section::Default => &mut policy.default,
            Section::User(name) => section_rules(&mut policy.users, name),
            Section::Uid(uid) => section_rules(&mut policy.uids, uid),
        };
        apply(rules, key, value, line_no, line).map_err(|m| err(line_no, m))?;
    }
    let sections = core::iter::once(&policy.default)
        .chain(policy.users.iter().map(|(_, r)| r))
        .chain(policy.uids.iter().map(|(_, r)| r));
    for rules in sections {
        check_limits(rules).map_err(|(line, m)| err(line, m))?;
    }
    Ok(policy)
}

/// The rules of the section named `name` in `sections`, created empty on first use (a
/// section written twice is one section, as in uWSGI).
fn section_rules<'a, K: PartialEq + Clone>(
    sections: &'a mut Vec<(K, Rules)>,
    name: &K,
) -> &'a mut Rules {
    let index = match sections.iter().position(|(k, _)| k == name) {
        Some(index) => index,
        None => {
            sections.push((name.clone(), Rules::default()));
            sections.len() - 1
        }
    };
    &mut sections[index].1
}

fn parse_section(name: &str) -> Result<Section, String> {
    const KNOWN: &str = "[default], [user:NAME], [uid:N] or [vassals]";
    match name.split_once(':') {
        None if name == "default" => Ok(Section::Default),
        None if name == "vassals" => Ok(Section::Vassals),
        None => {
            let near = ["default", "vassals"]
                .into_iter()
                .find(|k| shared::edit_distance(&name.to_ascii_lowercase(), k) <= 2);
            Err(match near {
                Some(k) => format!("unknown section [{name}]; did you mean [{k}]?"),
                None => format!("unknown section [{name}]; the sections are {KNOWN}"),
            })
        }
        Some(("user", user)) => {
            let user = user.trim();
            if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "[{name}] needs a user name without spaces, as in [user:alice]"
                ));
            }
            Ok(Section::User(user.into()))
        }
        Some(("uid", uid)) => match uid.trim().parse::<u32>() {
            Ok(n) if uid.trim().bytes().all(|b| b.is_ascii_digit()) => Ok(Section::Uid(n)),
            _ => Err(format!(
                "[{name}] needs a numeric uid, as in [uid:1000]; for a name write [user:NAME]"
            )),
        },
        Some((kind, arg)) => {
            let near = ["user", "uid"]
                .into_iter()
                .find(|k| shared::edit_distance(&kind.to_ascii_lowercase(), k) <= 2);
            Err(match near {
                Some(k) => format!("unknown section [{name}]; did you mean [{k}:{arg}]?"),
                None => format!("unknown section [{name}]; the sections are {KNOWN}"),
            })
        }
    }
}

fn vassal_rule(glob: &str, tenant: &str, line: usize) -> Result<VassalRule, String> {
    const FORM: &str = "write VASSAL_GLOB = USER or VASSAL_GLOB = uid:N, as in shop-*.ini = alice";
    if glob.is_empty() || glob.chars().any(char::is_control) {
        return Err(format!("[vassals] needs a vassal name pattern; {FORM}"));
    }
    let tenant = match tenant.strip_prefix("uid:") {
        Some(uid) => TenantName::Uid(
            uid.parse()
                .map_err(|_| format!("{tenant:?} is not uid:N with a numeric uid; {FORM}"))?,
        ),
        None if !tenant.is_empty()
            && !tenant
                .chars()
                .any(|c| c == ':' || c.is_whitespace() || c.is_control()) =>
        {
            TenantName::User(tenant.into())
        }
        None => return Err(format!("{glob} = {tenant:?} names no tenant; {FORM}")),
    };
    Ok(VassalRule {
        glob: Glob(glob.into()),
        tenant,
        line,
    })
}

/// The items of a list value: separated by spaces or commas.
fn items(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
}

fn push_list<T>(
    slot: &mut Option<List<T>>,
    line: usize,
    text: &str,
    value: &str,
    parse_item: impl Fn(&str) -> Result<T, String>,
) -> Result<(), String> {
    let mut parsed = Vec::new();
    for item in items(value) {
        parsed.push(Item {
            line,
            text: text.into(),
            value: parse_item(item)?,
        });
    }
    let list = slot.get_or_insert_with(|| List {
        lines: Vec::new(),
        items: Vec::new(),
    });
    list.lines.push((line, text.into()));
    list.items.extend(parsed);
    Ok(())
}

fn set_scalar<T>(
    slot: &mut Option<Scalar<T>>,
    key: &str,
    line: usize,
    text: &str,
    value: Result<T, String>,
) -> Result<(), String> {
    if let Some(earlier) = slot {
        return Err(format!(
            "{key} is already set in this section on line {}; keep one",
            earlier.line
        ));
    }
    *slot = Some(Scalar {
        line,
        text: text.into(),
        value: value.map_err(|e| format!("bad {key}: {text:?}: {e}"))?,
    });
    Ok(())
}

/// Reads one `key = value` line of a rules section into `rules`.
fn apply(rules: &mut Rules, key: &str, value: &str, line: usize, text: &str) -> Result<(), String> {
    let bad = |item: &str, why: String| format!("bad {key} item {item:?}: {why}");
    match key {
        "images" => push_list(&mut rules.images, line, text, value, |i| {
            glob(i).map_err(|w| bad(i, w))
        }),
        "mounts" => push_list(&mut rules.mounts, line, text, value, |i| {
            mount_item(i).map_err(|w| bad(i, w))
        }),
        "network-modes" => push_list(&mut rules.network_modes, line, text, value, |i| {
            glob(i).map_err(|w| bad(i, w))
        }),
        "publish" => push_list(&mut rules.publish, line, text, value, |i| {
            AddrRange::parse(i).map_err(|w| bad(i, w))
        }),
        "sockets" => push_list(&mut rules.sockets, line, text, value, |i| {
            socket_item(i).map_err(|w| bad(i, w))
        }),
        "socket-owners" => push_list(&mut rules.socket_owners, line, text, value, |i| {
            owner_item(i).map_err(|w| bad(i, w))
        }),
        "proxy" => push_list(&mut rules.proxy, line, text, value, |i| {
            directory(i).map_err(|w| bad(i, w))
        }),
        "cidfile-dirs" => push_list(&mut rules.cidfile_dirs, line, text, value, |i| {
            directory(i).map_err(|w| bad(i, w))
        }),
        "cap-add" => push_list(&mut rules.cap_add, line, text, value, |i| {
            shared::capability(i).map_err(|w| bad(i, w))
        }),
        "user" => set_scalar(&mut rules.user, key, line, text, user_rule(value)),
        "memory-default" => set_scalar(&mut rules.memory_default, key, line, text, memory(value)),
        "memory-max" => set_scalar(&mut rules.memory_max, key, line, text, memory(value)),
        "swap-default" => set_scalar(
            &mut rules.swap_default,
            key,
            line,
            text,
            spec::parse_size(value).map_err(|e| e.to_string()),
        ),
        "swap-max" => set_scalar(
            &mut rules.swap_max,
            key,
            line,
            text,
            spec::parse_size(value).map_err(|e| e.to_string()),
        ),
        "cpus-default" => set_scalar(
            &mut rules.cpus_default,
            key,
            line,
            text,
            shared::cpus(value),
        ),
        "cpus-max" => set_scalar(&mut rules.cpus_max, key, line, text, shared::cpus(value)),
        "pids-default" => set_scalar(
            &mut rules.pids_default,
            key,
            line,
            text,
            shared::pids(value),
        ),
        "pids-max" => set_scalar(&mut rules.pids_max, key, line, text, pids_max(value)),
        "no-new-privileges" => set_scalar(
            &mut rules.no_new_privileges,
            key,
            line,
            text,
            shared::boolean(value),
        ),
        "read-only-rootfs" => set_scalar(
            &mut rules.read_only_rootfs,
            key,
            line,
            text,
            shared::boolean(value),
        ),
        "tmpfs-max" => set_scalar(&mut rules.tmpfs_max, key, line, text, memory(value)),
        "tmpfs-count-max" => set_scalar(&mut rules.tmpfs_count_max, key, line, text, count(value)),
        "stop-timeout-max" => set_scalar(
            &mut rules.stop_timeout_max,
            key,
            line,
            text,
            shared::stop_timeout(value).map(u64::from),
        ),
        "native-vassals" => set_scalar(
            &mut rules.native_vassals,
            key,
            line,
            text,
            shared::boolean(value),
        ),
        "pull-modes" => push_list(&mut rules.pull_modes, line, text, value, |i| {
            PullPolicy::parse(i).map_err(|w| bad(i, w))
        }),
        "pull-default" => set_scalar(
            &mut rules.pull_default,
            key,
            line,
            text,
            PullPolicy::parse(value),
        ),
        "registry-auth" => set_scalar(
            &mut rules.registry_auth,
            key,
            line,
            text,
            credentials_file(value),
        ),
        _ => Err(unknown_key(key)),
    }
}

/// `registry-auth`: a file path template, or nothing (no credentials for this tenant).
fn credentials_file(value: &str) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().any(char::is_whitespace) {
        return Err("write one absolute file path, e.g. /etc/uwsgi/registry-auth/%u.json, or nothing for no credentials".into());
    }
    check_template(value)?;
    if value.ends_with('/') {
        return Err("name a file, not a directory".into());
    }
    Ok(Some(value.into()))
}

fn unknown_key(key: &str) -> String {
    let lower = key.to_ascii_lowercase();
    let bare = lower.strip_prefix("docker-").unwrap_or(&lower);
    let near = POLICY_KEYS
        .iter()
        .filter(|k| bare.len() >= 3 && k.starts_with(bare))
        .min_by_key(|k| k.len())
        .or_else(|| {
            POLICY_KEYS
                .iter()
                .map(|k| (shared::edit_distance(bare, k), k))
                .filter(|(d, k)| *d <= 3 && *d < k.len() / 2)
                .min_by_key(|(d, _)| *d)
                .map(|(_, k)| k)
        });
    match near {
        Some(k) => format!("unknown key {key:?}; did you mean {k}?"),
        None => format!(
            "unknown key {key:?}; the keys are {}",
            POLICY_KEYS.join(", ")
        ),
    }
}

fn glob(item: &str) -> Result<Glob, String> {
    if item.chars().any(char::is_control) {
        return Err("a pattern may not hold control characters".into());
    }
    Ok(Glob(item.into()))
}

/// A host directory template: a plain absolute path, `%u`/`%h` allowed.
fn directory(item: &str) -> Result<String, String> {
    check_template(item)?;
    if item.contains(':') {
        return Err("a host path may not contain :".into());
    }
    Ok(item.into())
}

fn mount_item(item: &str) -> Result<MountItem, String> {
    let (prefix, rw) = match item.rsplit_once(':') {
        Some((p, "rw")) => (p, true),
        Some((p, "ro")) => (p, false),
        Some(_) => return Err("write /HOST/PREFIX, or /HOST/PREFIX:rw to allow writing".into()),
        None => (item, false),
    };
    let prefix = directory(prefix)?;
    let sample = prefix.replace("%h", "/x").replace("%u", "x");
    let parts = components(&sample).unwrap_or_default();
    if parts.is_empty() {
        return Err("allowing / would allow every host path; name the directories tenants may mount, e.g. /srv/%u".into());
    }
    for tree in KERNEL_TREES {
        let tree_parts = components(tree).unwrap_or_default();
        if is_at_or_under(&parts, &tree_parts) {
            return Err(format!(
                "nothing under {tree} is ever mountable, whatever the policy says"
            ));
        }
    }
    Ok(MountItem { prefix, rw })
}

fn socket_item(item: &str) -> Result<SocketItem, String> {
    if item.starts_with('/') || item.starts_with('%') {
        return directory(item).map(SocketItem::Unix);
    }
    let range = AddrRange::parse(item)?;
    if range.protocol == Some(Protocol::Udp) {
        return Err("docker-socket binds TCP or unix stream sockets; drop /udp".into());
    }
    Ok(SocketItem::Tcp(range))
}

fn owner_item(item: &str) -> Result<OwnerItem, String> {
    let name_ok = |n: &str| !n.is_empty() && !n.contains(':') && !n.chars().any(char::is_control);
    match item.strip_prefix(':') {
        Some(group) if name_ok(group) => Ok(OwnerItem::Group(group.into())),
        None if name_ok(item) => Ok(OwnerItem::User(item.into())),
        _ => Err("write a user (USER, or %u for the tenant) or a group (:GROUP) per item, e.g. socket-owners = %u :www-data".into()),
    }
}

fn user_rule(value: &str) -> Result<UserRule, String> {
    const EXPECTED: &str =
        "expected owner (the vassal file's owner), any-nonroot, root, or a numeric UID:GID";
    match value {
        "owner" => Ok(UserRule::Owner),
        "root" => Ok(UserRule::Root),
        "any-nonroot" => Ok(UserRule::AnyNonRoot),
        _ => {
            let (uid, gid) = value.split_once(':').ok_or(EXPECTED)?;
            let num = |s: &str| {
                s.parse::<u32>()
                    .ok()
                    .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
            };
            match (num(uid), num(gid)) {
                (Some(uid), Some(gid)) => Ok(UserRule::Fixed(uid, gid)),
                _ => Err(EXPECTED.into()),
            }
        }
    }
}

fn memory(value: &str) -> Result<u64, String> {
    match spec::parse_size(value).map_err(|e| e.to_string())? {
        0 => Err("0 is not a limit; write a size such as 512m".into()),
        bytes => Ok(bytes),
    }
}

fn count(value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| "expected a count: 0 or more, e.g. 4".into())
}

fn pids_max(value: &str) -> Result<i64, String> {
    match shared::pids(value)? {
        -1 => Err("-1 (unlimited) is not a maximum; leave pids-max out instead".into()),
        n => Ok(n),
    }
}

/// Within one section, a default above its maximum is a mistake in the file.
fn check_limits(rules: &Rules) -> Result<(), (usize, String)> {
    fn pair<T: PartialOrd>(
        default: &Option<Scalar<T>>,
        max: &Option<Scalar<T>>,
        rank: impl Fn(&T) -> u64,
    ) -> Result<(), (usize, String)> {
        if let (Some(d), Some(m)) = (default, max) {
            if rank(&d.value) > rank(&m.value) {
                return Err((
                    d.line,
                    format!(
                        "{} is above {} (line {}); lower the default or raise the maximum",
                        d.text, m.text, m.line
                    ),
                ));
            }
        }
        Ok(())
    }
    pair(&rules.memory_default, &rules.memory_max, |v| *v)?;
    pair(&rules.swap_default, &rules.swap_max, |v| *v)?;
    pair(&rules.cpus_default, &rules.cpus_max, |v| *v)?;
    pair(&rules.pids_default, &rules.pids_max, |v| pids_rank(*v))?;
    if let Some(modes) = rules.pull_modes.as_ref().filter(|m| m.items.is_empty()) {
        return Err((
            modes.rule().line,
            "pull-modes lists no mode; name at least one of missing, always, never (never: no registry is asked)".into(),
        ));
    }
    if let (Some(default), Some(modes)) = (&rules.pull_default, &rules.pull_modes) {
        if !modes.items.iter().any(|m| m.value == default.value) {
            return Err((
                default.line,
                format!(
                    "{} is not among {} (line {}); add it there or pick one of them",
                    default.text,
                    modes.rule().text,
                    modes.rule().line
                ),
            ));
        }
    }
    Ok(())
}

/// Pids limits ordered as limits: -1 (unlimited) above every number.
pub(super) fn pids_rank(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}
