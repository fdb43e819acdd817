//! The TLS profile of docs/PROTOCOL.md ("TLS profile"), rule by rule: the
//! certificate an agent produces, the alert that answers a missing client
//! certificate, Ed25519 as the only signature scheme, and SNI that the
//! acceptor does not depend on. Raw rustls clients offer what a Tacit agent
//! never would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tacit_handshake::{AgentCard, AgentId, Capabilities, Identity};
use tacit_quic::Endpoint;
use tacit_testkit::{LOCALHOST, within};

/// QUIC transport error code of a TLS alert (RFC 9001 §4.8).
const CRYPTO_ERROR: u64 = 0x100;
const HANDSHAKE_FAILURE: u64 = 40;
const CERTIFICATE_REQUIRED: u64 = 116;

async fn endpoint(seed: u8) -> Endpoint {
    Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[seed; 32]))
        .card(AgentCard::new("tls"))
        .capabilities(Capabilities::default())
        .bind(LOCALHOST)
        .await
        .unwrap()
}

/// One DER TLV: (tag, contents, rest).
fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = der[0];
    let (len, head) = match der[1] {
        short @ 0..=0x7f => (usize::from(short), 2),
        long => {
            let n = usize::from(long & 0x7f);
            (der[2..2 + n].iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)), 2 + n)
        }
    };
    (tag, &der[head..head + len], &der[head + len..])
}

/// The fields of a TBSCertificate, in order, as (tag, whole TLV bytes).
fn fields(der: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let (tag, _, next) = tlv(rest);
        out.push((tag, &rest[..rest.len() - next.len()]));
        rest = next;
    }
    out
}

const ED25519_ALGORITHM: [u8; 7] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
const SAN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x1d, 0x11];

/// Checks `certificate` against the profile an agent MUST produce
/// (`[tls.cert-produce]`) for `id`.
fn assert_profile(certificate: &[u8], id: AgentId) {
    let (tag, body, rest) = tlv(certificate);
    assert_eq!((tag, rest.len()), (0x30, 0), "one SEQUENCE");
    let outer = fields(body);
    assert_eq!(outer.len(), 3, "tbsCertificate, signatureAlgorithm, signatureValue");
    assert_eq!(outer[1].1, ED25519_ALGORITHM, "signed with Ed25519, no parameters");
    let (_, tbs, _) = tlv(outer[0].1);
    let tbs = fields(tbs);
    // version [0] INTEGER 2 (v3)
    assert_eq!(tbs[0].1, [0xa0, 0x03, 0x02, 0x01, 0x02], "X.509 v3");
    // serialNumber: a positive INTEGER of at most 20 bytes
    let (tag, serial, _) = tlv(tbs[1].1);
    assert!(tag == 0x02 && !serial.is_empty() && serial.len() <= 20 && serial[0] & 0x80 == 0, "{serial:?}");
    assert_eq!(tbs[2].1, ED25519_ALGORITHM, "the TBS signature algorithm is Ed25519");
    // Self-issued: issuer = subject, a CN that is the printed AgentId.
    assert_eq!(tbs[3].1, tbs[5].1, "issuer and subject are the same name");
    let printed = id.to_string();
    assert!(tbs[5].1.windows(printed.len()).any(|w| w == printed.as_bytes()), "the subject names the AgentId");
    // Validity 1975-01-01 (UTCTime) to 4096-01-01 (GeneralizedTime).
    let (_, validity, _) = tlv(tbs[4].1);
    let times = fields(validity);
    assert_eq!(&times[0].1[2..], b"750101000000Z");
    assert_eq!(&times[1].1[2..], b"40960101000000Z");
    // SubjectPublicKeyInfo: the 12-byte Ed25519 prefix, then the AgentId.
    let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    spki.extend_from_slice(id.as_bytes());
    assert_eq!(tbs[6].1, spki);
    // Extensions [3]: exactly one, the subjectAltName with the AgentId as dNSName.
    assert_eq!(tbs.len(), 8, "no issuer/subject unique ids, one extensions block");
    let (tag, extensions, _) = tlv(tbs[7].1);
    assert_eq!(tag, 0xa3);
    let (_, list, _) = tlv(extensions);
    let list = fields(list);
    assert_eq!(list.len(), 1, "one extension");
    assert!(list[0].1.windows(SAN_OID.len()).any(|w| w == SAN_OID), "it is the subjectAltName");
    let mut dns = vec![0x82, u8::try_from(printed.len()).unwrap()];
    dns.extend_from_slice(printed.as_bytes());
    assert!(list[0].1.windows(dns.len()).any(|w| w == dns), "the SAN is the printed AgentId");
    // The certificate's own signature is the key's over the TBS bytes.
    let (tag, signature, _) = tlv(outer[2].1);
    assert_eq!((tag, signature.len(), signature[0]), (0x03, 65, 0), "a 64-byte BIT STRING");
    let signature = ed25519_dalek::Signature::from_bytes(signature[1..].try_into().unwrap());
    assert!(id.verify(outer[0].1, &signature), "self-signed with the identity key");
}

