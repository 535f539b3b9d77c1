//! Shared test vectors of the per-field rules for the browser client:
//! `web/test/vectors/fields.json` holds cases computed here by the Rust
//! rules (`protocol/src/fields/`), and `web/test/unit/fields.test.ts`
//! recomputes every one with the TypeScript rules. This test fails when
//! the file is not exactly what the Rust rules give, so neither side can
//! change without the other noticing. To rewrite the file after a
//! deliberate change of the rules:
//!
//! ```sh
//! SETTINGS_SYNC_UPDATE_VECTORS=1 cargo test -p settings-sync-protocol --test field_vectors
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value as Json, json};
use settings_sync_protocol::fields::{
    Change, FieldDocument, FieldOp, FieldReplica, FieldWrite, confirmed, merge,
};
use settings_sync_protocol::{Clock, Decision, MergeError, MergePolicy, Stamp, Value, WriterId};

const NAMES: [&str; 4] = ["x", "y", "z", "__proto__"];
const WRITERS: [&str; 3] = ["a", "b", "B"];
const MERGE_CASES: usize = 150;
const REPLICA_CASES: usize = 40;
/// Small, so some writes are refused for their clock.
const POLICY: MergePolicy = MergePolicy {
    max_clock_jump: 6,
    ..MergePolicy::UNBOUNDED
};

/// A small deterministic generator (xorshift64*): the file must not change
/// from one run to the next.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn stamp(clock: u64, writer: &str) -> Stamp {
    Stamp::new(Clock::new(clock).unwrap(), WriterId::parse(writer).unwrap())
}

fn field_value(rng: &mut Rng) -> Json {
    match rng.below(7) {
        0 => json!(null),
        1 => json!(true),
        2 => json!(rng.below(3)),
        3 => json!(["SEA", "LAX"]),
        4 => json!({ "k": rng.below(2) }),
        5 => json!("s"),
        _ => json!(false),
    }
}

fn change(rng: &mut Rng) -> Change {
    if rng.below(4) == 0 {
        if rng.below(5) == 0 {
            return Change::Whole(Value::TOMBSTONE);
        }
        let mut map = serde_json::Map::new();
        for name in NAMES {
            if rng.below(2) == 0 {
                map.insert(name.to_owned(), field_value(rng));
            }
        }
        return Change::Whole(Value::object(map));
    }
    let mut patch = BTreeMap::new();
    for name in NAMES {
        match rng.below(4) {
            0 => {
                patch.insert(name.to_owned(), FieldOp::Delete);
            }
            1 => {
                patch.insert(name.to_owned(), FieldOp::Set(field_value(rng)));
            }
            _ => {}
        }
    }
    Change::Patch(patch)
}

/// Writes with distinct stamps: one stamp, one write, as the protocol
/// requires of every writer.
fn pool(rng: &mut Rng, size: usize) -> Vec<FieldWrite> {
    let mut writes: Vec<FieldWrite> = Vec::new();
    while writes.len() < size {
        let clock = 1 + rng.below(10);
        let writer = *rng.pick(&WRITERS);
        let stamp = stamp(clock, writer);
        if writes.iter().any(|w| w.stamp == stamp) {
            continue;
        }
        writes.push(FieldWrite {
            stamp,
            change: change(rng),
        });
    }
    writes
}

fn document_of(rng: &mut Rng, writes: &[FieldWrite]) -> FieldDocument {
    let mut document = FieldDocument::new();
    for write in writes {
        if rng.below(2) == 0 {
            document = document.join_write(write);
        }
    }
    document
}

fn stamp_json(stamp: &Stamp) -> Json {
    json!({ "clock": stamp.clock.get().to_string(), "writer": stamp.writer.as_str() })
}

fn write_json(write: &FieldWrite) -> Json {
    let change = match &write.change {
        Change::Whole(value) => json!({ "whole": value.to_json() }),
        Change::Patch(patch) => {
            let ops: serde_json::Map<String, Json> = (patch.iter())
                .map(|(name, op)| {
                    let op = match op {
                        FieldOp::Set(value) => json!({ "set": value }),
                        FieldOp::Delete => json!({ "delete": true }),
                    };
                    (name.clone(), op)
                })
                .collect();
            json!({ "patch": ops })
        }
    };
    json!({ "stamp": stamp_json(&write.stamp), "change": change })
}

/// A document in the one form the join makes: the floor, and every listed
/// field with its stamp and either its value or `tombstone: true`.
fn document_json(document: &FieldDocument) -> Json {
    let floor = document
        .floor()
        .map(|f| json!({ "stamp": stamp_json(&f.stamp), "deleted": f.deleted }));
    let fields: serde_json::Map<String, Json> = (document.entries())
        .map(|(name, entry)| {
            let entry = match &entry.value {
                Some(value) => json!({ "stamp": stamp_json(&entry.stamp), "value": value }),
                None => json!({ "stamp": stamp_json(&entry.stamp), "tombstone": true }),
            };
            (name.to_owned(), entry)
        })
        .collect();
    json!({ "floor": floor, "fields": fields })
}

/// What a reader sees of a document: its stamp, merged value and whether
/// it holds a patch.
fn view_json(document: &FieldDocument) -> Json {
    json!({
        "stamp": document.stamp().map(stamp_json),
        "value": document.value().to_json(),
        "holdsPatch": document.holds_patch(),
    })
}

