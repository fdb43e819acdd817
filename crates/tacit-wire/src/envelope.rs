//! The envelope every intent travels in, and its zero-copy decoder.
//!
//! [`Envelope::decode`] reads an envelope from a frame in one pass without
//! copying: the payload, the conversation id and an IntentId stay slices of
//! the frame's buffer, and the typed payload is decoded only when asked for
//! ([`Envelope::decode_payload`]). It also checks what prost's generated
//! decoder cannot: a known act, an intent reference that is present and
//! well-formed, length limits, and it counts unknown fields. The generated
//! [`pb::Envelope`] stays the reference: tests check that both agree byte for
//! byte.

use std::fmt;
use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::frame::FrameBody;
use crate::intent_id::IntentId;
use crate::varint::{self, VarintError};
use crate::{Act, pb};

/// Longest conversation id, in bytes.
pub const MAX_CONVERSATION_ID_LEN: usize = 64;
/// Deepest nesting of (unknown) groups the decoder skips before refusing.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Which intent an envelope's payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentRef {
    /// An alias from the table negotiated in the capability handshake.
    Alias(u32),
    /// A full IntentId.
    Id(IntentId),
}

/// A conversation id: UTF-8, at most [`MAX_CONVERSATION_ID_LEN`] bytes; empty
/// means "no conversation". Held inline (no heap, `Copy`), so threading it
/// through a conversation costs a small copy and never a reference count.
#[derive(Clone, Copy)]
pub struct ConversationId {
    len: u8,
    bytes: [u8; MAX_CONVERSATION_ID_LEN],
}

impl ConversationId {
    /// The empty id (no conversation).
    pub const fn none() -> Self {
        Self { len: 0, bytes: [0; MAX_CONVERSATION_ID_LEN] }
    }

    /// Makes an id from a string of at most [`MAX_CONVERSATION_ID_LEN`] bytes.
    pub fn new(id: &str) -> Result<Self, DecodeError> {
        Self::from_utf8(id.as_bytes())
    }

    /// Makes an id from bytes, checking that they are UTF-8 and short enough.
    pub fn from_utf8(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::check(bytes)?;
        Ok(Self::copy_checked(bytes))
    }

    /// Checks that `bytes` would make a valid id.
    #[inline]
    fn check(bytes: &[u8]) -> Result<(), DecodeError> {
        if bytes.len() > MAX_CONVERSATION_ID_LEN {
            return Err(DecodeError::FieldTooLarge {
                field: field::CONVERSATION_ID,
                len: bytes.len(),
                max: MAX_CONVERSATION_ID_LEN,
            });
        }
        // Ids are usually ASCII, which is UTF-8 without further checking.
        if !bytes.is_ascii() && std::str::from_utf8(bytes).is_err() {
            return Err(DecodeError::InvalidUtf8 { field: field::CONVERSATION_ID });
        }
        Ok(())
    }

    /// Copies bytes that passed [`check`](Self::check).
    #[inline]
    fn copy_checked(bytes: &[u8]) -> Self {
        let mut id = Self::none();
        let len = bytes.len().min(MAX_CONVERSATION_ID_LEN);
        if let (Some(slot), Some(src)) = (id.bytes.get_mut(..len), bytes.get(..len)) {
            slot.copy_from_slice(src);
        }
        id.len = len as u8;
        id
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        // Checked on construction; cannot fail.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// True for the empty id.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for ConversationId {
    fn default() -> Self {
        Self::none()
    }
}

impl PartialEq for ConversationId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ConversationId {}

impl std::hash::Hash for ConversationId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl std::str::FromStr for ConversationId {
    type Err = DecodeError;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Self::new(id)
    }
}

impl TryFrom<&str> for ConversationId {
    type Error = DecodeError;

    fn try_from(id: &str) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// W3C trace context in binary form.
///
/// A malformed trace context on the wire (wrong id lengths, flags above 0xff)
/// is ignored, as the W3C recommendation asks, rather than failing the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Parent span id.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl From<TraceContext> for pb::TraceContext {
    fn from(trace: TraceContext) -> Self {
        Self {
            trace_id: Bytes::copy_from_slice(&trace.trace_id),
            span_id: Bytes::copy_from_slice(&trace.span_id),
            flags: u32::from(trace.flags),
        }
    }
}

