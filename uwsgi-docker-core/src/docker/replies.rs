//! Reply parsing, tolerant of unknown fields and of Podman's error shape.
//!
//! Success bodies are read with serde into private structs that name only the fields we
//! use; `null` and missing fields take their defaults, since daemons omit them freely.
use super::{ApiVersion, DaemonApi};
use crate::http_reader::Response;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The daemon refused or misbehaved; its own message is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A non-success status with the daemon's `message` (or body text).
    #[error("docker daemon answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The daemon's message (at most 512 bytes), or the status's reason phrase.
        message: String,
    },
    /// A success status whose body we could not understand.
    #[error("unexpected reply from docker daemon: {0}")]
    Malformed(String),
    /// `/wait` answered, but with an `Error.Message` instead of an exit status.
    #[error("waiting for the container failed: {0}")]
    WaitFailed(String),
    /// The daemon's newest API is older than [`ApiVersion::MINIMUM`].
    #[error("the docker daemon speaks API {daemon} at most, and uwsgi-docker needs API {minimum} or newer (Docker 17.06+: wait?condition=next-exit needs 1.30); upgrade the docker daemon")]
    TooOld {
        /// The daemon's newest API version.
        daemon: ApiVersion,
        /// The oldest we speak.
        minimum: ApiVersion,
    },
    /// The daemon's oldest API (`MinAPIVersion`) is newer than the newest we speak.
    #[error("the docker daemon accepts API {daemon_minimum} at the earliest, and uwsgi-docker speaks API {ours} at most; upgrade uwsgi-docker")]
    TooNew {
        /// The daemon's oldest API version.
        daemon_minimum: ApiVersion,
        /// The newest we speak.
        ours: ApiVersion,
    },
    /// A request was refused for its API version (dockerd's 400 "client version … is too
    /// old" or "… too new"): the daemon's range moved since the version was negotiated,
    /// e.g. an upgrade to Docker 29.0 under a running bridge, or a downgrade under a
    /// remembered negotiation.
    #[error("the docker daemon refused the API version uwsgi-docker negotiated ({message}); restart the vassal to negotiate again, or upgrade uwsgi-docker")]
    ApiVersionRefused {
        /// The daemon's message.
        message: String,
    },
}

impl DaemonError {
    /// No such container or image: Docker's 404, or Podman's 500 whose message says so
    /// ("no container with name or ID … found: no such container", "… no such image").
    pub fn is_not_found(&self) -> bool {
        match self {
            DaemonError::Status { status: 404, .. } => true,
            DaemonError::Status {
                status: 500,
                message,
            } => {
                let message = message.to_ascii_lowercase();
                message.contains("no such container") || message.contains("no such image")
            }
            // Podman, when AutoRemove removed the container before the wait read its exit:
            // "… does not exist in database: no such container", or "container has already
            // been removed".
            DaemonError::WaitFailed(message) => {
                let message = message.to_ascii_lowercase();
                message.contains("no such container") || message.contains("already been removed")
            }
            _ => false,
        }
    }

