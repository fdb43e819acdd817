//! `tacit a2a serve`: an [A2A](https://a2a-protocol.org) v1.0 server in
//! front of Tacit peers (feature `a2a-server`), built with the A2A
//! project's Rust SDK (`a2a-server-lf`: its request handler, task store and
//! the JSON-RPC and HTTP+JSON bindings), so any A2A client calls Tacit
//! agents.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tacit_bridge::a2a_server::Gateway;
//! use tacit_bridge::http::HttpOptions;
//!
//! let gateway = Gateway::builder().peer("127.0.0.1:4433".parse()?).start().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! gateway.serve(listener, HttpOptions::default()).await?;
//! # Ok(()) }
//! ```
//!
//! # The agent card
//!
//! Served at `/.well-known/agent-card.json`, and rebuilt when the peers
//! change. It declares two interfaces at the same base URL (JSON-RPC at
//! `/`, HTTP+JSON at `/message:send`, `/tasks/{id}`, ...), streaming, and
//! one **skill** per bridged intent (the handles of [`crate::peers`]: id
//! `<peer name>_<Message>`, name `<Message> (<peer name>)`, the `.proto`
//! comment as description, tags `tacit`, the intent's full name and its
//! lanes). A2A skills carry no schema, so the card's extension
//! [`EXTENSION_URI`] does: its `params.skills` maps each skill id to its
//! `agentId`, `intent`, `intentId`, `lanes`, `inputSchema` and (for an ask)
//! `outputSchema` (JSON Schemas of [`crate::schema`], compact).
//!
//! # Messages
//!
//! - A message with a **data part** `{"intent": SKILL, "message": {...}}`
//!   calls that skill: `intent` is a skill id or an intent's full name
//!   (with `"agentId"` to pick among peers that take the same intent), and
//!   `message` the intent in the proto3 JSON mapping. An intent on the ask
//!   lane is asked and its reply is the task's artifact `reply` (one data
//!   part); one on the stream lane is opened and each item is appended to
//!   the artifact `items` as a data part (`SendStreamingMessage` and task
//!   subscription deliver them as they come); one only on the tell lane is
//!   told, and the artifact is a text part `sent`.
//! - A message with **text parts only** goes to a peer that takes the
//!   standard text intent `TextTask` (`[std.text]`; `metadata.skill` names
//!   a skill of it): `text` is the joined text, `context_id` the A2A
//!   context; the `TextResult`'s text and data become the artifact's parts.
//!   Without such a peer the answer is `ContentTypeNotSupportedError`.
//!
//! Tasks are kept in the SDK's in-memory store in two generations of at
//! most 10,000 tasks or 64 MiB each: once a generation is full the one
//! before it is forgotten (`GetTask` of a forgotten task is
//! `TaskNotFoundError`; working tasks move forward and are kept), so memory
//! stays bounded whatever clients send. The request message is not kept in
//! a task's history. A stream lane is ended after [`MAX_STREAM_ITEMS`]
//! items or [`MAX_STREAM_BYTES`] of them, with the task completed and a
//! status message saying so.
//!
//! Each call runs as an A2A task: `TASK_STATE_WORKING` first (so
//! `returnImmediately` gives the task id at once), then the artifact, then
//! a final state. `GetTask` and `ListTasks` read the SDK's task store.
//! `CancelTask` of a working task drops the Tacit ask or stream, which
//! sends `CANCEL` on the wire (the peer's handler sees its context
//! cancelled), and the task ends `TASK_STATE_CANCELED`.
//!
//! The A2A context is the Tacit conversation: every call of one
//! `contextId` carries it as its conversation id (an id over 64 bytes is
//! shortened, [`CallOptions::conversation`](crate::peers::CallOptions::conversation)).
//!
//! A `traceparent` (W3C trace context) in the message's metadata, the
//! request's metadata or the HTTP header is carried to the peer in the
//! ask's trace context.
//!
//! # Tacit outcomes as A2A
//!
//! | Tacit | A2A |
//! |---|---|
//! | `INFORM` reply | task `TASK_STATE_COMPLETED`, artifact `reply` |
//! | `REFUSE` (any code: `DECLINED`, `POLICY_DENIED`, `RATE_LIMITED`, ...) | task `TASK_STATE_REJECTED` |
//! | `FAILURE` `CANCELLED` | task `TASK_STATE_CANCELED` |
//! | `FAILURE` (any other code), no reply within the deadline, the peer gone | task `TASK_STATE_FAILED` |
//! | `NOT_UNDERSTOOD` (any code) | `InvalidParams` -32602 |
//! | the data part names no skill, or fields that do not fit the intent | `InvalidParams` -32602 (the message names the field) |
//! | text only, and no peer takes `TextTask` | `ContentTypeNotSupportedError` -32005 |
//!
//! A rejected, failed or canceled task's status message is the readable
//! form (`REFUSE DECLINED: out of stock`), and its metadata (the status
//! message's, and the status update event's)
//! `{"tacit": {"act": "REFUSE", "code": "DECLINED", "codeValue": 780}}`
//! (`act` absent for a failure of the bridge or the transport).
//!
//! # Security
//!
//! The HTTP front is [`crate::http`]'s: loopback by default, a bearer token
//! elsewhere, bounded bodies, per-client rates and connections. The
//! gateway is one Tacit agent to its peers ([`crate::peers`]): their
//! policies apply to its AgentId and credentials, whoever its A2A clients
//! are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::a2a::event::{StreamResponse, TaskArtifactUpdateEvent, TaskStatusUpdateEvent};
use ::a2a::{A2AError, AgentCard as A2aCard, Artifact, Message, Part, PartContent, Role, Task, TaskState, TaskStatus};
use a2a_server::task_store::TaskVersion;
use a2a_server::{
    AgentCardProducer, AgentExecutor, DefaultRequestHandler, ExecutorContext, InMemoryTaskStore, TaskStore,
};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use prost::Message as _;
use serde_json::{Value, json};
use tacit::credential::SignedCredential;
use tacit::intents::TextTask;
use tacit::{Act, AgentId, ErrorCode, Identity, Intent as _, TraceContext};

