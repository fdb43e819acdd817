//! Receiver-side policy over loopback (docs/PROTOCOL.md, "Policy"): rules
//! at the handshake and per message, per-peer limits, reload, file errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tacit::intents::{DelegateTask, RejectProposal, TaskState, TaskStatus};
use tacit::policy::{Limits, PolicyError, Quota, Rate, Rule};
use tacit::{Agent, AgentBuilder, Context, ErrorCode, Lane, Policy};
use tacit_testkit::LOCALHOST;
use tokio::sync::Semaphore;

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

/// A server counting the DelegateTask asks its handler runs.
fn counting_server(calls: Arc<AtomicU32>) -> AgentBuilder {
    Agent::builder().on_ask(move |_: Context, t: DelegateTask| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok(TaskStatus { task_id: t.task_id, state: TaskState::Completed as i32, ..Default::default() }) }
    })
}

fn client() -> AgentBuilder {
    Agent::builder().emits::<DelegateTask>().emits::<RejectProposal>()
}

// [policy.ask-denied]: an ask the rules deny is refused with POLICY_DENIED
// and its handler never runs; an allowed peer is served.
#[tokio::test]
async fn denied_ask_is_refused_and_handler_never_runs() {
    bounded(async {
        let (allowed, denied) = (bind(client()).await, bind(client()).await);
        let calls = Arc::new(AtomicU32::new(0));
        let server = bind(counting_server(calls.clone())).await;
        // Set after binding (the clients' ids are known only then); the
        // rules hold for sessions accepted after it.
        server.set_policy(Policy::deny_all().rule(Rule::allow().agent(allowed.id())));
        // [policy.nothing-offered]: the denied peer may use nothing, so its
        // handshake is refused.
        let addr = server.local_addr().unwrap();
        let bad = denied.connect(addr, server.id()).await.map_err(|e| e.to_string()).unwrap();
        assert_eq!(bad.ready().await.err().map(|e| e.code()), Some(ErrorCode::PolicyDenied));
        let good = allowed.connect(addr, server.id()).await.unwrap();
        let status: TaskStatus = good.ask(task("ok")).await.unwrap();
        assert_eq!(status.task_id, "ok");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Allow the intent at the handshake but deny it per message, on a
        // fresh session: [policy.reload] the new rules apply to the next message.
        server.set_policy(Policy::allow_all());
        let bad = denied.connect(addr, server.id()).await.unwrap();
        bad.ready().await.unwrap();
        // (Ping stays allowed, so the session is kept: [policy.reload].)
        server.set_policy(
            Policy::deny_all()
                .rule(Rule::allow().agent(allowed.id()))
                .rule(Rule::allow().intent_name("tacit.intents.v1.Ping")),
        );
        let error = bad.ask(task("no")).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::PolicyDenied, "{error}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler must not run for a denied ask");
        assert_eq!(server.metrics().errors_with(ErrorCode::PolicyDenied), 1);
    })
    .await;
}

// [policy.offer-filter]: an acceptor offers a peer only the intents (and
// lanes) its rules let that peer use.
#[tokio::test]
async fn hidden_intent_is_not_negotiated() {
    bounded(async {
        let (allowed, hidden) = (bind(client()).await, bind(client()).await);
        let server = bind(counting_server(Arc::default())).await;
        server.set_policy(
            Policy::allow_all()
                .rule(Rule::deny().agent(hidden.id()).intent_name("tacit.intents.v1.DelegateTask").lane(Lane::Ask)),
        );
        let addr = server.local_addr().unwrap();
        let peer = hidden.connect(addr, server.id()).await.unwrap();
        let negotiated = peer.ready().await.unwrap();
        assert!(!peer.can_send::<DelegateTask>(), "{negotiated:?}");
        let other = allowed.connect(addr, server.id()).await.unwrap();
        other.ready().await.unwrap();
        assert!(other.can_send::<DelegateTask>());
    })
    .await;
}

// [policy.one-way-denied]: a denied tell is dropped and counted.
#[tokio::test]
async fn denied_tell_is_dropped_and_counted() {
    bounded(async {
        let told = Arc::new(AtomicU32::new(0));
        let counter = told.clone();
        let server = bind(Agent::builder().on_tell(move |_: Context, _: RejectProposal| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {}
        }))
        .await;
        let sender = bind(client()).await;
        let peer = sender.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        peer.ready().await.unwrap();
        server.set_policy(Policy::allow_all().rule(Rule::deny().lane(Lane::Tell)));
        for _ in 0..3 {
            peer.tell(RejectProposal::default()).await.unwrap();
        }
        // An ask after the tells on the same session: the tells arrived first.
        let _ = peer.ask(tacit::intents::Ping { nonce: 1 }).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while server.metrics().errors_with(ErrorCode::PolicyDenied) < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(server.metrics().errors_with(ErrorCode::PolicyDenied), 3);
        assert_eq!(told.load(Ordering::SeqCst), 0);
    })
    .await;
}

