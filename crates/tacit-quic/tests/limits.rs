//! Limits: each trips with its code while another peer's asks keep working.

use std::time::Duration;

use bytes::Bytes;
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
use tacit_quic::{Endpoint, Incoming, Session, SessionError, TransportLimits};
use tacit_testkit::fault::{FaultHandle, Faults, FaultySocket};
use tacit_testkit::{LOCALHOST, echo, within};
use tacit_wire::{ErrorCode, IntentId};

const ECHO: IntentId = IntentId::from_bytes([1; 32]);

async fn server(limits: TransportLimits) -> Endpoint {
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[1; 32]))
        .card(AgentCard::new("server"))
        .capabilities(Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo")))
        .limits(limits)
        .bind(LOCALHOST)
        .await
        .unwrap();
    echo::spawn(&server);
    server
}

async fn client_endpoint(seed: u8, limits: TransportLimits) -> Endpoint {
    Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[seed; 32]))
        .card(AgentCard::new("client"))
        .capabilities(Capabilities::default().with_intent(IntentOffer::emits(ECHO, "t.Echo")))
        .limits(limits)
        .bind(LOCALHOST)
        .await
        .unwrap()
}

async fn session(client: &Endpoint, server: &Endpoint) -> Session {
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    within(session.ready()).await.unwrap();
    session
}

async fn assert_works(session: &Session) {
    let reply = within(session.ask(ECHO, Bytes::from_static(b"ok"))).await.unwrap();
    assert_eq!(&reply.payload[..], b"ok");
}

