//! Raw quinn over loopback: the yardstick for Tacit's transport, shared by
//! `benches/benches/quic.rs` and the `compare` binary.
//!
//! - UDP over 127.0.0.1, quinn with rustls (ring), TLS 1.3 only, ALPN
//!   [`ALPN`], Ed25519 certificates both ways ([`crate::tls`]).
//! - [`transport`] on both sides: receive window 8 MiB per connection,
//!   2 MiB per stream, send window 8 MiB, 1024 concurrent bidirectional
//!   streams, no idle timeout; everything else quinn's default.
//! - Requests are length-prefixed frames; the reply is [`ACK_FRAME`]. The
//!   server ([`serve`]) counts whole frames (it does not decode them) and
//!   acks each. It tells the two stream uses apart by the server name the
//!   client connects with: on [`LONG_LIVED`] connections it acks every frame
//!   of a stream as it arrives, in order, one write per ack, and counts the
//!   frames of unidirectional streams (one-way messages); on [`PER_MSG`]
//!   connections it reads a stream to its end, checks it held one frame,
//!   writes the ack and finishes. Each accepted stream gets its own task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, Incoming, RecvStream, SendStream, TransportConfig, VarInt};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::frames::FrameCounter;
use crate::tls;

/// The ALPN id of the raw baseline.
pub const ALPN: &[u8] = b"tacit-raw/1";
/// Server name of connections whose streams carry many frames each.
pub const LONG_LIVED: &str = "long-lived";
/// Server name of connections that carry one request per stream.
pub const PER_MSG: &str = "per-msg";

/// Receive window per connection (and send window).
pub const CONNECTION_WINDOW: u32 = 8 << 20;
/// Receive window per stream.
pub const STREAM_WINDOW: u32 = 2 << 20;
/// Concurrent bidirectional streams each side lets its peer open.
pub const MAX_BIDI_STREAMS: u32 = 1024;
/// The reply: a 2-byte body, length-prefixed.
pub const ACK_FRAME: [u8; 3] = [2, b'o', b'k'];
/// The largest request the per-message server reads.
pub const MAX_REQUEST: usize = 64 * 1024;

// Configuration.

/// The transport parameters of both sides (see the module documentation).
pub fn transport() -> Arc<TransportConfig> {
    let mut transport = TransportConfig::default();
    transport
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .send_window(u64::from(CONNECTION_WINDOW))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_BIDI_STREAMS))
        // A connection sits idle while the other cases run, for longer than
        // quinn's default 30 s idle timeout under valgrind.
        .max_idle_timeout(None);
    Arc::new(transport)
}

/// The raw server's configuration: new credentials, [`ALPN`], [`transport`].
pub fn server_config() -> quinn::ServerConfig {
    let crypto = QuicServerConfig::try_from(tls::server_config(ALPN)).expect("a QUIC-capable TLS configuration");
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport());
    config
}

/// The raw client's configuration: new credentials, [`ALPN`], [`transport`].
pub fn client_config() -> quinn::ClientConfig {
    let crypto = QuicClientConfig::try_from(tls::client_config(ALPN)).expect("a QUIC-capable TLS configuration");
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport());
    config
}

// Counting one-way messages.

/// One-way messages a receiver has counted, and a way for the sender to
/// wait until it has counted a given number.
#[derive(Debug, Default)]
pub struct Received {
    count: AtomicU64,
    /// The count the sender waits for.
    target: AtomicU64,
    /// Notified when the count reaches the target.
    reached: Notify,
}

impl Received {
    /// Messages counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Counts `n` more messages.
    pub fn add(&self, n: u64) {
        let before = self.count.fetch_add(n, Ordering::SeqCst);
        let target = self.target.load(Ordering::SeqCst);
        if before < target && before + n >= target {
            self.reached.notify_one();
        }
    }

    /// Waits until `n` more messages than now have been counted; `start`
    /// sends them.
    pub async fn expect(&self, n: u64, start: impl Future<Output = ()>) {
        let target = self.count() + n;
        self.target.store(target, Ordering::SeqCst);
        start.await;
        while self.count() < target {
            self.reached.notified().await;
        }
    }
}

// The server.

