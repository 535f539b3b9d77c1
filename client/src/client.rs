//! Typed calls over one gRPC channel.

use std::collections::BTreeMap;

use settings_sync_proto::convert::{WireError, field_write_request, parse_decision};
use settings_sync_proto::v1;
use settings_sync_proto::v1::settings_sync_client::SettingsSyncClient;
use settings_sync_protocol::fields::{Change, FieldOp, FieldReport, FieldWrite};
use settings_sync_protocol::overrides::Override;
use settings_sync_protocol::{
    Clock, Decision, Document, DocumentKey, Stamp, Value, ValueError, Versioned,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::auth::{CallInterceptor, InvalidToken};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{endpoint:?} is not a server address: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("{:?}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
    #[error("the server sent an invalid response: {0}")]
    InvalidResponse(#[from] WireError),
    #[error(transparent)]
    InvalidToken(#[from] InvalidToken),
}

/// A lost connection reads as UNAVAILABLE, not tonic's CANCELLED (see
/// [`crate::unavailable_if_connection_lost`]).
impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Status(crate::unavailable_if_connection_lost(status))
    }
}

impl Error {
    /// The gRPC status code of a call that ended in a status: usually the
    /// server's answer, though tonic makes some locally (`UNAVAILABLE` when a
    /// lazy channel cannot reach the server). `None` for errors that never
    /// became a call: a bad endpoint, a failed connect, a bad token, or a
    /// response that does not parse.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status(status) => Some(status.code()),
            _ => None,
        }
    }
}

/// The answer to a sync: the stored document and what happened to the write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReply {
    pub document: Document,
    pub decision: Decision,
}