fn chain_of(connection: &quinn::Connection) -> Vec<CertificateDer<'static>> {
    connection.peer_identity().unwrap().downcast::<Vec<CertificateDer<'static>>>().map(|c| *c).unwrap()
}

// Tests [tls.cert-produce] (both roles present a certificate of the profile).
#[tokio::test]
async fn both_certificates_follow_the_profile() {
    let server = endpoint(1).await;
    let client = endpoint(2).await;
    let addr = server.local_addr().unwrap();
    let (dialed, accepted) = within(async { tokio::join!(client.connect(addr, None), server.accept()) }).await;
    let dialed = dialed.unwrap();
    let accepted = accepted.unwrap().unwrap();
    let server_chain = chain_of(dialed.connection());
    let client_chain = chain_of(accepted.connection());
    assert_eq!((server_chain.len(), client_chain.len()), (1, 1), "exactly one certificate each");
    assert_profile(&server_chain[0], server.agent_id());
    assert_profile(&client_chain[0], client.agent_id());
}

/// A raw rustls client: accepts any server, offers `schemes`, presents an
/// Ed25519 certificate over `[3; 32]` (or none), sends SNI or not.
fn raw_client(schemes: Vec<rustls::SignatureScheme>, certificate: bool, sni: bool) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer { schemes, provider }));
    let mut crypto = if certificate {
        let identity = Identity::from_secret_bytes(&[3; 32]);
        let pkcs8 = identity.to_pkcs8_der();
        let key = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
        let cert =
            rcgen::CertificateParams::new(vec![identity.agent_id().to_string()]).unwrap().self_signed(&key).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
        builder.with_client_auth_cert(vec![cert.der().clone()], key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    crypto.alpn_protocols = vec![tacit_quic::tls::ALPN.to_vec()];
    crypto.enable_sni = sni;
    quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap()))
}

/// Dials `addr` with `config`: `Ok` if the connection completed and stayed
/// up for 300 ms, else the transport error code it was closed with.
async fn dial(config: quinn::ClientConfig, addr: SocketAddr, server_name: &str) -> Result<quinn::Connection, u64> {
    let raw = quinn::Endpoint::client(LOCALHOST).unwrap();
    let code = |error: quinn::ConnectionError| match error {
        quinn::ConnectionError::ConnectionClosed(close) => u64::from(close.error_code),
        quinn::ConnectionError::TransportError(error) => u64::from(error.code),
        other => panic!("not closed by the peer: {other}"),
    };
    let connection = within(raw.connect_with(config, addr, server_name).unwrap()).await.map_err(code)?;
    match tokio::time::timeout(Duration::from_millis(300), connection.closed()).await {
        Ok(error) => Err(code(error)),
        Err(_) => Ok(connection),
    }
}

// Tests [tls.client-cert-required]: the alert is certificate_required, exactly.
#[tokio::test]
async fn a_client_without_a_certificate_gets_certificate_required() {
    let server = endpoint(4).await;
    let config = raw_client(vec![rustls::SignatureScheme::ED25519], false, true);
    let result = dial(config, server.local_addr().unwrap(), "tacit").await;
    assert_eq!(result.err(), Some(CRYPTO_ERROR + CERTIFICATE_REQUIRED));
}

// Tests [tls.sig-ed25519]: a client that offers no Ed25519 scheme cannot
// complete a handshake (handshake_failure).
#[tokio::test]
async fn a_client_without_ed25519_gets_handshake_failure() {
    let server = endpoint(5).await;
    let schemes = vec![rustls::SignatureScheme::ECDSA_NISTP256_SHA256, rustls::SignatureScheme::RSA_PSS_SHA256];
    let result = dial(raw_client(schemes, true, true), server.local_addr().unwrap(), "tacit").await;
    assert_eq!(result.err(), Some(CRYPTO_ERROR + HANDSHAKE_FAILURE));
}

// Tests [tls.sni-ignored]: no SNI (as stacks dialing an IP literal send),
// or an SNI naming another agent, changes nothing for the acceptor.
#[tokio::test]
async fn the_acceptor_does_not_depend_on_sni() {
    let server = endpoint(6).await;
    let addr = server.local_addr().unwrap();
    let other = Identity::from_secret_bytes(&[9; 32]).agent_id().to_string();
    for (sni, name) in [(false, "tacit"), (true, other.as_str()), (true, "tacit")] {
        let connection = dial(raw_client(vec![rustls::SignatureScheme::ED25519], true, sni), addr, name).await;
        assert!(connection.is_ok(), "SNI {sni} {name}: {connection:?}");
    }
}

#[derive(Debug)]
struct AnyServer {
    schemes: Vec<rustls::SignatureScheme>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.clone()
    }
}
