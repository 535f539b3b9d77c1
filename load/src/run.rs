//! Closed-loop workers: each sends one call, waits for the answer, sends
//! the next. Calls answered during the warm-up are not recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::caller::{self, Caller, Outcome};
use crate::report::{Recorder, Report};
use crate::workload::{Call, Workload};

/// Counters the progress line reads while the run goes on.
#[derive(Default)]
struct Live {
    calls: AtomicU64,
    errors: AtomicU64,
}

pub async fn run(
    callers: Vec<Caller>,
    workload: Workload,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Report {
    let workload = Arc::new(workload);
    let live = Arc::new(Live::default());
    let start = Instant::now() + warmup;
    let end = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|id| {
            let caller = callers[id % callers.len()].clone();
            let workload = workload.clone();
            let live = live.clone();
            tokio::spawn(worker(id, caller, workload, live, start, end))
        })
        .collect();
    let progress = tokio::spawn(progress(live.clone(), start, end));
    let mut total = Recorder::new();
    for worker in workers {
        total.merge(worker.await.expect("a worker does not panic"));
    }
    progress.abort();
    total.finish(concurrency, duration)
}

async fn worker(
    id: usize,
    mut caller: Caller,
    workload: Arc<Workload>,
    live: Arc<Live>,
    start: Instant,
    end: Instant,
) -> Recorder {
    let mut rng = StdRng::seed_from_u64(id as u64 * 7919 + 1);
    let mut me = workload.worker(id);
    let mut recorder = Recorder::new();
    loop {
        let call = workload.next(&mut me, &mut rng);
        let sent = Instant::now();
        if sent >= end {
            return recorder;
        }
        let (is_sync, outcome) = match &call {
            Call::Sync(key, write) => (true, caller::sync(&mut caller, key, write).await),
            Call::Get(key) => (false, caller::get(&mut caller, key).await),
        };
        let answered = Instant::now();
        // Only calls sent and answered inside the window count, so the
        // throughput is calls per second of the window.
        if sent >= start && answered <= end {
            if matches!(outcome, Outcome::Failed(_)) {
                live.errors.fetch_add(1, Ordering::Relaxed);
            }
            live.calls.fetch_add(1, Ordering::Relaxed);
            recorder.record(is_sync, answered - sent, outcome);
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