fn decision(decision: Decision) -> &'static str {
    match decision {
        Decision::Applied => "APPLIED",
        Decision::Stale => "STALE",
        Decision::Unchanged => "UNCHANGED",
    }
}

fn merge_case(rng: &mut Rng) -> Json {
    let size = 2 + rng.below(5) as usize;
    let writes = pool(rng, size);
    let a = document_of(rng, &writes);
    let b = document_of(rng, &writes);
    let mut write = rng.pick(&writes).clone();
    if rng.below(6) == 0 {
        // One stamp with other content: a broken writer, refused.
        write.change = change(rng);
    } else if rng.below(3) == 0 {
        let fresh = pool(rng, 1).remove(0);
        write = fresh;
    }
    let outcome = match merge(&a, &write, POLICY) {
        Ok(report) => json!({
            "decision": decision(report.decision),
            "fields": (report.fields.iter())
                .map(|(name, d)| (name.clone(), json!(decision(*d))))
                .collect::<serde_json::Map<_, _>>(),
        }),
        Err(MergeError::ConflictingContent(_)) => json!({ "refused": "conflicting-content" }),
        Err(MergeError::ClockJump { .. }) => json!({ "refused": "clock-jump" }),
        Err(other) => panic!("unexpected refusal {other}"),
    };
    json!({
        "a": document_json(&a),
        "b": document_json(&b),
        "write": write_json(&write),
        "maxClockJump": POLICY.max_clock_jump.to_string(),
        "expect": {
            "a": view_json(&a),
            "join": document_json(&a.join(&b)),
            "joinWrite": document_json(&a.join_write(&write)),
            "merge": outcome,
            "confirmedByB": confirmed(&write, &b),
            "confirmedByJoinWrite": confirmed(&write, &a.join_write(&write)),
        },
    })
}

/// A client's history: edits and documents observed from the backend,
/// with what it shows, its clock and its unconfirmed writes after each.
fn replica_case(rng: &mut Rng) -> Json {
    let size = 2 + rng.below(5) as usize;
    let writes = pool(rng, size);
    let mut replica = FieldReplica::new(WriterId::parse("me").unwrap());
    let mut steps = Vec::new();
    for _ in 0..1 + rng.below(6) {
        let step = if rng.below(2) == 0 {
            let change = change(rng);
            let write = replica.edit(change);
            json!({ "edit": write_json(&write)["change"] })
        } else {
            let remote = document_of(rng, &writes);
            // Sometimes the backend holds this client's own writes too.
            let remote = (replica.unconfirmed().to_vec().iter())
                .filter(|_| rng.below(2) == 0)
                .fold(remote, |doc, w| doc.join_write(w));
            let changed = replica.observe(&remote);
            json!({ "observe": document_json(&remote), "changed": changed })
        };
        steps.push(json!({
            "step": step,
            "document": document_json(replica.document()),
            "clock": replica.clock().get().to_string(),
            "unconfirmed": replica.unconfirmed().iter().map(|w| stamp_json(&w.stamp)).collect::<Vec<_>>(),
        }));
    }
    json!({ "writer": "me", "steps": steps })
}

fn vectors() -> Json {
    let mut rng = Rng(0x005E_EDF1_E1D5_u64);
    json!({
        "about": "Generated by protocol/tests/field_vectors.rs from the Rust per-field rules; checked by that test and by web/test/unit/fields.test.ts. Do not edit by hand.",
        "merge": (0..MERGE_CASES).map(|_| merge_case(&mut rng)).collect::<Vec<_>>(),
        "replica": (0..REPLICA_CASES).map(|_| replica_case(&mut rng)).collect::<Vec<_>>(),
    })
}

/// Compact JSON, one case a line, so a change shows case by case in a diff.
fn render(vectors: &Json) -> String {
    let mut out = format!("{{\"about\": {},\n", vectors["about"]);
    for (i, kind) in ["merge", "replica"].into_iter().enumerate() {
        let cases = vectors[kind].as_array().unwrap();
        let lines: Vec<String> = cases.iter().map(|c| c.to_string()).collect();
        let end = if i == 0 { "," } else { "" };
        out += &format!("\"{kind}\": [\n{}\n]{end}\n", lines.join(",\n"));
    }
    out + "}\n"
}

#[test]
fn the_shared_vectors_are_what_the_rust_rules_give() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/test/vectors/fields.json");
    let expected = render(&vectors());
    if std::env::var_os("SETTINGS_SYNC_UPDATE_VECTORS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "{} differs from what the Rust per-field rules give; if the rules changed on purpose, run \
         SETTINGS_SYNC_UPDATE_VECTORS=1 cargo test -p settings-sync-protocol --test field_vectors \
         and make web/test/unit/fields.test.ts pass again",
        path.display()
    );
}

#[test]
fn the_vectors_reach_every_outcome() {
    let all = vectors().to_string();
    for needle in [
        "\"APPLIED\"",
        "\"STALE\"",
        "\"UNCHANGED\"",
        "conflicting-content",
        "clock-jump",
        "\"tombstone\":true",
        "\"deleted\":true",
        "\"holdsPatch\":true",
        "\"confirmedByB\":true",
    ] {
        assert!(all.contains(needle), "no vector has {needle}");
    }
}
