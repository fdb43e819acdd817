//! `tacit a2a serve` end to end: the real binary as a child process in
//! front of a real Tacit agent on 127.0.0.1, driven by the A2A SDK's own
//! client (`a2a-client-lf`, JSON-RPC and HTTP+JSON bindings): the agent
//! card, SendMessage (data and text), SendStreamingMessage over a stream
//! lane, GetTask, CancelTask (CANCEL reaches the agent), the error table, a
//! trace context, and malformed and oversized requests. Every wait is
//! bounded; the child is killed when its guard drops.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use a2a::event::StreamResponse;
use a2a::{
    AgentCard, CancelTaskRequest, GetTaskRequest, Message, Part, PartContent, Role, SendMessageConfiguration,
    SendMessageRequest, SendMessageResponse, Task, TaskState,
};
use a2a_client::agent_card::AgentCardResolver;
use a2a_client::{A2AClient, A2AClientFactory, Transport};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tacit::intents::{DelegateTask, TaskStatus, TextResult, TextTask};
use tacit::{Agent, AgentCard as TacitCard, Context, ErrorCode, Intent as _, Rejection, StreamReceiver, StreamSender};
use tacit_build_tests::acme::market::v1::{Bid, SlotOffer, WatchOffers};
use tacit_testkit::process::ChildGuard;
use tokio::sync::mpsc;

const TACIT: &str = env!("CARGO_BIN_EXE_tacit");
/// The longest one test may run.
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// The longest to wait for one thing.
const WAIT: Duration = Duration::from_secs(15);

