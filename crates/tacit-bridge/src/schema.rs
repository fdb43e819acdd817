//! JSON Schemas (draft 2020-12) of protobuf messages, in the **proto3 JSON
//! mapping** as `prost-reflect`'s serde support reads and writes it: what an
//! MCP client or an A2A agent must send for an intent, and what it gets back.
//!
//! ```
//! # let pool = prost_reflect::DescriptorPool::decode(tacit::intents::FILE_DESCRIPTOR_SET).unwrap();
//! let ping = pool.get_message_by_name("tacit.intents.v1.Ping").unwrap();
//! let schema = tacit_bridge::schema::input_schema(&ping);
//! assert_eq!(schema["type"], "object");
//! assert_eq!(schema["properties"]["nonce"]["pattern"], "^\\+?[0-9]+$");
//! ```
//!
//! # The mapping, field by field
//!
//! | protobuf | schema | what the parser also accepts |
//! | --- | --- | --- |
//! | field names | `properties` keyed by the lowerCamelCase `json_name` | the original `.proto` name (`task_id` as well as `taskId`) |
//! | `int64`, `sint64`, `sfixed64` | a decimal string (`pattern` `^[+-]?[0-9]+$`) or an integer, within the 64-bit range | — |
//! | `uint64`, `fixed64` | a decimal string (`^\+?[0-9]+$`) or an integer, 0 to 2⁶⁴−1 | — |
//! | `int32`, `sint32`, `sfixed32`, `uint32`, `fixed32` | an integer with `minimum` / `maximum` | decimal strings (`"7"`) |
//! | `float`, `double` | a number (a `float` within its range), or one of the strings `"NaN"`, `"Infinity"`, `"-Infinity"` | any string Rust parses as a float (`"1.5"`, `"inf"`) |
//! | `bool`, `string` | `boolean`, `string` | — |
//! | `bytes` | a string, `contentEncoding: base64`, with a `pattern` of standard base64, padding optional (full style: standard or URL-safe); no pattern in compact output schemas, where the serializer is the only writer | URL-safe base64 (compact style) |
//! | enums | `enum` of the value names (input); names or integers (output: the serializer writes a number it has no name for) | any 32-bit integer, as a number (protobuf enums are open) |
//! | `repeated` | `array` of the element | — |
//! | `map<K, V>` | `object`, `additionalProperties` is V; integer and bool keys are constrained by `propertyNames` | — |
//! | `oneof` | members are ordinary, not required, properties; a `not` (few members) or `oneOf` (many) forbids two at once | — |
//! | messages | `object` with `properties`, inlined where used once, in `$defs` behind a `$ref` where used twice, recursive or nested more than 16 deep; a message that contains itself refers to the root as `"#"` | `null` for any field (taken as absent) |
//! | `google.protobuf.Timestamp` | RFC 3339 string, `format: date-time` | — |
//! | `google.protobuf.Duration` | `"1.5s"` (`pattern`) | — |
//! | wrappers (`Int64Value`, ...) | the schema of their scalar | — |
//! | `Struct`, `ListValue`, `Value` | any JSON object, any array, any JSON | — |
//! | `Any` | an object with a string `"@type"` | — |
//! | `FieldMask` | a string | — |
//! | `Empty` | an empty object | — |
//!
//! Numbers and strings are accepted for 64-bit integers because the parser
//! accepts both; strings are what it writes, since JSON numbers lose precision
//! past 2⁵³ in most clients. In the compact style (the default),
//! `additionalProperties: false` is left out: unknown keys pass the schema,
//! and the parser rejects them with an error naming the key.
//!
//! # Where the schema and the parser cannot agree
//!
//! Tested in `tests/schema.rs` (both directions, on real instances):
//!
//! - **Stricter schema** (the schema refuses what the parser takes; an LLM
//!   following the schema never hits these): the original field names, `null`
//!   for absent fields, decimal strings for 32-bit integers and floats, enum
//!   numbers on input, URL-safe base64 (compact style). They stay out of the schema because each would cost
//!   tokens in every tool definition for forms no client needs.
//! - **Looser schema** (the parser refuses what the schema takes; the bridge
//!   answers with an error that names the field): 64-bit integers as strings
//!   outside the 64-bit range (a regular expression cannot bound a decimal
//!   number compactly) and map keys of `int32`/`uint32` outside 32 bits;
//!   durations past ±315,576,000,000 s; `"@type"` URLs of messages the
//!   peer's schema does not know, and `Any` contents; timestamps only where the
//!   validator does not assert `format` (draft 2020-12 makes it an annotation
//!   by default) or where RFC 3339 and the parser differ at the edges (years
//!   before 0001 and after 9999); unknown keys in the compact style; JSON
//!   numbers that round to 2⁶³ or 2⁶⁴ (the parser saturates them).
//! - **Not the schema's doing**: prost-reflect 0.16 writes a `FloatValue` or
//!   `DoubleValue` holding NaN or ±infinity as `null`, which its parser reads
//!   back as absent (plain `float`/`double` fields are written `"NaN"`,
//!   `"Infinity"`, as the mapping says). The output schema refuses that
//!   `null`.
//!
//! # Styles
//!
//! [`Style::Compact`] (what [`input_schema`] and [`output_schema`] give) says
//! each constraint once: no `type` beside a `$ref` or an `enum`, no titles, no
//! `$schema` (MCP takes 2020-12 as the default), messages inlined where used
//! once. [`Style::Full`] is what a straightforward generator emits: `$schema`,
//! every message in `$defs` with a `title` (its protobuf name), every
//! property with a `title` (its `.proto` name), `type` everywhere and
//! `additionalProperties: false`. Both validate the same instances, but for
//! unknown keys; Full exists to measure what Compact saves (BENCHMARKS.md,
//! "Bridge: tool schema size").
//!
//! # Bounds
//!
//! Descriptor sets come from peers. Generating a schema takes time and
//! memory linear in the messages reachable from the intent (cycles are found
//! with an iterative Tarjan pass, comments indexed once per file), and its
//! recursion is bounded: past 16 levels of inline nesting a message goes to
//! `$defs`, rendered from the top.
//!
//! # Descriptions
//!
//! Leading (else trailing) `.proto` comments of messages and fields become
//! `description`s, where the descriptor set carries source info. Descriptor
//! sets that tacit-build emits keep the comments of the package's own files
//! (not of its imports), so schemas fetched from a peer with
//! `Peer::describe` carry them too.

