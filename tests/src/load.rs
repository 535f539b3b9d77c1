//! Concurrent clients writing random stamps to a few documents, recording
//! the full history of every call for the linearizability checker.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use settings_sync_client::Client;
use settings_sync_protocol::{Decision, DocumentKey, Versioned};
use tonic::Code;

use crate::fixtures::write;

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub clients: usize,
    pub ops_per_client: usize,
    pub documents: usize,
    /// The n-th call of a client draws its clock from `n * 10 + 1 ..= n * 10 +
    /// clock_spread`: clients' clocks overlap (heavy contention on equal and
    /// near clocks) while documents keep changing through the run.
    pub clock_spread: u64,
    /// Also replay earlier writes (reordered) and send writes twice.
    pub duplicate_and_reorder: bool,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub enum Call {
    Sync(Versioned),
    Get,
}

#[derive(Clone, Debug)]
pub enum Outcome {
    Synced {
        decision: Decision,
        stored: Versioned,
    },
    Read(Option<Versioned>),
    /// A clear refusal: the call changed nothing.
    Rejected(Code),
    /// No answer (a replica died, the database was away): it may or may not
    /// have taken effect.
    Unknown(String),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub client: usize,
    pub key: DocumentKey,
    pub call: Call,
    pub invoked: Instant,
    pub completed: Instant,
    pub outcome: Outcome,
}

/// The value of a write is a function of its stamp, so two writes with one
/// stamp never carry different content.
fn random_write(rng: &mut StdRng, client: usize, call: usize, spread: u64) -> Versioned {
    let clock = call as u64 * 10 + rng.random_range(1..=spread);
    let writer = format!("c{client:02}");
    write(
        clock,
        &writer,
        serde_json::json!({"clock": clock, "writer": writer, "airports": clock % 7}),
    )
}

pub fn key_of(index: usize) -> DocumentKey {
    DocumentKey::parse("acme", &format!("user-{index}"), "alerts").expect("a valid key")
}

/// Runs the load against `endpoints` (clients fail over between them) and
/// returns every call made.
pub async fn run(endpoints: &[String], config: &LoadConfig) -> Vec<Op> {
    let tasks = (0..config.clients).map(|client| {
        let endpoints = endpoints.to_vec();
        let config = config.clone();
        tokio::spawn(async move { run_client(client, &endpoints, &config).await })
    });
    let mut history = Vec::new();
    for task in futures::future::join_all(tasks).await {
        history.extend(task.expect("a load client panicked"));
    }
    history
}

async fn run_client(client: usize, endpoints: &[String], config: &LoadConfig) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_mul(1000).wrapping_add(client as u64));
    let mut connections: Vec<Client> = endpoints
        .iter()
        .map(|e| Client::connect_lazy(e.clone(), Duration::from_secs(3)).expect("a valid endpoint"))
        .collect();
    let mut current = client % connections.len();
    let mut history = Vec::new();
    let mut sent: Vec<(DocumentKey, Versioned)> = Vec::new();
    for call_index in 0..config.ops_per_client {
        let key = key_of(rng.random_range(0..config.documents));
        let call = match rng.random_range(0..10) {
            0..2 => Call::Get,
            2 if config.duplicate_and_reorder && !sent.is_empty() => {
                // A replay of an earlier write, arriving out of order.
                let (old_key, old) = sent[rng.random_range(0..sent.len())].clone();
                history.extend(
                    call_until_answered(
                        client,
                        &mut connections,
                        &mut current,
                        old_key,
                        Call::Sync(old),
                    )
                    .await,
                );
                continue;
            }
            _ => Call::Sync(random_write(
                &mut rng,
                client,
                call_index,
                config.clock_spread,
            )),
        };
        if let Call::Sync(w) = &call {
            sent.push((key.clone(), w.clone()));
            if config.duplicate_and_reorder && rng.random_bool(0.2) {
                // The same request twice, concurrently (a retry racing the original).
                let mut twin = connections[(current + 1) % connections.len()].clone();
                let (twin_key, twin_call) = (key.clone(), call.clone());
                let duplicate =
                    tokio::spawn(async move { once(client, &mut twin, twin_key, twin_call).await });
                history.extend(
                    call_until_answered(client, &mut connections, &mut current, key, call).await,
                );
                history.push(duplicate.await.expect("the duplicate call"));
                continue;
            }
        }
        history
            .extend(call_until_answered(client, &mut connections, &mut current, key, call).await);
    }
    history
}

/// Makes the call, failing over to the next endpoint on no answer, until
/// one answers. Every attempt is recorded.
async fn call_until_answered(
    client: usize,
    connections: &mut [Client],
    current: &mut usize,
    key: DocumentKey,
    call: Call,
) -> Vec<Op> {
    let mut attempts = Vec::new();
    for attempt in 0..400 {
        let op = once(
            client,
            &mut connections[*current],
            key.clone(),
            call.clone(),
        )
        .await;
        let unanswered = matches!(op.outcome, Outcome::Unknown(_));
        attempts.push(op);
        if !unanswered {
            return attempts;
        }
        *current = (*current + 1) % connections.len();
        // Back off while a replica or the database comes back.
        tokio::time::sleep(Duration::from_millis(10 * (attempt % 10 + 1))).await;
    }
    attempts
}

async fn once(client: usize, connection: &mut Client, key: DocumentKey, call: Call) -> Op {
    let invoked = Instant::now();
    let outcome = match &call {
        Call::Sync(w) => match connection.sync(&key, w).await {
            Ok(reply) => Outcome::Synced {
                decision: reply.decision,
                stored: reply.document.state,
            },
            Err(error) => classify(error),
        },
        Call::Get => match connection.get(&key).await {
            Ok(document) => Outcome::Read(document.map(|d| d.state)),
            Err(error) => classify(error),
        },
    };
    Op {
        client,
        key,
        call,
        invoked,
        completed: Instant::now(),
        outcome,
    }
}

fn classify(error: settings_sync_client::Error) -> Outcome {
    match error.code() {
        Some(
            code @ (Code::InvalidArgument | Code::FailedPrecondition | Code::ResourceExhausted),
        ) => Outcome::Rejected(code),
        _ => Outcome::Unknown(error.to_string()),
    }
}
