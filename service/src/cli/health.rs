//! `settings-sync health`: asks a server's standard gRPC health service
//! (`grpc.health.v1.Health/Check`) whether it serves, as `grpc-health-probe`
//! would; the chart's `helm test` runs it from the server's own image.

use clap::Args;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{CliError, ServerArg};

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// The service asked about; the empty default is the whole server.
    #[arg(long, default_value = "")]
    pub service: String,
}

pub async fn health(args: HealthArgs) -> Result<(), CliError> {
    let endpoint = args.server.server.clone();
    let channel = Channel::from_shared(endpoint.clone())
        .map_err(|e| CliError::usage(format!("{endpoint} is not a server URL: {e}")))?
        .connect()
        .await
        .map_err(|e| CliError::Unreachable(format!("{endpoint}: {e}")))?;
    let request = HealthCheckRequest {
        service: args.service,
    };
    let reply = HealthClient::new(channel)
        .check(request)
        .await?
        .into_inner();
    let status = ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown);
    println!("{}", serde_json::json!({ "status": status.as_str_name() }));
    match status {
        ServingStatus::Serving => Ok(()),
        other => Err(CliError::Unreachable(format!(
            "{endpoint} answers {}",
            other.as_str_name()
        ))),
    }
}
