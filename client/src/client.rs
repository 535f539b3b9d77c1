//! Typed calls over one gRPC channel.

use settings_sync_proto::convert::WireError;
use settings_sync_proto::v1;
use settings_sync_proto::v1::settings_sync_client::SettingsSyncClient;
use settings_sync_protocol::{Decision, Document, DocumentKey, Versioned};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::auth::{CallInterceptor, InvalidToken};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("{:?}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("the server sent an invalid response: {0}")]
    InvalidResponse(#[from] WireError),
    #[error(transparent)]
    InvalidToken(#[from] InvalidToken),
}

impl Error {
    /// The gRPC status code, if the server answered with one.
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPage {
    pub documents: Vec<Document>,
    /// Pass to the next `query` call; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// The channel every call goes through: it adds the caller's W3C trace
/// context (see [`crate::trace`]) and bearer token, if any (see [`crate::auth`]).
pub type TracedChannel = InterceptedService<Channel, CallInterceptor>;

/// A cheap-to-clone handle on one channel.
#[derive(Clone, Debug)]
pub struct Client {
    inner: SettingsSyncClient<TracedChannel>,
    calls: CallInterceptor,
}

impl Client {
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        let channel = Channel::from_shared(endpoint.into())
            .map_err(|e| Error::Status(tonic::Status::invalid_argument(e.to_string())))?
            .connect()
            .await?;
        Ok(Self::from_channel(channel))
    }

    /// Connects on first use and reconnects by itself after the server or
    /// the network went away; each call fails after `timeout`.
    pub fn connect_lazy(
        endpoint: impl Into<String>,
        timeout: std::time::Duration,
    ) -> Result<Self, Error> {
        let channel = Channel::from_shared(endpoint.into())
            .map_err(|e| Error::Status(tonic::Status::invalid_argument(e.to_string())))?
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
        };
        let reply = self.inner.sync(request).await?.into_inner();
        let decision = match v1::Decision::try_from(reply.decision) {
            Ok(v1::Decision::Applied) => Decision::Applied,
            Ok(v1::Decision::Stale) => Decision::Stale,
            Ok(v1::Decision::Unchanged) => Decision::Unchanged,
            _ => return Err(Error::InvalidResponse(WireError::Missing("decision"))),
        };
        Ok(SyncReply {
            document: document(reply.document)?,
            decision,
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

fn document(document: Option<v1::Document>) -> Result<Document, Error> {
    Ok(Document::try_from(
        document.ok_or(WireError::Missing("document"))?,
    )?)
}
