//! A session: one QUIC connection with a peer agent, its capability
//! handshake and, after it, the negotiated capabilities.
//!
//! [`Session`] is the application's handle: it wires a connection's parts
//! together at [`start`](Session::start) — the handshake on the control
//! stream (`control.rs`), the sending side of each lane
//! (`ask.rs`, `tell.rs`, `stream.rs`) and the receiving
//! side (`accept.rs`, `serve.rs`) — and hands each part only
//! what it uses.

use std::sync::Arc;

use bytes::Bytes;
use tacit_handshake::{
    Admission, AgentId, HandshakeConfig, Identity, IntentOffer, Lane, Lanes, Negotiated, Refusal, Role,
};
use tacit_wire::{ErrorCode, IntentId, IntentRef};

use crate::ask::{AskError, AskLane};
use crate::control::{self, Control};
use crate::credit::Held;
use crate::dedup::Dedup;
use crate::drain::Drain;
use crate::error::{SessionError, connection_error};
use crate::fast::{Slots, WaitSlots};
use crate::frames::FrameReader;
use crate::ids::MessageIds;
use crate::incoming::{Answering, Incoming};
use crate::options::{AskOptions, TellOptions};
use crate::queue::IncomingQueue;
use crate::serve::{Receiving, serve_datagrams};
use crate::stream::{FrameReceiver, FrameSender, StreamError};
use crate::tell::TellLane;

/// Incoming asks and other work queued for the application at most.
const INCOMING_QUEUE: usize = 1024;

/// What a session's handles share: the connection, the handshake, and the
/// sending side of each lane. The receiving side lives in [`Receiving`],
/// which the accepted streams' tasks hold; neither reaches into the other.
#[derive(Debug)]
struct Inner {
    connection: quinn::Connection,
    peer: AgentId,
    /// This endpoint's identity, for signed asks and tells.
    identity: Arc<Identity>,
    role: Role,
    control: Arc<Control>,
    ids: Arc<MessageIds>,
    asks: AskLane,
    /// Asks this agent may have in flight to the peer: the negotiated
    /// `max_concurrent_asks`, so askers wait instead of being refused.
    outgoing_asks: std::sync::OnceLock<WaitSlots>,
    tells: TellLane,
    receiving: Arc<Receiving>,
}

/// What every session of an endpoint shares.
#[derive(Debug, Clone)]
pub(crate) struct SessionContext {
    /// The capability handshake configuration.
    pub(crate) handshake: Arc<HandshakeConfig>,
    /// The idempotent-retry window.
    pub(crate) dedup: Arc<Dedup>,
    /// The graceful-shutdown state.
    pub(crate) drain: Arc<Drain>,
    /// Streams the peer may open per second.
    pub(crate) max_stream_rate: u32,
    /// Streams the peer may have open at once, of each direction.
    pub(crate) max_concurrent_streams: u32,
    /// The peer's asks in flight, over all its connections.
    pub(crate) incoming_asks: Arc<Slots>,
    /// The endpoint's trust store, if credentials are checked.
    pub(crate) trust: Option<Arc<std::sync::RwLock<tacit_handshake::credential::TrustStore>>>,
    /// Changes when a revocation list is applied.
    pub(crate) revocations: tokio::sync::watch::Receiver<()>,
    /// This endpoint's identity.
    pub(crate) identity: Arc<Identity>,
}

/// A session with a peer agent. Cheap to clone; all clones share it. When
/// the last clone is dropped the connection is closed (code 0), as with a
/// quinn `Connection`: the session's own tasks do not keep it open.
#[derive(Debug, Clone)]
pub struct Session {
    inner: Arc<Inner>,
    _close_on_drop: Arc<CloseOnDrop>,
}

/// Closes the connection when the application holds no session handle any more.
#[derive(Debug)]
struct CloseOnDrop(quinn::Connection);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close(quinn::VarInt::from_u32(ErrorCode::Closed as u32), b"session dropped");
    }
}