/// Tells the test when a slow handler was dropped (its ask cancelled).
struct Dropped(Option<mpsc::UnboundedSender<()>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A Tacit agent: `DelegateTask` (task ids `refuse`, `fail`, `slow`,
/// `trace` behave so), `TextTask` (capitals), and a `WatchOffers` stream of
/// three offers.
async fn worker(cancelled: mpsc::UnboundedSender<()>) -> Agent {
    Agent::builder()
        .card(TacitCard::new("worker"))
        .on_ask(move |cx: Context, task: DelegateTask| {
            let cancelled = cancelled.clone();
            async move {
                match task.task_id.as_str() {
                    "refuse" => Err(Rejection::refuse(ErrorCode::Declined, "out of stock")),
                    "fail" => Err(Rejection::failure(ErrorCode::HandlerFailed, "the oven broke")),
                    "slow" => {
                        let _guard = Dropped(Some(cancelled));
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok(TaskStatus::default())
                    }
                    "conversation" => {
                        Ok(TaskStatus { message: cx.conversation_id().as_str().to_owned(), ..Default::default() })
                    }
                    "trace" => Ok(TaskStatus {
                        message: cx.trace().map(|trace| format!("{:02x?}", trace.trace_id)).unwrap_or_default(),
                        ..Default::default()
                    }),
                    _ => Ok(TaskStatus {
                        task_id: task.task_id,
                        message: task.description,
                        updated_at_micros: 1 << 60,
                        ..Default::default()
                    }),
                }
            }
        })
        .on_ask(|_: Context, task: TextTask| async move {
            Ok::<_, Rejection>(TextResult {
                text: task.text.to_uppercase(),
                data_json: json!({ "skill": task.skill, "context": task.context_id }).to_string(),
                ..Default::default()
            })
        })
        .on_stream(
            |_: Context, watch: WatchOffers, mut offers: StreamSender<SlotOffer>, _: StreamReceiver<Bid>| async move {
                let last = if watch.resource == "forever" { u64::MAX } else { 3 };
                for slot_id in 1..=last {
                    let offer =
                        SlotOffer { slot_id, resource: watch.resource.clone(), price_cents: 100 * slot_id as u32 };
                    if offers.send(&offer).await.is_err() {
                        return;
                    }
                }
                let _ = offers.finish().await;
            },
        )
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// `tacit a2a serve` in front of `peer`, and its base URL once it serves.
fn serve(peer: &str, extra: &[&str]) -> (ChildGuard, String) {
    let child = Command::new(TACIT)
        .args(["a2a", "serve", "--peer", peer, "--http", "127.0.0.1:0", "--timeout", "5"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let stderr = guard.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[a2a serve] {line}");
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx.recv_timeout(WAIT).unwrap_or_else(|_| panic!("no `serving A2A` line; stderr: {seen:#?}"));
        if let Some(rest) = line.strip_prefix("tacit a2a: serving A2A at ") {
            let url = rest.split_whitespace().next().unwrap().trim_end_matches('/').to_owned();
            return (guard, url);
        }
        seen.push(line);
    }
}

/// The agent card at `url`, through the SDK's resolver.
async fn card_of(url: &str) -> AgentCard {
    // The workspace's reqwest has no crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    AgentCardResolver::new(None).resolve(url).await.expect("the agent card")
}

/// The SDK's client for the card at `url`, preferring `binding`.
async fn client(url: &str, binding: &str) -> (AgentCard, A2AClient<Box<dyn Transport>>) {
    let card = card_of(url).await;
    let client = A2AClientFactory::builder()
        .preferred_bindings(vec![binding.to_owned()])
        .build()
        .create_from_card(&card)
        .await
        .expect("a client from the card");
    (card, client)
}

fn data(intent: &str, message: Value) -> Message {
    Message::new(Role::User, vec![Part::data(json!({ "intent": intent, "message": message }))])
}

fn request(message: Message) -> SendMessageRequest {
    SendMessageRequest { message, configuration: None, metadata: None, tenant: None }
}

fn task(response: SendMessageResponse) -> Task {
    match response {
        SendMessageResponse::Task(task) => task,
        other => panic!("not a task: {other:?}"),
    }
}

/// The data parts of a task's artifact `id`.
fn artifact_data(task: &Task, id: &str) -> Vec<Value> {
    let artifact = task.artifacts.iter().flatten().find(|a| a.artifact_id == id);
    let parts = artifact.unwrap_or_else(|| panic!("no artifact {id} in {task:#?}")).parts.iter();
    parts
        .filter_map(|p| match &p.content {
            PartContent::Data(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

fn status_text(task: &Task) -> String {
    task.status.message.as_ref().map(|m| m.parts.iter().filter_map(Part::as_text).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_clients_call_tacit_agents() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (cancelled, mut was_cancelled) = mpsc::unbounded_channel();
        let agent = worker(cancelled).await;
        let peer = format!("{}={}", agent.local_addr().unwrap(), agent.id());
        let (_server, url) = serve(&peer, &["--name", "market-gateway"]);

        // The card: skills from the peer's intents, schemas and AgentIds in the extension.
        let (card, client) = client(&url, "JSONRPC").await;
        assert_eq!(card.name, "market-gateway");
        assert_eq!(card.capabilities.streaming, Some(true));
        let ids: Vec<&str> = card.skills.iter().map(|s| s.id.as_str()).collect();
        for expected in ["worker_DelegateTask", "worker_TextTask", "worker_WatchOffers"] {
            assert!(ids.contains(&expected), "{ids:?}");
        }
        assert!(!ids.iter().any(|id| id.contains("Ping") || id.contains("DescribeAgent")), "{ids:?}");
        let delegate = card.skills.iter().find(|s| s.id == "worker_DelegateTask").unwrap();
        assert!(delegate.tags.contains(&DelegateTask::NAME.to_owned()), "{delegate:?}");
        let extension = card.capabilities.extensions.iter().flatten().find(|e| e.uri.contains("tacit")).unwrap();
        let params = serde_json::to_value(&extension.params).unwrap();
        let entry = &params["skills"]["worker_DelegateTask"];
        assert_eq!(entry["agentId"], agent.id().to_string());
        assert_eq!(entry["lanes"], json!(["ask"]));
        assert_eq!(entry["inputSchema"]["type"], "object");
        assert!(entry["outputSchema"]["properties"].get("updatedAtMicros").is_some(), "{entry:#}");

        // SendMessage with a data part: an ask; the reply is the artifact.
        let sent = client
            .send_message(&request(data("worker_DelegateTask", json!({ "taskId": "t1", "description": "bake" }))))
            .await
            .unwrap();
        let done = task(sent);
        assert_eq!(done.status.state, TaskState::Completed, "{done:#?}");
        let reply = artifact_data(&done, "reply");
        assert_eq!(reply.len(), 1, "{reply:?}");
        assert_eq!(reply[0]["taskId"], "t1");
        assert_eq!(reply[0]["message"], "bake");
        // 64-bit integers as strings, per the proto3 JSON mapping.
        assert_eq!(reply[0]["updatedAtMicros"], "1152921504606846976");
        // GetTask reads it back.
        let got =
            client.get_task(&GetTaskRequest { id: done.id.clone(), history_length: None, tenant: None }).await.unwrap();
        assert_eq!(got.status.state, TaskState::Completed);
        assert_eq!(artifact_data(&got, "reply"), reply);

        // The intent's full name works too.
        let by_name =
            task(client.send_message(&request(data(DelegateTask::NAME, json!({ "taskId": "t2" })))).await.unwrap());
        assert_eq!(by_name.status.state, TaskState::Completed);

        // Text only: to the peer's TextTask.
        let mut text = Message::new(Role::User, vec![Part::text("hello there")]);
        text.context_id = Some("ctx-9".into());
        let answered = task(client.send_message(&request(text)).await.unwrap());
        assert_eq!(answered.status.state, TaskState::Completed);
        let parts = &answered.artifacts.as_ref().unwrap()[0].parts;
        assert_eq!(parts[0].as_text(), Some("HELLO THERE"));
        assert!(matches!(&parts[1].content, PartContent::Data(d) if d["context"] == "ctx-9"), "{parts:?}");

        // The error table: REFUSE → rejected, FAILURE → failed, with the code.
        let refused = task(
            client.send_message(&request(data("worker_DelegateTask", json!({ "taskId": "refuse" })))).await.unwrap(),
        );
        assert_eq!(refused.status.state, TaskState::Rejected);
        assert_eq!(status_text(&refused), "REFUSE DECLINED: out of stock");
        let failed = task(
            client.send_message(&request(data("worker_DelegateTask", json!({ "taskId": "fail" })))).await.unwrap(),
        );
        assert_eq!(failed.status.state, TaskState::Failed);
        assert!(status_text(&failed).starts_with("FAILURE HANDLER_FAILED"), "{failed:#?}");
        // The code, typed, in the status message's metadata.
        let metadata = failed.status.message.as_ref().and_then(|m| m.metadata.clone()).expect("metadata");
        assert_eq!(metadata["tacit"]["act"], "FAILURE");
        assert_eq!(metadata["tacit"]["code"], "HANDLER_FAILED");
        assert_eq!(metadata["tacit"]["codeValue"].as_f64(), Some(777.0));
        let metadata = refused.status.message.as_ref().and_then(|m| m.metadata.clone()).expect("metadata");
        assert_eq!(metadata["tacit"]["code"], "DECLINED");

        // Bad calls are JSON-RPC errors that say what is wrong.
        let wrong_field = client
            .send_message(&request(data("worker_DelegateTask", json!({ "taskId": "t3", "colour": "red" }))))
            .await
            .unwrap_err();
        assert_eq!(wrong_field.code, -32602, "{wrong_field:?}");
        assert!(wrong_field.message.contains("colour"), "{wrong_field:?}");
        let no_skill = client.send_message(&request(data("worker_Nothing", json!({})))).await.unwrap_err();
        assert_eq!(no_skill.code, -32602);
        assert!(no_skill.message.contains("worker_DelegateTask"), "the error lists the skills: {no_skill:?}");
        let wrong_type =
            client.send_message(&request(data("worker_DelegateTask", json!({ "taskId": 7 })))).await.unwrap_err();
        assert!(wrong_type.message.contains("taskId"), "{wrong_type:?}");

        // A trace context in the message's metadata reaches the agent.
        let mut traced = data("worker_DelegateTask", json!({ "taskId": "trace" }));
        traced.metadata =
            Some([("traceparent".to_owned(), json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))].into());
        let traced = task(client.send_message(&request(traced)).await.unwrap());
        assert!(
            artifact_data(&traced, "reply")[0]["message"].as_str().unwrap().starts_with("[4b, f9, 2f"),
            "{traced:#?}"
        );

        // The A2A context is the Tacit conversation.
        let mut in_context = data("worker_DelegateTask", json!({ "taskId": "conversation" }));
        in_context.context_id = Some("ctx-42".into());
        let in_context = task(client.send_message(&request(in_context)).await.unwrap());
        assert_eq!(in_context.context_id, "ctx-42");
        assert_eq!(artifact_data(&in_context, "reply")[0]["message"], "ctx-42");

        // SendStreamingMessage over the stream lane: each item as it comes.
        let mut events = client
            .send_streaming_message(&request(data("worker_WatchOffers", json!({ "resource": "gpu" }))))
            .await
            .unwrap();
        let mut items = Vec::new();
        let mut last = None;
        while let Some(event) = tokio::time::timeout(WAIT, events.next()).await.expect("an event in time") {
            match event.unwrap() {
                StreamResponse::ArtifactUpdate(update) => items.extend(update.artifact.parts),
                StreamResponse::StatusUpdate(update) => last = Some(update.status.state),
                StreamResponse::Task(task) => last = Some(task.status.state),
                StreamResponse::Message(_) => {}
            }
        }
        assert_eq!(last, Some(TaskState::Completed));
        // (A2A data parts are protobuf Structs: their numbers are doubles.)
        let prices: Vec<f64> = items
            .iter()
            .filter_map(|p| match &p.content {
                PartContent::Data(d) => d["priceCents"].as_f64(),
                _ => None,
            })
            .collect();
        assert_eq!(prices, vec![100.0, 200.0, 300.0]);

        // A stream that never ends is cut off after MAX_STREAM_ITEMS items, the task completed.
        let mut events = client
            .send_streaming_message(&request(data("worker_WatchOffers", json!({ "resource": "forever" }))))
            .await
            .unwrap();
        let (mut count, mut note) = (0, String::new());
        while let Some(event) = tokio::time::timeout(WAIT, events.next()).await.expect("an event in time") {
            match event.unwrap() {
                StreamResponse::ArtifactUpdate(update) => count += update.artifact.parts.len(),
                StreamResponse::StatusUpdate(update) if update.status.state == TaskState::Completed => {
                    note = update.status.message.map(|m| m.parts.iter().filter_map(Part::as_text).collect()).unwrap();
                }
                _ => {}
            }
        }
        assert_eq!(count, tacit_bridge::a2a_server::MAX_STREAM_ITEMS);
        assert!(note.starts_with("stopped after 1024 items"), "{note}");

        // CancelTask: a working task is withdrawn on the wire (the handler is dropped).
        let mut slow = request(data("worker_DelegateTask", json!({ "taskId": "slow" })));
        slow.configuration = Some(SendMessageConfiguration {
            accepted_output_modes: None,
            task_push_notification_config: None,
            history_length: None,
            return_immediately: Some(true),
        });
        let working = task(client.send_message(&slow).await.unwrap());
        assert_eq!(working.status.state, TaskState::Working);
        let cancelled = client
            .cancel_task(&CancelTaskRequest { id: working.id.clone(), metadata: None, tenant: None })
            .await
            .unwrap();
        assert_eq!(cancelled.status.state, TaskState::Canceled);
        tokio::time::timeout(WAIT, was_cancelled.recv()).await.expect("CANCEL reached the agent").unwrap();
        let again =
            client.get_task(&GetTaskRequest { id: working.id, history_length: None, tenant: None }).await.unwrap();
        assert_eq!(again.status.state, TaskState::Canceled);

        // The HTTP+JSON binding serves the same.
        let (_, rest) = client_with(&url, "HTTP+JSON").await;
        let over_rest =
            task(rest.send_message(&request(data("worker_DelegateTask", json!({ "taskId": "r1" })))).await.unwrap());
        assert_eq!(artifact_data(&over_rest, "reply")[0]["taskId"], "r1");
        agent.shutdown(Duration::from_millis(100)).await;
    })
    .await
    .expect("the test finished in time");
}

async fn client_with(url: &str, binding: &str) -> (AgentCard, A2AClient<Box<dyn Transport>>) {
    client(url, binding).await
}

/// Without a peer that takes `TextTask`, text is refused with
/// ContentTypeNotSupported; a peer that leaves takes its skills along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_without_a_text_peer_and_peers_that_leave() {
    tokio::time::timeout(TEST_LIMIT, async {
        let agent = Agent::builder()
            .card(TacitCard::new("plain"))
            .on_ask(|_: Context, task: DelegateTask| async move {
                Ok::<_, Rejection>(TaskStatus { task_id: task.task_id, ..Default::default() })
            })
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (_server, url) = serve(&agent.local_addr().unwrap().to_string(), &[]);
        let (card, client) = client(&url, "JSONRPC").await;
        assert_eq!(card.skills.len(), 1, "{:?}", card.skills);
        let error = client.send_message(&request(Message::new(Role::User, vec![Part::text("hi")]))).await.unwrap_err();
        assert_eq!(error.code, -32005, "{error:?}");
        assert!(error.message.contains("TextTask"), "{error:?}");
        let empty = client.send_message(&request(Message::new(Role::User, vec![]))).await.unwrap_err();
        assert_eq!(empty.code, -32602, "{empty:?}");

        agent.shutdown(Duration::from_millis(100)).await;
        let started = tokio::time::Instant::now();
        loop {
            let card = card_of(&url).await;
            if card.skills.is_empty() {
                break;
            }
            assert!(started.elapsed() < WAIT, "the skills stayed after the peer left");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let gone = client.send_message(&request(data("plain_DelegateTask", json!({})))).await.unwrap_err();
        assert_eq!(gone.code, -32602, "{gone:?}");
    })
    .await
    .expect("the test finished in time");
}

/// Raw HTTP: bad JSON, an oversized body, and a flood from one client get
/// HTTP or JSON-RPC errors, never a hang; a bearer token is required off
/// loopback (checked by the CLI before anything is served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_flooding_requests() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn post(addr: &str, body: &[u8], declared: Option<usize>) -> String {
        post_from("127.0.0.1", addr, body, declared).await
    }

    /// POSTs from the loopback address `from` (all of 127/8 is loopback).
    async fn post_from(from: &str, addr: &str, body: &[u8], declared: Option<usize>) -> String {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\na2a-version: 1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            declared.unwrap_or(body.len())
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let _ = stream.write_all(body).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.expect("an answer in time");
        String::from_utf8_lossy(&answer).into_owned()
    }

    tokio::time::timeout(TEST_LIMIT, async {
        let agent = Agent::builder()
            .on_ask(|_: Context, task: DelegateTask| async move {
                Ok::<_, Rejection>(TaskStatus { task_id: task.task_id, ..Default::default() })
            })
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (_server, url) = serve(&agent.local_addr().unwrap().to_string(), &["--rate", "5"]);
        let addr = url.trim_start_matches("http://").to_owned();

        let bad = post(&addr, b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ", None).await;
        assert!(bad.starts_with("HTTP/1.1 200") || bad.starts_with("HTTP/1.1 400"), "{bad}");
        assert!(bad.contains("-32700"), "a parse error: {bad}");
        let unknown = post(&addr, br#"{"jsonrpc": "2.0", "id": 2, "method": "Nope", "params": {}}"#, None).await;
        assert!(unknown.contains("-32601"), "method not found: {unknown}");
        let huge = post(&addr, b"{}", Some(64 << 20)).await;
        assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");

        // A flood from one client address: 429 once its bucket (5/s, bursts of 10) is empty.
        let mut limited = 0;
        for _ in 0..80 {
            if post(&addr, b"{}", None).await.starts_with("HTTP/1.1 429") {
                limited += 1;
            }
        }
        assert!(limited > 0, "no request of 80 was rate limited");
        // Another client address is not affected.
        let other =
            post_from("127.0.0.2", &addr, br#"{"jsonrpc": "2.0", "id": 3, "method": "Nope", "params": {}}"#, None)
                .await;
        assert!(other.contains("-32601"), "another client was limited too: {other}");

        let open = Command::new(TACIT)
            .args(["a2a", "serve", "--peer", "127.0.0.1:9", "--http", "0.0.0.0:0"])
            .output()
            .unwrap();
        assert!(!open.status.success());
        assert!(String::from_utf8_lossy(&open.stderr).contains("needs --bearer-token-file"), "{open:?}");
        agent.shutdown(Duration::from_millis(100)).await;
    })
    .await
    .expect("the test finished in time");
}

/// Runs `tacit ARGS` to success and gives its stdout.
fn tacit_ok(args: &[&str]) -> String {
    let out = Command::new(TACIT).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "tacit {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The gateway is one Tacit agent to its peers, with its own AgentId: a
/// peer whose policy serves only members of an organisation gives the
/// gateway nothing without the organisation's credential (no skills), and
/// with it only what the policy lets members use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_can_do_no_more_than_its_credential_allows() {
    tokio::time::timeout(TEST_LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        let org: tacit::credential::OrgKey =
            tacit_ok(&["org", "keygen", "--out", &path("org.key")]).trim().parse().unwrap();
        let gateway_id = tacit_ok(&["keygen", "--out", &path("gateway.key")]).trim().to_owned();
        let org_key = path("org.key");
        let credential = path("gateway.cred");
        tacit_ok(&["org", "issue", "--org-key", &org_key, "--subject", &gateway_id, "--role", "buyer", "--expires", "1h", "--out", &credential]);

        let policy = tacit::Policy::from_toml_str(&format!(
            "default = \"deny\"\n[[rule]]\neffect = \"allow\"\norgs = [\"{org}\"]\nroles = [\"buyer\"]\nintents = [\"{}\"]\n",
            DelegateTask::NAME
        ))
        .unwrap();
        let agent = Agent::builder()
            .card(TacitCard::new("seller"))
            .trust(org)
            .policy(policy)
            .on_ask(|_: Context, task: DelegateTask| async move {
                Ok::<_, Rejection>(TaskStatus { task_id: task.task_id, ..Default::default() })
            })
            .on_ask(|_: Context, task: TextTask| async move {
                Ok::<_, Rejection>(TextResult { text: task.text, ..Default::default() })
            })
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let peer = format!("{}={}", agent.local_addr().unwrap(), agent.id());

        // Without the credential: refused at the handshake, no skills.
        let (_outsider, url) = serve(&peer, &["--key", &path("gateway.key"), "--connect-timeout", "1"]);
        let card = card_of(&url).await;
        assert!(card.skills.is_empty(), "{:?}", card.skills);

        // With it: DelegateTask only (TextTask is not for buyers), and it works.
        let (_member, url) = serve(&peer, &["--key", &path("gateway.key"), "--credential", &credential]);
        let (card, client) = client(&url, "JSONRPC").await;
        let ids: Vec<&str> = card.skills.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["seller_DelegateTask"]);
        let params = serde_json::to_value(&card.capabilities.extensions.as_ref().unwrap()[0].params).unwrap();
        assert_eq!(params["gatewayAgentId"], gateway_id);
        let done = task(client.send_message(&request(data("seller_DelegateTask", json!({ "taskId": "m1" })))).await.unwrap());
        assert_eq!(done.status.state, TaskState::Completed, "{done:#?}");
        let text = client.send_message(&request(Message::new(Role::User, vec![Part::text("hi")]))).await.unwrap_err();
        assert_eq!(text.code, -32005, "TextTask was not offered to the gateway: {text:?}");
        agent.shutdown(Duration::from_millis(100)).await;
    })
    .await
    .expect("the test finished in time");
}
