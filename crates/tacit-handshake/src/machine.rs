//! The handshake state machine: bytes of the control stream in, bytes and
//! events out, time supplied by the caller. No I/O, no clock, no tasks.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tacit_wire::{ErrorCode, FrameDecoder, FrameEncoder, IntentId, pb};

use crate::capabilities::{check_intent_count, intents_from_update};
use crate::credential::{SignedCredential, TrustStore, VerifiedCredential};
use crate::negotiate::{choose_version, negotiate};
use crate::{AgentCard, AgentId, Capabilities, IntentOffer, Negotiated, Refusal};

/// Most credentials one side may present in its `Hello` or `Welcome` (rule
/// `trust.handshake`).
pub const MAX_PRESENTED_CREDENTIALS: usize = 8;

/// Chooses what an acceptor offers one peer: called once the peer's `Hello`
/// and credentials are verified, with the peer's AgentId (as the transport
/// proved it), its verified credentials and the acceptor's capabilities;
/// returns the capabilities to offer that peer (a subset: offers removed or
/// no longer handled), `None` to offer them all, or a [`Refusal`] to refuse
/// the handshake with (rule `policy.nothing-offered`: a peer that may use
/// nothing). Dialers always offer their configured capabilities.
pub type OfferFilter =
    Arc<dyn Fn(&AgentId, &[VerifiedCredential], &Capabilities) -> Result<Option<Capabilities>, Refusal> + Send + Sync>;

/// An optional [`OfferFilter`], shown as whether it is set.
#[derive(Clone, Default)]
struct Filter(Option<OfferFilter>);

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(OfferFilter)" } else { "None" })
    }
}

/// Configuration shared by every handshake an agent runs.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    pub(crate) card: AgentCard,
    /// Shared with every session's machine until it adds intents.
    pub(crate) capabilities: Arc<Capabilities>,
    pub(crate) timeout: Duration,
    pub(crate) max_early_work: usize,
    pub(crate) require_common_intents: bool,
    pub(crate) max_control_frame_len: usize,
    pub(crate) max_schema_requests: usize,
    /// Encoded `SignedCredential`s presented to every peer.
    pub(crate) credentials: Vec<Bytes>,
    /// When set, the peer's credentials are verified against it.
    pub(crate) trust: Option<Arc<RwLock<TrustStore>>>,
    /// What an acceptor offers each peer.
    offer_filter: Filter,
}

impl HandshakeConfig {
    /// A configuration for an agent with this card and these capabilities,
    /// checked as a peer would check them.
    pub fn new(card: AgentCard, capabilities: Capabilities) -> Result<Self, Refusal> {
        card.validate()?;
        capabilities.validate()?;
        Ok(Self {
            card,
            capabilities: Arc::new(capabilities),
            timeout: Duration::from_secs(10),
            max_early_work: 64,
            require_common_intents: false,
            max_control_frame_len: tacit_wire::DEFAULT_MAX_FRAME_LEN,
            max_schema_requests: 16,
            credentials: Vec::new(),
            trust: None,
            offer_filter: Filter::default(),
        })
    }

    /// Presents this credential to every peer (at most
    /// [`MAX_PRESENTED_CREDENTIALS`]; more are refused by the peer).
    pub fn credential(&mut self, credential: &SignedCredential) -> &mut Self {
        self.credentials.push(Bytes::from(credential.encode()));
        self
    }

    /// Verifies the peer's credentials against `trust` (rule
    /// `trust.handshake`); a handshake then also needs the peer's AgentId,
    /// given with [`Handshake::set_peer_id`]. Without a store, presented
    /// credentials are ignored.
    /// The store is shared: revocation lists applied to it later count for
    /// the handshakes that follow.
    pub fn trust_store(&mut self, trust: Arc<RwLock<TrustStore>>) -> &mut Self {
        self.trust = Some(trust);
        self
    }

    /// The trust store peers' credentials are verified against, if any.
    pub fn trust(&self) -> Option<&Arc<RwLock<TrustStore>>> {
        self.trust.as_ref()
    }

