//! Parsers for single attribute values. Each returns `Err(expected)`: what would have been
//! accepted, phrased for the user (it ends up in `SpecError::BadValue::expected`).
use super::{
    is_ip, HandoffMode, HealthTest, ListenAddress, Mount, PortMapping, Protocol, ProxyPaths,
    RESERVED_LABEL_PREFIX,
};
use crate::plan::LAUNCHER_CONTAINER_PATH;

/// The longest unix socket path: `sun_path` is 108 bytes including the NUL.
const MAX_UNIX_PATH: usize = crate::plan::MAX_SOCKET_PATH;

pub(super) const SIZE_EXPECTED: &str =
    "expected a size in bytes, optionally with a k, m or g suffix (binary, 1k = 1024), e.g. 512m";

const PORT_EXPECTED: &str = "expected HOSTPORT:CTRPORT, HOSTIP:HOSTPORT:CTRPORT or [IPV6]:HOSTPORT:CTRPORT, optionally /tcp or /udp; HOSTPORT may be empty for any port, ports are 1-65535";

const IMAGE_EXPECTED: &str = "expected an image reference [REGISTRY[:PORT]/]NAME[:TAG][@DIGEST], NAME made of lowercase letters, digits and single separators (. _ __ -) between them, e.g. psgi001, registry.example:5000/team/app:1.2 or app@sha256:HEX";

pub(super) fn image(v: &str) -> Result<String, String> {
    match image_reference(v) {
        Ok(()) => Ok(v.into()),
        Err(why) => Err(format!("{IMAGE_EXPECTED}; {why}")),
    }
}

/// The longest repository name (registry included) the reference grammar allows.
const MAX_IMAGE_NAME: usize = 255;

/// Docker's reference grammar (`distribution/reference`), by hand:
/// `[domain[:port]/]path[:tag][@digest]`, or an image id (`sha256:` and 64 hex digits),
/// which the daemon also accepts at create. `Err` says what is wrong.
fn image_reference(v: &str) -> Result<(), &'static str> {
    if v.is_empty() {
        return Err("it is empty");
    }
    if let Some(hex) = v.strip_prefix("sha256:") {
        if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Ok(());
        }
    }
    let (name_tag, digest) = match v.split_once('@') {
        Some((name_tag, digest)) => (name_tag, Some(digest)),
        None => (v, None),
    };
    if let Some(digest) = digest {
        image_digest(digest)?;
    }
    // A `:` after the last `/` starts the tag; one before it belongs to a registry port.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].find(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        image_tag(tag)?;
    }
    if name.len() > MAX_IMAGE_NAME {
        return Err("the repository name is longer than 255 characters");
    }
    // As docker splits it: the first component is a registry when it has a `.` or a `:`,
    // is `localhost`, or has capitals (which a path component may not have).
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    };
    if let Some(domain) = domain {
        image_domain(domain)?;
    }
    if path.is_empty() {
        return Err("the repository name is empty");
    }
    for component in path.split('/') {
        if component.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("the repository name must be lowercase");
        }
        if !is_path_component(component) {
            return Err("a repository name component is empty, or has a character other than a-z, 0-9, . _ -, or does not start and end with a letter or digit");
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    let mut i = 0;
    loop {
        // One or more letters or digits.
        let run = bytes[i..].iter().take_while(|&&b| alnum(b)).count();
        if run == 0 {
            return false;
        }
        i += run;
        // Then the end, or a separator followed by more.
        let separator = match bytes.get(i..) {
            None | Some([]) => return true,
            Some([b'_', b'_', ..]) => 2,
            Some([b'.' | b'_', ..]) => 1,
            Some(rest) => rest.iter().take_while(|&&b| b == b'-').count(),
        };
        if separator == 0 {
            return false;
        }
        i += separator;
    }
}

