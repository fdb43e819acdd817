//! A session: one QUIC connection with a peer agent, its capability
//! handshake and, after it, the negotiated capabilities.
//!
//! The control stream is driven by a task that owns the sans-IO
//! [`Handshake`] machine's I/O: it feeds the machine what the peer sends,
//! writes what the machine transmits, runs its timer and publishes its
//! events. The machine itself sits behind a mutex that is never held across
//! an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tacit_handshake::{Admission, AgentId, Event, Handshake, HandshakeConfig, IntentOffer, Negotiated, Refusal, Role};
use tacit_wire::{ErrorCode, IntentId, IntentRef};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::ask::{AskError, AskLane, stream_kind};
use crate::credit::{Dir, Held, StreamCredit};
use crate::dedup::Dedup;
use crate::drain::Drain;
use crate::error::SessionError;
use crate::incoming::{Incoming, serve_ask_stream, serve_datagrams, serve_stream_lane, serve_tell_stream};
use crate::options::{AskOptions, TellOptions};
use crate::queue::IncomingQueue;
use crate::stream::{FrameReceiver, FrameSender, StreamError};

/// Incoming asks and other work queued for the application at most.
const INCOMING_QUEUE: usize = 1024;

/// Where a session's handshake stands.
#[derive(Debug, Clone)]
enum State {
    Handshaking,
    Ready(Arc<Negotiated>),
    Failed(SessionError),
}

type SchemaWaiters = HashMap<IntentId, Vec<oneshot::Sender<Result<(String, Bytes), Refusal>>>>;

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) connection: quinn::Connection,
    peer: AgentId,
    role: Role,
    config: Arc<HandshakeConfig>,
    machine: Mutex<Handshake>,
    /// Wakes the control driver after the machine was used from outside it.
    wake: Notify,
    state: watch::Receiver<State>,
    schema_waiters: Mutex<SchemaWaiters>,
    asks: AskLane,
    /// Asks this agent may have in flight to the peer: the negotiated
    /// `max_concurrent_asks`, so askers wait instead of being refused.
    outgoing_asks: std::sync::OnceLock<crate::fast::WaitSlots>,
    /// The writer of this agent's tell stream, opened on first use.
    tells: tokio::sync::OnceCell<mpsc::Sender<Bytes>>,
    /// Asks from the peer being handled now, over all its connections;
    /// bounded by this agent's `max_concurrent_asks`.
    pub(crate) incoming_asks: Arc<crate::fast::Slots>,
    /// Work for the application; ended once the connection has closed,
    /// which ends [`next_incoming`](Session::next_incoming).
    pub(crate) incoming: IncomingQueue,
    /// The endpoint's idempotent-retry window.
    pub(crate) dedup: Arc<Dedup>,
    /// The endpoint's shutdown state.
    pub(crate) drain: Arc<Drain>,
}

impl Inner {
    pub(crate) fn peer_id(&self) -> AgentId {
        self.peer
    }

    pub(crate) fn fresh_id(&self) -> u64 {
        self.asks.fresh_id()
    }

    pub(crate) fn admit(&self) -> Admission {
        self.machine.lock().unwrap_or_else(|e| e.into_inner()).admit()
    }

    pub(crate) async fn ready(&self) -> Result<Arc<Negotiated>, SessionError> {
        let mut state = self.state.clone();
        let outcome = state.wait_for(|s| !matches!(s, State::Handshaking)).await;
        match outcome.as_deref() {
            Ok(State::Ready(negotiated)) => Ok(negotiated.clone()),
            Ok(State::Failed(e)) => Err(e.clone()),
            _ => Err(SessionError::ConnectionLost("the session driver stopped".into())),
        }
    }

    pub(crate) fn negotiated(&self) -> Option<Arc<Negotiated>> {
        match &*self.state.borrow() {
            State::Ready(negotiated) => Some(negotiated.clone()),
            _ => None,
        }
    }

    pub(crate) fn local_max_frame_len(&self) -> usize {
        self.config.capabilities().limits.max_frame_len as usize
    }

