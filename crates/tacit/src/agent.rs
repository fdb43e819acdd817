//! The agent: an identity, a card, handlers for the intents it takes, and
//! the endpoint that serves them and dials peers.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tacit_handshake::credential::{OrgKey, SignedCredential, TrustStore, VerifiedCredential};

use bytes::Bytes;
use tacit_handshake::{
    AgentCard, AgentId, Capabilities, Identity, IntentOffer, KeyFileStatus, Lane, Lanes, Receipt, TypeSchema,
};
use tacit_quic::{
    Endpoint, Incoming, IncomingAsk, IncomingStream, Link, LinkState, ReconnectPolicy, Session, TransportLimits,
};
use tacit_wire::{Act, ErrorCode, IntentId, IntentRef};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::context::Context;
use crate::core::{Core, States};
use crate::discovery::{Discovery, DiscoveryConfig, Lookup};
use crate::error::{Error, Rejection, Result};
use crate::handler::{self, Handlers, IntoReply, TellFn};
use crate::intent::{Intent, IntentType, Request, Subscription};
use crate::metrics::{Counter, Metrics, MetricsSnapshot};
use crate::peer::{Peer, PeerInner};
use crate::policy::{Policy, Subject};
use crate::reply::{StreamReceiver, StreamSender};
use crate::{builtin, intents};

/// One-way messages queued for a session's handlers, in arrival order.
const TELL_QUEUE: usize = 256;

/// What the agent's serving tasks hold: the shared [`Core`] (which peers and
/// handlers' contexts reach too) and the handlers themselves, which only the
/// dispatch here needs.
#[derive(Debug)]
struct Served {
    core: Arc<Core>,
    handlers: Handlers,
    /// The receiver-side policy, swapped whole by [`Agent::set_policy`].
    policy: Arc<RwLock<Arc<Policy>>>,
    /// Signalled after each policy swap: accepted sessions check that
    /// their peer may still use something ([policy.reload]).
    policy_changed: tokio::sync::watch::Sender<()>,
    /// The policy file the agent reloads, if any.
    policy_file: Option<PathBuf>,
}

impl std::ops::Deref for Served {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

/// Builds an [`Agent`]: identity, card, handlers, limits.
#[derive(Debug)]
pub struct AgentBuilder {
    identity: Option<Identity>,
    key_file: Option<PathBuf>,
    card: AgentCard,
    transport: TransportLimits,
    capabilities: Capabilities,
    handlers: Handlers,
    names: HashMap<IntentId, Arc<str>>,
    reconnect: ReconnectPolicy,
    states: States,
    socket: Option<Arc<dyn tacit_quic::AsyncUdpSocket>>,
    credentials: Vec<SignedCredential>,
    trust: Option<TrustStore>,
    policy: Policy,
    policy_file: Option<PathBuf>,
    pub(crate) discovery: DiscoveryConfig,
}

/// How often an agent with a policy file checks it for changes.
pub const POLICY_FILE_POLL: Duration = Duration::from_secs(1);

impl AgentBuilder {
    fn new() -> Self {
        let builder = Self {
            identity: None,
            key_file: None,
            card: AgentCard::new("tacit-agent"),
            transport: TransportLimits::default(),
            capabilities: Capabilities::default(),
            handlers: Handlers::default(),
            names: HashMap::new(),
            reconnect: ReconnectPolicy::default(),
            states: States::default(),
            socket: None,
            credentials: Vec::new(),
            trust: None,
            policy: Policy::allow_all(),
            policy_file: None,
            discovery: DiscoveryConfig::default(),
        };
        // The standard intents every agent answers (an application's own
        // handler for one of them replaces the built-in one).
        builder
            .on_ask(builtin::ping)
            .emits::<intents::Ping>()
            .on_ask(builtin::health)
            .emits::<intents::HealthCheck>()
            .on_ask(builtin::describe)
            .emits::<intents::DescribeAgent>()
            .on_tell(builtin::proposal_rejected)
            .emits::<intents::RejectProposal>()
    }

    /// Reads the policy from this TOML file (format in [`policy`](crate::policy))
    /// when the agent is bound — a bad file fails [`bind`](Self::bind) with
    /// [`Error::Policy`] — and reloads it whenever it changes (checked every
    /// [`POLICY_FILE_POLL`]; [`Agent::reload_policy`] at once), without
    /// dropping sessions ([`Agent::set_policy`]). A changed file that does not parse
    /// is logged and ignored: the policy in force stays. Replaces
    /// [`policy`](Self::policy).
    pub fn policy_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.policy_file = Some(path.into());
        self
    }