use std::collections::{BTreeMap, HashMap};

use prost_reflect::prost_types::FileDescriptorProto;
use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

/// Which rendering of a schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Style {
    /// Every constraint once and nothing else (the default).
    #[default]
    Compact,
    /// Every keyword a straightforward generator writes: titles, `type`
    /// everywhere, `additionalProperties: false`, all messages in `$defs`.
    Full,
}

/// Whether a schema describes what a client sends or what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// What the parser accepts (an intent's arguments): enums by name.
    Input,
    /// What the serializer writes (a reply): enums by name, or by number for
    /// values the schema has no name for.
    Output,
}

/// The compact schema of what a client sends as `message` (a tool's
/// `inputSchema`).
pub fn input_schema(message: &MessageDescriptor) -> Value {
    schema(message, Direction::Input, Style::Compact)
}

/// The compact schema of `message` as a reply (a tool's `outputSchema`): the
/// same as [`input_schema`] but for enums, which may also be numbers.
pub fn output_schema(message: &MessageDescriptor) -> Value {
    schema(message, Direction::Output, Style::Compact)
}

/// The schema of `message` in the given direction and style.
pub fn schema(message: &MessageDescriptor, direction: Direction, style: Style) -> Value {
    let mut generator = Generator::new(message, direction, style);
    // A well-known type as the intent itself (an `Empty` ask, say) has its JSON form.
    let mut root = generator.well_known(message).unwrap_or_else(|| generator.message(message));
    generator.render_defs();
    if let Value::Object(object) = &mut root {
        if !generator.defs.is_empty() {
            let defs = std::mem::take(&mut generator.defs);
            object.insert("$defs".into(), Value::Object(defs.into_iter().collect()));
        }
        if style == Style::Full {
            object.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        }
    }
    root
}