impl TraceContext {
    /// Validates a wire trace context; `None` if malformed.
    fn from_parts(trace_id: &[u8], span_id: &[u8], flags: u32) -> Option<Self> {
        Some(Self {
            trace_id: trace_id.try_into().ok()?,
            span_id: span_id.try_into().ok()?,
            flags: u8::try_from(flags).ok()?,
        })
    }

    const fn encoded_len() -> usize {
        // Two length-delimited fields with one-byte keys and lengths; flags added by caller.
        2 + 16 + 2 + 8
    }
}

/// One message between two agents: an intent reference, a performative, ids
/// that thread conversations, and the intent itself as protobuf bytes.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// Which intent the payload holds.
    pub intent: IntentRef,
    /// The performative.
    pub act: Act,
    /// Sender-chosen id, unique per sender; the key for idempotent retry.
    pub message_id: u64,
    /// The conversation this message belongs to (empty for none).
    pub conversation_id: ConversationId,
    /// The `message_id` this message answers; 0 for none.
    pub in_reply_to: u64,
    /// Relative deadline in microseconds from when the receiver reads the
    /// message; 0 for none.
    pub deadline_micros: u64,
    /// Distributed-tracing context, if any.
    pub trace: Option<TraceContext>,
    /// On an ask: the sender may re-send it with the same `message_id`
    /// after losing the connection, so the receiver keeps it (and its
    /// answer) in its idempotent-retry window. Other asks skip the window.
    pub idempotent: bool,
    /// The sender's signature over the envelope's essentials
    /// (`docs/PROTOCOL.md`, "Signed receipts"); `None` when unsigned. Boxed,
    /// so that unsigned envelopes stay small.
    pub signature: Option<Box<EnvelopeSignature>>,
    /// On an ask: the asker asks for a signed answer, to keep as a receipt
    /// (rule `receipt.sign-reply`). Ignored on other envelopes.
    pub sign_reply: bool,
    /// The intent, protobuf-encoded.
    pub payload: Bytes,
}

/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// The signature fields of a signed envelope (fields 10 and 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// The sender's Ed25519 signature over the digest of the essentials.
    pub signature: [u8; SIGNATURE_LEN],
    /// When the sender signed, in microseconds since the Unix epoch.
    pub signed_at_micros: u64,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("intent", &self.intent)
            .field("act", &self.act)
            .field("message_id", &self.message_id)
            .field("conversation_id", &self.conversation_id)
            .field("in_reply_to", &self.in_reply_to)
            .field("deadline_micros", &self.deadline_micros)
            .field("trace", &self.trace)
            .field("idempotent", &self.idempotent)
            .field("signed_at_micros", &self.signature.as_ref().map(|s| s.signed_at_micros))
            .field("sign_reply", &self.sign_reply)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// What the decoder noticed besides the envelope itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeStats {
    /// Fields this version does not know, skipped (including inside the
    /// trace context). A newer peer may send them.
    pub unknown_fields: u32,
}

/// Field numbers of `tacit.v1.Envelope` and `tacit.v1.TraceContext`.
mod field {
    pub(super) const ALIAS: u32 = 1;
    pub(super) const INTENT_ID: u32 = 2;
    pub(super) const ACT: u32 = 3;
    pub(super) const MESSAGE_ID: u32 = 4;
    pub(super) const CONVERSATION_ID: u32 = 5;
    pub(super) const IN_REPLY_TO: u32 = 6;
    pub(super) const DEADLINE_MICROS: u32 = 7;
    pub(super) const TRACE: u32 = 8;
    pub(super) const IDEMPOTENT: u32 = 9;
    pub(super) const SIGNATURE: u32 = 10;
    pub(super) const SIGNED_AT_MICROS: u32 = 11;
    pub(super) const SIGN_REPLY: u32 = 12;
    pub(super) const PAYLOAD: u32 = 15;

    pub(super) const TRACE_ID: u32 = 1;
    pub(super) const SPAN_ID: u32 = 2;
    pub(super) const TRACE_FLAGS: u32 = 3;
}

/// Protobuf wire types.
mod wire {
    pub(super) const VARINT: u8 = 0;
    pub(super) const FIXED64: u8 = 1;
    pub(super) const LEN: u8 = 2;
    pub(super) const START_GROUP: u8 = 3;
    pub(super) const END_GROUP: u8 = 4;
    pub(super) const FIXED32: u8 = 5;
}

