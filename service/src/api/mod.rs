//! The `settingssync.v1.SettingsSync` gRPC service over any [`DocumentStore`].

mod error;
// Public so the fuzz targets run the very parsers the service uses.
pub mod query;
pub mod watch;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use settings_sync_proto::convert::{parse_key, parse_write};
use settings_sync_proto::v1;
use settings_sync_proto::v1::settings_sync_server::SettingsSync;
use settings_sync_protocol::{Decision, MergePolicy, ValueLimits};
use tonic::{Request, Response, Status};

pub use error::ApiError;

use crate::auth::{Access, AuthError, Caller, authorize};
use crate::feed::FeedHub;
use crate::limits::WatchSlots;
use crate::store::DocumentStore;
use crate::telemetry::TraceSettings;
use crate::telemetry::sync::SyncTrace;

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
        let request = request.into_inner();
        let key = parse_key(request.key).map_err(|e| trace.refused(e.into()))?;
        trace.key(&key);
        authorize(&caller, Access::Sync(&key)).map_err(|e| trace.refused(e.into()))?;
        let write = parse_write(&request.value_json, request.stamp, self.limits.value)
            .map_err(|e| trace.refused(e.into()))?;
        trace.incoming(&write.stamp);
        let outcome = self
            .store
            .sync(&key, &write, self.limits.merge)
            .await
            .map_err(|e| trace.refused(e.into()))?;
        trace.decided(&outcome);
        Ok(Response::new(v1::SyncResponse {
            document: Some((&outcome.document).into()),
            decision: decision(outcome.decision).into(),
        }))
    }

    async fn get(
        &self,
        request: Request<v1::GetRequest>,
    ) -> Result<Response<v1::GetResponse>, Status> {
        let caller = caller(&request)?;
        let key = parse_key(request.into_inner().key).map_err(ApiError::from)?;
        authorize(&caller, Access::Get(&key)).map_err(ApiError::from)?;
        let document = self.store.get(&key).await.map_err(ApiError::from)?;
        let document = document.ok_or_else(|| ApiError::NotFound(key.to_string()))?;
        Ok(Response::new(v1::GetResponse {
            document: Some((&document).into()),
        }))
    }

    async fn batch_get(
        &self,
        request: Request<v1::BatchGetRequest>,
    ) -> Result<Response<v1::BatchGetResponse>, Status> {
        let caller = caller(&request)?;
        let keys = request.into_inner().keys;
        if keys.len() > self.limits.max_batch_keys {
            let message = format!(
                "at most {} keys per BatchGet, got {}",
                self.limits.max_batch_keys,
                keys.len()
            );
            return Err(ApiError::BadRequest(message).into());
        }
        let keys = keys
            .into_iter()
            .map(|k| parse_key(Some(k)))
            .collect::<Result<Vec<_>, _>>();
        let keys = keys.map_err(ApiError::from)?;
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
        let spec = query::parse(request.into_inner(), self.limits.value)?;
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

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let trace = TraceSettings::of(&request);
        let caller = caller(&request)?;
        let spec = watch::parse(request.into_inner())?;
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
