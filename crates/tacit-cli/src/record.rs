//! One received message, as `tacit listen` prints it and `tacit inspect`
//! prints it back from a capture: one JSON shape, the same keys in both
//! (a key that does not apply is `null`), and the capture file that keeps
//! what the envelope does not carry (the sender and the time).
//!
//! The JSON keys:
//!
//! | key | value |
//! |---|---|
//! | `ts` | when it was received, RFC 3339 in UTC (`null` in a capture of bare frames) |
//! | `peer` | the sender's AgentId (`null` in a capture of bare frames) |
//! | `lane` | `ask`, `tell` or `stream` (`null` in a capture of bare frames) |
//! | `act` | `REQUEST`, `INFORM`, ... |
//! | `intent` | the intent's full name, when known |
//! | `intent_id` | its IntentId in hex (`null` when the frame names it by a session alias) |
//! | `message_id`, `in_reply_to` | as decimal strings (`in_reply_to` `null` for none) |
//! | `conversation` | the conversation id, or `null` |
//! | `deadline_micros` | the time left when it arrived, as a decimal string, or `null` |
//! | `trace` | W3C trace context `{trace_id, span_id, flags}`, or `null` |
//! | `schema` | where the schema came from: `peer`, `builtin` or `file`; `null` when undecoded |
//! | `message` | the payload decoded to JSON, or `null` |
//! | `undecoded` | `{reason, payload_base64}` when the payload could not be decoded, else `null` |
//!
//! A capture file (`listen --capture`) starts with [`CAPTURE_MAGIC`], then
//! holds one frame (varint length, then body) per message, whose body is a
//! [`CaptureRecord`]: the time, the sender, the lane, the envelope and the
//! intent's name, and with the first message of an intent whose schema was
//! fetched from its sender, that schema (so `inspect` decodes it as `listen`
//! did, without `--schema`).
//! `inspect` also reads files of bare envelope frames (no magic), as a
//! transport writes them.

use bytes::Bytes;
use data_encoding::HEXLOWER;
use serde_json::{Value, json};
use tacit::{Act, AgentId, ConversationId, IntentId};
use tacit_wire::TraceContext;

use crate::error;

/// The first bytes of a capture file written by `tacit listen --capture`.
pub(crate) const CAPTURE_MAGIC: &[u8] = b"tacit capture v1\n";

/// One captured message: the body of each frame of a capture file.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CaptureRecord {
    /// When it was received, microseconds since the Unix epoch (UTC).
    #[prost(fixed64, tag = "1")]
    pub(crate) received_at_micros: u64,
    /// The sender's AgentId (32 bytes).
    #[prost(bytes = "bytes", tag = "2")]
    pub(crate) sender: Bytes,
    /// `ask`, `tell` or `stream`.
    #[prost(string, tag = "3")]
    pub(crate) lane: String,
    /// The envelope, encoded (a Tacit frame body).
    #[prost(bytes = "bytes", tag = "4")]
    pub(crate) envelope: Bytes,
    /// The intent's full name, when known.
    #[prost(string, tag = "5")]
    pub(crate) intent_name: String,
    /// The encoded `FileDescriptorSet` the sender served for the intent:
    /// with the first message of each intent whose schema was fetched.
    #[prost(bytes = "bytes", tag = "6")]
    pub(crate) descriptor_set: Bytes,
}

/// What is known about one message besides its payload.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// Received at, microseconds since the Unix epoch.
    pub(crate) received_at_micros: Option<u64>,
    pub(crate) peer: Option<AgentId>,
    pub(crate) lane: Option<String>,
    pub(crate) act: Act,
    pub(crate) intent: Option<String>,
    pub(crate) intent_id: Option<IntentId>,
    pub(crate) message_id: u64,
    pub(crate) in_reply_to: u64,
    pub(crate) conversation: ConversationId,
    pub(crate) deadline_micros: u64,
    pub(crate) trace: Option<TraceContext>,
}

/// The payload, decoded or not.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// Decoded through a schema from `schema` (`peer`, `builtin`, `file`).
    Decoded { message: Value, schema: &'static str },
    /// Not decoded: `{reason, payload_base64}` (see [`crate::json::undecoded`]).
    Undecoded(Value),
}

/// The JSON line of one message (every key of the table above, in order).
pub(crate) fn line(meta: &Meta, body: Body) -> Value {
    let (schema, message, undecoded) = match body {
        Body::Decoded { message, schema } => (Some(schema), message, Value::Null),
        Body::Undecoded(undecoded) => (None, Value::Null, undecoded),
    };
    json!({
        "ts": meta.received_at_micros.map(crate::time::rfc3339_micros),
        "peer": meta.peer.as_ref().map(ToString::to_string),
        "lane": meta.lane,
        "act": error::act_name(meta.act),
        "intent": meta.intent,
        "intent_id": meta.intent_id.map(|id| HEXLOWER.encode(id.as_bytes())),
        "message_id": meta.message_id.to_string(),
        "in_reply_to": (meta.in_reply_to != 0).then(|| meta.in_reply_to.to_string()),
        "conversation": (!meta.conversation.is_empty()).then(|| meta.conversation.as_str()),
        "deadline_micros": (meta.deadline_micros != 0).then(|| meta.deadline_micros.to_string()),
        "trace": meta.trace.as_ref().map(|trace| json!({
            "trace_id": HEXLOWER.encode(&trace.trace_id),
            "span_id": HEXLOWER.encode(&trace.span_id),
            "flags": trace.flags,
        })),
        "schema": schema,
        "message": message,
        "undecoded": undecoded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_present_decoded_or_not() {
        let meta = Meta {
            received_at_micros: None,
            peer: None,
            lane: None,
            act: Act::Inform,
            intent: None,
            intent_id: None,
            message_id: 7,
            in_reply_to: 0,
            conversation: ConversationId::none(),
            deadline_micros: 0,
            trace: None,
        };
        let keys = |value: &Value| value.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let decoded = line(&meta, Body::Decoded { message: json!({}), schema: "peer" });
        let undecoded = line(&meta, Body::Undecoded(crate::json::undecoded("why", b"\x01")));
        assert_eq!(keys(&decoded), keys(&undecoded));
        assert_eq!(keys(&decoded).len(), 14);
        assert_eq!(undecoded["undecoded"]["payload_base64"], "AQ==");
        assert_eq!(decoded["message_id"], "7");
    }
}
