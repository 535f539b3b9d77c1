//! gRPC-Web calls as a browser makes them: HTTP/1.1, one connection per
//! call, `application/grpc-web+proto`, an `Origin` header. Messages and
//! the trailer block come back as length-prefixed frames in the body.

use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

pub const SERVICE: &str = "/settingssync.v1.SettingsSync";

/// A call's request headers: `Origin`, bearer token, anything else.
#[derive(Clone, Debug, Default)]
pub struct Call {
    pub origin: Option<String>,
    pub token: Option<String>,
    pub headers: Vec<(&'static str, String)>,
}

/// One frame of a gRPC-Web response body.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Message(Bytes),
    Trailers(HeaderMap),
}

/// A response whose body is read frame by frame (a Watch stream).
pub struct Streaming {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    buffer: BytesMut,
}

/// A response read to its end.
#[derive(Debug)]
pub struct Unary {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub frames: Vec<Frame>,
}

impl Unary {
    /// The one message, decoded.
    pub fn message<M: prost::Message + Default>(&self) -> M {
        let messages: Vec<&Bytes> = self
            .frames
            .iter()
            .filter_map(|f| match f {
                Frame::Message(m) => Some(m),
                Frame::Trailers(_) => None,
            })
            .collect();
        assert_eq!(messages.len(), 1, "frames: {:?}", self.frames);
        M::decode(messages[0].clone()).expect("a valid protobuf message")
    }

    /// `grpc-status`, from the headers (trailers-only) or the trailer frame.
    pub fn grpc_status(&self) -> Option<String> {
        let trailers = self.frames.iter().find_map(|f| match f {
            Frame::Trailers(t) => Some(t),
            Frame::Message(_) => None,
        });
        self.headers
            .get("grpc-status")
            .or_else(|| trailers.and_then(|t| t.get("grpc-status")))
            .map(|v| v.to_str().expect("ASCII").to_string())
    }
}

/// A length-prefixed message frame, as a gRPC-Web client sends it.
pub fn encode<M: prost::Message>(message: &M) -> Bytes {
    let payload = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + payload.len());
    frame.extend_from_slice(&[0]);
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.freeze()
}

async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting to the server");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP/1.1 handshake");
    tokio::spawn(connection);
    sender
        .send_request(request)
        .await
        .expect("an HTTP/1.1 response")
}

fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    call: &Call,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", addr.to_string());
    if let Some(origin) = &call.origin {
        builder = builder.header("origin", origin);
    }
    if let Some(token) = &call.token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in &call.headers {
        builder = builder.header(*name, value);
    }
    builder.body(Full::new(body)).expect("a valid request")
}

/// Starts a call of `method` (e.g. "Watch") and returns once headers arrive.
pub async fn start<M: prost::Message>(
    addr: SocketAddr,
    method: &str,
    call: &Call,
    message: &M,
) -> Streaming {
    let mut call = call.clone();
    call.headers.extend([
        ("content-type", "application/grpc-web+proto".to_string()),
        ("x-grpc-web", "1".to_string()),
        ("x-user-agent", "grpc-web-test".to_string()),
    ]);
    let request = request(
        addr,
        Method::POST,
        &format!("{SERVICE}/{method}"),
        &call,
        encode(message),
    );
    let response = send(addr, request).await;
    let (parts, body) = response.into_parts();
    Streaming {
        status: parts.status,
        headers: parts.headers,
        body,
        buffer: BytesMut::new(),
    }
}

/// A unary call, read to the end of its body.
pub async fn unary<M: prost::Message>(
    addr: SocketAddr,
    method: &str,
    call: &Call,
    message: &M,
) -> Unary {
    let mut stream = start(addr, method, call, message).await;
    let mut frames = Vec::new();
    while let Some(frame) = stream.next().await {
        frames.push(frame);
    }
    Unary {
        status: stream.status,
        headers: stream.headers,
        frames,
    }
}

/// A CORS preflight for a gRPC-Web POST, as a browser sends it.
pub async fn preflight(addr: SocketAddr, origin: &str) -> Response<Incoming> {
    let call = Call {
        origin: Some(origin.to_string()),
        token: None,
        headers: vec![
            ("access-control-request-method", "POST".to_string()),
            (
                "access-control-request-headers",
                "authorization,content-type,x-grpc-web,x-user-agent,traceparent".to_string(),
            ),
        ],
    };
    let request = request(
        addr,
        Method::OPTIONS,
        &format!("{SERVICE}/Sync"),
        &call,
        Bytes::new(),
    );
    send(addr, request).await
}

/// The `access-control-*` headers of a response.
pub fn cors_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

impl Streaming {
    /// The next frame, waiting for it; `None` once the body has ended.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => panic!("reading the response body: {error}"),
                None => {
                    assert!(self.buffer.is_empty(), "a truncated frame");
                    return None;
                }
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        if self.buffer.len() < 5 {
            return None;
        }
        let flags = self.buffer[0];
        let len = u32::from_be_bytes(self.buffer[1..5].try_into().unwrap()) as usize;
        if self.buffer.len() < 5 + len {
            return None;
        }
        self.buffer.advance(5);
        let payload = self.buffer.split_to(len).freeze();
        Some(if flags & 0x80 != 0 {
            Frame::Trailers(parse_trailers(&payload))
        } else {
            Frame::Message(payload)
        })
    }
}

fn parse_trailers(block: &[u8]) -> HeaderMap {
    std::str::from_utf8(block)
        .expect("ASCII trailers")
        .split("\r\n")
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(':').expect("name: value");
            (
                HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).unwrap(),
                HeaderValue::from_str(value.trim()).unwrap(),
            )
        })
        .collect()
}
