//! Parsing of `Query` requests and their page tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use settings_sync_proto::v1;
use settings_sync_protocol::{Id, Value, ValueLimits};

use super::ApiError;
use crate::store::QuerySpec;

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;

pub fn parse(request: v1::QueryRequest, limits: ValueLimits) -> Result<QuerySpec, ApiError> {
    let bad = |m: &str| ApiError::BadRequest(m.to_string());
    let tenant = Id::parse("tenant", request.tenant).map_err(|e| bad(&e.to_string()))?;
    let name = Id::parse("name", request.name).map_err(|e| bad(&e.to_string()))?;
    let filter = Value::parse(&request.contains_json, limits)
        .map_err(|e| bad(&format!("contains_json: {e}")))?;
    let filter = match filter.as_object() {
        Some(_) => filter.to_json(),
        None => {
            return Err(bad(
                "contains_json must be a JSON object such as {} or {\"airports\":[\"SEA\"]}",
            ));
        }
    };
    let limit = match usize::try_from(request.page_size) {
        Ok(0) => DEFAULT_PAGE_SIZE,
        Ok(n) if n <= MAX_PAGE_SIZE => n,
        _ => {
            return Err(bad(&format!(
                "page_size must be between 0 and {MAX_PAGE_SIZE}"
            )));
        }
    };
    let after_owner = match request.page_token.as_str() {
        "" => None,
        token => Some(
            parse_page_token(token)
                .ok_or_else(|| bad("page_token is not a token this service issued"))?,
        ),
    };
    Ok(QuerySpec {
        tenant,
        name,
        filter,
        after_owner,
        limit,
    })
}

/// Opaque to callers: the last owner of the previous page.
pub fn page_token(after_owner: &Id) -> String {
    URL_SAFE_NO_PAD.encode(after_owner.as_str())
}

fn parse_page_token(token: &str) -> Option<Id> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    Id::parse("page_token", String::from_utf8(bytes).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(contains: &str, page_size: i32, token: &str) -> v1::QueryRequest {
        v1::QueryRequest {
            tenant: "acme".into(),
            name: "alerts".into(),
            contains_json: contains.into(),
            page_size,
            page_token: token.into(),
        }
    }

    #[test]
    fn page_tokens_round_trip() {
        let owner = Id::parse("owner", "alice@acme").unwrap();
        let spec = parse(
            request("{}", 0, &page_token(&owner)),
            ValueLimits::default(),
        )
        .unwrap();
        assert_eq!(spec.after_owner, Some(owner));
        assert_eq!(spec.limit, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn bad_queries_are_rejected() {
        let limits = ValueLimits::default();
        assert!(parse(request("[]", 0, ""), limits).is_err());
        assert!(parse(request("null", 0, ""), limits).is_err());
        assert!(parse(request("{}", -1, ""), limits).is_err());
        assert!(parse(request("{}", 1001, ""), limits).is_err());
        assert!(parse(request("{}", 0, "!!"), limits).is_err());
    }
}
