//! Signed receipts end to end over loopback (docs/PROTOCOL.md, "Signed
//! receipts", [policy.signed]): a signed ask reaches its handler with a
//! verified receipt, an ask asking for a signed answer gets one, a policy
//! demands signatures, a contract net awards with receipts on both sides.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tacit::intents::{DelegateTask, RejectProposal, TaskState, TaskStatus};
use tacit::policy::Rule;
use tacit::{
    Act, Agent, AgentBuilder, AskOptions, Context, ContractNet, Error, ErrorCode, Intent as _, Policy, Receipt,
    TellOptions,
};
use tacit_testkit::LOCALHOST;

async fn bind(builder: AgentBuilder) -> Agent {
    builder.bind(LOCALHOST).await.unwrap()
}

/// Bounds every test: nothing here may hang.
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), test).await.expect("the test took over 30 s")
}

fn task(id: &str) -> DelegateTask {
    DelegateTask { task_id: id.into(), ..Default::default() }
}

type Seen = Arc<Mutex<Vec<Option<Receipt>>>>;

/// A server that keeps the receipt (or its absence) of every ask and tell.
fn keeping_server(seen: Seen) -> AgentBuilder {
    let told = seen.clone();
    Agent::builder()
        .on_ask(move |cx: Context, t: DelegateTask| {
            seen.lock().unwrap().push(cx.receipt().cloned());
            async move { Ok(TaskStatus { task_id: t.task_id, state: TaskState::Completed as i32, ..Default::default() }) }
        })
        .on_tell(move |cx: Context, _: RejectProposal| {
            told.lock().unwrap().push(cx.receipt().cloned());
            async {}
        })
}

fn client() -> AgentBuilder {
    Agent::builder().emits::<DelegateTask>().emits::<RejectProposal>()
}

// [receipt.verify-on-arrival]: the handler of a signed ask sees its receipt,
// verified, naming the asker, the server, the intent and the message; an
// unsigned ask has none. The receipt survives its file form.
#[tokio::test]
async fn a_signed_ask_reaches_the_handler_with_its_receipt() {
    bounded(async {
        let seen = Seen::default();
        let server = bind(keeping_server(seen.clone())).await;
        let client = bind(client()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        peer.ask(task("plain")).await.unwrap();
        let reply = peer.ask_with(task("signed"), AskOptions::default().signed(true)).await.unwrap();
        assert!(reply.receipt().is_none(), "no signed answer was asked for");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].is_none(), "an unsigned ask has no receipt");
        let receipt = seen[1].clone().expect("the signed ask's receipt");
        receipt.verify().unwrap();
        assert_eq!((receipt.sender, receipt.receiver, receipt.intent), (client.id(), server.id(), DelegateTask::ID));
        assert_eq!(receipt.act, Act::Request);
        let payload = prost::Message::encode_to_vec(&task("signed"));
        assert_eq!(receipt.payload_blake3, *blake3::hash(&payload).as_bytes());
        let file = receipt.encode_to_vec();
        Receipt::decode(&file).unwrap().verify().unwrap();
    })
    .await;
}

