//! QUIC: raw quinn over loopback, the yardstick for Tacit's transport, and
//! Tacit's transport (`tacit-quic`) doing the same exchanges beside it, in
//! the same process and run; plus the measurement behind the stream mapping
//! of asks (one long-lived stream carrying many messages, or a new stream per
//! message).
//!
//! Everything runs in this one process on one current-thread tokio runtime:
//! the client and server endpoints, their connection drivers and the server's
//! stream tasks. Waking a thread on the other core of this VM costs about
//! 35 µs, so the figures measure QUIC, not cross-core wake-ups; run pinned.
//!
//! Setup of the raw cases (the code is in `tacit_benches::raw_quic` and
//! `tacit_benches::tls`, shared with the `compare` binary):
//!
//! - UDP over 127.0.0.1, quinn with rustls (ring), TLS 1.3 only, ALPN
//!   `tacit-raw/1`, Ed25519 self-signed certificates (rcgen) on both sides:
//!   the server requires a client certificate, as Tacit's does. The test
//!   verifiers accept any certificate (no CA, no name check) but do verify
//!   the TLS 1.3 handshake signatures, Ed25519 only, so a handshake does the
//!   same public-key work as Tacit's. The client never resumes a session
//!   (Tacit builds a client configuration per connection, so it cannot
//!   either); the server sends rustls's default session tickets.
//! - `TransportConfig` on both sides: receive window 8 MiB per connection,
//!   2 MiB per stream, send window 8 MiB, 1024 concurrent bidirectional
//!   streams, no idle timeout; everything else quinn's default.
//! - The request is the reference envelope of the wire benchmarks as it goes
//!   on a stream (varint length prefix + 324-byte body = 326 bytes); the reply
//!   is an ack frame, a 2-byte body `ok` framed the same way (3 bytes). The
//!   server counts whole frames (it does not decode them) and acks each.
//! - The server tells the two stream uses apart by the server name the client
//!   connects with: on `long-lived` connections it acks every frame of a
//!   stream as it arrives, in order, one write per ack, and counts the frames
//!   of unidirectional streams (the raw tells); on `per-msg` connections it
//!   reads a stream to its end, checks it held one frame, writes the ack and
//!   finishes. Each accepted stream gets its own server task.
//!
//! Setup of the Tacit cases: two `tacit_quic::Endpoint`s on 127.0.0.1 (the
//! same TLS 1.3 + Ed25519 work, ALPN `tacit/1`, the capability handshake on
//! a control stream), `TransportLimits` at their defaults (receive windows
//! 8 MiB per connection and 2 MiB per stream, like the raw ones) except a
//! one-day idle timeout and no keep-alive (the raw baseline has neither) and
//! 64 connections per peer (the connect case's closed connections are
//! released asynchronously). The client emits and the server handles `ReserveSlot`
//! (the reference intent id); the server emits the reply intent. The ask
//! payload is the reference `ReserveSlot` (258 bytes), which Tacit wraps in
//! its envelope (alias, act, message id): a 276-byte frame on the ask
//! stream, against the raw 326-byte frame, which is the reference envelope
//! with the full intent id and a conversation id. The reply payload is `ok`
//! (2 bytes), which `Responder::reply` sends with the full reply IntentId
//! and `in_reply_to` (a 59-byte frame). The server's handler is one task per
//! session looping over `next_incoming`: it replies to every ask at once and
//! counts tells. The printed table shows the frame sizes.
//!
//! Cases (group `quic/`), and what one iteration is:
//!
//! - `raw_long_lived/rtt`: on one long-lived bidirectional stream, write a
//!   request, read its ack (1 in flight).
//! - `raw_stream_per_msg/rtt`: `open_bi`, write the request and finish, read
//!   the ack to the stream's end (1 in flight).
//! - `tacit_ask/rtt`: `Session::ask` and its reply (1 in flight), on a
//!   long-lived session (its ask stream is long-lived).
//! - `raw_connect/first_request`: connect from the already bound client
//!   endpoint (TLS handshake included), then one request on a new stream as
//!   above. Closing the connection afterwards is not timed.
//! - `tacit_connect/first_ask`: `Endpoint::connect` from the already bound
//!   client endpoint (a new connection), the first ask (pipelined behind
//!   `Hello`, as the API allows) and its reply, and `Session::ready` (the
//!   capability handshake done on both sides). Dropping the session, which
//!   closes the connection, is not timed.
//! - `raw_long_lived/throughput64`: 64 × 16 requests pipelined on one
//!   long-lived stream, 64 in flight: one write per request, a new one
//!   written as each ack arrives.
//! - `raw_stream_per_msg/throughput64`: 64 × 16 requests on 64 concurrent
//!   streams (64 client tasks, each doing stream-per-message round trips).
//! - `tacit_ask/throughput64`: 64 × 16 asks from 64 concurrent tasks on the
//!   long-lived session, each asking again as its reply arrives.
//! - `raw_long_lived/tell_throughput`: 64 × 16 request frames written one
//!   way on a long-lived unidirectional stream, one write per frame; done
//!   when the server has counted all of them.
//! - `tacit_agent/rtt` and `tacit_agent/throughput64`: the same through the
//!   agent API (the `tacit` crate): `peer.ask(ReserveSlot { .. })` with the
//!   intent generated by tacit-build (a clone of the reference request per
//!   ask, as a caller builds each request), answered by a typed handler with
//!   `Ack { ok: true }`; both agents with the same limits as the sessions
//!   (but no bound on connections per peer). `tacit_agent_connect/first_ask`:
//!   `agent.connect`, the first typed ask and `peer.ready()`; closing the
//!   peer and waiting for its connection to close is not timed.
//! - `tacit_tell/throughput`: 64 × 16 `Session::tell`s of the ask payload;
//!   done when the server's handler has received all of them.
//!
//! Every iteration is complete when it returns: every request sent has been
//! acked or received, and after a connect iteration the server has seen the
//! connection close. Every timed batch is bounded (60 s); at the end the
//! sessions, connections and endpoints are closed and the server tasks
//! joined.
//!
//! Before criterion runs, prints p50/p90/p99 latency per message of the
//! round-trip cases (20,000 round trips each; 500 connects), messages per
//! second of the throughput cases (200,000 messages each), and allocations
//! and UDP datagrams per message (both ends, both directions). Each Tacit
//! case is measured interleaved with its raw counterpart (10 alternating
//! rounds), and its row shows the ratio to it (tacit / raw, for latency and
//! for throughput). `TACIT_BENCH_QUICK=1` shrinks those counts to a smoke
//! test, as does criterion's test mode (`cargo test --benches`).
//!
//! Run with `taskset -c 0 cargo bench -p tacit-benches --bench quic`.

