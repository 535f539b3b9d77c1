//! The gRPC edge of authentication: every SettingsSync call passes here
//! before its handler. It establishes the [`Caller`] from the bearer token
//! (and, with mTLS, the client certificate), charges the caller's rate
//! limit, and leaves the `Caller` in the request's extensions. Health and
//! reflection are not behind it: probes carry no tokens.

use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::Either;
use http::{Extensions, HeaderMap};
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::token::{TokenError, TokenVerifier};
use super::{Caller, Identity, Role};
use crate::api::ApiError;
use crate::limits::RateLimiter;

/// Why a caller is not authenticated. Answered as UNAUTHENTICATED.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing `authorization: Bearer <token>` metadata")]
    Missing,
    #[error("the authorization metadata must be `Bearer <token>`")]
    NotBearer,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(
        "a token with the settings-sync:service scope needs a verified client certificate on this server"
    )]
    ServiceNeedsClientCert,
}

/// Decides who the caller is; shared by every connection.
#[derive(Clone, Debug)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None`: `--insecure-no-auth`.
    verifier: Option<TokenVerifier>,
    /// mTLS is on: the service scope counts only with a verified client
    /// certificate, so a leaked service token alone is not enough.
    service_needs_client_cert: bool,
    rate: Option<RateLimiter>,
}

impl Authenticator {
    pub fn new(
        verifier: Option<TokenVerifier>,
        service_needs_client_cert: bool,
        rate: Option<RateLimiter>,
    ) -> Self {
        Authenticator {
            inner: Arc::new(Inner {
                verifier,
                service_needs_client_cert,
                rate,
            }),
        }
    }

    /// The caller of a request with these headers and connection info, if
    /// authenticated and within its rate limit.
    pub fn admit(&self, headers: &HeaderMap, connection: &Extensions) -> Result<Caller, ApiError> {
        let caller = self.inner.caller(headers, connection)?;
        if let Some(rate) = &self.inner.rate
            && !rate.try_acquire(&caller.limit_key(), Instant::now())
        {
            return Err(ApiError::RateLimited);
        }
        Ok(caller)
    }
}

impl Inner {
    fn caller(&self, headers: &HeaderMap, connection: &Extensions) -> Result<Caller, AuthError> {
        let Some(verifier) = &self.verifier else {
            return Ok(Caller::Insecure {
                peer: remote_addr(connection).map(|a| a.ip()),
            });
        };
        let header = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?;
        let token = header
            .to_str()
            .ok()
            .and_then(bearer_token)
            .ok_or(AuthError::NotBearer)?;
        let verified = verifier.verify(token)?;
        let role = match (verified.service_scope, self.service_needs_client_cert) {
            (false, _) => Role::User,
            (true, false) => Role::Service,
            // rustls verified the chain against --tls-client-ca-file during the
            // handshake; a certificate being present means it verified.
            (true, true) if has_client_cert(connection) => Role::Service,
            (true, true) => return Err(AuthError::ServiceNeedsClientCert),
        };
        Ok(Caller::Authenticated(Identity {
            tenant: verified.tenant,
            subject: verified.subject,
            role,
        }))
    }
}

/// The token of `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn remote_addr(connection: &Extensions) -> Option<SocketAddr> {
    match connection.get::<TlsConnectInfo<TcpConnectInfo>>() {
        Some(tls) => tls.get_ref().remote_addr(),
        None => connection.get::<TcpConnectInfo>()?.remote_addr(),
    }
}

fn has_client_cert(connection: &Extensions) -> bool {
    connection
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .is_some_and(|certs| !certs.is_empty())
}

/// The SettingsSync service behind the [`Authenticator`]: a refused call
/// never reaches a handler; an admitted one carries its [`Caller`] in the
/// request's extensions.
#[derive(Clone, Debug)]
pub struct Authenticated<S> {
    inner: S,
    auth: Authenticator,
}

impl<S> Authenticated<S> {
    pub fn new(inner: S, auth: Authenticator) -> Self {
        Authenticated { inner, auth }
    }
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower_service::Service<http::Request<B>> for Authenticated<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Self::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.auth.admit(request.headers(), request.extensions()) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Either::Left(self.inner.call(request))
            }
            Err(error) => Either::Right(ready(Ok(Status::from(error).into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        for header in [
            "Bearer t.o.k",
            "bearer t.o.k",
            "BEARER  t.o.k ",
            "bEaReR t.o.k",
        ] {
            assert_eq!(bearer_token(header), Some("t.o.k"), "{header:?}");
        }
        for header in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer   ",
            "Bearert.o.k",
            "t.o.k",
        ] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }
}