    pub(crate) fn local_max_concurrent_asks(&self) -> u32 {
        self.config.capabilities().limits.max_concurrent_asks
    }
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
    pub(crate) incoming_asks: Arc<crate::fast::Slots>,
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
        let SessionContext { handshake: config, dedup, drain, max_stream_rate, max_concurrent_streams, incoming_asks } =
            context;
        let now = Instant::now();
        let machine = match role {
            Role::Dialer => Handshake::dialer(config.clone(), now),
            Role::Acceptor => Handshake::acceptor(config.clone(), now),
        };
        let (state_tx, state_rx) = watch::channel(State::Handshaking);
        let inner = Arc::new(Inner {
            connection,
            peer,
            role,
            config,
            machine: Mutex::new(machine),
            wake: Notify::new(),
            state: state_rx,
            schema_waiters: Mutex::new(HashMap::new()),
            asks: AskLane::new(),
            outgoing_asks: std::sync::OnceLock::new(),
            tells: tokio::sync::OnceCell::new(),
            incoming_asks,
            incoming: IncomingQueue::new(INCOMING_QUEUE),
            dedup,
            drain,
        });
        tokio::spawn(drive_control(inner.clone(), send, recv, state_tx));
        let rate = Arc::new(Mutex::new(StreamRate::new(max_stream_rate)));
        tokio::spawn(accept_streams(inner.clone(), rate.clone(), StreamCredit::new(Dir::Bi, max_concurrent_streams)));
        tokio::spawn(accept_uni_streams(inner.clone(), rate, StreamCredit::new(Dir::Uni, max_concurrent_streams)));
        tokio::spawn(serve_datagrams(inner.clone()));
        // Ends `next_incoming` once the connection closes, so that it does
        // not have to watch the connection on every call.
        let weak = Arc::downgrade(&inner);
        let connection = inner.connection.clone();
        tokio::spawn(async move {
            connection.closed().await;
            if let Some(inner) = weak.upgrade() {
                inner.incoming.end();
            }
        });
        let close_on_drop = Arc::new(CloseOnDrop(inner.connection.clone()));
        Self { inner, _close_on_drop: close_on_drop }
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
        let (mut envelope, max_frame_len) = self.one_way(intent, payload).await?;
        envelope.act = options.act;
        envelope.conversation_id = options.conversation;
        envelope.in_reply_to = options.in_reply_to;
        envelope.trace = options.trace;
        let frame = tacit_wire::FrameEncoder::new(max_frame_len)
            .encode_to_bytes(&envelope)
            .map_err(|_| AskError::TooLarge { len: envelope.encoded_len(), max: max_frame_len })?;
        let writer = self
            .inner
            .tells
            .get_or_try_init(|| async {
                let mut send = self.inner.connection.open_uni().await.map_err(connection_error)?;
                let mut kind = BytesMut::new();
                tacit_wire::put_prefix(stream_kind::TELL, &mut kind);
                let (tx, rx) = mpsc::channel(crate::ask::SEND_QUEUE);
                let _ = tx.try_send(kind.freeze());
                tokio::spawn(async move { crate::ask::write_frames(&mut send, rx).await });
                Ok(tx)
            })
            .await
            .map_err(AskError::NotSent)?;
        // Waits while the tell queue is full: a slow peer slows the teller.
        writer
            .send(frame)
            .await
            .map_err(|_| AskError::NotSent(SessionError::ConnectionLost("tell stream closed".into())))
    }

    /// Opens a stream lane: sends `payload` (an encoded `intent`) as the
    /// opening `SUBSCRIBE`, then many messages each way, each side ending its
    /// direction explicitly ([`FrameSender::finish`]).
    pub async fn open_stream(
        &self,
        intent: IntentId,
        payload: Bytes,
    ) -> Result<(FrameSender, FrameReceiver), StreamError> {
        let negotiated = self.inner.ready().await.map_err(|e| StreamError::ConnectionLost(e.to_string()))?;
        let alias = negotiated
            .send_alias(&intent)
            .ok_or(StreamError::Malformed(format!("intent {intent} is not negotiated")))?;
        let max = negotiated.limits.max_frame_len as usize;
        let opening_id = self.inner.fresh_id();
        let envelope =
            tacit_wire::Envelope::new(IntentRef::Alias(alias), tacit_wire::Act::Subscribe, opening_id, payload);
        let opening = crate::stream::opening(&envelope, max)?;
        let (mut send, recv) =
            self.inner.connection.open_bi().await.map_err(|e| StreamError::ConnectionLost(e.to_string()))?;
        send.write_chunk(opening).await.map_err(|e| StreamError::ConnectionLost(e.to_string()))?;
        let sender = FrameSender::new(send, IntentRef::Alias(alias), opening_id, max, Held::none());
        let receiver = FrameReceiver::new(recv, BytesMut::new(), self.inner.local_max_frame_len(), Held::none());
        Ok((sender, receiver))
    }

    /// Sends `payload` (an encoded `intent`) as one QUIC datagram:
    /// unreliable, unordered, for small messages (presence, progress).
    pub async fn send_datagram(&self, intent: IntentId, payload: Bytes) -> Result<(), AskError> {
        let (envelope, _) = self.one_way(intent, payload).await?;
        let bytes = envelope.encode_to_bytes();
        let max = self.inner.connection.max_datagram_size().unwrap_or(0);
        if bytes.len() > max {
            return Err(AskError::TooLarge { len: bytes.len(), max });
        }
        self.inner
            .connection
            .send_datagram(bytes)
            .map_err(|e| AskError::NotSent(SessionError::ConnectionLost(e.to_string())))
    }

    /// Builds a one-way envelope once the handshake is done.
    async fn one_way(&self, intent: IntentId, payload: Bytes) -> Result<(tacit_wire::Envelope, usize), AskError> {
        let negotiated = self.inner.ready().await.map_err(AskError::NotSent)?;
        let alias = negotiated.send_alias(&intent).ok_or(AskError::NotNegotiated(intent))?;
        let envelope =
            tacit_wire::Envelope::new(IntentRef::Alias(alias), tacit_wire::Act::Inform, self.inner.fresh_id(), payload);
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
        let negotiated = match (inner.role, inner.negotiated()) {
            (_, Some(negotiated)) => Some(negotiated),
            // The dialer may pipeline asks behind its Hello, within the bound.
            (Role::Dialer, None) => match inner.admit() {
                Admission::Proceed => inner.negotiated(),
                Admission::Hold => Some(inner.ready().await.map_err(AskError::NotSent)?),
                Admission::Refuse(refusal) => {
                    return Err(AskError::NotSent(SessionError::Refused { refusal, by_peer: false }));
                }
            },
            (Role::Acceptor, None) => Some(inner.ready().await.map_err(AskError::NotSent)?),
        };
        let (intent_ref, max_frame_len) = match &negotiated {
            Some(negotiated) => match negotiated.send_alias(&intent) {
                Some(alias) => (IntentRef::Alias(alias), negotiated.limits.max_frame_len as usize),
                None => return Err(AskError::NotNegotiated(intent)),
            },
            // Before the Welcome: the full id, within this agent's own limit.
            None => (IntentRef::Id(intent), inner.local_max_frame_len()),
        };
        // Within the negotiated concurrency: wait for a slot rather than be refused.
        let _slot = match &negotiated {
            Some(negotiated) => {
                let limit = negotiated.limits.max_concurrent_asks as usize;
                Some(inner.outgoing_asks.get_or_init(|| crate::fast::WaitSlots::new(limit)).take().await)
            }
            None => None,
        };
        let message_id = options.message_id.unwrap_or_else(|| inner.fresh_id());
        let mut envelope = tacit_wire::Envelope::new(intent_ref, options.act, message_id, payload);
        envelope.conversation_id = options.conversation;
        envelope.in_reply_to = options.in_reply_to;
        envelope.trace = options.trace;
        envelope.idempotent = options.idempotent;
        envelope.deadline_micros = options.deadline.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        inner.asks.ask(&inner.connection, envelope, max_frame_len, inner.local_max_frame_len(), options.deadline).await
    }

    /// The next ask (or other work) from the peer; `None` once the session
    /// has ended.
    pub async fn next_incoming(&self) -> Option<Incoming> {
        self.inner.next_incoming().await
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
        self.inner.next_incoming().await
    }
}

