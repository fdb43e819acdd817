//! The receiving side of every lane: the ask streams, the tell stream, the
//! stream lanes and the datagrams the peer sends. Each is read with the one
//! frame reader, checked against what is negotiated (the pipelining rule
//! during the handshake), and queued for the application; asks refused
//! before any handler runs are answered here.

use std::sync::Arc;

use bytes::Bytes;
use tacit_handshake::{Admission, Lane, Negotiated};
use tacit_wire::{Act, Envelope, ErrorCode, IntentRef};

use crate::control::Control;
use crate::credit::Held;
use crate::dedup::{AskKey, Begin};
use crate::frames::{FrameReader, FrameSink, ReadFailure, write_frames};
use crate::ids::MessageIds;
use crate::incoming::{Answering, AskStream, Incoming, IncomingAsk, IncomingMessage, IncomingStream, Responder};
use crate::queue::IncomingQueue;
use crate::reply::ReplyTo;
use crate::stream::{FrameReceiver, FrameSender, StreamError};

/// What the receiving side of a session's lanes uses.
#[derive(Debug)]
pub(crate) struct Receiving {
    /// The handshake: whether work may proceed, and what is negotiated.
    pub(crate) control: Arc<Control>,
    /// The session's message ids, for answers.
    pub(crate) ids: Arc<MessageIds>,
    /// What answers give back.
    pub(crate) answering: Arc<Answering>,
    /// Work for the application; ended once the connection has closed.
    pub(crate) queue: IncomingQueue<Incoming>,
}

impl Receiving {
    fn max_frame_len(&self) -> usize {
        self.control.local_max_frame_len()
    }

    /// What is negotiated, once work may proceed; else the error answer's
    /// code and reason.
    async fn admitted(&self) -> Result<Arc<Negotiated>, (ErrorCode, String)> {
        if let Some(negotiated) = self.control.negotiated() {
            // Established: the common case, without touching the handshake machine.
            return Ok(negotiated);
        }
        match self.control.admit() {
            Admission::Proceed | Admission::Hold => self.control.ready().await.map_err(|e| (e.code(), e.to_string())),
            Admission::Refuse(refusal) => Err((refusal.code, refusal.reason)),
        }
    }
}

fn stop_code(code: ErrorCode) -> quinn::VarInt {
    quinn::VarInt::from_u32(code as u32)
}

