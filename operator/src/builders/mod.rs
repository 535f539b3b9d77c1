//! Pure builders of the child objects of a `SettingsSync`: each takes the
//! validated [`Instance`] (and, where the cluster's state matters, an
//! explicit input) and returns the object to apply. No I/O here, so every
//! rule about what the children look like is unit-tested directly.
//!
//! - `config_map`  the server's non-secret settings as environment variables
//! - `pod`         pieces the server and migration pods share (security, env, scheduling)
//! - `deployment`  the server Deployment
//! - `migration`   the once-per-image migration Job
//! - `service`     Service, ServiceAccount and PodDisruptionBudget
//! - `network_policy` who may reach the server pods

mod config_map;
mod deployment;
mod migration;
mod network_policy;
mod pod;
mod service;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::crd::{SettingsSync, SettingsSyncSpec};

pub use config_map::{config_hash, config_map};
pub use deployment::deployment;
pub use migration::{migration_hash, migration_job, migration_job_name};
pub use network_policy::network_policy;
pub use pod::{CLIENT_CA_FILE, JWKS_FILE, TLS_CERT_FILE, TLS_KEY_FILE};
pub use service::{pod_disruption_budget, service, service_account};

/// The gRPC port of the server: the container, the Service and the probes.
pub const GRPC_PORT: i32 = 50051;
/// The label every child carries, so the operator's watches and clean-ups
/// see only objects it manages.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "settings-sync-operator");
/// The label holding the migration hash of a Job.
pub const MIGRATION_HASH_LABEL: &str = "settingssync.dev/migration-hash";
/// Pod template annotation that changes whenever the ConfigMap does, so a
/// settings change rolls the pods (environment is read only at start).
pub const CONFIG_HASH_ANNOTATION: &str = "settingssync.dev/config-hash";

/// A `SettingsSync` known to have what every child needs: a name, a
/// namespace and a uid for the owner reference. Objects read from the API
/// server always do; this check turns "always" into a type.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub spec: SettingsSyncSpec,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the SettingsSync has no {0}; only objects read from the API server can be reconciled")]
pub struct IncompleteResource(&'static str);

impl TryFrom<&SettingsSync> for Instance {
    type Error = IncompleteResource;

    fn try_from(obj: &SettingsSync) -> Result<Self, Self::Error> {
        let namespace = obj.namespace().ok_or(IncompleteResource("namespace"))?;
        if obj.metadata.name.is_none() {
            return Err(IncompleteResource("name"));
        }
        // `controller_owner_ref` is None only without a name or uid.
        let owner = obj
            .controller_owner_ref(&())
            .ok_or(IncompleteResource("uid"))?;
        Ok(Instance {
            name: obj.name_any(),
            namespace,
            owner,
            spec: obj.spec.clone(),
        })
    }
}

impl Instance {
    /// Labels that select this instance's server pods (not its migration
    /// pods). Never change these: a Deployment's selector is immutable.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        self.base_labels("server")
    }

    /// Labels every pod of this instance carries, server or migration.
    pub fn instance_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.base_labels("");
        labels.remove("app.kubernetes.io/component");
        labels
    }

    /// Labels of every child: name, instance, component and manager.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut labels = self.base_labels(component);
        labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
        labels
    }

    fn base_labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), "settings-sync".into()),
            ("app.kubernetes.io/instance".into(), self.name.clone()),
            ("app.kubernetes.io/component".into(), component.into()),
        ])
    }

    /// Metadata of a child named `name`, owned (as controller) by the
    /// instance so that deleting the instance garbage-collects it.
    pub fn child_meta(&self, name: impl Into<String>, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// Whether `meta` is of an object this instance controls (its
    /// controller owner reference). Anything else bearing a child's name is
    /// someone else's, and the operator must not apply over it.
    pub fn controls(&self, meta: &ObjectMeta) -> bool {
        meta.owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true) && r.uid == self.owner.uid)
    }

    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }

    /// The in-cluster address clients use.
    pub fn endpoint(&self) -> String {
        format!("{}.{}.svc:{GRPC_PORT}", self.name, self.namespace)
    }
}

/// Short, stable hex digest of `parts` (length-prefixed, so that
/// ("ab","c") and ("a","bc") differ).
fn short_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::crd::{AuthSpec, DatabaseSpec, SecretKeyRef};

    /// A resource as the API server would return it.
    pub fn settings_sync(replicas: i32) -> SettingsSync {
        let mut obj = SettingsSync::new(
            "prefs",
            SettingsSyncSpec {
                replicas,
                image: "registry.example/settings-sync:1.0.0".into(),
                image_pull_policy: None,
                image_pull_secrets: vec![],
                database: DatabaseSpec {
                    url_secret_ref: SecretKeyRef {
                        name: "prefs-db".into(),
                        key: "url".into(),
                    },
                    pool_size: None,
                },
                telemetry: None,
                limits: Default::default(),
                tls: None,
                auth: Some(AuthSpec {
                    jwks_secret_ref: Some(SecretKeyRef {
                        name: "prefs-jwks".into(),
                        key: "jwks.json".into(),
                    }),
                    ..AuthSpec::default()
                }),
                network_policy: None,
                cors: None,
                resources: None,
                node_selector: Default::default(),
                tolerations: vec![],
                affinity: None,
                topology_spread_constraints: vec![],
                log_filter: None,
            },
        );
        obj.metadata.namespace = Some("apps".into());
        obj.metadata.uid = Some("0b5c-uid".into());
        obj.metadata.generation = Some(3);
        obj
    }

    pub fn instance(replicas: i32) -> Instance {
        Instance::try_from(&settings_sync(replicas)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn children_are_owned_by_the_instance_as_controller() {
        let meta = instance(1).child_meta("x", "server");
        let owner = &meta.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "SettingsSync");
        assert_eq!(owner.name, "prefs");
        assert_eq!(owner.uid, "0b5c-uid");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("apps"));
    }

    #[test]
    fn a_resource_without_a_uid_is_refused() {
        let mut obj = settings_sync(1);
        obj.metadata.uid = None;
        assert_eq!(
            Instance::try_from(&obj).unwrap_err(),
            IncompleteResource("uid")
        );
    }

    #[test]
    fn only_objects_with_this_instance_as_controller_are_its_own() {
        let instance = instance(1);
        let ours = instance.child_meta("prefs", "server");
        assert!(instance.controls(&ours));
        let mut unowned = ours.clone();
        unowned.owner_references = None;
        assert!(!instance.controls(&unowned));
        let mut other = ours.clone();
        other.owner_references.as_mut().unwrap()[0].uid = "another-uid".into();
        assert!(!instance.controls(&other));
        let mut not_controller = ours;
        not_controller.owner_references.as_mut().unwrap()[0].controller = Some(false);
        assert!(!instance.controls(&not_controller));
    }

    #[test]
    fn hashes_separate_their_parts() {
        assert_ne!(short_hash(&["ab", "c"]), short_hash(&["a", "bc"]));
        assert_eq!(short_hash(&["x"]).len(), 10);
    }
}