/// `host[:port]`: host a domain name (`[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?` labels
/// joined by dots) or a bracketed IPv6 address; port digits.
fn image_domain(domain: &str) -> Result<(), &'static str> {
    const BAD: &str = "the registry must be HOST or HOST:PORT, HOST a DNS name or [IPV6]";
    let (host, port) = if let Some(bracketed) = domain.strip_prefix('[') {
        let (ip, rest) = bracketed.split_once(']').ok_or(BAD)?;
        ip.parse::<core::net::Ipv6Addr>().map_err(|_| BAD)?;
        match rest {
            "" => (None, None),
            _ => (None, Some(rest.strip_prefix(':').ok_or(BAD)?)),
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the registry port must be digits");
        }
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        matches!((b.first(), b.last()), (Some(f), Some(e)) if f.is_ascii_alphanumeric() && e.is_ascii_alphanumeric())
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    if let Some(host) = host {
        if !host.split('.').all(label_ok) {
            return Err(BAD);
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`
fn image_tag(tag: &str) -> Result<(), &'static str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    let ok = bytes.len() <= 128
        && bytes.first().is_some_and(|&b| word(b))
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("the tag must be 1-128 letters, digits, _ . or -, not starting with . or -")
    }
}

/// `algorithm:hex`: algorithm components `[A-Za-z][A-Za-z0-9]*` joined by `+ . _ -`, and at
/// least 32 hex digits.
fn image_digest(digest: &str) -> Result<(), &'static str> {
    const BAD: &str = "the digest must be ALGORITHM:HEX, e.g. sha256: and 64 hex digits";
    let (algorithm, hex) = digest.split_once(':').ok_or(BAD)?;
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        b.first().is_some_and(u8::is_ascii_alphabetic) && b.iter().all(u8::is_ascii_alphanumeric)
    };
    if !algorithm.split(['+', '.', '_', '-']).all(component_ok)
        || hex.len() < 32
        || !hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(BAD);
    }
    Ok(())
}

pub(super) fn absolute_path(v: &str) -> Result<String, String> {
    if !v.starts_with('/') || v.contains('\0') {
        return Err("expected an absolute path, starting with /".into());
    }
    Ok(v.into())
}

fn socket_path(v: &str, what: &str) -> Result<String, String> {
    if !v.starts_with('/') || v.contains('\0') || v.len() > MAX_UNIX_PATH {
        return Err(format!(
            "expected {what} as an absolute path of at most {MAX_UNIX_PATH} bytes"
        ));
    }
    Ok(v.into())
}

fn port(v: &str) -> Option<u16> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u16>().ok().filter(|&p| p != 0)
}

/// `/path`, `ip:port`, `:port` or `[v6]:port`.
pub(super) fn listen_address(v: &str) -> Result<ListenAddress, String> {
    const EXPECTED: &str = "expected an absolute unix socket path (at most 107 bytes), IP:PORT, :PORT or [IPV6]:PORT, with PORT 1-65535";
    if v.starts_with('/') {
        return socket_path(v, "a unix socket").map(ListenAddress::Unix);
    }
    let (ip, port_text) = split_host_port(v).ok_or(EXPECTED)?;
    let port = port(port_text).ok_or(EXPECTED)?;
    if !ip.is_empty() && !is_ip(ip) {
        return Err(EXPECTED.into());
    }
    Ok(ListenAddress::Tcp {
        ip: ip.into(),
        port,
    })
}

/// `HOST:REST` with HOST optionally `[v6]`; the host comes back without brackets.
fn split_host_port(v: &str) -> Option<(&str, &str)> {
    if let Some(bracketed) = v.strip_prefix('[') {
        let (ip, rest) = bracketed.split_once("]:")?;
        // Only IPv6 goes in brackets.
        ip.parse::<core::net::Ipv6Addr>().ok()?;
        return Some((ip, rest));
    }
    v.split_once(':')
}

pub(super) fn port_mapping(v: &str) -> Result<PortMapping, String> {
    let (spec, protocol) = match v.rsplit_once('/') {
        Some((spec, proto)) if proto.eq_ignore_ascii_case("tcp") => (spec, Protocol::Tcp),
        Some((spec, proto)) if proto.eq_ignore_ascii_case("udp") => (spec, Protocol::Udp),
        Some(_) => return Err(PORT_EXPECTED.into()),
        None => (v, Protocol::Tcp),
    };
    let (host_ip, host_port, container_port) = if spec.starts_with('[') {
        let (ip, rest) = split_host_port(spec).ok_or(PORT_EXPECTED)?;
        let (hp, cp) = rest.split_once(':').ok_or(PORT_EXPECTED)?;
        (Some(ip), hp, cp)
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.as_slice() {
            [hp, cp] => (None, *hp, *cp),
            [ip, hp, cp] => (Some(*ip).filter(|ip| !ip.is_empty()), *hp, *cp),
            _ => return Err(PORT_EXPECTED.into()),
        }
    };
    if let Some(ip) = host_ip {
        if !is_ip(ip) {
            return Err(PORT_EXPECTED.into());
        }
    }
    let host_port = match host_port {
        "" => None,
        hp => Some(port(hp).ok_or(PORT_EXPECTED)?),
    };
    Ok(PortMapping {
        host_ip: host_ip.map(String::from),
        host_port,
        container_port: port(container_port).ok_or(PORT_EXPECTED)?,
        protocol,
    })
}

pub(super) fn mount(v: &str) -> Result<Mount, String> {
    const EXPECTED: &str =
        "expected /HOST:/CONTAINER or /HOST:/CONTAINER:ro (or :rw), both absolute paths without :";
    let parts: Vec<&str> = v.split(':').collect();
    let (host, container, read_only, explicit_mode) = match parts.as_slice() {
        [h, c] => (*h, *c, false, false),
        [h, c, "ro"] => (*h, *c, true, true),
        [h, c, "rw"] => (*h, *c, false, true),
        _ => return Err(EXPECTED.into()),
    };
    if !host.starts_with('/') || !container.starts_with('/') || v.contains('\0') {
        return Err(EXPECTED.into());
    }
    mount_destination(container)?;
    Ok(Mount {
        host: host.into(),
        container: container.into(),
        read_only,
        explicit_mode,
    })
}

/// A container path something is mounted at (`docker-mount`, `docker-tmpfs`): not `/`,
/// which would hide the image, nor the launcher's path.
fn mount_destination(path: &str) -> Result<(), String> {
    match clean_path(path).as_str() {
        "/" => Err("expected a container path other than /: a mount there would hide the whole image (Docker refuses it)".into()),
        LAUNCHER_CONTAINER_PATH => Err(format!(
            "expected a container path other than {LAUNCHER_CONTAINER_PATH}, where uwsgi-docker mounts its launcher"
        )),
        _ => Ok(()),
    }
}

/// `path` as Docker compares mount points: lexically cleaned, as Go's `filepath.Clean`
/// does for an absolute path (no empty or `.` components, `..` removes the one before it,
/// no trailing `/`).
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let mut out = String::with_capacity(path.len());
    for part in &parts {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Docker's network and container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn is_docker_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub(super) fn network_mode(v: &str) -> Result<String, String> {
    let ok = match v.strip_prefix("container:") {
        Some(id) => is_docker_name(id),
        None => is_docker_name(v),
    };
    if !ok {
        return Err("expected bridge, host, none, container:NAME_OR_ID or a network name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)".into());
    }
    Ok(v.into())
}

pub(super) fn hostname(v: &str) -> Result<String, String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if v.is_empty() || v.len() > 253 || !v.split('.').all(label_ok) {
        return Err("expected a host name: dot-separated labels of letters, digits and -, each at most 63 characters, 253 in all".into());
    }
    Ok(v.into())
}

pub(super) fn proxy(v: &str) -> Result<ProxyPaths, String> {
    const EXPECTED: &str = "expected /HOST/PATH or /HOST/PATH:/CONTAINER/PATH, absolute unix socket paths of at most 107 bytes";
    let (host, container) = match v.split_once(':') {
        Some((h, c)) => (h, Some(c)),
        None => (v, None),
    };
    let host = socket_path(host, "the host path").map_err(|_| EXPECTED)?;
    let container = match container {
        Some(c) if c.contains(':') => return Err(EXPECTED.into()),
        Some(c) => Some(socket_path(c, "the container path").map_err(|_| EXPECTED)?),
        None => None,
    };
    Ok(ProxyPaths { host, container })
}

fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(super) fn env(v: &str) -> Result<(String, String), String> {
    let Some((key, value)) = v.split_once('=') else {
        return Err("expected NAME=VALUE".into());
    };
    if !is_env_name(key) {
        return Err("expected NAME=VALUE with NAME made of letters, digits and _, not starting with a digit".into());
    }
    if key.starts_with("UWSGI_EMPEROR_") {
        return Err(format!(
            "expected a variable not named UWSGI_EMPEROR_*: {key} is set by uwsgi-docker for the handoff"
        ));
    }
    if value.contains('\0') {
        return Err("expected NAME=VALUE without NUL bytes".into());
    }
    Ok((key.into(), value.into()))
}

pub(super) fn user(v: &str) -> Result<String, String> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| (b.is_ascii_graphic() && b != b':') || b >= 0x80)
    };
    let ok = match v.split_once(':') {
        Some((u, g)) => ok_part(u) && ok_part(g),
        None => ok_part(v),
    };
    if !ok {
        return Err("expected USER, UID, USER:GROUP or UID:GID, without spaces".into());
    }
    Ok(v.into())
}

/// Why a value is not a size ([`parse_size`]); its text says what a size looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// Not digits followed by an optional `k`, `m` or `g` (and `b`).
    #[error("{SIZE_EXPECTED}")]
    Malformed,
    /// More bytes than a `u64` holds.
    #[error("{SIZE_EXPECTED}; this is more than 2^64 bytes")]
    TooLarge,
}

/// Bytes from `N`, `Nk`, `Nm`, `Ng`, each optionally followed by `b`; case-insensitive,
/// binary multiples.
///
/// # Errors
///
/// [`SizeError`] for a value that is not a size or does not fit a `u64`.
pub fn parse_size(v: &str) -> Result<u64, SizeError> {
    let lower = v.to_ascii_lowercase();
    let without_b = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, multiplier) = match without_b.as_bytes().last() {
        Some(b'k') => (&without_b[..without_b.len() - 1], 1u64 << 10),
        Some(b'm') => (&without_b[..without_b.len() - 1], 1 << 20),
        Some(b'g') => (&without_b[..without_b.len() - 1], 1 << 30),
        _ => (without_b, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SizeError::Malformed);
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or(SizeError::TooLarge)
}

/// dockerd's smallest memory limit ("Minimum memory limit allowed is 6MB").
pub const MIN_MEMORY: u64 = 6 << 20;

/// `docker-memory`: a size from [`MIN_MEMORY`] up to what Docker's `Memory` (an `i64`)
/// holds.
pub(super) fn memory(v: &str) -> Result<u64, String> {
    let bytes = parse_size(v).map_err(|e| e.to_string())?;
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{SIZE_EXPECTED}; at least 6m (the daemon refuses a memory limit under 6 MiB)"
        ));
    }
    if i64::try_from(bytes).is_err() {
        return Err(format!("{SIZE_EXPECTED}; {SIZE_TOO_LARGE}"));
    }
    Ok(bytes)
}

/// `docker-swap`: a size that fits an `i64` (the sum with the memory is checked later).
pub(super) fn swap(v: &str) -> Result<u64, String> {
    let bytes = parse_size(v).map_err(|e| e.to_string())?;
    if i64::try_from(bytes).is_err() {
        return Err(format!("{SIZE_EXPECTED}; {SIZE_TOO_LARGE}"));
    }
    Ok(bytes)
}

pub(super) const SIZE_TOO_LARGE: &str =
    "at most 9223372036854775807 bytes, just under 8192 PiB (Docker keeps sizes as signed 64-bit numbers)";

/// The shortest exact form of `bytes` that [`parse_size`] reads back.
pub fn format_size(bytes: u64) -> String {
    for (suffix, unit) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes != 0 && bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

pub(super) fn ip(v: &str) -> Result<String, String> {
    if !is_ip(v) {
        return Err("expected an IPv4 or IPv6 address, e.g. 8.8.8.8".into());
    }
    Ok(v.into())
}

pub(super) fn label(v: &str) -> Result<(String, String), String> {
    let Some((key, value)) = v.split_once('=') else {
        return Err("expected KEY=VALUE".into());
    };
    let key = key.trim();
    if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("expected KEY=VALUE with a non-empty KEY without spaces".into());
    }
    if key.starts_with(RESERVED_LABEL_PREFIX) {
        return Err(format!(
            "expected a label key outside {RESERVED_LABEL_PREFIX}*, which uwsgi-docker sets itself"
        ));
    }
    Ok((key.into(), value.trim().into()))
}

/// The smallest CPU limit that works: dockerd turns NanoCpus into a CFS quota over a
/// 100 ms period, and the kernel refuses a quota under 1 ms (the container then fails to
/// start with "cpu.cfs_quota_us: invalid argument").
pub const MIN_NANO_CPUS: u64 = 10_000_000;

const CPUS_TOO_MANY: &str =
    "at most 9223372036.854775807 (Docker's NanoCpus is a signed 64-bit count of billionths)";

/// A decimal number of CPUs, at least 0.01 and at most what fits Docker's `NanoCpus`
/// (an `i64`), in billionths.
pub(super) fn nano_cpus(v: &str) -> Result<u64, String> {
    const EXPECTED: &str =
        "expected a number of CPUs from 0.01 (the daemon's smallest limit) up, e.g. 1, 0.5 or 2.25 (at most 9 decimals)";
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 9 {
        return Err(EXPECTED.into());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| format!("{EXPECTED}; {CPUS_TOO_MANY}"))?
    };
    let frac_nanos: u64 = if frac.is_empty() {
        0
    } else {
        let scale = 10u64.pow(9 - frac.len() as u32);
        frac.parse::<u64>().map_err(|_| EXPECTED)? * scale
    };
    let nanos = whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_nanos))
        .ok_or_else(|| format!("{EXPECTED}; {CPUS_TOO_MANY}"))?;
    if nanos < MIN_NANO_CPUS {
        return Err(format!("{EXPECTED}; below 0.01 the container cannot start (the kernel refuses a CPU quota under 1 ms per 100 ms)"));
    }
    if i64::try_from(nanos).is_err() {
        return Err(format!("{EXPECTED}; {CPUS_TOO_MANY}"));
    }
    Ok(nanos)
}

pub(super) fn pids_limit(v: &str) -> Result<i64, String> {
    match v.parse::<i64>() {
        Ok(n) if n == -1 || n > 0 => Ok(n),
        _ => Err("expected -1 (unlimited) or a number of processes greater than 0".into()),
    }
}

pub(super) fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("expected true/false, yes/no, on/off or 1/0".into()),
    }
}

pub(super) fn capability(v: &str) -> Result<String, String> {
    let upper = v.to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
        return Err("expected ALL or a capability name such as NET_RAW or CAP_SYS_ADMIN".into());
    }
    Ok(name.into())
}

pub(super) fn tmpfs(v: &str) -> Result<(String, String), String> {
    const EXPECTED: &str =
        "expected /PATH or /PATH:OPTIONS, e.g. /tmp:rw,size=64m (no spaces, path without :)";
    let (path, options) = v.split_once(':').unwrap_or((v, ""));
    if !path.starts_with('/') || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EXPECTED.into());
    }
    mount_destination(path)?;
    Ok((path.into(), options.into()))
}

/// Linux signal names in number order, 1..=31 (x86, arm and most others).
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// `INT`, `SIGINT`, `sigint` or `2`, all as `SIGINT`.
pub(super) fn signal(v: &str) -> Result<String, String> {
    const EXPECTED: &str =
        "expected a signal name such as SIGINT, SIGQUIT or INT, or its number 1-31";
    let name = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let n: usize = v.parse().map_err(|_| EXPECTED)?;
        n.checked_sub(1)
            .and_then(|i| SIGNALS.get(i))
            .copied()
            .ok_or(EXPECTED)?
    } else {
        let upper = v.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper).to_owned();
        SIGNALS
            .iter()
            .find(|s| **s == bare)
            .copied()
            .ok_or(EXPECTED)?
    };
    Ok(format!("SIG{name}"))
}

pub(super) fn stop_timeout(v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .map_err(|_| "expected a whole number of seconds, e.g. 30".into())
}

pub(super) fn uwsgi(v: &str) -> Result<String, String> {
    if v.is_empty() || v.chars().any(|c| c.is_control()) {
        return Err("expected the uWSGI binary's name or absolute path inside the image, e.g. /usr/bin/uwsgi".into());
    }
    Ok(v.into())
}

pub(super) fn handoff(v: &str) -> Result<HandoffMode, String> {
    match v {
        "auto" => Ok(HandoffMode::Auto),
        "native" => Ok(HandoffMode::Native),
        "launcher" => Ok(HandoffMode::Launcher),
        _ => Err("expected native (uWSGI's own UWSGI_EMPEROR_PROXY), launcher (the static launcher, any uWSGI) or auto (the default: the launcher)".into()),
    }
}

/// Levenshtein distance, for typo suggestions on short keys.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        core::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// `docker-healthcheck`: `none`, a JSON array of strings (run as it is), or a shell command.
pub(super) fn health_test(v: &str) -> Result<HealthTest, String> {
    const EXPECTED: &str = "expected a shell command (run with the image's /bin/sh), a JSON array such as [\"/usr/bin/uwsgi\", \"--version\"] (run without a shell), or none";
    if v.eq_ignore_ascii_case("none") {
        return Ok(HealthTest::Disabled);
    }
    if v.is_empty() || v.chars().any(char::is_control) {
        return Err(EXPECTED.into());
    }
    if v.starts_with('[') {
        return match serde_json::from_str::<Vec<String>>(v) {
            Ok(argv) if argv.first().is_some_and(|a| !a.is_empty()) => Ok(HealthTest::Exec(argv)),
            _ => Err(format!(
                "{EXPECTED}; a JSON array must hold strings, the program first"
            )),
        };
    }
    Ok(HealthTest::Shell(v.into()))
}

/// `docker-health-interval` and friends: a number with `ms`, `s`, `m` or `h` (a bare
/// number is seconds), at least 1 ms (the daemon's smallest), in nanoseconds.
pub(super) fn health_duration(v: &str) -> Result<u64, String> {
    const EXPECTED: &str =
        "expected a duration such as 30s, 500ms, 2m or 1h (a bare number is seconds), at least 1ms";
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = v.split_at(digits);
    let scale: u64 = match unit {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return Err(EXPECTED.into()),
    };
    let n: u64 = number.parse().map_err(|_| EXPECTED.to_owned())?;
    let ns = n
        .checked_mul(scale)
        .filter(|ns| i64::try_from(*ns).is_ok())
        .ok_or_else(|| format!("{EXPECTED}; that is too long"))?;
    if ns < 1_000_000 {
        return Err(EXPECTED.into());
    }
    Ok(ns)
}

/// `docker-health-retries`: a count from 1.
pub(super) fn health_retries(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if n >= 1 && i32::try_from(n).is_ok() => Ok(n),
        _ => Err("expected a whole number of failed checks in a row, 1 or more, e.g. 3".into()),
    }
}
