//! The Tacit side of a bridge (feature `mcp` or `a2a-server`): a set of
//! peers followed for as long as the bridge runs, and the intents they
//! take, each under a unique handle that both bridges use (an MCP tool's
//! name, an A2A skill's id).
//!
//! [`Peers`] dials each peer it is given, reads what it offers the bridge in
//! the capability handshake (its card and the intents it handles, as its
//! policy lets the bridge use them), fetches the schema of each, and dials it again from an agent
//! that emits those intents (intents are negotiated in the capability
//! handshake). A peer that cannot be reached is dialed again (backing off up
//! to 5 s); a peer whose session ends loses its intents until it is back,
//! and is described anew then, so a restart with other capabilities shows;
//! a peer that offers other intents in a capability update within the
//! session is described anew and dialed again at once.
//! Every change bumps [`Peers::changes`].
//!
//! The bridge is one Tacit agent to each peer, with its own identity
//! ([`PeersBuilder::identity`]) and the organisation credentials it is
//! given ([`PeersBuilder::credential`]): peers apply their policy to it as
//! to any agent, so it can never do more than its credentials allow, and
//! an intent the policy does not offer to it is not negotiated, and so is
//! not bridged at all.
//!
//! The standard intents every Tacit agent answers itself (`Ping`,
//! `HealthCheck`, `DescribeAgent`, ...) are not bridged; at most 256 intents
//! of one peer are.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use prost_reflect::MessageDescriptor;
use serde_json::Value;
use tacit::credential::SignedCredential;
use tacit::intents::{AgentDescription, DescribeAgent, HealthCheck, Ping, RejectProposal, Revocations};
use tacit::{
    Act, Agent, AgentCard, AgentId, AskOptions, ConversationId, ErrorCode, Identity, Intent, IntentId, Lane, LinkState,
    Peer, ReconnectPolicy, Schema, StreamReceiver, TellOptions, TraceContext,
};

use crate::json;

/// The standard intents the library answers itself: never bridged.
const BUILTIN: [&str; 5] =
    [Ping::NAME, HealthCheck::NAME, DescribeAgent::NAME, RejectProposal::NAME, Revocations::NAME];

/// The longest handle (MCP's limit on tool names).
const MAX_HANDLE: usize = 128;

/// The most intents of one peer that are bridged (each costs a schema
/// fetch, and every tool or skill costs the LLM context).
const MAX_INTENTS_PER_PEER: usize = 256;

/// The longest wait between two dials of a peer that is not there.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A peer to bridge: `ADDR` or `ADDR=AGENTID` (the AgentId it must prove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    /// `HOST:PORT` (UDP).
    pub addr: String,
    /// The AgentId the peer must hold, if given.
    pub expect: Option<AgentId>,
}

impl FromStr for PeerAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, expect) = match text.split_once('=') {
            Some((addr, id)) => {
                let id = id.parse::<AgentId>().map_err(|e| format!("{id:?} is not an AgentId: {e}"))?;
                (addr, Some(id))
            }
            None => (text, None),
        };
        if addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
            return Err(format!("{addr:?} is not HOST:PORT"));
        }
        Ok(Self { addr: addr.to_owned(), expect })
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expect {
            Some(id) => write!(f, "{}={id}", self.addr),
            None => f.write_str(&self.addr),
        }
    }
}

/// A bridge could not start (no identity) or serve (its transport failed).
#[derive(Debug, Clone)]
pub struct BridgeError(pub(crate) String);

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BridgeError {}

/// Builds [`Peers`].
#[derive(Debug)]
#[must_use]
pub struct PeersBuilder {
    identity: Option<Identity>,
    credentials: Vec<SignedCredential>,
    peers: Vec<PeerAddr>,
    connect_timeout: Duration,
    label: &'static str,
}

impl PeersBuilder {
    /// The bridge's identity (default: a fresh one). Peers see this AgentId
    /// and apply their policy to it.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// An organisation credential the bridge presents to peers (repeatable).
    pub fn credential(mut self, credential: SignedCredential) -> Self {
        self.credentials.push(credential);
        self
    }

    /// A peer whose intents are bridged (repeatable).
    pub fn peer(mut self, peer: PeerAddr) -> Self {
        self.peers.push(peer);
        self
    }

    /// How long a dial, a handshake and each schema fetch
    /// may take (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The name in log lines and in the card the bridge shows its peers
    /// (default `tacit-bridge`).
    pub fn label(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }

    /// Starts following the peers, and returns once each has been tried once
    /// (connected and described, or failed; a failed one is tried again in
    /// the background). Must run inside a Tokio runtime. Fails only when no
    /// identity was given and none can be generated.
    pub async fn start(self) -> Result<Peers, BridgeError> {
        let identity = match self.identity {
            Some(identity) => identity,
            None => Identity::generate().map_err(|e| BridgeError(format!("cannot generate an identity: {e}")))?,
        };
        let (changes, _) = tokio::sync::watch::channel(0u64);
        let inner = Arc::new(Inner {
            config: Config {
                identity,
                credentials: self.credentials,
                connect_timeout: self.connect_timeout,
                label: self.label,
            },
            state: Mutex::new(State::default()),
            changes,
            tasks: Mutex::new(Vec::new()),
        });
        let mut first = Vec::new();
        for (index, spec) in self.peers.into_iter().enumerate() {
            let (tried, attempted) = tokio::sync::oneshot::channel();
            first.push(attempted);
            let task = tokio::spawn(follow(Arc::downgrade(&inner), index, spec, tried));
            lock(&inner.tasks).push(task);
        }
        for attempted in first {
            let _ = attempted.await;
        }
        Ok(Peers { inner })
    }
}

/// The peers of a bridge and the intents they take. Cheap to clone: clones
/// share the peers; the last one dropped stops following them.
#[derive(Debug, Clone)]
pub struct Peers {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Config {
    identity: Identity,
    credentials: Vec<SignedCredential>,
    connect_timeout: Duration,
    label: &'static str,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    state: Mutex<State>,
    /// Bumped whenever the peers or their intents change.
    changes: tokio::sync::watch::Sender<u64>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Connected peers, by their index in the builder's list.
    peers: BTreeMap<usize, Arc<Connected>>,
    intents: BTreeMap<String, Arc<Remote>>,
}

/// A connected peer: its session, address and card.
#[derive(Debug)]
pub struct Connected {
    agent: Agent,
    /// The session with the peer.
    pub peer: Peer,
    /// The address it was dialed at.
    pub addr: String,
    /// What it offered in the handshake: its card and intents (as `DescribeAgent` would answer).
    pub description: AgentDescription,
    /// Handle → intent name, of its bridged intents.
    pub intents: Vec<(String, String)>,
}

impl Connected {
    /// The peer's name, or its AgentId if it has none.
    pub fn name(&self) -> String {
        if self.description.name.is_empty() { self.peer.id().to_string() } else { self.description.name.clone() }
    }
}

/// An intent a connected peer takes, as a bridge offers it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Remote {
    /// Unique among the bridge's intents: `<peer name>_<Message>`, with
    /// `[A-Za-z0-9_.-]` only, at most 128 characters, made unique with `_2`,
    /// `_3`, ... in the order intents appear.
    pub handle: String,
    /// `<Message> (<peer name>)`.
    pub title: String,
    /// The session with the peer that takes it.
    pub peer: Peer,
    /// Its schema, verified against its id.
    pub schema: Schema,
    /// The lanes it was negotiated on (the peer handles it there).
    pub ask: bool,
    /// Negotiated on the tell lane.
    pub tell: bool,
    /// Negotiated on the stream lane.
    pub stream: bool,
    /// Its reply (`(tacit.v1.reply)`), for an ask.
    pub reply: Option<MessageDescriptor>,
    /// The reply's schema, resolved once (hashing a descriptor set's
    /// messages on every call would cost milliseconds).
    reply_schema: Option<Schema>,
    /// What the peer streams back (`(tacit.v1.stream_item)`), for a stream.
    pub stream_item: Option<MessageDescriptor>,
}

/// Why a call through the bridge did not give a reply: what the peer or the
/// transport said, as an act (for a peer's rejection) and a Tacit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// `REFUSE`, `FAILURE` or `NOT_UNDERSTOOD` for a peer's rejection; `None`
    /// for a failure of the bridge or the transport.
    pub act: Option<Act>,
    /// The Tacit code.
    pub code: ErrorCode,
    /// What happened, readable.
    pub reason: String,
}

impl CallError {
    fn bridge(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self { act: None, code, reason: reason.into() }
    }

    fn from_tacit(error: &tacit::Error) -> Self {
        match error.rejection() {
            Some(rejection) => {
                Self { act: Some(rejection.act), code: rejection.code, reason: rejection.reason.clone() }
            }
            None => Self::bridge(error.code(), error.to_string()),
        }
    }
}

