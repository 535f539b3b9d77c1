//! Bearer JWT verification. Two key sources, never both:
//!
//! - a JSON Web Key Set file: RSA keys verify RS256, P-256 keys verify
//!   ES256; a token picks its key with `kid` (optional when the set holds
//!   one key). Symmetric (`oct`) keys in a set are refused at start, so a
//!   public JWKS can never double as an HMAC secret (algorithm confusion).
//! - a shared HS256 secret from a file, for development.
//!
//! The signature is checked here; the claims, strictly, in [`super::claims`].

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::{Map, Value};
use settings_sync_protocol::Id;

use super::AuthArgs;
use super::claims::{self, ClaimRules};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;
/// HS256 keys shorter than its output size are guessable.
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the JWT secret in {0} is shorter than {MIN_SECRET_BYTES} bytes")]
    ShortSecret(PathBuf),
    #[error("{path} is not a JSON Web Key Set: {source}")]
    Jwks {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: key {kid:?} is not an RSA or P-256 public key")]
    UnsupportedKey { path: PathBuf, kid: Option<String> },
    #[error("{path}: key {kid:?}: {source}")]
    BadKey {
        path: PathBuf,
        kid: Option<String>,
        source: jsonwebtoken::errors::Error,
    },
    #[error(
        "{path}: key {kid:?} declares alg {declared:?}, but this server verifies {key_type} keys with {expected:?}"
    )]
    AlgorithmMismatch {
        path: PathBuf,
        kid: Option<String>,
        declared: KeyAlgorithm,
        key_type: &'static str,
        expected: Algorithm,
    },
    #[error("{path}: key {kid:?} is for encryption (\"use\": \"enc\"), not signatures")]
    NotForSignatures { path: PathBuf, kid: Option<String> },
    #[error("{0} holds no keys")]
    NoKeys(PathBuf),
}

/// Why a token was not accepted. Answered as UNAUTHENTICATED.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's issuer (iss) is not accepted")]
    Issuer,
    #[error("the token's audience (aud) is not accepted")]
    Audience,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token names no key this server knows (kid {0:?})")]
    UnknownKey(Option<String>),
    #[error("the token's algorithm {0:?} is not accepted here")]
    Algorithm(Algorithm),
    /// A claim missing, of the wrong type, or not a valid id.
    #[error("{0}")]
    Claim(String),
    #[error("the token is malformed: {0}")]
    Malformed(String),
}

/// The claims a verified token vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub tenant: Id,
    pub subject: Id,
    /// The `scope` claim includes [`SERVICE_SCOPE`].
    pub service_scope: bool,
}

enum Keys {
    Hmac(DecodingKey),
    Jwks(Vec<(Option<String>, Algorithm, DecodingKey)>),
}

pub struct TokenVerifier {
    keys: Keys,
    rules: ClaimRules,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even the HMAC secret's bytes.
        f.debug_struct("TokenVerifier").finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// The verifier `args` configure, or `None` when no key source is set.
    pub fn from_args(args: &AuthArgs) -> Result<Option<Self>, TokenConfigError> {
        let keys = match (&args.jwks_file, &args.jwt_secret_file) {
            (Some(path), _) => Keys::Jwks(load_jwks(path)?),
            (None, Some(path)) => Keys::Hmac(load_secret(path)?),
            (None, None) => return Ok(None),
        };
        let rules = ClaimRules {
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
            leeway: LEEWAY_SECONDS,
        };
        Ok(Some(TokenVerifier { keys, rules }))
    }

    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(token_error)?;
        let (algorithm, key) = match &self.keys {
            Keys::Hmac(key) => (Algorithm::HS256, key),
            Keys::Jwks(keys) => {
                let found = match &header.kid {
                    Some(kid) => keys.iter().find(|(k, ..)| k.as_deref() == Some(kid)),
                    None if keys.len() == 1 => keys.first(),
                    None => None,
                };
                let (_, algorithm, key) =
                    found.ok_or_else(|| TokenError::UnknownKey(header.kid.clone()))?;
                (*algorithm, key)
            }
        };
        if header.alg != algorithm {
            return Err(TokenError::Algorithm(header.alg));
        }
        // jsonwebtoken checks the signature only; `claims::check` checks
        // every claim, strictly, in one place.
        let mut signature_only = Validation::new(algorithm);
        signature_only.required_spec_claims.clear();
        signature_only.validate_exp = false;
        signature_only.validate_nbf = false;
        signature_only.validate_aud = false;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, &signature_only)
            .map_err(token_error)?
            .claims;
        claims::check(&claims, &self.rules, now())
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn token_error(error: jsonwebtoken::errors::Error) -> TokenError {
    match error.into_kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => TokenError::Signature,
        ErrorKind::Json(e) => TokenError::Malformed(format!("claims: {e}")),
        other => TokenError::Malformed(format!("{other:?}")),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TokenConfigError> {
    std::fs::read(path).map_err(|source| TokenConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load_secret(path: &Path) -> Result<DecodingKey, TokenConfigError> {
    let mut secret = read(path)?;
    // Secrets written with `echo` end in a newline nobody meant as key material.
    while secret.last().is_some_and(u8::is_ascii_whitespace) {
        secret.pop();
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Err(TokenConfigError::ShortSecret(path.to_owned()));
    }
    Ok(DecodingKey::from_secret(&secret))
}

fn load_jwks(
    path: &Path,
) -> Result<Vec<(Option<String>, Algorithm, DecodingKey)>, TokenConfigError> {
    let set: JwkSet =
        serde_json::from_slice(&read(path)?).map_err(|source| TokenConfigError::Jwks {
            path: path.to_owned(),
            source,
        })?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone();
        let (key_type, algorithm) = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => ("RSA", Algorithm::RS256),
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                ("P-256", Algorithm::ES256)
            }
            _ => {
                return Err(TokenConfigError::UnsupportedKey {
                    path: path.to_owned(),
                    kid,
                });
            }
        };
        // A key declared for another algorithm (RS384, PS256, or ES256 on an
        // RSA key) would be used in a way its owner did not intend: refuse.
        if let Some(declared) = jwk.common.key_algorithm
            && format!("{declared:?}") != format!("{algorithm:?}")
        {
            return Err(TokenConfigError::AlgorithmMismatch {
                path: path.to_owned(),
                kid,
                declared,
                key_type,
                expected: algorithm,
            });
        }
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            return Err(TokenConfigError::NotForSignatures {
                path: path.to_owned(),
                kid,
            });
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|source| TokenConfigError::BadKey {
            path: path.to_owned(),
            kid: kid.clone(),
            source,
        })?;
        keys.push((kid, algorithm, key));
    }
    if keys.is_empty() {
        return Err(TokenConfigError::NoKeys(path.to_owned()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;
