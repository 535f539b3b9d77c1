//! What every reconciliation shares: the client, the event recorder, the
//! metrics, the requeue timing and the per-object failure counts that
//! drive the error backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;

use crate::crd::SettingsSync;
use crate::metrics::Metrics;
use crate::reconcile::{Error, backoff};

/// When to look again at a resource that did not change.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// While a migration or rollout is under way, or something is wrong:
    /// Secrets and Job pods are not watched, so this is how soon a fixed
    /// Secret is noticed.
    pub busy: Duration,
    /// When all is well: a resync that repairs drift nobody reported.
    pub idle: Duration,
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub timing: Timing,
    failures: Mutex<HashMap<ObjectRef<SettingsSync>, u32>>,
}

impl Context {
    pub fn new(client: Client, reporter: Reporter, metrics: Metrics, timing: Timing) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            timing,
            failures: Mutex::default(),
        }
    }

    /// Counts a failure of `obj` and returns how many in a row it has had.
    fn count_failure(&self, obj: &SettingsSync) -> u32 {
        // A poisoned lock only means another reconcile panicked mid-update
        // of a counter; the counts are still usable.
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let count = failures.entry(ObjectRef::from(obj)).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    pub fn forget_failures(&self, obj: &SettingsSync) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.remove(&ObjectRef::from(obj));
    }
}

/// Requeues a failed object with exponential backoff per object.
pub fn error_policy(obj: Arc<SettingsSync>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.count_failure(&obj);
    let delay = backoff(failures);
    tracing::warn!(
        error = &*format!("{:#}", ErrorChain(error)),
        failures,
        retry_in_s = delay.as_secs(),
        "reconciliation failed"
    );
    Action::requeue(delay)
}

/// Formats an error with its whole cause chain: "cannot apply Job x: 403 …".
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
