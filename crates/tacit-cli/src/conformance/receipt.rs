//! Checks of docs/PROTOCOL.md, "Signed receipts": a signed ask is verified
//! on arrival (a good signature is served, a bad one refused with
//! `SIGNATURE_INVALID` and the stream goes on), and an ask that asks for a
//! signed answer gets one that verifies for the peer's AgentId.

use prost::Message as _;
use tacit::Intent as _;
use tacit::intents::Ping;
use tacit_handshake::{AgentId, Receipt};
use tacit_wire::{Act, Envelope, ErrorCode, IntentRef};

use super::net::{self, code_text};
use super::{CLOSED, Check, Outcome, Target, check, ensure};

const RECEIPTS: &str = "Signed receipts";

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(RECEIPTS, "receipt.signed-ask", "receipt.verify-on-arrival", signed_ask),
        check!(RECEIPTS, "receipt.bad-signature", "receipt.verify-on-arrival", bad_signature),
        check!(RECEIPTS, "receipt.signed-answer", "receipt.sign-reply", signed_answer),
    ]
}

/// A Ping ask by full id, as message `id`.
fn ping(id: u64, nonce: u64) -> Envelope {
    Envelope::new(IntentRef::Id(Ping::ID), Act::Request, id, Ping { nonce }.encode_to_vec().into())
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The AgentId the peer's certificate proves, on a fresh connection.
async fn peer_id(cx: &Target) -> Result<AgentId, String> {
    let dialed = cx.dialer.dial().await?;
    dialed.connection.close(CLOSED, b"");
    let certificate = dialed.chain.first().ok_or("the peer presented no certificate")?;
    tacit_quic::tls::agent_id_of_certificate(certificate).map_err(|e| format!("no AgentId in the certificate: {e}"))
}

/// Asks `envelope` on a fresh session and returns the answer.
async fn answer(cx: &Target, envelope: &Envelope) -> Result<Envelope, String> {
    let session = cx.dialer.welcomed().await?;
    let mut lane = session.open_ask().await?;
    lane.send_envelopes(&[envelope.encode_to_bytes()]).await?;
    let reply = lane.reply().await;
    session.connection.close(CLOSED, b"");
    reply
}

/// `[receipt.verify-on-arrival]`: a Ping signed by the tester for the peer
/// is answered as an unsigned one would be.
async fn signed_ask(cx: &Target) -> Result<Outcome, String> {
    if !cx.handles_ping() {
        return Outcome::skip("the peer does not offer to handle tacit.intents.v1.Ping");
    }
    let peer = peer_id(cx).await?;
    let mut envelope = ping(1, 0x5157);
    tacit_handshake::sign_envelope(&cx.identity, peer, Ping::ID, &mut envelope, now_micros());
    let reply = answer(cx, &envelope).await?;
    ensure(reply.act == Act::Inform, || {
        format!(
            "a correctly signed Ping got {} {}",
            crate::error::act_name(reply.act),
            code_text(net::refusal_code(&reply).unwrap_or(0))
        )
    })?;
    Outcome::pass("answered INFORM")
}

/// `[receipt.verify-on-arrival]`: a Ping whose signature is 64 bytes that
/// do not verify (signed for another receiver) is refused `REFUSE` /
/// `SIGNATURE_INVALID`, and the stream goes on.
async fn bad_signature(cx: &Target) -> Result<Outcome, String> {
    if !cx.handles_ping() {
        return Outcome::skip("the peer does not offer to handle tacit.intents.v1.Ping");
    }
    let mut envelope = ping(1, 1);
    // Signed for the tester itself, not for the peer: a valid signature of
    // other essentials.
    tacit_handshake::sign_envelope(&cx.identity, cx.identity.agent_id(), Ping::ID, &mut envelope, now_micros());
    super::ask::refused_then_served(cx, envelope, Act::Refuse, ErrorCode::SignatureInvalid).await
}

/// `[receipt.sign-reply]`: a Ping with `sign_reply` is answered with a
/// signed Pong whose receipt verifies for the peer's AgentId.
async fn signed_answer(cx: &Target) -> Result<Outcome, String> {
    if !cx.handles_ping() {
        return Outcome::skip("the peer does not offer to handle tacit.intents.v1.Ping");
    }
    let peer = peer_id(cx).await?;
    let mut envelope = ping(1, 0x5157);
    envelope.sign_reply = true;
    let reply = answer(cx, &envelope).await?;
    ensure(reply.act == Act::Inform, || format!("answered {}", crate::error::act_name(reply.act)))?;
    ensure(reply.signature.is_some(), || "the answer is not signed".to_owned())?;
    let intent = match reply.intent {
        IntentRef::Id(id) => id,
        // The tester offered nothing, so no alias names the Pong.
        IntentRef::Alias(alias) => {
            return Err(format!("the answer names alias {alias}, which the tester never offered"));
        }
    };
    let receipt = Receipt::from_envelope(peer, cx.identity.agent_id(), intent, &reply)
        .ok_or("the signed answer has no receipt")?;
    receipt.verify().map_err(|e| format!("the answer's signature does not verify: {e}"))?;
    Outcome::pass("signed INFORM; the receipt verifies")
}
