//! Checks of docs/PROTOCOL.md, "Tell and datagram lanes" and "Stream
//! lane": tells are not answered and leave the session serving, datagrams
//! (when the peer allows them) likewise, a stream lane for an intent that
//! is not negotiated is refused.

use std::time::Duration;

use prost::Message as _;
use tacit::Intent as _;
use tacit::intents::Ping;
use tacit_wire::{Act, Envelope, ErrorCode, IntentId, IntentRef};

use super::net::{self, KIND_STREAM, KIND_TELL, Lane, code_text, frame, ping_ask};
use super::{CLOSED, Check, Outcome, Target, check, ensure};

const TELL: &str = "Tell and datagram lanes";
const STREAM: &str = "Stream lane";

/// How long a stream or connection must stay unharmed after a tell.
const QUIET: Duration = Duration::from_millis(300);

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(TELL, "tell.not-answered", "tell.no-answer", tell_not_answered),
        check!(TELL, "tell.not-negotiated", "tell.drop-unnegotiated", tell_not_negotiated),
        check!(TELL, "dgram.envelope", "dgram.one-envelope", datagram),
        check!(STREAM, "lane.not-negotiated", "lane.not-negotiated", stream_not_negotiated),
        check!(STREAM, "lane.exchange", "lane.end-marker", stream_exchange),
    ]
}

/// The session still answers a Ping (or, when the peer does not handle
/// Ping, is still open) after what the check sent on it.
async fn session_goes_on(session: &net::Session) -> Result<(), String> {
    if let Some(reason) = session.connection.close_reason() {
        return Err(format!("the connection ended: {}", net::Closed::from_error(&reason)));
    }
    if let Some(alias) = session.alias(Ping::ID).filter(|_| session.handles(Ping::ID)) {
        let mut lane = session.open_ask().await?;
        lane.send_envelopes(&[ping_ask(IntentRef::Alias(alias), 5, 5)]).await?;
        let reply = lane.reply().await.map_err(|e| format!("the session stopped answering: {e}"))?;
        ensure(reply.act == Act::Inform, || format!("a Ping after it got {}", crate::error::act_name(reply.act)))?;
    }
    Ok(())
}

/// Sends `envelopes` on the tell stream of a fresh session; the stream must
/// not be stopped, and the session must go on.
async fn tells(cx: &Target, envelopes: &[Envelope]) -> Result<Outcome, String> {
    let session = cx.dialer.welcomed().await?;
    let mut send = session.connection.open_uni().await.map_err(|e| format!("cannot open a stream: {e}"))?;
    let mut bytes = vec![KIND_TELL];
    for envelope in envelopes {
        bytes.extend_from_slice(&frame(&envelope.encode_to_bytes()));
    }
    send.write_all(&bytes).await.map_err(|e| format!("cannot write: {e}"))?;
    if let Ok(Ok(Some(code))) = tokio::time::timeout(QUIET, send.stopped()).await {
        return Err(format!("the tell stream was stopped with {}", code_text(code.into_inner())));
    }
    session_goes_on(&session).await?;
    session.connection.close(CLOSED, b"");
    Outcome::pass("not answered; the session goes on")
}

/// `[tell.no-answer]`: a tell of an offered intent is taken, not answered.
async fn tell_not_answered(cx: &Target) -> Result<Outcome, String> {
    let Some(offer) =
        cx.probe.as_ref().and_then(|w| w.capabilities.as_ref()?.intents.iter().find(|o| o.handles).cloned())
    else {
        return Outcome::skip("the peer offers to handle no intent");
    };
    let id: [u8; 32] = offer.intent_id.as_ref().try_into().map_err(|_| "an offered id is not 32 bytes")?;
    // Its encoding is unknown here: an empty payload is the all-defaults message.
    let envelope = Envelope::new(IntentRef::Id(IntentId::from_bytes(id)), Act::Inform, 1, Default::default());
    tells(cx, &[envelope]).await
}

/// `[tell.drop-unnegotiated]`: a tell of an intent nobody offered is
/// dropped; the stream and the session go on.
async fn tell_not_negotiated(cx: &Target) -> Result<Outcome, String> {
    let envelope = Envelope::new(IntentRef::Id(IntentId::from_bytes([9; 32])), Act::Inform, 1, Default::default());
    tells(cx, &[envelope.clone(), envelope]).await
}

/// `[dgram.one-envelope]`: a datagram carries one envelope, unframed; one
/// that is not an envelope is dropped and the session goes on.
async fn datagram(cx: &Target) -> Result<Outcome, String> {
    let session = cx.dialer.welcomed().await?;
    let Some(max) = session.connection.max_datagram_size() else {
        session.connection.close(CLOSED, b"");
        return Outcome::skip("the peer's transport parameters allow no datagrams (max_datagram_frame_size)");
    };
    let ping = Envelope::new(IntentRef::Id(Ping::ID), Act::Inform, 1, Ping { nonce: 1 }.encode_to_vec().into());
    for datagram in [ping.encode_to_bytes(), bytes::Bytes::from_static(&[0xff; 5])] {
        ensure(datagram.len() <= max, || format!("the peer's datagram size {max} is too small for an envelope"))?;
        session.connection.send_datagram(datagram).map_err(|e| format!("cannot send a datagram: {e}"))?;
    }
    tokio::time::sleep(QUIET).await;
    session_goes_on(&session).await?;
    session.connection.close(CLOSED, b"");
    Outcome::pass(format!("dropped or taken, never answered; max datagram {max} bytes"))
}

/// `[lane.not-negotiated]`: a stream lane opened for an intent nobody
/// offered is reset with `INTENT_NOT_NEGOTIATED`.
async fn stream_not_negotiated(cx: &Target) -> Result<Outcome, String> {
    let session = cx.dialer.welcomed().await?;
    let mut lane = Lane::open_bi(&session.connection, KIND_STREAM).await?;
    let opening = Envelope::new(IntentRef::Id(IntentId::from_bytes([9; 32])), Act::Subscribe, 1, Default::default());
    lane.send_envelopes(&[opening.encode_to_bytes()]).await?;
    let signal = lane.error_signal(cx.timeout / 2).await;
    let goes_on = session_goes_on(&session).await;
    session.connection.close(CLOSED, b"");
    let signal = signal.ok_or("the stream was neither reset nor stopped")?;
    ensure(signal.code() == Some(ErrorCode::IntentNotNegotiated as u64), || {
        format!("expected INTENT_NOT_NEGOTIATED, got {signal}")
    })?;
    goes_on?;
    Outcome::pass(signal.to_string())
}

/// `[lane.end-marker]`: a stream exchange with an intent the peer streams.
async fn stream_exchange(_cx: &Target) -> Result<Outcome, String> {
    // The handshake of version 1 does not say which offered intents open a
    // stream lane or what their data types are (issue 13, point 2 adds
    // lanes to the handshake); without that this check cannot pick one.
    Outcome::skip("the peer's capabilities do not say which intents open a stream lane")
}
