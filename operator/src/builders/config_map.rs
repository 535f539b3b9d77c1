//! The server's non-secret settings, one environment variable per key,
//! named exactly as the server's flags read them (`settings-sync serve
//! --help`). Secrets are not here: the database URL comes from its Secret
//! via `secretKeyRef`, key files are mounted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::pod::{CLIENT_CA_FILE, JWKS_FILE, TLS_CERT_FILE, TLS_KEY_FILE};
use super::{GRPC_PORT, Instance, short_hash};
use crate::refusal::{AuthMode, auth_mode};

/// Requests per second per caller identity when the spec says nothing: a
/// server the operator deploys is rate-limited unless told otherwise (the
/// server alone defaults to no limit).
pub const DEFAULT_RATE_LIMIT_PER_SECOND: f64 = 100.0;

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
    let rate = spec
        .limits
        .rate_limit_per_second
        .unwrap_or(DEFAULT_RATE_LIMIT_PER_SECOND);
    set("SETTINGS_SYNC_RATE_LIMIT_PER_SECOND", rate.to_string());
    if let Some(burst) = spec.limits.rate_limit_burst {
        set("SETTINGS_SYNC_RATE_LIMIT_BURST", burst.to_string());
    }
    if let Some(cap) = spec.limits.max_watch_streams_per_identity {
        set(
            "SETTINGS_SYNC_MAX_WATCH_STREAMS_PER_IDENTITY",
            cap.to_string(),
        );
    }
    if let Some(cors) = spec.cors.as_ref().filter(|c| !c.allowed_origins.is_empty()) {
        // The server splits this variable on commas; origins have none.
        set(
            "SETTINGS_SYNC_CORS_ALLOWED_ORIGINS",
            cors.allowed_origins.join(","),
        );
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
    if let Some(tls) = &spec.tls {
        set("SETTINGS_SYNC_TLS_CERT_FILE", TLS_CERT_FILE.into());
        set("SETTINGS_SYNC_TLS_KEY_FILE", TLS_KEY_FILE.into());
        if tls.client_ca_secret_ref.is_some() {
            set("SETTINGS_SYNC_TLS_CLIENT_CA_FILE", CLIENT_CA_FILE.into());
        }
    }
    match auth_mode(spec) {
        Ok(AuthMode::Tokens {
            issuer, audience, ..
        }) => {
            set("SETTINGS_SYNC_JWKS_FILE", JWKS_FILE.into());
            if let Some(issuer) = issuer {
                set("SETTINGS_SYNC_JWT_ISSUER", issuer.into());
            }
            if let Some(audience) = audience {
                set("SETTINGS_SYNC_JWT_AUDIENCE", audience.into());
            }
        }
        Ok(AuthMode::Insecure) => set("SETTINGS_SYNC_INSECURE_NO_AUTH", "true".into()),
        // Never applied (the reconciler refuses such a spec); and a server
        // given no authentication setting refuses to start anyway.
        Err(_) => {}
    }
    env
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::instance;
    use super::*;
    use crate::crd::{AuthSpec, CorsSpec, SecretKeyRef, TelemetrySpec, TlsSpec};

    fn data(instance: &Instance) -> BTreeMap<String, String> {
        config_map(instance).data.unwrap()
    }

    #[test]
    fn the_server_listens_on_all_interfaces_and_skips_migrations() {
        let data = data(&instance(1));
        assert_eq!(data["SETTINGS_SYNC_LISTEN"], "0.0.0.0:50051");
        assert_eq!(data["SETTINGS_SYNC_SKIP_MIGRATIONS"], "true");
        assert!(!data.contains_key("SETTINGS_SYNC_INSECURE_NO_AUTH"));
        assert!(!data.contains_key("OTEL_EXPORTER_OTLP_ENDPOINT"));
    }

    fn with_auth(auth: Option<AuthSpec>) -> Instance {
        let mut instance = instance(1);
        instance.spec.auth = auth;
        instance
    }

    #[test]
    fn no_authentication_is_set_only_when_asked_for() {
        let insecure = with_auth(Some(AuthSpec {
            insecure_no_auth: true,
            ..AuthSpec::default()
        }));
        let data = data(&insecure);
        assert_eq!(data["SETTINGS_SYNC_INSECURE_NO_AUTH"], "true");
        assert!(!data.contains_key("SETTINGS_SYNC_JWKS_FILE"));
    }

    #[test]
    fn a_spec_without_auth_gets_no_authentication_setting_at_all() {
        // The server then refuses to start: a second line of defence
        // behind the reconciler's refusal.
        let data = data(&with_auth(None));
        for key in ["SETTINGS_SYNC_INSECURE_NO_AUTH", "SETTINGS_SYNC_JWKS_FILE"] {
            assert!(!data.contains_key(key), "{key} set");
        }
    }

    #[test]
    fn issuer_and_audience_map_to_the_token_checks() {
        let data = data(&with_auth(Some(AuthSpec {
            jwks_secret_ref: Some(SecretKeyRef {
                name: "jwks".into(),
                key: "keys.json".into(),
            }),
            issuer: Some("https://idp.example".into()),
            audience: Some("settings".into()),
            insecure_no_auth: false,
        })));
        assert_eq!(data["SETTINGS_SYNC_JWKS_FILE"], JWKS_FILE);
        assert_eq!(data["SETTINGS_SYNC_JWT_ISSUER"], "https://idp.example");
        assert_eq!(data["SETTINGS_SYNC_JWT_AUDIENCE"], "settings");
    }

    #[test]
    fn the_rate_limit_is_on_by_default_and_can_be_turned_off() {
        let data_default = data(&instance(1));
        assert_eq!(data_default["SETTINGS_SYNC_RATE_LIMIT_PER_SECOND"], "100");
        let mut off = instance(1);
        off.spec.limits.rate_limit_per_second = Some(0.0);
        assert_eq!(data(&off)["SETTINGS_SYNC_RATE_LIMIT_PER_SECOND"], "0");
    }

    #[test]
    fn rate_burst_and_watch_cap_map_to_the_server_flags() {
        let mut instance = instance(1);
        instance.spec.limits.rate_limit_per_second = Some(2.5);
        instance.spec.limits.rate_limit_burst = Some(7);
        instance.spec.limits.max_watch_streams_per_identity = Some(3);
        let data = data(&instance);
        assert_eq!(data["SETTINGS_SYNC_RATE_LIMIT_PER_SECOND"], "2.5");
        assert_eq!(data["SETTINGS_SYNC_RATE_LIMIT_BURST"], "7");
        assert_eq!(data["SETTINGS_SYNC_MAX_WATCH_STREAMS_PER_IDENTITY"], "3");
    }

    #[test]
    fn cors_origins_are_one_comma_separated_variable() {
        let mut instance = instance(1);
        assert!(!data(&instance).contains_key("SETTINGS_SYNC_CORS_ALLOWED_ORIGINS"));
        instance.spec.cors = Some(CorsSpec {
            allowed_origins: vec!["https://app.example".into(), "http://localhost:3000".into()],
        });
        assert_eq!(
            data(&instance)["SETTINGS_SYNC_CORS_ALLOWED_ORIGINS"],
            "https://app.example,http://localhost:3000"
        );
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
            client_ca_secret_ref: None,
        });
        let data_tls = data(&instance);
        assert_eq!(data_tls["SETTINGS_SYNC_TLS_CERT_FILE"], TLS_CERT_FILE);
        assert_eq!(data_tls["SETTINGS_SYNC_TLS_KEY_FILE"], TLS_KEY_FILE);
        assert_eq!(data_tls["SETTINGS_SYNC_JWKS_FILE"], JWKS_FILE);
        assert!(!data_tls.contains_key("SETTINGS_SYNC_TLS_CLIENT_CA_FILE"));
        assert!(!data_tls.contains_key("SETTINGS_SYNC_INSECURE_NO_AUTH"));
        instance.spec.tls = Some(TlsSpec {
            secret_name: "tls".into(),
            client_ca_secret_ref: Some(SecretKeyRef {
                name: "clients".into(),
                key: "ca.crt".into(),
            }),
        });
        assert_eq!(
            data(&instance)["SETTINGS_SYNC_TLS_CLIENT_CA_FILE"],
            CLIENT_CA_FILE
        );
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