use crate::http::HttpOptions;
use crate::peers::{BridgeError, CallError, CallOptions, PeerAddr, Peers, PeersBuilder, Remote, act_name, code_name};
use crate::{json, schema};

/// The URI of the card extension that carries the skills' Tacit intents and
/// JSON Schemas.
pub const EXTENSION_URI: &str = "https://tacit.dev/a2a/intents/v1";

/// The most parts of one message the gateway reads.
const MAX_PARTS: usize = 64;

/// The most items of one stream lane kept in a task's artifact: the stream
/// is ended (its receiving half dropped) after them.
pub const MAX_STREAM_ITEMS: usize = 1024;

/// The most bytes (of JSON) of one stream lane's items kept in a task.
pub const MAX_STREAM_BYTES: usize = 8 << 20;

/// Tasks of one generation of the task store ([`Generations`]).
const GENERATION_TASKS: usize = 10_000;

/// Bytes (of JSON, roughly: every write counts) of one generation.
const GENERATION_BYTES: usize = 64 << 20;

/// Builds a [`Gateway`].
#[derive(Debug)]
#[must_use]
pub struct GatewayBuilder {
    peers: PeersBuilder,
    ask_timeout: Duration,
    name: String,
    description: String,
    public_url: Option<String>,
}

impl GatewayBuilder {
    /// The gateway's identity (default: a fresh one). Peers see this AgentId
    /// and apply their policy to it.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.peers = self.peers.identity(identity);
        self
    }

    /// An organisation credential the gateway presents to peers (repeatable).
    pub fn credential(mut self, credential: SignedCredential) -> Self {
        self.peers = self.peers.credential(credential);
        self
    }

    /// A peer whose intents become skills (repeatable).
    pub fn peer(mut self, peer: PeerAddr) -> Self {
        self.peers = self.peers.peer(peer);
        self
    }

    /// The deadline of every ask a message makes, and of opening a stream
    /// (default 30 s).
    pub fn ask_timeout(mut self, timeout: Duration) -> Self {
        self.ask_timeout = timeout;
        self
    }

    /// How long a dial, a handshake and each schema fetch
    /// may take (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.peers = self.peers.connect_timeout(timeout);
        self
    }

    /// The card's name and description (default `tacit-a2a` and a line
    /// naming the peers).
    pub fn name(mut self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.name = name.into();
        self.description = description.into();
        self
    }

    /// The base URL the card declares (default `http://<listening address>/`),
    /// for a gateway behind a proxy or a name.
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Starts following the peers, and returns once each has been tried once.
    /// Must run inside a Tokio runtime.
    pub async fn start(self) -> Result<Gateway, BridgeError> {
        let peers = self.peers.start().await?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                peers,
                ask_timeout: self.ask_timeout,
                name: self.name,
                description: self.description,
                public_url: Mutex::new(self.public_url),
                card: Mutex::new(None),
                running: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// An A2A server whose skills are the intents of Tacit peers. Cheap to
/// clone: clones share the peers and the tasks.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    peers: Peers,
    ask_timeout: Duration,
    name: String,
    description: String,
    public_url: Mutex<Option<String>>,
    /// The card, built at one version of the peers.
    card: Mutex<Option<(u64, A2aCard)>>,
    /// Working tasks: dropping the sender's partner (a send) cancels one.
    running: Mutex<HashMap<String, tokio::sync::oneshot::Sender<()>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Gateway {
    /// A gateway with a fresh identity and no peers yet.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            peers: Peers::builder().label("tacit-a2a"),
            ask_timeout: Duration::from_secs(30),
            name: "tacit-a2a".into(),
            description: String::new(),
            public_url: None,
        }
    }

    /// The gateway's AgentId, as its peers see it.
    pub fn id(&self) -> AgentId {
        self.inner.peers.id()
    }

    /// The agent card now (rebuilt when the peers change).
    pub fn card(&self) -> A2aCard {
        let version = *self.inner.peers.changes().borrow();
        let mut cached = lock(&self.inner.card);
        if let Some((at, card)) = cached.as_ref()
            && *at == version
        {
            return card.clone();
        }
        let card = self.build_card();
        *cached = Some((version, card.clone()));
        card
    }

    /// The A2A routes: JSON-RPC at `/`, HTTP+JSON beside it, the card at
    /// the well-known path. Serve them behind bounds of your own, or with
    /// [`serve`](Self::serve).
    pub fn router(&self) -> axum::Router {
        let capabilities = self.card().capabilities;
        let handler = Arc::new(
            DefaultRequestHandler::new(Executor { gateway: self.clone() }, Generations::default())
                .with_capabilities(capabilities),
        );
        a2a_server::jsonrpc::jsonrpc_router(handler.clone())
            .merge(a2a_server::rest::rest_router(handler))
            .merge(a2a_server::agent_card::agent_card_router(Arc::new(CardProducer { gateway: self.clone() })))
    }

    /// Serves A2A on `listener` behind the bounds of [`crate::http`] until
    /// the listener fails. The card's URL is the listening address unless
    /// [`GatewayBuilder::public_url`] said otherwise.
    pub async fn serve(self, listener: tokio::net::TcpListener, options: HttpOptions) -> Result<(), BridgeError> {
        let local = listener.local_addr().map_err(|e| BridgeError(format!("A2A over HTTP: {e}")))?;
        lock(&self.inner.public_url).get_or_insert_with(|| format!("http://{local}/"));
        *lock(&self.inner.card) = None;
        let router = self.router();
        crate::http::serve("tacit a2a", listener, &options, router).await
    }

    fn build_card(&self) -> A2aCard {
        let url = lock(&self.inner.public_url).clone().unwrap_or_else(|| "http://127.0.0.1/".into());
        let intents = self.inner.peers.intents();
        let mut skills = Vec::new();
        let mut params = serde_json::Map::new();
        for remote in &intents {
            let descriptor = remote.schema.message_descriptor();
            let lanes: Vec<&str> = [(remote.ask, "ask"), (remote.tell, "tell"), (remote.stream, "stream")]
                .into_iter()
                .filter_map(|(on, lane)| on.then_some(lane))
                .collect();
            let mut tags = vec!["tacit".to_owned(), remote.schema.name().to_owned()];
            tags.extend(lanes.iter().map(|lane| (*lane).to_owned()));
            let text = remote.schema.name() == TextTask::NAME;
            let modes: Vec<&str> = if text { vec!["text/plain", "application/json"] } else { vec!["application/json"] };
            skills.push(json!({
                "id": remote.handle,
                "name": remote.title,
                "description": schema::description(descriptor).unwrap_or_else(|| remote.schema.name().to_owned()),
                "tags": tags,
                "inputModes": modes,
                "outputModes": modes,
            }));
            let mut entry = json!({
                "agentId": remote.peer.id().to_string(),
                "intent": remote.schema.name(),
                "intentId": remote.schema.id().to_string(),
                "lanes": lanes,
                "inputSchema": schema::schema(descriptor, schema::Direction::Input, schema::Style::Compact),
            });
            let output = remote.reply.as_ref().or(remote.stream_item.as_ref());
            if let Some(output) = output {
                entry["outputSchema"] = schema::schema(output, schema::Direction::Output, schema::Style::Compact);
            }
            params.insert(remote.handle.clone(), entry);
        }
        let description = if self.inner.description.is_empty() {
            let names: Vec<String> = self.inner.peers.connected().iter().map(|c| c.name()).collect();
            if names.is_empty() {
                "Tacit agents through an A2A gateway (none connected now)".to_owned()
            } else {
                format!("Tacit agents through an A2A gateway: {}", names.join(", "))
            }
        } else {
            self.inner.description.clone()
        };
        let card = json!({
            "name": self.inner.name,
            "description": description,
            "version": env!("CARGO_PKG_VERSION"),
            "supportedInterfaces": [
                { "url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0" },
                { "url": url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0" },
            ],
            "capabilities": {
                "streaming": true,
                "extensions": [{
                    "uri": EXTENSION_URI,
                    "description": "Each skill is an intent of a Tacit agent; send a data part {\"intent\": <skill id>, \"message\": <JSON per inputSchema>}",
                    "required": false,
                    "params": { "gatewayAgentId": self.id().to_string(), "skills": params },
                }],
            },
            "defaultInputModes": ["application/json", "text/plain"],
            "defaultOutputModes": ["application/json", "text/plain"],
            "skills": skills,
        });
        serde_json::from_value(card).unwrap_or_else(|e| {
            // Every field above is one the card type has, and peers only add
            // strings to it: a card that does not build is this module's bug.
            eprintln!("tacit a2a: the agent card does not build ({e}); serving one without skills");
            serde_json::from_value(json!({
                "name": self.inner.name, "description": description, "version": env!("CARGO_PKG_VERSION"),
                "supportedInterfaces": [{ "url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0" }],
                "capabilities": { "streaming": true },
                "defaultInputModes": ["application/json"], "defaultOutputModes": ["application/json"], "skills": [],
            }))
            .expect("a card without skills builds")
        })
    }

    /// What a message asks for, checked before any task runs.
    fn plan(&self, message: &Message) -> Result<Plan, A2AError> {
        let parts = &message.parts[..message.parts.len().min(MAX_PARTS)];
        let call = parts.iter().find_map(|part| match &part.content {
            PartContent::Data(Value::Object(object)) if object.contains_key("intent") => Some(object),
            _ => None,
        });
        if let Some(call) = call {
            let Some(name) = call.get("intent").and_then(Value::as_str) else {
                return Err(A2AError::invalid_params("the data part's \"intent\" must be a string (a skill id)"));
            };
            let agent = call.get("agentId").and_then(Value::as_str);
            let remote = self.find(name, agent)?;
            let arguments = call.get("message").cloned().unwrap_or_else(|| json!({}));
            let payload = json::from_value(remote.schema.message_descriptor(), &arguments)
                .map_err(|error| {
                    let field = error.field.as_deref().map(|f| format!("message.{f}")).unwrap_or("message".into());
                    A2AError::invalid_params(format!("{} (field {field} of {})", error.message, remote.handle))
                })?
                .encode_to_vec()
                .into();
            let kind = if remote.ask && (remote.reply.is_some() || !(remote.stream || remote.tell)) {
                Kind::Ask
            } else if remote.stream && remote.stream_item.is_some() {
                Kind::Stream
            } else {
                Kind::Tell
            };
            return Ok(Plan { remote, payload, kind, text: false });
        }
        let text: Vec<&str> = parts.iter().filter_map(Part::as_text).collect();
        if text.is_empty() {
            return Err(A2AError::invalid_params(
                "the message has neither a data part {\"intent\": <skill id>, \"message\": {...}} nor text",
            ));
        }
        let Some(remote) = self.inner.peers.intents().into_iter().find(|r| r.schema.name() == TextTask::NAME && r.ask)
        else {
            let mut error = A2AError::content_type_not_supported();
            error.message = "text needs a Tacit peer that takes tacit.intents.v1.TextTask, and none is connected; \
                             send a data part {\"intent\": <skill id>, \"message\": {...}} (skills: see the agent card)"
                .into();
            return Err(error);
        };
        let skill = message.metadata.as_ref().and_then(|m| m.get("skill")).and_then(Value::as_str).unwrap_or("");
        let task = TextTask {
            skill: skill.to_owned(),
            text: text.join("\n"),
            data_json: String::new(),
            context_id: message.context_id.clone().unwrap_or_default(),
        };
        Ok(Plan { remote, payload: task.encode_to_vec().into(), kind: Kind::Ask, text: true })
    }

    /// The skill `name` (a handle, else an intent's full name, of `agent` if given).
    fn find(&self, name: &str, agent: Option<&str>) -> Result<Arc<Remote>, A2AError> {
        if let Some(remote) = self.inner.peers.intent(name)
            && agent.is_none_or(|agent| remote.peer.id().to_string() == agent)
        {
            return Ok(remote);
        }
        let intents = self.inner.peers.intents();
        let by_name = intents
            .iter()
            .find(|r| r.schema.name() == name && agent.is_none_or(|agent| r.peer.id().to_string() == agent));
        if let Some(remote) = by_name {
            return Ok(remote.clone());
        }
        let known: Vec<&str> = intents.iter().take(20).map(|r| r.handle.as_str()).collect();
        Err(A2AError::invalid_params(format!(
            "no skill {name:?}{} (skills: {})",
            agent.map(|a| format!(" of agent {a}")).unwrap_or_default(),
            if known.is_empty() { "none now".to_owned() } else { known.join(", ") }
        )))
    }
}

