//! What a store reports when it can not answer: a kind the caller acts on,
//! with the cause kept for logs only (no database types in the port).

use std::fmt;

use settings_sync_protocol::MergeError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The merge rules refused the write (bad input from the caller).
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// The caller asked for change history no longer kept.
    #[error(
        "changes up to revision {compacted_through} were compacted; asked for those after {requested}"
    )]
    Compacted {
        requested: i64,
        compacted_through: i64,
    },
    /// The database can not be reached right now; a retry may succeed.
    #[error("the database is unavailable")]
    Unavailable(#[source] Cause),
    /// Concurrent changes kept the request from completing (a deadlock, a
    /// serialization failure, a merge that never settled); a retry may
    /// succeed.
    #[error("the request met concurrent changes")]
    Conflict(#[source] Cause),
    /// Anything else: a bug, a corrupt row, a failed migration.
    #[error("internal store error")]
    Internal(#[source] Cause),
}

/// Why a store failed, in words for the log. Callers decide on the
/// [`StoreError`] variant, never on the cause.
pub struct Cause(Box<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Cause(cause.into())
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl StoreError {
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Internal(Cause::new(cause))
    }

    pub fn conflict(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Conflict(Cause::new(cause))
    }

    /// The kind as a short word, for logs and metric attributes.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Merge(_) => "refused",
            StoreError::Compacted { .. } => "compacted",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Conflict(_) => "conflict",
            StoreError::Internal(_) => "internal",
        }
    }
}
