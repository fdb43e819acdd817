//! Envelope round trips, agreement with prost's generated code, and every
//! kind of bad input the decoder must turn into a typed error.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use prost::Message as _;
use tacit_wire::{
    Act, ConversationId, DecodeError, Envelope, ErrorCode, FrameDecoder, FrameEncoder, FrameError, IntentId, IntentRef,
    MAX_NESTING_DEPTH, TraceContext, pb,
};

fn acts() -> impl Strategy<Value = Act> {
    (1i32..=13).prop_map(|v| Act::try_from(v).unwrap())
}

fn envelopes() -> impl Strategy<Value = Envelope> {
    let intent = prop_oneof![
        any::<u32>().prop_map(IntentRef::Alias),
        any::<[u8; 32]>().prop_map(|b| IntentRef::Id(IntentId::from_bytes(b)))
    ];
    let trace = proptest::option::of(
        (any::<[u8; 16]>(), any::<[u8; 8]>(), any::<u8>()).prop_map(|(trace_id, span_id, flags)| TraceContext {
            trace_id,
            span_id,
            flags,
        }),
    );
    (
        intent,
        acts(),
        any::<u64>(),
        "\\PC{0,16}",
        prop_oneof![Just(0u64), any::<u64>()],
        prop_oneof![Just(0u64), any::<u64>()],
        trace,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..600),
        any::<bool>(),
    )
        .prop_filter_map(
            "conversation id too long",
            |(intent, act, id, conversation, reply, deadline, trace, idempotent, payload, sign_reply)| {
                let mut envelope = Envelope::new(intent, act, id, Bytes::from(payload));
                envelope.conversation_id = ConversationId::new(&conversation).ok()?;
                envelope.in_reply_to = reply;
                envelope.deadline_micros = deadline;
                envelope.trace = trace;
                envelope.idempotent = idempotent;
                envelope.sign_reply = sign_reply;
                Some(envelope)
            },
        )
}

