//! Checks of docs/PROTOCOL.md, "Capability handshake": the Welcome, version
//! negotiation, refusals (the `Refusal` message and the close code),
//! pipelining before the Welcome, malformed control messages, schema fetch.

use bytes::Bytes;
use prost::Message as _;
use tacit::Intent as _;
use tacit::intents::{Ping, Pong};
use tacit_wire::pb::control_message::Message;
use tacit_wire::{ErrorCode, IntentId, IntentRef, pb};

use super::net::{self, Closed, code_text, frame, hello, message_name};
use super::{CLOSED, Check, Outcome, Target, check, ensure};

const SECTION: &str = "Capability handshake";

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(SECTION, "hs.welcome", "hs.control-stream", welcome),
        check!(SECTION, "hs.version-highest", "hs.version-highest", version_highest),
        check!(SECTION, "hs.no-common-version", "hs.refusal-close", no_common_version),
        check!(SECTION, "hs.refusal-message", "hs.refusal-sent", refusal_message),
        check!(SECTION, "hs.invalid-capabilities", "hs.capabilities-valid", invalid_capabilities),
        check!(SECTION, "hs.card-too-large", "hs.card-limits", card_too_large),
        check!(SECTION, "hs.too-many-intents", "hs.capabilities-valid", too_many_intents),
        check!(SECTION, "hs.malformed-hello", "hs.control-closed", malformed_hello),
        check!(SECTION, "hs.empty-control-message", "hs.unexpected", empty_control_message),
        check!(SECTION, "hs.duplicate-hello", "hs.duplicate", duplicate_hello),
        check!(SECTION, "hs.pipelined-ask", "hs.pipeline-dialer", pipelined_ask),
        check!(SECTION, "hs.schema-fetch", "hs.schema-verify", schema_fetch),
        check!(SECTION, "hs.schema-unknown", "hs.schema-answer", schema_unknown),
    ]
}

/// `[hs.welcome]`: a valid Hello gets a Welcome with a version in both
/// ranges, a card and capabilities with non-zero limits.
async fn welcome(cx: &Target) -> Result<Outcome, String> {
    let session = cx.dialer.welcomed().await?;
    session.connection.close(CLOSED, b"");
    let welcome = &session.welcome;
    ensure(welcome.version == 1, || {
        format!("Welcome.version is {}, not 1 (the only version offered)", welcome.version)
    })?;
    ensure(welcome.card.is_some(), || "the Welcome has no card".into())?;
    let caps = welcome.capabilities.as_ref().ok_or("the Welcome has no capabilities")?;
    let versions = caps.versions.ok_or("the Welcome's capabilities have no version range")?;
    ensure(versions.min >= 1 && versions.min <= versions.max && versions.min <= 1, || {
        format!("the Welcome's version range {}..={} is not valid or leaves out 1", versions.min, versions.max)
    })?;
    let limits = caps.limits.ok_or("the Welcome's capabilities have no limits")?;
    ensure(limits.max_frame_len > 0 && limits.max_concurrent_asks > 0, || format!("a zero limit: {limits:?}"))?;
    Outcome::pass(format!("version 1, {} intents offered", caps.intents.len()))
}

/// `[hs.version-highest]`: offered versions 1..=max+1, the Welcome names
/// the highest version both support.
async fn version_highest(cx: &Target) -> Result<Outcome, String> {
    let ours = cx.max_version() + 1;
    let session = cx.dialer.session(hello(1, ours, 256)).await?;
    session.connection.close(CLOSED, b"");
    let theirs = session.welcome.capabilities.as_ref().and_then(|c| c.versions).map_or(1, |v| v.max);
    let expected = theirs.min(ours);
    ensure(session.welcome.version == expected, || {
        format!("offered 1..={ours}, the peer supports up to {theirs}: Welcome.version is {}", session.welcome.version)
    })?;
    Outcome::pass(format!("offered 1..={ours}, chose {expected}"))
}

/// A Hello with no version in common with the peer's.
fn unsupported_version_hello(cx: &Target) -> pb::Hello {
    let beyond = cx.max_version().saturating_add(1);
    hello(beyond, beyond, 256)
}

/// `[hs.refusal-close]`: an unsupported version only → the connection is
/// closed with `NO_COMMON_VERSION` as the application error code.
async fn no_common_version(cx: &Target) -> Result<Outcome, String> {
    let (_, closed) = refusal_of(cx, &control_frame(&Message::Hello(unsupported_version_hello(cx)))).await?;
    expect_close(&closed, ErrorCode::NoCommonVersion)
}

