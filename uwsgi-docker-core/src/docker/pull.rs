//! Pulling an image: the `POST /images/create` request's image reference, which registry
//! it belongs to, and an incremental reader of the reply's progress stream.
//!
//! The daemon answers `200` at once and then streams one JSON object per line (dockerd
//! ends each with `\r\n`, Podman's compat API with `\n`): layer progress
//! (`{"status":"Downloading","id":"…","progressDetail":{"current":n,"total":m}}`), the
//! digest (`{"status":"Digest: sha256:…"}`), and errors (`{"error":"…","errorDetail":{…}}`),
//! which come with the same `200`. Feed the de-chunked body as it arrives to
//! [`PullProgress::feed`]; a line longer than [`MAX_PULL_LINE`] or more layers than
//! [`MAX_PULL_LAYERS`] is an error, so a misbehaving daemon cannot grow it without bound.

/// The longest progress line we accept, in bytes.
pub const MAX_PULL_LINE: usize = 64 * 1024;
/// The most layers one pull may report.
pub const MAX_PULL_LAYERS: usize = 512;
/// The longest layer id kept, in bytes (dockerd sends 12 hex digits).
const MAX_LAYER_ID: usize = 128;
/// The longest error or digest text kept, in bytes.
const MAX_TEXT: usize = 1024;

/// Docker Hub's registry, as `config.json` names it.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// An image reference split for `POST /images/create?fromImage=…&tag=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// The repository, with its registry host if it names one (`127.0.0.1:5000/app`).
    pub repository: &'a str,
    /// The tag or the `sha256:…` digest; `latest` when the reference names neither.
    pub tag: &'a str,
}

impl<'a> ImageRef<'a> {
    /// Splits `image` as Docker does: a digest after `@`, else a tag after the last `:`
    /// that follows the last `/` (a registry's `:port` is not a tag).
    pub fn parse(image: &'a str) -> ImageRef<'a> {
        if let Some((repository, digest)) = image.split_once('@') {
            return ImageRef {
                repository,
                tag: digest,
            };
        }
        let name_start = image.rfind('/').map_or(0, |i| i + 1);
        match image[name_start..].rfind(':') {
            Some(i) => ImageRef {
                repository: &image[..name_start + i],
                tag: &image[name_start + i + 1..],
            },
            None => ImageRef {
                repository: image,
                tag: "latest",
            },
        }
    }

    /// The registry the image is pulled from, as `config.json`'s `auths` keys name it:
    /// the first component when it has a `.` or a `:` or is `localhost`, else Docker Hub.
    pub fn registry(&self) -> &'a str {
        match self.repository.split_once('/') {
            Some((first, _))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                first
            }
            _ => DOCKER_HUB,
        }
    }
}

/// A progress stream we cannot read: the daemon misbehaved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PullStreamError {
    /// A line ran past [`MAX_PULL_LINE`].
    #[error("a pull progress line is longer than {MAX_PULL_LINE} bytes")]
    LineTooLong,
    /// A line is not a JSON object.
    #[error("a pull progress line is not a JSON object: {0}")]
    NotJson(String),
    /// More than [`MAX_PULL_LAYERS`] layers.
    #[error("the pull reports more than {MAX_PULL_LAYERS} layers")]
    TooManyLayers,
}

/// Why the registry (through the daemon) refused or failed a pull.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PullFailure {
    /// No such repository or tag.
    #[error("not found in its registry: {0}")]
    NotFound(String),
    /// The registry wants credentials, or refused the ones sent.
    #[error("the registry refused the credentials (unauthorized): {0}")]
    Unauthorized(String),
    /// The registry cannot be reached.
    #[error("the registry is unreachable: {0}")]
    Unreachable(String),
    /// Anything else the daemon said.
    #[error("{0}")]
    Other(String),
}

