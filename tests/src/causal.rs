//! Causal bookkeeping for the convergence property tests, and the checks of
//! P2–P5 over what a test saw (P1 and P3 are checked where they happen, with
//! [`History::check_shown`] for P3).
//!
//! Every edit gets a unique id, written into its value as `{"edit": id}`; a
//! tombstone has no room for one and is known by its stamp. The causal past
//! of an edit is every edit its browser had seen — made or adopted, each with
//! its own past — when it made it; a reset forgets.
//!
//! The backend's states are recorded in the order the test observed them.
//! A test that makes one call at a time observes the state after every call
//! (each reply, or a read right after it), so consecutive states are all of
//! the backend's transitions.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde_json::json;
use settings_sync_protocol::{Decision, Stamp, Value, Versioned};

pub type EditId = u64;

/// Which property a run broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property {
    P1Convergence,
    P2NoCausalRegression,
    P3NoFlicker,
    P4Monotonic,
    P5NothingAppliedLost,
    /// P5 made observable: an acknowledged write that is not the final
    /// state is missing from the override log, or listed twice, or the log
    /// lists a write nobody was answered for.
    P5OverrideLog,
    /// The backend answered a state no browser wrote: a value paired with a
    /// stamp it was not made with (the backend invented a stamp).
    Integrity,
    /// A decision that does not match the state answered with it.
    Decision,
    /// A call failed; in a correct system none does.
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub property: Property,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.property, self.detail)
    }
}

fn violation(property: Property, detail: String) -> Result<(), Violation> {
    Err(Violation { property, detail })
}

/// The edits one browser incarnation has seen: made or adopted, closed
/// under causal pasts.
#[derive(Clone, Debug, Default)]
pub struct Knowledge(BTreeSet<EditId>);

impl Knowledge {
    pub fn forget(&mut self) {
        self.0.clear();
    }
}

#[derive(Debug, Default)]
pub struct History {
    /// Indexed by edit id: the write as its browser made it.
    writes: Vec<Versioned>,
    pasts: Vec<BTreeSet<EditId>>,
    by_stamp: HashMap<Stamp, EditId>,
    /// How many times the backend's state was observed.
    observations: usize,
    last_backend: Option<Versioned>,
    applied: Vec<EditId>,
    /// Every write the backend answered (any decision), by stamp.
    acknowledged: BTreeSet<Stamp>,
}

impl History {
    /// The value of the next edit: `{"edit": id}`, or a tombstone.
    pub fn next_value(&self, delete: bool) -> (EditId, Value) {
        let id = self.writes.len() as EditId;
        let json = if delete {
            serde_json::Value::Null
        } else {
            json!({ "edit": id })
        };
        (id, Value::from_json(json).expect("an object or null"))
    }

    /// Records the edit `id` (from [`Self::next_value`]) that a browser with
    /// `knowledge` just made as `write`.
    pub fn record_edit(&mut self, id: EditId, write: &Versioned, knowledge: &mut Knowledge) {
        assert_eq!(
            id as usize,
            self.writes.len(),
            "edits are recorded in order"
        );
        self.writes.push(write.clone());
        self.pasts.push(knowledge.0.clone());
        self.by_stamp.insert(write.stamp.clone(), id);
        knowledge.0.insert(id);
    }

    pub fn past(&self, id: EditId) -> &BTreeSet<EditId> {
        &self.pasts[id as usize]
    }

    /// Whether edit `a` is in the causal past of edit `b`.
    pub fn precedes(&self, a: EditId, b: EditId) -> bool {
        self.past(b).contains(&a)
    }

    /// A browser adopted edit `id`: it has now seen it and its past.
    pub fn adopt(&self, knowledge: &mut Knowledge, id: EditId) {
        knowledge.0.insert(id);
        knowledge.0.extend(self.past(id).iter().copied());
    }

    /// The edit a state is, checking it carries exactly the stamp and value
    /// that edit was made with.
    pub fn identify(&self, state: &Versioned) -> Result<EditId, Violation> {
        let by_value = state
            .value
            .as_object()
            .and_then(|o| o.get("edit"))
            .and_then(serde_json::Value::as_u64);
        let id = by_value.or_else(|| self.by_stamp.get(&state.stamp).copied());
        match id {
            Some(id) if self.writes.get(id as usize) == Some(state) => Ok(id),
            Some(id) if (id as usize) < self.writes.len() => Err(Violation {
                property: Property::Integrity,
                detail: format!(
                    "a state {} at {} is edit e{id}, which was made at {}",
                    state.value.canonical(),
                    state.stamp,
                    self.writes[id as usize].stamp
                ),
            }),
            _ => Err(Violation {
                property: Property::Integrity,
                detail: format!(
                    "a state {} at {} that no browser made",
                    state.value.canonical(),
                    state.stamp
                ),
            }),
        }
    }

    pub fn identify_opt(&self, state: Option<&Versioned>) -> Result<Option<EditId>, Violation> {
        state.map(|s| self.identify(s)).transpose()
    }