use std::future::Future;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use prost::Message as _;
use quinn::{Connection, Endpoint, SendStream, VarInt};
use tacit_benches::alloc_count::{self, CountingAlloc};
use tacit_benches::intents::{Ack, ReserveSlot};
use tacit_benches::raw_quic::{
    ACK_FRAME, CONNECTION_WINDOW, LONG_LIVED, MAX_BIDI_STREAMS, PER_MSG, Pipe, Received, STREAM_WINDOW, client_config,
    request_on_new_stream, serve, server_config,
};
use tacit_benches::reference;
use tacit_handshake::{AgentCard, AgentId, Capabilities, Identity, IntentOffer};
use tacit_quic::{Session, TransportLimits};
use tacit_wire::{Act, Envelope, FrameEncoder, IntentId, IntentRef};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Messages in flight in the throughput cases.
const IN_FLIGHT: usize = 64;
/// Messages per criterion iteration of the throughput cases: 64 × 16.
const BATCH: usize = IN_FLIGHT * 16;
/// Bound on any one timed batch, setup or shutdown.
const LIMIT: Duration = Duration::from_secs(60);
/// Alternating rounds in which the printed table measures a Tacit case and
/// its raw counterpart, so that both see the same state of the machine.
const ROUNDS: usize = 10;

/// The intent of Tacit's asks and tells: the reference `ReserveSlot`.
const REQUEST_INTENT: IntentId = IntentId::from_bytes(reference::INTENT_ID);
/// The intent of Tacit's replies (a fixed id).
const REPLY_INTENT: IntentId = IntentId::from_bytes([0xac; 32]);
/// The payload of Tacit's replies: the raw ack's 2-byte body.
const REPLY_PAYLOAD: &[u8] = b"ok";

// Tacit's server.

/// Transport limits of both Tacit endpoints (see the module documentation).
fn tacit_limits() -> TransportLimits {
    let mut limits = TransportLimits::default();
    // A session sits idle while the other cases run. The raw baseline has no
    // idle timeout and so no keep-alives; `TransportLimits` cannot turn the
    // timeout off (0 makes quinn refuse every connection as stale), so a day.
    limits.idle_timeout(Duration::from_secs(24 * 60 * 60)).keep_alive(None).max_connections_per_peer(64);
    limits
}

/// A Tacit endpoint on loopback with a new identity.
async fn tacit_endpoint(name: &str, capabilities: Capabilities) -> tacit_quic::Endpoint {
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    tacit_quic::Endpoint::builder()
        .identity(Identity::generate().expect("an identity"))
        .card(AgentCard::new(name))
        .capabilities(capabilities)
        .limits(tacit_limits())
        .bind(localhost)
        .await
        .expect("a Tacit endpoint on loopback")
}

/// Accepts sessions until the endpoint closes; each gets a handler task.
async fn serve_tacit(endpoint: tacit_quic::Endpoint, closed: mpsc::UnboundedSender<()>, tells: Arc<Received>) {
    let mut sessions = JoinSet::new();
    while let Some(accepted) = endpoint.accept().await {
        let session = accepted.expect("every session is accepted");
        sessions.spawn(handle_session(session, closed.clone(), tells.clone()));
        while sessions.try_join_next().is_some() {}
    }
    while sessions.join_next().await.is_some() {}
}

/// The handler of one session: replies to every ask at once, counts tells;
/// says on `closed` when the session has ended.
async fn handle_session(session: Session, closed: mpsc::UnboundedSender<()>, tells: Arc<Received>) {
    while let Some(incoming) = session.next_incoming().await {
        match incoming {
            tacit_quic::Incoming::Ask(ask) => ask.responder.reply(REPLY_INTENT, Bytes::from_static(REPLY_PAYLOAD)),
            tacit_quic::Incoming::Tell(_) => tells.add(1),
            _ => {}
        }
    }
    drop(session);
    let _ = closed.send(());
}

