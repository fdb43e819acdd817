//! Checks of docs/PROTOCOL.md, "Framing", "Envelope", "Streams", "Ask lane"
//! and "Limits": bad frames and envelopes on an ask stream get their codes
//! (and the agent keeps serving), asks are answered, pipelined, refused
//! with the right code, remembered by the retry window.

use std::time::Duration;

use prost::Message as _;
use tacit::Intent as _;
use tacit::intents::{Ping, Pong};
use tacit_wire::{Act, Envelope, ErrorCode, IntentId, IntentRef};

use super::net::{self, Lane, code_text, frame, padded_varint, ping_ask};
use super::{CLOSED, Check, Outcome, Target, check, ensure};

const FRAMING: &str = "Framing";
const ENVELOPE: &str = "Envelope";
const STREAMS: &str = "Streams";
const ASK: &str = "Ask lane";
const LIMITS: &str = "Limits";

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(FRAMING, "frame.too-large", "frame.max-size", frame_too_large),
        check!(FRAMING, "frame.varint-overlong", "frame.varint", frame_varint_overlong),
        check!(FRAMING, "frame.truncated", "frame.truncated", frame_truncated),
        check!(ENVELOPE, "env.malformed-key", "env.wire", malformed_key),
        check!(ENVELOPE, "env.varint-overlong", "env.wire", varint_overlong),
        check!(ENVELOPE, "env.wrong-wire-type", "env.wire", wrong_wire_type),
        check!(ENVELOPE, "env.invalid-utf8", "env.wire", invalid_utf8),
        check!(ENVELOPE, "env.conversation-too-long", "env.wire", conversation_too_long),
        check!(ENVELOPE, "env.nesting-too-deep", "env.unknown-fields", nesting_too_deep),
        check!(ENVELOPE, "env.no-intent", "env.intent-ref", no_intent),
        check!(ENVELOPE, "env.unknown-act", "env.act", unknown_act),
        check!(STREAMS, "streams.unknown-kind", "streams.kind", unknown_kind),
        check!(ASK, "ask.ping", "std.served", ping),
        check!(ASK, "ask.pipelined-70", "limits.concurrent-asks", pipelined_70),
        check!(ASK, "ask.alias-outside-table", "ask.unknown-alias", alias_outside_table),
        check!(ASK, "ask.unknown-intent-id", "ask.not-negotiated", unknown_intent_id),
        check!(ASK, "ask.not-an-ask", "ask.not-an-ask", not_an_ask),
        check!(ASK, "ask.invalid-payload", "env.payload", invalid_payload),
        check!(ASK, "ask.retry-window", "ask.retry-window", retry_window),
        check!(LIMITS, "limits.concurrent-asks", "limits.concurrent-asks", too_many_asks),
    ]
}

/// Envelope fields of a valid Ping ask by full id (message id 1), for
/// appending odd fields to.
fn ask_head() -> Vec<u8> {
    let mut head = vec![0x12, 0x20];
    head.extend_from_slice(Ping::ID.as_bytes());
    head.extend_from_slice(&[0x18, 0x01, 0x21]);
    head.extend_from_slice(&1u64.to_le_bytes());
    head
}

fn with(mut head: Vec<u8>, tail: &[u8]) -> Vec<u8> {
    head.extend_from_slice(tail);
    head
}

/// Opens an ask stream on a fresh session, writes `bytes` after the kind
/// (and FIN if `finish`), and expects the stream ended with `code`
/// (`STOP_SENDING` or a reset); then checks the agent still serves.
async fn bad_input(cx: &Target, bytes: &[u8], finish: bool, code: ErrorCode) -> Result<Outcome, String> {
    let session = cx.dialer.welcomed().await?;
    let mut lane = session.open_ask().await?;
    lane.write(bytes).await?;
    if finish {
        let _ = lane.send.finish();
    }
    let wait = cx.timeout.saturating_sub(Duration::from_secs(1)).max(Duration::from_millis(500));
    let signal = lane.error_signal(wait).await;
    session.connection.close(CLOSED, b"");
    let Some(signal) = signal else {
        return Err(format!("the stream was neither stopped nor reset (expected {})", code_text(code as u64)));
    };
    ensure(signal.code() == Some(code as u64), || format!("expected {}, got {signal}", code_text(code as u64)))?;
    cx.still_serving().await?;
    Outcome::pass(format!("{signal}; still serving"))
}

/// `[frame.too-large]`: a length prefix over the maximum frame size.
async fn frame_too_large(cx: &Target) -> Result<Outcome, String> {
    bad_input(cx, &padded_varint((1 << 20) + 1, 3), false, ErrorCode::FrameTooLarge).await
}

