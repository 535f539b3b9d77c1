//! The server's non-secret settings, one environment variable per key,
//! named exactly as the server's flags read them (`settings-sync serve
//! --help`). Secrets are not here: the database URL comes from its Secret
//! via `secretKeyRef`, key files are mounted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::pod::{JWKS_FILE, TLS_CERT_FILE, TLS_KEY_FILE};
use super::{GRPC_PORT, Instance, short_hash};

pub fn config_map(instance: &Instance) -> ConfigMap {
    ConfigMap {
        metadata: instance.child_meta(instance.config_map_name(), "server"),
        data: Some(settings(instance)),
        ..ConfigMap::default()
    }
}

/// Digest of the settings, put on the pod template so that changing them
/// rolls the pods.
pub fn config_hash(instance: &Instance) -> String {
    let settings = settings(instance);
    let parts: Vec<&str> = settings
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    short_hash(&parts)
}

fn settings(instance: &Instance) -> BTreeMap<String, String> {
    let spec = &instance.spec;
    let mut env = BTreeMap::new();
    let mut set = |key: &str, value: String| {
        env.insert(key.to_string(), value);
    };
    // The server's default listen address is loopback; in a pod it must
    // accept the kubelet's probes and the Service's traffic.
    set("SETTINGS_SYNC_LISTEN", format!("0.0.0.0:{GRPC_PORT}"));
    // The migration Job has already migrated this image's schema.
    set("SETTINGS_SYNC_SKIP_MIGRATIONS", "true".into());
    if let Some(pool) = spec.database.pool_size {
        set("SETTINGS_SYNC_DB_POOL_SIZE", pool.to_string());
    }
    if let Some(bytes) = spec.limits.max_document_bytes {
        set("SETTINGS_SYNC_MAX_DOCUMENT_BYTES", bytes.to_string());
    }
    if let Some(jump) = spec.limits.max_clock_jump {
        set("SETTINGS_SYNC_MAX_CLOCK_JUMP", jump.to_string());
    }
    if let Some(filter) = &spec.log_filter {
        set("RUST_LOG", filter.clone());
    }
    if let Some(telemetry) = &spec.telemetry {
        if let Some(endpoint) = &telemetry.otlp_endpoint {
            set("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone());
            let name = telemetry.service_name.as_ref().unwrap_or(&instance.name);
            set("OTEL_SERVICE_NAME", name.clone());
        }
        if let Some(ratio) = telemetry.sampling_ratio {
            // Parent-based, so a sampled caller's trace is never cut short.
            set("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".into());
            set("OTEL_TRACES_SAMPLER_ARG", ratio.to_string());
        }
    }
    if spec.tls.is_some() {
        set("SETTINGS_SYNC_TLS_CERT_FILE", TLS_CERT_FILE.into());
        set("SETTINGS_SYNC_TLS_KEY_FILE", TLS_KEY_FILE.into());
    }
    if spec.auth.is_some() {
        set("SETTINGS_SYNC_JWKS_FILE", JWKS_FILE.into());
    } else {
        // The server refuses to start without authentication unless told
        // so explicitly; a resource without `auth` asks for no auth.
        set("SETTINGS_SYNC_INSECURE_NO_AUTH", "true".into());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::instance;
    use super::*;
    use crate::crd::{AuthSpec, SecretKeyRef, TelemetrySpec, TlsSpec};

    fn data(instance: &Instance) -> BTreeMap<String, String> {
        config_map(instance).data.unwrap()
    }

    #[test]
    fn the_server_listens_on_all_interfaces_and_skips_migrations() {
        let data = data(&instance(1));
        assert_eq!(data["SETTINGS_SYNC_LISTEN"], "0.0.0.0:50051");
        assert_eq!(data["SETTINGS_SYNC_SKIP_MIGRATIONS"], "true");
        assert_eq!(data["SETTINGS_SYNC_INSECURE_NO_AUTH"], "true");
        assert!(!data.contains_key("OTEL_EXPORTER_OTLP_ENDPOINT"));
    }

    #[test]
    fn telemetry_maps_to_the_standard_otel_variables() {
        let mut instance = instance(1);
        instance.spec.telemetry = Some(TelemetrySpec {
            otlp_endpoint: Some("http://collector:4317".into()),
            sampling_ratio: Some(0.25),
            service_name: None,
        });
        let data = data(&instance);
        assert_eq!(data["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://collector:4317");
        assert_eq!(data["OTEL_SERVICE_NAME"], "prefs");
        assert_eq!(data["OTEL_TRACES_SAMPLER"], "parentbased_traceidratio");
        assert_eq!(data["OTEL_TRACES_SAMPLER_ARG"], "0.25");
    }

    #[test]
    fn limits_and_pool_size_map_to_the_server_flags() {
        let mut instance = instance(1);
        instance.spec.database.pool_size = Some(7);
        instance.spec.limits.max_document_bytes = Some(1024);
        instance.spec.limits.max_clock_jump = Some(99);
        let data = data(&instance);
        assert_eq!(data["SETTINGS_SYNC_DB_POOL_SIZE"], "7");
        assert_eq!(data["SETTINGS_SYNC_MAX_DOCUMENT_BYTES"], "1024");
        assert_eq!(data["SETTINGS_SYNC_MAX_CLOCK_JUMP"], "99");
    }

    #[test]
    fn tls_and_auth_point_the_server_at_the_mounted_files() {
        let mut instance = instance(1);
        instance.spec.tls = Some(TlsSpec {
            secret_name: "tls".into(),
        });
        instance.spec.auth = Some(AuthSpec {
            jwks_secret_ref: SecretKeyRef {
                name: "jwks".into(),
                key: "keys.json".into(),
            },
        });
        let data = data(&instance);
        assert_eq!(data["SETTINGS_SYNC_TLS_CERT_FILE"], TLS_CERT_FILE);
        assert_eq!(data["SETTINGS_SYNC_TLS_KEY_FILE"], TLS_KEY_FILE);
        assert_eq!(data["SETTINGS_SYNC_JWKS_FILE"], JWKS_FILE);
        assert!(!data.contains_key("SETTINGS_SYNC_INSECURE_NO_AUTH"));
    }

    #[test]
    fn the_config_hash_changes_with_the_settings_only() {
        let a = instance(1);
        let mut b = instance(3);
        assert_eq!(config_hash(&a), config_hash(&b));
        b.spec.limits.max_clock_jump = Some(5);
        assert_ne!(config_hash(&a), config_hash(&b));
    }
}
