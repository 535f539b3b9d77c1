//! A call whose connection closed under it, as the caller should see it.
//!
//! tonic reports a call that was waiting on a connection the server then
//! closed (the HTTP/2 GOAWAY of a server shutting down, in a rolling
//! upgrade) as CANCELLED, with the transport error as its source. The
//! caller cancelled nothing: the server went away, which gRPC calls
//! UNAVAILABLE, and a write in that state is safely sent again with the
//! same stamp. A CANCELLED the server answered has no such source and is
//! kept as it is.

use tonic::{Code, Status};

/// `status`, or UNAVAILABLE when it is tonic's CANCELLED for a lost
/// connection.
pub fn unavailable_if_connection_lost(status: Status) -> Status {
    let lost = status.code() == Code::Cancelled
        && std::error::Error::source(&status)
            .is_some_and(|source| source.is::<tonic::transport::Error>());
    if lost {
        Status::unavailable(format!(
            "the connection closed under the call: {}",
            status.message()
        ))
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn transport_error() -> tonic::transport::Error {
        // Port 1 on loopback: nothing listens, the connect fails at once.
        tonic::transport::Channel::from_static("http://127.0.0.1:1")
            .connect()
            .await
            .expect_err("nothing listens on port 1")
    }

    #[tokio::test]
    async fn a_cancelled_call_on_a_lost_connection_is_unavailable() {
        let mut status = Status::cancelled("operation was canceled");
        status.set_source(Arc::new(transport_error().await));
        let seen = unavailable_if_connection_lost(status);
        assert_eq!(seen.code(), Code::Unavailable);
        assert!(seen.message().contains("operation was canceled"));
    }

    #[test]
    fn a_cancelled_answer_from_the_server_stays_cancelled() {
        let seen = unavailable_if_connection_lost(Status::cancelled("the server gave up"));
        assert_eq!(seen.code(), Code::Cancelled);
    }

    #[tokio::test]
    async fn other_codes_are_untouched_whatever_their_source() {
        let mut status = Status::internal("x");
        status.set_source(Arc::new(transport_error().await));
        assert_eq!(
            unavailable_if_connection_lost(status).code(),
            Code::Internal
        );
    }
}
