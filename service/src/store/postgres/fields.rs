//! A per-field write as the `merge_fields` function (migrations 0002 and
//! 0003, which adds the stored size cap) takes
//! it, and its answer back as protocol types. The function runs the rules
//! of `protocol/src/fields` in one statement, so that a request is one
//! round trip and atomic under any number of replicas; the differential
//! test holds it to the pure merge, decision by decision.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use settings_sync_protocol::fields::{Change, FieldOp, FieldReport, FieldWrite};
use settings_sync_protocol::{Clock, Decision, Document, MergeError, MergePolicy};

use crate::store::row::{Row, value_param};
use crate::store::{FieldOutcome, StoreError};

pub(super) const MERGE_FIELDS: &str = "SELECT refusal, stored_clock, decision, field_decisions,
    tenant, owner, name, value, clock, writer, revision, updated_at, field_stamps
    FROM merge_fields($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12)";

/// The combined statement: one answer row per write, `ord` its position
/// (from 1) in the arrays.
pub(super) const MERGE_FIELDS_MANY: &str = "SELECT ord, refusal, stored_clock, decision,
    field_decisions, tenant, owner, name, value, clock, writer, revision, updated_at, field_stamps
    FROM merge_fields_many($1, $2, $3, $4, $5, $6, $7::jsonb[], $8::jsonb[], $9::jsonb[], $10, $11,
        $12)";

/// The write's parameters: a whole document, or a patch's sets and deletes.
pub(super) struct WireWrite {
    pub whole: bool,
    pub value: Option<String>,
    pub sets: Option<String>,
    pub deletes: Vec<String>,
}

impl WireWrite {
    pub fn of(write: &FieldWrite) -> Self {
        match &write.change {
            Change::Whole(value) => WireWrite {
                whole: true,
                value: value_param(value),
                sets: None,
                deletes: Vec::new(),
            },
            Change::Patch(patch) => {
                let sets: serde_json::Map<String, serde_json::Value> = (patch.iter())
                    .filter_map(|(name, op)| Some((name.clone(), op.value()?.clone())))
                    .collect();
                WireWrite {
                    whole: false,
                    value: None,
                    sets: Some(serde_json::Value::Object(sets).to_string()),
                    deletes: (patch.iter())
                        .filter(|(_, op)| **op == FieldOp::Delete)
                        .map(|(name, _)| name.clone())
                        .collect(),
                }
            }
        }
    }
}

/// A row of `merge_fields_many`: which write it answers, and the answer.
#[derive(sqlx::FromRow)]
pub(super) struct NumberedFieldMergeRow {
    pub ord: i64,
    #[sqlx(flatten)]
    pub row: FieldMergeRow,
}

/// What `merge_fields` answers: a refusal, or the decisions and the
/// document after the write (all NULL when there is none).
#[derive(sqlx::FromRow)]
pub(super) struct FieldMergeRow {
    refusal: Option<String>,
    stored_clock: Option<i64>,
    decision: Option<String>,
    field_decisions: Option<String>,
    tenant: Option<String>,
    owner: Option<String>,
    name: Option<String>,
    value: Option<String>,
    clock: Option<i64>,
    writer: Option<String>,
    revision: Option<i64>,
    updated_at: Option<DateTime<Utc>>,
    field_stamps: Option<String>,
}

impl FieldMergeRow {
    pub fn outcome(
        self,
        write: &FieldWrite,
        policy: MergePolicy,
    ) -> Result<FieldOutcome, StoreError> {
        let bad = |what: &str| StoreError::internal(format!("merge_fields answered {what}"));
        match self.refusal.as_deref() {
            None => {}
            Some("conflict") => {
                return Err(MergeError::ConflictingContent(write.stamp.clone()).into());
            }
            Some("clock_jump") => {
                let stored = self
                    .stored_clock
                    .ok_or_else(|| bad("a jump without a clock"))?;
                return Err(MergeError::ClockJump {
                    incoming: write.stamp.clock,
                    stored: Clock::try_from(stored).map_err(|e| bad(&e.to_string()))?,
                    max_jump: policy.max_clock_jump,
                }
                .into());
            }
            Some("too_large") => {
                let size = self
                    .stored_clock
                    .ok_or_else(|| bad("too large without a size"))?;
                return Err(MergeError::TooLarge {
                    size: usize::try_from(size).map_err(|e| bad(&e.to_string()))?,
                    max: policy.max_stored_bytes,
                }
                .into());
            }
            Some(other) => return Err(bad(&format!("the refusal {other:?}"))),
        }
        let decision =
            parse_decision(self.decision.as_deref()).ok_or_else(|| bad("no decision"))?;
        let fields: BTreeMap<String, String> =
            serde_json::from_str(self.field_decisions.as_deref().unwrap_or("{}"))
                .map_err(|e| bad(&e.to_string()))?;
        let fields = (fields.into_iter())
            .map(|(name, d)| Some((name, parse_decision(Some(&d))?)))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("an unknown field decision"))?;
        let document = match (self.tenant, self.owner, self.name) {
            (Some(tenant), Some(owner), Some(name)) => Some(Document::try_from(Row {
                tenant,
                owner,
                name,
                value: self.value,
                clock: self.clock.ok_or_else(|| bad("a row without a clock"))?,
                writer: self.writer.ok_or_else(|| bad("a row without a writer"))?,
                revision: self
                    .revision
                    .ok_or_else(|| bad("a row without a revision"))?,
                updated_at: self.updated_at.ok_or_else(|| bad("a row without a time"))?,
                field_stamps: self.field_stamps,
            })?),
            _ => None,
        };
        Ok(FieldOutcome {
            document,
            report: FieldReport { decision, fields },
        })
    }
}

fn parse_decision(text: Option<&str>) -> Option<Decision> {
    match text? {
        "APPLIED" => Some(Decision::Applied),
        "STALE" => Some(Decision::Stale),
        "UNCHANGED" => Some(Decision::Unchanged),
        _ => None,
    }
}