/// `[hs.refusal-sent]`: the refusing side sends a `Refusal` with the code
/// before it closes.
async fn refusal_message(cx: &Target) -> Result<Outcome, String> {
    let (refusal, closed) = refusal_of(cx, &control_frame(&Message::Hello(unsupported_version_hello(cx)))).await?;
    let refusal = refusal.ok_or_else(|| format!("no Refusal message before the connection closed ({closed})"))?;
    ensure(refusal.code == ErrorCode::NoCommonVersion as i32, || {
        format!("the Refusal carries {}, not NO_COMMON_VERSION", code_text(u64::try_from(refusal.code).unwrap_or(0)))
    })?;
    Outcome::pass(format!("Refusal NO_COMMON_VERSION ({:?}), then {closed}", refusal.reason))
}

/// `[hs.capabilities-valid]`: a version range starting at 0 →
/// `INVALID_CAPABILITIES`.
async fn invalid_capabilities(cx: &Target) -> Result<Outcome, String> {
    let (_, closed) = refusal_of(cx, &control_frame(&Message::Hello(hello(0, 1, 256)))).await?;
    expect_close(&closed, ErrorCode::InvalidCapabilities)
}

/// `[hs.card-limits]`: a Hello whose card name is 65 bytes (the limit is
/// 64) → `CARD_TOO_LARGE`.
async fn card_too_large(cx: &Target) -> Result<Outcome, String> {
    let mut hello = hello(1, 1, 256);
    if let Some(card) = hello.card.as_mut() {
        card.name = "n".repeat(65);
    }
    let (_, closed) = refusal_of(cx, &control_frame(&Message::Hello(hello))).await?;
    expect_close(&closed, ErrorCode::CardTooLarge)
}

/// `[hs.capabilities-valid]`: a Hello offering 4,097 intents (the limit is
/// 4,096) → `TOO_MANY_INTENTS`.
async fn too_many_intents(cx: &Target) -> Result<Outcome, String> {
    let mut hello = hello(1, 1, 256);
    if let Some(caps) = hello.capabilities.as_mut() {
        caps.intents = (0..4097u32)
            .map(|n| {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&n.to_be_bytes());
                let mut offer = net::ping_offer();
                offer.intent_id = Bytes::copy_from_slice(&id);
                offer.name = format!("conformance.Intent{n}");
                offer
            })
            .collect();
    }
    let (_, closed) = refusal_of(cx, &control_frame(&Message::Hello(hello))).await?;
    expect_close(&closed, ErrorCode::TooManyIntents)
}

/// `[hs.malformed]`: a control message whose field runs past the end of
/// the frame → `MALFORMED_MESSAGE`.
async fn malformed_hello(cx: &Target) -> Result<Outcome, String> {
    // Field 1 (hello), length 5, but one byte.
    let (_, closed) = refusal_of(cx, &frame(&[0x0a, 0x05, 0x01])).await?;
    expect_close(&closed, ErrorCode::MalformedMessage)
}

/// `[hs.unexpected]`: an empty `ControlMessage` as the first message →
/// `UNEXPECTED_MESSAGE`.
async fn empty_control_message(cx: &Target) -> Result<Outcome, String> {
    let (_, closed) = refusal_of(cx, &frame(&[])).await?;
    expect_close(&closed, ErrorCode::UnexpectedMessage)
}

/// `[hs.duplicate]`: a second Hello → `DUPLICATE_MESSAGE`.
async fn duplicate_hello(cx: &Target) -> Result<Outcome, String> {
    let mut bytes = control_frame(&Message::Hello(hello(1, 1, 256)));
    bytes.extend_from_slice(&control_frame(&Message::Hello(hello(1, 1, 256))));
    let (_, closed) = refusal_of(cx, &bytes).await?;
    expect_close(&closed, ErrorCode::DuplicateMessage)
}

/// `[hs.pipelining]`: an ask sent right after the Hello, before the
/// Welcome arrived (so by full IntentId), is answered.
async fn pipelined_ask(cx: &Target) -> Result<Outcome, String> {
    if !cx.handles_ping() {
        return Outcome::skip("the peer does not offer to handle tacit.intents.v1.Ping");
    }
    let dialed = cx.dialer.dial().await?;
    let mut control = net::Control::open(&dialed.connection).await?;
    control.send(&Message::Hello(hello(1, 1, 256))).await?;
    // Before reading anything: the ask stream and its request.
    let mut lane = net::Lane::open_bi(&dialed.connection, net::KIND_ASK).await?;
    lane.send_envelopes(&[net::ping_ask(IntentRef::Id(Ping::ID), 9, 4242)]).await?;
    let first = control.recv().await?;
    ensure(matches!(first, Message::Welcome(_)), || format!("the Hello got {}", message_name(&first)))?;
    let reply = lane.reply().await?;
    dialed.connection.close(CLOSED, b"");
    ensure(reply.in_reply_to == 9, || format!("the answer is to {}, not 9", reply.in_reply_to))?;
    let pong = Pong::decode(reply.payload.clone()).map_err(|e| format!("the answer is not a Pong: {e}"))?;
    ensure(pong.nonce == 4242, || format!("the Pong carries nonce {}, not 4242", pong.nonce))?;
    Outcome::pass("answered")
}

