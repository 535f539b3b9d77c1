//! The per-field merge (`protocol/src/fields`) on writes decoded from the
//! input: patches and whole documents over a few field names, clocks and
//! writers, so that equal stamps, ties and tombstones are common. Nothing
//! may panic, and the laws must hold: the join is commutative, associative
//! and idempotent; any order of the same writes gives one state; `merge`
//! decides each field by that field's stamp, and whatever it accepts
//! re-merges as UNCHANGED (what was stale stays STALE). Patch bytes as the service parses them
//! (`parse_field_write`) must survive a round trip to the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use settings_sync_proto::convert::{field_write_request, parse_field_write};
use settings_sync_proto::v1;
use settings_sync_protocol::fields::{Change, FieldDocument, FieldOp, FieldWrite, Patch, merge};
use settings_sync_protocol::{
    Clock, Decision, DocumentKey, MergeError, MergePolicy, Stamp, Value, ValueLimits, WriterId,
};

const NAMES: [&str; 4] = ["a", "b", "c", "dd"];
const WRITERS: [&str; 3] = ["a", "A", "b"];

fuzz_target!(|data: &[u8]| check(data));

fn check(data: &[u8]) {
    wire_round_trip(data);
    let (writes, reused) = decode_writes(data);
    let states: Vec<FieldDocument> = (0..=writes.len())
        .map(|n| fold(FieldDocument::new(), &writes[..n]))
        .collect();
    let all = states.last().expect("at least the empty state");

    // Any order of the same writes, one state (the join of single writes).
    let mut reversed = writes.clone();
    reversed.reverse();
    assert_eq!(fold(FieldDocument::new(), &reversed), *all, "order matters");

    // The lattice laws on the prefixes and the single writes.
    let singles: Vec<FieldDocument> = writes.iter().map(FieldDocument::from_write).collect();
    let samples: Vec<&FieldDocument> = states.iter().chain(&singles).take(6).collect();
    for x in &samples {
        assert_eq!(x.join(x), **x, "idempotent");
        let _ = x.stored_size();
        for y in &samples {
            assert_eq!(x.join(y), y.join(x), "commutative");
            for z in &samples {
                assert_eq!(x.join(y).join(z), x.join(&y.join(z)), "associative");
            }
        }
    }

    // The merge: per-field decisions agree with the join, accepted writes
    // replay as UNCHANGED, refusals are the documented ones.
    for (stored, write) in states.iter().zip(&writes) {
        let next = stored.join_write(write);
        assert_eq!(
            next.join_write(write),
            next,
            "a write replayed changes nothing"
        );
        match merge(stored, write, MergePolicy::UNBOUNDED) {
            Ok(report) => {
                for (name, decision) in &report.fields {
                    let own = stored.stamp_of(name);
                    match decision {
                        Decision::Applied => {
                            assert!(own.is_none_or(|s| *s < write.stamp), "{name}: APPLIED");
                            assert_eq!(next.stamp_of(name), Some(&write.stamp), "{name}: stored");
                        }
                        Decision::Stale => {
                            assert!(own.is_some_and(|s| *s > write.stamp), "{name}: STALE")
                        }
                        Decision::Unchanged => {
                            assert_eq!(own, Some(&write.stamp), "{name}: UNCHANGED")
                        }
                    }
                }
                if let Change::Patch(patch) = &write.change {
                    assert!(
                        patch.keys().all(|name| report.fields.contains_key(name)),
                        "every field decided"
                    );
                }
                // A replay: what was stale stays stale, the rest UNCHANGED.
                let again =
                    merge(&next, write, MergePolicy::UNBOUNDED).expect("a replay is accepted");
                let replayed = |d: &Decision| match d {
                    Decision::Stale => Decision::Stale,
                    _ => Decision::Unchanged,
                };
                assert_eq!(again.decision, replayed(&report.decision), "a replay");
                // (A whole write's report also names fields it removed; a
                // replay no longer sees those listed.)
                for (name, decision) in &again.fields {
                    let first = report.fields.get(name).map(replayed);
                    assert_eq!(first.as_ref(), Some(decision), "{name}: a replay");
                }
            }
            Err(MergeError::ConflictingContent(stamp)) => assert_eq!(stamp, write.stamp),
            Err(other) => panic!("refused without a limit: {other}"),
        }
        // A stored size limit refuses only a write that changes the document.
        let tight = MergePolicy {
            max_stored_bytes: 16,
            ..MergePolicy::UNBOUNDED
        };
        if let Err(MergeError::TooLarge { size, max }) = merge(stored, write, tight) {
            assert!(size > max && next != *stored && next.stored_size() == size);
        }
    }

    // A stamp used again for other content (a broken client): the join's
    // laws assume it never happens; the merge must not panic on it, and
    // refuses it whenever a field it speaks of holds that stamp.
    for write in &reused {
        match merge(all, write, MergePolicy::UNBOUNDED) {
            Ok(_) | Err(MergeError::ConflictingContent(_)) => {}
            Err(other) => panic!("refused without a limit: {other}"),
        }
    }
}