    /// How long the handshake may take (default 10 s).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// How many pieces of work may be pipelined before the handshake ends
    /// (default 64): the dialer sends up to this many early, the acceptor
    /// holds up to this many and refuses the rest.
    pub fn max_early_work(&mut self, count: usize) -> &mut Self {
        self.max_early_work = count;
        self
    }

    /// Whether a handshake with no intent usable in either direction fails
    /// with `NO_COMMON_INTENTS` (default `false`: schema fetch may follow).
    pub fn require_common_intents(&mut self, require: bool) -> &mut Self {
        self.require_common_intents = require;
        self
    }

    /// Largest control message accepted (default 1 MiB).
    pub fn max_control_frame_len(&mut self, len: usize) -> &mut Self {
        self.max_control_frame_len = len;
        self
    }

    /// Most schema requests outstanding in each direction (default 16).
    pub fn max_schema_requests(&mut self, count: usize) -> &mut Self {
        self.max_schema_requests = count;
        self
    }

    /// This agent's card.
    pub fn card(&self) -> &AgentCard {
        &self.card
    }

    /// This agent's capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// As the acceptor, offers each peer the capabilities `filter` returns
    /// for it (see [`OfferFilter`]).
    pub fn offer_filter(&mut self, filter: OfferFilter) -> &mut Self {
        self.offer_filter = Filter(Some(filter));
        self
    }

    /// The same configuration offering `capabilities` instead (for an
    /// acceptor that offers each peer only part of its intents; the caller
    /// passes a subset of [`capabilities`](Self::capabilities), which were
    /// checked at [`new`](Self::new)).
    pub fn with_capabilities(&self, capabilities: Capabilities) -> Self {
        Self { capabilities: Arc::new(capabilities), ..self.clone() }
    }
}

/// Which side of the connection this agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opened the connection; sends `Hello`.
    Dialer,
    /// Accepted the connection; answers `Welcome` or `Refusal`.
    Acceptor,
}

/// What the transport should do with a piece of work (an ask, tell, stream)
/// that arrives or is created; see [`Handshake::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead now.
    Proceed,
    /// Keep it until [`Event::Established`] (then go ahead) or
    /// [`Event::Failed`] (then refuse it with that code).
    Hold,
    /// Refuse it with this code.
    Refuse(Refusal),
}

/// Something the transport must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake succeeded. Held work may proceed.
    Established(Negotiated),
    /// The handshake or session failed. Held work is refused with this code;
    /// the transport closes the connection with it.
    Failed {
        /// Why.
        refusal: Refusal,
        /// The peer refused (true) or this agent did (false).
        by_peer: bool,
    },
    /// A capability update (from either side) changed what the session may use.
    Updated(Negotiated),
    /// A schema requested with [`Handshake::request_schema`] arrived and
    /// hashes to the IntentId asked for.
    SchemaReceived {
        /// The IntentId asked for.
        intent_id: IntentId,
        /// The message's fully qualified name.
        name: String,
        /// An encoded `FileDescriptorSet` defining it.
        descriptor_set: Bytes,
    },
    /// A schema request failed: the peer does not offer the intent
    /// (`UNKNOWN_INTENT`) or its reply does not hash to the id
    /// (`SCHEMA_MISMATCH`).
    SchemaFailed {
        /// The IntentId asked for.
        intent_id: IntentId,
        /// Why.
        refusal: Refusal,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingHello,
    AwaitingWelcome,
    Established,
    Failed,
}

/// One side of a capability handshake, and of the control stream after it.
///
/// Feed it what arrives on the control stream ([`handle_data`],
/// [`handle_stream_end`]) and the time ([`handle_timeout`] when
/// [`poll_timeout`] says); send what [`poll_transmit`] returns; act on what
/// [`poll_event`] returns.
///
/// [`handle_data`]: Self::handle_data
/// [`handle_stream_end`]: Self::handle_stream_end
/// [`handle_timeout`]: Self::handle_timeout
/// [`poll_timeout`]: Self::poll_timeout
/// [`poll_transmit`]: Self::poll_transmit
/// [`poll_event`]: Self::poll_event
#[derive(Debug)]
pub struct Handshake {
    role: Role,
    config: Arc<HandshakeConfig>,
    state: State,
    /// This agent's capabilities: the configuration's, until it adds intents.
    local: Arc<Capabilities>,
    peer: Option<Capabilities>,
    negotiated: Option<Negotiated>,
    failure: Option<Refusal>,
    decoder: FrameDecoder,
    received: BytesMut,
    transmit: VecDeque<Bytes>,
    events: VecDeque<Event>,
    deadline: Option<Instant>,
    early_work: usize,
    schema_requests: HashSet<IntentId>,
    /// The peer's list grew; renegotiate once the current input is consumed.
    renegotiate_pending: bool,
    /// The peer's AgentId as TLS proved it, for credential checks.
    peer_id: Option<AgentId>,
}