/// `[hs.schema-verify]`: the schema of an offered intent is a descriptor
/// set whose IntentId (computed here) is the id asked for.
async fn schema_fetch(cx: &Target) -> Result<Outcome, String> {
    let mut session = cx.dialer.welcomed().await?;
    let intents = session.welcome.capabilities.as_ref().map(|c| c.intents.clone()).unwrap_or_default();
    let offer =
        intents.iter().find(|o| o.intent_id.as_ref() == Ping::ID.as_bytes()).or_else(|| intents.first()).cloned();
    let Some(offer) = offer else {
        return Outcome::skip("the peer offers no intent");
    };
    let response = describe(&mut session, offer.intent_id.clone()).await?;
    session.connection.close(CLOSED, b"");
    ensure(response.error == 0, || {
        format!("the schema of {} was refused: {}", offer.name, code_text(u64::try_from(response.error).unwrap_or(0)))
    })?;
    let expected: [u8; 32] = offer.intent_id.as_ref().try_into().map_err(|_| "an offered id is not 32 bytes")?;
    let computed = IntentId::of_message_in_encoded_set(&response.descriptor_set, &response.name)
        .map_err(|e| format!("the descriptor set of {} does not define it: {e}", response.name))?;
    ensure(computed == IntentId::from_bytes(expected), || {
        format!("the schema of {} hashes to {computed}, not the offered id", response.name)
    })?;
    Outcome::pass(format!("{} verifies", response.name))
}

/// `[hs.schema-unknown]`: the schema of an intent the peer does not offer
/// is answered `UNKNOWN_INTENT`.
async fn schema_unknown(cx: &Target) -> Result<Outcome, String> {
    let mut session = cx.dialer.welcomed().await?;
    let response = describe(&mut session, Bytes::from_static(&[0xee; 32])).await?;
    session.connection.close(CLOSED, b"");
    ensure(response.error == ErrorCode::UnknownIntent as i32, || {
        format!("expected error UNKNOWN_INTENT, got {}", code_text(u64::try_from(response.error).unwrap_or(0)))
    })?;
    Outcome::pass("UNKNOWN_INTENT")
}

async fn describe(session: &mut net::Session, intent_id: Bytes) -> Result<pb::DescribeIntentResponse, String> {
    session.control.send(&Message::DescribeRequest(pb::DescribeIntentRequest { intent_id })).await?;
    loop {
        match session.control.recv().await? {
            Message::DescribeResponse(response) => return Ok(response),
            Message::CapabilityUpdate(_) => continue,
            other => return Err(format!("expected DescribeIntentResponse, got {}", message_name(&other))),
        }
    }
}

pub(super) fn control_frame(message: &Message) -> Vec<u8> {
    frame(&pb::ControlMessage { message: Some(message.clone()) }.encode_to_vec())
}

/// Writes `bytes` on a fresh control stream and waits for the peer to end
/// the connection: the `Refusal` it sent first (if any), and how it closed.
/// Then checks that the agent still serves.
async fn refusal_of(cx: &Target, bytes: &[u8]) -> Result<(Option<pb::Refusal>, Closed), String> {
    let dialed = cx.dialer.dial().await?;
    let mut control = net::Control::open(&dialed.connection).await?;
    control.write(bytes).await?;
    let mut refusal = None;
    loop {
        match control.recv().await {
            Ok(Message::Refusal(r)) => refusal = Some(r),
            // A duplicate Hello follows a Welcome; any other refusal
            // that never comes fails by the check's timeout.
            Ok(Message::Welcome(_)) => continue,
            Ok(other) => return Err(format!("expected a refusal, got {}", message_name(&other))),
            Err(_) => break,
        }
    }
    let closed = Closed::from_error(&dialed.connection.closed().await);
    cx.still_serving().await?;
    Ok((refusal, closed))
}

fn expect_close(closed: &Closed, code: ErrorCode) -> Result<Outcome, String> {
    ensure(closed.application_code() == Some(code as u64), || {
        format!("expected the connection closed with {}, got {closed}", code_text(code as u64))
    })?;
    Outcome::pass(format!("{closed}; still serving"))
}