impl Session {
    /// Starts the control-stream driver for a connected peer.
    pub(crate) fn start(
        connection: quinn::Connection,
        peer: AgentId,
        role: Role,
        context: SessionContext,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    ) -> Self {
        let SessionContext {
            handshake,
            dedup,
            drain,
            max_stream_rate,
            max_concurrent_streams,
            incoming_asks,
            trust,
            mut revocations,
            identity,
        } = context;
        let (control, publisher) = Control::new(role, handshake, peer);
        let ids = Arc::new(MessageIds::new());
        let receiving = Arc::new(Receiving {
            control: control.clone(),
            ids: ids.clone(),
            answering: Arc::new(Answering { peer, dedup, slots: incoming_asks, drain, identity: identity.clone() }),
            queue: IncomingQueue::new(INCOMING_QUEUE),
        });
        tokio::spawn(control::drive(control.clone(), publisher, connection.clone(), send, recv));
        crate::accept::spawn(&connection, &receiving, max_stream_rate, max_concurrent_streams);
        tokio::spawn(serve_datagrams(receiving.clone(), connection.clone()));
        // Ends `next_incoming` once the connection closes, so that it does
        // not have to watch the connection on every call.
        let weak = Arc::downgrade(&receiving);
        let closing = connection.clone();
        tokio::spawn(async move {
            closing.closed().await;
            if let Some(receiving) = weak.upgrade() {
                receiving.queue.end();
            }
        });
        // Rule `revoke.live`: when a list is applied, a session whose peer
        // presented a credential now revoked is closed at once.
        if let Some(trust) = trust {
            let (control, connection) = (control.clone(), connection.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        changed = revocations.changed() => if changed.is_err() { return },
                        _ = connection.closed() => return,
                    }
                    let Some(negotiated) = control.negotiated() else { continue };
                    let store = trust.read().unwrap_or_else(|e| e.into_inner());
                    if let Some(revoked) =
                        negotiated.peer_credentials.iter().find(|c| store.is_revoked(&c.org, c.serial))
                    {
                        let reason =
                            format!("credential {} of organisation {} was revoked", revoked.serial, revoked.org);
                        connection
                            .close(quinn::VarInt::from_u32(ErrorCode::CredentialRevoked as u32), reason.as_bytes());
                        return;
                    }
                }
            });
        }
        let close_on_drop = Arc::new(CloseOnDrop(connection.clone()));
        let inner = Arc::new(Inner {
            connection,
            peer,
            identity,
            role,
            control,
            asks: AskLane::new(ids.clone()),
            ids,
            outgoing_asks: std::sync::OnceLock::new(),
            tells: TellLane::default(),
            receiving,
        });
        Self { inner, _close_on_drop: close_on_drop }
    }

    /// Signs `envelope` for the peer ([receipt.sign]): the full `intent`
    /// whatever reference travels, the time now.
    fn sign(&self, intent: IntentId, envelope: &mut tacit_wire::Envelope) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        tacit_handshake::sign_envelope(&self.inner.identity, self.inner.peer, intent, envelope, now);
    }

    /// Tells the peer: sends `payload` (an encoded `intent`) one way, as
    /// `INFORM`, reliably and in order with other tells. Returns once queued;
    /// waits while 256 tells are queued, so a slow peer slows the teller down.
    pub async fn tell(&self, intent: IntentId, payload: Bytes) -> Result<(), AskError> {
        self.tell_with(intent, payload, TellOptions::default()).await
    }

    /// Like [`tell`](Self::tell), with options: act (e.g. `REJECT` in a
    /// contract net), conversation and the message it answers.
    pub async fn tell_with(&self, intent: IntentId, payload: Bytes, options: TellOptions) -> Result<(), AskError> {
        let (mut envelope, max_frame_len) = self.one_way(intent, Lane::Tell, payload).await?;
        envelope.act = options.act;
        envelope.conversation_id = options.conversation;
        envelope.in_reply_to = options.in_reply_to;
        envelope.trace = options.trace;
        if options.signed {
            self.sign(intent, &mut envelope);
        }
        self.inner.tells.tell(&self.inner.connection, &envelope, max_frame_len).await
    }

    /// Opens a stream lane: sends `payload` (an encoded `intent`) as the
    /// opening `SUBSCRIBE`, then many messages each way, each side ending its
    /// direction explicitly ([`FrameSender::finish`]).
    pub async fn open_stream(
        &self,
        intent: IntentId,
        payload: Bytes,
    ) -> Result<(FrameSender, FrameReceiver), StreamError> {
        let negotiated = self.inner.control.ready().await.map_err(|e| StreamError::ConnectionLost(e.to_string()))?;
        let alias = negotiated.send_alias_on(&intent, Lane::Stream).map_err(|offered| {
            if offered.is_empty() {
                StreamError::NotNegotiated(intent)
            } else {
                StreamError::WrongLane { intent, offered }
            }
        })?;
        let max = negotiated.limits.max_frame_len as usize;
        let opening_id = self.inner.ids.fresh();
        let envelope =
            tacit_wire::Envelope::new(IntentRef::Alias(alias), tacit_wire::Act::Subscribe, opening_id, payload);
        if envelope.encoded_len() > max {
            return Err(StreamError::TooLarge { len: envelope.encoded_len(), max });
        }
        let (send, recv) =
            self.inner.connection.open_bi().await.map_err(|e| StreamError::ConnectionLost(e.to_string()))?;
        let intent = IntentRef::Alias(alias);
        let sender = FrameSender::start(
            send,
            Some((&envelope, max)),
            intent,
            opening_id,
            opening_id.wrapping_add(1),
            max,
            Held::none(),
        )?;
        let reader = FrameReader::new(self.inner.control.local_max_frame_len(), bytes::BytesMut::new());
        let mut receiver = FrameReceiver::new(recv, reader, Held::none());
        receiver.pair_with(&sender);
        Ok((sender, receiver))
    }

    /// Sends `payload` (an encoded `intent`) as one QUIC datagram:
    /// unreliable, unordered, for small messages (presence, progress).
    pub async fn send_datagram(&self, intent: IntentId, payload: Bytes) -> Result<(), AskError> {
        let (envelope, _) = self.one_way(intent, Lane::Datagram, payload).await?;
        let bytes = envelope.encode_to_bytes();
        // [dgram.unsupported]: a peer that did not advertise datagrams gets none.
        let max = self.inner.connection.max_datagram_size().ok_or(AskError::DatagramsUnsupported)?;
        if bytes.len() > max {
            return Err(AskError::TooLarge { len: bytes.len(), max });
        }
        self.inner.connection.send_datagram(bytes).map_err(|e| match e {
            quinn::SendDatagramError::UnsupportedByPeer | quinn::SendDatagramError::Disabled => {
                AskError::DatagramsUnsupported
            }
            quinn::SendDatagramError::TooLarge => AskError::TooLarge { len: 0, max },
            other => AskError::NotSent(SessionError::ConnectionLost(other.to_string())),
        })
    }

    /// Builds a one-way envelope once the handshake is done.
    async fn one_way(
        &self,
        intent: IntentId,
        lane: Lane,
        payload: Bytes,
    ) -> Result<(tacit_wire::Envelope, usize), AskError> {
        let negotiated = self.inner.control.ready().await.map_err(AskError::NotSent)?;
        let alias = negotiated.send_alias_on(&intent, lane).map_err(|offered| not_on_lane(intent, lane, offered))?;
        let envelope = tacit_wire::Envelope::new(
            IntentRef::Alias(alias),
            tacit_wire::Act::Inform,
            self.inner.ids.fresh(),
            payload,
        );
        Ok((envelope, negotiated.limits.max_frame_len as usize))
    }

    /// Asks the peer: sends `payload` (an encoded `intent`) as a `REQUEST`
    /// and waits for the one answer.
    ///
    /// Works right after [`Endpoint::connect`](crate::Endpoint::connect):
    /// asks made during the capability handshake are pipelined.
    pub async fn ask(&self, intent: IntentId, payload: Bytes) -> Result<tacit_wire::Envelope, AskError> {
        self.ask_with(intent, payload, AskOptions::default()).await
    }

    /// Like [`ask`](Self::ask), with options: act, message id (for idempotent
    /// retries), conversation, deadline.
    pub async fn ask_with(
        &self,
        intent: IntentId,
        payload: Bytes,
        options: AskOptions,
    ) -> Result<tacit_wire::Envelope, AskError> {
        let inner = &self.inner;
        let control = &inner.control;
        let negotiated = match (inner.role, control.negotiated()) {
            (_, Some(negotiated)) => Some(negotiated),
            // The dialer may pipeline asks behind its Hello, within the bound.
            (Role::Dialer, None) => match control.admit() {
                Admission::Proceed => control.negotiated(),
                Admission::Hold => Some(control.ready().await.map_err(AskError::NotSent)?),
                Admission::Refuse(refusal) => {
                    return Err(AskError::NotSent(SessionError::Refused { refusal, by_peer: false }));
                }
            },
            (Role::Acceptor, None) => Some(control.ready().await.map_err(AskError::NotSent)?),
        };
        let (intent_ref, max_frame_len) = match &negotiated {
            Some(negotiated) => match negotiated.send_alias_on(&intent, Lane::Ask) {
                Ok(alias) => (IntentRef::Alias(alias), negotiated.limits.max_frame_len as usize),
                Err(offered) => return Err(not_on_lane(intent, Lane::Ask, offered)),
            },
            // Before the Welcome: the full id, within this agent's own limit.
            None => (IntentRef::Id(intent), control.local_max_frame_len()),
        };
        // Within the negotiated concurrency: wait for a slot rather than be refused.
        let _slot = match &negotiated {
            Some(negotiated) => {
                let limit = negotiated.limits.max_concurrent_asks as usize;
                Some(inner.outgoing_asks.get_or_init(|| WaitSlots::new(limit)).take().await)
            }
            None => None,
        };
        let message_id = options.message_id.unwrap_or_else(|| inner.ids.fresh());
        let mut envelope = tacit_wire::Envelope::new(intent_ref, options.act, message_id, payload);
        envelope.conversation_id = options.conversation;
        envelope.in_reply_to = options.in_reply_to;
        envelope.trace = options.trace;
        envelope.idempotent = options.idempotent;
        envelope.sign_reply = options.sign_reply;
        envelope.deadline_micros = options.deadline.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        if options.signed {
            self.sign(intent, &mut envelope);
        }
        inner
            .asks
            .ask(&inner.connection, envelope, max_frame_len, control.local_max_frame_len(), options.deadline)
            .await
    }

    /// The next ask (or other work) from the peer; `None` once the session
    /// has ended.
    pub async fn next_incoming(&self) -> Option<Incoming> {
        // After the connection has closed: what is still queued, then `None`.
        self.inner.receiving.queue.pop().await
    }

    /// A handle that does not keep the session open: the connection closes
    /// when the last [`Session`] is dropped even while a [`WeakSession`]
    /// waits in [`next_incoming`](WeakSession::next_incoming). For serving
    /// a session one dialed without owning it.
    pub fn downgrade(&self) -> WeakSession {
        WeakSession { inner: self.inner.clone(), close_on_drop: Arc::downgrade(&self._close_on_drop) }
    }
}

