//! A peer agent: typed ask / tell / stream / datagram over a session that
//! re-establishes itself after a lost connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tacit_handshake::{AgentCard, AgentId, Negotiated};
use tacit_quic::{AskError, Session, SessionError, TellOptions};
use tacit_wire::{Act, ConversationId, Envelope, IntentRef, TraceContext};

use crate::agent::{self, Core};
use crate::conversation::Conversation;
use crate::error::{Error, Result};
use crate::handler::{Reply, StreamReceiver, StreamSender};
use crate::intent::{Intent, Request};
use crate::metrics::{Counter, Metrics};
use crate::schema::Schema;

/// How a dialed [`Peer`] re-establishes a lost session: exponential backoff
/// between attempts, a bounded number of attempts per loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Delay before the second attempt (the first is immediate).
    pub initial_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
    /// Attempts per loss before giving up (0: never reconnect).
    pub max_attempts: u32,
    /// How many times one ask is re-sent after lost connections.
    pub max_retries: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            max_attempts: 8,
            max_retries: 3,
        }
    }
}

impl ReconnectPolicy {
    /// Never reconnects: a lost session stays lost.
    pub fn never() -> Self {
        Self { max_attempts: 0, max_retries: 0, ..Self::default() }
    }

    /// Sets the delays: `initial`, doubling up to `max`.
    pub fn delays(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial;
        self.max_delay = max;
        self
    }

    /// Sets the attempts per loss.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets how many times one ask is re-sent.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }
}

/// Options of one ask through a [`Peer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AskOptions {
    /// The act (default `REQUEST`; also `QUERY`, `CFP`, `ACCEPT`, ...).
    pub act: Act,
    /// How long to wait for the reply, retries included. Default: no deadline.
    pub deadline: Option<Duration>,
    /// The conversation the ask belongs to.
    pub conversation: ConversationId,
    /// The message it answers.
    pub in_reply_to: u64,
    /// Whether the ask may be re-sent after a connection is lost *after* it
    /// was sent (an unknown outcome). The re-sent ask keeps its message id,
    /// so the peer's retry window runs it at most once. Default: false. Asks
    /// that were never sent are always re-sent.
    pub idempotent: bool,
    /// The message id to use (default: a fresh one).
    pub message_id: Option<u64>,
    /// W3C trace context to carry. Default: none, which sends the current
    /// span's ([`trace::current`](crate::trace::current)).
    pub trace: Option<TraceContext>,
}

impl Default for AskOptions {
    fn default() -> Self {
        Self {
            act: Act::Request,
            deadline: None,
            conversation: ConversationId::none(),
            in_reply_to: 0,
            idempotent: false,
            message_id: None,
            trace: None,
        }
    }
}

impl AskOptions {
    /// Sets the act.
    pub fn act(mut self, act: Act) -> Self {
        self.act = act;
        self
    }

    /// Sets the deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the conversation.
    pub fn conversation(mut self, conversation: ConversationId) -> Self {
        self.conversation = conversation;
        self
    }

    /// Sets the message this ask answers.
    pub fn in_reply_to(mut self, message_id: u64) -> Self {
        self.in_reply_to = message_id;
        self
    }

    /// Marks the ask idempotent: re-sent (same message id) after a lost
    /// connection, run at most once by the peer.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Sets the message id (e.g. to continue an earlier attempt).
    pub fn message_id(mut self, message_id: u64) -> Self {
        self.message_id = Some(message_id);
        self
    }

    /// Sets the trace context the ask carries (instead of the current span's).
    pub fn trace(mut self, trace: TraceContext) -> Self {
        self.trace = Some(trace);
        self
    }
}

/// A peer agent. Cheap to clone; all clones share one session.
///
/// A peer from [`Agent::connect`](crate::Agent::connect) reconnects by
/// itself (with [`ReconnectPolicy`]) when its session is lost, always to
/// the same AgentId. A peer from a handler's [`Context`](crate::Context)
/// is the session the message came on, and does not reconnect. When the
/// last clone of a dialed peer is dropped, its connection is closed.
#[derive(Debug, Clone)]
pub struct Peer {
    inner: Arc<PeerInner>,
}

#[derive(Debug)]
pub(crate) struct PeerInner {
    core: Arc<Core>,
    id: AgentId,
    /// Where to reconnect; `None` for accepted sessions.
    addr: Option<SocketAddr>,
    session: Mutex<Session>,
    reconnecting: tokio::sync::Mutex<()>,
}

impl Peer {
    pub(crate) fn dialed(core: Arc<Core>, addr: SocketAddr, session: Session) -> Self {
        let peer = Self {
            inner: Arc::new(PeerInner {
                core,
                id: session.peer_id(),
                addr: Some(addr),
                session: Mutex::new(session.clone()),
                reconnecting: tokio::sync::Mutex::new(()),
            }),
        };
        agent::serve_dialed(peer.inner.core.clone(), &session, Arc::downgrade(&peer.inner));
        peer
    }

