//! A peer agent: typed ask / tell / stream / datagram. Encoding and decoding
//! happen here; the link to the peer (re-dial, re-send) is tacit-quic's
//! [`Link`].

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use tacit_handshake::{AgentCard, AgentId, IntentOffer, Negotiated, Receipt};
use tacit_quic::{AskError, Link, LinkState, LinkWatch, Session, WeakLink};
use tacit_wire::{Act, Envelope, IntentId};

use crate::core::Core;
use crate::error::{Error, Result};
use crate::intent::{Intent, Request, Subscription};
use crate::metrics::{Counter, Metrics};
use crate::reply::{Reply, StreamReceiver, StreamSender};
use crate::schema::Schema;
use crate::{AskOptions, TellOptions};

/// A peer agent. Cheap to clone; all clones share one connection.
///
/// A peer from [`Agent::connect`](crate::Agent::connect) is a link that
/// re-dials by itself (with [`ReconnectPolicy`](crate::ReconnectPolicy))
/// when its session is lost, always to the same AgentId; watch it with
/// [`watch`](Self::watch). A peer from a handler's [`Context`](crate::Context)
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
    conn: Conn,
    /// An accepted peer's memberships as the policy sees them, built on the
    /// first message a policy naming organisations or roles checks (its
    /// credentials do not change within the session).
    subject: std::sync::OnceLock<crate::policy::Subject>,
    /// Intents this agent offered the peer on first use whose update the
    /// peer has applied (sorted): asks of them go out at once.
    offered: std::sync::RwLock<Vec<IntentId>>,
    /// Held while offering one: concurrent first uses wait for the first
    /// offer's round trip instead of sending before the peer applied it.
    offering: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
enum Conn {
    /// Dialed: re-established when lost.
    Link(Link),
    /// Accepted: ends with its session.
    Session(Session),
}

impl Peer {
    pub(crate) fn dialed(core: Arc<Core>, link: Link) -> Self {
        Self {
            inner: Arc::new(PeerInner {
                core,
                id: link.peer_id(),
                conn: Conn::Link(link),
                subject: Default::default(),
                offered: Default::default(),
                offering: Default::default(),
            }),
        }
    }

    pub(crate) fn accepted(core: Arc<Core>, session: Session) -> Self {
        Self {
            inner: Arc::new(PeerInner {
                core,
                id: session.peer_id(),
                conn: Conn::Session(session),
                subject: Default::default(),
                offered: Default::default(),
                offering: Default::default(),
            }),
        }
    }

    pub(crate) fn downgrade(&self) -> Weak<PeerInner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn from_weak(weak: &Weak<PeerInner>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
    }

    /// The link of a dialed peer, without keeping it open.
    pub(crate) fn weak_link(&self) -> Option<WeakLink> {
        match &self.inner.conn {
            Conn::Link(link) => Some(link.downgrade()),
            Conn::Session(_) => None,
        }
    }