/// What a message calls.
struct Plan {
    remote: Arc<Remote>,
    payload: Bytes,
    kind: Kind,
    /// A `TextTask` made of a text message: its result becomes text and data parts.
    text: bool,
}

#[derive(Clone, Copy)]
enum Kind {
    Ask,
    Tell,
    Stream,
}

struct CardProducer {
    gateway: Gateway,
}

impl AgentCardProducer for CardProducer {
    fn card(&self) -> A2aCard {
        self.gateway.card()
    }
}

struct Executor {
    gateway: Gateway,
}

/// The ids of the task an execution reports on.
#[derive(Clone)]
struct Ids {
    task: String,
    context: String,
}

type Events = tokio::sync::mpsc::Sender<Result<StreamResponse, A2AError>>;

impl AgentExecutor for Executor {
    fn execute(&self, ctx: ExecutorContext) -> BoxStream<'static, Result<StreamResponse, A2AError>> {
        let message = ctx.message.clone().unwrap_or_else(|| Message::new(Role::User, vec![]));
        let plan = match self.gateway.plan(&message) {
            Ok(plan) => plan,
            Err(error) => return Box::pin(stream::once(async move { Err(error) })),
        };
        let trace = trace_of(&ctx, &message);
        let ids = Ids { task: ctx.task_id.clone(), context: ctx.context_id.clone() };
        let (events, mut received) = tokio::sync::mpsc::channel(16);
        let (cancel, cancelled) = tokio::sync::oneshot::channel();
        lock(&self.gateway.inner.running).insert(ids.task.clone(), cancel);
        let gateway = self.gateway.clone();
        let working = Task {
            id: ids.task.clone(),
            context_id: ids.context.clone(),
            status: TaskStatus { state: TaskState::Working, message: None, timestamp: None },
            artifacts: None,
            // Not kept: a message is up to the body limit, and tasks are many.
            history: None,
            metadata: None,
        };
        tokio::spawn(async move {
            if events.send(Ok(StreamResponse::Task(working))).await.is_ok() {
                let timeout = gateway.inner.ask_timeout;
                tokio::select! {
                    () = run(plan, &ids, &events, timeout, trace) => {}
                    // Dropping the call sends CANCEL; the cancel handler reports the state.
                    Ok(()) = cancelled => {}
                    () = events.closed() => {}
                }
            }
            lock(&gateway.inner.running).remove(&ids.task);
        });
        Box::pin(stream::poll_fn(move |cx| received.poll_recv(cx)))
    }

    fn cancel(&self, ctx: ExecutorContext) -> BoxStream<'static, Result<StreamResponse, A2AError>> {
        if let Some(cancel) = lock(&self.gateway.inner.running).remove(&ctx.task_id) {
            let _ = cancel.send(());
        }
        let update = status(
            &Ids { task: ctx.task_id.clone(), context: ctx.context_id.clone() },
            TaskState::Canceled,
            Some("cancelled by the client; the Tacit call was withdrawn (CANCEL)".into()),
            None,
        );
        Box::pin(stream::once(async move { Ok(update) }))
    }
}

