//! The one mapping from service errors to gRPC statuses.

use settings_sync_proto::convert::WireError;
use settings_sync_protocol::{MergeError, ValueError};
use tonic::{Code, Status};

use crate::auth::{AuthError, Denied};
use crate::store::StoreError;
use crate::telemetry::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("{0}")]
    BadRequest(String),
    #[error("document {0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unauthenticated: {0}")]
    Unauthenticated(#[from] AuthError),
    #[error("permission denied: {0}")]
    Denied(#[from] Denied),
    #[error("rate limit exceeded for this identity; retry later")]
    RateLimited,
    #[error("at most {0} Watch streams per identity are open at once; close one first")]
    TooManyWatches(usize),
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        match &error {
            ApiError::Wire(WireError::Value(ValueError::TooLarge { .. })) => {
                Status::resource_exhausted(error.to_string())
            }
            ApiError::Wire(_) | ApiError::BadRequest(_) => {
                Status::invalid_argument(error.to_string())
            }
            ApiError::NotFound(_) => Status::not_found(error.to_string()),
            ApiError::Unauthenticated(_) => Status::unauthenticated(error.to_string()),
            ApiError::Denied(_) => Status::permission_denied(error.to_string()),
            ApiError::RateLimited | ApiError::TooManyWatches(_) => {
                Status::resource_exhausted(error.to_string())
            }
            ApiError::Store(StoreError::Merge(merge)) => match merge {
                MergeError::ConflictingContent(_) | MergeError::ClockJump { .. } => {
                    Status::failed_precondition(merge.to_string())
                }
            },
            ApiError::Store(StoreError::Unavailable(_)) => {
                tracing::warn!(error = %error_chain(&error), "database unavailable");
                Status::new(
                    Code::Unavailable,
                    "the database is unavailable; retry later",
                )
            }
            ApiError::Store(_) => {
                // Never leak SQL or row contents to the caller: log, answer opaquely.
                tracing::error!(error = %error_chain(&error), "internal error");
                Status::internal("internal error")
            }
        }
    }
}
