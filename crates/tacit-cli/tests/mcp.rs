//! `tacit mcp` end to end: the real binary as a child process over stdio,
//! driven by rmcp's client (the official MCP SDK), in front of real Tacit
//! agents on 127.0.0.1. Every wait is bounded; the child is killed when the
//! client's transport is dropped.

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ClientInfo, ReadResourceRequestParams, ResourceContents};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{ConfigureCommandExt as _, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt as _};
use serde_json::{Value, json};
use tacit::intents::{DelegateTask, TaskState, TaskStatus, TaskUpdate};
use tacit::{Agent, AgentCard, Context, ErrorCode, Rejection};
use tokio::sync::mpsc;

const TACIT: &str = env!("CARGO_BIN_EXE_tacit");
/// The longest one test may run.
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// The longest to wait for one thing (a reply, a notification, a told message).
const WAIT: Duration = Duration::from_secs(15);

/// An MCP client that forwards `notifications/tools/list_changed`.
struct Client {
    tools_changed: mpsc::UnboundedSender<()>,
}

impl ClientHandler for Client {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.tools_changed.send(());
    }

    fn get_info(&self) -> ClientInfo {
        ClientInfo::default()
    }
}

/// An agent named `name` that answers `DelegateTask` (refusing task
/// `refuse`) and takes `TaskUpdate` tells, forwarding them to `told`.
async fn worker(name: &str, addr: &str, told: mpsc::UnboundedSender<TaskUpdate>) -> Agent {
    Agent::builder()
        .card(AgentCard::new(name))
        .on_ask(|cx: Context, task: DelegateTask| async move {
            match task.task_id.as_str() {
                "refuse" => Err(Rejection::refuse(ErrorCode::Declined, "out of stock")),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(TaskStatus::default())
                }
                "trace" => Ok(TaskStatus {
                    message: cx.trace().map(|trace| format!("{:02x?}", trace.trace_id)).unwrap_or_default(),
                    ..Default::default()
                }),
                _ => Ok(TaskStatus {
                    task_id: task.task_id,
                    state: TaskState::Working as i32,
                    message: task.description,
                    updated_at_micros: 1 << 60,
                    ..Default::default()
                }),
            }
        })
        .on_tell(move |_: Context, update: TaskUpdate| {
            let told = told.clone();
            async move {
                let _ = told.send(update);
            }
        })
        .bind(addr.parse().unwrap())
        .await
        .unwrap()
}

