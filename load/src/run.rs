//! Closed-loop workers: each sends one call, waits for the answer, sends
//! the next. Calls answered during the warm-up are not recorded; writes
//! acknowledged at any time are kept for `--verify-writes`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::caller::{self, Caller, Outcome};
use crate::report::{Recorder, Report};
use crate::verify::Acknowledged;
use crate::workload::{Call, Workload};

/// How long a worker waits before sending a call answered UNAVAILABLE
/// again: long enough not to spin while a pod restarts.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

pub struct Plan {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub retry_unavailable: bool,
    pub call_timeout: Duration,
    /// Turns true to end the run before its duration (SIGINT, SIGTERM).
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// Counters the progress line reads while the run goes on.
#[derive(Default)]
struct Live {
    calls: AtomicU64,
    errors: AtomicU64,
}

pub async fn run(callers: Vec<Caller>, workload: Workload, plan: Plan) -> (Report, Acknowledged) {
    let workload = Arc::new(workload);
    let plan = Arc::new(plan);
    let live = Arc::new(Live::default());
    let start = Instant::now() + plan.warmup;
    let end = start + plan.duration;
    let workers: Vec<_> = (0..plan.concurrency)
        .map(|id| {
            let worker = Worker {
                id,
                caller: callers[id % callers.len()].clone(),
                workload: workload.clone(),
                plan: plan.clone(),
                live: live.clone(),
            };
            tokio::spawn(worker.run(start, end))
        })
        .collect();
    let progress = tokio::spawn(progress(live.clone(), start, end));
    let mut total = Recorder::new();
    let mut acknowledged = Acknowledged::default();
    for worker in workers {
        let (recorder, acks) = worker.await.expect("a worker does not panic");
        total.merge(recorder);
        acknowledged.merge(acks);
    }
    progress.abort();
    // A run stopped early measured until it stopped.
    let measured = Instant::now().min(end).saturating_duration_since(start);
    (total.finish(plan.concurrency, measured), acknowledged)
}

struct Worker {
    id: usize,
    caller: Caller,
    workload: Arc<Workload>,
    plan: Arc<Plan>,
    live: Arc<Live>,
}

impl Worker {
    async fn run(mut self, start: Instant, end: Instant) -> (Recorder, Acknowledged) {
        let mut rng = StdRng::seed_from_u64(self.id as u64 * 7919 + 1);
        let mut me = self.workload.worker(self.id);
        let mut recorder = Recorder::new();
        let mut acknowledged = Acknowledged::default();
        loop {
            let call = self.workload.next(&mut me, &mut rng);
            loop {
                let sent = Instant::now();
                if sent >= end || *self.plan.stop.borrow() {
                    return (recorder, acknowledged);
                }
                let (is_sync, outcome) = self.send(&call).await;
                let answered = Instant::now();
                if let (Call::Sync(key, write), Outcome::Decided("APPLIED" | "UNCHANGED")) =
                    (&call, &outcome)
                {
                    acknowledged.record(key, &write.stamp);
                }
                let again = self.plan.retry_unavailable
                    && matches!(&outcome, Outcome::Failed(status) if status.code() == tonic::Code::Unavailable);
                // Only calls sent and answered inside the window count, so
                // the throughput is calls per second of the window.
                if sent >= start && answered <= end {
                    if matches!(outcome, Outcome::Failed(_)) {
                        self.live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    self.live.calls.fetch_add(1, Ordering::Relaxed);
                    recorder.record(is_sync, answered - sent, outcome);
                }
                if !again {
                    break;
                }
                recorder.retried();
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    async fn send(&mut self, call: &Call) -> (bool, Outcome) {
        let timeout = self.plan.call_timeout;
        match call {
            Call::Sync(key, write) => (
                true,
                caller::sync(&mut self.caller, key, write, timeout).await,
            ),
            Call::Patch {
                key,
                stamp,
                field,
                value,
            } => (
                true,
                caller::patch(&mut self.caller, key, stamp, field, value, timeout).await,
            ),
            Call::Get(key) => (false, caller::get(&mut self.caller, key, timeout).await),
        }
    }
}

/// One line a second on stderr: calls in the last second, total, errors.
async fn progress(live: Arc<Live>, start: Instant, end: Instant) {
    tokio::time::sleep_until(start).await;
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut last = 0;
    loop {
        let now = tick.tick().await;
        if now > end + Duration::from_millis(500) {
            return;
        }
        let calls = live.calls.load(Ordering::Relaxed);
        eprintln!(
            "[{:>4.0} s] {:>8} calls/s  total {:>9}  errors {}",
            (now - start).as_secs_f64(),
            calls - last,
            calls,
            live.errors.load(Ordering::Relaxed)
        );
        last = calls;
    }
}