    /// Uses this identity.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Loads the identity from a key file, creating it (mode 0600) if it is
    /// missing. Without an identity or key file the agent gets a fresh
    /// identity each run.
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_file = Some(path.into());
        self
    }

    /// Presents this organisation credential to every peer in the handshake.
    pub fn credential(mut self, credential: SignedCredential) -> Self {
        self.credentials.push(credential);
        self
    }

    /// Trusts `org`: peers' credentials are then verified (those of other
    /// organisations refuse the session, rule `trust.untrusted`).
    pub fn trust(mut self, org: OrgKey) -> Self {
        self.trust.get_or_insert_with(TrustStore::new).trust(org);
        self
    }

    /// Verifies peers' credentials against this store (replacing
    /// organisations given with [`trust`](Self::trust)).
    pub fn trust_store(mut self, store: TrustStore) -> Self {
        self.trust = Some(store);
        self
    }

    /// Sets the card the agent presents to peers.
    pub fn card(mut self, card: AgentCard) -> Self {
        self.card = card;
        self
    }

    /// Sets the transport limits (or a preset such as
    /// [`TransportLimits::many_peers`]).
    pub fn limits(mut self, limits: TransportLimits) -> Self {
        self.transport = limits;
        self
    }

    /// Sets the largest message this agent accepts (default 1 MiB).
    pub fn max_message_len(mut self, bytes: u32) -> Self {
        self.capabilities.limits.max_frame_len(bytes);
        self
    }

    /// Sets how many asks from one peer run at once (default 256).
    pub fn max_concurrent_asks(mut self, asks: u32) -> Self {
        self.capabilities.limits.max_concurrent_asks(asks);
        self
    }

    /// Sets the receiver-side policy (default: allow everything): which
    /// peers may use which intents on which lanes, and per-peer limits. A
    /// peer that dials this agent is offered only what the policy lets it
    /// use; every incoming message is checked (see [`crate::policy`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets how dialed peers connect, reconnect and retry (including the
    /// connect timeout; see [`ReconnectPolicy`] for the defaults).
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Sets how long [`Agent::connect`] waits for a peer (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.reconnect.connect_timeout = timeout;
        self
    }

    /// Shares `state` with every handler: [`Context::state`] returns it by
    /// type. One value per type (a later one replaces an earlier one); wrap
    /// what handlers change in a `Mutex` or use atomics, as with axum's
    /// `State`.
    ///
    /// Why by type on the context rather than a type parameter of the
    /// builder: an agent's handlers are often written in different modules
    /// (the standard intents, a bridge, the application) that each need
    /// their own state, and the handler signature stays one shape for all.
    pub fn state<S: Any + Send + Sync>(mut self, state: S) -> Self {
        self.states.0.insert(TypeId::of::<S>(), Arc::new(state));
        self
    }

    /// Handles asks of intent `I` with `handler`, which returns
    /// `Result<I::Reply, Rejection>` (or `Result<Reply<I::Reply>, Rejection>`
    /// to pick the act); `Ok(reply)` needs no annotation and `?` turns any
    /// error into a [`Rejection`]. Replaces an earlier handler of `I`.
    ///
    /// The handler's future is first polled on the task that reads the
    /// peer's session, so an answer ready at once goes out without a task
    /// switch; a handler that awaits continues on a task of its own, running
    /// beside the peer's other asks. Work that computes for long before its
    /// first `.await` delays the peer's next asks: move it to
    /// `tokio::task::spawn_blocking`.
    pub fn on_ask<I, F, Fut, T>(mut self, handler: F) -> Self
    where
        I: Request,
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Rejection>> + Send + 'static,
        T: IntoReply<I::Reply> + 'static,
    {
        self.offer::<I>(Lanes::ASK, false);
        if let Some(offer) = self.capabilities.intents.iter_mut().find(|offer| offer.id == I::ID) {
            let reply = IntentType::of::<I::Reply>();
            *offer = offer.clone().with_reply(reply.id).with_type_schema(type_schema(reply));
        }
        self.handlers.asks.insert(I::ID, handler::ask_fn(handler));
        self
    }

    /// The former name of [`on_ask`](Self::on_ask).
    #[deprecated(since = "0.2.0", note = "renamed `on_ask`")]
    pub fn handle<I, F, Fut, T>(self, handler: F) -> Self
    where
        I: Request,
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Rejection>> + Send + 'static,
        T: IntoReply<I::Reply> + 'static,
    {
        self.on_ask(handler)
    }

    /// Handles one-way messages (tells and datagrams) of intent `I`, one at
    /// a time per session, in the order they arrive.
    pub fn on_tell<I, F, Fut>(mut self, handler: F) -> Self
    where
        I: Intent,
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.offer::<I>(Lanes::ONE_WAY, false);
        self.handlers.tells.insert(I::ID, handler::tell_fn(handler));
        self
    }

    /// Handles stream lanes opened with `S`, whose `.proto` declares what
    /// travels on it ([`Subscription`]): the handler gets the opening
    /// message, a sender of `S::Item`s and a receiver of what the opener
    /// sends (`S::Send`) — sender first, as [`Peer::stream`] returns them.
    /// Finish the sender to end the stream (returning without it ends the
    /// stream the same way, after what was sent).
    pub fn on_stream<S, F, Fut>(self, handler: F) -> Self
    where
        S: Subscription,
        F: Fn(Context, S, StreamSender<S::Item>, StreamReceiver<S::Send>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut builder = self.on_stream_with::<S, S::Send, S::Item, F, Fut>(handler);
        if let Some(offer) = builder.capabilities.intents.iter_mut().find(|offer| offer.id == S::ID) {
            let (item, send) = (S::ITEM_TYPE, S::SEND_TYPE);
            let mut named = offer.clone().with_stream_types(item.map(|t| t.id), send.map(|t| t.id));
            for data in [item, send].into_iter().flatten() {
                named = named.with_type_schema(type_schema(data));
            }
            *offer = named;
        }
        builder
    }

    /// Like [`on_stream`](Self::on_stream), for an opening intent whose
    /// `.proto` does not declare its stream types: `Item` is what the
    /// handler sends, `In` what it receives (`()` for nothing that way).
    pub fn on_stream_with<I, In, Item, F, Fut>(mut self, handler: F) -> Self
    where
        I: Intent,
        In: prost::Message + Default + Send + 'static,
        Item: prost::Message + Send + 'static,
        F: Fn(Context, I, StreamSender<Item>, StreamReceiver<In>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.offer::<I>(Lanes::STREAM, false);
        self.handlers.streams.insert(I::ID, handler::stream_fn(handler));
        self
    }

    /// Handles asks of an intent known at run time — from a fetched
    /// [`Schema`](crate::Schema), or from code generated for another
    /// language (the Python package) — answered with `reply`. The handler
    /// gets the encoded request and returns the encoded reply with its act
    /// (`None`: the default, `INFORM`, or `PROPOSE` to a call for
    /// proposals). The intent is offered in the handshake with both schemas,
    /// which peers can fetch, exactly as [`on_ask`](Self::on_ask) offers a
    /// compiled one. Replaces an earlier handler of the intent.
    pub fn on_ask_schema<F, Fut>(mut self, request: &crate::Schema, reply: &crate::Schema, handler: F) -> Self
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(Option<Act>, Bytes), Rejection>> + Send + 'static,
    {
        self.offer_schema(request, Lanes::ASK, false);
        self.names.entry(reply.id()).or_insert_with(|| Arc::from(reply.name()));
        if let Some(offer) = self.capabilities.intents.iter_mut().find(|offer| offer.id == request.id()) {
            let schema = TypeSchema::new(reply.id(), reply.name(), reply.descriptor_set().clone());
            *offer = offer.clone().with_reply(reply.id()).with_type_schema(schema);
        }
        self.handlers.asks.insert(request.id(), handler::schema_ask_fn(reply.id(), handler));
        self
    }

    /// Handles one-way messages (tells and datagrams) of an intent known at
    /// run time, as encoded bytes, one at a time per session in arrival
    /// order (see [`on_ask_schema`](Self::on_ask_schema)).
    pub fn on_tell_schema<F, Fut>(mut self, schema: &crate::Schema, handler: F) -> Self
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.offer_schema(schema, Lanes::ONE_WAY, false);
        self.handlers.tells.insert(schema.id(), handler::any_tell_fn(handler));
        self
    }

    /// Handles stream lanes opened with an intent known at run time: the
    /// handler gets the encoded opening and untyped halves
    /// ([`StreamSender::send_raw`], [`StreamReceiver::recv_raw`]); `item`
    /// and `send` are the schemas of what it streams back and what the
    /// opener sends (offered as `stream_item` and `stream_send`; `None`
    /// for nothing, or a type that is not an intent). See
    /// [`on_stream`](Self::on_stream).
    pub fn on_stream_schema<F, Fut>(
        mut self,
        opening: &crate::Schema,
        item: Option<&crate::Schema>,
        send: Option<&crate::Schema>,
        handler: F,
    ) -> Self
    where
        F: Fn(Context, Bytes, StreamSender<()>, StreamReceiver<()>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.offer_schema(opening, Lanes::STREAM, false);
        if let Some(offer) = self.capabilities.intents.iter_mut().find(|offer| offer.id == opening.id()) {
            let mut named = offer.clone().with_stream_types(item.map(|s| s.id()), send.map(|s| s.id()));
            for data in [item, send].into_iter().flatten() {
                named = named.with_type_schema(TypeSchema::new(data.id(), data.name(), data.descriptor_set().clone()));
            }
            *offer = named;
        }
        self.handlers.streams.insert(opening.id(), handler::raw_stream_fn(handler));
        self
    }

    /// Handles asks of every intent that has no typed handler, as encoded
    /// bytes: the handler gets the request's payload (its intent is
    /// [`Context::intent`], its name [`Context::intent_name`]) and returns
    /// the reply's intent and encoded payload. With this (or
    /// [`on_any_tell`](Self::on_any_tell)) the agent also offers to handle
    /// every intent each peer emits, after the handshake (a capability update).
    /// For tools that work from schemas (a listener, a bridge), not typed code.
    pub fn on_any_ask<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(IntentId, Bytes), Rejection>> + Send + 'static,
    {
        self.handlers.any_ask = Some(handler::any_ask_fn(handler));
        self
    }

    /// The former name of [`on_any_ask`](Self::on_any_ask).
    #[deprecated(since = "0.2.0", note = "renamed `on_any_ask`")]
    pub fn handle_any<F, Fut>(self, handler: F) -> Self
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(IntentId, Bytes), Rejection>> + Send + 'static,
    {
        self.on_any_ask(handler)
    }

    /// Handles one-way messages of every intent that has no typed handler,
    /// as encoded bytes (see [`on_any_ask`](Self::on_any_ask)).
    pub fn on_any_tell<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.handlers.any_tell = Some(handler::any_tell_fn(handler));
        self
    }

    /// Declares that this agent sends an intent known only at run time
    /// (e.g. from a peer's [`Schema`](crate::Schema)).
    pub fn emits_raw(mut self, id: IntentId, name: impl Into<String>) -> Self {
        let intents = &mut self.capabilities.intents;
        match intents.iter_mut().find(|offer| offer.id == id) {
            Some(offer) => offer.emits = true,
            None => intents.push(IntentOffer::emits(id, name)),
        }
        self
    }

    /// Like [`emits_raw`](Self::emits_raw), from a fetched or built
    /// [`Schema`](crate::Schema), which peers can then fetch from this agent.
    pub fn emits_schema(mut self, schema: &crate::Schema) -> Self {
        self.offer_schema(schema, Lanes::NONE, true);
        self
    }

    /// Declares that this agent sends intent `I` to peers (asks, tells or
    /// streams): it is negotiated with every peer that handles it in the
    /// handshake, so the first ask goes out at once, without waiting for the
    /// handshake. An intent sent without being declared is offered to the
    /// peer by a capability update on first use (one round trip more).
    pub fn emits<I: Intent>(mut self) -> Self {
        self.offer::<I>(Lanes::NONE, true);
        self
    }

    /// Offers intent `I`: handled on `lanes` (added to those it is already
    /// handled on; none: not handled), and emitted if `emits`.
    fn offer<I: Intent>(&mut self, lanes: Lanes, emits: bool) {
        self.offer_id(I::ID, I::NAME, || Bytes::from_static(I::DESCRIPTOR_SET), lanes, emits);
    }

    /// [`offer`](Self::offer) for an intent known at run time.
    fn offer_schema(&mut self, schema: &crate::Schema, lanes: Lanes, emits: bool) {
        self.offer_id(schema.id(), schema.name(), || schema.descriptor_set().clone(), lanes, emits);
    }

    fn offer_id(
        &mut self,
        id: IntentId,
        name: &str,
        descriptor_set: impl FnOnce() -> Bytes,
        lanes: Lanes,
        emits: bool,
    ) {
        self.names.entry(id).or_insert_with(|| Arc::from(name));
        let intents = &mut self.capabilities.intents;
        let offer = match intents.iter_mut().find(|offer| offer.id == id) {
            Some(offer) => {
                if offer.descriptor_set.is_none() {
                    offer.descriptor_set = Some(descriptor_set());
                }
                offer
            }
            None => {
                intents.push(IntentOffer::handles(id, name).with_descriptor_set(descriptor_set()));
                let Some(offer) = intents.last_mut() else { return };
                offer.handles = false;
                offer
            }
        };
        if !lanes.is_empty() {
            offer.lanes = if offer.handles { offer.lanes.union(lanes) } else { lanes };
            offer.handles = true;
        }
        offer.emits |= emits;
    }

    /// Serves over this socket instead of binding one at the address given
    /// to [`bind`](Self::bind) (for fault-injection tests, `tacit_testkit::fault`).
    #[doc(hidden)]
    pub fn socket(mut self, socket: Arc<dyn tacit_quic::AsyncUdpSocket>) -> Self {
        self.socket = Some(socket);
        self
    }

    /// Adds `addr` to the addresses known for `id`: the memory lookup of
    /// [`Agent::connect_id`], asked before any other.
    pub fn known_addr(mut self, id: AgentId, addr: SocketAddr) -> Self {
        self.discovery.known.entry(id).or_default().push(addr);
        self
    }

    /// Adds a lookup to the chain [`Agent::connect_id`] asks, after memory
    /// and the lookups added before ([`discovery`](crate::discovery)).
    pub fn lookup(mut self, lookup: impl Lookup) -> Self {
        self.discovery.lookups.push(Arc::new(lookup));
        self
    }

    /// Adds an address the agent's [record](Agent::record) gives as where it
    /// listens (for peers on other hosts: a public or LAN address, not the
    /// `0.0.0.0` it may be bound to). Without any, the record gives the
    /// bound address, with loopback for an unspecified one.
    pub fn advertise(mut self, addr: SocketAddr) -> Self {
        self.discovery.advertise.push(addr);
        self
    }

    /// How long the agent's [record](Agent::record) holds (default
    /// [`DEFAULT_RECORD_TTL`](crate::discovery::DEFAULT_RECORD_TTL)); a
    /// directory it registers with is refreshed every half of it.
    pub fn record_ttl(mut self, ttl: Duration) -> Self {
        self.discovery.record_ttl = Some(ttl);
        self
    }

    /// Binds the agent's UDP socket (e.g. `127.0.0.1:0`) and starts serving.
    pub async fn bind(mut self, addr: SocketAddr) -> Result<Agent> {
        if let Some(path) = &self.policy_file {
            self.policy = Policy::load(path).map_err(Error::Policy)?;
        }
        // [revoke.intent]: an agent that trusts organisations takes their
        // revocation lists as a standard intent (unless the application does).
        if self.trust.as_ref().is_some_and(|trust| !trust.is_empty())
            && self.handlers.asks.get(&<intents::Revocations as Intent>::ID).is_none()
        {
            self = self.on_ask(builtin::revocations);
        }
        // A catch-all handler also takes the intents the agent handles
        // typed, on its lanes (a tell of an intent with only an ask handler
        // goes to `on_any_tell`): the offers say so.
        let any_lanes = self.handlers.any_lanes();
        for offer in self.capabilities.intents.iter_mut().filter(|offer| offer.handles) {
            offer.lanes = offer.lanes.union(any_lanes);
        }
        let identity = match (self.identity, self.key_file) {
            (Some(identity), _) => identity,
            (None, Some(path)) => {
                let (identity, status) = Identity::load_or_create(&path)?;
                if status == KeyFileStatus::Created {
                    tracing::info!(path = %path.display(), id = %identity.agent_id(), "created a new identity");
                }
                identity
            }
            (None, None) => Identity::generate()?,
        };
        let policy = Arc::new(RwLock::new(Arc::new(self.policy)));
        let credentials = self.credentials.clone();
        let discovery = Discovery::new(self.discovery.take_for_bind(), identity.clone(), credentials);
        let on_bind = std::mem::take(&mut self.discovery.on_bind);
        let endpoint = Endpoint::builder()
            .identity(identity)
            .card(self.card.clone())
            .capabilities(self.capabilities.clone())
            .limits(self.transport)
            .offer_filter(offer_filter(policy.clone()));
        let mut endpoint = self.credentials.into_iter().fold(endpoint, |endpoint, c| endpoint.credential(c));
        if let Some(trust) = self.trust {
            endpoint = endpoint.trust_store(trust);
        }
        let endpoint = match self.socket {
            Some(socket) => endpoint.bind_with_socket(socket).await,
            None => endpoint.bind(addr).await,
        }
        .map_err(Error::from_bind)?;
        let mut emitted: Vec<IntentId> =
            self.capabilities.intents.iter().filter(|offer| offer.emits).map(|offer| offer.id).collect();
        emitted.sort_unstable();
        emitted.dedup();
        let core = Arc::new(Served {
            handlers: self.handlers,
            policy: policy.clone(),
            policy_changed: tokio::sync::watch::Sender::new(()),
            policy_file: self.policy_file,
            core: Arc::new(Core {
                policy,
                endpoint,
                names: self.names,
                metrics: Arc::new(Metrics::default()),
                reconnect: self.reconnect,
                card: self.card,
                offers: self.capabilities.intents,
                emitted,
                states: self.states,
                started: Instant::now(),
            }),
        });
        let accept = tokio::spawn(accept_loop(core.clone()));
        let agent = Agent { inner: Arc::new(AgentInner { core, accept, discovery }) };
        if agent.inner.core.policy_file.is_some() {
            tokio::spawn(watch_policy_file(Arc::downgrade(&agent.inner)));
        }
        for start in on_bind {
            start(&agent)?;
        }
        crate::directory::start_registration(&agent);
        Ok(agent)
    }
}

