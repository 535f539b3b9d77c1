//! One reconciliation of one `SettingsSync`: check the Secrets it needs,
//! apply its children, run or await its migrations, and write its status.
//!
//! Order matters and is the design:
//! 1. A refused spec (no authentication asked for) and a child's name held
//!    by an object this resource does not control stop everything: nothing
//!    is written but the status, so nothing insecure runs and nothing of
//!    someone else's is taken over.
//! 2. Secrets are checked next; a missing one blocks the migration Job
//!    (it would fail) and is reported as `Degraded`.
//! 3. ServiceAccount, ConfigMap, NetworkPolicy, Service and the
//!    PodDisruptionBudget are applied; they are harmless without pods.
//! 4. The migration Job of the spec's image is created once and never
//!    re-applied (a Job's template is immutable; the finished Job is the
//!    record). Until it succeeds the Deployment keeps the last migrated
//!    image, so old pods keep serving and new ones wait for their schema.
//! 5. The status is written only when it changed, and Events are published
//!    for the transitions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{Span, field, instrument, warn};

use crate::apply::{KubeError, MANAGER, apply, delete, get};
use crate::builders::{self, IncompleteResource, Instance, MIGRATION_HASH_LABEL};
use crate::context::Context;
use crate::crd::{SettingsSync, SettingsSyncStatus};
use crate::events::transitions;
use crate::preflight::{check, secret_needs};
use crate::refusal::auth_mode;
use crate::status::{Blocker, Migration, Observed, compute};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Incomplete(#[from] IncompleteResource),
    #[error(transparent)]
    Kube(#[from] KubeError),
}

impl Error {
    /// The `error` label of the failure metric: a small, fixed set.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Incomplete(_) => "incomplete_resource",
            Error::Kube(e) if matches!(&e.source, kube::Error::Api(s) if s.code == 409) => {
                "conflict"
            }
            Error::Kube(_) => "kube_api",
        }
    }
}

#[instrument(skip_all, fields(namespace = field::Empty, name = field::Empty, outcome = field::Empty))]
pub async fn reconcile(obj: Arc<SettingsSync>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let result = reconcile_inner(&obj, &ctx).await;
    let span = Span::current();
    span.record("outcome", if result.is_ok() { "ok" } else { "error" });
    ctx.metrics
        .observe(start.elapsed(), result.as_ref().err().map(Error::kind));
    if result.is_ok() {
        ctx.forget_failures(&obj);
    }
    result
}

async fn reconcile_inner(obj: &SettingsSync, ctx: &Context) -> Result<Action, Error> {
    let instance = Instance::try_from(obj)?;
    let span = Span::current();
    span.record("namespace", instance.namespace.as_str());
    span.record("name", instance.name.as_str());
    let client = ctx.client.clone();
    let ns = instance.namespace.as_str();
    let previous = obj.status.as_ref();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);

    let blocker = match auth_mode(&instance.spec) {
        Err(refusal) => Some(Blocker::Refused(refusal)),
        Ok(_) => match names_taken(&client, &instance).await? {
            taken if !taken.is_empty() => Some(Blocker::NamesTaken(taken)),
            _ => first_blocker(&Api::<Secret>::namespaced(client.clone(), ns), &instance).await?,
        },
    };

    let (migration, migrated_image, deployment) = match &blocker {
        // Nothing is written; only what is already ours is reported on.
        Some(b) if b.stops_everything() => {
            let ours = get(&deployments, &instance.name)
                .await?
                .filter(|d| instance.controls(&d.metadata));
            let migrated = previous.and_then(|s| s.migrated_image.clone());
            (Migration::Blocked, migrated, ours)
        }
        _ => apply_children(&client, &instance, previous, blocker.is_some()).await?,
    };

    let seen = Observed {
        generation: obj.metadata.generation,
        blocker,
        migration,
        migrated_image,
        deployment: deployment.as_ref(),
    };
    let status = compute(
        &instance,
        &seen,
        previous,
        Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let settled =
        !condition_is(&status, "Progressing", "True") && !condition_is(&status, "Degraded", "True");
    if previous != Some(&status) {
        write_status(ctx, obj, &instance, &status).await?;
        publish_events(ctx, obj, previous, &status).await;
    }
    Ok(Action::requeue(if settled {
        ctx.timing.idle
    } else {
        ctx.timing.busy
    }))
}

