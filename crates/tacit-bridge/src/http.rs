//! The HTTP front of the bridges (features `http` and `a2a-server`): one
//! accept loop with the bounds every bridge facing LLM clients needs.
//!
//! - **Loopback by default**: an address that is not loopback needs a
//!   bearer token ([`HttpOptions::bearer_token`]), compared in constant
//!   time; a request without it is answered 401.
//! - **Bounded bodies**: a declared `Content-Length` over
//!   [`HttpOptions::max_body_len`] is answered 413 before anything is read,
//!   and a body that grows past it fails the request.
//! - **Per-client rates**: each client address has a token bucket
//!   ([`HttpOptions::rate`], default 100 requests a second, bursts of 200);
//!   a request over it is answered 429 with `Retry-After`, and other clients
//!   are not affected.
//! - **Connections**: at most [`HttpOptions::max_connections`] at once (512)
//!   and [`HttpOptions::max_connections_per_client`] (64) from one address;
//!   one more is answered 503 and closed.
//! - **Time**: a request head must arrive within 10 s; the bridges give
//!   every call through them a deadline.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use governor::{Quota, RateLimiter};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::peers::BridgeError;

/// The longest request body by default: 4 MiB.
pub const MAX_BODY_LEN: usize = 4 << 20;

/// The body of every answer the front gives.
pub(crate) type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Bounds of a bridge's HTTP server.
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpOptions {
    pub(crate) bearer_token: Option<String>,
    pub(crate) max_body_len: usize,
    rate: Option<(NonZeroU32, NonZeroU32)>,
    max_connections: usize,
    max_connections_per_client: usize,
    pub(crate) max_sessions: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            bearer_token: None,
            max_body_len: MAX_BODY_LEN,
            rate: Some((NonZeroU32::new(100).expect("non-zero"), NonZeroU32::new(200).expect("non-zero"))),
            max_connections: 512,
            max_connections_per_client: 64,
            max_sessions: 256,
        }
    }
}

impl HttpOptions {
    /// Requires `Authorization: Bearer <token>` on every request (required
    /// to serve on an address that is not loopback).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// The longest request body (default [`MAX_BODY_LEN`], 4 MiB); longer is
    /// answered 413.
    pub fn max_body_len(mut self, bytes: usize) -> Self {
        self.max_body_len = bytes;
        self
    }

    /// Requests a second each client address may make, with bursts of
    /// `burst` (default 100 and 200); `None` for no limit. Zero is taken as one.
    pub fn rate(mut self, rate: Option<(u32, u32)>) -> Self {
        let at_least_one = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        self.rate = rate.map(|(per_second, burst)| (at_least_one(per_second), at_least_one(burst)));
        self
    }

    /// Open connections at once, from all clients (default 512).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Open connections at once from one client address (default 64).
    pub fn max_connections_per_client(mut self, connections: usize) -> Self {
        self.max_connections_per_client = connections;
        self
    }

    /// MCP sessions at once (default 256); an `initialize` over it is
    /// answered 503. Sessions idle for 5 minutes end.
    pub fn max_sessions(mut self, sessions: usize) -> Self {
        self.max_sessions = sessions;
        self
    }
}

/// A plain-text answer.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response =
        Response::new(Full::new(Bytes::from_static(text.as_bytes())).map_err(|e| match e {}).boxed_unsync());
    *response.status_mut() = status;
    response
}

/// Compares two byte strings in time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks that a bridge may serve on `listener`'s address: loopback, or a token.
pub(crate) fn check_exposure(what: &str, local: SocketAddr, options: &HttpOptions) -> Result<(), BridgeError> {
    if !local.ip().is_loopback() && options.bearer_token.is_none() {
        return Err(BridgeError(format!(
            "refusing to serve {what} on {local}, which is not a loopback address, without a bearer token"
        )));
    }
    Ok(())
}

/// Open connections by client address, released when a guard drops.
#[derive(Debug, Default)]
struct Connections {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

struct ConnectionGuard {
    connections: Arc<Mutex<Connections>>,
    client: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut connections = self.connections.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        connections.total -= 1;
        if let Some(count) = connections.by_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                connections.by_client.remove(&self.client);
            }
        }
    }
}

