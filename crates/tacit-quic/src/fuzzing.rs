//! Entry point for the `ask_stream` fuzz target in `fuzz/fuzz_targets/`, kept
//! here so that a normal `cargo test` replays the committed corpus through
//! exactly the same code. Not part of the public API.
//!
//! The request side of an ask stream without I/O: the bytes after the stream
//! kind, cut into chunks as QUIC might deliver them, go through the
//! `FrameReader` that `serve_ask_stream` uses, and each frame through the
//! envelope decoder and the server's act check. The I/O around them (quinn
//! streams, the handler queue) is exercised by `tests/bad_input.rs` and
//! `tests/hostile.rs` instead.

use bytes::{Bytes, BytesMut};
use tacit_wire::{Act, Envelope, ErrorCode, FrameDecoder};

use crate::frames::FrameReader;

/// The first byte picks the chunk size (1–64) and the second the maximum
/// frame length (16–4096); the rest is the stream. The reader must cut
/// exactly the frames (and the first error) a decoder given the whole stream
/// at once finds; every envelope error must map to a frame-or-envelope code.
pub fn ask_stream(data: &[u8]) {
    let [chunk_seed, max_seed, stream @ ..] = data else { return };
    let chunk = usize::from(chunk_seed % 64) + 1;
    let max = (usize::from(*max_seed) + 1) * 16;

    // What a decoder sees with the whole stream in one buffer.
    let mut expected = Vec::new();
    let mut whole = BytesMut::from(stream);
    let mut decoder = FrameDecoder::new(max);
    let expected_error = loop {
        match decoder.decode(&mut whole) {
            Ok(Some(frame)) => expected.push(frame),
            Ok(None) => break None,
            Err(e) => break Some(e.code()),
        }
    };

    // What the server's reader cuts out of the chunks; the first chunk is
    // what was read together with the stream kind.
    let mut pieces = stream.chunks(chunk);
    let mut reader = FrameReader::new(max, pieces.next().map(BytesMut::from).unwrap_or_default());
    let mut got: Vec<Bytes> = Vec::new();
    let mut error = None;
    'read: loop {
        loop {
            match reader.next() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max, "a frame over the limit");
                    got.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e.code());
                    break 'read;
                }
            }
        }
        match pieces.next() {
            Some(piece) => reader.push(Bytes::copy_from_slice(piece)),
            None => break,
        }
    }
    assert_eq!(got, expected, "the reader and the decoder cut different frames");
    assert_eq!(error, expected_error, "the reader and the decoder disagree on the error");

    for frame in got {
        match Envelope::decode(frame) {
            Ok(envelope) => {
                // The server's classification: an ask, a cancel, or a protocol violation.
                let _is_ask = matches!(
                    envelope.act,
                    Act::Request | Act::Query | Act::Cfp | Act::Subscribe | Act::Propose | Act::Accept | Act::Cancel
                );
                assert_ne!(envelope.act, Act::Unspecified, "act 0 must be refused");
            }
            Err(e) => {
                let code = e.code() as i32;
                assert!((0x101..=0x10b).contains(&code), "envelope error with code {code:#x}");
                assert_ne!(e.code(), ErrorCode::FrameTooLarge);
            }
        }
    }
}
