//! `tacit conformance --serve ADDR`: the tester plays the acceptor and
//! checks the implementation that dials it.
//!
//! A *session* is the first connection from an AgentId, and every other
//! connection that AgentId opens while it lasts. On the first connection
//! the tester checks the client's certificate and SNI, that the Hello comes
//! first on the first bidirectional stream with a valid version range and
//! capabilities, answers with a Welcome offering the standard Ping (and
//! answers Ping asks), asks the client a Ping when the client offers to
//! handle it, and checks how the client closes. A second connection during
//! the session is refused with a `Refusal` that the tester does not follow
//! with a close: the client must close it. The results are printed when the
//! session's first connection ends.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tacit::Intent as _;
use tacit::intents::{Ping, Pong};
use tacit_handshake::{AgentId, Identity};
use tacit_wire::pb::control_message::Message;
use tacit_wire::{Act, Envelope, ErrorCode, IntentId, IntentRef, pb};

use super::net::{self, Closed, Control, FrameReader, code_text, frame, message_name};
use super::report::{CheckReport, Outcome, Report};
use super::{CLOSED, ensure};
use crate::error::CliError;

/// The code the tester refuses a second connection of a session with.
const REFUSAL_CODE: ErrorCode = ErrorCode::NoCommonIntents;

/// Accepts any client certificate (the checks judge it after the
/// handshake, from the connection's peer identity); asks for Ed25519 only.
#[derive(Debug)]
struct AnyClient(Arc<CryptoProvider>);

impl ClientCertVerifier for AnyClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        // Let a client without a certificate in, so the check can say so.
        false
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

fn server_config(identity: &Identity) -> Result<quinn::ServerConfig, String> {
    let (certificate, key) = net::credentials(identity)?;
    let provider = net::provider();
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(AnyClient(provider)))
        .with_single_cert(vec![certificate], key)
        .map_err(|e| e.to_string())?;
    crypto.alpn_protocols = vec![tacit_quic::tls::ALPN.to_vec()];
    crypto.max_early_data_size = 0;
    crypto.send_tls13_tickets = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto).map_err(|e| e.to_string())?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// The AgentIds with a session in progress, and the outcome of the refusal
/// check of each (set when a second connection came).
type Sessions = Arc<Mutex<HashMap<AgentId, Option<CheckReport>>>>;

pub(super) async fn run(addr: SocketAddr, once: bool, json: bool, timeout: Duration) -> Result<(), CliError> {
    let identity = Identity::generate().map_err(|e| CliError::failure(e.to_string()))?;
    let config = server_config(&identity).map_err(CliError::failure)?;
    let endpoint = quinn::Endpoint::server(config, addr)
        .map_err(|e| CliError::failure(format!("cannot listen on {addr}: {e}")))?;
    let local = endpoint.local_addr().map_err(|e| CliError::failure(e.to_string()))?;
    eprintln!("serving on {local} as {}", identity.agent_id());
    let sessions: Sessions = Arc::default();
    let (done, mut reports) = tokio::sync::mpsc::unbounded_channel::<Report>();
    let mut failed = 0;
    let stop = crate::listen::stopped();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let Ok(connection) = incoming.await else { continue };
                let id = client_id(&connection);
                let second = id.is_some_and(|id| {
                    sessions.lock().is_ok_and(|mut sessions| match sessions.entry(id) {
                        Entry::Occupied(_) => true,
                        Entry::Vacant(slot) => {
                            slot.insert(None);
                            false
                        }
                    })
                });
                if second {
                    let (sessions, id) = (sessions.clone(), id);
                    tokio::spawn(async move {
                        let report = refuse(connection, timeout).await;
                        if let (Ok(mut sessions), Some(id)) = (sessions.lock(), id)
                            && let Some(slot) = sessions.get_mut(&id)
                        {
                            *slot = Some(report);
                        }
                    });
                } else {
                    let (sessions, done) = (sessions.clone(), done.clone());
                    tokio::spawn(async move {
                        let mut report = session(connection, timeout).await;
                        let refusal = id.and_then(|id| sessions.lock().ok()?.remove(&id).flatten());
                        report.push(refusal.unwrap_or_else(|| {
                            CheckReport::named(
                                "serve.refusal-honoured", "hs.refusal-received", SECTION_HS, false,
                                Outcome::Skip("the client did not dial again during the session".into()),
                                Duration::ZERO,
                            )
                        }));
                        let _ = done.send(report);
                    });
                }
            }
            Some(mut report) = reports.recv() => {
                failed += report.failed();
                print(&mut report, json);
                if once {
                    break;
                }
            }
            () = &mut stop => break,
        }
    }
    endpoint.close(CLOSED, b"");
    super::verdict(failed)
}

