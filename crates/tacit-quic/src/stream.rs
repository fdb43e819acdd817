//! The stream lane: many envelopes each way on a stream of its own, with an
//! explicit end so that a cut-off stream is told apart from a finished one.
//!
//! On the wire: stream kind `0x03`, the opening envelope (the opener's
//! request), then data envelopes in both directions, each direction closed by
//! an empty frame (length 0, never a valid envelope) before the QUIC FIN.
//! Both halves go through the frame writer and reader every lane uses
//! ([`crate::frames`]): payloads are neither copied on send nor on receive.

use bytes::Bytes;
use tacit_wire::{Act, Envelope, ErrorCode, IntentId, IntentRef};
use tokio::task::JoinHandle;

use crate::credit::Held;
use crate::error::code_name;
use crate::frames::{FrameReader, FrameSink, PushError, ReadFailure, SinkObserver, write_frames};
use crate::kind;

/// The frame that ends a direction: length 0.
const END_MARKER: &[u8] = &[0];

/// Why a stream lane operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer's side ended without its end marker: data may be missing.
    #[error("the stream was cut off before its end marker")]
    Truncated,
    /// The peer reset or stopped the stream with this code.
    #[error("the peer reset the stream with {}", code_name(*.0))]
    Reset(u64),
    /// A frame or envelope was malformed.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The connection was lost.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The intent is not negotiated for sending to this peer; nothing was sent.
    #[error("intent {0} is not negotiated for sending to this peer")]
    NotNegotiated(IntentId),
    /// The peer handles the intent, but not on the stream lane; nothing was
    /// sent.
    #[error("the peer takes intent {intent} on {offered}, not on the stream lane")]
    WrongLane {
        /// The intent.
        intent: IntentId,
        /// The lanes the peer offered for it.
        offered: tacit_handshake::Lanes,
    },
    /// The message is larger than the peer accepts.
    #[error("the message is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Its encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// The sending half of a stream lane.
///
/// End it with [`finish`](Self::finish). A sender that is dropped instead
/// ends its direction the same way, after every message sent so far, as a
/// dropped channel sender or a finished tonic response stream does: the
/// peer reads what was sent, then the end. Dropping is how most handlers
/// stop (an early `return`, a `?`), and what they sent is an answer the peer
/// should not lose. To abandon a stream so that the peer sees it cut off,
/// [`reset`](Self::reset) it; a sender dropped while its task panics resets
/// with `HANDLER_FAILED`.
#[derive(Debug)]
pub struct FrameSender {
    sink: Option<FrameSink>,
    writer: Option<JoinHandle<Option<quinn::SendStream>>>,
    intent: IntentRef,
    opening_id: u64,
    next_id: u64,
    max_frame_len: usize,
}

impl FrameSender {
    /// Starts the writer of `send`; `first` goes ahead of every message
    /// (the stream kind and opening envelope, for the opener). Every data
    /// envelope answers `opening_id` (the opening's `message_id`, on both
    /// sides); their own ids count up from `first_id`.
    pub(crate) fn start(
        send: quinn::SendStream,
        first: Option<(&Envelope, usize)>,
        intent: IntentRef,
        opening_id: u64,
        first_id: u64,
        max_frame_len: usize,
        held: Held,
    ) -> Result<Self, StreamError> {
        let initial = if first.is_some() { kind::prefix(kind::STREAM) } else { Bytes::new() };
        let (sink, source) = FrameSink::open(send, initial);
        if let Some((opening, max)) = first {
            sink.push_now(opening, max).map_err(|_| StreamError::TooLarge { len: opening.encoded_len(), max })?;
        }
        let writer = tokio::spawn(async move {
            let _held = held;
            write_frames(source).await
        });
        Ok(Self { sink: Some(sink), writer: Some(writer), intent, opening_id, next_id: first_id, max_frame_len })
    }

    /// Sends one message (an encoded intent) as `INFORM`, in order. Waits
    /// while 64 KiB are queued, so a slow peer slows the sender down.
    pub async fn send(&mut self, payload: Bytes) -> Result<(), StreamError> {
        let Some(sink) = &self.sink else { return Err(StreamError::ConnectionLost("the stream has ended".into())) };
        let mut envelope = Envelope::new(self.intent, Act::Inform, self.next_id, payload);
        envelope.in_reply_to = self.opening_id;
        self.next_id = self.next_id.wrapping_add(1);
        sink.send(&envelope, self.max_frame_len, true).await.map_err(|e| match e {
            PushError::TooLarge => StreamError::TooLarge { len: envelope.encoded_len(), max: self.max_frame_len },
            PushError::Closed => write_failure(sink.failure()),
        })
    }

