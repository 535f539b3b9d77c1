//! A minimal OTLP/gRPC trace receiver on a free loopback port: it keeps
//! the name and string attributes of every span it is sent, so a test can
//! check what the operator exported.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// A received span: its name and its string attributes.
#[derive(Debug, Clone)]
pub struct SpanSeen {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
pub struct Receiver {
    spans: Arc<Mutex<Vec<SpanSeen>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().expect("not poisoned");
        let all = request.into_inner().resource_spans.into_iter();
        for span in all.flat_map(|r| r.scope_spans).flat_map(|s| s.spans) {
            let attributes = span
                .attributes
                .into_iter()
                .filter_map(|kv| match kv.value?.value? {
                    Value::StringValue(s) => Some((kv.key, s)),
                    _ => None,
                })
                .collect();
            spans.push(SpanSeen {
                name: span.name,
                attributes,
            });
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Serves on a free port for the rest of the test.
    pub async fn start() -> (Receiver, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("bound");
        let receiver = Receiver::default();
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        (receiver, addr)
    }

    pub fn spans(&self) -> Vec<SpanSeen> {
        self.spans.lock().expect("not poisoned").clone()
    }
}
