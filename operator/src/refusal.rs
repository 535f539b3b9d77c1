//! What the operator refuses to deploy, decided from the spec alone.
//!
//! A server without authentication answers every pod that can reach it,
//! so that is never a default: a resource names the key set that signs
//! callers' tokens, or says `insecureNoAuth: true` out loud. A refused
//! resource gets nothing applied, and `Degraded` with the reason.

use crate::crd::{SecretKeyRef, SettingsSyncSpec};

/// How the server authenticates callers, as the spec asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode<'a> {
    /// Bearer JWTs verified against a JSON Web Key Set.
    Tokens {
        jwks: &'a SecretKeyRef,
        issuer: Option<&'a str>,
        audience: Option<&'a str>,
    },
    /// No authentication, asked for explicitly.
    Insecure,
}

/// Why a spec is not deployed. The message says what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "spec.auth is missing, and the operator deploys no server open to every pod: set auth.jwksSecretRef to the Secret key holding the JSON Web Key Set that signs callers' tokens, or auth.insecureNoAuth: true to serve without authentication"
    )]
    AuthenticationMissing,
    #[error(
        "spec.auth sets insecureNoAuth together with jwksSecretRef, issuer or audience; keep either the token settings or insecureNoAuth"
    )]
    AuthenticationContradictory,
}

impl Refusal {
    /// The condition reason: a fixed word per case.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::AuthenticationMissing => "AuthenticationMissing",
            Refusal::AuthenticationContradictory => "AuthenticationContradictory",
        }
    }
}

/// The authentication the spec asks for, or why it is refused. The API
/// server's CEL rules refuse the contradictory case at admission; this
/// check also covers resources stored before those rules existed.
pub fn auth_mode(spec: &SettingsSyncSpec) -> Result<AuthMode<'_>, Refusal> {
    let Some(auth) = &spec.auth else {
        return Err(Refusal::AuthenticationMissing);
    };
    let token_settings =
        auth.jwks_secret_ref.is_some() || auth.issuer.is_some() || auth.audience.is_some();
    match (&auth.jwks_secret_ref, auth.insecure_no_auth) {
        (_, true) if token_settings => Err(Refusal::AuthenticationContradictory),
        (_, true) => Ok(AuthMode::Insecure),
        (Some(jwks), false) => Ok(AuthMode::Tokens {
            jwks,
            issuer: auth.issuer.as_deref(),
            audience: auth.audience.as_deref(),
        }),
        (None, false) => Err(Refusal::AuthenticationMissing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::fixtures::settings_sync;
    use crate::crd::AuthSpec;

    fn with_auth(auth: Option<AuthSpec>) -> SettingsSyncSpec {
        let mut spec = settings_sync(1).spec;
        spec.auth = auth;
        spec
    }

    fn jwks() -> SecretKeyRef {
        SecretKeyRef {
            name: "jwks".into(),
            key: "keys.json".into(),
        }
    }

    #[test]
    fn a_spec_without_auth_is_refused() {
        assert_eq!(
            auth_mode(&with_auth(None)),
            Err(Refusal::AuthenticationMissing)
        );
    }

    #[test]
    fn an_empty_auth_is_refused_like_a_missing_one() {
        let spec = with_auth(Some(AuthSpec::default()));
        assert_eq!(auth_mode(&spec), Err(Refusal::AuthenticationMissing));
    }

    #[test]
    fn a_key_set_means_tokens_with_the_issuer_and_audience_given() {
        let spec = with_auth(Some(AuthSpec {
            jwks_secret_ref: Some(jwks()),
            issuer: Some("https://idp".into()),
            audience: None,
            insecure_no_auth: false,
        }));
        assert_eq!(
            auth_mode(&spec),
            Ok(AuthMode::Tokens {
                jwks: &jwks(),
                issuer: Some("https://idp"),
                audience: None
            })
        );
    }

    #[test]
    fn no_authentication_must_be_asked_for_explicitly() {
        let spec = with_auth(Some(AuthSpec {
            insecure_no_auth: true,
            ..AuthSpec::default()
        }));
        assert_eq!(auth_mode(&spec), Ok(AuthMode::Insecure));
    }

    #[test]
    fn insecure_with_any_token_setting_is_contradictory() {
        for auth in [
            AuthSpec {
                jwks_secret_ref: Some(jwks()),
                ..AuthSpec::default()
            },
            AuthSpec {
                issuer: Some("i".into()),
                ..AuthSpec::default()
            },
            AuthSpec {
                audience: Some("a".into()),
                ..AuthSpec::default()
            },
        ] {
            let spec = with_auth(Some(AuthSpec {
                insecure_no_auth: true,
                ..auth
            }));
            assert_eq!(auth_mode(&spec), Err(Refusal::AuthenticationContradictory));
        }
    }

    #[test]
    fn every_refusal_says_which_field_to_set() {
        for refusal in [
            Refusal::AuthenticationMissing,
            Refusal::AuthenticationContradictory,
        ] {
            assert!(refusal.to_string().contains("insecureNoAuth"));
            assert!(refusal.reason().starts_with("Authentication"));
        }
    }
}
