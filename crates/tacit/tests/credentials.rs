//! Organisation credentials through the `tacit` API: `AgentBuilder::credential`
//! and `trust`, `Peer::credentials`, `Context::peer_credentials` (rule
//! `trust.handshake` of docs/PROTOCOL.md).

use std::time::{Duration, SystemTime};

use tacit::credential::{Credential, OrgSigner};
use tacit::intents::{DelegateTask, TaskStatus};
use tacit::{Agent, AgentId, Context, Identity, Intent as _};
use tacit_testkit::LOCALHOST;
use tokio::sync::mpsc;

fn issue(org: &OrgSigner, subject: AgentId, role: &str) -> tacit::credential::SignedCredential {
    let now = SystemTime::now();
    org.issue(&Credential::new(subject, now - Duration::from_secs(60), now + Duration::from_secs(3600)).role(role))
}

#[tokio::test]
async fn both_sides_see_the_verified_credentials() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let org = OrgSigner::from_secret_bytes(&[0x0a; 32]);
        let (server_key, client_key) = (Identity::from_secret_bytes(&[41; 32]), Identity::from_secret_bytes(&[42; 32]));
        let (server_id, client_id) = (server_key.agent_id(), client_key.agent_id());
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let server = Agent::builder()
            .identity(server_key)
            .credential(issue(&org, server_id, "seller"))
            .trust(org.org_key())
            .on_ask(move |cx: Context, task: DelegateTask| {
                let seen_tx = seen_tx.clone();
                async move {
                    let _ = seen_tx.send(cx.peer_credentials());
                    Ok(TaskStatus { task_id: task.task_id, ..Default::default() })
                }
            })
            .bind(LOCALHOST)
            .await
            .unwrap();
        let client = Agent::builder()
            .identity(client_key)
            .credential(issue(&org, client_id, "buyer"))
            .trust(org.org_key())
            .emits::<DelegateTask>()
            .bind(LOCALHOST)
            .await
            .unwrap();
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let _: TaskStatus = peer.ask(DelegateTask { task_id: "t".into(), ..Default::default() }).await.unwrap();
        let credentials = peer.credentials();
        assert_eq!(credentials.len(), 1);
        assert_eq!((credentials[0].org, credentials[0].roles.clone()), (org.org_key(), vec!["seller".to_owned()]));
        let seen_by_server = seen.recv().await.unwrap();
        assert_eq!(seen_by_server[0].roles, ["buyer"]);
        assert_eq!(seen_by_server[0].subject, client_id);

        // `revoke.live`: the server revokes the client's credential; the session closes.
        let list = org.revoke([seen_by_server[0].serial], SystemTime::now());
        assert_eq!(server.apply_revocations(&list).unwrap(), tacit::credential::Applied::Replaced);
        let closed = tokio::time::timeout(Duration::from_secs(5), peer.session().closed()).await.unwrap();
        assert_eq!(closed.code(), tacit::ErrorCode::CredentialRevoked, "{closed:?}");
    })
    .await
    .expect("the test took over 30 s");
}

