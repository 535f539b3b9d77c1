//! The one classification of service errors, and from it the one mapping
//! to gRPC statuses. Telemetry reads the same [`Class`].

use settings_sync_protocol::{DocumentKey, MergeError};
use tonic::{Code, Status};

use super::request::RequestError;
use crate::auth::{AuthError, Denied};
#[cfg(test)]
use crate::store::Cause;
use crate::store::StoreError;
use crate::telemetry::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("document {0} not found")]
    NotFound(DocumentKey),
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
    #[error(
        "after_revision {requested} is past the tenant's latest revision {latest} (was the server's \
         database replaced?); re-read the documents and watch from a current revision"
    )]
    AheadOfHistory { requested: i64, latest: i64 },
    #[error("watcher fell too far behind; resume with after_revision = {resume_after}")]
    WatcherBehind { resume_after: i64 },
}

/// What kind of failure an [`ApiError`] is: decides the status code, and
/// whether (and why) telemetry counts it as a refused request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    InvalidArgument,
    TooLarge,
    NotFound,
    ConflictingContent,
    ClockJump,
    /// A whole-document client writing a document that holds a patch.
    FieldMerged,
    Unauthenticated,
    PermissionDenied,
    RateLimited,
    /// Asked for history that is gone or never was.
    OutOfRange,
    /// A watcher that could not keep up; it resumes.
    TooSlow,
    Unavailable,
    /// Concurrent changes got in the way (a deadlock, a merge that never
    /// settled); a retry may succeed.
    Conflict,
    Internal,
}

impl Class {
    pub fn code(self) -> Code {
        match self {
            Class::InvalidArgument => Code::InvalidArgument,
            Class::TooLarge | Class::RateLimited | Class::TooSlow => Code::ResourceExhausted,
            Class::NotFound => Code::NotFound,
            Class::ConflictingContent | Class::ClockJump | Class::FieldMerged => {
                Code::FailedPrecondition
            }
            Class::Unauthenticated => Code::Unauthenticated,
            Class::PermissionDenied => Code::PermissionDenied,
            Class::OutOfRange => Code::OutOfRange,
            Class::Unavailable => Code::Unavailable,
            Class::Conflict => Code::Aborted,
            Class::Internal => Code::Internal,
        }
    }

    /// Why the request was refused, as telemetry records it; `None` when it
    /// was not refused but failed (or found nothing).
    pub fn rejection(self) -> Option<&'static str> {
        Some(match self {
            Class::InvalidArgument => "invalid_argument",
            Class::TooLarge => "too_large",
            Class::ConflictingContent => "conflicting_content",
            Class::ClockJump => "clock_jump",
            Class::FieldMerged => "field_merged",
            Class::Unauthenticated => "unauthenticated",
            Class::PermissionDenied => "permission_denied",
            Class::RateLimited => "rate_limited",
            Class::OutOfRange => "out_of_range",
            Class::TooSlow => "too_slow",
            Class::NotFound | Class::Unavailable | Class::Conflict | Class::Internal => {
                return None;
            }
        })
    }
}

impl ApiError {
    pub fn class(&self) -> Class {
        match self {
            ApiError::Request(e) if e.is_too_large() => Class::TooLarge,
            ApiError::Request(_) => Class::InvalidArgument,
            ApiError::NotFound(_) => Class::NotFound,
            ApiError::Unauthenticated(_) => Class::Unauthenticated,
            ApiError::Denied(_) => Class::PermissionDenied,
            ApiError::RateLimited | ApiError::TooManyWatches(_) => Class::RateLimited,
            ApiError::AheadOfHistory { .. } => Class::OutOfRange,
            ApiError::WatcherBehind { .. } => Class::TooSlow,
            ApiError::Store(StoreError::Merge(MergeError::ConflictingContent(_))) => {
                Class::ConflictingContent
            }
            ApiError::Store(StoreError::Merge(MergeError::ClockJump { .. })) => Class::ClockJump,
            ApiError::Store(StoreError::Merge(MergeError::FieldMerged)) => Class::FieldMerged,
            ApiError::Store(StoreError::Merge(MergeError::TooLarge { .. })) => Class::TooLarge,
            ApiError::Store(StoreError::Compacted { .. }) => Class::OutOfRange,
            ApiError::Store(StoreError::Unavailable(_)) => Class::Unavailable,
            ApiError::Store(StoreError::Conflict(_)) => Class::Conflict,
            ApiError::Store(StoreError::Internal(_)) => Class::Internal,
        }
    }

    /// The message a caller sees: what to do for its own mistakes, nothing
    /// about our internals for ours.
    fn message(&self) -> String {
        match self {
            ApiError::Store(StoreError::Merge(merge)) => merge.to_string(),
            ApiError::Store(StoreError::Compacted {
                requested,
                compacted_through,
            }) => format!(
                "changes after revision {requested} are no longer kept (history starts after \
                 {compacted_through}); re-read the documents and watch from a current revision"
            ),
            ApiError::Store(StoreError::Unavailable(_)) => {
                "the database is unavailable; retry later".to_owned()
            }
            ApiError::Store(StoreError::Conflict(_)) => {
                "the request met concurrent changes; retry it".to_owned()
            }
            // Never leak SQL or row contents to the caller.
            ApiError::Store(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        let class = error.class();
        match class {
            Class::Unavailable | Class::Conflict => {
                tracing::warn!(error = %error_chain(&error), "not served; a retry may succeed");
            }
            Class::Internal => tracing::error!(error = %error_chain(&error), "internal error"),
            _ => {}
        }
        Status::new(class.code(), error.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_failures_are_told_apart() {
        let refused = [
            ApiError::Request(RequestError::PageToken),
            ApiError::RateLimited,
            ApiError::AheadOfHistory {
                requested: 9,
                latest: 3,
            },
        ];
        for error in refused {
            assert!(error.class().rejection().is_some(), "{error:?}");
        }
        let failed = ApiError::Store(StoreError::Internal(Cause::new(
            "row acme/u/prefs: the stamp is negative",
        )));
        assert_eq!(failed.class(), Class::Internal);
        assert_eq!(failed.class().rejection(), None);
        let status = Status::from(failed);
        assert_eq!(status.message(), "internal error", "no row contents leak");
    }

    #[test]
    fn a_watcher_asking_past_the_history_is_out_of_range_with_what_to_do() {
        let status = Status::from(ApiError::AheadOfHistory {
            requested: 9,
            latest: 3,
        });
        assert_eq!(status.code(), Code::OutOfRange);
        assert!(status.message().contains("latest revision 3"), "{status:?}");
        assert!(status.message().contains("re-read"), "{status:?}");
    }
}
