//! The agent API over loopback: typed ask / tell / stream, rejections,
//! conversations, contract net, reconnect with idempotent retry, schema
//! fetch with dynamic decoding, counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tacit::intents::{
    AcceptProposal, AgentDescription, CallForProposals, ContractResult, DelegateTask, DescribeAgent, GetTask, Health,
    HealthCheck, Ping, Pong, Proposal, RejectProposal, TaskState, TaskStatus, TaskUpdate, health,
};
use tacit::{
    Act, Agent, AgentBuilder, AgentCard, AskOptions, Context, ContractNet, Error, ErrorCode, Intent, Rejection, Reply,
    StreamReceiver, StreamSender,
};
use tacit_testkit::LOCALHOST;
use tokio::sync::mpsc;

async fn bind(builder: AgentBuilder) -> Agent {
    builder.bind(LOCALHOST).await.unwrap()
}

/// Bounds every test: nothing here may hang.
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), test).await.expect("the test took over 30 s")
}

fn status(task_id: &str, state: TaskState) -> TaskStatus {
    TaskStatus { task_id: task_id.into(), state: state as i32, ..Default::default() }
}

/// An agent that answers every DelegateTask with `state`.
fn task_server(state: TaskState) -> AgentBuilder {
    Agent::builder().on_ask(move |_: Context, t: DelegateTask| async move { Ok(status(&t.task_id, state)) })
}

