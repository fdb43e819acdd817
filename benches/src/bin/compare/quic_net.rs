//! The QUIC cases: raw quinn (`tacit_benches::raw_quic`, as in
//! `benches/quic.rs`), Tacit's session layer (`tacit_quic::Session::ask`)
//! and Tacit's agent API (`tacit::Peer::ask` with the generated
//! `ReserveSlot` intent, answered by a typed handler with `Ack`).
//!
//! Tacit's `TransportLimits` are the defaults (8 MiB / 2 MiB receive
//! windows, like raw) except: no keep-alive and a one-day idle timeout (raw
//! has neither) and many connections per peer (the connect case's closed
//! connections are released asynchronously, and the memory case opens
//! thousands from one identity).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use quinn::{Connection, Endpoint, VarInt};
use tacit::{Agent, Context, Intent as _, Peer};
use tacit_benches::intents::{Ack, ReserveSlot};
use tacit_benches::raw_quic::{self, LONG_LIVED, PER_MSG, Pipe, Received};
use tacit_handshake::{AgentCard, AgentId, Capabilities, Identity, IntentOffer};
use tacit_quic::{Session, TransportLimits};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// Connections one peer may hold to a Tacit endpoint here.
const MAX_CONNECTIONS_PER_PEER: usize = 1 << 20;

/// The `Ack` every Tacit server sends, encoded (2 bytes).
pub(crate) fn ack_payload() -> Bytes {
    Bytes::from(Ack { ok: true }.encode_to_vec())
}

/// The encoded reference request: the session-level ask's payload.
pub(crate) fn payload() -> Bytes {
    Bytes::from(reserve_slot().encode_to_vec())
}

/// The reference request as the generated Tacit intent.
pub(crate) fn reserve_slot() -> ReserveSlot {
    tacit_benches::reference::reserve_slot_intent()
}

/// Transport limits of every Tacit endpoint (see the module documentation).
pub(crate) fn tacit_limits(idle_defaults: bool) -> TransportLimits {
    let mut limits = TransportLimits::default();
    if !idle_defaults {
        limits.idle_timeout(Duration::from_secs(24 * 60 * 60)).keep_alive(None);
    }
    limits.max_connections_per_peer(MAX_CONNECTIONS_PER_PEER).max_pending_handshakes(1024);
    limits
}

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

// Raw quinn.

/// A raw quinn server and a client endpoint.
pub(crate) struct RawQuic {
    server: Endpoint,
    server_task: JoinHandle<()>,
    /// One message per server connection that has ended.
    server_closed: mpsc::UnboundedReceiver<()>,
    server_addr: SocketAddr,
    client: Endpoint,
}

/// The server half of [`RawQuic`], started on one runtime before its client
/// is added on another (the unpinned cases).
pub(crate) struct RawServer {
    server: Endpoint,
    server_task: JoinHandle<()>,
    server_closed: mpsc::UnboundedReceiver<()>,
    server_addr: SocketAddr,
}

impl RawServer {
    /// The server endpoint and its accept task, on the current runtime.
    pub(crate) fn start() -> Self {
        let server = Endpoint::server(raw_quic::server_config(), localhost()).expect("a server endpoint");
        let server_addr = server.local_addr().expect("a bound address");
        let (closed, server_closed) = mpsc::unbounded_channel();
        let server_task = tokio::spawn(raw_quic::serve(server.clone(), closed, Arc::new(Received::default())));
        Self { server, server_task, server_closed, server_addr }
    }

    /// Adds the client endpoint, on the current runtime.
    pub(crate) fn with_client(self) -> RawQuic {
        let Self { server, server_task, server_closed, server_addr } = self;
        let mut client = Endpoint::client(localhost()).expect("a client endpoint");
        client.set_default_client_config(raw_quic::client_config());
        RawQuic { server, server_task, server_closed, server_addr, client }
    }
}

impl RawQuic {
    pub(crate) fn start() -> Self {
        RawServer::start().with_client()
    }

    /// A new connection; `long_lived` picks the server's stream mode.
    pub(crate) async fn connect(&self, long_lived: bool) -> Connection {
        let name = if long_lived { LONG_LIVED } else { PER_MSG };
        let connecting = self.client.connect(self.server_addr, name).expect("a valid connection attempt");
        connecting.await.expect("the handshake succeeds")
    }

    /// A new connection, its handshake and a first request on a new stream;
    /// returns the time that took. Then closes the connection and waits
    /// until the server has seen it close (untimed).
    pub(crate) async fn connect_first_request(&mut self, request: &Bytes) -> Duration {
        let start = Instant::now();
        let connection = self.connect(false).await;
        raw_quic::request_on_new_stream(&connection, request).await;
        let elapsed = start.elapsed();
        connection.close(VarInt::from_u32(0), b"done");
        self.server_closed.recv().await.expect("the server sees the close");
        elapsed
    }

