//! What `tacit a2a serve` adds to a call (issue 15): in one process on
//! 127.0.0.1, a Tacit agent answering `DelegateTask` with `TaskStatus`
//! behind a [`Gateway`], and a plain A2A server built with the same SDK
//! (`a2a-server-lf`) whose executor does the same work on the same message
//! (the data part through `json::from_value`, the same handler, the reply
//! through `json::to_value`, the same three events: a working task, the
//! `reply` artifact, a completed status). The only difference is the Tacit
//! hop. Both are called with the SDK's client (`a2a-client-lf`, JSON-RPC):
//! `SendMessage` latency interleaved in rounds (gateway, plain, and the
//! plain Tacit ask of the same intent), then throughput with 64 concurrent
//! senders, all on one current-thread runtime (pin it to one core). Last,
//! the cost of one part of the gateway's work alone: `Schema::related`, by
//! which it finds each reply's schema. Figures: BENCHMARKS.md, "Bridge: A2A
//! gateway SendMessage".
//!
//! ```text
//! taskset -c 0 cargo run --release -p tacit-bridge --features a2a-server --example a2a_serve_latency -- [N]
//! ```

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use a2a::event::{StreamResponse, TaskArtifactUpdateEvent, TaskStatusUpdateEvent};
use a2a::{
    A2AError, AgentCard, Artifact, Message, Part, PartContent, Role, SendMessageRequest, SendMessageResponse, Task,
    TaskState,
};
use a2a_client::agent_card::AgentCardResolver;
use a2a_client::{A2AClient, A2AClientFactory, Transport};
use a2a_server::{AgentExecutor, DefaultRequestHandler, ExecutorContext, InMemoryTaskStore, StaticAgentCard};
use futures::stream::{self, BoxStream};
use prost::Message as _;
use serde_json::{Value, json};
use tacit::intents::{DelegateTask, TaskStatus};
use tacit::{Agent, AgentCard as TacitCard, Context, Intent as _, Rejection, Schema};
use tacit_bridge::a2a_server::Gateway;
use tacit_bridge::http::HttpOptions;
use tacit_bridge::json;

type BoxError = Box<dyn Error + Send + Sync>;
type Client = A2AClient<Box<dyn Transport>>;

/// The gateway's skill id of the agent's `DelegateTask` (`<card name>_<Message>`).
const SKILL: &str = "worker_DelegateTask";
/// Concurrent senders in the throughput runs.
const SENDERS: usize = 64;
/// How long each throughput round sends.
const ROUND: Duration = Duration::from_millis(1500);
/// Throughput rounds per server (interleaved).
const ROUNDS: usize = 2;
/// Calls of `Schema::related` timed.
const RELATED: u32 = 20;
/// The longest one call may take before the run fails.
const CALL_LIMIT: Duration = Duration::from_secs(10);

/// Asks the Tacit agent's handler has answered (checks the throughput counts).
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// The work both servers do: copy the task's id and description, set a number.
fn work(task: DelegateTask) -> TaskStatus {
    TaskStatus { task_id: task.task_id, message: task.description, updated_at_micros: 1 << 60, ..TaskStatus::default() }
}

/// A plain A2A agent with the SDK's server crate doing the gateway's and the
/// agent's work in one place.
struct Plain {
    request: Schema,
    reply: Schema,
}

