//! Low-level access for the conformance checks: quinn and rustls set up by
//! hand (so a check can offer what a well-behaved agent never would), raw
//! frames, control messages and envelopes written and read by tacit-wire
//! types, and the ways a peer can end a stream or a connection, observed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tacit::Intent as _;
use tacit::intents::Ping;
use tacit_handshake::Identity;
use tacit_wire::{Act, Envelope, FrameDecoder, IntentId, IntentRef, pb};

/// The control stream's maximum frame size (docs/PROTOCOL.md).
pub(super) const CONTROL_MAX_FRAME: usize = 1 << 20;
/// The stream kinds of docs/PROTOCOL.md, "Streams".
pub(super) const KIND_ASK: u8 = 0x01;
pub(super) const KIND_TELL: u8 = 0x02;
pub(super) const KIND_STREAM: u8 = 0x03;
/// QUIC transport error code of a TLS alert: 0x100 + the alert (RFC 9001 §4.8).
pub(super) const CRYPTO_ERROR: u64 = 0x100;
pub(super) const ALERT_HANDSHAKE_FAILURE: u64 = 40;
pub(super) const ALERT_BAD_CERTIFICATE: u64 = 42;
pub(super) const ALERT_CERTIFICATE_REQUIRED: u64 = 116;
pub(super) const ALERT_NO_APPLICATION_PROTOCOL: u64 = 120;

/// The rustls provider every configuration here uses.
pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate of the profile in docs/PROTOCOL.md ("TLS profile") over
/// `identity`'s key, with its private key.
pub(super) fn credentials(identity: &Identity) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), String> {
    let pkcs8 = identity.to_pkcs8_der();
    let key_pair = rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(|e| e.to_string())?;
    let name = identity.agent_id().to_string();
    let mut params = rcgen::CertificateParams::new(vec![name.clone()]).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.not_before = rcgen::date_time_ymd(1975, 1, 1);
    params.not_after = rcgen::date_time_ymd(4096, 1, 1);
    let certificate = params.self_signed(&key_pair).map_err(|e| e.to_string())?;
    Ok((certificate.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()))))
}

/// A self-signed ECDSA P-256 certificate: not a Tacit identity.
fn ecdsa_certificate() -> Result<CertificateDer<'static>, String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let params = rcgen::CertificateParams::new(vec!["not-an-agent".to_owned()]).map_err(|e| e.to_string())?;
    Ok(params.self_signed(&key).map_err(|e| e.to_string())?.der().clone())
}

/// What the tester's TLS client offers on one connection.
#[derive(Debug, Clone)]
pub(super) struct TlsOffer {
    pub(super) alpn: Vec<Vec<u8>>,
    /// The certificate chain the tester presents.
    pub(super) chain: ClientChain,
    /// The signature schemes offered for the server's CertificateVerify.
    pub(super) schemes: Vec<SignatureScheme>,
    /// Send SNI (false: none, as many stacks do when dialing an IP literal).
    pub(super) sni: bool,
    /// Count the session tickets the server sends (none: resumption off).
    pub(super) tickets: Option<Arc<TicketCounter>>,
}

/// A client session store that keeps nothing and counts the TLS 1.3
/// tickets offered to it.
#[derive(Debug, Default)]
pub(super) struct TicketCounter(std::sync::atomic::AtomicUsize);

impl TicketCounter {
    pub(super) fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl rustls::client::ClientSessionStore for TicketCounter {
    fn set_kx_hint(&self, _: ServerName<'static>, _: rustls::NamedGroup) {}

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        None
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: rustls::client::Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, _: rustls::client::Tls13ClientSessionValue) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<rustls::client::Tls13ClientSessionValue> {
        None
    }
}

impl Default for TlsOffer {
    fn default() -> Self {
        Self {
            alpn: vec![tacit_quic::tls::ALPN.to_vec()],
            chain: ClientChain::Own,
            schemes: vec![SignatureScheme::ED25519],
            sni: true,
            tickets: None,
        }
    }
}

/// What the tester presents as its client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientChain {
    /// Its own Ed25519 certificate, as the profile says.
    Own,
    /// None at all.
    None,
    /// An ECDSA P-256 certificate (the handshake still signed with the
    /// Ed25519 key, so only the certificate check can refuse it).
    NotEd25519,
    /// Its own certificate twice: a chain of two.
    TwoCertificates,
}

