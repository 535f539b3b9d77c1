//! What the CLI tells a person when a command fails: one line, and an exit
//! code per kind of failure, so scripts can tell "not found" from "down".
//! Backtraces are for bugs (panics), never for these.

use settings_sync_protocol::DocumentKey;
use tonic::Code;

/// The exit codes, as `--help` and the README list them.
pub const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 unexpected failure; 2 bad arguments; 3 document not found; \
4 refused by the server as invalid (bad input, stale clock, history gone); \
5 not authenticated or not allowed; 6 server unreachable or unavailable.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Failed = 1,
    Usage = 2,
    NotFound = 3,
    Refused = 4,
    Denied = 5,
    Unavailable = 6,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    /// `serve` or `migrate` failed: the cause chain, on one line.
    #[error("{0}")]
    Failed(String),
    #[error("document {0} not found")]
    NotFound(DocumentKey),
    #[error("{key} has no override {id} (list them with `settings-sync overrides`)")]
    OverrideNotFound { key: DocumentKey, id: i64 },
    #[error(transparent)]
    Client(#[from] settings_sync_client::Error),
    /// The server could not be reached, or says it is not serving.
    #[error("{0}")]
    Unreachable(String),
    #[error("the Watch stream ended without an error; resume with --after-revision {0}")]
    WatchEnded(i64),
    #[error("{error}; resume with --after-revision {resume_after}")]
    WatchFailed {
        error: settings_sync_client::Error,
        resume_after: i64,
    },
}

impl CliError {
    pub fn usage(error: impl std::fmt::Display) -> Self {
        CliError::Usage(error.to_string())
    }

    pub fn exit(&self) -> Exit {
        use settings_sync_client::Error;
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::Failed(_) => Exit::Failed,
            CliError::NotFound(_) | CliError::OverrideNotFound { .. } => Exit::NotFound,
            CliError::WatchEnded(_) | CliError::Unreachable(_) => Exit::Unavailable,
            CliError::Client(Error::InvalidEndpoint { .. } | Error::InvalidToken(_)) => Exit::Usage,
            CliError::Client(Error::Connect(_)) => Exit::Unavailable,
            CliError::Client(error) | CliError::WatchFailed { error, .. } => match error.code() {
                Some(code) => exit_for(code),
                None => Exit::Failed,
            },
        }
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Client(status.into())
    }
}

fn exit_for(code: Code) -> Exit {
    match code {
        Code::NotFound => Exit::NotFound,
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::ResourceExhausted
        | Code::AlreadyExists => Exit::Refused,
        Code::Unauthenticated | Code::PermissionDenied => Exit::Denied,
        Code::Unavailable | Code::DeadlineExceeded => Exit::Unavailable,
        _ => Exit::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_own_exit_code() {
        let status = |code| CliError::from(tonic::Status::new(code, "x")).exit();
        assert_eq!(status(Code::NotFound), Exit::NotFound);
        assert_eq!(status(Code::InvalidArgument), Exit::Refused);
        assert_eq!(status(Code::FailedPrecondition), Exit::Refused);
        assert_eq!(status(Code::Unauthenticated), Exit::Denied);
        assert_eq!(status(Code::PermissionDenied), Exit::Denied);
        assert_eq!(status(Code::Unavailable), Exit::Unavailable);
        assert_eq!(status(Code::Internal), Exit::Failed);
        assert_eq!(CliError::usage("bad").exit(), Exit::Usage);
        let codes = [1, 2, 3, 4, 5, 6].map(|code| format!("{code} "));
        assert!(codes.iter().all(|code| EXIT_CODES.contains(code.as_str())));
    }
}
