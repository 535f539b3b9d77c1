//! Bearer tokens on outgoing calls, composed with the trace context.
//!
//! The token sits behind a lock shared by every clone of a
//! [`crate::Client`], so a caller can swap in a refreshed token
//! ([`crate::Client::set_token`]) without reconnecting.

use std::sync::{Arc, RwLock};

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;

use crate::trace::TraceContextInterceptor;

/// Adds the W3C trace context and, when set, `authorization: Bearer …`.
#[derive(Clone, Debug, Default)]
pub struct CallInterceptor {
    trace: TraceContextInterceptor,
    bearer: Arc<RwLock<Option<AsciiMetadataValue>>>,
}

/// A token that cannot be sent as a header (not visible ASCII).
#[derive(Debug, thiserror::Error)]
#[error("the token is not a valid header value (visible ASCII only)")]
pub struct InvalidToken;

impl CallInterceptor {
    /// Sends `token` with every later call; `None` stops sending one.
    pub fn set_token(&self, token: Option<&str>) -> Result<(), InvalidToken> {
        let value = match token {
            Some(token) => {
                let mut value = MetadataValue::try_from(format!("Bearer {}", token.trim()))
                    .map_err(|_| InvalidToken)?;
                // Keeps the token out of debug logs of the HTTP stack.
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        *self.bearer.write().unwrap_or_else(|e| e.into_inner()) = value;
        Ok(())
    }
}

impl Interceptor for CallInterceptor {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut request = self.trace.call(request)?;
        let bearer = self.bearer.read().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = bearer.as_ref() {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_token_is_sent_as_a_bearer_header() {
        let mut interceptor = CallInterceptor::default();
        interceptor.set_token(Some("abc.def.ghi\n")).unwrap();
        let request = interceptor.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer abc.def.ghi"
        );
    }

    #[test]
    fn without_a_token_no_authorization_is_sent() {
        let mut interceptor = CallInterceptor::default();
        let request = interceptor.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
    }

    #[test]
    fn a_token_with_a_newline_inside_is_refused() {
        assert!(CallInterceptor::default().set_token(Some("a\nb")).is_err());
    }
}
