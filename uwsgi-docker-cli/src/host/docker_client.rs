//! Blocking one-shot HTTP over dockerd's unix socket, for `ps` and `gc`: one connection
//! per request, the core's request builders and [`ResponseReader`].
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use uwsgi_docker_core::docker::{self, Api, DaemonError};
use uwsgi_docker_core::http_reader::{HttpError, Limits, Progress, Response, ResponseReader};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the docker daemon at {path}: {cause}; is dockerd running? (set UWSGIDOCKER_DAEMON_SOCKET or DOCKER_HOST)")]
    Connect { path: String, cause: std::io::Error },
    #[error("talking to the docker daemon at {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("docker daemon at {path}: {cause}")]
    Http { path: String, cause: HttpError },
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

#[derive(Debug)]
pub struct Client {
    socket: String,
    pub api: Api,
}

impl Client {
    /// Connect once to negotiate the API version.
    pub fn negotiate(socket: &str) -> Result<Client, ClientError> {
        let mut out = Vec::new();
        docker::version_request(&mut out);
        let response = request(socket, &out)?;
        let daemon = docker::parse_version(&response)?;
        Ok(Client {
            socket: socket.to_owned(),
            api: Api::negotiate(daemon)?,
        })
    }

    /// Send one request built by `build` and read its whole reply.
    pub fn call(&self, build: impl FnOnce(&Api, &mut Vec<u8>)) -> Result<Response, ClientError> {
        let mut out = Vec::new();
        build(&self.api, &mut out);
        request(&self.socket, &out)
    }
}

fn request(socket: &str, bytes: &[u8]) -> Result<Response, ClientError> {
    let io = |source| ClientError::Io {
        path: socket.to_owned(),
        cause: source,
    };
    let connected = crate::host::hostfs::connect_unix(
        std::path::Path::new(socket),
        crate::host::hostfs::CONNECT_TIMEOUT,
    );
    let mut stream = UnixStream::from(connected.map_err(|source| ClientError::Connect {
        path: socket.to_owned(),
        cause: source,
    })?);
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .map_err(io)?;
    stream.write_all(bytes).map_err(io)?;
    let head_request = bytes.starts_with(b"HEAD ");
    let mut reader = ResponseReader::new(head_request, Limits::default());
    let http = |source| ClientError::Http {
        path: socket.to_owned(),
        cause: source,
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            return reader.finish().map_err(http);
        }
        let chunk = buf.get(..n).unwrap_or_default();
        if let Progress::Complete { response, .. } = reader.feed(chunk).map_err(http)? {
            return Ok(response);
        }
    }
}
