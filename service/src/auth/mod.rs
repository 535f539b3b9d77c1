//! Who is calling, and may they do this.
//!
//! - [`token`]: verifies bearer JWTs (JWKS with RS256/ES256, or a shared
//!   HMAC secret for development): the signature and the key.
//! - [`claims`]: the pure, strict check of a verified token's claims.
//! - [`authorize`]: the pure decision: may this caller make this call on
//!   these keys? No I/O; the table of every case is tested there.
//! - [`interceptor`]: the gRPC edge: reads `authorization: Bearer …`, checks
//!   the rate limit, and puts the [`Caller`] into the request's extensions,
//!   where the handlers find it and ask [`authorize()`].
//!
//! The tenant and the caller's identity come only from a verified token,
//! never from request fields: a request names keys, the token says whose.

pub mod authorize;
pub mod claims;
pub mod interceptor;
pub mod token;

use std::net::IpAddr;
use std::path::PathBuf;

use settings_sync_protocol::Id;

pub use authorize::{Access, Denied, authorize};
pub use interceptor::{AuthError, Authenticated, Authenticator};
pub use token::{TokenConfigError, TokenVerifier};

/// The scope (in the space-separated `scope` claim) that marks a backend
/// service rather than a person.
pub const SERVICE_SCOPE: &str = "settings-sync:service";

/// The `serve` flags about authentication.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// A JSON Web Key Set (RSA keys for RS256, P-256 keys for ES256) that
    /// verifies bearer tokens; tokens name their key with `kid`.
    #[arg(
        long,
        env = "SETTINGS_SYNC_JWKS_FILE",
        conflicts_with = "jwt_secret_file"
    )]
    pub jwks_file: Option<PathBuf>,
    /// A file holding a shared HS256 secret (at least 32 bytes; trailing
    /// whitespace ignored), for development. Never logged.
    #[arg(long, env = "SETTINGS_SYNC_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Accept only tokens with this `iss`.
    #[arg(long, env = "SETTINGS_SYNC_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Accept only tokens whose `aud` names this audience.
    #[arg(long, env = "SETTINGS_SYNC_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Serve without authentication: every caller may do everything. For
    /// local development only; logged as a warning at start.
    #[arg(
        long,
        env = "SETTINGS_SYNC_INSECURE_NO_AUTH",
        conflicts_with_all = ["jwks_file", "jwt_secret_file"]
    )]
    pub insecure_no_auth: bool,
}

/// Whether a verified identity is a person or a backend service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// May touch only documents it owns (key.owner == subject).
    User,
    /// May read, query, watch and write any document of its tenant.
    Service,
}

/// What a verified token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub tenant: Id,
    pub subject: Id,
    pub role: Role,
}

/// The caller of one RPC, as the interceptor established it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Authenticated(Identity),
    /// `--insecure-no-auth`: nobody was checked; everything is allowed.
    Insecure {
        peer: Option<IpAddr>,
    },
}

impl Caller {
    /// The identity rate limits and Watch caps are counted against.
    pub fn limit_key(&self) -> String {
        match self {
            Caller::Authenticated(id) => format!("{}/{}", id.tenant, id.subject),
            Caller::Insecure { peer: Some(ip) } => ip.to_string(),
            Caller::Insecure { peer: None } => "unknown-peer".to_owned(),
        }
    }
}