/// Accepts any server certificate, recording the chain for the checks to
/// judge; verifies the handshake signature with the certificate's key.
#[derive(Debug)]
struct RecordingVerifier {
    chain: Arc<Mutex<Vec<CertificateDer<'static>>>>,
    schemes: Vec<SignatureScheme>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            *chain = std::iter::once(end_entity).chain(intermediates).map(|c| c.clone().into_owned()).collect();
        }
        Ok(ServerCertVerified::assertion())
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
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// How a connection attempt or a connection ended.
#[derive(Debug)]
pub(super) enum Closed {
    /// The peer (or the TLS stack) closed it with this code: an application
    /// code, or a transport code (0x100 + alert for TLS).
    Code { code: u64, application: bool, reason: String },
    /// Anything else (timeout, reset, local error).
    Other(String),
}

impl Closed {
    pub(super) fn from_error(error: &quinn::ConnectionError) -> Self {
        match error {
            quinn::ConnectionError::ApplicationClosed(close) => Self::Code {
                code: close.error_code.into_inner(),
                application: true,
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            quinn::ConnectionError::ConnectionClosed(close) => Self::Code {
                code: u64::from(close.error_code),
                application: false,
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            quinn::ConnectionError::TransportError(error) => {
                Self::Code { code: u64::from(error.code), application: false, reason: error.reason.clone() }
            }
            other => Self::Other(other.to_string()),
        }
    }

    /// The TLS alert, if the connection ended with one.
    pub(super) fn alert(&self) -> Option<u64> {
        match self {
            Self::Code { code, application: false, .. } if (CRYPTO_ERROR..CRYPTO_ERROR + 0x100).contains(code) => {
                Some(code - CRYPTO_ERROR)
            }
            _ => None,
        }
    }

    /// The application error code, if the peer closed with one.
    pub(super) fn application_code(&self) -> Option<u64> {
        match self {
            Self::Code { code, application: true, .. } => Some(*code),
            _ => None,
        }
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code { code, application: true, reason } => {
                write!(f, "closed with {} ({reason:?})", code_text(*code))
            }
            Self::Code { code, application: false, reason } => match self.alert() {
                Some(alert) => write!(f, "TLS alert {} ({alert}) ({reason:?})", alert_name(alert)),
                None => write!(f, "transport error {code:#x} ({reason:?})"),
            },
            Self::Other(text) => f.write_str(text),
        }
    }
}

/// `NAME (0x...)` of a Tacit error code, or the bare number.
pub(super) fn code_text(code: u64) -> String {
    match i32::try_from(code).ok().and_then(|c| tacit_wire::ErrorCode::try_from(c).ok()) {
        Some(known) => format!("{} ({code:#x})", crate::error::code_name(known)),
        None => format!("{code:#x}"),
    }
}

pub(super) fn alert_name(alert: u64) -> &'static str {
    match alert {
        ALERT_HANDSHAKE_FAILURE => "handshake_failure",
        ALERT_BAD_CERTIFICATE => "bad_certificate",
        43 => "unsupported_certificate",
        46 => "certificate_unknown",
        48 => "unknown_ca",
        80 => "internal_error",
        ALERT_CERTIFICATE_REQUIRED => "certificate_required",
        ALERT_NO_APPLICATION_PROTOCOL => "no_application_protocol",
        _ => "other",
    }
}

/// Dials the implementation under test, as the tester's identity.
pub(super) struct Dialer {
    endpoint: quinn::Endpoint,
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    provider: Arc<CryptoProvider>,
    pub(super) addr: SocketAddr,
}

/// A connection that finished its QUIC handshake.
pub(super) struct Dialed {
    pub(super) connection: quinn::Connection,
    /// The certificate chain the server presented.
    pub(super) chain: Vec<CertificateDer<'static>>,
}

impl Dialer {
    pub(super) fn new(identity: &Identity, addr: SocketAddr) -> Result<Self, String> {
        let (certificate, key) = credentials(identity)?;
        let endpoint = quinn::Endpoint::client(crate::connect::local_for(addr))
            .map_err(|e| format!("cannot bind a UDP socket: {e}"))?;
        Ok(Self { endpoint, certificate, key, provider: provider(), addr })
    }

