//! `--verify-writes`: what the server acknowledged must still be there.
//!
//! A write is acknowledged when its Sync answered APPLIED or UNCHANGED
//! (a retry of a write that had applied). Afterwards each such document is
//! read back: it must hold the acknowledged stamp or a larger one, and its
//! value must be the one written with the stamp it holds (values carry
//! their stamp, see [`crate::workload`]). Anything else is a lost write.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use settings_sync_protocol::{Document, DocumentKey, Stamp};

use crate::caller::{self, Caller};
use crate::workload;

/// Reads in flight at once during the read-back.
const READERS: usize = 16;
/// How long a read-back keeps retrying UNAVAILABLE before giving up.
const READ_PATIENCE: Duration = Duration::from_secs(30);
/// Lost writes listed by name in the report; the count covers all.
const EXAMPLES: usize = 10;

/// The largest acknowledged stamp per document, and how many writes.
#[derive(Default)]
pub struct Acknowledged {
    latest: HashMap<DocumentKey, Stamp>,
    writes: u64,
}

impl Acknowledged {
    pub fn record(&mut self, key: &DocumentKey, stamp: &Stamp) {
        self.writes += 1;
        match self.latest.get_mut(key) {
            Some(known) if *known >= *stamp => {}
            Some(known) => *known = stamp.clone(),
            None => {
                self.latest.insert(key.clone(), stamp.clone());
            }
        }
    }

    pub fn merge(&mut self, other: Acknowledged) {
        let writes = self.writes + other.writes;
        for (key, stamp) in other.latest {
            self.record(&key, &stamp);
        }
        self.writes = writes;
    }
}

#[derive(Debug, Serialize)]
pub struct Verification {
    pub acknowledged_writes: u64,
    pub documents: u64,
    /// Documents whose acknowledged write is gone.
    pub writes_lost: u64,
    /// Documents that could not be read back (any status but OK/NOT_FOUND).
    pub unreadable: u64,
    pub examples: Vec<String>,
}

/// Why a document fails the check, if it does.
fn judge(acknowledged: &Stamp, stored: Option<&Document>) -> Option<String> {
    let Some(document) = stored else {
        return Some(format!(
            "acknowledged {acknowledged}, but the document is gone"
        ));
    };
    let held = &document.state.stamp;
    if held < acknowledged {
        return Some(format!("acknowledged {acknowledged}, but it holds {held}"));
    }
    match workload::stamp_in(&document.state.value) {
        Some(written) if written == *held => None,
        written => Some(format!(
            "holds {held} with the value written at {written:?}"
        )),
    }
}

pub async fn read_back(
    callers: &[Caller],
    acknowledged: Acknowledged,
    timeout: Duration,
) -> Verification {
    let documents = acknowledged.latest.len() as u64;
    let checks = acknowledged
        .latest
        .into_iter()
        .enumerate()
        .map(|(i, (key, stamp))| {
            let mut caller = callers[i % callers.len()].clone();
            async move {
                let started = tokio::time::Instant::now();
                loop {
                    match caller::read(&mut caller, &key, timeout).await {
                        Ok(stored) => {
                            return Ok(
                                judge(&stamp, stored.as_ref()).map(|why| format!("{key:?}: {why}"))
                            );
                        }
                        Err(status)
                            if status.code() == tonic::Code::Unavailable
                                && started.elapsed() < READ_PATIENCE =>
                        {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(status) => return Err(format!("{key:?}: {status}")),
                    }
                }
            }
        });
    let results: Vec<_> = futures::stream::iter(checks)
        .buffer_unordered(READERS)
        .collect()
        .await;
    let mut verification = Verification {
        acknowledged_writes: acknowledged.writes,
        documents,
        writes_lost: 0,
        unreadable: 0,
        examples: Vec::new(),
    };
    for result in results {
        let problem = match result {
            Ok(None) => continue,
            Ok(Some(lost)) => {
                verification.writes_lost += 1;
                lost
            }
            Err(unreadable) => {
                verification.unreadable += 1;
                format!("unreadable: {unreadable}")
            }
        };
        if verification.examples.len() < EXAMPLES {
            verification.examples.push(problem);
        }
    }
    verification
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use settings_sync_protocol::{Clock, Versioned, WriterId};

    use super::*;

    fn stamp(clock: u64, writer: &str) -> Stamp {
        Stamp::new(Clock::new(clock).unwrap(), WriterId::parse(writer).unwrap())
    }

    fn stored(written: &Stamp, held: &Stamp) -> Document {
        Document {
            key: DocumentKey::parse("t", "o", "settings").unwrap(),
            state: Versioned {
                value: workload::stamped_value(written),
                stamp: held.clone(),
            },
            fields: None,
            revision: 1,
            updated_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_acknowledged_write_or_a_later_one_passes() {
        let acked = stamp(5, "1");
        assert_eq!(judge(&acked, Some(&stored(&acked, &acked))), None);
        let later = stamp(6, "0");
        assert_eq!(judge(&acked, Some(&stored(&later, &later))), None);
    }

    #[test]
    fn an_older_stamp_a_missing_document_or_a_mismatched_value_is_a_loss() {
        let acked = stamp(5, "1");
        let older = stamp(5, "0");
        assert!(judge(&acked, Some(&stored(&older, &older))).is_some());
        assert!(judge(&acked, None).is_some());
        // The stamp survived but the value is another write's.
        assert!(judge(&acked, Some(&stored(&older, &acked))).is_some());
    }

    #[test]
    fn merging_keeps_the_largest_stamp_and_counts_every_write() {
        let key = DocumentKey::parse("t", "o", "settings").unwrap();
        let mut a = Acknowledged::default();
        a.record(&key, &stamp(3, "1"));
        a.record(&key, &stamp(2, "1"));
        let mut b = Acknowledged::default();
        b.record(&key, &stamp(4, "2"));
        a.merge(b);
        assert_eq!(a.writes, 3);
        assert_eq!(a.latest[&key], stamp(4, "2"));
    }
}
