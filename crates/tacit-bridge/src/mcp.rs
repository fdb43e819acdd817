//! An MCP server whose tools are the intents of Tacit peers (feature `mcp`,
//! on [`rmcp`], the official Rust SDK).
//!
//! A [`Bridge`] follows its peers ([`crate::peers`]): it dials each, reads its card and intents from the handshake,
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use rmcp::model::{
    AnnotateAble as _, CallToolRequestParams, CallToolResult, Content, Implementation, ListResourcesResult,
    ListToolsResult, Meta, PaginatedRequestParams, RawResource, ReadResourceRequestParams, ReadResourceResult,
    ResourceContents, ServerCapabilities, ServerInfo, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{Value, json};
use tacit::credential::SignedCredential;
use tacit::{AgentId, Identity, IntentId, TraceContext};

pub use crate::peers::{BridgeError, PeerAddr};
use crate::peers::{CallError, CallOptions, Peers, PeersBuilder, Remote};
use crate::{json, schema};

/// The longest line (one JSON-RPC message) [`Bridge::serve_stdio`] reads: 4 MiB.
pub const MAX_LINE_LEN: usize = 4 << 20;

/// Builds a [`Bridge`].
#[derive(Debug)]
#[must_use]
pub struct BridgeBuilder {
    peers: PeersBuilder,
    ask_timeout: Duration,
}

impl BridgeBuilder {
    /// The bridge's identity (default: a fresh one). Peers see this AgentId
    /// and apply their policy to it.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.peers = self.peers.identity(identity);
        self
    }

    /// An organisation credential the bridge presents to peers (repeatable).
    pub fn credential(mut self, credential: SignedCredential) -> Self {
        self.peers = self.peers.credential(credential);
        self
    }

    /// A peer whose intents become tools (repeatable).
    pub fn peer(mut self, peer: PeerAddr) -> Self {
        self.peers = self.peers.peer(peer);
        self
    }

    /// The deadline of every ask a tool call makes (default 10 s); a tell
    /// waits as long to be sent.
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

    /// Starts following the peers, and returns once each has been tried once
    /// (connected and described, or failed; a failed one is tried again in
    /// the background). Must run inside a Tokio runtime. Fails only when no
    /// identity was given and none can be generated.
    pub async fn start(self) -> Result<Bridge, BridgeError> {
        let peers = self.peers.start().await?;
        Ok(Bridge {
            inner: Arc::new(Inner { peers, ask_timeout: self.ask_timeout, tools: Mutex::new(Tools::default()) }),
        })
    }
}

/// An MCP server (an rmcp [`ServerHandler`]) whose tools are the intents of
/// Tacit peers. Cheap to clone: clones share the peers and the tools.
#[derive(Debug, Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    peers: Peers,
    ask_timeout: Duration,
    /// The tools, built from the peers' intents at one version of them.
    tools: Mutex<Tools>,
}

#[derive(Debug, Default)]
struct Tools {
    /// The [`Peers::changes`] version these were built at (0: never).
    version: Option<u64>,
    by_name: BTreeMap<String, Arc<Entry>>,
}