    /// The name is held by another container: Docker's 409 ("Conflict. The container name
    /// … is already in use by container …"), or Podman's 500 ("the container name … is
    /// already in use by …"). Another 409 (a removal in progress, a running container that
    /// cannot be removed without force) is not a name conflict.
    pub fn is_conflict(&self) -> bool {
        match self {
            DaemonError::Status { status, message } => {
                let message = message.to_ascii_lowercase();
                match status {
                    409 => {
                        message.contains("is already in use") && !message.contains("in progress")
                    }
                    500 => message.contains("name") && message.contains("is already in use"),
                    _ => false,
                }
            }
            _ => false,
        }
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
    if response.status == 400 && is_api_version_refusal(&message) {
        return DaemonError::ApiVersionRefused { message };
    }
    DaemonError::Status {
        status: response.status,
        message,
    }
}

/// The daemon refused the request for its API version ([`DaemonError::ApiVersionRefused`]).
pub fn refuses_api_version(response: &Response) -> bool {
    response.status == 400
        && matches!(
            status_error(response),
            DaemonError::ApiVersionRefused { .. }
        )
}

/// dockerd's words for a request outside its API range: "client version 1.41 is too old.
/// Minimum supported API version is 1.44, please upgrade your client to a newer version",
/// or "client version 1.44 is too new. Maximum supported API version is 1.41".
fn is_api_version_refusal(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("client version")
        && (message.contains("too old") || message.contains("too new"))
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
    #[serde(rename = "MinAPIVersion")]
    min_api_version: Option<String>,
}

/// `GET /version`: the daemon's newest API version (from the `ApiVersion` field, or the
/// `Api-Version` header when the body says nothing) and its oldest (`MinAPIVersion`, when
/// the body has it).
///
/// ```
/// use uwsgi_docker_core::docker::{parse_version, Api, ApiVersion};
/// use uwsgi_docker_core::http_reader::{Limits, Progress, ResponseReader};
///
/// let reply = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n{\"ApiVersion\":\"1.41\"}";
/// let mut reader = ResponseReader::new(false, Limits::default());
/// let Progress::Complete { response, .. } = reader.feed(reply)? else { panic!("one whole reply") };
/// let api = Api::negotiate(parse_version(&response)?)?;
/// assert_eq!(api.version, ApiVersion { major: 1, minor: 41 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`DaemonError::Status`] for a non-2xx reply, [`DaemonError::Malformed`] when no
/// version can be read, or a `MinAPIVersion` that is not a version.
pub fn parse_version(response: &Response) -> Result<DaemonApi, DaemonError> {
    if !is_success(response.status) {
        return Err(status_error(response));
    }
    let body = serde_json::from_slice::<VersionBody>(&response.body).unwrap_or_default();
    let minimum = match body.min_api_version {
        None => None,
        Some(text) => Some(ApiVersion::parse(&text).ok_or_else(|| {
            DaemonError::Malformed(format!("version reply: bad MinAPIVersion {text:?}"))
        })?),
    };
    let from_body = body.api_version;
    let from_header = response
        .header("api-version")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let text = from_body.or(from_header).ok_or_else(|| {
        DaemonError::Malformed("version reply has no ApiVersion nor Api-Version header".into())
    })?;
    let newest = ApiVersion::parse(&text).ok_or_else(|| {
        DaemonError::Malformed(format!("version reply: bad API version {text:?}"))
    })?;
    Ok(DaemonApi { newest, minimum })
}

/// What create answered: the new container.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Created {
    /// The container id (never empty).
    pub id: String,
    /// The daemon's warnings about the settings, e.g. an ignored limit.
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
///
/// ```
/// use uwsgi_docker_core::docker::{parse_create, DaemonError};
/// use uwsgi_docker_core::http_reader::{Limits, Progress, ResponseReader};
///
/// let mut reader = ResponseReader::new(false, Limits::default());
/// let reply = b"HTTP/1.1 201 Created\r\nContent-Length: 29\r\n\r\n{\"Id\":\"4f2a\",\"Warnings\":null}";
/// let Progress::Complete { response, .. } = reader.feed(reply)? else { panic!() };
/// assert_eq!(parse_create(&response)?.id, "4f2a");
///
/// reader.reset(false);
/// let reply = b"HTTP/1.1 404 Not Found\r\nContent-Length: 43\r\n\r\n{\"message\":\"No such image: psgi001:latest\"}";
/// let Progress::Complete { response, .. } = reader.feed(reply)? else { panic!() };
/// let error = parse_create(&response).unwrap_err();
/// assert!(error.is_not_found());
/// assert_eq!(error.to_string(), "docker daemon answered 404: No such image: psgi001:latest");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`DaemonError::Status`] with the daemon's message (404: no such image, 409: the name
/// is taken), or [`DaemonError::Malformed`] for a body without an `Id`.
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
///
/// After a 101 the connection carries the container's output: the bytes after the
/// head ([`crate::http_reader::Progress::Complete`]'s `consumed`) are already stream data.
///
/// # Errors
///
/// [`DaemonError::Status`] for an error status, [`DaemonError::Malformed`] for a 2xx
/// that did not upgrade.
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
///
/// # Errors
///
/// [`DaemonError::Status`] for any other status.
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
/// [`DaemonError::WaitFailed`] with that message: the exit code is then meaningless.
///
/// Returns the container's exit status (`137` after SIGKILL, and so on).
///
/// # Errors
///
/// [`DaemonError::Status`] for an error status, [`DaemonError::Malformed`] for a body
/// that is not a wait result, [`DaemonError::WaitFailed`] for one that reports the wait
/// failed.
pub fn parse_wait_body(response: &Response) -> Result<i64, DaemonError> {
    let body: WaitBody = json_reply(response, "wait")?;
    match body.error {
        Some(WaitError { message }) if !message.is_empty() => Err(DaemonError::WaitFailed(message)),
        _ => Ok(body.status_code),
    }
}

/// What inspect says about one container (the fields the bridge uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerInfo {
    /// The full container id.
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// `State.Running`.
    pub running: bool,
    /// Host pid of the container's init; 0 when not running.
    pub pid: u32,
    /// The container's labels, sorted by key.
    pub labels: Vec<(String, String)>,
    /// `State.OOMKilled`: the kernel's OOM killer ended (a process of) the container.
    pub oom_killed: bool,
    /// `Image`: the id (`sha256:…`) of the image it runs.
    pub image: String,
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
    #[serde(default)]
    image: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectState {
    running: bool,
    /// Podman has written `-1`-style values here; anything outside u32 reads as 0.
    pid: i64,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InspectConfig {
    labels: Option<BTreeMap<String, String>>,
}

/// `GET /containers/{id}/json`.
///
/// # Errors
///
/// [`DaemonError::Status`] (404: no such container; see [`DaemonError::is_not_found`]),
/// or [`DaemonError::Malformed`] for a body without an `Id`.
pub fn parse_inspect(response: &Response) -> Result<ContainerInfo, DaemonError> {
    let body: InspectBody = json_reply(response, "inspect")?;
    let state = body.state.unwrap_or_default();
    Ok(ContainerInfo {
        id: body.id,
        name: body.name.strip_prefix('/').unwrap_or(&body.name).to_owned(),
        running: state.running,
        pid: u32::try_from(state.pid).unwrap_or(0),
        labels: sorted_labels(body.config.and_then(|c| c.labels)),
        oom_killed: state.oom_killed,
        image: body.image,
    })
}

/// One container of a list reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerSummary {
    /// The full container id.
    pub id: String,
    /// Without the leading `/`, as in [`ContainerInfo::name`].
    pub names: Vec<String>,
    /// `created`, `running`, `exited`, … as the daemon says.
    pub state: String,
    /// The daemon's human status, e.g. `Up 5 minutes`.
    pub status: String,
    /// Unix seconds.
    pub created: i64,
    /// The container's labels, sorted by key.
    pub labels: Vec<(String, String)>,
    /// The image as the create request named it.
    pub image: String,
    /// The image's id (`sha256:…`): the digest of what runs.
    pub image_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryBody {
    #[serde(default)]
    image: String,
    #[serde(default, rename = "ImageID")]
    image_id: String,
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
///
/// # Errors
///
/// [`DaemonError::Status`] for an error status, [`DaemonError::Malformed`] for a body
/// that is not a list of containers.
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
            image: c.image,
            image_id: c.image_id,
        })
        .collect())
}