/// `policy.membership` with `trust.handshake`: a policy that lets only
/// members of a trusted organisation with role `buyer` ask offers the intent
/// to a credentialed buyer, which is answered, and hides it from an agent
/// without a credential, whose ask fails locally as not negotiated (the
/// handler never runs for it); an agent allowed nothing is refused.
#[tokio::test]
async fn policy_by_organisation_and_role_uses_verified_credentials() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let org = OrgSigner::from_secret_bytes(&[0x0b; 32]);
        let policy = tacit::Policy::deny_all()
            .rule(tacit::policy::Rule::allow().org(org.org_key().to_string()).role("buyer").intent(DelegateTask::ID))
            .rule(tacit::policy::Rule::allow().intent(tacit::intents::Ping::ID));
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let server = Agent::builder()
            .trust(org.org_key())
            .policy(policy)
            .on_ask(move |_cx: Context, task: DelegateTask| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move { Ok(TaskStatus { task_id: task.task_id, ..Default::default() }) }
            })
            .bind(LOCALHOST)
            .await
            .unwrap();
        let buyer_key = Identity::from_secret_bytes(&[43; 32]);
        let buyer_id = buyer_key.agent_id();
        let buyer = Agent::builder()
            .identity(buyer_key)
            .credential(issue(&org, buyer_id, "buyer"))
            .emits::<DelegateTask>()
            .bind(LOCALHOST)
            .await
            .unwrap();
        let stranger = Agent::builder().emits::<DelegateTask>().bind(LOCALHOST).await.unwrap();
        let addr = server.local_addr().unwrap();

        let peer = buyer.connect(addr, server.id()).await.unwrap();
        let status: TaskStatus = peer.ask(DelegateTask { task_id: "b".into(), ..Default::default() }).await.unwrap();
        assert_eq!(status.task_id, "b");

        let peer = stranger.connect(addr, server.id()).await.unwrap();
        let negotiated = peer.ready().await.unwrap();
        assert!(negotiated.send_alias(&DelegateTask::ID).is_none(), "the intent is hidden from a stranger");
        let refused = peer.ask(DelegateTask { task_id: "s".into(), ..Default::default() }).await.unwrap_err();
        assert_eq!(refused.code(), tacit::ErrorCode::IntentNotNegotiated, "{refused:?}");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "the handler ran for the buyer only");

        // [policy.nothing-offered]: once the policy lets strangers use
        // nothing at all, a stranger's handshake is refused POLICY_DENIED;
        // the buyer is still served.
        server.set_policy(
            tacit::Policy::deny_all().rule(
                tacit::policy::Rule::allow().org(org.org_key().to_string()).role("buyer").intent(DelegateTask::ID),
            ),
        );
        // Dialing is pipelined: the refusal arrives with the handshake.
        let peer = stranger.connect(addr, server.id()).await.map_err(|e| e.to_string()).unwrap();
        let Err(refused) = peer.ready().await else { panic!("the stranger's handshake must be refused") };
        assert_eq!(refused.code(), tacit::ErrorCode::PolicyDenied, "{refused}");
        let peer = buyer.connect(addr, server.id()).await.unwrap();
        peer.ask(DelegateTask { task_id: "again".into(), ..Default::default() }).await.unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    })
    .await
    .unwrap();
}

/// `policy.narrowed`: a rule `orgs = [X]` lets the holder of an X credential
/// narrowed to `DelegateTask` use only that intent: it is offered
/// `DelegateTask` and not `GetTask`, and, on a session negotiated before the
/// policy was set, its `GetTask` is refused per message with `POLICY_DENIED`
/// while `DelegateTask` is served. A credential that is not narrowed gets both.
#[tokio::test]
async fn narrowed_credentials_allow_only_their_intents() {
    use tacit::intents::GetTask;
    tokio::time::timeout(Duration::from_secs(30), async {
        let org = OrgSigner::from_secret_bytes(&[0x0c; 32]);
        let status = |id: String| TaskStatus { task_id: id, ..Default::default() };
        let server = Agent::builder()
            .trust(org.org_key())
            .on_ask(move |_: Context, task: DelegateTask| async move { Ok(status(task.task_id)) })
            .on_ask(move |_: Context, task: GetTask| async move { Ok(status(task.task_id)) })
            .bind(LOCALHOST)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let now = SystemTime::now();
        let member = |seed: u8, narrowed: bool| {
            let key = Identity::from_secret_bytes(&[seed; 32]);
            let mut credential =
                Credential::new(key.agent_id(), now - Duration::from_secs(60), now + Duration::from_secs(3600))
                    .role("ops");
            if narrowed {
                credential = credential.intents([DelegateTask::ID]);
            }
            Agent::builder()
                .identity(key)
                .credential(org.issue(&credential))
                .emits::<DelegateTask>()
                .emits::<GetTask>()
                .bind(LOCALHOST)
        };
        let (narrowed, full) = (member(44, true).await.unwrap(), member(45, false).await.unwrap());
        // Negotiated while the policy is open: both intents.
        let early = narrowed.connect(addr, server.id()).await.unwrap();
        early.ready().await.unwrap();

        server.set_policy(tacit::Policy::deny_all().rule(tacit::policy::Rule::allow().org(org.org_key().to_string())));
        let peer = narrowed.connect(addr, server.id()).await.unwrap();
        let negotiated = peer.ready().await.unwrap();
        let handled = |id| negotiated.peer_offers.iter().any(|o| o.id == id && o.handles);
        assert!(handled(DelegateTask::ID) && !handled(GetTask::ID), "{:?}", negotiated.peer_offers);

        let get = || GetTask { task_id: "g".into() };
        let refused = early.ask(get()).await.unwrap_err();
        assert_eq!(refused.code(), tacit::ErrorCode::PolicyDenied, "{refused:?}");
        let served: TaskStatus = early.ask(DelegateTask { task_id: "d".into(), ..Default::default() }).await.unwrap();
        assert_eq!(served.task_id, "d");

        let peer = full.connect(addr, server.id()).await.unwrap();
        let served: TaskStatus = peer.ask(get()).await.unwrap();
        assert_eq!(served.task_id, "g");
    })
    .await
    .expect("the test took over 30 s");
}