/// Carries out a plan, sending its events.
async fn run(plan: Plan, ids: &Ids, events: &Events, timeout: Duration, trace: Option<TraceContext>) {
    let remote = &plan.remote;
    // One A2A context is one Tacit conversation.
    let call = CallOptions::new(timeout).trace(trace).conversation(&ids.context);
    let outcome = match plan.kind {
        Kind::Ask => match remote.ask(plan.payload, &call).await {
            Ok(reply) => {
                let parts = if plan.text { text_parts(&reply) } else { vec![Part::data(reply)] };
                let reply_name = remote.reply.as_ref().map(|r| r.full_name().to_owned());
                let _ = events.send(Ok(artifact(ids, "reply", reply_name, parts, false))).await;
                Ok(())
            }
            Err(error) => Err(error),
        },
        Kind::Tell => match remote.tell(plan.payload, &call).await {
            Ok(()) => {
                let _ = events.send(Ok(artifact(ids, "reply", None, vec![Part::text("sent")], false))).await;
                Ok(())
            }
            Err(error) => Err(error),
        },
        Kind::Stream => match remote.open_stream(plan.payload, timeout).await {
            Ok(mut items) => {
                let (mut count, mut bytes) = (0usize, 0usize);
                loop {
                    if count >= MAX_STREAM_ITEMS || bytes >= MAX_STREAM_BYTES {
                        // Dropping the receiver ends the stream on the wire.
                        let note = format!("stopped after {count} items ({bytes} bytes): the gateway keeps no more");
                        let _ = events.send(Ok(status(ids, TaskState::Completed, Some(note), None))).await;
                        return;
                    }
                    match items.next().await {
                        Ok(Some(item)) => {
                            bytes += item.to_string().len();
                            let event = artifact(ids, "items", None, vec![Part::data(item)], count > 0);
                            count += 1;
                            if events.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break Ok(()),
                        Err(error) => break Err(error),
                    }
                }
            }
            Err(error) => Err(error),
        },
    };
    let last = match outcome {
        Ok(()) => status(ids, TaskState::Completed, None, None),
        Err(error) if error.act == Some(Act::NotUnderstood) => {
            let _ = events.send(Err(A2AError::invalid_params(error.to_string()))).await;
            return;
        }
        Err(error) => {
            let state = match (error.act, error.code) {
                (Some(Act::Refuse), _) => TaskState::Rejected,
                (_, ErrorCode::Cancelled) => TaskState::Canceled,
                _ => TaskState::Failed,
            };
            status(ids, state, Some(error.to_string()), Some(tacit_metadata(&error)))
        }
    };
    let _ = events.send(Ok(last)).await;
}

/// The `TextResult` of a text message as parts: its text, and its data.
fn text_parts(reply: &Value) -> Vec<Part> {
    let field = |name: &str| reply.get(name).and_then(Value::as_str).unwrap_or("");
    let mut parts = Vec::new();
    if !field("text").is_empty() {
        parts.push(Part::text(field("text")));
    }
    if let Ok(data) = serde_json::from_str::<Value>(field("dataJson")) {
        parts.push(Part::data(data));
    }
    if parts.is_empty() {
        parts.push(Part::text(""));
    }
    parts
}

fn artifact(ids: &Ids, id: &str, name: Option<String>, parts: Vec<Part>, append: bool) -> StreamResponse {
    StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
        task_id: ids.task.clone(),
        context_id: ids.context.clone(),
        artifact: Artifact { artifact_id: id.into(), name, description: None, parts, metadata: None, extensions: None },
        append: Some(append),
        last_chunk: None,
        metadata: None,
    })
}

