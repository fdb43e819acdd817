//! Framing: each message on a stream is a varint length prefix followed by
//! that many bytes of protobuf.
//!
//! The decoder works over the caller's receive buffer and never allocates on
//! its own: a frame is split off the buffer as a [`Bytes`] that shares its
//! memory, and an announced length above the cap is refused as soon as the
//! prefix is complete, before any of the body is buffered.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::FrameError;
use crate::varint::{self, MAX_VARINT_LEN, VarintError};

/// The default maximum frame body size: 1 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 0x10_0000;

/// Something that can be written as a frame body: any prost message, or an
/// [`Envelope`](crate::Envelope).
pub trait FrameBody {
    /// Length of the encoded body in bytes.
    fn body_len(&self) -> usize;
    /// Writes the body (without length prefix) to `buf`; writes exactly
    /// [`body_len`](Self::body_len) bytes.
    fn write_body(&self, buf: &mut BytesMut);
}

impl<M: prost::Message> FrameBody for M {
    #[inline]
    fn body_len(&self) -> usize {
        self.encoded_len()
    }

    #[inline]
    fn write_body(&self, buf: &mut BytesMut) {
        self.encode_raw(buf)
    }
}

/// Writes length-prefixed frames into a [`BytesMut`].
#[derive(Debug, Clone, Copy)]
pub struct FrameEncoder {
    max_frame_len: usize,
}

impl Default for FrameEncoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameEncoder {
    /// An encoder that refuses bodies longer than `max_frame_len` bytes, so a
    /// sender learns of an oversized message before its peer refuses it.
    pub const fn new(max_frame_len: usize) -> Self {
        Self { max_frame_len }
    }

    /// The configured maximum body length.
    pub const fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Appends `body` as one frame to `dst`, reserving the space it needs once.
    pub fn encode(&self, body: &impl FrameBody, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = body.body_len();
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge { len: len as u64, max: self.max_frame_len });
        }
        dst.reserve(varint::encoded_len(len as u64) + len);
        varint::encode(len as u64, dst);
        let start = dst.len();
        body.write_body(dst);
        debug_assert_eq!(dst.len() - start, len, "body_len disagrees with write_body");
        Ok(())
    }

    /// Appends an envelope's frame up to its payload's bytes to `dst`: the
    /// length prefix and [`Envelope::encode_head`](crate::Envelope::encode_head).
    /// The payload, written after it, completes the frame; a transport that
    /// writes chunks sends it without copying it.
    pub fn encode_head(&self, envelope: &crate::Envelope, dst: &mut impl BufMut) -> Result<(), FrameError> {
        let len = envelope.encoded_len();
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge { len: len as u64, max: self.max_frame_len });
        }
        varint::encode(len as u64, dst);
        envelope.encode_head(dst);
        Ok(())
    }

    /// Encodes `body` as one frame into a new buffer.
    pub fn encode_to_bytes(&self, body: &impl FrameBody) -> Result<Bytes, FrameError> {
        let mut dst = BytesMut::new();
        self.encode(body, &mut dst)?;
        Ok(dst.freeze())
    }
}

