//! The receiving side of the lanes: asks arriving from the peer, each with a
//! [`Responder`] that sends exactly one answer.

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use bytes::{Bytes, BytesMut};
use tacit_handshake::Admission;
use tacit_wire::{Act, ConversationId, Envelope, ErrorCode, IntentId, IntentRef, pb};

use crate::ask::{error_reply, resolve_intent};
use crate::credit::Held;
use crate::dedup::{AskKey, Begin};
use crate::fast::FastMap;
use crate::frames::{FrameReader, FrameSink, write_frames};
use crate::session::Inner;

/// Something the peer sent that the application handles.
#[derive(Debug)]
#[non_exhaustive]
// Moved once per message through a channel; boxing the ask would cost an
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
    pub sender: crate::stream::FrameSender,
    /// Receives the peer's further messages.
    pub receiver: crate::stream::FrameReceiver,
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

/// One ask stream the peer opened, as its asks' responders see it.
#[derive(Debug)]
struct AskStream {
    inner: Arc<Inner>,
    /// Where the answers go.
    writer: FrameSink,
    /// The asks read from this stream and not yet answered, each with the
    /// waker of a handler waiting in [`Responder::cancelled`]. A CANCEL (or
    /// the end of the stream) removes the entry, which is what cancels it.
    running: Mutex<FastMap<u64, Option<Waker>>>,
}

impl AskStream {
    fn running(&self) -> std::sync::MutexGuard<'_, FastMap<u64, Option<Waker>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers outside any handler (refusals before one runs).
    fn answer(&self, reply: &Envelope) {
        let _ = self.writer.push(reply, usize::MAX);
    }

    /// Cancels the ask `id`: its handler's [`Responder::cancelled`] resolves.
    fn cancel(&self, id: u64) {
        if let Some(Some(waker)) = self.running().remove(&id) {
            waker.wake();
        }
    }

    /// Cancels every ask still running (the asker closed its side).
    fn cancel_all(&self) {
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
    /// The request's id, conversation and intent (for error answers).
    message_id: u64,
    conversation_id: ConversationId,
    request_intent: IntentRef,
    reply_id: u64,
    answered: bool,
    /// Whether the ask is in the endpoint's retry window, to be completed
    /// with the answer.
    in_window: bool,
    /// What the session negotiated, for reply aliases.
    negotiated: Option<Arc<tacit_handshake::Negotiated>>,
}

impl Responder {
    /// Answers with `INFORM` and the reply intent `intent` encoded in `payload`
    /// (named by its alias when one is negotiated for this direction).
    pub fn reply(self, intent: IntentId, payload: Bytes) {
        let reference = self.reply_alias(&intent).map_or(IntentRef::Id(intent), IntentRef::Alias);
        self.reply_with(Act::Inform, reference, payload);
    }

    fn reply_alias(&self, intent: &IntentId) -> Option<u32> {
        self.negotiated.as_ref().and_then(|negotiated| negotiated.send_alias(intent))
    }

    /// Answers with any act and intent reference.
    pub fn reply_with(mut self, act: Act, intent: IntentRef, payload: Bytes) {
        let mut reply = Envelope::new(intent, act, self.reply_id, payload);
        reply.in_reply_to = self.message_id;
        reply.conversation_id = self.conversation_id;
        self.send(reply);
    }

    /// Answers `REFUSE` with a code and reason: the agent will not do it.
    pub fn refuse(mut self, code: ErrorCode, reason: &str) {
        let reply = self.error_reply(Act::Refuse, code, reason);
        self.send(reply);
    }

    /// Answers `FAILURE` with a code and reason: the attempt failed.
    pub fn fail(mut self, code: ErrorCode, reason: &str) {
        let reply = self.error_reply(Act::Failure, code, reason);
        self.send(reply);
    }

    fn error_reply(&self, act: Act, code: ErrorCode, reason: &str) -> Envelope {
        let refusal = pb::Refusal { code: code.into(), reason: reason.to_owned(), ..Default::default() };
        let mut reply = Envelope::new(
            self.request_intent,
            act,
            self.reply_id,
            Bytes::from(prost::Message::encode_to_vec(&refusal)),
        );
        reply.in_reply_to = self.message_id;
        reply.conversation_id = self.conversation_id;
        reply
    }