// [receipt.sign-reply]: an ask with sign_reply gets a signed answer whose
// receipt verifies for the server and names the ask it answers.
#[tokio::test]
async fn an_ask_for_a_signed_answer_gets_a_receipt_of_the_reply() {
    bounded(async {
        let server = bind(keeping_server(Seen::default())).await;
        let client = bind(client()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let mut reply = peer.ask_with(task("r"), AskOptions::default().sign_reply(true)).await.unwrap();
        assert_eq!(reply.message.task_id, "r");
        let receipt = reply.take_receipt().expect("a signed answer");
        receipt.verify().unwrap();
        assert_eq!((receipt.sender, receipt.receiver, receipt.intent), (server.id(), client.id(), TaskStatus::ID));
        assert_eq!(receipt.act, Act::Inform);
        assert_ne!(receipt.in_reply_to, 0, "the receipt names the ask it answers");
        // Any change of an essential breaks it.
        let mut forged = receipt.clone();
        forged.payload_blake3[0] ^= 1;
        assert_eq!(forged.verify().unwrap_err().code(), ErrorCode::SignatureInvalid);
        // A raw ask carries the receipt too.
        let raw = peer
            .ask_raw(
                DelegateTask::ID,
                prost::Message::encode_to_vec(&task("raw")).into(),
                AskOptions::default().sign_reply(true),
            )
            .await
            .unwrap();
        raw.receipt.expect("a signed raw answer").verify().unwrap();
    })
    .await;
}

// [receipt.sign-reply]: an answer to an ask for a signed one that comes
// unsigned is an error at the asker. The peer is the transport-level echo
// endpoint of the test kit, which answers without signing.
#[tokio::test]
async fn an_unsigned_answer_to_an_ask_for_a_signed_one_is_an_error() {
    use tacit_handshake::{Capabilities, Identity, IntentOffer};
    use tacit_testkit::echo;
    bounded(async {
        let echo_server = tacit::transport::Endpoint::builder()
            .identity(Identity::generate().unwrap())
            .capabilities(Capabilities::default().with_intent(IntentOffer::handles(echo::ECHO, "t.Echo")))
            .bind(LOCALHOST)
            .await
            .unwrap();
        let _stats = echo::spawn(&echo_server);
        let client = bind(Agent::builder().emits_raw(echo::ECHO, "t.Echo")).await;
        let peer = client.connect(echo_server.local_addr().unwrap(), echo_server.agent_id()).await.unwrap();
        let plain = peer.ask_raw(echo::ECHO, "hi".into(), AskOptions::default()).await.unwrap();
        assert!(plain.receipt.is_none());
        let error = peer.ask_raw(echo::ECHO, "hi".into(), AskOptions::default().sign_reply(true)).await.unwrap_err();
        assert!(matches!(error, Error::ReplyUnsigned { .. }), "{error:?}");
        assert_eq!(error.code(), ErrorCode::SignatureRequired);
        assert_eq!(client.metrics().errors_with(ErrorCode::SignatureRequired), 1);
    })
    .await;
}

// [policy.signed]: a rule that demands a signature refuses an unsigned ask
// with SIGNATURE_REQUIRED (handler not run) and drops an unsigned tell; the
// signed ones pass, with their receipts.
#[tokio::test]
async fn a_policy_demanding_signatures_refuses_unsigned_messages() {
    bounded(async {
        let seen = Seen::default();
        let policy = Policy::allow_all()
            .rule(Rule::allow().intent(DelegateTask::ID).signed())
            .rule(Rule::allow().intent(RejectProposal::ID).signed());
        let server = bind(keeping_server(seen.clone()).policy(policy)).await;
        let client = bind(client()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let error = peer.ask(task("unsigned")).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::SignatureRequired, "{error}");
        assert!(error.is_rejection());
        assert!(seen.lock().unwrap().is_empty(), "the handler must not run for an unsigned ask");
        peer.tell(RejectProposal { proposal_id: 1, reason: "unsigned".into() }).await.unwrap();
        peer.tell_with(RejectProposal { proposal_id: 2, reason: "signed".into() }, TellOptions::default().signed(true))
            .await
            .unwrap();
        // The signed ask comes after both tells on the same session; the
        // tells are ordered among themselves, so wait for the signed one.
        peer.ask_with(task("signed"), AskOptions::default().signed(true)).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while seen.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "the signed ask and the signed tell: {seen:?}");
        assert!(seen.iter().all(|receipt| receipt.as_ref().is_some_and(|r| r.verify().is_ok())));
        let metrics = server.metrics();
        assert_eq!(metrics.errors_with(ErrorCode::SignatureRequired), 2, "the unsigned ask and tell");
    })
    .await;
}

// ContractNet: `award_signed` signs the award (the winner keeps it) and asks
// for a signed confirmation (the initiator keeps it): a pair of receipts of
// the same conversation, each verifiable by a third party.
#[tokio::test]
async fn a_signed_award_leaves_a_pair_of_receipts() {
    bounded(async {
        let awards: Arc<Mutex<Vec<Receipt>>> = Arc::default();
        let kept = awards.clone();
        let seller =
            bind(
                Agent::builder().on_ask(move |cx: Context, t: DelegateTask| {
                    if cx.act() == Act::Accept {
                        kept.lock().unwrap().push(cx.receipt().cloned().expect("a signed award"));
                    }
                    async move {
                        Ok(TaskStatus { task_id: t.task_id, state: TaskState::Working as i32, ..Default::default() })
                    }
                }),
            )
            .await;
        let buyer = bind(client()).await;
        let peer = buyer.connect(seller.local_addr().unwrap(), seller.id()).await.unwrap();
        let round = ContractNet::new([peer], Duration::from_secs(5)).call_for_proposals(task("cfp")).await;
        assert_eq!(round.proposals.len(), 1, "{:?}", round.declined);
        let conversation = round.conversation();
        let confirmation = round.award_signed(0, task("award"), "not chosen").await.unwrap();
        let seller_receipt = confirmation.receipt().expect("a signed confirmation").clone();
        let buyer_receipt = awards.lock().unwrap().pop().expect("the seller kept the award");
        for receipt in [&seller_receipt, &buyer_receipt] {
            Receipt::decode(&receipt.encode_to_vec()).unwrap().verify().unwrap();
            assert_eq!(receipt.conversation_id, conversation);
        }
        assert_eq!((buyer_receipt.sender, buyer_receipt.act), (buyer.id(), Act::Accept));
        assert_eq!((seller_receipt.sender, seller_receipt.act), (seller.id(), Act::Inform));
        assert_eq!(seller_receipt.in_reply_to, buyer_receipt.message_id, "the confirmation answers the award");
    })
    .await;
}
