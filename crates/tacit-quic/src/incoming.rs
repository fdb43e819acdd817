//! What the peer sends that the application handles ([`Incoming`]), and the
//! [`Responder`] that sends an ask's one answer back on the stream the ask
//! came on.

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use bytes::Bytes;
use tacit_handshake::{AgentId, Identity, Negotiated};
use tacit_wire::{Act, Envelope, ErrorCode, IntentId, IntentRef};

use crate::dedup::{AskKey, Dedup};
use crate::drain::Drain;
use crate::fast::{FastMap, Slots};
use crate::frames::FrameSink;
use crate::reply::ReplyTo;
use crate::stream::{FrameReceiver, FrameSender};

/// Something the peer sent that the application handles.
#[derive(Debug)]
#[non_exhaustive]
// Moved once per message through a queue; boxing the ask would cost an
// allocation per message instead.
#[allow(clippy::large_enum_variant)]
pub enum Incoming {
    /// An ask: answer it through its responder.
    Ask(IncomingAsk),
    /// A one-way message (tell), delivered reliably and in order.
    Tell(IncomingMessage),
    /// A one-way message that came as a QUIC datagram: unreliable, unordered.
    Datagram(IncomingMessage),
    /// A stream lane the peer opened.
    Stream(IncomingStream),
}

/// A stream lane the peer opened: its opening message, and both halves.
#[derive(Debug)]
#[non_exhaustive]
pub struct IncomingStream {
    /// The opening envelope (the peer's request).
    pub envelope: Envelope,
    /// The intent of the opening envelope.
    pub intent: IntentId,
    /// Sends this side's messages back.
    pub sender: FrameSender,
    /// Receives the peer's further messages.
    pub receiver: FrameReceiver,
}

/// A one-way message from the peer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IncomingMessage {
    /// The message as it arrived (payload not yet decoded).
    pub envelope: Envelope,
    /// The intent it carries, resolved from its alias or id.
    pub intent: IntentId,
}

/// An ask from the peer, with the means to answer it.
#[derive(Debug)]
pub struct IncomingAsk {
    /// The request as it arrived (payload not yet decoded).
    pub envelope: Envelope,
    /// The intent it carries, resolved from its alias or id.
    pub intent: IntentId,
    /// Answers the ask.
    pub responder: Responder,
}

/// What an answer gives back once sent: the slot of the ask, its place in
/// the graceful-shutdown count, and its entry in the retry window.
#[derive(Debug)]
pub(crate) struct Answering {
    /// The peer, for the retry window's keys.
    pub(crate) peer: AgentId,
    /// The idempotent-retry window.
    pub(crate) dedup: Arc<Dedup>,
    /// The peer's asks in flight, over all its connections.
    pub(crate) slots: Arc<Slots>,
    /// The endpoint's shutdown state.
    pub(crate) drain: Arc<Drain>,
    /// This endpoint's identity, for signed answers.
    pub(crate) identity: Arc<Identity>,
}

/// One ask stream the peer opened, as its asks' responders see it.
#[derive(Debug)]
pub(crate) struct AskStream {
    answering: Arc<Answering>,
    /// Where the answers go.
    writer: FrameSink,
    /// The asks read from this stream and not yet answered, each with the
    /// waker of a handler waiting in [`Responder::cancelled`]. A CANCEL (or
    /// the end of the stream) removes the entry, which is what cancels it.
    running: Mutex<FastMap<u64, Option<Waker>>>,
}

impl AskStream {
    pub(crate) fn new(answering: Arc<Answering>, writer: FrameSink) -> Self {
        Self { answering, writer, running: Mutex::new(FastMap::default()) }
    }

    pub(crate) fn writer(&self) -> &FrameSink {
        &self.writer
    }

    fn running(&self) -> std::sync::MutexGuard<'_, FastMap<u64, Option<Waker>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether every ask read from this stream is answered.
    pub(crate) fn is_idle(&self) -> bool {
        self.running().is_empty()
    }

    /// Answers outside any handler (refusals before one runs).
    pub(crate) fn answer(&self, reply: &Envelope) {
        let _ = self.writer.push(reply, usize::MAX);
    }

    /// Cancels the ask `id`: its handler's [`Responder::cancelled`] resolves.
    pub(crate) fn cancel(&self, id: u64) {
        if let Some(Some(waker)) = self.running().remove(&id) {
            waker.wake();
        }
    }

    /// Cancels every ask still running (the asker closed its side).
    pub(crate) fn cancel_all(&self) {
        let running = std::mem::take(&mut *self.running());
        for waker in running.into_values().flatten() {
            waker.wake();
        }
    }
}