/// Tacit's side: both endpoints and the long-lived session, set up once.
struct TacitNet {
    server: tacit_quic::Endpoint,
    server_task: JoinHandle<()>,
    /// One message per server session that has ended.
    server_closed: mpsc::UnboundedReceiver<()>,
    server_addr: SocketAddr,
    server_id: AgentId,
    client: tacit_quic::Endpoint,
    /// The session of the ask and tell cases.
    session: Session,
    /// Tells the server's handlers have received.
    tells: Arc<Received>,
    /// The ask (and tell) payload: the encoded reference `ReserveSlot`.
    payload: Bytes,
}

impl TacitNet {
    async fn new() -> Self {
        let server_capabilities = Capabilities::default()
            .with_intent(IntentOffer::handles(REQUEST_INTENT, "tacit.bench.v1.ReserveSlot"))
            .with_intent(IntentOffer::emits(REPLY_INTENT, "tacit.bench.v1.Ack"));
        let client_capabilities = Capabilities::default()
            .with_intent(IntentOffer::emits(REQUEST_INTENT, "tacit.bench.v1.ReserveSlot"))
            .with_intent(IntentOffer::handles(REPLY_INTENT, "tacit.bench.v1.Ack"));
        let server = tacit_endpoint("bench-server", server_capabilities).await;
        let server_addr = server.local_addr().expect("a bound address");
        let server_id = server.agent_id();
        let tells = Arc::new(Received::default());
        let (closed, server_closed) = mpsc::unbounded_channel();
        let server_task = tokio::spawn(serve_tacit(server.clone(), closed, tells.clone()));
        let client = tacit_endpoint("bench-client", client_capabilities).await;
        let session = client.connect(server_addr, Some(server_id)).await.expect("a session opens");
        session.ready().await.expect("the capability handshake succeeds");
        let payload = Bytes::from(reference::reserve_slot().encode_to_vec());
        Self { server, server_task, server_closed, server_addr, server_id, client, session, tells, payload }
    }

    /// The frames the Tacit cases send, as (ask or tell, reply) lengths with
    /// their prefixes, encoded as the session does after the handshake.
    fn frame_lens(&self) -> (usize, usize) {
        let negotiated = self.session.negotiated().expect("the handshake is done");
        let alias = negotiated.send_alias(&REQUEST_INTENT).expect("the request intent is negotiated");
        // Message ids are random 64-bit numbers, sent as fixed64.
        let ask = Envelope::new(IntentRef::Alias(alias), Act::Request, u64::MAX, self.payload.clone());
        let mut reply = Envelope::new(IntentRef::Id(REPLY_INTENT), Act::Inform, u64::MAX, REPLY_PAYLOAD.into());
        reply.in_reply_to = u64::MAX;
        let framed =
            |envelope: &Envelope| FrameEncoder::default().encode_to_bytes(envelope).expect("a small frame").len();
        (framed(&ask), framed(&reply))
    }

    /// `tacit_ask/rtt`: one ask and its reply on the long-lived session.
    async fn ask_rtt(&self) {
        ask(&self.session, &self.payload).await;
    }

    /// `tacit_ask/throughput64`: `total` asks from [`IN_FLIGHT`] tasks, each
    /// asking again as its reply arrives; returns when all are answered.
    async fn ask_batch(&self, total: usize) {
        let mut workers = JoinSet::new();
        for worker in 0..IN_FLIGHT {
            let share = total / IN_FLIGHT + usize::from(worker < total % IN_FLIGHT);
            let (session, payload) = (self.session.clone(), self.payload.clone());
            workers.spawn(async move {
                for _ in 0..share {
                    ask(&session, &payload).await;
                }
            });
        }
        while let Some(worker) = workers.join_next().await {
            worker.expect("every ask is answered");
        }
    }

    /// `tacit_tell/throughput`: `total` tells; returns when the server's
    /// handler has received all of them.
    async fn tell_batch(&self, total: usize) {
        self.tells
            .expect(total as u64, async {
                for _ in 0..total {
                    self.session.tell(REQUEST_INTENT, self.payload.clone()).await.expect("the tell is queued");
                }
            })
            .await;
    }

    /// `tacit_connect/first_ask`: a new session, its first ask and the end
    /// of the capability handshake; returns the time that took. Then drops
    /// the session, which closes the connection, and waits until the
    /// server's handler has seen it end (untimed).
    async fn connect_first_ask(&mut self) -> Duration {
        let start = Instant::now();
        let session = self.client.connect(self.server_addr, Some(self.server_id)).await.expect("a session opens");
        ask(&session, &self.payload).await;
        session.ready().await.expect("the capability handshake succeeds");
        let elapsed = start.elapsed();
        drop(session);
        self.server_closed.recv().await.expect("the server sees the close");
        elapsed
    }

    /// Ends the session, shuts both endpoints down and joins the server task.
    async fn shutdown(self) {
        let Self { server, server_task, mut server_closed, client, session, .. } = self;
        drop(session);
        server_closed.recv().await.expect("the server sees the close");
        let busy = client.shutdown(Duration::from_secs(1)).await + server.shutdown(Duration::from_secs(1)).await;
        assert_eq!(busy, 0, "nothing is left unanswered");
        server_task.await.expect("the Tacit server stops cleanly");
    }
}

/// One ask with the reference payload, and a check of its reply.
async fn ask(session: &Session, payload: &Bytes) {
    let reply = session.ask(REQUEST_INTENT, payload.clone()).await.expect("the ask is answered");
    assert_eq!(&reply.payload[..], REPLY_PAYLOAD);
}

