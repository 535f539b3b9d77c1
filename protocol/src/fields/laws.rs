//! Property tests of the per-field rules: the lattice laws of the join,
//! "each field holds the value of its largest stamp", decisions that agree
//! with the join, and whole-document writes behaving exactly as in
//! whole-document mode. Plus the cases `docs/protocol.md` spells out.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::{Clock, Decision, MergeError, MergePolicy, Stamp, Value, WriterId};

const NAMES: [&str; 3] = ["x", "y", "z"];
const WRITERS: [&str; 3] = ["a", "b", "c"];
const P: MergePolicy = MergePolicy::UNBOUNDED;

fn stamp(clock: u64, writer: &str) -> Stamp {
    Stamp::new(Clock::new(clock).unwrap(), WriterId::parse(writer).unwrap())
}

fn patch(stamp: Stamp, ops: &[(&str, Option<i64>)]) -> FieldWrite {
    FieldWrite {
        stamp,
        change: edit(ops),
    }
}

/// A patch setting (`Some(n)`) or deleting (`None`) fields.
fn edit(ops: &[(&str, Option<i64>)]) -> Change {
    let patch = (ops.iter())
        .map(|(name, op)| {
            let op = op.map_or(FieldOp::Delete, |n| FieldOp::Set(json!(n)));
            (name.to_string(), op)
        })
        .collect();
    Change::Patch(patch)
}

fn whole(stamp: Stamp, value: serde_json::Value) -> FieldWrite {
    FieldWrite {
        stamp,
        change: Change::Whole(Value::from_json(value).unwrap()),
    }
}

fn fold<'a>(writes: impl IntoIterator<Item = &'a FieldWrite>) -> FieldDocument {
    (writes.into_iter()).fold(FieldDocument::new(), |doc, w| doc.join_write(w))
}

/// What `write` says of field `name`: `None` if it does not speak of it,
/// `Some(None)` if it makes it absent.
fn says(write: &FieldWrite, name: &str) -> Option<Option<serde_json::Value>> {
    match &write.change {
        Change::Patch(patch) => patch.get(name).map(|op| op.value().cloned()),
        Change::Whole(value) => Some(value.as_object().and_then(|m| m.get(name)).cloned()),
    }
}

/// A random change for each stamp of a small grid (clocks 1–4, writers
/// a–c): content is a function of the stamp, as for correct clients, and
/// equal stamps (replays) are common.
fn arb_universe() -> impl Strategy<Value = Vec<FieldWrite>> {
    let op = prop_oneof![
        Just(None),
        Just(Some(None)),
        (0i64..3).prop_map(|n| Some(Some(n)))
    ];
    let change = prop_oneof![
        3 => prop::collection::vec(op.clone(), 3).prop_map(|ops| {
            let patch = (NAMES.iter().zip(ops))
                .filter_map(|(name, op)| {
                    let op = op?.map_or(FieldOp::Delete, |n| FieldOp::Set(json!(n)));
                    Some((name.to_string(), op))
                })
                .collect();
            Change::Patch(patch)
        }),
        1 => prop::option::of(prop::collection::vec(op, 3)).prop_map(|object| {
            let value = object.map(|ops| {
                (NAMES.iter().zip(ops))
                    .filter_map(|(name, op)| Some((name.to_string(), json!(op??))))
                    .collect()
            });
            Change::Whole(value.map_or(Value::TOMBSTONE, Value::object))
        }),
    ];
    prop::collection::vec(change, 12).prop_map(|changes| {
        (changes.into_iter().enumerate())
            .map(|(i, change)| FieldWrite {
                stamp: stamp(1 + i as u64 / 3, WRITERS[i % 3]),
                change,
            })
            .collect()
    })
}