/// A prost-decoded Sync request through the service's parser: whatever
/// parses re-parses, from the request a client would send, to itself.
fn wire_round_trip(data: &[u8]) {
    let Ok(request) = v1::SyncRequest::decode(data) else {
        return;
    };
    let limits = ValueLimits::default();
    let Ok(write) = parse_field_write(&request.value_json, request.patch, request.stamp, limits)
    else {
        return;
    };
    let key = DocumentKey::parse("t", "o", "n").expect("a valid key");
    let sent = field_write_request(&key, &write);
    let again = parse_field_write(&sent.value_json, sent.patch, sent.stamp, limits);
    assert_eq!(
        again.ok(),
        Some(write),
        "a parsed write re-parses to itself"
    );
}

fn fold(start: FieldDocument, writes: &[FieldWrite]) -> FieldDocument {
    writes
        .iter()
        .fold(start, |state, write| state.join_write(write))
}

/// Up to 8 writes, 3 bytes of header each (clock, writer and kind, field
/// mask) and one byte per field set. Clocks and writers come from short
/// lists, so ties and equal clocks are common. A write whose stamp was
/// already used goes to the second list: a writer never reuses a stamp,
/// and the laws hold only for writes that keep to that.
fn decode_writes(data: &[u8]) -> (Vec<FieldWrite>, Vec<FieldWrite>) {
    let mut bytes = data.iter().copied();
    let (mut writes, mut reused) = (Vec::<FieldWrite>::new(), Vec::new());
    while writes.len() + reused.len() < 8 {
        let (Some(clock), Some(kind), Some(mask)) = (bytes.next(), bytes.next(), bytes.next())
        else {
            break;
        };
        let stamp = Stamp::new(
            Clock::new(u64::from(clock % 6) + 1).expect("a small clock"),
            WriterId::parse(WRITERS[usize::from(kind % 3)]).expect("a valid writer"),
        );
        let mut fields = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            if mask & (1 << i) != 0 {
                // Bit 4 + i: deleted (a patch) rather than set.
                let deleted = mask & (1 << (i + 4)) != 0;
                fields.push((*name, deleted, bytes.next().unwrap_or(0)));
            }
        }
        let change = match kind / 3 % 3 {
            // A whole document; with no field and the top bit set, a delete.
            0 if fields.is_empty() && kind & 0x80 != 0 => Change::Whole(Value::TOMBSTONE),
            0 => Change::Whole(Value::object(
                (fields.iter())
                    .map(|(name, _, v)| ((*name).to_owned(), json_of(*v)))
                    .collect(),
            )),
            _ => Change::Patch(
                (fields.iter())
                    .map(|(name, deleted, v)| {
                        let op = if *deleted {
                            FieldOp::Delete
                        } else {
                            FieldOp::Set(json_of(*v))
                        };
                        ((*name).to_owned(), op)
                    })
                    .collect::<Patch>(),
            ),
        };
        let write = FieldWrite { stamp, change };
        if writes.iter().any(|w| w.stamp == write.stamp) {
            reused.push(write);
        } else {
            writes.push(write);
        }
    }
    (writes, reused)
}

/// A small JSON value: null, booleans, numbers, strings, nested.
fn json_of(byte: u8) -> serde_json::Value {
    match byte % 5 {
        0 => serde_json::Value::Null,
        1 => serde_json::Value::Bool(byte & 0x80 != 0),
        2 => serde_json::json!(byte / 5),
        3 => serde_json::json!(format!("s{}", byte / 5)),
        _ => serde_json::json!({ "n": [byte / 5] }),
    }
}