/// Longest refusal reason sent, in bytes.
const MAX_REASON_LEN: usize = 256;

impl Handshake {
    /// The dialer's side: queues `Hello` at once.
    pub fn dialer(config: Arc<HandshakeConfig>, now: Instant) -> Self {
        let mut handshake = Self::new(Role::Dialer, config, now);
        let hello = pb::Hello {
            card: Some(handshake.config.card.to_pb()),
            capabilities: Some(handshake.local.to_pb()),
            credentials: handshake.config.credentials.clone(),
        };
        handshake.send(pb::control_message::Message::Hello(hello));
        handshake
    }

    /// The acceptor's side: waits for `Hello`.
    pub fn acceptor(config: Arc<HandshakeConfig>, now: Instant) -> Self {
        Self::new(Role::Acceptor, config, now)
    }

    fn new(role: Role, config: Arc<HandshakeConfig>, now: Instant) -> Self {
        Self {
            role,
            state: if role == Role::Dialer { State::AwaitingWelcome } else { State::AwaitingHello },
            local: config.capabilities.clone(),
            peer: None,
            negotiated: None,
            failure: None,
            decoder: FrameDecoder::new(config.max_control_frame_len),
            received: BytesMut::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            deadline: now.checked_add(config.timeout),
            early_work: 0,
            schema_requests: HashSet::new(),
            renegotiate_pending: false,
            peer_id: None,
            config,
        }
    }

    /// The peer's AgentId as the transport proved it (TLS). Credentials the
    /// peer presents must name it (rule `trust.subject`).
    pub fn set_peer_id(&mut self, peer: AgentId) {
        self.peer_id = Some(peer);
    }

    /// Verifies the credentials the peer presented (rule `trust.handshake`).
    fn check_credentials(&self, presented: &[Bytes]) -> Result<Vec<VerifiedCredential>, Refusal> {
        let Some(trust) = &self.config.trust else { return Ok(Vec::new()) };
        if presented.len() > MAX_PRESENTED_CREDENTIALS {
            return Err(Refusal::new(
                ErrorCode::CredentialInvalid,
                format!("{} credentials presented, over {MAX_PRESENTED_CREDENTIALS}", presented.len()),
            ));
        }
        if presented.is_empty() {
            return Ok(Vec::new());
        }
        let Some(peer) = self.peer_id else {
            return Err(Refusal::new(ErrorCode::CredentialInvalid, "the peer's AgentId is not known"));
        };
        let now = SystemTime::now();
        presented
            .iter()
            .map(|bytes| {
                SignedCredential::decode(bytes)
                    .and_then(|signed| trust.read().unwrap_or_else(|e| e.into_inner()).verify(&signed, &peer, now))
                    .map_err(|e| Refusal::new(e.code(), e.to_string()))
            })
            .collect()
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the handshake has succeeded (and the session not failed since).
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the handshake or session has failed; nothing more will happen.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// The current negotiation result, once established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The failure, once failed.
    pub fn failure(&self) -> Option<&Refusal> {
        self.failure.as_ref()
    }

    /// Bytes received on the control stream.
    pub fn handle_data(&mut self, data: &[u8], now: Instant) {
        if self.state == State::Failed {
            return;
        }
        let _ = now;
        self.received.extend_from_slice(data);
        loop {
            match self.decoder.decode(&mut self.received) {
                Ok(Some(frame)) => {
                    self.handle_frame(frame);
                    if self.state == State::Failed {
                        return;
                    }
                }
                Ok(None) => {
                    if self.received.is_empty() {
                        // Nothing partial is kept: an idle session holds no buffer.
                        self.received = BytesMut::new();
                    }
                    break;
                }
                Err(e) => {
                    let reason = e.to_string();
                    return self.fail(Refusal::new(e.code(), reason));
                }
            }
        }
        // However many updates arrived at once, negotiate once: the work a
        // peer can cause is bounded by what it adds, not by how it slices it.
        if std::mem::take(&mut self.renegotiate_pending) {
            self.renegotiate();
        }
    }

    /// The peer finished its side of the control stream.
    pub fn handle_stream_end(&mut self, now: Instant) {
        let _ = now;
        if self.state == State::Failed {
            return;
        }
        let refusal = match self.decoder.decode_eof(&mut self.received) {
            Err(e) => Refusal::new(e.code(), e.to_string()),
            Ok(_) => Refusal::new(ErrorCode::ControlStreamClosed, "the peer closed the control stream"),
        };
        self.fail_quietly(refusal, true);
    }

    /// Time has passed; fails the handshake if its deadline is reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::AwaitingHello | State::AwaitingWelcome)
            && self.deadline.is_some_and(|deadline| now >= deadline)
        {
            let reason = format!("handshake did not finish within {:?}", self.config.timeout);
            self.fail(Refusal::new(ErrorCode::HandshakeTimeout, reason));
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingHello | State::AwaitingWelcome => self.deadline,
            State::Established | State::Failed => None,
        }
    }

