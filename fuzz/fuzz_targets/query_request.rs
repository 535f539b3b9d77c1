//! Query request bytes through prost and the service's Query parser
//! (filter JSON, page size, page token). Nothing may panic; a parsed
//! page token must be one the service would issue.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use settings_sync::api::query;
use settings_sync::api::{FromRequest, Limits};
use settings_sync::store::QuerySpec;
use settings_sync_proto::v1;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = v1::QueryRequest::decode(data) else {
        return;
    };
    if let Ok(spec) = QuerySpec::from_request(request.clone(), &Limits::default()) {
        assert!((1..=1000).contains(&spec.limit));
        if let Some(owner) = &spec.after_owner {
            assert_eq!(query::page_token(owner), request.page_token);
        }
    }
});
