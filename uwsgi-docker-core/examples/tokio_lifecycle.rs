//! An embedder's example: one vassal's container driven from tokio with nothing but the
//! core's sans-IO pieces (spec parse, plan, request builders, HTTP reader, reply parsers,
//! attach demuxer), against a real daemon.
//!
//! It creates, attaches to, waits on, starts, inspects, stops and removes the container,
//! in the order the `uwsgi-docker` bridge uses (create → attach → wait → start, so no
//! output and no exit is missed), printing each step, and removes the container on every
//! path. It hands the container no Emperor channels: the container's uWSGI waits on its
//! proxy socket until it is stopped.
//!
//! Run: `cargo run -p uwsgi-docker-core --example tokio_lifecycle` (needs the image
//! `uwsgi-docker-test:latest`, which `scripts/build-test-image.sh` builds). The daemon is
//! `UWSGIDOCKER_DAEMON_SOCKET`, else `/var/run/docker.sock`. Exits non-zero on failure.
use std::error::Error;
use std::path::Path;
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use uwsgi_docker_core::attach::{Demuxer, LineSplitter};
use uwsgi_docker_core::docker::{self, to_bytes, Api, DaemonError};
use uwsgi_docker_core::http_reader::{Limits, Progress, Response, ResponseReader};
use uwsgi_docker_core::plan::{ContainerPlan, VassalIdentity};
use uwsgi_docker_core::spec;

type Failure = Box<dyn Error>;

/// The vassal: native handoff (no launcher needed), a short stop timeout so that `stop`
/// does not wait long for a uWSGI that never got its config.
const VASSAL: &str = "\
[emperor]
docker-image = uwsgi-docker-test:latest
docker-handoff = native
docker-stop-timeout = 2
docker-tty = false

[uwsgi]
master = true
";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let daemon = std::env::var("UWSGIDOCKER_DAEMON_SOCKET")
        .ok()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| "/var/run/docker.sock".into());
    let pid = std::process::id();
    let proxy_dir = std::env::temp_dir().join(format!("uwsgi-docker-tokio-example-{pid}"));
    let mut created = None;
    let result = run(&daemon, &proxy_dir, pid, &mut created).await;
    let mut failed = result.is_err();
    if let Err(e) = &result {
        eprintln!("tokio_lifecycle: FAILED: {e}");
    }
    // Every path ends here: a container we created goes, whatever happened after create.
    if let Some((api, id)) = created {
        if let Err(e) = remove(&daemon, &api, &id).await {
            eprintln!("tokio_lifecycle: FAILED to remove container {id}: {e}");
            failed = true;
        }
    }
    let _ = std::fs::remove_dir_all(&proxy_dir);
    if failed {
        return ExitCode::FAILURE;
    }
    println!("tokio_lifecycle: OK");
    ExitCode::SUCCESS
}

async fn run(
    daemon: &str,
    proxy_dir: &Path,
    pid: u32,
    created: &mut Option<(Api, String)>,
) -> Result<(), Failure> {
    let name = format!("tokio-example-{pid}.ini");
    let spec = spec::parse_vassal(&name, VASSAL.as_bytes())?.ok_or("not a Docker vassal")?;
    // The bridge label is not `host:pid:starttime`, so `uwsgi-docker gc` leaves it alone.
    let identity = VassalIdentity::new(
        name.as_str(),
        proxy_dir.to_string_lossy(),
        "tokio-example",
        format!("tokio-example:{pid}"),
    );
    let plan = ContainerPlan::new(spec, &identity);
    plan.validate()?;
    println!(
        "plan: container {} running {:?}",
        plan.container_name, plan.cmd
    );

    // The proxy socket is bind-mounted into the container, so it must exist before create.
    std::fs::create_dir(proxy_dir)?;
    let _proxy = UnixListener::bind(&plan.proxy_host_path)?;

    let mut conn = connect(daemon).await?;
    let reply = call(&mut conn, Api::version_request()).await?;
    let api = Api::negotiate(docker::parse_version(&reply)?)?;
    println!("version: negotiated API {}", api.version);

    let reply = call(&mut conn, api.create_request(&plan)?).await?;
    let container = docker::parse_create(&reply)?;
    *created = Some((api, container.id.clone()));
    println!("create: {}", container.id);

    let attach = attach(daemon, &api, &container.id, plan.spec.tty).await?;
    println!("attach: upgraded, relaying the container's output");

    // /wait answers its head at once (armed) and its body at exit: one connection of its own.
    let mut wait_conn = connect(daemon).await?;
    send(&mut wait_conn, api.wait_next_exit_request(&container.id)?).await?;
    let mut wait = ResponseReader::new(false, Limits::default());
    let mut buf = vec![0; 8192];
    while wait.head().is_none() {
        let n = wait_conn.read(&mut buf).await?;
        if n == 0 {
            return Err("the daemon closed the wait connection before its head".into());
        }
        if let Progress::Complete { response, .. } = wait.feed(&buf[..n])? {
            return Err(format!("wait ended before start: {}", describe(&response)).into());
        }
    }
    println!("wait: armed");

    let reply = call(&mut conn, api.start_request(&container.id)?).await?;
    println!("start: {}", docker::parse_empty(&reply)?);

    let reply = call(&mut conn, api.inspect_request(&container.id)?).await?;
    let info = docker::parse_inspect(&reply)?;
    println!(
        "inspect: name {}, running {}, pid {}",
        info.name, info.running, info.pid
    );
    if !info.running {
        return Err("the container is not running after start".into());
    }

    let timeout = plan.spec.stop_timeout_secs();
    let reply = call(&mut conn, api.stop_request(&container.id, timeout)?).await?;
    println!("stop: {}", docker::parse_empty(&reply)?);

    let exit = loop {
        let n = wait_conn.read(&mut buf).await?;
        if n == 0 {
            break wait.finish()?;
        }
        if let Progress::Complete { response, .. } = wait.feed(&buf[..n])? {
            break response;
        }
    };
    println!(
        "wait: exited with status {}",
        docker::parse_wait_body(&exit)?
    );

    let lines = attach.await?;
    println!("attach: closed after {lines} lines");

    remove(daemon, &api, &container.id).await?;
    *created = None;
    println!("remove: done");
    Ok(())
}

