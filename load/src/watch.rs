//! `--watch-streams N`: opens N idle Watch streams on one server and
//! reports how much its resident memory grew per stream.
//!
//! A stream counts as open once its first message (the Progress sent when
//! it caught up) arrives. RSS comes from `/proc/<pid>/status` (`VmRSS`),
//! read before the first stream opens and after the last one did.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use settings_sync_client::wire;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::Args;
use crate::caller;

/// Streams being opened at once: each open reads the store twice, so a
/// herd of 10,000 would only measure the pool's queue.
const OPENING_AT_ONCE: usize = 256;

#[derive(Debug, Serialize)]
pub struct WatchReport {
    pub streams_requested: usize,
    pub streams_open: usize,
    pub streams_failed: usize,
    pub connections: usize,
    pub seconds_to_open: f64,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
    pub bytes_per_stream: Option<f64>,
}

impl WatchReport {
    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).expect("a report serializes")
            );
            return;
        }
        println!(
            "{} of {} idle Watch streams open over {} connections in {:.1} s ({} failed)",
            self.streams_open,
            self.streams_requested,
            self.connections,
            self.seconds_to_open,
            self.streams_failed
        );
        if let (Some(before), Some(after), Some(per)) = (
            self.server_rss_before_kib,
            self.server_rss_after_kib,
            self.bytes_per_stream,
        ) {
            println!(
                "  server RSS {before} KiB -> {after} KiB: {:.1} KiB per stream",
                per / 1024.0
            );
        }
    }
}

/// The resident set of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
}

pub async fn idle_streams(
    args: &Args,
    streams: usize,
    connections: usize,
    token: Option<&str>,
) -> anyhow::Result<WatchReport> {
    let endpoint = args.endpoints[..1].to_vec();
    let callers = caller::connect_all(&endpoint, connections, token).await?;
    let before = args.server_pid.map(rss_kib).transpose()?;
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let opening = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    // Every stream is held until this flips.
    let (release, held) = watch::channel(false);
    let started = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|i| {
            let mut caller = callers[i % callers.len()].clone();
            let request = wire::WatchRequest {
                tenant: args.watch_tenant.clone(),
                ..Default::default()
            };
            let (opened, failed, opening) = (opened.clone(), failed.clone(), opening.clone());
            let mut held = held.clone();
            tokio::spawn(async move {
                let permit = opening.acquire_owned().await;
                let mut stream = match caller.watch(request).await {
                    Ok(response) => response.into_inner(),
                    Err(_) => return failed.fetch_add(1, Ordering::Relaxed),
                };
                match stream.message().await {
                    Ok(Some(_)) => opened.fetch_add(1, Ordering::Relaxed),
                    _ => return failed.fetch_add(1, Ordering::Relaxed),
                };
                drop(permit);
                // Keep reading (progress messages) so flow control never
                // stalls the stream, until the run ends.
                loop {
                    tokio::select! {
                        _ = held.changed() => return 0,
                        message = stream.message() => if !matches!(message, Ok(Some(_))) {
                            return failed.fetch_add(1, Ordering::Relaxed);
                        },
                    }
                }
            })
        })
        .collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let (open, bad) = (
            opened.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
        );
        eprintln!(
            "[{:>4.0} s] {open} streams open, {bad} failed",
            started.elapsed().as_secs_f64()
        );
        if open + bad >= streams {
            break;
        }
    }
    let seconds_to_open = started.elapsed().as_secs_f64();
    // Let the server settle (buffers of the last opens freed) before reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = args.server_pid.map(rss_kib).transpose()?;
    let streams_open = opened.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.watch_hold.max(0.0))).await;
    let _ = release.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let bytes_per_stream = match (before, after) {
        (Some(b), Some(a)) if streams_open > 0 => {
            Some(a.saturating_sub(b) as f64 * 1024.0 / streams_open as f64)
        }
        _ => None,
    };
    Ok(WatchReport {
        streams_requested: streams,
        streams_open,
        streams_failed: failed.load(Ordering::Relaxed),
        connections,
        seconds_to_open,
        server_rss_before_kib: before,
        server_rss_after_kib: after,
        bytes_per_stream,
    })
}