impl Envelope {
    /// An envelope with the given intent, act, id and payload, and no
    /// conversation, reply-to, deadline or trace.
    pub fn new(intent: IntentRef, act: Act, message_id: u64, payload: Bytes) -> Self {
        Self {
            intent,
            act,
            message_id,
            conversation_id: ConversationId::none(),
            in_reply_to: 0,
            deadline_micros: 0,
            trace: None,
            idempotent: false,
            signature: None,
            sign_reply: false,
            payload,
        }
    }

    /// Decodes an envelope from one frame body without copying: the payload
    /// shares `frame`'s memory (pass the frame by value; cloning a `Bytes`
    /// only bumps a reference count).
    pub fn decode(frame: Bytes) -> Result<Self, DecodeError> {
        Self::decode_inner(frame, &mut DecodeStats::default())
    }

    /// Like [`decode`](Self::decode), and reports what was skipped.
    pub fn decode_with_stats(frame: Bytes) -> Result<(Self, DecodeStats), DecodeError> {
        let mut stats = DecodeStats::default();
        let envelope = Self::decode_inner(frame, &mut stats)?;
        Ok((envelope, stats))
    }

    #[inline(always)]
    fn decode_inner(frame: Bytes, stats: &mut DecodeStats) -> Result<Self, DecodeError> {
        let mut reader = Reader { buf: &frame, pos: 0 };
        let mut intent = None;
        let mut act = 0i32;
        let mut message_id = 0;
        let mut conversation = 0..0;
        let mut in_reply_to = 0;
        let mut deadline_micros = 0;
        let mut trace: Option<RawTrace> = None;
        let mut idempotent = false;
        let mut signature: Option<Range<usize>> = None;
        let mut signed_at_micros = 0;
        let mut sign_reply = false;
        let mut payload = 0..0;

        while let Some((number, wire_type)) = reader.key()? {
            match (number, wire_type) {
                (field::ALIAS, wire::VARINT) => intent = Some(RawIntent::Alias(reader.varint(number)? as u32)),
                (field::INTENT_ID, wire::LEN) => intent = Some(RawIntent::Id(reader.len_delimited(number)?)),
                (field::ACT, wire::VARINT) => act = reader.varint(number)? as i32,
                (field::MESSAGE_ID, wire::FIXED64) => message_id = reader.fixed64(number)?,
                (field::CONVERSATION_ID, wire::LEN) => {
                    // Every occurrence must be valid, not only the last (which wins).
                    conversation = reader.len_delimited(number)?;
                    ConversationId::check(&frame[conversation.clone()])?;
                }
                (field::IN_REPLY_TO, wire::FIXED64) => in_reply_to = reader.fixed64(number)?,
                (field::DEADLINE_MICROS, wire::VARINT) => deadline_micros = reader.varint(number)?,
                (field::TRACE, wire::LEN) => {
                    let body = reader.len_delimited(number)?;
                    // Protobuf merges repeated occurrences of a message field.
                    let merged = trace.get_or_insert_with(RawTrace::default);
                    merged.merge(&frame, body, stats)?;
                }
                (field::IDEMPOTENT, wire::VARINT) => idempotent = reader.varint(number)? != 0,
                (field::PAYLOAD, wire::LEN) => payload = reader.len_delimited(number)?,
                (field::SIGNATURE, wire::LEN) => {
                    // [receipt.signature-len]: every occurrence exactly 64
                    // bytes, or empty (proto3: absent; the last one wins).
                    let range = reader.len_delimited(number)?;
                    match range.len() {
                        0 => signature = None,
                        SIGNATURE_LEN => signature = Some(range),
                        len => return Err(DecodeError::InvalidSignatureLength(len)),
                    }
                }
                (field::SIGNED_AT_MICROS, wire::FIXED64) => signed_at_micros = reader.fixed64(number)?,
                (field::SIGN_REPLY, wire::VARINT) => sign_reply = reader.varint(number)? != 0,
                (
                    field::ALIAS
                    | field::ACT
                    | field::DEADLINE_MICROS
                    | field::MESSAGE_ID
                    | field::IN_REPLY_TO
                    | field::SIGNED_AT_MICROS
                    | field::IDEMPOTENT
                    | field::SIGN_REPLY,
                    found,
                ) => return Err(wrong_wire_type(number, expected_wire_type(number), found)),
                (
                    field::INTENT_ID | field::CONVERSATION_ID | field::TRACE | field::SIGNATURE | field::PAYLOAD,
                    found,
                ) => {
                    return Err(wrong_wire_type(number, wire::LEN, found));
                }
                (_, wire_type) => {
                    reader.skip(number, wire_type)?;
                    stats.unknown_fields = stats.unknown_fields.saturating_add(1);
                }
            }
        }

        let intent = match intent {
            None => return Err(DecodeError::MissingIntent),
            Some(RawIntent::Alias(alias)) => IntentRef::Alias(alias),
            Some(RawIntent::Id(range)) => IntentRef::Id(
                IntentId::try_from(&frame[range.clone()])
                    .map_err(|_| DecodeError::InvalidIntentIdLength(range.len()))?,
            ),
        };
        let act = match Act::try_from(act) {
            Ok(Act::Unspecified) | Err(_) => return Err(DecodeError::UnknownAct(act)),
            Ok(act) => act,
        };
        let trace = trace.and_then(|t| TraceContext::from_parts(&frame[t.trace_id], &frame[t.span_id], t.flags));
        Ok(Self {
            intent,
            act,
            message_id,
            conversation_id: ConversationId::copy_checked(&frame[conversation]),
            in_reply_to,
            deadline_micros,
            trace,
            idempotent,
            // [receipt.envelope-fields]: a time without a signature is ignored.
            signature: signature.map(|range| {
                let mut signed = Box::new(EnvelopeSignature { signature: [0; SIGNATURE_LEN], signed_at_micros });
                signed.signature.copy_from_slice(&frame[range]);
                signed
            }),
            sign_reply,
            payload: take_range(frame, payload),
        })
    }

