//! Every RPC's message becomes a domain request here, or a typed
//! [`RequestError`] ("parse, don't validate"): the handlers never see a
//! wire message, and every refusal of bad input has a variant of its own.

use settings_sync_proto::convert::{WireError, parse_field_write, parse_key, parse_write};
use settings_sync_proto::v1;
use settings_sync_protocol::fields::FieldWrite;
use settings_sync_protocol::{DocumentKey, IdError, Stamp, ValueError, Versioned};

use super::Limits;

/// Parses a wire message against the server's limits.
pub trait FromRequest<M>: Sized {
    fn from_request(message: M, limits: &Limits) -> Result<Self, RequestError>;
}

/// Why a request was refused before anything was read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("at most {max} keys per BatchGet, got {got}")]
    TooManyKeys { max: usize, got: usize },
    #[error("contains_json: {0}")]
    Filter(ValueError),
    #[error("contains_json must be a JSON object such as {{}} or {{\"airports\":[\"SEA\"]}}")]
    FilterNotObject,
    #[error("page_size must be between 0 and {max}")]
    PageSize { max: usize },
    #[error("page_token is not a token this service issued")]
    PageToken,
    #[error("after_revision must not be negative")]
    NegativeRevision,
}

impl RequestError {
    /// The value is over the size limit: the caller must send less, not
    /// fix its syntax, so it is told apart from other bad input.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            RequestError::Wire(
                WireError::Value(ValueError::TooLarge { .. })
                    | WireError::FieldValue {
                        error: ValueError::TooLarge { .. },
                        ..
                    }
            )
        )
    }
}

/// A `Sync`: one write to one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncCommand {
    pub key: DocumentKey,
    pub write: SyncWrite,
}

/// Who is writing decides how the write merges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncWrite {
    /// A whole-document client (v1 as it was): refused on a document that
    /// holds a patch, since it may be echoing a document it adopted.
    Whole(Versioned),
    /// A per-field client's patch or whole document, merged field by field.
    Fields(FieldWrite),
}

impl SyncWrite {
    pub fn stamp(&self) -> &Stamp {
        match self {
            SyncWrite::Whole(write) => &write.stamp,
            SyncWrite::Fields(write) => &write.stamp,
        }
    }
}

impl FromRequest<v1::SyncRequest> for SyncCommand {
    fn from_request(request: v1::SyncRequest, limits: &Limits) -> Result<Self, RequestError> {
        let key = parse_key(request.key)?;
        let write = if request.patch.is_some() || request.per_field {
            let (value, patch) = (&request.value_json, request.patch);
            SyncWrite::Fields(parse_field_write(
                value,
                patch,
                request.stamp,
                limits.value,
            )?)
        } else {
            SyncWrite::Whole(parse_write(
                &request.value_json,
                request.stamp,
                limits.value,
            )?)
        };
        Ok(SyncCommand { key, write })
    }
}

impl FromRequest<v1::GetRequest> for DocumentKey {
    fn from_request(request: v1::GetRequest, _: &Limits) -> Result<Self, RequestError> {
        Ok(parse_key(request.key)?)
    }
}

/// The keys of a `BatchGet`, at most `--max-batch-keys` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchKeys(pub Vec<DocumentKey>);

impl FromRequest<v1::BatchGetRequest> for BatchKeys {
    fn from_request(request: v1::BatchGetRequest, limits: &Limits) -> Result<Self, RequestError> {
        let got = request.keys.len();
        if got > limits.max_batch_keys {
            let max = limits.max_batch_keys;
            return Err(RequestError::TooManyKeys { max, got });
        }
        let keys = request.keys.into_iter().map(|k| parse_key(Some(k)));
        Ok(BatchKeys(keys.collect::<Result<_, _>>()?))
    }
}

#[cfg(test)]
mod tests {
    use settings_sync_protocol::ValueLimits;

    use super::*;

    fn key() -> Option<v1::DocumentKey> {
        Some(v1::DocumentKey {
            tenant: "acme".into(),
            owner: "alice".into(),
            name: "alerts".into(),
        })
    }

    fn sync(value_json: &str) -> v1::SyncRequest {
        v1::SyncRequest {
            key: key(),
            value_json: value_json.into(),
            stamp: Some(v1::Stamp {
                clock: 1,
                writer: "tab".into(),
            }),
            ..Default::default()
        }
    }