    /// The next bytes to write to the control stream.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let frame = self.transmit.pop_front();
        if frame.is_none() {
            // Control messages are rare once the handshake is done: an idle
            // session keeps no queue.
            self.transmit = VecDeque::new();
        }
        frame
    }

    /// The next event for the transport.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() {
            self.events = VecDeque::new();
        }
        event
    }

    /// Decides what happens to a piece of work (an ask, tell, stream) that
    /// the dialer wants to start, or that reaches the acceptor, while the
    /// handshake may still be running. This is the pipelining rule:
    ///
    /// - once established: [`Admission::Proceed`];
    /// - dialer, before `Welcome`: the first `max_early_work` pieces
    ///   proceed at once (no round trip before the first ask), later ones
    ///   are held;
    /// - acceptor, before `Hello` is processed: the first `max_early_work`
    ///   pieces are held, later ones refused with `TOO_MANY_EARLY_REQUESTS`;
    /// - after failure: refused with the failure's code.
    pub fn admit(&mut self) -> Admission {
        match self.state {
            State::Established => Admission::Proceed,
            State::Failed => Admission::Refuse(
                self.failure
                    .clone()
                    .unwrap_or_else(|| Refusal::new(ErrorCode::ControlStreamClosed, "the handshake failed")),
            ),
            State::AwaitingWelcome => {
                if self.early_work < self.config.max_early_work {
                    self.early_work += 1;
                    Admission::Proceed
                } else {
                    Admission::Hold
                }
            }
            State::AwaitingHello => {
                if self.early_work < self.config.max_early_work {
                    self.early_work += 1;
                    Admission::Hold
                } else {
                    Admission::Refuse(Refusal::new(
                        ErrorCode::TooManyEarlyRequests,
                        format!("more than {} requests before the handshake ended", self.config.max_early_work),
                    ))
                }
            }
        }
    }

    /// This side's capabilities as they are now (with its updates).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn local(&self) -> &Capabilities {
        &self.local
    }

    /// After the handshake: tells the peer this agent now also offers
    /// `offers` (appended to its list, so existing aliases do not change).
    pub fn add_intents(&mut self, offers: Vec<IntentOffer>) -> Result<(), Refusal> {
        if self.state != State::Established {
            return Err(Refusal::new(ErrorCode::UnexpectedMessage, "capabilities can change only after the handshake"));
        }
        // Offering again what this side already sends is a no-op, so that
        // callers racing to offer one intent on first use all succeed (the
        // first update is on the ordered control stream before anything
        // they send after it).
        let offers: Vec<IntentOffer> = offers
            .into_iter()
            .filter(|offer| !(offer.emits && self.local.intents.iter().any(|own| own.id == offer.id && own.emits)))
            .collect();
        if offers.is_empty() {
            return Ok(());
        }
        check_intent_count(self.local.intents.len().saturating_add(offers.len()))?;
        let mut candidate = Capabilities::clone(&self.local);
        candidate.intents.extend(offers.iter().cloned());
        candidate.validate()?;
        self.local = Arc::new(candidate);
        let update = pb::CapabilityUpdate { added: offers.iter().map(IntentOffer::to_pb).collect() };
        self.send(pb::control_message::Message::CapabilityUpdate(update));
        self.renegotiate();
        Ok(())
    }

    /// Asks the peer for the schema of `intent_id`; the answer arrives as
    /// [`Event::SchemaReceived`] or [`Event::SchemaFailed`].
    pub fn request_schema(&mut self, intent_id: IntentId) -> Result<(), Refusal> {
        if self.state != State::Established {
            return Err(Refusal::new(ErrorCode::UnexpectedMessage, "schemas can be fetched only after the handshake"));
        }
        if self.schema_requests.contains(&intent_id) {
            return Ok(());
        }
        if self.schema_requests.len() >= self.config.max_schema_requests {
            return Err(Refusal::new(
                ErrorCode::TooManySchemaRequests,
                format!("{} schema requests already outstanding", self.schema_requests.len()),
            ));
        }
        self.schema_requests.insert(intent_id);
        let request = pb::DescribeIntentRequest { intent_id: Bytes::copy_from_slice(intent_id.as_bytes()) };
        self.send(pb::control_message::Message::DescribeRequest(request));
        Ok(())
    }

    fn handle_frame(&mut self, frame: Bytes) {
        let message = match pb::ControlMessage::decode(frame) {
            Ok(message) => message.message,
            Err(e) => return self.fail(Refusal::new(ErrorCode::MalformedMessage, format!("control message: {e}"))),
        };
        use pb::control_message::Message;
        match (self.state, message) {
            (_, Some(Message::Refusal(refusal))) => {
                let code = ErrorCode::try_from(refusal.code).unwrap_or(ErrorCode::Unspecified);
                self.fail_quietly(Refusal::new(code, truncate(refusal.reason)), true);
            }
            (State::AwaitingHello, Some(Message::Hello(hello))) => self.on_hello(hello),
            (State::AwaitingWelcome, Some(Message::Welcome(welcome))) => self.on_welcome(welcome),
            (State::Established, Some(Message::Hello(_) | Message::Welcome(_))) => {
                self.fail(Refusal::new(ErrorCode::DuplicateMessage, "a second handshake message"));
            }
            (State::Established, Some(Message::CapabilityUpdate(update))) => self.on_update(update),
            (State::Established, Some(Message::DescribeRequest(request))) => self.on_describe_request(request),
            (State::Established, Some(Message::DescribeResponse(response))) => self.on_describe_response(response),
            // A control message from a later protocol version: ignored once established.
            (State::Established, None) => {}
            (state, message) => {
                let what = message.as_ref().map_or("an unknown message", message_name);
                self.fail(Refusal::new(ErrorCode::UnexpectedMessage, format!("{what} while {}", state_name(state))));
            }
        }
    }

    fn on_hello(&mut self, hello: pb::Hello) {
        let result = (|| {
            let card = AgentCard::from_pb(hello.card.unwrap_or_default())?;
            let peer = Capabilities::from_pb(hello.capabilities.unwrap_or_default())?;
            let version = choose_version(&self.local.versions, &peer.versions)
                .ok_or_else(|| no_common_version(&self.local, &peer))?;
            Ok::<_, Refusal>((card, peer, version))
        })();
        let (card, peer, version) = match result {
            Ok(parts) => parts,
            Err(refusal) => return self.fail(refusal),
        };
        let credentials = match self.check_credentials(&hello.credentials) {
            Ok(credentials) => credentials,
            Err(refusal) => return self.fail(refusal),
        };
        // What this peer is offered may depend on who it is (rule
        // `policy.offer-filter`): decided once its credentials are known.
        if let (Some(filter), Some(peer_id)) = (&self.config.offer_filter.0, self.peer_id) {
            match filter(&peer_id, &credentials, &self.local) {
                Ok(Some(offered)) => self.local = Arc::new(offered),
                Ok(None) => {}
                Err(refusal) => return self.fail(refusal),
            }
        }
        let mut negotiated = negotiate(version, &self.local, &peer, card);
        if let Err(refusal) = self.check_policy(&negotiated) {
            return self.fail(refusal);
        }
        negotiated.peer_credentials = credentials;
        let welcome = pb::Welcome {
            version,
            card: Some(self.config.card.to_pb()),
            capabilities: Some(self.local.to_pb()),
            credentials: self.config.credentials.clone(),
        };
        self.send(pb::control_message::Message::Welcome(welcome));
        self.establish(peer, negotiated);
    }

    fn on_welcome(&mut self, welcome: pb::Welcome) {
        let result = (|| {
            let card = AgentCard::from_pb(welcome.card.unwrap_or_default())?;
            let peer = Capabilities::from_pb(welcome.capabilities.unwrap_or_default())?;
            let expected = choose_version(&self.local.versions, &peer.versions);
            if expected != Some(welcome.version) {
                return Err(Refusal::new(
                    ErrorCode::NoCommonVersion,
                    format!("the acceptor chose version {}, expected {expected:?}", welcome.version),
                ));
            }
            let mut negotiated = negotiate(welcome.version, &self.local, &peer, card);
            self.check_policy(&negotiated)?;
            negotiated.peer_credentials = self.check_credentials(&welcome.credentials)?;
            Ok((peer, negotiated))
        })();
        match result {
            Ok((peer, negotiated)) => self.establish(peer, negotiated),
            Err(refusal) => self.fail(refusal),
        }
    }

    fn on_update(&mut self, update: pb::CapabilityUpdate) {
        let Some(peer) = self.peer.as_mut() else { return };
        if update.added.is_empty() {
            // Nothing changes; an empty update costs the receiver nothing.
            return;
        }
        let existing: HashSet<IntentId> = peer.intents.iter().map(|offer| offer.id).collect();
        match intents_from_update(update.added, &existing) {
            Ok(added) => {
                peer.intents.extend(added);
                self.renegotiate_pending = true;
            }
            Err(refusal) => self.fail(refusal),
        }
    }

    fn on_describe_request(&mut self, request: pb::DescribeIntentRequest) {
        // Responses wait in the transmit queue until the transport sends
        // them; a peer that asks faster than it reads is cut off.
        if self.transmit.len() >= self.config.max_schema_requests {
            return self.fail(Refusal::new(
                ErrorCode::TooManySchemaRequests,
                format!("more than {} schema requests unanswered", self.config.max_schema_requests),
            ));
        }
        // Offered intents, and the reply and data types offers name.
        let schema = IntentId::try_from(&request.intent_id[..]).ok().and_then(|id| self.local.schema(&id));
        let response = match schema {
            Some((name, set)) => pb::DescribeIntentResponse {
                intent_id: request.intent_id,
                name: name.to_owned(),
                descriptor_set: set.clone(),
                error: 0,
            },
            _ => pb::DescribeIntentResponse {
                intent_id: request.intent_id,
                error: ErrorCode::UnknownIntent.into(),
                ..Default::default()
            },
        };
        self.send(pb::control_message::Message::DescribeResponse(response));
    }

    fn on_describe_response(&mut self, response: pb::DescribeIntentResponse) {
        let id = IntentId::try_from(&response.intent_id[..]).ok();
        let Some(intent_id) = id.filter(|id| self.schema_requests.remove(id)) else {
            return self.fail(Refusal::new(ErrorCode::UnexpectedMessage, "a schema response nobody asked for"));
        };
        if response.error != 0 {
            let code = ErrorCode::try_from(response.error).unwrap_or(ErrorCode::UnknownIntent);
            let refusal = Refusal::new(code, format!("the peer does not describe intent {intent_id}"));
            return self.events.push_back(Event::SchemaFailed { intent_id, refusal });
        }
        match IntentId::of_message_in_encoded_set(&response.descriptor_set, &response.name) {
            Ok(computed) if computed == intent_id => self.events.push_back(Event::SchemaReceived {
                intent_id,
                name: response.name,
                descriptor_set: response.descriptor_set,
            }),
            outcome => {
                let reason = match outcome {
                    Ok(computed) => format!("the schema of {} hashes to {computed}, not {intent_id}", response.name),
                    Err(e) => format!("the schema for {intent_id} is unusable: {e}"),
                };
                let refusal = Refusal::new(ErrorCode::SchemaMismatch, reason);
                self.events.push_back(Event::SchemaFailed { intent_id, refusal });
            }
        }
    }

    fn check_policy(&self, negotiated: &Negotiated) -> Result<(), Refusal> {
        if self.config.require_common_intents && negotiated.intents.is_empty() {
            return Err(Refusal::new(ErrorCode::NoCommonIntents, "no intent is usable in either direction"));
        }
        Ok(())
    }

    fn establish(&mut self, peer: Capabilities, negotiated: Negotiated) {
        self.state = State::Established;
        self.peer = Some(peer);
        self.negotiated = Some(negotiated.clone());
        self.early_work = 0;
        self.events.push_back(Event::Established(negotiated));
    }

    fn renegotiate(&mut self) {
        let (Some(peer), Some(current)) = (&self.peer, &self.negotiated) else { return };
        let mut negotiated = negotiate(current.version, &self.local, peer, current.peer_card.clone());
        negotiated.peer_credentials = current.peer_credentials.clone();
        self.negotiated = Some(negotiated.clone());
        // An update the transport has not seen yet is superseded, not queued.
        if let Some(Event::Updated(pending)) = self.events.back_mut() {
            *pending = negotiated;
        } else {
            self.events.push_back(Event::Updated(negotiated));
        }
    }

    /// Fails, telling the peer why.
    fn fail(&mut self, refusal: Refusal) {
        let message =
            pb::Refusal { code: refusal.code.into(), reason: truncate(refusal.reason.clone()), ..Default::default() };
        self.send(pb::control_message::Message::Refusal(message));
        self.fail_quietly(refusal, false);
    }

    /// Fails without sending anything (the peer refused, or went away).
    fn fail_quietly(&mut self, refusal: Refusal, by_peer: bool) {
        self.state = State::Failed;
        self.failure = Some(refusal.clone());
        self.received = BytesMut::new();
        self.schema_requests.clear();
        self.events.push_back(Event::Failed { refusal, by_peer });
    }

    fn send(&mut self, message: pb::control_message::Message) {
        let message = pb::ControlMessage { message: Some(message) };
        // Our own messages are checked on construction to fit; an encoder
        // without a cap cannot fail.
        if let Ok(frame) = FrameEncoder::new(usize::MAX).encode_to_bytes(&message) {
            self.transmit.push_back(frame);
        }
    }
}

fn no_common_version(local: &Capabilities, peer: &Capabilities) -> Refusal {
    Refusal::new(
        ErrorCode::NoCommonVersion,
        format!(
            "this agent speaks versions {}..={}, the peer {}..={}",
            local.versions.start(),
            local.versions.end(),
            peer.versions.start(),
            peer.versions.end()
        ),
    )
}

fn truncate(mut reason: String) -> String {
    if reason.len() > MAX_REASON_LEN {
        let mut end = MAX_REASON_LEN;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

fn message_name(message: &pb::control_message::Message) -> &'static str {
    use pb::control_message::Message;
    match message {
        Message::Hello(_) => "Hello",
        Message::Welcome(_) => "Welcome",
        Message::Refusal(_) => "Refusal",
        Message::CapabilityUpdate(_) => "CapabilityUpdate",
        Message::DescribeRequest(_) => "DescribeIntentRequest",
        Message::DescribeResponse(_) => "DescribeIntentResponse",
    }
}

fn state_name(state: State) -> &'static str {
    match state {
        State::AwaitingHello => "awaiting Hello",
        State::AwaitingWelcome => "awaiting Welcome",
        State::Established => "established",
        State::Failed => "failed",
    }
}
