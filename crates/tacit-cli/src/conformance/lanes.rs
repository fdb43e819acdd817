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
        check!(TELL, "tell.not-answered", "tell.act", tell_not_answered),
        check!(TELL, "tell.not-negotiated", "tell.not-negotiated", tell_not_negotiated),
        check!(TELL, "dgram.envelope", "dgram.envelope", datagram),
        check!(STREAM, "lane.not-negotiated", "lane.refused", stream_not_negotiated),
        check!(STREAM, "lane.exchange", "lane.end", stream_exchange),
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

/// `[lane.end-marker]`: a stream lane for an intent whose schema declares
/// stream types: the opener's direction ends at once (end marker, FIN); the
/// peer's data envelopes are `INFORM`s answering the opening, and its
/// direction ends with an end marker then FIN (or a reset with a code).
async fn stream_exchange(cx: &Target) -> Result<Outcome, String> {
    let mut probe = cx.dialer.welcomed().await?;
    let found = stream_intent(&mut probe).await?;
    probe.connection.close(CLOSED, b"");
    let Some((intent, name)) = found else {
        return Outcome::skip("no offered intent declares stream types ((tacit.v1.stream_item) in its schema)");
    };
    // A session whose Hello emits the intent, so that it is negotiated.
    let mut hello = net::hello(1, 1, 256);
    if let Some(caps) = hello.capabilities.as_mut() {
        caps.intents.push(tacit_wire::pb::IntentOffer {
            intent_id: bytes::Bytes::copy_from_slice(intent.as_bytes()),
            name,
            handles: false,
            emits: true,
            // No lanes: any lane ([hs.lanes-absent]), as earlier peers offer.
            ..Default::default()
        });
    }
    let session = cx.dialer.session(hello).await?;
    let mut lane = Lane::open_bi(&session.connection, KIND_STREAM).await?;
    let opening = Envelope::new(IntentRef::Id(intent), Act::Subscribe, 41, Default::default());
    let mut bytes = frame(&opening.encode_to_bytes());
    bytes.extend_from_slice(&frame(&[]));
    lane.write(&bytes).await?;
    let _ = lane.send.finish();
    let wait = tokio::time::sleep(cx.timeout / 2);
    tokio::pin!(wait);
    let mut items = 0;
    let end = loop {
        let next = tokio::select! {
            next = lane.reader.next() => next,
            () = &mut wait => break None,
        };
        match next {
            Ok(body) if body.is_empty() => break Some(lane.reader.next().await.err()),
            Ok(body) => {
                let data = Envelope::decode(body).map_err(|e| format!("data envelope {}: {e}", items + 1))?;
                ensure(data.act == Act::Inform && data.in_reply_to == 41, || {
                    format!(
                        "data envelope {}: {} answering {}",
                        items + 1,
                        crate::error::act_name(data.act),
                        data.in_reply_to
                    )
                })?;
                items += 1;
            }
            Err(net::End::Reset(code)) => {
                session.connection.close(CLOSED, b"");
                let abandoned = [ErrorCode::Cancelled, ErrorCode::HandlerFailed, ErrorCode::Shutdown];
                ensure(abandoned.iter().any(|c| *c as u64 == code), || {
                    format!("after {items} data envelopes, reset with {}", code_text(code))
                })?;
                return Outcome::pass(format!("{items} data envelopes, then reset with {}", code_text(code)));
            }
            Err(end) => return Err(format!("after {items} data envelopes, no end marker: {end}")),
        }
    };
    session.connection.close(CLOSED, b"");
    match end {
        None => {
            Outcome::pass(format!("{items} well-formed data envelopes; still streaming after {:?}", cx.timeout / 2))
        }
        Some(Some(net::End::Finished)) => Outcome::pass(format!("{items} data envelopes, end marker, FIN")),
        Some(other) => Err(format!("after the end marker: {other:?}, not FIN")),
    }
}

/// An intent the peer handles whose fetched schema declares stream types.
async fn stream_intent(session: &mut net::Session) -> Result<Option<(IntentId, String)>, String> {
    let offers = session.welcome.capabilities.as_ref().map(|c| c.intents.clone()).unwrap_or_default();
    for offer in offers.iter().filter(|o| o.handles) {
        let Ok(bytes) = <[u8; 32]>::try_from(offer.intent_id.as_ref()) else { continue };
        let id = IntentId::from_bytes(bytes);
        let request = tacit_wire::pb::DescribeIntentRequest { intent_id: offer.intent_id.clone() };
        session.control.send(&tacit_wire::pb::control_message::Message::DescribeRequest(request)).await?;
        let response = loop {
            if let tacit_wire::pb::control_message::Message::DescribeResponse(r) = session.control.recv().await? {
                break r;
            }
        };
        let Ok(index) = crate::json::index_descriptor_set(&response.descriptor_set) else { continue };
        let declared =
            index.iter().any(|(found, message)| *found == id && crate::json::stream_types(message).is_stream());
        if declared {
            return Ok(Some((id, offer.name.clone())));
        }
    }
    Ok(None)
}
