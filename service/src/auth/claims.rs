//! The claims of a token whose signature verified, checked strictly: each
//! claim has the JSON type its specification gives it or the token is
//! refused. A claim of the wrong type is never skipped, since a skipped
//! `aud` or `nbf` would silently widen what the token is good for.

use serde_json::{Map, Value};
use settings_sync_protocol::Id;

use super::SERVICE_SCOPE;
use super::token::{TokenError, Verified};

/// What the server requires of a token's claims.
#[derive(Clone, Debug, Default)]
pub struct ClaimRules {
    /// `iss` must be this (and present).
    pub issuer: Option<String>,
    /// `aud` must name this (and be present). Unset: a token with any
    /// `aud` was minted for some other service and is refused.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway: u64,
}

/// The identity `claims` vouch for at time `now` (seconds since 1970).
pub fn check(
    claims: &Map<String, Value>,
    rules: &ClaimRules,
    now: u64,
) -> Result<Verified, TokenError> {
    let now = now as f64;
    let leeway = rules.leeway as f64;
    let exp = numeric_date(claims, "exp")?.ok_or_else(|| missing("exp"))?;
    if now > exp + leeway {
        return Err(TokenError::Expired);
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now + leeway) {
        return Err(TokenError::NotYetValid);
    }
    numeric_date(claims, "iat")?;
    let issuer = string(claims, "iss")?;
    if let Some(required) = &rules.issuer
        && issuer != Some(required.as_str())
    {
        return Err(TokenError::Issuer);
    }
    let audience = audience(claims)?;
    let accepted = match (&rules.audience, &audience) {
        (_, None) => rules.audience.is_none(),
        (None, Some(_)) => false,
        (Some(required), Some(named)) => named.contains(&required.as_str()),
    };
    if !accepted {
        return Err(TokenError::Audience);
    }
    let id = |claim: &'static str| {
        let value = string(claims, claim)?.ok_or_else(|| missing(claim))?;
        Id::parse(claim, value)
            .map_err(|e| TokenError::Claim(format!("the token's `{claim}` claim: {e}")))
    };
    let scope = string(claims, "scope")?.unwrap_or_default();
    Ok(Verified {
        tenant: id("tenant")?,
        subject: id("sub")?,
        service_scope: scope.split(' ').any(|s| s == SERVICE_SCOPE),
    })
}

fn missing(claim: &'static str) -> TokenError {
    TokenError::Claim(format!("the token's `{claim}` claim is required"))
}

fn wrong_type(claim: &'static str, expected: &str) -> TokenError {
    TokenError::Claim(format!("the token's `{claim}` claim must be {expected}"))
}

/// RFC 7519 NumericDate: seconds since 1970, possibly fractional.
fn numeric_date(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<f64>, TokenError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(seconds) if seconds >= 0.0 => Ok(Some(seconds)),
            _ => Err(wrong_type(claim, "a non-negative number of seconds")),
        },
        Some(_) => Err(wrong_type(claim, "a number of seconds since 1970")),
    }
}

