//! W3C trace context on outgoing calls, so the server's spans join the
//! caller's trace.
//!
//! The context is OpenTelemetry's current one: what a caller attached, or
//! the entered `tracing` span when the caller uses `tracing-opentelemetry`
//! (which activates a span's context on entry). The headers are written
//! here rather than by a propagator the application installs globally,
//! because a client library should propagate even when nobody configured
//! one; without a valid current span nothing is sent.

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::service::Interceptor;

/// Writes `traceparent` (and `tracestate`, if any) of the current context
/// into each request.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextInterceptor;

impl Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject(&Context::current(), request.metadata_mut());
        Ok(request)
    }
}

/// Writes the W3C headers of `context` into `metadata`, for callers that
/// build requests for [`crate::Client::raw`] themselves.
pub fn inject(context: &Context, metadata: &mut MetadataMap) {
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return;
    }
    let traceparent = format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    );
    if let Ok(value) = MetadataValue::try_from(traceparent) {
        metadata.insert("traceparent", value);
    }
    let tracestate = span_context.trace_state().header();
    if !tracestate.is_empty()
        && let Ok(value) = MetadataValue::try_from(tracestate)
    {
        metadata.insert("tracestate", value);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    use super::*;

    fn context(state: TraceState) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            state,
        ))
    }

    #[test]
    fn a_valid_span_becomes_a_w3c_traceparent() {
        let mut metadata = MetadataMap::new();
        let state = TraceState::from_key_value([("vendor", "x")]).unwrap();
        inject(&context(state), &mut metadata);
        assert_eq!(
            metadata.get("traceparent").unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(metadata.get("tracestate").unwrap(), "vendor=x");
    }

    #[test]
    fn no_span_sends_no_headers() {
        let mut metadata = MetadataMap::new();
        inject(&Context::new(), &mut metadata);
        assert!(metadata.is_empty());
    }
}
