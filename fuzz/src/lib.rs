//! The invariants the fuzz targets check, shared by `fuzz_targets/*` and by the stable
//! regression replay in `tests/regressions.rs`.
//!
//! Each `check_*` takes the fuzzer's raw bytes and panics when an invariant breaks, so a
//! crash input saved under `regressions/<target>/` fails `cargo test` until it is fixed.
//! Where a check needs knobs (a split point, a mode), it takes them from the first bytes.

use uwsgi_docker_core::attach::{Demuxer, LineSplitter, StreamKind};
use uwsgi_docker_core::docker;
use uwsgi_docker_core::emperor::{self, ConfigDecoder, EmperorMessage, VassalMessage};
use uwsgi_docker_core::handoff::{self, HandedFd, HandoffError};
use uwsgi_docker_core::http_reader::{HttpError, Limits, Progress, Response, ResponseReader};
use uwsgi_docker_core::plan::{self, ContainerPlan, VassalIdentity};
use uwsgi_docker_core::policy::{Policy, Tenant};
use uwsgi_docker_core::spec;

mod lifecycle_ops;
pub use lifecycle_ops::{check_lifecycle_ops, lifecycle_ops_reach, Reached};

/// An invariant check: panics when `data` breaks it.
pub type Check = fn(&[u8]);

/// Every target, by the name of its `[[bin]]` and its `regressions/` folder.
pub const TARGETS: &[(&str, Check)] = &[
    ("vassal_spec", check_vassal_spec),
    ("http_reader", check_http_reader),
    ("attach_demux", check_attach_demux),
    ("emperor_codec", check_emperor_codec),
    ("lifecycle_ops", check_lifecycle_ops),
    ("policy_parse", check_policy_parse),
    ("pull_progress", check_pull_progress),
];