fn print(report: &mut Report, json: bool) {
    if !json {
        for line in report.lines() {
            report.print_line(&line);
        }
    }
    report.print_end(json);
}

const SECTION_TLS: &str = "TLS profile (dialer)";
const SECTION_HS: &str = "Capability handshake (dialer)";
const SECTION_ASK: &str = "Ask lane (dialer)";
const SECTION_SESSION: &str = "Session (dialer)";

fn client_id(connection: &quinn::Connection) -> Option<AgentId> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast_ref::<Vec<CertificateDer<'static>>>()?;
    chain.first().and_then(|c| tacit_quic::tls::agent_id_of_certificate(c).ok())
}

/// Collects the checks of one session.
struct Checks {
    report: Report,
    started: Instant,
}

impl Checks {
    fn add(&mut self, section: &str, id: &str, rule: &str, outcome: Result<Outcome, String>) -> bool {
        let outcome = outcome.unwrap_or_else(Outcome::Fail);
        let passed = matches!(outcome, Outcome::Pass(_));
        self.report.push(CheckReport::named(id, rule, section, false, outcome, self.started.elapsed()));
        self.started = Instant::now();
        passed
    }
}

async fn session(connection: quinn::Connection, timeout: Duration) -> Report {
    let peer = client_id(&connection).map_or_else(|| connection.remote_address().to_string(), |id| id.to_string());
    let mut checks = Checks { report: Report::new("serve", &peer), started: Instant::now() };
    checks.add(SECTION_TLS, "serve.client-certificate", "tls.mutual", client_certificate(&connection));
    checks.add(SECTION_TLS, "serve.sni", "tls.sni", sni(&connection));

    let hello = tokio::time::timeout(timeout, first_hello(&connection))
        .await
        .unwrap_or_else(|_| Err(format!("no Hello within {timeout:?}")));
    let (mut control, hello) = match hello {
        Ok(found) => found,
        Err(reason) => {
            checks.add(SECTION_HS, "serve.hello-first", "hs.control-stream", Err(reason));
            connection.close(ErrorCode::UnexpectedMessage.into_varint(), b"no Hello");
            return checks.report;
        }
    };
    checks.add(SECTION_HS, "serve.hello-first", "hs.control-stream", Outcome::pass("Hello on stream 0"));
    let caps = hello.capabilities.clone().unwrap_or_default();
    let versions_ok = checks.add(SECTION_HS, "serve.version", "hs.capabilities-valid", version_range(&caps));
    let caps_ok = checks.add(SECTION_HS, "serve.capabilities", "hs.capabilities-valid", capabilities(&caps));
    if !(versions_ok && caps_ok) {
        connection.close(ErrorCode::InvalidCapabilities.into_varint(), b"see the conformance report");
        return checks.report;
    }
    let welcome = pb::Welcome {
        version: 1,
        card: Some(net::card()),
        capabilities: Some(pb::Capabilities {
            versions: Some(pb::VersionRange { min: 1, max: 1 }),
            intents: vec![net::ping_offer()],
            limits: Some(pb::Limits { max_frame_len: 1 << 20, max_concurrent_asks: 256 }),
            features: 0,
        }),
        credentials: Vec::new(),
    };
    if let Err(reason) = control.send(&Message::Welcome(welcome)).await {
        checks.add(SECTION_HS, "serve.welcome-sent", "hs.control-stream", Err(reason));
        return checks.report;
    }
    let client_intents = Arc::new(Mutex::new(caps.intents.clone()));
    let asks = Arc::new(Mutex::new(AskLog::default()));
    tokio::spawn(control_loop(control, client_intents.clone()));
    tokio::spawn(accept_streams(connection.clone(), asks.clone()));

    let asked = tokio::time::timeout(timeout, ask_client(&connection, &client_intents))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
    checks.add(SECTION_ASK, "serve.answers-ask", "ask.answer-once", asked);

    let closed = Closed::from_error(&connection.closed().await);
    let log = asks.lock().map(|log| log.clone()).unwrap_or_default();
    checks.add(SECTION_ASK, "serve.asks-well-formed", "env.intent-ref", log.outcome());
    // Provisional: helper A of issue 13 settles the normal close code (point 16).
    checks.add(SECTION_SESSION, "serve.close-code", "session.close-normal", close_code(&closed));
    checks.report
}