impl PullFailure {
    /// Sorts the daemon's error message (its status, when the pull failed before the
    /// stream began, helps: 404 and 401).
    pub fn classify(status: Option<u16>, message: &str) -> PullFailure {
        let text = message.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
        let message = truncated(message).to_owned();
        if status == Some(401)
            || has(&[
                "unauthorized",
                "authentication required",
                "no basic auth credentials",
                "denied",
            ])
        {
            // "pull access denied … may require 'docker login'" is also Docker Hub's
            // answer for a repository that does not exist.
            PullFailure::Unauthorized(message)
        } else if has(&[
            "connection refused",
            "no such host",
            "i/o timeout",
            "dial tcp",
            "network is unreachable",
            "tls handshake",
            "server gave http response to https client",
        ]) {
            PullFailure::Unreachable(message)
        } else if status == Some(404) || has(&["not found", "manifest unknown", "no such"]) {
            PullFailure::NotFound(message)
        } else {
            PullFailure::Other(message)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Layer {
    id: String,
    current: u64,
    total: u64,
    downloaded: bool,
    done: bool,
}

/// How far a pull is, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PullSummary {
    /// Layers pulled (or already there).
    pub layers_done: usize,
    /// Layers reported so far.
    pub layers: usize,
    /// Bytes downloaded, over the layers whose size is known.
    pub bytes_done: u64,
    /// Bytes to download, over the layers whose size is known.
    pub bytes_total: u64,
}

impl std::fmt::Display for PullSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MB: u64 = 1_000_000;
        write!(
            f,
            "{}/{} layers, {}/{} MB",
            self.layers_done,
            self.layers,
            self.bytes_done / MB,
            self.bytes_total.div_ceil(MB)
        )
    }
}

/// Reads a pull's progress stream as it arrives.
#[derive(Debug, Default)]
pub struct PullProgress {
    /// The bytes of a line not yet complete.
    partial: Vec<u8>,
    layers: Vec<Layer>,
    digest: Option<String>,
    failure: Option<String>,
}

impl PullProgress {
    /// A reader for a new stream.
    pub fn new() -> PullProgress {
        PullProgress::default()
    }

    /// Reads the next bytes of the (de-chunked) body.
    ///
    /// # Errors
    ///
    /// A line over [`MAX_PULL_LINE`], a line that is not a JSON object, more than
    /// [`MAX_PULL_LAYERS`] layers. The reader is not to be fed again after an error.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), PullStreamError> {
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            let (head, rest) = data.split_at(end);
            data = &rest[1..];
            if self.partial.len() + head.len() > MAX_PULL_LINE {
                return Err(PullStreamError::LineTooLong);
            }
            let line = if self.partial.is_empty() {
                head.to_vec()
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                line
            };
            self.read_line(&line)?;
        }
        if self.partial.len() + data.len() > MAX_PULL_LINE {
            return Err(PullStreamError::LineTooLong);
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }

    /// The stream ended: a last line without its newline is read.
    ///
    /// # Errors
    ///
    /// As [`PullProgress::feed`], for that line.
    pub fn finish(&mut self) -> Result<(), PullStreamError> {
        let line = std::mem::take(&mut self.partial);
        self.read_line(&line)
    }

    /// The image's digest, once the daemon said it (dockerd does; Podman does not).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The first error the stream carried.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// How far the pull is.
    pub fn summary(&self) -> PullSummary {
        let mut summary = PullSummary {
            layers: self.layers.len(),
            ..PullSummary::default()
        };
        for layer in &self.layers {
            summary.layers_done += usize::from(layer.done);
            summary.bytes_total = summary.bytes_total.saturating_add(layer.total);
            let current = if layer.downloaded || layer.done {
                layer.total
            } else {
                layer.current.min(layer.total)
            };
            summary.bytes_done = summary.bytes_done.saturating_add(current);
        }
        summary
    }

    fn read_line(&mut self, line: &[u8]) -> Result<(), PullStreamError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| PullStreamError::NotJson(e.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(PullStreamError::NotJson("not an object".into()));
        };
        let text = |key: &str| object.get(key).and_then(serde_json::Value::as_str);
        let error = text("error").or_else(|| {
            object
                .get("errorDetail")
                .and_then(|d| d.get("message"))
                .and_then(serde_json::Value::as_str)
        });
        if let Some(error) = error {
            self.failure
                .get_or_insert_with(|| truncated(error).to_owned());
            return Ok(());
        }
        let status = text("status").unwrap_or_default();
        if let Some(digest) = status.strip_prefix("Digest: ") {
            self.digest = Some(truncated(digest.trim()).to_owned());
            return Ok(());
        }
        let Some(id) = text("id") else {
            return Ok(());
        };
        let detail = |key: &str| {
            object
                .get("progressDetail")
                .and_then(|d| d.get(key))
                .and_then(serde_json::Value::as_u64)
        };
        match status {
            "Pulling fs layer" | "Waiting" | "Retrying" => {
                self.layer(id)?;
            }
            "Downloading" => {
                let (current, total) = (detail("current"), detail("total"));
                let layer = self.layer(id)?;
                if let Some(total) = total {
                    layer.total = total;
                }
                if let Some(current) = current {
                    layer.current = current;
                }
            }
            "Verifying Checksum" | "Download complete" | "Extracting" => {
                self.layer(id)?.downloaded = true;
            }
            "Pull complete" | "Already exists" => {
                let layer = self.layer(id)?;
                layer.downloaded = true;
                layer.done = true;
            }
            _ => {}
        }
        Ok(())
    }

    /// The layer `id`, added when new.
    fn layer(&mut self, id: &str) -> Result<&mut Layer, PullStreamError> {
        let id = truncated_to(id, MAX_LAYER_ID);
        let index = match self.layers.iter().position(|l| l.id == id) {
            Some(index) => index,
            None if self.layers.len() >= MAX_PULL_LAYERS => {
                return Err(PullStreamError::TooManyLayers)
            }
            None => {
                self.layers.push(Layer {
                    id: id.to_owned(),
                    current: 0,
                    total: 0,
                    downloaded: false,
                    done: false,
                });
                self.layers.len() - 1
            }
        };
        Ok(&mut self.layers[index])
    }
}

