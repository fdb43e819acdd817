//! Protobuf ⇄ JSON through schemas (the protobuf JSON mapping, as
//! prost-reflect implements it), errors that name the field, and what a
//! schema says about an intent's reply.

use bytes::Bytes;
use data_encoding::BASE64;
use prost_reflect::{
    Cardinality, DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};
use serde_json::{Map, Value};
use tacit::IntentId;

use crate::error::{CliError, Exit};

/// Field numbers of Tacit's options on `google.protobuf.MessageOptions`
/// (`proto/tacit/v1/options.proto`): `(tacit.v1.reply)`,
/// `(tacit.v1.stream_item)`, `(tacit.v1.stream_send)`.
const REPLY_OPTION: u32 = 50701;
const STREAM_ITEM_OPTION: u32 = 50702;
const STREAM_SEND_OPTION: u32 = 50703;

/// A decoded message as JSON: field names as in the `.proto`, every field
/// (defaults included), 64-bit integers as strings, bytes as base64.
pub(crate) fn to_json(message: &DynamicMessage) -> Value {
    let options = SerializeOptions::new().use_proto_field_name(true).skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap_or_else(|e| Value::String(format!("<cannot show as JSON: {e}>")))
}

/// `{"reason": ..., "payload_base64": ...}`: a payload that could not be decoded.
pub(crate) fn undecoded(reason: &str, payload: &[u8]) -> Value {
    serde_json::json!({ "reason": reason, "payload_base64": BASE64.encode(payload) })
}

/// Builds a message of type `descriptor` from JSON text. An error names the
/// field at fault (`status.task_id`) and what it expected.
pub(crate) fn from_json(descriptor: &MessageDescriptor, text: &str) -> Result<DynamicMessage, CliError> {
    let bad = |message: String| {
        CliError::new(Exit::BadJson, message).hint(format!(
            "{} has the fields: {} (JSON keys may also be in lowerCamelCase; 64-bit integers may be strings)",
            descriptor.full_name(),
            field_list(descriptor)
        ))
    };
    let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("the message is not valid JSON: {e}")))?;
    match DynamicMessage::deserialize(descriptor.clone(), &value) {
        Ok(message) => Ok(message),
        Err(error) => Err(bad(match locate(descriptor, &value, "") {
            Some(found) => found,
            None => format!("the JSON does not fit {}: {error}", descriptor.full_name()),
        })),
    }
}