/// `tacit mcp` with these `--peer`s, and an rmcp client connected to it.
async fn bridge(peers: &[String]) -> (RunningService<RoleClient, Client>, mpsc::UnboundedReceiver<()>) {
    let command = tokio::process::Command::new(TACIT).configure(|command| {
        command.arg("mcp").arg("--connect-timeout").arg("2").arg("--timeout").arg("2");
        for peer in peers {
            command.arg("--peer").arg(peer);
        }
    });
    let (transport, _) =
        TokioChildProcess::builder(command).stderr(std::process::Stdio::inherit()).spawn().expect("spawn tacit mcp");
    let (tools_changed, changes) = mpsc::unbounded_channel();
    let client = tokio::time::timeout(WAIT, Client { tools_changed }.serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize");
    (client, changes)
}

fn unused_port() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

fn arguments(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

fn text(result: &rmcp::model::CallToolResult) -> String {
    result.content.iter().filter_map(|content| content.as_text().map(|text| text.text.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_of_a_peer_over_stdio() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (told, mut updates) = mpsc::unbounded_channel();
        let agent = worker("worker", "127.0.0.1:0", told).await;
        let addr = agent.local_addr().unwrap().to_string();
        let (client, _changes) = bridge(&[format!("{addr}={}", agent.id())]).await;

        let info = client.peer_info().expect("server info");
        assert_eq!(info.server_info.name, "tacit-mcp");
        assert!(info.capabilities.tools.as_ref().and_then(|tools| tools.list_changed).unwrap_or(false));

        // tools/list: one ask and one tell, named after the peer, with schemas and descriptions.
        let tools = client.list_all_tools().await.unwrap();
        let mut names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
        names.sort_unstable();
        assert_eq!(names, ["worker_DelegateTask", "worker_TaskUpdate"], "{tools:#?}");
        let ask = tools.iter().find(|tool| tool.name == "worker_DelegateTask").unwrap();
        let description = ask.description.as_deref().unwrap_or_default();
        assert!(description.starts_with("Asks an agent to carry out a task"), "{description}");
        assert_eq!(ask.input_schema["type"], "object");
        assert!(ask.input_schema["properties"]["taskId"].is_object(), "{:#?}", ask.input_schema);
        let output = ask.output_schema.as_ref().expect("an output schema from (tacit.v1.reply)");
        assert!(output["properties"]["updatedAtMicros"].is_object(), "{output:#?}");
        let meta = ask.meta.as_ref().expect("the tool's _meta");
        assert_eq!(meta.get("tacit/agentId"), Some(&json!(agent.id().to_string())));
        assert_eq!(meta.get("tacit/intent"), Some(&json!("tacit.intents.v1.DelegateTask")));
        assert_eq!(meta.get("tacit/lane"), Some(&json!("ask")));
        let tell = tools.iter().find(|tool| tool.name == "worker_TaskUpdate").unwrap();
        assert!(tell.output_schema.is_none());
        assert_eq!(tell.meta.as_ref().unwrap().get("tacit/lane"), Some(&json!("tell")));

        // An ask: the reply as structured content, and the same JSON as text.
        let call = CallToolRequestParams::new("worker_DelegateTask")
            .with_arguments(arguments(json!({"taskId": "t1", "description": "work"})));
        let result = client.call_tool(call).await.unwrap();
        assert_eq!(result.is_error, Some(false), "{result:#?}");
        let structured = result.structured_content.clone().expect("structured content");
        assert_eq!(structured["taskId"], "t1");
        assert_eq!(structured["state"], "TASK_STATE_WORKING");
        assert_eq!(structured["message"], "work");
        assert_eq!(structured["updatedAtMicros"], (1u64 << 60).to_string());
        assert_eq!(serde_json::from_str::<Value>(&text(&result)).unwrap(), structured);
        let validator = jsonschema::validator_for(&Value::Object((**output).clone())).unwrap();
        assert!(validator.is_valid(&structured), "{structured:#} does not fit {output:#?}");
        let input = jsonschema::validator_for(&Value::Object((*ask.input_schema).clone())).unwrap();
        assert!(input.is_valid(&json!({"taskId": "t1", "description": "work"})));
        assert!(!input.is_valid(&json!({"taskId": 1})));

        // `traceparent` in `_meta` reaches the agent as the ask's trace context.
        let mut call =
            CallToolRequestParams::new("worker_DelegateTask").with_arguments(arguments(json!({"taskId": "trace"})));
        let mut meta = rmcp::model::Meta::new();
        meta.insert("traceparent".into(), json!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
        call.meta = Some(meta);
        let traced = client.call_tool(call).await.unwrap();
        let trace_id: [u8; 16] =
            [0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c];
        assert_eq!(traced.structured_content.unwrap()["message"], format!("{trace_id:02x?}"));

        // A rejection: a tool error with the act, the code and the reason.
        let call =
            CallToolRequestParams::new("worker_DelegateTask").with_arguments(arguments(json!({"taskId": "refuse"})));
        let refused = client.call_tool(call).await.unwrap();
        assert_eq!(refused.is_error, Some(true), "{refused:#?}");
        assert_eq!(text(&refused), "REFUSE DECLINED: out of stock");

        // No reply within --timeout: a tool error, not a hung request.
        let call =
            CallToolRequestParams::new("worker_DelegateTask").with_arguments(arguments(json!({"taskId": "slow"})));
        let started = std::time::Instant::now();
        let slow = client.call_tool(call).await.unwrap();
        assert_eq!(slow.is_error, Some(true), "{slow:#?}");
        assert!(text(&slow).starts_with("DEADLINE_EXCEEDED"), "{slow:#?}");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

        // Bad arguments: invalid params, naming the field.
        let call = CallToolRequestParams::new("worker_DelegateTask")
            .with_arguments(arguments(json!({"taskId": "t2", "payload": "%%"})));
        let error = client.call_tool(call).await.unwrap_err();
        let rmcp::ServiceError::McpError(error) = error else { panic!("not a JSON-RPC error: {error:?}") };
        assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS);
        assert!(error.message.contains("field `payload`"), "{error:?}");
        assert_eq!(error.data.as_ref().unwrap()["field"], "payload");
        let call = CallToolRequestParams::new("worker_DelegateTask").with_arguments(arguments(json!({"taskid": "t"})));
        let error = client.call_tool(call).await.unwrap_err();
        assert!(
            error.to_string().contains("did you mean \\\"taskId\\\"") || error.to_string().contains("taskId"),
            "{error}"
        );
        let error = client.call_tool(CallToolRequestParams::new("worker_Nothing")).await.unwrap_err();
        assert!(error.to_string().contains("no tool named"), "{error}");

        // A tell: returns once sent, and the agent gets it.
        let call = CallToolRequestParams::new("worker_TaskUpdate")
            .with_arguments(arguments(json!({"status": {"taskId": "t1", "state": "TASK_STATE_COMPLETED"}})));
        let sent = client.call_tool(call).await.unwrap();
        assert_eq!(sent.is_error, Some(false), "{sent:#?}");
        let update = tokio::time::timeout(WAIT, updates.recv()).await.expect("the tell in time").unwrap();
        let status = update.status.unwrap();
        assert_eq!((status.task_id.as_str(), status.state), ("t1", TaskState::Completed as i32));

        // The peer's card as a resource.
        let resources = client.list_all_resources().await.unwrap();
        assert_eq!(resources.len(), 1, "{resources:#?}");
        let uri = format!("tacit://peer/{}", agent.id());
        assert_eq!(resources[0].uri, uri);
        let read = client.read_resource(ReadResourceRequestParams::new(uri)).await.unwrap();
        let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else { panic!("{read:#?}") };
        let card: Value = serde_json::from_str(text).unwrap();
        assert_eq!(card["card"]["name"], "worker");
        assert!(card["intents"].as_array().unwrap().iter().any(|i| i["tool"] == "worker_DelegateTask"), "{card:#}");

        client.cancel().await.unwrap();
        agent.shutdown(Duration::from_millis(100)).await;
    })
    .await
    .expect("the test took over 60 s");
}

/// A peer that is not up at the start joins later, then leaves: each time the
/// client is told the tool list changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_list_follows_the_peers() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (told, _updates) = mpsc::unbounded_channel();
        let first = worker("first", "127.0.0.1:0", told.clone()).await;
        let later = unused_port();
        let (client, mut changes) = bridge(&[first.local_addr().unwrap().to_string(), later.clone()]).await;
        let names = |tools: Vec<rmcp::model::Tool>| {
            let mut names: Vec<String> = tools.into_iter().map(|tool| tool.name.into_owned()).collect();
            names.sort_unstable();
            names
        };
        assert_eq!(names(client.list_all_tools().await.unwrap()), ["first_DelegateTask", "first_TaskUpdate"]);

        let second = worker("second", &later, told).await;
        tokio::time::timeout(WAIT, changes.recv()).await.expect("list_changed when the peer joins").unwrap();
        assert_eq!(
            names(client.list_all_tools().await.unwrap()),
            ["first_DelegateTask", "first_TaskUpdate", "second_DelegateTask", "second_TaskUpdate"]
        );

        second.shutdown(Duration::from_millis(100)).await;
        drop(second);
        tokio::time::timeout(WAIT, changes.recv()).await.expect("list_changed when the peer leaves").unwrap();
        assert_eq!(names(client.list_all_tools().await.unwrap()), ["first_DelegateTask", "first_TaskUpdate"]);

        client.cancel().await.unwrap();
        first.shutdown(Duration::from_millis(100)).await;
    })
    .await
    .expect("the test took over 60 s");
}