/// An MCP tool definition for an intent, as `tools/list` sends it: `name`,
/// `description` (the intent's `.proto` comment, if any), `inputSchema` and,
/// for a request, `outputSchema` from its reply.
///
/// In the compact style the input schema's own `description` is left out:
/// it is the tool's description, said once.
pub fn tool_definition(
    name: &str,
    intent: &MessageDescriptor,
    reply: Option<&MessageDescriptor>,
    style: Style,
) -> Value {
    let mut tool = Map::new();
    tool.insert("name".into(), json!(name));
    let text = description(intent);
    if let Some(text) = &text {
        tool.insert("description".into(), json!(text));
    }
    let mut input = schema(intent, Direction::Input, style);
    if style == Style::Compact
        && let Value::Object(object) = &mut input
        && text.is_some()
    {
        object.remove("description");
    }
    tool.insert("inputSchema".into(), input);
    if let Some(reply) = reply {
        tool.insert("outputSchema".into(), schema(reply, Direction::Output, style));
    }
    Value::Object(tool)
}

/// The `.proto` comment of `message` (leading, else trailing), if its
/// descriptor set carries source info: an intent's description.
pub fn description(message: &MessageDescriptor) -> Option<String> {
    comment(message.parent_file().file_descriptor_proto(), message.path())
}

/// The comment at `path` in `file`'s source info, lines trimmed and joined.
fn comment(file: &FileDescriptorProto, path: &[i32]) -> Option<String> {
    let location = file.source_code_info.as_ref()?.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref().or(location.trailing_comments.as_deref())?;
    tidy(text)
}

/// Joins a comment's lines: lines of a paragraph with a space, paragraphs
/// with a newline.
fn tidy(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut blank = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push(if blank { '\n' } else { ' ' });
        }
        blank = false;
        out.push_str(line);
    }
    (!out.is_empty()).then_some(out)
}

/// The pattern of a bytes field in the full style: standard or URL-safe
/// base64 (not mixed), padding optional, exactly what prost-reflect decodes.
pub const BASE64_PATTERN: &str = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}={0,2}|[A-Za-z0-9+/]{3}=?)?$|^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}={0,2}|[A-Za-z0-9_-]{3}=?)?$";
/// The pattern of a bytes field in the compact style: standard base64 only
/// (what the mapping specifies and the serializer writes), padding optional;
/// half the tokens of [`BASE64_PATTERN`].
pub const STANDARD_BASE64_PATTERN: &str = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}={0,2}|[A-Za-z0-9+/]{3}=?)?$";
const INT64_PATTERN: &str = "^[+-]?[0-9]+$";
const UINT64_PATTERN: &str = "^\\+?[0-9]+$";
const FLOAT_WORDS: &str = "^(?:NaN|-?Infinity)$";
const DURATION_PATTERN: &str = "^-?[0-9]+(?:\\.[0-9]+)?s$";

/// Well-known types with a JSON form of their own.
fn is_special(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.Any"
            | "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FloatValue"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.FieldMask"
            | "google.protobuf.Struct"
            | "google.protobuf.ListValue"
            | "google.protobuf.Value"
            | "google.protobuf.Empty"
    )
}

/// The messages a field of `message` holds (map values included), but for
/// the well-known types with JSON forms of their own.
fn children(message: &MessageDescriptor) -> impl Iterator<Item = MessageDescriptor> + '_ {
    message.fields().filter_map(|field| {
        let kind = if field.is_map() {
            match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                _ => return None,
            }
        } else {
            field.kind()
        };
        match kind {
            Kind::Message(child) if !is_special(&child) => Some(child),
            _ => None,
        }
    })
}

/// How deep messages nest inline before the next one goes to `$defs`: keeps
/// the generator's recursion (and the schema's nesting) bounded whatever
/// descriptor set a peer serves.
const MAX_INLINE_DEPTH: usize = 16;

struct Generator {
    root: String,
    direction: Direction,
    style: Style,
    /// Messages rendered in `$defs`, by full name, with their key there.
    in_defs: HashMap<String, String>,
    /// Messages referred to but not yet rendered in `$defs`.
    queued: Vec<MessageDescriptor>,
    /// Rendered definitions, by key.
    defs: BTreeMap<String, Value>,
    /// Comments by file and path, indexed once per file.
    comments: HashMap<String, HashMap<Vec<i32>, String>>,
    /// Messages being rendered inline, outermost first.
    depth: usize,
}