/// Serves `service` on `listener` (HTTP/1.1) behind the bounds of
/// `options` until the listener fails. `what` names the bridge in log lines.
pub(crate) async fn serve<S, B>(
    what: &'static str,
    listener: tokio::net::TcpListener,
    options: &HttpOptions,
    service: S,
) -> Result<(), BridgeError>
where
    S: tower_service::Service<Request<Limited<Incoming>>, Response = Response<B>, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let local = listener.local_addr().map_err(|e| BridgeError(format!("{what}: {e}")))?;
    check_exposure(what, local, options)?;
    let expected: Option<Arc<[u8]>> =
        options.bearer_token.as_ref().map(|token| format!("Bearer {token}").into_bytes().into());
    let limiter = options
        .rate
        .map(|(per_second, burst)| Arc::new(RateLimiter::hashmap(Quota::per_second(per_second).allow_burst(burst))));
    let connections = Arc::new(Mutex::new(Connections::default()));
    let max = options.max_body_len;
    let (max_connections, max_per_client) = (options.max_connections, options.max_connections_per_client);
    let mut accepted = 0u64;
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                eprintln!("{what}: accepting an HTTP connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        accepted += 1;
        if let Some(limiter) = &limiter
            && accepted.is_multiple_of(1024)
        {
            // Forget clients whose buckets are full again: memory stays
            // bounded by the clients of the last few seconds.
            limiter.retain_recent();
        }
        let client = client.ip();
        let guard = {
            let mut open = connections.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mine = open.by_client.get(&client).copied().unwrap_or(0);
            if open.total >= max_connections || mine >= max_per_client {
                None
            } else {
                open.total += 1;
                *open.by_client.entry(client).or_default() += 1;
                Some(ConnectionGuard { connections: connections.clone(), client })
            }
        };
        let service = service.clone();
        let expected = expected.clone();
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let Some(_guard) = guard else {
                let refuse = hyper::service::service_fn(|_request: Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections"))
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), refuse);
                let _ = tokio::time::timeout(Duration::from_secs(10), connection).await;
                return;
            };
            let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
                let mut service = service.clone();
                let expected = expected.clone();
                let limiter = limiter.clone();
                async move {
                    if let Some(expected) = &expected {
                        let given = request.headers().get(hyper::header::AUTHORIZATION).map(|v| v.as_bytes());
                        if !given.is_some_and(|given| same(given, expected)) {
                            return Ok(plain(StatusCode::UNAUTHORIZED, "a bearer token is required"));
                        }
                    }
                    if let Some(limiter) = &limiter
                        && let Err(not_until) = limiter.check_key(&client)
                    {
                        let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
                        let mut response = plain(StatusCode::TOO_MANY_REQUESTS, "too many requests from this client");
                        let seconds = wait.as_secs() + 1;
                        response.headers_mut().insert(hyper::header::RETRY_AFTER, seconds.into());
                        return Ok(response);
                    }
                    let declared = request
                        .headers()
                        .get(hyper::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    if declared.is_some_and(|len| len > max as u64) {
                        return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too long"));
                    }
                    let request = request.map(|body| Limited::new(body, max));
                    let response = tower_service::Service::call(&mut service, request).await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| body.map_err(Into::into).boxed_unsync()))
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), handler);
            let _ = connection.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content() {
        assert!(same(b"Bearer abc", b"Bearer abc"));
        assert!(!same(b"Bearer abc", b"Bearer abd"));
        assert!(!same(b"Bearer ab", b"Bearer abc"));
    }

    #[test]
    fn exposure_needs_a_token_off_loopback() {
        let open: SocketAddr = "0.0.0.0:80".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert!(check_exposure("x", local, &HttpOptions::default()).is_ok());
        assert!(check_exposure("x", open, &HttpOptions::default()).is_err());
        assert!(check_exposure("x", open, &HttpOptions::default().bearer_token("t")).is_ok());
    }
}