// Tacit's agent API.

/// Two agents (the `tacit` crate) and a peer of the client's on the server.
struct AgentNet {
    server: tacit::Agent,
    client: tacit::Agent,
    peer: tacit::Peer,
    /// The request every ask clones.
    template: ReserveSlot,
}

impl AgentNet {
    async fn new() -> Self {
        let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        // The connect case's closed connections are released by the server
        // asynchronously: no per-peer bound to trip on.
        let mut limits = tacit_limits();
        limits.max_connections_per_peer(1 << 20);
        let server = tacit::Agent::builder()
            .card(AgentCard::new("bench-server"))
            .limits(limits.clone())
            .on_ask(|_cx: tacit::Context, slot: ReserveSlot| async move {
                Ok(Ack { ok: slot.blob.len() == reference::BLOB.len() })
            })
            .bind(localhost)
            .await
            .expect("a server agent");
        let client = tacit::Agent::builder()
            .card(AgentCard::new("bench-client"))
            .limits(limits)
            .emits::<ReserveSlot>()
            .bind(localhost)
            .await
            .expect("a client agent");
        let addr = server.local_addr().expect("a bound address");
        let peer = client.connect(addr, server.id()).await.expect("the peer connects");
        peer.ready().await.expect("the capability handshake succeeds");
        Self { server, client, peer, template: reference::reserve_slot_intent() }
    }

    /// `tacit_agent/rtt`.
    async fn ask_rtt(&self) {
        agent_ask(&self.peer, &self.template).await;
    }

    /// `tacit_agent_connect/first_ask`: a new peer (a new connection), its
    /// first typed ask and the end of the capability handshake; returns the
    /// time that took. Then closes the peer and waits until the server has
    /// seen its session end (untimed), as the raw and session cases do.
    async fn connect_first_ask(&self) -> Duration {
        let open = tacit_benches::open_sessions(&self.server);
        let start = Instant::now();
        let addr = self.server.local_addr().expect("a bound address");
        let peer = self.client.connect(addr, self.server.id()).await.expect("the peer connects");
        agent_ask(&peer, &self.template).await;
        peer.ready().await.expect("the capability handshake succeeds");
        let elapsed = start.elapsed();
        peer.close();
        drop(peer);
        tacit_benches::sessions_ended(&self.server, open).await;
        elapsed
    }

    /// `tacit_agent/throughput64`: as `tacit_ask/throughput64`.
    async fn ask_batch(&self, total: usize) {
        let mut workers = JoinSet::new();
        for worker in 0..IN_FLIGHT {
            let share = total / IN_FLIGHT + usize::from(worker < total % IN_FLIGHT);
            let (peer, template) = (self.peer.clone(), self.template.clone());
            workers.spawn(async move {
                for _ in 0..share {
                    agent_ask(&peer, &template).await;
                }
            });
        }
        while let Some(worker) = workers.join_next().await {
            worker.expect("every ask is answered");
        }
    }

    async fn shutdown(self) {
        let Self { server, client, peer, .. } = self;
        drop(peer);
        let busy = client.shutdown(Duration::from_secs(1)).await + server.shutdown(Duration::from_secs(1)).await;
        assert_eq!(busy, 0, "nothing is left unanswered");
    }
}

/// One typed ask of a clone of `template`, and a check of its reply.
async fn agent_ask(peer: &tacit::Peer, template: &ReserveSlot) {
    let ack: Ack = peer.ask(template.clone()).await.expect("the ask is answered");
    assert!(ack.ok);
}

// The client side: the cases.

/// The endpoints, connections and streams every case uses, set up once.
struct Net {
    server: Endpoint,
    server_task: JoinHandle<()>,
    /// One message per server connection that has ended.
    server_closed: mpsc::UnboundedReceiver<()>,
    server_addr: SocketAddr,
    client: Endpoint,
    long_lived: Connection,
    /// The long-lived stream of `raw_long_lived/rtt`.
    rtt_stream: Pipe,
    /// The long-lived stream of `raw_long_lived/throughput64`.
    batch_stream: Pipe,
    /// The long-lived unidirectional stream of `raw_long_lived/tell_throughput`.
    tell_stream: SendStream,
    /// Frames the server has counted on unidirectional streams.
    tells: Arc<Received>,
    per_msg: Connection,
    /// One request frame.
    request: Bytes,
    /// Tacit's side.
    tacit: TacitNet,
    /// Tacit's agent API.
    agents: AgentNet,
}

impl Net {
    async fn new() -> Self {
        let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let server = Endpoint::server(server_config(), localhost).expect("a server endpoint on loopback");
        let server_addr = server.local_addr().expect("a bound address");
        let (closed, server_closed) = mpsc::unbounded_channel();
        let tells = Arc::new(Received::default());
        let server_task = tokio::spawn(serve(server.clone(), closed, tells.clone()));
        let mut client = Endpoint::client(localhost).expect("a client endpoint on loopback");
        client.set_default_client_config(client_config());
        let connect = |name| {
            let connecting = client.connect(server_addr, name).expect("a valid connection attempt");
            async move { connecting.await.expect("the handshake succeeds") }
        };
        let long_lived = connect(LONG_LIVED).await;
        let per_msg = connect(PER_MSG).await;
        let rtt_stream = Pipe::open(&long_lived).await;
        let batch_stream = Pipe::open(&long_lived).await;
        let tell_stream = long_lived.open_uni().await.expect("a stream opens");
        let request = reference::framed_envelope().freeze();
        let tacit = TacitNet::new().await;
        let agents = AgentNet::new().await;
        Self {
            server,
            server_task,
            server_closed,
            server_addr,
            client,
            long_lived,
            rtt_stream,
            batch_stream,
            tell_stream,
            tells,
            per_msg,
            request,
            tacit,
            agents,
        }
    }