fn status(
    ids: &Ids,
    state: TaskState,
    text: Option<String>,
    metadata: Option<HashMap<String, Value>>,
) -> StreamResponse {
    StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
        task_id: ids.task.clone(),
        context_id: ids.context.clone(),
        status: TaskStatus {
            state,
            message: text.map(|text| {
                let mut message = Message::new(Role::Agent, vec![Part::text(text)]);
                message.metadata.clone_from(&metadata);
                message
            }),
            timestamp: None,
        },
        metadata,
    })
}

/// `{"tacit": {"act": ..., "code": ..., "codeValue": ...}}`.
fn tacit_metadata(error: &CallError) -> HashMap<String, Value> {
    let mut tacit = json!({ "code": code_name(error.code), "codeValue": error.code as i32 });
    if let Some(act) = error.act {
        tacit["act"] = json!(act_name(act));
    }
    HashMap::from([("tacit".to_owned(), tacit)])
}

/// The W3C trace context of a message: its metadata, the request's, or the HTTP header.
fn trace_of(ctx: &ExecutorContext, message: &Message) -> Option<TraceContext> {
    let from = |metadata: Option<&HashMap<String, Value>>| {
        metadata.and_then(|m| m.get("traceparent")).and_then(Value::as_str).and_then(crate::peers::traceparent)
    };
    from(message.metadata.as_ref()).or_else(|| from(ctx.metadata.as_ref())).or_else(|| {
        ctx.service_params
            .get("traceparent")
            .and_then(|values| values.first())
            .and_then(|v| crate::peers::traceparent(v))
    })
}