impl Inner {
    async fn next_incoming(&self) -> Option<Incoming> {
        // After the connection has closed: what is still queued, then `None`.
        self.incoming.pop().await
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
        self.inner.ready().await
    }

    /// What is negotiated now, if the handshake has finished.
    pub fn negotiated(&self) -> Option<Arc<Negotiated>> {
        self.inner.negotiated()
    }

    /// Tells the peer this agent now also offers `offers`.
    pub fn add_intents(&self, offers: Vec<IntentOffer>) -> Result<(), Refusal> {
        let result = self.machine().add_intents(offers);
        self.inner.wake.notify_one();
        result
    }

    /// Fetches the schema of an intent the peer offers: its fully qualified
    /// name and an encoded `FileDescriptorSet`, verified to hash to `intent_id`.
    pub async fn describe(&self, intent_id: IntentId) -> Result<(String, Bytes), Refusal> {
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = self.inner.schema_waiters.lock().unwrap_or_else(|e| e.into_inner());
            // The driver marks the session failed before it fails the waiters
            // (under this lock), so a request after that is answered here.
            if matches!(*self.inner.state.borrow(), State::Failed(_)) {
                return Err(Refusal::new(ErrorCode::ControlStreamClosed, "the session ended"));
            }
            self.machine().request_schema(intent_id)?;
            waiters.entry(intent_id).or_default().push(tx);
        }
        self.inner.wake.notify_one();
        rx.await.unwrap_or_else(|_| Err(Refusal::new(ErrorCode::ControlStreamClosed, "the session ended")))
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
        self.inner.fresh_id()
    }

    fn machine(&self) -> MutexGuard<'_, Handshake> {
        self.inner.machine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Maps how a connection ended to a session error: `CLOSED` (or 0, from
/// older peers) is a normal close, `SHUTDOWN` a shutdown, any other Tacit
/// code a refusal by the peer.
pub(crate) fn connection_error(error: quinn::ConnectionError) -> SessionError {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            let code = u32::try_from(close.error_code.into_inner())
                .ok()
                .and_then(|code| ErrorCode::try_from(code as i32).ok())
                .unwrap_or(ErrorCode::Unspecified);
            let reason = String::from_utf8_lossy(&close.reason).into_owned();
            match code {
                ErrorCode::Closed | ErrorCode::Unspecified => SessionError::Closed { by_peer: true, reason },
                ErrorCode::Shutdown => SessionError::Shutdown(reason),
                code => SessionError::Refused { refusal: Refusal::new(code, reason), by_peer: true },
            }
        }
        quinn::ConnectionError::LocallyClosed => {
            SessionError::Closed { by_peer: false, reason: "closed by this agent".into() }
        }
        other => SessionError::ConnectionLost(other.to_string()),
    }
}