    pub(crate) fn accepted(core: Arc<Core>, session: Session) -> Self {
        Self {
            inner: Arc::new(PeerInner {
                core,
                id: session.peer_id(),
                addr: None,
                session: Mutex::new(session),
                reconnecting: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub(crate) fn from_weak(weak: &Weak<PeerInner>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.inner.core
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.core.metrics
    }

    /// The peer's AgentId (proven by its TLS certificate).
    pub fn id(&self) -> AgentId {
        self.inner.id
    }

    /// The peer's card, once the capability handshake is done.
    pub fn card(&self) -> Option<AgentCard> {
        self.session().negotiated().map(|negotiated| negotiated.peer_card.clone())
    }

    /// Where the peer was dialed (`None` for a peer that dialed this agent).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.inner.addr
    }

    /// The current session (possibly closed; the next operation reconnects).
    pub fn session(&self) -> Session {
        self.inner.session.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for the capability handshake and returns what was negotiated.
    pub async fn ready(&self) -> Result<Arc<Negotiated>> {
        Ok(self.live_session().await?.ready().await?)
    }

    /// Whether `I` can be sent to this peer now (it is negotiated).
    pub fn can_send<I: Intent>(&self) -> bool {
        self.session().negotiated().is_some_and(|negotiated| negotiated.send_alias(&I::ID).is_some())
    }

    /// Starts a conversation with this peer: a fresh conversation id that its
    /// messages carry, each answering the last one received.
    pub fn conversation(&self) -> Conversation {
        Conversation::new(self.clone())
    }

    /// Asks the peer and waits for the typed reply.
    ///
    /// A remote refusal or failure comes back as [`Error::Rejected`] with its
    /// code. If the session was lost before the ask was sent, the peer
    /// reconnects and sends it; see [`AskOptions::idempotent`] for losses
    /// after sending.
    pub async fn ask<R: Request>(&self, request: R) -> Result<R::Reply> {
        self.ask_with(request, AskOptions::default()).await.map(|reply| reply.message)
    }

    /// Like [`ask`](Self::ask), with options; returns the reply with its act.
    pub async fn ask_with<R: Request>(&self, request: R, options: AskOptions) -> Result<Reply<R::Reply>> {
        self.ask_envelope::<R>(|| request.encode_to_vec().into(), options).await.map(|(reply, _)| reply)
    }

    /// Asks with the request `encode` gives (called again for each re-sent
    /// attempt, so the first needs no copy); returns the typed reply and its
    /// message id.
    pub(crate) async fn ask_envelope<R: Request>(
        &self,
        encode: impl Fn() -> Bytes,
        options: AskOptions,
    ) -> Result<(Reply<R::Reply>, u64)> {
        let (envelope, session) = self.ask_payload(R::ID, R::NAME, encode, options).await?;
        self.decode_reply::<R::Reply>(&session, envelope)
    }

    /// Asks an intent known only by id (e.g. from a fetched [`Schema`]):
    /// `payload` is the encoded request; the reply comes back encoded, with
    /// its intent resolved when the peer named it.
    pub async fn ask_raw(&self, intent: tacit_wire::IntentId, payload: Bytes, options: AskOptions) -> Result<RawReply> {
        let (envelope, session) = self.ask_payload(intent, "a dynamic intent", || payload.clone(), options).await?;
        self.metrics().received(Counter::RepliesReceived, envelope.payload.len());
        Ok(RawReply {
            act: envelope.act,
            intent: resolve(&session, envelope.intent),
            message_id: envelope.message_id,
            payload: envelope.payload,
        })
    }

    /// Sends one ask, re-sending it on a new session as the options allow;
    /// `encode` gives the payload of each attempt.
    async fn ask_payload(
        &self,
        intent: tacit_wire::IntentId,
        name: &'static str,
        encode: impl Fn() -> Bytes,
        options: AskOptions,
    ) -> Result<(Envelope, Session)> {
        let metrics = self.metrics();
        let started = Instant::now();
        let deadline = options.deadline.map(|deadline| started + deadline);
        let mut session = self.live_session().await?;
        let message_id = options.message_id.unwrap_or_else(|| session.next_message_id());
        let mut payload = encode();
        metrics.sent(Counter::AsksSent, payload.len());
        let mut retries = 0;
        // Whether an attempt went out and its connection was lost: from then
        // on the ask may have run, whatever later attempts say.
        let mut sent = false;
        // trace hook: the trace context every attempt carries.
        let trace = options.trace.or_else(crate::trace::current);
        loop {
            let mut quic = tacit_quic::AskOptions::default()
                .act(options.act)
                .message_id(message_id)
                .conversation(options.conversation)
                .in_reply_to(options.in_reply_to);
            quic.trace = trace; // trace hook
            if options.idempotent {
                quic = quic.idempotent();
            }
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    metrics.error(tacit_wire::ErrorCode::DeadlineExceeded);
                    return Err(Error::DeadlineExceeded { intent: name });
                }
                quic = quic.deadline(left);
            }
            let error = match session.ask_with(intent, std::mem::take(&mut payload), quic).await {
                Ok(envelope) => {
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        tracing::debug!(
                            peer = %self.inner.id,
                            intent = name,
                            latency_us = started.elapsed().as_micros() as u64,
                            act = ?envelope.act,
                            "ask answered"
                        );
                    }
                    return Ok((envelope, session));
                }
                Err(error) => error,
            };
            let retry = match &error {
                AskError::NotSent(SessionError::ConnectionLost(_)) => true,
                AskError::Unknown(_) => options.idempotent,
                _ => false,
            };
            sent |= matches!(error, AskError::Unknown(_));
            if !retry || retries >= self.inner.core.reconnect.max_retries || self.inner.addr.is_none() {
                let error = match error {
                    AskError::NotSent(e) if sent => {
                        Error::Unknown { intent: name, reason: format!("re-sending failed: {e}") }
                    }
                    error => Error::from_ask(name, error),
                };
                if error.is_rejection() {
                    metrics.bump(Counter::RejectionsReceived);
                }
                metrics.error(error.code());
                return Err(error);
            }
            retries += 1;
            metrics.bump(Counter::Retries);
            tracing::debug!(peer = %self.inner.id, intent = name, retries, "re-sending an ask after a lost connection");
            // Reconnecting counts against the ask's deadline.
            let reconnected = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, self.reconnect(&session)).await {
                        Ok(reconnected) => reconnected,
                        Err(_) => {
                            metrics.error(tacit_wire::ErrorCode::DeadlineExceeded);
                            return Err(Error::DeadlineExceeded { intent: name });
                        }
                    }
                }
                None => self.reconnect(&session).await,
            };
            session = match reconnected {
                Ok(session) => session,
                // Not "could not connect": the ask went out before and may have run.
                Err(e) if sent => {
                    metrics.error(tacit_wire::ErrorCode::Unspecified);
                    let reason = format!("the connection was lost after sending, and reconnecting failed: {e}");
                    return Err(Error::Unknown { intent: name, reason });
                }
                Err(e) => return Err(e),
            };
            // The payload of the re-sent attempt.
            payload = encode();
        }
    }

    fn decode_reply<T: Intent>(&self, session: &Session, envelope: Envelope) -> Result<(Reply<T>, u64)> {
        let id = resolve(session, envelope.intent);
        if id != Some(T::ID) {
            self.metrics().error(tacit_wire::ErrorCode::InvalidPayload);
            let found = id.map_or_else(|| format!("{:?}", envelope.intent), |id| id.to_string());
            return Err(Error::UnexpectedReply { expected: T::NAME, found });
        }
        let message = T::decode(envelope.payload.clone()).map_err(|e| {
            self.metrics().error(tacit_wire::ErrorCode::InvalidPayload);
            Error::Decode { intent: T::NAME, reason: e.to_string() }
        })?;
        self.metrics().received(Counter::RepliesReceived, envelope.payload.len());
        Ok((Reply { act: envelope.act, message }, envelope.message_id))
    }

    /// Tells the peer: sends `message` one way (`INFORM`), reliably and in
    /// order with other tells.
    pub async fn tell<I: Intent>(&self, message: I) -> Result<()> {
        self.tell_with(message, TellOptions::default()).await
    }

    /// Like [`tell`](Self::tell), with an act, conversation and `in_reply_to`.
    pub async fn tell_with<I: Intent>(&self, message: I, options: TellOptions) -> Result<()> {
        self.tell_payload(I::ID, I::NAME, message.encode_to_vec().into(), options).await
    }

    /// Tells an intent known only by id; `payload` is the encoded message.
    pub async fn tell_raw(&self, intent: tacit_wire::IntentId, payload: Bytes, options: TellOptions) -> Result<()> {
        self.tell_payload(intent, "a dynamic intent", payload, options).await
    }

    async fn tell_payload(
        &self,
        intent: tacit_wire::IntentId,
        name: &'static str,
        payload: Bytes,
        mut options: TellOptions,
    ) -> Result<()> {
        // trace hook: the current span's trace context unless set explicitly.
        options.trace = options.trace.or_else(crate::trace::current);
        let mut session = self.live_session().await?;
        let mut retried = false;
        loop {
            match session.tell_with(intent, payload.clone(), options.clone()).await {
                Ok(()) => {
                    self.metrics().sent(Counter::TellsSent, payload.len());
                    return Ok(());
                }
                Err(AskError::NotSent(SessionError::ConnectionLost(_))) if !retried && self.inner.addr.is_some() => {
                    retried = true;
                    session = self.reconnect(&session).await?;
                }
                Err(error) => {
                    let error = Error::from_ask(name, error);
                    self.metrics().error(error.code());
                    return Err(error);
                }
            }
        }
    }

    /// Sends `message` as one QUIC datagram: unreliable, unordered, small.
    pub async fn datagram<I: Intent>(&self, message: I) -> Result<()> {
        let payload: Bytes = message.encode_to_vec().into();
        let len = payload.len();
        let session = self.live_session().await?;
        session.send_datagram(I::ID, payload).await.map_err(|e| Error::from_ask(I::NAME, e))?;
        self.metrics().sent(Counter::TellsSent, len);
        Ok(())
    }

    /// Opens a stream lane with `opening`, then sends `Out` messages and
    /// receives `In` messages, each direction ended explicitly.
    pub async fn stream<I: Intent, Out: prost::Message, In: prost::Message + Default>(
        &self,
        opening: I,
    ) -> Result<(StreamSender<Out>, StreamReceiver<In>)> {
        let session = self.live_session().await?;
        let payload: Bytes = opening.encode_to_vec().into();
        self.metrics().sent(Counter::StreamsOpened, payload.len());
        let (sender, receiver) = session.open_stream(I::ID, payload).await?;
        Ok((StreamSender::new(sender), StreamReceiver::new(receiver, I::NAME)))
    }

    /// Fetches the schema of an intent the peer offers, verified against its
    /// id, for decoding messages of a type this agent was not built with.
    pub async fn describe(&self, intent: tacit_wire::IntentId) -> Result<Schema> {
        let session = self.live_session().await?;
        let (name, descriptor_set) = session.describe(intent).await.map_err(Error::Refused)?;
        Schema::new(intent, name, descriptor_set)
    }

    /// Closes the session (a dialed peer reconnects on its next use).
    pub fn close(&self) {
        self.session().close(tacit_wire::ErrorCode::Unspecified, "closed by the application");
    }

    /// The session, re-established first if it was lost.
    pub(crate) async fn live_session(&self) -> Result<Session> {
        let session = self.session();
        if !session.is_closed() {
            return Ok(session);
        }
        if self.inner.addr.is_none() {
            return Err(Error::Session(SessionError::ConnectionLost("the peer's session has ended".into())));
        }
        self.reconnect(&session).await
    }

    /// Replaces `failed` by a new session, unless another task already did.
    async fn reconnect(&self, failed: &Session) -> Result<Session> {
        let Some(addr) = self.inner.addr else {
            return Err(Error::Session(SessionError::ConnectionLost("the peer's session has ended".into())));
        };
        let _one_at_a_time = self.inner.reconnecting.lock().await;
        let current = self.session();
        if !current.is_closed() && current.connection().stable_id() != failed.connection().stable_id() {
            return Ok(current);
        }
        failed.close(tacit_wire::ErrorCode::Unspecified, "reconnecting");
        let core = &self.inner.core;
        let policy = core.reconnect;
        let mut delay = policy.initial_delay;
        let mut last_error = Error::Session(SessionError::ConnectionLost("reconnecting is disabled".into()));
        for attempt in 0..policy.max_attempts {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max_delay);
            }
            match core.endpoint.connect(addr, Some(self.inner.id)).await {
                Ok(session) => {
                    core.metrics.bump(Counter::Reconnects);
                    tracing::debug!(peer = %self.inner.id, %addr, attempt, "reconnected");
                    *self.inner.session.lock().unwrap_or_else(|e| e.into_inner()) = session.clone();
                    agent::serve_dialed(core.clone(), &session, Arc::downgrade(&self.inner));
                    return Ok(session);
                }
                Err(error) => {
                    tracing::debug!(peer = %self.inner.id, %addr, attempt, %error, "reconnect failed");
                    let error = Error::from_connect(error);
                    // Someone else answers at that address: retrying will not help.
                    if matches!(error, Error::IdentityMismatch { .. }) {
                        return Err(error);
                    }
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }
}

/// The intent an envelope names, resolved with what the session negotiated.
fn resolve(session: &Session, intent: IntentRef) -> Option<tacit_wire::IntentId> {
    match intent {
        IntentRef::Id(id) => Some(id),
        IntentRef::Alias(alias) => {
            session.negotiated().and_then(|negotiated| negotiated.resolve_alias(alias).map(|intent| intent.id))
        }
    }
}

/// The answer to [`Peer::ask_raw`]: still encoded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RawReply {
    /// The act of the answer.
    pub act: Act,
    /// The reply's intent, if the peer named one this agent can resolve.
    pub intent: Option<tacit_wire::IntentId>,
    /// The answer's message id.
    pub message_id: u64,
    /// The encoded reply.
    pub payload: Bytes,
}
