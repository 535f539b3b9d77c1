//! The Secrets a `SettingsSync` refers to, and what is wrong with them.
//!
//! Checked before anything that would use them is created, so a missing
//! Secret shows as `Degraded: DatabaseSecretMissing` on the resource instead
//! of a pod stuck in `CreateContainerConfigError` that nobody looks at.

use k8s_openapi::api::core::v1::Secret;

use crate::builders::Instance;
use crate::refusal::{AuthMode, auth_mode};
use crate::status::Blocker;

/// One Secret the server needs, and the keys it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNeed {
    /// `Database`, `Tls`, `ClientCa` or `Jwks`: the prefix of the condition reasons.
    pub purpose: &'static str,
    pub name: String,
    pub keys: Vec<String>,
}

pub fn secret_needs(instance: &Instance) -> Vec<SecretNeed> {
    let spec = &instance.spec;
    let db = &spec.database.url_secret_ref;
    let mut needs = vec![SecretNeed {
        purpose: "Database",
        name: db.name.clone(),
        keys: vec![db.key.clone()],
    }];
    if let Some(tls) = &spec.tls {
        needs.push(SecretNeed {
            purpose: "Tls",
            name: tls.secret_name.clone(),
            keys: vec!["tls.crt".into(), "tls.key".into()],
        });
        if let Some(ca) = &tls.client_ca_secret_ref {
            needs.push(SecretNeed {
                purpose: "ClientCa",
                name: ca.name.clone(),
                keys: vec![ca.key.clone()],
            });
        }
    }
    if let Ok(AuthMode::Tokens { jwks, .. }) = auth_mode(spec) {
        needs.push(SecretNeed {
            purpose: "Jwks",
            name: jwks.name.clone(),
            keys: vec![jwks.key.clone()],
        });
    }
    needs
}

/// What is wrong with `secret` (as read, `None` when absent) for `need`.
pub fn check(namespace: &str, need: &SecretNeed, secret: Option<&Secret>) -> Option<Blocker> {
    let name = &need.name;
    let Some(secret) = secret else {
        return Some(Blocker::Secret {
            reason: format!("{}SecretMissing", need.purpose),
            message: format!(
                "Secret {namespace}/{name} does not exist; create it with key(s) {}",
                need.keys.join(", ")
            ),
        });
    };
    let data = secret.data.as_ref();
    let missing: Vec<&str> = need
        .keys
        .iter()
        .filter(|key| data.is_none_or(|d| d.get(*key).is_none_or(|v| v.0.is_empty())))
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| Blocker::Secret {
        reason: format!("{}SecretKeyMissing", need.purpose),
        message: format!(
            "Secret {namespace}/{name} has no (or an empty) key {}; add it",
            missing.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::fixtures::instance;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(key: &str, value: &str) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    fn reason(blocker: Option<Blocker>) -> Option<String> {
        blocker.map(|b| b.reason().to_string())
    }

    #[test]
    fn the_database_secret_is_always_needed_and_the_key_set_with_tokens() {
        let needs = secret_needs(&instance(1));
        let names: Vec<_> = needs.iter().map(|n| (n.purpose, n.name.as_str())).collect();
        assert_eq!(names, [("Database", "prefs-db"), ("Jwks", "prefs-jwks")]);
    }

    #[test]
    fn mutual_tls_needs_the_client_ca_key() {
        let mut instance = instance(1);
        instance.spec.tls = Some(crate::crd::TlsSpec {
            secret_name: "prefs-tls".into(),
            client_ca_secret_ref: Some(crate::crd::SecretKeyRef {
                name: "clients".into(),
                key: "ca.crt".into(),
            }),
        });
        let ca = secret_needs(&instance)
            .into_iter()
            .find(|n| n.purpose == "ClientCa")
            .unwrap();
        assert_eq!(
            (ca.name.as_str(), ca.keys.as_slice()),
            ("clients", &["ca.crt".to_string()][..])
        );
        assert_eq!(
            reason(check("apps", &ca, None)).as_deref(),
            Some("ClientCaSecretMissing")
        );
    }

    #[test]
    fn an_absent_secret_is_reported_as_missing() {
        let need = &secret_needs(&instance(1))[0];
        assert_eq!(
            reason(check("apps", need, None)).as_deref(),
            Some("DatabaseSecretMissing")
        );
    }

    #[test]
    fn a_secret_without_the_key_or_with_an_empty_value_is_reported() {
        let need = &secret_needs(&instance(1))[0];
        let wrong_key = secret("uri", "postgres://x");
        let empty = secret("url", "");
        for s in [wrong_key, empty] {
            assert_eq!(
                reason(check("apps", need, Some(&s))).as_deref(),
                Some("DatabaseSecretKeyMissing")
            );
        }
    }

    #[test]
    fn a_secret_with_the_key_is_fine() {
        let need = &secret_needs(&instance(1))[0];
        assert!(check("apps", need, Some(&secret("url", "postgres://x"))).is_none());
    }
}
