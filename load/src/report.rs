//! What a run measured: latency histograms per call, errors by status
//! code, decisions by kind; printed as text or one JSON object.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::caller::Outcome;
use crate::verify::Verification;

/// One worker's record; merged into the report at the end.
pub struct Recorder {
    sync: Histogram<u64>,
    get: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    /// The first message seen per error code, to tell causes apart.
    error_examples: BTreeMap<String, String>,
    decisions: BTreeMap<&'static str, u64>,
    retries: u64,
}

/// A status's message and the chain of causes under it (a transport
/// error's cause says whether the connection went away).
fn describe(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        text.push_str(&format!(": {error}"));
        cause = error.source();
    }
    text
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            sync: histogram(),
            get: histogram(),
            errors: BTreeMap::new(),
            error_examples: BTreeMap::new(),
            decisions: BTreeMap::new(),
            retries: 0,
        }
    }

    /// A call answered UNAVAILABLE is being sent again.
    pub fn retried(&mut self) {
        self.retries += 1;
    }

    pub fn record(&mut self, is_sync: bool, latency: Duration, outcome: Outcome) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let histogram = if is_sync {
            &mut self.sync
        } else {
            &mut self.get
        };
        histogram.saturating_record(micros);
        match outcome {
            Outcome::Decided(decision) => *self.decisions.entry(decision).or_default() += 1,
            Outcome::Read => {}
            Outcome::Failed(status) => {
                let code = format!("{:?}", status.code());
                self.error_examples
                    .entry(code.clone())
                    .or_insert_with(|| describe(&status));
                *self.errors.entry(code).or_default() += 1;
            }
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.sync.add(&other.sync).expect("same bounds");
        self.get.add(&other.get).expect("same bounds");
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        for (code, example) in other.error_examples {
            self.error_examples.entry(code).or_insert(example);
        }
        for (decision, n) in other.decisions {
            *self.decisions.entry(decision).or_default() += n;
        }
        self.retries += other.retries;
    }

    pub fn finish(self, concurrency: usize, elapsed: Duration) -> Report {
        let seconds = elapsed.as_secs_f64();
        let calls = self.sync.len() + self.get.len();
        Report {
            concurrency,
            seconds,
            calls,
            throughput: calls as f64 / seconds,
            sync: Latency::of(&self.sync, seconds),
            get: Latency::of(&self.get, seconds),
            errors: self.errors,
            error_examples: self.error_examples,
            decisions: self
                .decisions
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            retries: self.retries,
            verify: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub calls: u64,
    /// Calls per second.
    pub throughput: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>, seconds: f64) -> Option<Latency> {
        let ms = |micros: u64| micros as f64 / 1000.0;
        (!h.is_empty()).then(|| Latency {
            calls: h.len(),
            throughput: h.len() as f64 / seconds,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub concurrency: usize,
    pub seconds: f64,
    /// Calls answered (with any status) while measuring.
    pub calls: u64,
    pub throughput: f64,
    pub sync: Option<Latency>,
    pub get: Option<Latency>,
    /// Calls answered with a status other than OK (NOT_FOUND of a Get is OK).
    pub errors: BTreeMap<String, u64>,
    /// One message per error code (the first seen), with its cause.
    pub error_examples: BTreeMap<String, String>,
    /// Sync decisions by kind.
    pub decisions: BTreeMap<String, u64>,
    /// Calls sent again after UNAVAILABLE (`--retry-unavailable`).
    pub retries: u64,
    /// The read-back of acknowledged writes (`--verify-writes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verification>,
}

impl Report {
    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).expect("a report serializes")
            );
            return;
        }
        println!(
            "{} calls in {:.1} s at concurrency {}: {:.0} calls/s",
            self.calls, self.seconds, self.concurrency, self.throughput
        );
        for (name, latency) in [("Sync", &self.sync), ("Get", &self.get)] {
            if let Some(l) = latency {
                println!(
                    "  {name:<4} {:>9} calls {:>9.0}/s  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                    l.calls, l.throughput, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
                );
            }
        }
        println!("  decisions: {:?}", self.decisions);
        println!("  errors:    {:?}", self.errors);
        for (code, example) in &self.error_examples {
            println!("    {code}: {example}");
        }
        println!("  retries:   {}", self.retries);
        if let Some(v) = &self.verify {
            println!(
                "  verified:  {} acknowledged writes to {} documents read back; {} lost, {} unreadable",
                v.acknowledged_writes, v.documents, v.writes_lost, v.unreadable
            );
            for example in &v.examples {
                println!("    {example}");
            }
        }
    }
}