/// A universe and some of its writes, in a random order.
fn arb_writes(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<FieldWrite>> {
    (arb_universe(), prop::collection::vec(0usize..12, len))
        .prop_map(|(universe, picks)| picks.into_iter().map(|i| universe[i].clone()).collect())
}

/// Three documents built from one universe.
fn arb_three() -> impl Strategy<Value = [FieldDocument; 3]> {
    let picks = || prop::collection::vec(0usize..12, 0..5);
    (arb_universe(), picks(), picks(), picks())
        .prop_map(|(u, a, b, c)| [a, b, c].map(|picks| fold(picks.iter().map(|&i| &u[i]))))
}

proptest! {
    #[test]
    fn join_is_commutative([a, b, _] in arb_three()) {
        prop_assert_eq!(a.join(&b), b.join(&a));
    }

    #[test]
    fn join_is_associative([a, b, c] in arb_three()) {
        prop_assert_eq!(a.join(&b).join(&c), a.join(&b.join(&c)));
    }

    #[test]
    fn join_is_idempotent([a, b, _] in arb_three()) {
        prop_assert_eq!(a.join(&a), a.clone());
        let once = a.join(&b);
        prop_assert_eq!(once.join(&b), once);
    }

    #[test]
    fn any_order_of_writes_gives_the_same_document(
        writes in arb_writes(1..8).prop_flat_map(|w| (Just(w.clone()), Just(w).prop_shuffle())),
    ) {
        prop_assert_eq!(fold(&writes.0), fold(&writes.1));
    }

    #[test]
    fn each_field_holds_the_value_of_its_largest_stamp(writes in arb_writes(0..8)) {
        let doc = fold(&writes);
        for name in NAMES {
            let largest = (writes.iter())
                .filter(|w| says(w, name).is_some())
                .max_by(|a, b| a.stamp.cmp(&b.stamp));
            prop_assert_eq!(doc.stamp_of(name), largest.map(|w| &w.stamp));
            let expected = largest.and_then(|w| says(w, name)).flatten();
            prop_assert_eq!(doc.value_of(name), expected.as_ref());
        }
        // An empty patch speaks of nothing: it is a read.
        let speaking = writes.iter().filter(|w| w.change != Change::Patch(Patch::new()));
        prop_assert_eq!(doc.stamp(), speaking.map(|w| &w.stamp).max());
    }

    #[test]
    fn every_decision_agrees_with_the_join(writes in arb_writes(1..7)) {
        let (incoming, stored) = writes.split_last().unwrap();
        let stored = fold(stored);
        let report = merge(&stored, incoming, P).unwrap();
        let after = stored.join_write(incoming);
        for (name, decision) in &report.fields {
            let said = says(incoming, name).unwrap_or(None);
            let register = |doc: &FieldDocument| {
                (doc.stamp_of(name).cloned(), doc.value_of(name).cloned())
            };
            let written = (Some(incoming.stamp.clone()), said);
            match decision {
                Decision::Applied => prop_assert_eq!(register(&after), written),
                Decision::Unchanged => {
                    prop_assert_eq!(register(&stored), written.clone());
                    prop_assert_eq!(register(&after), written);
                }
                Decision::Stale => {
                    prop_assert!(stored.stamp_of(name) > Some(&incoming.stamp));
                    prop_assert_eq!(register(&after), register(&stored));
                }
            }
        }
        match (&incoming.change, report.decision) {
            (Change::Whole(_), Decision::Applied) => {
                prop_assert_eq!(&after, &FieldDocument::from_write(incoming));
            }
            (Change::Whole(_), Decision::Stale) => {
                prop_assert!(stored.stamp() > Some(&incoming.stamp));
            }
            (_, Decision::Unchanged) => prop_assert_eq!(&after, &stored),
            (Change::Patch(_), d) => {
                let any = |x| report.fields.values().any(|f| *f == x);
                prop_assert_eq!(d == Decision::Stale, any(Decision::Stale));
            }
        }
    }

    #[test]
    fn stamps_never_decrease(writes in arb_writes(1..8)) {
        let mut doc = FieldDocument::new();
        for w in &writes {
            let next = doc.join_write(w);
            prop_assert!(next.stamp() >= doc.stamp());
            for name in NAMES {
                prop_assert!(next.stamp_of(name) >= doc.stamp_of(name));
            }
            doc = next;
        }
    }

    #[test]
    fn whole_document_writes_alone_behave_as_in_whole_document_mode(
        writes in arb_writes(1..8).prop_map(|w| {
            w.into_iter().filter(|w| matches!(w.change, Change::Whole(_))).collect::<Vec<_>>()
        }),
    ) {
        let mut fields = FieldDocument::new();
        let mut register: Option<crate::Versioned> = None;
        for w in &writes {
            let Change::Whole(value) = &w.change else { unreachable!() };
            let v1 = crate::Versioned { value: value.clone(), stamp: w.stamp.clone() };
            let expected = crate::merge(register.as_ref(), &v1, P).unwrap();
            prop_assert_eq!(merge(&fields, w, P).unwrap().decision, expected);
            register = Some(crate::merge::join(register.as_ref(), &v1).clone());
            fields = fields.join_write(w);
            prop_assert_eq!(fields.versioned(), register.clone());
        }
    }

    #[test]
    fn a_replica_never_lowers_a_field_it_shows(writes in arb_writes(1..8)) {
        let mut replica = FieldReplica::new(WriterId::parse("me").unwrap());
        replica.edit(edit(&[("x", Some(9))]));
        for w in &writes {
            let before = replica.document().clone();
            replica.observe(&FieldDocument::from_write(w));
            for name in NAMES {
                prop_assert!(replica.document().stamp_of(name) >= before.stamp_of(name));
            }
            if w.change != Change::Patch(Patch::new()) {
                prop_assert!(replica.clock() >= w.stamp.clock);
            }
        }
    }
}

#[test]
fn concurrent_edits_to_different_fields_both_survive() {
    let a = patch(stamp(1, "a"), &[("email", Some(1))]);
    let b = patch(stamp(1, "b"), &[("airport", Some(2))]);
    let stored = FieldDocument::new().join_write(&b);
    let report = merge(&stored, &a, P).unwrap();
    assert_eq!(report.decision, Decision::Applied);
    let doc = stored.join_write(&a);
    assert_eq!(doc.value().to_json(), json!({"email": 1, "airport": 2}));
    assert_eq!(doc.stamp(), Some(&stamp(1, "b")));
}

#[test]
fn a_patch_partly_stale_applies_the_fields_that_win_and_reports_each() {
    let stored = FieldDocument::new().join_write(&patch(stamp(5, "b"), &[("x", Some(1))]));
    let incoming = patch(stamp(3, "a"), &[("x", Some(2)), ("y", Some(3))]);
    let report = merge(&stored, &incoming, P).unwrap();
    assert_eq!(report.decision, Decision::Stale);
    assert_eq!(report.fields["x"], Decision::Stale);
    assert_eq!(report.fields["y"], Decision::Applied);
    let doc = stored.join_write(&incoming);
    assert_eq!(doc.value().to_json(), json!({"x": 1, "y": 3}));
}

#[test]
fn a_whole_write_replaces_older_fields_and_keeps_later_ones() {
    let stored = fold(&[
        whole(stamp(1, "a"), json!({"x": 1, "y": 1})),
        patch(stamp(2, "a"), &[("x", Some(2))]),
        patch(stamp(4, "b"), &[("y", Some(4)), ("z", None)]),
    ]);
    let incoming = whole(stamp(3, "c"), json!({"w": 3}));
    let report = merge(&stored, &incoming, P).unwrap();
    assert_eq!(report.decision, Decision::Stale);
    let fields: Vec<_> = report
        .fields
        .iter()
        .map(|(n, d)| (n.as_str(), *d))
        .collect();
    let (a, s) = (Decision::Applied, Decision::Stale);
    assert_eq!(fields, [("w", a), ("x", a), ("y", s), ("z", s)]);
    let doc = stored.join_write(&incoming);
    assert_eq!(doc.value().to_json(), json!({"w": 3, "y": 4}));
    assert_eq!(doc.floor().unwrap().stamp, stamp(3, "c"));
}

#[test]
fn a_whole_delete_keeps_only_later_field_writes() {
    let later = patch(stamp(5, "b"), &[("x", Some(5))]);
    let delete = whole(stamp(4, "a"), serde_json::Value::Null);
    let base = whole(stamp(1, "a"), json!({"x": 1, "y": 1}));
    let doc = fold(&[base, later, delete]);
    assert_eq!(doc.value().to_json(), json!({"x": 5}));
    // Without the later write the document is deleted: a tombstone.
    let deleted = fold(&[
        whole(stamp(1, "a"), json!({"y": 1})),
        whole(stamp(4, "a"), json!(null)),
    ]);
    assert!(deleted.value().is_tombstone());
}

#[test]
fn a_field_write_to_a_deleted_document_brings_back_that_field_alone_if_later() {
    let deleted = fold(&[
        whole(stamp(1, "a"), json!({"x": 1, "y": 1})),
        whole(stamp(4, "a"), json!(null)),
    ]);
    let early = patch(stamp(3, "b"), &[("x", Some(3))]);
    assert_eq!(
        merge(&deleted, &early, P).unwrap().decision,
        Decision::Stale
    );
    assert!(deleted.join_write(&early).value().is_tombstone());
    let late = patch(stamp(5, "b"), &[("x", Some(5))]);
    assert_eq!(
        merge(&deleted, &late, P).unwrap().decision,
        Decision::Applied
    );
    assert_eq!(deleted.join_write(&late).value().to_json(), json!({"x": 5}));
}

#[test]
fn a_field_tombstone_is_collected_by_a_later_floor_and_nothing_comes_back() {
    let set = patch(stamp(2, "a"), &[("x", Some(2))]);
    let delete = patch(stamp(3, "b"), &[("x", None)]);
    let doc = fold([&set, &delete]);
    assert_eq!(doc.entries().count(), 1, "the tombstone is listed");
    let doc = doc.join_write(&whole(stamp(4, "c"), json!({"y": 4})));
    assert!(doc.entries().all(|(name, _)| name != "x"), "collected");
    assert_eq!(merge(&doc, &set, P).unwrap().decision, Decision::Stale);
    assert_eq!(doc.join_write(&set).value_of("x"), None);
}

#[test]
fn a_patch_with_an_empty_document_before_it_is_deleted_once_its_fields_are() {
    let doc = fold(&[
        patch(stamp(1, "a"), &[("x", Some(1))]),
        patch(stamp(2, "a"), &[("x", None)]),
    ]);
    assert!(doc.value().is_tombstone());
    let doc = fold(&[
        whole(stamp(1, "a"), json!({})),
        patch(stamp(2, "a"), &[("x", None)]),
    ]);
    assert_eq!(doc.value().to_json(), json!({}));
}

#[test]
fn the_same_stamp_with_other_content_is_refused_per_field() {
    let stored = FieldDocument::new().join_write(&patch(stamp(2, "a"), &[("x", Some(1))]));
    let replay = patch(stamp(2, "a"), &[("x", Some(1))]);
    assert_eq!(
        merge(&stored, &replay, P).unwrap().decision,
        Decision::Unchanged
    );
    let broken = patch(stamp(2, "a"), &[("x", Some(9))]);
    assert_eq!(
        merge(&stored, &broken, P),
        Err(MergeError::ConflictingContent(stamp(2, "a")))
    );
}

#[test]
fn clock_jumps_are_bounded_against_the_document_clock() {
    let policy = MergePolicy {
        max_clock_jump: 10,
        ..MergePolicy::UNBOUNDED
    };
    let stored = FieldDocument::new().join_write(&patch(stamp(5, "a"), &[("x", Some(1))]));
    let far = patch(stamp(16, "a"), &[("y", Some(1))]);
    assert!(matches!(
        merge(&stored, &far, policy),
        Err(MergeError::ClockJump { .. })
    ));
    let near = patch(stamp(15, "a"), &[("y", Some(1))]);
    assert_eq!(
        merge(&stored, &near, policy).unwrap().decision,
        Decision::Applied
    );
    // An empty patch is a read: never refused.
    let read = patch(stamp(99, "a"), &[]);
    assert_eq!(
        merge(&stored, &read, policy).unwrap().decision,
        Decision::Unchanged
    );
}

#[test]
fn a_replica_keeps_its_newer_field_against_a_late_reply_and_confirms_its_writes() {
    let mut replica = FieldReplica::new(WriterId::parse("me").unwrap());
    let first = replica.edit(edit(&[("x", Some(1))]));
    let second = replica.edit(edit(&[("x", Some(2))]));
    assert_eq!(second.stamp, stamp(2, "me"));
    let late = FieldDocument::new().join_write(&first);
    assert_eq!(replica.observe(&late), Vec::<String>::new());
    assert_eq!(replica.document().value_of("x"), Some(&json!(2)));
    assert_eq!(
        replica.unconfirmed(),
        std::slice::from_ref(&second),
        "the first is confirmed"
    );
    let other = patch(stamp(1, "zz"), &[("y", Some(7))]);
    let remote = late.join_write(&second).join_write(&other);
    assert_eq!(replica.observe(&remote), ["y".to_string()]);
    assert!(replica.unconfirmed().is_empty());
    assert_eq!(replica.edit(edit(&[])).stamp, stamp(3, "me"));
}

#[test]
fn the_stored_size_counts_the_merged_value_and_each_tombstone() {
    let doc = fold(&[
        patch(stamp(1, "a"), &[("x", Some(1)), ("gone", None)]),
        patch(stamp(2, "a"), &[("y", Some(22))]),
    ]);
    // {"x":1,"y":22} is 14 bytes; the tombstone "gone", 4 + 64.
    assert_eq!(doc.stored_size(), 14 + 4 + TOMBSTONE_BYTES);
    // A whole write above every field collects the tombstone.
    let whole_doc = doc.join_write(&whole(stamp(3, "a"), json!({})));
    assert_eq!(whole_doc.stored_size(), 2);
    assert_eq!(FieldDocument::new().stored_size(), "null".len());
}

#[test]
fn a_write_that_would_grow_the_document_past_the_stored_size_is_refused() {
    let stored = fold(&[patch(stamp(1, "a"), &[("x", Some(1))])]); // {"x":1}: 7
    let policy = MergePolicy {
        max_stored_bytes: 13,
        ..MergePolicy::UNBOUNDED
    };
    let grows = patch(stamp(2, "a"), &[("y", Some(10))]); // {"x":1,"y":10}: 14
    assert_eq!(
        merge(&stored, &grows, policy),
        Err(MergeError::TooLarge { size: 14, max: 13 })
    );
    let fits = patch(stamp(2, "a"), &[("y", Some(1))]); // 13
    assert_eq!(
        merge(&stored, &fits, policy).unwrap().decision,
        Decision::Applied
    );
    // Over the limit already (a lower limit): a write that changes nothing
    // is never refused for size; one that changes it is, even if smaller.
    let tight = MergePolicy {
        max_stored_bytes: 3,
        ..policy
    };
    let stale = patch(stamp(1, "0"), &[("x", Some(2))]);
    assert_eq!(
        merge(&stored, &stale, tight).unwrap().decision,
        Decision::Stale
    );
    let replay = patch(stamp(1, "a"), &[("x", Some(1))]);
    assert_eq!(
        merge(&stored, &replay, tight).unwrap().decision,
        Decision::Unchanged
    );
    let delete = patch(stamp(3, "a"), &[("x", None)]); // null and a tombstone
    assert!(matches!(
        merge(&stored, &delete, tight),
        Err(MergeError::TooLarge { .. })
    ));
}
