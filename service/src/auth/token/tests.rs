//! The verifier against real signatures: RS256 and ES256 keys through a
//! JWKS file, key selection by `kid`, and keys the server must refuse.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;

/// A 2048-bit RSA key made for these tests only, and its public modulus.
/// (PKCS#1 DER: jsonwebtoken is built without its PEM feature.)
const RSA_DER: &[u8] = include_bytes!("test-only-rsa-key.der");
const RSA_N: &str = "-xTABSWQoz9EzLT3cGsOOgQQZvwq6t1bo1qxf6HrKn4Yyx-rEr2Wt1R3SHw7OyMeaqt2BI0nH6vc34kpo_eJ8fVQfvDhALHn8sa94F9bmC6K1oIO_0aOHvMzd9tDuZOX3DI48P1E9gkuF4wl3HKScE-ZoIqlI9qrltAkZFGptvJeoMkt8GVC-hmqpH0OlQq83dtzBTKYjIGQEWRSZwrA1XHjYSGbEsOuub_QWmiK-VDmZziZG_5t8xji2BaSKUoLhZl6Wru81U02k2aWC8ZjsiGFkuWrH8ho62EiEBXkg5KczfETxN2L6K-AiYLlVyvm1auaLoMK3nkPa7Ib6qd11Q";

struct Jwks {
    _dir: tempfile::TempDir,
    args: AuthArgs,
}

fn jwks(keys: Value) -> Result<(Jwks, Option<TokenVerifier>), TokenConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, json!({ "keys": keys }).to_string()).unwrap();
    let args = AuthArgs {
        jwks_file: Some(path),
        jwt_issuer: Some("https://issuer.test".into()),
        jwt_audience: Some("settings-sync".into()),
        ..AuthArgs::default()
    };
    let verifier = TokenVerifier::from_args(&args)?;
    Ok((Jwks { _dir: dir, args }, verifier))
}

fn verifier(keys: Value) -> TokenVerifier {
    jwks(keys).unwrap().1.unwrap()
}

fn rsa_jwk(kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "use": "sig", "n": RSA_N, "e": "AQAB"})
}

struct EcKey {
    pair: rcgen::KeyPair,
}

impl EcKey {
    fn new() -> Self {
        EcKey {
            pair: rcgen::KeyPair::generate().unwrap(), // ECDSA P-256
        }
    }

    fn jwk(&self, kid: &str) -> Value {
        let point = self.pair.public_key_raw(); // 0x04 || x || y
        json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    fn sign(&self, kid: Option<&str>) -> String {
        let key = EncodingKey::from_ec_der(&self.pair.serialize_der());
        sign(Algorithm::ES256, kid, &key)
    }
}

fn claims() -> Value {
    json!({
        "iss": "https://issuer.test",
        "aud": "settings-sync",
        "sub": "alice",
        "tenant": "acme",
        "exp": now() + 600,
    })
}

fn sign(algorithm: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims(), key).unwrap()
}

fn rsa_sign(kid: Option<&str>) -> String {
    let key = EncodingKey::from_rsa_der(RSA_DER);
    sign(Algorithm::RS256, kid, &key)
}

#[test]
fn rs256_and_es256_tokens_verify_through_a_jwks_by_their_kid() {
    let ec = EcKey::new();
    let verifier = verifier(json!([rsa_jwk("rsa-1"), ec.jwk("ec-1")]));
    for token in [rsa_sign(Some("rsa-1")), ec.sign(Some("ec-1"))] {
        let verified = verifier.verify(&token).unwrap();
        assert_eq!(verified.subject.as_str(), "alice");
    }
    // Each key verifies only its own algorithm's signatures.
    assert_eq!(
        verifier.verify(&rsa_sign(Some("ec-1"))),
        Err(TokenError::Algorithm(Algorithm::RS256))
    );
    assert_eq!(
        verifier.verify(&rsa_sign(Some("nope"))),
        Err(TokenError::UnknownKey(Some("nope".into())))
    );
    let other = EcKey::new();
    assert_eq!(
        verifier.verify(&other.sign(Some("ec-1"))),
        Err(TokenError::Signature)
    );
}

#[test]
fn a_token_without_kid_is_refused_when_the_set_has_several_keys() {
    let ec = EcKey::new();
    let one = verifier(json!([ec.jwk("ec-1")]));
    assert!(one.verify(&ec.sign(None)).is_ok(), "one key: no kid needed");
    let several = verifier(json!([ec.jwk("ec-1"), rsa_jwk("rsa-1")]));
    assert_eq!(
        several.verify(&ec.sign(None)),
        Err(TokenError::UnknownKey(None))
    );
}

#[test]
fn a_jwks_alg_that_does_not_fit_its_key_is_refused_at_start() {
    let ec = EcKey::new();
    let mut cases = Vec::new();
    for (jwk, alg) in [
        (rsa_jwk("rsa-1"), "ES256"),
        (rsa_jwk("rsa-1"), "RS384"),
        (rsa_jwk("rsa-1"), "PS256"),
        (ec.jwk("ec-1"), "RS256"),
        (ec.jwk("ec-1"), "HS256"),
    ] {
        let mut jwk = jwk;
        jwk["alg"] = json!(alg);
        let error = jwks(json!([jwk])).err().expect("refused");
        cases.push(error.to_string());
        assert!(
            matches!(error, TokenConfigError::AlgorithmMismatch { .. }),
            "{alg}: {error}"
        );
    }
    assert!(cases[0].contains("declares alg ES256"), "{}", cases[0]);
    assert!(cases[0].contains("RSA keys with RS256"), "{}", cases[0]);
    let mut fits = rsa_jwk("rsa-1");
    fits["alg"] = json!("RS256");
    assert!(jwks(json!([fits])).is_ok());
    let mut encryption = ec.jwk("ec-1");
    encryption["use"] = json!("enc");
    assert!(matches!(
        jwks(json!([encryption])).err(),
        Some(TokenConfigError::NotForSignatures { .. })
    ));
}

#[test]
fn an_hmac_token_is_never_verified_with_a_public_key() {
    let (set, verifier) = jwks(json!([rsa_jwk("rsa-1")])).unwrap();
    let verifier = verifier.unwrap();
    assert!(set.args.jwt_secret_file.is_none());
    let confused = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &EncodingKey::from_secret(RSA_N.as_bytes()),
    );
    assert_eq!(
        verifier.verify(&confused),
        Err(TokenError::Algorithm(Algorithm::HS256))
    );
}

#[test]
fn claims_are_checked_after_the_signature() {
    let verifier = verifier(json!([rsa_jwk("rsa-1")]));
    let key = EncodingKey::from_rsa_der(RSA_DER);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let mut bad = claims();
    bad["nbf"] = json!("not a number");
    let token = jsonwebtoken::encode(&header, &bad, &key).unwrap();
    let error = verifier.verify(&token).unwrap_err();
    assert!(error.to_string().contains("`nbf`"), "{error}");
}
