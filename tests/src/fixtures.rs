//! Small constructors that keep test bodies about behaviour.

use settings_sync_protocol::{Clock, DocumentKey, Stamp, Value, Versioned, WriterId};

pub fn key(owner: &str) -> DocumentKey {
    DocumentKey::parse("acme", owner, "alerts").expect("a valid test key")
}

pub fn value(json: serde_json::Value) -> Value {
    Value::from_json(json).expect("a test value is an object or null")
}

pub fn write(clock: u64, writer: &str, json: serde_json::Value) -> Versioned {
    Versioned {
        value: value(json),
        stamp: Stamp::new(
            Clock::new(clock).expect("a valid clock"),
            WriterId::parse(writer).expect("a valid writer"),
        ),
    }
}