/// An agent: serves its handlers to peers that dial it and dials peers.
/// Cheap to clone; when the last clone is dropped it stops accepting.
///
/// See the [crate documentation](crate) for an example.
#[derive(Debug, Clone)]
pub struct Agent {
    inner: Arc<AgentInner>,
}

#[derive(Debug)]
pub(crate) struct AgentInner {
    core: Arc<Served>,
    accept: JoinHandle<()>,
    pub(crate) discovery: Discovery,
}

/// A handle on an [`Agent`] that does not keep it alive (background work
/// holds one).
#[derive(Debug, Clone)]
pub(crate) struct WeakAgent(std::sync::Weak<AgentInner>);

impl WeakAgent {
    /// The agent, if a clone of it is still held.
    pub(crate) fn upgrade(&self) -> Option<Agent> {
        self.0.upgrade().map(|inner| Agent { inner })
    }
}

impl Drop for AgentInner {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Agent {
    /// Starts building an agent.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::new()
    }

    pub(crate) fn inner(&self) -> &AgentInner {
        &self.inner
    }

    pub(crate) fn downgrade(&self) -> WeakAgent {
        WeakAgent(Arc::downgrade(&self.inner))
    }

    /// The intents this agent handles, with their names, sorted by id.
    pub(crate) fn handled_intents(&self) -> Vec<(IntentId, String)> {
        let core = &self.inner.core.core;
        let mut intents: Vec<(IntentId, String)> = core
            .offers
            .iter()
            .filter(|offer| offer.handles && !builtin::is_universal(&offer.id))
            .map(|offer| (offer.id, offer.name.to_string()))
            .collect();
        intents.sort_unstable_by_key(|(id, _)| *id);
        intents.dedup_by_key(|(id, _)| *id);
        intents
    }