/// Attaches to the container and relays its output, line by line, from a task of its own
/// until the daemon closes the stream (the container exited). The task returns the number
/// of lines it printed.
async fn attach(
    daemon: &str,
    api: &Api,
    id: &str,
    tty: bool,
) -> Result<tokio::task::JoinHandle<usize>, Failure> {
    let mut conn = connect(daemon).await?;
    send(&mut conn, api.attach_request(id)?).await?;
    let mut reader = ResponseReader::new(false, Limits::default());
    let mut buf = vec![0; 8192];
    let (response, early) = loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Err(reader.finish().map(|r| describe(&r))?.into());
        }
        if let Progress::Complete { response, consumed } = reader.feed(&buf[..n])? {
            // Bytes after the 101 head are already the container's output.
            break (response, buf.get(consumed..n).unwrap_or_default().to_vec());
        }
    };
    docker::parse_attach(&response)?;
    Ok(tokio::spawn(async move {
        let mut demuxer = Demuxer::new(tty);
        let mut splitter = LineSplitter::new(Some("  container| ".into()), 4096);
        let mut lines = 0;
        let mut relay = |bytes: &[u8], lines: &mut usize| {
            let result = demuxer.feed(bytes, &mut |_, piece| {
                splitter.push(piece, &mut |line| {
                    println!("{}", String::from_utf8_lossy(line));
                    *lines += 1;
                });
            });
            if let Err(e) = result {
                eprintln!("attach: {e}");
            }
        };
        relay(&early, &mut lines);
        while let Ok(n @ 1..) = conn.read(&mut buf).await {
            relay(buf.get(..n).unwrap_or_default(), &mut lines);
        }
        splitter.flush(&mut |line| {
            println!("{}", String::from_utf8_lossy(line));
            lines += 1;
        });
        lines
    }))
}

/// `DELETE` with force. Gone already (the create body sets `AutoRemove`) or a removal in
/// progress counts as removed.
async fn remove(daemon: &str, api: &Api, id: &str) -> Result<(), Failure> {
    let mut conn = connect(daemon).await?;
    let reply = call(&mut conn, api.remove_request(id)?).await?;
    match docker::parse_empty(&reply) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(DaemonError::Status { status: 409, .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn connect(daemon: &str) -> Result<UnixStream, Failure> {
    UnixStream::connect(daemon)
        .await
        .map_err(|e| format!("cannot connect to the daemon at {daemon}: {e}").into())
}

/// Sends one request and reads its whole response from a keep-alive connection.
async fn call(conn: &mut UnixStream, request: http::Request<Vec<u8>>) -> Result<Response, Failure> {
    send(conn, request).await?;
    let mut reader = ResponseReader::new(false, Limits::default());
    let mut buf = vec![0; 8192];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(reader.finish()?);
        }
        if let Progress::Complete { response, .. } = reader.feed(&buf[..n])? {
            return Ok(response);
        }
    }
}

async fn send(conn: &mut UnixStream, request: http::Request<Vec<u8>>) -> Result<(), Failure> {
    let mut bytes = Vec::new();
    to_bytes(&request, &mut bytes);
    conn.write_all(&bytes).await?;
    Ok(())
}

/// A reply we did not expect, in words.
fn describe(response: &Response) -> String {
    format!(
        "HTTP {} {}",
        response.status,
        String::from_utf8_lossy(&response.body).trim()
    )
}
