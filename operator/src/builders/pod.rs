//! What the server pods and the migration pods have in common: the
//! restricted Pod Security Standard, the database URL from its Secret, the
//! writable scratch volumes a read-only root filesystem needs, and the
//! scheduling the person asked for.

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    EnvVarSource, KeyToPath, PodSecurityContext, PodSpec, SeccompProfile, SecretKeySelector,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};

use super::Instance;
use crate::crd::SecretKeyRef;
use crate::refusal::{AuthMode, auth_mode};

pub const TLS_DIR: &str = "/etc/settings-sync/tls";
pub const TLS_CERT_FILE: &str = "/etc/settings-sync/tls/tls.crt";
pub const TLS_KEY_FILE: &str = "/etc/settings-sync/tls/tls.key";
pub const AUTH_DIR: &str = "/etc/settings-sync/auth";
pub const JWKS_FILE: &str = "/etc/settings-sync/auth/jwks.json";
pub const CLIENT_CA_DIR: &str = "/etc/settings-sync/client-ca";
pub const CLIENT_CA_FILE: &str = "/etc/settings-sync/client-ca/ca.crt";
/// The non-root user of the distroless image (`nonroot`).
const RUN_AS: i64 = 65532;

/// Pod-level half of the "restricted" Pod Security Standard.
fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// Container-level half: no privilege escalation, no capabilities, and a
/// read-only root filesystem (scratch space is an emptyDir).
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// The database URL, straight from the referenced Secret key: the operator
/// never copies the value anywhere.
pub fn database_env(instance: &Instance) -> Vec<EnvVar> {
    let secret = &instance.spec.database.url_secret_ref;
    vec![EnvVar {
        name: "SETTINGS_SYNC_DATABASE_URL".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }]
}

pub fn config_env(instance: &Instance) -> Vec<EnvFromSource> {
    vec![EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: instance.config_map_name(),
            optional: Some(false),
        }),
        ..EnvFromSource::default()
    }]
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn secret_volume(name: &str, secret: &str, items: Option<Vec<KeyToPath>>) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items,
            // Readable by the pod's group (fsGroup) only.
            default_mode: Some(0o440),
            optional: Some(false),
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// Volumes and the matching mounts of the server container.
pub fn server_volumes(instance: &Instance) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![empty_dir("tmp")];
    let mut mounts = vec![mount("tmp", "/tmp", false)];
    let key_file = |name: &str, secret: &SecretKeyRef, file: &str, dir: &str| {
        let item = KeyToPath {
            key: secret.key.clone(),
            path: file.into(),
            mode: None,
        };
        (
            secret_volume(name, &secret.name, Some(vec![item])),
            mount(name, dir, true),
        )
    };
    let mut keys = Vec::new();
    if let Some(tls) = &instance.spec.tls {
        volumes.push(secret_volume("tls", &tls.secret_name, None));
        mounts.push(mount("tls", TLS_DIR, true));
        if let Some(ca) = &tls.client_ca_secret_ref {
            keys.push(key_file("client-ca", ca, "ca.crt", CLIENT_CA_DIR));
        }
    }
    if let Ok(AuthMode::Tokens { jwks, .. }) = auth_mode(&instance.spec) {
        keys.push(key_file("auth", jwks, "jwks.json", AUTH_DIR));
    }
    let (key_volumes, key_mounts): (Vec<_>, Vec<_>) = keys.into_iter().unzip();
    volumes.extend(key_volumes);
    mounts.extend(key_mounts);
    (volumes, mounts)
}

/// A pod spec around `container`, with the security context, service
/// account and the placement rules of the spec.
pub fn pod_spec(instance: &Instance, container: Container, volumes: Vec<Volume>) -> PodSpec {
    let spec = &instance.spec;
    PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        service_account_name: Some(instance.name.clone()),
        // The server does not talk to the Kubernetes API.
        automount_service_account_token: Some(false),
        security_context: Some(pod_security_context()),
        image_pull_secrets: Some(spec.image_pull_secrets.clone()).filter(|v| !v.is_empty()),
        node_selector: Some(spec.node_selector.clone()).filter(|m| !m.is_empty()),
        tolerations: Some(spec.tolerations.clone()).filter(|v| !v.is_empty()),
        affinity: spec.affinity.clone(),
        ..PodSpec::default()
    }
}

/// The container every pod runs, with `args` as the subcommand.
pub fn container(instance: &Instance, image: &str, args: &[&str]) -> Container {
    Container {
        name: "settings-sync".into(),
        image: Some(image.into()),
        image_pull_policy: instance
            .spec
            .image_pull_policy
            .map(|p| p.as_str().to_string()),
        args: Some(args.iter().map(|a| a.to_string()).collect()),
        env: Some(database_env(instance)),
        env_from: Some(config_env(instance)),
        security_context: Some(container_security_context()),
        ..Container::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::instance;
    use super::*;
    use crate::crd::TlsSpec;

    #[test]
    fn the_database_url_is_a_secret_reference_never_a_value() {
        let env = &database_env(&instance(1))[0];
        assert!(env.value.is_none());
        let secret = env.value_from.as_ref().unwrap().secret_key_ref.as_ref();
        assert_eq!(secret.unwrap().name, "prefs-db");
        assert_eq!(secret.unwrap().key, "url");
    }

    #[test]
    fn tls_mounts_the_secret_read_only() {
        let mut instance = instance(1);
        instance.spec.tls = Some(TlsSpec {
            secret_name: "prefs-tls".into(),
            client_ca_secret_ref: None,
        });
        let (volumes, mounts) = server_volumes(&instance);
        let tls = volumes.iter().find(|v| v.name == "tls").unwrap();
        assert_eq!(
            tls.secret.as_ref().unwrap().secret_name.as_deref(),
            Some("prefs-tls")
        );
        let mount = mounts.iter().find(|m| m.name == "tls").unwrap();
        assert_eq!(mount.read_only, Some(true));
    }

    #[test]
    fn the_client_ca_and_the_key_set_are_mounted_under_the_names_the_server_reads() {
        let mut instance = instance(1);
        instance.spec.tls = Some(TlsSpec {
            secret_name: "prefs-tls".into(),
            client_ca_secret_ref: Some(SecretKeyRef {
                name: "clients".into(),
                key: "bundle.pem".into(),
            }),
        });
        let (volumes, mounts) = server_volumes(&instance);
        let path_of = |volume: &str| {
            let v = volumes.iter().find(|v| v.name == volume).unwrap();
            let item = &v.secret.as_ref().unwrap().items.as_ref().unwrap()[0];
            let m = mounts.iter().find(|m| m.name == volume).unwrap();
            (item.key.clone(), format!("{}/{}", m.mount_path, item.path))
        };
        assert_eq!(
            path_of("client-ca"),
            ("bundle.pem".into(), CLIENT_CA_FILE.into())
        );
        assert_eq!(path_of("auth"), ("jwks.json".into(), JWKS_FILE.into()));
    }

    #[test]
    fn an_insecure_server_mounts_no_key_set() {
        let mut instance = instance(1);
        instance.spec.auth = Some(crate::crd::AuthSpec {
            insecure_no_auth: true,
            ..Default::default()
        });
        let (volumes, _) = server_volumes(&instance);
        assert!(volumes.iter().all(|v| v.name != "auth"));
    }

    #[test]
    fn empty_scheduling_fields_are_left_out() {
        let spec = pod_spec(&instance(1), Container::default(), vec![]);
        assert!(spec.node_selector.is_none() && spec.tolerations.is_none());
        assert_eq!(spec.automount_service_account_token, Some(false));
    }
}