/// The gateway's task store: the SDK's in-memory store in two generations.
/// New tasks go to the current one; once it holds [`GENERATION_TASKS`]
/// tasks or about [`GENERATION_BYTES`] of them, the previous generation is
/// forgotten and the current one becomes it. A task of the previous
/// generation that is read moves back into the current one when it
/// changes, so working tasks are kept; memory stays bounded by two
/// generations. `GetTask` of a forgotten task is `TaskNotFoundError`;
/// `ListTasks` lists the current generation.
struct Generations {
    state: Mutex<Stores>,
    max_tasks: usize,
    max_bytes: usize,
}

impl Default for Generations {
    fn default() -> Self {
        Self { state: Mutex::default(), max_tasks: GENERATION_TASKS, max_bytes: GENERATION_BYTES }
    }
}

#[derive(Default)]
struct Stores {
    current: Arc<InMemoryTaskStore>,
    previous: Arc<InMemoryTaskStore>,
    tasks: usize,
    bytes: usize,
    /// Tasks not in a final state: carried into the next generation.
    working: std::collections::HashSet<String>,
}

impl Generations {
    /// The two stores now, counting a write of `task` to the current one.
    /// When the current one is full, it becomes the previous one, and the
    /// working tasks of the forgotten one are returned to be carried over.
    fn for_write(&self, task: Option<&Task>) -> (Arc<InMemoryTaskStore>, Arc<InMemoryTaskStore>, Carry) {
        let mut stores = lock(&self.state);
        let mut carry = None;
        if let Some(task) = task {
            if stores.tasks >= self.max_tasks || stores.bytes >= self.max_bytes {
                let stores = &mut *stores;
                let forgotten = std::mem::replace(&mut stores.previous, std::mem::take(&mut stores.current));
                carry = Some((forgotten, stores.working.iter().filter(|id| **id != task.id).cloned().collect()));
                stores.tasks = 0;
                stores.bytes = 0;
            }
            stores.bytes += written(task);
            if task.status.state.is_terminal() {
                stores.working.remove(&task.id);
            } else {
                stores.working.insert(task.id.clone());
            }
        }
        (stores.current.clone(), stores.previous.clone(), carry)
    }

