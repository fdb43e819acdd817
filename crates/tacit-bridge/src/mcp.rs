//! An MCP server whose tools are the intents of Tacit peers (feature `mcp`,
//! on [`rmcp`], the official Rust SDK).
//!
//! A [`Bridge`] dials each peer it is given, asks it `DescribeAgent`,
//! fetches the schema of every intent it handles, and dials it again from an
//! agent that emits those intents (intents are negotiated in the capability
//! handshake). Each intent the peer takes becomes a **tool**:
//!
//! | tool | from |
//! | --- | --- |
//! | `name` | `<peer name>_<Message>`, sanitized to MCP's rules (`[A-Za-z0-9_.-]`, at most 128), made unique with `_2`, `_3`, ... |
//! | `title` | `<Message> (<sanitized peer name>)` |
//! | `description` | the intent's `.proto` comment ([`crate::schema::description`]), else its full name |
//! | `inputSchema` | [`crate::schema::input_schema`] of the intent |
//! | `outputSchema` | [`crate::schema::output_schema`] of its reply (`(tacit.v1.reply)`), for an ask |
//! | `_meta` | `tacit/agentId`, `tacit/intent` (full name), `tacit/intentId` (hex), `tacit/lane` (`ask` or `tell`) |
//!
//! An intent negotiated on the ask lane is asked (with a deadline) and
//! answered with the reply as `structuredContent` and the same JSON as text;
//! one negotiated only on the tell lane is told, and the tool returns once it
//! is sent. A rejection or a transport error is a tool result with `isError`
//! and a text such as `REFUSE DECLINED: out of stock` (act, code, reason);
//! arguments that do not fit the intent are a JSON-RPC invalid-params error
//! whose message names the field ([`crate::json::from_value`]) and whose data
//! is `{"tool": ..., "field": ...}`. The standard intents every Tacit agent
//! answers itself (`Ping`, `HealthCheck`, `DescribeAgent`, ...) are not tools;
//! each peer's card is a resource instead, `tacit://peer/<agentid>` (JSON of
//! the card and its intents).
//!
//! The tool list follows the peers: a peer that cannot be reached is dialed
//! again (backing off up to 5 s), a peer whose session ends loses its tools
//! until it is back (and is described anew then, so a restart with other
//! capabilities shows), and every change sends
//! `notifications/tools/list_changed` and `notifications/resources/list_changed`.
//!
//! At most 256 intents of one peer become tools.
//!
//! A `traceparent` (W3C trace context) in a `tools/call`'s `_meta` is carried
//! to the peer in the ask's or tell's trace context, so one trace spans the
//! MCP call, the bridge and the Tacit agent.
//!
//! With the `http` feature, `Bridge::serve_http` serves MCP's streamable
//! HTTP transport instead (`tacit mcp --http ADDR`): on loopback by default,
//! elsewhere only behind a bearer token.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tacit_bridge::mcp::Bridge;
//! let bridge = Bridge::builder().peer("127.0.0.1:4433".parse()?).start().await?;
//! bridge.serve_stdio().await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::MessageDescriptor;
use rmcp::model::{
    AnnotateAble as _, CallToolRequestParams, CallToolResult, Content, Implementation, ListResourcesResult,
    ListToolsResult, Meta, PaginatedRequestParams, RawResource, ReadResourceRequestParams, ReadResourceResult,
    ResourceContents, ServerCapabilities, ServerInfo, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{Value, json};
use tacit::credential::SignedCredential;
use tacit::intents::{AgentDescription, DescribeAgent, HealthCheck, Ping, RejectProposal, Revocations};
use tacit::{
    Act, Agent, AgentCard, AgentId, AskOptions, ErrorCode, Identity, Intent, IntentId, Lane, LinkState, Peer,
    ReconnectPolicy, Schema, TellOptions, TraceContext,
};

use crate::{json, schema};

/// The standard intents the library answers itself: not tools.
const BUILTIN: [&str; 5] =
    [Ping::NAME, HealthCheck::NAME, DescribeAgent::NAME, RejectProposal::NAME, Revocations::NAME];

/// The longest tool name MCP allows.
const MAX_TOOL_NAME: usize = 128;

/// The most intents of one peer that become tools (each costs a schema
/// fetch, and every tool costs the LLM context).
const MAX_TOOLS_PER_PEER: usize = 256;

/// The longest line (one JSON-RPC message) [`Bridge::serve_stdio`] reads: 4 MiB.
pub const MAX_LINE_LEN: usize = 4 << 20;

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

/// Builds a [`Bridge`].
#[derive(Debug)]
#[must_use]
pub struct BridgeBuilder {
    identity: Option<Identity>,
    credentials: Vec<SignedCredential>,
    peers: Vec<PeerAddr>,
    ask_timeout: Duration,
    connect_timeout: Duration,
}

impl BridgeBuilder {
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

    /// A peer whose intents become tools (repeatable).
    pub fn peer(mut self, peer: PeerAddr) -> Self {
        self.peers.push(peer);
        self
    }

    /// The deadline of every ask a tool call makes (default 10 s); a tell
    /// waits as long to be sent.
    pub fn ask_timeout(mut self, timeout: Duration) -> Self {
        self.ask_timeout = timeout;
        self
    }

    /// How long a dial, a handshake, `DescribeAgent` and each schema fetch
    /// may take (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Starts following the peers, and returns once each has been tried once
    /// (connected and described, or failed; a failed one is tried again in
    /// the background). Must run inside a Tokio runtime. Fails only when no
    /// identity was given and none can be generated.
    pub async fn start(self) -> Result<Bridge, BridgeError> {
        let identity = match self.identity {
            Some(identity) => identity,
            None => Identity::generate().map_err(|e| BridgeError(format!("cannot generate an identity: {e}")))?,
        };
        let (changes, _) = tokio::sync::watch::channel(0u64);
        let peers = self.peers;
        let inner = Arc::new(Inner {
            config: Config {
                identity,
                credentials: self.credentials,
                ask_timeout: self.ask_timeout,
                connect_timeout: self.connect_timeout,
            },
            state: Mutex::new(State::default()),
            changes,
            tasks: Mutex::new(Vec::new()),
        });
        let mut first = Vec::new();
        for (index, spec) in peers.into_iter().enumerate() {
            let (tried, attempted) = tokio::sync::oneshot::channel();
            first.push(attempted);
            let task = tokio::spawn(follow(Arc::downgrade(&inner), index, spec, tried));
            lock(&inner.tasks).push(task);
        }
        for attempted in first {
            let _ = attempted.await;
        }
        Ok(Bridge { inner })
    }
}

/// An MCP server (an rmcp [`ServerHandler`]) whose tools are the intents of
/// Tacit peers. Cheap to clone: clones share the peers and the tools.
#[derive(Debug, Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Config {
    identity: Identity,
    credentials: Vec<SignedCredential>,
    ask_timeout: Duration,
    connect_timeout: Duration,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    state: Mutex<State>,
    /// Bumped whenever the tools or resources change.
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
    peers: BTreeMap<usize, Connected>,
    tools: BTreeMap<String, Arc<Entry>>,
}

