//! IntentId: the content hash that names an intent's schema.
//!
//! An IntentId is the 32-byte BLAKE3 hash of a canonical text form of a
//! message type and every type it reaches through its fields. Two agents that
//! compiled the same schema compute the same id, whatever compiler, file
//! layout or comments they used, or how it spelled a default value; any
//! change to the schema's meaning on the wire or in JSON (a field number,
//! name, type, label, default, a JSON name of its own; an enum value) gives a
//! new id. Types from protobuf-editions files are refused. The exact
//! algorithm is in `docs/PROTOCOL.md` ("IntentId"), with test vectors.

use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::str::FromStr;

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet};

use crate::canonical::{default_json_name, normal_default, push_json_name};

/// The first line of every canonical form: a domain-separation label that
/// also versions the algorithm.
pub const INTENT_ID_LABEL: &str = "tacit intent-id v1";

/// A 32-byte IntentId. Printed as 64 lowercase hex digits. Ordered as
/// its bytes are (lexicographically).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntentId([u8; 32]);

impl IntentId {
    /// The id as four big-endian words: comparing them orders ids as their
    /// bytes, in four inlined comparisons instead of a `memcmp` call (ids
    /// are compared on the per-message path, in sorted handler tables).
    #[inline]
    fn words(&self) -> [u64; 4] {
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&self.0[at..at + 8]);
            u64::from_be_bytes(bytes)
        };
        [word(0), word(8), word(16), word(24)]
    }
}

impl Ord for IntentId {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.words().cmp(&other.words())
    }
}

impl PartialOrd for IntentId {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl IntentId {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// Wraps raw id bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw id bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id of a canonical form (see [`canonical_schema`]).
    pub fn from_canonical(canonical: &str) -> Self {
        Self(*blake3::hash(canonical.as_bytes()).as_bytes())
    }

    /// Computes the id of the message type `full_name` (e.g.
    /// `"acme.v1.ReserveSlot"`, no leading dot) described in `set`.
    pub fn of_message(set: &FileDescriptorSet, full_name: &str) -> Result<Self, SchemaError> {
        canonical_schema(set, full_name).map(|canonical| Self::from_canonical(&canonical))
    }

    /// Like [`of_message`](Self::of_message), from an encoded
    /// `google.protobuf.FileDescriptorSet` (e.g. a peer's schema-fetch reply).
    pub fn of_message_in_encoded_set(encoded_set: &[u8], full_name: &str) -> Result<Self, SchemaError> {
        let set = FileDescriptorSet::decode(encoded_set)?;
        Self::of_message(&set, full_name)
    }
}

impl From<[u8; 32]> for IntentId {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl TryFrom<&[u8]> for IntentId {
    type Error = ParseIntentIdError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        bytes.try_into().map(Self).map_err(|_| ParseIntentIdError::WrongByteLength(bytes.len()))
    }
}

impl fmt::Display for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntentId({self})")
    }
}

impl FromStr for IntentId {
    type Err = ParseIntentIdError;

    /// Parses the printed form: exactly 64 hex digits (either case accepted).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 2 * Self::LEN {
            return Err(ParseIntentIdError::WrongLength(s.chars().count()));
        }
        let mut bytes = [0u8; 32];
        for (i, c) in s.char_indices() {
            let nibble = c.to_digit(16).ok_or(ParseIntentIdError::InvalidChar { index: i, found: c })? as u8;
            let byte = bytes.get_mut(i / 2).ok_or(ParseIntentIdError::WrongLength(s.len()))?;
            *byte = (*byte << 4) | nibble;
        }
        Ok(Self(bytes))
    }
}

/// Why a string or byte slice is not an IntentId.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIntentIdError {
    /// The string is not 64 characters long.
    #[error("intent id must be 64 hex digits, got {0} characters")]
    WrongLength(usize),
    /// A character is not a hex digit.
    #[error("intent id has {found:?} at position {index}, expected a hex digit")]
    InvalidChar {
        /// Byte offset of the character.
        index: usize,
        /// The character found.
        found: char,
    },
    /// The raw id is not 32 bytes.
    #[error("intent id must be 32 bytes, got {0}")]
    WrongByteLength(usize),
}

