//! The ask lane: request → exactly one reply.
//!
//! Mapping (see docs/PROTOCOL.md, "Streams"): each side sends its asks on one
//! long-lived bidirectional *ask stream* it opens on first use; the peer
//! answers on the same stream, matching replies to requests by
//! `in_reply_to`. Replies may come in any order. A CANCEL envelope withdraws
//! an ask. Frames are batched by one writer task per stream direction, so
//! concurrent asks share packets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tacit_handshake::Refusal;
use tacit_wire::{Act, Envelope, ErrorCode, IntentId, IntentRef, pb};
use tokio::sync::mpsc;

use crate::error::SessionError;
use crate::fast::FastMap;
use crate::frames::{FrameReader, FrameSink, PushError};

/// The first varint of every stream except the control stream: what it carries.
pub(crate) mod stream_kind {
    /// A long-lived bidirectional stream of asks (requests out, replies back).
    pub(crate) const ASK: u64 = 0x01;
    /// A long-lived unidirectional stream of tells (one-way envelopes).
    pub(crate) const TELL: u64 = 0x02;
    /// A bidirectional stream for one streaming exchange.
    pub(crate) const STREAM: u64 = 0x03;
}

/// Frames the writer task batches into one write at most.
const MAX_BATCH: usize = 64;
/// Frames an asker or teller may queue ahead of its stream; more wait, so a
/// slow peer slows its senders down instead of growing their memory.
pub(crate) const SEND_QUEUE: usize = 256;

/// A queue of frames for a stream's writer task.
pub(crate) trait FrameQueue: Send {
    /// Waits for at least one frame and moves up to `limit` into `batch`;
    /// 0 once every sender is gone.
    fn next_batch<'a>(&'a mut self, batch: &'a mut Vec<Bytes>, limit: usize)
    -> impl Future<Output = usize> + Send + 'a;
}

impl FrameQueue for mpsc::Receiver<Bytes> {
    fn next_batch<'a>(
        &'a mut self,
        batch: &'a mut Vec<Bytes>,
        limit: usize,
    ) -> impl Future<Output = usize> + Send + 'a {
        self.recv_many(batch, limit)
    }
}

impl FrameQueue for mpsc::UnboundedReceiver<Bytes> {
    fn next_batch<'a>(
        &'a mut self,
        batch: &'a mut Vec<Bytes>,
        limit: usize,
    ) -> impl Future<Output = usize> + Send + 'a {
        self.recv_many(batch, limit)
    }
}

/// How an ask ended, when it did not end in a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// The peer answered with an error act (`REFUSE`, `FAILURE`,
    /// `NOT_UNDERSTOOD`) and a code. The ask reached the peer.
    #[error("the peer answered {act:?}: {refusal}")]
    Remote {
        /// The act of the answer.
        act: Act,
        /// Its code and reason.
        refusal: Refusal,
        /// The answer's encoded `tacit.v1.Refusal`, for the fields beyond
        /// code and reason (a typed detail).
        payload: Bytes,
    },
    /// The intent is not negotiated for sending to this peer; nothing was sent.
    #[error("intent {0} is not negotiated for sending to this peer")]
    NotNegotiated(IntentId),
    /// The ask was not sent: the session failed first. Safe to retry.
    #[error("the ask was not sent: {0}")]
    NotSent(SessionError),
    /// The connection was lost after the ask was sent: it may or may not
    /// have run. Retry with the same message id to run it at most once.
    #[error("outcome unknown, the connection was lost after sending: {0}")]
    Unknown(String),
    /// No reply before the deadline; the peer was told to cancel. The ask may
    /// have run.
    #[error("no reply within the deadline")]
    DeadlineExceeded,
    /// The request is larger than the peer accepts.
    #[error("the request is {len} bytes, more than the peer's limit of {max}")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The negotiated maximum frame size.
        max: usize,
    },
}

/// An ask waiting for its reply: the asker's waker until the reply (or how
/// the ask ended without one) is there. Kept in the map of waiting asks,
/// so an ask costs no allocation of its own (a oneshot channel did).
#[derive(Debug)]
enum Waiter {
    Waiting(Option<Waker>),
    Done(Result<Envelope, AskError>),
}