fn closed_with(error: SessionError, code: ErrorCode) {
    match error {
        SessionError::Refused { refusal, .. } => assert_eq!(refusal.code, code),
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn connections_per_peer() {
    let mut limits = TransportLimits::default();
    limits.max_connections_per_peer(2);
    let server = server(limits).await;
    let greedy = client_endpoint(2, TransportLimits::default()).await;
    let other = client_endpoint(3, TransportLimits::default()).await;
    let first = session(&greedy, &server).await;
    let second = session(&greedy, &server).await;
    let third = within(greedy.connect(server.local_addr().unwrap(), None)).await.unwrap();
    closed_with(within(third.closed()).await, ErrorCode::TooManyConnections);
    // The first two and another peer's session keep working.
    let bystander = session(&other, &server).await;
    for s in [&first, &second, &bystander] {
        assert_works(s).await;
    }
    // Closing one frees a slot.
    first.close(ErrorCode::Unspecified, "done");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_works(&session(&greedy, &server).await).await;
}

#[tokio::test]
async fn stream_churn_closes_only_the_churner() {
    let mut limits = TransportLimits::default();
    limits.max_stream_rate(50);
    let server = server(limits).await;
    let churner = session(&client_endpoint(2, TransportLimits::default()).await, &server).await;
    let bystander = session(&client_endpoint(3, TransportLimits::default()).await, &server).await;
    // Open and reset streams as fast as possible.
    for _ in 0..200 {
        match churner.connection().open_bi().await {
            Ok((mut send, _recv)) => {
                let _ = send.write_all(&[0x01]).await;
                let _ = send.reset(quinn::VarInt::from_u32(0));
            }
            Err(_) => break,
        }
    }
    closed_with(within(churner.closed()).await, ErrorCode::StreamRateExceeded);
    assert_works(&bystander).await;
}

#[tokio::test]
async fn pending_handshakes_are_bounded() {
    let mut limits = TransportLimits::default();
    limits.max_pending_handshakes(1).handshake_timeout(Duration::from_secs(2));
    let server = server(limits).await;
    let established = session(&client_endpoint(2, TransportLimits::default()).await, &server).await;
    // A peer that completes TLS but never opens its control stream holds the
    // only handshake slot...
    let stalled =
        within(client_endpoint(3, TransportLimits::default()).await.connect_raw(server.local_addr().unwrap()))
            .await
            .unwrap();
    // ...so a new connection is refused at once,
    let mut quick = TransportLimits::default();
    quick.handshake_timeout(Duration::from_secs(1));
    let refused = client_endpoint(4, quick).await;
    assert!(within(refused.connect(server.local_addr().unwrap(), None)).await.is_err());
    // while established sessions keep working.
    assert_works(&established).await;
    // After the stalled handshake times out, the slot is free again.
    closed_with(within(stalled.closed()).await.into_session_error(), ErrorCode::HandshakeTimeout);
    assert_works(&session(&refused, &server).await).await;
}

#[tokio::test]
async fn idle_sessions_close_unless_kept_alive() {
    let mut idle = TransportLimits::default();
    idle.idle_timeout(Duration::from_millis(500)).keep_alive(None);
    let server = server(idle.clone()).await;
    let quiet = session(&client_endpoint(2, idle.clone()).await, &server).await;
    let mut alive = idle.clone();
    alive.keep_alive(Some(Duration::from_millis(100)));
    let kept = session(&client_endpoint(3, alive).await, &server).await;
    match within(quiet.closed()).await {
        SessionError::ConnectionLost(reason) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_works(&kept).await;
}

trait IntoSessionError {
    fn into_session_error(self) -> SessionError;
}

impl IntoSessionError for quinn::ConnectionError {
    fn into_session_error(self) -> SessionError {
        match self {
            quinn::ConnectionError::ApplicationClosed(close) => SessionError::Refused {
                refusal: tacit_handshake::Refusal::new(
                    ErrorCode::try_from(close.error_code.into_inner() as i32).unwrap_or(ErrorCode::Unspecified),
                    String::from_utf8_lossy(&close.reason),
                ),
                by_peer: true,
            },
            other => SessionError::ConnectionLost(other.to_string()),
        }
    }
}

#[tokio::test]
async fn receive_window_back_pressures_a_flooding_peer() {
    let mut limits = TransportLimits::default();
    limits.receive_window(256 * 1024).stream_receive_window(64 * 1024);
    // A server whose application never reads what the flooder sends.
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[1; 32]))
        .card(AgentCard::new("server"))
        .capabilities(Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo")))
        .limits(limits)
        .bind(LOCALHOST)
        .await
        .unwrap();
    let flooder = session(&client_endpoint(2, TransportLimits::default()).await, &server).await;
    let flooded = within(server.accept()).await.unwrap().unwrap();
    let bystander = session(&client_endpoint(3, TransportLimits::default()).await, &server).await;
    let bystander_side = within(server.accept()).await.unwrap().unwrap();
    tokio::spawn(async move {
        while let Some(Incoming::Ask(ask)) = bystander_side.next_incoming().await {
            let payload = ask.envelope.payload.clone();
            ask.responder.reply(ECHO, payload);
        }
    });

    // Flood 10,000 tells of 1 KiB (10 MiB) for one second.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let flooding = tokio::spawn(async move {
        for _ in 0..10_000 {
            flooder.tell(ECHO, Bytes::from(vec![7u8; 1024])).await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let queued = sent.load(std::sync::atomic::Ordering::SeqCst);
    // The flooder is held back: at most the server's queue (1024), its
    // receive window (256 KiB) and the sender's queue (256) worth of tells.
    assert!(queued < 1024 + 256 + 256 + 64, "{queued} tells went out unthrottled");
    assert!(!flooding.is_finished());
    // Another peer is not affected.
    assert_works(&bystander).await;
    flooding.abort();
    drop(flooded);
}

#[tokio::test]
async fn presets_work_end_to_end() {
    for limits in [TransportLimits::many_peers(), TransportLimits::bulk_transfer()] {
        let server = server(limits.clone()).await;
        let session = session(&client_endpoint(2, limits).await, &server).await;
        assert_works(&session).await;
    }
}

/// The acceptor gives a peer the handshake timeout for its control stream
/// from the end of the QUIC handshake, as the dialer counts, not from the
/// first packet: a peer whose QUIC handshake was slow (lost or delayed
/// datagrams) keeps its whole timeout.
#[tokio::test]
async fn control_stream_timeout_counts_from_the_end_of_the_quic_handshake() {
    let mut limits = TransportLimits::default();
    limits.handshake_timeout(Duration::from_secs(3));
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[1; 32]))
        .capabilities(Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo")))
        .limits(limits)
        .bind(LOCALHOST)
        .await
        .unwrap();
    // The client's datagrams take 1.5 s: the server sees its first packet at
    // 1.5 s and the end of the QUIC handshake (the client's Finished) at 3 s.
    let faults = FaultHandle::new(1);
    faults.set(Faults::none().delay(Duration::from_millis(1500), Duration::ZERO));
    let client = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[2; 32]))
        .bind_with_socket(FaultySocket::bind(LOCALHOST, &faults).unwrap())
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let connection = within(client.connect_raw(server.local_addr().unwrap())).await.unwrap();
    // The control stream's first byte reaches the server at 5.25 s: later than
    // the first packet + 3 s (4.5 s), within the QUIC handshake's end + 3 s (6 s).
    tokio::time::sleep_until(start + Duration::from_millis(3750)).await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    // The start of a frame whose length is still coming: the capability
    // handshake goes on.
    send.write_all(&[0x80]).await.unwrap();
    let accepted = within(server.accept()).await.unwrap();
    assert!(accepted.is_ok(), "the control stream was refused: {:?}", accepted.err());
}