    /// The agent's id (its public key).
    pub fn id(&self) -> AgentId {
        self.inner.core.endpoint.agent_id()
    }

    /// Applies an organisation's revocation list: later handshakes refuse
    /// the credentials it revokes, and live sessions whose peer relies on one
    /// are closed with `CREDENTIAL_REVOKED` at once (rule `revoke.live`).
    pub fn apply_revocations(
        &self,
        list: &tacit_handshake::credential::SignedRevocationList,
    ) -> std::result::Result<tacit_handshake::credential::Applied, tacit_handshake::credential::CredentialError> {
        self.inner.core.endpoint.apply_revocations(list)
    }

    /// The address the agent listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.inner
            .core
            .endpoint
            .local_addr()
            .map_err(|e| Error::Bind { reason: format!("no local address: {e}"), source: Some(Box::new(e)) })
    }

    /// The agent's card.
    pub fn card(&self) -> &AgentCard {
        &self.inner.core.card
    }

    /// The agent's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.core.metrics.snapshot()
    }

    /// Dials the agent at `addr`, waiting at most the connect timeout
    /// ([`AgentBuilder::connect_timeout`], default 5 s; the error names the
    /// address and the timeout). With `expected`, the TLS handshake fails
    /// unless the peer holds that AgentId; either way, reconnections insist
    /// on the AgentId found the first time. Asks can be sent at once: they
    /// travel behind the capability handshake.
    pub async fn connect(&self, addr: SocketAddr, expected: impl Into<Option<AgentId>>) -> Result<Peer> {
        let core = &self.inner.core;
        if core.endpoint.is_shutting_down() {
            return Err(Error::Shutdown);
        }
        let link = Link::connect(&core.endpoint, addr, expected.into(), core.reconnect)
            .await
            .map_err(|e| Error::from_connect(addr, e))?;
        let peer = Peer::dialed(core.core.clone(), link);
        serve_dialed(core.clone(), &peer);
        Ok(peer)
    }

    /// Stops accepting, lets asks in flight finish for up to `drain`, then
    /// closes every session with `SHUTDOWN`. Returns how many asks were
    /// still running when the drain ended.
    pub async fn shutdown(&self, drain: Duration) -> usize {
        self.inner.accept.abort();
        self.release_attached();
        self.inner.core.endpoint.shutdown(drain).await
    }

    /// Waits for Ctrl-C (SIGINT) or, on Unix, SIGTERM, then shuts down as
    /// [`shutdown`](Self::shutdown) does; returns how many asks were still
    /// running. For a service's `main`:
    ///
    /// ```no_run
    /// # async fn run(agent: tacit::Agent) {
    /// agent.shutdown_on_signal(std::time::Duration::from_secs(5)).await;
    /// # }
    /// ```
    pub async fn shutdown_on_signal(&self, drain: Duration) -> usize {
        shutdown_signal().await;
        tracing::info!("signal received: shutting down");
        self.shutdown(drain).await
    }

    /// Replaces the policy, atomically: every message that arrives after
    /// this returns is checked against `policy`, on live sessions too; what
    /// was negotiated with them stays as it was (a message the new policy
    /// denies is refused per message). Sessions accepted later are offered
    /// what `policy` allows. Per-peer limits start counting afresh.
    ///
    /// A session whose peer the new policy lets use none of the intents
    /// this agent handles is closed with `POLICY_DENIED` at once (rule
    /// `policy.reload`): intents cannot be withdrawn from a live session
    /// (`hs.update-no-withdraw`), so a peer that may do nothing more is told
    /// by the close, and one whose rights only shrank by the refusals.
    pub fn set_policy(&self, policy: Policy) {
        {
            let mut slot = self.inner.core.policy.write().unwrap_or_else(|e| e.into_inner());
            *slot = Arc::new(policy);
        }
        self.inner.core.policy_changed.send_replace(());
    }

    /// Reads the policy file again ([`AgentBuilder::policy_file`]) and
    /// swaps it in ([`set_policy`](Self::set_policy)); on an error the
    /// policy in force stays. The agent also does this by itself when the
    /// file changes (checked every [`POLICY_FILE_POLL`]); call it from a
    /// `SIGHUP` handler to reload at once (`tacit listen` does). `Ok(false)`
    /// when the agent has no policy file.
    pub fn reload_policy(&self) -> std::result::Result<bool, crate::policy::PolicyError> {
        let Some(path) = &self.inner.core.policy_file else { return Ok(false) };
        let policy = Policy::load(path)?;
        self.set_policy(policy);
        Ok(true)
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        current_policy(&self.inner.core.policy)
    }

    /// The underlying transport endpoint (for power users; see
    /// [`transport`](crate::transport)).
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.core.endpoint
    }
}

