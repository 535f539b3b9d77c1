//! Per-tenant change feeds shared by the Watch streams of one replica.
//!
//! One task per watched tenant polls the store's change history and
//! broadcasts what it finds; every replica polls the shared database, so a
//! write on replica A reaches a watcher on replica C within one poll. Each
//! event says which range of revisions it covers, so a watcher that sees a
//! range starting past its own position reads the gap from the store first:
//! nothing is skipped, whatever the timing of subscriptions.
//!
//! A feed keeps its recent events for its slowest watcher in a ring bounded
//! in events and in bytes; a watcher whose next event was dropped from the
//! ring is told it lagged and resumes from the store. So a stalled watcher
//! pins at most the ring, whatever the size of the documents.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use settings_sync_protocol::{Document, Id};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::store::{DocumentStore, StoreError};

#[derive(Clone, Copy, Debug)]
pub struct FeedConfig {
    /// How often a feed asks the store for new changes.
    pub poll: Duration,
    /// How long a feed stays quiet before telling watchers they are current.
    pub progress: Duration,
    /// Events a feed buffers for its slowest watcher before that watcher is
    /// cut off (it resumes from its last revision).
    pub buffer: usize,
    /// Bytes of changes a feed buffers for its slowest watcher, likewise.
    pub buffer_bytes: usize,
    /// Changes read from the store per query (so per event, and per page
    /// of a watcher's replay).
    pub batch: usize,
}

impl FeedConfig {
    /// Changes per page such that a page of the largest documents fits in
    /// `buffer_bytes`: a replay holds one page at a time.
    pub fn batch_for(buffer_bytes: usize, max_document_bytes: usize) -> usize {
        (buffer_bytes / max_document_bytes.max(1)).clamp(1, 500)
    }
}

/// What a feed broadcasts: every change of the tenant with a revision in
/// `(after, upto]`, in revision order (`changes` is empty for a heartbeat).
#[derive(Clone, Debug)]
pub struct FeedEvent {
    pub after: i64,
    pub upto: i64,
    pub changes: Arc<[Document]>,
}

impl FeedEvent {
    /// What the event's changes weigh, about as the wire carries them.
    fn bytes(&self) -> usize {
        self.changes.iter().map(change_bytes).sum()
    }
}

fn change_bytes(document: &Document) -> usize {
    const FIXED: usize = 64; // clock, revision, time, and the vectors' headers
    let key = &document.key;
    let ids = key.tenant.as_str().len() + key.owner.as_str().len() + key.name.as_str().len();
    let writer = document.state.stamp.writer.as_str().len();
    FIXED + ids + writer + document.state.value.canonical().len()
}

/// The events a feed still holds, numbered from `first`.
#[derive(Default)]
struct Ring {
    events: VecDeque<(Arc<FeedEvent>, usize)>,
    first: u64,
    bytes: usize,
}

struct Shared {
    ring: Mutex<Ring>,
    /// Bumped on every event, to wake the watchers.
    published: watch::Sender<u64>,
    max_events: usize,
    max_bytes: usize,
}

impl Shared {
    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, event: FeedEvent) {
        let bytes = event.bytes();
        let mut ring = self.ring();
        ring.events.push_back((Arc::new(event), bytes));
        ring.bytes += bytes;
        // The newest event stays even when it alone is over the budget.
        while ring.events.len() > self.max_events
            || (ring.bytes > self.max_bytes && ring.events.len() > 1)
        {
            let (_, dropped) = ring.events.pop_front().expect("not empty");
            ring.bytes -= dropped;
            ring.first += 1;
        }
        let next = ring.first + ring.events.len() as u64;
        drop(ring);
        self.published.send_replace(next);
    }
}

/// A watcher fell so far behind that the events it had not read yet were
/// dropped: it must read from the store again.
#[derive(Debug, PartialEq, Eq)]
pub struct Lagged;

/// One watcher's place in its tenant's feed.
pub struct Subscription {
    _feed: Arc<Feed>,
    shared: Arc<Shared>,
    published: watch::Receiver<u64>,
    next: u64,
}

