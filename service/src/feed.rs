//! Per-tenant change feeds shared by the Watch streams of one replica.
//!
//! One task per watched tenant polls the store's change history and
//! broadcasts what it finds; every replica polls the shared database, so a
//! write on replica A reaches a watcher on replica C within one poll. Each
//! event says which range of revisions it covers, so a watcher that sees a
//! range starting past its own position reads the gap from the store first:
//! nothing is skipped, whatever the timing of subscriptions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use settings_sync_protocol::{Document, Id};
use tokio::sync::broadcast;
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
    /// Changes read from the store per query.
    pub batch: usize,
}

/// What a feed broadcasts: every change of the tenant with a revision in
/// `(after, upto]`, in revision order (`changes` is empty for a heartbeat).
#[derive(Clone, Debug)]
pub struct FeedEvent {
    pub after: i64,
    pub upto: i64,
    pub changes: Arc<[Document]>,
}

/// Keeps a tenant's polling task alive while any watcher holds it.
pub struct Feed {
    sender: broadcast::Sender<FeedEvent>,
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

    /// Joins (starting if needed) the tenant's feed. Hold the `Arc<Feed>`
    /// as long as the receiver is used.
    pub fn subscribe(&self, tenant: &Id) -> (Arc<Feed>, broadcast::Receiver<FeedEvent>) {
        let mut feeds = self
            .feeds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(feed) = feeds.get(tenant).and_then(Weak::upgrade) {
            let receiver = feed.sender.subscribe();
            return (feed, receiver);
        }
        feeds.retain(|_, feed| feed.strong_count() > 0);
        let (sender, receiver) = broadcast::channel(self.config.buffer.max(1));
        let task = tokio::spawn(poll(
            self.store.clone(),
            tenant.clone(),
            sender.clone(),
            self.config,
        ));
        let feed = Arc::new(Feed {
            sender,
            task: task.abort_handle(),
        });
        feeds.insert(tenant.clone(), Arc::downgrade(&feed));
        (feed, receiver)
    }
}

async fn poll<S: DocumentStore>(
    store: Arc<S>,
    tenant: Id,
    sender: broadcast::Sender<FeedEvent>,
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
                let _ = sender.send(FeedEvent {
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
                let _ = sender.send(FeedEvent {
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