/// Resolves at Ctrl-C (SIGINT) or, on Unix, SIGTERM: what a service waits
/// for before it shuts down (see [`Agent::shutdown_on_signal`]). If one
/// handler cannot be installed it waits for the other; if neither can, it
/// never resolves.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

fn current_policy(slot: &RwLock<Arc<Policy>>) -> Arc<Policy> {
    slot.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// What an accepted peer is offered: each handled intent on the lanes the
/// policy's rules let that peer use it on (limits aside); an intent left
/// with no lane is not offered as handled.
fn offer_filter(policy: Arc<RwLock<Arc<Policy>>>) -> tacit_quic::OfferFilter {
    Arc::new(move |peer: &AgentId, credentials: &[VerifiedCredential], capabilities: &Capabilities| {
        let policy = current_policy(&policy);
        if policy.is_open() {
            return Ok(None);
        }
        let subject = Subject::with_credentials(*peer, credentials);
        let mut offered = capabilities.clone();
        policy.restrict_offers(&subject, &mut offered.intents);
        // [policy.nothing-offered]: a peer the policy lets use none of the
        // intents this agent handles is refused at the handshake.
        let handled = |caps: &Capabilities| caps.intents.iter().any(|offer| offer.handles);
        if handled(capabilities) && !handled(&offered) {
            return Err(tacit_handshake::Refusal::new(
                ErrorCode::PolicyDenied,
                "the receiver's policy lets this agent use none of its intents",
            ));
        }
        Ok(Some(offered))
    })
}

/// The receipt of a signed incoming message, once its signature verifies
/// ([receipt.verify-on-arrival]); `Ok(None)` for an unsigned one the policy
/// does not demand a signature on ([policy.signed]). `Err` is the code to
/// refuse it with. Costs nothing for an unsigned message.
fn check_signature(
    core: &Served,
    peer: &Peer,
    intent: IntentId,
    envelope: &tacit_wire::Envelope,
    admission: Option<&crate::policy::Admission>,
) -> std::result::Result<Option<Arc<Receipt>>, ErrorCode> {
    if envelope.signature.is_none() {
        return match admission {
            Some(admission) if admission.signature_required() => Err(ErrorCode::SignatureRequired),
            _ => Ok(None),
        };
    }
    let receipt = Receipt::from_envelope(peer.id(), core.endpoint.agent_id(), intent, envelope)
        .ok_or(ErrorCode::SignatureInvalid)?;
    receipt.verify().map_err(|_| ErrorCode::SignatureInvalid)?;
    Ok(Some(Arc::new(receipt)))
}

/// Checks an incoming message against the policy: `Ok(None)` when the
/// policy is open (nothing to hold), `Err(code)` to refuse it.
fn admit(
    core: &Served,
    peer: &Peer,
    intent: IntentId,
    lane: Lane,
) -> std::result::Result<Option<crate::policy::Admission>, ErrorCode> {
    let policy = core.policy.read().unwrap_or_else(|e| e.into_inner());
    if policy.is_open() {
        return Ok(None);
    }
    let name = core.names.get(&intent).map(|name| &**name);
    // Memberships only for policies that name organisations or roles; an
    // accepted peer's are built once per session.
    if policy.uses_memberships() {
        peer.with_subject(|subject| policy.admit(subject, intent, name, lane).map(Some))
    } else {
        policy.admit(&Subject::agent(peer.id()), intent, name, lane).map(Some)
    }
}

async fn accept_loop(core: Arc<Served>) {
    while let Some(accepted) = core.endpoint.accept().await {
        match accepted {
            Ok(session) => {
                core.metrics.bump(Counter::SessionsAccepted);
                tokio::spawn(enforce_policy_changes(core.clone(), session.clone()));
                let peer = Peer::accepted(core.core.clone(), session.clone());
                let span = tracing::info_span!("session", peer = %session.peer_id(), role = "acceptor");
                tokio::spawn(serve(core.clone(), Source::Accepted(session, peer)).instrument(span));
            }
            Err(error) => tracing::debug!(%error, "an incoming connection failed"),
        }
    }
}

/// Closes `session` with `POLICY_DENIED` once a policy swap leaves its peer
/// none of the intents this agent handles ([policy.reload]); ends with the
/// session.
async fn enforce_policy_changes(core: Arc<Served>, session: Session) {
    let mut changes = core.policy_changed.subscribe();
    loop {
        tokio::select! {
            _ = session.closed() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let policy = current_policy(&core.policy);
                if policy.is_open() {
                    continue;
                }
                let subject = policy.subject(session.peer_id(), || session.peer_credentials());
                let allowed = core.offers.iter().filter(|offer| offer.handles).any(|offer| {
                    !policy.allowed_lanes(&subject, offer.id, Some(&offer.name), offer.lanes).is_empty()
                });
                if !allowed {
                    tracing::debug!(peer = %session.peer_id(), "the new policy allows this peer nothing: closing");
                    session.close(ErrorCode::PolicyDenied, "the receiver's policy no longer lets this agent use any of its intents");
                    return;
                }
            }
        }
    }
}

