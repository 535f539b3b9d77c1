//! The gRPC ceiling of this machine: the settings-sync service surface with
//! `Get` answered from memory (no auth, no store, no tracing), so that
//! `settings-sync-load --reads 1` against it measures HTTP/2 and tonic
//! alone. scripts/bench.sh runs it next to the real server; the gap
//! between the two is what the service itself costs.
//!
//!   cargo run --release -p settings-sync-load --example grpc_ceiling -- 127.0.0.1:50052

use std::pin::Pin;

use futures::Stream;
use settings_sync_proto::v1;
use settings_sync_proto::v1::settings_sync_server::{SettingsSync, SettingsSyncServer};
use tonic::{Request, Response, Status};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers every Get with one fixed document shaped like the benchmark's.
struct Fixed;

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl SettingsSync for Fixed {
    async fn sync(
        &self,
        _: Request<v1::SyncRequest>,
    ) -> Result<Response<v1::SyncResponse>, Status> {
        Err(Status::unimplemented("the ceiling server only answers Get"))
    }

    async fn get(
        &self,
        request: Request<v1::GetRequest>,
    ) -> Result<Response<v1::GetResponse>, Status> {
        let key = request.into_inner().key;
        Ok(Response::new(v1::GetResponse {
            document: Some(v1::Document {
                key,
                value_json: r#"{"fontSize":14,"theme":"dark"}"#.into(),
                stamp: Some(v1::Stamp {
                    clock: 1,
                    writer: "load".into(),
                }),
                revision: 1,
                // A document without it is malformed: the load tool would
                // count every answer as an error.
                updated_at: Some(std::time::SystemTime::UNIX_EPOCH.into()),
                ..Default::default()
            }),
        }))
    }

    async fn batch_get(
        &self,
        _: Request<v1::BatchGetRequest>,
    ) -> Result<Response<v1::BatchGetResponse>, Status> {
        Err(Status::unimplemented("the ceiling server only answers Get"))
    }

    async fn query(
        &self,
        _: Request<v1::QueryRequest>,
    ) -> Result<Response<v1::QueryResponse>, Status> {
        Err(Status::unimplemented("the ceiling server only answers Get"))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, _: Request<v1::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        Err(Status::unimplemented("the ceiling server only answers Get"))
    }

    async fn list_overrides(
        &self,
        _: Request<v1::ListOverridesRequest>,
    ) -> Result<Response<v1::ListOverridesResponse>, Status> {
        Err(Status::unimplemented("the ceiling server only answers Get"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50052".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(SettingsSyncServer::new(Fixed))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