/// A peer that offers more intents in a capability update within its
/// session (a transport-level peer here: Rust agents fix their handlers at
/// bind, other implementations need not): the client is told the tool list
/// changed, and the new intent is a tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capability_update_changes_the_tools() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tacit::Intent as _;
    use tacit::intents::TextTask;
    use tacit_handshake::{Capabilities, IntentOffer};

    tokio::time::timeout(TEST_LIMIT, async {
        // Handles DelegateTask; once `grown`, TextTask too, in new sessions
        // (the offer filter) and in live ones (a capability update).
        let grown = Arc::new(AtomicBool::new(false));
        let text = || IntentOffer::handles(TextTask::ID, TextTask::NAME);
        let filter_grown = grown.clone();
        let filter: tacit_handshake::OfferFilter = Arc::new(move |_, _, offered: &Capabilities| {
            Ok(filter_grown.load(Ordering::SeqCst).then(|| offered.clone().with_intent(text())))
        });
        let endpoint = tacit_quic::Endpoint::builder()
            .identity(tacit_handshake::Identity::generate().unwrap())
            .card(AgentCard::new("growing"))
            .capabilities(
                Capabilities::default().with_intent(IntentOffer::handles(DelegateTask::ID, DelegateTask::NAME)),
            )
            .offer_filter(filter)
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (sessions_tx, mut sessions) = mpsc::unbounded_channel();
        let accepting = endpoint.clone();
        tokio::spawn(async move {
            while let Some(Ok(session)) = accepting.accept().await {
                let _ = sessions_tx.send(session);
            }
        });
        let peer = format!("{}={}", endpoint.local_addr().unwrap(), endpoint.agent_id());
        let (client, mut changes) = bridge(&[peer]).await;
        let names =
            |tools: Vec<rmcp::model::Tool>| tools.into_iter().map(|tool| tool.name.into_owned()).collect::<Vec<_>>();
        assert_eq!(names(client.list_all_tools().await.unwrap()), ["growing_DelegateTask"]);

        grown.store(true, Ordering::SeqCst);
        let mut live = Vec::new();
        while let Ok(session) = sessions.try_recv() {
            live.push(session);
        }
        for session in &live {
            let _ = session.add_intents(vec![text()]);
        }
        let started = tokio::time::Instant::now();
        loop {
            tokio::time::timeout(WAIT, changes.recv()).await.expect("list_changed after the update").unwrap();
            let now = names(client.list_all_tools().await.unwrap());
            if now.contains(&"growing_TextTask".to_owned()) {
                assert!(now.contains(&"growing_DelegateTask".to_owned()), "{now:?}");
                break;
            }
            assert!(started.elapsed() < WAIT, "the new intent never became a tool: {now:?}");
        }
        client.cancel().await.unwrap();
        drop(live);
    })
    .await
    .expect("the test took over 60 s");
}

