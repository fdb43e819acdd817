//! `tacit listen`: an agent that takes every intent its peers send and
//! prints each as one JSON line, decoded through the schema the sender
//! serves.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use data_encoding::HEXLOWER;
use prost::Message as _;
use serde_json::{Value, json};
use tacit::intents::{Ping, Pong, RejectProposal};
use tacit::{Agent, AgentCard, Context, ErrorCode, Identity, IntentId, Rejection, Schema};
use tacit_handshake::KeyFileStatus;
use tacit_wire::{Envelope, FrameEncoder, IntentRef};

use crate::error::{self, CliError};
use crate::inspect::MAX_CAPTURED_FRAME;
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
    /// Also append every message received to this file, as Tacit frames (read it with `tacit inspect`).
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    let identity = match &args.key {
        None => Identity::generate().map_err(|e| CliError::failure(e.to_string()))?,
        Some(path) => {
            let (identity, status) = Identity::load_or_create(path).map_err(|e| CliError::failure(e.to_string()))?;
            if status == KeyFileStatus::Created {
                eprintln!("created a new key file {}", path.display());
            }
            identity
        }
    };
    let capture = match &args.capture {
        None => None,
        Some(path) => Some(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| CliError::failure(format!("cannot open the capture file {}: {e}", path.display())))?,
        )),
    };
    let listener = Arc::new(Listener::new(capture)?);
    let ping_schema = Schema::of::<Ping>().map_err(|e| CliError::failure(e.to_string()))?;
    let reject_schema = Schema::of::<RejectProposal>().map_err(|e| CliError::failure(e.to_string()))?;

    let on_ping = listener.clone();
    let on_reject = listener.clone();
    let on_tell = listener.clone();
    let on_ask = listener.clone();
    let agent = Agent::builder()
        .identity(identity)
        .card(
            AgentCard::new("tacit-listen")
                .with_description("prints every intent it receives")
                .with_software_version(env!("CARGO_PKG_VERSION")),
        )
        // Replaces the built-in Ping handler, so that pings are printed too.
        .handle(move |cx: Context, ping: Ping| {
            let (listener, schema) = (on_ping.clone(), ping_schema.clone());
            async move {
                listener.record(&cx, "ask", &ping.encode_to_vec().into(), Some(schema)).await;
                Ok::<_, Rejection>(Pong { nonce: ping.nonce })
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
        .handle_any(move |cx: Context, payload: Bytes| {
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

    stopped().await;
    eprintln!("stopping");
    agent.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

/// Waits for Ctrl-C (or SIGTERM on Unix).
async fn stopped() {
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
    capture: Option<Mutex<File>>,
    /// Schemas fetched from senders, by intent.
    fetched: Mutex<HashMap<IntentId, Schema>>,
    /// The standard intents, for senders that do not serve a schema.
    builtin: HashMap<IntentId, Schema>,
}

impl Listener {
    fn new(capture: Option<Mutex<File>>) -> Result<Self, CliError> {
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
        let schema = match known {
            Some(schema) => Ok((schema, "builtin")),
            None => self.schema(cx).await,
        };
        let name = cx.intent_name().or_else(|| schema.as_ref().ok().map(|(schema, _)| schema.name().to_owned()));
        let mut line = json!({
            "ts": time::now_rfc3339(),
            "peer": cx.peer_id().to_string(),
            "lane": lane,
            "act": error::act_name(cx.act()),
            "intent": name,
            "intent_id": HEXLOWER.encode(cx.intent().as_bytes()),
            "message_id": cx.message_id().to_string(),
            "in_reply_to": (cx.in_reply_to() != 0).then(|| cx.in_reply_to().to_string()),
            "conversation": (!cx.conversation_id().is_empty()).then(|| cx.conversation_id().as_str().to_owned()),
            "trace_id": cx.trace().map(|trace| HEXLOWER.encode(&trace.trace_id)),
        });
        let schema = match schema {
            Ok((schema, source)) => {
                match schema.decode(payload) {
                    Ok(message) => {
                        line["message"] = json::to_json(&message);
                        line["schema"] = Value::from(source);
                    }
                    Err(e) => line["undecoded"] = json::undecoded(&e.to_string(), payload),
                }
                Some(schema)
            }
            Err(reason) => {
                line["undecoded"] = json::undecoded(&reason, payload);
                None
            }
        };
        print_line(&line);
        self.capture(cx, payload);
        schema
    }

    /// Appends the message to the capture file as one frame.
    fn capture(&self, cx: &Context, payload: &Bytes) {
        let Some(file) = &self.capture else { return };
        let mut envelope = Envelope::new(IntentRef::Id(cx.intent()), cx.act(), cx.message_id(), payload.clone());
        envelope.conversation_id = cx.conversation_id();
        envelope.in_reply_to = cx.in_reply_to();
        envelope.deadline_micros =
            cx.remaining().map_or(0, |left| u64::try_from(left.as_micros()).unwrap_or(u64::MAX).max(1));
        let written = FrameEncoder::new(MAX_CAPTURED_FRAME)
            .encode_to_bytes(&envelope)
            .map_err(|e| e.to_string())
            .and_then(|frame| {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                file.write_all(&frame).and_then(|()| file.flush()).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!("tacit listen: cannot write to the capture file: {e}");
        }
    }
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
