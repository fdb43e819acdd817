//! Hostile input over the real endpoint (issue 8): a raw quinn client sends
//! what a broken or malicious peer might — bad framing, bad envelopes, bad
//! handshakes, bad TLS, garbage datagrams, stream churn — and each case must
//! get its documented code (docs/PROTOCOL.md), panic nothing, keep memory
//! bounded, and leave a well-behaved peer's asks fast.
//!
//! The well-behaved peer (the bystander) measures a baseline p99 of
//! sequential asks first; after (or during) each attack its p99 must stay
//! under `2 × baseline + SLACK`. A control peer on a second, unattacked
//! server is asked in alternation with it: when the machine itself is
//! slower than at the baseline (other processes on a shared 2-core VM take
//! scheduler slices of several ms), the bound is 2 × the control's p99
//! instead. Harm to the attacked server slows only the bystander; harm to
//! the whole process (CPU exhaustion) would slow both and is not caught by
//! this check. Each figure is the median of `SAMPLES` p99s of `ASKS` asks,
//! and a failed check is measured again up to
//! `RETRIES` times (a real harm persists, a scheduler hiccup on a shared
//! 2-core machine does not). The tests of this file run one at a time
//! (`SERIAL`) so that they do not disturb each other's figures. The table of
//! cases, codes and figures is in docs/RELIABILITY.md ("Bad input").

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
use tacit_quic::{ConnectError, Endpoint, Session, TransportLimits};
use tacit_testkit::{LOCALHOST, echo, within};
use tacit_wire::{Act, Envelope, ErrorCode, FrameDecoder, IntentId, IntentRef, pb};

const ECHO: IntentId = IntentId::from_bytes([1; 32]);

/// Asks per sample, samples per figure, extra attempts of a failed check.
const ASKS: usize = 100;
const SAMPLES: usize = 3;
const RETRIES: usize = 3;
/// Absolute slack on top of 2× the baseline: debug builds on a loaded
/// 2-core VM see scheduler pauses of a millisecond or two.
const SLACK: Duration = Duration::from_millis(1);
/// Growth of the process's resident memory a case may cause (the test
/// client's own buffers included).
const MEMORY_BOUND: usize = 64 << 20;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<usize>().ok()).unwrap_or(0) * 4096
}

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

async fn client_endpoint(seed: u8) -> Endpoint {
    Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[seed; 32]))
        .card(AgentCard::new("client"))
        .capabilities(Capabilities::default().with_intent(IntentOffer::emits(ECHO, "t.Echo")))
        .bind(LOCALHOST)
        .await
        .unwrap()
}

async fn session(seed: u8, server: &Endpoint) -> Session {
    let client = client_endpoint(seed).await;
    let session = within(client.connect(server.local_addr().unwrap(), None)).await.unwrap();
    within(session.ready()).await.unwrap();
    session
}

/// The well-behaved peer, and a control: the same peer on an identical
/// server nobody attacks, asked in alternation with it. Noise from the
/// machine (other processes on the 2 cores) slows both alike; harm done to
/// the attacked server slows only the bystander.
struct Bystander {
    session: Session,
    control: Session,
    _control_server: Endpoint,
    baseline: Duration,
    report: Vec<String>,
}

impl Bystander {
    async fn new(server: &Endpoint) -> Self {
        let session = session(99, server).await;
        let control_server = self::server(TransportLimits::default(), Capabilities::default()).await;
        let control = self::session(98, &control_server).await;
        let mut bystander =
            Self { session, control, _control_server: control_server, baseline: Duration::ZERO, report: Vec::new() };
        // Warm up (connection, allocator, caches), then take the baseline.
        let _ = bystander.sample().await;
        bystander.baseline = bystander.p99().await.0;
        bystander
    }

    /// p99s of `ASKS` sequential asks of the bystander and of the control,
    /// alternating.
    async fn sample(&self) -> (Duration, Duration) {
        let mut latencies = [Vec::with_capacity(ASKS), Vec::with_capacity(ASKS)];
        for i in 0..ASKS {
            for (session, latencies) in [&self.session, &self.control].into_iter().zip(&mut latencies) {
                let start = Instant::now();
                let reply = within(session.ask(ECHO, Bytes::from(vec![i as u8; 64]))).await.unwrap();
                latencies.push(start.elapsed());
                assert_eq!(reply.payload.len(), 64);
            }
        }
        let [mut ours, mut control] = latencies;
        ours.sort();
        control.sort();
        (ours[ASKS * 99 / 100 - 1], control[ASKS * 99 / 100 - 1])
    }

