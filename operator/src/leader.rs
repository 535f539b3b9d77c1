//! Leader election over a `coordination.k8s.io/v1` Lease, so that of
//! several operator replicas exactly one reconciles.
//!
//! The same protocol as client-go's elector: a candidate takes the Lease
//! when it is free or when its record has not changed for a whole lease
//! duration *as measured on the candidate's own clock* (so clock skew
//! between nodes does not matter); every write carries the
//! `resourceVersion` it read, so two candidates cannot both win. The
//! leader renews well within the duration and gives up (the process
//! exits, the pod restarts as a candidate) if it cannot.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;
use tracing::{debug, info};

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's name in the Lease (its pod name).
    pub identity: String,
    /// How long a silent leader keeps the Lease.
    pub duration: Duration,
    /// How often the leader renews, and candidates retry.
    pub retry: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot {action} Lease {namespace}/{name}")]
    Api {
        action: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "lost the leader Lease (last renewed {0:?} ago); exiting so a fresh replica takes over"
    )]
    Lost(Duration),
}

/// What a candidate should do with the Lease as it last read it.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Take,
    Renew,
    Wait,
}

/// `unchanged_for`: how long the Lease record has looked the same to us.
pub fn decide(
    holder: Option<&str>,
    me: &str,
    unchanged_for: Duration,
    duration: Duration,
) -> Decision {
    match holder.filter(|h| !h.is_empty()) {
        Some(h) if h == me => Decision::Renew,
        Some(_) if unchanged_for < duration => Decision::Wait,
        _ => Decision::Take,
    }
}

pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The resourceVersion last seen and when it was first seen.
    observed: Option<(String, Instant)>,
    last_renewed: Option<Instant>,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            last_renewed: None,
        }
    }

    /// Returns once this replica holds the Lease.
    pub async fn acquire(&mut self) -> Result<(), LeaderError> {
        let mut logged_wait = false;
        loop {
            if self.try_acquire_or_renew().await? {
                info!(identity = %self.config.identity, lease = %self.config.name, "became the leader");
                return Ok(());
            }
            if !logged_wait {
                info!(lease = %self.config.name, "another replica leads; standing by");
                logged_wait = true;
            }
            tokio::time::sleep(self.config.retry).await;
        }
    }

    /// Renews the Lease every `retry` until it can no longer be held; only
    /// ever returns an error.
    pub async fn keep(&mut self) -> LeaderError {
        loop {
            tokio::time::sleep(self.config.retry).await;
            let outcome = self.try_acquire_or_renew().await;
            let since = self
                .last_renewed
                .map_or(self.config.duration, |t| t.elapsed());
            match outcome {
                Ok(true) => {}
                // Someone else holds it (or wrote it since we read it).
                Ok(false) => return LeaderError::Lost(since),
                // The API server is unreachable: keep acting only while no
                // other replica can have taken over; two-thirds of the
                // duration leaves a margin.
                Err(_) if since < self.config.duration * 2 / 3 => {}
                Err(_) => return LeaderError::Lost(since),
            }
        }
    }

    /// Frees the Lease on shutdown so a standby takes over at once instead
    /// of after a full duration.
    pub async fn release(&mut self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() == Some(&self.config.identity) {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                let result = self
                    .api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await;
                debug!(released = result.is_ok(), "released the leader Lease");
            }
        }
    }

    /// One round: `Ok(true)` when we hold the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let name = self.config.name.clone();
        let Some(mut lease) = self.api.get_opt(&name).await.map_err(self.fail("read"))? else {
            let lease = self.new_lease();
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(self.renewed()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.fail("create")(e)),
            };
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let unchanged_since = match &self.observed {
            Some((seen, since)) if *seen == version => *since,
            _ => Instant::now(),
        };
        self.observed = Some((version, unchanged_since));
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let held_for = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        let decision = decide(
            spec.holder_identity.as_deref(),
            &self.config.identity,
            unchanged_since.elapsed(),
            held_for,
        );
        let now = MicroTime(Timestamp::now());
        match decision {
            Decision::Wait => return Ok(false),
            Decision::Renew => spec.renew_time = Some(now),
            Decision::Take => {
                *spec = LeaseSpec {
                    lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + 1),
                    ..self.new_lease().spec.unwrap_or_default()
                }
            }
        }
        // `replace` sends the resourceVersion we read: if anyone wrote in
        // between, this fails with 409 and we simply did not win.
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(self.renewed()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.fail("update")(e)),
        }
    }

    fn renewed(&mut self) -> bool {
        self.last_renewed = Some(Instant::now());
        true
    }

    fn new_lease(&self) -> Lease {
        let now = MicroTime(Timestamp::now());
        Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(
                    self.config
                        .duration
                        .as_secs()
                        .try_into()
                        .unwrap_or(i32::MAX),
                ),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        }
    }

    fn fail(&self, action: &'static str) -> impl FnOnce(kube::Error) -> LeaderError + use<> {
        let (namespace, name) = (self.config.namespace.clone(), self.config.name.clone());
        move |source| LeaderError::Api {
            action,
            namespace,
            name,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    #[test]
    fn a_free_lease_is_taken() {
        assert_eq!(decide(None, "a", Duration::ZERO, D), Decision::Take);
        assert_eq!(decide(Some(""), "a", Duration::ZERO, D), Decision::Take);
    }

    #[test]
    fn our_own_lease_is_renewed() {
        assert_eq!(
            decide(Some("a"), "a", Duration::from_secs(60), D),
            Decision::Renew
        );
    }

    #[test]
    fn a_live_leader_is_left_alone() {
        assert_eq!(
            decide(Some("b"), "a", Duration::from_secs(14), D),
            Decision::Wait
        );
    }

    #[test]
    fn a_leader_silent_for_a_whole_duration_is_replaced() {
        assert_eq!(decide(Some("b"), "a", D, D), Decision::Take);
    }
}
