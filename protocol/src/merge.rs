//! The backend's merge: keep whichever write has the larger stamp.
//!
//! This is a lattice join, so it is commutative, associative and idempotent,
//! and replicas over one database need no coordination beyond one atomic
//! conditional update. The backend never invents a stamp: re-stamping an old
//! value with a fresh clock can overtake a causally later edit (see
//! `docs/protocol.md`, counterexamples 2 and 3).

use crate::{Clock, Stamp, Value};

/// A value together with the stamp of the write that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub value: Value,
    pub stamp: Stamp,
}

/// What a sync did, as told to the caller and recorded on its trace span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The caller's write had the larger stamp and is now stored.
    Applied,
    /// A write with a larger stamp is stored; the caller must adopt it.
    Stale,
    /// The caller's write is exactly what is stored: nothing to do.
    Unchanged,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Applied => "APPLIED",
            Decision::Stale => "STALE",
            Decision::Unchanged => "UNCHANGED",
        }
    }
}

/// Server-side bounds on writes that the merge enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergePolicy {
    /// How far one write may move a document's clock forward. Without a
    /// bound, one client writing `i64::MAX` would pin the document forever.
    pub max_clock_jump: u64,
    /// Largest stored size ([`FieldDocument::stored_size`]) a per-field
    /// write may leave a field-merged document at. Every patch is within
    /// the value limit on its own, but many can grow a document past what
    /// one message can carry back; a whole-document write is held to the
    /// value limit at the edge.
    ///
    /// [`FieldDocument::stored_size`]: crate::fields::FieldDocument::stored_size
    pub max_stored_bytes: usize,
}

impl Default for MergePolicy {
    fn default() -> Self {
        MergePolicy {
            max_clock_jump: 1_000_000,
            max_stored_bytes: 64 * 1024,
        }
    }
}

impl MergePolicy {
    /// No bound at all: for model checks and differential tests.
    pub const UNBOUNDED: MergePolicy = MergePolicy {
        max_clock_jump: u64::MAX,
        max_stored_bytes: usize::MAX,
    };

    /// The largest clock a write may carry over a document whose clock is `stored`.
    pub fn clock_ceiling(&self, stored: Clock) -> u64 {
        stored
            .get()
            .saturating_add(self.max_clock_jump)
            .min(Clock::MAX.get())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// Two writes with one stamp and different content: a broken client
    /// (a writer id reused across incarnations). Nothing may change.
    #[error(
        "stamp {0} is already stored with different content; a writer id must be fresh per client incarnation"
    )]
    ConflictingContent(Stamp),
    /// A whole-document write from a caller that is not a per-field client,
    /// to a document that holds a patch. Such a caller re-sends what it
    /// adopted, and on a field-merged document that echo would re-stamp
    /// older fields (docs/protocol.md, "Per-field merge").
    #[error(
        "the document holds per-field edits; only a per-field client may write it (see \"Per-field merge\" in docs/protocol.md)"
    )]
    FieldMerged,
    #[error("clock {incoming} is more than {max_jump} ahead of the stored clock {stored}")]
    ClockJump {
        incoming: Clock,
        stored: Clock,
        max_jump: u64,
    },
    /// A per-field write that would leave the document larger than the
    /// policy's `max_stored_bytes`. Nothing changes; the caller may delete
    /// fields, or write the document whole (which collects tombstones).
    #[error(
        "the merged document would be {size} bytes, more than the limit of {max}; delete fields or write the document whole"
    )]
    TooLarge { size: usize, max: usize },
}

/// Decides the outcome of `incoming` arriving at a document holding `stored`
/// (`None`: the document does not exist). On `Applied` the caller stores
/// `incoming`; otherwise `stored` stays as it is.
pub fn merge(
    stored: Option<&Versioned>,
    incoming: &Versioned,
    policy: MergePolicy,
) -> Result<Decision, MergeError> {
    let Some(stored) = stored else {
        check_jump(Clock::ZERO, incoming, policy)?;
        return Ok(Decision::Applied);
    };
    match incoming.stamp.cmp(&stored.stamp) {
        std::cmp::Ordering::Less => Ok(Decision::Stale),
        std::cmp::Ordering::Equal if incoming.value == stored.value => Ok(Decision::Unchanged),
        std::cmp::Ordering::Equal => Err(MergeError::ConflictingContent(incoming.stamp.clone())),
        std::cmp::Ordering::Greater => {
            check_jump(stored.stamp.clock, incoming, policy)?;
            Ok(Decision::Applied)
        }
    }
}

fn check_jump(stored: Clock, incoming: &Versioned, policy: MergePolicy) -> Result<(), MergeError> {
    if incoming.stamp.clock.get() > policy.clock_ceiling(stored) {
        return Err(MergeError::ClockJump {
            incoming: incoming.stamp.clock,
            stored,
            max_jump: policy.max_clock_jump,
        });
    }
    Ok(())
}

