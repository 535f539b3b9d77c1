//! Overrides: which acknowledged writes a merge made lose, so that none
//! vanishes without a trace (issue #14, `docs/protocol.md`).
//!
//! A write *loses* in one of two ways:
//!
//! - it **arrived stale**: a larger stamp was already stored, so the write
//!   was answered `STALE` and nothing of it was stored (for a per-field
//!   write: each field answered `STALE`);
//! - it was **overtaken**: it was stored, and a write with a larger stamp
//!   replaced it (for a per-field document: replaced that field).
//!
//! A repeat of the stored write (`UNCHANGED`) loses nothing: an identical
//! stamp is the same write. A write that loses is recorded once: a losing
//! stamp can never win later (stored stamps only grow), so the pair
//! *(document, field, losing stamp)* identifies a record, and a replay of
//! a write that already lost adds no second one.
//!
//! **Granularity.** A document in whole-document mode loses whole: one
//! record with no field name, the losing value being the whole document
//! (`None`: a delete). As soon as a patch is involved — the document holds
//! one before or after the merge, or the write is a patch — records are per
//! field: the field's losing value (`None`: deleted, or absent from a whole
//! write) under the losing stamp. Only fields that were listed (set or
//! deleted by some write) can be overtaken; a field merely absent under the
//! floor was never written, so it has nothing to lose.

use crate::fields::{Change, FieldDocument, FieldReport, FieldWrite};
use crate::{Decision, Stamp, Versioned};

/// How a write lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OverrideKind {
    /// Answered `STALE`: a larger stamp was stored when it arrived.
    ArrivedStale,
    /// Stored, then replaced by a write with a larger stamp.
    Overtaken,
}

impl OverrideKind {
    /// The name stores and the wire use.
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideKind::ArrivedStale => "stale",
            OverrideKind::Overtaken => "overtaken",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "stale" => Some(OverrideKind::ArrivedStale),
            "overtaken" => Some(OverrideKind::Overtaken),
            _ => None,
        }
    }
}

/// One losing value: what lost, under which stamp, to which stamp.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lost {
    /// `None`: the whole document; else one top-level field.
    pub field: Option<String>,
    /// The losing value: the document or field; `None` for a delete (or a
    /// field a whole write left absent).
    pub value: Option<String>,
    pub stamp: Stamp,
    /// The stamp of the write it lost to.
    pub winner: Stamp,
    pub kind: OverrideKind,
}

/// One recorded override of a document, as the log lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// Position in the log: larger is newer; pages resume below it.
    pub id: i64,
    pub lost: Lost,
    pub recorded_at: std::time::SystemTime,
}

/// JSON text of a value as records keep it (canonical: `serde_json`
/// serializes object keys in order).
fn text(value: &serde_json::Value) -> String {
    value.to_string()
}

fn whole_text(value: &crate::Value) -> Option<String> {
    (!value.is_tombstone()).then(|| value.canonical())
}

/// What a whole-document client's write made lose, given the state stored
/// before it and the decision it got.
pub fn whole(stored: Option<&Versioned>, write: &Versioned, decision: Decision) -> Option<Lost> {
    let stored = stored?;
    match decision {
        Decision::Applied => Some(Lost {
            field: None,
            value: whole_text(&stored.value),
            stamp: stored.stamp.clone(),
            winner: write.stamp.clone(),
            kind: OverrideKind::Overtaken,
        }),
        Decision::Stale => Some(Lost {
            field: None,
            value: whole_text(&write.value),
            stamp: write.stamp.clone(),
            winner: stored.stamp.clone(),
            kind: OverrideKind::ArrivedStale,
        }),
        Decision::Unchanged => None,
    }
}

/// What was overtaken when a document went from `before` to `after` (its
/// state after the join with some write): every listed register whose
/// field now has a larger stamp. Whole while neither holds a patch.
pub fn overtaken(before: &FieldDocument, after: &FieldDocument) -> Vec<Lost> {
    if !before.holds_patch() && !after.holds_patch() {
        let (Some(old), Some(new)) = (before.versioned(), after.versioned()) else {
            return Vec::new();
        };
        if new.stamp <= old.stamp {
            return Vec::new();
        }
        return vec![Lost {
            field: None,
            value: whole_text(&old.value),
            stamp: old.stamp,
            winner: new.stamp,
            kind: OverrideKind::Overtaken,
        }];
    }
    before
        .entries()
        .filter_map(|(name, entry)| {
            let winner = after.stamp_of(name)?;
            (*winner > entry.stamp).then(|| Lost {
                field: Some(name.to_owned()),
                value: entry.value.as_ref().map(text),
                stamp: entry.stamp.clone(),
                winner: winner.clone(),
                kind: OverrideKind::Overtaken,
            })
        })
        .collect()
}