/// `[frame.varint-overlong]`: an 11-byte length prefix.
async fn frame_varint_overlong(cx: &Target) -> Result<Outcome, String> {
    bad_input(cx, &padded_varint(5, 11), false, ErrorCode::VarintOverlong).await
}

/// `[frame.truncated]`: the stream ends inside a frame.
async fn frame_truncated(cx: &Target) -> Result<Outcome, String> {
    let mut bytes = padded_varint(1000, 2);
    bytes.extend_from_slice(&[0; 10]);
    bad_input(cx, &bytes, true, ErrorCode::FrameTruncated).await
}

/// `[env.malformed]`: a key with field number 0.
async fn malformed_key(cx: &Target) -> Result<Outcome, String> {
    bad_input(cx, &frame(&with(ask_head(), &[0x00, 0x01])), false, ErrorCode::MalformedMessage).await
}

/// `[env.varint-overlong]`: an 11-byte varint inside the envelope.
async fn varint_overlong(cx: &Target) -> Result<Outcome, String> {
    let mut tail = vec![0x38];
    tail.extend_from_slice(&padded_varint(1, 11));
    bad_input(cx, &frame(&with(ask_head(), &tail)), false, ErrorCode::VarintOverlong).await
}

/// `[env.wrong-wire-type]`: `act` as a length-delimited field.
async fn wrong_wire_type(cx: &Target) -> Result<Outcome, String> {
    bad_input(cx, &frame(&with(ask_head(), &[0x1a, 0x01, 0x01])), false, ErrorCode::WrongWireType).await
}

/// `[env.invalid-utf8]`: a conversation id that is not UTF-8.
async fn invalid_utf8(cx: &Target) -> Result<Outcome, String> {
    bad_input(cx, &frame(&with(ask_head(), &[0x2a, 0x02, 0xc3, 0x28])), false, ErrorCode::InvalidUtf8).await
}

/// `[env.field-too-large]`: a conversation id of 65 bytes.
async fn conversation_too_long(cx: &Target) -> Result<Outcome, String> {
    let mut tail = vec![0x2a, 65];
    tail.extend_from_slice(&[b'c'; 65]);
    bad_input(cx, &frame(&with(ask_head(), &tail)), false, ErrorCode::FieldTooLarge).await
}

/// `[env.nesting-too-deep]`: unknown groups nested 65 deep.
async fn nesting_too_deep(cx: &Target) -> Result<Outcome, String> {
    let mut tail = Vec::new();
    tail.extend(std::iter::repeat_n([0x9b_u8, 0x06], 65).flatten()); // start group, field 99
    tail.extend(std::iter::repeat_n([0x9c_u8, 0x06], 65).flatten()); // end group
    bad_input(cx, &frame(&with(ask_head(), &tail)), false, ErrorCode::NestingTooDeep).await
}

/// `[env.intent-ref]`: an envelope without an intent.
async fn no_intent(cx: &Target) -> Result<Outcome, String> {
    bad_input(cx, &frame(&[0x18, 0x01, 0x21, 1, 0, 0, 0, 0, 0, 0, 0]), false, ErrorCode::InvalidIntentRef).await
}

/// `[env.unknown-act]`: act 99.
async fn unknown_act(cx: &Target) -> Result<Outcome, String> {
    bad_input(cx, &frame(&with(ask_head(), &[0x18, 0x63])), false, ErrorCode::UnknownAct).await
}

/// `[streams.unknown-kind]`: a bidirectional stream of kind 0x7f.
async fn unknown_kind(cx: &Target) -> Result<Outcome, String> {
    let session = cx.dialer.welcomed().await?;
    let mut lane = Lane::open_bi(&session.connection, 0x7f).await?;
    let signal = lane.error_signal(cx.timeout / 2).await;
    session.connection.close(CLOSED, b"");
    let signal = signal.ok_or("the stream was neither stopped nor reset")?;
    ensure(signal.code() == Some(ErrorCode::InvalidStreamKind as u64), || {
        format!("expected INVALID_STREAM_KIND, got {signal}")
    })?;
    cx.still_serving().await?;
    Outcome::pass(format!("{signal}; still serving"))
}

/// A session and the alias of Ping in it, or why the check is skipped.
async fn ping_session(cx: &Target, max_asks: u32) -> Result<Result<(net::Session, u32), String>, String> {
    if !cx.handles_ping() {
        return Ok(Err("the peer does not offer to handle tacit.intents.v1.Ping".into()));
    }
    let session = cx.dialer.session(net::hello(1, 1, max_asks)).await?;
    let alias = session.alias(Ping::ID).ok_or("Ping left the peer's list")?;
    Ok(Ok((session, alias)))
}

