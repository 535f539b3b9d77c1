//! What the status says, as a pure function of what the reconciler saw.
//!
//! Four conditions, each with a reason a person can act on:
//! - `Available`: at least one replica is ready to serve.
//! - `Progressing`: the cluster is moving toward the spec (a migration or
//!   a rollout is under way).
//! - `Degraded`: something needs a person: a refused spec, a child's name
//!   taken by someone else's object, a missing Secret or key, a failed
//!   migration, a stalled rollout.
//! - `Insecure`: the server runs without authentication, as asked.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::builders::{GRPC_PORT, Instance};
use crate::crd::SettingsSyncStatus;
use crate::refusal::{AuthMode, Refusal, auth_mode};

/// A reason the server cannot run as asked, found before applying anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// The spec is refused as it stands: nothing is applied.
    Refused(Refusal),
    /// Objects bearing children's names that this resource does not
    /// control, as `Kind namespace/name`: nothing is applied, so none of
    /// them is taken over.
    NamesTaken(Vec<String>),
    /// `reason` is e.g. `DatabaseSecretMissing`; `message` says what to
    /// create. The children are applied; the migration waits.
    Secret { reason: String, message: String },
}

impl Blocker {
    pub fn reason(&self) -> &str {
        match self {
            Blocker::Refused(refusal) => refusal.reason(),
            Blocker::NamesTaken(_) => "NameTaken",
            Blocker::Secret { reason, .. } => reason,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Blocker::Refused(refusal) => refusal.to_string(),
            Blocker::NamesTaken(objects) => format!(
                "{} already exist(s) without this SettingsSync as controller; the operator takes none of them over and applies nothing until they are deleted or renamed (or the SettingsSync is)",
                objects.join(", ")
            ),
            Blocker::Secret { message, .. } => message.clone(),
        }
    }

    /// Whether nothing at all may be applied (otherwise only the migration waits).
    pub fn stops_everything(&self) -> bool {
        !matches!(self, Blocker::Secret { .. })
    }
}

/// Where this image's database migrations stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migration {
    /// Not started: a blocker keeps the Job from being created.
    Blocked,
    Running,
    Succeeded,
    Failed {
        message: String,
    },
}

/// Everything `compute` needs, gathered by the reconciler.
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub blocker: Option<Blocker>,
    pub migration: Migration,
    /// The newest image whose migrations completed, if any.
    pub migrated_image: Option<String>,
    /// The Deployment as the API server returned it after applying.
    pub deployment: Option<&'a Deployment>,
}

