//! What tool definitions cost in an LLM's context: tokens of tiktoken's
//! `o200k_base` encoding (GPT-4o and later), counted on the JSON a client
//! receives (compact serialization, as MCP sends it).
//!
//! Behind the `tokens` feature: tiktoken-rs embeds its vocabularies (about
//! 8 MiB of source) and pulls `fancy-regex`, which a bridge does not need at
//! run time.

use serde_json::Value;

/// The `o200k_base` tokens of `value` serialized as compact JSON.
pub fn count(value: &Value) -> usize {
    tiktoken_rs::o200k_base_singleton().encode_with_special_tokens(&value.to_string()).len()
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_o200k_tokens_of_compact_json() {
        // `{"a":1}` is a handful of tokens; its pretty form would be more.
        let value = serde_json::json!({ "a": 1 });
        let tokens = count(&value);
        assert!((1..=7).contains(&tokens), "{tokens}");
        let longer = serde_json::json!({ "a": 1, "description": "A liveness probe that measures round-trip time." });
        assert!(count(&longer) > tokens + 5);
    }
}
