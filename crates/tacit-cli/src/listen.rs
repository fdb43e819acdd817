//! `tacit listen`: an agent that takes every intent its peers send and
//! prints each as one JSON line, decoded through the schema the sender
//! serves.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use serde_json::Value;
use tacit::intents::{Ping, Pong, RejectProposal};
use tacit::{Agent, AgentCard, Context, ErrorCode, IntentId, Rejection, Schema};
use tacit_wire::{Envelope, FrameEncoder, IntentRef};

use crate::error::CliError;
use crate::inspect::MAX_CAPTURED_FRAME;
use crate::record::{self, Body, CAPTURE_MAGIC, CaptureRecord, Meta};
use crate::{json, time};

/// How long to wait for a sender to serve a schema.
const SCHEMA_FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// What `listen` answers to an ask whose request names no reply type.
const NOT_PERFORMED: &str = "tacit listen records asks; it does not perform them";

/// Arguments of `tacit listen`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The UDP address to listen on (port 0: any free port; the one chosen is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4433")]
    addr: SocketAddr,
    /// The agent's key file, created if missing (default: a fresh identity each run).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Also append every message received to this file, with its sender and time (read it with `tacit inspect`).
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
    /// Enforce this receiver-side policy (TOML; format in the `tacit::policy` docs and PROTOCOL.md "Policy"),
    /// reloaded without dropping sessions when the file changes or on SIGHUP.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Trust this organisation (its key, AgentId form; repeatable): peers' credentials are verified, and its
    /// authority agents may send revocation lists (`tacit org revoke --send`).
    #[arg(long = "trust", value_name = "ORG")]
    trust: Vec<tacit::credential::OrgKey>,
    /// Register with this directory agent (ID@HOST:PORT; repeatable), refreshing the record while running.
    #[arg(long, value_name = "ID@HOST:PORT", value_parser = crate::connect::parse_directory)]
    directory: Vec<(tacit::AgentId, String)>,
    /// The address the record given to directories names (default: the one listened on).
    #[arg(long, value_name = "ADDR")]
    advertise: Vec<SocketAddr>,
    /// Present this credential to peers (a file of `tacit org issue`; repeatable).
    #[arg(long = "credential", value_name = "FILE")]
    credentials: Vec<PathBuf>,
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    let identity = crate::keys::identity_or_new(args.key.as_deref())?;
    let capture = match &args.capture {
        None => None,
        Some(path) => Some(Mutex::new(Capture { file: open_capture(path)?, schemas: HashSet::new() })),
    };
    // Checked here for a clear message; the agent reloads it as it changes.
    if let Some(path) = &args.policy {
        tacit::Policy::load(path).map_err(|e| CliError::failure(e.to_string()))?;
    }
    let listener = Arc::new(Listener::new(capture)?);
    let ping_schema = Schema::of::<Ping>().map_err(|e| CliError::failure(e.to_string()))?;
    let reject_schema = Schema::of::<RejectProposal>().map_err(|e| CliError::failure(e.to_string()))?;

    let on_ping = listener.clone();
    let on_reject = listener.clone();
    let on_tell = listener.clone();
    let on_ask = listener.clone();
    let mut builder = Agent::builder();
    for (id, addr) in &args.directory {
        builder = builder.directory(crate::connect::resolve(addr)?, *id);
    }
    for addr in &args.advertise {
        builder = builder.advertise(*addr);
    }
    if let Some(path) = &args.policy {
        builder = builder.policy_file(path);
    }
    for org in &args.trust {
        builder = builder.trust(*org);
    }
    let builder = crate::org::with_credentials(builder, &args.credentials)?;
    let agent = builder
        .identity(identity)
        .card(
            AgentCard::new("tacit-listen")
                .with_description("prints every intent it receives")
                .with_software_version(env!("CARGO_PKG_VERSION")),
        )
        // Replaces the built-in Ping handler, so that pings are printed too.
        .on_ask(move |cx: Context, ping: Ping| {
            let (listener, schema) = (on_ping.clone(), ping_schema.clone());
            async move {
                listener.record(&cx, "ask", &ping.encode_to_vec().into(), Some(schema)).await;
                Ok(Pong { nonce: ping.nonce })
            }
        })
        .on_tell(move |cx: Context, rejection: RejectProposal| {
            let (listener, schema) = (on_reject.clone(), reject_schema.clone());
            async move {
                listener.record(&cx, "tell", &rejection.encode_to_vec().into(), Some(schema)).await;
            }
        })
        .on_any_tell(move |cx: Context, payload: Bytes| {
            let listener = on_tell.clone();
            async move {
                listener.record(&cx, "tell", &payload, None).await;
            }
        })
        .on_any_ask(move |cx: Context, payload: Bytes| {
            let listener = on_ask.clone();
            async move {
                let schema = listener.record(&cx, "ask", &payload, None).await;
                match schema.as_ref().and_then(reply_of) {
                    Some(reply) => Ok((reply, Bytes::new())),
                    None => Err(Rejection::refuse(ErrorCode::HandlerFailed, NOT_PERFORMED)),
                }
            }
        })
        .bind(args.addr)
        .await
        .map_err(|e| {
            CliError::failure(format!("cannot listen on {}: {e}", args.addr))
                .hint("pick another --addr (port 0 picks a free port)")
        })?;
    let local = agent.local_addr().map_err(|e| CliError::failure(e.to_string()))?;
    eprintln!("listening on {local} as {}", agent.id());
    #[cfg(unix)]
    if args.policy.is_some() {
        tokio::spawn(reload_on_hangup(agent.clone()));
    }

    stopped().await;
    eprintln!("stopping");
    agent.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

