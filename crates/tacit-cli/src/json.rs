//! Protobuf ⇄ JSON through schemas (the protobuf JSON mapping, as
//! prost-reflect implements it), errors that name the field, and what a
//! schema says about an intent's reply.

use bytes::Bytes;
use data_encoding::BASE64;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;
use tacit::IntentId;
use tacit_bridge::json as bridge;

use crate::error::{CliError, Exit};

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
            bridge::field_list(descriptor)
        ))
    };
    let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("the message is not valid JSON: {e}")))?;
    bridge::from_value(descriptor, &value).map_err(|error| bad(error.message))
}

pub(crate) use bridge::{edit_distance, stream_types};

/// The full name of the message that answers `request`, if its
/// `(tacit.v1.reply)` option names one (relative to the request's package,
/// or fully qualified with a leading dot).
pub(crate) fn reply_type(request: &MessageDescriptor) -> Option<String> {
    bridge::reply_type(request).map(|reply| reply.full_name().to_owned())
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
        prost::encoding::string::encode(bridge::REPLY_OPTION, &"Hi".to_owned(), &mut options);
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