/// A peer with its session up.
#[derive(Debug)]
struct Connected {
    agent: Agent,
    peer: Peer,
    addr: String,
    description: AgentDescription,
    /// Tool name → intent name, of this peer's tools.
    tools: Vec<(String, String)>,
}

/// What a tool calls.
#[derive(Debug)]
struct Entry {
    tool: Tool,
    peer: Peer,
    schema: Schema,
    lane: ToolLane,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolLane {
    Ask,
    Tell,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Bridge {
    /// A bridge with a fresh identity and no peers yet.
    pub fn builder() -> BridgeBuilder {
        BridgeBuilder {
            identity: None,
            credentials: Vec::new(),
            peers: Vec::new(),
            ask_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        }
    }

    /// The bridge's AgentId, as its peers see it.
    pub fn id(&self) -> AgentId {
        self.inner.config.identity.agent_id()
    }

    /// The tools offered now.
    pub fn tools(&self) -> Vec<Tool> {
        lock(&self.inner.state).tools.values().map(|entry| entry.tool.clone()).collect()
    }

    /// Serves MCP on stdin and stdout until the client closes them. A line
    /// (one JSON-RPC message) longer than [`MAX_LINE_LEN`] ends the session:
    /// what comes in is bounded before it is parsed.
    pub async fn serve_stdio(self) -> Result<(), BridgeError> {
        let stdin = LineLimit { inner: tokio::io::stdin(), since_newline: 0, max: MAX_LINE_LEN };
        let service =
            self.serve((stdin, tokio::io::stdout())).await.map_err(|e| BridgeError(format!("MCP over stdio: {e}")))?;
        service.waiting().await.map_err(|e| BridgeError(format!("MCP over stdio: {e}")))?;
        Ok(())
    }

    fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        lock(&self.inner.state).tools.get(name).cloned()
    }

    async fn call(&self, entry: &Entry, payload: Bytes, trace: Option<TraceContext>) -> CallToolResult {
        let timeout = self.inner.config.ask_timeout;
        let id = entry.schema.id();
        let intent = entry.schema.name();
        match entry.lane {
            ToolLane::Ask => {
                let mut options = AskOptions::default().deadline(timeout);
                if let Some(trace) = trace {
                    options = options.trace(trace);
                }
                let asking = entry.peer.ask_raw(id, payload, options);
                let reply = match tokio::time::timeout(timeout + Duration::from_millis(500), asking).await {
                    Err(_) => return failed(ErrorCode::DeadlineExceeded, &format!("no reply to {intent} in time")),
                    Ok(Err(e)) => return tacit_error(&e),
                    Ok(Ok(reply)) => reply,
                };
                if reply.act != Act::Inform {
                    return failed(ErrorCode::InvalidPayload, &format!("the peer answered {}", act_name(reply.act)));
                }
                let Some(reply_id) = reply.intent else {
                    return failed(ErrorCode::InvalidPayload, "the reply names an intent this bridge cannot resolve");
                };
                let Some(reply_schema) = related(&entry.schema, reply_id) else {
                    return failed(
                        ErrorCode::InvalidPayload,
                        &format!("the reply's intent {reply_id} is not in {intent}'s schema"),
                    );
                };
                match reply_schema.decode(&reply.payload) {
                    Ok(message) => CallToolResult::structured(json::to_value(&message)),
                    Err(e) => failed(
                        ErrorCode::InvalidPayload,
                        &format!("the reply does not decode as {}: {e}", reply_schema.name()),
                    ),
                }
            }
            ToolLane::Tell => {
                let mut options = TellOptions::default();
                if let Some(trace) = trace {
                    options = options.trace(trace);
                }
                let telling = entry.peer.tell_raw(id, payload, options);
                match tokio::time::timeout(timeout, telling).await {
                    Err(_) => failed(ErrorCode::DeadlineExceeded, &format!("{intent} could not be sent in time")),
                    Ok(Err(e)) => tacit_error(&e),
                    Ok(Ok(())) => CallToolResult::success(vec![Content::text(format!("sent {intent}"))]),
                }
            }
        }
    }

    fn resources(&self) -> Vec<rmcp::model::Resource> {
        let state = lock(&self.inner.state);
        state
            .peers
            .values()
            .map(|connected| {
                let card = &connected.description;
                let name = if card.name.is_empty() { connected.peer.id().to_string() } else { card.name.clone() };
                let mut resource = RawResource::new(format!("tacit://peer/{}", connected.peer.id()), name)
                    .with_mime_type("application/json");
                if !card.description.is_empty() {
                    resource = resource.with_description(card.description.clone());
                }
                resource.no_annotation()
            })
            .collect()
    }

    fn card_json(&self, uri: &str) -> Option<Value> {
        let id = uri.strip_prefix("tacit://peer/")?;
        let state = lock(&self.inner.state);
        let connected = state.peers.values().find(|connected| connected.peer.id().to_string() == id)?;
        let card = &connected.description;
        let tool_of = |name: &str| connected.tools.iter().find(|(_, intent)| intent == name).map(|(tool, _)| tool);
        let intents: Vec<Value> = card
            .intents
            .iter()
            .map(|info| {
                json!({
                    "name": info.name,
                    "intentId": IntentId::try_from(&info.intent_id[..]).map(|id| id.to_string()).ok(),
                    "handles": info.handles,
                    "emits": info.emits,
                    "tool": tool_of(&info.name),
                })
            })
            .collect();
        Some(json!({
            "agentId": id,
            "addr": connected.addr,
            "card": {
                "name": card.name,
                "description": card.description,
                "roles": card.roles,
                "softwareVersion": card.software_version,
                "metadata": card.metadata,
            },
            "intents": intents,
        }))
    }
}

/// Options of [`Bridge::serve_http`] (feature `http`).
#[cfg(feature = "http")]
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpOptions {
    bearer_token: Option<String>,
    max_body_len: usize,
}

#[cfg(feature = "http")]
impl Default for HttpOptions {
    fn default() -> Self {
        Self { bearer_token: None, max_body_len: MAX_LINE_LEN }
    }
}

#[cfg(feature = "http")]
impl HttpOptions {
    /// Requires `Authorization: Bearer <token>` on every request (required
    /// to serve on an address that is not loopback).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// The longest request body (default [`MAX_LINE_LEN`], 4 MiB); longer is
    /// answered 413.
    pub fn max_body_len(mut self, bytes: usize) -> Self {
        self.max_body_len = bytes;
        self
    }
}

#[cfg(feature = "http")]
impl Bridge {
    /// Serves MCP's streamable HTTP transport (HTTP/1.1) on `listener` until
    /// the listener fails. On a loopback address by default; on any other
    /// only with a bearer token ([`HttpOptions::bearer_token`]), and then
    /// any `Host` is accepted (the token guards instead of rmcp's
    /// loopback-only `Host` check against DNS rebinding). Bodies are
    /// bounded, request heads must arrive within 10 s, and every ask has
    /// its deadline.
    pub async fn serve_http(self, listener: tokio::net::TcpListener, options: HttpOptions) -> Result<(), BridgeError> {
        use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
        use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

        let local = listener.local_addr().map_err(|e| BridgeError(format!("MCP over HTTP: {e}")))?;
        let loopback = local.ip().is_loopback();
        if !loopback && options.bearer_token.is_none() {
            return Err(BridgeError(format!(
                "refusing to serve MCP on {local}, which is not a loopback address, without a bearer token"
            )));
        }
        let mut config = StreamableHttpServerConfig::default();
        if !loopback {
            config = config.disable_allowed_hosts();
        }
        let bridge = self.clone();
        let service =
            StreamableHttpService::new(move || Ok(bridge.clone()), Arc::new(LocalSessionManager::default()), config);
        let expected: Option<Arc<[u8]>> =
            options.bearer_token.map(|token| format!("Bearer {token}").into_bytes().into());
        let max = options.max_body_len;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    eprintln!("tacit mcp: accepting an HTTP connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let service = service.clone();
            let expected = expected.clone();
            tokio::spawn(async move {
                let handler = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut service = service.clone();
                    let expected = expected.clone();
                    async move {
                        if let Some(expected) = &expected {
                            let given = request.headers().get(hyper::header::AUTHORIZATION).map(|v| v.as_bytes());
                            if !given.is_some_and(|given| same(given, expected)) {
                                return Ok(plain(hyper::StatusCode::UNAUTHORIZED, "a bearer token is required"));
                            }
                        }
                        let declared = request
                            .headers()
                            .get(hyper::header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok());
                        if declared.is_some_and(|len| len > max as u64) {
                            return Ok(plain(hyper::StatusCode::PAYLOAD_TOO_LARGE, "the request body is too long"));
                        }
                        let request = request.map(|body| http_body_util::Limited::new(body, max));
                        tower_service::Service::call(&mut service, request).await
                    }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), handler);
                let _ = connection.await;
            });
        }
    }
}

