//! The Watch stream: replay from a revision, then follow the tenant's feed.

use std::sync::Arc;

use futures::Stream;
use settings_sync_proto::v1;
use settings_sync_protocol::{Document, Id};
use tonic::Status;

use super::request::{FromRequest, RequestError};
use super::{ApiError, Limits};
use crate::feed::{FeedHub, Lagged};
use crate::store::{DocumentStore, StoreError};

/// Which changes a stream delivers.
pub struct WatchSpec {
    pub tenant: Id,
    pub owner: Option<Id>,
    pub name: Option<Id>,
    pub after_revision: Option<i64>,
}

impl FromRequest<v1::WatchRequest> for WatchSpec {
    fn from_request(request: v1::WatchRequest, _: &Limits) -> Result<Self, RequestError> {
        let optional = |field: &'static str, id: String| match id.as_str() {
            "" => Ok(None),
            _ => Id::parse(field, id).map(Some),
        };
        let after_revision = match request.after_revision {
            Some(revision) if revision < 0 => return Err(RequestError::NegativeRevision),
            other => other,
        };
        Ok(WatchSpec {
            tenant: Id::parse("tenant", request.tenant)?,
            owner: optional("owner", request.owner)?,
            name: optional("name", request.name)?,
            after_revision,
        })
    }
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
    ApiError::Store(error).into()
}

/// Where a stream starts: `after_revision`, or the tenant's latest revision.
/// A revision past the latest is refused rather than waited for: revisions
/// never go back, so such a watcher (of a replaced database, say) would
/// otherwise idle silently until the tenant caught up with it.
async fn start<S: DocumentStore>(store: &S, spec: &WatchSpec) -> Result<i64, Status> {
    let latest = store
        .latest_revision(&spec.tenant)
        .await
        .map_err(store_status)?;
    match spec.after_revision {
        Some(requested) if requested > latest => {
            Err(ApiError::AheadOfHistory { requested, latest }.into())
        }
        Some(requested) => Ok(requested),
        None => Ok(latest),
    }
}

/// The stream of one watcher. `position` is the revision up to which every
/// change has been delivered (or filtered out). It holds at most one page
/// of the store, or one feed event, at a time.
pub fn stream<S: DocumentStore>(
    store: Arc<S>,
    feeds: Arc<FeedHub<S>>,
    spec: WatchSpec,
) -> impl Stream<Item = Result<v1::WatchResponse, Status>> + Send {
    async_stream::stream! {
        // Subscribe before reading the start, so no change falls between.
        let mut events = feeds.subscribe(&spec.tenant);
        let page = feeds.config().batch;
        let mut position = match start(store.as_ref(), &spec).await {
            Ok(revision) => revision,
            Err(status) => { yield Err(status); return; }
        };
        let mut caught_up = false;
        loop {
            // Read from the store whatever lies between our position and the
            // feed, a page at a time: on start, and whenever the feed is
            // ahead of us.
            if !caught_up {
                loop {
                    let changes = match store.changes_after(&spec.tenant, position, page).await {
                        Ok(changes) => changes,
                        Err(error) => { yield Err(store_status(error)); return; }
                    };
                    let full = changes.len() == page;
                    for document in changes {
                        position = document.revision;
                        if spec.matches(&document) { yield Ok(change(&document)); }
                    }
                    if !full { break; }
                }
                caught_up = true;
                // An event on the stream's one span, not a span per message.
                tracing::info!(revision = position, "watch caught up with the store");
                yield Ok(progress(position));
            }
            let event = match events.recv().await {
                Ok(event) => event,
                Err(Lagged) => {
                    tracing::warn!(revision = position, "watcher fell behind; ending its stream");
                    yield Err(ApiError::WatcherBehind { resume_after: position }.into());
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
