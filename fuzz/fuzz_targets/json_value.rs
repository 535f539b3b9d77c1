//! JSON document values: parsing with limits, the canonical form, and
//! containment (the Query filter). The input is split in two at the first
//! 0xff byte: a document and a filter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use settings_sync_protocol::contains::contains;
use settings_sync_protocol::{Value, ValueLimits};

const LIMITS: ValueLimits = ValueLimits {
    max_bytes: 64 * 1024,
    max_depth: 32,
};

fuzz_target!(|data: &[u8]| {
    let (document, filter) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(document) = std::str::from_utf8(document) else {
        return;
    };
    let Ok(value) = Value::parse(document, LIMITS) else {
        return;
    };
    let canonical = value.canonical();
    let again = Value::parse(&canonical, LIMITS).expect("the canonical form parses");
    assert_eq!(again.canonical(), canonical, "canonical form is a fixed point");
    let json = value.to_json();
    assert!(contains(&json, &json), "a value contains itself");
    if let Some(filter) = std::str::from_utf8(filter).ok().and_then(|f| Value::parse(f, LIMITS).ok()) {
        let _ = contains(&json, &filter.to_json());
    }
});