// [policy.rate]: a peer over its rate is refused with RATE_LIMITED; another
// peer (its own bucket) keeps being served.
#[tokio::test]
async fn flooding_peer_is_rate_limited_others_unaffected() {
    bounded(async {
        let limits = Limits { rate: Some(Rate { per_second: 1, burst: 3 }), ..Limits::default() };
        let server = bind(counting_server(Arc::default()).policy(Policy::allow_all().limits(limits))).await;
        let addr = server.local_addr().unwrap();
        let (flooder, calm) = (bind(client()).await, bind(client()).await);
        let flood = flooder.connect(addr, server.id()).await.unwrap();
        let (mut ok, mut limited) = (0, 0);
        for i in 0..20 {
            match flood.ask(task(&i.to_string())).await {
                Ok(_) => ok += 1,
                Err(e) if e.code() == ErrorCode::RateLimited => limited += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(ok >= 3, "the burst is served: {ok}");
        assert!(limited >= 1, "the flood is limited: {ok} ok");
        assert_eq!(ok + limited, 20);
        let calm = calm.connect(addr, server.id()).await.unwrap();
        for i in 0..3 {
            calm.ask(task(&i.to_string())).await.expect("another peer is not limited");
        }
    })
    .await;
}

// [policy.quota]: at most `count` messages per window, then QUOTA_EXCEEDED.
#[tokio::test]
async fn quota_per_window() {
    bounded(async {
        let limits = Limits { quota: Some(Quota { count: 5, window: Duration::from_secs(3600) }), ..Limits::default() };
        let server = bind(counting_server(Arc::default()).policy(Policy::allow_all().limits(limits))).await;
        let agent = bind(client()).await;
        let peer = agent.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let mut codes = Vec::new();
        for i in 0..8 {
            codes.push(peer.ask(task(&i.to_string())).await.err().map(|e| e.code()));
        }
        assert_eq!(codes[..5], [None; 5]);
        assert_eq!(codes[5..], [Some(ErrorCode::QuotaExceeded); 3]);
    })
    .await;
}

// [policy.in-flight]: asks in flight per peer beyond the limit: TOO_MANY_ASKS.
#[tokio::test]
async fn concurrency_limit() {
    bounded(async {
        let gate = Arc::new(Semaphore::new(0));
        let started = Arc::new(AtomicU32::new(0));
        let (g, s) = (gate.clone(), started.clone());
        let limits = Limits { max_in_flight: Some(2), ..Limits::default() };
        let server = bind(
            Agent::builder()
                .on_ask(move |_: Context, t: DelegateTask| {
                    let (gate, started) = (g.clone(), s.clone());
                    async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        let _permit = gate.acquire().await;
                        Ok(TaskStatus { task_id: t.task_id, ..Default::default() })
                    }
                })
                .policy(Policy::allow_all().limits(limits)),
        )
        .await;
        let agent = bind(client()).await;
        let peer = agent.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let held: Vec<_> = (0..2)
            .map(|i| {
                let peer = peer.clone();
                tokio::spawn(async move { peer.ask(task(&i.to_string())).await })
            })
            .collect();
        while started.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(peer.ask(task("third")).await.unwrap_err().code(), ErrorCode::TooManyAsks);
        gate.add_permits(2);
        for ask in held {
            ask.await.unwrap().unwrap();
        }
        // Slots are given back once answered.
        gate.add_permits(1);
        peer.ask(task("after")).await.unwrap();
    })
    .await;
}

// [policy.reload]: a reload under load loses no acknowledged reply: every
// ask is answered (a reply or POLICY_DENIED), none hangs, and asks sent
// after the reload are denied.
#[tokio::test]
async fn reload_under_load() {
    bounded(async {
        let calls = Arc::new(AtomicU32::new(0));
        let server = bind(counting_server(calls.clone())).await;
        let agent = bind(client()).await;
        let peer = agent.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        peer.ready().await.unwrap();
        let load: Vec<_> = (0..4)
            .map(|w| {
                let peer = peer.clone();
                tokio::spawn(async move {
                    let (mut ok, mut denied) = (0u32, 0u32);
                    for i in 0..50 {
                        match peer.ask(task(&format!("{w}-{i}"))).await {
                            Ok(status) => {
                                assert_eq!(status.task_id, format!("{w}-{i}"));
                                ok += 1;
                            }
                            Err(e) if e.code() == ErrorCode::PolicyDenied => denied += 1,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                    (ok, denied)
                })
            })
            .collect();
        while calls.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Ping stays allowed, so the session is kept and the asks are denied one by one.
        server.set_policy(Policy::deny_all().rule(Rule::allow().intent_name("tacit.intents.v1.Ping")));
        let (mut ok, mut denied) = (0, 0);
        for worker in load {
            let (o, d) = worker.await.unwrap();
            ok += o;
            denied += d;
        }
        assert_eq!(ok + denied, 200);
        assert_eq!(ok, calls.load(Ordering::SeqCst), "every reply came from a handler run");
        assert_eq!(peer.ask(task("late")).await.unwrap_err().code(), ErrorCode::PolicyDenied);
        // Reloading again (an open policy) serves the same session.
        server.set_policy(Policy::allow_all());
        peer.ask(task("again")).await.unwrap();
    })
    .await;
}

// [policy.file]: bad files give typed errors naming the line or field.
#[test]
fn policy_file_errors() {
    match Policy::from_toml_str("default = \"deny\"\n[[rule]\n").unwrap_err() {
        PolicyError::Syntax { line, .. } => assert_eq!(line, 2),
        other => panic!("{other}"),
    }
    let field = |text: &str| match Policy::from_toml_str(text).unwrap_err() {
        PolicyError::Field { field, .. } => field,
        other => panic!("{other}"),
    };
    assert_eq!(field("[limits]\nrate = 1\n"), "default");
    assert_eq!(field("default = \"maybe\""), "default");
    assert_eq!(field("default = \"deny\"\ncolour = 1"), "colour");
    assert_eq!(
        field("default = \"deny\"\n[[rule]]\neffect = \"allow\"\n[[rule]]\neffect = \"allow\"\nlanes = [\"fax\"]"),
        "rule[1].lanes[0]"
    );
    assert_eq!(field("default = \"deny\"\n[[rule]]\neffect = \"allow\"\nagents = [\"nope\"]"), "rule[0].agents[0]");
    assert_eq!(field("default = \"deny\"\n[limits]\nquota = 3\nwindow = \"5d\""), "limits.window");
    assert_eq!(field("default = \"deny\"\n[limits]\nrate = -1"), "limits.rate");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    assert!(matches!(Policy::load(&path), Err(PolicyError::Io { .. })));
    std::fs::write(&path, "default = \"allow\"\n[limits]\nmax_in_flight = 4\n").unwrap();
    assert!(!Policy::load(&path).unwrap().is_open());
}

// [policy.stream-denied]: a denied stream lane is reset and stopped with
// POLICY_DENIED; its handler never runs.
#[tokio::test]
async fn denied_stream_is_stopped() {
    bounded(async {
        let opened = Arc::new(AtomicU32::new(0));
        let counter = opened.clone();
        let server = bind(Agent::builder().on_stream_with(
            move |_: Context, _: DelegateTask, _: tacit::StreamSender<TaskStatus>, _: tacit::StreamReceiver<()>| {
                counter.fetch_add(1, Ordering::SeqCst);
                async {}
            },
        ))
        .await;
        let agent = bind(client()).await;
        let peer = agent.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        peer.ready().await.unwrap();
        server.set_policy(Policy::allow_all().rule(Rule::deny().lane(Lane::Stream)));
        let outcome = match peer.stream_with::<_, (), TaskStatus>(task("s")).await {
            Ok((_sender, mut items)) => items.recv().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let error = outcome.unwrap_err();
        // The opener's direction is reset with the policy's code.
        assert_eq!(format!("{error:?}"), format!("Stream(Reset({}))", ErrorCode::PolicyDenied as u32));
        assert_eq!(opened.load(Ordering::SeqCst), 0);
        assert_eq!(server.metrics().errors_with(ErrorCode::PolicyDenied), 1);
    })
    .await;
}

/// Retries `ask` until it fails with `code` (or 10 s pass): a reload is
/// applied within a poll of the file.
async fn until_refused_with(peer: &tacit::Peer, code: ErrorCode) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if let Err(error) = peer.ask(task("poll")).await
            && error.code() == code
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

// [policy.reload], [policy.file]: an agent with a policy file reloads it
// when it changes, on live sessions, without dropping them; a changed file
// that does not parse leaves the policy in force; a bad file fails bind.
#[tokio::test]
async fn a_policy_file_is_reloaded_when_it_changes() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        let allow = "default = \"allow\"\n";
        let deny_task =
            "default = \"allow\"\n[[rule]]\neffect = \"deny\"\nintents = [\"tacit.intents.v1.DelegateTask\"]\n";
        std::fs::write(&path, allow).unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let server = bind(counting_server(calls.clone()).policy_file(&path)).await;
        let client = bind(client()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        peer.ask(task("before")).await.unwrap();

        std::fs::write(&path, deny_task).unwrap();
        assert!(until_refused_with(&peer, ErrorCode::PolicyDenied).await, "the changed file was not applied");
        let answered = calls.load(Ordering::SeqCst);

        // A broken file: the policy in force stays (two polls later, still denied).
        std::fs::write(&path, "default = \"perhaps\"\n").unwrap();
        tokio::time::sleep(tacit::POLICY_FILE_POLL * 2 + Duration::from_millis(200)).await;
        assert_eq!(peer.ask(task("still")).await.unwrap_err().code(), ErrorCode::PolicyDenied);
        assert!(server.reload_policy().is_err(), "reloading the broken file by hand fails too");

        std::fs::write(&path, allow).unwrap();
        assert!(server.reload_policy().unwrap(), "reloaded at once by hand");
        peer.ask(task("after")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), answered + 1);
        assert_eq!(server.metrics().sessions_ended, 0, "no session was dropped by the reloads");

        std::fs::write(&path, "default = 3\n").unwrap();
        let refused = counting_server(calls).policy_file(&path).bind(LOCALHOST).await;
        let Err(error) = refused else { panic!("a bad policy file must fail bind") };
        assert!(error.to_string().contains("default"), "{error}");
    })
    .await;
}

// [policy.reload]: a swap that leaves a live session's peer none of the
// agent's intents closes the session with POLICY_DENIED (the peer's next
// ask fails with that code, its re-dial being refused too); a peer still
// allowed something keeps its session.
#[tokio::test]
async fn a_policy_that_leaves_a_peer_nothing_closes_its_session() {
    bounded(async {
        let calls = Arc::new(AtomicU32::new(0));
        let server = bind(counting_server(calls)).await;
        let (kept, dropped) = (bind(client()).await, bind(client()).await);
        let addr = server.local_addr().unwrap();
        let kept_peer = kept.connect(addr, server.id()).await.unwrap();
        let dropped_peer = dropped.connect(addr, server.id()).await.unwrap();
        kept_peer.ask(task("a")).await.unwrap();
        dropped_peer.ask(task("b")).await.unwrap();
        server.set_policy(Policy::deny_all().rule(Rule::allow().agent(kept.id())));
        assert!(until_refused_with(&dropped_peer, ErrorCode::PolicyDenied).await, "the dropped peer was not told");
        kept_peer.ask(task("c")).await.unwrap();
        assert_eq!(kept_peer.state(), tacit::LinkState::Up { generation: 1 }, "the allowed peer kept its session");
    })
    .await;
}

// [policy.describe]: the standard DescribeAgent lists what the policy lets
// the caller use, as its handshake offer does: two callers with different
// rights see different descriptions, each matching its own offer.
#[tokio::test]
async fn describe_shows_what_the_policy_lets_the_caller_use() {
    use tacit::Intent as _;
    use tacit::intents::{AgentDescription, DescribeAgent, Ping};
    bounded(async {
        let (full, pinger) = (bind(client()).await, bind(client()).await);
        let server = bind(counting_server(Arc::new(AtomicU32::new(0)))).await;
        server.set_policy(
            Policy::deny_all()
                .rule(Rule::allow().intent(DescribeAgent::ID))
                .rule(Rule::allow().intent(Ping::ID))
                .rule(Rule::allow().agent(full.id()).intent(DelegateTask::ID).lane(Lane::Ask)),
        );
        let addr = server.local_addr().unwrap();
        let server_id = server.id();
        let described = |agent: Agent| async move {
            let peer = agent.connect(addr, server_id).await.unwrap();
            let negotiated = peer.ready().await.unwrap();
            let description: AgentDescription = peer.ask(DescribeAgent {}).await.unwrap();
            let handled: Vec<String> =
                description.intents.iter().filter(|i| i.handles).map(|i| i.name.clone()).collect();
            let offered: Vec<String> =
                negotiated.peer_offers.iter().filter(|o| o.handles).map(|o| o.name.clone()).collect();
            assert_eq!(handled, offered, "describe matches the handshake offer");
            (handled, negotiated)
        };
        let (for_full, negotiated) = described(full.clone()).await;
        assert!(for_full.contains(&DelegateTask::NAME.to_owned()), "{for_full:?}");
        let offer = negotiated.peer_offers.iter().find(|o| o.id == DelegateTask::ID).unwrap();
        assert_eq!(offer.lanes, tacit::Lanes::ASK, "only the allowed lane");
        let (for_pinger, _) = described(pinger.clone()).await;
        assert!(!for_pinger.contains(&DelegateTask::NAME.to_owned()), "{for_pinger:?}");
        assert!(for_pinger.contains(&Ping::NAME.to_owned()) && for_pinger.contains(&DescribeAgent::NAME.to_owned()));
        // Without a policy every caller sees every offer.
        server.set_policy(Policy::allow_all());
        let (open, _) = described(pinger).await;
        assert!(open.contains(&DelegateTask::NAME.to_owned()), "{open:?}");
    })
    .await;
}