    /// A readable name for a state: `e3 (2, b0.1)`, or `-` for none.
    pub fn name(&self, state: Option<&Versioned>) -> String {
        match state {
            None => "-".into(),
            Some(s) => match self.identify(s) {
                Ok(id) if s.value.is_tombstone() => format!("e{id}=deleted {}", s.stamp),
                Ok(id) => format!("e{id} {}", s.stamp),
                Err(_) => format!("{} {}", s.value.canonical(), s.stamp),
            },
        }
    }

    /// The backend was observed holding `state`. Checks the transition from
    /// the previous observation: P2 (no step back into the causal past), P4
    /// (the stamp never decreases) and integrity.
    pub fn observe_backend(&mut self, state: Option<&Versioned>) -> Result<(), Violation> {
        self.identify_opt(state)?;
        let before = self.last_backend.clone();
        if let (Some(old), None) = (&before, state) {
            return violation(
                Property::P4Monotonic,
                format!("the backend held {} and then nothing", self.name(Some(old))),
            );
        }
        if let (Some(old), Some(new)) = (&before, state) {
            let old_id = self.identify(old)?;
            let new_id = self.identify(new)?;
            if old_id != new_id && self.precedes(new_id, old_id) {
                return violation(
                    Property::P2NoCausalRegression,
                    format!(
                        "the backend went from {} back to {}, which is in its causal past",
                        self.name(Some(old)),
                        self.name(Some(new))
                    ),
                );
            }
            if new.stamp < old.stamp {
                return violation(
                    Property::P4Monotonic,
                    format!(
                        "the stored stamp went down from {} to {}",
                        old.stamp, new.stamp
                    ),
                );
            }
        }
        self.observations += 1;
        self.last_backend = state.cloned();
        Ok(())
    }

    /// The backend decided `decision` on `sent` and then held `state`
    /// (observed in the same reply, or read right after it).
    pub fn decided(
        &mut self,
        sent: &Versioned,
        decision: Decision,
        state: Option<&Versioned>,
    ) -> Result<(), Violation> {
        let id = self.identify(sent)?;
        let consistent = match (decision, state) {
            (Decision::Applied | Decision::Unchanged, Some(s)) => s == sent,
            (Decision::Stale, Some(s)) => s.stamp > sent.stamp,
            (_, None) => false,
        };
        if !consistent {
            return violation(
                Property::Decision,
                format!(
                    "{} was answered {} with {} stored",
                    self.name(Some(sent)),
                    decision.as_str(),
                    self.name(state)
                ),
            );
        }
        if decision == Decision::Applied {
            self.applied.push(id);
        }
        self.acknowledged.insert(sent.stamp.clone());
        Ok(())
    }

    /// P5 made observable: the override log of the document (each entry a
    /// losing stamp and the stamp it lost to) lists every acknowledged
    /// write that is not the final state `last` exactly once, each lost to
    /// a larger stamp, and nothing else. (A write that reached the backend
    /// but whose reply was lost or held is acknowledged too: the backend
    /// answered it.)
    pub fn check_override_log(
        &self,
        last: Option<&Versioned>,
        log: &[(Stamp, Stamp)],
    ) -> Result<(), Violation> {
        let mut seen = BTreeSet::new();
        for (lost, winner) in log {
            if !seen.insert(lost.clone()) {
                return violation(
                    Property::P5OverrideLog,
                    format!("{} is in the override log twice", self.stamp_name(lost)),
                );
            }
            if winner <= lost {
                return violation(
                    Property::P5OverrideLog,
                    format!("{} lost to the smaller {winner}", self.stamp_name(lost)),
                );
            }
        }
        let last = last.map(|s| &s.stamp);
        let want: BTreeSet<Stamp> = (self.acknowledged.iter())
            .filter(|s| Some(*s) != last)
            .cloned()
            .collect();
        if let Some(missing) = want.difference(&seen).next() {
            return violation(
                Property::P5OverrideLog,
                format!(
                    "{} was acknowledged and is not the final state, but the override log does not list it",
                    self.stamp_name(missing)
                ),
            );
        }
        if let Some(extra) = seen.difference(&want).next() {
            return violation(
                Property::P5OverrideLog,
                format!(
                    "the override log lists {}, which no answer lost",
                    self.stamp_name(extra)
                ),
            );
        }
        Ok(())
    }

    fn stamp_name(&self, stamp: &Stamp) -> String {
        match self.by_stamp.get(stamp) {
            Some(&id) => self.name(Some(&self.writes[id as usize])),
            None => stamp.to_string(),
        }
    }

    /// P3 for one browser: what it shows changed from `before` to `after`.
    pub fn check_shown(
        &self,
        browser: &str,
        before: Option<&Versioned>,
        after: Option<&Versioned>,
    ) -> Result<(), Violation> {
        let (Some(old), Some(new)) = (before, after) else {
            return Ok(());
        };
        let (old_id, new_id) = (self.identify(old)?, self.identify(new)?);
        if old_id != new_id && self.precedes(new_id, old_id) {
            return violation(
                Property::P3NoFlicker,
                format!(
                    "{browser} showed {} and then {}, which is in its causal past",
                    self.name(Some(old)),
                    self.name(Some(new))
                ),
            );
        }
        Ok(())
    }