    pub(crate) async fn shutdown(self) {
        self.client.close(VarInt::from_u32(0), b"done");
        self.server.close(VarInt::from_u32(0), b"done");
        self.client.wait_idle().await;
        self.server.wait_idle().await;
        self.server_task.await.expect("the server stops cleanly");
    }
}

/// The raw quinn cases' connections and streams.
pub(crate) struct RawStreams {
    pub(crate) long_lived: Connection,
    pub(crate) rtt: Pipe,
    pub(crate) batch: Pipe,
    pub(crate) per_msg: Connection,
}

impl RawStreams {
    pub(crate) async fn open(raw: &RawQuic) -> Self {
        let long_lived = raw.connect(true).await;
        let rtt = Pipe::open(&long_lived).await;
        let batch = Pipe::open(&long_lived).await;
        let per_msg = raw.connect(false).await;
        Self { long_lived, rtt, batch, per_msg }
    }

    /// `total` requests, each on its own stream, from `in_flight` tasks.
    pub(crate) async fn stream_per_msg_batch(&self, request: &Bytes, total: usize, in_flight: usize) {
        let mut workers = JoinSet::new();
        for worker in 0..in_flight {
            let share = total / in_flight + usize::from(worker < total % in_flight);
            let (connection, request) = (self.per_msg.clone(), request.clone());
            workers.spawn(async move {
                for _ in 0..share {
                    raw_quic::request_on_new_stream(&connection, &request).await;
                }
            });
        }
        while let Some(worker) = workers.join_next().await {
            worker.expect("every request is acked");
        }
    }

    pub(crate) async fn close(mut self) {
        self.rtt.finish().await;
        self.batch.finish().await;
        self.long_lived.close(VarInt::from_u32(0), b"done");
        self.per_msg.close(VarInt::from_u32(0), b"done");
    }
}

// Tacit's session layer.

/// Two `tacit_quic` endpoints: the server replies `Ack` to every ask.
pub(crate) struct TacitSessions {
    server: tacit_quic::Endpoint,
    server_task: JoinHandle<()>,
    server_closed: mpsc::UnboundedReceiver<()>,
    server_addr: SocketAddr,
    server_id: AgentId,
    client: tacit_quic::Endpoint,
}

/// The server half of [`TacitSessions`] (see [`RawServer`]).
pub(crate) struct SessionServer {
    server: tacit_quic::Endpoint,
    server_task: JoinHandle<()>,
    server_closed: mpsc::UnboundedReceiver<()>,
    server_addr: SocketAddr,
    server_id: AgentId,
    idle_defaults: bool,
}

impl SessionServer {
    /// The server endpoint and its accept task, on the current runtime.
    pub(crate) async fn start(idle_defaults: bool) -> Self {
        let server_capabilities = Capabilities::default()
            .with_intent(IntentOffer::handles(ReserveSlot::ID, ReserveSlot::NAME))
            .with_intent(IntentOffer::emits(Ack::ID, Ack::NAME));
        let server = endpoint("bench-server", server_capabilities, idle_defaults).await;
        let server_addr = server.local_addr().expect("a bound address");
        let server_id = server.agent_id();
        let (closed, server_closed) = mpsc::unbounded_channel();
        let server_task = tokio::spawn(serve_sessions(server.clone(), closed));
        Self { server, server_task, server_closed, server_addr, server_id, idle_defaults }
    }

    /// Adds the client endpoint, on the current runtime.
    pub(crate) async fn with_client(self) -> TacitSessions {
        let Self { server, server_task, server_closed, server_addr, server_id, idle_defaults } = self;
        let client_capabilities = Capabilities::default()
            .with_intent(IntentOffer::emits(ReserveSlot::ID, ReserveSlot::NAME))
            .with_intent(IntentOffer::handles(Ack::ID, Ack::NAME));
        let client = endpoint("bench-client", client_capabilities, idle_defaults).await;
        TacitSessions { server, server_task, server_closed, server_addr, server_id, client }
    }
}

impl TacitSessions {
    pub(crate) async fn start(idle_defaults: bool) -> Self {
        SessionServer::start(idle_defaults).await.with_client().await
    }

    /// A new session (asks may be sent at once).
    pub(crate) async fn connect(&self) -> Session {
        self.client.connect(self.server_addr, Some(self.server_id)).await.expect("a session opens")
    }

    /// A new session, its first ask and the end of the capability handshake;
    /// returns the time that took. Then drops the session, which closes the
    /// connection, and waits until the server's handler has seen it end.
    pub(crate) async fn connect_first_ask(&mut self, payload: &Bytes) -> Duration {
        let start = Instant::now();
        let session = self.connect().await;
        session_ask(&session, payload).await;
        session.ready().await.expect("the capability handshake succeeds");
        let elapsed = start.elapsed();
        drop(session);
        self.server_closed.recv().await.expect("the server sees the close");
        elapsed
    }