/// Cuts frames off the front of a receive buffer.
///
/// Feed it whatever arrived, in pieces of any size: a frame split at any byte
/// boundary waits for its remaining bytes, and a buffer holding many frames
/// yields them one per call.
///
/// ```
/// use bytes::BytesMut;
/// use tacit_wire::{FrameDecoder, FrameEncoder, TraceContext};
///
/// let mut wire = BytesMut::new();
/// let trace = TraceContext { trace_id: [1; 16], span_id: [2; 8], flags: 1 };
/// FrameEncoder::default().encode(&tacit_wire::pb::TraceContext::from(trace), &mut wire)?;
///
/// let mut decoder = FrameDecoder::default();
/// let mut received = BytesMut::new();
/// for chunk in wire.chunks(3) {
///     received.extend_from_slice(chunk);
///     if let Some(frame) = decoder.decode(&mut received)? {
///         assert_eq!(frame.len(), 30);
///     }
/// }
/// assert!(decoder.decode_eof(&mut received)?.is_none());
/// # Ok::<(), tacit_wire::FrameError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames whose body is longer than `max_frame_len`.
    pub const fn new(max_frame_len: usize) -> Self {
        Self { max_frame_len }
    }

    /// The configured maximum body length.
    pub const fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Takes the next complete frame body off the front of `src`, or returns
    /// `Ok(None)` if more bytes are needed. Leaves `src` untouched unless it
    /// returns a frame.
    ///
    /// An error is final for the stream: the caller should reset it with
    /// [`FrameError::code`].
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some((len, prefix_len)) = self.read_prefix(src)? else {
            return Ok(None);
        };
        if src.len() - prefix_len < len {
            return Ok(None);
        }
        let _prefix = src.split_to(prefix_len);
        Ok(Some(src.split_to(len).freeze()))
    }

    /// Like [`decode`](Self::decode), over a received [`Bytes`] chunk: the
    /// frame is a slice of it (no copy). Leaves `src` untouched unless it
    /// returns a frame.
    pub fn decode_bytes(&mut self, src: &mut Bytes) -> Result<Option<Bytes>, FrameError> {
        let Some((len, prefix_len)) = self.read_prefix(src)? else {
            return Ok(None);
        };
        if src.len() - prefix_len < len {
            return Ok(None);
        }
        src.advance(prefix_len);
        Ok(Some(src.split_to(len)))
    }

    /// Like [`decode`](Self::decode), for when the stream has ended: a
    /// complete frame is returned, an empty buffer gives `Ok(None)`, and
    /// leftover bytes of an incomplete frame are an error.
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated { buffered: src.len() }),
        }
    }

    /// How many more bytes the frame at the front of `src` needs before
    /// [`decode`](Self::decode) can return it (at least 1 while its prefix is
    /// incomplete; 0 when a frame is ready). Never more than the cap allows,
    /// so a transport can size its reads by it without trusting the peer.
    pub fn bytes_needed(&self, src: &BytesMut) -> Result<usize, FrameError> {
        Ok(match self.read_prefix(src)? {
            None => 1,
            Some((len, prefix_len)) => (prefix_len + len).saturating_sub(src.len()),
        })
    }

    /// Parses the length prefix: `None` if incomplete, else (body length, prefix length).
    fn read_prefix(&self, src: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
        let (len, prefix_len) = match varint::decode(src) {
            Ok(parsed) => parsed,
            Err(VarintError::Truncated) => {
                debug_assert!(src.len() < MAX_VARINT_LEN);
                return Ok(None);
            }
            Err(VarintError::Overlong) => return Err(FrameError::OverlongVarint),
        };
        match usize::try_from(len) {
            Ok(len) if len <= self.max_frame_len => Ok(Some((len, prefix_len))),
            _ => Err(FrameError::TooLarge { len, max: self.max_frame_len }),
        }
    }
}