/// Sends the one answer to an ask. Dropping it unanswered answers
/// `FAILURE` with `NO_REPLY`, so the asker is never left waiting.
#[derive(Debug)]
pub struct Responder {
    stream: Arc<AskStream>,
    /// What of the request the answer refers to.
    request: ReplyTo,
    reply_id: u64,
    answered: bool,
    /// Whether the ask is in the endpoint's retry window, to be completed
    /// with the answer.
    in_window: bool,
    /// What the session negotiated, for reply aliases.
    negotiated: Arc<Negotiated>,
    /// Whether the asker asked for a signed answer.
    sign_requested: bool,
    /// Whether the answer is signed.
    sign: bool,
}

impl Responder {
    /// The responder of `request`, which now counts as running on `stream`
    /// (its slot taken and its place in the shutdown count entered).
    pub(crate) fn start(
        stream: Arc<AskStream>,
        request: &Envelope,
        reply_id: u64,
        in_window: bool,
        negotiated: Arc<Negotiated>,
    ) -> Self {
        stream.running().insert(request.message_id, None);
        stream.answering.drain.enter();
        Self {
            stream,
            request: ReplyTo::of(request, Some(&negotiated)),
            reply_id,
            answered: false,
            in_window,
            negotiated,
            sign_requested: request.sign_reply,
            sign: false,
        }
    }

    /// Whether the asker asked for a signed answer (`sign_reply`, rule
    /// `receipt.sign-reply`). The responder signs only once told to
    /// ([`set_signed`](Self::set_signed)), so that an application decides
    /// when a signature is worth its cost.
    pub fn sign_requested(&self) -> bool {
        self.sign_requested
    }

    /// Signs the answer, whatever it is (reply, refusal or failure), with
    /// this endpoint's identity for the asker ([receipt.sign]).
    pub fn set_signed(&mut self, sign: bool) {
        self.sign = sign;
    }

    /// Answers with `INFORM` and the reply intent `intent` encoded in `payload`
    /// (named by its alias when one is negotiated for this direction).
    pub fn reply(self, intent: IntentId, payload: Bytes) {
        let reference = self.negotiated.send_alias(&intent).map_or(IntentRef::Id(intent), IntentRef::Alias);
        self.reply_with(Act::Inform, reference, payload);
    }

    /// Answers with any act and intent reference.
    pub fn reply_with(mut self, act: Act, intent: IntentRef, payload: Bytes) {
        let reply = self.request.answer(act, intent, self.reply_id, payload);
        self.send(reply);
    }

    /// Answers `REFUSE` with a code and reason: the agent will not do it.
    pub fn refuse(mut self, code: ErrorCode, reason: &str) {
        let reply = self.request.error(Act::Refuse, code, reason, self.reply_id);
        self.send(reply);
    }

    /// Answers `FAILURE` with a code and reason: the attempt failed.
    pub fn fail(mut self, code: ErrorCode, reason: &str) {
        let reply = self.request.error(Act::Failure, code, reason, self.reply_id);
        self.send(reply);
    }

    /// Resolves when the asker cancels the ask (or gives up on it).
    pub async fn cancelled(&mut self) {
        if self.answered {
            return std::future::pending().await;
        }
        let id = self.request.message_id();
        std::future::poll_fn(|cx| match self.stream.running().get_mut(&id) {
            Some(waker) => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            None => Poll::Ready(()),
        })
        .await
    }

    /// Whether the asker has cancelled the ask.
    pub fn is_cancelled(&mut self) -> bool {
        !self.answered && !self.stream.running().contains_key(&self.request.message_id())
    }

    fn send(&mut self, mut reply: Envelope) {
        self.answered = true;
        if self.sign {
            self.sign_answer(&mut reply);
        }
        let stream = &*self.stream;
        let id = self.request.message_id();
        let alone = {
            let mut running = stream.running();
            running.remove(&id);
            running.is_empty()
        };
        // The answer to the only ask running on this stream is written at
        // once; answers to concurrent asks are batched by the writer task.
        if alone {
            let _ = stream.writer.push_now(&reply, usize::MAX);
        } else {
            stream.answer(&reply);
        }
        let answering = &*stream.answering;
        if self.in_window {
            self.in_window = false;
            answering.dedup.finish(AskKey { peer: answering.peer, id }, reply);
        }
        answering.slots.give_back();
        answering.drain.leave();
    }
}

impl Responder {
    /// Signs `reply` for the asker; the full IntentId of an aliased reply
    /// is the one this agent sends under that alias.
    fn sign_answer(&self, reply: &mut Envelope) {
        let intent = match reply.intent {
            IntentRef::Id(id) => id,
            IntentRef::Alias(alias) => {
                match self.negotiated.intents.iter().find(|intent| intent.send_alias == Some(alias)) {
                    Some(intent) => intent.id,
                    // Not an alias of this session: nothing a receipt could name.
                    None => return,
                }
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let answering = &*self.stream.answering;
        tacit_handshake::sign_envelope(&answering.identity, answering.peer, intent, reply, now);
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            let reply =
                self.request.error(Act::Failure, ErrorCode::NoReply, "the handler did not reply", self.reply_id);
            self.send(reply);
        }
    }
}