impl Generator {
    fn new(root: &MessageDescriptor, direction: Direction, style: Style) -> Self {
        // Every message reachable from the root (its graph: `edges`), and how
        // many fields hold each.
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut nodes = vec![root.clone()];
        let mut edges: Vec<Vec<usize>> = vec![Vec::new()];
        let mut uses = vec![0usize];
        index.insert(root.full_name().to_owned(), 0);
        let mut next = 0;
        while next < nodes.len() {
            for child in children(&nodes[next].clone()) {
                let target = *index.entry(child.full_name().to_owned()).or_insert_with(|| {
                    nodes.push(child.clone());
                    edges.push(Vec::new());
                    uses.push(0);
                    nodes.len() - 1
                });
                uses[target] += 1;
                edges[next].push(target);
            }
            next += 1;
        }
        let recursive = in_cycles(&edges);
        let chosen: Vec<&MessageDescriptor> = (1..nodes.len())
            .filter(|&n| style == Style::Full || uses[n] >= 2 || recursive[n])
            .map(|n| &nodes[n])
            .collect();
        // Compact keys: the short name where no other chosen message shares it.
        let mut short: HashMap<&str, usize> = HashMap::new();
        for message in &chosen {
            *short.entry(message.name()).or_default() += 1;
        }
        let in_defs = chosen
            .iter()
            .map(|m| {
                let unique = short.get(m.name()) == Some(&1);
                let key = if style == Style::Compact && unique { m.name() } else { m.full_name() };
                (m.full_name().to_owned(), key.to_owned())
            })
            .collect();
        Self {
            root: root.full_name().to_owned(),
            direction,
            style,
            in_defs,
            queued: Vec::new(),
            defs: BTreeMap::new(),
            comments: HashMap::new(),
            depth: 0,
        }
    }

    /// Renders the definitions referred to, each once, until none is left.
    fn render_defs(&mut self) {
        while let Some(message) = self.queued.pop() {
            let schema = self.message(&message);
            self.defs.insert(self.in_defs[message.full_name()].clone(), schema);
        }
    }

    /// The comment at `path` of `file`, from an index built once per file.
    fn comment(&mut self, file: &FileDescriptorProto, path: &[i32]) -> Option<String> {
        let by_path = self.comments.entry(file.name().to_owned()).or_insert_with(|| {
            let locations = file.source_code_info.iter().flat_map(|info| &info.location);
            locations
                .filter_map(|l| {
                    let text = l.leading_comments.as_deref().or(l.trailing_comments.as_deref())?;
                    Some((l.path.clone(), tidy(text)?))
                })
                .collect()
        });
        by_path.get(path).cloned()
    }

    fn full(&self) -> bool {
        self.style == Style::Full
    }

    /// The schema of an object of type `message`.
    fn message(&mut self, message: &MessageDescriptor) -> Value {
        let mut object = Map::new();
        object.insert("type".into(), json!("object"));
        if self.full() {
            object.insert("title".into(), json!(message.full_name()));
        }
        if let Some(text) = self.comment(message.parent_file().file_descriptor_proto(), message.path()) {
            object.insert("description".into(), json!(text));
        }
        let mut properties = Map::new();
        self.depth += 1;
        for field in message.fields() {
            let schema = self.field(&field);
            properties.insert(field.json_name().to_owned(), schema);
        }
        self.depth -= 1;
        if !properties.is_empty() {
            object.insert("properties".into(), Value::Object(properties));
        }
        if self.full() {
            object.insert("additionalProperties".into(), json!(false));
        }
        self.oneofs(message, &mut object);
        Value::Object(object)
    }

    /// At most one member of each oneof: pairs that may not be present
    /// together (`not`) for oneofs of up to five members, an `oneOf` of "this
    /// one" and "none" for larger ones (the smaller of the two forms).
    fn oneofs(&self, message: &MessageDescriptor, object: &mut Map<String, Value>) {
        let mut pairs = Vec::new();
        let mut large = Vec::new();
        for oneof in message.oneofs().filter(|o| !o.is_synthetic()) {
            let names: Vec<String> = oneof.fields().map(|f| f.json_name().to_owned()).collect();
            if names.len() < 2 {
                continue;
            }
            if names.len() <= 5 {
                for (i, a) in names.iter().enumerate() {
                    for b in &names[i + 1..] {
                        pairs.push(json!({ "required": [a, b] }));
                    }
                }
            } else {
                let mut branches: Vec<Value> = names.iter().map(|n| json!({ "required": [n] })).collect();
                let none: Map<String, Value> = names.iter().map(|n| (n.clone(), json!(false))).collect();
                branches.push(json!({ "properties": none }));
                large.push(json!({ "oneOf": branches }));
            }
        }
        match pairs.len() {
            0 => {}
            1 => {
                object.insert("not".into(), pairs.remove(0));
            }
            _ => {
                object.insert("not".into(), json!({ "anyOf": pairs }));
            }
        }
        match large.len() {
            0 => {}
            1 => {
                object.insert("oneOf".into(), large.remove(0)["oneOf"].take());
            }
            _ => {
                object.insert("allOf".into(), Value::Array(large));
            }
        }
    }

