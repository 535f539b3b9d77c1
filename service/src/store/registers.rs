//! The `field_stamps` column: a field-merged document's registers as JSON,
//! next to its merged value. Values are not repeated here: a listed field's
//! value is its value in the `value` column, and a listed field missing
//! there is a field tombstone. So the value column stays exactly what
//! Query's containment runs on, on both stores.
//!
//! `{"floor": [clock, "writer", deleted] | null, "fields": {"name": [clock, "writer"]}}`

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use settings_sync_protocol::fields::{FieldDocument, FieldEntry, Floor};
use settings_sync_protocol::{Clock, Stamp, Value, WriterId};

#[derive(Serialize, Deserialize)]
struct Registers {
    floor: Option<(u64, String, bool)>,
    fields: BTreeMap<String, (u64, String)>,
}

pub(super) fn encode(document: &FieldDocument) -> String {
    let stamp = |s: &Stamp| (s.clock.get(), s.writer.to_string());
    let registers = Registers {
        floor: (document.floor()).map(|f| {
            let (clock, writer) = stamp(&f.stamp);
            (clock, writer, f.deleted)
        }),
        fields: (document.entries())
            .map(|(name, entry)| (name.to_owned(), stamp(&entry.stamp)))
            .collect(),
    };
    serde_json::to_string(&registers).expect("registers serialize")
}

/// The registers in `text` over the merged `value`; why not, if corrupt.
pub(super) fn decode(text: &str, value: &Value) -> Result<FieldDocument, String> {
    let registers: Registers = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let stamp = |clock: u64, writer: String| -> Result<Stamp, String> {
        let clock = Clock::new(clock).map_err(|e| e.to_string())?;
        Ok(Stamp::new(
            clock,
            WriterId::parse(writer).map_err(|e| e.to_string())?,
        ))
    };
    let floor = match registers.floor {
        Some((clock, writer, deleted)) => Some(Floor {
            stamp: stamp(clock, writer)?,
            deleted,
        }),
        None => None,
    };
    let live = value.as_object();
    if let Some(name) = live
        .into_iter()
        .flatten()
        .map(|(name, _)| name)
        .find(|name| !registers.fields.contains_key(*name))
    {
        return Err(format!("field {name:?} has a value but no stamp"));
    }
    let mut fields = BTreeMap::new();
    for (name, (clock, writer)) in registers.fields {
        let value = live.and_then(|map| map.get(&name)).cloned();
        let stamp = stamp(clock, writer)?;
        fields.insert(name, FieldEntry { stamp, value });
    }
    FieldDocument::from_parts(floor, fields).map_err(|e| e.to_string())
}
