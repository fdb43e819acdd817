//! Protobuf ⇄ JSON through descriptors, in the proto3 JSON mapping as
//! `prost-reflect` reads and writes it, with errors that name the field at
//! fault; and what a schema says about an intent's reply and stream lane
//! (Tacit's `(tacit.v1.reply)`, `(tacit.v1.stream_item)` and
//! `(tacit.v1.stream_send)` message options).
//!
//! `tacit ask` and `tacit mcp` share this code: what the one prints as an
//! error, the other sends as a JSON-RPC invalid-params error.
//!
//! ```
//! # let pool = prost_reflect::DescriptorPool::decode(tacit::intents::FILE_DESCRIPTOR_SET).unwrap();
//! let ping = pool.get_message_by_name("tacit.intents.v1.Ping").unwrap();
//! let error = tacit_bridge::json::from_value(&ping, &serde_json::json!({"nonse": 1})).unwrap_err();
//! assert_eq!(error.field.as_deref(), Some("nonse"));
//! assert!(error.message.contains("did you mean \"nonce\""));
//! ```

use std::fmt;

use prost_reflect::{Cardinality, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

/// Field numbers of Tacit's options on `google.protobuf.MessageOptions`
/// (`proto/tacit/v1/options.proto`): `(tacit.v1.reply)`,
/// `(tacit.v1.stream_item)`, `(tacit.v1.stream_send)`.
pub const REPLY_OPTION: u32 = 50701;
const STREAM_ITEM_OPTION: u32 = 50702;
const STREAM_SEND_OPTION: u32 = 50703;

/// JSON that does not fit a message: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsonError {
    /// The path of the field at fault (`status.task_id`, `items[2].name`),
    /// `None` when the whole value is at fault (not an object, say).
    pub field: Option<String>,
    /// What went wrong, naming the field and what it expected.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JsonError {}

/// Builds a message of type `descriptor` from a JSON value (the proto3 JSON
/// mapping: lowerCamelCase or `.proto` field names, 64-bit integers as
/// strings or numbers, enums by name, bytes as base64). An error names the
/// field at fault and what it expected.
pub fn from_value(descriptor: &MessageDescriptor, value: &Value) -> Result<DynamicMessage, JsonError> {
    match DynamicMessage::deserialize(descriptor.clone(), value) {
        Ok(message) => Ok(message),
        Err(error) => Err(match locate(descriptor, value, "") {
            Some((field, message)) => JsonError { field, message },
            None => {
                JsonError { field: None, message: format!("the JSON does not fit {}: {error}", descriptor.full_name()) }
            }
        }),
    }
}

/// `message` as JSON, in the proto3 JSON mapping with lowerCamelCase keys
/// and every field written, defaults included (what [`crate::schema::output_schema`] describes).
pub fn to_value(message: &DynamicMessage) -> Value {
    let options = prost_reflect::SerializeOptions::new().skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap_or_else(|e| Value::String(format!("<cannot show as JSON: {e}>")))
}

/// The message that answers `request`, if its `(tacit.v1.reply)` option
/// names one in `request`'s pool.
pub fn reply_type(request: &MessageDescriptor) -> Option<MessageDescriptor> {
    named_message(request, REPLY_OPTION)
}

/// Finds which field of `value` does not fit `descriptor`, and why.
fn locate(descriptor: &MessageDescriptor, value: &Value, path: &str) -> Option<(Option<String>, String)> {
    let Value::Object(object) = value else {
        let at = if path.is_empty() { String::new() } else { format!("field `{path}`: ") };
        let field = (!path.is_empty()).then(|| path.to_owned());
        return Some((
            field,
            format!("{at}expected a JSON object for message {}, found {}", descriptor.full_name(), kind(value)),
        ));
    };
    for (key, item) in object {
        let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        let Some(field) = descriptor.get_field_by_json_name(key).or_else(|| descriptor.get_field_by_name(key)) else {
            if descriptor.get_extension_by_json_name(key).is_some() {
                continue;
            }
            let message = format!(
                "unknown field `{here}`: {} has no field {key:?}{}",
                descriptor.full_name(),
                suggest(descriptor, key)
            );
            return Some((Some(here), message));
        };
        let mut alone = Map::new();
        alone.insert(key.clone(), item.clone());
        let Err(error) = DynamicMessage::deserialize(descriptor.clone(), Value::Object(alone)) else {
            continue;
        };
        // Look inside nested messages for the field at fault.
        if let Kind::Message(inner) = field.kind()
            && !field.is_map()
            && !is_well_known(&inner)
            && let Some(found) = locate_nested(&inner, field.cardinality(), item, &here)
        {
            return Some(found);
        }
        let message = format!("field `{here}` ({}): {error}", type_name(&field));
        return Some((Some(here), message));
    }
    None
}

/// [`locate`] inside the value of a message field (or each element of a repeated one).
fn locate_nested(
    inner: &MessageDescriptor,
    cardinality: Cardinality,
    item: &Value,
    here: &str,
) -> Option<(Option<String>, String)> {
    match (cardinality, item) {
        (Cardinality::Repeated, Value::Array(items)) => items.iter().enumerate().find_map(|(index, element)| {
            DynamicMessage::deserialize(inner.clone(), element)
                .is_err()
                .then(|| locate(inner, element, &format!("{here}[{index}]")))
                .flatten()
        }),
        (Cardinality::Repeated, _) | (_, Value::Null) => None,
        (_, nested) => locate(inner, nested, here),
    }
}

/// `google.protobuf.*` types have JSON forms of their own (Timestamp as a string, ...).
fn is_well_known(message: &MessageDescriptor) -> bool {
    message.package_name() == "google.protobuf"
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `repeated uint64`, `map<string, string>`, `tacit.intents.v1.TaskStatus`.
fn type_name(field: &FieldDescriptor) -> String {
    fn of(kind: &Kind) -> String {
        match kind {
            Kind::Message(message) => message.full_name().to_owned(),
            Kind::Enum(e) => format!("enum {}", e.full_name()),
            Kind::Double => "double".into(),
            Kind::Float => "float".into(),
            Kind::Int32 => "int32".into(),
            Kind::Int64 => "int64".into(),
            Kind::Uint32 => "uint32".into(),
            Kind::Uint64 => "uint64".into(),
            Kind::Sint32 => "sint32".into(),
            Kind::Sint64 => "sint64".into(),
            Kind::Fixed32 => "fixed32".into(),
            Kind::Fixed64 => "fixed64".into(),
            Kind::Sfixed32 => "sfixed32".into(),
            Kind::Sfixed64 => "sfixed64".into(),
            Kind::Bool => "bool".into(),
            Kind::String => "string".into(),
            Kind::Bytes => "bytes (base64)".into(),
        }
    }
    if field.is_map()
        && let Kind::Message(entry) = field.kind()
    {
        let key = entry.map_entry_key_field().kind();
        let value = entry.map_entry_value_field().kind();
        return format!("map<{}, {}>", of(&key), of(&value));
    }
    match field.cardinality() {
        Cardinality::Repeated => format!("repeated {}", of(&field.kind())),
        _ => of(&field.kind()),
    }
}

/// `nonce (uint64), task_id (string)`: the fields of `descriptor` and their types, for hints.
pub fn field_list(descriptor: &MessageDescriptor) -> String {
    let fields: Vec<String> = descriptor.fields().map(|f| format!("{} ({})", f.name(), type_name(&f))).collect();
    if fields.is_empty() { "none".into() } else { fields.join(", ") }
}

/// `; did you mean "task_id"?` when a field name is close to `key`.
fn suggest(descriptor: &MessageDescriptor, key: &str) -> String {
    let best = descriptor
        .fields()
        .flat_map(|f| [f.name().to_owned(), f.json_name().to_owned()])
        .map(|name| (edit_distance(&name.to_lowercase(), &key.to_lowercase()), name))
        .min();
    match best {
        Some((distance, name)) if distance <= 2.max(key.len() / 3) => format!("; did you mean {name:?}?"),
        _ => String::new(),
    }
}

/// Levenshtein distance, for suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// What an intent that opens a stream lane declares about it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StreamTypes {
    /// What the handler streams back (`(tacit.v1.stream_item)`).
    pub item: Option<MessageDescriptor>,
    /// What the opener sends after the opening (`(tacit.v1.stream_send)`).
    pub send: Option<MessageDescriptor>,
}

impl StreamTypes {
    /// Whether the intent declares that it opens a stream lane.
    pub fn is_stream(&self) -> bool {
        self.item.is_some() || self.send.is_some()
    }
}

/// The stream item and send types `opening` names, from its schema.
pub fn stream_types(opening: &MessageDescriptor) -> StreamTypes {
    StreamTypes { item: named_message(opening, STREAM_ITEM_OPTION), send: named_message(opening, STREAM_SEND_OPTION) }
}

/// The message named by one of Tacit's string options (field `number` of
/// `message`'s options), resolved in `message`'s pool.
fn named_message(message: &MessageDescriptor, number: u32) -> Option<MessageDescriptor> {
    let options = message.options();
    // Known to the pool (the descriptor set includes tacit/v1/options.proto):
    // an extension; otherwise an unknown field of the options.
    let value = options
        .extensions()
        .find(|(extension, _)| extension.number() == number)
        .and_then(|(_, value)| value.as_str().map(str::to_owned))
        .or_else(|| {
            options.unknown_fields().filter(|field| field.number() == number).find_map(|field| {
                let mut encoded = Vec::new();
                field.encode(&mut encoded);
                string_field_value(&encoded)
            })
        })?;
    let name = match value.strip_prefix('.') {
        Some(full) => full.to_owned(),
        None if message.package_name().is_empty() => value,
        None => format!("{}.{value}", message.package_name()),
    };
    message.parent_pool().get_message_by_name(&name)
}

/// The string of one encoded length-delimited field (key, length, bytes).
fn string_field_value(mut encoded: &[u8]) -> Option<String> {
    let _key = prost::encoding::decode_varint(&mut encoded).ok()?;
    let len = usize::try_from(prost::encoding::decode_varint(&mut encoded).ok()?).ok()?;
    let bytes = encoded.get(..len)?;
    String::from_utf8(bytes.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use prost_reflect::DescriptorPool;
    use serde_json::json;

    use super::*;

    fn message(name: &str) -> MessageDescriptor {
        let pool = DescriptorPool::decode(tacit::intents::FILE_DESCRIPTOR_SET).unwrap();
        pool.get_message_by_name(name).unwrap()
    }

    #[test]
    fn errors_carry_the_field_path() {
        let update = message("tacit.intents.v1.TaskUpdate");
        let error = from_value(&update, &json!({"status": {"taskId": "t", "state": "NAPPING"}})).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("status.state"));
        assert!(error.message.contains("field `status.state`"), "{error}");
        let error = from_value(&update, &json!({"status": 3})).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("status"));
        let error = from_value(&update, &json!([1])).unwrap_err();
        assert_eq!(error.field, None);
        assert!(error.message.contains("expected a JSON object"), "{error}");
    }

    #[test]
    fn values_round_trip_in_camel_case() {
        let status = message("tacit.intents.v1.TaskStatus");
        let decoded = from_value(&status, &json!({"task_id": "t", "updatedAtMicros": 5})).unwrap();
        let value = to_value(&decoded);
        assert_eq!(value["taskId"], "t");
        assert_eq!(value["updatedAtMicros"], "5");
        assert_eq!(value["message"], "", "defaults are written");
        assert_eq!(reply_type(&message("tacit.intents.v1.DelegateTask")).unwrap().full_name(), status.full_name());
        assert!(reply_type(&status).is_none());
    }
}