    /// Ends this direction: the end marker after every message sent, then
    /// the QUIC FIN. Returns once all of it is handed to QUIC.
    pub async fn finish(mut self) -> Result<(), StreamError> {
        let sink = self.sink.take();
        let writer = self.writer.take();
        let Some(sink) = sink else { return Ok(()) };
        sink.push_encoded(Bytes::from_static(END_MARKER)).map_err(|_| write_failure(sink.failure()))?;
        let failure = sink.observer();
        drop(sink);
        match writer {
            Some(writer) => match writer.await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(write_failure(failure.failure())),
                Err(e) => Err(StreamError::ConnectionLost(e.to_string())),
            },
            None => Ok(()),
        }
    }

    /// A handle on this direction for the receiving half of the same
    /// stream, which resets it on a stream error.
    pub(crate) fn observer(&self) -> Option<SinkObserver> {
        self.sink.as_ref().map(FrameSink::observer)
    }

    /// Abandons this direction: the peer sees the stream reset with `code`
    /// (e.g. `CANCELLED`), and messages not yet delivered may be lost.
    pub fn reset(mut self, code: ErrorCode) {
        if let Some(sink) = self.sink.take() {
            sink.reset(code);
        }
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        let Some(sink) = self.sink.take() else { return };
        if std::thread::panicking() {
            // Cut off mid-way: what was sent may be incomplete.
            sink.reset(ErrorCode::HandlerFailed);
        } else {
            // Ends like `finish`; the writer task writes what is queued first.
            let _ = sink.push_encoded(Bytes::from_static(END_MARKER));
        }
    }
}

fn write_failure(failure: Option<&quinn::WriteError>) -> StreamError {
    match failure {
        Some(quinn::WriteError::Stopped(code)) => StreamError::Reset(code.into_inner()),
        Some(other) => StreamError::ConnectionLost(other.to_string()),
        None => StreamError::ConnectionLost("the stream is closed".into()),
    }
}

/// The receiving half of a stream lane.
#[derive(Debug)]
pub struct FrameReceiver {
    recv: quinn::RecvStream,
    reader: FrameReader,
    ended: bool,
    /// This side's direction of the same stream, reset on a stream error.
    own_direction: Option<SinkObserver>,
    /// The code of the stream error this side signalled, if it did.
    error: Option<ErrorCode>,
    /// Counts a peer-opened stream as open for its stream credit.
    _held: Held,
}

impl FrameReceiver {
    pub(crate) fn new(recv: quinn::RecvStream, reader: FrameReader, held: Held) -> Self {
        Self { recv, reader, ended: false, own_direction: None, error: None, _held: held }
    }

    /// Pairs this half with the sending half of the same stream, so that a
    /// stream error resets both directions (`[streams.error]`).
    pub(crate) fn pair_with(&mut self, sender: &FrameSender) {
        self.own_direction = sender.observer();
    }

    /// Refuses the rest of the peer's direction: STOP_SENDING with `code`
    /// (e.g. `INTENT_NOT_NEGOTIATED` for a stream nobody serves). Messages
    /// not yet read are lost.
    pub fn stop(&mut self, code: ErrorCode) {
        self.ended = true;
        let _ = self.recv.stop(quinn::VarInt::from_u32(code as u32));
    }

    /// The code of the stream error this half signalled (a malformed or
    /// cut-off frame or envelope), if it did.
    pub(crate) fn error_code(&self) -> Option<ErrorCode> {
        self.error
    }

    /// Signals a stream error of the peer's direction: STOP_SENDING with
    /// `code` (if that direction is still open) and a reset of this side's
    /// direction with the same code (`[streams.error]`, `[lane.error]`).
    fn stream_error(&mut self, code: ErrorCode) {
        self.error = Some(code);
        self.stop(code);
        if let Some(own) = self.own_direction.take() {
            own.reset(code);
        }
    }

    /// The next message, `Ok(None)` at the peer's explicit end, or an error
    /// if the stream was cut off, reset or malformed.
    pub async fn recv(&mut self) -> Result<Option<Envelope>, StreamError> {
        if self.ended {
            return Ok(None);
        }
        match self.reader.read(&mut self.recv).await {
            Ok(Some(frame)) if frame.is_empty() => {
                self.ended = true;
                Ok(None)
            }
            Ok(Some(frame)) => Envelope::decode(frame).map(Some).map_err(|e| {
                self.stream_error(e.code());
                StreamError::Malformed(e.to_string())
            }),
            Ok(None) => Err(StreamError::Truncated),
            Err(ReadFailure::Truncated) => {
                // [streams.truncated]: the peer's direction has ended and
                // cannot be stopped; this side's direction carries the code.
                self.stream_error(ErrorCode::FrameTruncated);
                Err(StreamError::Truncated)
            }
            Err(ReadFailure::Frame(e)) => {
                self.stream_error(e.code());
                Err(StreamError::Malformed(e.to_string()))
            }
            Err(ReadFailure::Reset(code)) => Err(StreamError::Reset(code)),
            Err(ReadFailure::Lost(reason)) => Err(StreamError::ConnectionLost(reason)),
        }
    }
}
