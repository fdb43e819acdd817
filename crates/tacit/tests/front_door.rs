//! What a new user meets first (trial findings 4–7 of issue 12): connecting
//! to nothing, asking without declaring, a stream to an agent that does not
//! stream, typed refusals, shared state, `?` in handlers, and every type of
//! the API nameable from `tacit`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tacit::intents::{DelegateTask, Ping, Pong, TaskState, TaskStatus, TaskUpdate};
use tacit::transport::{Negotiated, SessionError, StreamError};
use tacit::{
    Agent, AgentBuilder, Context, Error, ErrorCode, LinkState, LinkWatch, Peer, ReconnectPolicy, Rejection,
    StreamReceiver, StreamSender,
};
use tacit_testkit::LOCALHOST;

async fn bind(builder: AgentBuilder) -> Agent {
    builder.bind(LOCALHOST).await.unwrap()
}

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), test).await.expect("the test took over 30 s")
}

#[tokio::test]
async fn connecting_to_nothing_fails_within_the_timeout_and_names_the_address() {
    bounded(async {
        // A port where nothing listens.
        let nothing = std::net::UdpSocket::bind(LOCALHOST).unwrap();
        let addr = nothing.local_addr().unwrap();
        drop(nothing);
        let client = bind(Agent::builder().connect_timeout(Duration::from_millis(300))).await;
        let started = Instant::now();
        let error = client.connect(addr, None).await.unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert!(matches!(error, Error::Connect { addr: a, .. } if a == addr), "{error:?}");
        let text = error.to_string();
        assert!(text.contains(&addr.to_string()) && text.contains("300 ms"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn a_stream_to_an_agent_without_a_stream_handler_is_refused_by_name() {
    bounded(async {
        // DelegateTask is asked here, not streamed.
        let server = bind(Agent::builder().on_ask(|_: Context, t: DelegateTask| async move {
            Ok(TaskStatus { task_id: t.task_id, ..Default::default() })
        }))
        .await;
        let client = bind(Agent::builder().emits::<DelegateTask>()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        // The server offered DelegateTask on the ask lane only, so the
        // stream fails before anything is sent (PROTOCOL.md hs.lanes-send),
        // with the code a receiver would have reset it with.
        let error = peer.stream_with::<_, (), TaskUpdate>(DelegateTask::default()).await.map(|_| ()).unwrap_err();
        assert!(
            matches!(
                error,
                Error::WrongLane { intent: "tacit.intents.v1.DelegateTask", lane: tacit::Lane::Stream, .. }
            ),
            "{error:?}"
        );
        assert_eq!(error.code(), ErrorCode::IntentNotNegotiated);
    })
    .await;
}

/// The typed detail a seller refuses with.
fn out_of_stock(available: u64) -> TaskStatus {
    TaskStatus {
        task_id: "out-of-stock".into(),
        state: TaskState::Failed as i32,
        message: available.to_string(),
        ..Default::default()
    }
}

#[derive(Debug, Default)]
struct Stock {
    units: AtomicU64,
}

#[tokio::test]
async fn typed_refusals_shared_state_and_question_marks() {
    bounded(async {
        let server = bind(Agent::builder().state(Stock { units: AtomicU64::new(2) }).on_ask(
            |cx: Context, task: DelegateTask| async move {
                let stock = cx.state::<Stock>()?;
                // Any error converts into a rejection with `?`.
                let wanted: u64 = task.description.parse()?;
                let left = stock.units.load(Ordering::SeqCst);
                if wanted > left {
                    return Err(Rejection::decline(format!("{left} left")).with_detail(&out_of_stock(left)));
                }
                stock.units.fetch_sub(wanted, Ordering::SeqCst);
                Ok(TaskStatus { task_id: task.task_id, state: TaskState::Completed as i32, ..Default::default() })
            },
        ))
        .await;
        let client = bind(Agent::builder().emits::<DelegateTask>()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let ask = |n: &str| DelegateTask { task_id: "t".into(), description: n.into(), ..Default::default() };

        assert_eq!(peer.ask(ask("1")).await.unwrap().state, TaskState::Completed as i32);
        // Refused with a typed detail: the buyer matches on it, no text parsing.
        let refused = peer.ask(ask("5")).await.unwrap_err();
        assert_eq!(refused.code(), ErrorCode::Declined);
        let detail: TaskStatus = refused.detail().expect("a typed detail");
        assert_eq!((detail.task_id.as_str(), detail.message.as_str()), ("out-of-stock", "1"));
        assert!(refused.detail::<Pong>().is_none(), "a detail of another type is not that type");
        assert!(refused.to_string().contains("DECLINED"), "codes by name: {refused}");
        // `?` on a parse error: a FAILURE with HANDLER_FAILED and the error's text.
        let failed = peer.ask(ask("many")).await.unwrap_err();
        assert_eq!(failed.code(), ErrorCode::HandlerFailed);
        assert!(failed.rejection().is_some_and(|r| r.reason.contains("invalid digit")), "{failed}");
    })
    .await;
}

#[tokio::test]
async fn missing_state_is_a_failure_not_a_panic() {
    bounded(async {
        let server = bind(Agent::builder().on_ask(|cx: Context, _: Ping| async move {
            let stock = cx.state::<Stock>()?;
            Ok(Pong { nonce: stock.units.load(Ordering::SeqCst) })
        }))
        .await;
        let client = bind(Agent::builder()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let error = peer.ask(Ping { nonce: 1 }).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::HandlerFailed);
        assert!(error.to_string().contains("no state of type"), "{error}");
    })
    .await;
}

#[tokio::test]
async fn a_normal_close_is_a_close_not_a_refusal() {
    bounded(async {
        let server = bind(Agent::builder()).await;
        let client = bind(Agent::builder()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        peer.ask(Ping { nonce: 1 }).await.unwrap();
        peer.close();
        assert_eq!(peer.state(), LinkState::Closed);
        let error = peer.ask(Ping { nonce: 2 }).await.unwrap_err();
        assert!(matches!(error, Error::Closed { by_peer: false, .. }), "{error:?}");
        assert_eq!(error.code(), ErrorCode::Closed);
    })
    .await;
}

/// Every type in the signatures a user meets is nameable from `tacit`
/// (this compiles only if they are).
#[allow(dead_code)]
fn the_api_is_nameable_from_tacit(peer: &Peer, error: &Error) {
    let _: Option<LinkWatch> = peer.watch();
    let _: LinkState = peer.state();
    let _: tacit::transport::Session = peer.session();
    let _: ReconnectPolicy = ReconnectPolicy::default();
    let _ = |_: &SessionError, _: &StreamError, _: &tacit::IdentityError, _: &tacit::transport::Refusal| ();
    let _ = |_: std::sync::Arc<Negotiated>, _: tacit::KeyFileStatus, _: tacit::TraceContext| ();
    let _ = |_: StreamSender<Pong>, _: StreamReceiver<Ping>, _: tacit::Bid<Pong>| ();
    let _: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
}
