//! How both adapters' sqlx errors become the port's kinds.

use super::error::{Cause, StoreError};

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let kind = classify(&error);
        let cause = Cause::new(error);
        match kind {
            Kind::Unavailable => StoreError::Unavailable(cause),
            Kind::Conflict => StoreError::Conflict(cause),
            Kind::Internal => StoreError::Internal(cause),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::internal(error)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Unavailable,
    Conflict,
    Internal,
}

fn classify(error: &sqlx::Error) -> Kind {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => Kind::Unavailable,
        sqlx::Error::Database(db) => db.code().map_or(Kind::Internal, |code| sqlstate(&code)),
        _ => Kind::Internal,
    }
}

/// PostgreSQL's SQLSTATE classes; SQLite's codes match none of them.
fn sqlstate(code: &str) -> Kind {
    match code {
        // Class 08: connection exceptions; 57P01-57P03: the server is
        // shutting down, crashed or not accepting connections yet.
        c if c.starts_with("08") => Kind::Unavailable,
        "57P01" | "57P02" | "57P03" => Kind::Unavailable,
        // serialization_failure, deadlock_detected.
        "40001" | "40P01" => Kind::Conflict,
        _ => Kind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_the_kind_a_caller_acts_on() {
        for (code, kind) in [
            ("08006", Kind::Unavailable),
            ("08001", Kind::Unavailable),
            ("57P01", Kind::Unavailable),
            ("57P03", Kind::Unavailable),
            ("40001", Kind::Conflict),
            ("40P01", Kind::Conflict),
            ("22P05", Kind::Internal),
            ("23505", Kind::Internal),
            ("57014", Kind::Internal),
        ] {
            assert_eq!(sqlstate(code), kind, "{code}");
        }
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Kind::Unavailable);
        assert_eq!(classify(&sqlx::Error::RowNotFound), Kind::Internal);
    }
}