fn client_certificate(connection: &quinn::Connection) -> Result<Outcome, String> {
    let identity = connection.peer_identity().ok_or("the client presented no certificate")?;
    let chain = identity.downcast_ref::<Vec<CertificateDer<'static>>>().ok_or("no certificate chain")?;
    let [certificate] = chain.as_slice() else {
        return Err(format!("the client presented {} certificates, not exactly one", chain.len()));
    };
    let id = tacit_quic::tls::agent_id_of_certificate(certificate).map_err(|e| e.to_string())?;
    Outcome::pass(format!("one Ed25519 certificate, AgentId {id}"))
}

fn sni(connection: &quinn::Connection) -> Result<Outcome, String> {
    let name = connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.server_name);
    match name {
        None => Outcome::pass("no SNI"),
        Some(name) if name == "tacit" || name.parse::<AgentId>().is_ok() => Outcome::pass(format!("SNI {name:?}")),
        Some(name) => Err(format!("SNI {name:?} is neither a printed AgentId nor \"tacit\"")),
    }
}

/// The client's first bidirectional stream and its first message, a Hello.
async fn first_hello(connection: &quinn::Connection) -> Result<(Control, pb::Hello), String> {
    let (send, recv) = connection.accept_bi().await.map_err(|e| format!("no stream: {e}"))?;
    ensure(send.id().index() == 0, || format!("the first bidirectional stream has index {}", send.id().index()))?;
    let mut control = Control { send, reader: FrameReader::new(recv, net::CONTROL_MAX_FRAME) };
    match control.recv().await? {
        Message::Hello(hello) => Ok((control, hello)),
        other => Err(format!("the first control message is {}, not Hello", message_name(&other))),
    }
}

fn version_range(caps: &pb::Capabilities) -> Result<Outcome, String> {
    let v = caps.versions.ok_or("the Hello has no version range")?;
    ensure(v.min >= 1 && v.min <= v.max, || format!("the version range {}..={} is not valid", v.min, v.max))?;
    ensure(v.min <= 1, || format!("the version range {}..={} leaves out version 1", v.min, v.max))?;
    Outcome::pass(format!("versions {}..={}", v.min, v.max))
}

fn capabilities(caps: &pb::Capabilities) -> Result<Outcome, String> {
    ensure(caps.intents.len() <= 4096, || format!("{} intents offered", caps.intents.len()))?;
    let mut seen = std::collections::HashSet::new();
    for offer in &caps.intents {
        ensure(offer.intent_id.len() == 32, || format!("an intent id of {} bytes", offer.intent_id.len()))?;
        ensure(offer.name.len() <= 128, || format!("an intent name of {} bytes", offer.name.len()))?;
        ensure(seen.insert(offer.intent_id.clone()), || format!("{} offered twice", offer.name))?;
    }
    let limits = caps.limits.ok_or("the Hello has no limits")?;
    ensure(limits.max_frame_len > 0 && limits.max_concurrent_asks > 0, || format!("a zero limit: {limits:?}"))?;
    Outcome::pass(format!("{} intents", caps.intents.len()))
}

