//! The receiver-side policy under load (issue 14, "Bad input"; docs/PROTOCOL.md,
//! "Policy"): reloading the policy while asks are pipelined loses no
//! acknowledged reply. (The flood test, which measures latency and so must not
//! share the machine with these, is in `policy_flood.rs`.)
//!
//! Everything talks over 127.0.0.1 and every test is bounded in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tacit::intents::{DelegateTask, GetTask, TaskState, TaskStatus};
use tacit::policy::Rule;
use tacit::{Agent, AgentBuilder, AskOptions, Context, Error, ErrorCode, Intent as _, Lane, LinkState, Policy};
use tacit_testkit::LOCALHOST;
use tokio::task::JoinSet;

fn task(id: impl Into<String>) -> DelegateTask {
    DelegateTask { task_id: id.into(), ..Default::default() }
}

fn get(id: impl Into<String>) -> GetTask {
    GetTask { task_id: id.into() }
}

fn client() -> AgentBuilder {
    Agent::builder().emits::<DelegateTask>().emits::<GetTask>()
}

// Reload under load.

/// The two intents of the reload tests: `DelegateTask` (always allowed) and
/// `GetTask` (allowed or denied by turns), both answered with a
/// `TaskStatus` that names the ask (`Completed` for the first, `Working` for
/// the second). Every other ask of each waits once (a yield) before its
/// reply, so answers come both from the session's task and from tasks of
/// their own (which hold the admission until they answer).
fn reload_server(delegated: Arc<AtomicU32>, polled: Arc<AtomicU32>) -> AgentBuilder {
    async fn answer(id: String, state: TaskState) -> Result<TaskStatus, tacit::Rejection> {
        if id.ends_with(['1', '3', '5', '7', '9']) {
            tokio::task::yield_now().await;
        }
        Ok(TaskStatus { task_id: id, state: state as i32, ..Default::default() })
    }
    Agent::builder()
        .on_ask(move |_: Context, t: DelegateTask| {
            delegated.fetch_add(1, Ordering::SeqCst);
            answer(t.task_id, TaskState::Completed)
        })
        .on_ask(move |_: Context, t: GetTask| {
            polled.fetch_add(1, Ordering::SeqCst);
            answer(t.task_id, TaskState::Working)
        })
}

/// Both intents allowed (on the ask lane), everything else denied.
fn both_allowed() -> Policy {
    Policy::deny_all()
        .rule(Rule::allow().intent(DelegateTask::ID).lane(Lane::Ask))
        .rule(Rule::allow().intent_name(GetTask::NAME).lane(Lane::Ask))
}

/// Only `DelegateTask` allowed.
fn first_only() -> Policy {
    Policy::deny_all().rule(Rule::allow().intent(DelegateTask::ID).lane(Lane::Ask))
}

/// What one pipelined ask ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The right reply.
    Replied,
    /// Refused with POLICY_DENIED.
    Denied,
}

/// One ask of the load: which intent, when it was sent and answered.
#[derive(Debug)]
struct Asked {
    second: bool,
    sent: Instant,
    done: Instant,
    outcome: Outcome,
}

/// Deadline of each ask of the load; an ask that outlives it by a second
/// more is a hang.
const ASK_DEADLINE: Duration = Duration::from_secs(3);

/// One ask of the load, checked: a `DelegateTask` must get its own reply; a
/// `GetTask` its own reply or POLICY_DENIED; anything else (a deadline, a
/// lost session, a wrong reply) fails the test.
async fn checked_ask(peer: &tacit::Peer, second: bool, id: String) -> Asked {
    let options = AskOptions::default().deadline(ASK_DEADLINE);
    let sent = Instant::now();
    let ask = async {
        if second {
            peer.ask_with(get(id.clone()), options).await
        } else {
            peer.ask_with(task(id.clone()), options).await
        }
    };
    let reply = tokio::time::timeout(ASK_DEADLINE + Duration::from_secs(1), ask)
        .await
        .unwrap_or_else(|_| panic!("ask {id} hung past its deadline"));
    let done = Instant::now();
    let outcome = match reply {
        Ok(reply) => {
            let state = if second { TaskState::Working } else { TaskState::Completed };
            assert_eq!((reply.message.task_id.as_str(), reply.message.state), (id.as_str(), state as i32));
            Outcome::Replied
        }
        Err(e @ Error::Rejected { .. }) if second && e.code() == ErrorCode::PolicyDenied => Outcome::Denied,
        Err(e) => panic!("ask {id} (second intent: {second}) failed: {e} ({:?})", e.code()),
    };
    Asked { second, sent, done, outcome }
}

/// Pipelines asks on `peer` from `in_flight` tasks until `stop` is set,
/// alternating the two intents; returns every ask's record.
async fn pipelined_load(peer: &tacit::Peer, in_flight: usize, stop: Arc<AtomicBool>) -> Vec<Asked> {
    let mut askers = JoinSet::new();
    for worker in 0..in_flight {
        let (peer, stop) = (peer.clone(), stop.clone());
        askers.spawn(async move {
            let mut asked = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                asked.push(checked_ask(&peer, (worker + i) % 2 == 1, format!("{worker}-{i}")).await);
                i += 1;
            }
            asked
        });
    }
    let mut all = Vec::new();
    while let Some(asked) = askers.join_next().await {
        all.extend(asked.expect("an asking task"));
    }
    all
}