    fn patch(edits: Vec<(&str, Option<v1::field_edit::Op>)>) -> v1::SyncRequest {
        let edits = (edits.into_iter())
            .map(|(field, op)| v1::FieldEdit {
                field: field.into(),
                op,
            })
            .collect();
        v1::SyncRequest {
            value_json: String::new(),
            patch: Some(v1::FieldPatch { edits }),
            ..sync("")
        }
    }

    #[test]
    fn each_kind_of_bad_input_has_its_own_variant() {
        let limits = Limits {
            value: ValueLimits {
                max_bytes: 16,
                max_depth: 4,
            },
            max_batch_keys: 1,
            ..Limits::default()
        };
        let too_large = SyncCommand::from_request(sync(r#"{"a":"0123456789"}"#), &limits);
        assert!(too_large.unwrap_err().is_too_large());
        let not_json = SyncCommand::from_request(sync("{"), &limits).unwrap_err();
        assert!(
            matches!(not_json, RequestError::Wire(WireError::Value(_))),
            "{not_json:?}"
        );
        assert!(!not_json.is_too_large());
        let no_key = DocumentKey::from_request(v1::GetRequest { key: None }, &limits);
        assert_eq!(no_key, Err(RequestError::Wire(WireError::Missing("key"))));
        let two = v1::BatchGetRequest {
            keys: vec![key().unwrap(), key().unwrap()],
        };
        assert_eq!(
            BatchKeys::from_request(two, &limits),
            Err(RequestError::TooManyKeys { max: 1, got: 2 })
        );
        let parsed = SyncCommand::from_request(sync("{}"), &limits).unwrap();
        assert_eq!(parsed.key.to_string(), "acme/alice/alerts");
    }

    #[test]
    fn each_kind_of_bad_patch_has_its_own_variant() {
        use v1::field_edit::Op;
        let limits = Limits {
            value: ValueLimits {
                max_bytes: 16,
                max_depth: 2,
            },
            ..Limits::default()
        };
        let set = |json: &str| Some(Op::SetJson(json.into()));
        let refused = |request| SyncCommand::from_request(request, &limits).unwrap_err();
        let with_value = v1::SyncRequest {
            value_json: "{}".into(),
            ..patch(vec![])
        };
        assert_eq!(
            refused(with_value),
            RequestError::Wire(WireError::PatchWithValue)
        );
        assert_eq!(
            refused(patch(vec![("", set("1"))])),
            RequestError::Wire(WireError::FieldName(String::new()))
        );
        assert_eq!(
            refused(patch(vec![("a", set("1")), ("a", Some(Op::Delete(true)))])),
            RequestError::Wire(WireError::DuplicateField("a".into()))
        );
        assert_eq!(
            refused(patch(vec![("a", Some(Op::Delete(false)))])),
            RequestError::Wire(WireError::NoEdit("a".into()))
        );
        assert_eq!(
            refused(patch(vec![("a", None)])),
            RequestError::Wire(WireError::NoEdit("a".into()))
        );
        assert!(matches!(
            refused(patch(vec![("a", set("[[1]]"))])),
            RequestError::Wire(WireError::FieldValue {
                error: ValueError::TooDeep { .. },
                ..
            })
        ));
        assert!(refused(patch(vec![("a", set("\"0123456789abcdef\""))])).is_too_large());
        let names: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
        let deletes = names.iter().map(|n| (n.as_str(), Some(Op::Delete(true))));
        let generous = Limits::default();
        assert_eq!(
            SyncCommand::from_request(patch(deletes.collect()), &generous),
            Err(RequestError::Wire(WireError::TooManyEdits(1001)))
        );
        let parsed = SyncCommand::from_request(
            patch(vec![("a", set("[1]")), ("b", Some(Op::Delete(true)))]),
            &limits,
        )
        .unwrap();
        let SyncWrite::Fields(write) = parsed.write else {
            panic!("a patch is a per-field write: {parsed:?}")
        };
        assert_eq!(write.stamp.clock.get(), 1);
        let per_field_whole = v1::SyncRequest {
            per_field: true,
            ..sync("{}")
        };
        let parsed = SyncCommand::from_request(per_field_whole, &limits).unwrap();
        assert!(matches!(parsed.write, SyncWrite::Fields(_)), "{parsed:?}");
    }
}
