//! Endpoints over loopback: identity-bound TLS and the capability handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
use tacit_quic::{ConnectError, Endpoint, SessionError};
use tacit_testkit::{LOCALHOST, within};
use tacit_wire::{ErrorCode, IntentId};

async fn endpoint(seed: u8, name: &str, capabilities: Capabilities) -> Endpoint {
    Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[seed; 32]))
        .card(AgentCard::new(name))
        .capabilities(capabilities)
        .bind(LOCALHOST)
        .await
        .unwrap()
}

fn addr(endpoint: &Endpoint) -> SocketAddr {
    endpoint.local_addr().unwrap()
}

/// The server yields no session: at most a failed incoming connection.
async fn assert_no_session(server: &Endpoint) {
    match tokio::time::timeout(Duration::from_millis(300), server.accept()).await {
        Err(_) | Ok(Some(Err(_))) => {}
        Ok(other) => panic!("the server accepted a session: {other:?}"),
    }
}

#[tokio::test]
async fn handshake_succeeds_and_binds_identities() {
    let ping = IntentId::from_bytes([1; 32]);
    let server = endpoint(1, "seller", Capabilities::default().with_intent(IntentOffer::handles(ping, "a.Ping"))).await;
    let client = endpoint(2, "buyer", Capabilities::default().with_intent(IntentOffer::emits(ping, "a.Ping"))).await;

    let dialed = within(client.connect(addr(&server), Some(server.agent_id()))).await.unwrap();
    let accepted = within(server.accept()).await.unwrap().unwrap();
    assert_eq!(dialed.peer_id(), server.agent_id());
    assert_eq!(accepted.peer_id(), client.agent_id());

    let d = within(dialed.ready()).await.unwrap();
    let a = within(accepted.ready()).await.unwrap();
    assert_eq!(d.peer_card.name, "seller");
    assert_eq!(a.peer_card.name, "buyer");
    assert_eq!(d.send_alias(&ping), Some(1));
    assert!(a.can_receive(&ping));

    // Without naming the expected peer, the id is still learnt from TLS.
    let other = within(client.connect(addr(&server), None)).await.unwrap();
    assert_eq!(other.peer_id(), server.agent_id());
    within(other.ready()).await.unwrap();
}

#[tokio::test]
async fn wrong_expected_agent_fails_during_tls() {
    let server = endpoint(3, "server", Capabilities::default()).await;
    let client = endpoint(4, "client", Capabilities::default()).await;
    let someone_else = Identity::from_secret_bytes(&[99; 32]).agent_id();
    let err = within(client.connect(addr(&server), Some(someone_else))).await.unwrap_err();
    match err {
        ConnectError::IdentityMismatch { expected, found } => {
            assert_eq!(expected, someone_else);
            assert_eq!(found, server.agent_id());
        }
        other => panic!("expected IdentityMismatch, got {other:?}"),
    }
    assert_no_session(&server).await;
}

#[tokio::test]
async fn alpn_mismatch_is_refused() {
    let server = endpoint(5, "server", Capabilities::default()).await;
    let client = endpoint(6, "client", Capabilities::default()).await;
    let err = within(client.connect_with_alpn(addr(&server), None, vec![b"h3".to_vec()])).await.unwrap_err();
    assert!(matches!(err, ConnectError::Connection(_)), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("alpn") || err.to_string().contains("120"), "{err}");
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let server = endpoint(7, "server", Capabilities::default()).await;
    let mut crypto = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer))
        .with_no_client_auth();
    crypto.alpn_protocols = vec![tacit_quic::tls::ALPN.to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap()));
    let raw = quinn::Endpoint::client(LOCALHOST).unwrap();
    let result = within(async {
        let connection = raw.connect_with(config, addr(&server), "tacit").unwrap().await?;
        // TLS 1.3 client auth fails after the client's Finished: the server
        // closes the connection as soon as it checks the (missing) certificate.
        Ok::<_, quinn::ConnectionError>(connection.closed().await)
    })
    .await;
    let error = match result {
        Err(e) => e,
        Ok(e) => e,
    };
    assert!(error.to_string().contains("certificate") || error.to_string().contains("0x174"), "{error}");
    assert_no_session(&server).await;
}