/// What a tool calls.
#[derive(Debug)]
struct Entry {
    tool: Tool,
    remote: Arc<Remote>,
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
        BridgeBuilder { peers: Peers::builder().label("tacit-mcp"), ask_timeout: Duration::from_secs(10) }
    }

    /// The bridge's AgentId, as its peers see it.
    pub fn id(&self) -> AgentId {
        self.inner.peers.id()
    }

    /// The tools offered now.
    pub fn tools(&self) -> Vec<Tool> {
        self.with_tools(|tools| tools.by_name.values().map(|entry| entry.tool.clone()).collect())
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

    /// Runs `f` on the tools, rebuilt first if the peers changed since.
    fn with_tools<T>(&self, f: impl FnOnce(&Tools) -> T) -> T {
        let version = *self.inner.peers.changes().borrow();
        let mut tools = lock(&self.inner.tools);
        if tools.version != Some(version) {
            tools.by_name = self.inner.peers.intents().into_iter().filter_map(entry).collect();
            tools.version = Some(version);
        }
        f(&tools)
    }

    fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        self.with_tools(|tools| tools.by_name.get(name).cloned())
    }

    async fn call(&self, entry: &Entry, payload: Bytes, trace: Option<TraceContext>) -> CallToolResult {
        let call = CallOptions::new(self.inner.ask_timeout).trace(trace);
        match entry.lane {
            ToolLane::Ask => match entry.remote.ask(payload, &call).await {
                Ok(reply) => CallToolResult::structured(reply),
                Err(error) => failed(&error),
            },
            ToolLane::Tell => match entry.remote.tell(payload, &call).await {
                Ok(()) => CallToolResult::success(vec![Content::text(format!("sent {}", entry.remote.schema.name()))]),
                Err(error) => failed(&error),
            },
        }
    }

    fn resources(&self) -> Vec<rmcp::model::Resource> {
        self.inner
            .peers
            .connected()
            .iter()
            .map(|connected| {
                let card = &connected.description;
                let mut resource = RawResource::new(format!("tacit://peer/{}", connected.peer.id()), connected.name())
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
        let connected = self.inner.peers.connected();
        let connected = connected.iter().find(|connected| connected.peer.id().to_string() == id)?;
        let card = &connected.description;
        let tools = self.with_tools(|tools| tools.by_name.keys().cloned().collect::<Vec<_>>());
        let tool_of = |name: &str| {
            connected.intents.iter().find(|(handle, intent)| intent == name && tools.contains(handle)).map(|(h, _)| h)
        };
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

#[cfg(feature = "http")]
pub use crate::http::HttpOptions;

#[cfg(feature = "http")]
impl Bridge {
    /// Serves MCP's streamable HTTP transport (HTTP/1.1) on `listener` until
    /// the listener fails, behind the bounds of [`crate::http`]: on a
    /// loopback address by default, on any other only with a bearer token
    /// ([`HttpOptions::bearer_token`]), and then any `Host` is accepted (the
    /// token guards instead of rmcp's loopback-only `Host` check against DNS
    /// rebinding); bounded bodies, per-client rates and connections, at most
    /// [`HttpOptions::max_sessions`] MCP sessions; every ask has its deadline.
    pub async fn serve_http(self, listener: tokio::net::TcpListener, options: HttpOptions) -> Result<(), BridgeError> {
        use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
        use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

        let local = listener.local_addr().map_err(|e| BridgeError(format!("MCP over HTTP: {e}")))?;
        let mut config = StreamableHttpServerConfig::default();
        if !local.ip().is_loopback() {
            config = config.disable_allowed_hosts();
        }
        let bridge = self.clone();
        let sessions = Arc::new(LocalSessionManager::default());
        let service = StreamableHttpService::new(move || Ok(bridge.clone()), sessions.clone(), config);
        let capped = SessionCap { service, sessions, max: options.max_sessions };
        crate::http::serve("tacit mcp", listener, &options, capped).await
    }
}

/// rmcp's HTTP service, refusing a new session once there are `max`.
#[cfg(feature = "http")]
#[derive(Clone)]
struct SessionCap<S> {
    service: S,
    sessions: Arc<rmcp::transport::streamable_http_server::session::local::LocalSessionManager>,
    max: usize,
}

#[cfg(feature = "http")]
impl<S, B, R> tower_service::Service<hyper::Request<B>> for SessionCap<S>
where
    S: tower_service::Service<hyper::Request<B>, Response = hyper::Response<R>, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: hyper::body::Body<Data = Bytes> + Send + 'static,
    R::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = hyper::Response<crate::http::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: hyper::Request<B>) -> Self::Future {
        let mut service = self.service.clone();
        let (sessions, max) = (self.sessions.clone(), self.max);
        Box::pin(async move {
            let opens = request.method() == hyper::Method::POST && !request.headers().contains_key("mcp-session-id");
            if opens && sessions.sessions.read().await.len() >= max {
                return Ok(crate::http::plain(hyper::StatusCode::SERVICE_UNAVAILABLE, "too many MCP sessions"));
            }
            use http_body_util::BodyExt as _;
            Ok(service.call(request).await?.map(|body| body.map_err(Into::into).boxed_unsync()))
        })
    }
}

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
        let mut changes = self.inner.peers.changes();
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
        // One notifier a client session: over HTTP, sessions come and go.
        self.inner.peers.keep(task);
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
        let message = json::from_value(entry.remote.schema.message_descriptor(), &arguments).map_err(|error| {
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

/// The W3C trace context in `_meta.traceparent`, if there is a well-formed one.
fn traceparent(meta: Option<&Meta>) -> Option<TraceContext> {
    crate::peers::traceparent(meta?.get("traceparent")?.as_str()?)
}

/// A tool error: `REFUSE DECLINED: out of stock` for a rejection, `CODE:
/// what happened` otherwise.
fn failed(error: &CallError) -> CallToolResult {
    CallToolResult::error(vec![Content::text(error.to_string())])
}

/// The tool of an intent negotiated on the ask or tell lane, if its schemas
/// are JSON objects as MCP requires.
fn entry(remote: Arc<Remote>) -> Option<(String, Arc<Entry>)> {
    let lane = if remote.ask && (remote.reply.is_some() || !remote.tell) {
        ToolLane::Ask
    } else if remote.tell {
        ToolLane::Tell
    } else {
        return None;
    };
    let reply = if lane == ToolLane::Ask { remote.reply.as_ref() } else { None };
    let descriptor = remote.schema.message_descriptor();
    let mut definition = schema::tool_definition(remote.schema.name(), descriptor, reply, schema::Style::Compact);
    let object = definition.as_object_mut()?;
    if object.get("inputSchema").and_then(|s| s.get("type")) != Some(&json!("object")) {
        return None;
    }
    if object.get("outputSchema").is_some_and(|s| s.get("type") != Some(&json!("object"))) {
        object.remove("outputSchema");
    }
    if !object.contains_key("description") {
        object.insert("description".into(), json!(remote.schema.name()));
    }
    let mut tool: Tool = serde_json::from_value(definition).ok()?;
    tool.name = remote.handle.clone().into();
    tool.title = Some(remote.title.clone());
    let mut meta = Meta::new();
    meta.insert("tacit/agentId".into(), json!(remote.peer.id().to_string()));
    meta.insert("tacit/intent".into(), json!(remote.schema.name()));
    meta.insert("tacit/intentId".into(), json!(remote.schema.id().to_string()));
    meta.insert("tacit/lane".into(), json!(if lane == ToolLane::Ask { "ask" } else { "tell" }));
    tool.meta = Some(meta);
    Some((remote.handle.clone(), Arc::new(Entry { tool, remote, lane })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_come_from_meta() {
        let mut meta = Meta::new();
        meta.insert("traceparent".into(), json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert_eq!(traceparent(Some(&meta)).unwrap().flags, 1);
        meta.insert("traceparent".into(), json!(7));
        assert_eq!(traceparent(Some(&meta)), None);
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
}
