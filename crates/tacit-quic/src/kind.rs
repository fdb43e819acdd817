//! Stream kinds: the first varint of every stream except the control stream
//! says what the stream carries (docs/PROTOCOL.md, "Streams"). Defined here
//! once, for the lanes that open streams and for the acceptor that routes
//! the streams a peer opens.

use bytes::{Buf, Bytes, BytesMut};
use tacit_wire::ErrorCode;

/// A long-lived bidirectional stream of asks (requests out, replies back).
pub(crate) const ASK: u64 = 0x01;
/// A long-lived unidirectional stream of tells (one-way envelopes).
pub(crate) const TELL: u64 = 0x02;
/// A bidirectional stream for one streaming exchange.
pub(crate) const STREAM: u64 = 0x03;

/// The longest varint: ten bytes.
const MAX_VARINT_LEN: usize = 10;

/// The bytes that start a stream of `kind`.
pub(crate) fn prefix(kind: u64) -> Bytes {
    let mut bytes = BytesMut::with_capacity(MAX_VARINT_LEN);
    tacit_wire::put_prefix(kind, &mut bytes);
    bytes.freeze()
}

/// Reads a stream's kind (its first varint) and returns it with whatever
/// came after it in the same read (the start of the first frame), not
/// copied. `None` if the stream ends or fails first; a malformed varint
/// stops the stream with `VARINT_OVERLONG`.
pub(crate) async fn read(recv: &mut quinn::RecvStream) -> Option<(u64, Bytes)> {
    // Almost always the whole varint is in the first chunk.
    let mut chunk = match recv.read_chunk(64 * 1024, true).await {
        Ok(Some(chunk)) => chunk.bytes,
        _ => return None,
    };
    if let Some((kind, len)) = parse(&chunk) {
        chunk.advance(len);
        return Some((kind, chunk));
    }
    // Split over chunks: gather its bytes (ten at most).
    let mut start = BytesMut::from(&chunk[..]);
    loop {
        if start.len() >= MAX_VARINT_LEN {
            let _ = recv.stop(quinn::VarInt::from_u32(ErrorCode::VarintOverlong as u32));
            return None;
        }
        let mut chunk = match recv.read_chunk(MAX_VARINT_LEN - start.len(), true).await {
            Ok(Some(chunk)) => chunk.bytes,
            _ => return None,
        };
        start.extend_from_slice(&chunk);
        if let Some((kind, len)) = parse(&start) {
            // What of this chunk came after the varint.
            let rest = start.len() - len;
            chunk.advance(chunk.len() - rest);
            return Some((kind, chunk));
        }
    }
}

/// A varint at the start of `bytes`, with its length; `None` while incomplete.
fn parse(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(MAX_VARINT_LEN).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_back() {
        for kind in [ASK, TELL, STREAM, 0x7f, 0x80, 0x3fff, u64::MAX] {
            let bytes = prefix(kind);
            assert_eq!(parse(&bytes), Some((kind, bytes.len())));
            assert_eq!(parse(&bytes[..bytes.len() - 1]), None);
        }
    }
}