    /// P5 at the end: every APPLIED write is the final state, or the final
    /// state has a larger stamp and is not in that write's causal past.
    pub fn check_applied_kept(&self, last: Option<&Versioned>) -> Result<(), Violation> {
        let last_id = self.identify_opt(last)?;
        for &id in &self.applied {
            let write = &self.writes[id as usize];
            let kept = match (last, last_id) {
                (Some(s), Some(s_id)) => {
                    s_id == id || (s.stamp > write.stamp && !self.precedes(s_id, id))
                }
                _ => false,
            };
            if !kept {
                return violation(
                    Property::P5NothingAppliedLost,
                    format!(
                        "{} was APPLIED, but the backend ended on {}",
                        self.name(Some(write)),
                        self.name(last)
                    ),
                );
            }
        }
        Ok(())
    }

    pub fn edits(&self) -> usize {
        self.writes.len()
    }

    pub fn observations(&self) -> usize {
        self.observations
    }

    pub fn applied(&self) -> usize {
        self.applied.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::write;

    fn edit(
        history: &mut History,
        knowledge: &mut Knowledge,
        clock: u64,
        writer: &str,
    ) -> Versioned {
        let (id, value) = history.next_value(false);
        let w = write(clock, writer, value.to_json());
        history.record_edit(id, &w, knowledge);
        w
    }

    #[test]
    fn a_step_back_into_the_causal_past_breaks_p2() {
        let (mut h, mut k) = (History::default(), Knowledge::default());
        let a = edit(&mut h, &mut k, 1, "x");
        let b = edit(&mut h, &mut k, 2, "x");
        h.observe_backend(Some(&b)).unwrap();
        let err = h.observe_backend(Some(&a)).unwrap_err();
        assert_eq!(err.property, Property::P2NoCausalRegression);
    }

    #[test]
    fn a_concurrent_edit_is_no_flicker() {
        let mut h = History::default();
        let (mut k0, mut k1) = (Knowledge::default(), Knowledge::default());
        let a = edit(&mut h, &mut k0, 1, "x");
        let b = edit(&mut h, &mut k1, 1, "y");
        assert!(h.check_shown("b0", Some(&a), Some(&b)).is_ok());
        assert!(h.check_shown("b1", Some(&b), Some(&a)).is_ok());
    }

    #[test]
    fn a_restamped_value_breaks_integrity() {
        let (mut h, mut k) = (History::default(), Knowledge::default());
        let a = edit(&mut h, &mut k, 1, "x");
        let bumped = write(3, "x", a.value.to_json());
        assert_eq!(
            h.observe_backend(Some(&bumped)).unwrap_err().property,
            Property::Integrity
        );
    }

    #[test]
    fn an_override_log_missing_a_loser_or_listing_one_twice_breaks_p5_observable() {
        let (mut h, mut k) = (History::default(), Knowledge::default());
        let a = edit(&mut h, &mut k, 1, "x");
        let b = edit(&mut h, &mut k, 2, "x");
        let c = edit(&mut h, &mut k, 3, "x");
        h.decided(&a, Decision::Applied, Some(&a)).unwrap();
        h.decided(&c, Decision::Applied, Some(&c)).unwrap();
        h.decided(&b, Decision::Stale, Some(&c)).unwrap();
        let full = [
            (a.stamp.clone(), c.stamp.clone()),
            (b.stamp.clone(), c.stamp.clone()),
        ];
        assert!(h.check_override_log(Some(&c), &full).is_ok());
        let missing = h.check_override_log(Some(&c), &full[..1]).unwrap_err();
        assert_eq!(missing.property, Property::P5OverrideLog);
        assert!(missing.detail.contains("does not list"), "{missing}");
        let twice = [full[0].clone(), full[1].clone(), full[1].clone()];
        assert!(h.check_override_log(Some(&c), &twice).is_err());
        let winner_listed = [
            full[0].clone(),
            full[1].clone(),
            (c.stamp.clone(), c.stamp.clone()),
        ];
        assert!(h.check_override_log(Some(&c), &winner_listed).is_err());
    }

    #[test]
    fn an_applied_write_overwritten_by_its_past_breaks_p5() {
        let (mut h, mut k) = (History::default(), Knowledge::default());
        let a = edit(&mut h, &mut k, 1, "x");
        let b = edit(&mut h, &mut k, 2, "x");
        h.decided(&b, Decision::Applied, Some(&b)).unwrap();
        let err = h.check_applied_kept(Some(&a)).unwrap_err();
        assert_eq!(err.property, Property::P5NothingAppliedLost);
        assert!(h.check_applied_kept(Some(&b)).is_ok());
    }
}
