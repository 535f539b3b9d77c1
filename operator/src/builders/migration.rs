//! The migration Job: `settings-sync migrate` once per (image, database).
//!
//! The Job's name carries a hash of the image and the database reference,
//! so applying it again for the same version is a no-op and a new version
//! gets a new Job. Finished Jobs are kept (no TTL): the completed Job *is*
//! the record that this version's schema is in place; deleting it would
//! make the operator run the (idempotent) migrations again. The reconciler
//! deletes Jobs of older hashes once a newer one has succeeded.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::pod::{container, pod_spec};
use super::{Instance, MIGRATION_HASH_LABEL, short_hash};

/// Identifies the migrations an (image, database) pair needs.
pub fn migration_hash(instance: &Instance) -> String {
    let db = &instance.spec.database.url_secret_ref;
    short_hash(&[&instance.spec.image, &db.name, &db.key])
}

/// `<name>-migrate-<hash>`, short enough for the `job-name` label (63).
pub fn migration_job_name(instance: &Instance) -> String {
    let prefix: String = instance.name.chars().take(40).collect();
    format!(
        "{}-migrate-{}",
        prefix.trim_end_matches('-'),
        migration_hash(instance)
    )
}

pub fn migration_job(instance: &Instance) -> Job {
    let hash = migration_hash(instance);
    let mut metadata = instance.child_meta(migration_job_name(instance), "migration");
    let mut labels = metadata.labels.take().unwrap_or_default();
    labels.insert(MIGRATION_HASH_LABEL.into(), hash);
    metadata.labels = Some(labels.clone());
    metadata.annotations = Some(BTreeMap::from([(
        "settingssync.dev/image".to_string(),
        instance.spec.image.clone(),
    )]));

    let mut migrate = container(instance, &instance.spec.image, &["migrate"]);
    // `migrate` reads only the database settings; the ConfigMap would add
    // nothing but a reason to fail if it were missing.
    migrate.env_from = None;
    let mut pod = pod_spec(instance, migrate, vec![]);
    pod.restart_policy = Some("Never".into());

    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(3),
            // A migration that hangs (a lock never granted) fails visibly.
            active_deadline_seconds: Some(900),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::instance;
    use super::*;

    #[test]
    fn the_job_runs_migrate_with_the_spec_image() {
        let job = migration_job(&instance(1));
        let pod = job.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.args.as_deref(), Some(&["migrate".to_string()][..]));
        assert_eq!(
            c.image.as_deref(),
            Some("registry.example/settings-sync:1.0.0")
        );
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    }

    #[test]
    fn the_job_name_changes_with_the_image_and_only_then() {
        let a = instance(1);
        let mut b = instance(4);
        assert_eq!(migration_job_name(&a), migration_job_name(&b));
        b.spec.image = "registry.example/settings-sync:1.1.0".into();
        assert_ne!(migration_job_name(&a), migration_job_name(&b));
    }

    #[test]
    fn the_job_name_fits_a_label_value_for_long_instance_names() {
        let mut long = instance(1);
        long.name = "a".repeat(200);
        assert!(migration_job_name(&long).len() <= 63);
    }

    #[test]
    fn migration_pods_are_not_selected_by_the_server_selector() {
        let instance = instance(1);
        let job = migration_job(&instance);
        let labels = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        let selected = instance
            .selector_labels()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        assert!(!selected);
    }
}
