//! Checks a recorded history against the register's specification.
//!
//! A document is a max-register: a sync joins its write in (the larger stamp
//! wins) and answers the joined state; a get answers the state. A history of
//! such a register is linearizable iff, per document:
//! 1. every answered state was written by a write invoked before the answer;
//! 2. it is at least every write acknowledged before the call was invoked;
//! 3. answers never go back in real time: a call invoked after another
//!    completed sees a state at least as large;
//! 4. a sync's decision matches its own write and the state answered.
//!
//! Then P5: the final state is at least every acknowledged write.

use std::collections::HashMap;

use settings_sync_protocol::{Decision, DocumentKey, Stamp, Versioned};

use crate::load::{Call, Op, Outcome};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub operations: usize,
    pub acknowledged_writes: usize,
    pub unanswered: usize,
    pub documents: usize,
    pub lost_writes: usize,
}

/// The state an op observed (None: the document did not exist), if it
/// observed one.
fn observed(op: &Op) -> Option<Option<&Versioned>> {
    match &op.outcome {
        Outcome::Synced { stored, .. } => Some(Some(stored)),
        Outcome::Read(state) => Some(state.as_ref()),
        _ => None,
    }
}

fn acknowledged(op: &Op) -> Option<&Versioned> {
    match (&op.call, &op.outcome) {
        (Call::Sync(w), Outcome::Synced { .. }) => Some(w),
        _ => None,
    }
}

fn stamp(state: Option<&Versioned>) -> Option<&Stamp> {
    state.map(|s| &s.stamp)
}

pub fn check(
    history: &[Op],
    finals: &HashMap<DocumentKey, Option<Versioned>>,
) -> Result<Report, Vec<String>> {
    let mut by_key: HashMap<&DocumentKey, Vec<&Op>> = HashMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut violations = Vec::new();
    let mut report = Report {
        operations: history.len(),
        documents: by_key.len(),
        ..Report::default()
    };
    for (key, ops) in &by_key {
        let final_state = finals.get(*key).cloned().flatten();
        check_document(key, ops, final_state.as_ref(), &mut report, &mut violations);
    }
    if violations.is_empty() {
        Ok(report)
    } else {
        Err(violations)
    }
}

