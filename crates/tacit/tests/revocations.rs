//! Revocation lists as the standard intent `tacit.intents.v1.Revocations`
//! (rules `revoke.intent`, `revoke.authority`, `revoke.intent-codes`,
//! `revoke.live` and `revoke.race` of docs/PROTOCOL.md), through the `tacit`
//! API, on 127.0.0.1.

use std::time::{Duration, SystemTime};

use tacit::credential::{AUTHORITY_ROLE, Credential, OrgSigner, SignedCredential};
use tacit::intents::{DelegateTask, Ping, Pong, Revocations, RevocationsApplied, TaskStatus, revocations_applied};
use tacit::{Agent, AgentId, Context, ErrorCode, Identity, Intent as _};
use tacit_testkit::LOCALHOST;

/// Every test ends within this.
const LIMIT: Duration = Duration::from_secs(30);
/// How long a session relying on a revoked credential may stay up after the
/// list is applied (rule `revoke.live`: at once; this only bounds the wait).
const CLOSE_BOUND: Duration = Duration::from_secs(5);

fn credential(subject: AgentId, role: &str, serial: u64) -> Credential {
    let now = SystemTime::now();
    Credential::new(subject, now - Duration::from_secs(60), now + Duration::from_secs(3600)).role(role).serial(serial)
}

fn issue(org: &OrgSigner, subject: AgentId, role: &str, serial: u64) -> SignedCredential {
    org.issue(&credential(subject, role, serial))
}

/// An agent that trusts `org` and answers `DelegateTask` (and, as every
/// agent that trusts an organisation, `Revocations`).
async fn server(org: &OrgSigner) -> Agent {
    Agent::builder()
        .identity(Identity::from_secret_bytes(&[0x51; 32]))
        .trust(org.org_key())
        .on_ask(|_: Context, task: DelegateTask| async move {
            Ok(TaskStatus { task_id: task.task_id, ..Default::default() })
        })
        .bind(LOCALHOST)
        .await
        .unwrap()
}

/// An agent with `identity` presenting `credentials`.
async fn member(identity: Identity, credentials: Vec<SignedCredential>) -> Agent {
    credentials
        .into_iter()
        .fold(Agent::builder().identity(identity), |builder, c| builder.credential(c))
        .emits::<DelegateTask>()
        .bind(LOCALHOST)
        .await
        .unwrap()
}

/// The organisation's own key as an agent: an authority by definition.
async fn org_agent(seed: u8) -> Agent {
    member(Identity::from_secret_bytes(&[seed; 32]), Vec::new()).await
}

fn ask_of(list: &tacit::credential::SignedRevocationList) -> Revocations {
    Revocations { signed_list: list.encode().into() }
}

