//! The calls the load makes, over the client crate's wire types, with an
//! optional bearer token on every request.

use settings_sync_client::wire;
use settings_sync_client::wire::settings_sync_client::SettingsSyncClient;
use settings_sync_protocol::{DocumentKey, Versioned};
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
    /// Any other status, by code name.
    Failed(tonic::Code),
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
        let channel = Channel::from_shared(endpoint.clone())?
            .tcp_nodelay(true)
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

pub async fn sync(caller: &mut Caller, key: &DocumentKey, write: &Versioned) -> Outcome {
    let request = wire::SyncRequest {
        key: Some(key.into()),
        value_json: write.value.canonical(),
        stamp: Some((&write.stamp).into()),
    };
    match caller.sync(request).await {
        Ok(reply) => match wire::Decision::try_from(reply.into_inner().decision) {
            Ok(wire::Decision::Applied) => Outcome::Decided("APPLIED"),
            Ok(wire::Decision::Stale) => Outcome::Decided("STALE"),
            Ok(wire::Decision::Unchanged) => Outcome::Decided("UNCHANGED"),
            _ => Outcome::Decided("UNKNOWN"),
        },
        Err(status) => Outcome::Failed(status.code()),
    }
}

pub async fn get(caller: &mut Caller, key: &DocumentKey) -> Outcome {
    let request = wire::GetRequest {
        key: Some(key.into()),
    };
    match caller.get(request).await {
        Ok(_) => Outcome::Read,
        Err(status) if status.code() == tonic::Code::NotFound => Outcome::Read,
        Err(status) => Outcome::Failed(status.code()),
    }
}
