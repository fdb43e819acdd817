//! The wire rules of docs/PROTOCOL.md that issue 13 settled (Framing to
//! QUIC mapping), each checked over the real endpoint by a raw quinn peer
//! that speaks the protocol by hand. Every test names the rule labels it
//! checks; each failed against the behaviour before the rule was settled
//! (or pins behaviour the rule now makes normative).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer, Lanes};
use tacit_quic::{AskError, Endpoint, Incoming, TransportLimits};
use tacit_testkit::echo::{self, ECHO};
use tacit_testkit::{LOCALHOST, within};
use tacit_wire::{Act, Envelope, ErrorCode, FrameDecoder, IntentId, IntentRef, pb};

async fn endpoint(seed: u8, caps: Capabilities, limits: TransportLimits) -> Endpoint {
    Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[seed; 32]))
        .card(AgentCard::new("rules"))
        .capabilities(caps)
        .limits(limits)
        .bind(LOCALHOST)
        .await
        .unwrap()
}

/// An echo server: it handles `ECHO` (alias 1 in its table).
async fn echo_server() -> Endpoint {
    let server =
        endpoint(1, Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo")), Default::default())
            .await;
    echo::spawn(&server);
    server
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    tacit_wire::put_prefix(body.len() as u64, &mut out);
    out.put_slice(body);
    out.to_vec()
}

fn control(message: pb::control_message::Message) -> Vec<u8> {
    frame(&pb::ControlMessage { message: Some(message) }.encode_to_vec())
}

fn hello(versions: (u32, u32), intents: Vec<pb::IntentOffer>) -> Vec<u8> {
    control(pb::control_message::Message::Hello(pb::Hello {
        card: Some(pb::AgentCard { name: "raw".into(), ..Default::default() }),
        capabilities: Some(pb::Capabilities {
            versions: Some(pb::VersionRange { min: versions.0, max: versions.1 }),
            intents,
            limits: Some(pb::Limits { max_frame_len: 1 << 20, max_concurrent_asks: 256 }),
            features: 0,
        }),
        credentials: Vec::new(),
    }))
}

// Defaults for whatever fields later versions add to an offer.
#[allow(clippy::needless_update)]
fn offer(id: IntentId, handles: bool, emits: bool) -> pb::IntentOffer {
    pb::IntentOffer {
        intent_id: Bytes::copy_from_slice(id.as_bytes()),
        name: "t.Echo".into(),
        handles,
        emits,
        ..Default::default()
    }
}

/// Reads frames off `recv` into `buffer` until one is whole.
async fn next_frame(recv: &mut quinn::RecvStream, buffer: &mut BytesMut) -> Option<Bytes> {
    let mut decoder = FrameDecoder::new(1 << 20);
    loop {
        if let Some(frame) = decoder.decode(buffer).unwrap() {
            return Some(frame);
        }
        match within(recv.read_chunk(64 * 1024, true)).await {
            Ok(Some(chunk)) => buffer.extend_from_slice(&chunk.bytes),
            _ => return None,
        }
    }
}

async fn next_control(recv: &mut quinn::RecvStream, buffer: &mut BytesMut) -> Option<pb::control_message::Message> {
    let frame = next_frame(recv, buffer).await?;
    pb::ControlMessage::decode(frame).unwrap().message
}

async fn next_envelope(recv: &mut quinn::RecvStream, buffer: &mut BytesMut) -> Option<Envelope> {
    next_frame(recv, buffer).await.map(|frame| Envelope::decode(frame).unwrap())
}

/// A raw peer after the capability handshake: the connection and its
/// control stream.
struct Raw {
    connection: quinn::Connection,
    control_send: quinn::SendStream,
    control_recv: quinn::RecvStream,
    buffer: BytesMut,
}

async fn raw(seed: u8, server: &Endpoint, intents: Vec<pb::IntentOffer>) -> Raw {
    let client = endpoint(seed, Capabilities::default(), Default::default()).await;
    let connection = within(client.connect_raw(server.local_addr().unwrap())).await.unwrap();
    let (mut control_send, mut control_recv) = connection.open_bi().await.unwrap();
    control_send.write_all(&hello((1, 1), intents)).await.unwrap();
    let mut buffer = BytesMut::new();
    let welcome = next_control(&mut control_recv, &mut buffer).await;
    assert!(matches!(welcome, Some(pb::control_message::Message::Welcome(_))), "{welcome:?}");
    // The client endpoint must outlive the connection.
    std::mem::forget(client);
    Raw { connection, control_send, control_recv, buffer }
}

fn ask(intent: IntentRef, act: Act, id: u64) -> Vec<u8> {
    frame(&Envelope::new(intent, act, id, Bytes::from_static(b"hi")).encode_to_bytes())
}

fn refusal(reply: &Envelope) -> (Act, ErrorCode) {
    let refusal = pb::Refusal::decode(reply.payload.clone()).unwrap();
    (reply.act, ErrorCode::try_from(refusal.code).unwrap())
}

fn close_code(error: &quinn::ConnectionError) -> Option<u64> {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => Some(close.error_code.into_inner()),
        _ => None,
    }
}