impl Waiter {
    /// Stores the outcome; the waker to wake once the lock is released.
    fn complete(&mut self, outcome: Result<Envelope, AskError>) -> Option<Waker> {
        match std::mem::replace(self, Waiter::Done(outcome)) {
            Waiter::Waiting(waker) => waker,
            // A second reply to the same ask: keep the first.
            Waiter::Done(first) => {
                *self = Waiter::Done(first);
                None
            }
        }
    }
}

/// Asks waiting for replies, and whether the ask stream has ended (then no
/// new ask may wait on it).
#[derive(Debug, Default)]
struct PendingState {
    waiters: FastMap<u64, Waiter>,
    closed: Option<String>,
}

type Pending = Arc<Mutex<PendingState>>;

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, PendingState> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

/// The asking side of one session: the ask stream this agent opened, and
/// the asks waiting for replies on it.
#[derive(Debug)]
pub(crate) struct AskLane {
    writer: tokio::sync::OnceCell<FrameSink>,
    pending: Pending,
    next_id: AtomicU64,
}

impl AskLane {
    pub(crate) fn new() -> Self {
        // Message ids start at a random point so that ids of a restarted
        // agent do not collide with its earlier ones in a peer's dedup window.
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Self {
            writer: tokio::sync::OnceCell::new(),
            pending: Arc::new(Mutex::new(PendingState::default())),
            next_id: AtomicU64::new(u64::from_le_bytes(seed) | 1),
        }
    }

    pub(crate) fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The writer of this agent's ask stream, opening it on first use.
    async fn writer(
        &self,
        connection: &quinn::Connection,
        local_max_frame_len: usize,
    ) -> Result<&FrameSink, SessionError> {
        self.writer
            .get_or_try_init(|| async {
                let (send, recv) = connection.open_bi().await.map_err(crate::session::connection_error)?;
                let mut kind = BytesMut::new();
                tacit_wire::put_prefix(stream_kind::ASK, &mut kind);
                let (sink, source) = FrameSink::new(&kind);
                tokio::spawn(async move { crate::frames::write_frames(send, source).await });
                tokio::spawn(read_replies(recv, self.pending.clone(), local_max_frame_len));
                Ok(sink)
            })
            .await
    }

    /// Sends `envelope` and waits for its reply.
    pub(crate) async fn ask(
        &self,
        connection: &quinn::Connection,
        envelope: Envelope,
        max_frame_len: usize,
        local_max_frame_len: usize,
        deadline: Option<Duration>,
    ) -> Result<Envelope, AskError> {
        // (The sink checks the length against `max_frame_len` as it encodes.)
        let writer = self.writer(connection, local_max_frame_len).await.map_err(AskError::NotSent)?;
        let id = envelope.message_id;
        let alone = {
            let mut pending = lock(&self.pending);
            if let Some(reason) = &pending.closed {
                return Err(AskError::NotSent(SessionError::ConnectionLost(reason.clone())));
            }
            pending.waiters.insert(id, Waiter::Waiting(None));
            pending.waiters.len() == 1
        };
        let mut guard = CancelOnDrop { lane: self, writer, envelope: Some(&envelope) };
        // The only ask in flight writes its frame itself; concurrent asks
        // leave theirs to the writer task, which batches them.
        if let Err(e) = writer.send(&envelope, max_frame_len, alone).await {
            guard.disarm();
            lock(&self.pending).waiters.remove(&id);
            return Err(match e {
                PushError::TooLarge => AskError::TooLarge { len: envelope.encoded_len(), max: max_frame_len },
                PushError::Closed => AskError::NotSent(SessionError::ConnectionLost("the ask stream is closed".into())),
            });
        }
        let reply = std::future::poll_fn(|cx| self.poll_reply(id, cx));
        let reply = match deadline {
            None => reply.await,
            Some(deadline) => match tokio::time::timeout(deadline, reply).await {
                Ok(reply) => reply,
                Err(_) => return Err(AskError::DeadlineExceeded),
            },
        };
        guard.disarm();
        reply
    }

    /// The reply to the ask `id` once it is there.
    fn poll_reply(&self, id: u64, cx: &mut Context<'_>) -> Poll<Result<Envelope, AskError>> {
        let mut pending = lock(&self.pending);
        match pending.waiters.get_mut(&id) {
            Some(Waiter::Waiting(waker)) => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Some(Waiter::Done(_)) => match pending.waiters.remove(&id) {
                Some(Waiter::Done(outcome)) => Poll::Ready(outcome),
                _ => Poll::Ready(Err(AskError::Unknown("the ask stream ended".into()))),
            },
            None => Poll::Ready(Err(AskError::Unknown("the ask stream ended".into()))),
        }
    }
}

