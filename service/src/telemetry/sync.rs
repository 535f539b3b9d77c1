//! What a `Sync` decided, recorded on its RPC span and in the metrics.
//!
//! The stamps on the span (see `docs/observability.md`):
//! - `stamp.incoming`: the caller's stamp, once it parsed;
//! - `stamp.stored_after`: the stamp stored when the RPC answered;
//! - `stamp.stored_before`: the stamp stored when the write was decided,
//!   only where that is known for certain. A refused guarded write reads
//!   the row back, and that row is the state it lost to (STALE, UNCHANGED);
//!   a conflicting write lost to its own stamp; a clock jump knows only the
//!   stored clock. An APPLIED write is one guarded statement that returns
//!   the new row only, so the replaced stamp is not known and not recorded:
//!   the guard proves it was smaller than the incoming one.

use std::time::Instant;

use settings_sync_protocol::{Decision, Document, DocumentKey, Id, MergeError, Stamp};
use sha2::{Digest, Sha256};
use tracing::Span;

use super::grpc::TraceSettings;
use super::metrics;
use crate::api::ApiError;
use crate::store::{StoreError, SyncOutcome};

impl TraceSettings {
    /// The settings the RPC layer attached to `request` (defaults when the
    /// service runs without the layer, as in unit tests).
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .copied()
            .unwrap_or_default()
    }

    /// An owner id as trace attributes show it.
    pub fn owner(self, owner: &Id) -> String {
        if !self.redact_owner {
            return owner.to_string();
        }
        // Stable across replicas and restarts, so one owner's traces can be
        // found together; unsalted, so it hides ids from casual reading,
        // not from someone who can guess and hash candidate ids.
        let digest = Sha256::digest(owner.as_str().as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// Records which documents a Watch stream follows on its span.
    pub fn record_watch(self, tenant: &Id, owner: Option<&Id>, name: Option<&Id>) {
        let span = Span::current();
        span.record("settings_sync.tenant", tenant.as_str());
        if let Some(owner) = owner {
            span.record("settings_sync.owner", self.owner(owner));
        }
        if let Some(name) = name {
            span.record("settings_sync.name", name.as_str());
        }
    }
}

/// Follows one `Sync` from request to answer. Dropping it records the
/// latency, whatever path the handler left by.
pub struct SyncTrace {
    span: Span,
    settings: TraceSettings,
    started: Instant,
    outcome: &'static str,
}

impl SyncTrace {
    pub fn start<T>(request: &tonic::Request<T>) -> Self {
        SyncTrace {
            span: Span::current(),
            settings: TraceSettings::of(request),
            started: Instant::now(),
            outcome: "ERROR",
        }
    }

    pub fn key(&self, key: &DocumentKey) {
        self.span
            .record("settings_sync.tenant", key.tenant.as_str());
        self.span
            .record("settings_sync.owner", self.settings.owner(&key.owner));
        self.span.record("settings_sync.name", key.name.as_str());
    }

    pub fn incoming(&self, stamp: &Stamp) {
        self.stamp("incoming", Some(stamp.clock.get()), Some(stamp));
    }

    pub fn decided(&mut self, outcome: &SyncOutcome) {
        let stored = &outcome.document.state.stamp;
        let decision = outcome.decision.as_str();
        self.span.record("settings_sync.decision", decision);
        self.span
            .record("settings_sync.revision", outcome.document.revision);
        self.stamp("stored_after", Some(stored.clock.get()), Some(stored));
        if outcome.decision != settings_sync_protocol::Decision::Applied {
            // Refused by the guard: the row read back is what the write lost to.
            self.stamp("stored_before", Some(stored.clock.get()), Some(stored));
        }
        self.finish(decision);
    }

    /// A per-field client's write: the read-merge-write path knows the
    /// state before, but a partly stale write changes it, so only the
    /// stored stamp after is recorded.
    pub fn decided_fields(&mut self, decision: Decision, document: Option<&Document>) {
        let decision = decision.as_str();
        self.span.record("settings_sync.decision", decision);
        if let Some(document) = document {
            let stored = &document.state.stamp;
            self.span
                .record("settings_sync.revision", document.revision);
            self.stamp("stored_after", Some(stored.clock.get()), Some(stored));
        }
        self.finish(decision);
    }

    /// Records why `error` refused the write, if its class is a refusal
    /// (bad input or a merge rule) rather than a failure, and hands it back.
    pub fn refused(&mut self, error: ApiError) -> ApiError {
        let Some(reason) = error.class().rejection() else {
            return error;
        };
        match &error {
            ApiError::Store(StoreError::Merge(MergeError::ConflictingContent(stamp))) => {
                // Same stamp, other content: the stored stamp IS this one.
                self.stamp("stored_before", Some(stamp.clock.get()), Some(stamp));
                self.stamp("stored_after", Some(stamp.clock.get()), Some(stamp));
            }
            // Clock zero stands for "no document"; only the clock is known.
            ApiError::Store(StoreError::Merge(MergeError::ClockJump { stored, .. }))
                if stored.get() > 0 =>
            {
                self.stamp("stored_before", Some(stored.get()), None);
                self.stamp("stored_after", Some(stored.get()), None);
            }
            _ => {}
        }
        self.span.record("settings_sync.decision", "REJECTED");
        self.span.record("settings_sync.rejection", reason);
        self.finish("REJECTED");
        error
    }

    fn stamp(&self, which: &'static str, clock: Option<u64>, writer: Option<&Stamp>) {
        let field = |part: &str| format!("settings_sync.stamp.{which}.{part}");
        if let Some(clock) = clock {
            self.span.record(field("clock").as_str(), clock);
        }
        if let Some(stamp) = writer {
            self.span
                .record(field("writer").as_str(), stamp.writer.as_str());
        }
    }

    fn finish(&mut self, outcome: &'static str) {
        self.outcome = outcome;
        metrics::decision(outcome);
    }
}

impl Drop for SyncTrace {
    fn drop(&mut self) {
        metrics::sync_duration(self.started.elapsed().as_secs_f64(), self.outcome);
    }
}