/// `[hs.refusal-sent]`: whoever refuses a handshake sends `Refusal` on the
/// control stream, then closes the connection with the same code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_sends_the_refusal_before_the_close() {
    let server = echo_server().await;
    let client = endpoint(2, Capabilities::default(), Default::default()).await;
    let connection = within(client.connect_raw(server.local_addr().unwrap())).await.unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&hello((2, 2), vec![offer(ECHO, false, true)])).await.unwrap();
    let mut buffer = BytesMut::new();
    match next_control(&mut recv, &mut buffer).await {
        Some(pb::control_message::Message::Refusal(refusal)) => {
            assert_eq!(refusal.code, ErrorCode::NoCommonVersion as i32, "{refusal:?}");
            assert!(!refusal.reason.is_empty());
        }
        other => panic!("expected a Refusal before the close, got {other:?}"),
    }
    let closed = within(connection.closed()).await;
    assert_eq!(close_code(&closed), Some(ErrorCode::NoCommonVersion as u64), "{closed:?}");
}

/// `[ask.truncated]`, `[streams.truncated]`: an ask stream that ends inside
/// a frame gets its reply direction reset with `FRAME_TRUNCATED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_ask_frame_is_reset_with_frame_truncated() {
    let server = echo_server().await;
    let raw = raw(3, &server, vec![offer(ECHO, false, true)]).await;
    let (mut send, mut recv) = raw.connection.open_bi().await.unwrap();
    // Kind, then a frame announcing 10 bytes of which 3 arrive, then FIN.
    send.write_all(&[0x01, 10, 1, 2, 3]).await.unwrap();
    send.finish().unwrap();
    let read = within(recv.read_chunk(1024, true)).await;
    match read {
        Err(quinn::ReadError::Reset(code)) => assert_eq!(code.into_inner(), ErrorCode::FrameTruncated as u64),
        other => panic!("expected a reset with FRAME_TRUNCATED, got {other:?}"),
    }
    // The session goes on: another ask stream is served.
    let (mut send, mut recv) = raw.connection.open_bi().await.unwrap();
    let mut bytes = vec![0x01];
    bytes.extend(ask(IntentRef::Id(ECHO), Act::Request, 1));
    send.write_all(&bytes).await.unwrap();
    let reply = next_envelope(&mut recv, &mut BytesMut::new()).await.unwrap();
    assert_eq!((reply.act, reply.in_reply_to), (Act::Inform, 1));
}