    /// Runs `f` with the peer as a policy subject with its verified
    /// memberships: built once per accepted session, each time for a dialed
    /// peer (whose session, and so credentials, may change).
    pub(crate) fn with_subject<R>(&self, f: impl FnOnce(&crate::policy::Subject) -> R) -> R {
        let build = || crate::policy::Subject::with_credentials(self.inner.id, &self.credentials());
        match &self.inner.conn {
            // Messages are handed over only once the handshake is done, so
            // the credentials are final by the first call.
            Conn::Session(_) => f(self.inner.subject.get_or_init(build)),
            Conn::Link(_) => f(&build()),
        }
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

    /// The peer's organisation credentials verified in the handshake (empty
    /// before it, or without a trust store: see `AgentBuilder::trust`).
    pub fn credentials(&self) -> Vec<tacit_handshake::credential::VerifiedCredential> {
        self.session().peer_credentials()
    }

    /// Where the peer was dialed, or where it dialed from.
    pub fn addr(&self) -> SocketAddr {
        match &self.inner.conn {
            Conn::Link(link) => link.addr(),
            Conn::Session(session) => session.remote_address(),
        }
    }

    /// The current session (possibly closed while a dialed peer re-dials):
    /// the transport's view, for power users.
    pub fn session(&self) -> Session {
        match &self.inner.conn {
            Conn::Link(link) => link.session(),
            Conn::Session(session) => session.clone(),
        }
    }

    /// Where the connection stands: up (with its generation), re-dialing,
    /// down, or closed. A peer that dialed this agent is `Up` until its
    /// session ends, then `Closed`.
    pub fn state(&self) -> LinkState {
        match &self.inner.conn {
            Conn::Link(link) => link.state(),
            Conn::Session(session) if session.is_closed() => LinkState::Closed,
            Conn::Session(_) => LinkState::Up { generation: 1 },
        }
    }

    /// Changes of a dialed peer's link: every reconnect shows as a new
    /// [`LinkState::Up`] generation, e.g. to subscribe again after the peer
    /// restarted. `None` for a peer that dialed this agent (it does not
    /// reconnect).
    pub fn watch(&self) -> Option<LinkWatch> {
        match &self.inner.conn {
            Conn::Link(link) => Some(link.watch()),
            Conn::Session(_) => None,
        }
    }

    /// Waits for the capability handshake and returns what was negotiated.
    pub async fn ready(&self) -> Result<Arc<Negotiated>> {
        let result = match &self.inner.conn {
            Conn::Link(link) => link.ready().await,
            Conn::Session(session) => session.ready().await,
        };
        result.map_err(Error::from_session)
    }

    /// Whether `I` can be sent to this peer now (it is negotiated).
    pub fn can_send<I: Intent>(&self) -> bool {
        self.session().negotiated().is_some_and(|negotiated| negotiated.send_alias(&I::ID).is_some())
    }

    /// Asks the peer and waits for the typed reply.
    ///
    /// A remote refusal or failure comes back as [`Error::Rejected`] with its
    /// code. If the session was lost before the ask was sent, a dialed peer
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
        let deadline = options.deadline.map(|deadline| Instant::now() + deadline);
        self.offer_on_first_use::<R>(deadline).await?;
        let (envelope, intent, receipt) = self.ask_payload(R::ID, R::NAME, encode, options).await?;
        let (mut reply, id) = self.decode_reply::<R::Reply>(envelope, intent)?;
        reply.receipt = receipt;
        Ok((reply, id))
    }

    /// Asks an intent known only by id (e.g. from a fetched [`Schema`]):
    /// `payload` is the encoded request; the reply comes back encoded, with
    /// its intent resolved when the peer named it.
    pub async fn ask_raw(&self, intent: IntentId, payload: Bytes, options: AskOptions) -> Result<RawReply> {
        let (envelope, intent, receipt) =
            self.ask_payload(intent, "a dynamic intent", || payload.clone(), options).await?;
        self.metrics().received(Counter::RepliesReceived, envelope.payload.len());
        Ok(RawReply { act: envelope.act, intent, message_id: envelope.message_id, payload: envelope.payload, receipt })
    }

