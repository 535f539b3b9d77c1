//! Which OpenTelemetry exports run, read from the standard `OTEL_*`
//! variables. Nothing is exported unless an OTLP endpoint is configured, so
//! a plain `settings-sync serve` pays only for `tracing` itself.
//!
//! The OTLP exporter reads its own variables (endpoint, headers, timeout,
//! compression); this module only decides *whether* to start it and checks
//! the settings the exporter would otherwise silently replace with a default.

use opentelemetry_sdk::trace::Sampler;

/// The exports to start. `None` fields are off.
#[derive(Debug)]
pub struct ExportConfig {
    pub service_name: String,
    pub traces: Option<Sampler>,
    pub metrics: bool,
}

/// A setting that would make export behave other than asked: export is
/// disabled rather than started in a way nobody configured.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "OTEL_TRACES_SAMPLER={0:?} is not one of always_on, always_off, traceidratio, \
         parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
    )]
    UnknownSampler(String),
    #[error("OTEL_TRACES_SAMPLER_ARG={0:?} is not a ratio between 0 and 1")]
    BadRatio(String),
    #[error("{var}={value:?}: this server exports over OTLP/gRPC only (set it to grpc)")]
    UnsupportedProtocol { var: &'static str, value: String },
}

/// The default `service.name` when `OTEL_SERVICE_NAME` is unset.
pub const DEFAULT_SERVICE_NAME: &str = "settings-sync";

impl ExportConfig {
    /// Reads the configuration through `var` (the process environment in
    /// production, a map in tests). `Ok(None)`: nothing is configured.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let general = set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
        let wanted = |endpoint: &str, exporter: &str| {
            (general || set(endpoint).is_some())
                && set(exporter).is_none_or(|e| e.eq_ignore_ascii_case("otlp"))
        };
        let traces = wanted("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER");
        let metrics = wanted(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_METRICS_EXPORTER",
        );
        if !traces && !metrics {
            return Ok(None);
        }
        for protocol in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ] {
            if let Some(value) = set(protocol).filter(|v| v != "grpc") {
                return Err(ConfigError::UnsupportedProtocol {
                    var: protocol,
                    value,
                });
            }
        }
        let sampler = sampler(set("OTEL_TRACES_SAMPLER"), set("OTEL_TRACES_SAMPLER_ARG"))?;
        Ok(Some(ExportConfig {
            service_name: set("OTEL_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE_NAME.into()),
            traces: traces.then_some(sampler),
            metrics,
        }))
    }
}

/// The sampler the OpenTelemetry specification names. The SDK parses these
/// too, but falls back to "sample everything" on a typo; a sampling ratio
/// silently becoming 100 % is exactly what an operator would not want.
fn sampler(name: Option<String>, arg: Option<String>) -> Result<Sampler, ConfigError> {
    let ratio = || match &arg {
        // The specification's default ratio when no argument is given.
        None => Ok(1.0),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| ConfigError::BadRatio(text.clone())),
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    Ok(match name.as_deref() {
        None | Some("parentbased_always_on") => parent_based(Sampler::AlwaysOn),
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("parentbased_always_off") => parent_based(Sampler::AlwaysOff),
        Some("traceidratio") => Sampler::TraceIdRatioBased(ratio()?),
        Some("parentbased_traceidratio") => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        Some(other) => return Err(ConfigError::UnknownSampler(other.into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Option<ExportConfig>, ConfigError> {
        ExportConfig::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert!(read(&[]).unwrap().is_none());
        assert!(
            read(&[("OTEL_TRACES_SAMPLER", "always_on")])
                .unwrap()
                .is_none()
        );
        assert!(
            read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_general_endpoint_turns_on_traces_and_metrics_as_settings_sync() {
        let config = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")])
            .unwrap()
            .unwrap();
        assert!(config.traces.is_some() && config.metrics);
        assert_eq!(config.service_name, "settings-sync");
    }

    #[test]
    fn a_signal_endpoint_turns_on_only_that_signal() {
        let config = read(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317")])
            .unwrap()
            .unwrap();
        assert!(config.traces.is_some() && !config.metrics);
        let config = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_SERVICE_NAME", "sync-eu"),
        ])
        .unwrap()
        .unwrap();
        assert!(config.traces.is_some() && !config.metrics);
        assert_eq!(config.service_name, "sync-eu");
    }

    #[test]
    fn the_sdk_switch_turns_everything_off() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_SDK_DISABLED", "true"),
        ];
        assert!(read(&vars).unwrap().is_none());
    }

    #[test]
    fn a_parent_based_ratio_sampler_is_read_from_the_environment() {
        let config = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap()
        .unwrap();
        let sampler = format!("{:?}", config.traces.unwrap());
        assert!(
            sampler.contains("ParentBased") && sampler.contains("0.25"),
            "{sampler}"
        );
    }

    #[test]
    fn bad_sampler_settings_are_errors_not_silent_defaults() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        assert_eq!(
            read(&[endpoint, ("OTEL_TRACES_SAMPLER", "sometimes")]).unwrap_err(),
            ConfigError::UnknownSampler("sometimes".into())
        );
        assert_eq!(
            read(&[
                endpoint,
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "1.5")
            ])
            .unwrap_err(),
            ConfigError::BadRatio("1.5".into())
        );
    }

    #[test]
    fn an_http_protocol_is_refused_because_only_grpc_is_built_in() {
        let error = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ])
        .unwrap_err();
        assert!(matches!(error, ConfigError::UnsupportedProtocol { .. }));
    }
}