#[tokio::test]
async fn typed_ask_and_standard_intents() {
    bounded(async {
        let server = bind(Agent::builder().card(AgentCard::new("worker").with_description("does tasks")).on_ask(
            |cx: Context, task: DelegateTask| async move {
                assert_eq!(cx.act(), Act::Request);
                Ok(status(&task.task_id, TaskState::Completed))
            },
        ))
        .await;
        let client = bind(Agent::builder().emits::<DelegateTask>()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();

        let done: TaskStatus = peer.ask(DelegateTask { task_id: "t1".into(), ..Default::default() }).await.unwrap();
        assert_eq!(done.task_id, "t1");
        assert_eq!(done.state, TaskState::Completed as i32);

        // Built in: ping, health, describe.
        let pong: Pong = peer.ask(Ping { nonce: 7 }).await.unwrap();
        assert_eq!(pong.nonce, 7);
        let health: Health = peer.ask(HealthCheck {}).await.unwrap();
        assert_eq!(health.status, health::Status::Serving as i32);
        let description: AgentDescription = peer.ask(DescribeAgent {}).await.unwrap();
        assert_eq!(description.name, "worker");
        assert_eq!(description.description, "does tasks");
        let task = description.intents.iter().find(|i| i.name == DelegateTask::NAME).unwrap();
        assert!(task.handles && !task.emits);
        assert_eq!(&task.intent_id[..], DelegateTask::ID.as_bytes());
        assert_eq!(peer.card().unwrap().name, "worker");
    })
    .await;
}

#[tokio::test]
async fn rejections_carry_act_and_code() {
    bounded(async {
        let server = bind(Agent::builder().on_ask(|_: Context, task: DelegateTask| async move {
            match task.task_id.as_str() {
                "refuse" => Err(Rejection::refuse(ErrorCode::TooManyAsks, "busy")),
                "fail" => Err(Rejection::failed("disk full")),
                "agree" => Ok(Reply::new(Act::Agree, status("agree", TaskState::Submitted))),
                _ => panic!("the handler panics"),
            }
        }))
        .await;
        let client = bind(Agent::builder().emits::<DelegateTask>()).await;
        let peer = client.connect(server.local_addr().unwrap(), None).await.unwrap();
        let task = |id: &str| DelegateTask { task_id: id.into(), ..Default::default() };

        match peer.ask(task("refuse")).await.unwrap_err() {
            Error::Rejected { rejection, .. } => {
                assert_eq!(
                    (rejection.act, rejection.code, rejection.reason.as_str()),
                    (Act::Refuse, ErrorCode::TooManyAsks, "busy")
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let failed = peer.ask(task("fail")).await.unwrap_err();
        assert_eq!(failed.code(), ErrorCode::HandlerFailed);
        assert!(failed.is_rejection());
        let agreed = peer.ask_with(task("agree"), AskOptions::default()).await.unwrap();
        assert_eq!(agreed.act, Act::Agree);
        assert_eq!(agreed.message.state, TaskState::Submitted as i32);
        // A handler that panics never answers: the asker is told, not left waiting.
        assert_eq!(peer.ask(task("panic")).await.unwrap_err().code(), ErrorCode::NoReply);
        // The session survived all of that.
        assert_eq!(peer.ask(Ping { nonce: 1 }).await.unwrap().nonce, 1);

        let metrics = client.metrics();
        assert_eq!(metrics.asks_sent, 5);
        assert_eq!(metrics.replies_received, 2);
        assert_eq!(metrics.rejections_received, 3);
        assert_eq!(metrics.errors_with(ErrorCode::TooManyAsks), 1);
        assert_eq!(metrics.errors_with(ErrorCode::HandlerFailed), 1);
        assert_eq!(metrics.errors_with(ErrorCode::NoReply), 1);
        let served = server.metrics();
        assert_eq!(served.asks_received, 5);
        assert_eq!(served.replies_sent, 2);
        assert_eq!(served.rejections_sent, 2, "the panic sent no rejection of its own");
        assert_eq!(served.errors_with(ErrorCode::HandlerFailed), 1);
    })
    .await;
}

#[tokio::test]
async fn an_undeclared_intent_is_offered_on_first_use() {
    bounded(async {
        let server = bind(task_server(TaskState::Completed)).await;
        // The client does not declare that it emits DelegateTask.
        let client = bind(Agent::builder()).await;
        // Right after connect (the handshake still under way) ...
        let peer = client.connect(server.local_addr().unwrap(), None).await.unwrap();
        let reply = peer.ask(DelegateTask { task_id: "first".into(), ..Default::default() }).await.unwrap();
        assert_eq!(reply.task_id, "first");
        assert!(peer.can_send::<DelegateTask>(), "offered by a capability update");
        // ... and on a second session, after the handshake.
        let again = client.connect(server.local_addr().unwrap(), None).await.unwrap();
        again.ready().await.unwrap();
        assert_eq!(
            again.ask(DelegateTask { task_id: "second".into(), ..Default::default() }).await.unwrap().task_id,
            "second"
        );
        assert_eq!(server.metrics().asks_received, 2);

        // An intent the peer does not handle fails here, with a clear error.
        let bare = bind(Agent::builder()).await;
        let peer = client.connect(bare.local_addr().unwrap(), None).await.unwrap();
        let error = peer.ask(DelegateTask::default()).await.unwrap_err();
        assert!(matches!(error, Error::NotNegotiated { intent } if intent == DelegateTask::NAME), "{error:?}");
        assert!(error.to_string().contains("does not handle"), "{error}");
        assert_eq!(bare.metrics().asks_received, 0);
    })
    .await;
}

#[tokio::test]
async fn tells_arrive_in_order_and_datagrams_arrive() {
    bounded(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let server = bind(Agent::builder().on_tell(move |cx: Context, update: TaskUpdate| {
            let tx = tx.clone();
            async move {
                // A slow first message must not let later ones overtake it.
                let id = update.status.unwrap_or_default().task_id;
                if id == "0" {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tx.send((cx.act(), id)).unwrap();
            }
        }))
        .await;
        let client = bind(Agent::builder().emits::<TaskUpdate>()).await;
        let peer = client.connect(server.local_addr().unwrap(), None).await.unwrap();
        for i in 0..100 {
            peer.tell(TaskUpdate { status: Some(status(&i.to_string(), TaskState::Working)) }).await.unwrap();
        }
        for i in 0..100 {
            assert_eq!(rx.recv().await.unwrap(), (Act::Inform, i.to_string()));
        }
        // Datagrams may be lost in principle; on loopback, one of a few arrives.
        for _ in 0..5 {
            peer.datagram(TaskUpdate { status: Some(status("dgram", TaskState::Working)) }).await.unwrap();
        }
        let (_, id) = rx.recv().await.unwrap();
        assert_eq!(id, "dgram");
        assert_eq!(client.metrics().tells_sent, 105);
    })
    .await;
}

#[tokio::test]
async fn typed_stream_both_ways() {
    bounded(async {
        // The handler reports progress on the task until the client's input ends.
        let server = bind(Agent::builder().on_stream_with(
            |_: Context,
             task: DelegateTask,
             mut updates: StreamSender<TaskUpdate>,
             mut inputs: StreamReceiver<Ping>| async move {
                let mut seen = 0;
                while let Some(ping) = inputs.recv().await.unwrap() {
                    seen += 1;
                    let mut s = status(&task.task_id, TaskState::Working);
                    s.message = format!("input {}", ping.nonce);
                    updates.send(&TaskUpdate { status: Some(s) }).await.unwrap();
                }
                let mut done = status(&task.task_id, TaskState::Completed);
                done.message = format!("{seen} inputs");
                updates.send(&TaskUpdate { status: Some(done) }).await.unwrap();
                updates.finish().await.unwrap();
            },
        ))
        .await;
        let client = bind(Agent::builder().emits::<DelegateTask>()).await;
        let peer = client.connect(server.local_addr().unwrap(), None).await.unwrap();
        let (mut inputs, mut updates) = peer
            .stream_with::<_, Ping, TaskUpdate>(DelegateTask { task_id: "s".into(), ..Default::default() })
            .await
            .unwrap();
        for nonce in 0..10 {
            inputs.send(&Ping { nonce }).await.unwrap();
        }
        inputs.finish().await.unwrap();
        let mut messages = Vec::new();
        while let Some(update) = updates.recv().await.unwrap() {
            messages.push(update.status.unwrap().message);
        }
        let mut expected: Vec<String> = (0..10).map(|n| format!("input {n}")).collect();
        expected.push("10 inputs".into());
        assert_eq!(messages, expected);
    })
    .await;
}

/// `[hs.lanes-send]`, `[lane.no-handler]`: a stream to an intent the agent
/// handles only as an ask fails at the opener, before anything is sent, with
/// `WrongLane` (the receiver's refusal of a peer that does not check is
/// `tacit-quic/tests/rules.rs`, `a_stream_lane_for_an_ask_only_intent_is_refused_both_ways`).
#[tokio::test]
async fn a_stream_lane_nobody_serves_fails_at_the_opener() {
    bounded(async {
        let server = bind(task_server(TaskState::Completed)).await;
        let client = bind(Agent::builder().emits::<DelegateTask>()).await;
        let peer = client.connect(server.local_addr().unwrap(), None).await.unwrap();
        peer.ready().await.unwrap();
        let opened =
            peer.stream_with::<_, Ping, TaskUpdate>(DelegateTask { task_id: "s".into(), ..Default::default() }).await;
        match opened {
            Err(Error::WrongLane { lane, .. }) => assert_eq!(lane, tacit::Lane::Stream),
            Err(other) => panic!("expected WrongLane, got {other:?}"),
            Ok(_) => panic!("a stream to an ask-only intent was opened"),
        }
        // The session is unharmed: the ask lane still answers.
        let reply = peer.ask(DelegateTask { task_id: "a".into(), ..Default::default() }).await.unwrap();
        assert_eq!(reply.state, TaskState::Completed as i32);
    })
    .await;
}

#[tokio::test]
async fn a_stream_handler_that_returns_without_finish_delivers_what_it_sent() {
    bounded(async {
        let server = bind(Agent::builder().on_stream_with(
            |_: Context, _: DelegateTask, mut updates: StreamSender<TaskUpdate>, _: StreamReceiver<Ping>| async move {
                updates.send(&TaskUpdate::default()).await.unwrap();
                // Dropped without `finish`: the direction ends after what was sent.
            },
        ))
        .await;
        let client = bind(Agent::builder().emits::<DelegateTask>()).await;
        let peer = client.connect(server.local_addr().unwrap(), None).await.unwrap();
        let (_inputs, mut updates) = peer.stream_with::<_, Ping, TaskUpdate>(DelegateTask::default()).await.unwrap();
        // The message sent before the drop arrives, then the end (a cut-off
        // stream, FIN without the end marker, is still reported truncated:
        // tacit-quic's tests/stream.rs).
        assert_eq!(updates.recv().await.unwrap(), Some(TaskUpdate::default()));
        assert!(matches!(updates.recv().await, Ok(None)));
    })
    .await;
}

#[tokio::test]
async fn conversation_threads_ids() {
    bounded(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let server = bind(Agent::builder().on_ask(move |cx: Context, ping: Ping| {
            let tx = tx.clone();
            async move {
                tx.send((cx.conversation_id(), cx.in_reply_to(), cx.message_id())).unwrap();
                Ok(Pong { nonce: ping.nonce })
            }
        }))
        .await;
        let client = bind(Agent::builder()).await;
        let peer = client.connect(server.local_addr().unwrap(), None).await.unwrap();
        let conversation = peer.conversation();
        conversation.ask(Ping { nonce: 1 }).await.unwrap();
        conversation.ask(Ping { nonce: 2 }).await.unwrap();
        let (first_conversation, first_in_reply_to, first_id) = rx.recv().await.unwrap();
        let (second_conversation, second_in_reply_to, second_id) = rx.recv().await.unwrap();
        assert_eq!(first_conversation, conversation.id());
        assert_eq!(second_conversation, conversation.id());
        assert!(!conversation.id().is_empty());
        assert_eq!(first_in_reply_to, 0);
        // The second message answers the first reply (whose id is neither request's).
        assert_ne!(second_in_reply_to, 0);
        assert_ne!(second_in_reply_to, first_id);
        assert_ne!(second_id, first_id);
        // A plain ask has no conversation.
        peer.ask(Ping { nonce: 3 }).await.unwrap();
        assert!(rx.recv().await.unwrap().0.is_empty());
    })
    .await;
}

/// How one contract-net participant behaves.
#[derive(Clone, Copy)]
enum Bidder {
    Bids(f64),
    Refuses,
    TooSlow,
}

#[tokio::test]
async fn contract_net_with_five_peers_and_a_deadline() {
    bounded(async {
        let behaviours = [Bidder::Bids(30.0), Bidder::Refuses, Bidder::Bids(10.0), Bidder::TooSlow, Bidder::Bids(20.0)];
        let (events, mut event_rx) = mpsc::unbounded_channel::<(usize, &'static str, Act)>();
        let mut sellers = Vec::new();
        for (index, behaviour) in behaviours.into_iter().enumerate() {
            let on_cfp = events.clone();
            let on_accept = events.clone();
            let on_reject = events.clone();
            let seller = bind(
                Agent::builder()
                    .card(AgentCard::new(format!("seller-{index}")))
                    .on_ask(move |cx: Context, cfp: CallForProposals| {
                        let events = on_cfp.clone();
                        async move {
                            events.send((index, "cfp", cx.act())).unwrap();
                            assert_eq!(cfp.task, "deliver");
                            match behaviour {
                                Bidder::Bids(cost) => {
                                    Ok(Proposal { cost, terms: format!("seller-{index}"), ..Default::default() })
                                }
                                Bidder::Refuses => Err(Rejection::decline("no capacity")),
                                Bidder::TooSlow => {
                                    tokio::time::sleep(Duration::from_secs(5)).await;
                                    Ok(Proposal::default())
                                }
                            }
                        }
                    })
                    .on_ask(move |cx: Context, accept: AcceptProposal| {
                        let events = on_accept.clone();
                        async move {
                            events.send((index, "accept", cx.act())).unwrap();
                            assert_eq!(cx.in_reply_to(), accept.proposal_id);
                            Ok(ContractResult { done: true, message: format!("done by {index}"), ..Default::default() })
                        }
                    })
                    .on_tell(move |cx: Context, reject: RejectProposal| {
                        let events = on_reject.clone();
                        async move {
                            assert_eq!(reject.reason, "too expensive");
                            events.send((index, "reject", cx.act())).unwrap();
                        }
                    }),
            )
            .await;
            sellers.push(seller);
        }
        let buyer = bind(Agent::builder().emits::<CallForProposals>().emits::<AcceptProposal>()).await;
        let mut peers = Vec::new();
        for seller in &sellers {
            peers.push(buyer.connect(seller.local_addr().unwrap(), seller.id()).await.unwrap());
        }

        let deadline = Duration::from_millis(500);
        let started = Instant::now();
        let contract_net = ContractNet::new(peers, deadline);
        let round =
            contract_net.call_for_proposals(CallForProposals { task: "deliver".into(), ..Default::default() }).await;
        let took = started.elapsed();
        assert!(took >= deadline && took < deadline + Duration::from_secs(2), "the round took {took:?}");
        let costs: Vec<f64> = round.proposals.iter().map(|p| p.proposal.cost).collect();
        assert_eq!(costs, [30.0, 10.0, 20.0]);
        assert_eq!(round.declined.len(), 2);
        let declined_codes: Vec<ErrorCode> = round.declined.iter().map(|(_, e)| e.code()).collect();
        assert!(declined_codes.contains(&ErrorCode::Declined), "{declined_codes:?}");
        assert!(declined_codes.contains(&ErrorCode::DeadlineExceeded), "{declined_codes:?}");
        let conversation = round.conversation();

        let best = round.best_by_key(|p| p.cost).unwrap();
        assert_eq!(round.proposals[best].peer.id(), sellers[2].id());
        let acceptance = AcceptProposal { proposal_id: round.proposals[best].proposal_id, ..Default::default() };
        let result = round.award(best, acceptance, "too expensive").await.unwrap();
        assert_eq!(result.message, "done by 2");
        assert!(result.done);
        assert!(!conversation.is_empty());

        // Everyone got the call; the winner an ACCEPT; the two other bidders a REJECT.
        let mut seen = Vec::new();
        while seen.len() < 5 + 1 + 2 {
            seen.push(event_rx.recv().await.unwrap());
        }
        seen.sort_by_key(|(index, what, _)| (*what, *index));
        assert_eq!(
            seen,
            [
                (2, "accept", Act::Accept),
                (0, "cfp", Act::Cfp),
                (1, "cfp", Act::Cfp),
                (2, "cfp", Act::Cfp),
                (3, "cfp", Act::Cfp),
                (4, "cfp", Act::Cfp),
                (0, "reject", Act::Reject),
                (4, "reject", Act::Reject),
            ]
        );
    })
    .await;
}

/// The handler closes the connection after running the ask and before its
/// answer can arrive: the asker cannot know whether it ran.
fn flaky_server(executions: Arc<AtomicU32>) -> AgentBuilder {
    Agent::builder().on_ask(move |cx: Context, task: DelegateTask| {
        let executions = executions.clone();
        async move {
            let run = executions.fetch_add(1, Ordering::SeqCst) + 1;
            if run == 1 {
                cx.peer().session().close(ErrorCode::Unspecified, "simulated crash");
            }
            Ok(status(&task.task_id, TaskState::Completed))
        }
    })
}

#[tokio::test]
async fn reconnect_and_idempotent_retry_run_once() {
    bounded(async {
        let executions = Arc::new(AtomicU32::new(0));
        let server = bind(flaky_server(executions.clone())).await;
        let client = bind(Agent::builder().emits::<DelegateTask>()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let task = DelegateTask { task_id: "once".into(), ..Default::default() };

        let reply = peer.ask_with(task, AskOptions::default().idempotent()).await.unwrap();
        assert_eq!(reply.message.task_id, "once");
        assert_eq!(executions.load(Ordering::SeqCst), 1, "the retried ask ran twice");
        let metrics = client.metrics();
        assert_eq!((metrics.retries, metrics.reconnects), (1, 1));
        // The new session works and is the same peer.
        assert_eq!(peer.ask(Ping { nonce: 5 }).await.unwrap().nonce, 5);
        assert_eq!(peer.id(), server.id());
    })
    .await;
}

#[tokio::test]
async fn a_non_idempotent_ask_reports_the_unknown_outcome() {
    bounded(async {
        let executions = Arc::new(AtomicU32::new(0));
        let server = bind(flaky_server(executions.clone())).await;
        let client = bind(Agent::builder().emits::<DelegateTask>()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let error = peer.ask(DelegateTask::default()).await.unwrap_err();
        assert!(matches!(error, Error::Unknown { .. }), "{error:?}");
        assert_eq!(executions.load(Ordering::SeqCst), 1);
        // The next ask reconnects by itself.
        assert_eq!(peer.ask(DelegateTask::default()).await.unwrap().state, TaskState::Completed as i32);
        assert_eq!(executions.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test]
async fn schema_fetch_decodes_an_unknown_intent() {
    bounded(async {
        let server = bind(task_server(TaskState::Completed)).await;
        // The client knows nothing of DelegateTask but the standard describe.
        let client = bind(Agent::builder()).await;
        let peer = client.connect(server.local_addr().unwrap(), None).await.unwrap();
        let description = peer.ask(DescribeAgent {}).await.unwrap();
        let info = description.intents.iter().find(|i| i.name.ends_with(".DelegateTask")).unwrap();
        let id = tacit::IntentId::try_from(&info.intent_id[..]).unwrap();
        let schema = peer.describe(id).await.unwrap();
        assert_eq!(schema.name(), DelegateTask::NAME);
        assert_eq!(schema.id(), DelegateTask::ID);

        let encoded = prost::Message::encode_to_vec(&DelegateTask {
            task_id: "dyn".into(),
            description: "decoded without the type".into(),
            intent_id: Bytes::new(),
            payload: Bytes::from_static(b"\x01\x02"),
        });
        let message = schema.decode(&encoded).unwrap();
        assert_eq!(message.get_field_by_name("task_id").unwrap().as_str(), Some("dyn"));
        assert_eq!(message.get_field_by_name("description").unwrap().as_str(), Some("decoded without the type"));
        // The reply type shares the request's file: found by its id.
        let reply = schema.related(TaskStatus::ID).unwrap();
        assert_eq!(reply.name(), TaskStatus::NAME);
        assert!(schema.related(tacit::IntentId::from_bytes([9; 32])).is_none());
        // A wrong id is refused, not trusted.
        assert!(peer.describe(tacit::IntentId::from_bytes([9; 32])).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn identity_persists_in_the_key_file() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        let first = bind(Agent::builder().key_file(&path)).await;
        let id = first.id();
        first.shutdown(Duration::from_millis(10)).await;
        let second = bind(Agent::builder().key_file(&path)).await;
        assert_eq!(second.id(), id);
    })
    .await;
}

#[tokio::test]
async fn a_catch_all_agent_takes_intents_it_was_not_built_with() {
    bounded(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // A listener: no typed handler for DelegateTask, only catch-alls.
        let on_tell = tx.clone();
        let listener = bind(
            Agent::builder()
                .on_any_tell(move |cx: Context, payload: Bytes| {
                    let tx = on_tell.clone();
                    async move {
                        // Decode through the schema the sender serves.
                        let schema = cx.peer().describe(cx.intent()).await.unwrap();
                        let message = schema.decode(&payload).unwrap();
                        let task_id = message.get_field_by_name("task_id").unwrap().as_str().unwrap().to_owned();
                        tx.send((cx.intent_name(), cx.act(), task_id)).unwrap();
                    }
                })
                .on_any_ask(|cx: Context, payload: Bytes| async move {
                    // Answer any ask with an empty TaskStatus naming the request's size.
                    assert_eq!(cx.intent(), DelegateTask::ID);
                    let status = TaskStatus { message: format!("{} bytes", payload.len()), ..Default::default() };
                    Ok((TaskStatus::ID, Bytes::from(prost::Message::encode_to_vec(&status))))
                }),
        )
        .await;
        let client = bind(Agent::builder().emits::<DelegateTask>()).await;
        let peer = client.connect(listener.local_addr().unwrap(), listener.id()).await.unwrap();
        peer.ready().await.unwrap();
        // The listener offers DelegateTask once it has seen that the client emits it.
        let started = Instant::now();
        while !peer.can_send::<DelegateTask>() {
            assert!(started.elapsed() < Duration::from_secs(5), "the listener never adopted the intent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peer.tell(DelegateTask { task_id: "told".into(), ..Default::default() }).await.unwrap();
        let (name, act, task_id) = rx.recv().await.unwrap();
        assert_eq!(name.as_deref(), Some(DelegateTask::NAME));
        assert_eq!((act, task_id.as_str()), (Act::Inform, "told"));

        let asked = DelegateTask { task_id: "asked".into(), ..Default::default() };
        let len = prost::Message::encoded_len(&asked);
        let status = peer.ask(asked).await.unwrap();
        assert_eq!(status.message, format!("{len} bytes"));
    })
    .await;
}

#[tokio::test]
async fn raw_asks_by_id() {
    bounded(async {
        let server = bind(task_server(TaskState::Working)).await;
        // The client knows the intent only by id and name (as the CLI does),
        // or by a schema it can serve.
        let client = bind(Agent::builder().emits_raw(DelegateTask::ID, DelegateTask::NAME)).await;
        let schema_client = bind(Agent::builder().emits_schema(&tacit::Schema::of::<DelegateTask>().unwrap())).await;
        let schema_peer = schema_client.connect(server.local_addr().unwrap(), None).await.unwrap();
        assert_eq!(schema_peer.ask(DelegateTask::default()).await.unwrap().state, TaskState::Working as i32);
        let peer = client.connect(server.local_addr().unwrap(), None).await.unwrap();
        let request = DelegateTask { task_id: "raw".into(), ..Default::default() };
        let reply = peer
            .ask_raw(DelegateTask::ID, prost::Message::encode_to_vec(&request).into(), AskOptions::default())
            .await
            .unwrap();
        assert_eq!(reply.act, Act::Inform);
        assert_eq!(reply.intent, Some(TaskStatus::ID));
        let decoded: TaskStatus = prost::Message::decode(reply.payload).unwrap();
        assert_eq!((decoded.task_id.as_str(), decoded.state), ("raw", TaskState::Working as i32));
    })
    .await;
}

#[tokio::test]
async fn accepted_sessions_are_counted_until_they_end() {
    bounded(async {
        let server = bind(Agent::builder()).await;
        let client = bind(Agent::builder()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        assert_eq!(peer.ask(Ping { nonce: 7 }).await.unwrap().nonce, 7);
        let metrics = server.metrics();
        assert_eq!((metrics.sessions_accepted, metrics.sessions_ended), (1, 0), "open while the peer is");
        peer.close();
        while server.metrics().sessions_ended == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(server.metrics().sessions_ended, 1);
    })
    .await;
}

/// Handlers registered from schemas known at run time (what the Python
/// package does): offered in the handshake with their schemas, served to
/// typed peers exactly like compiled handlers, on every lane.
#[tokio::test]
async fn handlers_from_run_time_schemas() {
    bounded(async {
        let request = tacit::Schema::of::<DelegateTask>().unwrap();
        let reply = tacit::Schema::of::<TaskStatus>().unwrap();
        let update = tacit::Schema::of::<TaskUpdate>().unwrap();
        let get = tacit::Schema::of::<GetTask>().unwrap();
        let (told_tx, mut told_rx) = mpsc::unbounded_channel();
        let server = bind(
            Agent::builder()
                .on_ask_schema(&request, &reply, |cx: Context, payload: Bytes| async move {
                    let task: DelegateTask = prost::Message::decode(payload)
                        .map_err(|e| Rejection::failure(ErrorCode::InvalidPayload, e.to_string()))?;
                    let status = status(&task.task_id, TaskState::Completed);
                    let act = (cx.act() == Act::Cfp).then_some(Act::Propose);
                    Ok((act, Bytes::from(prost::Message::encode_to_vec(&status))))
                })
                .on_tell_schema(&get, move |_: Context, payload: Bytes| {
                    let told_tx = told_tx.clone();
                    async move {
                        told_tx.send(payload).unwrap();
                    }
                })
                .on_stream_schema(&update, Some(&reply), None, |_: Context, opening: Bytes, mut items, _| async move {
                    for n in 0..3 {
                        let item = TaskStatus { message: format!("{n} of {}", opening.len()), ..Default::default() };
                        items.send_raw(prost::Message::encode_to_vec(&item).into()).await.unwrap();
                    }
                    items.finish().await.unwrap();
                }),
        )
        .await;
        let client = bind(Agent::builder()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let negotiated = peer.ready().await.unwrap();
        let offer = negotiated.peer_offers.iter().find(|offer| offer.id == DelegateTask::ID).unwrap();
        assert_eq!(offer.reply, Some(TaskStatus::ID), "the offer names the reply");
        let stream_offer = negotiated.peer_offers.iter().find(|offer| offer.id == TaskUpdate::ID).unwrap();
        assert_eq!(stream_offer.stream_item, Some(TaskStatus::ID));

        // A typed peer asks it (first use offers the intent), and the schema is served.
        let done: TaskStatus = peer.ask(DelegateTask { task_id: "t".into(), ..Default::default() }).await.unwrap();
        assert_eq!((done.task_id.as_str(), done.state), ("t", TaskState::Completed as i32));
        let fetched = peer.describe(DelegateTask::ID).await.unwrap();
        assert_eq!(fetched.descriptor_set(), request.descriptor_set());
        // The act the handler picks goes on the wire.
        let options = AskOptions::default().act(Act::Cfp);
        let proposed = peer.ask_with(DelegateTask::default(), options).await.unwrap();
        assert_eq!(proposed.act, Act::Propose);

        // Raw calls after `offer`.
        let raw_client = bind(Agent::builder()).await;
        let raw_peer = raw_client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        raw_peer.offer(&request).await.unwrap();
        let answer = raw_peer.ask_raw(DelegateTask::ID, Bytes::new(), AskOptions::default()).await.unwrap();
        assert_eq!(answer.intent, Some(TaskStatus::ID));
        raw_peer.offer(&get).await.unwrap();
        let told = GetTask { task_id: "g".into() };
        raw_peer.tell_raw(GetTask::ID, prost::Message::encode_to_vec(&told).into(), Default::default()).await.unwrap();
        assert_eq!(told_rx.recv().await.unwrap(), Bytes::from(prost::Message::encode_to_vec(&told)));
        raw_peer.offer(&update).await.unwrap();
        let (_, mut items) = raw_peer.stream_raw(TaskUpdate::ID, Bytes::from_static(b"\x0a\x01x")).await.unwrap();
        let mut got = Vec::new();
        while let Some(item) = items.recv_raw().await.unwrap() {
            got.push(<TaskStatus as prost::Message>::decode(item).unwrap().message);
        }
        assert_eq!(got, ["0 of 3", "1 of 3", "2 of 3"]);
        // An intent the peer does not handle cannot be offered.
        let ping_reply = tacit::Schema::of::<Proposal>().unwrap();
        assert!(matches!(raw_peer.offer(&ping_reply).await, Err(Error::NotNegotiated { .. })));
    })
    .await;
}
