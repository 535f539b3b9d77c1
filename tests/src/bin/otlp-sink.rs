//! `otlp-sink --listen ADDR --out FILE`: an OTLP/gRPC receiver that appends
//! every span it is sent to FILE as one JSON line (service, name, kind,
//! trace id, attributes), until SIGTERM or Ctrl-C. The pods' end to end
//! (`scripts/k8s-e2e.sh`) points the servers' exporter at it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use settings_sync_tests::otlp::Receiver;

#[derive(Parser)]
#[command(
    name = "otlp-sink",
    about = "Writes received OTLP spans as JSON lines."
)]
struct Args {
    /// Address to serve OTLP/gRPC on.
    #[arg(long, default_value = "127.0.0.1:4317")]
    listen: SocketAddr,
    /// File the spans are appended to.
    #[arg(long)]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)?;
    let receiver = Receiver::start_on(args.listen, Some(file)).await?;
    eprintln!("otlp-sink: listening on {}", receiver.addr);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
