//! Watch request bytes through prost and the service's Watch parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use settings_sync::api::watch::WatchSpec;
use settings_sync::api::{FromRequest, Limits};
use settings_sync_proto::v1;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = v1::WatchRequest::decode(data) else {
        return;
    };
    if let Ok(spec) = WatchSpec::from_request(request, &Limits::default()) {
        assert!(spec.after_revision.is_none_or(|r| r >= 0));
    }
});
