//! The trace context survives the wire, with or without OpenTelemetry: what
//! an ask or tell is given explicitly is what the handler's
//! `Context::trace` shows, and a message sent outside any span carries none.

use std::time::Duration;

use tacit::intents::{DelegateTask, TaskState, TaskStatus, TaskUpdate};
use tacit::{Agent, AgentBuilder, AskOptions, Context, TellOptions, TraceContext};
use tokio::sync::mpsc;

async fn bind(builder: AgentBuilder) -> Agent {
    builder.bind("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn explicit_trace_context_reaches_the_handler() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(&str, Option<TraceContext>)>();
        let on_ask = seen_tx.clone();
        let server = bind(
            Agent::builder()
                .on_ask(move |cx: Context, task: DelegateTask| {
                    on_ask.send(("ask", cx.trace())).unwrap();
                    async move {
                        Ok(TaskStatus {
                            task_id: task.task_id,
                            state: TaskState::Completed as i32,
                            ..Default::default()
                        })
                    }
                })
                .on_tell(move |cx: Context, _: TaskUpdate| {
                    seen_tx.send(("tell", cx.trace())).unwrap();
                    async {}
                }),
        )
        .await;
        let client = bind(Agent::builder().emits::<DelegateTask>().emits::<TaskUpdate>()).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();

        let asked = TraceContext { trace_id: [0xab; 16], span_id: [0x01; 8], flags: 1 };
        let task = DelegateTask { task_id: "t".into(), ..Default::default() };
        peer.ask_with(task.clone(), AskOptions::default().trace(asked)).await.unwrap();
        assert_eq!(seen_rx.recv().await.unwrap(), ("ask", Some(asked)));

        let told = TraceContext { trace_id: [0xcd; 16], span_id: [0x02; 8], flags: 0 };
        peer.tell_with(TaskUpdate::default(), TellOptions::default().trace(told)).await.unwrap();
        assert_eq!(seen_rx.recv().await.unwrap(), ("tell", Some(told)));

        // Outside any span: nothing to carry.
        peer.ask(task).await.unwrap();
        assert_eq!(seen_rx.recv().await.unwrap(), ("ask", None));
        peer.tell(TaskUpdate::default()).await.unwrap();
        assert_eq!(seen_rx.recv().await.unwrap(), ("tell", None));
    })
    .await
    .expect("the test took over 30 s");
}
