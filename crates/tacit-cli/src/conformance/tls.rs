//! Checks of docs/PROTOCOL.md, "TLS profile": ALPN, the certificate and the
//! AgentId it binds, the client certificate, the signature scheme, SNI.

use std::time::Duration;

use rustls::SignatureScheme;

use super::net::{self, ALERT_CERTIFICATE_REQUIRED, ALERT_NO_APPLICATION_PROTOCOL, ClientChain, Closed, TlsOffer};
use super::{CLOSED, Check, Outcome, Target, check, ensure};

const SECTION: &str = "TLS profile";

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(SECTION, "tls.alpn", "tls.alpn", alpn),
        check!(SECTION, "tls.alpn-refused", "tls.alpn-refused", alpn_refused),
        check!(SECTION, "tls.certificate", "tls.mutual", certificate),
        check!(SECTION, "tls.expected-id", "tls.peer-id", expected_id),
        check!(SECTION, "tls.client-cert-required", "tls.client-cert-required", client_cert_required),
        check!(SECTION, "tls.client-cert-not-ed25519", "tls.cert-refused", client_cert_not_ed25519),
        check!(SECTION, "tls.client-chain-of-two", "tls.cert-refused", client_chain_of_two),
        check!(SECTION, "tls.ed25519-only", "tls.sig-ed25519", ed25519_only),
        check!(SECTION, "tls.no-sni", "tls.sni-ignored", no_sni),
        check!(SECTION, "tls.no-tickets", "tls.no-resumption", no_tickets),
    ]
}

/// `[tls.alpn]`: the connection negotiates `tacit/1`.
async fn alpn(cx: &Target) -> Result<Outcome, String> {
    let dialed = cx.dialer.dial().await?;
    let protocol = dialed
        .connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    dialed.connection.close(CLOSED, b"");
    ensure(protocol.as_deref() == Some(tacit_quic::tls::ALPN), || {
        format!("negotiated ALPN {:?}, not tacit/1", protocol.map(|p| String::from_utf8_lossy(&p).into_owned()))
    })?;
    Outcome::pass("tacit/1")
}

/// `[tls.alpn-refused]`: a client offering only another ALPN id is refused
/// with `no_application_protocol`.
async fn alpn_refused(cx: &Target) -> Result<Outcome, String> {
    let offer = TlsOffer { alpn: vec![b"h3".to_vec()], ..TlsOffer::default() };
    let closed = refused(cx, &offer).await?;
    ensure(closed.alert() == Some(ALERT_NO_APPLICATION_PROTOCOL), || {
        format!("expected TLS alert no_application_protocol (120), got {closed}")
    })?;
    Outcome::pass(closed.to_string())
}

/// `[tls.mutual]`: exactly one certificate, whose key is Ed25519 and
/// a valid AgentId (the handshake signature was verified with it).
async fn certificate(cx: &Target) -> Result<Outcome, String> {
    let dialed = cx.dialer.dial().await?;
    dialed.connection.close(CLOSED, b"");
    let [certificate] = dialed.chain.as_slice() else {
        return Err(format!("the server presented {} certificates, not exactly one", dialed.chain.len()));
    };
    let id = tacit_quic::tls::agent_id_of_certificate(certificate).map_err(|e| format!("{e}"))?;
    Outcome::pass(format!("one Ed25519 certificate, AgentId {id}"))
}

/// `[tls.peer-id]`: the certificate's key is the AgentId `--expect` names.
async fn expected_id(cx: &Target) -> Result<Outcome, String> {
    let Some(expected) = cx.expect else {
        return Outcome::skip("no --expect given");
    };
    let dialed = cx.dialer.dial().await?;
    dialed.connection.close(CLOSED, b"");
    let found = dialed
        .chain
        .first()
        .ok_or("no certificate")
        .and_then(|c| tacit_quic::tls::agent_id_of_certificate(c).map_err(|_| "no AgentId in the certificate"))?;
    ensure(found == expected, || format!("the certificate names {found}, not {expected}"))?;
    Outcome::pass(format!("{found}"))
}

/// `[tls.client-cert-required]`: a client without a certificate is refused
/// with the `certificate_required` alert.
async fn client_cert_required(cx: &Target) -> Result<Outcome, String> {
    let offer = TlsOffer { chain: ClientChain::None, ..TlsOffer::default() };
    let closed = refused(cx, &offer).await?;
    ensure(closed.alert() == Some(ALERT_CERTIFICATE_REQUIRED), || {
        format!("expected TLS alert certificate_required (116), got {closed}")
    })?;
    Outcome::pass(closed.to_string())
}