/// Any `pb::Envelope`, including ones the domain type refuses.
fn pb_envelopes() -> impl Strategy<Value = pb::Envelope> {
    let intent = proptest::option::of(prop_oneof![
        any::<u32>().prop_map(pb::envelope::Intent::Alias),
        proptest::collection::vec(any::<u8>(), 30..34).prop_map(|v| pb::envelope::Intent::IntentId(v.into())),
    ]);
    let trace = proptest::option::of(
        (proptest::collection::vec(any::<u8>(), 15..17), proptest::collection::vec(any::<u8>(), 7..9), 0u32..300)
            .prop_map(|(t, s, flags)| pb::TraceContext { trace_id: t.into(), span_id: s.into(), flags }),
    );
    (
        intent,
        -2i32..16,
        any::<u64>(),
        "\\PC{0,70}",
        any::<u64>(),
        any::<u64>(),
        trace,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        // [receipt.envelope-fields]: an absent or a 64-byte signature, and its time.
        (proptest::option::of(proptest::collection::vec(any::<u8>(), 64)), any::<u64>(), any::<bool>()),
    )
        .prop_map(
            |(
                intent,
                act,
                message_id,
                conversation_id,
                in_reply_to,
                deadline_micros,
                trace,
                idempotent,
                payload,
                (signature, signed_at_micros, sign_reply),
            )| {
                pb::Envelope {
                    intent,
                    act,
                    message_id,
                    conversation_id,
                    in_reply_to,
                    deadline_micros,
                    trace,
                    idempotent,
                    signed_at_micros: if signature.is_some() { signed_at_micros } else { 0 },
                    signature: signature.unwrap_or_default().into(),
                    sign_reply,
                    payload: payload.into(),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// decode(encode(x)) == x, `encoded_len` is exact, and the bytes are what
    /// prost's generated code writes for the same message.
    #[test]
    fn round_trip_matches_prost(envelope in envelopes()) {
        let encoded = envelope.encode_to_bytes();
        prop_assert_eq!(encoded.len(), envelope.encoded_len());
        prop_assert_eq!(Envelope::decode(encoded.clone()), Ok(envelope.clone()));

        let reference = pb::Envelope::from(envelope.clone());
        prop_assert_eq!(&encoded[..], &reference.encode_to_vec()[..]);
        prop_assert_eq!(reference.encoded_len(), encoded.len());
        prop_assert_eq!(Envelope::try_from(pb::Envelope::decode(encoded).unwrap()), Ok(envelope));
    }

    /// A frame's head followed by the payload is exactly the whole frame,
    /// so senders can write the payload as a chunk of its own.
    #[test]
    fn head_and_payload_make_the_frame(envelope in envelopes()) {
        let encoder = FrameEncoder::default();
        let mut whole = BytesMut::new();
        encoder.encode(&envelope, &mut whole).unwrap();
        let mut split = BytesMut::new();
        encoder.encode_head(&envelope, &mut split).unwrap();
        split.extend_from_slice(&envelope.payload);
        prop_assert_eq!(&split[..], &whole[..]);
        // And the same limit applies to both.
        let tight = FrameEncoder::new(envelope.encoded_len().saturating_sub(1));
        if envelope.encoded_len() > 0 {
            prop_assert!(tight.encode_head(&envelope, &mut BytesMut::new()).is_err());
        }
    }

    /// The hand decoder accepts and refuses exactly what "prost decode, then
    /// validate" does, with the same result.
    #[test]
    fn decoder_agrees_with_prost(message in pb_envelopes()) {
        let bytes = Bytes::from(message.encode_to_vec());
        prop_assert_eq!(Envelope::decode(bytes), Envelope::try_from(message));
    }

    /// Frames survive encoding, arbitrary splitting and decoding.
    #[test]
    fn framed_round_trip(envelopes in proptest::collection::vec(envelopes(), 1..6), split in 1usize..64) {
        let encoder = FrameEncoder::default();
        let mut wire = BytesMut::new();
        for envelope in &envelopes {
            encoder.encode(envelope, &mut wire).unwrap();
        }
        let mut decoder = FrameDecoder::default();
        let mut received = BytesMut::new();
        let mut decoded = Vec::new();
        for chunk in wire.chunks(split) {
            received.extend_from_slice(chunk);
            while let Some(frame) = decoder.decode(&mut received).unwrap() {
                decoded.push(Envelope::decode(frame).unwrap());
            }
        }
        prop_assert_eq!(decoded, envelopes);
    }

    /// Unknown fields anywhere are skipped and counted, and change nothing else.
    #[test]
    fn unknown_fields_ignored_and_counted(
        envelope in envelopes(),
        unknown in proptest::collection::vec((16u32..5000, 0u8..4, any::<u64>()), 0..20),
    ) {
        let mut bytes = BytesMut::from(&envelope.encode_to_bytes()[..]);
        for (number, kind, value) in &unknown {
            put_unknown(&mut bytes, *number, *kind, *value);
        }
        let (decoded, stats) = Envelope::decode_with_stats(bytes.freeze()).unwrap();
        prop_assert_eq!(decoded, envelope);
        prop_assert_eq!(stats.unknown_fields as usize, unknown.len());
    }
}

/// Appends an unknown field of one of four kinds (varint, fixed64, bytes, fixed32).
fn put_unknown(buf: &mut BytesMut, number: u32, kind: u8, value: u64) {
    let wire_type = [0u8, 1, 2, 5][usize::from(kind)];
    put_key(buf, number, wire_type);
    match wire_type {
        0 => put_varint(buf, value),
        1 => buf.put_u64_le(value),
        2 => {
            let len = (value % 40) as usize;
            put_varint(buf, len as u64);
            buf.put_bytes(0xab, len);
        }
        _ => buf.put_u32_le(value as u32),
    }
}

fn put_varint(buf: &mut BytesMut, value: u64) {
    tacit_wire::put_prefix(value, buf);
}

fn put_key(buf: &mut BytesMut, number: u32, wire_type: u8) {
    put_varint(buf, (u64::from(number) << 3) | u64::from(wire_type));
}

/// A minimal valid envelope: alias 1, act request.
fn minimal() -> BytesMut {
    BytesMut::from(&[0x08, 0x01, 0x18, 0x01][..])
}

fn decode(bytes: impl Into<Bytes>) -> Result<Envelope, DecodeError> {
    Envelope::decode(bytes.into())
}

#[test]
fn payload_is_not_copied() {
    let payload = Bytes::from(vec![0x5a; 128]);
    let mut envelope = Envelope::new(IntentRef::Alias(7), Act::Inform, 9, payload);
    envelope.conversation_id = ConversationId::new("conversation-0001").unwrap();
    let mut wire = BytesMut::new();
    FrameEncoder::default().encode(&envelope, &mut wire).unwrap();
    let frame = FrameDecoder::default().decode(&mut wire).unwrap().unwrap();

    let decoded = Envelope::decode(frame.clone()).unwrap();
    let inside = |b: &Bytes| {
        let range = frame.as_ptr_range();
        range.start <= b.as_ptr() && b.as_ptr_range().end <= range.end
    };
    assert_eq!(decoded.payload.len(), 128);
    assert!(inside(&decoded.payload), "payload was copied out of the frame");
    assert_eq!(decoded.conversation_id.as_str(), "conversation-0001");
}

#[test]
fn typed_payload_decoded_on_request_without_copying_bytes() {
    let typed = pb::TraceContext { trace_id: Bytes::from(vec![1; 16]), span_id: Bytes::from(vec![2; 8]), flags: 1 };
    let envelope = Envelope::new(IntentRef::Alias(1), Act::Request, 1, typed.encode_to_vec().into());
    let frame = envelope.encode_to_bytes();
    let decoded = Envelope::decode(frame.clone()).unwrap();
    let payload: pb::TraceContext = decoded.decode_payload().unwrap();
    assert_eq!(payload, typed);
    assert!(frame.as_ptr_range().contains(&payload.trace_id.as_ptr()));

    // A payload that is not the requested type gives a typed error.
    let bad = Envelope::new(IntentRef::Alias(1), Act::Request, 1, Bytes::from_static(&[0x0a, 0x05]));
    let err = bad.decode_payload::<pb::TraceContext>().unwrap_err();
    assert!(matches!(err, DecodeError::InvalidPayload { .. }), "{err:?}");
    assert_eq!(err.code(), ErrorCode::InvalidPayload);
}

#[test]
fn empty_input() {
    assert_eq!(decode(Bytes::new()), Err(DecodeError::MissingIntent));
    assert_eq!(DecodeError::MissingIntent.code(), ErrorCode::InvalidIntentRef);
    let mut decoder = FrameDecoder::default();
    assert_eq!(decoder.decode(&mut BytesMut::new()), Ok(None));
    assert_eq!(decoder.decode_eof(&mut BytesMut::new()), Ok(None));
}

#[test]
fn truncated_message() {
    let mut bytes = minimal();
    put_key(&mut bytes, 15, 2);
    put_varint(&mut bytes, 10);
    bytes.put_slice(b"short");
    let err = decode(bytes).unwrap_err();
    assert_eq!(err, DecodeError::Truncated { field: 15 });
    assert_eq!(err.code(), ErrorCode::MalformedMessage);

    // Cut inside a fixed64.
    let mut bytes = minimal();
    put_key(&mut bytes, 4, 1);
    bytes.put_slice(&[1, 2, 3]);
    assert_eq!(decode(bytes), Err(DecodeError::Truncated { field: 4 }));

    // Cut inside a key.
    let mut bytes = minimal();
    bytes.put_u8(0x80);
    assert_eq!(decode(bytes), Err(DecodeError::Truncated { field: 0 }));
}

#[test]
fn truncated_frame() {
    let envelope = Envelope::new(IntentRef::Alias(1), Act::Request, 1, Bytes::from_static(&[1; 40]));
    let wire = FrameEncoder::default().encode_to_bytes(&envelope).unwrap();
    for cut in 1..wire.len() {
        let mut partial = BytesMut::from(&wire[..cut]);
        let mut decoder = FrameDecoder::default();
        assert_eq!(decoder.decode(&mut partial), Ok(None), "cut at {cut}");
        let err = decoder.decode_eof(&mut partial).unwrap_err();
        assert_eq!(err, FrameError::Truncated { buffered: cut });
        assert_eq!(err.code(), ErrorCode::FrameTruncated);
    }
}

#[test]
fn length_over_cap() {
    let mut decoder = FrameDecoder::default();
    let mut wire = BytesMut::new();
    put_varint(&mut wire, (1 << 20) + 1);
    wire.put_slice(b"only a few bytes follow");
    assert_eq!(decoder.decode(&mut wire), Err(FrameError::TooLarge { len: (1 << 20) + 1, max: 1 << 20 }));
    // Nothing was consumed or reserved for the announced length.
    assert!(wire.capacity() < 1024);
}

#[test]
fn overlong_varint() {
    // In a field value.
    let mut bytes = minimal();
    put_key(&mut bytes, 7, 0);
    bytes.put_slice(&[0xff; 11]);
    let err = decode(bytes).unwrap_err();
    assert_eq!(err, DecodeError::OverlongVarint { field: 7 });
    assert_eq!(err.code(), ErrorCode::VarintOverlong);

    // Ten bytes that overflow 64 bits.
    let mut bytes = minimal();
    put_key(&mut bytes, 7, 0);
    bytes.put_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
    assert_eq!(decode(bytes), Err(DecodeError::OverlongVarint { field: 7 }));

    // In a frame prefix.
    let mut wire = BytesMut::from(&[0xffu8; 12][..]);
    assert_eq!(FrameDecoder::default().decode(&mut wire), Err(FrameError::OverlongVarint));
}

#[test]
fn invalid_utf8_in_string_field() {
    let mut bytes = minimal();
    put_key(&mut bytes, 5, 2);
    put_varint(&mut bytes, 3);
    bytes.put_slice(&[b'a', 0xc3, 0x28]);
    let err = decode(bytes).unwrap_err();
    assert_eq!(err, DecodeError::InvalidUtf8 { field: 5 });
    assert_eq!(err.code(), ErrorCode::InvalidUtf8);
}

#[test]
fn conversation_id_too_long() {
    let mut bytes = minimal();
    put_key(&mut bytes, 5, 2);
    put_varint(&mut bytes, 65);
    bytes.put_bytes(b'c', 65);
    let err = decode(bytes).unwrap_err();
    assert_eq!(err, DecodeError::FieldTooLarge { field: 5, len: 65, max: 64 });
    assert_eq!(err.code(), ErrorCode::FieldTooLarge);
}

#[test]
fn wrong_wire_type() {
    // Payload (bytes) sent as a varint.
    let mut bytes = minimal();
    put_key(&mut bytes, 15, 0);
    put_varint(&mut bytes, 1);
    let err = decode(bytes).unwrap_err();
    assert_eq!(err, DecodeError::WrongWireType { field: 15, expected: 2, found: 0 });
    assert_eq!(err.code(), ErrorCode::WrongWireType);

    // Message id (fixed64) sent as a varint; act (varint) sent as fixed32.
    let mut bytes = minimal();
    put_key(&mut bytes, 4, 0);
    put_varint(&mut bytes, 1);
    assert_eq!(decode(bytes), Err(DecodeError::WrongWireType { field: 4, expected: 1, found: 0 }));
    let mut bytes = minimal();
    put_key(&mut bytes, 3, 5);
    bytes.put_u32_le(1);
    assert_eq!(decode(bytes), Err(DecodeError::WrongWireType { field: 3, expected: 0, found: 5 }));
}

#[test]
fn invalid_keys() {
    for key in [0x00u64, 0x07, 0x0e, 1 << 35] {
        let mut bytes = minimal();
        put_varint(&mut bytes, key);
        bytes.put_u8(0);
        let err = decode(bytes).unwrap_err();
        assert_eq!(err, DecodeError::InvalidKey { key }, "key {key:#x}");
        assert_eq!(err.code(), ErrorCode::MalformedMessage);
    }
    // An end-group with no group open.
    let mut bytes = minimal();
    put_key(&mut bytes, 20, 4);
    assert!(matches!(decode(bytes), Err(DecodeError::InvalidKey { .. })));
}

#[test]
fn nesting_ten_thousand_deep() {
    // Unknown groups nested 10,000 deep: refused at the depth limit, no recursion.
    let mut bytes = minimal();
    for _ in 0..10_000 {
        put_key(&mut bytes, 20, 3);
    }
    for _ in 0..10_000 {
        put_key(&mut bytes, 20, 4);
    }
    let err = decode(bytes).unwrap_err();
    assert_eq!(err, DecodeError::NestingTooDeep { max: MAX_NESTING_DEPTH });
    assert_eq!(err.code(), ErrorCode::NestingTooDeep);

    // Groups nested up to the limit are skipped and counted as one unknown field.
    let mut bytes = minimal();
    for _ in 0..MAX_NESTING_DEPTH {
        put_key(&mut bytes, 20, 3);
    }
    for _ in 0..MAX_NESTING_DEPTH {
        put_key(&mut bytes, 20, 4);
    }
    let (_, stats) = Envelope::decode_with_stats(bytes.freeze()).unwrap();
    assert_eq!(stats.unknown_fields, 1);

    // A typed payload of a recursive message nested 10,000 deep: prost's
    // recursion limit turns it into a typed error, not a stack overflow.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Node {
        #[prost(message, optional, boxed, tag = "1")]
        child: Option<Box<Node>>,
    }
    let mut nested = Vec::new();
    for _ in 0..10_000 {
        let mut outer = vec![0x0a];
        prost::encoding::encode_varint(nested.len() as u64, &mut outer);
        outer.extend_from_slice(&nested);
        nested = outer;
    }
    let envelope = Envelope::new(IntentRef::Alias(1), Act::Request, 1, nested.into());
    let decoded = Envelope::decode(envelope.encode_to_bytes()).unwrap();
    let err = decoded.decode_payload::<Node>().unwrap_err();
    assert!(matches!(err, DecodeError::InvalidPayload { .. }), "{err:?}");

    // Length-delimited unknown data nested 10,000 deep is skipped as opaque bytes.
    let mut bytes = minimal();
    put_key(&mut bytes, 99, 2);
    put_varint(&mut bytes, 0);
    let mut with_nested = bytes;
    put_key(&mut with_nested, 100, 2);
    let envelope_payload = decoded.payload.clone();
    put_varint(&mut with_nested, envelope_payload.len() as u64);
    with_nested.put_slice(&envelope_payload);
    let (_, stats) = Envelope::decode_with_stats(with_nested.freeze()).unwrap();
    assert_eq!(stats.unknown_fields, 2);
}

#[test]
fn unknown_fields_are_counted() {
    let mut bytes = minimal();
    put_unknown(&mut bytes, 16, 0, 5);
    put_unknown(&mut bytes, 1000, 2, 7);
    // Inside the trace context too.
    let mut trace = BytesMut::new();
    put_key(&mut trace, 1, 2);
    put_varint(&mut trace, 16);
    trace.put_bytes(1, 16);
    put_key(&mut trace, 2, 2);
    put_varint(&mut trace, 8);
    trace.put_bytes(2, 8);
    put_unknown(&mut trace, 9, 1, 3);
    put_key(&mut bytes, 8, 2);
    put_varint(&mut bytes, trace.len() as u64);
    bytes.put_slice(&trace);
    let (envelope, stats) = Envelope::decode_with_stats(bytes.freeze()).unwrap();
    assert_eq!(stats.unknown_fields, 3);
    assert_eq!(envelope.trace, Some(TraceContext { trace_id: [1; 16], span_id: [2; 8], flags: 0 }));
}

#[test]
fn one_megabyte_of_unknown_fields() {
    let mut bytes = minimal();
    for i in 0..(1 << 20) / 8 {
        put_unknown(&mut bytes, 16 + (i % 100), 1, i as u64);
    }
    let (_, stats) = Envelope::decode_with_stats(bytes.freeze()).unwrap();
    assert_eq!(stats.unknown_fields, (1 << 20) / 8);
}

#[test]
fn unknown_act_value() {
    for act in [0u64, 14, 99, u64::MAX] {
        let mut bytes = BytesMut::from(&[0x08, 0x01][..]);
        put_key(&mut bytes, 3, 0);
        put_varint(&mut bytes, act);
        let err = decode(bytes).unwrap_err();
        assert_eq!(err, DecodeError::UnknownAct(act as i32), "act {act}");
        assert_eq!(err.code(), ErrorCode::UnknownAct);
    }
    // Missing act is the unspecified act.
    assert_eq!(decode(Bytes::from_static(&[0x08, 0x01])), Err(DecodeError::UnknownAct(0)));
}

#[test]
fn intent_reference_checks() {
    // IntentId of the wrong length.
    for len in [0usize, 31, 33] {
        let mut bytes = BytesMut::new();
        put_key(&mut bytes, 2, 2);
        put_varint(&mut bytes, len as u64);
        bytes.put_bytes(7, len);
        bytes.put_slice(&[0x18, 0x01]);
        let err = decode(bytes).unwrap_err();
        assert_eq!(err, DecodeError::InvalidIntentIdLength(len));
        assert_eq!(err.code(), ErrorCode::InvalidIntentRef);
    }
    // Later occurrences of the oneof win, as in protobuf.
    let mut bytes = BytesMut::new();
    put_key(&mut bytes, 2, 2);
    put_varint(&mut bytes, 32);
    bytes.put_bytes(7, 32);
    bytes.put_slice(&[0x08, 0x05, 0x18, 0x01]);
    assert_eq!(decode(bytes).unwrap().intent, IntentRef::Alias(5));
}

#[test]
fn malformed_trace_context_is_ignored() {
    let mut bytes = minimal();
    put_key(&mut bytes, 8, 2);
    put_varint(&mut bytes, 5);
    bytes.put_slice(&[0x0a, 0x03, 1, 2, 3]);
    assert_eq!(decode(bytes).unwrap().trace, None);
}

/// The worked example in docs/PROTOCOL.md ("Envelope").
#[test]
fn protocol_doc_example() {
    let payload = Bytes::from_static(&[0x0a, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]);
    let envelope = Envelope::new(IntentRef::Alias(3), Act::Request, 42, payload);
    let frame = FrameEncoder::default().encode_to_bytes(&envelope).unwrap();
    let expected: &[u8] = &[
        0x16, 0x08, 0x03, 0x18, 0x01, 0x21, 0x2a, 0, 0, 0, 0, 0, 0, 0, 0x7a, 0x07, 0x0a, 0x05, 0x68, 0x65, 0x6c, 0x6c,
        0x6f,
    ];
    assert_eq!(&frame[..], expected);
}