/// Serves the control stream after the Welcome: capability updates are
/// appended to the client's list, schema requests answered.
async fn control_loop(mut control: Control, intents: Arc<Mutex<Vec<pb::IntentOffer>>>) {
    while let Ok(message) = control.recv().await {
        let answer = match message {
            Message::CapabilityUpdate(update) => {
                if let Ok(mut intents) = intents.lock() {
                    intents.extend(update.added);
                }
                continue;
            }
            Message::DescribeRequest(request) => describe(request.intent_id),
            _ => continue,
        };
        if control.send(&Message::DescribeResponse(answer)).await.is_err() {
            return;
        }
    }
}

fn describe(intent_id: Bytes) -> pb::DescribeIntentResponse {
    match tacit::Schema::of::<Ping>() {
        Ok(schema) if intent_id.as_ref() == Ping::ID.as_bytes() => pb::DescribeIntentResponse {
            intent_id,
            name: schema.name().to_owned(),
            descriptor_set: schema.descriptor_set().clone(),
            error: 0,
        },
        _ => pb::DescribeIntentResponse { intent_id, error: ErrorCode::UnknownIntent as i32, ..Default::default() },
    }
}

/// What the client asked on its ask streams.
#[derive(Debug, Clone, Default)]
struct AskLog {
    answered: usize,
    wrong: Vec<String>,
}

impl AskLog {
    fn outcome(&self) -> Result<Outcome, String> {
        if let Some(first) = self.wrong.first() {
            return Err(first.clone());
        }
        if self.answered == 0 {
            return Outcome::skip("the client asked nothing");
        }
        Outcome::pass(format!("{} Ping asks, each by alias 1 or the full IntentId", self.answered))
    }
}

/// Takes the streams the client opens: answers Ping asks on ask streams,
/// reads tells, ends anything else with `INVALID_STREAM_KIND`.
async fn accept_streams(connection: quinn::Connection, log: Arc<Mutex<AskLog>>) {
    loop {
        tokio::select! {
            bi = connection.accept_bi() => {
                let Ok((send, recv)) = bi else { return };
                tokio::spawn(serve_bi(send, recv, log.clone()));
            }
            uni = connection.accept_uni() => {
                let Ok(mut recv) = uni else { return };
                tokio::spawn(async move { let _ = recv.read_to_end(16 << 20).await; });
            }
        }
    }
}