/// Reloads the policy file when its contents change; ends with the agent.
async fn watch_policy_file(agent: std::sync::Weak<AgentInner>) {
    let read = |agent: &AgentInner| agent.core.policy_file.as_ref().and_then(|path| std::fs::read(path).ok());
    let Some(first) = agent.upgrade() else { return };
    let mut seen = read(&first);
    drop(first);
    loop {
        tokio::time::sleep(POLICY_FILE_POLL).await;
        let Some(inner) = agent.upgrade() else { return };
        let now = read(&inner);
        if now == seen {
            continue;
        }
        seen = now;
        match (Agent { inner }).reload_policy() {
            Ok(_) => tracing::info!("policy file changed: reloaded"),
            Err(error) => tracing::warn!(%error, "the changed policy file did not load; the policy in force stays"),
        }
    }
}

/// Serves what a dialed peer sends back, over every session of its link,
/// without keeping the link open.
fn serve_dialed(core: Arc<Served>, peer: &Peer) {
    let Some(link) = peer.weak_link() else { return };
    let span = tracing::info_span!("session", peer = %peer.id(), role = "dialer");
    if let Some(watch) = peer.watch() {
        tokio::spawn(follow_link(core.clone(), link.clone(), watch).instrument(span.clone()));
    }
    tokio::spawn(serve(core, Source::Dialed(link, peer.downgrade())).instrument(span));
}

/// Counts the reconnects of a dialed link, and adopts the peer's intents on
/// each of its sessions when the agent takes any intent.
async fn follow_link(core: Arc<Served>, link: tacit_quic::WeakLink, mut watch: tacit_quic::LinkWatch) {
    let mut generation = 0;
    loop {
        match watch.current() {
            LinkState::Up { generation: now } if now > generation => {
                if generation > 0 {
                    core.metrics.bump(Counter::Reconnects);
                }
                generation = now;
                if core.handlers.takes_any() {
                    let Some(session) = link.upgrade().map(|link| link.session()) else { return };
                    adopt_peer_intents(core.clone(), session.downgrade()).await;
                }
            }
            LinkState::Closed => return,
            _ => {}
        }
        if watch.changed().await.is_none() {
            return;
        }
    }
}

enum Source {
    /// An accepted session: served (and kept open) until the peer closes it.
    Accepted(Session, Peer),
    /// A dialed link: served while the application holds the peer.
    Dialed(tacit_quic::WeakLink, std::sync::Weak<PeerInner>),
}