/// Accepts connections until the endpoint closes; each gets a task.
pub async fn serve(endpoint: Endpoint, closed: mpsc::UnboundedSender<()>, tells: Arc<Received>) {
    let mut connections = JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        connections.spawn(serve_connection(incoming, closed.clone(), tells.clone()));
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

/// Serves one connection's streams until it closes, then says so on `closed`.
async fn serve_connection(incoming: Incoming, closed: mpsc::UnboundedSender<()>, tells: Arc<Received>) {
    if let Ok(connection) = incoming.await {
        let server_name = connection
            .handshake_data()
            .and_then(|data| data.downcast::<HandshakeData>().ok())
            .and_then(|data| data.server_name);
        let long_lived = server_name.as_deref() == Some(LONG_LIVED);
        let one_way = long_lived.then(|| tokio::spawn(count_one_way_frames(connection.clone(), tells)));
        let mut streams = JoinSet::new();
        while let Ok((send, recv)) = connection.accept_bi().await {
            if long_lived {
                streams.spawn(ack_each_frame(send, recv));
            } else {
                streams.spawn(ack_one_request(send, recv));
            }
            while streams.try_join_next().is_some() {}
        }
        while streams.join_next().await.is_some() {}
        if let Some(one_way) = one_way {
            let _ = one_way.await;
        }
    }
    // The receiver is gone only once the benchmark is over.
    let _ = closed.send(());
}

/// Counts the whole frames of every unidirectional stream of `connection`
/// (the raw tells) until it closes.
async fn count_one_way_frames(connection: Connection, tells: Arc<Received>) {
    let mut streams = JoinSet::new();
    while let Ok(mut recv) = connection.accept_uni().await {
        let tells = tells.clone();
        streams.spawn(async move {
            let mut frames = FrameCounter::default();
            while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX, true).await {
                tells.add(frames.feed(&chunk.bytes) as u64);
            }
        });
        while streams.try_join_next().is_some() {}
    }
    while streams.join_next().await.is_some() {}
}

/// A long-lived stream: acks every whole frame as it arrives, in order, one
/// write per ack (as a server answering each request would); finishes when
/// the client does.
async fn ack_each_frame(mut send: SendStream, mut recv: RecvStream) {
    let mut frames = FrameCounter::default();
    while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX, true).await {
        for _ in 0..frames.feed(&chunk.bytes) {
            if send.write_chunk(Bytes::from_static(&ACK_FRAME)).await.is_err() {
                return;
            }
        }
    }
    let _ = send.finish();
}

/// A stream per request: reads it to its end, acks and finishes; resets the
/// stream if it did not hold exactly one frame.
async fn ack_one_request(mut send: SendStream, mut recv: RecvStream) {
    let Ok(request) = recv.read_to_end(MAX_REQUEST).await else { return };
    let mut frames = FrameCounter::default();
    if frames.feed(&request) != 1 || !frames.at_boundary() {
        let _ = send.reset(VarInt::from_u32(1));
        return;
    }
    if send.write_chunk(Bytes::from_static(&ACK_FRAME)).await.is_ok() {
        let _ = send.finish();
    }
}

// The client side.

/// Both ends of one bidirectional stream, client side.
#[derive(Debug)]
pub struct Pipe {
    /// The sending half.
    pub send: SendStream,
    /// The receiving half.
    pub recv: RecvStream,
}

impl Pipe {
    /// Opens a bidirectional stream on `connection`.
    pub async fn open(connection: &Connection) -> Self {
        let (send, recv) = connection.open_bi().await.expect("a stream opens");
        Self { send, recv }
    }

    /// One request and its ack on this long-lived stream.
    pub async fn round_trip(&mut self, request: &Bytes) {
        self.send.write_chunk(request.clone()).await.expect("the request is sent");
        let mut ack = [0; ACK_FRAME.len()];
        self.recv.read_exact(&mut ack).await.expect("the ack arrives");
        assert_eq!(ack, ACK_FRAME);
    }

    /// `total` requests pipelined on this long-lived stream, `in_flight` at
    /// most unacked (one write per request, a request for each ack read);
    /// returns when all are acked.
    pub async fn pipelined(&mut self, request: &Bytes, total: usize, in_flight: usize) {
        let mut sent = 0;
        let mut acks = FrameCounter::default();
        let mut acked = 0;
        while acked < total {
            while sent < total && sent - acked < in_flight {
                self.send.write_chunk(request.clone()).await.expect("the request is sent");
                sent += 1;
            }
            let chunk = self.recv.read_chunk(usize::MAX, true).await.expect("acks arrive").expect("stream open");
            acked += acks.feed(&chunk.bytes);
        }
        assert!(acked == total && acks.at_boundary(), "{acked} acks for {total} requests");
    }

    /// Finishes the stream and checks that no ack is left over.
    pub async fn finish(&mut self) {
        self.send.finish().expect("the stream is open");
        let rest = self.recv.read_to_end(MAX_REQUEST).await.expect("the server finishes too");
        assert!(rest.is_empty(), "no ack is left over");
    }
}

/// A request on a new stream of `connection`: open, write, finish, read the
/// ack to the stream's end.
pub async fn request_on_new_stream(connection: &Connection, request: &Bytes) {
    let (mut send, mut recv) = connection.open_bi().await.expect("a stream opens");
    send.write_chunk(request.clone()).await.expect("the request is sent");
    send.finish().expect("the stream is open");
    let ack = recv.read_to_end(ACK_FRAME.len()).await.expect("the ack arrives");
    assert_eq!(ack, ACK_FRAME);
}