/// `[ask.error-intent]`, `[ask.unknown-alias]`: error answers name the
/// request's intent by its full IntentId, never by an alias (an alias of the
/// receiver's table means nothing in the reply direction); an alias outside
/// the table is answered `NOT_UNDERSTOOD` / `INTENT_NOT_NEGOTIATED` and
/// named by the zero IntentId.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_name_the_intent_by_full_id() {
    let server = echo_server().await;
    let raw = raw(4, &server, vec![offer(ECHO, false, true)]).await;
    let (mut send, mut recv) = raw.connection.open_bi().await.unwrap();
    let mut bytes = vec![0x01];
    // Alias 1 is ECHO in the server's table; INFORM is not an ask.
    bytes.extend(ask(IntentRef::Alias(1), Act::Inform, 1));
    bytes.extend(ask(IntentRef::Alias(99), Act::Request, 2));
    send.write_all(&bytes).await.unwrap();
    let mut buffer = BytesMut::new();
    let mut replies =
        [next_envelope(&mut recv, &mut buffer).await.unwrap(), next_envelope(&mut recv, &mut buffer).await.unwrap()];
    replies.sort_by_key(|reply| reply.in_reply_to);
    assert_eq!(refusal(&replies[0]), (Act::NotUnderstood, ErrorCode::ProtocolViolation));
    assert_eq!(replies[0].intent, IntentRef::Id(ECHO));
    assert_eq!(refusal(&replies[1]), (Act::NotUnderstood, ErrorCode::IntentNotNegotiated));
    assert_eq!(replies[1].intent, IntentRef::Id(IntentId::from_bytes([0; 32])));
}

/// `[streams.kind-type]`, `[streams.error]`: a known kind on the wrong QUIC
/// stream type is `INVALID_STREAM_KIND`: a unidirectional stream is stopped,
/// a bidirectional one stopped and reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_on_the_wrong_stream_type_are_invalid() {
    let server = echo_server().await;
    let raw = raw(5, &server, vec![offer(ECHO, false, true)]).await;
    let expected = Some(ErrorCode::InvalidStreamKind as u64);
    for kind in [0x01u8, 0x03] {
        let mut send = raw.connection.open_uni().await.unwrap();
        send.write_all(&[kind]).await.unwrap();
        let stopped = within(send.stopped()).await.ok().flatten().map(|c| c.into_inner());
        assert_eq!(stopped, expected, "kind {kind:#x} on a unidirectional stream");
    }
    let (mut send, mut recv) = raw.connection.open_bi().await.unwrap();
    send.write_all(&[0x02]).await.unwrap();
    let stopped = within(send.stopped()).await.ok().flatten().map(|c| c.into_inner());
    assert_eq!(stopped, expected, "kind 0x02 on a bidirectional stream");
    match within(recv.read_chunk(16, true)).await {
        Err(quinn::ReadError::Reset(code)) => assert_eq!(Some(code.into_inner()), expected),
        other => panic!("expected a reset, got {other:?}"),
    }
}

/// `[streams.error]`, `[ask.error-answered]`, `[ask.many-streams]`: a
/// malformed envelope stops the ask stream with its code, asks read before
/// it are still answered and the reply direction then ends normally; a
/// second ask stream of the same peer is served alongside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_read_before_a_stream_error_are_answered() {
    let server = echo_server().await;
    let raw = raw(6, &server, vec![offer(ECHO, false, true)]).await;
    let (mut first_send, mut first_recv) = raw.connection.open_bi().await.unwrap();
    let (mut second_send, mut second_recv) = raw.connection.open_bi().await.unwrap();
    let mut bytes = vec![0x01];
    bytes.extend(ask(IntentRef::Id(ECHO), Act::Request, 1));
    bytes.extend(frame(&[0xff]));
    first_send.write_all(&bytes).await.unwrap();
    let stopped = within(first_send.stopped()).await.ok().flatten().map(|c| c.into_inner());
    assert_eq!(stopped, Some(ErrorCode::MalformedMessage as u64));
    let mut buffer = BytesMut::new();
    let reply = next_envelope(&mut first_recv, &mut buffer).await.unwrap();
    assert_eq!((reply.act, reply.in_reply_to), (Act::Inform, 1));
    assert!(next_envelope(&mut first_recv, &mut buffer).await.is_none(), "the reply direction ends after the answers");
    let mut bytes = vec![0x01];
    bytes.extend(ask(IntentRef::Id(ECHO), Act::Request, 2));
    second_send.write_all(&bytes).await.unwrap();
    let reply = next_envelope(&mut second_recv, &mut BytesMut::new()).await.unwrap();
    assert_eq!((reply.act, reply.in_reply_to), (Act::Inform, 2));
}