/// Applies every child; the migration Job only when `secret_blocked` is
/// false, and the Deployment only with an image whose migrations
/// succeeded. Returns the migration's state, that image and the Deployment.
async fn apply_children(
    client: &Client,
    instance: &Instance,
    previous: Option<&SettingsSyncStatus>,
    secret_blocked: bool,
) -> Result<(Migration, Option<String>, Option<Deployment>), KubeError> {
    let ns = instance.namespace.as_str();
    apply(
        &Api::<ServiceAccount>::namespaced(client.clone(), ns),
        &builders::service_account(instance),
    )
    .await?;
    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        &builders::config_map(instance),
    )
    .await?;
    apply(
        &Api::<NetworkPolicy>::namespaced(client.clone(), ns),
        &builders::network_policy(instance),
    )
    .await?;
    apply(
        &Api::<Service>::namespaced(client.clone(), ns),
        &builders::service(instance),
    )
    .await?;
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    match builders::pod_disruption_budget(instance) {
        Some(pdb) => drop(apply(&pdbs, &pdb).await?),
        None => delete(&pdbs, &instance.name).await?,
    }

    let jobs = Api::<Job>::namespaced(client.clone(), ns);
    let migration = migrate(&jobs, instance, secret_blocked).await?;
    let migrated_image = match migration {
        Migration::Succeeded => Some(instance.spec.image.clone()),
        _ => previous.and_then(|s| s.migrated_image.clone()),
    };

    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let deployment = match &migrated_image {
        Some(image) => Some(apply(&deployments, &builders::deployment(instance, image)).await?),
        None => get(&deployments, &instance.name).await?,
    };
    Ok((migration, migrated_image, deployment))
}

/// The children's names held by objects this instance does not control,
/// as `Kind namespace/name`. Forced server-side apply would take such an
/// object over, so the reconciler applies nothing while any exists.
async fn names_taken(client: &Client, instance: &Instance) -> Result<Vec<String>, KubeError> {
    let name = instance.name.as_str();
    let taken = [
        taken::<ServiceAccount>(client, instance, name).await?,
        taken::<ConfigMap>(client, instance, &instance.config_map_name()).await?,
        taken::<NetworkPolicy>(client, instance, name).await?,
        taken::<Service>(client, instance, name).await?,
        taken::<PodDisruptionBudget>(client, instance, name).await?,
        taken::<Job>(client, instance, &builders::migration_job_name(instance)).await?,
        taken::<Deployment>(client, instance, name).await?,
    ];
    Ok(taken.into_iter().flatten().collect())
}

/// `Kind namespace/name` when an object named `name` exists and this
/// instance does not control it.
async fn taken<K>(
    client: &Client,
    instance: &Instance,
    name: &str,
) -> Result<Option<String>, KubeError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api = Api::<K>::namespaced(client.clone(), &instance.namespace);
    let existing = get(&api, name).await?;
    Ok(existing
        .filter(|obj| !instance.controls(obj.meta()))
        .map(|_| format!("{} {}/{name}", K::kind(&()), instance.namespace)))
}

/// The first problem with the referenced Secrets, if any.
async fn first_blocker(
    secrets: &Api<Secret>,
    instance: &Instance,
) -> Result<Option<Blocker>, KubeError> {
    for need in secret_needs(instance) {
        let secret = get(secrets, &need.name).await?;
        if let Some(blocker) = check(&instance.namespace, &need, secret.as_ref()) {
            return Ok(Some(blocker));
        }
    }
    Ok(None)
}

/// Creates this image's migration Job if it is missing (and nothing blocks
/// it) and says how it stands. Once it has succeeded, older Jobs go.
async fn migrate(
    jobs: &Api<Job>,
    instance: &Instance,
    blocked: bool,
) -> Result<Migration, KubeError> {
    let job = match get(jobs, &builders::migration_job_name(instance)).await? {
        Some(job) => job,
        None if blocked => return Ok(Migration::Blocked),
        None => apply(jobs, &builders::migration_job(instance)).await?,
    };
    let state = crate::status::migration_of(&job);
    if state == Migration::Succeeded {
        let selector = format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/component=migration,{MIGRATION_HASH_LABEL}!={}",
            instance.name,
            builders::migration_hash(instance)
        );
        let old = jobs
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| KubeError {
                action: "list",
                kind: "Job".into(),
                name: selector.clone(),
                source,
            })?;
        for job in old.into_iter().filter(|j| instance.controls(&j.metadata)) {
            delete(jobs, &job.name_any()).await?;
        }
    }
    Ok(state)
}

async fn write_status(
    ctx: &Context,
    obj: &SettingsSync,
    instance: &Instance,
    status: &SettingsSyncStatus,
) -> Result<(), KubeError> {
    let api = Api::<SettingsSync>::namespaced(ctx.client.clone(), &instance.namespace);
    let patch = json!({
        "apiVersion": SettingsSync::api_version(&()),
        "kind": SettingsSync::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(drop)
    .map_err(|source| KubeError {
        action: "write the status of",
        kind: "SettingsSync".into(),
        name: instance.name.clone(),
        source,
    })
}

/// Events are best effort: failing to record one must not fail (and
/// retry) a reconciliation whose real work succeeded.
async fn publish_events(
    ctx: &Context,
    obj: &SettingsSync,
    previous: Option<&SettingsSyncStatus>,
    next: &SettingsSyncStatus,
) {
    let reference = obj.object_ref(&());
    for event in transitions(previous, next) {
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            warn!(%error, reason = %event.reason, "cannot publish an Event");
        }
    }
}

fn condition_is(status: &SettingsSyncStatus, type_: &str, value: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == value)
}

/// How long to wait after a failed reconciliation: doubling from one
/// second up to five minutes, so a broken API server is not hammered.
pub fn backoff(consecutive_failures: u32) -> Duration {
    let exp = consecutive_failures.saturating_sub(1).min(9);
    Duration::from_secs(1u64 << exp).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
