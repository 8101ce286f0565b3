//! Reply parsing. CONTRACT: tolerant of unknown fields and of Podman's error shape.
//!
//! Success bodies are read with serde into private structs that name only the fields we
//! use; `null` and missing fields take their defaults, since daemons omit them freely.
use super::ApiVersion;
use crate::http_reader::Response;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;

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

/// Longest daemon message we keep; attach errors are free text.
const MAX_MESSAGE: usize = 512;

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The error shape of Docker (`{"message"}`) and Podman (`{"cause","message","response"}`).
#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

/// A [`DaemonError::Status`] carrying the daemon's own words.
fn status_error(response: &Response) -> DaemonError {
    let message = match serde_json::from_slice::<ErrorBody>(&response.body) {
        Ok(body) => body.message,
        Err(_) => String::from_utf8_lossy(&response.body).trim().to_owned(),
    };
    let mut message = message.trim().to_owned();
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    if message.is_empty() {
        message = http::StatusCode::from_u16(response.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no message")
            .to_owned();
    }
    DaemonError::Status {
        status: response.status,
        message,
    }
}

/// The body of a 2xx reply as `T`, or the daemon's error.
fn json_reply<T: DeserializeOwned>(response: &Response, what: &str) -> Result<T, DaemonError> {
    if !is_success(response.status) {
        return Err(status_error(response));
    }
    serde_json::from_slice(&response.body)
        .map_err(|e| DaemonError::Malformed(format!("{what} reply: {e}")))
}

fn sorted_labels(labels: Option<BTreeMap<String, String>>) -> Vec<(String, String)> {
    labels.unwrap_or_default().into_iter().collect()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct VersionBody {
    api_version: Option<String>,
}

/// `GET /version`: the daemon's newest API version (from the `ApiVersion` field, or the
/// `Api-Version` header when the body says nothing).
pub fn parse_version(response: &Response) -> Result<ApiVersion, DaemonError> {
    if !is_success(response.status) {
        return Err(status_error(response));
    }
    let from_body = serde_json::from_slice::<VersionBody>(&response.body)
        .ok()
        .and_then(|body| body.api_version);
    let from_header = response
        .header("api-version")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let text = from_body.or(from_header).ok_or_else(|| {
        DaemonError::Malformed("version reply has no ApiVersion nor Api-Version header".into())
    })?;
    ApiVersion::parse(&text)
        .ok_or_else(|| DaemonError::Malformed(format!("version reply: bad API version {text:?}")))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreatedBody {
    id: String,
    #[serde(default)]
    warnings: Option<Vec<String>>,
}

/// 201 from create.
pub fn parse_create(response: &Response) -> Result<Created, DaemonError> {
    let body: CreatedBody = json_reply(response, "create")?;
    if body.id.is_empty() {
        return Err(DaemonError::Malformed(
            "create reply has an empty Id".into(),
        ));
    }
    Ok(Created {
        id: body.id,
        warnings: body.warnings.unwrap_or_default(),
    })
}

/// 101 from attach; anything else is an error (plain text body).
pub fn parse_attach(response: &Response) -> Result<(), DaemonError> {
    match response.status {
        101 => Ok(()),
        status if is_success(status) => Err(DaemonError::Malformed(format!(
            "attach answered {status} instead of upgrading the connection (101)"
        ))),
        _ => Err(status_error(response)),
    }
}

/// 204 or 304 from start/stop/kill; 204 or 404 ("already gone") from remove are the
/// caller's to treat, this returns the status on any 2xx/304 and errors otherwise.
pub fn parse_empty(response: &Response) -> Result<u16, DaemonError> {
    if is_success(response.status) || response.status == 304 {
        Ok(response.status)
    } else {
        Err(status_error(response))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WaitBody {
    status_code: i64,
    #[serde(default)]
    error: Option<WaitError>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct WaitError {
    message: String,
}

/// The head of `/wait` comes at once (status 200 means the wait is armed); its body,
/// `{"StatusCode":n}`, at exit. A non-empty `Error.Message` (the wait itself failed) is
/// [`DaemonError::Malformed`] with that message: the exit code is then meaningless.
pub fn parse_wait_body(response: &Response) -> Result<i64, DaemonError> {
    let body: WaitBody = json_reply(response, "wait")?;
    match body.error {
        Some(WaitError { message }) if !message.is_empty() => Err(DaemonError::Malformed(format!(
            "waiting for the container failed: {message}"
        ))),
        _ => Ok(body.status_code),
    }
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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectBody {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    state: Option<InspectState>,
    #[serde(default)]
    config: Option<InspectConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectState {
    running: bool,
    /// Podman has written `-1`-style values here; anything outside u32 reads as 0.
    pid: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectConfig {
    labels: Option<BTreeMap<String, String>>,
}

/// `GET /containers/{id}/json`.
pub fn parse_inspect(response: &Response) -> Result<ContainerInfo, DaemonError> {
    let body: InspectBody = json_reply(response, "inspect")?;
    let state = body.state.unwrap_or_default();
    Ok(ContainerInfo {
        id: body.id,
        name: body.name.strip_prefix('/').unwrap_or(&body.name).to_owned(),
        running: state.running,
        pid: u32::try_from(state.pid).unwrap_or(0),
        labels: sorted_labels(body.config.and_then(|c| c.labels)),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    /// Without the leading `/`, as in [`ContainerInfo::name`].
    pub names: Vec<String>,
    pub state: String,
    pub status: String,
    /// Unix seconds.
    pub created: i64,
    pub labels: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryBody {
    id: String,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    created: i64,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// `GET /containers/json`.
pub fn parse_list(response: &Response) -> Result<Vec<ContainerSummary>, DaemonError> {
    let body: Vec<SummaryBody> = json_reply(response, "container list")?;
    Ok(body
        .into_iter()
        .map(|c| ContainerSummary {
            id: c.id,
            names: c
                .names
                .unwrap_or_default()
                .into_iter()
                .map(|n| n.strip_prefix('/').map(str::to_owned).unwrap_or(n))
                .collect(),
            state: c.state,
            status: c.status,
            created: c.created,
            labels: sorted_labels(c.labels),
        })
        .collect())
}
