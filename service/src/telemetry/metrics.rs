//! The instruments a dashboard charts, from the global meter provider:
//! no-ops unless [`super::init`] started an OTLP metrics export.
//!
//! | instrument | kind | attributes |
//! |---|---|---|
//! | `settings_sync.sync.decisions` | counter | `decision` |
//! | `settings_sync.sync.duration` (s) | histogram | `decision` |
//! | `settings_sync.watch.active` | up-down counter | |
//! | `settings_sync.store.batch_fallbacks` | counter | `kind` (sync, get), `cause` |
//! | `db.client.connection.count` | observable gauge | `db.client.connection.state`, `db.system.name` |
//! | `db.client.connection.max` | observable gauge | `db.system.name` |

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, UpDownCounter};

use super::db::DbSystem;

/// Bucket bounds of the sync latency, in seconds: a merge is one or two
/// statements, so the interesting range is a millisecond to a second.
const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

struct Instruments {
    decisions: Counter<u64>,
    sync_duration: Histogram<f64>,
    watch_streams: UpDownCounter<i64>,
    batch_fallbacks: Counter<u64>,
}

/// Created on first use, which is after [`super::init`] installed the
/// provider (an instrument made before that would stay a no-op).
fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("settings-sync");
        Instruments {
            decisions: meter
                .u64_counter("settings_sync.sync.decisions")
                .with_description("Sync requests by decision: APPLIED, STALE, UNCHANGED, REJECTED")
                .build(),
            sync_duration: meter
                .f64_histogram("settings_sync.sync.duration")
                .with_unit("s")
                .with_description(
                    "Time to decide and store a Sync, by decision (ERROR: no decision)",
                )
                .with_boundaries(LATENCY_BOUNDS.to_vec())
                .build(),
            watch_streams: meter
                .i64_up_down_counter("settings_sync.watch.active")
                .with_description("Open Watch streams")
                .build(),
            batch_fallbacks: meter
                .u64_counter("settings_sync.store.batch_fallbacks")
                .with_description(
                    "Batches whose combined statement failed, so each request ran alone",
                )
                .build(),
        }
    })
}

pub fn decision(decision: &'static str) {
    instruments()
        .decisions
        .add(1, &[KeyValue::new("decision", decision)]);
}

pub fn sync_duration(seconds: f64, decision: &'static str) {
    instruments()
        .sync_duration
        .record(seconds, &[KeyValue::new("decision", decision)]);
}

/// Counts a batch that fell back to one statement per request.
pub fn batch_fallback(kind: &'static str, cause: &'static str) {
    instruments().batch_fallbacks.add(
        1,
        &[KeyValue::new("kind", kind), KeyValue::new("cause", cause)],
    );
}

/// Counts one open Watch stream for as long as it lives.
#[derive(Debug)]
pub struct WatchStreamGauge(());

impl WatchStreamGauge {
    pub fn open() -> Self {
        instruments().watch_streams.add(1, &[]);
        WatchStreamGauge(())
    }
}

impl Drop for WatchStreamGauge {
    fn drop(&mut self) {
        instruments().watch_streams.add(-1, &[]);
    }
}

/// Reports the pool's connections in use and idle at each collection.
pub fn observe_pool<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, system: DbSystem) {
    let meter = opentelemetry::global::meter("settings-sync");
    let counted = pool.clone();
    meter
        .u64_observable_gauge("db.client.connection.count")
        .with_description("Database connections, by state (idle, used)")
        .with_callback(move |observer| {
            let size = u64::from(counted.size());
            let idle = u64::try_from(counted.num_idle()).unwrap_or(size);
            for (state, count) in [("idle", idle), ("used", size.saturating_sub(idle))] {
                let attributes = [
                    KeyValue::new("db.client.connection.state", state),
                    KeyValue::new("db.system.name", system.name()),
                ];
                observer.observe(count, &attributes);
            }
        })
        .build();
    let max = u64::from(pool.options().get_max_connections());
    meter
        .u64_observable_gauge("db.client.connection.max")
        .with_description("Largest number of database connections the pool opens")
        .with_callback(move |observer| {
            observer.observe(max, &[KeyValue::new("db.system.name", system.name())]);
        })
        .build();
}
