//! HTTP/1.1 JSON-RPC 2.0, as A2A and MCP run over HTTP: a `POST` whose body
//! is a JSON-RPC request, answered by a JSON-RPC response, on a keep-alive
//! connection (hyper 1, serde_json), plain or with TLS 1.3.
//!
//! The request carries what `FlatRequest` carries (the message id as the
//! JSON-RPC `id`, the sender, the type id, the conversation id, the five
//! strings, the blob), byte strings in base64 as JSON needs; the method is
//! the intent's name. The result is `{"ok":true}`.
//!
//! The client is hyper's connection-level API (one `SendRequest` per
//! connection, no pool), the leanest way to use hyper. HTTP/1.1 has one
//! request in flight per connection, so "64 in flight" takes 64 connections.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tacit_benches::reference;
use tokio::task::{JoinHandle, JoinSet};

use crate::tcp_io::{Dialer, Listener, Security};

/// The ALPN id both TLS sides offer.
const ALPN: &[u8] = b"http/1.1";
/// The JSON-RPC method: the intent's name.
const METHOD: &str = "tacit.bench.v1.ReserveSlot";
/// The largest body either side reads.
const MAX_BODY: usize = 64 * 1024;

/// A JSON-RPC 2.0 request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RpcRequest<P> {
    pub(crate) jsonrpc: String,
    pub(crate) id: u64,
    pub(crate) method: String,
    pub(crate) params: P,
}

/// The parameters: `FlatRequest`'s fields but the message id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReserveParams {
    #[serde(with = "base64")]
    pub(crate) sender: Vec<u8>,
    #[serde(with = "base64")]
    pub(crate) type_id: Vec<u8>,
    pub(crate) conversation_id: String,
    pub(crate) resource: String,
    pub(crate) region: String,
    pub(crate) start: String,
    pub(crate) end: String,
    pub(crate) note: String,
    #[serde(with = "base64")]
    pub(crate) blob: Vec<u8>,
}

/// A JSON-RPC 2.0 response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RpcResponse {
    pub(crate) jsonrpc: String,
    pub(crate) id: u64,
    pub(crate) result: AckResult,
}

/// The result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct AckResult {
    pub(crate) ok: bool,
}

/// Byte strings as base64 strings.
mod base64 {
    use data_encoding::BASE64;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        BASE64.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// The reference request as JSON-RPC.
pub(crate) fn reference_request() -> RpcRequest<ReserveParams> {
    let flat = reference::flat_request();
    let params = flat.params.expect("the reference carries parameters");
    RpcRequest {
        jsonrpc: "2.0".to_owned(),
        id: flat.message_id,
        method: METHOD.to_owned(),
        params: ReserveParams {
            sender: flat.sender,
            type_id: flat.type_id,
            conversation_id: flat.conversation_id,
            resource: params.resource,
            region: params.region,
            start: params.start,
            end: params.end,
            note: params.note,
            blob: params.blob.to_vec(),
        },
    }
}

/// The request as the client sends it: serialized from a borrowed template.
pub(crate) fn encode_request(request: &RpcRequest<ReserveParams>) -> Vec<u8> {
    serde_json::to_vec(request).expect("the request serializes")
}

/// The request as the server reads it: owned strings, decoded byte strings.
pub(crate) fn decode_request(body: &[u8]) -> serde_json::Result<RpcRequest<ReserveParams>> {
    serde_json::from_slice(body)
}

/// The server: hyper's HTTP/1.1 server, one task per connection.
pub(crate) struct JsonServer {
    pub(crate) listener_closed: tokio::sync::mpsc::UnboundedReceiver<()>,
    pub(crate) dialer: Dialer,
    task: JoinHandle<()>,
}

impl JsonServer {
    pub(crate) async fn start(security: Security) -> Self {
        let (mut listener, dialer) = Listener::bind(security, ALPN).await;
        let listener_closed = std::mem::replace(&mut listener.closed, tokio::sync::mpsc::unbounded_channel().1);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Some(io) = listener.next().await {
                connections.spawn(async move {
                    let service = hyper::service::service_fn(handle);
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self { listener_closed, dialer, task }
    }

    /// A new client on a new keep-alive connection (TLS handshake done).
    pub(crate) async fn connect(&self) -> JsonClient {
        let io = self.dialer.dial().await.expect("the connection opens");
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(io)).await.expect("the HTTP/1.1 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        JsonClient { sender }
    }

    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

/// The server's handler: parses the call, answers `ok` if it is the method.
async fn handle(request: http::Request<Incoming>) -> Result<http::Response<Full<Bytes>>, hyper::Error> {
    let body = request.into_body().collect().await?.to_bytes();
    let (status, reply) = match decode_request(&body) {
        Ok(call) if body.len() <= MAX_BODY => {
            let ok = call.method == METHOD && call.params.blob.len() == reference::BLOB.len();
            let reply = RpcResponse { jsonrpc: "2.0".to_owned(), id: call.id, result: AckResult { ok } };
            (200, serde_json::to_vec(&reply).expect("the reply serializes"))
        }
        _ => (400, b"{}".to_vec()),
    };
    Ok(http::Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(reply)))
        .expect("a valid response"))
}

/// A client on one keep-alive connection.
#[derive(Debug)]
pub(crate) struct JsonClient {
    sender: SendRequest<Full<Bytes>>,
}

impl JsonClient {
    /// One call; panics unless it is answered with `ok` and the same id.
    pub(crate) async fn call(&mut self, request: &RpcRequest<ReserveParams>) {
        let body = Bytes::from(encode_request(request));
        let http_request = http::Request::post("/rpc")
            .header(HOST, "bench.invalid")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .expect("a valid request");
        self.sender.ready().await.expect("the connection is open");
        let response = self.sender.send_request(http_request).await.expect("the call is answered");
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.expect("the body arrives").to_bytes();
        let reply: RpcResponse = serde_json::from_slice(&body).expect("a JSON-RPC response");
        assert!(reply.result.ok && reply.id == request.id, "{reply:?}");
    }
}
