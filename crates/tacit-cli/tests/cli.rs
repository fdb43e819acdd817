//! The `tacit` binary end to end, on 127.0.0.1: keys, a `tacit listen`
//! process, and the commands that talk to it. Every child process is killed
//! when its guard is dropped (also when a test fails), and every wait is
//! bounded.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tacit::intents::{DelegateTask, TaskStatus};
use tacit::{Agent, AgentId, Identity, Intent};
use tacit_testkit::LOCALHOST;
use tacit_testkit::process::ChildGuard;

const TACIT: &str = env!("CARGO_BIN_EXE_tacit");
/// The longest any one command may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(20);
/// The longest to wait for a line from `tacit listen`.
const LINE_LIMIT: Duration = Duration::from_secs(10);

/// What a finished command printed, and how it exited.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Output {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    #[track_caller]
    fn ok(self) -> Self {
        assert!(self.status.success(), "the command failed: {self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Runs `tacit ARGS` to completion (killed after [`COMMAND_LIMIT`]).
fn tacit(args: &[&str]) -> Output {
    tacit_with_stdin(args, None)
}

/// Runs `tacit ARGS` with `stdin` as its standard input (none: empty).
fn tacit_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let started = Instant::now();
    let child = Command::new(TACIT)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tacit binary starts");
    let mut guard = ChildGuard(child);
    if let (Some(text), Some(mut pipe)) = (stdin, guard.0.stdin.take()) {
        let text = text.to_owned();
        // Written from a thread, closed at the end: the child sees end of input.
        thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(guard.0.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = drain(guard.0.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(started.elapsed() < COMMAND_LIMIT, "`tacit {}` ran over {COMMAND_LIMIT:?}", args.join(" "));
        thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap(), took }
}

/// A running `tacit listen`, with the lines it printed.
struct Listen {
    _guard: ChildGuard,
    addr: String,
    id: String,
    lines: mpsc::Receiver<String>,
    seen: Mutex<Vec<Value>>,
    stderr: Arc<Mutex<String>>,
}

impl Listen {
    fn start(extra: &[&str]) -> Self {
        let mut args = vec!["listen", "--addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let child = Command::new(TACIT)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tacit listen starts");
        let mut guard = ChildGuard(child);
        let (line_tx, lines) = mpsc::channel();
        let stdout = guard.0.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (ready_tx, ready) = mpsc::channel();
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let stderr = guard.0.stderr.take().unwrap();
        let collected = stderr_text.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("listening on ") {
                    let _ = ready_tx.send(rest.to_owned());
                }
                collected.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let announced = ready.recv_timeout(LINE_LIMIT).unwrap_or_else(|_| {
            panic!("tacit listen did not announce itself; stderr: {}", stderr_text.lock().unwrap())
        });
        let (addr, id) = announced.split_once(" as ").expect("listening on ADDR as ID");
        id.parse::<AgentId>().expect("listen prints a valid AgentId");
        Self {
            _guard: guard,
            addr: addr.to_owned(),
            id: id.to_owned(),
            lines,
            seen: Mutex::default(),
            stderr: stderr_text,
        }
    }

    /// The first line (printed so far or within [`LINE_LIMIT`]) that `matches`.
    #[track_caller]
    fn line(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + LINE_LIMIT;
        let mut seen = self.seen.lock().unwrap();
        loop {
            if let Some(found) = seen.iter().find(|line| matches(line)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                    seen.push(value);
                }
                Err(_) => panic!(
                    "tacit listen printed no line with {what}; lines: {seen:#?}; stderr: {}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }
}

/// A UDP port on 127.0.0.1 where nothing listens (it was free a moment ago).
fn unused_port() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

#[test]
fn keygen_and_id() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("agent.key");
    let key = key.to_str().unwrap();
    let made = tacit(&["keygen", "--out", key]).ok();
    let id = made.stdout.trim();
    id.parse::<AgentId>().expect("keygen prints an AgentId");
    assert_eq!(tacit(&["id", key]).ok().stdout.trim(), id);

    let again = tacit(&["keygen", "--out", key]);
    assert_eq!(again.code(), Some(1), "{again:#?}");
    assert!(again.stderr.contains("already exists"), "{again:#?}");
    assert_eq!(tacit(&["id", key]).ok().stdout.trim(), id, "the key file was changed");

    let missing = tacit(&["id", dir.path().join("none.key").to_str().unwrap()]);
    assert_eq!(missing.code(), Some(1));
    assert!(missing.stderr.contains("tacit keygen"), "{missing:#?}");
}

#[test]
fn listen_describe_ping_ask_tell_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let server_key = dir.path().join("server.key");
    let client_key = dir.path().join("client.key");
    let capture = dir.path().join("capture.bin");
    let client_id = tacit(&["keygen", "--out", client_key.to_str().unwrap()]).ok().stdout.trim().to_owned();
    let listen = Listen::start(&["--key", server_key.to_str().unwrap(), "--capture", capture.to_str().unwrap()]);
    // The key file was created and holds the identity announced.
    assert_eq!(tacit(&["id", server_key.to_str().unwrap()]).ok().stdout.trim(), listen.id);
    let addr = listen.addr.as_str();

    let described = tacit(&["describe", addr, "--json", "--expect", &listen.id]).ok().json();
    assert_eq!(described["agent_id"], listen.id.as_str());
    assert_eq!(described["card"]["name"], "tacit-listen");
    let intents = described["intents"].as_array().unwrap();
    let ping = intents.iter().find(|i| i["name"] == "tacit.intents.v1.Ping").expect("Ping is offered");
    assert_eq!(ping["intent_id"], tacit::intents::Ping::ID.to_string().as_str());
    assert_eq!(ping["handles"], true);
    assert_eq!(ping["lanes"], serde_json::json!(["ask"]));
    assert_eq!(ping["reply"], "tacit.intents.v1.Pong");
    assert_eq!(ping["stream_item"], Value::Null);
    let reject = intents.iter().find(|i| i["name"] == "tacit.intents.v1.RejectProposal").expect("offered");
    assert_eq!((&reject["lanes"], &reject["reply"]), (&serde_json::json!(["tell"]), &Value::Null));
    let table = tacit(&["describe", addr]).ok();
    assert!(table.stdout.contains("tacit.intents.v1.Ping") && table.stdout.contains(&listen.id), "{table:#?}");
    assert!(table.stdout.contains("ask → tacit.intents.v1.Pong"), "{table:#?}");

    let pinged = tacit(&["ping", addr, "-n", "3"]).ok();
    assert_eq!(pinged.stdout.matches("pong from").count(), 3, "{pinged:#?}");
    assert!(pinged.stdout.contains("3 sent, 3 received, 0 failed"), "{pinged:#?}");
    assert!(pinged.stdout.contains("rtt min/p50/p99/max/mean"), "{pinged:#?}");
    let summary = tacit(&["ping", addr, "-n", "2", "--json"]).ok().json();
    assert_eq!(summary["received"], 2);
    assert!(summary["rtt_us"]["p50"].as_f64().unwrap() > 0.0);

    let key = client_key.to_str().unwrap();
    let asked = tacit(&["ask", addr, "tacit.intents.v1.Ping", r#"{"nonce": "5"}"#, "--key", key]).ok();
    // prost-reflect's JSON writes uint64 as a string.
    assert_eq!(asked.json(), serde_json::json!({"nonce": "5"}), "{asked:#?}");
    // The short name works when it is unique; so does a number for a uint64.
    assert_eq!(tacit(&["ask", addr, "Ping", r#"{"nonce": 6}"#]).ok().json()["nonce"], "6");
    let health = tacit(&["ask", addr, "HealthCheck"]).ok().json();
    assert_eq!(health["status"], "SERVING");

    tacit(&["tell", addr, "tacit.intents.v1.Ping", r#"{"nonce": "9"}"#, "--key", key]).ok();
    tacit(&["tell", addr, "tacit.intents.v1.RejectProposal", r#"{"proposal_id": "3", "reason": "too dear"}"#]).ok();

    let ask = listen.line("the asked Ping", |l| l["lane"] == "ask" && l["message"]["nonce"] == "5");
    assert_eq!(ask["peer"], client_id.as_str());
    assert_eq!(ask["act"], "REQUEST");
    assert_eq!(ask["intent"], "tacit.intents.v1.Ping");
    assert_eq!(ask["intent_id"], tacit::intents::Ping::ID.to_string().as_str());
    assert!(ask["ts"].as_str().unwrap().ends_with('Z'));
    let tell = listen.line("the told Ping", |l| l["lane"] == "tell" && l["message"]["nonce"] == "9");
    assert_eq!(tell["peer"], client_id.as_str());
    assert_eq!(tell["act"], "INFORM");
    assert_eq!(tell["intent"], "tacit.intents.v1.Ping");
    let reject = listen.line("the told RejectProposal", |l| l["intent"] == "tacit.intents.v1.RejectProposal");
    assert_eq!(reject["message"], serde_json::json!({"proposal_id": "3", "reason": "too dear"}));
    // The pings of `tacit ping` are printed too.
    listen.line("a ping of `tacit ping`", |l| l["message"]["nonce"] == "3");

    // The capture holds the same messages, with sender and time: inspect
    // prints each in the shape listen printed it, key for key.
    let inspected = tacit(&["inspect", capture.to_str().unwrap()]).ok();
    let frames: Vec<Value> = inspected.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let asked_frame = frames
        .iter()
        .find(|f| f["intent"] == "tacit.intents.v1.Ping" && f["message"]["nonce"] == "5")
        .unwrap_or_else(|| panic!("no captured ask: {frames:#?}"));
    assert_eq!(asked_frame["act"], "REQUEST");
    assert_eq!(asked_frame["intent_id"], tacit::intents::Ping::ID.to_string().as_str());
    let keys = |line: &Value| line.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(asked_frame), keys(&ask), "inspect: {asked_frame:#?}\nlisten: {ask:#?}");
    assert!(keys(&ask).contains(&"trace".to_owned()), "{ask:#?}");
    for key in
        ["ts", "peer", "lane", "act", "intent", "intent_id", "message_id", "in_reply_to", "conversation", "message"]
    {
        assert_eq!(asked_frame[key], ask[key], "{key}: inspect {asked_frame:#?}\nlisten {ask:#?}");
    }
    assert_eq!(asked_frame["peer"], client_id.as_str());
    let told_frame = frames
        .iter()
        .find(|f| f["act"] == "INFORM" && f["message"]["nonce"] == "9")
        .unwrap_or_else(|| panic!("no captured tell: {frames:#?}"));
    for key in ["ts", "peer", "lane", "message_id"] {
        assert_eq!(told_frame[key], tell[key], "{key}");
    }
    assert_eq!(keys(told_frame), keys(&tell));

    // Listening again appends to the capture; a file that is not one is refused.
    let not_a_capture = dir.path().join("not-a-capture.bin");
    std::fs::write(&not_a_capture, b"something else").unwrap();
    let refused = tacit(&["listen", "--addr", "127.0.0.1:0", "--capture", not_a_capture.to_str().unwrap()]);
    assert_eq!(refused.code(), Some(1), "{refused:#?}");
    assert!(refused.stderr.contains("not a capture"), "{refused:#?}");
}

#[test]
fn errors_have_their_exit_codes() {
    let listen = Listen::start(&[]);
    let addr = listen.addr.as_str();

    let unknown_field = tacit(&["ask", addr, "tacit.intents.v1.Ping", r#"{"nonse": 1}"#]);
    assert_eq!(unknown_field.code(), Some(6), "{unknown_field:#?}");
    assert!(unknown_field.stderr.contains("nonse") && unknown_field.stderr.contains("nonce"), "{unknown_field:#?}");
    let bad_value = tacit(&["tell", addr, "tacit.intents.v1.Ping", r#"{"nonce": "many"}"#]);
    assert_eq!(bad_value.code(), Some(6), "{bad_value:#?}");
    assert!(bad_value.stderr.contains("field `nonce` (uint64)"), "{bad_value:#?}");
    let not_json = tacit(&["ask", addr, "Ping", "{nonce"]);
    assert_eq!(not_json.code(), Some(6), "{not_json:#?}");

    let unknown_intent = tacit(&["ask", addr, "tacit.intents.v1.Pnig", "{}"]);
    assert_eq!(unknown_intent.code(), Some(5), "{unknown_intent:#?}");
    assert!(unknown_intent.stderr.contains("close names: tacit.intents.v1.Ping"), "{unknown_intent:#?}");
    assert!(unknown_intent.stderr.contains("tacit.intents.v1.HealthCheck"), "{unknown_intent:#?}");

    // An ask with no reply type is refused by listen.
    let refused = tacit(&["ask", addr, "tacit.intents.v1.RejectProposal", "{}"]);
    assert_eq!(refused.code(), Some(7), "{refused:#?}");
    assert!(refused.stderr.contains("REFUSE") && refused.stderr.contains("records asks"), "{refused:#?}");

    // listen takes Ping on the ask and one-way lanes only, as its offer says
    // (PROTOCOL.md hs.lanes-send): the stream fails before it opens (exit 7).
    let no_stream = tacit(&["stream", addr, "Ping", "{}"]);
    assert_eq!(no_stream.code(), Some(7), "{no_stream:#?}");
    assert!(no_stream.stderr.contains("not on the stream lane"), "{no_stream:#?}");
    assert!(no_stream.stderr.contains("declares no stream types"), "{no_stream:#?}");
    let nothing_to_send = tacit(&["stream", addr, "Ping", "{}", "--send"]);
    assert_eq!(nothing_to_send.code(), Some(6), "{nothing_to_send:#?}");
    assert!(nothing_to_send.stderr.contains("tacit.v1.stream_send"), "{nothing_to_send:#?}");

    let other = tacit(&["keygen", "--out", tempfile::tempdir().unwrap().path().join("k").to_str().unwrap()]).ok();
    let wrong = tacit(&["ping", addr, "-n", "1", "--expect", other.stdout.trim()]);
    assert_eq!(wrong.code(), Some(4), "{wrong:#?}");
    assert!(wrong.stderr.contains(other.stdout.trim()) && wrong.stderr.contains(&listen.id), "{wrong:#?}");

    let nobody = unused_port();
    let unreachable = tacit(&["describe", &nobody]);
    assert_eq!(unreachable.code(), Some(3), "{unreachable:#?}");
    assert!(unreachable.stderr.contains(&nobody), "{unreachable:#?}");
    assert!(unreachable.took < Duration::from_secs(10), "took {:?}", unreachable.took);

    let usage = tacit(&["ping", addr, "-n", "zero"]);
    assert_eq!(usage.code(), Some(2), "{usage:#?}");
}

/// A typed agent tells and asks `DelegateTask`, which `tacit listen` was not
/// built with: listen adopts it, fetches its schema from the sender and
/// prints it decoded, and answers the ask with the empty reply its schema names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_decodes_an_intent_it_was_not_built_with() {
    use tacit_build_tests::acme::market::v1::CancelSlot;

    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture.bin");
    let listen = Listen::start(&["--capture", capture.to_str().unwrap()]);
    tokio::time::timeout(Duration::from_secs(30), async {
        let agent = Agent::builder().emits::<DelegateTask>().emits::<CancelSlot>().bind(LOCALHOST).await.unwrap();
        let peer = agent.connect(listen.addr.parse().unwrap(), listen.id.parse::<AgentId>().unwrap()).await.unwrap();
        peer.ready().await.unwrap();
        let started = Instant::now();
        while !peer.can_send::<DelegateTask>() || !peer.can_send::<CancelSlot>() {
            assert!(started.elapsed() < Duration::from_secs(5), "listen never adopted DelegateTask");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let task = DelegateTask {
            task_id: "t-42".into(),
            description: "sent by a typed agent".into(),
            payload: bytes::Bytes::from_static(b"\x01\x02"),
            ..Default::default()
        };
        peer.tell(task.clone()).await.unwrap();
        let status: TaskStatus = peer.ask(DelegateTask { task_id: "t-43".into(), ..task }).await.unwrap();
        assert_eq!(status, TaskStatus::default(), "listen answers with the empty reply");

        let told = tokio::task::block_in_place(|| {
            listen.line("the told DelegateTask", |l| l["lane"] == "tell" && l["message"]["task_id"] == "t-42")
        });
        assert_eq!(told["intent"], DelegateTask::NAME);
        assert_eq!(told["peer"], agent.id().to_string().as_str());
        assert_eq!(told["schema"], "peer", "decoded through the schema fetched from the sender");
        assert_eq!(told["message"]["description"], "sent by a typed agent");
        assert_eq!(told["message"]["payload"], "AQI=");
        let asked = tokio::task::block_in_place(|| {
            listen.line("the asked DelegateTask", |l| l["lane"] == "ask" && l["message"]["task_id"] == "t-43")
        });
        assert_eq!(asked["act"], "REQUEST");

        // An intent that is not a standard one: inspect decodes it from the
        // schema listen fetched and kept in the capture, as listen did.
        peer.tell(CancelSlot { slot_id: 5 }).await.unwrap();
        let cancel = tokio::task::block_in_place(|| {
            listen.line("the told CancelSlot", |l| l["intent"] == CancelSlot::NAME && l["message"]["slot_id"] == "5")
        });
        assert_eq!(cancel["schema"], "peer");
        let inspected = tokio::task::block_in_place(|| tacit(&["inspect", capture.to_str().unwrap()])).ok();
        let lines: Vec<Value> = inspected.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let captured = lines
            .iter()
            .find(|l| l["message_id"] == cancel["message_id"])
            .unwrap_or_else(|| panic!("no captured CancelSlot: {lines:#?}"));
        assert_eq!(*captured, cancel, "inspect prints the line listen printed");
    })
    .await
    .expect("the test took over 30 s");
}

#[test]
fn inspect_reports_malformed_frames() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
        path
    };
    // One good frame (the PROTOCOL.md envelope example), then a frame whose body is not an envelope.
    let good: &[u8] = &[
        0x16, 0x08, 0x03, 0x18, 0x01, 0x21, 0x2a, 0, 0, 0, 0, 0, 0, 0, 0x7a, 0x07, 0x0a, 0x05, b'h', b'e', b'l', b'l',
        b'o',
    ];
    let mut bytes = good.to_vec();
    bytes.extend_from_slice(&[0x02, 0xff, 0xff]);
    let path = write("bad.bin", &bytes);
    let out = tacit(&["inspect", path.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("offset 23"), "{out:#?}");
    let first: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert!(first["undecoded"]["reason"].as_str().unwrap().contains("alias 3"), "{first:#?}");
    assert_eq!(first["intent_id"], Value::Null);
    assert_eq!(first["message_id"], "42");
    assert_eq!(first["undecoded"]["payload_base64"], "CgVoZWxsbw==");
    // A file of bare frames knows neither sender nor time.
    assert_eq!((&first["ts"], &first["peer"]), (&Value::Null, &Value::Null));

    let truncated = write("short.bin", &good[..10]);
    let out = tacit(&["inspect", truncated.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    assert!(out.stderr.contains("offset 0") && out.stderr.contains("FRAME_TRUNCATED"), "{out:#?}");
}

/// `inspect --schema` decodes payloads of the messages of a descriptor set,
/// matched by IntentId.
#[test]
fn inspect_decodes_with_a_descriptor_set() {
    use prost::Message as _;
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet};

    let set = FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("demo.proto".into()),
            package: Some("demo.v1".into()),
            message_type: vec![DescriptorProto {
                name: Some("Hello".into()),
                field: vec![FieldDescriptorProto {
                    name: Some("greeting".into()),
                    number: Some(1),
                    label: Some(Label::Optional as i32),
                    r#type: Some(Type::String as i32),
                    json_name: Some("greeting".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            syntax: Some("proto3".into()),
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let id = tacit::IntentId::of_message_in_encoded_set(&set, "demo.v1.Hello").unwrap();
    let mut payload = Vec::new();
    prost::encoding::string::encode(1, &"hi there".to_owned(), &mut payload);
    let mut envelope = tacit_wire::Envelope::new(
        tacit_wire::IntentRef::Id(id),
        tacit::Act::Inform,
        7,
        bytes::Bytes::from(payload.clone()),
    );
    envelope.conversation_id = tacit::ConversationId::new("c-1").unwrap();
    let frame = tacit_wire::FrameEncoder::default().encode_to_bytes(&envelope).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture.bin");
    std::fs::write(&capture, &frame).unwrap();
    let schema = dir.path().join("demo.pb");
    std::fs::write(&schema, &set).unwrap();

    let raw = tacit(&["inspect", capture.to_str().unwrap()]).ok().json();
    assert_eq!(raw["intent_id"], id.to_string().as_str());
    assert_eq!(raw["undecoded"]["payload_base64"], data_encoding::BASE64.encode(&payload).as_str());
    assert_eq!(raw["conversation"], "c-1");
    let decoded = tacit(&["inspect", capture.to_str().unwrap(), "--schema", schema.to_str().unwrap()]).ok().json();
    assert_eq!(decoded["intent"], "demo.v1.Hello");
    assert_eq!(decoded["schema"], "file");
    assert_eq!(decoded["message"], serde_json::json!({"greeting": "hi there"}));
    assert_eq!(decoded["act"], "INFORM");
    assert_eq!(decoded["message_id"], "7");

    let not_a_set = tacit(&["inspect", capture.to_str().unwrap(), "--schema", capture.to_str().unwrap()]);
    assert_eq!(not_a_set.code(), Some(1), "{not_a_set:#?}");
    assert!(not_a_set.stderr.contains("FileDescriptorSet"), "{not_a_set:#?}");
}

/// `ask` against a typed agent (not `tacit listen`): the reply decoded
/// through the request's schema, a refusal (exit 7) and a timeout (exit 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_a_typed_agent() {
    use tacit::intents::TaskState;
    use tacit::{Context, ErrorCode, Rejection};

    tokio::time::timeout(Duration::from_secs(40), async {
        let agent = Agent::builder()
            .on_ask(|_: Context, task: DelegateTask| async move {
                match task.task_id.as_str() {
                    "refuse" => Err(Rejection::refuse(ErrorCode::TooManyAsks, "busy")),
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        Ok(TaskStatus::default())
                    }
                    _ => Ok(TaskStatus {
                        task_id: task.task_id,
                        state: TaskState::Working as i32,
                        message: task.description,
                        ..Default::default()
                    }),
                }
            })
            .bind(LOCALHOST)
            .await
            .unwrap();
        let addr = agent.local_addr().unwrap().to_string();
        let id = agent.id().to_string();
        let run = |args: Vec<String>| {
            tokio::task::block_in_place(|| tacit(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        };
        let ask = |task: &str, extra: &[&str]| {
            let mut args: Vec<String> = ["ask", &addr, "DelegateTask", task, "--expect", &id].map(String::from).into();
            args.extend(extra.iter().map(|s| s.to_string()));
            run(args)
        };

        let done = ask(r#"{"task_id": "t1", "description": "work"}"#, &[]).ok().json();
        assert_eq!(done["task_id"], "t1");
        assert_eq!(done["state"], "TASK_STATE_WORKING");
        assert_eq!(done["message"], "work");

        let refused = ask(r#"{"task_id": "refuse"}"#, &[]);
        assert_eq!(refused.code(), Some(7), "{refused:#?}");
        assert!(refused.stderr.contains("REFUSE (TOO_MANY_ASKS): busy"), "{refused:#?}");

        let slow = ask(r#"{"task_id": "slow"}"#, &["--timeout", "0.5"]);
        assert_eq!(slow.code(), Some(8), "{slow:#?}");
        assert!(slow.took < Duration::from_secs(4), "took {:?}", slow.took);

        let bad_bytes = ask(r#"{"task_id": "x", "payload": "%%"}"#, &[]);
        assert_eq!(bad_bytes.code(), Some(6), "{bad_bytes:#?}");
        assert!(bad_bytes.stderr.contains("field `payload` (bytes (base64))"), "{bad_bytes:#?}");
    })
    .await
    .expect("the test took over 40 s");
}

/// An agent with a stream handler for `WatchOffers` (built with tacit-build,
/// whose `.proto` names `SlotOffer` as the item and `Bid` as what the opener
/// sends): `describe` shows the lane and its types, and `tacit stream`
/// prints the offers, sends bids from stdin, stops after `--count` and gives
/// up after `--timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_stream_a_stream_lane() {
    use tacit::{Context, StreamReceiver, StreamSender};
    use tacit_build_tests::acme::market::v1::{Bid, SlotOffer, WatchOffers};

    tokio::time::timeout(Duration::from_secs(60), async {
        // Two offers, then one per bid at the bid's price, then a last one
        // once the opener's direction ends. "forever" never ends, "silent"
        // sends nothing.
        let agent =
            Agent::builder()
                .on_stream(
                    |_: Context,
                     watch: WatchOffers,
                     mut offers: StreamSender<SlotOffer>,
                     mut bids: StreamReceiver<Bid>| async move {
                        let offer = |slot_id: u64, price_cents: u32| SlotOffer {
                            slot_id,
                            resource: watch.resource.clone(),
                            price_cents,
                        };
                        match watch.resource.as_str() {
                            "forever" => {
                                for slot in 1.. {
                                    if offers.send(&offer(slot, 1)).await.is_err() {
                                        return;
                                    }
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                            }
                            "silent" => tokio::time::sleep(Duration::from_secs(30)).await,
                            // Errors end the handler: the opener may go away (a bad bid).
                            _ => {
                                let _ = async {
                                    offers.send(&offer(1, 100)).await?;
                                    offers.send(&offer(2, 200)).await?;
                                    while let Some(bid) = bids.recv().await? {
                                        offers.send(&offer(bid.slot_id, bid.price_cents)).await?;
                                    }
                                    offers.send(&offer(99, 0)).await?;
                                    offers.finish().await
                                }
                                .await;
                            }
                        }
                    },
                )
                .bind("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
        let addr = agent.local_addr().unwrap().to_string();
        let run = |args: &[&str], stdin: Option<&str>| tokio::task::block_in_place(|| tacit_with_stdin(args, stdin));

        let described = run(&["describe", &addr, "--json"], None).ok().json();
        let intents = described["intents"].as_array().unwrap();
        let watch = intents.iter().find(|i| i["name"] == WatchOffers::NAME).expect("WatchOffers is offered");
        assert_eq!(watch["lanes"], serde_json::json!(["stream"]), "{watch:#?}");
        assert_eq!(watch["stream_item"], SlotOffer::NAME);
        assert_eq!(watch["stream_send"], Bid::NAME);
        assert_eq!(watch["reply"], Value::Null);
        let ping = intents.iter().find(|i| i["name"] == "tacit.intents.v1.Ping").expect("Ping is offered");
        assert_eq!(ping["reply"], "tacit.intents.v1.Pong");
        let table = run(&["describe", &addr], None).ok();
        assert!(table.stdout.contains("stream → acme.market.v1.SlotOffer (sends acme.market.v1.Bid)"), "{table:#?}");

        let items = |out: &Output| -> Vec<Value> {
            out.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
        };
        let slots = |items: &[Value]| -> Vec<String> {
            items.iter().map(|i| i["slot_id"].as_str().unwrap().to_owned()).collect()
        };

        // Nothing to send: the tool ends its direction at once.
        let watched = run(&["stream", &addr, "WatchOffers", r#"{"resource": "gpu"}"#], None).ok();
        let offers = items(&watched);
        assert_eq!(slots(&offers), ["1", "2", "99"], "{watched:#?}");
        assert_eq!(offers[0], serde_json::json!({"slot_id": "1", "resource": "gpu", "price_cents": 100}));

        // Bids from stdin, one JSON object a line.
        let bids = "{\"slot_id\": 7, \"price_cents\": 70}\n\n{\"slot_id\": \"8\", \"price_cents\": 80}\n";
        let bid = run(&["stream", &addr, "WatchOffers", r#"{"resource": "cpu"}"#, "--send"], Some(bids)).ok();
        let offers = items(&bid);
        assert_eq!(slots(&offers), ["1", "2", "7", "8", "99"], "{bid:#?}");
        assert_eq!(offers[3]["price_cents"], 80);

        let bad_bid = run(&["stream", &addr, "WatchOffers", "{}", "--send"], Some("{\"slot\": 1}\n"));
        assert_eq!(bad_bid.code(), Some(6), "{bad_bid:#?}");
        assert!(bad_bid.stderr.contains("stdin line 1") && bad_bid.stderr.contains("slot_id"), "{bad_bid:#?}");

        // A stream that never ends: --count ends it cleanly, --timeout gives up.
        let counted = run(&["stream", &addr, "WatchOffers", r#"{"resource": "forever"}"#, "-n", "3"], None).ok();
        assert_eq!(slots(&items(&counted)), ["1", "2", "3"], "{counted:#?}");
        // Stdin still open when the stream ends: the tool exits all the same.
        let mut open_stdin = ChildGuard(
            Command::new(TACIT)
                .args(["stream", &addr, "WatchOffers", r#"{"resource": "forever"}"#, "--send", "-n", "2"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let _stdin = open_stdin.0.stdin.take();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = open_stdin.0.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "tacit stream waits for stdin after the stream ended");
            tokio::task::block_in_place(|| thread::sleep(Duration::from_millis(10)));
        };
        assert!(status.success(), "{status:?}");

        let silent = run(&["stream", &addr, "WatchOffers", r#"{"resource": "silent"}"#, "--timeout", "0.5"], None);
        assert_eq!(silent.code(), Some(8), "{silent:#?}");
        assert!(silent.stderr.contains("did not end within 500 ms"), "{silent:#?}");
        assert!(silent.took < Duration::from_secs(5), "took {:?}", silent.took);
    })
    .await
    .expect("the test took over 60 s");
}

/// `tacit listen` prints the trace id (hex) of a message that carries a
/// trace context, and `null` for one that does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_prints_the_trace_id() {
    use tacit::intents::{Ping, Pong};
    let listen = Listen::start(&[]);
    tokio::time::timeout(Duration::from_secs(30), async {
        let agent = Agent::builder().emits::<Ping>().bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let peer = agent.connect(listen.addr.parse().unwrap(), listen.id.parse::<AgentId>().unwrap()).await.unwrap();
        let trace = tacit::TraceContext { trace_id: [0x5a; 16], span_id: [0x01; 8], flags: 1 };
        let traced = tacit::AskOptions::default().trace(trace);
        let _: tacit::Reply<Pong> = peer.ask_with(Ping { nonce: 71 }, traced).await.unwrap();
        let _: Pong = peer.ask(Ping { nonce: 72 }).await.unwrap();
        let traced = tokio::task::block_in_place(|| listen.line("the traced ping", |l| l["message"]["nonce"] == "71"));
        assert_eq!(traced["trace"]["trace_id"], "5a".repeat(16));
        let plain = tokio::task::block_in_place(|| listen.line("the plain ping", |l| l["message"]["nonce"] == "72"));
        assert_eq!(plain["trace"], Value::Null);
    })
    .await
    .expect("the test took over 30 s");
}

/// `[session.close-normal]`: a tool that is done with its peer closes the
/// session with `CLOSED` (0x30d), not 0 and not `SHUTDOWN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_closes_its_session_with_closed() {
    use tacit::intents::{Ping, Pong};
    use tacit::transport::{Capabilities, Endpoint, Incoming, IntentOffer};
    use tacit::{AgentCard, ErrorCode, Identity};

    tokio::time::timeout(Duration::from_secs(40), async {
        let server = Endpoint::builder()
            .identity(Identity::from_secret_bytes(&[77; 32]))
            .card(AgentCard::new("close-code"))
            .capabilities(Capabilities::default().with_intent(IntentOffer::handles(Ping::ID, "tacit.intents.v1.Ping")))
            .bind(LOCALHOST)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let accepted = tokio::spawn(async move {
            let session = server.accept().await.unwrap().unwrap();
            while let Some(incoming) = session.next_incoming().await {
                if let Incoming::Ask(ask) = incoming {
                    // Ping and Pong have the same encoding: `nonce = 1`.
                    ask.responder.reply(Pong::ID, ask.envelope.payload.clone());
                }
            }
            let _ = session.closed().await;
            // "closed by peer: REASON (code N)" (quinn's Display of an application close).
            let reason = session.connection().close_reason().map(|e| e.to_string()).unwrap_or_default();
            let code = reason.rsplit_once("(code ").and_then(|(_, code)| code.trim_end_matches(')').parse().ok());
            code.unwrap_or_else(|| panic!("the session ended without an application close: {reason}"))
        });
        tokio::task::block_in_place(|| tacit(&["ping", &addr, "-n", "1"])).ok();
        let code: u64 = accepted.await.unwrap();
        assert_eq!(code, ErrorCode::Closed as u64, "the CLI closed with {code:#x}");
    })
    .await
    .expect("the test took over 40 s");
}

/// `tacit org keygen / issue / revoke / show`, and what `show` prints is
/// what a verifier accepts (rules `trust.format`, `trust.subject`,
/// `revoke.format`, `revoke.refused`).
#[test]
fn org_keygen_issue_revoke_show() {
    use tacit_handshake::credential::{CredentialError, OrgKey, SignedCredential, TrustStore};

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (org_file, cred_file, list_file) = (path("org.key"), path("agent.cred"), path("org.revoked"));
    let org: OrgKey = tacit(&["org", "keygen", "--out", &org_file]).ok().stdout.trim().parse().unwrap();
    let again = tacit(&["org", "keygen", "--out", &org_file]);
    assert_eq!(again.code(), Some(1), "{again:#?}");

    let agent = Identity::generate().unwrap().agent_id();
    let subject = agent.to_string();
    let issued = tacit(&[
        "org",
        "issue",
        "--org-key",
        &org_file,
        "--subject",
        &subject,
        "--role",
        "buyer",
        "--role",
        "auditor",
        "--expires",
        "1h",
        "--serial",
        "42",
        "--out",
        &cred_file,
    ])
    .ok();
    let shown: Value = serde_json::from_str(&tacit(&["org", "show", &cred_file]).ok().stdout).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&issued.stdout).unwrap(), shown);
    assert_eq!(shown["kind"], "credential");
    assert_eq!(shown["org"], org.to_string());
    assert_eq!(shown["subject"], subject);
    assert_eq!(shown["roles"], serde_json::json!(["buyer", "auditor"]));
    assert_eq!(shown["serial"], 42);
    let life = shown["not_after_unix_s"].as_u64().unwrap() - shown["not_before_unix_s"].as_u64().unwrap();
    assert_eq!(life, 3600);

    let signed = SignedCredential::decode(&std::fs::read(&cred_file).unwrap()).unwrap();
    let mut store = TrustStore::new();
    store.trust(org);
    let verified = store.verify(&signed, &agent, std::time::SystemTime::now()).unwrap();
    assert_eq!(verified.roles, ["buyer", "auditor"]);

    tacit(&["org", "revoke", "--org-key", &org_file, "--serial", "42", "--serial", "5", "--out", &list_file]).ok();
    let shown: Value = serde_json::from_str(&tacit(&["org", "show", &list_file]).ok().stdout).unwrap();
    assert_eq!(shown["kind"], "revocation_list");
    assert_eq!(shown["serials"], serde_json::json!([5, 42]));
    store.load_revocations(&list_file).unwrap();
    assert!(matches!(
        store.verify(&signed, &agent, std::time::SystemTime::now()),
        Err(CredentialError::Revoked { serial: 42, .. })
    ));

    let bad =
        tacit(&["org", "issue", "--org-key", &org_file, "--subject", &subject, "--expires", "1y", "--out", &cred_file]);
    assert_eq!(bad.code(), Some(2), "{bad:#?}");
    std::fs::write(&cred_file, b"junk").unwrap();
    let junk = tacit(&["org", "show", &cred_file]);
    assert_eq!(junk.code(), Some(1), "{junk:#?}");
    assert!(junk.stderr.contains("neither a credential"), "{junk:#?}");
}

// [policy.file] `tacit listen --policy FILE` enforces the file's rules
// ([policy.offer-filter]: the denied lane is not offered); a bad file is
// refused naming the field.
#[test]
fn listen_with_a_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "default = \"allow\"\n[[rule]]\neffect = \"deny\"\nintents = [\"tacit.intents.v1.Ping\"]\nlanes = [\"ask\"]\n",
    )
    .unwrap();
    let listen = Listen::start(&["--policy", policy.to_str().unwrap()]);
    let pinged = tacit(&["ping", listen.addr.as_str(), "-n", "1"]);
    assert_ne!(pinged.code(), Some(0), "{pinged:#?}");
    assert!(pinged.stderr.contains("not on the ask lane"), "{pinged:#?}");
    // [policy.reload]: the changed file is applied to new sessions within a poll.
    std::fs::write(&policy, "default = \"allow\"\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answered = loop {
        let pinged = tacit(&["ping", listen.addr.as_str(), "-n", "1"]);
        if pinged.code() == Some(0) || Instant::now() > deadline {
            break pinged;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(answered.code(), Some(0), "the reloaded policy allows Ping: {answered:#?}");
    std::fs::write(&policy, "default = \"allow\"\n[[rule]]\neffect = \"perhaps\"\n").unwrap();
    let refused = tacit(&["listen", "--addr", "127.0.0.1:0", "--policy", policy.to_str().unwrap()]);
    assert_ne!(refused.code(), Some(0), "{refused:#?}");
    assert!(refused.stderr.contains("rule[0].effect"), "{refused:#?}");
}

/// `tacit ask --signed --receipt FILE` ([receipt.sign-reply],
/// [policy.signed]): against `tacit listen` whose policy demands a signed
/// Ping, the unsigned ask is refused `SIGNATURE_REQUIRED`; the signed one is
/// answered with a signed Pong whose receipt `tacit verify` accepts, naming
/// the listener as its signer.
#[test]
fn ask_signed_and_keep_the_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "default = \"allow\"\n[[rule]]\neffect = \"allow\"\nintents = [\"tacit.intents.v1.Ping\"]\nsigned = true\n",
    )
    .unwrap();
    let listen = Listen::start(&["--policy", policy.to_str().unwrap()]);
    let addr = listen.addr.as_str();
    let unsigned = tacit(&["ask", addr, "Ping", r#"{"nonce": "1"}"#]);
    assert_ne!(unsigned.code(), Some(0), "{unsigned:#?}");
    assert!(unsigned.stderr.contains("SIGNATURE_REQUIRED"), "{unsigned:#?}");
    let receipt = dir.path().join("pong.receipt");
    let receipt = receipt.to_str().unwrap();
    let asked = tacit(&["ask", addr, "Ping", r#"{"nonce": "2"}"#, "--signed", "--receipt", receipt]).ok();
    assert_eq!(asked.json()["nonce"], "2", "{asked:#?}");
    assert!(asked.stderr.contains(&listen.id), "{asked:#?}");
    let verified = tacit(&["verify", receipt]).ok();
    assert!(verified.stdout.contains(&listen.id), "{verified:#?}");
    assert!(verified.stdout.trim_end().ends_with("OK"), "{verified:#?}");
    // A receipt whose bytes were changed no longer verifies.
    let mut bytes = std::fs::read(receipt).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(receipt, bytes).unwrap();
    assert_eq!(tacit(&["verify", receipt]).code(), Some(1));
}

/// `tacit verify` ([receipt.verify], [receipt.file]): the receipt of the
/// published vectors verifies offline; tampered ones and a file that is not
/// a receipt fail with exit code 1.
#[test]
fn verify_receipt_files() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/vectors/receipts.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, hex: &str| {
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let mut checked = 0;
    for vector in doc["vectors"].as_array().unwrap() {
        let (Some(name), Some(hex)) = (vector["name"].as_str(), vector["receipt"].as_str()) else { continue };
        let out = tacit(&["verify", &write(name, hex)]);
        if vector["error"].is_null() {
            let out = out.ok();
            assert!(out.stdout.contains(vector["sender"].as_str().unwrap()), "{out:#?}");
            assert!(out.stdout.contains("message_id    42"), "{out:#?}");
            assert!(out.stdout.trim_end().ends_with("OK"), "{out:#?}");
        } else {
            assert_eq!(out.code(), Some(1), "{name}: {out:#?}");
            if vector["rule"] == "receipt.verify" {
                assert!(out.stdout.trim_end().ends_with("INVALID"), "{out:#?}");
                assert!(out.stderr.contains("SIGNATURE_INVALID"), "{out:#?}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 12);
    assert_eq!(tacit(&["verify", &write("noise", "ffff")]).code(), Some(1));
}

/// `tacit org revoke --send` ([revoke.intent], [revoke.authority],
/// [revoke.live]) against `tacit listen --trust ORG`: a member holding a
/// credential is connected; the list sent as the member itself is refused
/// (exit 7, POLICY_DENIED) and changes nothing; sent as the organisation's
/// key it is applied, the member's session is closed with
/// CREDENTIAL_REVOKED and its next handshake refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_revoke_send_to_a_listening_agent() {
    use tacit::credential::SignedCredential;
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        let run = |args: &[&str]| tokio::task::block_in_place(|| tacit(args));
        let (org_file, member_key, member_cred) = (path("org.key"), path("member.key"), path("member.cred"));
        let org = run(&["org", "keygen", "--out", &org_file]).ok().stdout.trim().to_owned();
        let member_id = run(&["keygen", "--out", &member_key]).ok().stdout.trim().to_owned();
        let issue = ["org", "issue", "--org-key", &org_file, "--subject", &member_id, "--role", "buyer"];
        run(&[&issue[..], &["--expires", "1h", "--serial", "5", "--out", &member_cred]].concat()).ok();
        let listen = tokio::task::block_in_place(|| Listen::start(&["--trust", &org]));
        let addr: std::net::SocketAddr = listen.addr.parse().unwrap();

        let credential = SignedCredential::decode(&std::fs::read(&member_cred).unwrap()).unwrap();
        let member = Agent::builder()
            .identity(Identity::load(&member_key).unwrap())
            .credential(credential)
            .bind(LOCALHOST)
            .await
            .unwrap();
        let expect: AgentId = listen.id.parse().unwrap();
        let peer = member.connect(addr, expect).await.unwrap();
        peer.ready().await.unwrap();
        assert_eq!(peer.credentials().len(), 0, "listen presents no credential");
        // This session (the link may dial again once it is closed).
        let session = peer.session();

        let revoke = ["org", "revoke", "--org-key", &org_file, "--serial", "5", "--send", &listen.addr];
        let as_member = run(&[&revoke[..], &["--key", &member_key, "--credential", &member_cred]].concat());
        assert_eq!(as_member.code(), Some(7), "{as_member:#?}");
        assert!(as_member.stderr.contains("POLICY_DENIED"), "{as_member:#?}");
        assert!(!session.is_closed(), "nothing was applied");

        let applied = run(&[&revoke[..], &["--expect", &listen.id]].concat()).ok().json();
        assert_eq!(applied["status"], "applied", "{applied:#?}");
        assert_eq!((&applied["org"], &applied["serials"]), (&Value::from(org.as_str()), &serde_json::json!([5])));
        let closed = tokio::time::timeout(Duration::from_secs(5), session.closed()).await.expect("closed in time");
        assert_eq!(closed.code(), tacit::ErrorCode::CredentialRevoked, "{closed:?}");
        let again = member.connect(addr, expect).await.unwrap();
        assert_eq!(again.ready().await.unwrap_err().code(), tacit::ErrorCode::CredentialRevoked);
    })
    .await
    .expect("the test took over 60 s");
}

/// [policy.describe] `tacit describe` against `tacit listen --policy`: two
/// callers with different rights see different intents, each with the
/// lanes it is offered.
#[test]
fn describe_under_a_policy_shows_the_callers_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (ops_key, policy) = (path("ops.key"), path("policy.toml"));
    let ops = tacit(&["keygen", "--out", &ops_key]).ok().stdout.trim().to_owned();
    std::fs::write(
        &policy,
        format!(
            "default = \"deny\"\n\
             [[rule]]\neffect = \"allow\"\nintents = [\"tacit.intents.v1.DescribeAgent\"]\nlanes = [\"ask\"]\n\
             [[rule]]\neffect = \"allow\"\nintents = [\"tacit.intents.v1.Ping\"]\nlanes = [\"ask\"]\n\
             [[rule]]\neffect = \"allow\"\nagents = [\"{ops}\"]\nintents = [\"tacit.intents.v1.HealthCheck\"]\n"
        ),
    )
    .unwrap();
    let listen = Listen::start(&["--policy", &policy]);
    let describe = |key: Option<&str>| {
        let mut args = vec!["describe", listen.addr.as_str(), "--json"];
        if let Some(key) = key {
            args.extend(["--key", key]);
        }
        let described = tacit(&args).ok().json();
        let intents = described["intents"].as_array().unwrap().clone();
        move |name: &str| intents.iter().find(|i| i["name"] == name).cloned().unwrap_or(Value::Null)
    };
    let for_ops = describe(Some(&ops_key));
    let health = for_ops("tacit.intents.v1.HealthCheck");
    assert_eq!(health["handles"], true, "{health:#?}");
    let lanes = health["offered_lanes"].as_array().unwrap();
    assert!(lanes.contains(&Value::from("ask")) && lanes.len() > 1, "all of listen's lanes: {health:#?}");
    assert_eq!(for_ops("tacit.intents.v1.Ping")["offered_lanes"], serde_json::json!(["ask"]));

    let for_stranger = describe(None);
    let health = for_stranger("tacit.intents.v1.HealthCheck");
    assert_ne!(health["handles"], true, "{health:#?}");
    assert_eq!(health["offered_lanes"], Value::Null, "{health:#?}");
    assert_eq!(for_stranger("tacit.intents.v1.Ping")["offered_lanes"], serde_json::json!(["ask"]));
    let table = tacit(&["describe", listen.addr.as_str()]).ok();
    let ping = table.stdout.lines().find(|l| l.contains("tacit.intents.v1.Ping")).unwrap_or_default().to_owned();
    assert!(ping.contains(" ask "), "{table:#?}");
}

/// A running `tacit directory serve`: its `ID@ADDR`.
fn serve_directory(data: &std::path::Path) -> (ChildGuard, String) {
    let key = data.with_extension("key");
    let child = Command::new(TACIT)
        .args(["directory", "serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .arg("--key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tacit directory serve starts");
    let mut guard = ChildGuard(child);
    let stderr = guard.0.stderr.take().unwrap();
    let (ready_tx, ready) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("agents register with --directory ") {
                let _ = ready_tx.send(rest.to_owned());
            }
        }
    });
    let directory = ready.recv_timeout(LINE_LIMIT).expect("the directory announces itself");
    (guard, directory)
}

/// `tacit directory serve`, `tacit listen --directory`, `tacit find` (table
/// and JSON), and `tacit ping ID` / `tacit ask ID` found through the
/// directory; an unknown id names the lookups tried; a restart of the
/// directory keeps the registration.
#[test]
fn directory_find_and_ask_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("directory.redb");
    let (guard, directory) = serve_directory(&data);
    let listen = Listen::start(&["--directory", &directory]);
    // The listener registers once bound; wait for its record.
    let deadline = Instant::now() + LINE_LIMIT;
    let found = loop {
        let out = tacit(&["find", "--directory", &directory, "--agent", &listen.id, "--json"]).ok();
        let value: Value = serde_json::from_str(&out.stdout).unwrap();
        if !value["agents"].as_array().unwrap().is_empty() {
            break value;
        }
        assert!(Instant::now() < deadline, "never registered: {value}");
        thread::sleep(Duration::from_millis(100));
    };
    let agent = &found["agents"][0];
    assert_eq!(agent["agent_id"], listen.id.as_str());
    assert_eq!(agent["addrs"][0], listen.addr.as_str());
    assert_eq!(agent["name"], "tacit-listen");
    let table = tacit(&["find", "--directory", &directory]).ok();
    assert!(table.stdout.starts_with("AGENT"), "{table:#?}");
    assert!(table.stdout.contains(&listen.id) && table.stdout.contains(&listen.addr), "{table:#?}");
    let none = tacit(&["find", "--directory", &directory, "--intent", "market.v1.Nothing", "--json"]).ok();
    assert_eq!(serde_json::from_str::<Value>(&none.stdout).unwrap()["agents"], serde_json::json!([]));

    // By id alone.
    tacit(&["ping", &listen.id, "--directory", &directory, "--count", "2"]).ok();
    let asked =
        tacit(&["ask", &listen.id, "--directory", &directory, "tacit.intents.v1.Ping", r#"{"nonce":"5"}"#]).ok();
    assert!(asked.stdout.contains(r#""nonce":"5""#), "{asked:#?}");
    let stranger = Identity::generate().unwrap().agent_id().to_string();
    let missing = tacit(&["ping", &stranger, "--directory", &directory]);
    assert_eq!(missing.code(), Some(3), "{missing:#?}");
    assert!(missing.stderr.contains("not found"), "{missing:#?}");
    assert!(missing.stderr.contains("memory: no address"), "{missing:#?}");
    assert!(missing.stderr.contains("directory "), "{missing:#?}");

    // The directory restarts from its file: the record is still there.
    drop(guard);
    let (_guard, again) = serve_directory(&data);
    assert_eq!(again.split('@').next(), directory.split('@').next(), "the same key, so the same directory");
    let out = tacit(&["find", "--directory", &again, "--agent", &listen.id, "--json"]).ok();
    let value: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(value["agents"][0]["agent_id"], listen.id.as_str(), "{value}");
}
