//! The stream lane: many envelopes each way on a stream of its own, with an
//! explicit end so that a cut-off stream is told apart from a finished one.
//!
//! On the wire: stream kind `0x03`, the opening envelope (the opener's
//! request), then data envelopes in both directions, each direction closed by
//! an empty frame (length 0, never a valid envelope) before the QUIC FIN.

use bytes::{Bytes, BytesMut};
use tacit_wire::{Act, Envelope, FrameDecoder, FrameEncoder, IntentRef};

use crate::ask::stream_kind;
use crate::credit::Held;

/// Why a stream lane operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer's side ended without its end marker: data may be missing.
    #[error("the stream was cut off before its end marker")]
    Truncated,
    /// The peer reset or stopped the stream with this code.
    #[error("the peer reset the stream with code {0:#x}")]
    Reset(u64),
    /// A frame or envelope was malformed.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The connection was lost.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
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
#[derive(Debug)]
pub struct FrameSender {
    send: quinn::SendStream,
    intent: IntentRef,
    opening_id: u64,
    next_id: u64,
    encoder: FrameEncoder,
    finished: bool,
    /// Counts a peer-opened stream as open for its stream credit.
    _held: Held,
}

impl FrameSender {
    pub(crate) fn new(
        send: quinn::SendStream,
        intent: IntentRef,
        opening_id: u64,
        max_frame_len: usize,
        held: Held,
    ) -> Self {
        Self {
            send,
            intent,
            opening_id,
            next_id: opening_id.wrapping_add(1),
            encoder: FrameEncoder::new(max_frame_len),
            finished: false,
            _held: held,
        }
    }

    /// Sends one message (an encoded intent) as `INFORM`, in order.
    pub async fn send(&mut self, payload: Bytes) -> Result<(), StreamError> {
        let mut envelope = Envelope::new(self.intent, Act::Inform, self.next_id, payload);
        envelope.in_reply_to = self.opening_id;
        self.next_id = self.next_id.wrapping_add(1);
        let frame = self
            .encoder
            .encode_to_bytes(&envelope)
            .map_err(|_| StreamError::TooLarge { len: envelope.encoded_len(), max: self.encoder.max_frame_len() })?;
        self.send.write_chunk(frame).await.map_err(write_error)
    }

    /// Abandons this direction with `code` (the peer's receiver sees
    /// [`StreamError::Reset`] with it), e.g. `INTENT_NOT_NEGOTIATED` for a
    /// stream the agent does not take.
    pub fn reset(mut self, code: tacit_wire::ErrorCode) {
        self.finished = true;
        let _ = self.send.reset(quinn::VarInt::from_u32(code as u32));
    }

    /// Ends this direction: writes the end marker and finishes the stream.
    pub async fn finish(mut self) -> Result<(), StreamError> {
        self.finished = true;
        self.send.write_chunk(Bytes::from_static(&[0])).await.map_err(write_error)?;
        self.send.finish().map_err(|e| StreamError::ConnectionLost(e.to_string()))
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        if !self.finished {
            // Abandoned without an end: the peer sees a reset, not an end.
            let _ = self.send.reset(quinn::VarInt::from_u32(tacit_wire::ErrorCode::Cancelled as u32));
        }
    }
}

/// The receiving half of a stream lane.
#[derive(Debug)]
pub struct FrameReceiver {
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
    buffer: BytesMut,
    ended: bool,
    /// Counts a peer-opened stream as open for its stream credit.
    _held: Held,
}

impl FrameReceiver {
    pub(crate) fn new(recv: quinn::RecvStream, buffer: BytesMut, max_frame_len: usize, held: Held) -> Self {
        Self { recv, decoder: FrameDecoder::new(max_frame_len), buffer, ended: false, _held: held }
    }

    /// The next message, `Ok(None)` at the peer's explicit end, or an error
    /// if the stream was cut off, reset or malformed.
    pub async fn recv(&mut self) -> Result<Option<Envelope>, StreamError> {
        if self.ended {
            return Ok(None);
        }
        loop {
            match self.decoder.decode(&mut self.buffer) {
                Ok(Some(frame)) if frame.is_empty() => {
                    self.ended = true;
                    return Ok(None);
                }
                Ok(Some(frame)) => {
                    return Envelope::decode(frame).map(Some).map_err(|e| {
                        let _ = self.recv.stop(quinn::VarInt::from_u32(e.code() as u32));
                        StreamError::Malformed(e.to_string())
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = self.recv.stop(quinn::VarInt::from_u32(e.code() as u32));
                    return Err(StreamError::Malformed(e.to_string()));
                }
            }
            match self.recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk.bytes),
                Ok(None) => return Err(StreamError::Truncated),
                Err(quinn::ReadError::Reset(code)) => return Err(StreamError::Reset(code.into_inner())),
                Err(e) => return Err(StreamError::ConnectionLost(e.to_string())),
            }
        }
    }
}

fn write_error(error: quinn::WriteError) -> StreamError {
    match error {
        quinn::WriteError::Stopped(code) => StreamError::Reset(code.into_inner()),
        other => StreamError::ConnectionLost(other.to_string()),
    }
}

/// The bytes that open a stream lane: its kind and the opening envelope.
pub(crate) fn opening(envelope: &Envelope, max_frame_len: usize) -> Result<Bytes, StreamError> {
    let mut bytes = BytesMut::new();
    tacit_wire::put_prefix(stream_kind::STREAM, &mut bytes);
    FrameEncoder::new(max_frame_len)
        .encode(envelope, &mut bytes)
        .map_err(|_| StreamError::TooLarge { len: envelope.encoded_len(), max: max_frame_len })?;
    Ok(bytes.freeze())
}