/// A plain-text HTTP answer.
#[cfg(feature = "http")]
fn plain(
    status: hyper::StatusCode,
    text: &'static str,
) -> hyper::Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>> {
    use http_body_util::BodyExt as _;
    let mut response = hyper::Response::new(http_body_util::Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *response.status_mut() = status;
    response
}

/// Compares two byte strings in time that depends on their lengths only.
#[cfg(feature = "http")]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bridge could not start (no identity) or serve MCP (the transport failed).
#[derive(Debug, Clone)]
pub struct BridgeError(String);

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BridgeError {}

impl ServerHandler for Bridge {
    fn get_info(&self) -> ServerInfo {
        let capabilities =
            ServerCapabilities::builder().enable_tools().enable_tool_list_changed().enable_resources().build();
        ServerInfo::new(capabilities)
            .with_server_info(Implementation::new("tacit-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool is an intent of a Tacit agent: calling it asks (or tells) that agent. \
                 Agents' cards are resources (tacit://peer/<agentid>).",
            )
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut changes = self.inner.changes.subscribe();
        let peer = context.peer;
        let task = tokio::spawn(async move {
            changes.mark_unchanged();
            while changes.changed().await.is_ok() {
                if peer.notify_tool_list_changed().await.is_err() {
                    break;
                }
                if peer.notify_resource_list_changed().await.is_err() {
                    break;
                }
            }
        });
        let mut tasks = lock(&self.inner.tasks);
        // One notifier a client session: over HTTP, sessions come and go.
        tasks.retain(|task| !task.is_finished());
        tasks.push(task);
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.entry(name).map(|entry| entry.tool.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let trace = traceparent(request.meta.as_ref()).or_else(|| traceparent(Some(&context.meta)));
        let name = request.name.as_ref();
        let Some(entry) = self.entry(name) else {
            return Err(McpError::invalid_params(
                format!("no tool named {name:?} (the list may have changed: see tools/list)"),
                Some(json!({ "tool": name })),
            ));
        };
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let message = json::from_value(entry.schema.message_descriptor(), &arguments).map_err(|error| {
            McpError::invalid_params(error.message.clone(), Some(json!({ "tool": name, "field": error.field })))
        })?;
        Ok(self.call(&entry, message.encode_to_vec().into(), trace).await)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(self.resources()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResult, McpError> {
        match self.card_json(&request.uri) {
            Some(card) => {
                let text = ResourceContents::text(card.to_string(), request.uri).with_mime_type("application/json");
                Ok(ReadResourceResult::new(vec![text]))
            }
            None => Err(McpError::resource_not_found(
                format!("no connected peer at {:?}", request.uri),
                Some(json!({ "uri": request.uri })),
            )),
        }
    }
}

/// A reader that fails once a line runs past `max` bytes, so that a
/// line-delimited transport never buffers more than that.
struct LineLimit<R> {
    inner: R,
    since_newline: usize,
    max: usize,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for LineLimit<R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_read(cx, buf))?;
        for &byte in &buf.filled()[before..] {
            if byte == b'\n' {
                this.since_newline = 0;
                continue;
            }
            this.since_newline += 1;
            if this.since_newline > this.max {
                let message = format!("a JSON-RPC message longer than {} bytes; closing the session", this.max);
                eprintln!("tacit mcp: {message}");
                // A failed read reads nothing (the `AsyncRead` contract).
                buf.set_filled(before);
                return std::task::Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message)));
            }
        }
        std::task::Poll::Ready(Ok(()))
    }
}