    /// The medians of `SAMPLES` p99s (bystander, control).
    async fn p99(&self) -> (Duration, Duration) {
        let mut ours = Vec::with_capacity(SAMPLES);
        let mut control = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let (a, b) = self.sample().await;
            ours.push(a);
            control.push(b);
        }
        ours.sort();
        control.sort();
        (ours[SAMPLES / 2], control[SAMPLES / 2])
    }

    /// 2× the baseline, or 2× the control's p99 now if the machine is
    /// slower now than when the baseline was taken; plus `SLACK`.
    fn bound(&self, control: Duration) -> Duration {
        self.baseline.max(control) * 2 + SLACK
    }

    /// Checks the bystander's p99 now (after an attack, or during one).
    async fn check(&mut self, case: &str, code: &str) {
        let (mut p99, mut control) = self.p99().await;
        for _ in 0..RETRIES {
            if p99 <= self.bound(control) {
                break;
            }
            (p99, control) = self.p99().await;
        }
        let line =
            format!("| {case} | {code} | {:.0} | {:.0} | {:.0} |", micros(p99), micros(self.baseline), micros(control));
        println!("{line}");
        self.report.push(line);
        assert!(
            p99 <= self.bound(control),
            "{case}: bystander p99 {p99:?} over 2 × max(baseline {:?}, control {control:?}) + {SLACK:?}",
            self.baseline
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs one case: checks memory growth around it and the bystander after it.
async fn case<F: Future<Output = String>>(bystander: &mut Bystander, name: &str, attack: F) {
    let before = rss();
    let code = within(attack).await;
    let grown = rss().saturating_sub(before);
    assert!(grown < MEMORY_BOUND, "{name}: resident memory grew by {grown} bytes");
    bystander.check(name, &code).await;
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    tacit_wire::put_prefix(body.len() as u64, &mut out);
    out.put_slice(body);
    out.to_vec()
}

fn ask_stream(frames: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x01];
    for body in frames {
        out.extend_from_slice(&frame(body));
    }
    out
}

fn echo_ask(id: u64, payload: &'static [u8]) -> Vec<u8> {
    Envelope::new(IntentRef::Id(ECHO), Act::Request, id, Bytes::from_static(payload)).encode_to_bytes().to_vec()
}

fn name(code: ErrorCode) -> String {
    format!("{code:?} ({:#x})", code as i32)
}

/// Sends `bytes` on a new bidirectional stream and returns the code the
/// server stopped it with.
async fn stop_code(connection: &quinn::Connection, bytes: &[u8]) -> Option<u64> {
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    within(send.stopped()).await.ok().flatten().map(|code| code.into_inner())
}

fn expect_stop(got: Option<u64>, code: ErrorCode) -> String {
    assert_eq!(got, Some(code as u64), "expected the stream stopped with {code:?}");
    format!("stop {}", name(code))
}

/// Reads `n` reply envelopes from `recv`.
async fn read_replies(recv: &mut quinn::RecvStream, n: usize) -> Vec<Envelope> {
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut buffer = BytesMut::new();
    let mut replies = Vec::new();
    while replies.len() < n {
        while let Some(frame) = decoder.decode(&mut buffer).unwrap() {
            replies.push(Envelope::decode(frame).unwrap());
        }
        if replies.len() >= n {
            break;
        }
        match within(recv.read_chunk(64 * 1024, true)).await {
            Ok(Some(chunk)) => buffer.extend_from_slice(&chunk.bytes),
            other => panic!("reply stream ended after {} replies: {other:?}", replies.len()),
        }
    }
    replies
}

fn refusal(reply: &Envelope) -> (Act, ErrorCode) {
    let refusal = pb::Refusal::decode(reply.payload.clone()).unwrap();
    (reply.act, ErrorCode::try_from(refusal.code).unwrap())
}

/// The code a connection was closed with by the server: an application
/// code, or a transport (e.g. TLS alert, 0x100 + alert) code.
fn close_code(error: &quinn::ConnectionError) -> Option<u64> {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => Some(close.error_code.into_inner()),
        quinn::ConnectionError::ConnectionClosed(close) => Some(u64::from(close.error_code)),
        quinn::ConnectionError::TransportError(error) => Some(u64::from(error.code)),
        _ => None,
    }
}

fn hello(intents: Vec<pb::IntentOffer>) -> pb::ControlMessage {
    pb::ControlMessage {
        message: Some(pb::control_message::Message::Hello(pb::Hello {
            card: Some(pb::AgentCard { name: "raw".into(), ..Default::default() }),
            capabilities: Some(pb::Capabilities {
                versions: Some(pb::VersionRange { min: 1, max: 1 }),
                intents,
                limits: Some(pb::Limits { max_frame_len: 1 << 20, max_concurrent_asks: 256 }),
                features: 0,
            }),
            credentials: Vec::new(),
        })),
    }
}