/// What of a per-field client's `write` arrived stale, from its report and
/// the document `stored` it was merged into (before or after: a stale
/// field is the same in both). Whole when the write is whole and the
/// document holds no patch; else one record per field answered `STALE`.
pub fn arrived_stale(
    stored: &FieldDocument,
    write: &FieldWrite,
    report: &FieldReport,
) -> Vec<Lost> {
    if let Change::Whole(value) = &write.change
        && !stored.holds_patch()
    {
        return match (report.decision, stored.stamp()) {
            (Decision::Stale, Some(winner)) => vec![Lost {
                field: None,
                value: whole_text(value),
                stamp: write.stamp.clone(),
                winner: winner.clone(),
                kind: OverrideKind::ArrivedStale,
            }],
            _ => Vec::new(),
        };
    }
    (report.fields.iter())
        .filter(|(_, decision)| **decision == Decision::Stale)
        .filter_map(|(name, _)| {
            let value = match &write.change {
                Change::Patch(patch) => patch.get(name)?.value().map(text),
                Change::Whole(value) => value.as_object().and_then(|o| o.get(name)).map(text),
            };
            Some(Lost {
                field: Some(name.clone()),
                value,
                stamp: write.stamp.clone(),
                winner: stored.stamp_of(name)?.clone(),
                kind: OverrideKind::ArrivedStale,
            })
        })
        .collect()
}

/// Everything a per-field client's write made lose: `before` the stored
/// document, `after` the document after the merge.
pub fn of_field_write(
    before: &FieldDocument,
    after: &FieldDocument,
    write: &FieldWrite,
    report: &FieldReport,
) -> Vec<Lost> {
    let mut lost = overtaken(before, after);
    lost.extend(arrived_stale(after, write, report));
    lost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{FieldOp, Patch};
    use crate::{Clock, MergePolicy, Value, WriterId, fields};

    fn stamp(clock: u64, writer: &str) -> Stamp {
        Stamp::new(Clock::new(clock).unwrap(), WriterId::parse(writer).unwrap())
    }

    fn whole_write(clock: u64, writer: &str, json: serde_json::Value) -> FieldWrite {
        FieldWrite {
            stamp: stamp(clock, writer),
            change: Change::Whole(Value::from_json(json).unwrap()),
        }
    }

    fn patch(clock: u64, writer: &str, sets: &[(&str, serde_json::Value)]) -> FieldWrite {
        let patch: Patch = sets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), FieldOp::Set(v.clone())))
            .collect();
        FieldWrite {
            stamp: stamp(clock, writer),
            change: Change::Patch(patch),
        }
    }

    fn apply(doc: &FieldDocument, write: &FieldWrite) -> (FieldDocument, Vec<Lost>) {
        let report = fields::merge(doc, write, MergePolicy::UNBOUNDED).unwrap();
        let after = doc.join_write(write);
        let lost = of_field_write(doc, &after, write, &report);
        (after, lost)
    }

    #[test]
    fn a_whole_write_over_a_whole_document_overtakes_it_whole() {
        let (doc, lost) = apply(
            &FieldDocument::new(),
            &whole_write(1, "a", serde_json::json!({"x": 1})),
        );
        assert!(lost.is_empty());
        let (_, lost) = apply(&doc, &whole_write(2, "b", serde_json::json!({"x": 2})));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].field, None);
        assert_eq!(lost[0].value.as_deref(), Some(r#"{"x":1}"#));
        assert_eq!(lost[0].kind, OverrideKind::Overtaken);
        assert_eq!(lost[0].winner, stamp(2, "b"));
    }

    #[test]
    fn a_stale_patch_field_is_recorded_per_field_and_an_applied_one_overtakes() {
        let (doc, _) = apply(
            &FieldDocument::new(),
            &patch(5, "a", &[("alerts", serde_json::json!(true))]),
        );
        let (doc, _) = apply(
            &doc,
            &patch(2, "b", &[("theme", serde_json::json!("dark"))]),
        );
        let (_, lost) = apply(
            &doc,
            &patch(
                3,
                "c",
                &[
                    ("alerts", serde_json::json!(false)),
                    ("theme", serde_json::json!("light")),
                ],
            ),
        );
        let mut lost = lost;
        lost.sort();
        assert_eq!(lost.len(), 2, "{lost:?}");
        assert!(lost.iter().any(|l| l.field.as_deref() == Some("alerts")
            && l.kind == OverrideKind::ArrivedStale
            && l.value.as_deref() == Some("false")
            && l.winner == stamp(5, "a")));
        assert!(lost.iter().any(|l| l.field.as_deref() == Some("theme")
            && l.kind == OverrideKind::Overtaken
            && l.value.as_deref() == Some("\"dark\"")
            && l.winner == stamp(3, "c")));
    }

    #[test]
    fn a_repeat_of_the_stored_write_loses_nothing() {
        let w = whole_write(1, "a", serde_json::json!({"x": 1}));
        let (doc, _) = apply(&FieldDocument::new(), &w);
        let (_, lost) = apply(&doc, &w);
        assert!(lost.is_empty());
        let v = doc.versioned().unwrap();
        assert_eq!(whole(Some(&v), &v, Decision::Unchanged), None);
    }
}