/// The state after the merge: the lattice join of the two writes.
pub fn join<'a>(stored: Option<&'a Versioned>, incoming: &'a Versioned) -> &'a Versioned {
    match stored {
        Some(stored) if stored.stamp >= incoming.stamp => stored,
        _ => incoming,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WriterId;
    use proptest::prelude::*;

    fn write(clock: u64, writer: &str, n: i64) -> Versioned {
        let mut map = serde_json::Map::new();
        map.insert("n".into(), n.into());
        Versioned {
            value: Value::object(map),
            stamp: Stamp::new(Clock::new(clock).unwrap(), WriterId::parse(writer).unwrap()),
        }
    }

    const P: MergePolicy = MergePolicy::UNBOUNDED;

    #[test]
    fn the_first_write_is_applied() {
        assert_eq!(merge(None, &write(1, "a", 1), P), Ok(Decision::Applied));
    }

    #[test]
    fn a_larger_stamp_wins_and_a_smaller_is_stale() {
        let stored = write(2, "a", 1);
        assert_eq!(
            merge(Some(&stored), &write(3, "a", 2), P),
            Ok(Decision::Applied)
        );
        assert_eq!(
            merge(Some(&stored), &write(1, "z", 2), P),
            Ok(Decision::Stale)
        );
    }

    #[test]
    fn equal_clocks_are_broken_by_writer() {
        let stored = write(2, "b", 1);
        assert_eq!(
            merge(Some(&stored), &write(2, "c", 2), P),
            Ok(Decision::Applied)
        );
        assert_eq!(
            merge(Some(&stored), &write(2, "a", 2), P),
            Ok(Decision::Stale)
        );
    }

    #[test]
    fn replaying_the_stored_write_changes_nothing() {
        let stored = write(2, "a", 1);
        assert_eq!(
            merge(Some(&stored), &stored.clone(), P),
            Ok(Decision::Unchanged)
        );
    }

    #[test]
    fn same_stamp_with_other_content_is_rejected() {
        let stored = write(2, "a", 1);
        assert_eq!(
            merge(Some(&stored), &write(2, "a", 9), P),
            Err(MergeError::ConflictingContent(stored.stamp.clone()))
        );
    }

    #[test]
    fn the_double_click_keeps_the_second_click() {
        // Counterexample 2 of docs/protocol.md: A (clock 1) then B (clock 2)
        // from one client; the backend must end on B whatever the order.
        let (a, b) = (write(1, "w", 1), write(2, "w", 2));
        assert_eq!(join(Some(&a), &b), &b);
        assert_eq!(join(Some(&b), &a), &b);
    }

    #[test]
    fn clock_jumps_are_bounded() {
        let policy = MergePolicy {
            max_clock_jump: 10,
            ..MergePolicy::UNBOUNDED
        };
        assert_eq!(
            merge(None, &write(10, "a", 1), policy),
            Ok(Decision::Applied)
        );
        assert!(matches!(
            merge(None, &write(11, "a", 1), policy),
            Err(MergeError::ClockJump { .. })
        ));
        let stored = write(5, "a", 1);
        assert_eq!(
            merge(Some(&stored), &write(15, "a", 2), policy),
            Ok(Decision::Applied)
        );
        assert!(matches!(
            merge(Some(&stored), &write(16, "a", 2), policy),
            Err(MergeError::ClockJump { .. })
        ));
        // A stale write is never rejected for its clock: it changes nothing.
        let high = write(100, "a", 1);
        assert_eq!(
            merge(Some(&high), &write(1, "a", 2), policy),
            Ok(Decision::Stale)
        );
    }

    #[test]
    fn the_ceiling_saturates_at_the_maximum_clock() {
        assert_eq!(
            MergePolicy::UNBOUNDED.clock_ceiling(Clock::MAX),
            Clock::MAX.get()
        );
    }

    fn arb_write() -> impl Strategy<Value = Versioned> {
        // Few clocks and writers, so equal clocks and equal stamps are common.
        // Content is a function of the stamp, as it is for a correct client.
        (0u64..4, prop::sample::select(vec!["a", "b", "c"])).prop_map(|(clock, writer)| {
            let n = clock as i64 * 10 + writer.as_bytes()[0] as i64;
            write(clock, writer, n)
        })
    }

    fn fold(writes: &[Versioned]) -> Option<Versioned> {
        writes
            .iter()
            .fold(None, |stored, w| Some(join(stored.as_ref(), w).clone()))
    }

    proptest! {
        #[test]
        fn join_is_commutative(a in arb_write(), b in arb_write()) {
            prop_assert_eq!(join(Some(&a), &b), join(Some(&b), &a));
        }

        #[test]
        fn join_is_associative(a in arb_write(), b in arb_write(), c in arb_write()) {
            let left = join(Some(join(Some(&a), &b)), &c).clone();
            let right = join(Some(&a), join(Some(&b), &c)).clone();
            prop_assert_eq!(left, right);
        }

        #[test]
        fn join_is_idempotent(a in arb_write(), b in arb_write()) {
            let once = join(Some(&a), &b).clone();
            prop_assert_eq!(join(Some(&once), &b), &once);
        }

        #[test]
        fn any_order_of_writes_ends_on_the_largest_stamp(
            writes in prop::collection::vec(arb_write(), 1..8).prop_shuffle(),
        ) {
            let mut sorted = writes.clone();
            sorted.sort_by(|x, y| x.stamp.cmp(&y.stamp));
            prop_assert_eq!(fold(&writes), sorted.last().cloned());
        }

        #[test]
        fn the_decision_agrees_with_the_join(a in arb_write(), b in arb_write()) {
            let decision = merge(Some(&a), &b, P).unwrap();
            let joined = join(Some(&a), &b);
            match decision {
                Decision::Applied => prop_assert!(joined == &b && b.stamp > a.stamp),
                Decision::Stale => prop_assert!(joined == &a && b.stamp < a.stamp),
                Decision::Unchanged => prop_assert!(a == b),
            }
        }

        #[test]
        fn a_stored_stamp_never_decreases(
            writes in prop::collection::vec(arb_write(), 1..8),
        ) {
            let mut stored: Option<Versioned> = None;
            for w in &writes {
                let before = stored.as_ref().map(|s| s.stamp.clone());
                stored = Some(join(stored.as_ref(), w).clone());
                prop_assert!(before.as_ref() <= stored.as_ref().map(|s| &s.stamp));
            }
        }
    }
}