/// The state of a migration Job, from the conditions the Job controller sets.
pub fn migration_of(job: &Job) -> Migration {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let holds = |type_: &str| {
        conditions
            .into_iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if holds("Complete").is_some() {
        Migration::Succeeded
    } else if let Some(failed) = holds("Failed") {
        Migration::Failed {
            message: failed.reason.clone().unwrap_or_else(|| "Failed".into()),
        }
    } else {
        Migration::Running
    }
}

pub fn compute(
    instance: &Instance,
    seen: &Observed<'_>,
    previous: Option<&SettingsSyncStatus>,
    now: Time,
) -> SettingsSyncStatus {
    let desired = instance.spec.replicas;
    let status = seen.deployment.and_then(|d| d.status.as_ref());
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
    let total = status.and_then(|s| s.replicas).unwrap_or(0);
    let caught_up = seen.deployment.is_some_and(|d| {
        let observed = status.and_then(|s| s.observed_generation);
        observed.is_some() && observed >= d.metadata.generation
    });
    let stalled = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Progressing" && c.status == "False")
        .map(|c| c.message.clone().unwrap_or_default());
    let image = &instance.spec.image;

    let available = if ready > 0 {
        cond(
            "Available",
            true,
            "ReplicasReady",
            format!("{ready} of {desired} replicas are ready"),
        )
    } else if seen.deployment.is_none() {
        let why = match &seen.blocker {
            Some(b) if b.stops_everything() => {
                "nothing is deployed until the problem Degraded names is fixed"
            }
            _ => "the Deployment is created once the database migrations have succeeded",
        };
        cond("Available", false, "DeploymentNotCreated", why.into())
    } else {
        cond(
            "Available",
            false,
            "NoReplicasReady",
            format!("0 of {desired} replicas are ready; see the pods' events and logs"),
        )
    };

    let progressing = match (&seen.blocker, &seen.migration) {
        (Some(blocker), _) => cond("Progressing", false, blocker.reason(), blocker.message()),
        (None, Migration::Failed { .. }) => cond(
            "Progressing",
            false,
            "MigrationFailed",
            format!("the migrations of {image} failed; the Deployment keeps its previous image"),
        ),
        (None, Migration::Running | Migration::Blocked) => cond(
            "Progressing",
            true,
            "MigrationRunning",
            format!("running the database migrations of {image}"),
        ),
        (None, Migration::Succeeded)
            if stalled.is_some()
                || !caught_up
                || ready < desired
                || updated < desired
                || total > desired =>
        {
            cond(
                "Progressing",
                true,
                "RollingOut",
                format!("{updated} of {desired} replicas updated, {ready} ready"),
            )
        }
        (None, Migration::Succeeded) => cond(
            "Progressing",
            false,
            "RolloutComplete",
            format!("all {desired} replicas run {image}"),
        ),
    };

    let degraded = match (&seen.blocker, &seen.migration, &stalled) {
        (Some(blocker), _, _) => cond("Degraded", true, blocker.reason(), blocker.message()),
        (None, Migration::Failed { message }, _) => cond(
            "Degraded",
            true,
            "MigrationFailed",
            format!(
                "the migration Job for {image} failed ({message}); see its pod logs, fix, then change the image or delete the Job to retry"
            ),
        ),
        (None, _, Some(message)) => cond("Degraded", true, "RolloutStalled", message.clone()),
        _ => cond("Degraded", false, "AsExpected", "no problems found".into()),
    };

    let held = seen.blocker.as_ref().is_some_and(Blocker::stops_everything);
    let insecure = insecure(instance, held);

    let conditions = [available, progressing, degraded, insecure]
        .into_iter()
        .map(|mut c| {
            c.observed_generation = seen.generation;
            c.last_transition_time = since(previous, &c).unwrap_or_else(|| now.clone());
            c
        })
        .collect();
    SettingsSyncStatus {
        observed_generation: seen.generation,
        replicas: total,
        ready_replicas: ready,
        endpoint: Some(instance.endpoint()),
        migrated_image: seen.migrated_image.clone(),
        conditions,
    }
}

/// `Insecure` holds while a server is deployed without authentication, as
/// the spec asked; `held`: a blocker keeps anything from being applied.
fn insecure(instance: &Instance, held: bool) -> Condition {
    match auth_mode(&instance.spec) {
        Ok(AuthMode::Insecure) if !held => cond(
            "Insecure",
            true,
            "InsecureNoAuth",
            format!(
                "auth.insecureNoAuth is set: any caller that can reach port {GRPC_PORT} may read and write every tenant's settings; only the NetworkPolicy limits who can"
            ),
        ),
        Ok(AuthMode::Tokens { .. }) if !held => cond(
            "Insecure",
            false,
            "TokensRequired",
            "callers need a token signed by the key set in auth.jwksSecretRef".into(),
        ),
        _ => cond(
            "Insecure",
            false,
            "NotDeployed",
            "nothing is applied; see Degraded".into(),
        ),
    }
}

fn cond(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: None,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    }
}

