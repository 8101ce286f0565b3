//! The Docker Engine API: requests as HTTP/1.1 bytes and typed replies.
//!
//! CONTRACT (filled in by the HTTP/Docker work). Facts: `shared/DESIGN.md`, "Docker Engine API facts".
//! Every request carries `Host: docker`; the create body puts every host setting in
//! `HostConfig`; `/start` has no body. Requests are written into a caller-owned `Vec<u8>`.

mod replies;
mod requests;

pub use replies::*;
pub use requests::*;

/// An Engine API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    /// The newest version this crate speaks.
    pub const OURS: ApiVersion = ApiVersion {
        major: 1,
        minor: 44,
    };
    /// The oldest we accept: settings in `HostConfig` at create, and `/start` without a body.
    pub const MINIMUM: ApiVersion = ApiVersion {
        major: 1,
        minor: 24,
    };
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
