//! The Watch stream: replay from a revision, then follow the tenant's feed.

use std::sync::Arc;

use futures::Stream;
use settings_sync_proto::v1;
use settings_sync_protocol::{Document, Id};
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;

use super::ApiError;
use crate::feed::FeedHub;
use crate::store::{DocumentStore, StoreError};

/// Which changes a stream delivers.
pub struct WatchSpec {
    pub tenant: Id,
    pub owner: Option<Id>,
    pub name: Option<Id>,
    pub after_revision: Option<i64>,
}

pub fn parse(request: v1::WatchRequest) -> Result<WatchSpec, ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::BadRequest(e.to_string());
    let optional = |field: &'static str, id: String| match id.as_str() {
        "" => Ok(None),
        _ => Id::parse(field, id).map(Some).map_err(|e| bad(&e)),
    };
    let after_revision = match request.after_revision {
        Some(revision) if revision < 0 => return Err(bad(&"after_revision must not be negative")),
        other => other,
    };
    Ok(WatchSpec {
        tenant: Id::parse("tenant", request.tenant).map_err(|e| bad(&e))?,
        owner: optional("owner", request.owner)?,
        name: optional("name", request.name)?,
        after_revision,
    })
}

impl WatchSpec {
    fn matches(&self, document: &Document) -> bool {
        self.owner.as_ref().is_none_or(|o| *o == document.key.owner)
            && self.name.as_ref().is_none_or(|n| *n == document.key.name)
    }
}

fn change(document: &Document) -> v1::WatchResponse {
    v1::WatchResponse {
        event: Some(v1::watch_response::Event::Change(document.into())),
    }
}

fn progress(revision: i64) -> v1::WatchResponse {
    v1::WatchResponse {
        event: Some(v1::watch_response::Event::Progress(v1::Progress {
            revision,
        })),
    }
}

fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::Compacted {
            requested,
            compacted_through,
        } => Status::out_of_range(format!(
            "changes after revision {requested} are no longer kept (history starts after {compacted_through}); \
             re-read the documents and watch from a current revision"
        )),
        other => ApiError::Store(other).into(),
    }
}

/// The stream of one watcher. `position` is the revision up to which every
/// change has been delivered (or filtered out).
pub fn stream<S: DocumentStore>(
    store: Arc<S>,
    feeds: Arc<FeedHub<S>>,
    spec: WatchSpec,
) -> impl Stream<Item = Result<v1::WatchResponse, Status>> + Send {
    async_stream::stream! {
        // Subscribe before reading the start, so no change falls between.
        let (_feed, mut events) = feeds.subscribe(&spec.tenant);
        let batch = feeds.config().batch;
        let mut position = match spec.after_revision {
            Some(revision) => revision,
            None => match store.latest_revision(&spec.tenant).await {
                Ok(revision) => revision,
                Err(error) => { yield Err(store_status(error)); return; }
            },
        };
        let mut caught_up = false;
        loop {
            // Read from the store whatever lies between our position and the
            // feed: on start, and whenever the feed is ahead of us.
            if !caught_up {
                loop {
                    let changes = match store.changes_after(&spec.tenant, position, batch).await {
                        Ok(changes) => changes,
                        Err(error) => { yield Err(store_status(error)); return; }
                    };
                    for document in &changes {
                        position = document.revision;
                        if spec.matches(document) { yield Ok(change(document)); }
                    }
                    if changes.len() < batch { break; }
                }
                caught_up = true;
                // An event on the stream's one span, not a span per message.
                tracing::info!(revision = position, "watch caught up with the store");
                yield Ok(progress(position));
            }
            let event = match events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => {
                    tracing::warn!(revision = position, "watcher fell behind; ending its stream");
                    yield Err(Status::resource_exhausted(format!(
                        "watcher fell too far behind; resume with after_revision = {position}"
                    )));
                    return;
                }
                Err(RecvError::Closed) => {
                    yield Err(Status::unavailable(format!("change feed stopped; resume with after_revision = {position}")));
                    return;
                }
            };
            if event.after > position {
                caught_up = false;
                continue;
            }
            let start = position;
            for document in event.changes.iter().filter(|d| d.revision > start) {
                position = document.revision;
                if spec.matches(document) { yield Ok(change(document)); }
            }
            if event.changes.is_empty() && event.upto >= position {
                position = event.upto;
                yield Ok(progress(position));
            }
            position = position.max(event.upto);
        }
    }
}
