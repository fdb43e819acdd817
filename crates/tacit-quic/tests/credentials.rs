//! Organisation credentials in the handshake over loopback QUIC: the
//! subject is the TLS-proven AgentId (rules `trust.handshake`,
//! `trust.subject` of docs/PROTOCOL.md).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tacit_handshake::credential::{Applied, Credential, OrgSigner, SignedCredential, TrustStore};
use tacit_handshake::{AgentCard, AgentId, Capabilities, Identity};
use tacit_quic::{Endpoint, SessionError};
use tacit_testkit::{LOCALHOST, within};
use tacit_wire::ErrorCode;

fn org() -> OrgSigner {
    OrgSigner::from_secret_bytes(&[0x0a; 32])
}

fn id(seed: u8) -> AgentId {
    Identity::from_secret_bytes(&[seed; 32]).agent_id()
}

fn issue(subject: AgentId, role: &str) -> SignedCredential {
    let now = SystemTime::now();
    org().issue(&Credential::new(subject, now - Duration::from_secs(60), now + Duration::from_secs(3600)).role(role))
}

async fn endpoint(seed: u8, presents: Option<SignedCredential>) -> Endpoint {
    let mut trust = TrustStore::new();
    trust.trust(org().org_key());
    endpoint_with(seed, presents, trust).await
}

async fn endpoint_with(seed: u8, presents: Option<SignedCredential>, trust: TrustStore) -> Endpoint {
    let mut builder = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[seed; 32]))
        .card(AgentCard::new("agent"))
        .capabilities(Capabilities::default())
        .trust_store(trust);
    if let Some(credential) = presents {
        builder = builder.credential(credential);
    }
    builder.bind(LOCALHOST).await.unwrap()
}

fn addr(endpoint: &Endpoint) -> SocketAddr {
    endpoint.local_addr().unwrap()
}

/// `trust.handshake`: `peer_credentials()` shows org and roles on both sides.
#[tokio::test]
async fn valid_credentials_show_on_both_sides() {
    let server = endpoint(31, Some(issue(id(31), "seller"))).await;
    let client = endpoint(32, Some(issue(id(32), "buyer"))).await;
    let dialed = within(client.connect(addr(&server), None)).await.unwrap();
    let accepted = within(server.accept()).await.unwrap().unwrap();
    within(dialed.ready()).await.unwrap();
    within(accepted.ready()).await.unwrap();
    let seen_by_client = dialed.peer_credentials();
    assert_eq!(seen_by_client.len(), 1);
    assert_eq!(
        (seen_by_client[0].org, seen_by_client[0].roles.as_slice()),
        (org().org_key(), &["seller".to_owned()][..])
    );
    let seen_by_server = accepted.peer_credentials();
    assert_eq!(seen_by_server[0].roles, ["buyer"]);
    assert_eq!(seen_by_server[0].subject, id(32));
}

/// `trust.subject`: a credential replayed by an agent whose TLS key is not
/// its subject is refused with `CREDENTIAL_INVALID`, seen by both sides.
#[tokio::test]
async fn a_replayed_credential_is_refused() {
    let server = endpoint(33, None).await;
    let client = endpoint(34, Some(issue(id(35), "buyer"))).await;
    let dialed = within(client.connect(addr(&server), None)).await.unwrap();
    let accepted = within(server.accept()).await.unwrap().unwrap();
    match within(accepted.ready()).await.unwrap_err() {
        SessionError::Refused { refusal, by_peer } => {
            assert_eq!((refusal.code, by_peer), (ErrorCode::CredentialInvalid, false));
        }
        other => panic!("{other:?}"),
    }
    match within(dialed.ready()).await.unwrap_err() {
        SessionError::Refused { refusal, by_peer } => {
            assert_eq!((refusal.code, by_peer), (ErrorCode::CredentialInvalid, true));
        }
        other => panic!("{other:?}"),
    }
}

/// `revoke.refused`: a credential revoked before the handshake refuses the session with `CREDENTIAL_REVOKED`.
#[tokio::test]
async fn a_credential_revoked_before_the_handshake_is_refused() {
    let mut trust = TrustStore::new();
    trust.trust(org().org_key());
    trust.apply_revocations(&org().revoke([77], SystemTime::now())).unwrap();
    let server = endpoint_with(36, None, trust).await;
    let now = SystemTime::now();
    let revoked = org().issue(
        &Credential::new(id(37), now - Duration::from_secs(60), now + Duration::from_secs(3600)).role("r").serial(77),
    );
    let client = endpoint(37, Some(revoked)).await;
    let dialed = within(client.connect(addr(&server), None)).await.unwrap();
    let accepted = within(server.accept()).await.unwrap().unwrap();
    for session in [&accepted, &dialed] {
        match within(session.ready()).await.unwrap_err() {
            SessionError::Refused { refusal, .. } => assert_eq!(refusal.code, ErrorCode::CredentialRevoked),
            other => panic!("{other:?}"),
        }
    }
}

