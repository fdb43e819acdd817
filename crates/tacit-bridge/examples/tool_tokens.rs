//! Tokens (o200k_base) and bytes of the MCP tool definition of every standard
//! intent and every market intent, compact against full-fat schemas.
//!
//! ```text
//! cargo run -q -p tacit-bridge --features tokens --example tool_tokens
//! ```

use prost_reflect::{DescriptorPool, MessageDescriptor};
use tacit_bridge::schema::{Style, tool_definition};
use tacit_bridge::tokens::count;

/// `(tacit.v1.reply)`, `(tacit.v1.stream_item)` on `google.protobuf.MessageOptions`.
const REPLY_OPTION: u32 = 50701;

fn reply(message: &MessageDescriptor) -> Option<MessageDescriptor> {
    let options = message.options();
    let (_, value) = options.extensions().find(|(extension, _)| extension.number() == REPLY_OPTION)?;
    let name = value.as_str()?;
    let full = match name.strip_prefix('.') {
        Some(full) => full.to_owned(),
        None => format!("{}.{name}", message.package_name()),
    };
    message.parent_pool().get_message_by_name(&full)
}

/// `value` without its `description`s: what the comments cost.
fn without_descriptions(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(object) => object
            .iter()
            .filter(|(key, value)| !(key.as_str() == "description" && value.is_string()))
            .map(|(key, value)| (key.clone(), without_descriptions(value)))
            .collect(),
        serde_json::Value::Array(items) => items.iter().map(without_descriptions).collect(),
        other => other.clone(),
    }
}

fn main() {
    let sets: [(&str, &[u8]); 2] = [
        ("tacit.intents.v1.", tacit::intents::FILE_DESCRIPTOR_SET),
        ("market.v1.", tacit_examples::market::v1::FILE_DESCRIPTOR_SET),
    ];
    println!(
        "| tool | kind | compact tokens | full tokens | saved | compact bytes | full bytes | compact tokens without descriptions |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let (mut compact_sum, mut full_sum, mut bare_sum, mut tools) = (0, 0, 0, 0);
    for (prefix, set) in sets {
        let pool = DescriptorPool::decode(set).expect("a generated descriptor set decodes");
        let mut messages: Vec<MessageDescriptor> =
            pool.all_messages().filter(|m| m.full_name().starts_with(prefix) && m.parent_message().is_none()).collect();
        messages.sort_by(|a, b| a.full_name().cmp(b.full_name()));
        for message in messages {
            let reply = reply(&message);
            let compact = tool_definition(message.full_name(), &message, reply.as_ref(), Style::Compact);
            let full = tool_definition(message.full_name(), &message, reply.as_ref(), Style::Full);
            let (c, f, b) = (count(&compact), count(&full), count(&without_descriptions(&compact)));
            compact_sum += c;
            bare_sum += b;
            full_sum += f;
            tools += 1;
            println!(
                "| {} | {} | {c} | {f} | {:.0} % | {} | {} | {b} |",
                message.full_name(),
                if reply.is_some() { "ask" } else { "no reply" },
                100.0 * (f - c) as f64 / f as f64,
                compact.to_string().len(),
                full.to_string().len(),
            );
        }
    }
    println!(
        "| **all {tools} tools** | | **{compact_sum}** | **{full_sum}** | **{:.0} %** | | | **{bare_sum}** |",
        100.0 * (full_sum - compact_sum) as f64 / full_sum as f64
    );
    // What single keywords cost, for the notes under the table.
    let standard = serde_json::json!({ "pattern": tacit_bridge::schema::STANDARD_BASE64_PATTERN });
    let both = serde_json::json!({ "pattern": tacit_bridge::schema::BASE64_PATTERN });
    let signed = serde_json::json!({ "minimum": i64::MIN, "maximum": i64::MAX });
    let unsigned = serde_json::json!({ "minimum": 0, "maximum": u64::MAX });
    println!(
        "\nbase64 pattern: {} tokens compact, {} full; int64 bounds: {} tokens, uint64: {} (each with its braces, 2 tokens)",
        count(&standard),
        count(&both),
        count(&signed),
        count(&unsigned)
    );
    if let Some(name) = std::env::args().nth(1) {
        let pool = DescriptorPool::decode(tacit::intents::FILE_DESCRIPTOR_SET).unwrap();
        let message = pool.get_message_by_name(&name).or_else(|| {
            DescriptorPool::decode(tacit_examples::market::v1::FILE_DESCRIPTOR_SET).unwrap().get_message_by_name(&name)
        });
        if let Some(message) = message {
            let reply = reply(&message);
            println!("{}", tool_definition(message.full_name(), &message, reply.as_ref(), Style::Compact));
            println!("{}", tool_definition(message.full_name(), &message, reply.as_ref(), Style::Full));
        }
    }
}
