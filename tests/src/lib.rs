//! Helpers shared by the end-to-end suites: throw-away databases and real
//! servers on port 0.
//!
//! - [`postgres`]: a fresh, empty database per test in the cluster that
//!   `scripts/postgres.sh` started (`SETTINGS_SYNC_TEST_DATABASE_URL`).
//! - [`server`]: the real server over a real socket, against either store.
//! - [`fixtures`]: small constructors (keys, stamps, writes, status checks).
//! - [`otlp`]: an OTLP receiver that keeps the spans and metrics it is sent.
//! - [`replicas`]: the server binary as separate processes (for `kill -9`).
//! - [`cluster`]: a PostgreSQL cluster of a test's own (for restarts).
//! - [`proxy`]: a TCP proxy that cuts connections on demand.
//! - [`load`]: concurrent clients recording a history of every call.
//! - [`linearizable`]: checks such a history and that nothing acknowledged was lost.
//! - [`watchers`]: Watch streams that record what they see.
//! - [`tokens`]: bearer JWTs for servers started with `--jwt-secret-file`.
//! - [`grpc_web`]: gRPC-Web calls over HTTP/1.1, as a browser makes them.
//! - [`certs`]: CAs, server and client certificates made at test time; TLS channels.
//!
//! The convergence property tests:
//! - [`sequences`]: random sequences of browser events, printed as a story.
//! - [`browsers`]: simulated browsers, and the planted bugs they must catch.
//! - [`causal`]: causal bookkeeping and the checks of the properties.
//! - [`simulation`]: runs a sequence against real servers, under proptest.
//! - [`field_browsers`], [`field_simulation`]: the same in the opt-in
//!   per-field mode: patches and whole writes of per-field browsers, and
//!   the per-field checks.

pub mod browsers;
pub mod causal;
pub mod certs;
pub mod cluster;
pub mod field_browsers;
pub mod field_simulation;
pub mod fixtures;
pub mod grpc_web;
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
