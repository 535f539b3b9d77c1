//! Helpers shared by the end-to-end suites: throw-away databases and real
//! servers on port 0.
//!
//! - [`postgres`]: a fresh, empty database per test in the cluster that
//!   `scripts/postgres.sh` started (`SETTINGS_SYNC_TEST_DATABASE_URL`).
//! - [`server`]: the real server over a real socket, against either store.
//! - [`otlp`]: an OTLP receiver that keeps the spans and metrics it is sent.
//! - [`replicas`]: the server binary as separate processes (for `kill -9`).
//! - [`cluster`]: a PostgreSQL cluster of a test's own (for restarts).
//! - [`proxy`]: a TCP proxy that cuts connections on demand.
//! - [`load`]: concurrent clients recording a history of every call.
//! - [`linearizable`]: checks such a history and that nothing acknowledged was lost.
//! - [`tokens`]: bearer JWTs for servers started with `--jwt-secret-file`.
//! - [`certs`]: CAs, server and client certificates made at test time; TLS channels.

pub mod browsers;
pub mod causal;
pub mod certs;
pub mod cluster;
pub mod fixtures;
pub mod linearizable;
pub mod load;
pub mod otlp;
pub mod postgres;
pub mod proxy;
pub mod replicas;
pub mod sequences;
pub mod server;
pub mod simulation;
pub mod tokens;
pub mod watchers;

pub use server::{Backend, TestServer};

/// Runs one async test body against both stores: expands to a module with
/// a `sqlite` and a `postgres` test.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let server = $crate::TestServer::start($crate::Backend::Sqlite).await;
                ($body)(server).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let server = $crate::TestServer::start($crate::Backend::Postgres).await;
                ($body)(server).await;
            }
        }
    };
}
