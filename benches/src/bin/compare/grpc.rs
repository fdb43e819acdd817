//! tonic gRPC: one unary method, `/tacit.bench.v1.Reservations/ReserveSlot`,
//! `FlatRequest` → `Ack` (prost, through `tonic_prost::ProstCodec`), over
//! HTTP/2 on TCP, plain (h2c) or with TLS 1.3.
//!
//! The client and the server are written by hand the way tonic-build
//! generates them (`tonic::client::Grpc::unary` on a `Channel`;
//! `tonic::server::Grpc::unary` behind a `tower::Service` that routes on the
//! path), so no `protoc` and no service definition are needed. The server is
//! tonic's `transport::Server` (without its router, so without axum); the
//! client a `transport::Channel` (one HTTP/2 connection, which clones share).

use std::convert::Infallible;
use std::future::{Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tacit_benches::pb::{Ack, FlatRequest};
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::tcp_io::{Dialer, Listener, Security};

/// The method's path.
const PATH: &str = "/tacit.bench.v1.Reservations/ReserveSlot";
/// The ALPN id both TLS sides offer.
const ALPN: &[u8] = b"h2";

/// The server: tonic's `Server` on a loopback listener.
pub(crate) struct GrpcServer {
    pub(crate) listener: Listener,
    pub(crate) dialer: Dialer,
    task: JoinHandle<()>,
}

impl GrpcServer {
    pub(crate) async fn start(security: Security) -> Self {
        let (mut listener, dialer) = Listener::bind(security, ALPN).await;
        let incoming = listener.incoming();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder().serve_with_incoming(Reservations, incoming).await;
        });
        Self { listener, dialer, task }
    }

    /// A new client: a new `Channel`, connected (HTTP/2 handshake done).
    pub(crate) async fn connect(&self) -> GrpcClient {
        let dialer = self.dialer.clone();
        let connector = tower::service_fn(move |_: http::Uri| {
            let dialer = dialer.clone();
            async move { dialer.dial().await.map(hyper_util::rt::TokioIo::new) }
        });
        // The scheme says h2c; with TLS, the connector has done it already.
        let channel = Endpoint::from_static("http://bench.invalid")
            .connect_with_connector(connector)
            .await
            .expect("the gRPC channel connects");
        GrpcClient { inner: tonic::client::Grpc::new(channel) }
    }

    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

/// A client of the method, as tonic-build generates it.
#[derive(Debug, Clone)]
pub(crate) struct GrpcClient {
    inner: tonic::client::Grpc<Channel>,
}

impl GrpcClient {
    /// One call; panics unless it is answered with `ok`.
    pub(crate) async fn reserve(&mut self, request: FlatRequest) {
        self.inner.ready().await.expect("the channel is ready");
        let codec = ProstCodec::<FlatRequest, Ack>::default();
        let reply = self
            .inner
            .unary(Request::new(request), PathAndQuery::from_static(PATH), codec)
            .await
            .expect("the call is answered");
        assert!(reply.get_ref().ok);
    }
}

/// The service: routes the one path to [`ReserveSlot`].
#[derive(Debug, Clone, Copy)]
struct Reservations;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<Body>> for Reservations {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() == PATH {
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::<Ack, FlatRequest>::default());
                Ok(grpc.unary(ReserveSlot, request).await)
            })
        } else {
            Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) })
        }
    }
}

/// The handler: answers every request that carries parameters with `ok`.
#[derive(Debug, Clone, Copy)]
struct ReserveSlot;

impl tonic::server::UnaryService<FlatRequest> for ReserveSlot {
    type Response = Ack;
    type Future = Ready<Result<Response<Ack>, Status>>;

    fn call(&mut self, request: Request<FlatRequest>) -> Self::Future {
        std::future::ready(Ok(Response::new(Ack { ok: request.get_ref().params.is_some() })))
    }
}