impl Plain {
    /// The reply to a message, as JSON: what the gateway sends the agent and
    /// makes of its answer, without the hop (JSON → message → protobuf →
    /// `DelegateTask` → the handler → protobuf → message → JSON).
    fn answer(&self, message: &Message) -> Result<Value, A2AError> {
        let call = message.parts.iter().find_map(|part| match &part.content {
            PartContent::Data(Value::Object(object)) if object.contains_key("intent") => Some(object),
            _ => None,
        });
        let Some(call) = call else {
            return Err(A2AError::invalid_params("no data part {\"intent\": ..., \"message\": {...}}"));
        };
        if call.get("intent").and_then(Value::as_str) != Some(SKILL) {
            return Err(A2AError::invalid_params(format!("the only skill is {SKILL}")));
        }
        let arguments = call.get("message").cloned().unwrap_or_else(|| json!({}));
        let request = json::from_value(self.request.message_descriptor(), &arguments)
            .map_err(|e| A2AError::invalid_params(e.message))?
            .encode_to_vec();
        let task = DelegateTask::decode(request.as_slice()).map_err(|e| A2AError::invalid_params(e.to_string()))?;
        let reply = self.reply.decode(&work(task).encode_to_vec()).map_err(|e| A2AError::internal(e.to_string()))?;
        Ok(json::to_value(&reply))
    }
}

impl AgentExecutor for Plain {
    fn execute(&self, ctx: ExecutorContext) -> BoxStream<'static, Result<StreamResponse, A2AError>> {
        let message = ctx.message.clone().unwrap_or_else(|| Message::new(Role::User, vec![]));
        let reply = match self.answer(&message) {
            Ok(reply) => reply,
            Err(error) => return Box::pin(stream::once(async move { Err(error) })),
        };
        let (task_id, context_id) = ctx.task_info();
        let working = Task {
            id: task_id.clone(),
            context_id: context_id.clone(),
            status: a2a::TaskStatus { state: TaskState::Working, message: None, timestamp: None },
            artifacts: None,
            history: Some(vec![message]),
            metadata: None,
        };
        let artifact = TaskArtifactUpdateEvent {
            task_id: task_id.clone(),
            context_id: context_id.clone(),
            artifact: Artifact {
                artifact_id: "reply".into(),
                name: Some(self.reply.name().to_owned()),
                description: None,
                parts: vec![Part::data(reply)],
                metadata: None,
                extensions: None,
            },
            append: Some(false),
            last_chunk: None,
            metadata: None,
        };
        let completed = TaskStatusUpdateEvent {
            task_id,
            context_id,
            status: a2a::TaskStatus { state: TaskState::Completed, message: None, timestamp: None },
            metadata: None,
        };
        Box::pin(stream::iter([
            Ok(StreamResponse::Task(working)),
            Ok(StreamResponse::ArtifactUpdate(artifact)),
            Ok(StreamResponse::StatusUpdate(completed)),
        ]))
    }

    fn cancel(&self, _ctx: ExecutorContext) -> BoxStream<'static, Result<StreamResponse, A2AError>> {
        Box::pin(stream::once(async { Err(A2AError::unsupported_operation("nothing to cancel")) }))
    }
}

/// The SDK's client for the card at `url`, on the JSON-RPC binding.
async fn client(url: &str) -> Result<Client, BoxError> {
    let card = AgentCardResolver::new(None).resolve(url).await?;
    Ok(A2AClientFactory::builder().preferred_bindings(vec!["JSONRPC".into()]).build().create_from_card(&card).await?)
}

fn request(n: u64) -> SendMessageRequest {
    let call = json!({ "intent": SKILL, "message": { "taskId": format!("t{n}"), "description": "bake a loaf" } });
    SendMessageRequest {
        message: Message::new(Role::User, vec![Part::data(call)]),
        configuration: None,
        metadata: None,
        tenant: None,
    }
}

/// The reply artifact of a completed task, or why there is none.
fn reply(response: Result<SendMessageResponse, A2AError>) -> Result<Value, String> {
    let task = match response {
        Ok(SendMessageResponse::Task(task)) => task,
        Ok(other) => return Err(format!("not a task: {other:?}")),
        Err(error) => return Err(format!("{error:?}")),
    };
    if task.status.state != TaskState::Completed {
        return Err(format!("task not completed: {task:?}"));
    }
    let artifact = task.artifacts.iter().flatten().find(|a| a.artifact_id == "reply");
    match artifact.map(|a| a.parts.as_slice()) {
        Some([part]) => match &part.content {
            PartContent::Data(data) => Ok(data.clone()),
            other => Err(format!("the reply is not data: {other:?}")),
        },
        other => Err(format!("no single-part reply artifact: {other:?}")),
    }
}