    /// Decodes the payload as the intent type `M`. Byte fields of `M` that
    /// are `Bytes` share the frame's memory.
    pub fn decode_payload<M: prost::Message + Default>(&self) -> Result<M, DecodeError> {
        M::decode(self.payload.clone())
            .map_err(|source| DecodeError::InvalidPayload { type_name: std::any::type_name::<M>(), source })
    }

    /// Encodes the envelope (no frame prefix) into a new buffer.
    pub fn encode_to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode_raw(&mut buf);
        buf.freeze()
    }

    /// Length of the protobuf encoding in bytes.
    pub fn encoded_len(&self) -> usize {
        let mut len = match self.intent {
            IntentRef::Alias(alias) => 1 + varint::encoded_len(u64::from(alias)),
            IntentRef::Id(_) => 2 + IntentId::LEN,
        };
        let act = self.act as i32;
        if act != 0 {
            len += 1 + varint::encoded_len(act as i64 as u64);
        }
        if self.message_id != 0 {
            len += 1 + 8;
        }
        len += len_field_len(usize::from(self.conversation_id.len));
        if self.in_reply_to != 0 {
            len += 1 + 8;
        }
        if self.deadline_micros != 0 {
            len += 1 + varint::encoded_len(self.deadline_micros);
        }
        if let Some(trace) = &self.trace {
            len += 2 + trace_body_len(trace);
        }
        if self.idempotent {
            len += 2;
        }
        if let Some(signed) = &self.signature {
            len += 2 + SIGNATURE_LEN;
            if signed.signed_at_micros != 0 {
                len += 1 + 8;
            }
        }
        if self.sign_reply {
            len += 2;
        }
        len + len_field_len(self.payload.len())
    }

    /// Appends the protobuf encoding (no frame prefix) to `buf`, fields in
    /// number order, exactly as prost would write [`pb::Envelope`].
    pub fn encode_raw(&self, buf: &mut impl BufMut) {
        self.encode_fields(buf);
        if !self.payload.is_empty() {
            put_len_field(field::PAYLOAD, &self.payload, buf);
        }
    }

    /// Appends the encoding up to the payload's bytes: every field, then the
    /// payload's key and length, but not the payload itself. Followed by
    /// [`payload`](Self::payload) it is exactly [`encode_raw`](Self::encode_raw)'s
    /// output, so a sender can hand the payload to its transport as a chunk
    /// of its own, without copying it.
    pub fn encode_head(&self, buf: &mut impl BufMut) {
        self.encode_fields(buf);
        if !self.payload.is_empty() {
            put_key(field::PAYLOAD, wire::LEN, buf);
            varint::encode(self.payload.len() as u64, buf);
        }
    }

    /// Every field but the payload, in number order.
    fn encode_fields(&self, buf: &mut impl BufMut) {
        match &self.intent {
            IntentRef::Alias(alias) => {
                put_key(field::ALIAS, wire::VARINT, buf);
                varint::encode(u64::from(*alias), buf);
            }
            IntentRef::Id(id) => put_len_field(field::INTENT_ID, id.as_bytes(), buf),
        }
        let act = self.act as i32;
        if act != 0 {
            put_key(field::ACT, wire::VARINT, buf);
            varint::encode(act as i64 as u64, buf);
        }
        if self.message_id != 0 {
            put_key(field::MESSAGE_ID, wire::FIXED64, buf);
            buf.put_u64_le(self.message_id);
        }
        if !self.conversation_id.is_empty() {
            put_len_field(field::CONVERSATION_ID, self.conversation_id.as_bytes(), buf);
        }
        if self.in_reply_to != 0 {
            put_key(field::IN_REPLY_TO, wire::FIXED64, buf);
            buf.put_u64_le(self.in_reply_to);
        }
        if self.deadline_micros != 0 {
            put_key(field::DEADLINE_MICROS, wire::VARINT, buf);
            varint::encode(self.deadline_micros, buf);
        }
        if let Some(trace) = &self.trace {
            put_key(field::TRACE, wire::LEN, buf);
            varint::encode(trace_body_len(trace) as u64, buf);
            put_len_field(field::TRACE_ID, &trace.trace_id, buf);
            put_len_field(field::SPAN_ID, &trace.span_id, buf);
            if trace.flags != 0 {
                put_key(field::TRACE_FLAGS, wire::VARINT, buf);
                varint::encode(u64::from(trace.flags), buf);
            }
        }
        if self.idempotent {
            put_key(field::IDEMPOTENT, wire::VARINT, buf);
            buf.put_u8(1);
        }
        if let Some(signed) = &self.signature {
            put_len_field(field::SIGNATURE, &signed.signature, buf);
            if signed.signed_at_micros != 0 {
                put_key(field::SIGNED_AT_MICROS, wire::FIXED64, buf);
                buf.put_u64_le(signed.signed_at_micros);
            }
        }
        if self.sign_reply {
            put_key(field::SIGN_REPLY, wire::VARINT, buf);
            buf.put_u8(1);
        }
    }
}