async fn serve(core: Arc<Served>, source: Source) {
    if core.handlers.takes_any()
        && let Source::Accepted(session, _) = &source
    {
        tokio::spawn(adopt_peer_intents(core.clone(), session.downgrade()).in_current_span());
    }
    let mut tells: Option<mpsc::Sender<(TellFn, Context, Bytes, tracing::Span)>> = None;
    loop {
        let incoming = match &source {
            Source::Accepted(session, _) => session.next_incoming().await,
            Source::Dialed(session, _) => session.next_incoming().await,
        };
        let Some(incoming) = incoming else { break };
        let peer = match &source {
            Source::Accepted(_, peer) => peer.clone(),
            Source::Dialed(_, peer) => match Peer::from_weak(peer) {
                Some(peer) => peer,
                None => break,
            },
        };
        match incoming {
            Incoming::Ask(ask) => dispatch_ask(&core, peer, ask),
            Incoming::Tell(_) | Incoming::Datagram(_) => {
                let (message, lane) = match incoming {
                    Incoming::Tell(message) => (message, Lane::Tell),
                    Incoming::Datagram(message) => (message, Lane::Datagram),
                    _ => continue,
                };
                // [policy.one-way-denied]: dropped, counted under its code.
                let admission = match admit(&core, &peer, message.intent, lane) {
                    Ok(admission) => admission,
                    Err(code) => {
                        core.metrics.error(code);
                        continue;
                    }
                };
                // [receipt.verify-on-arrival]: a bad or missing signature drops it, counted.
                let receipt = match check_signature(&core, &peer, message.intent, &message.envelope, admission.as_ref())
                {
                    Ok(receipt) => receipt,
                    Err(code) => {
                        core.metrics.error(code);
                        continue;
                    }
                };
                let Some(handler) = core.handlers.tells.get(&message.intent).or(core.handlers.any_tell.as_ref()) else {
                    core.metrics.bump(Counter::DroppedUnhandled);
                    continue;
                };
                core.metrics.received(Counter::TellsReceived, message.envelope.payload.len());
                let envelope = message.envelope;
                // trace hook: the handler's span, sent along to the worker.
                let span = crate::trace::incoming_span(&core.names, message.intent, &envelope, peer.id());
                let mut cx = context(peer, message.intent, &envelope);
                cx.receipt = receipt;
                let queue = tells.get_or_insert_with(spawn_tell_worker);
                // Waits while the queue is full: a slow handler slows the peer.
                let _ = queue.send((handler.clone(), cx, envelope.payload, span)).await;
            }
            Incoming::Stream(stream) => dispatch_stream(&core, peer, stream),
            _ => core.metrics.bump(Counter::DroppedUnhandled),
        }
    }
    if let Source::Accepted(..) = source {
        core.metrics.bump(Counter::SessionsEnded);
    }
}

/// Offers to handle every intent the peer emits that this agent does not
/// already handle, so that an agent with a catch-all handler receives them.
/// The receiver changes its own list first, so the peer can use the new
/// aliases as soon as it hears of them.
async fn adopt_peer_intents(core: Arc<Served>, session: tacit_quic::WeakSession) {
    let Some(session) = session.upgrade() else { return };
    let Ok(negotiated) = session.ready().await else { return };
    let handled = |id: &IntentId| core.offers.iter().any(|offer| offer.id == *id && offer.handles);
    let adopted: Vec<IntentOffer> = negotiated
        .peer_offers
        .iter()
        .filter(|offer| offer.emits && !handled(&offer.id))
        .map(|offer| IntentOffer::handles(offer.id, offer.name.clone()).on_lanes(core.handlers.any_lanes()))
        .collect();
    if adopted.is_empty() {
        return;
    }
    let count = adopted.len();
    match session.add_intents(adopted) {
        Ok(()) => tracing::debug!(count, "offered to handle the intents the peer emits"),
        Err(refusal) => tracing::debug!(%refusal, "could not adopt the peer's intents"),
    }
}

/// The schema of a reply or data type, as schema fetch serves it.
fn type_schema(intent: IntentType) -> TypeSchema {
    TypeSchema::new(intent.id, intent.name, Bytes::from_static(intent.descriptor_set))
}

fn spawn_tell_worker() -> mpsc::Sender<(TellFn, Context, Bytes, tracing::Span)> {
    let (tx, mut rx) = mpsc::channel::<(TellFn, Context, Bytes, tracing::Span)>(TELL_QUEUE);
    tokio::spawn(
        async move {
            while let Some((handler, cx, payload, span)) = rx.recv().await {
                // trace hook (a disabled span leaves the session's current).
                handler(cx, payload).instrument(span).await;
            }
        }
        .in_current_span(),
    );
    tx
}

fn context(peer: Peer, intent: IntentId, envelope: &tacit_wire::Envelope) -> Context {
    let deadline = (envelope.deadline_micros > 0)
        .then(|| Instant::now().checked_add(Duration::from_micros(envelope.deadline_micros)))
        .flatten();
    Context {
        peer,
        intent,
        act: envelope.act,
        message_id: envelope.message_id,
        in_reply_to: envelope.in_reply_to,
        conversation: envelope.conversation_id,
        deadline,
        trace: envelope.trace, // trace hook
        receipt: None,
    }
}

