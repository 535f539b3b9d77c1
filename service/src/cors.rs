//! CORS for gRPC-Web callers in browsers, with an explicit allow-list.
//!
//! [`decide`] is the pure decision; [`Cors`] is the tower layer that applies
//! it in front of the gRPC-Web translation. No origin is allowed unless
//! configured, and a disallowed origin gets no CORS headers at all, so its
//! browser refuses to hand the page the response.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tonic::body::Body;

/// Request headers a browser may send: the gRPC-Web ones, the bearer
/// token, and W3C trace context so a page's trace continues here.
pub const ALLOWED_HEADERS: &str =
    "authorization, content-type, x-grpc-web, x-user-agent, grpc-timeout, traceparent";
/// Response headers a page may read. A trailers-only error carries its
/// status in these headers; unexposed, the page would see no error code.
pub const EXPOSED_HEADERS: &str = "grpc-status, grpc-message, grpc-status-details-bin";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The browser origins allowed to call, exactly as browsers send them
/// (`scheme://host[:port]`, lowercase, no path).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedOrigins(HashSet<String>);

/// Why a configured origin cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error(
        "CORS origin {0:?} must be exactly scheme://host[:port] (http or https, lowercase, no path or trailing slash); \"*\" is not accepted"
    )]
    Malformed(String),
}

impl AllowedOrigins {
    pub fn parse<S: AsRef<str>>(origins: &[S]) -> Result<Self, OriginError> {
        origins
            .iter()
            .map(|origin| {
                let origin = origin.as_ref().trim();
                if is_serialized_origin(origin) {
                    Ok(origin.to_string())
                } else {
                    Err(OriginError::Malformed(origin.to_string()))
                }
            })
            .collect::<Result<_, _>>()
            .map(AllowedOrigins)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn allows(&self, origin: &str) -> bool {
        self.0.contains(origin)
    }
}

/// The form browsers put in `Origin`; anything else could never match.
fn is_serialized_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:[]".contains(&b))
}

/// What to do with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not a cross-origin browser request (no `Origin`): serve it as is.
    NotCors,
    /// A preflight from an allowed origin: answer it here.
    AllowPreflight { origin: HeaderValue },
    /// A preflight from any other origin: answer it without CORS headers.
    RefusePreflight,
    /// A call from an allowed origin: serve it and let the page read it.
    Allow { origin: HeaderValue },
    /// A call from any other origin: serve it without CORS headers (the
    /// browser then hides the answer; non-browser callers are unaffected).
    Withhold,
}

pub fn decide(allowed: &AllowedOrigins, method: &Method, headers: &HeaderMap) -> Decision {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Decision::NotCors;
    };
    let allow = origin.to_str().is_ok_and(|o| allowed.allows(o));
    let preflight =
        method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    match (preflight, allow) {
        (true, true) => Decision::AllowPreflight {
            origin: origin.clone(),
        },
        (true, false) => Decision::RefusePreflight,
        (false, true) => Decision::Allow {
            origin: origin.clone(),
        },
        (false, false) => Decision::Withhold,
    }
}

fn preflight_response(origin: Option<HeaderValue>) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = if origin.is_some() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::FORBIDDEN
    };
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
    }
    response
}

fn expose(headers: &mut HeaderMap, origin: Option<HeaderValue>) {
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
}

/// Applies [`decide`] to every request of the wrapped service.
#[derive(Clone, Debug)]
pub struct CorsLayer {
    allowed: std::sync::Arc<AllowedOrigins>,
}

impl CorsLayer {
    pub fn new(allowed: AllowedOrigins) -> Self {
        CorsLayer {
            allowed: std::sync::Arc::new(allowed),
        }
    }
}

impl<S> tower_layer::Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Cors<S> {
        Cors {
            inner,
            allowed: self.allowed.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Cors<S> {
    inner: S,
    allowed: std::sync::Arc<AllowedOrigins>,
}

impl<S, B> tower_service::Service<Request<B>> for Cors<S>
where
    S: tower_service::Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = CorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match decide(&self.allowed, request.method(), request.headers()) {
            Decision::NotCors => CorsFuture::Serve {
                inner: self.inner.call(request),
                expose: None,
            },
            Decision::AllowPreflight { origin } => CorsFuture::Answer {
                response: Some(preflight_response(Some(origin))),
            },
            Decision::RefusePreflight => CorsFuture::Answer {
                response: Some(preflight_response(None)),
            },
            Decision::Allow { origin } => CorsFuture::Serve {
                inner: self.inner.call(request),
                expose: Some(Some(origin)),
            },
            Decision::Withhold => CorsFuture::Serve {
                inner: self.inner.call(request),
                expose: Some(None),
            },
        }
    }
}