/// The operator's (or a tenant's) registry credentials, read from a file in Docker's
/// `config.json` format: `{"auths": {"HOST[:PORT]": {"auth": "base64(user:password)"}}}`.
/// Neither `Debug` nor any error shows a user name or a password.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RegistryCredentials {
    entries: Vec<Credential>,
}

#[derive(Clone, PartialEq, Eq)]
struct Credential {
    /// As [`ImageRef::registry`] names it.
    registry: String,
    username: String,
    password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("registries", &self.registries().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A credentials file we cannot use; never quotes what the file says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// Not JSON, or no `auths` object.
    #[error("it is not Docker's config.json format ({0}); expected {{\"auths\": {{\"HOST[:PORT]\": {{\"auth\": \"base64(user:password)\"}}}}}}")]
    Format(String),
    /// An entry's `auth` is not base64 of `user:password`.
    #[error("the auth of registry {registry} is not base64 of user:password")]
    BadAuth {
        /// The entry's key.
        registry: String,
    },
}

impl RegistryCredentials {
    /// Reads a `config.json`'s `auths`. Entries without `auth` (a credential helper's)
    /// are skipped.
    ///
    /// # Errors
    ///
    /// [`CredentialsError`], naming the registry of a bad entry.
    pub fn from_config_json(text: &[u8]) -> Result<RegistryCredentials, CredentialsError> {
        let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
            CredentialsError::Format(format!("line {} column {}", e.line(), e.column()))
        })?;
        let Some(auths) = value.get("auths").and_then(serde_json::Value::as_object) else {
            return Err(CredentialsError::Format("no \"auths\" object".into()));
        };
        let mut entries = Vec::new();
        for (key, entry) in auths {
            let Some(auth) = entry.get("auth").and_then(serde_json::Value::as_str) else {
                continue;
            };
            let bad = || CredentialsError::BadAuth {
                registry: truncated(key).to_owned(),
            };
            let decoded = base64_decode(auth.trim()).ok_or_else(bad)?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
            entries.push(Credential {
                registry: registry_of_key(key).to_owned(),
                username: username.to_owned(),
                password: password.to_owned(),
            });
        }
        Ok(RegistryCredentials { entries })
    }

    /// The registries there are credentials for.
    pub fn registries(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.registry.as_str())
    }

    /// `X-Registry-Auth` for pulling `image`: base64url of
    /// `{"username","password","serveraddress"}`, only for the image's own registry.
    pub fn header_for(&self, image: &str) -> Option<String> {
        let registry = ImageRef::parse(image).registry();
        let entry = self.entries.iter().find(|e| e.registry == registry)?;
        let json = serde_json::json!({
            "username": entry.username,
            "password": entry.password,
            "serveraddress": entry.registry,
        });
        Some(base64url_encode(json.to_string().as_bytes()))
    }
}

