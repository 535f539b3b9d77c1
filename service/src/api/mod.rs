//! The `settingssync.v1.SettingsSync` gRPC service over any [`DocumentStore`].

mod error;
// Public so the fuzz targets run the very parsers the service uses.
pub mod query;
pub mod request;
pub mod watch;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use settings_sync_proto::v1;
use settings_sync_proto::v1::settings_sync_server::SettingsSync;
use settings_sync_protocol::{Decision, DocumentKey, MergePolicy, ValueLimits};
use tonic::{Request, Response, Status};

pub use error::{ApiError, Class};
pub use request::{BatchKeys, FromRequest, RequestError, SyncCommand, SyncWrite};

use crate::auth::{Access, AuthError, Caller, authorize};
use crate::feed::FeedHub;
use crate::limits::WatchSlots;
use crate::store::{DocumentStore, QuerySpec};
use crate::telemetry::TraceSettings;
use crate::telemetry::sync::SyncTrace;
use watch::WatchSpec;

/// Request limits the service enforces before touching the store.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub value: ValueLimits,
    pub merge: MergePolicy,
    pub max_batch_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            value: ValueLimits::default(),
            merge: MergePolicy::default(),
            max_batch_keys: 100,
        }
    }
}

pub struct SyncApi<S> {
    store: Arc<S>,
    feeds: Arc<FeedHub<S>>,
    limits: Limits,
    watch_slots: Arc<WatchSlots>,
}

impl<S: DocumentStore> SyncApi<S> {
    pub fn new(store: Arc<S>, feeds: Arc<FeedHub<S>>, limits: Limits) -> Self {
        SyncApi {
            store,
            feeds,
            limits,
            watch_slots: Arc::new(WatchSlots::new(0)),
        }
    }

    /// Caps the Watch streams each identity may hold open.
    pub fn with_watch_slots(mut self, slots: Arc<WatchSlots>) -> Self {
        self.watch_slots = slots;
        self
    }
}

/// The caller the auth interceptor established. Its absence means the
/// service was mounted without the interceptor: fail closed.
fn caller<T>(request: &Request<T>) -> Result<Caller, ApiError> {
    let caller = request.extensions().get::<Caller>().cloned();
    caller.ok_or(ApiError::Unauthenticated(AuthError::Missing))
}