impl Subscription {
    /// The next event, waiting for one if need be.
    pub async fn recv(&mut self) -> Result<Arc<FeedEvent>, Lagged> {
        loop {
            // Marked seen before looking, so an event published after the
            // look wakes the wait below.
            self.published.borrow_and_update();
            {
                let ring = self.shared.ring();
                if self.next < ring.first {
                    return Err(Lagged);
                }
                if let Some((event, _)) = ring.events.get((self.next - ring.first) as usize) {
                    self.next += 1;
                    return Ok(event.clone());
                }
            }
            // The sender lives in `shared`, which we hold: never closed.
            let _ = self.published.changed().await;
        }
    }
}

/// Keeps a tenant's polling task alive while any watcher holds it.
pub struct Feed {
    shared: Arc<Shared>,
    task: AbortHandle,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct FeedHub<S> {
    store: Arc<S>,
    config: FeedConfig,
    feeds: Mutex<HashMap<Id, Weak<Feed>>>,
}

impl<S: DocumentStore> FeedHub<S> {
    pub fn new(store: Arc<S>, config: FeedConfig) -> Self {
        FeedHub {
            store,
            config,
            feeds: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> FeedConfig {
        self.config
    }

    /// Joins (starting if needed) the tenant's feed: the subscription
    /// receives every event published from now on.
    pub fn subscribe(&self, tenant: &Id) -> Subscription {
        let mut feeds = self
            .feeds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let feed = match feeds.get(tenant).and_then(Weak::upgrade) {
            Some(feed) => feed,
            None => {
                feeds.retain(|_, feed| feed.strong_count() > 0);
                let feed = self.start(tenant);
                feeds.insert(tenant.clone(), Arc::downgrade(&feed));
                feed
            }
        };
        let shared = feed.shared.clone();
        let published = shared.published.subscribe();
        let next = {
            let ring = shared.ring();
            ring.first + ring.events.len() as u64
        };
        Subscription {
            _feed: feed,
            shared,
            published,
            next,
        }
    }

    fn start(&self, tenant: &Id) -> Arc<Feed> {
        let shared = Arc::new(Shared {
            ring: Mutex::new(Ring::default()),
            published: watch::channel(0).0,
            max_events: self.config.buffer.max(1),
            max_bytes: self.config.buffer_bytes,
        });
        let task = tokio::spawn(poll(
            self.store.clone(),
            tenant.clone(),
            shared.clone(),
            self.config,
        ));
        Arc::new(Feed {
            shared,
            task: task.abort_handle(),
        })
    }
}

async fn poll<S: DocumentStore>(
    store: Arc<S>,
    tenant: Id,
    shared: Arc<Shared>,
    config: FeedConfig,
) {
    let mut cursor = loop {
        match store.latest_revision(&tenant).await {
            Ok(revision) => break revision,
            Err(error) => {
                tracing::warn!(%tenant, %error, "change feed cannot start; retrying");
                tokio::time::sleep(config.poll.max(Duration::from_millis(500))).await;
            }
        }
    };
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        match store.changes_after(&tenant, cursor, config.batch).await {
            Ok(changes) if !changes.is_empty() => {
                let full = changes.len() == config.batch;
                let upto = changes.last().map_or(cursor, |c| c.revision);
                shared.publish(FeedEvent {
                    after: cursor,
                    upto,
                    changes: changes.into(),
                });
                cursor = upto;
                quiet_since = tokio::time::Instant::now();
                if full {
                    continue;
                }
            }
            Ok(_) if quiet_since.elapsed() >= config.progress => {
                shared.publish(FeedEvent {
                    after: cursor,
                    upto: cursor,
                    changes: Arc::new([]),
                });
                quiet_since = tokio::time::Instant::now();
            }
            Ok(_) => {}
            // The feed stalled longer than the retention: skip ahead; its
            // watchers find the gap, read it, and are told it is gone.
            Err(StoreError::Compacted {
                compacted_through, ..
            }) => cursor = compacted_through,
            Err(error) => tracing::warn!(%tenant, %error, "change feed poll failed; retrying"),
        }
        tokio::time::sleep(config.poll).await;
    }
}