/// A `config.json` key as [`ImageRef::registry`] names the registry: without scheme and
/// path; Docker Hub's several names are [`DOCKER_HUB`].
fn registry_of_key(key: &str) -> &str {
    let host = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        _ => host,
    }
}

const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 with the URL-safe alphabet and padding (Go's `base64.URLEncoding`, which
/// dockerd decodes `X-Registry-Auth` with).
fn base64url_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64_URL[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard or URL-safe base64, padded or not; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

/// `GET /images/{name}/json`: the image's id (`sha256:…`), what a container's `Image`
/// names.
///
/// # Errors
///
/// [`super::DaemonError::Status`] (404: no such image), or
/// [`super::DaemonError::Malformed`] for a body without an `Id`.
pub fn parse_image_id(
    response: &crate::http_reader::Response,
) -> Result<String, super::DaemonError> {
    super::parse_empty(response)?;
    let value: serde_json::Value = serde_json::from_slice(&response.body)
        .map_err(|e| super::DaemonError::Malformed(format!("image inspect: {e}")))?;
    match value.get("Id").and_then(serde_json::Value::as_str) {
        Some(id) if !id.is_empty() => Ok(truncated(id).to_owned()),
        _ => Err(super::DaemonError::Malformed(
            "image inspect without an Id".into(),
        )),
    }
}

fn truncated(text: &str) -> &str {
    truncated_to(text, MAX_TEXT)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncated_to(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What dockerd 24 sent for a two-layer image from a local registry, cut short.
    const DOCKERD_STREAM: &str = concat!(
        "{\"status\":\"Pulling from app\",\"id\":\"1.4\"}\r\n",
        "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"aaa\"}\r\n",
        "{\"status\":\"Already exists\",\"progressDetail\":{},\"id\":\"bbb\"}\r\n",
        "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":20000000,\"total\":50000000},\"progress\":\"[==>  ]\",\"id\":\"aaa\"}\r\n",
    );

    #[test]
    fn references_split_into_repository_and_tag() {
        let parse = |image| {
            let r = ImageRef::parse(image);
            (r.repository, r.tag, r.registry())
        };
        assert_eq!(parse("app"), ("app", "latest", DOCKER_HUB));
        assert_eq!(parse("app:1.4"), ("app", "1.4", DOCKER_HUB));
        assert_eq!(parse("library/app:1"), ("library/app", "1", DOCKER_HUB));
        assert_eq!(
            parse("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app", "latest", "127.0.0.1:5000")
        );
        assert_eq!(
            parse("127.0.0.1:5000/team/app:2"),
            ("127.0.0.1:5000/team/app", "2", "127.0.0.1:5000")
        );
        assert_eq!(
            parse("localhost/app@sha256:abc"),
            ("localhost/app", "sha256:abc", "localhost")
        );
        assert_eq!(
            parse("registry.example.com/app:3"),
            ("registry.example.com/app", "3", "registry.example.com")
        );
    }

    #[test]
    fn progress_is_counted_across_any_split() {
        let bytes = DOCKERD_STREAM.as_bytes();
        for cut in 0..bytes.len() {
            let mut progress = PullProgress::new();
            progress.feed(&bytes[..cut]).expect("valid");
            progress.feed(&bytes[cut..]).expect("valid");
            let summary = progress.summary();
            assert_eq!(summary.layers, 2, "cut at {cut}");
            assert_eq!(summary.layers_done, 1);
            assert_eq!(
                (summary.bytes_done, summary.bytes_total),
                (20_000_000, 50_000_000)
            );
            assert_eq!(summary.to_string(), "1/2 layers, 20/50 MB");
        }
    }

    #[test]
    fn the_digest_and_an_error_are_kept() {
        let mut progress = PullProgress::new();
        progress
            .feed(b"{\"status\":\"Digest: sha256:0123\"}\n{\"status\":\"Status: Downloaded newer image for app:1\"}\n")
            .expect("valid");
        assert_eq!(progress.digest(), Some("sha256:0123"));
        assert_eq!(progress.failure(), None);
        progress
            .feed(b"{\"errorDetail\":{\"message\":\"manifest unknown\"},\"error\":\"manifest unknown\"}")
            .expect("a partial line waits");
        assert_eq!(progress.failure(), None);
        progress.finish().expect("valid");
        assert_eq!(progress.failure(), Some("manifest unknown"));
    }

    #[test]
    fn caps_turn_a_runaway_stream_into_an_error() {
        let mut progress = PullProgress::new();
        assert_eq!(
            progress.feed(&vec![b'x'; MAX_PULL_LINE + 1]),
            Err(PullStreamError::LineTooLong)
        );
        let mut progress = PullProgress::new();
        let mut stream = String::new();
        for i in 0..=MAX_PULL_LAYERS {
            stream.push_str(&format!("{{\"status\":\"Waiting\",\"id\":\"{i}\"}}\n"));
        }
        assert_eq!(
            progress.feed(stream.as_bytes()),
            Err(PullStreamError::TooManyLayers)
        );
        assert!(matches!(
            PullProgress::new().feed(b"[1]\n"),
            Err(PullStreamError::NotJson(_))
        ));
    }

    #[test]
    fn credentials_go_to_their_registry_only_and_never_show() {
        let file = br#"{"auths": {
            "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcjN0"},
            "https://index.docker.io/v1/": {"auth": "Ym9iOmh1Yg=="},
            "helper.example": {}
        }}"#;
        let credentials = RegistryCredentials::from_config_json(file).expect("valid");
        let mut registries: Vec<&str> = credentials.registries().collect();
        registries.sort_unstable();
        assert_eq!(registries, ["127.0.0.1:5000", DOCKER_HUB]);
        let debug = format!("{credentials:?}");
        assert!(
            !debug.contains("alice") && !debug.contains("s3cr3t"),
            "{debug}"
        );
        let header = credentials
            .header_for("127.0.0.1:5000/app:1.4")
            .expect("a local registry entry");
        let json = base64_decode(&header).expect("base64url");
        let json: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({"username": "alice", "password": "s3cr3t", "serveraddress": "127.0.0.1:5000"})
        );
        assert!(credentials.header_for("app:1").is_some(), "Docker Hub's");
        assert_eq!(credentials.header_for("127.0.0.1:5001/app"), None);
        assert_eq!(credentials.header_for("helper.example/app"), None);
        let bad = RegistryCredentials::from_config_json(
            br#"{"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}"#,
        );
        assert_eq!(
            bad,
            Err(CredentialsError::BadAuth {
                registry: "r.example".into()
            })
        );
        let err = RegistryCredentials::from_config_json(b"{\"auths\": [\"secret\"]}").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn base64url_round_trips() {
        for len in 0..20u8 {
            let data: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(250))
                .collect();
            let encoded = base64url_encode(&data);
            assert!(!encoded.contains(['+', '/']));
            assert_eq!(base64_decode(&encoded), Some(data));
        }
    }

    #[test]
    fn failures_are_sorted_by_cause() {
        use PullFailure::*;
        let sort = |status, m: &str| std::mem::discriminant(&PullFailure::classify(status, m));
        let kind = |f: PullFailure| std::mem::discriminant(&f);
        assert_eq!(
            sort(
                None,
                "manifest for 127.0.0.1:5000/app:9 not found: manifest unknown"
            ),
            kind(NotFound(String::new()))
        );
        assert_eq!(
            sort(
                None,
                "Head \"http://127.0.0.1:5000/v2/app/manifests/1\": no basic auth credentials"
            ),
            kind(Unauthorized(String::new()))
        );
        assert_eq!(
            sort(Some(500), "Get \"http://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused"),
            kind(Unreachable(String::new()))
        );
        assert_eq!(sort(Some(404), "whatever"), kind(NotFound(String::new())));
        assert_eq!(sort(Some(500), "disk full"), kind(Other(String::new())));
    }
}
