//! Starts the OTLP/gRPC exporters the configuration asks for.
//!
//! Both run off the request path: spans go through the batch processor
//! (a bounded queue drained by its own thread, dropping spans when full) and
//! metrics through a periodic reader, so an unreachable collector costs a
//! request nothing. Must be called inside a Tokio runtime: the tonic channel
//! spawns its connection task there.

use opentelemetry::KeyValue;
use opentelemetry_otlp::ExporterBuildError;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::config::ExportConfig;

/// The running providers; `None` where export is off.
#[derive(Default)]
pub struct Exports {
    pub traces: Option<SdkTracerProvider>,
    pub metrics: Option<SdkMeterProvider>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot start the OTLP {signal} exporter; {signal} are not exported")]
pub struct ExportError {
    signal: &'static str,
    #[source]
    source: ExporterBuildError,
}

/// Starts what `config` asks for. A signal whose exporter cannot be built
/// (a malformed endpoint, say) stays off, and the error says why.
pub fn start(config: ExportConfig) -> (Exports, Vec<ExportError>) {
    let resource = Resource::builder()
        .with_service_name(config.service_name)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let mut errors = Vec::new();
    let traces = match config.traces {
        None => None,
        Some(sampler) => match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_sampler(sampler)
                    .with_resource(resource.clone())
                    .build(),
            ),
            Err(source) => {
                errors.push(ExportError {
                    signal: "traces",
                    source,
                });
                None
            }
        },
    };
    let metrics = match config.metrics {
        false => None,
        true => match opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => Some(
                SdkMeterProvider::builder()
                    .with_reader(PeriodicReader::builder(exporter).build())
                    .with_resource(resource)
                    .build(),
            ),
            Err(source) => {
                errors.push(ExportError {
                    signal: "metrics",
                    source,
                });
                None
            }
        },
    };
    (Exports { traces, metrics }, errors)
}