/// `[tls.sig-ed25519]`: a client that offers only non-Ed25519 signature
/// schemes cannot complete a handshake.
async fn ed25519_only(cx: &Target) -> Result<Outcome, String> {
    let offer = TlsOffer {
        schemes: vec![
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA256,
        ],
        ..TlsOffer::default()
    };
    let closed = refused(cx, &offer).await?;
    ensure(closed.alert().is_some(), || format!("expected a TLS alert, got {closed}"))?;
    Outcome::pass(closed.to_string())
}

/// `[tls.sni-ignored]`: a dialer that sends no SNI (as stacks dialing an IP
/// literal do) completes the handshake and is welcomed.
async fn no_sni(cx: &Target) -> Result<Outcome, String> {
    let offer = TlsOffer { sni: false, ..TlsOffer::default() };
    let dialed = cx.dialer.dial_with(&offer).await.map_err(|e| format!("refused without SNI: {e}"))?;
    let mut control = net::Control::open(&dialed.connection).await?;
    control.send(&tacit_wire::pb::control_message::Message::Hello(net::hello(1, 1, 256))).await?;
    let first = control.recv().await?;
    dialed.connection.close(CLOSED, b"");
    ensure(matches!(first, tacit_wire::pb::control_message::Message::Welcome(_)), || {
        format!("without SNI the Hello got {}", net::message_name(&first))
    })?;
    Outcome::pass("welcomed without SNI")
}

/// Dials with `offer`, which the server must refuse: how the connection
/// ended (the refusal of a client certificate may come just after the
/// client's side of the handshake completed). Then checks that the agent
/// still serves.
async fn refused(cx: &Target, offer: &TlsOffer) -> Result<Closed, String> {
    let closed = match cx.dialer.dial_with(offer).await {
        Err(closed) => closed,
        Ok(dialed) => {
            let wait = cx.timeout.saturating_sub(Duration::from_millis(500)).max(Duration::from_millis(500));
            match tokio::time::timeout(wait, dialed.connection.closed()).await {
                Ok(error) => Closed::from_error(&error),
                Err(_) => {
                    dialed.connection.close(CLOSED, b"");
                    return Err("the server accepted the connection".into());
                }
            }
        }
    };
    // A refused handshake is bad input too: the agent must go on serving.
    cx.still_serving().await?;
    Ok(closed)
}

/// `[tls.no-resumption]`: the server sends no session tickets (checked
/// after a Ping round trip, by when tickets have arrived).
async fn no_tickets(cx: &Target) -> Result<Outcome, String> {
    let counter = std::sync::Arc::new(net::TicketCounter::default());
    let offer = TlsOffer { tickets: Some(counter.clone()), ..TlsOffer::default() };
    let dialed = cx.dialer.dial_with(&offer).await.map_err(|e| format!("cannot connect: {e}"))?;
    let mut control = net::Control::open(&dialed.connection).await?;
    control.send(&tacit_wire::pb::control_message::Message::Hello(net::hello(1, 1, 256))).await?;
    let _ = control.recv().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    dialed.connection.close(CLOSED, b"");
    let tickets = counter.count();
    ensure(tickets == 0, || format!("the server sent {tickets} session ticket(s)"))?;
    Outcome::pass("no session tickets")
}

/// `[tls.cert-refused]`: a client certificate whose key is not Ed25519 fails
/// the handshake (`bad_certificate` recommended).
async fn client_cert_not_ed25519(cx: &Target) -> Result<Outcome, String> {
    cert_refused(cx, ClientChain::NotEd25519).await
}

/// `[tls.cert-refused]`: a client chain of two certificates fails the handshake.
async fn client_chain_of_two(cx: &Target) -> Result<Outcome, String> {
    cert_refused(cx, ClientChain::TwoCertificates).await
}

async fn cert_refused(cx: &Target, chain: ClientChain) -> Result<Outcome, String> {
    let closed = refused(cx, &TlsOffer { chain, ..TlsOffer::default() }).await?;
    let alert = closed.alert().ok_or_else(|| format!("expected a TLS alert, got {closed}"))?;
    if alert == net::ALERT_BAD_CERTIFICATE {
        Outcome::pass(closed.to_string())
    } else {
        Outcome::pass(format!("{closed} (bad_certificate is recommended)"))
    }
}