    /// `raw_long_lived/rtt`: one request and its ack on the long-lived stream.
    async fn long_lived_rtt(&mut self) {
        self.rtt_stream.round_trip(&self.request).await;
    }

    /// `raw_stream_per_msg/rtt`: one request and its ack on a new stream.
    async fn stream_per_msg_rtt(&self) {
        request_on_new_stream(&self.per_msg, &self.request).await;
    }

    /// `raw_long_lived/throughput64`: `total` requests pipelined on the
    /// long-lived stream, [`IN_FLIGHT`] in flight (one write per request, a
    /// request for each ack read); returns when all are acked.
    async fn long_lived_batch(&mut self, total: usize) {
        self.batch_stream.pipelined(&self.request, total, IN_FLIGHT).await;
    }

    /// `raw_long_lived/tell_throughput`: `total` request frames written one
    /// way on the long-lived unidirectional stream, one write each; returns
    /// when the server has counted all of them.
    async fn tell_batch(&mut self, total: usize) {
        let (stream, request) = (&mut self.tell_stream, &self.request);
        self.tells
            .expect(total as u64, async {
                for _ in 0..total {
                    stream.write_chunk(request.clone()).await.expect("the frame is sent");
                }
            })
            .await;
    }

    /// `raw_stream_per_msg/throughput64`: `total` requests, each on its own
    /// stream, from [`IN_FLIGHT`] tasks; returns when all are acked.
    async fn stream_per_msg_batch(&self, total: usize) {
        let mut workers = JoinSet::new();
        for worker in 0..IN_FLIGHT {
            let share = total / IN_FLIGHT + usize::from(worker < total % IN_FLIGHT);
            let connection = self.per_msg.clone();
            let request = self.request.clone();
            workers.spawn(async move {
                for _ in 0..share {
                    request_on_new_stream(&connection, &request).await;
                }
            });
        }
        while let Some(worker) = workers.join_next().await {
            worker.expect("every request is acked");
        }
    }

    /// `raw_connect/first_request`: a new connection, its handshake and a
    /// first request on a new stream; returns the time that took. Then closes
    /// the connection and waits until the server has seen it close (untimed).
    async fn connect_first_request(&mut self) -> Duration {
        let start = Instant::now();
        let connecting = self.client.connect(self.server_addr, PER_MSG).expect("a valid connection attempt");
        let connection = connecting.await.expect("the handshake succeeds");
        request_on_new_stream(&connection, &self.request).await;
        let elapsed = start.elapsed();
        connection.close(VarInt::from_u32(0), b"done");
        self.server_closed.recv().await.expect("the server sees the close");
        elapsed
    }

    /// Closes everything and joins the server's tasks.
    async fn shutdown(mut self) {
        self.tacit.shutdown().await;
        self.agents.shutdown().await;
        for stream in [&mut self.rtt_stream, &mut self.batch_stream] {
            stream.finish().await;
        }
        self.tell_stream.finish().expect("the stream is open");
        self.long_lived.close(VarInt::from_u32(0), b"done");
        self.per_msg.close(VarInt::from_u32(0), b"done");
        self.client.close(VarInt::from_u32(0), b"done");
        self.server.close(VarInt::from_u32(0), b"done");
        self.client.wait_idle().await;
        self.server.wait_idle().await;
        self.server_task.await.expect("the server stops cleanly");
    }
}

/// The cases, in the order criterion runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    LongLivedRtt,
    StreamPerMsgRtt,
    TacitAskRtt,
    TacitAgentRtt,
    ConnectFirstRequest,
    TacitConnectFirstAsk,
    TacitAgentConnectFirstAsk,
    LongLivedThroughput,
    StreamPerMsgThroughput,
    TacitAskThroughput,
    TacitAgentThroughput,
    LongLivedTellThroughput,
    TacitTellThroughput,
}

impl Case {
    const ALL: [Self; 13] = [
        Self::LongLivedRtt,
        Self::StreamPerMsgRtt,
        Self::TacitAskRtt,
        Self::TacitAgentRtt,
        Self::ConnectFirstRequest,
        Self::TacitConnectFirstAsk,
        Self::TacitAgentConnectFirstAsk,
        Self::LongLivedThroughput,
        Self::StreamPerMsgThroughput,
        Self::TacitAskThroughput,
        Self::TacitAgentThroughput,
        Self::LongLivedTellThroughput,
        Self::TacitTellThroughput,
    ];