/// The link is still on its first session, and the server accepted one
/// session and ended none.
fn assert_no_session_dropped(peer: &tacit::Peer, server: &Agent, client: &Agent) {
    assert_eq!(peer.state(), LinkState::Up { generation: 1 }, "the client's link never reconnected");
    let (server_metrics, client_metrics) = (server.metrics(), client.metrics());
    assert_eq!((server_metrics.sessions_accepted, server_metrics.sessions_ended), (1, 0));
    assert_eq!(client_metrics.reconnects, 0);
}

// [policy.reload]: `Agent::set_policy` called over and over while 64 asks are
// in flight, the policies allowing and denying the second intent by turns
// (the first always allowed): every ask of the first intent gets its own
// reply, every ask of the second its reply or POLICY_DENIED, none outlives
// its deadline, the session stays up, and the handlers ran exactly once per
// reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_pipelined_load_loses_no_reply() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (delegated, polled) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        // Both intents are negotiated: the reloads then decide per message.
        let server = reload_server(delegated.clone(), polled.clone()).policy(both_allowed()).bind(LOCALHOST).await;
        let server = server.unwrap();
        let client = client().bind(LOCALHOST).await.unwrap();
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        peer.ready().await.unwrap();
        assert!(peer.can_send::<DelegateTask>() && peer.can_send::<GetTask>());

        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn({
            let (peer, stop) = (peer.clone(), stop.clone());
            async move { pipelined_load(&peer, 64, stop).await }
        });
        // Reload as fast as the other worker lets us for ~1 s, by turns.
        let until = Instant::now() + Duration::from_secs(1);
        let mut reloads = 0u32;
        while Instant::now() < until {
            server.set_policy(if reloads.is_multiple_of(2) { first_only() } else { both_allowed() });
            reloads += 1;
            if reloads.is_multiple_of(16) {
                tokio::task::yield_now().await;
            }
        }
        stop.store(true, Ordering::SeqCst);
        let asked = load.await.expect("the load ends");

        let count = |second: bool, outcome: Outcome| {
            asked.iter().filter(|a| a.second == second && a.outcome == outcome).count() as u32
        };
        let (first, second_ok, second_denied) =
            (count(false, Outcome::Replied), count(true, Outcome::Replied), count(true, Outcome::Denied));
        println!(
            "{reloads} reloads, {} asks: first intent {first} replied, second {second_ok} replied and \
             {second_denied} denied",
            asked.len()
        );
        assert!(reloads > 100, "the policy was reloaded often: {reloads}");
        assert!(first > 200, "asks of the first intent were answered throughout: {first}");
        assert!(second_ok > 0 && second_denied > 0, "the reloads took effect: {second_ok} / {second_denied}");
        assert_eq!(delegated.load(Ordering::SeqCst), first, "one handler run per reply of the first intent");
        assert_eq!(polled.load(Ordering::SeqCst), second_ok, "a denied ask never ran its handler");
        assert!(asked.iter().all(|a| a.done - a.sent < ASK_DEADLINE));
        assert_eq!(server.metrics().errors_with(ErrorCode::PolicyDenied), u64::from(second_denied));
        assert_no_session_dropped(&peer, &server, &client);
        // The same session is served after the reloads, under either policy.
        server.set_policy(both_allowed());
        let _: TaskStatus = peer.ask(get("after")).await.unwrap();
        let _: TaskStatus = peer.ask(task("after")).await.unwrap();
    })
    .await
    .expect("the test took over 20 s");
}

// [policy.reload]: a reload that shrinks rights, under pipelined load: asks
// of the second intent answered before `set_policy` was called got their
// replies; asks sent after it returned are refused with POLICY_DENIED (those
// in flight across the reload get either); the first intent is served
// throughout, on the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_that_shrinks_rights_denies_later_asks() {
    tokio::time::timeout(Duration::from_secs(20), async {
        let (delegated, polled) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let server = reload_server(delegated.clone(), polled.clone()).policy(both_allowed()).bind(LOCALHOST).await;
        let server = server.unwrap();
        let client = client().bind(LOCALHOST).await.unwrap();
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        peer.ready().await.unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn({
            let (peer, stop) = (peer.clone(), stop.clone());
            async move { pipelined_load(&peer, 64, stop).await }
        });
        while polled.load(Ordering::SeqCst) < 500 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let before = Instant::now();
        server.set_policy(first_only());
        let after = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
        let asked = load.await.expect("the load ends");

        let second = || asked.iter().filter(|a| a.second);
        let answered_before: Vec<_> = second().filter(|a| a.done < before).collect();
        let sent_after: Vec<_> = second().filter(|a| a.sent > after).collect();
        println!(
            "second intent: {} answered before the reload, {} sent after it, {} across it",
            answered_before.len(),
            sent_after.len(),
            second().count() - answered_before.len() - sent_after.len()
        );
        assert!(answered_before.len() >= 200 && sent_after.len() >= 100, "load on both sides of the reload");
        assert!(answered_before.iter().all(|a| a.outcome == Outcome::Replied), "answered before the reload");
        assert!(sent_after.iter().all(|a| a.outcome == Outcome::Denied), "denied after the reload");
        let first_after = asked.iter().filter(|a| !a.second && a.sent > after).count();
        assert!(first_after >= 100, "the first intent is served after the reload: {first_after}");
        let replied =
            |second: bool| asked.iter().filter(|a| a.second == second && a.outcome == Outcome::Replied).count() as u32;
        assert_eq!(delegated.load(Ordering::SeqCst), replied(false));
        assert_eq!(polled.load(Ordering::SeqCst), replied(true), "a denied ask never ran its handler");
        assert_no_session_dropped(&peer, &server, &client);
        assert_eq!(peer.ask(get("late")).await.unwrap_err().code(), ErrorCode::PolicyDenied);
    })
    .await
    .expect("the test took over 20 s");
}
