//! A real OTLP/gRPC receiver in the test process: the collector's trace and
//! metrics services from `opentelemetry-proto`, served by tonic on a free
//! loopback port, keeping everything it is sent for the test to inspect.
//! The `otlp-sink` binary serves the same receiver on a given address and
//! appends every span to a file as a JSON line (for the pods' end to end).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
pub use opentelemetry_proto::tonic::metrics::v1::Metric;
pub use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumberValue;
pub use opentelemetry_proto::tonic::trace::v1::Span;
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// How long a test waits for telemetry before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Received {
    spans: Mutex<Vec<Span>>,
    /// `service.name` of every resource that sent spans.
    /// Distinct: the exporter may split what it sends into several batches.
    services: Mutex<BTreeSet<String>>,
    metrics: Mutex<Vec<Metric>>,
}

#[derive(Clone)]
struct Collector {
    received: Arc<Received>,
    /// Bumped on every export, so waiters wake instead of polling a clock.
    arrivals: watch::Sender<u64>,
    /// Where every span is also appended as a JSON line, if anywhere.
    sink: Option<Arc<Mutex<std::fs::File>>>,
}

/// A span's attributes by key, each rendered as text.
fn attributes_text(span: &Span) -> BTreeMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect()
}

/// One span as a JSON line: its service, name, kind and attributes as text.
fn span_line(service: &str, span: &Span) -> String {
    let attributes = attributes_text(span);
    serde_json::json!({
        "service": service,
        "name": span.name,
        "kind": kind(span).as_str_name(),
        "trace_id": hex(&span.trace_id),
        "attributes": attributes,
    })
    .to_string()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        for resource_spans in request.into_inner().resource_spans {
            let attributes = resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default();
            let service = find(&attributes, "service.name");
            if let Some(name) = &service {
                self.received.services.lock().unwrap().insert(name.clone());
            }
            let spans: Vec<_> = resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|s| s.spans)
                .collect();
            if let Some(sink) = &self.sink {
                let mut file = sink.lock().unwrap();
                for span in &spans {
                    let line = span_line(service.as_deref().unwrap_or(""), span);
                    writeln!(file, "{line}")
                        .map_err(|e| Status::internal(format!("writing the span sink: {e}")))?;
                }
            }
            self.received.spans.lock().unwrap().extend(spans);
        }
        self.arrivals.send_modify(|n| *n += 1);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let metrics = request
            .into_inner()
            .resource_metrics
            .into_iter()
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics);
        self.received.metrics.lock().unwrap().extend(metrics);
        self.arrivals.send_modify(|n| *n += 1);
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    collector: Collector,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(loopback, None)
            .await
            .expect("binding the OTLP receiver")
    }

    /// Serves on `addr`, appending every span to `sink` as a JSON line.
    pub async fn start_on(
        addr: SocketAddr,
        sink: Option<std::fs::File>,
    ) -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let collector = Collector {
            received: Arc::default(),
            arrivals: watch::Sender::new(0),
            sink: sink.map(|file| Arc::new(Mutex::new(file))),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        Ok(Receiver {
            addr,
            collector,
            _stop: stop,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.collector.received.spans.lock().unwrap().clone()
    }

    /// The distinct `service.name`s of the resources that sent spans.
    pub fn services(&self) -> Vec<String> {
        let services = self.collector.received.services.lock().unwrap();
        services.iter().cloned().collect()
    }

    /// Waits until `pick` finds what it looks for in the spans received so
    /// far; fails the test with what did arrive after [`PATIENCE`].
    pub async fn wait_for_spans<T>(&self, what: &str, pick: impl Fn(&[Span]) -> Option<T>) -> T {
        self.wait(what, || pick(&self.spans()), || render(&self.spans()))
            .await
    }

    /// As [`Self::wait_for_spans`], over the metric batches received.
    pub async fn wait_for_metrics<T>(
        &self,
        what: &str,
        pick: impl Fn(&[Metric]) -> Option<T>,
    ) -> T {
        let metrics = || self.collector.received.metrics.lock().unwrap().clone();
        self.wait(
            what,
            || pick(&metrics()),
            || {
                let names: Vec<_> = metrics().into_iter().map(|m| m.name).collect();
                format!("{names:?}")
            },
        )
        .await
    }

    async fn wait<T>(
        &self,
        what: &str,
        check: impl Fn() -> Option<T>,
        received: impl Fn() -> String,
    ) -> T {
        let mut arrivals = self.collector.arrivals.subscribe();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            arrivals.borrow_and_update();
            if let Some(found) = check() {
                return found;
            }
            if tokio::time::timeout_at(deadline, arrivals.changed())
                .await
                .is_err()
            {
                panic!("no {what} within {PATIENCE:?}; received:\n{}", received());
            }
        }
    }
}

/// The span's attribute `key`, rendered as text (strings bare).
pub fn attr(span: &Span, key: &str) -> Option<String> {
    find(&span.attributes, key)
}

fn find(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(text)
}

pub fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn kind(span: &Span) -> SpanKind {
    SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified)
}

/// The spans as an indented tree, children under parents, attributes
/// sorted: for failure messages and for the example in the docs.
pub fn render(spans: &[Span]) -> String {
    let ids: Vec<_> = spans.iter().map(|s| s.span_id.clone()).collect();
    let mut out = String::new();
    let roots = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty() || !ids.contains(&s.parent_span_id));
    for root in roots {
        render_span(spans, root, 0, &mut out);
    }
    out
}

fn render_span(spans: &[Span], span: &Span, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let micros = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano)
        / 1_000;
    let _ = writeln!(
        out,
        "{pad}{} [{}] {micros} µs trace={} span={} parent={}",
        span.name,
        kind(span).as_str_name(),
        hex(&span.trace_id),
        hex(&span.span_id),
        hex(&span.parent_span_id),
    );
    let attributes = attributes_text(span);
    for (key, value) in attributes {
        let _ = writeln!(out, "{pad}    {key} = {value}");
    }
    for event in &span.events {
        let fields: Vec<_> = event
            .attributes
            .iter()
            .map(|kv| {
                format!(
                    "{}={}",
                    kv.key,
                    kv.value.as_ref().map(text).unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(out, "{pad}    event: {} {}", event.name, fields.join(" "));
    }
    if let Some(status) = &span.status
        && status.code != 0
    {
        let _ = writeln!(
            out,
            "{pad}    status: {:?} {}",
            status.code(),
            status.message
        );
    }
    for child in spans.iter().filter(|c| c.parent_span_id == span.span_id) {
        render_span(spans, child, depth + 1, out);
    }
}