/// The authority agent asks `Revocations`: the server applies the list, the
/// member's live session is closed with `CREDENTIAL_REVOKED` within the
/// bound, its next handshake is refused, and a member whose credential is
/// not revoked stays up. An authority by credential (role `authority`)
/// sends a newer list; the same list again is stale.
#[tokio::test]
async fn an_authority_revokes_live_credentials() {
    tokio::time::timeout(LIMIT, async {
        let org = OrgSigner::from_secret_bytes(&[0x0a; 32]);
        let server = server(&org).await;
        let addr = server.local_addr().unwrap();
        let (revoked_key, kept_key) = (Identity::from_secret_bytes(&[61; 32]), Identity::from_secret_bytes(&[62; 32]));
        let revoked_id = revoked_key.agent_id();
        let revoked = member(revoked_key, vec![issue(&org, revoked_id, "buyer", 7)]).await;
        let kept_id = kept_key.agent_id();
        let kept = member(kept_key, vec![issue(&org, kept_id, "buyer", 8)]).await;
        let revoked_peer = revoked.connect(addr, server.id()).await.unwrap();
        let kept_peer = kept.connect(addr, server.id()).await.unwrap();
        let _: TaskStatus = revoked_peer.ask(DelegateTask { task_id: "r".into(), ..Default::default() }).await.unwrap();
        let _: TaskStatus = kept_peer.ask(DelegateTask { task_id: "k".into(), ..Default::default() }).await.unwrap();
        // These sessions (a link may dial again once its session is closed).
        let (revoked_session, kept_session) = (revoked_peer.session(), kept_peer.session());

        let authority = org_agent(0x0a).await;
        let to_server = authority.connect(addr, server.id()).await.unwrap();
        let list = org.revoke([7], SystemTime::now() - Duration::from_secs(10));
        let applied: RevocationsApplied = to_server.ask(ask_of(&list)).await.unwrap();
        assert_eq!(applied.status(), revocations_applied::Status::Applied);
        assert_eq!((applied.serials.as_slice(), &applied.org_key[..]), (&[7][..], &org.org_key().as_bytes()[..]));

        let closed = tokio::time::timeout(CLOSE_BOUND, revoked_session.closed()).await.expect("closed in time");
        assert_eq!(closed.code(), ErrorCode::CredentialRevoked, "{closed:?}");
        let again = revoked.connect(addr, server.id()).await.unwrap();
        let refused = again.ready().await.unwrap_err();
        assert_eq!(refused.code(), ErrorCode::CredentialRevoked, "{refused:?}");
        let _: TaskStatus = kept_peer.ask(DelegateTask { task_id: "k2".into(), ..Default::default() }).await.unwrap();

        // An agent holding a credential of the org with role `authority`.
        let deputy_key = Identity::from_secret_bytes(&[63; 32]);
        let deputy_id = deputy_key.agent_id();
        let deputy = member(deputy_key, vec![issue(&org, deputy_id, AUTHORITY_ROLE, 9)]).await;
        let from_deputy = deputy.connect(addr, server.id()).await.unwrap();
        let newer = org.revoke([7, 8], SystemTime::now());
        let applied: RevocationsApplied = from_deputy.ask(ask_of(&newer)).await.unwrap();
        assert_eq!((applied.status(), applied.serials.as_slice()), (revocations_applied::Status::Applied, &[7, 8][..]));
        let closed = tokio::time::timeout(CLOSE_BOUND, kept_session.closed()).await.expect("closed in time");
        assert_eq!(closed.code(), ErrorCode::CredentialRevoked, "{closed:?}");
        // [revoke.newer]: the older list changes nothing; the reply shows the list held.
        let stale: RevocationsApplied = from_deputy.ask(ask_of(&list)).await.unwrap();
        assert_eq!((stale.status(), stale.serials.as_slice()), (revocations_applied::Status::Stale, &[7, 8][..]));
    })
    .await
    .expect("the test took too long");
}

/// A member without the role `authority`, an `authority` credential
/// narrowed to other intents, and the authority of another trusted
/// organisation are refused with `POLICY_DENIED`; nothing is applied.
#[tokio::test]
async fn only_authority_agents_may_send_revocations() {
    tokio::time::timeout(LIMIT, async {
        let org = OrgSigner::from_secret_bytes(&[0x0b; 32]);
        let other = OrgSigner::from_secret_bytes(&[0x0c; 32]);
        let server = Agent::builder()
            .trust(org.org_key())
            .trust(other.org_key())
            .on_ask(|_: Context, task: DelegateTask| async move {
                Ok(TaskStatus { task_id: task.task_id, ..Default::default() })
            })
            .bind(LOCALHOST)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let victim_key = Identity::from_secret_bytes(&[71; 32]);
        let victim_id = victim_key.agent_id();
        let victim = member(victim_key, vec![issue(&org, victim_id, "buyer", 1)]).await;
        let victim_peer = victim.connect(addr, server.id()).await.unwrap();
        victim_peer.ready().await.unwrap();
        let list = org.revoke([1], SystemTime::now());

        let buyer_key = Identity::from_secret_bytes(&[72; 32]);
        let buyer_id = buyer_key.agent_id();
        let narrowed_key = Identity::from_secret_bytes(&[73; 32]);
        let narrowed_id = narrowed_key.agent_id();
        let senders = [
            ("a member with another role", member(buyer_key, vec![issue(&org, buyer_id, "buyer", 2)]).await),
            (
                "an authority narrowed to other intents",
                member(narrowed_key, vec![org.issue(&credential(narrowed_id, AUTHORITY_ROLE, 3).intents([Ping::ID]))])
                    .await,
            ),
            ("the authority of another organisation", org_agent(0x0c).await),
            ("an agent without credentials", member(Identity::from_secret_bytes(&[74; 32]), Vec::new()).await),
        ];
        for (who, sender) in &senders {
            let peer = sender.connect(addr, server.id()).await.unwrap();
            let refused = peer.ask::<Revocations>(ask_of(&list)).await.unwrap_err();
            assert_eq!(refused.code(), ErrorCode::PolicyDenied, "{who}: {refused:?}");
        }
        // Nothing was applied: the victim is still served, and can connect again.
        let _: TaskStatus = victim_peer.ask(DelegateTask { task_id: "v".into(), ..Default::default() }).await.unwrap();
        let again = victim.connect(addr, server.id()).await.unwrap();
        again.ready().await.unwrap();
        assert!(server.endpoint().revocations(&org.org_key()).is_none());
    })
    .await
    .expect("the test took too long");
}