/// Encodes `len` as a frame prefix; for tests and tools that build frames by hand.
#[doc(hidden)]
pub fn put_prefix(len: u64, dst: &mut impl BufMut) {
    varint::encode(len, dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames_of(bodies: &[Vec<u8>]) -> BytesMut {
        let mut wire = BytesMut::new();
        for body in bodies {
            put_prefix(body.len() as u64, &mut wire);
            wire.extend_from_slice(body);
        }
        wire
    }

    #[test]
    fn many_frames_in_one_read() {
        let bodies = vec![vec![1u8; 3], vec![], vec![2u8; 200]];
        let mut wire = frames_of(&bodies);
        let mut decoder = FrameDecoder::default();
        for body in &bodies {
            assert_eq!(decoder.decode(&mut wire).unwrap().unwrap(), body[..]);
        }
        assert_eq!(decoder.decode(&mut wire).unwrap(), None);
        assert_eq!(decoder.decode_eof(&mut wire).unwrap(), None);
    }

    #[test]
    fn empty_input_needs_more() {
        let mut decoder = FrameDecoder::default();
        let mut empty = BytesMut::new();
        assert_eq!(decoder.decode(&mut empty), Ok(None));
        assert_eq!(decoder.bytes_needed(&empty), Ok(1));
        assert_eq!(decoder.decode_eof(&mut empty), Ok(None));
    }

    #[test]
    fn truncated_frame_at_eof() {
        let mut wire = frames_of(&[vec![7u8; 10]]);
        wire.truncate(6);
        let mut decoder = FrameDecoder::default();
        assert_eq!(decoder.decode(&mut wire), Ok(None));
        assert_eq!(decoder.bytes_needed(&wire), Ok(5));
        assert_eq!(decoder.decode_eof(&mut wire), Err(FrameError::Truncated { buffered: 6 }));
        // A prefix cut in half is truncated too.
        let mut half_prefix = BytesMut::from(&[0x80u8][..]);
        assert_eq!(decoder.decode_eof(&mut half_prefix), Err(FrameError::Truncated { buffered: 1 }));
    }

    #[test]
    fn length_over_cap_refused_from_prefix_alone() {
        let mut decoder = FrameDecoder::new(1024);
        let mut wire = BytesMut::new();
        put_prefix(1025, &mut wire);
        let err = decoder.decode(&mut wire).unwrap_err();
        assert_eq!(err, FrameError::TooLarge { len: 1025, max: 1024 });
        assert_eq!(err.code(), crate::ErrorCode::FrameTooLarge);
        // The largest length a varint can say.
        let mut huge = BytesMut::new();
        put_prefix(u64::MAX, &mut huge);
        assert!(matches!(decoder.decode(&mut huge), Err(FrameError::TooLarge { len: u64::MAX, .. })));
        // Exactly the cap is fine.
        let mut at_cap = frames_of(&[vec![0; 1024]]);
        assert_eq!(decoder.decode(&mut at_cap).unwrap().unwrap().len(), 1024);
    }

    #[test]
    fn overlong_prefix() {
        let mut decoder = FrameDecoder::default();
        let mut wire = BytesMut::from(&[0x80u8; 11][..]);
        assert_eq!(decoder.decode(&mut wire), Err(FrameError::OverlongVarint));
        assert_eq!(FrameError::OverlongVarint.code(), crate::ErrorCode::VarintOverlong);
    }

    #[test]
    fn encoder_refuses_oversized_body() {
        let encoder = FrameEncoder::new(4);
        let body = crate::pb::TraceContext { flags: 1, trace_id: Bytes::from_static(&[1; 16]), ..Default::default() };
        let mut dst = BytesMut::new();
        assert!(matches!(encoder.encode(&body, &mut dst), Err(FrameError::TooLarge { max: 4, .. })));
        assert!(dst.is_empty());
    }

    proptest! {
        /// Frames survive being fed in pieces split at arbitrary points.
        #[test]
        fn arbitrary_split_points(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in proptest::collection::vec(0usize..2000, 0..12),
        ) {
            let wire = frames_of(&bodies);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut decoder = FrameDecoder::new(512);
            let mut received = BytesMut::new();
            let mut out = Vec::new();
            let mut start = 0;
            for cut in cuts {
                received.extend_from_slice(&wire[start..cut]);
                start = cut;
                while let Some(frame) = decoder.decode(&mut received).unwrap() {
                    out.push(frame.to_vec());
                }
            }
            prop_assert_eq!(decoder.decode_eof(&mut received), Ok(None));
            prop_assert_eq!(out, bodies);
        }

        /// `decode_bytes` agrees with `decode` on any prefix of the wire.
        #[test]
        fn decode_bytes_matches_decode(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            cut in 0usize..3000,
        ) {
            let wire = frames_of(&bodies);
            let cut = cut % (wire.len() + 1);
            let mut decoder = FrameDecoder::new(512);
            let mut as_bytes = wire.clone().freeze().slice(..cut);
            let mut as_bytes_mut = BytesMut::from(&wire[..cut]);
            loop {
                let a = decoder.decode_bytes(&mut as_bytes).unwrap();
                let b = decoder.decode(&mut as_bytes_mut).unwrap();
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(&as_bytes[..], &as_bytes_mut[..]);
                if a.is_none() {
                    break;
                }
            }
        }

        /// `bytes_needed` is exact: feeding that many more bytes completes the frame.
        #[test]
        fn bytes_needed_is_exact(body in proptest::collection::vec(any::<u8>(), 0..300), have in 0usize..400) {
            let wire = frames_of(std::slice::from_ref(&body));
            let have = have % wire.len();
            let mut decoder = FrameDecoder::default();
            let mut received = BytesMut::from(&wire[..have]);
            let needed = decoder.bytes_needed(&received).unwrap();
            prop_assert!(needed >= 1);
            prop_assert!(have + needed <= wire.len());
            received.extend_from_slice(&wire[have..have + needed]);
            // Either the frame is complete, or only the prefix was and now more is known.
            match decoder.decode(&mut received).unwrap() {
                Some(frame) => prop_assert_eq!(&frame[..], &body[..]),
                None => prop_assert!(decoder.bytes_needed(&received).unwrap() >= 1),
            }
        }
    }
}