    fn created(&self) {
        lock(&self.state).tasks += 1;
    }

    /// Moves the working tasks of a forgotten generation that the newer
    /// ones do not hold into the current one.
    async fn carry_over(&self, carry: Carry, current: &InMemoryTaskStore) {
        let Some((forgotten, working)) = carry else { return };
        let previous = lock(&self.state).previous.clone();
        for id in working {
            if matches!(previous.get(&id).await, Ok(Some(_))) || matches!(current.get(&id).await, Ok(Some(_))) {
                continue;
            }
            if let Ok(Some(task)) = forgotten.get(&id).await
                && current.create(task).await.is_ok()
            {
                self.created();
            }
        }
    }
}

/// About what a write of `task` adds, in bytes of JSON: its status message
/// and the last part of each artifact (what an event changes), so a task
/// that grows by appends costs no more to count than its appends.
fn written(task: &Task) -> usize {
    let message = task.status.message.as_ref().and_then(|m| serde_json::to_vec(m).ok()).map_or(0, |json| json.len());
    let parts = task.artifacts.iter().flatten().filter_map(|artifact| artifact.parts.last());
    let parts: usize = parts.filter_map(|part| serde_json::to_vec(part).ok()).map(|json| json.len()).sum();
    message + parts + 64
}

/// A forgotten generation and the ids of the working tasks to carry from it.
type Carry = Option<(Arc<InMemoryTaskStore>, Vec<String>)>;

#[async_trait::async_trait]
impl TaskStore for Generations {
    async fn create(&self, task: Task) -> Result<TaskVersion, A2AError> {
        let (current, _, carry) = self.for_write(Some(&task));
        self.carry_over(carry, &current).await;
        let version = current.create(task).await?;
        self.created();
        Ok(version)
    }