impl FrameBody for Envelope {
    #[inline]
    fn body_len(&self) -> usize {
        self.encoded_len()
    }

    #[inline]
    fn write_body(&self, buf: &mut BytesMut) {
        self.encode_raw(buf)
    }
}

impl From<Envelope> for pb::Envelope {
    fn from(envelope: Envelope) -> Self {
        Self {
            intent: Some(match envelope.intent {
                IntentRef::Alias(alias) => pb::envelope::Intent::Alias(alias),
                IntentRef::Id(id) => pb::envelope::Intent::IntentId(Bytes::copy_from_slice(id.as_bytes())),
            }),
            act: envelope.act.into(),
            message_id: envelope.message_id,
            conversation_id: envelope.conversation_id.as_str().to_owned(),
            in_reply_to: envelope.in_reply_to,
            deadline_micros: envelope.deadline_micros,
            trace: envelope.trace.map(Into::into),
            idempotent: envelope.idempotent,
            signature: envelope.signature.as_ref().map(|s| Bytes::copy_from_slice(&s.signature)).unwrap_or_default(),
            signed_at_micros: envelope.signature.map_or(0, |s| s.signed_at_micros),
            sign_reply: envelope.sign_reply,
            payload: envelope.payload,
        }
    }
}

impl TryFrom<pb::Envelope> for Envelope {
    type Error = DecodeError;