/// The W3C trace context in `_meta.traceparent` (`00-<trace id>-<span id>-<flags>`),
/// if there is a well-formed one (a malformed one is ignored, as the W3C
/// recommendation asks).
fn traceparent(meta: Option<&Meta>) -> Option<TraceContext> {
    let text = meta?.get("traceparent")?.as_str()?;
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

/// A tool error: `CODE: message`.
fn failed(code: ErrorCode, message: &str) -> CallToolResult {
    CallToolResult::error(vec![Content::text(format!("{}: {message}", code_name(code)))])
}

/// A tool error from the agent API: `REFUSE DECLINED: out of stock` for a
/// rejection, `CODE: what happened` otherwise.
fn tacit_error(error: &tacit::Error) -> CallToolResult {
    match error.rejection() {
        Some(rejection) => CallToolResult::error(vec![Content::text(format!(
            "{} {}: {}",
            act_name(rejection.act),
            code_name(rejection.code),
            rejection.reason
        ))]),
        None => failed(error.code(), &error.to_string()),
    }
}

/// `REFUSE`, `FAILURE`, ... (without the `ACT_` prefix).
fn act_name(act: Act) -> &'static str {
    let name = act.as_str_name();
    name.strip_prefix("ACT_").unwrap_or(name)
}

/// `DECLINED`, `DEADLINE_EXCEEDED`, ... (without the `ERROR_CODE_` prefix).
fn code_name(code: ErrorCode) -> &'static str {
    let name = code.as_str_name();
    name.strip_prefix("ERROR_CODE_").unwrap_or(name)
}