    async fn update(&self, task: Task) -> Result<TaskVersion, A2AError> {
        let (current, previous, carry) = self.for_write(Some(&task));
        self.carry_over(carry, &current).await;
        match current.update(task.clone()).await {
            Err(error) if error.code == ::a2a::error_code::TASK_NOT_FOUND => {
                let Some(old) = previous.get(&task.id).await? else { return Err(error) };
                if old.status.state.is_terminal() && old.status.state != task.status.state {
                    return Err(A2AError::invalid_request(format!("task {} is in a terminal state", task.id)));
                }
                let version = current.create(task).await?;
                self.created();
                Ok(version)
            }
            outcome => outcome,
        }
    }

    async fn get(&self, task_id: &str) -> Result<Option<Task>, A2AError> {
        let (current, previous, _) = self.for_write(None);
        match current.get(task_id).await? {
            Some(task) => Ok(Some(task)),
            None => previous.get(task_id).await,
        }
    }

    async fn list(&self, req: &::a2a::ListTasksRequest) -> Result<::a2a::ListTasksResponse, A2AError> {
        let (current, _, _) = self.for_write(None);
        current.list(req).await
    }

    async fn begin_cancel(&self, task_id: &str) -> Result<Task, A2AError> {
        let (current, previous, _) = self.for_write(None);
        let task = match current.begin_cancel(task_id).await {
            Err(error) if error.code == ::a2a::error_code::TASK_NOT_FOUND => {
                let Some(old) = previous.get(task_id).await? else { return Err(error) };
                let (current, _, carry) = self.for_write(Some(&old));
                self.carry_over(carry, &current).await;
                current.create(old).await?;
                self.created();
                current.begin_cancel(task_id).await?
            }
            outcome => outcome?,
        };
        lock(&self.state).working.remove(task_id);
        Ok(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, state: TaskState) -> Task {
        Task {
            id: id.into(),
            context_id: "c".into(),
            status: TaskStatus { state, message: None, timestamp: None },
            artifacts: None,
            history: None,
            metadata: None,
        }
    }

    #[tokio::test]
    async fn the_task_store_forgets_old_generations_and_keeps_working_tasks() {
        let store = Generations { state: Mutex::default(), max_tasks: 2, max_bytes: usize::MAX };
        store.create(task("a", TaskState::Working)).await.unwrap();
        store.create(task("b", TaskState::Completed)).await.unwrap();
        // A third task starts a generation; a and b are still readable.
        store.create(task("c", TaskState::Completed)).await.unwrap();
        assert!(store.get("a").await.unwrap().is_some());
        // a changes: it moves into the current generation.
        store.update(task("a", TaskState::Working)).await.unwrap();
        // A fourth, then a fifth task: the generation of b is forgotten, a is kept.
        store.create(task("d", TaskState::Completed)).await.unwrap();
        store.create(task("e", TaskState::Completed)).await.unwrap();
        assert!(store.get("b").await.unwrap().is_none(), "b was forgotten");
        assert_eq!(store.get("a").await.unwrap().unwrap().status.state, TaskState::Working);
        // A terminal task of the previous generation stays terminal.
        let error = store.update(task("d", TaskState::Working)).await.unwrap_err();
        assert_eq!(error.code, ::a2a::error_code::INVALID_REQUEST);
        // Two more generations: a, working, is carried into each; c is forgotten.
        store.create(task("f", TaskState::Completed)).await.unwrap();
        store.create(task("g", TaskState::Completed)).await.unwrap();
        store.create(task("h", TaskState::Completed)).await.unwrap();
        assert!(store.get("c").await.unwrap().is_none(), "c was forgotten");
        assert!(store.get("a").await.unwrap().is_some(), "a, working, was carried over");
        assert_eq!(store.begin_cancel("a").await.unwrap().status.state, TaskState::Canceled);
        assert_eq!(store.get("a").await.unwrap().unwrap().status.state, TaskState::Canceled);
        // Bytes count too.
        let small = Generations { state: Mutex::default(), max_tasks: usize::MAX, max_bytes: 1 };
        small.create(task("x", TaskState::Completed)).await.unwrap();
        small.create(task("y", TaskState::Completed)).await.unwrap();
        small.create(task("z", TaskState::Completed)).await.unwrap();
        assert!(small.get("x").await.unwrap().is_none());
    }
}
