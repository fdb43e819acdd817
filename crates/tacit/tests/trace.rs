//! Trace context end to end, with OpenTelemetry (`--features opentelemetry`):
//! a client's ask, the server's handler, and the tell that handler sends back
//! are three spans of one trace, each the child of the one before, across
//! two agents on loopback (an in-memory span exporter records them).

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tacit::intents::{DelegateTask, TaskState, TaskStatus, TaskUpdate};
use tacit::{Agent, AgentBuilder, Context, Intent, TraceContext};
use tokio::sync::mpsc;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// The exporter behind the process's one subscriber, and its provider.
fn exporter() -> &'static (InMemorySpanExporter, SdkTracerProvider) {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber = tracing_subscriber::registry().with(tacit::trace::layer(&provider));
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        (exporter, provider)
    })
}

async fn bind(builder: AgentBuilder) -> Agent {
    builder.bind("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

/// The finished spans once `done` holds for them (at most 10 s).
async fn finished_spans(done: impl Fn(&[SpanData]) -> bool) -> Vec<SpanData> {
    let (exporter, provider) = exporter();
    for _ in 0..1000 {
        provider.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();
        if done(&spans) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("spans missing: {:#?}", exporter.get_finished_spans().unwrap());
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Option<&'a SpanData> {
    spans.iter().find(|span| span.name == name)
}

#[tokio::test]
async fn one_trace_across_ask_handler_and_tell_back() {
    exporter();
    tokio::time::timeout(Duration::from_secs(30), async {
        // The server answers a task and, from its handler, tells the asker
        // an update in the same conversation.
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Option<TraceContext>>();
        let server = bind(Agent::builder().emits::<TaskUpdate>().on_ask(move |cx: Context, task: DelegateTask| {
            let seen = seen_tx.clone();
            async move {
                seen.send(cx.trace()).unwrap();
                let working = TaskStatus {
                    task_id: task.task_id.clone(),
                    state: TaskState::Working as i32,
                    ..Default::default()
                };
                cx.conversation().tell(TaskUpdate { status: Some(working) }).await.unwrap();
                Ok(TaskStatus { task_id: task.task_id, state: TaskState::Completed as i32, ..Default::default() })
            }
        }))
        .await;
        let (update_tx, mut update_rx) = mpsc::unbounded_channel::<Option<TraceContext>>();
        let client = bind(Agent::builder().emits::<DelegateTask>().on_tell(move |cx: Context, _: TaskUpdate| {
            let updates = update_tx.clone();
            async move { updates.send(cx.trace()).unwrap() }
        }))
        .await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();

        // The caller's span: everything below joins its trace.
        let caller = tracing::info_span!("caller");
        let sent = caller.in_scope(tacit::trace::current).expect("an OpenTelemetry span has a trace context");
        let conversation = peer.conversation();
        let done = conversation
            .ask(DelegateTask { task_id: "t1".into(), ..Default::default() })
            .instrument(caller.clone())
            .await
            .unwrap();
        assert_eq!(done.state, TaskState::Completed as i32);
        drop(caller);

        // What the handlers saw: the server the caller's span, the client
        // (told back) the server handler's span, in the same trace.
        let at_server = seen_rx.recv().await.unwrap().expect("the ask carried a trace context");
        assert_eq!(at_server, sent);
        let at_client = update_rx.recv().await.unwrap().expect("the tell back carried a trace context");
        assert_eq!(at_client.trace_id, sent.trace_id);

        let spans = finished_spans(|spans| {
            named(spans, "caller").is_some()
                && named(spans, DelegateTask::NAME).is_some()
                && named(spans, TaskUpdate::NAME).is_some()
        })
        .await;
        let caller = named(&spans, "caller").unwrap();
        let handler = named(&spans, DelegateTask::NAME).unwrap();
        let told = named(&spans, TaskUpdate::NAME).unwrap();

        // One trace id on both sides.
        let trace_id = TraceId::from_bytes(sent.trace_id);
        assert_eq!(caller.span_context.trace_id(), trace_id);
        assert_eq!(handler.span_context.trace_id(), trace_id);
        assert_eq!(told.span_context.trace_id(), trace_id);
        // The server's handler span is a child of the caller's span (remote).
        assert_eq!(caller.span_context.span_id(), SpanId::from_bytes(sent.span_id));
        assert_eq!(handler.parent_span_id, caller.span_context.span_id());
        assert!(handler.parent_span_is_remote);
        // The client's handler of the tell back is a child of the server's.
        assert_eq!(told.parent_span_id, handler.span_context.span_id());
        assert_eq!(at_client.span_id, handler.span_context.span_id().to_bytes());
        assert!(told.parent_span_is_remote);
        // The handler span names what it handles.
        let attribute = |span: &SpanData, key: &str| {
            span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
        };
        assert_eq!(attribute(handler, "intent").as_deref(), Some(DelegateTask::NAME));
        assert_eq!(attribute(handler, "conversation").as_deref(), Some(conversation.id().as_str()));
        assert_eq!(attribute(handler, "peer"), Some(client.id().to_string()));
        let hex: String = sent.trace_id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(attribute(handler, "trace_id"), Some(hex));
    })
    .await
    .expect("the test took over 30 s");
}