/// A session handle that does not keep the connection open ([`Session::downgrade`]).
#[derive(Debug, Clone)]
pub struct WeakSession {
    inner: Arc<Inner>,
    close_on_drop: std::sync::Weak<CloseOnDrop>,
}

impl WeakSession {
    /// The session, if some [`Session`] handle still holds it open.
    pub fn upgrade(&self) -> Option<Session> {
        let close_on_drop = self.close_on_drop.upgrade()?;
        Some(Session { inner: self.inner.clone(), _close_on_drop: close_on_drop })
    }

    /// Like [`Session::next_incoming`]; `None` once the session has ended.
    pub async fn next_incoming(&self) -> Option<Incoming> {
        // After the connection has closed: what is still queued, then `None`.
        self.inner.receiving.queue.pop().await
    }
}

impl Session {
    /// The peer's AgentId, from its TLS certificate.
    pub fn peer_id(&self) -> AgentId {
        self.inner.peer
    }

    /// Whether this side dialed or accepted.
    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// The peer's address.
    pub fn remote_address(&self) -> std::net::SocketAddr {
        self.inner.connection.remote_address()
    }

    /// Waits for the capability handshake and returns what was negotiated
    /// (the peer's card, intents, limits, aliases).
    pub async fn ready(&self) -> Result<Arc<Negotiated>, SessionError> {
        self.inner.control.ready().await
    }

