//! Sync and BatchGet request bytes through the service's own parsing: prost
//! decoding, then parse_key / parse_write with the default limits. Nothing
//! may panic, and whatever parses must survive a round trip to the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use settings_sync_proto::convert::{parse_key, parse_write};
use settings_sync_proto::v1;
use settings_sync_protocol::ValueLimits;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = v1::SyncRequest::decode(data) {
        if let Ok(key) = parse_key(request.key.clone()) {
            let wire: v1::DocumentKey = (&key).into();
            assert_eq!(parse_key(Some(wire)).ok(), Some(key));
        }
        if let Ok(write) = parse_write(&request.value_json, request.stamp, ValueLimits::default()) {
            let canonical = write.value.canonical();
            let again = parse_write(&canonical, Some((&write.stamp).into()), ValueLimits::default());
            assert_eq!(again.ok(), Some(write), "a parsed write re-parses to itself");
        }
    }
    if let Ok(request) = v1::BatchGetRequest::decode(data) {
        for key in request.keys {
            let _ = parse_key(Some(key));
        }
    }
});