fn pong_of(reply: &Envelope) -> Result<u64, String> {
    ensure(reply.act == Act::Inform, || {
        format!(
            "answered {} ({}), not INFORM",
            crate::error::act_name(reply.act),
            code_text(net::refusal_code(reply).unwrap_or(0))
        )
    })?;
    Pong::decode(reply.payload.clone()).map(|p| p.nonce).map_err(|e| format!("the answer is not a Pong: {e}"))
}

/// `[std.ping]`: a Ping ask (by alias) is answered with a Pong echoing the nonce.
async fn ping(cx: &Target) -> Result<Outcome, String> {
    let (session, alias) = match ping_session(cx, 256).await? {
        Ok(found) => found,
        Err(reason) => return Outcome::skip(reason),
    };
    let mut lane = session.open_ask().await?;
    lane.send_envelopes(&[ping_ask(IntentRef::Alias(alias), 77, 0x5eed)]).await?;
    let reply = lane.reply().await?;
    session.connection.close(CLOSED, b"");
    ensure(reply.in_reply_to == 77, || format!("the answer is to {}, not 77", reply.in_reply_to))?;
    let nonce = pong_of(&reply)?;
    ensure(nonce == 0x5eed, || format!("the Pong carries nonce {nonce}"))?;
    Outcome::pass(format!("Pong (alias {alias})"))
}

/// `[ask.pipelining]`: 70 asks written at once on one ask stream are all answered.
async fn pipelined_70(cx: &Target) -> Result<Outcome, String> {
    let (session, alias) = match ping_session(cx, 256).await? {
        Ok(found) => found,
        Err(reason) => return Outcome::skip(reason),
    };
    let mut lane = session.open_ask().await?;
    let asks: Vec<_> = (1..=70).map(|id| ping_ask(IntentRef::Alias(alias), id, id * 3)).collect();
    lane.send_envelopes(&asks).await?;
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < 70 {
        let reply = lane.reply().await.map_err(|e| format!("after {} answers: {e}", answered.len()))?;
        let nonce = pong_of(&reply).map_err(|e| format!("ask {}: {e}", reply.in_reply_to))?;
        ensure(nonce == reply.in_reply_to * 3, || format!("ask {} got the Pong of another", reply.in_reply_to))?;
        ensure(answered.insert(reply.in_reply_to), || format!("ask {} answered twice", reply.in_reply_to))?;
    }
    session.connection.close(CLOSED, b"");
    Outcome::pass("70 of 70 answered")
}

/// Sends `envelope` then a good Ping on one ask stream: the first answer
/// must be `act` with `code`, and the stream goes on.
pub(super) async fn refused_then_served(
    cx: &Target,
    envelope: Envelope,
    act: Act,
    code: ErrorCode,
) -> Result<Outcome, String> {
    let session = cx.dialer.welcomed().await?;
    let ping = session.alias(Ping::ID).filter(|_| session.handles(Ping::ID));
    let mut lane = session.open_ask().await?;
    let mut envelopes = vec![envelope.encode_to_bytes()];
    if let Some(alias) = ping {
        envelopes.push(ping_ask(IntentRef::Alias(alias), 2, 2));
    }
    lane.send_envelopes(&envelopes).await?;
    let first = lane.reply().await?;
    ensure(first.in_reply_to == envelope.message_id, || {
        format!("an answer to {}, expected one to 1", first.in_reply_to)
    })?;
    let got = net::refusal_code(&first).unwrap_or(0);
    ensure(first.act == act && got == code as u64, || {
        format!(
            "expected {} {}, got {} {}",
            crate::error::act_name(act),
            code_text(code as u64),
            crate::error::act_name(first.act),
            code_text(got)
        )
    })?;
    if ping.is_some() {
        let second = lane.reply().await.map_err(|e| format!("the stream did not go on: {e}"))?;
        pong_of(&second).map_err(|e| format!("the Ping after it: {e}"))?;
    }
    session.connection.close(CLOSED, b"");
    Outcome::pass(format!("{} {}; the stream goes on", crate::error::act_name(act), code_text(code as u64)))
}

/// `[ask.alias-unknown]`: an alias outside the peer's table →
/// `NOT_UNDERSTOOD` / `INTENT_NOT_NEGOTIATED`.
async fn alias_outside_table(cx: &Target) -> Result<Outcome, String> {
    let listed = cx.probe.as_ref().and_then(|w| w.capabilities.as_ref()).map_or(0, |c| c.intents.len());
    let alias = u32::try_from(listed + 1000).unwrap_or(u32::MAX);
    let envelope = Envelope::new(IntentRef::Alias(alias), Act::Request, 1, Ping { nonce: 1 }.encode_to_vec().into());
    refused_then_served(cx, envelope, Act::NotUnderstood, ErrorCode::IntentNotNegotiated).await
}