/// `revoke.intent-codes`: a list for an untrusted organisation is refused
/// with `UNTRUSTED_ORGANISATION`; a forged signature, bytes that do not
/// decode and an oversized list with `CREDENTIAL_INVALID`; the agent keeps
/// serving. An agent that trusts no organisation does not offer the intent.
#[tokio::test]
async fn bad_lists_are_refused_with_their_code() {
    tokio::time::timeout(LIMIT, async {
        let org = OrgSigner::from_secret_bytes(&[0x0d; 32]);
        let server = server(&org).await;
        let addr = server.local_addr().unwrap();

        let stranger = OrgSigner::from_secret_bytes(&[0x0e; 32]);
        let from_stranger = org_agent(0x0e).await.connect(addr, server.id()).await.unwrap();
        let refused = from_stranger.ask::<Revocations>(ask_of(&stranger.revoke([1], SystemTime::now()))).await;
        assert_eq!(refused.unwrap_err().code(), ErrorCode::UntrustedOrganisation);

        let authority = org_agent(0x0d).await;
        let peer = authority.connect(addr, server.id()).await.unwrap();
        let mut forged = org.revoke([1], SystemTime::now()).encode();
        // The signature is the last field: flip its last byte.
        *forged.last_mut().unwrap() ^= 1;
        let cases: [(&str, Vec<u8>); 3] = [
            ("a forged signature", forged),
            ("bytes that do not decode", vec![0xff; 16]),
            ("a list over 64 KiB", vec![0; tacit::credential::MAX_REVOCATION_LIST_LEN + 1]),
        ];
        for (what, bytes) in cases {
            let refused = peer.ask::<Revocations>(Revocations { signed_list: bytes.into() }).await.unwrap_err();
            assert_eq!(refused.code(), ErrorCode::CredentialInvalid, "{what}: {refused:?}");
        }
        assert!(server.endpoint().revocations(&org.org_key()).is_none());
        let pong: Pong = peer.ask(Ping { nonce: 3 }).await.unwrap();
        assert_eq!(pong.nonce, 3);

        // No trust store: not offered, so not negotiated.
        let plain = Agent::builder().bind(LOCALHOST).await.unwrap();
        let to_plain = authority.connect(plain.local_addr().unwrap(), plain.id()).await.unwrap();
        let negotiated = to_plain.ready().await.unwrap();
        assert!(negotiated.peer_offers.iter().all(|offer| offer.id != Revocations::ID));
        let refused = to_plain.ask::<Revocations>(ask_of(&org.revoke([1], SystemTime::now()))).await.unwrap_err();
        assert_eq!(refused.code(), ErrorCode::IntentNotNegotiated, "{refused:?}");
    })
    .await
    .expect("the test took too long");
}

/// An application's own handler for `Revocations` replaces the built-in one.
#[tokio::test]
async fn an_application_handler_replaces_the_builtin() {
    tokio::time::timeout(LIMIT, async {
        let org = OrgSigner::from_secret_bytes(&[0x0f; 32]);
        let server = Agent::builder()
            .trust(org.org_key())
            .on_ask(|_: Context, _: Revocations| async move {
                Ok(RevocationsApplied { serials: vec![42], ..Default::default() })
            })
            .bind(LOCALHOST)
            .await
            .unwrap();
        let peer = org_agent(0x0f).await.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let reply: RevocationsApplied = peer.ask(ask_of(&org.revoke([1], SystemTime::now()))).await.unwrap();
        assert_eq!(reply.serials, [42]);
        assert!(server.endpoint().revocations(&org.org_key()).is_none());
    })
    .await
    .expect("the test took too long");
}
