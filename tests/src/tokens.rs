//! Bearer tokens for servers started with `--jwt-secret-file`: a fresh
//! HS256 secret per test, written to a file as a deployment would mount it.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "settings-sync";

pub struct Tokens {
    secret: Vec<u8>,
    dir: tempfile::TempDir,
}

impl Default for Tokens {
    fn default() -> Self {
        Self::new()
    }
}

impl Tokens {
    pub fn new() -> Self {
        let secret: Vec<u8> = (0..48).map(|_| rand::random::<u8>() % 26 + b'a').collect();
        let dir = tempfile::tempdir().expect("a temporary directory");
        // A trailing newline, as `echo secret > file` leaves: the server ignores it.
        let mut file = secret.clone();
        file.push(b'\n');
        std::fs::write(dir.path().join("jwt-secret"), file).expect("writing the secret");
        Tokens { secret, dir }
    }

    /// `serve` flags that make the server accept these tokens.
    pub fn flags(&self) -> Vec<String> {
        let path = self.dir.path().join("jwt-secret");
        [
            "--jwt-secret-file",
            path.to_str().expect("a UTF-8 path"),
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
        ]
        .map(String::from)
        .to_vec()
    }

    /// Valid claims for a user (`scope` empty) or a service, expiring in ten minutes.
    pub fn claims(tenant: &str, subject: &str, scope: &str) -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "tenant": tenant,
            "scope": scope,
            "exp": now() + 600,
            "iat": now(),
        })
    }

    pub fn sign(&self, claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .expect("signing a token")
    }

    pub fn user(&self, tenant: &str, subject: &str) -> String {
        self.sign(&Self::claims(tenant, subject, "openid"))
    }

    pub fn service(&self, tenant: &str, subject: &str) -> String {
        self.sign(&Self::claims(
            tenant,
            subject,
            "openid settings-sync:service",
        ))
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// `flags` as the `&[&str]` that `TestServer::start_with` takes.
pub fn strs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}