/// A condition's transition time moves only when its status flips.
fn since(previous: Option<&SettingsSyncStatus>, now: &Condition) -> Option<Time> {
    previous?
        .conditions
        .iter()
        .find(|c| c.type_ == now.type_ && c.status == now.status)
        .map(|c| c.last_transition_time.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::fixtures::instance;
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn deployment(ready: i32, replicas: i32) -> Deployment {
        let mut d = crate::builders::deployment(&instance(replicas), "img");
        d.metadata.generation = Some(1);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(replicas),
            updated_replicas: Some(replicas),
            ready_replicas: Some(ready),
            ..DeploymentStatus::default()
        });
        d
    }

    fn seen(migration: Migration, deployment: Option<&Deployment>) -> Observed<'_> {
        Observed {
            generation: Some(3),
            blocker: None,
            migration,
            migrated_image: None,
            deployment,
        }
    }

    fn get<'a>(status: &'a SettingsSyncStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn all_replicas_ready_is_available_and_done() {
        let d = deployment(2, 2);
        let status = compute(
            &instance(2),
            &seen(Migration::Succeeded, Some(&d)),
            None,
            at(1),
        );
        assert_eq!(get(&status, "Available").status, "True");
        assert_eq!(get(&status, "Progressing").reason, "RolloutComplete");
        assert_eq!(get(&status, "Degraded").status, "False");
        assert_eq!(status.ready_replicas, 2);
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.endpoint.as_deref(), Some("prefs.apps.svc:50051"));
    }

    #[test]
    fn a_missing_secret_is_degraded_with_its_reason() {
        let mut observed = seen(Migration::Blocked, None);
        observed.blocker = Some(Blocker::Secret {
            reason: "DatabaseSecretMissing".into(),
            message: "create Secret apps/prefs-db".into(),
        });
        let status = compute(&instance(1), &observed, None, at(1));
        let degraded = get(&status, "Degraded");
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "DatabaseSecretMissing")
        );
        assert_eq!(get(&status, "Available").reason, "DeploymentNotCreated");
    }

    #[test]
    fn a_refused_spec_is_degraded_with_a_reason_naming_the_fix() {
        let mut instance = instance(1);
        instance.spec.auth = None;
        let mut observed = seen(Migration::Blocked, None);
        observed.blocker = Some(Blocker::Refused(Refusal::AuthenticationMissing));
        let status = compute(&instance, &observed, None, at(1));
        let degraded = get(&status, "Degraded");
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "AuthenticationMissing")
        );
        assert!(degraded.message.contains("auth.jwksSecretRef"));
        assert_eq!(get(&status, "Progressing").status, "False");
        let available = get(&status, "Available");
        assert_eq!(available.reason, "DeploymentNotCreated");
        assert!(available.message.contains("nothing is deployed"));
        assert_eq!(get(&status, "Insecure").reason, "NotDeployed");
    }

    #[test]
    fn a_taken_name_is_degraded_and_names_the_objects() {
        let mut observed = seen(Migration::Blocked, None);
        observed.blocker = Some(Blocker::NamesTaken(vec!["Service apps/prefs".into()]));
        let status = compute(&instance(1), &observed, None, at(1));
        let degraded = get(&status, "Degraded");
        assert_eq!(degraded.reason, "NameTaken");
        assert!(
            degraded
                .message
                .starts_with("Service apps/prefs already exist")
        );
    }

    #[test]
    fn an_insecure_server_carries_the_insecure_condition() {
        let mut insecure = instance(1);
        insecure.spec.auth = Some(crate::crd::AuthSpec {
            insecure_no_auth: true,
            ..Default::default()
        });
        let d = deployment(1, 1);
        let status = compute(
            &insecure,
            &seen(Migration::Succeeded, Some(&d)),
            None,
            at(1),
        );
        let condition = get(&status, "Insecure");
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("True", "InsecureNoAuth")
        );
        assert_eq!(get(&status, "Available").status, "True");
        let secure = compute(
            &instance(1),
            &seen(Migration::Succeeded, Some(&d)),
            None,
            at(1),
        );
        assert_eq!(get(&secure, "Insecure").status, "False");
    }

    #[test]
    fn a_running_migration_is_progress_not_degradation() {
        let status = compute(&instance(1), &seen(Migration::Running, None), None, at(1));
        assert_eq!(get(&status, "Progressing").reason, "MigrationRunning");
        assert_eq!(get(&status, "Degraded").status, "False");
    }

    #[test]
    fn a_failed_migration_is_degraded() {
        let failed = Migration::Failed {
            message: "BackoffLimitExceeded".into(),
        };
        let status = compute(&instance(1), &seen(failed, None), None, at(1));
        assert_eq!(get(&status, "Degraded").reason, "MigrationFailed");
    }

    #[test]
    fn fewer_ready_replicas_than_asked_is_still_rolling_out() {
        let d = deployment(1, 3);
        let status = compute(
            &instance(3),
            &seen(Migration::Succeeded, Some(&d)),
            None,
            at(1),
        );
        assert_eq!(get(&status, "Available").status, "True");
        assert_eq!(get(&status, "Progressing").reason, "RollingOut");
    }

    fn job(condition: Option<(&str, &str)>) -> Job {
        use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
        Job {
            status: Some(JobStatus {
                conditions: condition.map(|(type_, reason)| {
                    vec![JobCondition {
                        type_: type_.into(),
                        status: "True".into(),
                        reason: Some(reason.into()),
                        ..JobCondition::default()
                    }]
                }),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    #[test]
    fn a_job_is_running_until_complete_or_failed() {
        assert_eq!(migration_of(&job(None)), Migration::Running);
        assert_eq!(
            migration_of(&job(Some(("Complete", "")))),
            Migration::Succeeded
        );
        assert_eq!(
            migration_of(&job(Some(("Failed", "BackoffLimitExceeded")))),
            Migration::Failed {
                message: "BackoffLimitExceeded".into()
            }
        );
    }

    #[test]
    fn transition_times_move_only_when_the_status_flips() {
        let d = deployment(1, 1);
        let first = compute(
            &instance(1),
            &seen(Migration::Succeeded, Some(&d)),
            None,
            at(1),
        );
        let again = compute(
            &instance(1),
            &seen(Migration::Succeeded, Some(&d)),
            Some(&first),
            at(9),
        );
        assert_eq!(get(&again, "Available").last_transition_time, at(1));
        let down = deployment(0, 1);
        let flipped = compute(
            &instance(1),
            &seen(Migration::Succeeded, Some(&down)),
            Some(&again),
            at(20),
        );
        assert_eq!(get(&flipped, "Available").last_transition_time, at(20));
    }
}
