//! TLS bound to agent identity.
//!
//! Each agent presents a self-signed X.509 certificate over its Ed25519
//! identity key, so any standard QUIC + TLS 1.3 stack can connect. There is no
//! certificate authority: the custom verifiers below accept exactly one
//! certificate whose key is Ed25519, check the TLS 1.3 handshake signature
//! with that key (Ed25519 is the only scheme offered), and derive the peer's
//! [`AgentId`] from it. A dialer that expects a particular AgentId fails the
//! TLS handshake itself when the peer is someone else.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tacit_handshake::{AgentId, Identity};

/// The ALPN protocol id of Tacit version 1.
pub const ALPN: &[u8] = b"tacit/1";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE {
/// SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }, then the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Signature algorithms: Ed25519 only, for certificates and handshakes.
static ED25519_ONLY: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[webpki::ring::ED25519],
    mapping: &[(SignatureScheme::ED25519, &[webpki::ring::ED25519])],
};

/// Why TLS could not be set up for an identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate over the identity key could not be made.
    #[error("cannot make a certificate for the identity key: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the TLS configuration.
    #[error("cannot use the TLS configuration for QUIC: {0}")]
    Quic(String),
}

/// The certificate and key an agent presents.
pub(crate) struct Credentials {
    certificate: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    provider: Arc<CryptoProvider>,
    /// The certificate with its loaded signing key, for every connection
    /// this agent dials (loading the key derives its public half: costly).
    certified: Arc<CertifiedKey>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("certificate_len", &self.certificate.len()).finish_non_exhaustive()
    }
}

impl Credentials {
    /// A self-signed certificate over the identity's Ed25519 key. Its subject
    /// and only SAN name the AgentId; it never expires (the key is the identity).
    pub(crate) fn new(identity: &Identity) -> Result<Self, TlsError> {
        let pkcs8 = identity.to_pkcs8_der();
        let key_pair = rcgen::KeyPair::try_from(pkcs8.as_slice())?;
        let name = identity.agent_id().to_string();
        let mut params = rcgen::CertificateParams::new(vec![name.clone()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.not_before = rcgen::date_time_ymd(1975, 1, 1);
        params.not_after = rcgen::date_time_ymd(4096, 1, 1);
        let certificate = params.self_signed(&key_pair)?;
        let certificate = certificate.der().clone();
        let key = PrivatePkcs8KeyDer::from(pkcs8.to_vec());
        let provider = provider();
        let certified = Arc::new(CertifiedKey::from_der(
            vec![certificate.clone()],
            PrivateKeyDer::Pkcs8(key.clone_key()),
            &provider,
        )?);
        Ok(Self { certificate, key, provider, certified })
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.certificate.clone()]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: TLS 1.3 only, ALPN `tacit/1`, a client certificate required.
pub(crate) fn server_config(credentials: &Credentials) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(credentials.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(ClientVerifier))
        .with_single_cert(credentials.chain(), credentials.key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = 0;
    // No session resumption (every connection proves both keys afresh): no
    // session tickets, which would cost the server a cache entry and the
    // client memory for each, and no cache of sessions.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    quinn::crypto::rustls::QuicServerConfig::try_from(config).map_err(|e| TlsError::Quic(e.to_string()))
}

/// The outcome of the certificate check on the dialer's side, read after a
/// failed handshake to say why.
#[derive(Debug, Default)]
pub(crate) struct ServerCheck {
    /// The AgentId the server's certificate named, if it was well formed.
    pub(crate) found: Option<AgentId>,
}

/// The client side for one connection: TLS 1.3 only, the given ALPN ids
/// (normally just `tacit/1`), our certificate presented, the server's AgentId
/// checked against `expected`.
pub(crate) fn client_config(
    credentials: &Credentials,
    expected: Option<AgentId>,
    check: Arc<Mutex<ServerCheck>>,
    alpn: Vec<Vec<u8>>,
) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(credentials.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier { expected, check }))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(credentials.certified.clone())));
    config.alpn_protocols = alpn;
    config.enable_early_data = false;
    // No session resumption: each connection has a configuration of its own,
    // so a session cache (rustls keeps one per configuration: ~7 KiB) would
    // only hold tickets that are never used.
    config.resumption = rustls::client::Resumption::disabled();
    quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(|e| TlsError::Quic(e.to_string()))
}

