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
use uwsgi_docker_core::spec;

mod lifecycle_ops;
pub use lifecycle_ops::check_lifecycle_ops;

/// An invariant check: panics when `data` breaks it.
pub type Check = fn(&[u8]);

/// Every target, by the name of its `[[bin]]` and its `regressions/` folder.
pub const TARGETS: &[(&str, Check)] = &[
    ("vassal_spec", check_vassal_spec),
    ("http_reader", check_http_reader),
    ("attach_demux", check_attach_demux),
    ("emperor_codec", check_emperor_codec),
    ("lifecycle_ops", check_lifecycle_ops),
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
    let identity = VassalIdentity {
        name: "fuzz".into(),
        proxy_dir: "/run/uwsgi".into(),
        emperor_id: "emperor".into(),
        bridge_id: "host:1:1".into(),
        name_prefix: None,
    };
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
        Limits {
            max_head: 256,
            max_headers: 8,
            max_body: 512,
        }
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