fn string<'a>(
    claims: &'a Map<String, Value>,
    claim: &'static str,
) -> Result<Option<&'a str>, TokenError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        // `scope` is one space-separated string (RFC 8693), never a list.
        Some(_) => Err(wrong_type(claim, "a string")),
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
fn audience(claims: &Map<String, Value>) -> Result<Option<Vec<&str>>, TokenError> {
    let expected = || wrong_type("aud", "a string or an array of strings");
    match claims.get("aud") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.as_str()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(expected))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(expected()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn valid() -> Value {
        json!({
            "iss": "https://issuer.test",
            "aud": "settings-sync",
            "sub": "alice",
            "tenant": "acme",
            "scope": "openid",
            "exp": NOW + 600,
        })
    }

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: Some("https://issuer.test".into()),
            audience: Some("settings-sync".into()),
            leeway: 30,
        }
    }

    fn check_with(
        rules: &ClaimRules,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Verified, TokenError> {
        let mut claims = valid();
        edit(&mut claims);
        check(claims.as_object().unwrap(), rules, NOW)
    }

    fn verdict(edit: impl FnOnce(&mut Value)) -> Result<Verified, TokenError> {
        check_with(&rules(), edit)
    }

    fn claim_error(result: Result<Verified, TokenError>) -> String {
        match result {
            Err(TokenError::Claim(message)) => message,
            other => panic!("expected a claim error, got {other:?}"),
        }
    }

    #[test]
    fn valid_claims_name_the_tenant_subject_and_scope() {
        let verified = verdict(|_| {}).unwrap();
        assert_eq!(verified.tenant.as_str(), "acme");
        assert_eq!(verified.subject.as_str(), "alice");
        assert!(!verified.service_scope);
        let service = verdict(|c| c["scope"] = json!("openid settings-sync:service")).unwrap();
        assert!(service.service_scope);
    }

    #[test]
    fn claims_of_the_wrong_type_are_refused_not_skipped() {
        let unset = ClaimRules {
            leeway: 30,
            ..ClaimRules::default()
        };
        let without_aud = |c: &mut Value| {
            c.as_object_mut().unwrap().remove("aud");
        };
        check_with(&unset, without_aud).expect("valid without aud when none is configured");
        let mut wrong = Vec::new();
        for (claim, value) in [
            ("aud", json!(5)),
            ("aud", json!(["settings-sync", 5])),
            ("nbf", json!("yesterday")),
            ("exp", json!("tomorrow")),
            ("exp", json!(-1)),
            ("iat", json!(true)),
            ("iss", json!(["https://issuer.test"])),
            ("sub", json!(42)),
            ("tenant", json!({"id": "acme"})),
            ("scope", json!(["openid", "settings-sync:service"])),
        ] {
            let edit = |c: &mut Value| c[claim] = value.clone();
            let without_rules = check_with(&unset, |c| {
                without_aud(c);
                edit(c);
            });
            for (rules, result) in [("none", without_rules), ("configured", verdict(edit))] {
                match result {
                    Err(TokenError::Claim(message)) if message.contains(&format!("`{claim}`")) => {}
                    other => wrong.push(format!("{claim}: {value} ({rules} rules): {other:?}")),
                }
            }
        }
        // Every case is checked before failing, so the message lists each
        // claim that was skipped (accepted) or refused for another reason.
        assert!(wrong.is_empty(), "not refused as a bad claim: {wrong:#?}");
    }

    #[test]
    fn aud_as_an_array_must_name_the_configured_audience() {
        let with = verdict(|c| c["aud"] = json!(["other", "settings-sync"]));
        assert!(with.is_ok(), "{with:?}");
        let without = verdict(|c| c["aud"] = json!(["other", "another"]));
        assert_eq!(without, Err(TokenError::Audience));
        assert_eq!(verdict(|c| c["aud"] = json!([])), Err(TokenError::Audience));
        let unset = ClaimRules::default();
        let minted_elsewhere = check_with(&unset, |c| c["aud"] = json!(["settings-sync"]));
        assert_eq!(minted_elsewhere, Err(TokenError::Audience));
    }

    #[test]
    fn exp_and_nbf_tolerate_exactly_thirty_seconds_of_skew() {
        let at = |offset: i64| (NOW as i64 + offset) as u64;
        assert!(verdict(|c| c["exp"] = json!(at(-30))).is_ok());
        assert_eq!(
            verdict(|c| c["exp"] = json!(at(-31))),
            Err(TokenError::Expired)
        );
        assert!(verdict(|c| c["nbf"] = json!(at(30))).is_ok());
        assert_eq!(
            verdict(|c| c["nbf"] = json!(at(31))),
            Err(TokenError::NotYetValid)
        );
        // NumericDate may be fractional, and is compared as it is: half a
        // second past the leeway is expired (the jsonwebtoken checks this
        // replaced rounded it to the second, and accepted this token).
        assert_eq!(
            verdict(|c| c["exp"] = json!(at(-30) as f64 - 0.5)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_missing_or_bad_subject_or_tenant_is_refused() {
        for claim in ["sub", "tenant", "exp"] {
            let message = claim_error(verdict(|c| {
                c.as_object_mut().unwrap().remove(claim);
            }));
            assert!(message.contains("required"), "{claim}: {message}");
        }
        for bad in ["", "al ice", "alice/evil", &"a".repeat(200)] {
            let message = claim_error(verdict(|c| c["sub"] = json!(bad)));
            assert!(message.contains("`sub` claim: sub "), "{bad:?}: {message}");
        }
    }

    #[test]
    fn a_wrong_or_missing_issuer_is_refused_when_one_is_configured() {
        assert_eq!(
            verdict(|c| c["iss"] = json!("https://evil.test")),
            Err(TokenError::Issuer)
        );
        let no_iss = verdict(|c| {
            c.as_object_mut().unwrap().remove("iss");
        });
        assert_eq!(no_iss, Err(TokenError::Issuer));
    }
}