/// `[ask.not-negotiated]`: a full IntentId nobody offered →
/// `NOT_UNDERSTOOD` / `INTENT_NOT_NEGOTIATED`.
async fn unknown_intent_id(cx: &Target) -> Result<Outcome, String> {
    let envelope = Envelope::new(IntentRef::Id(IntentId::from_bytes([9; 32])), Act::Request, 1, Default::default());
    refused_then_served(cx, envelope, Act::NotUnderstood, ErrorCode::IntentNotNegotiated).await
}

/// `[ask.not-an-ask]`: an `INFORM` on the ask stream →
/// `NOT_UNDERSTOOD` / `PROTOCOL_VIOLATION`.
async fn not_an_ask(cx: &Target) -> Result<Outcome, String> {
    if !cx.handles_ping() {
        return Outcome::skip("the peer does not offer to handle tacit.intents.v1.Ping");
    }
    let envelope = Envelope::new(IntentRef::Id(Ping::ID), Act::Inform, 1, Ping { nonce: 1 }.encode_to_vec().into());
    refused_then_served(cx, envelope, Act::NotUnderstood, ErrorCode::ProtocolViolation).await
}

/// `[env.payload]`, `[code.receiver-table]`: a Ping ask whose payload is
/// not a Ping (a varint field with no value) → `NOT_UNDERSTOOD` /
/// `INVALID_PAYLOAD`.
async fn invalid_payload(cx: &Target) -> Result<Outcome, String> {
    if !cx.handles_ping() {
        return Outcome::skip("the peer does not offer to handle tacit.intents.v1.Ping");
    }
    let envelope = Envelope::new(IntentRef::Id(Ping::ID), Act::Request, 1, bytes::Bytes::from_static(&[0x08]));
    refused_then_served(cx, envelope, Act::NotUnderstood, ErrorCode::InvalidPayload).await
}

/// `[ask.retry-window]`: an ask marked idempotent, re-sent with the same
/// message id on a new connection (with another payload), gets the first
/// answer: it was not run again.
async fn retry_window(cx: &Target) -> Result<Outcome, String> {
    if !cx.handles_ping() {
        return Outcome::skip("the peer does not offer to handle tacit.intents.v1.Ping, whose answer shows a re-run");
    }
    // A fresh id, so that a window holding the asks of an earlier run does not answer.
    let message_id = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u64);
    let mut nonces = Vec::new();
    for nonce in [1111, 2222] {
        let session = cx.dialer.welcomed().await?;
        let mut envelope =
            Envelope::new(IntentRef::Id(Ping::ID), Act::Request, message_id, Ping { nonce }.encode_to_vec().into());
        envelope.idempotent = true;
        let mut lane = session.open_ask().await?;
        lane.send_envelopes(&[envelope.encode_to_bytes()]).await?;
        let reply = lane.reply().await?;
        nonces.push(pong_of(&reply)?);
        session.connection.close(CLOSED, b"");
    }
    ensure(nonces == [1111, 1111], || {
        format!("the re-sent ask was run again (Pong nonces {nonces:?}; the window would answer 1111 twice)")
    })?;
    Outcome::pass("the duplicate got the first answer")
}

/// `[limits.too-many-asks]`: with a concurrent-ask limit of 1 negotiated,
/// asks over it are refused `REFUSE` / `TOO_MANY_ASKS` (skipped when the
/// agent answers each before the next arrives).
async fn too_many_asks(cx: &Target) -> Result<Outcome, String> {
    let (session, alias) = match ping_session(cx, 1).await? {
        Ok(found) => found,
        Err(reason) => return Outcome::skip(reason),
    };
    let mut lane = session.open_ask().await?;
    let asks: Vec<_> = (1..=64).map(|id| ping_ask(IntentRef::Alias(alias), id, id)).collect();
    lane.send_envelopes(&asks).await?;
    let mut refused = 0;
    for _ in 0..64 {
        let reply = lane.reply().await?;
        if reply.act == Act::Inform {
            continue;
        }
        let code = net::refusal_code(&reply).unwrap_or(0);
        ensure(reply.act == Act::Refuse && code == ErrorCode::TooManyAsks as u64, || {
            format!(
                "an ask over the limit got {} {}, not REFUSE TOO_MANY_ASKS",
                crate::error::act_name(reply.act),
                code_text(code)
            )
        })?;
        refused += 1;
    }
    session.connection.close(CLOSED, b"");
    if refused == 0 {
        return Outcome::skip("all 64 asks answered: none was in flight when the next arrived");
    }
    Outcome::pass(format!("{refused} of 64 refused TOO_MANY_ASKS"))
}