    /// The benchmark name, without the group.
    fn name(self) -> &'static str {
        match self {
            Self::LongLivedRtt => "raw_long_lived/rtt",
            Self::StreamPerMsgRtt => "raw_stream_per_msg/rtt",
            Self::TacitAskRtt => "tacit_ask/rtt",
            Self::TacitAgentRtt => "tacit_agent/rtt",
            Self::ConnectFirstRequest => "raw_connect/first_request",
            Self::TacitConnectFirstAsk => "tacit_connect/first_ask",
            Self::TacitAgentConnectFirstAsk => "tacit_agent_connect/first_ask",
            Self::LongLivedThroughput => "raw_long_lived/throughput64",
            Self::StreamPerMsgThroughput => "raw_stream_per_msg/throughput64",
            Self::TacitAskThroughput => "tacit_ask/throughput64",
            Self::TacitAgentThroughput => "tacit_agent/throughput64",
            Self::LongLivedTellThroughput => "raw_long_lived/tell_throughput",
            Self::TacitTellThroughput => "tacit_tell/throughput",
        }
    }

    /// Requests per operation.
    fn messages(self) -> usize {
        if self.is_throughput() { BATCH } else { 1 }
    }

    fn is_throughput(self) -> bool {
        match self {
            Self::LongLivedThroughput
            | Self::StreamPerMsgThroughput
            | Self::TacitAskThroughput
            | Self::TacitAgentThroughput
            | Self::LongLivedTellThroughput
            | Self::TacitTellThroughput => true,
            Self::LongLivedRtt
            | Self::StreamPerMsgRtt
            | Self::TacitAskRtt
            | Self::TacitAgentRtt
            | Self::ConnectFirstRequest
            | Self::TacitConnectFirstAsk
            | Self::TacitAgentConnectFirstAsk => false,
        }
    }

    fn is_connect(self) -> bool {
        matches!(self, Self::ConnectFirstRequest | Self::TacitConnectFirstAsk | Self::TacitAgentConnectFirstAsk)
    }
}

/// The rows of the printed table: each raw case, and the Tacit case compared
/// with it, if any.
const ROWS: [(Case, &[Case]); 6] = [
    (Case::LongLivedRtt, &[Case::TacitAskRtt, Case::TacitAgentRtt]),
    (Case::StreamPerMsgRtt, &[]),
    (Case::ConnectFirstRequest, &[Case::TacitConnectFirstAsk, Case::TacitAgentConnectFirstAsk]),
    (Case::LongLivedThroughput, &[Case::TacitAskThroughput, Case::TacitAgentThroughput]),
    (Case::StreamPerMsgThroughput, &[]),
    (Case::LongLivedTellThroughput, &[Case::TacitTellThroughput]),
];

impl Net {
    /// The connection `case` sends its messages over; none for connects,
    /// which make their own.
    fn connection(&self, case: Case) -> Option<&Connection> {
        match case {
            Case::LongLivedRtt | Case::LongLivedThroughput | Case::LongLivedTellThroughput => Some(&self.long_lived),
            Case::StreamPerMsgRtt | Case::StreamPerMsgThroughput => Some(&self.per_msg),
            Case::TacitAskRtt | Case::TacitAskThroughput | Case::TacitTellThroughput => {
                Some(self.tacit.session.connection())
            }
            Case::TacitAgentRtt | Case::TacitAgentThroughput => None,
            Case::ConnectFirstRequest | Case::TacitConnectFirstAsk | Case::TacitAgentConnectFirstAsk => None,
        }
    }

    /// UDP datagrams sent and received so far on `case`'s connection.
    fn datagrams(&self, case: Case) -> Option<u64> {
        let stats = self.connection(case)?.stats();
        Some(stats.udp_tx.datagrams + stats.udp_rx.datagrams)
    }

    /// One operation of `case`, complete when it returns; returns its timed
    /// part (all of it but the close after a connect).
    async fn once(&mut self, case: Case) -> Duration {
        let start = Instant::now();
        match case {
            Case::LongLivedRtt => self.long_lived_rtt().await,
            Case::StreamPerMsgRtt => self.stream_per_msg_rtt().await,
            Case::TacitAskRtt => self.tacit.ask_rtt().await,
            Case::TacitAgentRtt => self.agents.ask_rtt().await,
            Case::ConnectFirstRequest => return self.connect_first_request().await,
            Case::TacitConnectFirstAsk => return self.tacit.connect_first_ask().await,
            Case::TacitAgentConnectFirstAsk => return self.agents.connect_first_ask().await,
            _ => self.batch(case, BATCH).await,
        }
        start.elapsed()
    }

    /// `total` messages of throughput case `case`, complete when it returns.
    async fn batch(&mut self, case: Case, total: usize) {
        match case {
            Case::LongLivedThroughput => self.long_lived_batch(total).await,
            Case::StreamPerMsgThroughput => self.stream_per_msg_batch(total).await,
            Case::TacitAskThroughput => self.tacit.ask_batch(total).await,
            Case::TacitAgentThroughput => self.agents.ask_batch(total).await,
            Case::LongLivedTellThroughput => self.tell_batch(total).await,
            Case::TacitTellThroughput => self.tacit.tell_batch(total).await,
            _ => unreachable!("{} is not a throughput case", case.name()),
        }
    }
}

/// Runs `future` on the runtime, failing if it takes longer than [`LIMIT`].
fn run<F: Future>(rt: &Runtime, future: F) -> F::Output {
    rt.block_on(async { tokio::time::timeout(LIMIT, future).await.expect("finished within the time limit") })
}

// The printed table.

