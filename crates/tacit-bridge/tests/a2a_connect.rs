//! `tacit a2a connect` end to end: a real A2A server built with the A2A
//! SDK's server crate on 127.0.0.1, the bridge in-process (the function the
//! CLI runs), and a real Tacit agent asking it `TextTask`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use a2a::event::{StreamResponse, TaskArtifactUpdateEvent, TaskStatusUpdateEvent};
use a2a::{A2AError, AgentCard, Artifact, Message, Part, PartContent, Role, Task, TaskState, TaskStatus};
use a2a_server::{AgentExecutor, DefaultRequestHandler, ExecutorContext, InMemoryTaskStore, StaticAgentCard};
use futures::stream::{self, BoxStream};
use serde_json::{Value, json};
use tacit::intents::{TextResult, TextTask};
use tacit::{Act, Agent, ErrorCode, Peer};
use tacit_bridge::a2a::{A2aRemote, ConnectError, ConnectOptions};

/// Every test ends within this.
const BOUND: Duration = Duration::from_secs(20);

/// The A2A agent of the tests: skill `echo` answers with the text and data it
/// got (and the skill it was asked for), `fail` fails the task, `reject`
/// rejects it, `unsupported` answers with an A2A error, `slow` takes 5 s.
struct Executor;

fn task(ctx: &ExecutorContext, state: TaskState, status: Option<Message>, artifacts: Option<Vec<Artifact>>) -> Task {
    Task {
        id: ctx.task_id.clone(),
        context_id: ctx.context_id.clone(),
        status: TaskStatus { state, message: status, timestamp: None },
        artifacts,
        history: None,
        metadata: None,
    }
}

impl AgentExecutor for Executor {
    fn execute(&self, ctx: ExecutorContext) -> BoxStream<'static, Result<StreamResponse, A2AError>> {
        let message = ctx.message.clone().unwrap_or_else(|| Message::new(Role::User, vec![]));
        let skill =
            message.metadata.as_ref().and_then(|m| m.get("skill")).and_then(Value::as_str).unwrap_or("echo").to_owned();
        let text: Vec<&str> = message.parts.iter().filter_map(Part::as_text).collect();
        let data: Vec<&Value> = message
            .parts
            .iter()
            .filter_map(|p| match &p.content {
                PartContent::Data(d) => Some(d),
                _ => None,
            })
            .collect();
        let note = |text: &str| Some(Message::new(Role::Agent, vec![Part::text(text)]));
        let event = match skill.as_str() {
            "echo" => {
                let artifact = Artifact {
                    artifact_id: "a1".into(),
                    name: None,
                    description: None,
                    parts: vec![
                        Part::text(format!("echo: {}", text.join(" "))),
                        Part::data(json!({ "skill": skill, "received": data.first().copied().cloned() })),
                    ],
                    metadata: None,
                    extensions: None,
                };
                Ok(StreamResponse::Task(task(&ctx, TaskState::Completed, None, Some(vec![artifact]))))
            }
            "fail" => Ok(StreamResponse::Task(task(&ctx, TaskState::Failed, note("the tool broke"), None))),
            "reject" => Ok(StreamResponse::Task(task(&ctx, TaskState::Rejected, note("not today"), None))),
            "unsupported" => Err(A2AError::unsupported_operation("no such operation here")),
            _ => Err(A2AError::invalid_params(format!("unknown skill {skill}"))),
        };
        if skill == "steps" {
            let working = StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
                task_id: ctx.task_id.clone(),
                context_id: ctx.context_id.clone(),
                status: TaskStatus { state: TaskState::Working, message: note("thinking"), timestamp: None },
                metadata: None,
            });
            let partial = StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
                task_id: ctx.task_id.clone(),
                context_id: ctx.context_id.clone(),
                artifact: Artifact {
                    artifact_id: "a1".into(),
                    name: None,
                    description: None,
                    parts: vec![Part::text(format!("step for {}", text.join(" "))), Part::data(json!({"step": 1}))],
                    metadata: None,
                    extensions: None,
                },
                append: None,
                last_chunk: Some(true),
                metadata: None,
            });
            let done = StreamResponse::Task(task(&ctx, TaskState::Completed, note("done"), None));
            return Box::pin(stream::iter([Ok(working), Ok(partial), Ok(done)]));
        }
        if skill == "slow" {
            let done = task(&ctx, TaskState::Completed, note("late"), None);
            return Box::pin(stream::once(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(StreamResponse::Task(done))
            }));
        }
        Box::pin(stream::once(async move { event }))
    }

    fn cancel(&self, ctx: ExecutorContext) -> BoxStream<'static, Result<StreamResponse, A2AError>> {
        let canceled = task(&ctx, TaskState::Canceled, None, None);
        Box::pin(stream::once(async move { Ok(StreamResponse::Task(canceled)) }))
    }
}