/// Withdraws an ask whose caller stopped waiting (dropped the future or hit
/// the deadline): forgets it and tells the peer with a CANCEL envelope.
struct CancelOnDrop<'a> {
    lane: &'a AskLane,
    writer: &'a FrameSink,
    envelope: Option<&'a Envelope>,
}

impl CancelOnDrop<'_> {
    fn disarm(&mut self) {
        self.envelope = None;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let Some(request) = self.envelope.take() else { return };
        lock(&self.lane.pending).waiters.remove(&request.message_id);
        let mut cancel = Envelope::new(request.intent, Act::Cancel, self.lane.fresh_id(), Bytes::new());
        cancel.in_reply_to = request.message_id;
        // Best effort: a cancel does not wait for space (it is small, and
        // there is one per ask at most).
        let _ = self.writer.push(&cancel, usize::MAX);
    }
}

/// Writes frames from `rx` to `send`, batching whatever is queued.
pub(crate) async fn write_frames(send: &mut quinn::SendStream, mut rx: impl FrameQueue) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.next_batch(&mut batch, MAX_BATCH).await > 0 {
        if send.write_all_chunks(&mut batch).await.is_err() {
            return;
        }
        batch.clear();
    }
    let _ = send.finish();
}

/// Reads replies on this agent's ask stream and hands each to its ask.
async fn read_replies(mut recv: quinn::RecvStream, pending: Pending, max_frame_len: usize) {
    let mut reader = FrameReader::new(max_frame_len, BytesMut::new());
    let reason = 'read: loop {
        loop {
            match reader.next() {
                Ok(Some(frame)) => deliver_reply(frame, &pending),
                Ok(None) => break,
                Err(e) => {
                    let _ = recv.stop(quinn::VarInt::from_u32(e.code() as u32));
                    break 'read format!("the peer sent a malformed reply: {e}");
                }
            }
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => reader.push(chunk.bytes),
            Ok(None) => break "the peer closed the ask stream".to_owned(),
            Err(e) => break e.to_string(),
        }
    };
    let wakers: Vec<Waker> = {
        let mut pending = lock(&pending);
        pending.closed = Some(reason.clone());
        pending
            .waiters
            .values_mut()
            .filter_map(|waiter| waiter.complete(Err(AskError::Unknown(reason.clone()))))
            .collect()
    };
    for waker in wakers {
        waker.wake();
    }
}

fn deliver_reply(frame: Bytes, pending: &Pending) {
    let Ok(reply) = Envelope::decode(frame) else { return };
    let id = reply.in_reply_to;
    let result = match reply.act {
        Act::Refuse | Act::Failure | Act::NotUnderstood => {
            let refusal = pb::Refusal::decode(reply.payload.clone()).unwrap_or_default();
            let code = ErrorCode::try_from(refusal.code).unwrap_or(ErrorCode::Unspecified);
            Err(AskError::Remote {
                act: reply.act,
                refusal: Refusal::new(code, refusal.reason),
                payload: reply.payload,
            })
        }
        _ => Ok(reply),
    };
    let waker = lock(pending).waiters.get_mut(&id).and_then(|waiter| waiter.complete(result));
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// An error answer to `request`: `act` with a `Refusal` payload.
pub(crate) fn error_reply(request: &Envelope, act: Act, code: ErrorCode, reason: &str, id: u64) -> Envelope {
    let refusal = pb::Refusal { code: code.into(), reason: reason.to_owned(), ..Default::default() };
    let mut reply = Envelope::new(request.intent, act, id, Bytes::from(refusal.encode_to_vec()));
    reply.in_reply_to = request.message_id;
    reply.conversation_id = request.conversation_id;
    reply
}

/// The intent an envelope refers to, if resolvable with what is negotiated.
pub(crate) fn resolve_intent(negotiated: &tacit_handshake::Negotiated, intent: IntentRef) -> Option<IntentId> {
    match intent {
        IntentRef::Alias(alias) => negotiated.resolve_alias(alias).map(|intent| intent.id),
        IntentRef::Id(id) => negotiated.can_receive(&id).then_some(id),
    }
}