/// Reloads the policy file on each SIGHUP, saying how it went.
#[cfg(unix)]
async fn reload_on_hangup(agent: Agent) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else { return };
    while hangup.recv().await.is_some() {
        match agent.reload_policy() {
            Ok(_) => eprintln!("policy reloaded"),
            Err(e) => eprintln!("policy not reloaded, the one in force stays: {e}"),
        }
    }
}

/// Waits for Ctrl-C (or SIGTERM on Unix).
pub(crate) async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The intent that answers `request`, from its `(tacit.v1.reply)` option.
fn reply_of(request: &Schema) -> Option<IntentId> {
    let name = json::reply_type(request.message_descriptor())?;
    IntentId::of_message_in_encoded_set(request.descriptor_set(), &name).ok()
}

/// What the handlers share: schemas seen so far, the capture file.
#[derive(Debug)]
struct Listener {
    capture: Option<Mutex<Capture>>,
    /// Schemas fetched from senders, by intent.
    fetched: Mutex<HashMap<IntentId, Schema>>,
    /// The standard intents, for senders that do not serve a schema.
    builtin: HashMap<IntentId, Schema>,
}

impl Listener {
    fn new(capture: Option<Mutex<Capture>>) -> Result<Self, CliError> {
        let set = tacit::intents::FILE_DESCRIPTOR_SET;
        let index = json::index_descriptor_set(set).map_err(|e| CliError::failure(format!("standard intents: {e}")))?;
        let builtin = index
            .into_iter()
            .filter_map(|(id, message)| {
                Schema::new(id, message.full_name().to_owned(), Bytes::from_static(set)).ok().map(|s| (id, s))
            })
            .collect();
        Ok(Self { capture, fetched: Mutex::default(), builtin })
    }