fn echo_offer() -> pb::IntentOffer {
    pb::IntentOffer {
        intent_id: Bytes::copy_from_slice(ECHO.as_bytes()),
        name: "t.Echo".into(),
        handles: false,
        emits: true,
        ..Default::default()
    }
}

/// A raw connection (TLS done, no capability handshake) and its control stream.
async fn raw(seed: u8, server: &Endpoint) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream) {
    let connection = within(client_endpoint(seed).await.connect_raw(server.local_addr().unwrap())).await.unwrap();
    let (send, recv) = connection.open_bi().await.unwrap();
    (connection, send, recv)
}

/// Writes `control` on a fresh raw connection's control stream (optionally
/// ending it) and returns the code the server closes the connection with.
async fn control_close_code(seed: u8, server: &Endpoint, control: Vec<u8>, finish: bool) -> Option<u64> {
    let (connection, mut send, _recv) = raw(seed, server).await;
    // A control message larger than the limit is refused from its prefix:
    // write it from a task, as the server may never read all of it.
    let writer = tokio::spawn(async move {
        let _ = send.write_all(&control).await;
        if finish {
            let _ = send.finish();
        }
        let _ = send.stopped().await;
    });
    let code = close_code(&within(connection.closed()).await);
    within(writer).await.unwrap();
    code
}

fn expect_close(got: Option<u64>, code: ErrorCode) -> String {
    assert_eq!(got, Some(code as u64), "expected the connection closed with {code:?}");
    format!("close {}", name(code))
}

/// Varint-encoded `value` padded to `len` bytes (non-minimal, or overlong past 10).
fn padded_varint(value: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut v = value;
    for _ in 0..len - 1 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8 & 0x7f);
    out
}