    pub(crate) async fn shutdown(self) {
        let busy =
            self.client.shutdown(Duration::from_secs(1)).await + self.server.shutdown(Duration::from_secs(1)).await;
        assert_eq!(busy, 0, "nothing is left unanswered");
        self.server_task.await.expect("the Tacit server stops cleanly");
    }
}

async fn endpoint(name: &str, capabilities: Capabilities, idle_defaults: bool) -> tacit_quic::Endpoint {
    tacit_quic::Endpoint::builder()
        .identity(Identity::generate().expect("an identity"))
        .card(AgentCard::new(name))
        .capabilities(capabilities)
        .limits(tacit_limits(idle_defaults))
        .bind(localhost())
        .await
        .expect("a Tacit endpoint on loopback")
}

/// Accepts sessions until the endpoint closes; each gets a handler task that
/// replies to every ask at once and says on `closed` when the session ends.
async fn serve_sessions(endpoint: tacit_quic::Endpoint, closed: mpsc::UnboundedSender<()>) {
    let mut sessions = JoinSet::new();
    let ack = ack_payload();
    while let Some(accepted) = endpoint.accept().await {
        let Ok(session) = accepted else { continue };
        let (closed, ack) = (closed.clone(), ack.clone());
        sessions.spawn(async move {
            while let Some(incoming) = session.next_incoming().await {
                if let tacit_quic::Incoming::Ask(ask) = incoming {
                    ask.responder.reply(Ack::ID, ack.clone());
                }
            }
            drop(session);
            let _ = closed.send(());
        });
        while sessions.try_join_next().is_some() {}
    }
    while sessions.join_next().await.is_some() {}
}

/// One session-level ask with the encoded reference payload.
pub(crate) async fn session_ask(session: &Session, payload: &Bytes) {
    let reply = session.ask(ReserveSlot::ID, payload.clone()).await.expect("the ask is answered");
    assert_eq!(&reply.payload[..], &[0x08, 0x01], "an encoded Ack {{ ok: true }}");
}

// Tacit's agent API.

/// Two agents: the server handles `ReserveSlot` with a typed handler.
pub(crate) struct TacitAgents {
    server: Agent,
    client: Agent,
}

impl TacitAgents {
    pub(crate) async fn start(idle_defaults: bool) -> Self {
        Self::with_client(Self::server(idle_defaults).await, idle_defaults).await
    }

    /// The server agent, on the current runtime.
    pub(crate) async fn server(idle_defaults: bool) -> Agent {
        Agent::builder()
            .card(AgentCard::new("bench-server"))
            .limits(tacit_limits(idle_defaults))
            .on_ask(|_cx: Context, slot: ReserveSlot| async move {
                Ok(Ack { ok: slot.blob.len() == tacit_benches::reference::BLOB.len() })
            })
            .bind(localhost())
            .await
            .expect("a server agent")
    }

    /// Adds the client agent to `server`, on the current runtime.
    pub(crate) async fn with_client(server: Agent, idle_defaults: bool) -> Self {
        let client = Agent::builder()
            .card(AgentCard::new("bench-client"))
            .limits(tacit_limits(idle_defaults))
            .emits::<ReserveSlot>()
            .bind(localhost())
            .await
            .expect("a client agent");
        Self { server, client }
    }

    /// A new peer (a new connection; asks may be sent at once).
    pub(crate) async fn connect(&self) -> Peer {
        let addr = self.server.local_addr().expect("a bound address");
        self.client.connect(addr, self.server.id()).await.expect("the peer connects")
    }

    /// A new peer, its first typed ask and the end of the capability
    /// handshake; returns the time that took. Then closes the peer and waits
    /// until the server has seen its session end (untimed), as the raw and
    /// session cases wait for their servers.
    pub(crate) async fn connect_first_ask(&self, template: &ReserveSlot) -> Duration {
        let open = tacit_benches::open_sessions(&self.server);
        let start = Instant::now();
        let peer = self.connect().await;
        agent_ask(&peer, template).await;
        peer.ready().await.expect("the capability handshake succeeds");
        let elapsed = start.elapsed();
        peer.close();
        drop(peer);
        tacit_benches::sessions_ended(&self.server, open).await;
        elapsed
    }

    pub(crate) async fn shutdown(self) {
        let busy =
            self.client.shutdown(Duration::from_secs(1)).await + self.server.shutdown(Duration::from_secs(1)).await;
        assert_eq!(busy, 0, "nothing is left unanswered");
    }
}

/// One typed ask through the agent API: the request is built per call (a
/// clone of the template: five strings and the blob's handle), as a caller
/// builds each request.
pub(crate) async fn agent_ask(peer: &Peer, template: &ReserveSlot) {
    let ack: Ack = peer.ask(template.clone()).await.expect("the ask is answered");
    assert!(ack.ok);
}