/// A container's resource use, as its cgroup or the daemon's stats report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerUsage {
    /// Memory in use, bytes (page cache included, as the cgroup counts it).
    pub memory_bytes: Option<u64>,
    /// The memory limit, bytes; `None` when unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// CPU time used, nanoseconds.
    pub cpu_nanoseconds: Option<u64>,
    /// Processes the OOM killer killed in the container.
    pub oom_kills: Option<u64>,
}

/// A limit at or above this many bytes is "no limit" (cgroup v1 reports its page-rounded
/// `i64::MAX`; the daemon's stats report the host's memory).
pub const UNLIMITED_MEMORY: u64 = 1 << 62;

#[derive(Deserialize, Default)]
#[serde(default)]
struct StatsBody {
    memory_stats: MemoryStats,
    cpu_stats: CpuStats,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MemoryStats {
    usage: Option<u64>,
    limit: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CpuStats {
    cpu_usage: CpuUsage,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CpuUsage {
    total_usage: Option<u64>,
}

/// `GET /containers/{id}/stats?stream=false`: memory and CPU (no OOM count: the stats do
/// not carry one).
///
/// # Errors
///
/// [`DaemonError::Status`] for an error status, [`DaemonError::Malformed`] for a body
/// that is not a stats object.
pub fn parse_stats(response: &Response) -> Result<ContainerUsage, DaemonError> {
    let body: StatsBody = json_reply(response, "container stats")?;
    Ok(ContainerUsage {
        memory_bytes: body.memory_stats.usage,
        memory_limit_bytes: body.memory_stats.limit.filter(|l| *l < UNLIMITED_MEMORY),
        cpu_nanoseconds: body.cpu_stats.cpu_usage.total_usage,
        oom_kills: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn status(status: u16, message: &str) -> DaemonError {
        DaemonError::Status {
            status,
            message: message.into(),
        }
    }

    #[test]
    fn version_from_body_then_header() {
        // Docker 20.10's reply, shortened.
        let body = r#"{"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"20.10.24+dfsg1","Details":{"ApiVersion":"1.41","MinAPIVersion":"1.12"}}],"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux"}"#;
        let v141 = ApiVersion {
            major: 1,
            minor: 41,
        };
        let ok = reply(200, &[("Api-Version", "1.40")], body);
        assert_eq!(
            parse_version(&ok),
            Ok(DaemonApi {
                newest: v141,
                minimum: Some(ApiVersion {
                    major: 1,
                    minor: 12
                })
            })
        );
        let ping = reply(200, &[("Api-Version", "1.41")], "OK");
        assert_eq!(parse_version(&ping), Ok(DaemonApi::from(v141)));
        assert!(matches!(
            parse_version(&reply(200, &[], r#"{"ApiVersion":"1.41","MinAPIVersion":"new"}"#)),
            Err(DaemonError::Malformed(m)) if m.contains("MinAPIVersion")
        ));
        assert!(matches!(
            parse_version(&reply(200, &[], "{}")),
            Err(DaemonError::Malformed(_))
        ));
        assert!(matches!(
            parse_version(&reply(200, &[], r#"{"ApiVersion":"one"}"#)),
            Err(DaemonError::Malformed(_))
        ));
        assert_eq!(
            parse_version(&reply(
                500,
                &[("Api-Version", "1.41")],
                r#"{"message":"boom"}"#
            )),
            Err(status(500, "boom"))
        );
    }

    #[test]
    fn create_replies() {
        let ok = reply(201, &[], r#"{"Id":"e90e34656806","Warnings":[]}"#);
        assert_eq!(
            parse_create(&ok),
            Ok(Created {
                id: "e90e34656806".into(),
                warnings: vec![]
            })
        );
        let null_warnings = reply(201, &[], r#"{"Id":"abc","Warnings":null}"#);
        assert_eq!(
            parse_create(&null_warnings).unwrap().warnings,
            Vec::<String>::new()
        );
        let warned = reply(
            201,
            &[],
            r#"{"Id":"abc","Warnings":["Your kernel does not support swap limit capabilities"]}"#,
        );
        assert_eq!(parse_create(&warned).unwrap().warnings.len(), 1);

        let no_image = reply(404, &[], "{\"message\":\"No such image: x:latest\"}\n");
        let error = parse_create(&no_image).unwrap_err();
        assert!(error.is_not_found());
        assert_eq!(error, status(404, "No such image: x:latest"));
        assert_eq!(
            error.to_string(),
            "docker daemon answered 404: No such image: x:latest"
        );

        let conflict = r#"{"message":"Conflict. The container name \"/app.ini\" is already in use by container \"4fa6e0f0c678\". You have to remove (or rename) that container to be able to reuse that name."}"#;
        let error = parse_create(&reply(409, &[], conflict)).unwrap_err();
        assert!(!error.is_not_found());
        assert!(
            matches!(&error, DaemonError::Status { status: 409, message } if message.starts_with("Conflict. The container name \"/app.ini\""))
        );

        assert!(matches!(
            parse_create(&reply(201, &[], r#"{"Id":""}"#)),
            Err(DaemonError::Malformed(_))
        ));
        assert!(matches!(
            parse_create(&reply(201, &[], "not json")),
            Err(DaemonError::Malformed(_))
        ));
    }

    #[test]
    fn podman_error_shape() {
        let body = r#"{"cause":"no such container","message":"no container with name or ID \"x\" found: no such container","response":404}"#;
        assert_eq!(
            parse_empty(&reply(404, &[], body)),
            Err(status(
                404,
                "no container with name or ID \"x\" found: no such container"
            ))
        );
    }

    #[test]
    fn podman_answers_not_found_and_conflicts_with_500() {
        // Podman 4.3's shapes: the meaning is in the message, not the status.
        let gone = r#"{"cause":"no such container","message":"no container with name or ID \"app.ini\" found: no such container","response":500}"#;
        let error = parse_empty(&reply(500, &[], gone)).unwrap_err();
        assert!(error.is_not_found(), "{error:?}");
        assert!(!error.is_conflict());
        let no_image = r#"{"cause":"no such image","message":"app: image not known: no such image","response":500}"#;
        assert!(parse_create(&reply(500, &[], no_image))
            .unwrap_err()
            .is_not_found());
        let taken = r#"{"cause":"that name is already in use","message":"creating container storage: the container name \"app.ini\" is already in use by 4fa6e0f0c678. You have to remove that container to be able to reuse that name: that name is already in use","response":500}"#;
        let error = parse_create(&reply(500, &[], taken)).unwrap_err();
        assert!(error.is_conflict(), "{error:?}");
        assert!(!error.is_not_found());
        // Any other 500 is neither.
        let port = r#"{"cause":"address already in use","message":"rootlessport listen tcp 0.0.0.0:9001: bind: address is already in use","response":500}"#;
        assert!(!parse_empty(&reply(500, &[], port))
            .unwrap_err()
            .is_conflict());
        let boom = r#"{"cause":"io","message":"write /var/lib/containers: no space left on device","response":500}"#;
        let error = parse_create(&reply(500, &[], boom)).unwrap_err();
        assert!(!error.is_conflict() && !error.is_not_found());
    }

    #[test]
    fn docker_conflicts_and_removals_in_progress() {
        let taken = r#"{"message":"Conflict. The container name \"/app.ini\" is already in use by container \"4fa6e0f0c678\". You have to remove (or rename) that container to be able to reuse that name."}"#;
        assert!(parse_create(&reply(409, &[], taken))
            .unwrap_err()
            .is_conflict());
        let in_progress = r#"{"message":"removal of container abc is already in progress"}"#;
        let error = parse_empty(&reply(409, &[], in_progress)).unwrap_err();
        assert!(!error.is_conflict() && !error.is_not_found());
        // "already in use" under another status (a bad parameter, say) is no conflict.
        let odd = r#"{"message":"port is already in use"}"#;
        assert!(!parse_create(&reply(400, &[], odd))
            .unwrap_err()
            .is_conflict());
    }

    /// The real answers of Docker 28.5.2 and Podman 4.3.1 (2026-12) to a remove without
    /// force of a running container (409 and 500) and to a stop of a stopped one (304).
    #[test]
    fn running_refusals_and_stops_of_stopped_containers_are_read_by_meaning() {
        let docker = r#"{"message":"cannot remove container \"df4e14a8ccf2\": container is running: stop the container before removing or force remove"}"#;
        let podman = r#"{"cause":"container state improper","message":"cannot remove container 38f93c05b18d as it is running - running or paused containers cannot be removed without force: container state improper","response":500}"#;
        for (status, body) in [(409, docker), (500, podman)] {
            let error = parse_empty(&reply(status, &[], body)).unwrap_err();
            assert!(!error.is_conflict() && !error.is_not_found(), "{error:?}");
        }
        // Stop of a stopped container: nothing to do, on both.
        assert_eq!(parse_empty(&reply(304, &[], "")), Ok(304));
    }

    #[test]
    fn attach_replies() {
        assert_eq!(parse_attach(&reply(101, &[("Upgrade", "tcp")], "")), Ok(()));
        assert_eq!(
            parse_attach(&reply(404, &[], "No such container: nonexist\n")),
            Err(status(404, "No such container: nonexist"))
        );
        assert!(matches!(
            parse_attach(&reply(200, &[], "")),
            Err(DaemonError::Malformed(_))
        ));
    }

    #[test]
    fn long_and_empty_plain_text_errors() {
        let long = "é".repeat(1000);
        match parse_attach(&reply(500, &[], &long)).unwrap_err() {
            DaemonError::Status { message, .. } => {
                assert!(message.len() <= MAX_MESSAGE + '…'.len_utf8());
                assert!(message.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_empty(&reply(502, &[], " \n")),
            Err(status(502, "Bad Gateway"))
        );
        assert_eq!(
            parse_empty(&reply(599, &[], "")),
            Err(status(599, "no message"))
        );
    }

    #[test]
    fn empty_replies() {
        assert_eq!(parse_empty(&reply(204, &[], "")), Ok(204));
        assert_eq!(parse_empty(&reply(304, &[], "")), Ok(304));
        let in_progress = r#"{"message":"removal of container abc is already in progress"}"#;
        assert_eq!(
            parse_empty(&reply(409, &[], in_progress)),
            Err(status(
                409,
                "removal of container abc is already in progress"
            ))
        );
        let old_start = r#"{"message":"starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24"}"#;
        assert!(matches!(
            parse_empty(&reply(400, &[], old_start)),
            Err(DaemonError::Status { status: 400, .. })
        ));
    }

    #[test]
    fn wait_bodies() {
        let killed = reply(200, &[], "{\"Error\":null,\"StatusCode\":137}\n");
        assert_eq!(parse_wait_body(&killed), Ok(137));
        assert_eq!(
            parse_wait_body(&reply(200, &[], r#"{"StatusCode":0}"#)),
            Ok(0)
        );
        let empty_error = r#"{"Error":{"Message":""},"StatusCode":3}"#;
        assert_eq!(parse_wait_body(&reply(200, &[], empty_error)), Ok(3));
        let failed = r#"{"Error":{"Message":"container not running"},"StatusCode":-1}"#;
        assert!(matches!(
            parse_wait_body(&reply(200, &[], failed)),
            Err(DaemonError::WaitFailed(m)) if m == "container not running"
        ));
        // Podman's answer when AutoRemove removed the container before the wait read it.
        let removed = r#"{"Error":{"Message":"container abc does not exist in database: no such container"},"StatusCode":-1}"#;
        assert!(parse_wait_body(&reply(200, &[], removed))
            .unwrap_err()
            .is_not_found());
        let removed =
            r#"{"Error":{"Message":"container has already been removed"},"StatusCode":-1}"#;
        assert!(parse_wait_body(&reply(200, &[], removed))
            .unwrap_err()
            .is_not_found());
        assert!(
            parse_wait_body(&reply(404, &[], r#"{"message":"No such container: x"}"#))
                .unwrap_err()
                .is_not_found()
        );
        assert!(matches!(
            parse_wait_body(&reply(200, &[], r#"{"Error":null}"#)),
            Err(DaemonError::Malformed(_))
        ));
    }

    #[test]
    fn inspect_reply() {
        let body = r#"{"Id":"4fa6e0f0c678","Created":"2026-11-28T10:00:00Z","Path":"uwsgi","Args":["--ini","emperor://app.ini"],
            "State":{"Status":"running","Running":true,"Paused":false,"Pid":4242,"ExitCode":0,"Error":""},
            "Name":"/app.ini","RestartCount":0,"Image":"sha256:0ddba11",
            "Config":{"Hostname":"4fa6e0f0c678","Tty":true,"Image":"psgi001",
                      "Labels":{"io.uwsgi-docker.vassal":"app.ini","io.uwsgi-docker.managed":"1"}},
            "HostConfig":{"AutoRemove":true}}"#;
        assert_eq!(
            parse_inspect(&reply(200, &[], body)),
            Ok(ContainerInfo {
                id: "4fa6e0f0c678".into(),
                name: "app.ini".into(),
                running: true,
                pid: 4242,
                labels: vec![
                    ("io.uwsgi-docker.managed".into(), "1".into()),
                    ("io.uwsgi-docker.vassal".into(), "app.ini".into()),
                ],
                oom_killed: false,
                image: "sha256:0ddba11".into(),
            })
        );
        let exited = r#"{"Id":"abc","Name":"/x","State":{"Running":false,"Pid":0},"Config":{"Labels":null}}"#;
        let info = parse_inspect(&reply(200, &[], exited)).unwrap();
        assert_eq!((info.running, info.pid, info.labels.len()), (false, 0, 0));
        assert!(!info.oom_killed);
        // Docker's spelling (and Podman's): `OOMKilled`, not PascalCase's `OomKilled`.
        let oom =
            r#"{"Id":"abc","State":{"Running":false,"Pid":0,"OOMKilled":true,"ExitCode":137}}"#;
        assert!(parse_inspect(&reply(200, &[], oom)).unwrap().oom_killed);
        let odd_pid = r#"{"Id":"abc","State":{"Running":true,"Pid":-1}}"#;
        assert_eq!(parse_inspect(&reply(200, &[], odd_pid)).unwrap().pid, 0);
        assert!(
            parse_inspect(&reply(404, &[], r#"{"message":"No such container: abc"}"#))
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn stats_reply() {
        let body = r#"{"read":"x","memory_stats":{"usage":1048576,"limit":268435456},"cpu_stats":{"cpu_usage":{"total_usage":2500000000}}}"#;
        let usage = parse_stats(&reply(200, &[], body)).unwrap();
        assert_eq!(usage.memory_bytes, Some(1 << 20));
        assert_eq!(usage.memory_limit_bytes, Some(256 << 20));
        assert_eq!(usage.cpu_nanoseconds, Some(2_500_000_000));
        let exited =
            parse_stats(&reply(200, &[], r#"{"memory_stats":{},"cpu_stats":{}}"#)).unwrap();
        assert_eq!(exited, ContainerUsage::default());
    }

    #[test]
    fn list_reply() {
        let body = r#"[{"Id":"4fa6e0f0c678","Names":["/app.ini"],"Image":"psgi001","ImageID":"sha256:77aa","Command":"uwsgi --ini emperor://app.ini",
            "Created":1795860000,"Ports":[{"IP":"0.0.0.0","PrivatePort":3031,"PublicPort":9001,"Type":"tcp"}],
            "Labels":{"io.uwsgi-docker.managed":"1"},"State":"running","Status":"Up 5 minutes",
            "HostConfig":{"NetworkMode":"default"},"NetworkSettings":{"Networks":{}},"Mounts":[]},
            {"Id":"abc","Names":null,"Labels":null,"State":"exited","Status":"Exited (0) 1 second ago","Created":1}]"#;
        let list = parse_list(&reply(200, &[], body)).unwrap();
        assert_eq!(
            list[0],
            ContainerSummary {
                id: "4fa6e0f0c678".into(),
                names: vec!["app.ini".into()],
                state: "running".into(),
                status: "Up 5 minutes".into(),
                created: 1795860000,
                labels: vec![("io.uwsgi-docker.managed".into(), "1".into())],
                image: "psgi001".into(),
                image_id: "sha256:77aa".into(),
            }
        );
        assert_eq!(list[1].names, Vec::<String>::new());
        assert_eq!(list[1].state, "exited");
        assert_eq!(parse_list(&reply(200, &[], "[]")), Ok(vec![]));
        assert!(matches!(
            parse_list(&reply(200, &[], "{}")),
            Err(DaemonError::Malformed(_))
        ));
    }

    /// Docker 29's `/version` replies (shortened): 29.0–29.2 accept 1.44 at the earliest,
    /// 29.3 lowered that to 1.40. Both negotiate our newest, 1.44.
    #[test]
    fn docker_29_version_replies_negotiate_within_their_range() {
        let v = |minor| ApiVersion { major: 1, minor };
        for (body, minimum) in [
            (
                r#"{"Platform":{"Name":"Docker Engine - Community"},"Components":[{"Name":"Engine","Version":"29.0.4","Details":{"ApiVersion":"1.52","MinAPIVersion":"1.44"}}],"Version":"29.0.4","ApiVersion":"1.52","MinAPIVersion":"1.44","Os":"linux","Arch":"amd64"}"#,
                44,
            ),
            (
                r#"{"Platform":{"Name":"Docker Engine - Community"},"Components":[{"Name":"Engine","Version":"29.3.0","Details":{"ApiVersion":"1.54","MinAPIVersion":"1.40"}}],"Version":"29.3.0","ApiVersion":"1.54","MinAPIVersion":"1.40","Os":"linux","Arch":"amd64"}"#,
                40,
            ),
        ] {
            let daemon = parse_version(&reply(200, &[], body)).unwrap();
            assert_eq!(daemon.minimum, Some(v(minimum)), "{body}");
            let api = crate::docker::Api::negotiate(daemon).unwrap();
            assert_eq!(api.version, v(44), "{body}");
        }
    }

    /// Docker 29.0's answer to a request below its minimum, on any endpoint, is named as such.
    #[test]
    fn a_client_version_too_old_reply_is_named() {
        let refused = reply(
            400,
            &[],
            r#"{"message":"client version 1.41 is too old. Minimum supported API version is 1.44, please upgrade your client to a newer version"}"#,
        );
        for error in [
            parse_version(&refused).unwrap_err(),
            parse_create(&refused).unwrap_err(),
            parse_empty(&refused).unwrap_err(),
            parse_inspect(&refused).unwrap_err(),
        ] {
            assert!(
                matches!(&error, DaemonError::ApiVersionRefused { message } if message.starts_with("client version 1.41 is too old")),
                "{error:?}"
            );
            let text = error.to_string();
            assert!(
                text.contains("refused the API version") && text.contains("1.44"),
                "{text}"
            );
        }
        // Any other 400 stays a status error with the daemon's words.
        assert_eq!(
            parse_empty(&reply(400, &[], r#"{"message":"invalid signal"}"#)),
            Err(status(400, "invalid signal"))
        );
    }
}