/// `[ask.reopen]`: after the peer stopped its ask stream, the asker's next
/// ask goes out on a new ask stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asker_opens_a_new_ask_stream_after_a_stream_error() {
    let server =
        endpoint(7, Capabilities::default().with_intent(IntentOffer::emits(ECHO, "t.Echo")), Default::default()).await;
    let accepting = tokio::spawn({
        let server = server.clone();
        async move { server.accept().await.unwrap().unwrap() }
    });
    let raw = raw(8, &server, vec![offer(ECHO, true, false)]).await;
    let session = within(accepting).await.unwrap();
    within(session.ready()).await.unwrap();
    let asking = tokio::spawn({
        let session = session.clone();
        async move { session.ask(ECHO, Bytes::from_static(b"one")).await }
    });
    // The raw peer stops the first ask stream as if it were malformed.
    let (first_send, mut first_recv) = within(raw.connection.accept_bi()).await.unwrap();
    let request = read_ask(&mut first_recv).await;
    assert_eq!(request.act, Act::Request);
    first_recv.stop(quinn::VarInt::from_u32(ErrorCode::MalformedMessage as u32)).unwrap();
    drop(first_send);
    let first = within(asking).await.unwrap();
    assert!(first.is_err(), "{first:?}");
    // The next ask arrives on a second ask stream, and is answered there.
    let asking = tokio::spawn({
        let session = session.clone();
        async move { session.ask(ECHO, Bytes::from_static(b"two")).await }
    });
    let (mut send, mut recv) = within(raw.connection.accept_bi()).await.unwrap();
    let request = read_ask(&mut recv).await;
    assert_eq!(&request.payload[..], b"two");
    let mut reply = Envelope::new(IntentRef::Id(ECHO), Act::Inform, 9, Bytes::from_static(b"owt"));
    reply.in_reply_to = request.message_id;
    send.write_all(&frame(&reply.encode_to_bytes())).await.unwrap();
    let answer = within(asking).await.unwrap().unwrap();
    assert_eq!(&answer.payload[..], b"owt");
}

/// The first request of an ask stream the peer opened (after its kind byte).
async fn read_ask(recv: &mut quinn::RecvStream) -> Envelope {
    let mut buffer = BytesMut::new();
    while buffer.is_empty() {
        let chunk = within(recv.read_chunk(64 * 1024, true)).await.unwrap().unwrap();
        buffer.extend_from_slice(&chunk.bytes);
    }
    assert_eq!(buffer[0], 0x01, "an ask stream starts with kind 0x01");
    bytes::Buf::advance(&mut buffer, 1);
    next_envelope(recv, &mut buffer).await.unwrap()
}

/// `[dgram.unsupported]`: a datagram for a peer that did not advertise
/// `max_datagram_frame_size` is a typed error, not a silent drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_to_a_peer_without_them_are_an_error() {
    let mut limits = TransportLimits::default();
    limits.datagram_receive_buffer(0);
    let server = endpoint(9, Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo")), limits).await;
    echo::spawn(&server);
    let client =
        endpoint(10, Capabilities::default().with_intent(IntentOffer::emits(ECHO, "t.Echo")), Default::default()).await;
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    within(session.ready()).await.unwrap();
    let sent = session.send_datagram(ECHO, Bytes::from_static(b"hi")).await;
    assert_eq!(sent, Err(AskError::DatagramsUnsupported));
}

/// `[limits.concurrent-asks]`: the bound on pipelined asks is the
/// receiver's `max_concurrent_asks`, over all of a peer's ask streams; asks
/// beyond it are answered `REFUSE` / `TOO_MANY_ASKS` and the rest run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_beyond_max_concurrent_asks_are_refused() {
    let mut caps = Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo"));
    caps.limits.max_concurrent_asks(4);
    let server = endpoint(11, caps, Default::default()).await;
    // Holds every ask it gets without answering.
    let holding = tokio::spawn({
        let server = server.clone();
        async move {
            let session = server.accept().await.unwrap().unwrap();
            let mut held = Vec::new();
            while let Some(incoming) = session.next_incoming().await {
                if let Incoming::Ask(ask) = incoming {
                    held.push(ask);
                }
            }
        }
    });
    let raw = raw(12, &server, vec![offer(ECHO, false, true)]).await;
    let (mut send, mut recv) = raw.connection.open_bi().await.unwrap();
    let mut bytes = vec![0x01];
    for id in 1..=10 {
        bytes.extend(ask(IntentRef::Id(ECHO), Act::Request, id));
    }
    send.write_all(&bytes).await.unwrap();
    let mut buffer = BytesMut::new();
    for _ in 0..6 {
        let reply = next_envelope(&mut recv, &mut buffer).await.unwrap();
        assert_eq!(refusal(&reply), (Act::Refuse, ErrorCode::TooManyAsks));
        assert!(reply.in_reply_to > 4, "the first 4 asks run: {}", reply.in_reply_to);
    }
    // Nothing else is answered while the 4 are held.
    let more = tokio::time::timeout(Duration::from_millis(200), next_envelope(&mut recv, &mut buffer)).await;
    assert!(more.is_err(), "{more:?}");
    holding.abort();
}