/// How many operations the printed table measures.
#[derive(Debug, Clone, Copy)]
struct Counts {
    /// How long each case runs untimed first. (After only 1,000 untimed
    /// round trips, the first case measured in the process came out up to
    /// half again slower than later.)
    warm_up: Duration,
    /// Timed round trips per round-trip case.
    round_trips: usize,
    /// Timed connects.
    connects: usize,
    /// Messages per throughput case.
    throughput_messages: usize,
    /// Operations counted for allocations: round trips, connects, batches.
    alloc_ops: [u64; 3],
    /// Alternating rounds of a Tacit case and its raw counterpart.
    rounds: usize,
}

impl Counts {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                warm_up: Duration::from_millis(10),
                round_trips: 500,
                connects: 10,
                throughput_messages: BATCH,
                alloc_ops: [20, 2, 1],
                rounds: 2,
            }
        } else {
            Self {
                warm_up: Duration::from_millis(500),
                round_trips: 20_000,
                connects: 500,
                throughput_messages: 200_000,
                alloc_ops: [1_000, 50, 10],
                rounds: ROUNDS,
            }
        }
    }
}

/// Latency percentiles of a set of samples, in microseconds.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        // Nearest rank.
        let at = |p: f64| micros(samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]);
        let mean = samples.iter().copied().map(micros).sum::<f64>() / samples.len() as f64;
        let max = micros(*samples.last().expect("at least one sample"));
        Self { p50: at(0.50), p90: at(0.90), p99: at(0.99), max, mean }
    }
}

/// Runs `case` untimed for `duration` (at least once).
fn run_for(rt: &Runtime, net: &mut Net, case: Case, duration: Duration) {
    let end = Instant::now() + duration;
    run(rt, async {
        net.once(case).await;
        while Instant::now() < end {
            net.once(case).await;
        }
    });
}

/// What the table measured of one case.
struct Measured {
    /// Latency per operation (round-trip and connect cases).
    samples: Vec<Duration>,
    /// Time of all batches (throughput cases).
    elapsed: Duration,
    /// UDP datagrams over the measurement; none without a fixed connection.
    datagrams: Option<u64>,
}

/// Measures `cases` in `rounds` alternating rounds, `ops` operations each in
/// all (round trips, connects, or messages of a throughput case).
fn measure_interleaved(rt: &Runtime, net: &mut Net, cases: &[Case], ops: usize, rounds: usize) -> Vec<Measured> {
    let mut measured: Vec<Measured> = cases
        .iter()
        .map(|_| Measured { samples: Vec::with_capacity(ops), elapsed: Duration::ZERO, datagrams: Some(0) })
        .collect();
    for round in 0..rounds {
        let n = ops / rounds + usize::from(round < ops % rounds);
        if n == 0 {
            continue;
        }
        for (&case, m) in cases.iter().zip(&mut measured) {
            let (before, after) = run(rt, async {
                let before = net.datagrams(case);
                if case.is_throughput() {
                    let start = Instant::now();
                    net.batch(case, n).await;
                    m.elapsed += start.elapsed();
                } else {
                    for _ in 0..n {
                        m.samples.push(net.once(case).await);
                    }
                }
                (before, net.datagrams(case))
            });
            m.datagrams = match (m.datagrams, before, after) {
                (Some(sum), Some(before), Some(after)) => Some(sum + after - before),
                _ => None,
            };
        }
    }
    measured
}

