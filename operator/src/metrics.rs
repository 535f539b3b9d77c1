//! Prometheus metrics of the reconcile loop, served as text on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub reconciliations: Counter,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            reconciliations: Counter::default(),
            failures: Family::default(),
            // 5 ms .. ~10 s: a reconcile is a handful of API calls.
            duration: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            leader: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("settings_sync_operator");
        r.register(
            "reconciliations",
            "Reconciliations started",
            metrics.reconciliations.clone(),
        );
        r.register(
            "reconcile_failures",
            "Reconciliations that failed, by error kind",
            metrics.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time one reconciliation took",
            metrics.duration.clone(),
        );
        r.register(
            "leader",
            "1 while this replica is the elected leader",
            metrics.leader.clone(),
        );
        metrics
    }

    pub fn observe(&self, took: Duration, error: Option<&'static str>) {
        self.reconciliations.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(error) = error {
            self.failures
                .get_or_create(&ErrorLabels {
                    error: error.into(),
                })
                .inc();
        }
    }
}

/// The registry as Prometheus text.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciliations_failures_and_durations_appear_in_the_text() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.observe(Duration::from_millis(20), None);
        metrics.observe(Duration::from_millis(30), Some("kube"));
        let text = encode(&registry).unwrap();
        assert!(text.contains("settings_sync_operator_reconciliations_total 2"));
        assert!(text.contains("settings_sync_operator_reconcile_failures_total{error=\"kube\"} 1"));
        assert!(text.contains("settings_sync_operator_reconcile_duration_seconds_count 2"));
    }
}