/// Runs the control stream until the session fails or the connection ends.
async fn drive_control(
    inner: Arc<Inner>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    state: watch::Sender<State>,
) {
    loop {
        let (frames, events, deadline) = {
            let mut machine = inner.machine.lock().unwrap_or_else(|e| e.into_inner());
            let frames: Vec<Bytes> = std::iter::from_fn(|| machine.poll_transmit()).collect();
            let events: Vec<Event> = std::iter::from_fn(|| machine.poll_event()).collect();
            (frames, events, machine.poll_timeout())
        };
        for frame in frames {
            if let Err(e) = send.write_chunk(frame).await {
                tracing::debug!(peer = %inner.peer.short(), "control stream write failed: {e}");
            }
        }
        for event in events {
            match event {
                Event::Established(negotiated) | Event::Updated(negotiated) => {
                    state.send_replace(State::Ready(Arc::new(negotiated)));
                }
                Event::Failed { refusal, by_peer } => {
                    if !by_peer {
                        let _ = send.finish();
                    }
                    inner.connection.close(quinn::VarInt::from_u32(refusal.code as u32), refusal.reason.as_bytes());
                    state.send_replace(State::Failed(SessionError::Refused { refusal, by_peer }));
                    fail_schema_waiters(&inner);
                    return;
                }
                Event::SchemaReceived { intent_id, name, descriptor_set } => {
                    resolve_schema(&inner, intent_id, Ok((name, descriptor_set)));
                }
                Event::SchemaFailed { intent_id, refusal } => resolve_schema(&inner, intent_id, Err(refusal)),
                _ => {}
            }
        }
        let sleep = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            chunk = recv.read_chunk(64 * 1024, true) => {
                let mut machine = inner.machine.lock().unwrap_or_else(|e| e.into_inner());
                match chunk {
                    Ok(Some(chunk)) => machine.handle_data(&chunk.bytes, Instant::now()),
                    Ok(None) => machine.handle_stream_end(Instant::now()),
                    Err(e) => {
                        drop(machine);
                        let error = match e {
                            quinn::ReadError::ConnectionLost(e) => connection_error(e),
                            other => SessionError::ConnectionLost(other.to_string()),
                        };
                        state.send_replace(State::Failed(error));
                        fail_schema_waiters(&inner);
                        return;
                    }
                }
            }
            () = sleep => {
                inner.machine.lock().unwrap_or_else(|e| e.into_inner()).handle_timeout(Instant::now());
            }
            () = inner.wake.notified() => {}
        }
    }
}

fn resolve_schema(inner: &Inner, intent_id: IntentId, result: Result<(String, Bytes), Refusal>) {
    let waiters = inner.schema_waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&intent_id);
    for waiter in waiters.into_iter().flatten() {
        let _ = waiter.send(result.clone());
    }
}