    fn config(
        &self,
        offer: &TlsOffer,
        chain: Arc<Mutex<Vec<CertificateDer<'static>>>>,
    ) -> Result<quinn::ClientConfig, String> {
        let verifier = RecordingVerifier { chain, schemes: offer.schemes.clone(), provider: self.provider.clone() };
        let builder = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let chain = match offer.chain {
            ClientChain::Own => vec![self.certificate.clone()],
            ClientChain::None => Vec::new(),
            ClientChain::NotEd25519 => vec![ecdsa_certificate()?],
            ClientChain::TwoCertificates => vec![self.certificate.clone(), self.certificate.clone()],
        };
        let mut crypto = if chain.is_empty() {
            builder.with_no_client_auth()
        } else {
            // No check that the key fits the chain: the tester may lie.
            let key = self.provider.key_provider.load_private_key(self.key.clone_key()).map_err(|e| e.to_string())?;
            let certified = rustls::sign::CertifiedKey::new(chain, key);
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(Arc::new(certified))))
        };
        crypto.alpn_protocols = offer.alpn.clone();
        crypto.enable_sni = offer.sni;
        crypto.resumption = match &offer.tickets {
            Some(counter) => rustls::client::Resumption::store(counter.clone()),
            None => rustls::client::Resumption::disabled(),
        };
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).map_err(|e| e.to_string())?;
        Ok(quinn::ClientConfig::new(Arc::new(crypto)))
    }

    /// Dials with `offer`; the error says how the attempt ended.
    pub(super) async fn dial_with(&self, offer: &TlsOffer) -> Result<Dialed, Closed> {
        let chain = Arc::new(Mutex::new(Vec::new()));
        let config = self.config(offer, chain.clone()).map_err(Closed::Other)?;
        let connecting =
            self.endpoint.connect_with(config, self.addr, "tacit").map_err(|e| Closed::Other(e.to_string()))?;
        let connection = connecting.await.map_err(|e| Closed::from_error(&e))?;
        let chain = chain.lock().map(|c| c.clone()).unwrap_or_default();
        Ok(Dialed { connection, chain })
    }

    /// Dials as a well-behaved peer would.
    pub(super) async fn dial(&self) -> Result<Dialed, String> {
        self.dial_with(&TlsOffer::default()).await.map_err(|e| format!("cannot connect: {e}"))
    }

    /// Dials and runs the capability handshake with `hello`, up to the
    /// peer's first control message, which must be a `Welcome`.
    pub(super) async fn session(&self, hello: pb::Hello) -> Result<Session, String> {
        let dialed = self.dial().await?;
        let mut control = Control::open(&dialed.connection).await?;
        control.send(&pb::control_message::Message::Hello(hello)).await?;
        match control.recv().await? {
            pb::control_message::Message::Welcome(welcome) => {
                Ok(Session { connection: dialed.connection, control, welcome })
            }
            pb::control_message::Message::Refusal(refusal) => Err(format!(
                "the handshake was refused: {} ({:?})",
                code_text(u64::try_from(refusal.code).unwrap_or(0)),
                refusal.reason
            )),
            other => Err(format!("expected Welcome, got {}", message_name(&other))),
        }
    }

    /// A session with the tester's usual Hello.
    pub(super) async fn welcomed(&self) -> Result<Session, String> {
        self.session(hello(1, 1, 256)).await
    }
}

/// A connection past the capability handshake.
pub(super) struct Session {
    pub(super) connection: quinn::Connection,
    pub(super) control: Control,
    pub(super) welcome: pb::Welcome,
}

impl Session {
    /// The alias under which the peer takes `intent` (its 1-based position
    /// in the peer's list), if the peer offers it.
    pub(super) fn alias(&self, intent: IntentId) -> Option<u32> {
        alias_in(self.welcome.capabilities.as_ref(), intent)
    }

    /// The peer offers to handle `intent`.
    pub(super) fn handles(&self, intent: IntentId) -> bool {
        offers(self.welcome.capabilities.as_ref(), intent, |offer| offer.handles)
    }

    pub(super) async fn open_ask(&self) -> Result<Lane, String> {
        Lane::open_bi(&self.connection, KIND_ASK).await
    }
}

pub(super) fn alias_in(capabilities: Option<&pb::Capabilities>, intent: IntentId) -> Option<u32> {
    let intents = &capabilities?.intents;
    let position = intents.iter().position(|offer| offer.intent_id.as_ref() == intent.as_bytes())?;
    u32::try_from(position + 1).ok()
}

pub(super) fn offers(
    capabilities: Option<&pb::Capabilities>,
    intent: IntentId,
    how: impl Fn(&pb::IntentOffer) -> bool,
) -> bool {
    capabilities.is_some_and(|caps| {
        caps.intents.iter().any(|offer| offer.intent_id.as_ref() == intent.as_bytes() && how(offer))
    })
}

/// The tester's Hello: versions `min..=max`, the standard Ping emitted and
/// handled, the given concurrent-ask limit.
pub(super) fn hello(min: u32, max: u32, max_concurrent_asks: u32) -> pb::Hello {
    pb::Hello {
        card: Some(card()),
        capabilities: Some(pb::Capabilities {
            versions: Some(pb::VersionRange { min, max }),
            intents: vec![ping_offer()],
            limits: Some(pb::Limits { max_frame_len: 1 << 20, max_concurrent_asks }),
            features: 0,
        }),
        credentials: Vec::new(),
    }
}