/// Serves one ask stream the peer opened: reads requests, resolves and
/// admits them, hands them to the application, writes the answers back.
pub(crate) async fn serve_ask_stream(
    receiving: Arc<Receiving>,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    first: Bytes,
    (send_held, _recv_held): (Held, Held),
) {
    let (writer, source) = FrameSink::open(send, Bytes::new());
    // The reply stream counts as busy until its data is acknowledged, so a
    // graceful shutdown does not cut answers off.
    let drain = receiving.answering.drain.clone();
    drain.enter();
    tokio::spawn(async move {
        if let Some(send) = write_frames(source).await {
            let _ = send.stopped().await;
        }
        drain.leave();
        drop(send_held);
    });
    let stream = Arc::new(AskStream::new(receiving.answering.clone(), writer));
    let mut reader = FrameReader::starting_with(receiving.max_frame_len(), first);
    loop {
        loop {
            match reader.next() {
                Ok(Some(frame)) => {
                    if let Err(code) = handle_request(&receiving, &stream, frame).await {
                        let _ = recv.stop(stop_code(code));
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = recv.stop(stop_code(e.code()));
                    return;
                }
            }
        }
        // Answers the peer does not read back-pressure its asks.
        if !stream.writer().wait_space().await {
            break;
        }
        let drain = &receiving.answering.drain;
        let draining = drain.is_shutting_down();
        if draining && stream.is_idle() {
            // Shutting down and every ask read from this stream is answered:
            // read no more, so the reply stream can finish and be acknowledged.
            let _ = recv.stop(stop_code(ErrorCode::Shutdown));
            return;
        }
        let recheck = async {
            if draining {
                // While draining, look again shortly whether the last ask was answered.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            } else {
                drain.shutdown_begun().await;
            }
        };
        tokio::select! {
            more = reader.fill(&mut recv) => match more {
                Ok(true) => {}
                Err(ReadFailure::Truncated) => {
                    // [ask.truncated]: the asker's direction ended inside a
                    // frame and cannot be stopped; the reply direction is
                    // reset with FRAME_TRUNCATED (answers not yet delivered
                    // are lost), and the asks read before are withdrawn.
                    stream.writer().reset(ErrorCode::FrameTruncated);
                    break;
                }
                Ok(false) | Err(_) => break,
            },
            () = recheck => {}
        }
    }
    // The asker closed its side: cancel whatever it still waits for.
    stream.cancel_all();
}

/// Handles one frame of an ask stream. An error code means the stream is
/// unusable (a malformed envelope) and is stopped with that code.
async fn handle_request(receiving: &Receiving, stream: &Arc<AskStream>, frame: Bytes) -> Result<(), ErrorCode> {
    let request = Envelope::decode(frame).map_err(|e| e.code())?;
    let refuse = |act: Act, code: ErrorCode, reason: &str| {
        let reply_to = ReplyTo::of(&request, receiving.control.negotiated().as_deref());
        stream.answer(&reply_to.error(act, code, reason, receiving.ids.fresh()));
    };
    match request.act {
        Act::Cancel => {
            stream.cancel(request.in_reply_to);
            return Ok(());
        }
        Act::Request | Act::Query | Act::Cfp | Act::Subscribe | Act::Propose | Act::Accept => {}
        _ => {
            refuse(Act::NotUnderstood, ErrorCode::ProtocolViolation, &format!("{:?} is not an ask", request.act));
            return Ok(());
        }
    }
    // The pipelining rule: work that arrives during the handshake is held
    // (bounded) until it ends, or refused with its code.
    let negotiated = match receiving.admitted().await {
        Ok(negotiated) => negotiated,
        Err((code, reason)) => {
            refuse(Act::Refuse, code, &reason);
            return Ok(());
        }
    };
    let Some(intent) = negotiated.resolve_on(request.intent, Lane::Ask) else {
        refuse(Act::NotUnderstood, ErrorCode::IntentNotNegotiated, &not_negotiated(request.intent));
        return Ok(());
    };
    let answering = &*receiving.answering;
    if answering.drain.is_shutting_down() {
        refuse(Act::Refuse, ErrorCode::Shutdown, "the agent is shutting down");
        return Ok(());
    }
    // Idempotent retry: the same message id from the same agent runs once.
    // Only asks the sender may re-send enter the window.
    let in_window = request.idempotent && answering.dedup.is_on();
    let key = AskKey { peer: answering.peer, id: request.message_id };
    if in_window {
        match answering.dedup.begin(key, stream.writer()) {
            Begin::Run => {}
            Begin::Answered(previous) => {
                stream.answer(&previous);
                return Ok(());
            }
            Begin::Joined => return Ok(()),
        }
    }
    if !answering.slots.try_take() {
        let reason = format!("more than {} asks in flight", receiving.control.local_max_concurrent_asks());
        let refusal = ReplyTo::of(&request, Some(&negotiated)).error(
            Act::Refuse,
            ErrorCode::TooManyAsks,
            &reason,
            receiving.ids.fresh(),
        );
        // Refused before running: a retry may run it later.
        if in_window {
            answering.dedup.abandon(key, &refusal);
        }
        stream.answer(&refusal);
        return Ok(());
    }
    let responder = Responder::start(stream.clone(), &request, receiving.ids.fresh(), in_window, negotiated);
    // Waits while the application's queue is full: back-pressure reaches
    // the peer through QUIC flow control on this stream.
    receiving.queue.reserve().await;
    receiving.queue.push(Incoming::Ask(IncomingAsk { envelope: request, intent, responder }));
    Ok(())
}

/// Why an intent reference is refused, for people.
fn not_negotiated(intent: IntentRef) -> String {
    match intent {
        IntentRef::Alias(alias) => format!("intent alias {alias} is not negotiated"),
        IntentRef::Id(id) => format!("intent {id} is not negotiated"),
    }
}

/// Serves one tell stream the peer opened: each frame is a one-way envelope.
/// Envelopes whose intent is not negotiated are dropped (there is no one to
/// answer); a malformed frame stops the stream with its code.
pub(crate) async fn serve_tell_stream(receiving: Arc<Receiving>, mut recv: quinn::RecvStream, first: Bytes) {
    let mut reader = FrameReader::starting_with(receiving.max_frame_len(), first);
    let Ok(negotiated) = receiving.control.ready().await else { return };
    while let Ok(Some(frame)) = reader.read(&mut recv).await {
        let envelope = match Envelope::decode(frame) {
            Ok(envelope) => envelope,
            Err(e) => {
                let _ = recv.stop(stop_code(e.code()));
                return;
            }
        };
        let negotiated = receiving.control.negotiated().unwrap_or_else(|| negotiated.clone());
        let Some(intent) = negotiated.resolve_on(envelope.intent, Lane::Tell) else {
            tracing::debug!(intent = ?envelope.intent, "dropped a tell with an unnegotiated intent");
            continue;
        };
        // Waits while the application's queue is full.
        receiving.queue.reserve().await;
        receiving.queue.push(Incoming::Tell(IncomingMessage { envelope, intent }));
    }
}

/// Reads the peer's datagrams: each is one envelope, without a length prefix.
/// Malformed or unnegotiated datagrams are dropped; when the application's
/// queue is full, new datagrams are dropped too (they are unreliable anyway).
pub(crate) async fn serve_datagrams(receiving: Arc<Receiving>, connection: quinn::Connection) {
    while let Ok(datagram) = connection.read_datagram().await {
        let Some(negotiated) = receiving.control.negotiated() else { continue };
        let Ok(envelope) = Envelope::decode(datagram) else { continue };
        let Some(intent) = negotiated.resolve_on(envelope.intent, Lane::Datagram) else { continue };
        receiving.queue.try_push(Incoming::Datagram(IncomingMessage { envelope, intent }));
    }
}

/// Serves a stream lane the peer opened: reads and checks the opening
/// envelope, then hands both halves to the application.
pub(crate) async fn serve_stream_lane(
    receiving: Arc<Receiving>,
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    first: Bytes,
    (send_held, recv_held): (Held, Held),
) {
    let reader = FrameReader::starting_with(receiving.max_frame_len(), first);
    let mut receiver = FrameReceiver::new(recv, reader, recv_held);
    // [lane.refused]: a lane refused before it is served gets the code in
    // both directions: this side's reset, the opener's stopped.
    let refuse = |send: &mut quinn::SendStream, receiver: &mut FrameReceiver, code: ErrorCode| {
        let _ = send.reset(stop_code(code));
        receiver.stop(code);
    };
    let opening = match receiver.recv().await {
        Ok(Some(opening)) => opening,
        // [lane.opening]: the stream ended, was cut off or was malformed
        // before its opening envelope.
        Ok(None) | Err(StreamError::Truncated | StreamError::Malformed(_)) => {
            let code = receiver.error_code().unwrap_or(ErrorCode::ProtocolViolation);
            return refuse(&mut send, &mut receiver, code);
        }
        Err(_) => return,
    };
    let negotiated = match receiving.control.ready().await {
        Ok(negotiated) => negotiated,
        Err(e) => return refuse(&mut send, &mut receiver, e.code()),
    };
    if receiving.answering.drain.is_shutting_down() {
        return refuse(&mut send, &mut receiver, ErrorCode::Shutdown);
    }
    let Some(intent) = negotiated.resolve_on(opening.intent, Lane::Stream) else {
        return refuse(&mut send, &mut receiver, ErrorCode::IntentNotNegotiated);
    };
    let reply_intent = negotiated.send_alias(&intent).map_or(IntentRef::Id(intent), IntentRef::Alias);
    let max_frame_len = negotiated.limits.max_frame_len as usize;
    // The handler's data envelopes answer the opening (docs/PROTOCOL.md,
    // "Stream lane"): `in_reply_to` is the opener's id, not one of ours.
    let opening_id = opening.message_id;
    let first_id = receiving.ids.fresh();
    let Ok(sender) = FrameSender::start(send, None, reply_intent, opening_id, first_id, max_frame_len, send_held)
    else {
        return;
    };
    receiver.pair_with(&sender);
    let stream = IncomingStream { envelope: opening, intent, sender, receiver };
    receiving.queue.reserve().await;
    receiving.queue.push(Incoming::Stream(stream));
}