/// `revoke.live`, `revoke.newer`: a list applied mid-session closes the
/// sessions whose peer relies on a revoked credential at once (asserted
/// loosely: within 5 s) with `CREDENTIAL_REVOKED`; others stay up, and an
/// older list changes nothing.
#[tokio::test]
async fn a_credential_revoked_mid_session_closes_the_session() {
    let server = endpoint(38, None).await;
    let now = SystemTime::now();
    let credential = |subject, serial| {
        org().issue(
            &Credential::new(subject, now - Duration::from_secs(60), now + Duration::from_secs(3600))
                .role("r")
                .serial(serial),
        )
    };
    let doomed = endpoint(39, Some(credential(id(39), 90))).await;
    let kept = endpoint(40, Some(credential(id(40), 91))).await;
    let doomed_session = within(doomed.connect(addr(&server), None)).await.unwrap();
    let doomed_accepted = within(server.accept()).await.unwrap().unwrap();
    let kept_session = within(kept.connect(addr(&server), None)).await.unwrap();
    let kept_accepted = within(server.accept()).await.unwrap().unwrap();
    for session in [&doomed_session, &doomed_accepted, &kept_session, &kept_accepted] {
        within(session.ready()).await.unwrap();
    }
    assert_eq!(server.apply_revocations(&org().revoke([90], now)).unwrap(), Applied::Replaced);
    assert_eq!(server.apply_revocations(&org().revoke([91], now - Duration::from_secs(5))).unwrap(), Applied::Stale);
    let closed =
        tokio::time::timeout(Duration::from_secs(5), doomed_session.closed()).await.expect("not closed in 5 s");
    assert_eq!(closed.code(), ErrorCode::CredentialRevoked, "{closed:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!kept_accepted.is_closed(), "a session with a credential not revoked was closed");
    // The next handshake with the revoked credential is refused.
    let again = within(doomed.connect(addr(&server), None)).await.unwrap();
    let error = within(again.ready()).await.unwrap_err();
    assert!(
        matches!(&error, SessionError::Refused { refusal, .. } if refusal.code == ErrorCode::CredentialRevoked),
        "{error:?}"
    );
}

/// `revoke.race`: a list applied after the peer's credentials were verified
/// but before its session is ready is not missed. The acceptor calls its
/// offer filter between the two, so a filter that applies the list makes
/// the race happen every time; the filter then holds the handshake for a
/// moment so that the sweep of `revoke.live`, on the other worker thread,
/// runs while the session is not ready yet (and skips it). The check when
/// the session becomes ready refuses it with `CREDENTIAL_REVOKED` instead of
/// letting it live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_applied_during_the_handshake_is_not_missed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, OnceLock};
    let server_slot: Arc<OnceLock<Endpoint>> = Arc::default();
    let applied = Arc::new(AtomicBool::new(false));
    let (in_filter, applied_in_filter) = (server_slot.clone(), applied.clone());
    let list = org().revoke([0], SystemTime::now());
    let mut trust = TrustStore::new();
    trust.trust(org().org_key());
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[38; 32]))
        .card(AgentCard::new("agent"))
        .capabilities(Capabilities::default())
        .trust_store(trust)
        .offer_filter(Arc::new(move |_, credentials, _| {
            if let (false, Some(server)) = (credentials.is_empty(), in_filter.get()) {
                applied_in_filter.store(server.apply_revocations(&list) == Ok(Applied::Replaced), Ordering::SeqCst);
                // Blocks this worker only: the sweep runs on the other one.
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(None)
        }))
        .bind(LOCALHOST)
        .await
        .unwrap();
    server_slot.set(server.clone()).unwrap();
    let client = endpoint(39, Some(issue(id(39), "buyer"))).await;
    let dialed = within(client.connect(addr(&server), None)).await.unwrap();
    let accepted = within(server.accept()).await.unwrap().unwrap();
    match within(accepted.ready()).await {
        Err(SessionError::Refused { refusal, by_peer }) => {
            assert_eq!((refusal.code, by_peer), (ErrorCode::CredentialRevoked, false), "{refusal:?}");
        }
        other => panic!("the session became ready with a revoked credential: {other:?}"),
    }
    assert!(applied.load(Ordering::SeqCst), "the list was applied mid-handshake");
    assert_eq!(within(dialed.closed()).await.code(), ErrorCode::CredentialRevoked);
}