/// Prints latency, throughput and allocations per message of every case,
/// and the ratio of each Tacit case to its raw counterpart.
fn print_table(rt: &Runtime, net: &mut Net, counts: Counts, quick: bool) {
    let Counts { warm_up, round_trips, connects, throughput_messages, alloc_ops, rounds } = counts;
    println!(
        "raw quinn and Tacit (tacit-quic) over loopback, clients and servers on one current-thread runtime{}",
        if quick { " (quick counts)" } else { "" }
    );
    let (tacit_request, tacit_reply) = net.tacit.frame_lens();
    println!(
        "raw: request frame {} bytes, ack frame {} bytes; Tacit: ask and tell frame {tacit_request} bytes \
         ({}-byte ReserveSlot payload), reply frame {tacit_reply} bytes ({}-byte payload)",
        net.request.len(),
        ACK_FRAME.len(),
        net.tacit.payload.len(),
        REPLY_PAYLOAD.len(),
    );
    println!(
        "raw: receive windows {} MiB/connection, {} MiB/stream, {MAX_BIDI_STREAMS} bidi streams; \
         Tacit: TransportLimits defaults but no keep-alive, 1-day idle timeout",
        CONNECTION_WINDOW >> 20,
        STREAM_WINDOW >> 20,
    );
    println!(
        "each Tacit case runs in {rounds} rounds alternating with the raw case above it; \
         x raw = tacit / raw, same run"
    );
    println!(
        "latency per operation, 1 in flight ({round_trips} round trips; {connects} connects; \
         each case after {} ms warm-up):",
        warm_up.as_millis()
    );
    println!(
        "  {:<36} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10} {:>8} {:>8}",
        "benchmark", "p50 µs", "p90 µs", "p99 µs", "max µs", "mean µs", "allocs/op", "dgrams/op", "p50 x", "p99 x"
    );
    for (raw, tacit) in ROWS.into_iter().filter(|(raw, _)| !raw.is_throughput()) {
        let cases: Vec<Case> = std::iter::once(raw).chain(tacit.iter().copied()).collect();
        let count = if raw.is_connect() { connects } else { round_trips };
        for &case in &cases {
            run_for(rt, net, case, warm_up);
        }
        let measured = measure_interleaved(rt, net, &cases, count, rounds);
        let mut raw_latency = None;
        for (&case, m) in cases.iter().zip(measured) {
            let latency = Latency::of(m.samples);
            let ops = alloc_ops[usize::from(case.is_connect())];
            let allocs = alloc_count::measure(1, ops, || run(rt, net.once(case)));
            let (p50, p99) = match raw_latency {
                Some(Latency { p50, p99, .. }) => {
                    (format!("{:.2}", latency.p50 / p50), format!("{:.2}", latency.p99 / p99))
                }
                None => ("-".to_owned(), "-".to_owned()),
            };
            println!(
                "  quic/{:<31} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>10.1} {:>10} {p50:>8} {p99:>8}",
                case.name(),
                latency.p50,
                latency.p90,
                latency.p99,
                latency.max,
                latency.mean,
                allocs.allocations,
                per_op(m.datagrams, count),
            );
            raw_latency.get_or_insert(latency);
        }
    }
    println!(
        "throughput ({throughput_messages} messages; asks and requests {IN_FLIGHT} in flight, tells one way until \
         all are received; each case after {} ms warm-up):",
        warm_up.as_millis()
    );
    println!(
        "  {:<36} {:>12} {:>8} {:>10} {:>10} {:>8}",
        "benchmark", "msgs/s", "µs/msg", "allocs/msg", "dgrams/msg", "x raw"
    );
    for (raw, tacit) in ROWS.into_iter().filter(|(raw, _)| raw.is_throughput()) {
        let cases: Vec<Case> = std::iter::once(raw).chain(tacit.iter().copied()).collect();
        for &case in &cases {
            run_for(rt, net, case, warm_up);
        }
        let measured = measure_interleaved(rt, net, &cases, throughput_messages, rounds);
        let mut raw_rate = None;
        for (&case, m) in cases.iter().zip(measured) {
            let rate = throughput_messages as f64 / m.elapsed.as_secs_f64();
            let allocs = alloc_count::measure(1, alloc_ops[2], || run(rt, net.once(case)));
            let ratio = raw_rate.map_or_else(|| "-".to_owned(), |raw| format!("{:.2}", rate / raw));
            println!(
                "  quic/{:<31} {:>12.0} {:>8.2} {:>10.1} {:>10} {ratio:>8}",
                case.name(),
                rate,
                1e6 / rate,
                allocs.allocations / case.messages() as f64,
                per_op(m.datagrams, throughput_messages),
            );
            raw_rate.get_or_insert(rate);
        }
    }
    let overhead = alloc_count::measure(1, 100, || run(rt, async {}));
    println!(
        "(allocations and UDP datagrams: both directions, both ends; an empty `run` allocates {} times)",
        overhead.allocations
    );
    println!();
}

/// Datagrams per operation, formatted; `-` without a fixed connection.
fn per_op(datagrams: Option<u64>, ops: usize) -> String {
    datagrams.map_or_else(|| "-".to_owned(), |datagrams| format!("{:.2}", datagrams as f64 / ops as f64))
}

fn bench_quic(c: &mut Criterion, rt: &Runtime, net: &mut Net) {
    let mut group = c.benchmark_group("quic");
    for case in Case::ALL {
        if case.messages() > 1 {
            group.throughput(Throughput::Elements(case.messages() as u64));
        }
        // Connects and batches take milliseconds per iteration: fewer
        // samples keep the run short.
        group.sample_size(if case.is_connect() || case.is_throughput() { 20 } else { 100 });
        group.bench_function(case.name(), |b| {
            b.iter_custom(|iters| {
                run(rt, async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += black_box(net.once(case).await);
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

/// Runs the case named `name` (as criterion names it, without the group)
/// once, for `TACIT_BENCH_REPEAT`.
fn run_case(rt: &Runtime, net: &mut Net, name: &str) -> bool {
    let Some(case) = Case::ALL.into_iter().find(|case| case.name() == name) else { return false };
    run(rt, net.once(case));
    true
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let mut net = run(&rt, Net::new());
    // `TACIT_BENCH_REPEAT=CASE:N` (e.g. `raw_long_lived/rtt:1000`) runs one
    // case N times and exits, for instruction counts under callgrind (see
    // benches/instructions.sh).
    if let Ok(spec) = std::env::var("TACIT_BENCH_REPEAT") {
        let (name, count) = spec.rsplit_once(':').expect("TACIT_BENCH_REPEAT=CASE:N");
        let count: u64 = count.parse().expect("N is a number");
        assert!(count == 0 || run_case(&rt, &mut net, name), "unknown case {name}");
        for _ in 1..count {
            run_case(&rt, &mut net, name);
        }
        run(&rt, net.shutdown());
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|arg| arg == name);
    // `--list` output is for tools; keep it to the benchmark names.
    if !flag("--list") {
        // Criterion's test mode (`cargo test --benches`, or `--test`) runs
        // each benchmark once; keep the table to a smoke test there too.
        let test_mode = !flag("--bench") || flag("--test");
        let quick = test_mode || std::env::var("TACIT_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        print_table(&rt, &mut net, Counts::new(quick), quick);
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_quic(&mut criterion, &rt, &mut net);
    run(&rt, net.shutdown());
    criterion.final_summary();
}