fn dispatch_ask(core: &Arc<Served>, peer: Peer, ask: IncomingAsk) {
    let IncomingAsk { envelope, intent, mut responder, .. } = ask;
    // [policy.ask-denied]: refused before any handler runs; the admission
    // holds the peer's in-flight slot until the ask is answered.
    let admission = match admit(core, &peer, intent, Lane::Ask) {
        Ok(admission) => admission,
        Err(code) => {
            core.metrics.bump(Counter::RejectionsSent);
            core.metrics.error(code);
            responder.refuse(code, policy_reason(code));
            return;
        }
    };
    let receipt = match check_signature(core, &peer, intent, &envelope, admission.as_ref()) {
        Ok(receipt) => receipt,
        Err(code) => {
            core.metrics.bump(Counter::RejectionsSent);
            core.metrics.error(code);
            responder.refuse(code, policy_reason(code));
            return;
        }
    };
    // [receipt.sign-reply]: an admitted ask that asks for a signed answer gets one.
    if responder.sign_requested() {
        responder.set_signed(true);
    }
    let Some(handler) = core.handlers.asks.get(&intent).or(core.handlers.any_ask.as_ref()) else {
        // Negotiated (it is handled as a tell or stream) but not askable.
        core.metrics.error(ErrorCode::IntentNotNegotiated);
        responder.refuse(ErrorCode::IntentNotNegotiated, "this agent takes that intent only as a tell or stream");
        return;
    };
    core.metrics.received(Counter::AsksReceived, envelope.payload.len());
    let request = (envelope.act, envelope.intent);
    // trace hook: the handler's span (a name lookup and a subscriber call
    // only when INFO is on), a child of the asker's span.
    let span = crate::trace::incoming_span(&core.names, intent, &envelope, peer.id());
    let mut cx = context(peer, intent, &envelope);
    cx.receipt = receipt;
    let message_id = envelope.message_id;
    let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
    // The payload moves into the handler (no reference-count round trip).
    let mut call = handler(cx, envelope.payload);
    // Most handlers answer without waiting: poll the handler once here, on
    // the session's task, and answer at once if it is done; only a handler
    // that waits gets a task of its own (which polls it again with its own
    // waker, so nothing registered with the no-op waker below is relied on).
    let first = {
        let _entered = span.enter();
        let mut poll_cx = std::task::Context::from_waker(std::task::Waker::noop());
        // A handler that panics must not take the session's task with it:
        // its responder is dropped, which answers `NO_REPLY`, as when a
        // handler panics on a task of its own.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.as_mut().poll(&mut poll_cx)))
    };
    match first {
        Ok(std::task::Poll::Ready(outcome)) => {
            let _entered = span.enter();
            answer(&core.metrics, responder, request, outcome, started);
            drop(admission);
            return;
        }
        Ok(std::task::Poll::Pending) => {}
        Err(_panicked) => {
            tracing::debug!(message_id, "an ask handler panicked");
            return;
        }
    }
    let metrics = core.metrics.clone();
    let waiting = async move {
        let outcome = tokio::select! {
            outcome = call => outcome,
            () = responder.cancelled() => {
                // Dropping the handler's future cancels it.
                metrics.bump(Counter::RejectionsSent);
                metrics.error(ErrorCode::Cancelled);
                tracing::debug!("cancelled by the asker");
                responder.fail(ErrorCode::Cancelled, "cancelled");
                return;
            }
        };
        answer(&metrics, responder, request, outcome, started);
        drop(admission);
    };
    if span.is_disabled() {
        tokio::spawn(waiting);
    } else {
        tokio::spawn(waiting.instrument(span));
    }
}

/// The reason sent with a refusal by the policy.
fn policy_reason(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::PolicyDenied => "denied by the receiver's policy",
        ErrorCode::RateLimited => "over the receiver's rate limit",
        ErrorCode::QuotaExceeded => "over the receiver's quota",
        ErrorCode::SignatureRequired => "the receiver's policy demands a signed message",
        ErrorCode::SignatureInvalid => "the signature does not verify",
        _ => "too many asks in flight",
    }
}

/// Sends a handler's outcome to the asker: its reply, or its rejection.
fn answer(
    metrics: &Metrics,
    responder: tacit_quic::Responder,
    (request_act, request_intent): (Act, IntentRef),
    outcome: Result<handler::Answer, Rejection>,
    started: Option<Instant>,
) {
    match outcome {
        Ok(answer) => {
            metrics.sent(Counter::RepliesSent, answer.payload.len());
            match answer.act.unwrap_or(default_reply_act(request_act)) {
                Act::Inform => responder.reply(answer.intent, answer.payload),
                act => responder.reply_with(act, IntentRef::Id(answer.intent), answer.payload),
            }
        }
        Err(rejection) => {
            metrics.bump(Counter::RejectionsSent);
            metrics.error(rejection.code);
            match rejection.act {
                // A typed detail, or an act the responder has no shorthand for.
                _ if rejection.raw_detail().is_some() || rejection.act == Act::NotUnderstood => {
                    let act = if rejection.act == Act::Refuse { Act::Refuse } else { rejection.act };
                    responder.reply_with(act, request_intent, rejection.to_wire());
                }
                Act::Refuse => responder.refuse(rejection.code, &rejection.reason),
                _ => responder.fail(rejection.code, &rejection.reason),
            }
        }
    }
    if let Some(started) = started {
        tracing::debug!(latency_us = started.elapsed().as_micros() as u64, "answered");
    }
}

/// The act of a plain reply: `PROPOSE` to a call for proposals, else `INFORM`.
fn default_reply_act(request: Act) -> Act {
    match request {
        Act::Cfp => Act::Propose,
        _ => Act::Inform,
    }
}

fn dispatch_stream(core: &Arc<Served>, peer: Peer, stream: IncomingStream) {
    let IncomingStream { envelope, intent, sender, mut receiver, .. } = stream;
    // [policy.stream-denied]: both directions get the policy's code.
    let receipt = match admit(core, &peer, intent, Lane::Stream)
        .and_then(|admission| check_signature(core, &peer, intent, &envelope, admission.as_ref()))
    {
        Ok(receipt) => receipt,
        Err(code) => {
            core.metrics.error(code);
            sender.reset(code);
            receiver.stop(code);
            return;
        }
    };
    let Some(handler) = core.handlers.streams.get(&intent) else {
        // [lane.no-handler]: negotiated (it is asked or told) but not served
        // as a stream: both directions get INTENT_NOT_NEGOTIATED (a dropped
        // receiver would stop the opener's direction with 0).
        core.metrics.error(ErrorCode::IntentNotNegotiated);
        sender.reset(ErrorCode::IntentNotNegotiated);
        receiver.stop(ErrorCode::IntentNotNegotiated);
        return;
    };
    core.metrics.received(Counter::StreamsAccepted, envelope.payload.len());
    let payload = envelope.payload.clone();
    // trace hook: the handler runs in its span (or the session's, when off).
    let span = crate::trace::incoming_span(&core.names, intent, &envelope, peer.id());
    let mut cx = context(peer, intent, &envelope);
    cx.receipt = receipt;
    let call = handler(cx, payload, sender, receiver);
    if span.is_disabled() {
        tokio::spawn(call.in_current_span());
    } else {
        tokio::spawn(call.instrument(span));
    }
}
