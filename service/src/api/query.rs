//! Parsing of `Query` requests and their page tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use settings_sync_proto::v1;
use settings_sync_protocol::{Id, Value};

use super::Limits;
use super::request::{FromRequest, RequestError};
use crate::store::QuerySpec;

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;

impl FromRequest<v1::QueryRequest> for QuerySpec {
    fn from_request(request: v1::QueryRequest, limits: &Limits) -> Result<Self, RequestError> {
        let tenant = Id::parse("tenant", request.tenant)?;
        let name = Id::parse("name", request.name)?;
        let filter =
            Value::parse(&request.contains_json, limits.value).map_err(RequestError::Filter)?;
        let filter = match filter.as_object() {
            Some(_) => filter.to_json(),
            None => return Err(RequestError::FilterNotObject),
        };
        let limit = match usize::try_from(request.page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) if n <= MAX_PAGE_SIZE => n,
            _ => return Err(RequestError::PageSize { max: MAX_PAGE_SIZE }),
        };
        let after_owner = match request.page_token.as_str() {
            "" => None,
            token => Some(parse_page_token(token).ok_or(RequestError::PageToken)?),
        };
        Ok(QuerySpec {
            tenant,
            name,
            filter,
            after_owner,
            limit,
        })
    }
}

/// `ListOverrides`: one document's override log, a page of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverridesPage {
    pub key: settings_sync_protocol::DocumentKey,
    /// List ids below this one (the last of the previous page).
    pub before: Option<i64>,
    pub limit: usize,
}

const DEFAULT_OVERRIDES_PAGE: usize = 20;
const MAX_OVERRIDES_PAGE: usize = 100;

impl FromRequest<v1::ListOverridesRequest> for OverridesPage {
    fn from_request(request: v1::ListOverridesRequest, _: &Limits) -> Result<Self, RequestError> {
        let key = settings_sync_proto::convert::parse_key(request.key)?;
        let limit = match usize::try_from(request.page_size) {
            Ok(0) => DEFAULT_OVERRIDES_PAGE,
            Ok(n) if n <= MAX_OVERRIDES_PAGE => n,
            _ => {
                return Err(RequestError::PageSize {
                    max: MAX_OVERRIDES_PAGE,
                });
            }
        };
        let before = match request.page_token.as_str() {
            "" => None,
            token => Some(parse_overrides_token(token).ok_or(RequestError::PageToken)?),
        };
        Ok(OverridesPage { key, before, limit })
    }
}

/// Opaque to callers: the id of the previous page's last override.
pub fn overrides_token(last_id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("o{last_id}"))
}

fn parse_overrides_token(token: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let id: i64 = String::from_utf8(bytes)
        .ok()?
        .strip_prefix('o')?
        .parse()
        .ok()?;
    (id > 0).then_some(id)
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

    fn parse(request: v1::QueryRequest) -> Result<QuerySpec, RequestError> {
        QuerySpec::from_request(request, &Limits::default())
    }

    #[test]
    fn page_tokens_round_trip() {
        let owner = Id::parse("owner", "alice@acme").unwrap();
        let spec = parse(request("{}", 0, &page_token(&owner))).unwrap();
        assert_eq!(spec.after_owner, Some(owner));
        assert_eq!(spec.limit, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn bad_queries_are_rejected_each_with_its_reason() {
        let not_object = Err(RequestError::FilterNotObject);
        let array = parse(request("[]", 0, "")).map(|_| ());
        assert!(matches!(array, Err(RequestError::Filter(_))), "{array:?}");
        assert_eq!(parse(request("null", 0, "")).map(|_| ()), not_object);
        let page_size = Err(RequestError::PageSize { max: MAX_PAGE_SIZE });
        assert_eq!(parse(request("{}", -1, "")).map(|_| ()), page_size);
        assert_eq!(parse(request("{}", 1001, "")).map(|_| ()), page_size);
        let token = parse(request("{}", 0, "!!")).map(|_| ());
        assert_eq!(token, Err(RequestError::PageToken));
        let filter = parse(request("{", 0, "")).unwrap_err();
        assert!(matches!(filter, RequestError::Filter(_)), "{filter:?}");
    }
}