    /// What is negotiated now, if the handshake has finished.
    pub fn negotiated(&self) -> Option<Arc<Negotiated>> {
        self.inner.control.negotiated()
    }

    /// Waits until what is negotiated is no longer `seen` — a capability
    /// update, by either side, added intents — and returns what is now;
    /// `None` once the session has ended.
    pub async fn negotiated_after(&self, seen: &Arc<Negotiated>) -> Option<Arc<Negotiated>> {
        self.inner.control.negotiated_after(seen).await
    }

    /// The peer's credentials verified in the handshake (empty before it
    /// ends, when the peer presented none, or when this endpoint has no
    /// trust store).
    pub fn peer_credentials(&self) -> Vec<tacit_handshake::credential::VerifiedCredential> {
        self.negotiated().map(|negotiated| negotiated.peer_credentials.clone()).unwrap_or_default()
    }

    /// Tells the peer this agent now also offers `offers`.
    pub fn add_intents(&self, offers: Vec<IntentOffer>) -> Result<(), Refusal> {
        self.inner.control.add_intents(offers)
    }

    /// Fetches the schema of an intent the peer offers: its fully qualified
    /// name and an encoded `FileDescriptorSet`, verified to hash to `intent_id`.
    pub async fn describe(&self, intent_id: IntentId) -> Result<(String, Bytes), Refusal> {
        self.inner.control.describe(intent_id).await
    }

