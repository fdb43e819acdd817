//! `tacit a2a connect` end to end with the real binary: a real A2A server
//! (the A2A SDK's server crate) on 127.0.0.1, the `tacit a2a connect`
//! process in front of it, and `tacit ask` of `TextTask` through it. Every
//! child process is killed when its guard is dropped, every wait is bounded.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use a2a::event::StreamResponse;
use a2a::{A2AError, AgentCard, Message, Part, Role, Task, TaskState, TaskStatus};
use a2a_server::{AgentExecutor, DefaultRequestHandler, ExecutorContext, InMemoryTaskStore, StaticAgentCard};
use futures::stream::{self, BoxStream};
use serde_json::{Value, json};
use tacit_testkit::process::ChildGuard;

const TACIT: &str = env!("CARGO_BIN_EXE_tacit");
const LIMIT: Duration = Duration::from_secs(20);

/// Skill `shout` answers with the text in capitals; `fail` fails the task.
struct Shout;

impl AgentExecutor for Shout {
    fn execute(&self, ctx: ExecutorContext) -> BoxStream<'static, Result<StreamResponse, A2AError>> {
        let message = ctx.message.clone().unwrap_or_else(|| Message::new(Role::User, vec![]));
        let text = message.parts.iter().filter_map(Part::as_text).collect::<Vec<_>>().join(" ");
        let skill = message.metadata.as_ref().and_then(|m| m.get("skill")).and_then(Value::as_str).unwrap_or("");
        let (state, answer) = match skill {
            "fail" => (TaskState::Failed, "no voice left".to_owned()),
            _ => (TaskState::Completed, text.to_uppercase()),
        };
        let task = Task {
            id: ctx.task_id.clone(),
            context_id: ctx.context_id.clone(),
            status: TaskStatus {
                state,
                message: Some(Message::new(Role::Agent, vec![Part::text(answer)])),
                timestamp: None,
            },
            artifacts: None,
            history: None,
            metadata: None,
        };
        Box::pin(stream::once(async move { Ok(StreamResponse::Task(task)) }))
    }

    fn cancel(&self, _ctx: ExecutorContext) -> BoxStream<'static, Result<StreamResponse, A2AError>> {
        Box::pin(stream::once(async { Err(A2AError::unsupported_operation("no cancel")) }))
    }
}

/// Starts the A2A server on a thread of its own; returns its base URL.
fn a2a_server() -> String {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let card: AgentCard = serde_json::from_value(json!({
                "name": "shouter", "description": "answers in capitals", "version": "0.1.0",
                "supportedInterfaces": [{ "url": format!("http://{addr}/"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0" }],
                "capabilities": {},
                "skills": [
                    { "id": "shout", "name": "shout", "description": "capitals", "tags": [] },
                    { "id": "fail", "name": "fail", "description": "fails", "tags": [] },
                ],
            }))
            .unwrap();
            let handler = Arc::new(DefaultRequestHandler::new(Shout, InMemoryTaskStore::new()));
            let router = a2a_server::jsonrpc::jsonrpc_router(handler)
                .merge(a2a_server::agent_card::agent_card_router(Arc::new(StaticAgentCard::new(card))));
            tx.send(format!("http://{addr}")).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    rx.recv_timeout(LIMIT).unwrap()
}

/// Runs `tacit ARGS` to completion, bounded; (exit code, stdout, stderr).
fn tacit(args: &[&str]) -> (Option<i32>, String, String) {
    let started = Instant::now();
    let child = Command::new(TACIT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    loop {
        if guard.0.try_wait().unwrap().is_some() {
            break;
        }
        assert!(started.elapsed() < LIMIT, "`tacit {}` ran too long", args.join(" "));
        thread::sleep(Duration::from_millis(10));
    }
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read as _;
    guard.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    guard.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (guard.0.try_wait().unwrap().and_then(|s| s.code()), out, err)
}

#[test]
fn tacit_asks_an_a2a_agent_through_tacit_a2a_connect() {
    let url = a2a_server();
    let child = Command::new(TACIT)
        .args(["a2a", "connect", &url, "--addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let stderr = guard.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let announced = loop {
        let line = rx.recv_timeout(LIMIT).unwrap_or_else(|_| panic!("no `listening on` line; stderr: {seen:#?}"));
        if let Some(rest) = line.strip_prefix("listening on ") {
            break rest.to_owned();
        }
        seen.push(line);
    };
    assert!(seen.iter().any(|l| l.contains("\"shouter\"") && l.contains("2 skills")), "{seen:#?}");
    let (addr, id) = announced.split_once(" as ").unwrap();
    id.parse::<tacit::AgentId>().unwrap();

    let (code, out, err) = tacit(&["describe", addr, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let described: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(described["card"]["name"], "shouter", "{described:#}");
    assert!(out.contains("tacit.intents.v1.TextTask"), "{out}");

    let (code, out, err) = tacit(&["ask", addr, "tacit.intents.v1.TextTask", r#"{"skill": "shout", "text": "hello"}"#]);
    assert_eq!(code, Some(0), "{err}");
    let reply: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(reply["text"], "HELLO", "{reply:#}");
    assert_eq!(reply["state"], "TASK_STATE_COMPLETED", "{reply:#}");

    let (code, _, err) = tacit(&["ask", addr, "tacit.intents.v1.TextTask", r#"{"skill": "fail", "text": "hello"}"#]);
    assert_eq!(code, Some(7), "{err}");
    assert!(err.contains("HANDLER_FAILED") && err.contains("no voice left"), "{err}");
}

#[test]
fn tacit_a2a_connect_to_nothing_says_so() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, _, err) = tacit(&["a2a", "connect", &format!("http://{free}")]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("cannot fetch the A2A agent card"), "{err}");
    let (code, _, err) = tacit(&["a2a", "connect", "localhost:1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not an http:// or https:// URL"), "{err}");
}
