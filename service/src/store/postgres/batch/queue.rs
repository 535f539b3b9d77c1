//! A write-combining queue: callers send jobs down a channel; one task
//! groups them into batches and runs each batch on its own task.
//!
//! A batch leaves when it is full (`max` jobs), when its window is over,
//! or at once when no other batch is running: an idle database is best
//! served immediately, so one lone caller never waits for the window.
//! While batches are running, waiting callers pile up in the channel and
//! the next batch takes them all — group commit without a timer at low load.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::BatchConfig;

/// The sending half; the grouping task ends when every sender is gone.
#[derive(Debug)]
pub(super) struct Queue<J> {
    tx: mpsc::UnboundedSender<J>,
}

impl<J: Send + 'static> Queue<J> {
    /// Starts the grouping task on the current Tokio runtime. `run` gets
    /// each batch (never empty) and must answer every job in it.
    pub(super) fn spawn<F, Fut>(config: BatchConfig, run: F) -> Self
    where
        F: Fn(Vec<J>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // Unbounded is safe: every job is a caller waiting for its reply,
        // so the queue never holds more than the requests in flight.
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(group(rx, config, Arc::new(run)));
        Queue { tx }
    }

    /// Hands `job` to the grouping task. Gives the job back if the task is
    /// gone (the runtime is shutting down).
    pub(super) fn send(&self, job: J) -> Result<(), J> {
        self.tx.send(job).map_err(|e| e.0)
    }
}

async fn group<J, F, Fut>(mut rx: mpsc::UnboundedReceiver<J>, config: BatchConfig, run: Arc<F>)
where
    J: Send + 'static,
    F: Fn(Vec<J>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let max = config.max.max(1);
    let in_flight = config.in_flight.max(1);
    let permits = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = rx.recv().await {
        // Jobs keep arriving while this waits for a free slot; the batch
        // formed afterwards takes them all.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut jobs = vec![first];
        drain(&mut rx, &mut jobs, max);
        let others_running = permits.available_permits() + 1 < in_flight;
        if others_running && jobs.len() < max && !config.window.is_zero() {
            let deadline = Instant::now() + config.window;
            while jobs.len() < max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(job)) => {
                        jobs.push(job);
                        drain(&mut rx, &mut jobs, max);
                    }
                    // Window over, or every sender gone: run what we have.
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let run = run.clone();
        tokio::spawn(async move {
            run(jobs).await;
            drop(permit);
        });
    }
}

/// Moves the jobs already waiting into `jobs`, up to `max` in all.
fn drain<J>(rx: &mut mpsc::UnboundedReceiver<J>, jobs: &mut Vec<J>, max: usize) {
    while jobs.len() < max {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}