/// Why an IntentId could not be computed from a descriptor set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The encoded descriptor set is not valid protobuf.
    #[error("descriptor set does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The set has no message type of that name.
    #[error("no message type {0} in the descriptor set")]
    UnknownMessage(String),
    /// A field names a type the set does not define.
    #[error("field {field} of {message} refers to {type_name}, which the descriptor set does not define")]
    UnresolvedType {
        /// The message holding the field.
        message: String,
        /// The field's name.
        field: String,
        /// The type it names.
        type_name: String,
    },
    /// A field has no type, or a message/enum field has no type name.
    #[error("field {field} of {message} has no usable type")]
    MissingFieldType {
        /// The message holding the field.
        message: String,
        /// The field's name.
        field: String,
    },
    /// Two definitions share one fully qualified name.
    #[error("type {0} is defined twice in the descriptor set")]
    DuplicateType(String),
    /// A reached type is declared in a file whose syntax has no canonical
    /// form (protobuf editions, `syntax = "editions"`, or an unknown value).
    #[error("type {type_name} is declared with syntax {syntax:?}; intent ids cover proto2 and proto3 only")]
    UnsupportedSyntax {
        /// The type's fully qualified name.
        type_name: String,
        /// The declaring file's `syntax`.
        syntax: String,
    },
    /// A field's `default_value` does not parse as a value of its type.
    #[error("field {field} of {message} has default {value:?}, which is not a value of its type")]
    InvalidDefault {
        /// The message holding the field.
        message: String,
        /// The field's name.
        field: String,
        /// The default as the descriptor spells it.
        value: String,
    },
}

/// A message or enum definition, with the syntax of the file declaring it.
#[derive(Clone, Copy)]
enum TypeDef<'a> {
    Message(&'a DescriptorProto, &'a str),
    Enum(&'a EnumDescriptorProto, &'a str),
}

/// Returns the canonical text form of message `full_name` in `set`: the
/// input to the IntentId hash. Specified in `docs/PROTOCOL.md`.
pub fn canonical_schema(set: &FileDescriptorSet, full_name: &str) -> Result<String, SchemaError> {
    let types = index_types(&set.file)?;
    let root = full_name.strip_prefix('.').unwrap_or(full_name);
    if !matches!(types.get(root), Some(TypeDef::Message(..))) {
        return Err(SchemaError::UnknownMessage(root.to_owned()));
    }

    // Every type reachable from the root through fields, sorted by name.
    let mut reached = BTreeSet::from([root]);
    let mut pending = vec![root];
    while let Some(name) = pending.pop() {
        let Some(TypeDef::Message(message, _)) = types.get(name) else {
            continue;
        };
        for field in &message.field {
            if let Some(target) = referenced_type(name, field)? {
                if !types.contains_key(target) {
                    return Err(SchemaError::UnresolvedType {
                        message: name.to_owned(),
                        field: field.name().to_owned(),
                        type_name: field.type_name().to_owned(),
                    });
                }
                if reached.insert(target) {
                    pending.push(target);
                }
            }
        }
    }

    let mut out = String::new();
    let _ = writeln!(out, "{INTENT_ID_LABEL}");
    let _ = writeln!(out, "root {root}");
    for name in reached {
        match types.get(name) {
            Some(TypeDef::Message(message, syntax)) => {
                check_syntax(name, syntax)?;
                write_message(&mut out, name, message, syntax)?;
            }
            Some(TypeDef::Enum(enumeration, syntax)) => {
                check_syntax(name, syntax)?;
                write_enum(&mut out, name, enumeration, syntax);
            }
            None => {}
        }
    }
    Ok(out)
}

/// Only proto2 and proto3 have a canonical form (`id.syntax`): editions
/// resolve presence, packing, enum openness and UTF-8 checks through features
/// that this version of the algorithm does not represent.
fn check_syntax(name: &str, syntax: &str) -> Result<(), SchemaError> {
    match syntax {
        "proto2" | "proto3" => Ok(()),
        other => Err(SchemaError::UnsupportedSyntax { type_name: name.to_owned(), syntax: other.to_owned() }),
    }
}

/// The fully qualified name (no leading dot) a field refers to, if it is a
/// message, group or enum field.
fn referenced_type<'a>(
    message: &str,
    field: &'a prost_types::FieldDescriptorProto,
) -> Result<Option<&'a str>, SchemaError> {
    let missing = || SchemaError::MissingFieldType { message: message.to_owned(), field: field.name().to_owned() };
    let ty = field.r#type.and_then(|t| Type::try_from(t).ok()).ok_or_else(missing)?;
    match ty {
        Type::Message | Type::Group | Type::Enum => {
            let name = field.type_name.as_deref().ok_or_else(missing)?;
            // Descriptor sets carry resolved names with a leading dot; a
            // relative name means the set was never linked.
            name.strip_prefix('.').map(Some).ok_or_else(|| SchemaError::UnresolvedType {
                message: message.to_owned(),
                field: field.name().to_owned(),
                type_name: name.to_owned(),
            })
        }
        _ => Ok(None),
    }
}