fn skill(id: &str, description: &str) -> Value {
    json!({ "id": id, "name": id, "description": description, "tags": ["test"] })
}

/// Serves `router` on 127.0.0.1 and returns its base URL.
async fn serve(router: axum::Router) -> (String, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), addr)
}

/// A real A2A server (JSON-RPC binding at `/`, card at the well-known path).
async fn a2a_server() -> String {
    a2a_server_with("JSONRPC").await
}

/// A real A2A server with one binding, `JSONRPC` or `HTTP+JSON`, at `/`.
async fn a2a_server_with(binding: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let card: AgentCard = serde_json::from_value(json!({
        "name": "echo-agent",
        "description": "echoes text and data",
        "version": "1.2.3",
        "supportedInterfaces": [{ "url": format!("http://{addr}/"), "protocolBinding": binding, "protocolVersion": "1.0" }],
        "capabilities": { "streaming": true },
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/plain", "application/json"],
        "skills": [
            skill("echo", "answers with what it got"),
            skill("fail", "always fails"),
            skill("reject", "always rejects"),
            skill("unsupported", "answers with an A2A error"),
            skill("slow", "takes 5 seconds"),
            skill("steps", "streams its steps"),
        ],
    }))
    .unwrap();
    let handler = Arc::new(
        DefaultRequestHandler::new(Executor, InMemoryTaskStore::new()).with_capabilities(card.capabilities.clone()),
    );
    let binding = match binding {
        "JSONRPC" => a2a_server::jsonrpc::jsonrpc_router(handler),
        _ => a2a_server::rest::rest_router(handler),
    };
    let router = binding.merge(a2a_server::agent_card::agent_card_router(Arc::new(StaticAgentCard::new(card))));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// The bridge in front of a fresh A2A server, and a Tacit agent connected to it.
async fn bridge_and_client() -> (Agent, Agent, Peer) {
    let url = a2a_server().await;
    let remote = A2aRemote::connect(&url, &ConnectOptions::default()).await.unwrap();
    let bridge = remote.install(Agent::builder()).bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = Agent::builder().emits::<TextTask>().bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let peer = client.connect(bridge.local_addr().unwrap(), bridge.id()).await.unwrap();
    (bridge, client, peer)
}

fn ask(skill: &str, text: &str, data_json: &str) -> TextTask {
    TextTask { skill: skill.into(), text: text.into(), data_json: data_json.into(), context_id: String::new() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tacit_agent_asks_an_a2a_agent() {
    tokio::time::timeout(BOUND, async {
        let (bridge, _client, peer) = bridge_and_client().await;

        let result: TextResult = peer.ask(ask("echo", "hello there", r#"{"n":42,"tags":["a"]}"#)).await.unwrap();
        assert_eq!(result.text, "echo: hello there");
        let data: Value = serde_json::from_str(&result.data_json).unwrap();
        assert_eq!(data, json!({ "skill": "echo", "received": { "n": 42, "tags": ["a"] } }));
        assert_eq!(result.state, "TASK_STATE_COMPLETED");
        assert!(!result.task_id.is_empty());
        assert!(!result.context_id.is_empty());

        // The bridge's card (known once the handshake is done: the ask above
        // went out early, and its answer can come before the handshake's end)
        // comes from the A2A card.
        peer.ready().await.unwrap();
        let card = peer.card().expect("the bridge's card");
        assert_eq!(card.name, "echo-agent");
        assert_eq!(card.description, "echoes text and data");
        assert_eq!(card.software_version, "a2a:1.2.3");
        assert_eq!(card.roles, ["a2a", "echo", "fail", "reject", "unsupported", "slow", "steps"]);
        assert_eq!(card.metadata["a2a.skill.echo"], "echo: answers with what it got");
        assert_eq!(card.metadata["a2a.protocol"], "JSONRPC 1.0");

        // Text only, in the same A2A context.
        let mut next = ask("echo", "again", "");
        next.context_id = result.context_id.clone();
        let again = peer.ask(next).await.unwrap();
        assert_eq!(again.text, "echo: again");
        assert_eq!(serde_json::from_str::<Value>(&again.data_json).unwrap()["received"], Value::Null);
        assert_eq!(again.context_id, result.context_id);
        bridge.shutdown(Duration::from_millis(100)).await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_failures_become_mapped_rejections() {
    tokio::time::timeout(BOUND, async {
        let (_bridge, _client, peer) = bridge_and_client().await;
        let rejected = |error: tacit::Error| error.rejection().cloned().expect("a rejection");

        let failed = rejected(peer.ask(ask("fail", "go", "")).await.unwrap_err());
        assert_eq!((failed.act, failed.code), (Act::Failure, ErrorCode::HandlerFailed));
        assert_eq!(failed.reason, "the tool broke");

        let declined = rejected(peer.ask(ask("reject", "go", "")).await.unwrap_err());
        assert_eq!((declined.act, declined.code), (Act::Refuse, ErrorCode::Declined));
        assert_eq!(declined.reason, "not today");

        let unsupported = rejected(peer.ask(ask("unsupported", "go", "")).await.unwrap_err());
        assert_eq!((unsupported.act, unsupported.code), (Act::Refuse, ErrorCode::Declined));
        assert!(unsupported.reason.contains("-32004"), "{}", unsupported.reason);

        // Refused by the bridge before any HTTP call.
        let unknown = rejected(peer.ask(ask("translate", "go", "")).await.unwrap_err());
        assert_eq!((unknown.act, unknown.code), (Act::NotUnderstood, ErrorCode::InvalidPayload));
        assert!(unknown.reason.starts_with("skill:"), "{}", unknown.reason);
        let bad_json = rejected(peer.ask(ask("echo", "go", "{not json")).await.unwrap_err());
        assert_eq!((bad_json.act, bad_json.code), (Act::NotUnderstood, ErrorCode::InvalidPayload));
        assert!(bad_json.reason.starts_with("data_json:"), "{}", bad_json.reason);
        let empty = rejected(peer.ask(ask("echo", "", "")).await.unwrap_err());
        assert_eq!(empty.code, ErrorCode::InvalidPayload);
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_json_binding_serves_as_well() {
    tokio::time::timeout(BOUND, async {
        let url = a2a_server_with("HTTP+JSON").await;
        let remote = A2aRemote::connect(&url, &ConnectOptions::default()).await.unwrap();
        let result = remote.perform(ask("echo", "over rest", r#"[1,2]"#), Duration::from_secs(5)).await.unwrap();
        assert_eq!(result.text, "echo: over rest");
        assert_eq!(serde_json::from_str::<Value>(&result.data_json).unwrap()["received"], json!([1, 2]));
        let failed = remote.perform(ask("fail", "go", ""), Duration::from_secs(5)).await.unwrap_err();
        assert_eq!((failed.act, failed.code), (Act::Failure, ErrorCode::HandlerFailed));
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_a2a_agent_hits_the_deadline() {
    tokio::time::timeout(BOUND, async {
        let url = a2a_server().await;
        let remote = A2aRemote::connect(&url, &ConnectOptions::default()).await.unwrap();
        let started = std::time::Instant::now();
        let error = remote.perform(ask("slow", "go", ""), Duration::from_millis(300)).await.unwrap_err();
        assert_eq!((error.act, error.code), (Act::Failure, ErrorCode::DeadlineExceeded));
        assert!(started.elapsed() < Duration::from_secs(4));
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_and_servers_that_are_not_a2a_get_clear_errors() {
    tokio::time::timeout(BOUND, async {
        let options = ConnectOptions::default();
        let err = A2aRemote::connect("not a url", &options).await.unwrap_err();
        assert!(matches!(err, ConnectError::BadUrl(_)), "{err}");

        // Nothing listens there.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let err = A2aRemote::connect(&format!("http://{free}"), &options).await.unwrap_err();
        assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");

        // An HTTP server without an agent card.
        let (url, _) = serve(axum::Router::new()).await;
        let err = A2aRemote::connect(&url, &options).await.unwrap_err();
        assert!(matches!(err, ConnectError::Status { status: 404, .. }), "{err}");
        assert!(err.to_string().contains("is this an A2A agent?"), "{err}");

        // JSON, but not a card; not JSON at all.
        let router = axum::Router::new()
            .route("/a/.well-known/agent-card.json", axum::routing::get(|| async { r#"{"hello": "world"}"# }))
            .route("/b/.well-known/agent-card.json", axum::routing::get(|| async { "<html>hi</html>" }))
            .route("/c/.well-known/agent-card.json", axum::routing::get(|| async { "x".repeat(300 * 1024) }))
            .route(
                "/d/.well-known/agent-card.json",
                axum::routing::get(|| async {
                    serde_json::to_string(&json!({
                        "name": "grpc-only", "version": "1", "capabilities": {}, "skills": [],
                        "supportedInterfaces": [{ "url": "http://127.0.0.1:1", "protocolBinding": "GRPC", "protocolVersion": "1.0" }],
                    }))
                    .unwrap()
                }),
            )
            .route(
                "/e/.well-known/agent-card.json",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    "{}"
                }),
            );
        let (url, _) = serve(router).await;
        let err = A2aRemote::connect(&format!("{url}/a"), &options).await.unwrap_err();
        assert!(matches!(err, ConnectError::NotAgentCard { .. }), "{err}");
        let err = A2aRemote::connect(&format!("{url}/b"), &options).await.unwrap_err();
        assert!(matches!(err, ConnectError::NotAgentCard { .. }), "{err}");
        let err = A2aRemote::connect(&format!("{url}/c"), &options).await.unwrap_err();
        assert!(matches!(err, ConnectError::CardTooLarge { .. }), "{err}");
        let err = A2aRemote::connect(&format!("{url}/d"), &options).await.unwrap_err();
        assert!(matches!(err, ConnectError::NoInterface { .. }), "{err}");
        let mut short = ConnectOptions::default();
        short.card_timeout = Duration::from_millis(300);
        let err = A2aRemote::connect(&format!("{url}/e"), &short).await.unwrap_err();
        assert!(matches!(err, ConnectError::Timeout { .. }), "{err}");
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_lane_carries_the_a2a_events() {
    tokio::time::timeout(BOUND, async {
        let (_bridge, _client, peer) = bridge_and_client().await;
        let (_send, mut items) = peer.stream(ask("steps", "the plan", "")).await.unwrap();
        let mut seen = Vec::new();
        while let Some(item) = items.recv().await.unwrap() {
            seen.push(item);
        }
        let summary: Vec<(&str, &str, &str)> =
            seen.iter().map(|i| (i.text.as_str(), i.data_json.as_str(), i.state.as_str())).collect();
        assert_eq!(
            summary,
            [
                ("thinking", "", "TASK_STATE_WORKING"),
                ("step for the plan", r#"{"step":1}"#, ""),
                ("done", "", "TASK_STATE_COMPLETED"),
            ]
        );
        assert!(seen.iter().all(|i| !i.task_id.is_empty() && i.task_id == seen[0].task_id));
        assert!(seen.iter().all(|i| !i.context_id.is_empty() && i.context_id == seen[0].context_id), "{seen:#?}");

        // A failed task ends the stream with an item that says so.
        let (_send, mut items) = peer.stream(ask("fail", "go", "")).await.unwrap();
        let mut last = None;
        while let Some(item) = items.recv().await.unwrap() {
            last = Some(item);
        }
        let last = last.expect("an item");
        assert_eq!((last.state.as_str(), last.text.as_str()), ("TASK_STATE_FAILED", "the tool broke"));

        // An unknown skill too, without reaching the A2A agent.
        let (_send, mut items) = peer.stream(ask("nope", "go", "")).await.unwrap();
        let only = items.recv().await.unwrap().expect("an item");
        assert_eq!(only.state, "TASK_STATE_FAILED");
        assert!(only.text.starts_with("skill:"), "{}", only.text);
        assert!(items.recv().await.unwrap().is_none());
    })
    .await
    .expect("bounded");
}