#[tokio::test]
async fn handshake_refusal_reaches_both_sides() {
    let mut caps = Capabilities::default();
    caps.versions = 2..=3;
    let server = endpoint(8, "server", caps).await;
    let client = endpoint(9, "client", Capabilities::default()).await;
    let dialed = within(client.connect(addr(&server), None)).await.unwrap();
    let accepted = within(server.accept()).await.unwrap().unwrap();
    match within(accepted.ready()).await.unwrap_err() {
        SessionError::Refused { refusal, by_peer } => {
            assert_eq!((refusal.code, by_peer), (ErrorCode::NoCommonVersion, false));
        }
        other => panic!("{other:?}"),
    }
    match within(dialed.ready()).await.unwrap_err() {
        SessionError::Refused { refusal, by_peer } => {
            assert_eq!((refusal.code, by_peer), (ErrorCode::NoCommonVersion, true));
            assert!(refusal.reason.contains("2..=3"), "{}", refusal.reason);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn schema_fetch_over_quic() {
    let dir = std::env::temp_dir().join(format!("tacit-quic-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ping.proto"), "syntax = \"proto3\";\npackage acme.v1;\nmessage Ping { uint64 n = 1; }\n")
        .unwrap();
    let set = protox::compile(["ping.proto"], [&dir]).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let id = IntentId::of_message(&set, "acme.v1.Ping").unwrap();
    let encoded = Bytes::from(set.encode_to_vec());
    let offer = IntentOffer::handles(id, "acme.v1.Ping").with_descriptor_set(encoded.clone());
    let server = endpoint(10, "server", Capabilities::default().with_intent(offer)).await;
    let client = endpoint(11, "client", Capabilities::default()).await;
    let dialed = within(client.connect(addr(&server), None)).await.unwrap();
    let _accepted = within(server.accept()).await.unwrap().unwrap();
    within(dialed.ready()).await.unwrap();
    let (name, descriptor_set) = within(dialed.describe(id)).await.unwrap();
    assert_eq!((name.as_str(), descriptor_set), ("acme.v1.Ping", encoded));
    let unknown = within(dialed.describe(IntentId::from_bytes([5; 32]))).await.unwrap_err();
    assert_eq!(unknown.code, ErrorCode::UnknownIntent);
}

#[tokio::test]
async fn schema_fetch_on_an_ended_session_fails_at_once() {
    let server = endpoint(12, "server", Capabilities::default()).await;
    let client = endpoint(13, "client", Capabilities::default()).await;
    let dialed = within(client.connect(addr(&server), None)).await.unwrap();
    let accepted = within(server.accept()).await.unwrap().unwrap();
    within(dialed.ready()).await.unwrap();
    accepted.close(ErrorCode::Unspecified, "bye");
    within(dialed.closed()).await;
    // Give the control driver time to see the end, then ask: no waiting forever.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let ended = within(dialed.describe(IntentId::from_bytes([5; 32]))).await.unwrap_err();
    assert_eq!(ended.code, ErrorCode::ControlStreamClosed);
}

#[derive(Debug)]
struct AcceptAnyServer;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        vec![rustls::SignatureScheme::ED25519]
    }
}

#[tokio::test]
async fn dropping_the_last_session_handle_closes_the_connection() {
    let server = endpoint(12, "server", Capabilities::default()).await;
    let client = endpoint(13, "client", Capabilities::default()).await;
    let dialed = within(client.connect(addr(&server), None)).await.unwrap();
    let accepted = within(server.accept()).await.unwrap().unwrap();
    within(accepted.ready()).await.unwrap();
    let clone = dialed.clone();
    drop(dialed);
    // A clone keeps it open.
    assert!(tokio::time::timeout(Duration::from_millis(200), accepted.closed()).await.is_err());
    drop(clone);
    // A normal close, with its own code: not a refusal.
    let error = within(accepted.closed()).await;
    assert!(matches!(error, SessionError::Closed { by_peer: true, .. }), "{error:?}");
    assert_eq!(error.code(), ErrorCode::Closed);
}
