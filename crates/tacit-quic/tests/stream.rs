//! The stream lane over loopback: many messages each way, an explicit end,
//! and truncation told apart from the end.

use bytes::{BufMut, Bytes, BytesMut};
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
use tacit_quic::{Endpoint, Incoming, Session, StreamError};
use tacit_testkit::{LOCALHOST, within};
use tacit_wire::{Act, Envelope, ErrorCode, FrameEncoder, IntentId, IntentRef};

const FEED: IntentId = IntentId::from_bytes([4; 32]);

/// A server whose stream handler echoes every message and reports how its
/// receiving side ended.
async fn setup() -> (Endpoint, Session, tokio::sync::mpsc::UnboundedReceiver<Result<usize, StreamError>>) {
    let both = IntentOffer::handles(FEED, "t.Feed").and_emits();
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[1; 32]))
        .card(AgentCard::new("server"))
        .capabilities(Capabilities::default().with_intent(both.clone()))
        .bind(LOCALHOST)
        .await
        .unwrap();
    let (report, reports) = tokio::sync::mpsc::unbounded_channel();
    let accepting = server.clone();
    tokio::spawn(async move {
        while let Some(Ok(session)) = accepting.accept().await {
            let report = report.clone();
            tokio::spawn(async move {
                while let Some(incoming) = session.next_incoming().await {
                    let Incoming::Stream(mut stream) = incoming else { continue };
                    let report = report.clone();
                    tokio::spawn(async move {
                        assert_eq!(stream.envelope.act, Act::Subscribe);
                        let mut count = 0;
                        let outcome = loop {
                            match stream.receiver.recv().await {
                                Ok(Some(message)) => {
                                    count += 1;
                                    stream.sender.send(message.payload).await.unwrap();
                                }
                                Ok(None) => break Ok(count),
                                Err(e) => break Err(e),
                            }
                        };
                        if outcome.is_ok() {
                            stream.sender.finish().await.unwrap();
                        }
                        let _ = report.send(outcome);
                    });
                }
            });
        }
    });
    let client = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[2; 32]))
        .card(AgentCard::new("client"))
        .capabilities(Capabilities::default().with_intent(both))
        .bind(LOCALHOST)
        .await
        .unwrap();
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    within(session.ready()).await.unwrap();
    std::mem::forget(client);
    (server, session, reports)
}

#[tokio::test]
async fn many_messages_each_way_with_an_explicit_end() {
    let (_server, session, mut reports) = setup().await;
    let (mut sender, mut receiver) = within(session.open_stream(FEED, Bytes::from_static(b"subscribe"))).await.unwrap();
    for i in 0..500u32 {
        within(sender.send(Bytes::from(i.to_le_bytes().to_vec()))).await.unwrap();
    }
    within(sender.finish()).await.unwrap();
    for i in 0..500u32 {
        let message = within(receiver.recv()).await.unwrap().expect("a message, not the end");
        assert_eq!(&message.payload[..], i.to_le_bytes());
    }
    assert_eq!(within(receiver.recv()).await, Ok(None));
    assert_eq!(within(receiver.recv()).await, Ok(None));
    assert_eq!(within(reports.recv()).await.unwrap(), Ok(500));
}

#[tokio::test]
async fn truncation_and_abandonment_are_detected() {
    let (_server, session, mut reports) = setup().await;
    // A raw stream that opens properly, sends two messages, and finishes
    // without the end marker.
    let (mut send, _recv) = session.connection().open_bi().await.unwrap();
    let alias = session.negotiated().unwrap().send_alias(&FEED).unwrap();
    let mut bytes = BytesMut::new();
    bytes.put_u8(0x03);
    let encoder = FrameEncoder::default();
    encoder.encode(&Envelope::new(IntentRef::Alias(alias), Act::Subscribe, 1, Bytes::new()), &mut bytes).unwrap();
    for id in 2..4 {
        encoder.encode(&Envelope::new(IntentRef::Alias(alias), Act::Inform, id, Bytes::new()), &mut bytes).unwrap();
    }
    send.write_all(&bytes).await.unwrap();
    send.finish().unwrap();
    assert_eq!(within(reports.recv()).await.unwrap(), Err(StreamError::Truncated));

    // A sender abandoned with a reset: the peer sees the reset, with its code.
    let (mut sender, mut receiver) = within(session.open_stream(FEED, Bytes::new())).await.unwrap();
    within(sender.send(Bytes::from_static(b"one"))).await.unwrap();
    // Once the echo is back, the handler is running; then abandon the stream.
    assert_eq!(&within(receiver.recv()).await.unwrap().unwrap().payload[..], b"one");
    sender.reset(ErrorCode::Cancelled);
    assert_eq!(within(reports.recv()).await.unwrap(), Err(StreamError::Reset(ErrorCode::Cancelled as u64)));
}