/// Malformed and oversized input on stdin: a line that is not JSON gets a
/// JSON-RPC parse error and the server goes on; a line past
/// `MAX_LINE_LEN` (4 MiB) ends the session instead of growing a buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_input() {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    tokio::time::timeout(TEST_LIMIT, async {
        let mut child = tokio::process::Command::new(TACIT)
            .args(["mcp", "--connect-timeout", "0.3", "--peer", &unused_port()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        stdin.write_all(b"{not json\n").await.unwrap();
        let line = tokio::time::timeout(WAIT, stdout.next_line()).await.expect("an answer in time").unwrap().unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(answer["error"]["code"], -32700, "{answer}");

        // 5 MiB without a newline: the server stops reading and exits (the
        // write may fail once it has).
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..5 {
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let status = tokio::time::timeout(WAIT, child.wait()).await.expect("the server exits in time").unwrap();
        let mut stderr = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).await.unwrap();
        assert!(stderr.contains("a JSON-RPC message longer than 4194304 bytes"), "{status}: {stderr}");
    })
    .await
    .expect("the test took over 60 s");
}

/// `tacit mcp --http`: rmcp's streamable HTTP client lists and calls the
/// tools with the bearer token; without it, it is turned away; a
/// non-loopback address without a token is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_with_a_bearer_token() {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    // The workspace's reqwest has no crypto provider of its own (tacit-bridge's
    // `a2a` feature asks for `rustls-no-provider`): give it the ring provider
    // the rest of Tacit uses.
    let _ = rustls::crypto::ring::default_provider().install_default();

    tokio::time::timeout(TEST_LIMIT, async {
        let (told, _updates) = mpsc::unbounded_channel();
        let agent = worker("worker", "127.0.0.1:0", told).await;
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "s3cret-token\n").unwrap();
        let mut child = tokio::process::Command::new(TACIT)
            .args(["mcp", "--http", "127.0.0.1:0", "--bearer-token-file"])
            .arg(&token_file)
            .args(["--peer", &agent.local_addr().unwrap().to_string()])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(WAIT, async {
            while let Some(line) = stderr.next_line().await.unwrap() {
                eprintln!("{line}");
                if let Some(rest) = line.split_once("streamable HTTP at ").map(|(_, rest)| rest) {
                    return rest.split_once(' ').unwrap().0.to_owned();
                }
            }
            panic!("tacit mcp exited before serving");
        })
        .await
        .expect("tacit mcp serves in time");
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");

        let config = StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header("s3cret-token");
        let client =
            tokio::time::timeout(WAIT, ClientInfo::default().serve(StreamableHttpClientTransport::from_config(config)))
                .await
                .expect("initialize in time")
                .expect("initialize with the token");
        let tools = client.list_all_tools().await.unwrap();
        assert_eq!(tools.len(), 2, "{tools:#?}");
        let call = CallToolRequestParams::new("worker_DelegateTask").with_arguments(arguments(json!({"taskId": "h1"})));
        let result = client.call_tool(call).await.unwrap();
        assert_eq!(result.structured_content.unwrap()["taskId"], "h1");
        client.cancel().await.unwrap();

        let config = StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header("wrong");
        let refused =
            tokio::time::timeout(WAIT, ClientInfo::default().serve(StreamableHttpClientTransport::from_config(config)))
                .await
                .expect("an answer in time");
        assert!(refused.is_err(), "a wrong token is turned away");
        let refused =
            tokio::time::timeout(WAIT, ClientInfo::default().serve(StreamableHttpClientTransport::from_uri(url)))
                .await
                .expect("an answer in time");
        assert!(refused.is_err(), "no token is turned away");

        let open = tokio::process::Command::new(TACIT)
            .args(["mcp", "--http", "0.0.0.0:0", "--peer", "127.0.0.1:9"])
            .stdin(std::process::Stdio::null())
            .output();
        let open = tokio::time::timeout(WAIT, open).await.expect("exits in time").unwrap();
        assert_eq!(open.status.code(), Some(1), "{open:?}");
        assert!(String::from_utf8_lossy(&open.stderr).contains("needs --bearer-token-file"), "{open:?}");

        child.kill().await.unwrap();
        agent.shutdown(Duration::from_millis(100)).await;
    })
    .await
    .expect("the test took over 60 s");
}