impl fmt::Display for CallError {
    /// `REFUSE DECLINED: out of stock` for a rejection, `CODE: what
    /// happened` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(act) = self.act {
            write!(f, "{} ", act_name(act))?;
        }
        write!(f, "{}: {}", code_name(self.code), self.reason)
    }
}

/// How a bridge calls a [`Remote`]: the deadline, and what the call
/// carries along from the client's side.
#[derive(Debug, Clone)]
#[must_use]
pub struct CallOptions {
    timeout: Duration,
    trace: Option<TraceContext>,
    conversation: ConversationId,
}

impl CallOptions {
    /// A call that must end within `timeout` (an ask's deadline, a tell's
    /// wait to be sent).
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, trace: None, conversation: ConversationId::none() }
    }

    /// The W3C trace context the call continues (MCP `_meta`, A2A metadata).
    pub fn trace(mut self, trace: Option<TraceContext>) -> Self {
        self.trace = trace;
        self
    }

    /// The Tacit conversation the call belongs to (an A2A context id). An
    /// id over the wire's 64 bytes becomes its first 40 bytes, `~` and a
    /// 64-bit hash of the whole, so one client context is still one
    /// conversation.
    pub fn conversation(mut self, id: &str) -> Self {
        self.conversation = ConversationId::new(id).unwrap_or_else(|_| {
            let mut short: String = id.chars().take(40).collect();
            while short.len() > 40 {
                short.pop();
            }
            ConversationId::new(&format!("{short}~{:x}", fnv(id.as_bytes()))).unwrap_or(ConversationId::none())
        });
        self
    }
}

/// FNV-1a, 64 bits: a stable short tag for an over-long id.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3))
}

impl Remote {
    /// Asks the intent with `payload` (the encoded message) within the
    /// call's timeout, and gives the reply as proto3 JSON.
    pub async fn ask(&self, payload: Bytes, call: &CallOptions) -> Result<Value, CallError> {
        let intent = self.schema.name();
        let timeout = call.timeout;
        let mut options = AskOptions::default().deadline(timeout).conversation(call.conversation);
        if let Some(trace) = call.trace {
            options = options.trace(trace);
        }
        let asking = self.peer.ask_raw(self.schema.id(), payload, options);
        let reply = match tokio::time::timeout(timeout + Duration::from_millis(500), asking).await {
            Err(_) => {
                return Err(CallError::bridge(ErrorCode::DeadlineExceeded, format!("no reply to {intent} in time")));
            }
            Ok(Err(e)) => return Err(CallError::from_tacit(&e)),
            Ok(Ok(reply)) => reply,
        };
        if reply.act != Act::Inform {
            return Err(CallError::bridge(
                ErrorCode::InvalidPayload,
                format!("the peer answered {}", act_name(reply.act)),
            ));
        }
        let Some(reply_id) = reply.intent else {
            return Err(CallError::bridge(
                ErrorCode::InvalidPayload,
                "the reply names an intent this bridge cannot resolve",
            ));
        };
        let cached = self.reply_schema.as_ref().filter(|schema| schema.id() == reply_id).cloned();
        let Some(reply_schema) = cached.or_else(|| self.related(reply_id)) else {
            return Err(CallError::bridge(
                ErrorCode::InvalidPayload,
                format!("the reply's intent {reply_id} is not in {intent}'s schema"),
            ));
        };
        reply_schema.decode(&reply.payload).map(|message| json::to_value(&message)).map_err(|e| {
            CallError::bridge(
                ErrorCode::InvalidPayload,
                format!("the reply does not decode as {}: {e}", reply_schema.name()),
            )
        })
    }

