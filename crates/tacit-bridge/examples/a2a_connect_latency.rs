//! What `tacit a2a connect` adds to a call: an A2A server built with the A2A
//! SDK's server crate on 127.0.0.1 answers a trivial skill; the same
//! `SendMessage` is timed through the SDK's client directly
//! (`A2aRemote::perform`) and as a Tacit ask of `TextTask` through the
//! bridge, interleaved, in one run.
//!
//! ```text
//! cargo run --release -p tacit-bridge --features a2a --example a2a_connect_latency -- [N]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use a2a::event::StreamResponse;
use a2a::{A2AError, AgentCard, Message, Part, Role, Task, TaskState, TaskStatus};
use a2a_server::{AgentExecutor, DefaultRequestHandler, ExecutorContext, InMemoryTaskStore, StaticAgentCard};
use futures::stream::{self, BoxStream};
use serde_json::json;
use tacit::Agent;
use tacit::intents::TextTask;
use tacit_bridge::a2a::{A2aRemote, ConnectOptions};

struct Echo;

impl AgentExecutor for Echo {
    fn execute(&self, ctx: ExecutorContext) -> BoxStream<'static, Result<StreamResponse, A2AError>> {
        let text = ctx.message.as_ref().and_then(|m| m.text()).unwrap_or("").to_owned();
        let task = Task {
            id: ctx.task_id.clone(),
            context_id: ctx.context_id.clone(),
            status: TaskStatus {
                state: TaskState::Completed,
                message: Some(Message::new(Role::Agent, vec![Part::text(text)])),
                timestamp: None,
            },
            artifacts: None,
            history: None,
            metadata: None,
        };
        Box::pin(stream::once(async move { Ok(StreamResponse::Task(task)) }))
    }

    fn cancel(&self, _ctx: ExecutorContext) -> BoxStream<'static, Result<StreamResponse, A2AError>> {
        Box::pin(stream::once(async { Err(A2AError::unsupported_operation("no")) }))
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let card: AgentCard = serde_json::from_value(json!({
        "name": "echo", "description": "echo", "version": "1",
        "supportedInterfaces": [{ "url": format!("http://{addr}/"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0" }],
        "capabilities": {}, "skills": [{ "id": "echo", "name": "echo", "description": "echo", "tags": [] }],
    }))?;
    let handler = Arc::new(DefaultRequestHandler::new(Echo, InMemoryTaskStore::new()));
    let router = a2a_server::jsonrpc::jsonrpc_router(handler)
        .merge(a2a_server::agent_card::agent_card_router(Arc::new(StaticAgentCard::new(card))));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let url = format!("http://{addr}");

    let direct = A2aRemote::connect(&url, &ConnectOptions::default()).await?;
    let bridged = A2aRemote::connect(&url, &ConnectOptions::default()).await?;
    let bridge = bridged.install(Agent::builder()).bind("127.0.0.1:0".parse()?).await?;
    let client = Agent::builder().emits::<TextTask>().bind("127.0.0.1:0".parse()?).await?;
    let peer = client.connect(bridge.local_addr()?, bridge.id()).await?;
    let task = || TextTask { skill: "echo".into(), text: "hello".into(), ..TextTask::default() };

    let (mut sdk, mut tacit) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + n / 10 {
        let started = Instant::now();
        direct.perform(task(), Duration::from_secs(5)).await.map_err(|r| r.reason)?;
        let a = started.elapsed();
        let started = Instant::now();
        peer.ask(task()).await?;
        let b = started.elapsed();
        if i >= n / 10 {
            sdk.push(a);
            tacit.push(b);
        }
    }
    for (name, samples) in [("A2A SDK client, direct", &mut sdk), ("Tacit ask via the bridge", &mut tacit)] {
        let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
        println!("{name:<26} n={n} p50={:>4} µs p99={:>5} µs", p50.as_micros(), p99.as_micros());
    }
    bridge.shutdown(Duration::from_millis(100)).await;
    Ok(())
}