    /// Sends one ask through the link (or the accepted session).
    async fn ask_payload(
        &self,
        intent: IntentId,
        name: &'static str,
        encode: impl Fn() -> Bytes,
        mut options: AskOptions,
    ) -> Result<(Envelope, Option<IntentId>, Option<Box<Receipt>>)> {
        let metrics = self.metrics();
        let started = Instant::now();
        let sign_reply = options.sign_reply;
        if options.trace.is_none() {
            options.trace = crate::trace::current();
        }
        let outcome = match &self.inner.conn {
            Conn::Link(link) => {
                let first = std::sync::atomic::AtomicBool::new(true);
                link.ask_with(
                    intent,
                    || {
                        let payload = encode();
                        if first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                            metrics.sent(Counter::AsksSent, payload.len());
                        } else {
                            metrics.bump(Counter::Retries);
                        }
                        payload
                    },
                    options,
                )
                .await
                .map(|reply| (reply.envelope, reply.intent))
            }
            Conn::Session(session) => {
                let payload = encode();
                metrics.sent(Counter::AsksSent, payload.len());
                let deadline = options.deadline;
                let ask = session.ask_with(intent, payload, options);
                let outcome = match deadline {
                    Some(deadline) => {
                        tokio::time::timeout(deadline, ask).await.unwrap_or(Err(AskError::DeadlineExceeded))
                    }
                    None => ask.await,
                };
                outcome.map(|envelope| {
                    let resolved = session.reply_intent(envelope.intent);
                    (envelope, resolved)
                })
            }
        };
        match outcome {
            Ok(answer) => {
                if tracing::enabled!(tracing::Level::DEBUG) {
                    tracing::debug!(
                        peer = %self.inner.id,
                        intent = name,
                        latency_us = started.elapsed().as_micros() as u64,
                        act = ?answer.0.act,
                        "ask answered"
                    );
                }
                let receipt = self.reply_receipt(name, &answer.0, answer.1, sign_reply).inspect_err(|error| {
                    metrics.error(error.code());
                })?;
                Ok((answer.0, answer.1, receipt))
            }
            Err(error) => {
                let error = Error::from_ask(name, error);
                if error.is_rejection() {
                    metrics.bump(Counter::RejectionsReceived);
                }
                metrics.error(error.code());
                Err(error)
            }
        }
    }

    /// The verified receipt of a signed answer ([receipt.verify-on-arrival]);
    /// an error if its signature does not verify, or if `required` (the ask
    /// asked for a signed answer) and it came unsigned.
    fn reply_receipt(
        &self,
        name: &'static str,
        answer: &Envelope,
        intent: Option<IntentId>,
        required: bool,
    ) -> Result<Option<Box<Receipt>>> {
        if answer.signature.is_none() {
            return if required { Err(Error::ReplyUnsigned { intent: name }) } else { Ok(None) };
        }
        let receiver = self.inner.core.endpoint.agent_id();
        let receipt = intent
            .and_then(|intent| Receipt::from_envelope(self.inner.id, receiver, intent, answer))
            .ok_or(Error::ReplySignatureInvalid { intent: name })?;
        receipt.verify().map_err(|_| Error::ReplySignatureInvalid { intent: name })?;
        Ok(Some(Box::new(receipt)))
    }

    /// An intent this agent did not declare with `emits` is offered to the
    /// peer by a capability update on first use, if the peer handles it;
    /// then the ask goes out as if it had been declared.
    async fn offer_on_first_use<I: Intent>(&self, deadline: Option<Instant>) -> Result<()> {
        self.offer_id(I::ID, I::NAME, || Bytes::from_static(I::DESCRIPTOR_SET), deadline).await
    }

    /// Offers the peer an intent known at run time (a fetched or built
    /// [`Schema`]) that this agent sends, as the typed calls do on first
    /// use: nothing to do if it is negotiated already (declared with
    /// [`emits_schema`](crate::AgentBuilder::emits_schema) or offered
    /// before); else a capability update, if the peer handles it
    /// ([`Error::NotNegotiated`] if not), after which the intent travels by
    /// its short alias and the peer can fetch its schema from this agent.
    /// Without it, [`ask_raw`](Self::ask_raw) and the other raw calls send
    /// an undeclared intent by its full id.
    pub async fn offer(&self, schema: &Schema) -> Result<()> {
        self.offer_id(schema.id(), "a dynamic intent", || schema.descriptor_set().clone(), None).await
    }

    /// Whether this agent's offer of `id` on first use is in force.
    fn offered(&self, id: &IntentId) -> bool {
        self.inner.offered.read().unwrap_or_else(|e| e.into_inner()).binary_search(id).is_ok()
    }

    async fn offer_id(
        &self,
        id: IntentId,
        name: &'static str,
        descriptor_set: impl FnOnce() -> Bytes,
        deadline: Option<Instant>,
    ) -> Result<()> {
        if self.inner.core.emits(&id) || self.offered(&id) {
            return Ok(());
        }
        let ready = async {
            let _offering = self.inner.offering.lock().await;
            if self.offered(&id) {
                return Ok(());
            }
            let negotiated = self.ready().await?;
            // No offer of ours is in flight (the lock): an alias means the
            // peer negotiated it.
            if negotiated.send_alias(&id).is_none() {
                let Some(peer_offer) = negotiated.peer_offers.iter().find(|offer| offer.id == id && offer.handles)
                else {
                    return Err(Error::NotNegotiated { intent: name });
                };
                let session = self.session();
                let offer = IntentOffer::emits(id, peer_offer.name.clone()).with_descriptor_set(descriptor_set());
                // Through the link, a dialed peer's later sessions get it too.
                match &self.inner.conn {
                    Conn::Link(link) => link.add_intents(vec![offer]),
                    Conn::Session(session) => session.add_intents(vec![offer]),
                }
                .map_err(Error::Refused)?;
                // The control stream is ordered: once the peer answers a request
                // sent after the update, it has applied the update.
                let _ = session.describe(id).await;
                tracing::debug!(peer = %self.inner.id, intent = %id, "offered an intent on first use");
            }
            let mut offered = self.inner.offered.write().unwrap_or_else(|e| e.into_inner());
            if let Err(at) = offered.binary_search(&id) {
                offered.insert(at, id);
            }
            Ok(())
        };
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), ready)
                .await
                .unwrap_or(Err(Error::DeadlineExceeded { intent: name })),
            None => ready.await,
        }
    }

    fn decode_reply<T: Intent>(&self, envelope: Envelope, id: Option<IntentId>) -> Result<(Reply<T>, u64)> {
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
        Ok((Reply::new(envelope.act, message), envelope.message_id))
    }

    /// Tells the peer: sends `message` one way (`INFORM`), reliably and in
    /// order with other tells.
    pub async fn tell<I: Intent>(&self, message: I) -> Result<()> {
        self.tell_with(message, TellOptions::default()).await
    }

    /// Like [`tell`](Self::tell), with an act, conversation and `in_reply_to`.
    pub async fn tell_with<I: Intent>(&self, message: I, options: TellOptions) -> Result<()> {
        self.offer_on_first_use::<I>(None).await?;
        self.tell_payload(I::ID, I::NAME, message.encode_to_vec().into(), options).await
    }

    /// Tells an intent known only by id; `payload` is the encoded message.
    pub async fn tell_raw(&self, intent: IntentId, payload: Bytes, options: TellOptions) -> Result<()> {
        self.tell_payload(intent, "a dynamic intent", payload, options).await
    }

    async fn tell_payload(
        &self,
        intent: IntentId,
        name: &'static str,
        payload: Bytes,
        mut options: TellOptions,
    ) -> Result<()> {
        if options.trace.is_none() {
            options.trace = crate::trace::current();
        }
        let len = payload.len();
        let outcome = match &self.inner.conn {
            Conn::Link(link) => link.tell_with(intent, payload, options).await,
            Conn::Session(session) => session.tell_with(intent, payload, options).await,
        };
        match outcome {
            Ok(()) => {
                self.metrics().sent(Counter::TellsSent, len);
                Ok(())
            }
            Err(error) => {
                let error = Error::from_ask(name, error);
                self.metrics().error(error.code());
                Err(error)
            }
        }
    }

    /// Sends `message` as one QUIC datagram: unreliable, unordered, small.
    pub async fn datagram<I: Intent>(&self, message: I) -> Result<()> {
        self.offer_on_first_use::<I>(None).await?;
        let payload: Bytes = message.encode_to_vec().into();
        let len = payload.len();
        let outcome = match &self.inner.conn {
            Conn::Link(link) => link.send_datagram(I::ID, payload).await,
            Conn::Session(session) => session.send_datagram(I::ID, payload).await,
        };
        outcome.map_err(|e| Error::from_ask(I::NAME, e))?;
        self.metrics().sent(Counter::TellsSent, len);
        Ok(())
    }

    /// Sends an intent known only by id as one QUIC datagram (see
    /// [`datagram`](Self::datagram)); `payload` is the encoded message.
    pub async fn datagram_raw(&self, intent: IntentId, payload: Bytes) -> Result<()> {
        let len = payload.len();
        let outcome = match &self.inner.conn {
            Conn::Link(link) => link.send_datagram(intent, payload).await,
            Conn::Session(session) => session.send_datagram(intent, payload).await,
        };
        outcome.map_err(|e| Error::from_ask("a dynamic intent", e))?;
        self.metrics().sent(Counter::TellsSent, len);
        Ok(())
    }

    /// Opens a stream lane with `opening`, whose `.proto` declares what
    /// travels on it ([`Subscription`]): returns a sender of the messages
    /// this side sends after the opening (`()` if none) and a receiver of
    /// the items the peer streams back, in that order (as the handler gets
    /// them). Each direction ends explicitly.
    pub async fn stream<S: Subscription>(
        &self,
        opening: S,
    ) -> Result<(StreamSender<S::Send>, StreamReceiver<S::Item>)> {
        self.stream_with::<S, S::Send, S::Item>(opening).await
    }

    /// Like [`stream`](Self::stream), for an opening intent whose `.proto`
    /// does not declare its stream types: `Send` is what this side sends,
    /// `Item` what the peer streams back (`()` for nothing that way).
    pub async fn stream_with<I, Send, Item>(&self, opening: I) -> Result<(StreamSender<Send>, StreamReceiver<Item>)>
    where
        I: Intent,
        Send: prost::Message,
        Item: prost::Message + Default,
    {
        self.offer_on_first_use::<I>(None).await?;
        let payload: Bytes = opening.encode_to_vec().into();
        self.metrics().sent(Counter::StreamsOpened, payload.len());
        let (sender, receiver) = match &self.inner.conn {
            Conn::Link(link) => link.open_stream(I::ID, payload).await,
            Conn::Session(session) => session.open_stream(I::ID, payload).await,
        }
        .map_err(|e| Error::from_stream(I::NAME, e))?;
        Ok((StreamSender::new(sender), StreamReceiver::new(receiver, I::NAME)))
    }

    /// Opens a stream lane of an intent known only by id (a bridge's, whose
    /// types come from a fetched [`Schema`]); `payload` is the encoded
    /// opening. The halves are untyped: send with
    /// [`StreamSender::send_raw`], receive with [`StreamReceiver::recv_raw`].
    /// The intent must have been negotiated (this agent emits it).
    pub async fn stream_raw(&self, intent: IntentId, payload: Bytes) -> Result<(StreamSender<()>, StreamReceiver<()>)> {
        self.metrics().sent(Counter::StreamsOpened, payload.len());
        let (sender, receiver) = match &self.inner.conn {
            Conn::Link(link) => link.open_stream(intent, payload).await,
            Conn::Session(session) => session.open_stream(intent, payload).await,
        }
        .map_err(|e| Error::from_stream("a dynamic intent", e))?;
        Ok((StreamSender::new(sender), StreamReceiver::new(receiver, "a dynamic intent")))
    }

    /// Fetches the schema of an intent the peer offers, verified against its
    /// id, for decoding messages of a type this agent was not built with.
    pub async fn describe(&self, intent: IntentId) -> Result<Schema> {
        let described = match &self.inner.conn {
            Conn::Link(link) => link.describe(intent).await,
            Conn::Session(session) => session.describe(intent).await,
        };
        let (name, descriptor_set) = described.map_err(Error::Refused)?;
        Schema::new(intent, name, descriptor_set)
    }

    /// Closes the connection normally (`CLOSED`); a dialed peer does not
    /// re-dial after it.
    pub fn close(&self) {
        match &self.inner.conn {
            Conn::Link(link) => link.close("closed by the application"),
            Conn::Session(session) => session.close(tacit_wire::ErrorCode::Closed, "closed by the application"),
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
    pub intent: Option<IntentId>,
    /// The answer's message id.
    pub message_id: u64,
    /// The encoded reply.
    pub payload: Bytes,
    /// The answer's verified receipt, if the peer signed it
    /// ([`AskOptions::sign_reply`]).
    pub receipt: Option<Box<Receipt>>,
}
