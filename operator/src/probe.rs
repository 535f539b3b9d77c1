//! `settings-sync-operator probe URL`: an HTTP GET that succeeds on a 2xx
//! answer, so `helm test` can check the operator's `/readyz` from the
//! operator's own image (it has no shell and no wget). Plain HTTP/1.1 over
//! one TCP connection: the probe needs nothing more.

use std::time::Duration;

use axum::http::Uri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0} is not an http:// URL with a host")]
    BadUrl(String),
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{0}: no answer within {1:?}")]
    Timeout(String, Duration),
    #[error("{url} answered {status_line:?}")]
    NotOk { url: String, status_line: String },
}

/// The status code of `GET url`, if it is a success (2xx).
pub async fn probe(url: &str, timeout: Duration) -> Result<u16, ProbeError> {
    tokio::time::timeout(timeout, get(url))
        .await
        .unwrap_or_else(|_| Err(ProbeError::Timeout(url.to_string(), timeout)))
}

async fn get(url: &str) -> Result<u16, ProbeError> {
    let bad = || ProbeError::BadUrl(url.to_string());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") {
        return Err(bad());
    }
    let host = uri.host().ok_or_else(bad)?;
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let io = |source| ProbeError::Io {
        url: url.to_string(),
        source,
    };
    let mut stream = TcpStream::connect((host, port)).await.map_err(io)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.map_err(io)?;
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default().to_string();
    match status_of(&status_line) {
        Some(code) if (200..300).contains(&code) => Ok(code),
        _ => Err(ProbeError::NotOk {
            url: url.to_string(),
            status_line,
        }),
    }
}

/// `HTTP/1.1 200 OK` → 200.
fn status_of(status_line: &str) -> Option<u16> {
    let mut parts = status_line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_code_is_read_from_the_status_line() {
        assert_eq!(status_of("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_of("HTTP/1.1 503 Service Unavailable"), Some(503));
        assert_eq!(status_of("garbage"), None);
        assert_eq!(status_of(""), None);
    }

    #[tokio::test]
    async fn a_ready_server_passes_and_an_unready_one_fails() {
        let (ready, readiness) = tokio::sync::watch::channel(false);
        let registry = std::sync::Arc::new(prometheus_client::registry::Registry::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap());
        let app = crate::http::router(registry, readiness);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let patience = Duration::from_secs(5);
        assert!(matches!(
            probe(&url, patience).await,
            Err(ProbeError::NotOk { .. })
        ));
        ready.send(true).unwrap();
        assert_eq!(probe(&url, patience).await.unwrap(), 200);
    }

    #[tokio::test]
    async fn only_http_urls_are_probed() {
        let patience = Duration::from_secs(1);
        assert!(matches!(
            probe("https://x/readyz", patience).await,
            Err(ProbeError::BadUrl(_))
        ));
        assert!(matches!(
            probe("not a url", patience).await,
            Err(ProbeError::BadUrl(_))
        ));
    }
}
