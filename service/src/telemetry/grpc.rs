//! One SERVER span per RPC of `settingssync.v1.SettingsSync`, following the
//! OpenTelemetry RPC conventions, as a tower service around the API.
//!
//! The span continues the caller's trace when the request carries W3C
//! `traceparent`/`tracestate` metadata. It lives as long as the response
//! body, so a Watch stream is one span from open to close, and the gRPC
//! status is read where tonic writes it: the headers of a trailers-only
//! (error) response, otherwise the trailers after the last message.
//!
//! Only the API is wrapped: health probes every few seconds would drown the
//! traces people look for.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use pin_project_lite::pin_project;
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TraceArgs;
use super::metrics::WatchStreamGauge;

const SERVICE: &str = "settingssync.v1.SettingsSync";

/// Settings the handlers read from the request extensions.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceSettings {
    pub redact_owner: bool,
}

/// The API service with a span around each call.
#[derive(Clone, Debug)]
pub struct RpcTrace<S> {
    inner: S,
    settings: TraceSettings,
}

impl<S> RpcTrace<S> {
    pub fn new(inner: S, args: TraceArgs) -> Self {
        RpcTrace {
            inner,
            settings: TraceSettings {
                redact_owner: args.trace_redact_owner,
            },
        }
    }
}

impl<S: NamedService> NamedService for RpcTrace<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower_service::Service<Request<B>> for RpcTrace<S>
where
    S: tower_service::Service<Request<B>, Response = Response<tonic::body::Body>>,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = path.rsplit_once('/').map_or(path, |(_, m)| m).to_owned();
        let span = rpc_span(&request, &method);
        request.extensions_mut().insert(self.settings);
        // The handler future is created and polled inside the span, so its
        // own spans and events (and `Span::current()`) attach to it.
        let inner = span.in_scope(|| self.inner.call(request));
        ResponseFuture {
            inner,
            watch: (method == "Watch").then(WatchStreamGauge::open),
            span,
        }
    }
}

fn rpc_span<B>(request: &Request<B>, method: &str) -> Span {
    let (server_address, server_port) = match request.uri().authority() {
        Some(authority) => (Some(authority.host().to_owned()), authority.port_u16()),
        None => (None, None),
    };
    let peer = request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr);
    let peer_ip = peer.map(|p| p.ip().to_string());
    let name = format!("{SERVICE}/{method}");
    let span = tracing::info_span!(
        "rpc",
        otel.name = name.as_str(),
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = SERVICE,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        server.address = server_address.as_deref(),
        server.port = server_port,
        network.peer.address = peer_ip.as_deref(),
        network.peer.port = peer.map(|p| p.port()),
        settings_sync.tenant = Empty,
        settings_sync.owner = Empty,
        settings_sync.name = Empty,
        settings_sync.decision = Empty,
        settings_sync.rejection = Empty,
        settings_sync.revision = Empty,
        settings_sync.stamp.incoming.clock = Empty,
        settings_sync.stamp.incoming.writer = Empty,
        settings_sync.stamp.stored_before.clock = Empty,
        settings_sync.stamp.stored_before.writer = Empty,
        settings_sync.stamp.stored_after.clock = Empty,
        settings_sync.stamp.stored_after.writer = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
    // Fails only when no OpenTelemetry layer is installed: nothing to continue.
    let _ = span.set_parent(parent);
    span
}

/// Records the gRPC status once; codes the server is to blame for mark the
/// span as an error (the RPC conventions for server spans).
fn record_status(span: &Span, code: i64) {
    span.record("rpc.grpc.status_code", code);
    // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
    if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
        span.record("otel.status_code", "error");
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<i64> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        watch: Option<WatchStreamGauge>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<tonic::body::Body>, E>>,
{
    type Output = Result<Response<tonic::body::Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.span.in_scope(|| this.inner.poll(cx)))?;
        let status = grpc_status(response.headers());
        if let Some(code) = status {
            record_status(this.span, code);
        }
        let span = std::mem::replace(this.span, Span::none());
        let watch = this.watch.take();
        Poll::Ready(Ok(response.map(|inner| {
            tonic::body::Body::new(TracedBody {
                inner,
                done: status.is_some(),
                span,
                _watch: watch,
            })
        })))
    }
}

pin_project! {
    /// The response body, holding the RPC span open until it is finished
    /// or dropped (a client cancelling a Watch stream).
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        span: Span,
        done: bool,
        _watch: Option<WatchStreamGauge>,
    }

    impl<B> PinnedDrop for TracedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                // Gone before the server sent a status: the client hung up.
                this.span.in_scope(|| tracing::info!("stream closed by the client"));
                record_status(this.span, 1); // CANCELLED
            }
        }
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        // A Watch stream's messages are produced while its body is polled:
        // entering here puts the stream's events on its span.
        let frame = ready!(this.span.in_scope(|| this.inner.poll_frame(cx)));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    record_status(this.span, code);
                    *this.done = true;
                }
            }
            Some(Err(_)) | None => *this.done = true,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