async fn send(client: &Client, n: u64) -> Result<Value, String> {
    let request = request(n);
    match tokio::time::timeout(CALL_LIMIT, client.send_message(&request)).await {
        Ok(response) => reply(response),
        Err(_) => Err(format!("no answer within {CALL_LIMIT:?}")),
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// Requests a second with [`SENDERS`] concurrent senders calling `call` for
/// [`ROUND`]; `reaches_agent` if each call is one ask the agent's handler answers.
async fn throughput<F, Fut>(reaches_agent: bool, call: F) -> Result<f64, BoxError>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let handled = HANDLED.load(Ordering::Relaxed);
    let started = Instant::now();
    let end = started + ROUND;
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (call, done) = (call.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = (sender as u64) << 32;
                while Instant::now() < end {
                    call(i).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for sender in senders {
        sender.await??;
    }
    let elapsed = started.elapsed();
    let (done, handled) = (done.load(Ordering::Relaxed), HANDLED.load(Ordering::Relaxed) - handled);
    if handled != if reaches_agent { done } else { 0 } {
        return Err(format!("{done} calls answered, {handled} asks handled by the agent").into());
    }
    Ok(done as f64 / elapsed.as_secs_f64())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(2000);
    // The workspace's reqwest has no crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();

    // The Tacit agent and the gateway in front of it.
    let agent = Agent::builder()
        .card(TacitCard::new("worker"))
        .on_ask(|_: Context, task: DelegateTask| async move {
            HANDLED.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Rejection>(work(task))
        })
        .bind("127.0.0.1:0".parse()?)
        .await?;
    let gateway = Gateway::builder().peer(format!("{}={}", agent.local_addr()?, agent.id()).parse()?).start().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway_url = format!("http://{}", listener.local_addr()?);
    // No rate limit, and room for every sender's connection and the card's.
    let options = HttpOptions::default().rate(None).max_connections_per_client(2 * SENDERS);
    tokio::spawn(gateway.serve(listener, options));

    // The plain A2A server: the SDK's handler, task store and routers, served by axum.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let plain_url = format!("http://{}", listener.local_addr()?);
    let card: AgentCard = serde_json::from_value(json!({
        "name": "plain", "description": "DelegateTask without Tacit", "version": "1",
        "supportedInterfaces": [{ "url": format!("{plain_url}/"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0" }],
        "capabilities": {}, "skills": [{ "id": SKILL, "name": "DelegateTask", "description": "DelegateTask", "tags": [] }],
    }))?;
    let plain = Plain { request: Schema::of::<DelegateTask>()?, reply: Schema::of::<TaskStatus>()? };
    let handler = Arc::new(DefaultRequestHandler::new(plain, InMemoryTaskStore::new()));
    let router = a2a_server::jsonrpc::jsonrpc_router(handler)
        .merge(a2a_server::agent_card::agent_card_router(Arc::new(StaticAgentCard::new(card))));
    tokio::spawn(async move { axum::serve(listener, router).await });

    // The plain Tacit ask of the same intent.
    let asker = Agent::builder().emits::<DelegateTask>().bind("127.0.0.1:0".parse()?).await?;
    let peer = asker.connect(agent.local_addr()?, agent.id()).await?;
    let task =
        |n: u64| DelegateTask { task_id: format!("t{n}"), description: "bake a loaf".into(), ..Default::default() };

    let (via_gateway, direct) = (Arc::new(client(&gateway_url).await?), Arc::new(client(&plain_url).await?));
    // Both answer the same thing (and the gateway's card has the skill).
    let (a, b) = (send(&via_gateway, 0).await?, send(&direct, 0).await?);
    if a != b || a["taskId"] != "t0" || a["updatedAtMicros"] != "1152921504606846976" {
        return Err(format!("the servers disagree: gateway {a}, plain {b}").into());
    }

    // Latency: rounds of gateway, plain, Tacit; the first tenth warms up.
    let warm = n / 10;
    let (mut gw, mut pl, mut tc) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..(warm + n) as u64 {
        let started = Instant::now();
        send(&via_gateway, i).await?;
        let a = started.elapsed();
        let started = Instant::now();
        send(&direct, i).await?;
        let b = started.elapsed();
        let started = Instant::now();
        let status = peer.ask(task(i)).await?;
        let c = started.elapsed();
        if status.updated_at_micros != 1 << 60 {
            return Err(format!("the Tacit reply is wrong: {status:?}").into());
        }
        if i >= warm as u64 {
            gw.push(a);
            pl.push(b);
            tc.push(c);
        }
    }
    let (gw50, gw99) = (percentile(&mut gw, 0.5), percentile(&mut gw, 0.99));
    let (pl50, pl99) = (percentile(&mut pl, 0.5), percentile(&mut pl, 0.99));
    let (tc50, tc99) = (percentile(&mut tc, 0.5), percentile(&mut tc, 0.99));

    // Throughput: interleaved rounds, SENDERS concurrent senders each.
    let (mut gw_rps, mut pl_rps, mut tc_rps) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let client = via_gateway.clone();
        gw_rps.push(
            throughput(true, move |i| {
                let client = client.clone();
                async move { send(&client, i).await.map(drop) }
            })
            .await?,
        );
        let client = direct.clone();
        pl_rps.push(
            throughput(false, move |i| {
                let client = client.clone();
                async move { send(&client, i).await.map(drop) }
            })
            .await?,
        );
        let peer = peer.clone();
        tc_rps.push(
            throughput(true, move |i| {
                let peer = peer.clone();
                async move {
                    match tokio::time::timeout(CALL_LIMIT, peer.ask(task(i))).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no reply within {CALL_LIMIT:?}")),
                    }
                }
            })
            .await?,
        );
    }
    // One part of the gateway's work on its own: finding the reply's schema
    // by its IntentId in the request's descriptor set (`Schema::related`,
    // which `peers::Remote::ask` calls on every ask's reply).
    let schema = Schema::of::<DelegateTask>()?;
    let started = Instant::now();
    for _ in 0..RELATED {
        if schema.related(TaskStatus::ID).is_none() {
            return Err("TaskStatus is not in DelegateTask's descriptor set".into());
        }
    }
    let related = started.elapsed() / RELATED;

    let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len() as f64;
    let (gw_rps, pl_rps, tc_rps) = (mean(&gw_rps), mean(&pl_rps), mean(&tc_rps));

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("SendMessage, n={n} sequential (interleaved), then {SENDERS} senders for {ROUNDS} x {ROUND:?}");
    println!("| case | p50 µs | p99 µs | req/s ({SENDERS} senders) |");
    println!("|---|---:|---:|---:|");
    println!("| A2A client → gateway → Tacit agent | {:.0} | {:.0} | {gw_rps:.0} |", us(gw50), us(gw99));
    println!(
        "| A2A client → plain A2A server (same SDK, same work) | {:.0} | {:.0} | {pl_rps:.0} |",
        us(pl50),
        us(pl99)
    );
    println!("| Tacit ask, same intent | {:.0} | {:.0} | {tc_rps:.0} |", us(tc50), us(tc99));
    println!(
        "gateway added: p50 +{:.0} µs (x{:.2}), p99 +{:.0} µs; throughput x{:.3} of plain",
        us(gw50) - us(pl50),
        us(gw50) / us(pl50),
        us(gw99) - us(pl99),
        gw_rps / pl_rps
    );
    println!("Schema::related(TaskStatus) of DelegateTask's schema: {:.0} µs a call", us(related));
    asker.shutdown(Duration::from_millis(100)).await;
    agent.shutdown(Duration::from_millis(100)).await;
    Ok(())
}