pub(super) fn card() -> pb::AgentCard {
    pb::AgentCard {
        name: "tacit-conformance".into(),
        software_version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

pub(super) fn ping_offer() -> pb::IntentOffer {
    pb::IntentOffer {
        intent_id: Bytes::copy_from_slice(Ping::ID.as_bytes()),
        name: "tacit.intents.v1.Ping".into(),
        handles: true,
        emits: true,
        // No lanes: any lane ([hs.lanes-absent]), as earlier peers offer.
        ..Default::default()
    }
}

/// The name of a control message's member, for failure details.
pub(super) fn message_name(message: &pb::control_message::Message) -> &'static str {
    use pb::control_message::Message;
    match message {
        Message::Hello(_) => "Hello",
        Message::Welcome(_) => "Welcome",
        Message::Refusal(_) => "Refusal",
        Message::CapabilityUpdate(_) => "CapabilityUpdate",
        Message::DescribeRequest(_) => "DescribeIntentRequest",
        Message::DescribeResponse(_) => "DescribeIntentResponse",
    }
}

/// One frame: varint length, then the body.
pub(super) fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 10);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// A varint of `value` padded to `len` bytes (non-minimal; overlong past 10).
pub(super) fn padded_varint(value: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut rest = value;
    for _ in 1..len {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8 & 0x7f);
    out
}

/// An ask of the standard Ping, encoded.
pub(super) fn ping_ask(intent: IntentRef, message_id: u64, nonce: u64) -> Bytes {
    Envelope::new(intent, Act::Request, message_id, Ping { nonce }.encode_to_vec().into()).encode_to_bytes()
}

/// How the reading end of a stream ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum End {
    /// FIN after whole frames.
    Finished,
    /// The peer reset its direction with this code.
    Reset(u64),
    /// The bytes are not frames (the text says why).
    Malformed(String),
    /// The connection ended.
    Lost(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Finished => f.write_str("the stream finished"),
            Self::Reset(code) => write!(f, "the stream was reset with {}", code_text(*code)),
            Self::Malformed(why) => write!(f, "malformed frames: {why}"),
            Self::Lost(why) => write!(f, "the connection ended: {why}"),
        }
    }
}

/// Frames read from a receive stream.
pub(super) struct FrameReader {
    recv: quinn::RecvStream,
    buffer: BytesMut,
    decoder: FrameDecoder,
}

impl FrameReader {
    pub(super) fn new(recv: quinn::RecvStream, max_frame: usize) -> Self {
        Self { recv, buffer: BytesMut::new(), decoder: FrameDecoder::new(max_frame) }
    }

    /// The next frame's body.
    pub(super) async fn next(&mut self) -> Result<Bytes, End> {
        loop {
            match self.decoder.decode(&mut self.buffer) {
                Ok(Some(body)) => return Ok(body),
                Ok(None) => {}
                Err(e) => return Err(End::Malformed(e.to_string())),
            }
            match self.recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk.bytes),
                Ok(None) if self.buffer.is_empty() => return Err(End::Finished),
                Ok(None) => return Err(End::Malformed(format!("{} bytes of a frame, then FIN", self.buffer.len()))),
                Err(quinn::ReadError::Reset(code)) => return Err(End::Reset(code.into_inner())),
                Err(e) => return Err(End::Lost(e.to_string())),
            }
        }
    }

    /// Reads the first byte (a stream kind, below 0x80).
    pub(super) async fn kind(&mut self) -> Result<u8, End> {
        while self.buffer.is_empty() {
            match self.recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk.bytes),
                Ok(None) => return Err(End::Finished),
                Err(quinn::ReadError::Reset(code)) => return Err(End::Reset(code.into_inner())),
                Err(e) => return Err(End::Lost(e.to_string())),
            }
        }
        let kind = self.buffer.split_to(1);
        Ok(kind[0])
    }
}

/// The control stream.
pub(super) struct Control {
    pub(super) send: quinn::SendStream,
    pub(super) reader: FrameReader,
}

impl Control {
    pub(super) async fn open(connection: &quinn::Connection) -> Result<Self, String> {
        let (send, recv) = connection.open_bi().await.map_err(|e| format!("cannot open the control stream: {e}"))?;
        Ok(Self { send, reader: FrameReader::new(recv, CONTROL_MAX_FRAME) })
    }

