//! Per-identity limits: a token bucket of requests and a cap on concurrent
//! Watch streams. Pure bookkeeping (no I/O, no clock of its own: callers
//! pass `Instant`s), so it is tested directly.
//!
//! An identity is the string [`crate::auth::Caller::limit_key`] names: the
//! token's tenant and subject, or the peer IP in `--insecure-no-auth` mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The `serve` flags about abuse limits.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct LimitArgs {
    /// Requests per second each identity may make on average (0: no limit).
    /// Each Watch counts once, when it starts.
    #[arg(
        long,
        env = "SETTINGS_SYNC_RATE_LIMIT_PER_SECOND",
        default_value_t = 0.0
    )]
    pub rate_limit_per_second: f64,
    /// Requests an identity may make in a burst above the average.
    #[arg(long, env = "SETTINGS_SYNC_RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,
    /// Watch streams one identity may hold open at once (0: no limit).
    #[arg(
        long,
        env = "SETTINGS_SYNC_MAX_WATCH_STREAMS_PER_IDENTITY",
        default_value_t = 100
    )]
    pub max_watch_streams_per_identity: usize,
    /// Largest gRPC request message accepted, in bytes (default 4 MiB: room
    /// for a BatchGet of 100 keys or one maximal document with headroom).
    #[arg(long, env = "SETTINGS_SYNC_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
}

/// A token bucket: holds up to `burst` tokens, refills at `rate` per second,
/// and each request takes one.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket: a new identity may burst at once.
    pub fn full(burst: u32, now: Instant) -> Self {
        TokenBucket {
            tokens: f64::from(burst),
            refilled_at: now,
        }
    }

    /// Takes one token if there is one. `now` earlier than the last call
    /// (clocks of other threads) adds nothing rather than panicking.
    pub fn try_take(&mut self, now: Instant, rate: f64, burst: u32) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * rate).min(f64::from(burst));
        self.refilled_at = self.refilled_at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True when the bucket has refilled completely: forgetting it changes
    /// nothing, because a new bucket starts full.
    fn is_full(&self, now: Instant, rate: f64, burst: u32) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens + elapsed.as_secs_f64() * rate >= f64::from(burst)
    }
}

/// One bucket per identity. Memory stays bounded: when the map grows past
/// `SWEEP_AT` entries, buckets that have refilled completely are dropped.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: u32,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

const SWEEP_AT: usize = 10_000;

impl RateLimiter {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: f64, burst: u32) -> Option<Self> {
        (rate > 0.0).then(|| RateLimiter {
            rate,
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    pub fn try_acquire(&self, identity: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SWEEP_AT && !buckets.contains_key(identity) {
            buckets.retain(|_, b| !b.is_full(now, self.rate, self.burst));
        }
        buckets
            .entry(identity.to_owned())
            .or_insert_with(|| TokenBucket::full(self.burst, now))
            .try_take(now, self.rate, self.burst)
    }
}

/// Counts open Watch streams per identity. A [`WatchPermit`] holds one
/// slot and gives it back when dropped, i.e. when the stream ends for any
/// reason (the client cancels, the connection drops, the server ends it).
#[derive(Debug, Default)]
pub struct WatchSlots {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

#[derive(Debug)]
pub struct WatchPermit {
    identity: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl WatchSlots {
    /// `max` 0: no limit (permits are still counted).
    pub fn new(max: usize) -> Self {
        WatchSlots {
            max,
            open: Arc::default(),
        }
    }

    /// A permit, or `None` when `identity` already holds `max` streams.
    pub fn try_acquire(&self, identity: &str) -> Option<WatchPermit> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(identity.to_owned()).or_default();
        if self.max != 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(WatchPermit {
            identity: identity.to_owned(),
            open: self.open.clone(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Streams `identity` holds open now.
    pub fn open(&self, identity: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(identity).copied().unwrap_or(0)
    }
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.identity) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.identity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_bucket_allows_a_burst_then_refuses() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(3, start);
        let taken = (0..5).filter(|_| bucket.try_take(start, 1.0, 3)).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn tokens_come_back_at_the_configured_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(1, start);
        assert!(bucket.try_take(start, 10.0, 1));
        assert!(!bucket.try_take(start + Duration::from_millis(50), 10.0, 1));
        assert!(bucket.try_take(start + Duration::from_millis(100), 10.0, 1));
    }

    #[test]
    fn an_idle_bucket_refills_only_up_to_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(2, start);
        let later = start + Duration::from_secs(3600);
        let taken = (0..10).filter(|_| bucket.try_take(later, 100.0, 2)).count();
        assert_eq!(taken, 2);
    }

    #[test]
    fn a_clock_going_backwards_adds_no_tokens() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::full(1, start);
        assert!(bucket.try_take(start, 1.0, 1));
        assert!(!bucket.try_take(start - Duration::from_secs(5), 1.0, 1));
    }

    #[test]
    fn identities_have_separate_buckets() {
        let limiter = RateLimiter::new(1.0, 1).unwrap();
        let now = Instant::now();
        assert!(limiter.try_acquire("acme/alice", now));
        assert!(!limiter.try_acquire("acme/alice", now));
        assert!(limiter.try_acquire("acme/bob", now));
    }

    #[test]
    fn a_rate_of_zero_means_no_limiter() {
        assert!(RateLimiter::new(0.0, 10).is_none());
    }

    #[test]
    fn watch_slots_are_capped_per_identity_and_released_on_drop() {
        let slots = WatchSlots::new(2);
        let first = slots.try_acquire("a").unwrap();
        let _second = slots.try_acquire("a").unwrap();
        assert!(slots.try_acquire("a").is_none());
        assert!(
            slots.try_acquire("b").is_some(),
            "other identities are not affected"
        );
        drop(first);
        assert_eq!(slots.open("a"), 1);
        assert!(slots.try_acquire("a").is_some());
    }

    #[test]
    fn a_zero_cap_counts_without_limit() {
        let slots = WatchSlots::new(0);
        let permits: Vec<_> = (0..1000).filter_map(|_| slots.try_acquire("a")).collect();
        assert_eq!(permits.len(), 1000);
        drop(permits);
        assert_eq!(slots.open("a"), 0);
    }
}
