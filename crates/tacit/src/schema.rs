//! Schemas fetched from peers, for decoding intents this agent was not
//! built with (prost-reflect dynamic messages).

use bytes::Bytes;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use tacit_wire::IntentId;

use crate::error::{Error, Result};

/// The verified schema of one intent: its name, the descriptor set that
/// hashes to its id, and a message descriptor to decode it with.
#[derive(Debug, Clone)]
pub struct Schema {
    id: IntentId,
    descriptor_set: Bytes,
    message: MessageDescriptor,
}

impl Schema {
    /// A schema from an encoded `FileDescriptorSet`, checked to define
    /// `name` and to hash to `id` (as docs/PROTOCOL.md "IntentId" specifies).
    pub fn new(id: IntentId, name: String, descriptor_set: Bytes) -> Result<Self> {
        let fail = |reason: String| Error::Schema { intent: name.clone(), reason };
        let computed = IntentId::of_message_in_encoded_set(&descriptor_set, &name).map_err(|e| fail(e.to_string()))?;
        if computed != id {
            return Err(fail(format!("the schema hashes to {computed}, not {id}")));
        }
        // The set comes from a peer: prost-reflect 0.16 panics on some
        // invalid sets (a proto3 file with a group field indexes an empty
        // file list while building its error; found by fuzzing, regression
        // fuzz/regressions/schema/). A panic must not take the agent down.
        let decoded = std::panic::catch_unwind(|| DescriptorPool::decode(descriptor_set.clone()))
            .map_err(|_| fail("the descriptor set is invalid (the descriptor pool panicked)".into()))?;
        let pool = decoded.map_err(|e| fail(e.to_string()))?;
        // prost-reflect's decoder unwraps a map entry's key (1) and value (2)
        // fields; a hostile set may declare a map entry without them (found
        // by fuzzing, fuzz/regressions/schema/map-entry-without-key-*).
        if let Some(entry) = pool.all_messages().find(|message| {
            message.is_map_entry() && (message.get_field(1).is_none() || message.get_field(2).is_none())
        }) {
            return Err(fail(format!("map entry {} lacks its key (1) or value (2) field", entry.full_name())));
        }
        let message = pool.get_message_by_name(&name).ok_or_else(|| fail("the schema does not define it".into()))?;
        Ok(Self { id, descriptor_set, message })
    }

    /// The schema of a compiled-in intent.
    pub fn of<I: crate::Intent>() -> Result<Self> {
        Self::new(I::ID, I::NAME.to_owned(), Bytes::from_static(I::DESCRIPTOR_SET))
    }

    /// The intent's id.
    pub fn id(&self) -> IntentId {
        self.id
    }

    /// The intent's fully qualified name.
    pub fn name(&self) -> &str {
        self.message.full_name()
    }

    /// The encoded `FileDescriptorSet`.
    pub fn descriptor_set(&self) -> &Bytes {
        &self.descriptor_set
    }

    /// The message descriptor (fields, types, nested messages).
    pub fn message_descriptor(&self) -> &MessageDescriptor {
        &self.message
    }

    /// Another intent defined in the same descriptor set, found by its id
    /// (e.g. the reply of a request, which usually shares its file), verified
    /// like [`new`](Self::new).
    pub fn related(&self, id: IntentId) -> Option<Schema> {
        let pool = self.message.parent_pool();
        pool.all_messages()
            .filter(|message| !message.is_map_entry())
            .find(|message| {
                IntentId::of_message_in_encoded_set(&self.descriptor_set, message.full_name()).ok() == Some(id)
            })
            .map(|message| Self { id, descriptor_set: self.descriptor_set.clone(), message })
    }

    /// Decodes an encoded message of this intent.
    pub fn decode(&self, payload: &[u8]) -> Result<DynamicMessage> {
        let fail = |reason: String| Error::Decode { intent: "a described intent", reason };
        // The schema came from a peer; whatever prost-reflect does not
        // expect in it must not take the agent down.
        std::panic::catch_unwind(|| DynamicMessage::decode(self.message.clone(), payload))
            .map_err(|_| fail("the schema cannot decode this message (the decoder panicked)".into()))?
            .map_err(|e| fail(e.to_string()))
    }
}