pin_project_lite::pin_project! {
    #[project = CorsFutureProj]
    pub enum CorsFuture<F> {
        Serve {
            #[pin]
            inner: F,
            // None: not a CORS request; Some(origin): add `Vary` and, for
            // an allowed origin, the CORS headers.
            expose: Option<Option<HeaderValue>>,
        },
        Answer {
            response: Option<Response<Body>>,
        },
    }
}

impl<F, E> Future for CorsFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CorsFutureProj::Serve { inner, expose } => {
                let mut response = std::task::ready!(inner.poll(cx))?;
                if let Some(origin) = expose.take() {
                    self::expose(response.headers_mut(), origin);
                }
                Poll::Ready(Ok(response))
            }
            CorsFutureProj::Answer { response } => Poll::Ready(Ok(response
                .take()
                .expect("a CORS future is not polled after completion"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> AllowedOrigins {
        AllowedOrigins::parse(&["http://localhost:5173", "https://app.example.com"]).unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn the_decision_table() {
        let origin = HeaderValue::from_static("http://localhost:5173");
        let preflight = [
            ("origin", "http://localhost:5173"),
            ("access-control-request-method", "POST"),
        ];
        let cases = [
            (Method::POST, headers(&[]), Decision::NotCors),
            (Method::OPTIONS, headers(&[]), Decision::NotCors),
            (
                Method::POST,
                headers(&[("origin", "http://localhost:5173")]),
                Decision::Allow {
                    origin: origin.clone(),
                },
            ),
            (
                Method::OPTIONS,
                headers(&preflight),
                Decision::AllowPreflight {
                    origin: origin.clone(),
                },
            ),
            // OPTIONS without Access-Control-Request-Method is no preflight.
            (
                Method::OPTIONS,
                headers(&[("origin", "http://localhost:5173")]),
                Decision::Allow { origin },
            ),
            (
                Method::POST,
                headers(&[("origin", "http://evil.example")]),
                Decision::Withhold,
            ),
            (
                Method::OPTIONS,
                headers(&[
                    ("origin", "http://evil.example"),
                    ("access-control-request-method", "POST"),
                ]),
                Decision::RefusePreflight,
            ),
            // Origins match exactly: another port or scheme is another origin.
            (
                Method::POST,
                headers(&[("origin", "http://localhost:5174")]),
                Decision::Withhold,
            ),
            (
                Method::POST,
                headers(&[("origin", "https://localhost:5173")]),
                Decision::Withhold,
            ),
            (
                Method::POST,
                headers(&[("origin", "null")]),
                Decision::Withhold,
            ),
        ];
        for (method, headers, expected) in cases {
            assert_eq!(
                decide(&allowed(), &method, &headers),
                expected,
                "{method} {headers:?}"
            );
        }
    }

    #[test]
    fn no_origin_is_allowed_by_default() {
        let none = AllowedOrigins::default();
        assert_eq!(
            decide(
                &none,
                &Method::POST,
                &headers(&[("origin", "http://localhost:5173")])
            ),
            Decision::Withhold
        );
    }

    #[test]
    fn only_serialized_origins_are_accepted_in_the_configuration() {
        for good in [
            "http://localhost:5173",
            "https://app.example.com",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
        ] {
            assert!(AllowedOrigins::parse(&[good]).is_ok(), "{good}");
        }
        for bad in [
            "*",
            "null",
            "localhost:5173",
            "http://localhost:5173/",
            "http://localhost/app",
            "HTTP://localhost",
            "http://Example.com",
            "ftp://example.com",
            "http://",
        ] {
            assert_eq!(
                AllowedOrigins::parse(&[bad]),
                Err(OriginError::Malformed(bad.to_string())),
                "{bad}"
            );
        }
    }
}