    /// The schema of one field, with its `.proto` comment.
    fn field(&mut self, field: &FieldDescriptor) -> Value {
        let mut schema = if field.is_map() {
            // A map field's kind is always its entry message.
            let Kind::Message(entry) = field.kind() else { return json!({ "type": "object" }) };
            let key = entry.map_entry_key_field().kind();
            let value = self.kind(&entry.map_entry_value_field().kind());
            let mut object = Map::new();
            object.insert("type".into(), json!("object"));
            let names = match key {
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                    Some(json!({ "pattern": INT64_PATTERN }))
                }
                Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => {
                    Some(json!({ "pattern": UINT64_PATTERN }))
                }
                Kind::Bool => Some(json!({ "enum": ["true", "false"] })),
                _ => None,
            };
            if let Some(names) = names {
                object.insert("propertyNames".into(), names);
            }
            object.insert("additionalProperties".into(), value);
            Value::Object(object)
        } else if field.is_list() {
            json!({ "type": "array", "items": self.kind(&field.kind()) })
        } else {
            self.kind(&field.kind())
        };
        if let Value::Object(object) = &mut schema {
            if self.full() {
                object.insert("title".into(), json!(field.name()));
            }
            if let Some(text) = self.comment(field.parent_file().file_descriptor_proto(), field.path()) {
                object.insert("description".into(), json!(text));
            }
        }
        schema
    }

    /// The schema of one value of `kind`.
    fn kind(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double => json!({ "type": ["number", "string"], "pattern": FLOAT_WORDS }),
            Kind::Float => json!({
                "type": ["number", "string"],
                "pattern": FLOAT_WORDS,
                "minimum": f64::from(f32::MIN),
                "maximum": f64::from(f32::MAX),
            }),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({ "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX })
            }
            Kind::Uint32 | Kind::Fixed32 => json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX }),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({
                "type": ["string", "integer"],
                "pattern": INT64_PATTERN,
                "minimum": i64::MIN,
                "maximum": i64::MAX,
            }),
            Kind::Uint64 | Kind::Fixed64 => json!({
                "type": ["string", "integer"],
                "pattern": UINT64_PATTERN,
                "minimum": 0,
                "maximum": u64::MAX,
            }),
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            // A reply's bytes come from the serializer, always valid base64:
            // the compact output schema spares the pattern.
            Kind::Bytes if self.direction == Direction::Output && !self.full() => {
                json!({ "type": "string", "contentEncoding": "base64" })
            }
            Kind::Bytes if self.full() => {
                json!({ "type": "string", "contentEncoding": "base64", "pattern": BASE64_PATTERN })
            }
            Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64", "pattern": STANDARD_BASE64_PATTERN }),
            Kind::Enum(e) => self.enumeration(e),
            Kind::Message(message) => self.message_ref(message),
        }
    }

    fn enumeration(&self, e: &EnumDescriptor) -> Value {
        if e.full_name() == "google.protobuf.NullValue" {
            return json!({ "type": "null" });
        }
        let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
        let mut by_name = Map::new();
        if self.full() {
            by_name.insert("type".into(), json!("string"));
            by_name.insert("title".into(), json!(e.full_name()));
        }
        by_name.insert("enum".into(), json!(names));
        match self.direction {
            Direction::Input => Value::Object(by_name),
            Direction::Output => {
                let number = if self.full() {
                    json!({ "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX })
                } else {
                    json!({ "type": "integer" })
                };
                json!({ "anyOf": [Value::Object(by_name), number] })
            }
        }
    }

    /// A message where a field holds it: a well-known type's JSON form, a
    /// `$ref`, or the message inline.
    fn message_ref(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = self.well_known(message) {
            return schema;
        }
        if message.full_name() == self.root {
            return json!({ "$ref": "#" });
        }
        let key = match self.in_defs.get(message.full_name()) {
            Some(key) => key.clone(),
            None if self.depth < MAX_INLINE_DEPTH => return self.message(message),
            None => {
                // Nested too deep to inline: a definition of its own.
                let key = message.full_name().to_owned();
                self.in_defs.insert(key.clone(), key.clone());
                key
            }
        };
        // Rendered later, at the top (render_defs), once: the placeholder
        // marks it as queued.
        if !self.defs.contains_key(&key) {
            self.defs.insert(key.clone(), Value::Null);
            self.queued.push(message.clone());
        }
        json!({ "$ref": format!("#/$defs/{key}") })
    }

    fn well_known(&mut self, message: &MessageDescriptor) -> Option<Value> {
        let scalar = |generator: &mut Self, kind: Kind| Some(generator.kind(&kind));
        match message.full_name() {
            "google.protobuf.Timestamp" => Some(json!({ "type": "string", "format": "date-time" })),
            "google.protobuf.Duration" => Some(json!({ "type": "string", "pattern": DURATION_PATTERN })),
            "google.protobuf.FieldMask" => Some(json!({ "type": "string" })),
            "google.protobuf.Struct" => Some(json!({ "type": "object" })),
            "google.protobuf.ListValue" => Some(json!({ "type": "array" })),
            "google.protobuf.Value" => Some(json!({})),
            "google.protobuf.Empty" => Some(json!({ "type": "object", "maxProperties": 0 })),
            "google.protobuf.Any" => Some(json!({
                "type": "object",
                "required": ["@type"],
                "properties": { "@type": { "type": "string" } },
            })),
            "google.protobuf.DoubleValue" => scalar(self, Kind::Double),
            "google.protobuf.FloatValue" => scalar(self, Kind::Float),
            "google.protobuf.Int64Value" => scalar(self, Kind::Int64),
            "google.protobuf.UInt64Value" => scalar(self, Kind::Uint64),
            "google.protobuf.Int32Value" => scalar(self, Kind::Int32),
            "google.protobuf.UInt32Value" => scalar(self, Kind::Uint32),
            "google.protobuf.BoolValue" => scalar(self, Kind::Bool),
            "google.protobuf.StringValue" => scalar(self, Kind::String),
            "google.protobuf.BytesValue" => scalar(self, Kind::Bytes),
            _ => None,
        }
    }
}

/// Which nodes of a graph lie on a cycle (an SCC of two or more nodes, or a
/// node with an edge to itself): Tarjan's algorithm, iterative, linear.
fn in_cycles(edges: &[Vec<usize>]) -> Vec<bool> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let (mut index, mut low, mut on_stack) = (vec![UNSEEN; n], vec![0; n], vec![false; n]);
    let (mut stack, mut cyclic, mut counter) = (Vec::new(), vec![false; n], 0);
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        // (node, next edge to look at)
        let mut work = vec![(start, 0)];
        while let Some(&mut (node, ref mut next)) = work.last_mut() {
            if *next == 0 && index[node] == UNSEEN {
                index[node] = counter;
                low[node] = counter;
                counter += 1;
                stack.push(node);
                on_stack[node] = true;
            }
            if let Some(&target) = edges[node].get(*next) {
                *next += 1;
                if index[target] == UNSEEN {
                    work.push((target, 0));
                } else if on_stack[target] {
                    low[node] = low[node].min(index[target]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut members = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    members.push(member);
                    if member == node {
                        break;
                    }
                }
                let looped = members.len() > 1 || edges[node].contains(&node);
                for member in members {
                    cyclic[member] = looped;
                }
            }
        }
    }
    cyclic
}

#[cfg(test)]
mod tests {
    use super::in_cycles;

    #[test]
    fn cycles_are_found_and_chains_are_not() {
        // 0 → 1 → 2 → 1, 0 → 3 → 3, 3 → 4
        let edges = vec![vec![1, 3], vec![2], vec![1], vec![3, 4], vec![]];
        assert_eq!(in_cycles(&edges), [false, true, true, true, false]);
        let chain: Vec<Vec<usize>> = (0..100_000).map(|n| if n + 1 < 100_000 { vec![n + 1] } else { vec![] }).collect();
        assert!(in_cycles(&chain).iter().all(|c| !c));
    }
}