    /// Applies the same checks as [`Envelope::decode`].
    fn try_from(envelope: pb::Envelope) -> Result<Self, Self::Error> {
        let conversation_id = ConversationId::new(&envelope.conversation_id)?;
        let intent = match envelope.intent {
            None => return Err(DecodeError::MissingIntent),
            Some(pb::envelope::Intent::Alias(alias)) => IntentRef::Alias(alias),
            Some(pb::envelope::Intent::IntentId(id)) => {
                IntentRef::Id(IntentId::try_from(&id[..]).map_err(|_| DecodeError::InvalidIntentIdLength(id.len()))?)
            }
        };
        let act = match Act::try_from(envelope.act) {
            Ok(Act::Unspecified) | Err(_) => return Err(DecodeError::UnknownAct(envelope.act)),
            Ok(act) => act,
        };
        let signature = match envelope.signature.len() {
            0 => None,
            SIGNATURE_LEN => {
                let mut signed = Box::new(EnvelopeSignature {
                    signature: [0; SIGNATURE_LEN],
                    signed_at_micros: envelope.signed_at_micros,
                });
                signed.signature.copy_from_slice(&envelope.signature);
                Some(signed)
            }
            len => return Err(DecodeError::InvalidSignatureLength(len)),
        };
        Ok(Self {
            intent,
            act,
            message_id: envelope.message_id,
            conversation_id,
            in_reply_to: envelope.in_reply_to,
            deadline_micros: envelope.deadline_micros,
            trace: envelope.trace.and_then(|t| TraceContext::from_parts(&t.trace_id, &t.span_id, t.flags)),
            idempotent: envelope.idempotent,
            signature,
            sign_reply: envelope.sign_reply,
            payload: envelope.payload,
        })
    }
}

/// An intent reference before validation: the byte range of an id.
enum RawIntent {
    Alias(u32),
    Id(Range<usize>),
}

/// A trace context before validation; ranges index the outer frame.
#[derive(Default)]
struct RawTrace {
    trace_id: Range<usize>,
    span_id: Range<usize>,
    flags: u32,
}

impl RawTrace {
    /// Merges the fields of one occurrence of the trace message, whose bytes
    /// are `frame[body]`.
    fn merge(&mut self, frame: &[u8], body: Range<usize>, stats: &mut DecodeStats) -> Result<(), DecodeError> {
        // Reading the frame only up to the body's end keeps ranges in frame coordinates.
        let mut reader = Reader { buf: frame.get(..body.end).unwrap_or_default(), pos: body.start };
        while let Some((number, wire_type)) = reader.key()? {
            match (number, wire_type) {
                (field::TRACE_ID, wire::LEN) => self.trace_id = reader.len_delimited(number)?,
                (field::SPAN_ID, wire::LEN) => self.span_id = reader.len_delimited(number)?,
                (field::TRACE_FLAGS, wire::VARINT) => self.flags = reader.varint(number)? as u32,
                (field::TRACE_ID | field::SPAN_ID, found) => return Err(wrong_wire_type(number, wire::LEN, found)),
                (field::TRACE_FLAGS, found) => return Err(wrong_wire_type(number, wire::VARINT, found)),
                (_, wire_type) => {
                    reader.skip(number, wire_type)?;
                    stats.unknown_fields = stats.unknown_fields.saturating_add(1);
                }
            }
        }
        Ok(())
    }
}