#[tokio::test]
async fn a_dropped_sender_ends_its_direction_after_what_it_sent() {
    let (_server, session, mut reports) = setup().await;
    let (mut sender, mut receiver) = within(session.open_stream(FEED, Bytes::new())).await.unwrap();
    for i in 0..50u32 {
        within(sender.send(Bytes::from(i.to_le_bytes().to_vec()))).await.unwrap();
    }
    // Dropped, not finished, right after sending: nothing is lost, and the
    // peer sees the end, not a reset.
    drop(sender);
    assert_eq!(within(reports.recv()).await.unwrap(), Ok(50));
    for i in 0..50u32 {
        let message = within(receiver.recv()).await.unwrap().expect("a message, not the end");
        assert_eq!(&message.payload[..], i.to_le_bytes());
    }
    assert_eq!(within(receiver.recv()).await, Ok(None));
}

/// A server whose stream handler sends `count` messages and returns without
/// `finish()`, as a handler that ends with `return` or `?` does.
async fn dropping_server(count: u32) -> (Endpoint, Session) {
    let both = IntentOffer::handles(FEED, "t.Feed").and_emits();
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[5; 32]))
        .capabilities(Capabilities::default().with_intent(both.clone()))
        .bind(LOCALHOST)
        .await
        .unwrap();
    let accepting = server.clone();
    tokio::spawn(async move {
        while let Some(Ok(session)) = accepting.accept().await {
            tokio::spawn(async move {
                while let Some(incoming) = session.next_incoming().await {
                    let Incoming::Stream(mut stream) = incoming else { continue };
                    tokio::spawn(async move {
                        for i in 0..count {
                            let mut payload = vec![7u8; 2000];
                            payload[..4].copy_from_slice(&i.to_le_bytes());
                            stream.sender.send(Bytes::from(payload)).await.unwrap();
                        }
                    });
                }
            });
        }
    });
    let client = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[6; 32]))
        .capabilities(Capabilities::default().with_intent(both))
        .bind(LOCALHOST)
        .await
        .unwrap();
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    within(session.ready()).await.unwrap();
    std::mem::forget(client);
    (server, session)
}

#[tokio::test]
async fn a_handler_that_returns_without_finish_delivers_what_it_sent() {
    // Before: the client saw `Reset` and lost the message already sent.
    let (_server, session) = dropping_server(1).await;
    let (_sender, mut receiver) = within(session.open_stream(FEED, Bytes::new())).await.unwrap();
    let message = within(receiver.recv()).await.unwrap().expect("the message sent before the drop");
    assert_eq!(&message.payload[..4], 0u32.to_le_bytes());
    assert_eq!(within(receiver.recv()).await, Ok(None));

    // Many, larger than a packet each, so that some are still queued at the drop.
    let (_server, session) = dropping_server(200).await;
    let (_sender, mut receiver) = within(session.open_stream(FEED, Bytes::new())).await.unwrap();
    for i in 0..200u32 {
        let message = within(receiver.recv()).await.unwrap().expect("a message, not the end");
        assert_eq!(&message.payload[..4], i.to_le_bytes());
    }
    assert_eq!(within(receiver.recv()).await, Ok(None));
}

#[test]
fn stream_errors_name_their_codes() {
    let reset = StreamError::Reset(ErrorCode::InvalidStreamKind as u64);
    assert_eq!(reset.to_string(), "the peer reset the stream with INVALID_STREAM_KIND (0x307)");
    assert_eq!(StreamError::Reset(0x1234).to_string(), "the peer reset the stream with code 0x1234");
}

#[tokio::test]
async fn hundreds_of_lanes_open_at_once() {
    // A connection grants 16 streams at first and more as they are used, up
    // to `max_concurrent_streams` (512): 300 lanes held open together all
    // get through.
    let (_server, session, mut reports) = setup().await;
    let mut lanes = Vec::new();
    for i in 0..300u32 {
        let lane = within(session.open_stream(FEED, Bytes::from(i.to_le_bytes().to_vec()))).await.unwrap();
        lanes.push(lane);
    }
    for (i, (sender, receiver)) in lanes.iter_mut().enumerate() {
        within(sender.send(Bytes::from(i.to_le_bytes().to_vec()))).await.unwrap();
        let echo = within(receiver.recv()).await.unwrap().expect("the echo");
        assert_eq!(&echo.payload[..], i.to_le_bytes());
    }
    for (sender, mut receiver) in lanes {
        within(sender.finish()).await.unwrap();
        assert_eq!(within(receiver.recv()).await, Ok(None));
    }
    for _ in 0..300 {
        assert_eq!(within(reports.recv()).await.unwrap(), Ok(1));
    }
}
