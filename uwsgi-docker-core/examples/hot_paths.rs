//! The core's hot paths, one per run, for instruction counts under callgrind
//! (`scripts/bench.sh callgrind`). Every run builds the same inputs; `none` stops there,
//! so a path's cost is its count minus the count of `none`, divided by the repetitions.
//!
//!   hot_paths none|attach|http|spec REPEAT
//!
//! * `attach`: 1 MB of 100-byte log lines in multiplexed frames, fed in 64 KiB reads (as
//!   the bridge reads) through the demuxer, a line splitter per stream and `push_relay_line`
//!   into a reused batch, as the bridge relays them;
//! * `http`: one `POST /containers/create` reply (201, Content-Length) through a new
//!   `ResponseReader`;
//! * `spec`: the seed README's quickstart vassal through `spec::parse_vassal`.
use std::hint::black_box;

use uwsgi_docker_core::attach::{push_relay_line, Demuxer, LineSplitter, StreamKind};
use uwsgi_docker_core::http_reader::{Limits, Progress, ResponseReader};
use uwsgi_docker_core::spec;

const QUICKSTART: &str = include_str!("../tests/seed/quickstart.ini");
const CREATE_REPLY: &[u8] = b"HTTP/1.1 201 Created\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nContent-Length: 88\r\n\r\n{\"Id\":\"4c8e1a0f2b9d7c6e5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f\",\"Warnings\":[]}\n";
const MB: usize = 1_000_000;
const READ_CHUNK: usize = 64 * 1024;

/// 1 MB of lines, framed as dockerd frames a non-tty container's output (one frame per
/// 4 KiB write, stdout and stderr alternating).
fn framed_log() -> Vec<u8> {
    let mut payload = Vec::with_capacity(MB);
    let mut n = 0u32;
    while payload.len() < MB {
        n += 1;
        let line = format!("flood x {n:09} ");
        payload.extend_from_slice(line.as_bytes());
        payload.resize(payload.len() + 99 - line.len(), b'x');
        payload.push(b'\n');
    }
    payload.truncate(MB);
    let mut framed = Vec::with_capacity(MB + MB / 512);
    for (i, frame) in payload.chunks(4096).enumerate() {
        framed.push(if i % 2 == 0 { 1 } else { 2 });
        framed.extend_from_slice(&[0, 0, 0]);
        framed.extend_from_slice(&u32::try_from(frame.len()).unwrap_or(0).to_be_bytes());
        framed.extend_from_slice(frame);
    }
    framed
}

fn attach(stream: &[u8]) -> usize {
    let mut demuxer = Demuxer::new(false);
    let mut stdout = LineSplitter::new(None, 16 * 1024);
    let mut stderr = LineSplitter::new(None, 16 * 1024);
    let mut relayed = 0;
    let mut batch = Vec::with_capacity(2 * READ_CHUNK);
    for read in stream.chunks(READ_CHUNK) {
        let result = demuxer.feed(read, &mut |kind, bytes| {
            let splitter = if kind == StreamKind::Stderr {
                &mut stderr
            } else {
                &mut stdout
            };
            splitter.push(bytes, &mut |line| {
                batch.extend_from_slice(b"[app.ini] ");
                push_relay_line(line, &mut batch);
                batch.push(b'\n');
            });
        });
        if let Err(e) = result {
            eprintln!("hot_paths: the framed log does not demux: {e}");
            std::process::exit(1);
        }
        // The bridge writes its batch once per read.
        relayed += black_box(&batch).len();
        batch.clear();
    }
    relayed
}

fn http() -> usize {
    let mut reader = ResponseReader::new(false, Limits::default());
    match reader.feed(black_box(CREATE_REPLY)) {
        Ok(Progress::Complete { response, .. }) => response.body.len(),
        other => {
            eprintln!("hot_paths: the create reply did not parse: {other:?}");
            std::process::exit(1);
        }
    }
}

fn spec_parse() -> usize {
    match spec::parse_vassal("foobar.ini", black_box(QUICKSTART.as_bytes())) {
        Ok(Some(spec)) => spec.ports.len(),
        other => {
            eprintln!("hot_paths: the quickstart vassal did not parse: {other:?}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map(String::as_str).unwrap_or("none");
    let repeat: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(1);
    let log = framed_log();
    let mut total = 0;
    for _ in 0..repeat {
        total += match path {
            "none" => 0,
            "attach" => attach(&log),
            "http" => http(),
            "spec" => spec_parse(),
            other => {
                eprintln!("hot_paths: unknown path {other} (none, attach, http, spec)");
                std::process::exit(2);
            }
        };
    }
    println!("{path} x{repeat}: {}", black_box(total));
}
