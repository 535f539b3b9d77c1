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

/// Asserts a refusal's code and that its message names the reason.
#[track_caller]
pub fn assert_refused(status: &tonic::Status, code: tonic::Code, reason: &str) {
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(
        status.message().contains(reason),
        "the message does not say {reason:?}: {}",
        status.message()
    );
}