/// The answer to a per-field write: the stored document (its registers in
/// `Document::field_document`) and what happened, as a whole and per field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSyncReply {
    pub document: Document,
    pub report: FieldReport,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPage {
    pub documents: Vec<Document>,
    /// Pass to the next `query` call; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// The channel every call goes through: it adds the caller's W3C trace
/// context (see [`crate::trace`]) and bearer token, if any (see [`crate::auth`]).
pub type TracedChannel = InterceptedService<Channel, CallInterceptor>;

fn endpoint_of(endpoint: String) -> Result<tonic::transport::Endpoint, Error> {
    Channel::from_shared(endpoint.clone()).map_err(|e| Error::InvalidEndpoint {
        endpoint,
        reason: e.to_string(),
    })
}

/// A cheap-to-clone handle on one channel.
#[derive(Clone, Debug)]
pub struct Client {
    inner: SettingsSyncClient<TracedChannel>,
    calls: CallInterceptor,
}

impl Client {
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        let channel = endpoint_of(endpoint.into())?.connect().await?;
        Ok(Self::from_channel(channel))
    }

    /// Connects on first use and reconnects by itself after the server or
    /// the network went away; each call fails after `timeout`.
    pub fn connect_lazy(
        endpoint: impl Into<String>,
        timeout: std::time::Duration,
    ) -> Result<Self, Error> {
        let channel = endpoint_of(endpoint.into())?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_lazy();
        Ok(Self::from_channel(channel))
    }

    pub fn from_channel(channel: Channel) -> Self {
        let calls = CallInterceptor::default();
        Client {
            inner: SettingsSyncClient::with_interceptor(channel, calls.clone()),
            calls,
        }
    }

    /// Sends `token` as `authorization: Bearer <token>` on every call.
    pub fn with_token(self, token: &str) -> Result<Self, Error> {
        self.set_token(Some(token))?;
        Ok(self)
    }

    /// Replaces the bearer token (e.g. a refreshed one) for this client and
    /// all its clones; `None` sends none.
    pub fn set_token(&self, token: Option<&str>) -> Result<(), Error> {
        Ok(self.calls.set_token(token)?)
    }

    /// The generated client, for calls this wrapper does not cover (Watch).
    pub fn raw(&mut self) -> &mut SettingsSyncClient<TracedChannel> {
        &mut self.inner
    }

    pub async fn sync(&mut self, key: &DocumentKey, write: &Versioned) -> Result<SyncReply, Error> {
        let request = v1::SyncRequest {
            key: Some(key.into()),
            value_json: write.value.canonical(),
            stamp: Some((&write.stamp).into()),
            ..Default::default()
        };
        let reply = self.inner.sync(request).await?.into_inner();
        Ok(SyncReply {
            document: document(reply.document)?,
            decision: parse_decision(reply.decision)?,
        })
    }

    /// A per-field client's write: a patch, or a whole document merged
    /// field by field (docs/protocol.md, "Per-field merge"). An empty patch
    /// reads; of a document never written it is NOT_FOUND.
    pub async fn sync_fields(
        &mut self,
        key: &DocumentKey,
        write: &FieldWrite,
    ) -> Result<FieldSyncReply, Error> {
        let request = field_write_request(key, write);
        let reply = self.inner.sync(request).await?.into_inner();
        let fields = (reply.field_decisions.into_iter())
            .map(|(name, d)| Ok((name, parse_decision(d)?)))
            .collect::<Result<BTreeMap<_, _>, WireError>>()?;
        Ok(FieldSyncReply {
            document: document(reply.document)?,
            report: FieldReport {
                decision: parse_decision(reply.decision)?,
                fields,
            },
        })
    }

    /// The stored document, or `None` if it was never written.
    pub async fn get(&mut self, key: &DocumentKey) -> Result<Option<Document>, Error> {
        match self
            .inner
            .get(v1::GetRequest {
                key: Some(key.into()),
            })
            .await
        {
            Ok(reply) => Ok(Some(document(reply.into_inner().document)?)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }

    /// The documents found, in the order of `keys`.
    pub async fn batch_get(&mut self, keys: &[DocumentKey]) -> Result<Vec<Document>, Error> {
        let request = v1::BatchGetRequest {
            keys: keys.iter().map(Into::into).collect(),
        };
        let reply = self.inner.batch_get(request).await?.into_inner();
        reply
            .documents
            .into_iter()
            .map(|d| Ok(Document::try_from(d)?))
            .collect()
    }

    pub async fn query(
        &mut self,
        tenant: &str,
        name: &str,
        contains_json: &str,
        page_size: i32,
        page_token: Option<String>,
    ) -> Result<QueryPage, Error> {
        let request = v1::QueryRequest {
            tenant: tenant.into(),
            name: name.into(),
            contains_json: contains_json.into(),
            page_size,
            page_token: page_token.unwrap_or_default(),
        };
        let reply = self.inner.query(request).await?.into_inner();
        Ok(QueryPage {
            documents: reply
                .documents
                .into_iter()
                .map(Document::try_from)
                .collect::<Result<_, _>>()?,
            next_page_token: Some(reply.next_page_token).filter(|t| !t.is_empty()),
        })
    }
}

/// A page of one document's override log, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverridesPage {
    pub overrides: Vec<Override>,
    /// Pass to the next `list_overrides` call; `None` on the last page.
    pub next_page_token: Option<String>,
}

impl Client {
    /// The values of the document at `key` that lost (arrived stale, or
    /// were overtaken), newest first; `page_size` 0 means 20.
    pub async fn list_overrides(
        &mut self,
        key: &DocumentKey,
        page_size: i32,
        page_token: Option<String>,
    ) -> Result<OverridesPage, Error> {
        let request = v1::ListOverridesRequest {
            key: Some(key.into()),
            page_size,
            page_token: page_token.unwrap_or_default(),
        };
        let reply = self.inner.list_overrides(request).await?.into_inner();
        Ok(OverridesPage {
            overrides: (reply.overrides.into_iter())
                .map(Override::try_from)
                .collect::<Result<_, _>>()?,
            next_page_token: Some(reply.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    /// Writes a lost value again, as a fresh edit: an ordinary Sync under a
    /// fresh stamp past the document's (a new writer id, clock one past the
    /// stored clock), so it wins unless someone writes meanwhile. A lost
    /// field is sent as a patch of that field (set, or deleted if it lost
    /// as absent); a lost whole document as a whole document, per field if
    /// the document holds a patch (a whole-document client may not write
    /// it then). Answers the write's decision and the stored document.
    pub async fn reapply(
        &mut self,
        key: &DocumentKey,
        lost: &Override,
    ) -> Result<SyncReply, Error> {
        let current = self.get(key).await?;
        let clock = current
            .as_ref()
            .map_or(Clock::ZERO, |d| d.state.stamp.clock)
            .max(lost.lost.winner.clock)
            .tick();
        let stamp = Stamp::new(clock, crate::local::fresh_writer_id());
        let value: Option<serde_json::Value> = match &lost.lost.value {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| WireError::Value(ValueError::NotJson(e.to_string())))?,
            ),
            None => None,
        };
        let patched = current.as_ref().is_some_and(|d| d.fields.is_some());
        let change = match (&lost.lost.field, value) {
            (Some(field), Some(v)) => Change::Patch([(field.clone(), FieldOp::Set(v))].into()),
            (Some(field), None) => Change::Patch([(field.clone(), FieldOp::Delete)].into()),
            (None, v) => {
                let value = Value::from_json(v.unwrap_or(serde_json::Value::Null))
                    .map_err(WireError::Value)?;
                if !patched {
                    let reply = self.sync(key, &Versioned { value, stamp }).await?;
                    return Ok(reply);
                }
                Change::Whole(value)
            }
        };
        let reply = self.sync_fields(key, &FieldWrite { stamp, change }).await?;
        Ok(SyncReply {
            document: reply.document,
            decision: reply.report.decision,
        })
    }
}

fn document(document: Option<v1::Document>) -> Result<Document, Error> {
    Ok(Document::try_from(
        document.ok_or(WireError::Missing("document"))?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_endpoint_is_a_local_error_without_a_status_code() {
        let error = Client::connect("not a uri").await.unwrap_err();
        assert!(matches!(error, Error::InvalidEndpoint { .. }), "{error:?}");
        assert_eq!(error.code(), None);
        assert!(
            error.to_string().contains("not a server address"),
            "{error}"
        );
    }
}