/// Finds which field of `value` does not fit `descriptor`, and why.
fn locate(descriptor: &MessageDescriptor, value: &Value, path: &str) -> Option<String> {
    let Value::Object(object) = value else {
        let at = if path.is_empty() { String::new() } else { format!("field `{path}`: ") };
        return Some(format!(
            "{at}expected a JSON object for message {}, found {}",
            descriptor.full_name(),
            kind(value)
        ));
    };
    for (key, item) in object {
        let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        let Some(field) = descriptor.get_field_by_json_name(key).or_else(|| descriptor.get_field_by_name(key)) else {
            if descriptor.get_extension_by_json_name(key).is_some() {
                continue;
            }
            return Some(format!(
                "unknown field `{here}`: {} has no field {key:?}{}",
                descriptor.full_name(),
                suggest(descriptor, key)
            ));
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
        return Some(format!("field `{here}` ({}): {error}", type_name(&field)));
    }
    None
}

/// [`locate`] inside the value of a message field (or each element of a repeated one).
fn locate_nested(inner: &MessageDescriptor, cardinality: Cardinality, item: &Value, here: &str) -> Option<String> {
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

fn field_list(descriptor: &MessageDescriptor) -> String {
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
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
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

/// The full name of the message that answers `request`, if its
/// `(tacit.v1.reply)` option names one (relative to the request's package,
/// or fully qualified with a leading dot).
pub(crate) fn reply_type(request: &MessageDescriptor) -> Option<String> {
    named_message(request, REPLY_OPTION).map(|reply| reply.full_name().to_owned())
}

/// What an intent that opens a stream lane declares about it.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamTypes {
    /// What the handler streams back (`(tacit.v1.stream_item)`).
    pub(crate) item: Option<MessageDescriptor>,
    /// What the opener sends after the opening (`(tacit.v1.stream_send)`).
    pub(crate) send: Option<MessageDescriptor>,
}

impl StreamTypes {
    /// Whether the intent declares that it opens a stream lane.
    pub(crate) fn is_stream(&self) -> bool {
        self.item.is_some() || self.send.is_some()
    }
}

/// The stream item and send types `opening` names, from its schema.
pub(crate) fn stream_types(opening: &MessageDescriptor) -> StreamTypes {
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

/// Every message of an encoded `FileDescriptorSet` with its IntentId.
pub(crate) fn index_descriptor_set(set: &[u8]) -> Result<Vec<(IntentId, MessageDescriptor)>, String> {
    let pool = DescriptorPool::decode(Bytes::copy_from_slice(set)).map_err(|e| e.to_string())?;
    let mut index = Vec::new();
    for message in pool.all_messages().filter(|message| !message.is_map_entry()) {
        if let Ok(id) = IntentId::of_message_in_encoded_set(set, message.full_name()) {
            index.push((id, message));
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use tacit::Intent;
    use tacit::intents::{DelegateTask, Ping, TaskStatus};

    use super::*;

    fn descriptor<I: Intent>() -> MessageDescriptor {
        tacit::Schema::of::<I>().unwrap().message_descriptor().clone()
    }

    #[test]
    fn round_trip_with_64_bit_strings() {
        let message = from_json(&descriptor::<Ping>(), r#"{"nonce": "5"}"#).unwrap();
        assert_eq!(to_json(&message), serde_json::json!({"nonce": "5"}));
        let message = from_json(&descriptor::<Ping>(), r#"{"nonce": 6}"#).unwrap();
        assert_eq!(to_json(&message), serde_json::json!({"nonce": "6"}));
    }

    #[test]
    fn errors_name_the_field() {
        let error = from_json(&descriptor::<Ping>(), r#"{"nonse": 1}"#).unwrap_err();
        assert_eq!(error.exit, Exit::BadJson);
        assert!(error.message.contains("unknown field `nonse`"), "{}", error.message);
        assert!(error.message.contains(r#"did you mean "nonce""#), "{}", error.message);

        let error = from_json(&descriptor::<Ping>(), r#"{"nonce": "many"}"#).unwrap_err();
        assert!(error.message.contains("field `nonce` (uint64)"), "{}", error.message);

        let error = from_json(&descriptor::<DelegateTask>(), r#"{"task_id": 3}"#).unwrap_err();
        assert!(error.message.contains("field `task_id` (string)"), "{}", error.message);

        let error = from_json(&descriptor::<Ping>(), "{nonce").unwrap_err();
        assert!(error.message.contains("not valid JSON"), "{}", error.message);
    }

    #[test]
    fn nested_errors_name_the_path() {
        let update = tacit::Schema::of::<tacit::intents::TaskUpdate>().unwrap();
        let error =
            from_json(update.message_descriptor(), r#"{"status": {"task_id": "t", "state": "NAPPING"}}"#).unwrap_err();
        assert!(error.message.contains("field `status.state`"), "{}", error.message);
    }

    #[test]
    fn the_reply_option_is_read() {
        assert_eq!(reply_type(&descriptor::<Ping>()).as_deref(), Some("tacit.intents.v1.Pong"));
        assert_eq!(reply_type(&descriptor::<DelegateTask>()).as_deref(), Some(TaskStatus::NAME));
        assert_eq!(reply_type(&descriptor::<TaskStatus>()), None);
    }

    #[test]
    fn the_stream_options_are_read() {
        use tacit_build_tests::acme::market::v1::{Bid, ReserveSlot, SlotOffer, WatchOffers, WatchWindow};
        let name = |m: Option<MessageDescriptor>| m.map(|m| m.full_name().to_owned());
        let offers = stream_types(&descriptor::<WatchOffers>());
        assert!(offers.is_stream());
        assert_eq!(name(offers.item).as_deref(), Some(SlotOffer::NAME));
        assert_eq!(name(offers.send).as_deref(), Some(Bid::NAME));
        let window = stream_types(&descriptor::<WatchWindow>());
        assert_eq!(name(window.item).as_deref(), Some("acme.market.v1.ReserveSlot.Window"));
        assert_eq!(name(window.send), None);
        assert!(!stream_types(&descriptor::<ReserveSlot>()).is_stream());
        assert_eq!(reply_type(&descriptor::<WatchOffers>()), None);
    }

    /// A set defining `demo.v1.Hello` (whose options carry `(tacit.v1.reply) = "Hi"`
    /// as an unknown field: the set does not include options.proto) and `demo.v1.Hi`.
    fn set_without_options_proto() -> Vec<u8> {
        use prost_types::field_descriptor_proto::{Label, Type};
        use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};
        let string_field = |name: &str| FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(1),
            label: Some(Label::Optional as i32),
            r#type: Some(Type::String as i32),
            json_name: Some(name.into()),
            ..Default::default()
        };
        let message = |name: &str| DescriptorProto {
            name: Some(name.into()),
            field: vec![string_field("text")],
            ..Default::default()
        };
        let mut file = FileDescriptorProto {
            name: Some("demo.proto".into()),
            package: Some("demo.v1".into()),
            message_type: vec![message("Hi")],
            syntax: Some("proto3".into()),
            ..Default::default()
        }
        .encode_to_vec();
        let mut options = Vec::new();
        prost::encoding::string::encode(REPLY_OPTION, &"Hi".to_owned(), &mut options);
        let mut hello = message("Hello").encode_to_vec();
        prost::encoding::bytes::encode(7, &options, &mut hello); // DescriptorProto.options
        prost::encoding::bytes::encode(4, &hello, &mut file); // FileDescriptorProto.message_type
        let mut set = Vec::new();
        prost::encoding::bytes::encode(1, &file, &mut set); // FileDescriptorSet.file
        set
    }

    #[test]
    fn the_reply_option_is_read_as_an_unknown_field() {
        let set = set_without_options_proto();
        let index = index_descriptor_set(&set).unwrap();
        let hello = index.iter().find(|(_, m)| m.full_name() == "demo.v1.Hello").unwrap();
        assert_eq!(reply_type(&hello.1).as_deref(), Some("demo.v1.Hi"));
        let hi = index.iter().find(|(_, m)| m.full_name() == "demo.v1.Hi").unwrap();
        assert_eq!(reply_type(&hi.1), None);
        assert_ne!(hello.0, hi.0);
    }

    #[test]
    fn the_standard_set_indexes_to_the_compiled_ids() {
        let index = index_descriptor_set(tacit::intents::FILE_DESCRIPTOR_SET).unwrap();
        let ping = index.iter().find(|(_, message)| message.full_name() == Ping::NAME).unwrap();
        assert_eq!(ping.0, Ping::ID);
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("nonce", "nonse"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("Ping", "Ping"), 0);
    }
}