/// `[hs.schema-each]`, `[hs.schema-order]`: every schema request is
/// answered, in the order received, also two for the same IntentId.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_requests_are_answered_each_in_order() {
    let server = echo_server().await;
    let mut raw = raw(13, &server, vec![offer(ECHO, false, true)]).await;
    let other = IntentId::from_bytes([2; 32]);
    let request = |id: IntentId| {
        control(pb::control_message::Message::DescribeRequest(pb::DescribeIntentRequest {
            intent_id: Bytes::copy_from_slice(id.as_bytes()),
        }))
    };
    let mut bytes = request(ECHO);
    bytes.extend(request(other));
    bytes.extend(request(ECHO));
    raw.control_send.write_all(&bytes).await.unwrap();
    for expected in [ECHO, other, ECHO] {
        match next_control(&mut raw.control_recv, &mut raw.buffer).await {
            Some(pb::control_message::Message::DescribeResponse(response)) => {
                assert_eq!(&response.intent_id[..], expected.as_bytes());
                assert_eq!(response.error, ErrorCode::UnknownIntent as i32, "no schema is registered");
            }
            other => panic!("expected a DescribeIntentResponse, got {other:?}"),
        }
    }
    assert!(raw.connection.close_reason().is_none(), "the session goes on");
}

/// `[streams.reply-no-kind]`: the direction of an ask stream written by the
/// side that accepted it starts with the first answer's frame, no kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_direction_of_an_ask_stream_has_no_kind() {
    let server = echo_server().await;
    let raw = raw(14, &server, vec![offer(ECHO, false, true)]).await;
    let (mut send, mut recv) = raw.connection.open_bi().await.unwrap();
    let request = ask(IntentRef::Id(ECHO), Act::Request, 1);
    let mut bytes = vec![0x01];
    bytes.extend(&request);
    send.write_all(&bytes).await.unwrap();
    send.finish().unwrap();
    let reply = within(recv.read_to_end(1 << 16)).await.unwrap();
    // One frame, from the first byte: its length prefix, then the envelope.
    let mut buffer = BytesMut::from(&reply[..]);
    let frame = FrameDecoder::new(1 << 20).decode(&mut buffer).unwrap().unwrap();
    assert!(buffer.is_empty(), "exactly one frame and nothing before it: {reply:?}");
    let envelope = Envelope::decode(frame).unwrap();
    assert_eq!((envelope.act, envelope.in_reply_to), (Act::Inform, 1));
}