    pub(super) async fn send(&mut self, message: &pb::control_message::Message) -> Result<(), String> {
        let body = pb::ControlMessage { message: Some(message.clone()) }.encode_to_vec();
        self.write(&frame(&body)).await
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.send.write_all(bytes).await.map_err(|e| format!("cannot write on the control stream: {e}"))
    }

    /// The next control message with a known member.
    pub(super) async fn recv(&mut self) -> Result<pb::control_message::Message, String> {
        loop {
            let body = self.reader.next().await.map_err(|end| format!("control stream: {end}"))?;
            let message = pb::ControlMessage::decode(body).map_err(|e| format!("a malformed control message: {e}"))?;
            if let Some(message) = message.message {
                return Ok(message);
            }
        }
    }
}

/// A lane stream the tester opened: the kind byte written, frames both ways.
pub(super) struct Lane {
    pub(super) send: quinn::SendStream,
    pub(super) reader: FrameReader,
}

impl Lane {
    pub(super) async fn open_bi(connection: &quinn::Connection, kind: u8) -> Result<Self, String> {
        let (mut send, recv) = connection.open_bi().await.map_err(|e| format!("cannot open a stream: {e}"))?;
        send.write_all(&[kind]).await.map_err(|e| format!("cannot write: {e}"))?;
        Ok(Self { send, reader: FrameReader::new(recv, tacit_wire::DEFAULT_MAX_FRAME_LEN) })
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.send.write_all(bytes).await.map_err(|e| format!("cannot write: {e}"))
    }

    pub(super) async fn send_envelopes(&mut self, envelopes: &[Bytes]) -> Result<(), String> {
        let mut bytes = Vec::new();
        for envelope in envelopes {
            bytes.extend_from_slice(&frame(envelope));
        }
        self.write(&bytes).await
    }

    /// The next envelope the peer sent back.
    pub(super) async fn reply(&mut self) -> Result<Envelope, String> {
        let body = self.reader.next().await.map_err(|end| format!("no answer: {end}"))?;
        Envelope::decode(body).map_err(|e| format!("the answer is not a valid envelope: {e}"))
    }

    /// How the peer signalled an error on this stream, waiting at most
    /// `wait`: `STOP_SENDING` of our direction or a reset of its own, with
    /// the code; `None` if it did neither (envelopes it sent are skipped).
    pub(super) async fn error_signal(&mut self, wait: Duration) -> Option<Signal> {
        let reader = &mut self.reader;
        let read = async {
            loop {
                match reader.next().await {
                    Ok(_) => continue,
                    Err(End::Reset(code)) => return Some(Signal::Reset(code)),
                    Err(End::Finished) => return Some(Signal::Finished),
                    Err(_) => return None,
                }
            }
        };
        let send = &mut self.send;
        let stopped = async {
            match send.stopped().await {
                Ok(Some(code)) => Some(Signal::Stopped(code.into_inner())),
                _ => std::future::pending().await,
            }
        };
        tokio::pin!(read, stopped);
        let (first, read_first) = tokio::time::timeout(wait, async {
            tokio::select! {
                signal = &mut read => (signal, true),
                signal = &mut stopped => (signal, false),
            }
        })
        .await
        .ok()?;
        if first.and_then(Signal::code).is_some_and(|code| code != 0) {
            return first;
        }
        // A peer may stop one direction with 0 (or finish it) and reset the
        // other with the code that matters: prefer the signal with a code.
        let grace = Duration::from_millis(300);
        let second = if read_first {
            tokio::time::timeout(grace, &mut stopped).await.ok().flatten()
        } else {
            tokio::time::timeout(grace, &mut read).await.ok().flatten()
        };
        match second {
            Some(signal) if signal.code().is_some_and(|code| code != 0) => Some(signal),
            _ => first.or(second),
        }
    }
}

/// How a peer ended a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    /// `STOP_SENDING` with this code.
    Stopped(u64),
    /// `RESET_STREAM` with this code.
    Reset(u64),
    /// Its direction ended with FIN, no code.
    Finished,
}

impl Signal {
    pub(super) fn code(self) -> Option<u64> {
        match self {
            Self::Stopped(code) | Self::Reset(code) => Some(code),
            Self::Finished => None,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stopped(code) => write!(f, "STOP_SENDING {}", code_text(*code)),
            Self::Reset(code) => write!(f, "RESET_STREAM {}", code_text(*code)),
            Self::Finished => f.write_str("FIN without a code"),
        }
    }
}

/// The code of a `Refusal` payload (refusals on the ask lane).
pub(super) fn refusal_code(envelope: &Envelope) -> Option<u64> {
    let refusal = pb::Refusal::decode(envelope.payload.clone()).ok()?;
    u64::try_from(refusal.code).ok()
}
