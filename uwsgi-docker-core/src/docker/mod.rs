//! The Docker Engine API: requests as [`http::Request`]s or HTTP/1.1 bytes, and typed replies.
//!
//! Negotiate the API version once: send [`version_request`] (unversioned), read the
//! reply with [`crate::http_reader::ResponseReader`], and pass [`parse_version`]'s result
//! to [`Api::negotiate`]. From then on every request goes to `/v<min(ours, daemon's)>/…`,
//! which must not be below the daemon's own minimum (Docker 29.0–29.2 refuse anything
//! below 1.44 with 400 "client version … is too old"; 29.3 lowered that to 1.40).
//!
//! Each [`Api`] method comes in two forms: `*_request` returns the
//! `http::Request<Vec<u8>>`, for a caller with an HTTP client of its own, and the plain
//! form appends the same request as HTTP/1.1 bytes to a caller-owned `Vec<u8>`, ready to
//! write to the daemon's unix socket ([`to_bytes`] turns one into the other). Every
//! request carries `Host: docker` (dockerd refuses requests without one); the create body
//! puts every host setting in `HostConfig`; `/start` has no body.
//!
//! The replies each request expects, parsed by the `parse_*` functions:
//!
//! | request | success | parser |
//! |---|---|---|
//! | `GET /version` | 200 | [`parse_version`] |
//! | create | 201 `{"Id","Warnings"}` | [`parse_create`] |
//! | attach | `101 UPGRADED`, then the raw stream ([`crate::attach`]) | [`parse_attach`] |
//! | wait | 200 head at once, body `{"StatusCode":n}` at exit | [`parse_wait_body`] |
//! | start, stop, kill, remove | 204 (or 304: nothing to do) | [`parse_empty`] |
//! | inspect | 200 | [`parse_inspect`] |
//! | list | 200 | [`parse_list`] |
//! | pull (`POST /images/create`) | 200, then a progress stream | [`PullProgress`] |
//!
//! Errors are a [`DaemonError`] carrying the daemon's own message; Docker's and Podman's
//! error shapes are both understood.

mod pull;
mod replies;
mod requests;

pub use pull::*;
pub use replies::*;
pub use requests::*;

/// An Engine API version, `major.minor`; ordered as versions are (`1.9 < 1.10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// The major version (1 for every Engine API so far).
    pub major: u16,
    /// The minor version.
    pub minor: u16,
}

impl ApiVersion {
    /// The newest version this crate speaks.
    pub const OURS: ApiVersion = ApiVersion {
        major: 1,
        minor: 44,
    };
    /// The oldest we accept (Docker 17.06): every request we send works from here on.
    /// `wait?condition=next-exit` needs 1.30; `AutoRemove`, `NanoCpus`, `StopTimeout`,
    /// `Init` and `HostConfig.Mounts` need 1.25; settings in `HostConfig` at create and
    /// `/start` without a body need 1.24. An older daemon would accept the requests and
    /// ignore what it does not know, so it is refused instead.
    pub const MINIMUM: ApiVersion = ApiVersion {
        major: 1,
        minor: 30,
    };
}

/// The API versions a daemon's `/version` reply names: its newest (`ApiVersion`) and, when
/// it says, its oldest (`MinAPIVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonApi {
    /// The newest version the daemon speaks.
    pub newest: ApiVersion,
    /// The oldest version the daemon accepts; `None` when its reply does not say (an old
    /// daemon, or only an `Api-Version` header).
    pub minimum: Option<ApiVersion>,
}

impl From<ApiVersion> for DaemonApi {
    /// A daemon known only by its newest version.
    fn from(newest: ApiVersion) -> DaemonApi {
        DaemonApi {
            newest,
            minimum: None,
        }
    }
}

impl ApiVersion {
    /// Parses `major.minor` as the daemon writes it (`"1.41"`); `None` for anything else.
    pub fn parse(text: &str) -> Option<ApiVersion> {
        let (major, minor) = text.trim().split_once('.')?;
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        Some(ApiVersion {
            major: number(major)?,
            minor: number(minor)?,
        })
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            ApiVersion::parse("1.41"),
            Some(ApiVersion {
                major: 1,
                minor: 41
            })
        );
        assert_eq!(
            ApiVersion::parse(" 1.4 ").map(|v| v.to_string()),
            Some("1.4".into())
        );
        for bad in [
            "",
            "1",
            "1.",
            ".4",
            "1.41.0",
            "v1.41",
            "1.-4",
            "1.+4",
            "99999999.1",
        ] {
            assert_eq!(ApiVersion::parse(bad), None, "{bad}");
        }
        assert!(ApiVersion::MINIMUM < ApiVersion::parse("1.41").unwrap());
        assert!(ApiVersion::parse("1.9").unwrap() < ApiVersion::parse("1.10").unwrap());
    }
}