fn fail_schema_waiters(inner: &Inner) {
    let waiters = std::mem::take(&mut *inner.schema_waiters.lock().unwrap_or_else(|e| e.into_inner()));
    for waiter in waiters.into_values().flatten() {
        let _ = waiter.send(Err(Refusal::new(ErrorCode::ControlStreamClosed, "the session ended")));
    }
}

/// Counts the streams a peer opens in one-second windows.
#[derive(Debug)]
struct StreamRate {
    limit: u32,
    window_start: tokio::time::Instant,
    opened: u32,
}

impl StreamRate {
    fn new(limit: u32) -> Self {
        Self { limit, window_start: tokio::time::Instant::now(), opened: 0 }
    }

    /// Counts one stream; false if the peer is over its rate.
    fn allow(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if now.duration_since(self.window_start) >= std::time::Duration::from_secs(1) {
            self.window_start = now;
            self.opened = 0;
        }
        self.opened = self.opened.saturating_add(1);
        self.opened <= self.limit
    }
}

/// Closes the connection of a peer that opens streams too fast.
fn check_rate(inner: &Inner, rate: &Mutex<StreamRate>) -> bool {
    if rate.lock().unwrap_or_else(|e| e.into_inner()).allow() {
        return true;
    }
    let code = quinn::VarInt::from_u32(ErrorCode::StreamRateExceeded as u32);
    inner.connection.close(code, b"streams opened too fast");
    false
}

/// Accepts the streams the peer opens and serves each by its kind.
/// Each is counted as open, for the stream credit, while this side holds it.
async fn accept_streams(inner: Arc<Inner>, rate: Arc<Mutex<StreamRate>>, mut credit: StreamCredit) {
    while let Ok((send, recv)) = inner.connection.accept_bi().await {
        if !check_rate(&inner, &rate) {
            return;
        }
        let held = credit.accepted_bi(&inner.connection);
        tokio::spawn(serve_stream(inner.clone(), send, recv, held));
    }
}

/// Accepts the unidirectional streams the peer opens.
async fn accept_uni_streams(inner: Arc<Inner>, rate: Arc<Mutex<StreamRate>>, mut credit: StreamCredit) {
    while let Ok(mut recv) = inner.connection.accept_uni().await {
        if !check_rate(&inner, &rate) {
            return;
        }
        let held = credit.accepted_uni(&inner.connection);
        let inner = inner.clone();
        tokio::spawn(async move {
            let _held = held;
            let Some((kind, buffer)) = read_stream_kind(&mut recv).await else { return };
            if kind == stream_kind::TELL {
                serve_tell_stream(inner, recv, buffer).await;
            } else {
                let _ = recv.stop(quinn::VarInt::from_u32(ErrorCode::InvalidStreamKind as u32));
            }
        });
    }
}

/// Reads a stream's kind: its first varint. `None` if the stream ends first
/// or the varint is malformed.
async fn read_stream_kind(recv: &mut quinn::RecvStream) -> Option<(u64, BytesMut)> {
    let mut buffer = BytesMut::new();
    loop {
        if let Some(kind) = read_varint(&mut buffer) {
            return Some((kind, buffer));
        }
        if buffer.len() >= 10 {
            let _ = recv.stop(quinn::VarInt::from_u32(ErrorCode::VarintOverlong as u32));
            return None;
        }
        match recv.read_chunk(16, true).await {
            Ok(Some(chunk)) => buffer.extend_from_slice(&chunk.bytes),
            _ => return None,
        }
    }
}

/// Reads a stream's kind (its first varint) and hands it to its lane.
async fn serve_stream(inner: Arc<Inner>, mut send: quinn::SendStream, mut recv: quinn::RecvStream, held: (Held, Held)) {
    let Some((kind, buffer)) = read_stream_kind(&mut recv).await else {
        let _ = send.reset(quinn::VarInt::from_u32(ErrorCode::InvalidStreamKind as u32));
        return;
    };
    match Some(kind) {
        Some(stream_kind::ASK) => serve_ask_stream(inner, send, recv, buffer, held).await,
        Some(stream_kind::STREAM) => serve_stream_lane(inner, send, recv, buffer, held).await,
        _ => {
            let code = quinn::VarInt::from_u32(ErrorCode::InvalidStreamKind as u32);
            let _ = recv.stop(code);
            let _ = send.reset(code);
        }
    }
}

/// Takes a varint off the front of `buffer`.
fn read_varint(buffer: &mut BytesMut) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in buffer.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let _ = buffer.split_to(i + 1);
            return Some(value);
        }
    }
    None
}