/// Splits `data` into a knob byte, a split point and the rest; short inputs get zeros.
fn knobs(data: &[u8]) -> (u8, usize, &[u8]) {
    match data {
        [flags, hi, lo, rest @ ..] => {
            let at = usize::from(u16::from_be_bytes([*hi, *lo])) % (rest.len() + 1);
            (*flags, at, rest)
        }
        _ => (0, 0, &[]),
    }
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`, what dockerd accepts as a container name.
pub fn is_docker_container_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    name.len() >= 2
        && first.is_ascii_alphanumeric()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Ends in `-` and 16 hex digits, the shape of a sanitised container name.
fn looks_hashed(name: &str) -> bool {
    name.len() > 17
        && name.as_bytes()[name.len() - 17] == b'-'
        && name[name.len() - 16..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

/// A vassal file: parsing never panics, and a Docker vassal always yields a plan with a
/// Docker-valid name and a create body with every host setting inside `HostConfig`.
/// Also: any vassal name (the first line, as text) maps to a valid, stable container name,
/// and a name that is already valid is kept.
pub fn check_vassal_spec(data: &[u8]) {
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let vassal = String::from_utf8_lossy(first_line);
    // The Emperor never has a vassal without a name.
    if !vassal.is_empty() {
        let name = plan::container_name(&vassal);
        assert!(is_docker_container_name(&name), "{vassal:?} -> {name:?}");
        assert_eq!(name, plan::container_name(&vassal), "not deterministic");
        // Valid names pass through, except those too long and those that look like our
        // own hashed output (so a sanitised name can never collide with one).
        if is_docker_container_name(&vassal)
            && vassal.len() <= plan::MAX_CONTAINER_NAME
            && !looks_hashed(&vassal)
        {
            assert_eq!(name, vassal, "a valid name passes through unchanged");
        }
    }

    let Ok(Some(spec)) = spec::parse_vassal("fuzz", data) else {
        return;
    };
    let identity = VassalIdentity::new("fuzz", "/run/uwsgi", "emperor", "host:1:1");
    let image = spec.image.clone();
    let plan = ContainerPlan::new(spec, &identity);
    // Validation never panics, and a valid plan's proxy paths fit a unix socket.
    if plan.validate().is_ok() {
        assert!(plan.proxy_host_path.len() <= plan::MAX_SOCKET_PATH);
        assert!(plan.proxy_container_path.len() <= plan::MAX_SOCKET_PATH);
    }
    assert!(
        is_docker_container_name(&plan.container_name),
        "{:?}",
        plan.container_name
    );
    assert!(
        plan.labels.windows(2).all(|w| w[0].0 <= w[1].0),
        "labels not sorted: {:?}",
        plan.labels
    );
    let body = docker::create_body(&plan);
    let object = body.as_object().expect("create body is a JSON object");
    assert_eq!(object.get("Image").and_then(|v| v.as_str()), Some(&*image));
    for host_setting in [
        "Binds",
        "Mounts",
        "PortBindings",
        "Memory",
        "MemorySwap",
        "Dns",
        "NetworkMode",
    ] {
        assert!(
            !object.contains_key(host_setting),
            "{host_setting} outside HostConfig"
        );
    }
    if let Some(host_config) = object.get("HostConfig") {
        assert!(host_config.is_object(), "HostConfig is {host_config}");
    }
    serde_json::to_vec(&body).expect("create body serialises");
}

/// What a reader made of a whole input, fed in one or two pieces.
#[derive(Debug, PartialEq)]
enum HttpOutcome {
    /// `consumed` counts from the start of the whole input.
    Complete {
        response: Response,
        consumed: usize,
    },
    /// Still partial after all input; then what `finish` (EOF) says.
    Eof(Result<Response, std::mem::Discriminant<HttpError>>),
    Error(std::mem::Discriminant<HttpError>),
}

fn read_http(head_request: bool, limits: Limits, pieces: [&[u8]; 2]) -> HttpOutcome {
    let mut reader = ResponseReader::new(head_request, limits);
    let mut offset = 0;
    for piece in pieces {
        match reader.feed(piece) {
            Ok(Progress::Partial) => offset += piece.len(),
            Ok(Progress::Complete { response, consumed }) => {
                assert!(
                    consumed <= piece.len(),
                    "consumed {consumed} of {}",
                    piece.len()
                );
                return HttpOutcome::Complete {
                    response,
                    consumed: offset + consumed,
                };
            }
            Err(error) => return HttpOutcome::Error(std::mem::discriminant(&error)),
        }
    }
    HttpOutcome::Eof(reader.finish().map_err(|e| std::mem::discriminant(&e)))
}

/// The HTTP reader gives the same response (or the same kind of error) whether the input
/// arrives whole or split, and never claims more bytes than it was given.
/// Knobs: bit 0 = a reply to HEAD, bit 1 = tight limits.
pub fn check_http_reader(data: &[u8]) {
    let (flags, at, input) = knobs(data);
    let head_request = flags & 1 != 0;
    let limits = if flags & 2 != 0 {
        Limits::default()
            .with_max_head(256)
            .with_max_headers(8)
            .with_max_body(512)
    } else {
        Limits::default()
    };
    let whole = read_http(head_request, limits, [input, &[]]);
    let (a, b) = input.split_at(at);
    let split = read_http(head_request, limits, [a, b]);
    match (&whole, &split) {
        // Which cap trips first may depend on where the input was cut; that it fails may not.
        (HttpOutcome::Error(_), HttpOutcome::Error(_)) => {}
        _ => assert_eq!(whole, split, "split at {at}"),
    }
    if let HttpOutcome::Complete { response, .. } = &whole {
        assert!(response.body.len() <= limits.max_body);
    }
}

/// What a pull's progress stream came to: its summary, digest and failure, or an error.
fn read_pull(
    pieces: [&[u8]; 2],
) -> Result<(docker::PullSummary, Option<String>, Option<String>), docker::PullStreamError> {
    let mut progress = docker::PullProgress::new();
    for piece in pieces {
        progress.feed(piece)?;
        let summary = progress.summary();
        assert!(summary.layers_done <= summary.layers);
        assert!(summary.layers <= docker::MAX_PULL_LAYERS);
        assert!(summary.bytes_done <= summary.bytes_total);
    }
    progress.finish()?;
    let digest = progress.digest().map(str::to_owned);
    let failure = progress.failure().map(str::to_owned);
    Ok((progress.summary(), digest, failure))
}

/// The pull progress reader: never a panic, caps hold after every piece, and where the
/// stream is cut does not change what it comes to (or that it fails). Its failure text is
/// sorted by cause without a panic either.
pub fn check_pull_progress(data: &[u8]) {
    let (_, at, input) = knobs(data);
    let whole = read_pull([input, &[]]);
    let (a, b) = input.split_at(at);
    let split = read_pull([a, b]);
    match (&whole, &split) {
        (Err(_), Err(_)) => {}
        _ => assert_eq!(whole, split, "split at {at}"),
    }
    if let Ok((_, _, Some(failure))) = &whole {
        let _ = docker::PullFailure::classify(None, failure);
    }
    let _ = docker::ImageRef::parse(&String::from_utf8_lossy(input)).registry();
}

/// Output pieces with adjacent pieces of one stream merged, then the first error.
type Demuxed = (Vec<(StreamKind, Vec<u8>)>, Option<String>);

fn demux(tty: bool, pieces: [&[u8]; 2]) -> Demuxed {
    let mut demuxer = Demuxer::new(tty);
    let mut out: Vec<(StreamKind, Vec<u8>)> = Vec::new();
    for piece in pieces {
        let result = demuxer.feed(piece, &mut |stream, bytes| {
            assert!(!bytes.is_empty(), "empty payload piece");
            match out.last_mut() {
                Some((last, merged)) if *last == stream => merged.extend_from_slice(bytes),
                _ => out.push((stream, bytes.to_vec())),
            }
        });
        if let Err(error) = result {
            return (out, Some(error.to_string()));
        }
    }
    (out, None)
}

fn split_lines(prefix: Option<String>, max_line: usize, pieces: [&[u8]; 2]) -> Vec<Vec<u8>> {
    let mut splitter = LineSplitter::new(prefix, max_line);
    let mut lines = Vec::new();
    for piece in pieces {
        splitter.push(piece, &mut |line| lines.push(line.to_vec()));
    }
    splitter.flush(&mut |line| lines.push(line.to_vec()));
    lines
}

/// The demuxer's output does not depend on where the input is split; the line splitter
/// loses no byte but line ends, and keeps lines within `max_line`.
/// Knobs: bit 0 = tty, bits 4..8 = a small `max_line`.
pub fn check_attach_demux(data: &[u8]) {
    let (flags, at, input) = knobs(data);
    let (a, b) = input.split_at(at);
    for tty in [false, true] {
        let whole = demux(tty, [input, &[]]);
        assert_eq!(whole, demux(tty, [a, b]), "tty {tty}, split at {at}");
        if tty {
            let raw = if input.is_empty() {
                vec![]
            } else {
                vec![(StreamKind::Stdout, input.to_vec())]
            };
            assert_eq!(whole, (raw, None), "a tty passes bytes through");
        }
    }

    // Accounting: without a prefix and with room for any line, every byte but `\n` and a
    // `\r` right before one is in exactly one line, in order.
    let lines = split_lines(None, usize::MAX, [a, b]);
    let line_ends = input.iter().filter(|&&byte| byte == b'\n').count();
    let crlfs = input.windows(2).filter(|w| w == b"\r\n").count();
    let emitted: usize = lines.iter().map(Vec::len).sum();
    assert_eq!(emitted, input.len() - line_ends - crlfs);
    let mut rebuilt = lines.join(&b'\n');
    if input.ends_with(b"\n") {
        rebuilt.push(b'\n');
    }
    let mut normalised = input.to_vec();
    normalised.retain({
        let mut at = 0;
        move |&byte| {
            at += 1;
            !(byte == b'\r' && input.get(at) == Some(&b'\n'))
        }
    });
    assert_eq!(rebuilt, normalised);

    // Bounded pieces that, prefix removed, concatenate to the content.
    let max_line = usize::from(flags >> 4) + 1;
    let pieces = split_lines(Some("> ".into()), max_line, [a, b]);
    let mut content = Vec::new();
    for piece in &pieces {
        let rest = piece.strip_prefix(b"> ").expect("every piece is prefixed");
        assert!(rest.len() <= max_line, "{} > {max_line}", rest.len());
        content.extend_from_slice(rest);
    }
    normalised.retain(|&byte| byte != b'\n');
    assert_eq!(content, normalised);
}

/// Decodes config packets fed in two pieces: the configs, then the first error.
fn decode_configs(pieces: [&[u8]; 2]) -> (Vec<Vec<u8>>, Option<emperor::ConfigError>) {
    let mut decoder = ConfigDecoder::default();
    let mut configs = Vec::new();
    for piece in pieces {
        if let Err(error) = decoder.feed(piece, &mut |config| configs.push(config)) {
            return (configs, Some(error));
        }
    }
    (configs, None)
}

/// Config packets round-trip and decode the same however split; control bytes and the
/// handoff message round-trip; a handoff message that decodes is the canonical one.
pub fn check_emperor_codec(data: &[u8]) {
    let (_, at, input) = knobs(data);
    let (a, b) = input.split_at(at);

    assert_eq!(decode_configs([input, &[]]), decode_configs([a, b]));

    let mut packet = Vec::new();
    match emperor::encode_config(input, &mut packet) {
        Ok(()) => {
            assert_eq!(packet.len(), input.len() + 4);
            let cut = at.min(packet.len());
            let (p, q) = packet.split_at(cut);
            assert_eq!(decode_configs([p, q]), (vec![input.to_vec()], None));
        }
        Err(error) => {
            assert!(
                input.is_empty() || input.len() > emperor::MAX_CONFIG_LEN,
                "{error}"
            );
            assert!(packet.is_empty());
        }
    }

    // Peeking at a packet's length agrees with the decoder: a whole packet is one config.
    if let Ok(Some(len)) = emperor::config_packet_len(input) {
        if let Some(packet) = input.get(..len) {
            let (configs, error) = decode_configs([packet, &[]]);
            assert_eq!(error, None);
            assert_eq!(configs.len(), 1);
            assert_eq!(configs[0].len(), len - 4);
        }
    }

    for &byte in input {
        assert_eq!(EmperorMessage::from_byte(byte).to_byte(), byte);
        assert_eq!(VassalMessage::from_byte(byte).to_byte(), byte);
    }

    let all = [HandedFd::Control, HandedFd::Config, HandedFd::Socket];
    let count = at % (all.len() + 1);
    let message = handoff::encode(&all[..count]);
    match handoff::decode(&message) {
        Ok(fds) => assert_eq!(fds, count),
        Err(error) => assert_eq!((count, error), (0, HandoffError::BadCount(0))),
    }
    if let Ok(fds) = handoff::decode(input) {
        let canonical = handoff::encode(&[HandedFd::Control; 3][..fds]);
        assert_eq!(input, canonical.as_slice());
    }
}

/// The vassals every parsed policy is enforced on, besides the one the input may carry.
const POLICY_VASSALS: &[&str] = &[
    "[emperor]\ndocker-image = psgi001\n",
    "[emperor]\ndocker-image = alice/app:1\ndocker-mount = /srv/alice/data:/data\ndocker-port = 127.0.0.1:8080:3031\ndocker-socket = /run/uwsgi-docker/tenants/alice/app.sock\ndocker-socket-owner = alice:www-data\ndocker-memory = 512m\ndocker-cpus = 1.5\ndocker-pids-limit = 100\ndocker-cap-add = NET_BIND_SERVICE\n",
    "[emperor]\ndocker-image = psgi001\ndocker-mount = /:/host\ndocker-mount = /var/run/docker.sock:/var/run/docker.sock\ndocker-network-mode = host\ndocker-user = 0:0\ndocker-cidfile = /etc/passwd\n",
    "[emperor]\ndocker-image = psgi001\ndocker-mount = /home/alice/x:/x:rw\ndocker-user = 1000\ndocker-proxy = /run/alice/p.sock\ndocker-swap = 1g\ndocker-memory = 1g\ndocker-pids-limit = -1\n",
    "[emperor]\ndocker-image = psgi001\ndocker-pull = always\n",
];

/// `path` is `/`, under `/proc`, `/sys` or `/dev`, a daemon socket or above one, or not
/// plain; written apart from the policy module, to check it.
fn never_mountable(path: &str, daemon_socket: &str) -> bool {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let parts: Vec<&str> = trimmed.split('/').skip(1).collect();
    if !path.starts_with('/')
        || trimmed.is_empty()
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return true;
    }
    let under = |p: &str, dir: &str| p == dir || p.starts_with(&format!("{dir}/"));
    ["/proc", "/sys", "/dev"].iter().any(|t| under(trimmed, t))
        || [
            daemon_socket,
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/run/podman/podman.sock",
        ]
        .iter()
        .any(|s| under(s, trimmed))
}

/// A policy file: parsing never panics, and an error names a line of the file (1-based).
/// A policy that parses is enforced on fixed vassals (and on the vassal file after the
/// first NUL byte of the input, if any) for a few tenants: it never panics; an allowed spec
/// passes again unchanged and mounts nothing forbidden; a refusal's line is 0 (built in) or
/// a line of the file that holds the rule's key.
pub fn check_policy_parse(data: &[u8]) {
    let (text, vassal) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let body = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let policy = match Policy::parse("fuzz.ini", text) {
        Ok(policy) => policy,
        Err(error) => {
            assert!(
                error.line >= 1 && error.line <= lines.len(),
                "line {} of {}: {error}",
                error.line,
                lines.len()
            );
            assert!(!error.message.is_empty());
            assert!(error
                .to_string()
                .starts_with(&format!("policy fuzz.ini line {}: ", error.line)));
            assert_eq!(Policy::parse("fuzz.ini", text).err(), Some(error));
            return;
        }
    };
    for name in ["app.ini", "shop-1.ini", "", "a/b"] {
        let _ = policy.tenant_for_vassal(name);
    }
    let mut specs: Vec<spec::VassalSpec> = POLICY_VASSALS
        .iter()
        .filter_map(|v| spec::parse_vassal("fuzz", v.as_bytes()).ok().flatten())
        .collect();
    assert_eq!(
        specs.len(),
        POLICY_VASSALS.len(),
        "a fixed vassal does not parse"
    );
    if let Some(Ok(Some(extra))) = vassal.map(|v| spec::parse_vassal("fuzz", v)) {
        specs.push(extra);
    }
    let tenants = [
        Tenant::new(1000, 1000)
            .with_name("alice")
            .with_home("/home/alice"),
        Tenant::new(1500, 1500),
        Tenant::new(0, 0).with_name("root").with_home("/root"),
        Tenant::new(5, 5).with_name("daemon").with_home("/"),
    ];
    for tenant in &tenants {
        // Root's own vassal file may always run on the host.
        let native = policy.judge_native("fuzz", Some("/v/fuzz.ini"), tenant);
        assert!(tenant.uid != 0 || native.is_ok(), "{native:?}");
    }
    let policy = policy.with_daemon_groups([1000]);
    for spec in &specs {
        for tenant in &tenants {
            for daemon_socket in ["/var/run/docker.sock", "/srv/alice/docker.sock"] {
                let mut once = spec.clone();
                match policy.enforce("fuzz", tenant, daemon_socket, &mut once) {
                    Ok(_) => {
                        let mut twice = once.clone();
                        let again = policy.enforce("fuzz", tenant, daemon_socket, &mut twice);
                        assert!(again.is_ok(), "not idempotent: {again:?}");
                        assert_eq!(twice, once, "a second enforce changed the spec");
                        for mount in &once.mounts {
                            assert!(
                                !never_mountable(&mount.host, daemon_socket),
                                "{mount:?} passed"
                            );
                        }
                        assert_eq!(once.cap_drop, ["ALL"]);
                    }
                    Err(violation) => {
                        assert_eq!(&once, spec, "a refused spec was changed");
                        if violation.line > 0 {
                            let line = lines
                                .get(violation.line - 1)
                                .map(|l| String::from_utf8_lossy(l.trim_ascii()).into_owned())
                                .unwrap_or_default();
                            let key = violation.rule.split('=').next().unwrap_or_default();
                            let key = key.trim();
                            assert!(
                                !key.is_empty()
                                    && line.starts_with(key)
                                    && violation.rule.starts_with(&line),
                                "line {} {line:?} does not hold {:?}",
                                violation.line,
                                violation.rule
                            );
                        }
                    }
                }
            }
        }
    }
}