/// Envelope fields that make a valid echo ask (with a fresh message id),
/// for appending odd fields to.
fn ask_head() -> Vec<u8> {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
    let mut head = vec![0x12, 0x20];
    head.extend_from_slice(ECHO.as_bytes());
    head.extend_from_slice(&[0x18, 0x01, 0x21]);
    head.extend_from_slice(&NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_le_bytes());
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_and_envelopes() {
    let _serial = SERIAL.lock().await;
    let server = server(TransportLimits::default(), Capabilities::default()).await;
    let mut by = Bystander::new(&server).await;
    let bad = session(2, &server).await;
    let conn = bad.connection().clone();

    case(&mut by, "empty stream (FIN at once)", async {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.finish().unwrap();
        match within(recv.read_to_end(16)).await {
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                assert_eq!(code.into_inner(), ErrorCode::InvalidStreamKind as u64);
            }
            other => panic!("{other:?}"),
        }
        format!("reset {}", name(ErrorCode::InvalidStreamKind))
    })
    .await;
    case(&mut by, "unknown stream kind 0x7f", async {
        expect_stop(stop_code(&conn, &[0x7f]).await, ErrorCode::InvalidStreamKind)
    })
    .await;
    case(&mut by, "unknown unidirectional stream kind 0x05", async {
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(&[0x05]).await.unwrap();
        let got = within(send.stopped()).await.ok().flatten().map(|c| c.into_inner());
        expect_stop(got, ErrorCode::InvalidStreamKind)
    })
    .await;
    case(&mut by, "overlong varint as the stream kind", async {
        expect_stop(stop_code(&conn, &[0xff; 12]).await, ErrorCode::VarintOverlong)
    })
    .await;
    case(&mut by, "zero length prefix (empty envelope)", async {
        expect_stop(stop_code(&conn, &[0x01, 0x00]).await, ErrorCode::InvalidIntentRef)
    })
    .await;
    case(&mut by, "huge length prefix (2^62)", async {
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(&padded_varint(1 << 62, 9));
        expect_stop(stop_code(&conn, &bytes).await, ErrorCode::FrameTooLarge)
    })
    .await;
    case(&mut by, "length prefix of 1 MiB + 1", async {
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(&padded_varint((1 << 20) + 1, 3));
        expect_stop(stop_code(&conn, &bytes).await, ErrorCode::FrameTooLarge)
    })
    .await;
    case(&mut by, "overlong varint length prefix (11 bytes)", async {
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(&padded_varint(5, 11));
        expect_stop(stop_code(&conn, &bytes).await, ErrorCode::VarintOverlong)
    })
    .await;
    case(&mut by, "non-minimal 10-byte length prefix (accepted)", async {
        let body = echo_ask(1, b"padded");
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(&padded_varint(body.len() as u64, 10));
        bytes.extend_from_slice(&body);
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&bytes).await.unwrap();
        let reply = &read_replies(&mut recv, 1).await[0];
        assert_eq!(&reply.payload[..], b"padded");
        "answered (INFORM)".into()
    })
    .await;
    case(&mut by, "length larger than the bytes sent (held, then reset)", async {
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(&padded_varint(1000, 2));
        bytes.extend_from_slice(&[0; 10]);
        send.write_all(&bytes).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The server waits for the rest (memory follows what arrived).
        assert!(tokio::time::timeout(Duration::from_millis(100), send.stopped()).await.is_err());
        send.reset(quinn::VarInt::from_u32(0)).unwrap();
        "waits; nothing buffered beyond the bytes".into()
    })
    .await;
    case(&mut by, "length larger than the bytes sent, then FIN", async {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let mut bytes = vec![0x01];
        bytes.extend_from_slice(&padded_varint(1000, 2));
        bytes.extend_from_slice(&[0; 10]);
        send.write_all(&bytes).await.unwrap();
        send.finish().unwrap();
        // [ask.truncated]: the ask direction cannot be stopped any more, so
        // the server resets its reply direction with FRAME_TRUNCATED.
        match within(recv.read_to_end(1024)).await {
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                assert_eq!(code.into_inner(), ErrorCode::FrameTruncated as u64);
            }
            other => panic!("{other:?}"),
        }
        format!("reset {}", name(ErrorCode::FrameTruncated))
    })
    .await;
    case(&mut by, "overlong varint inside the envelope", async {
        let mut body = ask_head();
        body.push(0x08);
        body.extend_from_slice(&padded_varint(1, 11));
        expect_stop(stop_code(&conn, &ask_stream(&[&body])).await, ErrorCode::VarintOverlong)
    })
    .await;
    case(&mut by, "groups nested 65 deep", async {
        let mut body = ask_head();
        body.extend(std::iter::repeat_n(0x9b_u8, 65).flat_map(|b| [b, 0x06])); // start group, field 99
        body.extend(std::iter::repeat_n(0x9c_u8, 65).flat_map(|b| [b, 0x06])); // end group
        expect_stop(stop_code(&conn, &ask_stream(&[&body])).await, ErrorCode::NestingTooDeep)
    })
    .await;
    case(&mut by, "groups nested 64 deep (accepted)", async {
        let mut body = ask_head();
        body.extend(std::iter::repeat_n(0x9b_u8, 64).flat_map(|b| [b, 0x06]));
        body.extend(std::iter::repeat_n(0x9c_u8, 64).flat_map(|b| [b, 0x06]));
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&ask_stream(&[&body])).await.unwrap();
        assert_eq!(read_replies(&mut recv, 1).await[0].act, Act::Inform);
        "answered (INFORM)".into()
    })
    .await;
    case(&mut by, "unmatched end-group", async {
        let mut body = ask_head();
        body.extend_from_slice(&[0x9c, 0x06]);
        expect_stop(stop_code(&conn, &ask_stream(&[&body])).await, ErrorCode::MalformedMessage)
    })
    .await;
    case(&mut by, "1 MB of unknown fields (answered)", async {
        let mut body = ask_head();
        // Field 100, length-delimited, 1000 times 1000 bytes.
        for _ in 0..1000 {
            body.extend_from_slice(&[0xa2, 0x06]);
            body.extend_from_slice(&padded_varint(1000, 2));
            body.extend_from_slice(&[0x55; 1000]);
        }
        assert!(body.len() > 1_000_000 && body.len() < 1 << 20);
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&ask_stream(&[&body])).await.unwrap();
        assert_eq!(read_replies(&mut recv, 1).await[0].act, Act::Inform);
        "answered (INFORM), fields skipped".into()
    })
    .await;
    case(&mut by, "invalid UTF-8 in the conversation id", async {
        let mut body = ask_head();
        body.extend_from_slice(&[0x2a, 0x02, 0xc3, 0x28]);
        expect_stop(stop_code(&conn, &ask_stream(&[&body])).await, ErrorCode::InvalidUtf8)
    })
    .await;
    case(&mut by, "conversation id of 65 bytes", async {
        let mut body = ask_head();
        body.extend_from_slice(&[0x2a, 65]);
        body.extend_from_slice(&[b'c'; 65]);
        expect_stop(stop_code(&conn, &ask_stream(&[&body])).await, ErrorCode::FieldTooLarge)
    })
    .await;
    case(&mut by, "known field with the wrong wire type", async {
        let mut body = ask_head();
        body.extend_from_slice(&[0x1a, 0x01, 0x01]); // act as length-delimited
        expect_stop(stop_code(&conn, &ask_stream(&[&body])).await, ErrorCode::WrongWireType)
    })
    .await;
    case(&mut by, "unknown act 99", async {
        let mut body = ask_head();
        body.extend_from_slice(&[0x18, 0x63]);
        expect_stop(stop_code(&conn, &ask_stream(&[&body])).await, ErrorCode::UnknownAct)
    })
    .await;
    case(&mut by, "act 0 (unspecified)", async {
        let mut body = ask_head();
        body.extend_from_slice(&[0x18, 0x00]);
        expect_stop(stop_code(&conn, &ask_stream(&[&body])).await, ErrorCode::UnknownAct)
    })
    .await;
    case(&mut by, "intent id of 31 bytes", async {
        let mut body = vec![0x12, 31];
        body.extend_from_slice(&[1; 31]);
        body.extend_from_slice(&[0x18, 0x01]);
        expect_stop(stop_code(&conn, &ask_stream(&[&body])).await, ErrorCode::InvalidIntentRef)
    })
    .await;
    case(&mut by, "unknown intents (alias 99, unknown id)", async {
        let unknown_alias = Envelope::new(IntentRef::Alias(99), Act::Request, 11, Bytes::new()).encode_to_bytes();
        let unknown_id = Envelope::new(IntentRef::Id(IntentId::from_bytes([9; 32])), Act::Request, 12, Bytes::new())
            .encode_to_bytes();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&ask_stream(&[&unknown_alias, &unknown_id, &echo_ask(13, b"after")])).await.unwrap();
        let replies = read_replies(&mut recv, 3).await;
        for reply in &replies[..2] {
            assert_eq!(refusal(reply), (Act::NotUnderstood, ErrorCode::IntentNotNegotiated));
        }
        // The stream goes on.
        assert_eq!(&replies[2].payload[..], b"after");
        format!("NOT_UNDERSTOOD {}", name(ErrorCode::IntentNotNegotiated))
    })
    .await;
    case(&mut by, "a response (INFORM) on the ask stream", async {
        let mut reply = Envelope::new(IntentRef::Id(ECHO), Act::Inform, 21, Bytes::new());
        reply.in_reply_to = 20;
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&ask_stream(&[&reply.encode_to_bytes()])).await.unwrap();
        let replies = read_replies(&mut recv, 1).await;
        assert_eq!(refusal(&replies[0]), (Act::NotUnderstood, ErrorCode::ProtocolViolation));
        format!("NOT_UNDERSTOOD {}", name(ErrorCode::ProtocolViolation))
    })
    .await;
    case(&mut by, "a malformed frame on the tell stream", async {
        let mut send = conn.open_uni().await.unwrap();
        send.write_all(&[0x02, 0x03, 0xff, 0xff, 0xff]).await.unwrap();
        let got = within(send.stopped()).await.ok().flatten().map(|c| c.into_inner());
        expect_stop(got, ErrorCode::MalformedMessage)
    })
    .await;
    case(&mut by, "a stream lane opened with garbage", async {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&[0x03, 0x03, 0xff, 0xff, 0xff]).await.unwrap();
        match within(recv.read_to_end(16)).await {
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                // [lane.opening]: the frame's own code.
                assert_eq!(code.into_inner(), ErrorCode::MalformedMessage as u64);
            }
            other => panic!("{other:?}"),
        }
        format!("reset {}", name(ErrorCode::MalformedMessage))
    })
    .await;
    case(&mut by, "garbage QUIC datagrams (1000)", async {
        for i in 0..1000u32 {
            let _ = conn.send_datagram(Bytes::from(i.to_le_bytes().repeat(1 + i as usize % 200)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        "dropped".into()
    })
    .await;

    // The misbehaving session itself still works.
    let reply = within(bad.ask(ECHO, Bytes::from_static(b"still here"))).await.unwrap();
    assert_eq!(&reply.payload[..], b"still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_repetition() {
    let _serial = SERIAL.lock().await;
    // A 4 MiB frame limit, so that a million 2-byte elements fit in one frame.
    let mut caps = Capabilities::default();
    caps.limits.max_frame_len(4 << 20);
    let server = server(TransportLimits::default(), caps).await;
    let mut by = Bystander::new(&server).await;
    let bad = session(2, &server).await;
    let conn = bad.connection().clone();

    case(&mut by, "a million empty trace messages (merged)", async {
        let mut body = ask_head();
        body.extend(std::iter::repeat_n([0x42u8, 0x00], 1_000_000).flatten());
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&ask_stream(&[&body])).await.unwrap();
        assert_eq!(read_replies(&mut recv, 1).await[0].act, Act::Inform);
        "answered (INFORM)".into()
    })
    .await;
    case(&mut by, "a million empty unknown repeated fields", async {
        let mut body = ask_head();
        // Field 10 (signature; this case predates it): an empty occurrence is absent ([receipt.signature-len]).
        body.extend(std::iter::repeat_n([0x52u8, 0x00], 1_000_000).flatten());
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&ask_stream(&[&body])).await.unwrap();
        assert_eq!(read_replies(&mut recv, 1).await[0].act, Act::Inform);
        "answered (INFORM)".into()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_handshakes() {
    let _serial = SERIAL.lock().await;
    let mut limits = TransportLimits::default();
    limits.handshake_timeout(Duration::from_secs(1));
    let server = server(limits, Capabilities::default()).await;
    let mut by = Bystander::new(&server).await;

    case(&mut by, "control stream ended at once", async {
        expect_close(control_close_code(3, &server, vec![], true).await, ErrorCode::ControlStreamClosed)
    })
    .await;
    case(&mut by, "control stream: length larger than sent, then FIN", async {
        expect_close(control_close_code(4, &server, vec![100, 1, 2, 3], true).await, ErrorCode::FrameTruncated)
    })
    .await;
    case(&mut by, "control stream: garbage", async {
        expect_close(
            control_close_code(5, &server, frame(&[0xff, 0xff, 0xff]), false).await,
            ErrorCode::MalformedMessage,
        )
    })
    .await;
    case(&mut by, "control stream: empty ControlMessage first", async {
        expect_close(control_close_code(6, &server, frame(&[]), false).await, ErrorCode::UnexpectedMessage)
    })
    .await;
    // Built before the case: the test client's own 40 MB are not the
    // server's memory.
    let huge_hello = {
        // ControlMessage { hello { capabilities { intents × 1,000,000 } } },
        // written by hand (prost would take a while in a debug build).
        let offer = echo_offer().encode_length_delimited_to_vec();
        let intents_len = 1_000_000 * (1 + offer.len());
        let mut body = Vec::with_capacity(intents_len + 16);
        body.push(0x0a);
        body.extend_from_slice(&padded_varint((1 + 4 + intents_len) as u64, 4));
        body.push(0x12);
        body.extend_from_slice(&padded_varint(intents_len as u64, 4));
        for _ in 0..1_000_000 {
            body.push(0x12);
            body.extend_from_slice(&offer);
        }
        frame(&body)
    };
    case(&mut by, "capabilities with 1,000,000 intents (40 MB)", async {
        let code = control_close_code(7, &server, huge_hello, false).await;
        expect_close(code, ErrorCode::FrameTooLarge)
    })
    .await;
    case(&mut by, "capabilities with 4097 intents", async {
        let intents = (0..4097u32)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&i.to_le_bytes());
                pb::IntentOffer { intent_id: Bytes::copy_from_slice(&id), emits: true, ..Default::default() }
            })
            .collect();
        let code = control_close_code(8, &server, frame(&hello(intents).encode_to_vec()), false).await;
        expect_close(code, ErrorCode::TooManyIntents)
    })
    .await;
    case(&mut by, "capability with a 31-byte intent id", async {
        let offer = pb::IntentOffer { intent_id: Bytes::from(vec![1; 31]), emits: true, ..Default::default() };
        let code = control_close_code(9, &server, frame(&hello(vec![offer]).encode_to_vec()), false).await;
        expect_close(code, ErrorCode::InvalidCapabilities)
    })
    .await;
    case(&mut by, "a second Hello", async {
        let mut two = frame(&hello(vec![echo_offer()]).encode_to_vec());
        two.extend_from_slice(&frame(&hello(vec![echo_offer()]).encode_to_vec()));
        expect_close(control_close_code(10, &server, two, false).await, ErrorCode::DuplicateMessage)
    })
    .await;
    case(&mut by, "an envelope (a response) on the control stream", async {
        let (connection, mut send, _recv) = raw(11, &server).await;
        send.write_all(&frame(&hello(vec![echo_offer()]).encode_to_vec())).await.unwrap();
        let mut reply = Envelope::new(IntentRef::Id(ECHO), Act::Inform, 5, Bytes::from_static(b"x"));
        reply.in_reply_to = 4;
        send.write_all(&frame(&reply.encode_to_bytes())).await.unwrap();
        expect_close(close_code(&within(connection.closed()).await), ErrorCode::MalformedMessage)
    })
    .await;
    case(&mut by, "asks before the handshake ends (65, no Hello)", async {
        let (connection, mut control, _recv) = raw(12, &server).await;
        // Only the first byte of a Hello: the handshake cannot end.
        control.write_all(&[0x40]).await.unwrap();
        let mut streams = Vec::new();
        for i in 0..65u64 {
            let (mut send, recv) = connection.open_bi().await.unwrap();
            send.write_all(&ask_stream(&[&echo_ask(100 + i, b"early")])).await.unwrap();
            streams.push((send, recv));
        }
        // One over the bound of 64 held asks is refused at once...
        let mut refused = 0;
        for (_, recv) in &mut streams {
            if let Ok(Ok(Some(chunk))) =
                tokio::time::timeout(Duration::from_millis(20), recv.read_chunk(4096, true)).await
            {
                let mut buffer = BytesMut::from(&chunk.bytes[..]);
                let body = FrameDecoder::new(1 << 20).decode(&mut buffer).unwrap().unwrap();
                assert_eq!(refusal(&Envelope::decode(body).unwrap()), (Act::Refuse, ErrorCode::TooManyEarlyRequests));
                refused += 1;
            }
        }
        assert_eq!(refused, 1);
        // ...and when the handshake times out, the connection is closed with its code.
        expect_close(close_code(&within(connection.closed()).await), ErrorCode::HandshakeTimeout);
        format!("REFUSE {} / close {}", name(ErrorCode::TooManyEarlyRequests), name(ErrorCode::HandshakeTimeout))
    })
    .await;
    case(&mut by, "asks before the Hello, then a valid Hello", async {
        let (connection, mut control, _recv) = raw(13, &server).await;
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(&ask_stream(&[&echo_ask(1, b"pipelined")])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        control.write_all(&frame(&hello(vec![echo_offer()]).encode_to_vec())).await.unwrap();
        assert_eq!(&read_replies(&mut recv, 1).await[0].payload[..], b"pipelined");
        "held, then answered".into()
    })
    .await;
    case(&mut by, "TLS done, no control stream", async {
        let connection = within(client_endpoint(14).await.connect_raw(server.local_addr().unwrap())).await.unwrap();
        expect_close(close_code(&within(connection.closed()).await), ErrorCode::HandshakeTimeout)
    })
    .await;
}

/// A server-certificate verifier that accepts anyone (the raw TLS client
/// below tests the server's checks, not its own).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn certificate(algorithm: &'static rcgen::SignatureAlgorithm) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate_for(algorithm).unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["raw".into()]).unwrap().self_signed(&key).unwrap();
    (certificate.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
}

/// Dials the server with a hand-made TLS client: `chain` and `key` as the
/// client certificate (none if `None`). Returns the code the connection
/// failed or was closed with.
async fn tls_attempt(
    server: &Endpoint,
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> u64 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)));
    let mut config = match client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![tacit_quic::tls::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config).unwrap();
    let endpoint = quinn::Endpoint::client(LOCALHOST).unwrap();
    let connecting = endpoint
        .connect_with(quinn::ClientConfig::new(Arc::new(crypto)), server.local_addr().unwrap(), "tacit")
        .unwrap();
    // TLS 1.3: the client may finish its side before the server judges its
    // certificate, so the refusal comes either as a failed connect or as a close.
    let error = match within(connecting).await {
        Err(error) => error,
        Ok(connection) => within(connection.closed()).await,
    };
    close_code(&error).unwrap_or_else(|| panic!("{error:?}"))
}

