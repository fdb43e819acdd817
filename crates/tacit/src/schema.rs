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
        // prost-reflect 0.16 recurses without bound on an import cycle
        // through `public` imports (a stack overflow; found by fuzzing,
        // fuzz/regressions/schema/public-import-cycle-overflows-prost-reflect):
        // refuse cycles and out-of-range public imports first.
        check_imports(&descriptor_set).map_err(fail)?;
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
    ///
    /// This hashes the set's messages until one matches: resolve a type
    /// used on every message once (e.g. when a peer connects), or by name
    /// with [`related_by_name`](Self::related_by_name).
    pub fn related(&self, id: IntentId) -> Option<Schema> {
        use prost::Message as _;
        // Decoded once for all the messages it hashes.
        let set = prost_types::FileDescriptorSet::decode(&self.descriptor_set[..]).ok()?;
        let pool = self.message.parent_pool();
        pool.all_messages()
            .filter(|message| !message.is_map_entry())
            .find(|message| IntentId::of_message(&set, message.full_name()).ok() == Some(id))
            .map(|message| Self { id, descriptor_set: self.descriptor_set.clone(), message })
    }

    /// Another message of the same descriptor set, by its fully qualified
    /// name (e.g. the reply a request's `(tacit.v1.reply)` names), with its
    /// IntentId computed.
    pub fn related_by_name(&self, name: &str) -> Option<Schema> {
        let message = self.message.parent_pool().get_message_by_name(name)?;
        let id = IntentId::of_message_in_encoded_set(&self.descriptor_set, name).ok()?;
        Some(Self { id, descriptor_set: self.descriptor_set.clone(), message })
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

/// Checks a peer's descriptor set for what the descriptor pool cannot
/// survive: files importing each other in a cycle (or themselves), and
/// public imports that name no import.
fn check_imports(descriptor_set: &[u8]) -> std::result::Result<(), String> {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(descriptor_set).map_err(|e| e.to_string())?;
    let files = &set.file;
    let index: std::collections::HashMap<&str, usize> =
        files.iter().enumerate().map(|(i, file)| (file.name(), i)).collect();
    let mut importers: Vec<Vec<usize>> = vec![Vec::new(); files.len()];
    let mut imports_left = vec![0usize; files.len()];
    for (i, file) in files.iter().enumerate() {
        if let Some(&bad) =
            file.public_dependency.iter().find(|&&p| usize::try_from(p).map_or(true, |p| p >= file.dependency.len()))
        {
            return Err(format!("{} has a public import ({bad}) that names no import", file.name()));
        }
        for dependency in &file.dependency {
            if let Some(&j) = index.get(dependency.as_str()) {
                importers[j].push(i);
                imports_left[i] += 1;
            }
        }
    }
    // Kahn's algorithm: every file must be reachable from files without imports.
    let mut ready: Vec<usize> = (0..files.len()).filter(|&i| imports_left[i] == 0).collect();
    let mut done = 0;
    while let Some(j) = ready.pop() {
        done += 1;
        for &i in &importers[j] {
            imports_left[i] -= 1;
            if imports_left[i] == 0 {
                ready.push(i);
            }
        }
    }
    if done < files.len() {
        return Err("its files import each other in a cycle".into());
    }
    Ok(())
}