/// A cursor over protobuf bytes. Every read checks bounds; nothing panics on
/// malformed input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    /// The next key, or `None` at the end of the buffer.
    #[inline(always)]
    fn key(&mut self) -> Result<Option<(u32, u8)>, DecodeError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint(0)?;
        let wire_type = (key & 0x7) as u8;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) || wire_type > wire::FIXED32 {
            return Err(DecodeError::InvalidKey { key });
        }
        Ok(Some((number as u32, wire_type)))
    }

    /// Reads a varint. Keys and most lengths are one or two bytes: those are
    /// read inline, the rest out of line.
    #[inline(always)]
    fn varint(&mut self, field: u32) -> Result<u64, DecodeError> {
        if let Some(&first) = self.buf.get(self.pos) {
            if first < 0x80 {
                self.pos += 1;
                return Ok(u64::from(first));
            }
            if let Some(&second) = self.buf.get(self.pos + 1)
                && second < 0x80
            {
                self.pos += 2;
                return Ok(u64::from(first & 0x7f) | (u64::from(second) << 7));
            }
        }
        self.varint_slow(field)
    }

    #[cold]
    #[inline(never)]
    fn varint_slow(&mut self, field: u32) -> Result<u64, DecodeError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match varint::decode(rest) {
            Ok((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            Err(VarintError::Truncated) => Err(DecodeError::Truncated { field }),
            Err(VarintError::Overlong) => Err(DecodeError::OverlongVarint { field }),
        }
    }

    #[inline]
    fn take(&mut self, len: usize, field: u32) -> Result<Range<usize>, DecodeError> {
        let end =
            self.pos.checked_add(len).filter(|&end| end <= self.buf.len()).ok_or(DecodeError::Truncated { field })?;
        let range = self.pos..end;
        self.pos = end;
        Ok(range)
    }

    #[inline]
    fn fixed64(&mut self, field: u32) -> Result<u64, DecodeError> {
        let range = self.take(8, field)?;
        let bytes: [u8; 8] = self.buf[range].try_into().map_err(|_| DecodeError::Truncated { field })?;
        Ok(u64::from_le_bytes(bytes))
    }

    #[inline]
    fn len_delimited(&mut self, field: u32) -> Result<Range<usize>, DecodeError> {
        let len = self.varint(field)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated { field })?;
        self.take(len, field)
    }

    /// Skips the value of an unknown field. Groups are skipped iteratively,
    /// checking that each end tag matches its start, up to
    /// [`MAX_NESTING_DEPTH`] levels.
    fn skip(&mut self, number: u32, wire_type: u8) -> Result<(), DecodeError> {
        let mut open_groups = [0u32; MAX_NESTING_DEPTH];
        let mut depth = 0usize;
        let (mut number, mut wire_type) = (number, wire_type);
        loop {
            match wire_type {
                wire::VARINT => {
                    self.varint(number)?;
                }
                wire::FIXED64 => {
                    self.take(8, number)?;
                }
                wire::FIXED32 => {
                    self.take(4, number)?;
                }
                wire::LEN => {
                    self.len_delimited(number)?;
                }
                wire::START_GROUP => {
                    let slot =
                        open_groups.get_mut(depth).ok_or(DecodeError::NestingTooDeep { max: MAX_NESTING_DEPTH })?;
                    *slot = number;
                    depth += 1;
                }
                _ => {
                    // END_GROUP: must close the innermost open group.
                    let matches = depth > 0 && open_groups.get(depth - 1) == Some(&number);
                    if !matches {
                        return Err(DecodeError::InvalidKey {
                            key: (u64::from(number) << 3) | u64::from(wire::END_GROUP),
                        });
                    }
                    depth -= 1;
                }
            }
            if depth == 0 {
                return Ok(());
            }
            (number, wire_type) = self.key()?.ok_or(DecodeError::Truncated { field: number })?;
        }
    }
}

/// Narrows the frame to `range` without touching its reference count. The
/// payload is the last field our encoder writes, so usually only the start
/// moves.
#[inline]
fn take_range(mut frame: Bytes, range: Range<usize>) -> Bytes {
    if range.is_empty() {
        return Bytes::new();
    }
    frame.truncate(range.end);
    frame.advance(range.start);
    frame
}

fn expected_wire_type(number: u32) -> u8 {
    match number {
        field::MESSAGE_ID | field::IN_REPLY_TO | field::SIGNED_AT_MICROS => wire::FIXED64,
        _ => wire::VARINT,
    }
}

fn wrong_wire_type(field: u32, expected: u8, found: u8) -> DecodeError {
    DecodeError::WrongWireType { field, expected, found }
}

#[inline]
fn put_key(number: u32, wire_type: u8, buf: &mut impl BufMut) {
    varint::encode((u64::from(number) << 3) | u64::from(wire_type), buf);
}

#[inline]
fn put_len_field(number: u32, value: &[u8], buf: &mut impl BufMut) {
    put_key(number, wire::LEN, buf);
    varint::encode(value.len() as u64, buf);
    buf.put_slice(value);
}

/// Length of a length-delimited field with a one-byte key, or 0 when empty.
#[inline]
fn len_field_len(len: usize) -> usize {
    if len == 0 { 0 } else { 1 + varint::encoded_len(len as u64) + len }
}

#[inline]
fn trace_body_len(trace: &TraceContext) -> usize {
    TraceContext::encoded_len() + if trace.flags != 0 { 1 + varint::encoded_len(u64::from(trace.flags)) } else { 0 }
}
