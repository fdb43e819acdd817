//! What tool definitions cost in an LLM's context: tokens of tiktoken's
//! `o200k_base` encoding (GPT-4o and later), counted on the JSON a client
//! receives (compact serialization, as MCP sends it).
//!
//! Behind the `tokens` feature: tiktoken-rs embeds its vocabularies (about
//! 8 MiB of source) and pulls `fancy-regex`, which a bridge does not need at
//! run time.

use prost_reflect::MessageDescriptor;
use serde_json::{Map, Value, json};

use crate::schema::{self, Direction, Style};

/// An MCP tool definition for an intent: `name`, `description` (the
/// message's `.proto` comment, if any), `inputSchema` and, for a request,
/// `outputSchema` from its reply.
pub fn tool_definition(intent: &MessageDescriptor, reply: Option<&MessageDescriptor>, style: Style) -> Value {
    let mut tool = Map::new();
    tool.insert("name".into(), json!(intent.full_name()));
    if let Some(text) = schema::description(intent) {
        tool.insert("description".into(), json!(text));
    }
    tool.insert("inputSchema".into(), schema::schema(intent, Direction::Input, style));
    if let Some(reply) = reply {
        tool.insert("outputSchema".into(), schema::schema(reply, Direction::Output, style));
    }
    Value::Object(tool)
}

/// The `o200k_base` tokens of `value` serialized as compact JSON.
pub fn count(value: &Value) -> usize {
    tiktoken_rs::o200k_base_singleton().encode_with_special_tokens(&value.to_string()).len()
}