/// The AgentId a certificate binds: its subject public key, which must be
/// Ed25519.
pub fn agent_id_of_certificate(certificate: &CertificateDer<'_>) -> Result<AgentId, rustls::Error> {
    let parsed = webpki::EndEntityCert::try_from(certificate)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let spki = parsed.subject_public_key_info();
    let key = spki
        .as_ref()
        .strip_prefix(&ED25519_SPKI_PREFIX[..])
        .filter(|key| key.len() == AgentId::LEN)
        .ok_or_else(|| other_error("the certificate's key is not Ed25519"))?;
    let bytes: [u8; 32] = key.try_into().map_err(|_| other_error("the certificate's key is not 32 bytes"))?;
    AgentId::from_bytes(bytes).map_err(|e| other_error(&format!("the certificate's key is not an AgentId: {e}")))
}

/// The AgentId of a connected peer, from the certificate it presented.
pub fn peer_agent_id(connection: &quinn::Connection) -> Option<AgentId> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast_ref::<Vec<CertificateDer<'static>>>()?;
    match chain.as_slice() {
        [certificate] => agent_id_of_certificate(certificate).ok(),
        _ => None,
    }
}

fn other_error(reason: &str) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(PeerCertError(
        reason.to_owned(),
    )))))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PeerCertError(String);

/// Checks a peer's certificate chain: exactly one certificate, Ed25519.
/// A refusal is sent as the `bad_certificate` alert, as docs/PROTOCOL.md
/// specifies (rustls would send `certificate_unknown` for an error of our
/// own); the reason goes to the log.
fn check_chain(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<AgentId, rustls::Error> {
    let checked = if intermediates.is_empty() {
        agent_id_of_certificate(end_entity)
    } else {
        Err(other_error("expected exactly one certificate"))
    };
    checked.map_err(|error| {
        tracing::debug!("refused a peer's certificate: {error}");
        rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
    })
}

#[derive(Debug)]
struct ServerVerifier {
    expected: Option<AgentId>,
    check: Arc<Mutex<ServerCheck>>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = check_chain(end_entity, intermediates)?;
        if let Ok(mut check) = self.check.lock() {
            check.found = Some(found);
        }
        match self.expected {
            Some(expected) if expected != found => {
                Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
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
        rustls::crypto::verify_tls13_signature(message, cert, dss, &ED25519_ONLY)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ED25519_ONLY.supported_schemes()
    }
}

#[derive(Debug)]
struct ClientVerifier;

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_chain(end_entity, intermediates).map(|_| ClientCertVerified::assertion())
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
        rustls::crypto::verify_tls13_signature(message, cert, dss, &ED25519_ONLY)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ED25519_ONLY.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_binds_the_agent_id() {
        let identity = Identity::from_secret_bytes(&[7; 32]);
        let credentials = Credentials::new(&identity).unwrap();
        assert_eq!(agent_id_of_certificate(&credentials.certificate).unwrap(), identity.agent_id());
        // The SPKI is the 44-byte Ed25519 form.
        let parsed = webpki::EndEntityCert::try_from(&credentials.certificate).unwrap();
        assert_eq!(parsed.subject_public_key_info().as_ref().len(), 44);
    }

    #[test]
    fn non_ed25519_certificates_are_refused() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&key).unwrap();
        let err = agent_id_of_certificate(certificate.der()).unwrap_err();
        assert!(err.to_string().contains("not Ed25519"), "{err}");
        assert!(agent_id_of_certificate(&CertificateDer::from(vec![1, 2, 3])).is_err());
    }
}
