//! Shared fixtures for Tacit's benchmarks.
//!
//! - [`pb`]: prost types generated from `proto/tacit/bench/v1/reference.proto`
//!   (`ReserveSlot`, the typed payload, and `FlatRequest`, the same
//!   information as one flat message).
//! - [`reference`](mod@reference): the reference message every wire
//!   benchmark uses, about 330 bytes on the wire, in its three forms: a typed
//!   payload, a Tacit envelope carrying it, and a flat prost message for the
//!   baseline.
//! - [`alloc_count`]: a counting global allocator, so benchmarks can report
//!   allocations per operation next to their timings.
#![warn(missing_docs)]

pub mod alloc_count;

/// Types generated from `proto/tacit/bench/v1/reference.proto` (prost-build,
/// with `bytes` fields of `ReserveSlot` as [`bytes::Bytes`]). Do not edit the
/// generated file.
pub mod pb {
    #![allow(missing_docs, clippy::all, unreachable_pub, rust_2018_idioms)]
    include!("generated/tacit.bench.v1.rs");
}

/// The reference message: a `ReserveSlot` request with five ~20–24 character
/// string parameters and a 128-byte blob.
///
/// [`envelope`](reference::envelope) and
/// [`flat_request`](reference::flat_request) carry the same information
/// (message id, a 32-byte intent/type id, a 16-character conversation id, the
/// parameters); the flat form also names a 32-byte sender, which Tacit knows
/// from the connection instead.
pub mod reference {
    use bytes::{Bytes, BytesMut};
    use prost::Message as _;
    use tacit_wire::{Act, ConversationId, Envelope, FrameDecoder, FrameEncoder, IntentId, IntentRef};

    use crate::pb;

    /// The message id (fits in a 6-byte varint in the flat form; Tacit sends it as fixed64).
    pub const MESSAGE_ID: u64 = 1_748_941_800_042;

    /// The 32-byte IntentId of `ReserveSlot` (a fixed value; the benchmarks
    /// do not hash schemas).
    pub const INTENT_ID: [u8; 32] = [
        0x3b, 0x9e, 0x4f, 0x0c, 0x71, 0xd2, 0x58, 0xa6, 0x1e, 0xc4, 0x97, 0x2d, 0x60, 0xbb, 0x05, 0xf8, //
        0x42, 0x8a, 0xe1, 0x36, 0x7d, 0x19, 0xcf, 0x54, 0xa0, 0x6b, 0x23, 0xde, 0x88, 0x0f, 0x95, 0x4c,
    ];

    /// The 32-byte sender id of the flat form.
    pub const SENDER: [u8; 32] = [
        0xa7, 0x14, 0x6e, 0xd9, 0x02, 0x5b, 0xc8, 0x31, 0xf0, 0x8d, 0x46, 0x9a, 0x27, 0xe3, 0x7c, 0x10, //
        0x5f, 0xb2, 0x0b, 0x64, 0xcd, 0x38, 0x91, 0xea, 0x1a, 0x77, 0xc0, 0x4d, 0xf6, 0x29, 0x83, 0x5e,
    ];

    /// The 16-character conversation id.
    pub const CONVERSATION_ID: &str = "cv-7f3a9c21e0b4d";

    /// The 128-byte blob: a fixed pseudo-random pattern.
    pub static BLOB: [u8; 128] = blob();

    const fn blob() -> [u8; 128] {
        let mut out = [0u8; 128];
        let mut state: u32 = 0x9e37_79b9;
        let mut i = 0;
        while i < out.len() {
            // xorshift32
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            out[i] = (state >> 24) as u8;
            i += 1;
        }
        out
    }

    /// The typed payload.
    pub fn reserve_slot() -> pb::ReserveSlot {
        pb::ReserveSlot {
            resource: "meeting-room/4b-east-12".to_owned(),
            region: "eu-central-1/frankfurt-b".to_owned(),
            start: "2025-06-03T09:30:00.000Z".to_owned(),
            end: "2025-06-03T10:15:00.000Z".to_owned(),
            note: "planning sync, 6 seats".to_owned(),
            blob: Bytes::from_static(&BLOB),
        }
    }

    /// The envelope: `IntentRef::Id`, `Act::Request`, [`MESSAGE_ID`],
    /// [`CONVERSATION_ID`], and the encoded [`reserve_slot`] as payload.
    pub fn envelope() -> Envelope {
        let payload = Bytes::from(reserve_slot().encode_to_vec());
        let mut envelope =
            Envelope::new(IntentRef::Id(IntentId::from_bytes(INTENT_ID)), Act::Request, MESSAGE_ID, payload);
        envelope.conversation_id = ConversationId::new(CONVERSATION_ID).expect("16 bytes is within the limit");
        envelope
    }

    /// The same information as one flat prost message.
    pub fn flat_request() -> pb::FlatRequest {
        pb::FlatRequest {
            message_id: MESSAGE_ID,
            sender: SENDER.to_vec(),
            type_id: INTENT_ID.to_vec(),
            conversation_id: CONVERSATION_ID.to_owned(),
            params: Some(reserve_slot()),
        }
    }

    /// The [`envelope`] as it travels on a stream: length prefix and body.
    pub fn framed_envelope() -> BytesMut {
        let mut wire = BytesMut::new();
        FrameEncoder::default().encode(&envelope(), &mut wire).expect("the reference envelope is far below the cap");
        wire
    }

    /// The body of [`framed_envelope`], cut off a receive buffer by a
    /// [`FrameDecoder`] as on the real receive path (so it is a shared
    /// [`Bytes`] view of that buffer, not a static or vector-backed one).
    pub fn frame_body() -> Bytes {
        let mut received = framed_envelope();
        FrameDecoder::default()
            .decode(&mut received)
            .expect("a well-formed frame")
            .expect("the buffer holds one whole frame")
    }

    /// The encoded [`flat_request`].
    pub fn flat_bytes() -> Vec<u8> {
        flat_request().encode_to_vec()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn encoded_sizes() {
            let payload = reserve_slot().encoded_len();
            let framed = framed_envelope().len();
            let body = frame_body().len();
            let flat = flat_bytes().len();
            println!("reserve_slot payload: {payload} bytes");
            println!("envelope body: {body} bytes, framed: {framed} bytes");
            println!("flat_request: {flat} bytes");
            for (name, len) in [("envelope body", body), ("framed envelope", framed), ("flat request", flat)] {
                assert!((300..=360).contains(&len), "{name} is {len} bytes");
            }
        }

        #[test]
        fn the_forms_carry_the_same_information() {
            let envelope = Envelope::decode(frame_body()).unwrap();
            assert_eq!(envelope, super::envelope());
            let slot: pb::ReserveSlot = envelope.decode_payload().unwrap();
            let flat = pb::FlatRequest::decode(&flat_bytes()[..]).unwrap();
            assert_eq!(flat.message_id, envelope.message_id);
            assert_eq!(flat.conversation_id, envelope.conversation_id.as_str());
            assert_eq!(IntentRef::Id(IntentId::try_from(&flat.type_id[..]).unwrap()), envelope.intent);
            assert_eq!(flat.params.as_ref(), Some(&slot));
            assert_eq!(slot, reserve_slot());
            for field in [&slot.resource, &slot.region, &slot.start, &slot.end, &slot.note] {
                assert!((20..=24).contains(&field.len()), "{field:?}");
            }
            assert_eq!(slot.blob.len(), 128);
        }
    }
}