async fn serve_bi(mut send: quinn::SendStream, recv: quinn::RecvStream, log: Arc<Mutex<AskLog>>) {
    let mut reader = FrameReader::new(recv, tacit_wire::DEFAULT_MAX_FRAME_LEN);
    if reader.kind().await != Ok(net::KIND_ASK) {
        let _ = send.reset(ErrorCode::InvalidStreamKind.into_varint());
        return;
    }
    while let Ok(body) = reader.next().await {
        let Ok(ask) = Envelope::decode(body) else {
            note(&log, "the client sent a malformed envelope".into());
            let _ = send.reset(ErrorCode::MalformedMessage.into_varint());
            return;
        };
        let is_ping = matches!(ask.intent, IntentRef::Alias(1)) || ask.intent == IntentRef::Id(Ping::ID);
        let answer = match Ping::decode(ask.payload.clone()) {
            Ok(ping) if is_ping && ask.act == Act::Request => {
                if let Ok(mut log) = log.lock() {
                    log.answered += 1;
                }
                let mut reply = Envelope::new(
                    IntentRef::Id(Pong::ID),
                    Act::Inform,
                    0,
                    Pong { nonce: ping.nonce }.encode_to_vec().into(),
                );
                reply.in_reply_to = ask.message_id;
                reply
            }
            _ => {
                note(
                    &log,
                    format!("an ask names {:?}, which the Welcome did not offer under that reference", ask.intent),
                );
                let refusal = pb::Refusal {
                    code: ErrorCode::IntentNotNegotiated as i32,
                    reason: "only tacit.intents.v1.Ping is offered".into(),
                    ..Default::default()
                };
                let mut reply = Envelope::new(
                    IntentRef::Id(IntentId::from_bytes([0; 32])),
                    Act::NotUnderstood,
                    0,
                    refusal.encode_to_vec().into(),
                );
                reply.intent = ask.intent;
                reply.in_reply_to = ask.message_id;
                reply
            }
        };
        if send.write_all(&frame(&answer.encode_to_bytes())).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
}

fn note(log: &Mutex<AskLog>, wrong: String) {
    if let Ok(mut log) = log.lock() {
        log.wrong.push(wrong);
    }
}

/// `[ask.answer-once]`: the client, offering to handle Ping, answers the
/// tester's Ping ask with a Pong echoing the nonce.
async fn ask_client(connection: &quinn::Connection, intents: &Mutex<Vec<pb::IntentOffer>>) -> Result<Outcome, String> {
    let caps =
        pb::Capabilities { intents: intents.lock().map(|i| i.clone()).unwrap_or_default(), ..Default::default() };
    let Some(alias) =
        net::alias_in(Some(&caps), Ping::ID).filter(|_| net::offers(Some(&caps), Ping::ID, |o| o.handles))
    else {
        return Outcome::skip("the client does not offer to handle tacit.intents.v1.Ping");
    };
    let mut lane = net::Lane::open_bi(connection, net::KIND_ASK).await?;
    lane.send_envelopes(&[net::ping_ask(IntentRef::Alias(alias), 31, 0xfeed)]).await?;
    let reply = lane.reply().await?;
    let _ = lane.send.finish();
    ensure(reply.in_reply_to == 31, || format!("the answer is to {}, not 31", reply.in_reply_to))?;
    ensure(reply.act == Act::Inform, || {
        format!(
            "answered {} ({})",
            crate::error::act_name(reply.act),
            code_text(net::refusal_code(&reply).unwrap_or(0))
        )
    })?;
    let pong = Pong::decode(reply.payload.clone()).map_err(|e| format!("the answer is not a Pong: {e}"))?;
    ensure(pong.nonce == 0xfeed, || format!("the Pong carries nonce {}", pong.nonce))?;
    Outcome::pass(format!("Pong (alias {alias})"))
}

/// `[session.close-normal]`: the client ends the session with `CLOSED`
/// (or 0 from older peers, or `SHUTDOWN`).
fn close_code(closed: &Closed) -> Result<Outcome, String> {
    let normal = [0, ErrorCode::Closed as u64, ErrorCode::Shutdown as u64];
    match closed.application_code() {
        Some(code) if normal.contains(&code) => Outcome::pass(closed.to_string()),
        _ => Err(format!("the client ended the session with {closed}, not CLOSED")),
    }
}

/// `[hs.refusal-honoured]`: a second connection of the session gets a
/// `Refusal` (and no close from the tester): the client must close it.
async fn refuse(connection: quinn::Connection, timeout: Duration) -> CheckReport {
    let started = Instant::now();
    let outcome = async {
        let (mut control, _) = tokio::time::timeout(timeout, first_hello(&connection))
            .await
            .map_err(|_| "no Hello on the second connection".to_owned())??;
        let refusal = pb::Refusal {
            code: REFUSAL_CODE as i32,
            reason: "tacit conformance refuses a second connection to check that the dialer closes".into(),
            ..Default::default()
        };
        control.send(&Message::Refusal(refusal)).await?;
        match tokio::time::timeout(timeout, connection.closed()).await {
            Ok(error) => Outcome::pass(format!("the client closed: {}", Closed::from_error(&error))),
            Err(_) => Err(format!("the client kept the connection open {timeout:?} after a Refusal")),
        }
    }
    .await
    .unwrap_or_else(Outcome::Fail);
    connection.close(REFUSAL_CODE.into_varint(), b"refused");
    CheckReport::named("serve.refusal-honoured", "hs.refusal-received", SECTION_HS, false, outcome, started.elapsed())
}

trait IntoVarint {
    fn into_varint(self) -> quinn::VarInt;
}

impl IntoVarint for ErrorCode {
    fn into_varint(self) -> quinn::VarInt {
        quinn::VarInt::from_u32(u32::try_from(self as i32).unwrap_or(0))
    }
}