    /// Closes the session with `code`, telling the peer `reason`.
    pub fn close(&self, code: ErrorCode, reason: &str) {
        self.inner.connection.close(quinn::VarInt::from_u32(code as u32), reason.as_bytes());
    }

    /// Waits until the session ends and says why.
    pub async fn closed(&self) -> SessionError {
        connection_error(self.inner.connection.closed().await)
    }

    /// The underlying QUIC connection.
    #[doc(hidden)]
    pub fn connection(&self) -> &quinn::Connection {
        &self.inner.connection
    }

    /// The intent an answer names: its alias resolved with what is
    /// negotiated, or its full IntentId as it is (replies travel
    /// un-negotiated, matched by `in_reply_to`).
    pub fn reply_intent(&self, intent: IntentRef) -> Option<IntentId> {
        match intent {
            IntentRef::Id(id) => Some(id),
            IntentRef::Alias(alias) => {
                self.negotiated().and_then(|negotiated| negotiated.resolve_alias(alias).map(|intent| intent.id))
            }
        }
    }

    /// Whether `self` and `other` are handles of the same session.
    pub(crate) fn same_as(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether the session has ended (closed by either side or lost).
    pub fn is_closed(&self) -> bool {
        self.inner.connection.close_reason().is_some()
    }

    /// A fresh message id from this session's sequence: use it as
    /// [`AskOptions::message_id`] to be able to retry an ask idempotently.
    pub fn next_message_id(&self) -> u64 {
        self.inner.ids.fresh()
    }
}
/// Why an intent may not be sent on `lane`: not negotiated for sending at
/// all (`offered` empty), or the peer takes it on other lanes only
/// (PROTOCOL.md `hs.lanes-send`).
fn not_on_lane(intent: IntentId, lane: Lane, offered: Lanes) -> AskError {
    if offered.is_empty() { AskError::NotNegotiated(intent) } else { AskError::WrongLane { intent, lane, offered } }
}