    /// The schema of the message's intent: fetched from the sender (once per
    /// intent), else a standard intent's.
    async fn schema(&self, cx: &Context) -> Result<(Schema, &'static str), String> {
        let id = cx.intent();
        if let Some(schema) = self.fetched.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok((schema.clone(), "peer"));
        }
        // A fetch on a session that has ended is never answered: stop waiting
        // when the sender goes away (e.g. a `tacit tell` that is done).
        let session = cx.peer().session();
        let fetch = async {
            tokio::select! {
                fetched = cx.peer().describe(id) => {
                    fetched.map_err(|e| format!("the sender did not serve a usable schema: {e}"))
                }
                ended = session.closed() => Err(format!("the sender left before serving the schema: {ended}")),
            }
        };
        // Wait less when the intent is a standard one this tool can decode anyway.
        let builtin = self.builtin.get(&id);
        let limit = if builtin.is_some() { SCHEMA_FETCH_TIMEOUT / 3 } else { SCHEMA_FETCH_TIMEOUT };
        let reason = match tokio::time::timeout(limit, fetch).await {
            Ok(Ok(schema)) => {
                self.fetched.lock().unwrap_or_else(|e| e.into_inner()).insert(id, schema.clone());
                return Ok((schema, "peer"));
            }
            Ok(Err(reason)) => reason,
            Err(_) => "the sender did not serve the schema in time".to_owned(),
        };
        match builtin {
            Some(schema) => Ok((schema.clone(), "builtin")),
            None => Err(reason),
        }
    }

    /// Prints the message as one JSON line and captures it; returns its schema.
    async fn record(&self, cx: &Context, lane: &str, payload: &Bytes, known: Option<Schema>) -> Option<Schema> {
        let received_at_micros = time::now_micros();
        let schema = match known {
            Some(schema) => Ok((schema, "builtin")),
            None => self.schema(cx).await,
        };
        let meta = Meta {
            received_at_micros: Some(received_at_micros),
            peer: Some(cx.peer_id()),
            lane: Some(lane.to_owned()),
            act: cx.act(),
            intent: cx.intent_name().or_else(|| schema.as_ref().ok().map(|(schema, _)| schema.name().to_owned())),
            intent_id: Some(cx.intent()),
            message_id: cx.message_id(),
            in_reply_to: cx.in_reply_to(),
            conversation: cx.conversation_id(),
            deadline_micros: cx
                .remaining()
                .map_or(0, |left| u64::try_from(left.as_micros()).unwrap_or(u64::MAX).max(1)),
            trace: cx.trace(),
        };
        let (body, schema) = match schema {
            Ok((schema, source)) => {
                let body = match schema.decode(payload) {
                    Ok(message) => Body::Decoded { message: json::to_json(&message), schema: source },
                    Err(e) => Body::Undecoded(json::undecoded(&e.to_string(), payload)),
                };
                (body, Some((schema, source)))
            }
            Err(reason) => (Body::Undecoded(json::undecoded(&reason, payload)), None),
        };
        print_line(&record::line(&meta, body));
        // A schema fetched from the sender goes into the capture with the
        // first message of its intent, so inspect decodes it as listen did.
        let fetched = schema.as_ref().filter(|(_, source)| *source == "peer").map(|(schema, _)| schema);
        self.capture(&meta, payload, fetched);
        schema.map(|(schema, _)| schema)
    }

    /// Appends the message to the capture file as one record.
    fn capture(&self, meta: &Meta, payload: &Bytes, fetched: Option<&Schema>) {
        let Some(capture) = &self.capture else { return };
        let Some(intent) = meta.intent_id else { return };
        let mut envelope = Envelope::new(IntentRef::Id(intent), meta.act, meta.message_id, payload.clone());
        envelope.conversation_id = meta.conversation;
        envelope.in_reply_to = meta.in_reply_to;
        envelope.deadline_micros = meta.deadline_micros;
        envelope.trace = meta.trace;
        let mut capture = capture.lock().unwrap_or_else(|e| e.into_inner());
        let descriptor_set = match fetched {
            Some(schema) if !capture.schemas.contains(&intent) => schema.descriptor_set().clone(),
            _ => Bytes::new(),
        };
        let record = CaptureRecord {
            received_at_micros: meta.received_at_micros.unwrap_or_default(),
            sender: meta.peer.map(|peer| Bytes::copy_from_slice(peer.as_bytes())).unwrap_or_default(),
            lane: meta.lane.clone().unwrap_or_default(),
            envelope: envelope.encode_to_bytes(),
            intent_name: meta.intent.clone().unwrap_or_default(),
            descriptor_set,
        };
        let written =
            FrameEncoder::new(MAX_CAPTURED_FRAME).encode_to_bytes(&record).map_err(|e| e.to_string()).and_then(
                |frame| capture.file.write_all(&frame).and_then(|()| capture.file.flush()).map_err(|e| e.to_string()),
            );
        if written.is_ok() && !record.descriptor_set.is_empty() {
            capture.schemas.insert(intent);
        }
        if let Err(e) = written {
            eprintln!("tacit listen: cannot write to the capture file: {e}");
        }
    }
}

/// The capture file, and the intents whose schema it holds already.
#[derive(Debug)]
struct Capture {
    file: File,
    schemas: HashSet<IntentId>,
}

/// Opens `path` to append records: a new or empty file gets the capture
/// header first; an existing file must be a capture already.
fn open_capture(path: &Path) -> Result<File, CliError> {
    let cannot = |e: std::io::Error| CliError::failure(format!("cannot open the capture file {}: {e}", path.display()));
    let mut file = OpenOptions::new().create(true).read(true).append(true).open(path).map_err(cannot)?;
    let len = file.metadata().map_err(cannot)?.len();
    if len == 0 {
        file.write_all(CAPTURE_MAGIC).map_err(cannot)?;
        return Ok(file);
    }
    let mut head = vec![0; CAPTURE_MAGIC.len()];
    let is_capture = file.read_exact(&mut head).is_ok() && head == CAPTURE_MAGIC;
    if !is_capture {
        return Err(CliError::failure(format!("{} exists and is not a capture of tacit listen", path.display()))
            .hint("give --capture a new file name"));
    }
    Ok(file)
}

/// One line on stdout; stops the listener when nobody reads it any more.
fn print_line(line: &Value) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        eprintln!("tacit listen: stdout is closed; stopping");
        std::process::exit(0);
    }
}