/// TLS alerts as QUIC transport codes (RFC 9001: 0x100 + alert).
const BAD_CERTIFICATE: u64 = 0x100 + 42;
const CERTIFICATE_REQUIRED: u64 = 0x100 + 116;
const NO_APPLICATION_PROTOCOL: u64 = 0x100 + 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_and_transport() {
    let _serial = SERIAL.lock().await;
    let server = server(TransportLimits::default(), Capabilities::default()).await;
    let mut by = Bystander::new(&server).await;

    case(&mut by, "two-certificate chain", async {
        let (first, key) = certificate(&rcgen::PKCS_ED25519);
        let (second, _) = certificate(&rcgen::PKCS_ED25519);
        assert_eq!(tls_attempt(&server, Some((vec![first, second], key))).await, BAD_CERTIFICATE);
        "TLS alert bad_certificate (0x12a)".into()
    })
    .await;
    case(&mut by, "no client certificate", async {
        assert_eq!(tls_attempt(&server, None).await, CERTIFICATE_REQUIRED);
        "TLS alert certificate_required (0x174)".into()
    })
    .await;
    case(&mut by, "ECDSA P-256 client certificate", async {
        let (certificate, key) = certificate(&rcgen::PKCS_ECDSA_P256_SHA256);
        let code = tls_attempt(&server, Some((vec![certificate], key))).await;
        // Ed25519 is the only scheme asked for: the client cannot sign and
        // sends no certificate, or the server refuses its key.
        assert!([BAD_CERTIFICATE, CERTIFICATE_REQUIRED].contains(&code), "{code:#x}");
        format!("TLS alert ({code:#x})")
    })
    .await;
    case(&mut by, "wrong ALPN (h3)", async {
        let client = client_endpoint(20).await;
        match within(client.connect_with_alpn(server.local_addr().unwrap(), None, vec![b"h3".to_vec()])).await {
            Err(ConnectError::Connection(error)) => assert_eq!(close_code(&error), Some(NO_APPLICATION_PROTOCOL)),
            other => panic!("{other:?}"),
        }
        "TLS alert no_application_protocol (0x178)".into()
    })
    .await;
    case(&mut by, "wrong AgentId expected by the dialer", async {
        let client = client_endpoint(21).await;
        let other = Identity::from_secret_bytes(&[42; 32]).agent_id();
        match within(client.connect(server.local_addr().unwrap(), Some(other))).await {
            Err(ConnectError::IdentityMismatch { expected, found }) => {
                assert_eq!((expected, found), (other, server.agent_id()));
            }
            other => panic!("{other:?}"),
        }
        "IdentityMismatch (bad_certificate, before any data)".into()
    })
    .await;

    // Attacks measured while they run.
    let addr = server.local_addr().unwrap();
    let before = rss();
    let flood = tokio::task::spawn_blocking(move || {
        let socket = std::net::UdpSocket::bind(LOCALHOST).unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut sent = 0u64;
        while Instant::now() < deadline {
            let len = 1 + (next() % 1400) as usize;
            let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if sent.is_multiple_of(2) && len >= 1200 {
                // A QUIC v1 Initial header with a random connection id.
                datagram[..6].copy_from_slice(&[0xc3, 0, 0, 0, 1, 8]);
            }
            let _ = socket.send_to(&datagram, addr);
            sent += 1;
            if sent.is_multiple_of(64) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        sent
    });
    by.check("random UDP datagrams to the port (during)", "dropped").await;
    let sent = flood.await.unwrap();
    println!("  {sent} random datagrams sent");
    assert!(rss().saturating_sub(before) < MEMORY_BOUND);

    // Open-and-reset churn below the rate limit, then above it.
    let churner = session(22, &server).await;
    let conn = churner.connection().clone();
    let churn = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut opened = 0u32;
        while Instant::now() < deadline {
            for _ in 0..40 {
                let Ok((mut send, _recv)) = conn.open_bi().await else { return opened };
                let _ = send.write_all(&[0x01]).await;
                let _ = send.reset(quinn::VarInt::from_u32(0));
                opened += 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        opened
    });
    by.check("open-and-reset churn, 800 streams/s (during)", "served (under the limit)").await;
    let opened = churn.await.unwrap();
    assert!(!churner.is_closed(), "a churner under the rate limit was closed after {opened} streams");
    case(&mut by, "open-and-reset churn over 1000 streams/s", async {
        let conn = churner.connection().clone();
        for _ in 0..3000 {
            match conn.open_bi().await {
                Ok((mut send, _recv)) => {
                    let _ = send.write_all(&[0x01]).await;
                    let _ = send.reset(quinn::VarInt::from_u32(0));
                }
                Err(_) => break,
            }
        }
        expect_close(close_code(&within(conn.closed()).await), ErrorCode::StreamRateExceeded)
    })
    .await;

    // A trickle: 50 ask streams each sending one byte per second for 3 s.
    let trickler = session(23, &server).await;
    let before = rss();
    let mut streams = Vec::new();
    for i in 0..50u64 {
        // The first byte goes out as the stream opens: the server grants
        // more stream credit as it sees streams arrive, so opening all 50
        // before sending on any would wait for credit that never comes.
        let (mut send, recv) = trickler.connection().open_bi().await.unwrap();
        let bytes = ask_stream(&[&echo_ask(500 + i, b"slow")]);
        send.write_all(&bytes[..1]).await.unwrap();
        streams.push((send, recv, bytes));
    }
    let trickle = tokio::spawn(async move {
        for second in 0..3 {
            if second > 0 {
                for (send, _, bytes) in &mut streams {
                    send.write_all(&bytes[second..second + 1]).await.unwrap();
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Then the rest at once: every ask is answered.
        for (send, recv, bytes) in &mut streams {
            send.write_all(&bytes[3..]).await.unwrap();
            assert_eq!(&read_replies(recv, 1).await[0].payload[..], b"slow");
        }
    });
    by.check("1 byte/s trickle on 50 ask streams for 3 s (during)", "waits, then answered").await;
    within(trickle).await.unwrap();
    assert!(rss().saturating_sub(before) < MEMORY_BOUND);

    println!("\n{}", by.report.join("\n"));
}
