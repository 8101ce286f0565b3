//! Reply parsing. CONTRACT: tolerant of unknown fields and of Podman's error shape.
use super::ApiVersion;
use crate::http_reader::Response;

/// The daemon refused or misbehaved; its own message is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaemonError {
    /// A non-success status with the daemon's `message` (or body text).
    #[error("docker daemon answered {status}: {message}")]
    Status { status: u16, message: String },
    /// A success status whose body we could not understand.
    #[error("unexpected reply from docker daemon: {0}")]
    Malformed(String),
    #[error("docker daemon speaks API {daemon}, older than the {minimum} we need")]
    TooOld {
        daemon: ApiVersion,
        minimum: ApiVersion,
    },
}

impl DaemonError {
    /// 404: no such container or image.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DaemonError::Status { status: 404, .. })
    }
}

/// `GET /version`: the daemon's newest API version (from the `ApiVersion` field, or the
/// `Api-Version` header when the body says nothing).
pub fn parse_version(response: &Response) -> Result<ApiVersion, DaemonError> {
    let _ = response;
    todo!()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

/// 201 from create.
pub fn parse_create(response: &Response) -> Result<Created, DaemonError> {
    let _ = response;
    todo!()
}

/// 101 from attach; anything else is an error (plain text body).
pub fn parse_attach(response: &Response) -> Result<(), DaemonError> {
    let _ = response;
    todo!()
}

/// 204 or 304 from start/stop/kill; 204 or 404 ("already gone") from remove are the
/// caller's to treat, this returns the status on any 2xx/304 and errors otherwise.
pub fn parse_empty(response: &Response) -> Result<u16, DaemonError> {
    let _ = response;
    todo!()
}

/// The head of `/wait` comes at once (status 200 means the wait is armed); its body,
/// `{"StatusCode":n}`, at exit.
pub fn parse_wait_body(response: &Response) -> Result<i64, DaemonError> {
    let _ = response;
    todo!()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub running: bool,
    /// Host pid of the container's init; 0 when not running.
    pub pid: u32,
    pub labels: Vec<(String, String)>,
}

/// `GET /containers/{id}/json`.
pub fn parse_inspect(response: &Response) -> Result<ContainerInfo, DaemonError> {
    let _ = response;
    todo!()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub state: String,
    pub status: String,
    /// Unix seconds.
    pub created: i64,
    pub labels: Vec<(String, String)>,
}

/// `GET /containers/json`.
pub fn parse_list(response: &Response) -> Result<Vec<ContainerSummary>, DaemonError> {
    let _ = response;
    todo!()
}