    /// Tells the intent `payload`, waiting at most the call's timeout for it to be sent.
    pub async fn tell(&self, payload: Bytes, call: &CallOptions) -> Result<(), CallError> {
        let mut options = TellOptions::default().conversation(call.conversation);
        if let Some(trace) = call.trace {
            options = options.trace(trace);
        }
        let telling = self.peer.tell_raw(self.schema.id(), payload, options);
        match tokio::time::timeout(call.timeout, telling).await {
            Err(_) => Err(CallError::bridge(
                ErrorCode::DeadlineExceeded,
                format!("{} could not be sent in time", self.schema.name()),
            )),
            Ok(Err(e)) => Err(CallError::from_tacit(&e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Opens the intent's stream lane with `payload` as the opening, within
    /// `timeout`; the items come as proto3 JSON of the declared item type.
    pub async fn open_stream(&self, payload: Bytes, timeout: Duration) -> Result<JsonStream, CallError> {
        let Some(item) = self.stream_item.clone() else {
            return Err(CallError::bridge(
                ErrorCode::IntentNotNegotiated,
                format!("{} declares no stream item type", self.schema.name()),
            ));
        };
        let opening = self.peer.stream_raw(self.schema.id(), payload);
        match tokio::time::timeout(timeout, opening).await {
            Err(_) => Err(CallError::bridge(
                ErrorCode::DeadlineExceeded,
                format!("{}: the stream did not open in time", self.schema.name()),
            )),
            Ok(Err(e)) => Err(CallError::from_tacit(&e)),
            Ok(Ok((_, receiver))) => Ok(JsonStream { receiver, item }),
        }
    }

    /// A message type of the intent's descriptor set, by id.
    fn related(&self, id: IntentId) -> Option<Schema> {
        if id == self.schema.id() { Some(self.schema.clone()) } else { self.schema.related(id) }
    }
}

/// The items of a stream lane opened through the bridge, as JSON.
#[derive(Debug)]
pub struct JsonStream {
    receiver: StreamReceiver<()>,
    item: MessageDescriptor,
}

impl JsonStream {
    /// The next item; `Ok(None)` at the peer's end of the stream.
    pub async fn next(&mut self) -> Result<Option<Value>, CallError> {
        let Some(payload) = self.receiver.recv_raw().await.map_err(|e| CallError::from_tacit(&e))? else {
            return Ok(None);
        };
        let message = prost_reflect::DynamicMessage::decode(self.item.clone(), payload).map_err(|e| {
            CallError::bridge(
                ErrorCode::InvalidPayload,
                format!("a stream item does not decode as {}: {e}", self.item.full_name()),
            )
        })?;
        Ok(Some(json::to_value(&message)))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Peers {
    /// Peers to follow, with a fresh identity.
    pub fn builder() -> PeersBuilder {
        PeersBuilder {
            identity: None,
            credentials: Vec::new(),
            peers: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            label: "tacit-bridge",
        }
    }

    /// The bridge's AgentId, as its peers see it.
    pub fn id(&self) -> AgentId {
        self.inner.config.identity.agent_id()
    }

    /// The intents bridged now, by handle.
    pub fn intents(&self) -> Vec<Arc<Remote>> {
        lock(&self.inner.state).intents.values().cloned().collect()
    }

    /// The intent with this handle, if its peer is connected.
    pub fn intent(&self, handle: &str) -> Option<Arc<Remote>> {
        lock(&self.inner.state).intents.get(handle).cloned()
    }

    /// The connected peers, in the order they were given.
    pub fn connected(&self) -> Vec<Arc<Connected>> {
        lock(&self.inner.state).peers.values().cloned().collect()
    }

    /// Bumped whenever the peers or their intents change; the number is a
    /// version, so a cache built at one can tell it is stale.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Keeps `task` running until the last clone of these peers is dropped,
    /// and forgets finished ones.
    pub fn keep(&self, task: tokio::task::JoinHandle<()>) {
        let mut tasks = lock(&self.inner.tasks);
        tasks.retain(|task| !task.is_finished());
        tasks.push(task);
    }
}

/// Follows peer `index`: dials it, installs its intents, waits for its
/// session to end, removes them, and dials again, until the bridge is dropped.
async fn follow(inner: Weak<Inner>, index: usize, spec: PeerAddr, tried: tokio::sync::oneshot::Sender<()>) {
    let mut tried = Some(tried);
    let mut delay = Duration::from_millis(200);
    loop {
        let (attempt, label) = {
            let Some(strong) = inner.upgrade() else { return };
            let config = &strong.config;
            (connect(config, &spec).await, config.label)
        };
        match attempt {
            Ok((connected, intents)) => {
                delay = Duration::from_millis(200);
                let watch = connected.peer.watch();
                let session = connected.peer.session();
                let peer_id = connected.peer.id();
                {
                    let Some(strong) = inner.upgrade() else { return };
                    let count = install(&strong, index, connected, intents);
                    eprintln!("{label}: {spec}: connected to {peer_id}, {count} intents");
                }
                if let Some(tried) = tried.take() {
                    let _ = tried.send(());
                }
                if let Some(mut watch) = watch {
                    let session = session.clone();
                    let mut seen = session.negotiated();
                    loop {
                        let updated = async {
                            match &seen {
                                Some(negotiated) => match session.negotiated_after(negotiated).await {
                                    Some(now) => now,
                                    // The session ended: the link's watch says so.
                                    None => std::future::pending().await,
                                },
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            change = watch.changed() => match change {
                                Some(LinkState::Up { .. }) => continue,
                                Some(state) => {
                                    eprintln!("{label}: {spec}: {peer_id} left ({state:?})");
                                    break;
                                }
                                None => break,
                            },
                            now = updated => {
                                let before = seen.as_deref().map(handled_ids);
                                if before.as_ref() != Some(&handled_ids(&now)) {
                                    // New intents need a new description, and a session
                                    // that emits them: dial again.
                                    eprintln!("{label}: {spec}: {peer_id} updated its capabilities; describing it again");
                                    break;
                                }
                                seen = Some(now);
                            }
                        }
                    }
                }
                let Some(strong) = inner.upgrade() else { return };
                if let Some(connected) = remove(&strong, index) {
                    drop(strong);
                    connected.peer.close();
                    connected.agent.shutdown(Duration::from_millis(100)).await;
                }
            }
            Err(reason) => {
                eprintln!("{label}: {spec}: {reason}; trying again in {} ms", delay.as_millis());
                if let Some(tried) = tried.take() {
                    let _ = tried.send(());
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// The intents the peer handles, by id.
fn handled_ids(negotiated: &tacit::transport::Negotiated) -> std::collections::BTreeSet<IntentId> {
    negotiated.peer_offers.iter().filter(|offer| offer.handles).map(|offer| offer.id).collect()
}

/// Adds a peer's intents, giving them unique handles; returns how many.
fn install(inner: &Inner, index: usize, mut connected: Connected, intents: Vec<Remote>) -> usize {
    let mut state = lock(&inner.state);
    let prefix = sanitize(if connected.description.name.is_empty() { "agent" } else { &connected.description.name });
    let count = intents.len();
    let mut named = Vec::with_capacity(count);
    for mut remote in intents {
        let short = remote.schema.name().rsplit('.').next().unwrap_or(remote.schema.name()).to_owned();
        let base = truncate(&format!("{prefix}_{}", sanitize(&short)), MAX_HANDLE - 4);
        let mut handle = base.clone();
        let mut n = 2;
        while state.intents.contains_key(&handle) || named.iter().any(|r: &Remote| r.handle == handle) {
            handle = format!("{base}_{n}");
            n += 1;
        }
        remote.handle = handle.clone();
        remote.title = format!("{short} ({prefix})");
        connected.intents.push((handle, remote.schema.name().to_owned()));
        named.push(remote);
    }
    for remote in named {
        state.intents.insert(remote.handle.clone(), Arc::new(remote));
    }
    state.peers.insert(index, Arc::new(connected));
    drop(state);
    inner.changes.send_modify(|version| *version += 1);
    count
}

/// Removes a peer and its intents.
fn remove(inner: &Inner, index: usize) -> Option<Arc<Connected>> {
    let mut state = lock(&inner.state);
    let connected = state.peers.remove(&index)?;
    for (handle, _) in &connected.intents {
        state.intents.remove(handle);
    }
    drop(state);
    inner.changes.send_modify(|version| *version += 1);
    Some(connected)
}

/// `[A-Za-z0-9_.-]` only; anything else becomes `_`.
fn sanitize(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' }).collect();
    if cleaned.is_empty() { "agent".into() } else { cleaned }
}

fn truncate(text: &str, len: usize) -> String {
    // ASCII only after `sanitize`.
    text.chars().take(len).collect()
}

/// Dials the peer twice: once to describe it and fetch its schemas, once
/// from an agent that emits its intents. Returns the connection and its
/// intents (not yet named).
async fn connect(config: &Config, spec: &PeerAddr) -> Result<(Connected, Vec<Remote>), String> {
    let limit = config.connect_timeout;
    let target = resolve(&spec.addr).await?;
    let (peer_id, description, schemas) = {
        let (agent, peer) = dial(config, target, spec.expect, Vec::new()).await?;
        let found = describe(config.label, &peer, limit).await;
        peer.close();
        agent.shutdown(Duration::from_millis(100)).await;
        let (description, schemas) = found?;
        (peer.id(), description, schemas)
    };
    let (agent, peer) = dial(config, target, Some(peer_id), schemas.clone()).await?;
    let negotiated = peer.session().negotiated();
    let mut intents = Vec::new();
    for schema in schemas {
        let lanes = negotiated.as_ref().and_then(|n| n.intent(&schema.id()).map(|intent| intent.send_lanes));
        let Some(lanes) = lanes else { continue };
        let (ask, tell, stream) = (lanes.contains(Lane::Ask), lanes.contains(Lane::Tell), lanes.contains(Lane::Stream));
        if !(ask || tell || stream) {
            continue;
        }
        let descriptor = schema.message_descriptor().clone();
        let reply = json::reply_type(&descriptor).filter(|_| ask);
        let reply_schema = reply.as_ref().and_then(|reply| schema.related_by_name(reply.full_name()));
        let stream_item = json::stream_types(&descriptor).item.filter(|_| stream);
        intents.push(Remote {
            handle: String::new(),
            title: String::new(),
            peer: peer.clone(),
            schema,
            ask,
            tell,
            stream,
            reply,
            reply_schema,
            stream_item,
        });
    }
    Ok((Connected { agent, peer, addr: spec.addr.clone(), description, intents: Vec::new() }, intents))
}

async fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(parsed) = addr.parse() {
        return Ok(parsed);
    }
    let mut found = tokio::net::lookup_host(addr).await.map_err(|e| format!("cannot resolve {addr:?}: {e}"))?;
    found.next().ok_or_else(|| format!("{addr} resolves to no address"))
}

/// The wildcard address of `target`'s family: where a dialing agent binds.
fn local_for(target: SocketAddr) -> SocketAddr {
    match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(ip) if ip.is_loopback() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// Binds an agent of the bridge's identity that emits `schemas` and dials `target`.
async fn dial(
    config: &Config,
    target: SocketAddr,
    expect: Option<AgentId>,
    schemas: Vec<Schema>,
) -> Result<(Agent, Peer), String> {
    let mut builder = Agent::builder()
        .identity(config.identity.clone())
        .card(AgentCard::new(config.label).with_software_version(env!("CARGO_PKG_VERSION")))
        .reconnect(ReconnectPolicy::never());
    for credential in &config.credentials {
        builder = builder.credential(credential.clone());
    }
    for schema in &schemas {
        builder = builder.emits_schema(schema);
    }
    let agent = builder.bind(local_for(target)).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let connecting = async {
        let peer = agent.connect(target, expect).await?;
        peer.ready().await?;
        Ok::<_, tacit::Error>(peer)
    };
    match tokio::time::timeout(config.connect_timeout, connecting).await {
        Ok(Ok(peer)) => Ok((agent, peer)),
        Ok(Err(e)) => {
            agent.shutdown(Duration::ZERO).await;
            Err(format!("cannot connect: {e}"))
        }
        Err(_) => {
            agent.shutdown(Duration::ZERO).await;
            Err(format!("no answer within {} ms", config.connect_timeout.as_millis()))
        }
    }
}

/// What the peer offered this bridge in the handshake — its card, and the
/// intents it handles, as its policy lets the bridge use them — then the
/// schema of each (but the builtins), fetched and verified against its id.
/// The handshake rather than `DescribeAgent`: a policy may deny the bridge
/// `DescribeAgent` and still allow it intents.
async fn describe(label: &str, peer: &Peer, limit: Duration) -> Result<(AgentDescription, Vec<Schema>), String> {
    let negotiated = match tokio::time::timeout(limit, peer.ready()).await {
        Ok(Ok(negotiated)) => negotiated,
        Ok(Err(e)) => return Err(format!("no handshake: {e}")),
        Err(_) => return Err("no handshake in time".into()),
    };
    let card = &negotiated.peer_card;
    let description = AgentDescription {
        name: card.name.clone(),
        description: card.description.clone(),
        roles: card.roles.clone(),
        software_version: card.software_version.clone(),
        metadata: card.metadata.clone(),
        intents: negotiated
            .peer_offers
            .iter()
            .map(|offer| tacit::intents::IntentInfo {
                intent_id: Bytes::copy_from_slice(offer.id.as_bytes()),
                name: offer.name.clone(),
                handles: offer.handles,
                emits: offer.emits,
            })
            .collect(),
    };
    let mut schemas = Vec::new();
    let handled =
        negotiated.peer_offers.iter().filter(|offer| offer.handles && !BUILTIN.contains(&offer.name.as_str()));
    for offer in handled.take(MAX_INTENTS_PER_PEER) {
        let standard =
            Schema::new(offer.id, offer.name.clone(), Bytes::from_static(tacit::intents::FILE_DESCRIPTOR_SET));
        let schema = match standard {
            Ok(schema) => schema,
            Err(_) => match tokio::time::timeout(limit, peer.describe(offer.id)).await {
                Ok(Ok(schema)) => schema,
                Ok(Err(e)) => {
                    eprintln!("{label}: no usable schema of {}: {e}; not bridged", offer.name);
                    continue;
                }
                Err(_) => {
                    eprintln!("{label}: no schema of {} in time; not bridged", offer.name);
                    continue;
                }
            },
        };
        schemas.push(schema);
    }
    Ok((description, schemas))
}

/// A W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), if well formed (a
/// malformed one is ignored, as the W3C recommendation asks).
pub fn traceparent(text: &str) -> Option<TraceContext> {
    let mut parts = text.split('-');
    let (version, trace_id, span_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    u8::from_str_radix(version, 16).ok()?;
    let trace_id: [u8; 16] = hex(trace_id)?.try_into().ok()?;
    let span_id: [u8; 8] = hex(span_id)?.try_into().ok()?;
    let [flags] = <[u8; 1]>::try_from(hex(flags)?).ok()?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(TraceContext { trace_id, span_id, flags })
}

/// Lowercase hex to bytes.
fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// `REFUSE`, `FAILURE`, ... (without the `ACT_` prefix).
pub fn act_name(act: Act) -> &'static str {
    let name = act.as_str_name();
    name.strip_prefix("ACT_").unwrap_or(name)
}

/// `DECLINED`, `DEADLINE_EXCEEDED`, ... (without the `ERROR_CODE_` prefix).
pub fn code_name(code: ErrorCode) -> &'static str {
    let name = code.as_str_name();
    name.strip_prefix("ERROR_CODE_").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_parse() {
        let plain: PeerAddr = "127.0.0.1:4433".parse().unwrap();
        assert_eq!(plain, PeerAddr { addr: "127.0.0.1:4433".into(), expect: None });
        let id = Identity::generate().unwrap().agent_id();
        let pinned: PeerAddr = format!("localhost:1={id}").parse().unwrap();
        assert_eq!(pinned.expect, Some(id));
        assert_eq!(pinned.to_string(), format!("localhost:1={id}"));
        assert!("127.0.0.1".parse::<PeerAddr>().is_err());
        assert!("127.0.0.1:4433=nope".parse::<PeerAddr>().is_err());
        assert!(":4433".parse::<PeerAddr>().is_err());
    }

    #[test]
    fn traceparents_parse() {
        let trace = traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(trace.trace_id[..2], [0x4b, 0xf9]);
        assert_eq!(trace.span_id[7], 0xb7);
        assert_eq!(trace.flags, 1);
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn handles_follow_the_mcp_rules() {
        assert_eq!(sanitize("market seller #1"), "market_seller__1");
        assert_eq!(sanitize(""), "agent");
        assert_eq!(sanitize("a.b-c_d"), "a.b-c_d");
        assert_eq!(truncate(&"x".repeat(300), 124).len(), 124);
    }

    #[test]
    fn conversations_fit_the_wire() {
        let uuid = "01a23633-787c-77ae-9bc3-bd7fe42960af";
        assert_eq!(CallOptions::new(Duration::ZERO).conversation(uuid).conversation.as_str(), uuid);
        let long = "é".repeat(100);
        let a = CallOptions::new(Duration::ZERO).conversation(&long).conversation;
        let b = CallOptions::new(Duration::ZERO).conversation(&format!("{long}x")).conversation;
        assert!(!a.as_str().is_empty() && a.as_str().len() <= 64, "{a:?}");
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn call_errors_read_well() {
        let refused = CallError { act: Some(Act::Refuse), code: ErrorCode::Declined, reason: "out of stock".into() };
        assert_eq!(refused.to_string(), "REFUSE DECLINED: out of stock");
        let late = CallError::bridge(ErrorCode::DeadlineExceeded, "no reply");
        assert_eq!(late.to_string(), "DEADLINE_EXCEEDED: no reply");
    }
}