/// The reply's schema: `id` in the request's descriptor set.
fn related(request: &Schema, id: IntentId) -> Option<Schema> {
    if id == request.id() { Some(request.clone()) } else { request.related(id) }
}

/// Follows peer `index`: dials it, installs its tools, waits for its session
/// to end, removes them, and dials again, until the bridge is dropped.
async fn follow(inner: Weak<Inner>, index: usize, spec: PeerAddr, tried: tokio::sync::oneshot::Sender<()>) {
    let mut tried = Some(tried);
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = {
            let Some(strong) = inner.upgrade() else { return };
            let config = &strong.config;
            connect(config, &spec).await
        };
        match attempt {
            Ok((connected, tools)) => {
                delay = Duration::from_millis(200);
                let watch = connected.peer.watch();
                let peer_id = connected.peer.id();
                {
                    let Some(strong) = inner.upgrade() else { return };
                    let count = install(&strong, index, connected, tools);
                    eprintln!("tacit mcp: {spec}: connected to {peer_id}, {count} tools");
                }
                if let Some(tried) = tried.take() {
                    let _ = tried.send(());
                }
                if let Some(mut watch) = watch {
                    loop {
                        match watch.changed().await {
                            Some(LinkState::Up { .. }) => continue,
                            Some(state) => {
                                eprintln!("tacit mcp: {spec}: {peer_id} left ({state:?})");
                                break;
                            }
                            None => break,
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
                eprintln!("tacit mcp: {spec}: {reason}; trying again in {} ms", delay.as_millis());
                if let Some(tried) = tried.take() {
                    let _ = tried.send(());
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Adds a peer's tools, naming them uniquely; returns how many.
fn install(inner: &Inner, index: usize, mut connected: Connected, tools: Vec<Entry>) -> usize {
    let mut state = lock(&inner.state);
    let prefix = sanitize(if connected.description.name.is_empty() { "agent" } else { &connected.description.name });
    let count = tools.len();
    for mut entry in tools {
        let short = entry.schema.name().rsplit('.').next().unwrap_or(entry.schema.name()).to_owned();
        let base = truncate(&format!("{prefix}_{}", sanitize(&short)), MAX_TOOL_NAME - 4);
        let mut name = base.clone();
        let mut n = 2;
        while state.tools.contains_key(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        entry.tool.name = name.clone().into();
        entry.tool.title = Some(format!("{short} ({prefix})"));
        connected.tools.push((name.clone(), entry.schema.name().to_owned()));
        state.tools.insert(name, Arc::new(entry));
    }
    state.peers.insert(index, connected);
    drop(state);
    inner.changes.send_modify(|version| *version += 1);
    count
}

/// Removes a peer and its tools.
fn remove(inner: &Inner, index: usize) -> Option<Connected> {
    let mut state = lock(&inner.state);
    let connected = state.peers.remove(&index)?;
    for (name, _) in &connected.tools {
        state.tools.remove(name);
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
/// from an agent that emits its intents. Returns the connection and its tools.
async fn connect(config: &Config, spec: &PeerAddr) -> Result<(Connected, Vec<Entry>), String> {
    let limit = config.connect_timeout;
    let target = resolve(&spec.addr).await?;
    let (peer_id, description, schemas) = {
        let (agent, peer) = dial(config, target, spec.expect, Vec::new()).await?;
        let found = describe(&peer, limit).await;
        peer.close();
        agent.shutdown(Duration::from_millis(100)).await;
        let (description, schemas) = found?;
        (peer.id(), description, schemas)
    };
    let (agent, peer) = dial(config, target, Some(peer_id), schemas.clone()).await?;
    let negotiated = peer.session().negotiated();
    let mut tools = Vec::new();
    for schema in schemas {
        let lanes = negotiated.as_ref().and_then(|n| n.intent(&schema.id()).map(|intent| intent.send_lanes));
        let Some(lanes) = lanes else { continue };
        let descriptor = schema.message_descriptor().clone();
        let reply = json::reply_type(&descriptor);
        let lane = if lanes.contains(Lane::Ask) && (reply.is_some() || !lanes.contains(Lane::Tell)) {
            ToolLane::Ask
        } else if lanes.contains(Lane::Tell) {
            ToolLane::Tell
        } else {
            continue;
        };
        let reply = if lane == ToolLane::Ask { reply } else { None };
        match tool(&schema, &descriptor, reply.as_ref()) {
            Some(mut tool) => {
                let mut meta = Meta::new();
                meta.insert("tacit/agentId".into(), json!(peer.id().to_string()));
                meta.insert("tacit/intent".into(), json!(schema.name()));
                meta.insert("tacit/intentId".into(), json!(schema.id().to_string()));
                meta.insert("tacit/lane".into(), json!(if lane == ToolLane::Ask { "ask" } else { "tell" }));
                tool.meta = Some(meta);
                tools.push(Entry { tool, peer: peer.clone(), schema, lane });
            }
            None => eprintln!("tacit mcp: {spec}: {} has no object schema; not a tool", schema.name()),
        }
    }
    Ok((Connected { agent, peer, addr: spec.addr.clone(), description, tools: Vec::new() }, tools))
}

/// The tool of an intent (named later), if its schemas are JSON objects as MCP requires.
fn tool(schema: &Schema, descriptor: &MessageDescriptor, reply: Option<&MessageDescriptor>) -> Option<Tool> {
    let mut definition = schema::tool_definition(schema.name(), descriptor, reply, schema::Style::Compact);
    let object = definition.as_object_mut()?;
    if object.get("inputSchema").and_then(|s| s.get("type")) != Some(&json!("object")) {
        return None;
    }
    if object.get("outputSchema").is_some_and(|s| s.get("type") != Some(&json!("object"))) {
        object.remove("outputSchema");
    }
    if !object.contains_key("description") {
        object.insert("description".into(), json!(schema.name()));
    }
    serde_json::from_value(definition).ok()
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
        .card(AgentCard::new("tacit-mcp").with_software_version(env!("CARGO_PKG_VERSION")))
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

/// `DescribeAgent`, then the schema of every intent the peer handles (but the builtins).
async fn describe(peer: &Peer, limit: Duration) -> Result<(AgentDescription, Vec<Schema>), String> {
    let asking = peer.ask_with(DescribeAgent {}, AskOptions::default().deadline(limit));
    let description = match tokio::time::timeout(limit + Duration::from_millis(500), asking).await {
        Ok(Ok(reply)) => reply.message,
        Ok(Err(e)) => return Err(format!("DescribeAgent failed: {e}")),
        Err(_) => return Err("no answer to DescribeAgent in time".into()),
    };
    let mut schemas = Vec::new();
    let handled = description.intents.iter().filter(|info| info.handles && !BUILTIN.contains(&info.name.as_str()));
    for info in handled.take(MAX_TOOLS_PER_PEER) {
        let Ok(id) = IntentId::try_from(&info.intent_id[..]) else { continue };
        let standard = Schema::new(id, info.name.clone(), Bytes::from_static(tacit::intents::FILE_DESCRIPTOR_SET));
        let schema = match standard {
            Ok(schema) => schema,
            Err(_) => match tokio::time::timeout(limit, peer.describe(id)).await {
                Ok(Ok(schema)) => schema,
                Ok(Err(e)) => {
                    eprintln!("tacit mcp: no usable schema of {}: {e}; not a tool", info.name);
                    continue;
                }
                Err(_) => {
                    eprintln!("tacit mcp: no schema of {} in time; not a tool", info.name);
                    continue;
                }
            },
        };
        schemas.push(schema);
    }
    Ok((description, schemas))
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
        let meta = |text: &str| {
            let mut meta = Meta::new();
            meta.insert("traceparent".into(), json!(text));
            meta
        };
        let trace = traceparent(Some(&meta("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))).unwrap();
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
            assert_eq!(traceparent(Some(&meta(bad))), None, "{bad}");
        }
        assert_eq!(traceparent(None), None);
    }

    #[tokio::test]
    async fn long_lines_fail_the_reader() {
        use tokio::io::AsyncReadExt as _;
        let text = b"12345\n123456\n".to_vec();
        let mut ok = LineLimit { inner: &text[..6], since_newline: 0, max: 5 };
        let mut read = Vec::new();
        ok.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, b"12345\n");
        let mut long = LineLimit { inner: &text[..], since_newline: 0, max: 5 };
        let error = long.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn names_follow_the_mcp_rules() {
        assert_eq!(sanitize("market seller #1"), "market_seller__1");
        assert_eq!(sanitize(""), "agent");
        assert_eq!(sanitize("a.b-c_d"), "a.b-c_d");
        assert_eq!(truncate(&"x".repeat(300), 124).len(), 124);
    }
}
