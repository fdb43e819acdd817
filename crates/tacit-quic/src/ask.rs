//! The ask lane, asking side: request → exactly one reply.
//!
//! Mapping (see docs/PROTOCOL.md, "Streams"): each side sends its asks on one
//! long-lived bidirectional *ask stream* it opens on first use; the peer
//! answers on the same stream, matching replies to requests by
//! `in_reply_to`. Replies may come in any order. A CANCEL envelope withdraws
//! an ask. Frames go through the one frame writer ([`FrameSink`]), so
//! concurrent asks share packets; replies come through the one reader.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tacit_handshake::Refusal;
use tacit_wire::{Act, Envelope, IntentId};

use crate::error::{SessionError, connection_error};
use crate::fast::FastMap;
use crate::frames::{FrameReader, FrameSink, PushError, write_frames};
use crate::ids::MessageIds;
use crate::kind;
use crate::reply;

/// How an ask ended, when it did not end in a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// The peer answered with an error act (`REFUSE`, `FAILURE`,
    /// `NOT_UNDERSTOOD`) and a code. The ask reached the peer.
    #[error("the peer answered {}: {refusal}", act_name(*act))]
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
    /// The peer handles the intent, but not on this lane; nothing was sent.
    #[error("the peer takes intent {intent} on {offered}, not on the {lane} lane")]
    WrongLane {
        /// The intent.
        intent: IntentId,
        /// The lane it was to go on.
        lane: tacit_handshake::Lane,
        /// The lanes the peer offered for it.
        offered: tacit_handshake::Lanes,
    },
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
    /// The peer does not receive datagrams: it did not advertise the QUIC
    /// `max_datagram_frame_size` transport parameter (`[dgram.unsupported]`);
    /// nothing was sent.
    #[error("the peer does not accept datagrams")]
    DatagramsUnsupported,
    /// The request is larger than the peer accepts.
    #[error("the request is {len} bytes, more than the peer's limit of {max}")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The negotiated maximum frame size.
        max: usize,
    },
}

/// An act for people: `REFUSE`, `FAILURE`, ...
fn act_name(act: Act) -> &'static str {
    let name = act.as_str_name();
    name.strip_prefix("ACT_").unwrap_or(name)
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

/// One ask stream this agent opened: its writer, and the asks waiting for
/// replies on it.
#[derive(Debug)]
struct Outgoing {
    writer: FrameSink,
    pending: Pending,
}

impl Outgoing {
    /// Whether new asks can no longer use this stream: the peer stopped it
    /// (or it failed), or its reply direction ended.
    fn is_closed(&self) -> bool {
        self.writer.is_closed() || lock(&self.pending).closed.is_some()
    }
}

/// The asking side of one session: the ask stream this agent uses now,
/// and the asks waiting for replies on it. After a stream error the next
/// ask opens a new ask stream (`[ask.reopen]`); asks already sent on the
/// old one still get the answers that come back on it.
#[derive(Debug)]
pub(crate) struct AskLane {
    current: Mutex<Option<Arc<Outgoing>>>,
    /// Serialises opening a stream, so concurrent asks open one, not many.
    opening: tokio::sync::Mutex<()>,
    ids: Arc<MessageIds>,
}

impl AskLane {
    pub(crate) fn new(ids: Arc<MessageIds>) -> Self {
        Self { current: Mutex::new(None), opening: tokio::sync::Mutex::new(()), ids }
    }

    fn usable(&self) -> Option<Arc<Outgoing>> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().filter(|stream| !stream.is_closed()).cloned()
    }

    /// The ask stream to send on, opening one on first use or after the
    /// last one ended.
    async fn stream(
        &self,
        connection: &quinn::Connection,
        local_max_frame_len: usize,
    ) -> Result<Arc<Outgoing>, SessionError> {
        if let Some(stream) = self.usable() {
            return Ok(stream);
        }
        let _opening = self.opening.lock().await;
        if let Some(stream) = self.usable() {
            return Ok(stream);
        }
        let (send, recv) = connection.open_bi().await.map_err(connection_error)?;
        let (writer, source) = FrameSink::open(send, kind::prefix(kind::ASK));
        let pending: Pending = Arc::new(Mutex::new(PendingState::default()));
        tokio::spawn(write_frames(source));
        tokio::spawn(read_replies(recv, pending.clone(), local_max_frame_len));
        let stream = Arc::new(Outgoing { writer, pending });
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(stream.clone());
        Ok(stream)
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
        let stream = self.stream(connection, local_max_frame_len).await.map_err(AskError::NotSent)?;
        let (writer, pending) = (&stream.writer, &stream.pending);
        let id = envelope.message_id;
        let alone = {
            let mut pending = lock(pending);
            if let Some(reason) = &pending.closed {
                return Err(AskError::NotSent(SessionError::ConnectionLost(reason.clone())));
            }
            pending.waiters.insert(id, Waiter::Waiting(None));
            pending.waiters.len() == 1
        };
        let mut guard = CancelOnDrop { ids: &self.ids, pending, writer, envelope: Some(&envelope) };
        // The only ask in flight writes its frame itself; concurrent asks
        // leave theirs to the writer task, which batches them.
        if let Err(e) = writer.send(&envelope, max_frame_len, alone).await {
            guard.disarm();
            lock(pending).waiters.remove(&id);
            return Err(match e {
                PushError::TooLarge => AskError::TooLarge { len: envelope.encoded_len(), max: max_frame_len },
                PushError::Closed => AskError::NotSent(SessionError::ConnectionLost("the ask stream is closed".into())),
            });
        }
        let reply = std::future::poll_fn(|cx| poll_reply(pending, id, cx));
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
}

/// The reply to the ask `id` once it is there.
fn poll_reply(pending: &Pending, id: u64, cx: &mut Context<'_>) -> Poll<Result<Envelope, AskError>> {
    let mut pending = lock(pending);
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

/// Withdraws an ask whose caller stopped waiting (dropped the future or hit
/// the deadline): forgets it and tells the peer with a CANCEL envelope.
struct CancelOnDrop<'a> {
    ids: &'a MessageIds,
    pending: &'a Pending,
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
        lock(self.pending).waiters.remove(&request.message_id);
        let mut cancel = Envelope::new(request.intent, Act::Cancel, self.ids.fresh(), Bytes::new());
        cancel.in_reply_to = request.message_id;
        // Best effort: a cancel does not wait for space (it is small, and
        // there is one per ask at most).
        let _ = self.writer.push(&cancel, usize::MAX);
    }
}

/// Reads replies on this agent's ask stream and hands each to its ask.
async fn read_replies(mut recv: quinn::RecvStream, pending: Pending, max_frame_len: usize) {
    let mut reader = FrameReader::new(max_frame_len, bytes::BytesMut::new());
    let reason = loop {
        match reader.read(&mut recv).await {
            Ok(Some(frame)) => deliver_reply(frame, &pending),
            Ok(None) => break "the peer closed the ask stream".to_owned(),
            Err(crate::frames::ReadFailure::Frame(e)) => break format!("the peer sent a malformed reply: {e}"),
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
    let result = match reply::refusal_of(&reply) {
        Some(refusal) => Err(AskError::Remote { act: reply.act, refusal, payload: reply.payload.clone() }),
        None => Ok(reply),
    };
    let waker = lock(pending).waiters.get_mut(&id).and_then(|waiter| waiter.complete(result));
    if let Some(waker) = waker {
        waker.wake();
    }
}
