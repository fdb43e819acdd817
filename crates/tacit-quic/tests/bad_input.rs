//! Malformed input from a peer with a valid identity, sent as raw QUIC
//! streams on its connection: each gets the documented code, and the
//! session (and other peers) keep working.

use bytes::{BufMut, Bytes, BytesMut};
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
use tacit_quic::{AskError, Endpoint, Session, TransportLimits};
use tacit_testkit::{LOCALHOST, echo, within};
use tacit_wire::{ErrorCode, IntentId};

const ECHO: IntentId = IntentId::from_bytes([1; 32]);

async fn server(limits: TransportLimits, caps: Capabilities) -> Endpoint {
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[1; 32]))
        .card(AgentCard::new("server"))
        .capabilities(caps.with_intent(IntentOffer::handles(ECHO, "t.Echo")))
        .limits(limits)
        .bind(LOCALHOST)
        .await
        .unwrap();
    echo::spawn(&server);
    server
}

async fn client(seed: u8, server: &Endpoint, caps: Capabilities) -> Session {
    let client = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[seed; 32]))
        .card(AgentCard::new("client"))
        .capabilities(caps.with_intent(IntentOffer::emits(ECHO, "t.Echo")))
        .bind(LOCALHOST)
        .await
        .unwrap();
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    within(session.ready()).await.unwrap();
    session
}

/// Opens a raw bidirectional stream, sends `bytes`, and returns the code the
/// server stopped it with.
async fn stop_code(session: &Session, bytes: &[u8]) -> Option<u64> {
    let (mut send, _recv) = session.connection().open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    within(send.stopped()).await.ok().flatten().map(|code| code.into_inner())
}

fn code(error: ErrorCode) -> Option<u64> {
    Some(error as u64)
}

async fn assert_still_works(sessions: &[&Session]) {
    for session in sessions {
        let reply = within(session.ask(ECHO, Bytes::from_static(b"still here"))).await.unwrap();
        assert_eq!(&reply.payload[..], b"still here");
    }
}

#[tokio::test]
async fn malformed_streams_get_their_codes_and_harm_no_one() {
    let server = server(TransportLimits::default(), Capabilities::default()).await;
    let bad = client(2, &server, Capabilities::default()).await;
    let good = client(3, &server, Capabilities::default()).await;
    assert_still_works(&[&bad, &good]).await;

    // An unknown stream kind.
    assert_eq!(stop_code(&bad, &[0x7f]).await, code(ErrorCode::InvalidStreamKind));
    // An overlong varint where the kind should be.
    assert_eq!(stop_code(&bad, &[0xff; 12]).await, code(ErrorCode::VarintOverlong));
    // An ask stream whose first frame announces more than the frame limit.
    let mut huge = BytesMut::new();
    huge.put_u8(0x01);
    tacit_wire::put_prefix(64 << 20, &mut huge);
    assert_eq!(stop_code(&bad, &huge).await, code(ErrorCode::FrameTooLarge));
    // An overlong frame length.
    let mut overlong = vec![0x01];
    overlong.extend_from_slice(&[0xff; 11]);
    assert_eq!(stop_code(&bad, &overlong).await, code(ErrorCode::VarintOverlong));
    // A well-framed envelope with an unknown act.
    let mut unknown_act = BytesMut::new();
    unknown_act.put_u8(0x01);
    unknown_act.put_slice(&[0x04, 0x08, 0x01, 0x18, 0x63]);
    assert_eq!(stop_code(&bad, &unknown_act).await, code(ErrorCode::UnknownAct));
    // A frame that is not protobuf.
    let mut garbage = BytesMut::new();
    garbage.put_u8(0x01);
    garbage.put_slice(&[0x03, 0xff, 0xff, 0xff]);
    assert_eq!(stop_code(&bad, &garbage).await, code(ErrorCode::MalformedMessage));
    // An envelope with no intent.
    assert_eq!(stop_code(&bad, &[0x01, 0x02, 0x18, 0x01]).await, code(ErrorCode::InvalidIntentRef));
    // Invalid UTF-8 in the conversation id.
    assert_eq!(
        stop_code(&bad, &[0x01, 0x07, 0x08, 0x01, 0x18, 0x01, 0x2a, 0x01, 0xff]).await,
        code(ErrorCode::InvalidUtf8)
    );

    // Both the misbehaving peer's session and another peer's still work.
    assert_still_works(&[&bad, &good]).await;
}

#[tokio::test]
async fn eight_megabytes_with_a_raised_limit() {
    let mut caps = Capabilities::default();
    caps.limits.max_frame_len(16 << 20);
    let server = server(TransportLimits::default(), caps.clone()).await;
    let session = client(4, &server, caps).await;
    let payload = Bytes::from((0..8 << 20).map(|i: u32| i as u8).collect::<Vec<u8>>());
    let reply = within(session.ask(ECHO, payload.clone())).await.unwrap();
    assert_eq!(reply.payload, payload);

    // With the default 1 MiB limit the same ask is refused before sending.
    let plain = server_and_client_default().await;
    match within(plain.ask(ECHO, payload)).await {
        Err(AskError::TooLarge { max, .. }) => assert_eq!(max, 1 << 20),
        other => panic!("{other:?}"),
    }
}

async fn server_and_client_default() -> Session {
    let server = server(TransportLimits::default(), Capabilities::default()).await;
    let session = client(5, &server, Capabilities::default()).await;
    // Keep the server alive as long as the test runs.
    std::mem::forget(server);
    session
}