    /// Resolves when the asker cancels the ask (or gives up on it).
    pub async fn cancelled(&mut self) {
        if self.answered {
            return std::future::pending().await;
        }
        std::future::poll_fn(|cx| match self.stream.running().get_mut(&self.message_id) {
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
        !self.answered && !self.stream.running().contains_key(&self.message_id)
    }

    fn send(&mut self, reply: Envelope) {
        self.answered = true;
        let stream = &*self.stream;
        let alone = {
            let mut running = stream.running();
            running.remove(&self.message_id);
            running.is_empty()
        };
        // The answer to the only ask running on this stream is written at
        // once; answers to concurrent asks are batched by the writer task.
        if alone {
            let _ = stream.writer.push_now(&reply, usize::MAX);
        } else {
            stream.answer(&reply);
        }
        if self.in_window {
            self.in_window = false;
            let key = AskKey { peer: stream.inner.peer_id(), id: self.message_id };
            stream.inner.dedup.finish(key, reply);
        }
        stream.inner.incoming_asks.give_back();
        stream.inner.drain.leave();
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            let reply = self.error_reply(Act::Failure, ErrorCode::NoReply, "the handler did not reply");
            self.send(reply);
        }
    }
}

/// Serves one ask stream the peer opened: reads requests, resolves and
/// admits them, hands them to the application, writes the answers back.
pub(crate) async fn serve_ask_stream(
    inner: Arc<Inner>,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    initial: BytesMut,
    (send_held, _recv_held): (Held, Held),
) {
    let (writer, source) = FrameSink::new(&[]);
    // The reply stream counts as busy until its data is acknowledged, so a
    // graceful shutdown does not cut answers off.
    let drain = inner.drain.clone();
    drain.enter();
    tokio::spawn(async move {
        if let Some(send) = write_frames(send, source).await {
            let _ = send.stopped().await;
        }
        drain.leave();
        drop(send_held);
    });
    let stream = Arc::new(AskStream { inner: inner.clone(), writer, running: Mutex::new(FastMap::default()) });
    let mut reader = FrameReader::new(inner.local_max_frame_len(), initial);
    loop {
        loop {
            match reader.next() {
                Ok(Some(frame)) => {
                    if let Err(code) = handle_request(&stream, frame).await {
                        let _ = recv.stop(quinn::VarInt::from_u32(code as u32));
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = recv.stop(quinn::VarInt::from_u32(e.code() as u32));
                    return;
                }
            }
        }
        // Answers the peer does not read back-pressure its asks.
        if !stream.writer.wait_space().await {
            break;
        }
        let draining = inner.drain.is_shutting_down();
        if draining && stream.running().is_empty() {
            // Shutting down and every ask read from this stream is answered:
            // read no more, so the reply stream can finish and be acknowledged.
            let _ = recv.stop(quinn::VarInt::from_u32(ErrorCode::Shutdown as u32));
            return;
        }
        let recheck = async {
            if draining {
                // While draining, look again shortly whether the last ask was answered.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            } else {
                inner.drain.shutdown_begun().await;
            }
        };
        tokio::select! {
            chunk = recv.read_chunk(64 * 1024, true) => match chunk {
                Ok(Some(chunk)) => reader.push(chunk.bytes),
                Ok(None) | Err(_) => break,
            },
            () = recheck => {}
        }
    }
    // The asker closed its side: cancel whatever it still waits for.
    stream.cancel_all();
}

/// Handles one frame of an ask stream. An error code means the stream is
/// unusable (a malformed envelope) and is stopped with that code.
async fn handle_request(stream: &Arc<AskStream>, frame: Bytes) -> Result<(), ErrorCode> {
    let inner = &stream.inner;
    let request = Envelope::decode(frame).map_err(|e| e.code())?;
    match request.act {
        Act::Cancel => {
            stream.cancel(request.in_reply_to);
            return Ok(());
        }
        Act::Request | Act::Query | Act::Cfp | Act::Subscribe | Act::Propose | Act::Accept => {}
        _ => {
            let reason = format!("{:?} is not an ask", request.act);
            let reply =
                error_reply(&request, Act::NotUnderstood, ErrorCode::ProtocolViolation, &reason, inner.fresh_id());
            stream.answer(&reply);
            return Ok(());
        }
    }
    // The pipelining rule: work that arrives during the handshake is held
    // (bounded) until it ends, or refused with its code.
    let negotiated = match inner.negotiated() {
        // Established: the common case, without touching the handshake machine.
        Some(negotiated) => negotiated,
        None => match inner.admit() {
            Admission::Proceed | Admission::Hold => match inner.ready().await {
                Ok(negotiated) => negotiated,
                Err(e) => {
                    let code = e.code();
                    stream.answer(&error_reply(&request, Act::Refuse, code, &e.to_string(), inner.fresh_id()));
                    return Ok(());
                }
            },
            Admission::Refuse(refusal) => {
                stream.answer(&error_reply(&request, Act::Refuse, refusal.code, &refusal.reason, inner.fresh_id()));
                return Ok(());
            }
        },
    };
    let Some(intent) = resolve_intent(&negotiated, request.intent) else {
        let reason = format!("intent {:?} is not negotiated", request.intent);
        let reply =
            error_reply(&request, Act::NotUnderstood, ErrorCode::IntentNotNegotiated, &reason, inner.fresh_id());
        stream.answer(&reply);
        return Ok(());
    };
    if inner.drain.is_shutting_down() {
        let reply =
            error_reply(&request, Act::Refuse, ErrorCode::Shutdown, "the agent is shutting down", inner.fresh_id());
        stream.answer(&reply);
        return Ok(());
    }
    // Idempotent retry: the same message id from the same agent runs once.
    // Only asks the sender may re-send enter the window.
    let in_window = request.idempotent && inner.dedup.is_on();
    let key = AskKey { peer: inner.peer_id(), id: request.message_id };
    if in_window {
        match inner.dedup.begin(key, &stream.writer) {
            Begin::Run => {}
            Begin::Answered(previous) => {
                stream.answer(&previous);
                return Ok(());
            }
            Begin::Joined => return Ok(()),
        }
    }
    if !inner.incoming_asks.try_take() {
        let reason = format!("more than {} asks in flight", inner.local_max_concurrent_asks());
        let refusal = error_reply(&request, Act::Refuse, ErrorCode::TooManyAsks, &reason, inner.fresh_id());
        // Refused before running: a retry may run it later.
        if in_window {
            inner.dedup.abandon(key, &refusal);
        }
        stream.answer(&refusal);
        return Ok(());
    }
    stream.running().insert(request.message_id, None);
    inner.drain.enter();
    // Waits while the application's queue is full: back-pressure reaches
    // the peer through QUIC flow control on this stream.
    inner.incoming.reserve().await;
    let responder = Responder {
        stream: stream.clone(),
        message_id: request.message_id,
        conversation_id: request.conversation_id,
        request_intent: request.intent,
        reply_id: inner.fresh_id(),
        answered: false,
        in_window,
        negotiated: Some(negotiated),
    };
    inner.incoming.push(Incoming::Ask(IncomingAsk { envelope: request, intent, responder }));
    Ok(())
}

/// Serves one tell stream the peer opened: each frame is a one-way envelope.
/// Envelopes whose intent is not negotiated are dropped (there is no one to
/// answer); a malformed frame stops the stream with its code.
pub(crate) async fn serve_tell_stream(inner: Arc<Inner>, mut recv: quinn::RecvStream, initial: BytesMut) {
    let mut reader = FrameReader::new(inner.local_max_frame_len(), initial);
    let Ok(negotiated) = inner.ready().await else { return };
    loop {
        loop {
            match reader.next() {
                Ok(Some(frame)) => {
                    let envelope = match Envelope::decode(frame) {
                        Ok(envelope) => envelope,
                        Err(e) => {
                            let _ = recv.stop(quinn::VarInt::from_u32(e.code() as u32));
                            return;
                        }
                    };
                    let negotiated = inner.negotiated().unwrap_or_else(|| negotiated.clone());
                    let Some(intent) = resolve_intent(&negotiated, envelope.intent) else {
                        tracing::debug!(intent = ?envelope.intent, "dropped a tell with an unnegotiated intent");
                        continue;
                    };
                    // Waits while the application's queue is full.
                    inner.incoming.reserve().await;
                    inner.incoming.push(Incoming::Tell(IncomingMessage { envelope, intent }));
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = recv.stop(quinn::VarInt::from_u32(e.code() as u32));
                    return;
                }
            }
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => reader.push(chunk.bytes),
            Ok(None) | Err(_) => return,
        }
    }
}

/// Reads the peer's datagrams: each is one envelope, without a length prefix.
/// Malformed or unnegotiated datagrams are dropped; when the application's
/// queue is full, new datagrams are dropped too (they are unreliable anyway).
pub(crate) async fn serve_datagrams(inner: Arc<Inner>) {
    while let Ok(datagram) = inner.connection.read_datagram().await {
        let Some(negotiated) = inner.negotiated() else { continue };
        let Ok(envelope) = Envelope::decode(datagram) else { continue };
        let Some(intent) = resolve_intent(&negotiated, envelope.intent) else { continue };
        inner.incoming.try_push(Incoming::Datagram(IncomingMessage { envelope, intent }));
    }
}

/// Serves a stream lane the peer opened: reads and checks the opening
/// envelope, then hands both halves to the application.
pub(crate) async fn serve_stream_lane(
    inner: Arc<Inner>,
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    initial: BytesMut,
    (send_held, recv_held): (Held, Held),
) {
    let max = inner.local_max_frame_len();
    let mut receiver = crate::stream::FrameReceiver::new(recv, initial, max, recv_held);
    let Ok(Some(opening)) = receiver.recv().await else {
        let _ = send.reset(quinn::VarInt::from_u32(ErrorCode::ProtocolViolation as u32));
        return;
    };
    let stop = |send: &mut quinn::SendStream, code: ErrorCode| {
        let _ = send.reset(quinn::VarInt::from_u32(code as u32));
    };
    let negotiated = match inner.ready().await {
        Ok(negotiated) => negotiated,
        Err(e) => return stop(&mut send, e.code()),
    };
    if inner.drain.is_shutting_down() {
        return stop(&mut send, ErrorCode::Shutdown);
    }
    let Some(intent) = resolve_intent(&negotiated, opening.intent) else {
        return stop(&mut send, ErrorCode::IntentNotNegotiated);
    };
    let reply_intent = negotiated.send_alias(&intent).map_or(IntentRef::Id(intent), IntentRef::Alias);
    let max_frame_len = negotiated.limits.max_frame_len as usize;
    let sender = crate::stream::FrameSender::new(send, reply_intent, inner.fresh_id(), max_frame_len, send_held);
    let stream = IncomingStream { envelope: opening, intent, sender, receiver };
    inner.incoming.reserve().await;
    inner.incoming.push(Incoming::Stream(stream));
}
