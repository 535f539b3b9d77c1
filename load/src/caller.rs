//! The calls the load makes, over the client crate's wire types, with an
//! optional bearer token on every request.

use settings_sync_client::wire::settings_sync_client::SettingsSyncClient;
use settings_sync_client::{unavailable_if_connection_lost, wire};
use std::future::Future;
use std::time::Duration;

use settings_sync_protocol::{Document, DocumentKey, Stamp, Versioned};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Adds `authorization: Bearer …` when a token was given.
#[derive(Clone, Debug)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Caller = SettingsSyncClient<InterceptedService<Channel, Bearer>>;

/// How a call ended, as the report counts it.
pub enum Outcome {
    /// A Sync answered with this decision.
    Decided(&'static str),
    /// A Get answered (found or NOT_FOUND: both are answers).
    Read,
    /// Any other status.
    Failed(Status),
}

/// `connections` channels, spread round-robin over `endpoints`.
pub async fn connect_all(
    endpoints: &[String],
    connections: usize,
    token: Option<&str>,
) -> anyhow::Result<Vec<Caller>> {
    let bearer = match token {
        Some(token) => Some(MetadataValue::try_from(format!("Bearer {token}"))?),
        None => None,
    };
    let mut callers = Vec::with_capacity(connections);
    for i in 0..connections {
        let endpoint = &endpoints[i % endpoints.len()];
        // Pings find a peer that vanished without closing the connection
        // (a pod killed with its network namespace) within seconds.
        let channel = Channel::from_shared(endpoint.clone())?
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(3))
            .keep_alive_while_idle(true)
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("connecting to {endpoint}: {e}"))?;
        callers.push(SettingsSyncClient::with_interceptor(
            channel,
            Bearer(bearer.clone()),
        ));
    }
    Ok(callers)
}

/// A call that takes longer than `timeout` ends DEADLINE_EXCEEDED here,
/// whatever the server does; a lost connection is UNAVAILABLE.
async fn within<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("the load's --call-timeout")))
        .map_err(unavailable_if_connection_lost)
}

pub async fn sync(
    caller: &mut Caller,
    key: &DocumentKey,
    write: &Versioned,
    timeout: Duration,
) -> Outcome {
    let request = wire::SyncRequest {
        key: Some(key.into()),
        value_json: write.value.canonical(),
        stamp: Some((&write.stamp).into()),
        ..Default::default()
    };
    decided(within(timeout, caller.sync(request)).await)
}

/// A per-field write of one field, as `--patch-fields` sends it.
pub async fn patch(
    caller: &mut Caller,
    key: &DocumentKey,
    stamp: &Stamp,
    field: &str,
    value_json: &str,
    timeout: Duration,
) -> Outcome {
    let request = wire::SyncRequest {
        key: Some(key.into()),
        stamp: Some(stamp.into()),
        patch: Some(wire::FieldPatch {
            edits: vec![wire::FieldEdit {
                field: field.to_owned(),
                op: Some(wire::field_edit::Op::SetJson(value_json.to_owned())),
            }],
        }),
        ..Default::default()
    };
    decided(within(timeout, caller.sync(request)).await)
}

fn decided(answer: Result<tonic::Response<wire::SyncResponse>, Status>) -> Outcome {
    match answer {
        Ok(reply) => match wire::Decision::try_from(reply.into_inner().decision) {
            Ok(wire::Decision::Applied) => Outcome::Decided("APPLIED"),
            Ok(wire::Decision::Stale) => Outcome::Decided("STALE"),
            Ok(wire::Decision::Unchanged) => Outcome::Decided("UNCHANGED"),
            _ => Outcome::Decided("UNKNOWN"),
        },
        Err(status) => Outcome::Failed(status),
    }
}

pub async fn get(caller: &mut Caller, key: &DocumentKey, timeout: Duration) -> Outcome {
    match read(caller, key, timeout).await {
        Ok(_) => Outcome::Read,
        Err(status) => Outcome::Failed(status),
    }
}

/// The document as stored, or `None` when the server has none.
pub async fn read(
    caller: &mut Caller,
    key: &DocumentKey,
    timeout: Duration,
) -> Result<Option<Document>, Status> {
    let request = wire::GetRequest {
        key: Some(key.into()),
    };
    match within(timeout, caller.get(request)).await {
        Ok(reply) => match reply.into_inner().document {
            Some(document) => Document::try_from(document)
                .map(Some)
                .map_err(|e| Status::internal(format!("the server sent a bad document: {e}"))),
            None => Err(Status::internal("a Get answer without its document")),
        },
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        Err(status) => Err(status),
    }
}
