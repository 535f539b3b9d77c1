//! What each call is: a Get or a Sync, to which document, with which stamp.
//!
//! Stamps follow the same rule as `scripts/bench-sync.sql`, so the service
//! and the pgbench baseline write the same rows: worker `w` is writer `w`,
//! and its n-th write carries clock `clock_base + n`. Workers advance at
//! about the same pace, so most writes win and a few lose a race (STALE).

use rand::Rng;
use rand::rngs::StdRng;
use settings_sync_protocol::{Clock, DocumentKey, Stamp, Value, Versioned, WriterId};

use crate::Args;

/// The value every write stores: the same JSON as the pgbench script.
pub const VALUE_JSON: &str = r#"{"fontSize":14,"theme":"dark"}"#;

/// With `--verify-writes`, a value names the stamp it was written with,
/// so a read-back can tell which write it holds.
pub fn stamped_value(stamp: &Stamp) -> Value {
    let mut json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(VALUE_JSON).expect("VALUE_JSON is an object");
    json.insert("writer".into(), stamp.writer.as_str().into());
    json.insert("clock".into(), stamp.clock.get().into());
    Value::object(json)
}

/// The stamp a [`stamped_value`] names.
pub fn stamp_in(value: &Value) -> Option<Stamp> {
    let object = value.as_object()?;
    let clock = Clock::new(object.get("clock")?.as_u64()?).ok()?;
    let writer = WriterId::parse(object.get("writer")?.as_str()?).ok()?;
    Some(Stamp::new(clock, writer))
}

/// How far back a conflicting write's clock reaches: enough that
/// concurrent workers' clocks on the hot document overlap.
const CONFLICT_CLOCK_SPREAD: u64 = 16;

#[derive(Clone, Debug)]
pub struct Workload {
    documents: u64,
    tenants: u64,
    reads: f64,
    conflict_rate: f64,
    clock_base: u64,
    value: Value,
    stamped_values: bool,
    /// With `--patch-fields`: the value's fields, one of which each write sets.
    patch_fields: Option<Vec<(String, String)>>,
}

pub enum Call {
    Get(DocumentKey),
    Sync(DocumentKey, Versioned),
    /// A per-field write: `field` set to the JSON text `value` at `stamp`.
    Patch {
        key: DocumentKey,
        stamp: Stamp,
        field: String,
        value: String,
    },
}

/// One worker's position in the workload.
pub struct Worker {
    writer: WriterId,
    writes: u64,
}

impl Workload {
    pub fn from_args(args: &Args) -> anyhow::Result<Self> {
        anyhow::ensure!(args.documents > 0, "--documents must be positive");
        anyhow::ensure!(args.tenants > 0, "--tenants must be positive");
        anyhow::ensure!((0.0..=1.0).contains(&args.reads), "--reads is a fraction");
        anyhow::ensure!(
            (0.0..=1.0).contains(&args.conflict_rate),
            "--conflict-rate is a fraction"
        );
        let json: serde_json::Value = serde_json::from_str(VALUE_JSON)?;
        let patch_fields = args.patch_fields.then(|| {
            json.as_object()
                .expect("VALUE_JSON is an object")
                .iter()
                .map(|(field, value)| (field.clone(), value.to_string()))
                .collect()
        });
        Ok(Workload {
            documents: args.documents,
            tenants: args.tenants.min(args.documents),
            reads: args.reads,
            conflict_rate: args.conflict_rate,
            clock_base: args.clock_base,
            value: Value::from_json(json)?,
            stamped_values: args.verify_writes,
            patch_fields,
        })
    }

    /// Document `index`: tenant `index % tenants`, owner `index / tenants`.
    pub fn key(&self, index: u64) -> DocumentKey {
        let tenant = (index % self.tenants).to_string();
        let owner = (index / self.tenants).to_string();
        DocumentKey::parse(&tenant, &owner, "settings").expect("numeric ids are valid")
    }

    pub fn worker(&self, id: usize) -> Worker {
        Worker {
            writer: WriterId::parse(id.to_string()).expect("numeric writer ids are valid"),
            writes: 0,
        }
    }

    pub fn next(&self, worker: &mut Worker, rng: &mut StdRng) -> Call {
        if rng.random_bool(self.reads) {
            return Call::Get(self.key(rng.random_range(0..self.documents)));
        }
        worker.writes += 1;
        let mut clock = self.clock_base + worker.writes;
        let index = if rng.random_bool(self.conflict_rate) {
            // The hot document, with a clock up to SPREAD behind: racing
            // writers meet equal and smaller stamps there.
            clock = clock
                .saturating_sub(rng.random_range(0..CONFLICT_CLOCK_SPREAD))
                .max(1);
            0
        } else {
            rng.random_range(0..self.documents)
        };
        let stamp = Stamp::new(
            Clock::new(clock).expect("clocks stay far below the maximum"),
            worker.writer.clone(),
        );
        if let Some(fields) = &self.patch_fields {
            let (field, value) = &fields[rng.random_range(0..fields.len())];
            return Call::Patch {
                key: self.key(index),
                stamp,
                field: field.clone(),
                value: value.clone(),
            };
        }
        let value = if self.stamped_values {
            stamped_value(&stamp)
        } else {
            self.value.clone()
        };
        Call::Sync(self.key(index), Versioned { value, stamp })
    }
}