/// `[hs.refusal-linger]`: the refusing side waits for its `Refusal` to be
/// acknowledged before it closes, but only for a bounded time: a peer that
/// acknowledges nothing (here, every packet the server sends is lost)
/// cannot hold the connection open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_the_refusal_is_bounded() {
    use tacit_testkit::fault::{FaultHandle, Faults, FaultySocket};
    let faults = FaultHandle::new(1);
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[15; 32]))
        .card(AgentCard::new("rules"))
        .capabilities(Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo")))
        .bind_with_socket(FaultySocket::bind(LOCALHOST, &faults).unwrap())
        .await
        .unwrap();
    let client = endpoint(16, Capabilities::default(), Default::default()).await;
    let connection = within(client.connect_raw(server.local_addr().unwrap())).await.unwrap();
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    let session = {
        send.write_all(&hello((2, 2), vec![offer(ECHO, false, true)])[..1]).await.unwrap();
        within(server.accept()).await.unwrap().unwrap()
    };
    // From now on nothing the server sends arrives (its Refusal, its acks).
    faults.set(Faults::none().loss(1.0, 1));
    let started = std::time::Instant::now();
    send.write_all(&hello((2, 2), vec![offer(ECHO, false, true)])[1..]).await.unwrap();
    let refused = within(session.ready()).await;
    let waited = started.elapsed();
    assert_eq!(refused.map(|_| ()).map_err(|e| e.code()), Err(ErrorCode::NoCommonVersion));
    assert!(waited >= Duration::from_millis(500), "closed after {waited:?}, without waiting for the ack");
    assert!(waited < Duration::from_secs(5), "held open for {waited:?}");
}

/// `[streams.truncated]`, `[lane.opening]`, `[lane.error]`: a stream lane
/// cut off inside a frame, at its opening or after it, gets the handler's
/// direction reset with `FRAME_TRUNCATED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_stream_lane_frame_is_reset_with_frame_truncated() {
    let caps = Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo"));
    let server = endpoint(17, caps, Default::default()).await;
    // Reads every stream lane to its end (or its error).
    tokio::spawn({
        let server = server.clone();
        async move {
            let session = server.accept().await.unwrap().unwrap();
            while let Some(incoming) = session.next_incoming().await {
                if let Incoming::Stream(mut stream) = incoming {
                    tokio::spawn(async move {
                        while let Ok(Some(_)) = stream.receiver.recv().await {}
                        drop(stream.sender);
                    });
                }
            }
        }
    });
    let raw = raw(18, &server, vec![offer(ECHO, false, true)]).await;
    let opening = Envelope::new(IntentRef::Id(ECHO), Act::Subscribe, 1, Bytes::new()).encode_to_bytes();
    let cases: [(&str, Vec<u8>); 2] = [
        ("at the opening", vec![0x03, 10, 1, 2]),
        ("after the opening", [&[0x03][..], &frame(&opening), &[10, 1, 2]].concat()),
    ];
    for (case, bytes) in cases {
        let (mut send, mut recv) = raw.connection.open_bi().await.unwrap();
        send.write_all(&bytes).await.unwrap();
        send.finish().unwrap();
        match within(recv.read_to_end(1 << 16)).await {
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                assert_eq!(code.into_inner(), ErrorCode::FrameTruncated as u64, "{case}");
            }
            other => panic!("{case}: expected a reset with FRAME_TRUNCATED, got {other:?}"),
        }
    }
}

/// `[lane.no-handler]`, `[lane.refused]`, `[hs.lanes-receive]`: a stream
/// lane opened by a peer that ignores the offer's lanes (the intent is
/// handled on the ask lane only) is refused in both directions with
/// `INTENT_NOT_NEGOTIATED`: the opener's direction stopped, the reply
/// direction reset. (Between Tacit agents the opener fails locally first;
/// this is the receiver's half, for peers that do not check.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_lane_for_an_ask_only_intent_is_refused_both_ways() {
    let caps = Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo").on_lanes(Lanes::ASK));
    let server = endpoint(19, caps, Default::default()).await;
    echo::spawn(&server);
    let raw = raw(20, &server, vec![offer(ECHO, false, true)]).await;
    let opening = Envelope::new(IntentRef::Id(ECHO), Act::Subscribe, 1, Bytes::new()).encode_to_bytes();
    let (mut send, mut recv) = raw.connection.open_bi().await.unwrap();
    send.write_all(&[&[0x03][..], &frame(&opening)].concat()).await.unwrap();
    let not_negotiated = ErrorCode::IntentNotNegotiated as u64;
    match within(recv.read_to_end(1 << 16)).await {
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
            assert_eq!(code.into_inner(), not_negotiated);
        }
        other => panic!("expected a reset with INTENT_NOT_NEGOTIATED, got {other:?}"),
    }
    let stopped = within(send.stopped()).await.unwrap();
    assert_eq!(stopped.map(|code| code.into_inner()), Some(not_negotiated));
}