fn decision(decision: Decision) -> v1::Decision {
    match decision {
        Decision::Applied => v1::Decision::Applied,
        Decision::Stale => v1::Decision::Stale,
        Decision::Unchanged => v1::Decision::Unchanged,
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::WatchResponse, Status>> + Send>>;

// Each call runs inside the SERVER span that `telemetry::RpcTrace` opened
// for it, so handlers record onto `Span::current()` rather than open their own.
#[tonic::async_trait]
impl<S: DocumentStore> SettingsSync for SyncApi<S> {
    async fn sync(
        &self,
        request: Request<v1::SyncRequest>,
    ) -> Result<Response<v1::SyncResponse>, Status> {
        let mut trace = SyncTrace::start(&request);
        let caller = caller(&request).map_err(|e| trace.refused(e))?;
        let SyncCommand { key, write } =
            SyncCommand::from_request(request.into_inner(), &self.limits)
                .map_err(|e| trace.refused(e.into()))?;
        trace.key(&key);
        authorize(&caller, Access::Sync(&key)).map_err(|e| trace.refused(e.into()))?;
        trace.incoming(write.stamp());
        let write = match write {
            SyncWrite::Whole(write) => write,
            SyncWrite::Fields(write) => {
                let outcome = self
                    .store
                    .sync_fields(&key, &write, self.limits.merge)
                    .await
                    .map_err(|e| trace.refused(e.into()))?;
                let report = outcome.report;
                trace.decided_fields(report.decision, outcome.document.as_ref());
                // Only an empty patch (a read) of a document never written.
                let document = outcome.document.ok_or(ApiError::NotFound(key))?;
                return Ok(Response::new(v1::SyncResponse {
                    document: Some((&document).into()),
                    decision: decision(report.decision).into(),
                    field_decisions: (report.fields.into_iter())
                        .map(|(name, d)| (name, decision(d).into()))
                        .collect(),
                }));
            }
        };
        let outcome = self
            .store
            .sync(&key, &write, self.limits.merge)
            .await
            .map_err(|e| trace.refused(e.into()))?;
        trace.decided(&outcome);
        Ok(Response::new(v1::SyncResponse {
            document: Some((&outcome.document).into()),
            decision: decision(outcome.decision).into(),
            field_decisions: Default::default(),
        }))
    }

    async fn get(
        &self,
        request: Request<v1::GetRequest>,
    ) -> Result<Response<v1::GetResponse>, Status> {
        let caller = caller(&request)?;
        let key = DocumentKey::from_request(request.into_inner(), &self.limits)
            .map_err(ApiError::from)?;
        authorize(&caller, Access::Get(&key)).map_err(ApiError::from)?;
        let document = self.store.get(&key).await.map_err(ApiError::from)?;
        let document = document.ok_or(ApiError::NotFound(key))?;
        Ok(Response::new(v1::GetResponse {
            document: Some((&document).into()),
        }))
    }

    async fn batch_get(
        &self,
        request: Request<v1::BatchGetRequest>,
    ) -> Result<Response<v1::BatchGetResponse>, Status> {
        let caller = caller(&request)?;
        let BatchKeys(keys) =
            BatchKeys::from_request(request.into_inner(), &self.limits).map_err(ApiError::from)?;
        authorize(&caller, Access::BatchGet(&keys)).map_err(ApiError::from)?;
        let found = self.store.batch_get(&keys).await.map_err(ApiError::from)?;
        let missing = keys
            .iter()
            .filter(|k| !found.iter().any(|d| &d.key == *k))
            .map(Into::into)
            .collect();
        Ok(Response::new(v1::BatchGetResponse {
            documents: found.iter().map(Into::into).collect(),
            missing,
        }))
    }

    async fn query(
        &self,
        request: Request<v1::QueryRequest>,
    ) -> Result<Response<v1::QueryResponse>, Status> {
        let caller = caller(&request)?;
        let spec =
            QuerySpec::from_request(request.into_inner(), &self.limits).map_err(ApiError::from)?;
        let access = Access::Query {
            tenant: &spec.tenant,
        };
        authorize(&caller, access).map_err(ApiError::from)?;
        let page = self.store.query(&spec).await.map_err(ApiError::from)?;
        Ok(Response::new(v1::QueryResponse {
            documents: page.documents.iter().map(Into::into).collect(),
            next_page_token: page
                .next_after_owner
                .as_ref()
                .map(query::page_token)
                .unwrap_or_default(),
        }))
    }

    async fn list_overrides(
        &self,
        request: Request<v1::ListOverridesRequest>,
    ) -> Result<Response<v1::ListOverridesResponse>, Status> {
        let caller = caller(&request)?;
        let page = query::OverridesPage::from_request(request.into_inner(), &self.limits)
            .map_err(ApiError::from)?;
        authorize(&caller, Access::ListOverrides(&page.key)).map_err(ApiError::from)?;
        // One more than asked: it only tells that another page follows.
        let mut found = (self.store)
            .list_overrides(&page.key, page.before, page.limit + 1)
            .await
            .map_err(ApiError::from)?;
        let more = found.len() > page.limit;
        found.truncate(page.limit);
        let next_page_token = match found.last() {
            Some(last) if more => query::overrides_token(last.id),
            _ => String::new(),
        };
        Ok(Response::new(v1::ListOverridesResponse {
            overrides: found.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let trace = TraceSettings::of(&request);
        let caller = caller(&request)?;
        let spec =
            WatchSpec::from_request(request.into_inner(), &self.limits).map_err(ApiError::from)?;
        trace.record_watch(&spec.tenant, spec.owner.as_ref(), spec.name.as_ref());
        let access = Access::Watch {
            tenant: &spec.tenant,
            owner: spec.owner.as_ref(),
        };
        authorize(&caller, access).map_err(ApiError::from)?;
        let permit = self
            .watch_slots
            .try_acquire(&caller.limit_key())
            .ok_or(ApiError::TooManyWatches(self.watch_slots.max()))?;
        let stream = watch::stream(self.store.clone(), self.feeds.clone(), spec);
        // The permit lives as long as the stream: tonic drops the stream when
        // the client cancels or disconnects, which frees the slot.
        let stream = futures::StreamExt::map(stream, move |item| {
            let _held = &permit;
            item
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