fn write_message(out: &mut String, name: &str, message: &DescriptorProto, syntax: &str) -> Result<(), SchemaError> {
    let map_entry = message.options.as_ref().and_then(|o| o.map_entry).unwrap_or(false);
    let _ = writeln!(out, "message {name} {syntax}{}", if map_entry { " map_entry" } else { "" });
    let mut fields: Vec<_> = message.field.iter().collect();
    fields.sort_by_key(|f| f.number());
    for field in fields {
        let label = match field.label() {
            Label::Optional => "optional",
            Label::Required => "required",
            Label::Repeated => "repeated",
        };
        let ty = field.r#type.and_then(|t| Type::try_from(t).ok());
        let _ = write!(out, "field {} {} {label} {}", field.number(), field.name(), ty.map_or("", type_keyword));
        if let Some(type_name) = field.type_name.as_deref() {
            let _ = write!(out, " {}", type_name.strip_prefix('.').unwrap_or(type_name));
        }
        if field.proto3_optional() {
            out.push_str(" proto3_optional");
        } else if let Some(oneof) = field.oneof_index.and_then(|i| message.oneof_decl.get(usize::try_from(i).ok()?)) {
            let _ = write!(out, " oneof={}", oneof.name());
        }
        // `id.json-name`: only a JSON name other than the derived one.
        if let Some(json_name) = field.json_name.as_deref().filter(|j| *j != default_json_name(field.name())) {
            out.push_str(" json_name=");
            push_json_name(out, json_name);
        }
        if let Some(default) = field.default_value.as_deref() {
            let invalid = || SchemaError::InvalidDefault {
                message: name.to_owned(),
                field: field.name().to_owned(),
                value: default.to_owned(),
            };
            let normal = ty.and_then(|ty| normal_default(ty, default)).ok_or_else(invalid)?;
            out.push_str(" default=");
            out.push_str(&normal);
        }
        out.push('\n');
    }
    Ok(())
}

fn write_enum(out: &mut String, name: &str, enumeration: &EnumDescriptorProto, syntax: &str) {
    let _ = writeln!(out, "enum {name} {syntax}");
    let mut values: Vec<_> = enumeration.value.iter().collect();
    values.sort_by(|a, b| a.number().cmp(&b.number()).then_with(|| a.name().cmp(b.name())));
    for value in values {
        let _ = writeln!(out, "value {} {}", value.number(), value.name());
    }
}

/// The keyword for a field type: the descriptor enum's name, lowercase,
/// without `TYPE_`.
fn type_keyword(ty: Type) -> &'static str {
    match ty {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Group => "group",
        Type::Message => "message",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Enum => "enum",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
    }
}

/// Every message and enum in the files, by fully qualified name (no leading dot).
fn index_types(files: &[FileDescriptorProto]) -> Result<HashMap<String, TypeDef<'_>>, SchemaError> {
    fn add<'a>(types: &mut HashMap<String, TypeDef<'a>>, name: String, def: TypeDef<'a>) -> Result<(), SchemaError> {
        if types.contains_key(&name) {
            return Err(SchemaError::DuplicateType(name));
        }
        types.insert(name, def);
        Ok(())
    }
    fn add_message<'a>(
        types: &mut HashMap<String, TypeDef<'a>>,
        scope: &str,
        message: &'a DescriptorProto,
        syntax: &'a str,
    ) -> Result<(), SchemaError> {
        let name = qualify(scope, message.name());
        for nested in &message.nested_type {
            add_message(types, &name, nested, syntax)?;
        }
        for enumeration in &message.enum_type {
            add(types, qualify(&name, enumeration.name()), TypeDef::Enum(enumeration, syntax))?;
        }
        add(types, name, TypeDef::Message(message, syntax))
    }

    let mut types = HashMap::new();
    for file in files {
        let syntax = match file.syntax.as_deref() {
            None | Some("") => "proto2",
            Some(syntax) => syntax,
        };
        for message in &file.message_type {
            add_message(&mut types, file.package(), message, syntax)?;
        }
        for enumeration in &file.enum_type {
            add(&mut types, qualify(file.package(), enumeration.name()), TypeDef::Enum(enumeration, syntax))?;
        }
    }
    Ok(types)
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() { name.to_owned() } else { format!("{scope}.{name}") }
}