fn check_document(
    key: &DocumentKey,
    ops: &[&Op],
    final_state: Option<&Versioned>,
    report: &mut Report,
    out: &mut Vec<String>,
) {
    let writes: Vec<(&Op, &Versioned)> = ops
        .iter()
        .filter_map(|op| match (&op.call, &op.outcome) {
            (Call::Sync(w), outcome) if !matches!(outcome, Outcome::Rejected(_)) => Some((*op, w)),
            _ => None,
        })
        .collect();
    report.unanswered += ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Unknown(_)))
        .count();
    for op in ops {
        let Some(seen) = observed(op) else { continue };
        // 1. Written by a write invoked before this answer.
        if let Some(state) = seen {
            let origin = writes
                .iter()
                .any(|(w_op, w)| *w == state && w_op.invoked < op.completed);
            if !origin {
                out.push(format!(
                    "{key}: answered {} which no write had sent yet",
                    state.stamp
                ));
            }
        }
        // 2. At least every write acknowledged before this call began.
        for (w_op, w) in &writes {
            if acknowledged(w_op).is_some()
                && w_op.completed < op.invoked
                && stamp(seen) < Some(&w.stamp)
            {
                out.push(format!(
                    "{key}: answered {:?} after {} was acknowledged",
                    stamp(seen),
                    w.stamp
                ));
            }
        }
        // 3. Never back in real time.
        for earlier in ops.iter().filter(|e| e.completed < op.invoked) {
            if let Some(before) = observed(earlier)
                && stamp(seen) < stamp(before)
            {
                out.push(format!(
                    "{key}: answered {:?} after another call had seen {:?}",
                    stamp(seen),
                    stamp(before)
                ));
            }
        }
        // 4. The decision agrees with the call's own write.
        if let (Call::Sync(own), Outcome::Synced { decision, stored }) = (&op.call, &op.outcome) {
            let consistent = match decision {
                Decision::Applied | Decision::Unchanged => stored == own,
                Decision::Stale => stored.stamp > own.stamp,
            };
            if !consistent {
                out.push(format!(
                    "{key}: {decision:?} for {} answered {}",
                    own.stamp, stored.stamp
                ));
            }
        }
    }
    // P5: nothing acknowledged is lost.
    for (w_op, w) in &writes {
        if acknowledged(w_op).is_some() {
            report.acknowledged_writes += 1;
            if stamp(final_state) < Some(&w.stamp) {
                report.lost_writes += 1;
                out.push(format!(
                    "{key}: acknowledged {} lost; final {:?}",
                    w.stamp,
                    stamp(final_state)
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The checker must be able to fail: each planted history breaks one rule.
    use std::time::{Duration, Instant};

    use super::*;
    use crate::fixtures::write;

    fn op(key: &DocumentKey, call: Call, outcome: Outcome, from: u64, to: u64) -> Op {
        let base = Instant::now();
        Op {
            client: 0,
            key: key.clone(),
            call,
            invoked: base + Duration::from_millis(from),
            completed: base + Duration::from_millis(to),
            outcome,
        }
    }

    fn fixture() -> (DocumentKey, Versioned, Versioned) {
        let key = DocumentKey::parse("t", "o", "n").unwrap();
        (
            key,
            write(1, "a", serde_json::json!({"v": 1})),
            write(2, "a", serde_json::json!({"v": 2})),
        )
    }

    fn applied(key: &DocumentKey, w: &Versioned, from: u64, to: u64) -> Op {
        op(
            key,
            Call::Sync(w.clone()),
            Outcome::Synced {
                decision: Decision::Applied,
                stored: w.clone(),
            },
            from,
            to,
        )
    }

    #[test]
    fn a_correct_history_passes() {
        let (key, w1, w2) = fixture();
        let history = vec![
            applied(&key, &w1, 0, 1),
            applied(&key, &w2, 2, 3),
            op(&key, Call::Get, Outcome::Read(Some(w2.clone())), 4, 5),
        ];
        let finals = HashMap::from([(key, Some(w2))]);
        let report = check(&history, &finals).unwrap();
        assert_eq!(report.acknowledged_writes, 2);
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_caught() {
        let (key, w1, w2) = fixture();
        let history = vec![
            applied(&key, &w1, 0, 1),
            applied(&key, &w2, 2, 3),
            op(&key, Call::Get, Outcome::Read(Some(w1.clone())), 4, 5),
        ];
        assert!(check(&history, &HashMap::from([(key, Some(w2))])).is_err());
    }

    #[test]
    fn a_value_from_the_future_is_caught() {
        let (key, w1, w2) = fixture();
        let history = vec![
            op(&key, Call::Get, Outcome::Read(Some(w2.clone())), 0, 1),
            applied(&key, &w1, 0, 1),
            applied(&key, &w2, 5, 6),
        ];
        assert!(check(&history, &HashMap::from([(key, Some(w2))])).is_err());
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let (key, w1, w2) = fixture();
        let history = vec![applied(&key, &w2, 0, 1), applied(&key, &w1, 0, 1)];
        let violations = check(&history, &HashMap::from([(key, Some(w1))])).unwrap_err();
        assert!(
            violations.iter().any(|v| v.contains("lost")),
            "{violations:?}"
        );
    }

    #[test]
    fn a_wrong_decision_is_caught() {
        let (key, w1, w2) = fixture();
        let wrong = op(
            &key,
            Call::Sync(w1.clone()),
            Outcome::Synced {
                decision: Decision::Applied,
                stored: w2.clone(),
            },
            2,
            3,
        );
        let history = vec![applied(&key, &w2, 0, 1), wrong];
        assert!(check(&history, &HashMap::from([(key, Some(w2))])).is_err());
    }
}
