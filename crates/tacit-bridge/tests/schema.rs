//! The schemas against real instances: messages encoded to JSON by
//! prost-reflect's serializer (the mapping the bridge parses) must validate;
//! invalid instances must be refused by the validator and by the parser alike.

use std::path::Path;

use jsonschema::Validator;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MapKey, MessageDescriptor, SerializeOptions, Value};
use serde_json::{Value as Json, json};
use tacit_bridge::schema::{self, Direction, Style, input_schema, output_schema};

/// The test proto (`tests/proto/kinds.proto`), compiled with source info.
fn kinds() -> DescriptorPool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proto");
    let mut compiler = protox::Compiler::new([dir]).unwrap();
    compiler.include_imports(true).include_source_info(true);
    compiler.open_file("kinds.proto").unwrap();
    compiler.descriptor_pool()
}

fn standard() -> DescriptorPool {
    DescriptorPool::decode(tacit::intents::FILE_DESCRIPTOR_SET).unwrap()
}

fn everything() -> MessageDescriptor {
    kinds().get_message_by_name("kinds.v1.Everything").unwrap()
}

fn validator(schema: &Json) -> Validator {
    assert!(jsonschema::draft202012::meta::is_valid(schema), "not a valid 2020-12 schema: {schema}");
    jsonschema::draft202012::options().should_validate_formats(true).build(schema).unwrap()
}

fn parses(message: &MessageDescriptor, instance: &Json) -> bool {
    DynamicMessage::deserialize(message.clone(), instance).is_ok()
}

/// Deterministic pseudo-random numbers (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn string(&mut self) -> String {
        let len = self.below(6);
        (0..len).map(|_| self.pick(&['a', 'Z', '7', ' ', 'é', '"', '\\', '\n', '😀'])).collect()
    }
    fn bytes(&mut self) -> Vec<u8> {
        (0..self.below(7)).map(|_| self.next() as u8).collect()
    }
}

/// A value of `kind` (depth bounds recursion).
fn value(rng: &mut Rng, kind: &Kind, depth: u32) -> Value {
    match kind {
        Kind::Double => Value::F64(rng.pick(&[0.0, -1.5, 1e300, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 3.0])),
        Kind::Float => Value::F32(rng.pick(&[0.0, 2.5, f32::MAX, f32::MIN, f32::NAN, f32::INFINITY, -7.0])),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(rng.pick(&[0, -1, i32::MIN, i32::MAX, 42])),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(rng.pick(&[0, -1, i64::MIN, i64::MAX, 1 << 53, (1 << 53) + 1]))
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(rng.pick(&[0, 1, u32::MAX])),
        Kind::Uint64 | Kind::Fixed64 => {
            let any = rng.next();
            Value::U64(rng.pick(&[0, 1, u64::MAX, any]))
        }
        Kind::Bool => Value::Bool(rng.chance(50)),
        Kind::String => Value::String(rng.string()),
        Kind::Bytes => Value::Bytes(rng.bytes().into()),
        Kind::Enum(e) => Value::EnumNumber(rng.pick(&e.values().map(|v| v.number()).collect::<Vec<_>>())),
        Kind::Message(m) => Value::Message(message(rng, m, depth + 1)),
    }
}

/// A random message of type `descriptor`: well-known types with valid
/// contents, others with each field set or not, one member per oneof.
fn message(rng: &mut Rng, descriptor: &MessageDescriptor, depth: u32) -> DynamicMessage {
    let mut out = DynamicMessage::new(descriptor.clone());
    let wkt = |out: &mut DynamicMessage, encoded: Vec<u8>| out.merge(encoded.as_slice()).unwrap();
    match descriptor.full_name() {
        "google.protobuf.Timestamp" => {
            let seconds = rng.below(253_402_300_800) as i64 - rng.below(2) as i64 * 62_135_596_800;
            let t = prost_types::Timestamp { seconds, nanos: rng.below(1_000_000_000) as i32 };
            wkt(&mut out, t.encode_to_vec());
            return out;
        }
        "google.protobuf.Duration" => {
            let seconds = rng.below(315_576_000_001) as i64;
            let sign = if rng.chance(50) { -1 } else { 1 };
            let d =
                prost_types::Duration { seconds: sign * seconds, nanos: sign as i32 * rng.below(1_000_000_000) as i32 };
            wkt(&mut out, d.encode_to_vec());
            return out;
        }
        "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.ListValue" => {
            use prost_types::value::Kind as K;
            let leaf = || prost_types::Value { kind: Some(K::NumberValue(1.5)) };
            let list =
                prost_types::ListValue { values: vec![leaf(), prost_types::Value { kind: Some(K::NullValue(0)) }] };
            let fields = [
                ("a".to_owned(), leaf()),
                ("b".to_owned(), prost_types::Value { kind: Some(K::StringValue("x".into())) }),
            ];
            let st = prost_types::Struct { fields: fields.into_iter().collect() };
            let encoded = match descriptor.name() {
                "Struct" => st.encode_to_vec(),
                "ListValue" => list.encode_to_vec(),
                _ => {
                    let kinds = [K::BoolValue(true), K::NullValue(0), K::StructValue(st), K::ListValue(list)];
                    let kind = kinds.into_iter().nth(rng.below(4) as usize);
                    prost_types::Value { kind }.encode_to_vec()
                }
            };
            wkt(&mut out, encoded);
            return out;
        }
        "google.protobuf.Any" => {
            let leaf = descriptor.parent_pool().get_message_by_name("kinds.v1.Leaf").unwrap();
            let inner = message(rng, &leaf, depth + 1);
            let any =
                prost_types::Any { type_url: "type.googleapis.com/kinds.v1.Leaf".into(), value: inner.encode_to_vec() };
            wkt(&mut out, any.encode_to_vec());
            return out;
        }
        "google.protobuf.FieldMask" => {
            let mask = prost_types::FieldMask { paths: vec!["f_double".into(), "single_leaf.name".into()] };
            wkt(&mut out, mask.encode_to_vec());
            return out;
        }
        // Wrappers of floats: finite values only. prost-reflect 0.16 writes a
        // FloatValue or DoubleValue of NaN or ±infinity as JSON `null`, which
        // its own parser reads back as absent (plain float fields are
        // written "NaN", "Infinity" as the mapping says).
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => {
            let field = descriptor.get_field_by_name("value").unwrap();
            let v = if descriptor.name() == "FloatValue" { Value::F32(-2.5) } else { Value::F64(1e-300) };
            out.set_field(&field, v);
            return out;
        }
        _ => {}
    }
    let mut oneofs_done = std::collections::HashSet::new();
    for field in descriptor.fields() {
        if let Some(oneof) = field.containing_oneof() {
            if !rng.chance(40) || !oneofs_done.insert(oneof.name().to_owned()) {
                continue;
            }
        } else if !rng.chance(70) {
            continue;
        }
        let is_message = matches!(field.kind(), Kind::Message(_));
        if depth > 3 && (is_message || field.is_list() || field.is_map()) {
            continue;
        }
        let v = if field.is_map() {
            let Kind::Message(entry) = field.kind() else { unreachable!() };
            let (key, val) = (entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind());
            let mut map = std::collections::HashMap::new();
            for _ in 0..rng.below(3) {
                let k = match value(rng, &key, depth) {
                    Value::I32(v) => MapKey::I32(v),
                    Value::I64(v) => MapKey::I64(v),
                    Value::U32(v) => MapKey::U32(v),
                    Value::U64(v) => MapKey::U64(v),
                    Value::Bool(v) => MapKey::Bool(v),
                    Value::String(v) => MapKey::String(v),
                    other => panic!("not a map key: {other:?}"),
                };
                map.insert(k, value(rng, &val, depth));
            }
            Value::Map(map)
        } else if field.is_list() {
            Value::List((0..rng.below(3)).map(|_| value(rng, &field.kind(), depth)).collect())
        } else {
            value(rng, &field.kind(), depth)
        };
        out.set_field(&field, v);
    }
    out
}

fn to_json(message: &DynamicMessage, options: &SerializeOptions) -> Json {
    message.serialize_with_options(serde_json::value::Serializer, options).unwrap()
}

/// Every message the pool defines (map entries aside) whose name starts with `prefix`.
fn messages(pool: &DescriptorPool, prefix: &str) -> Vec<MessageDescriptor> {
    pool.all_messages().filter(|m| m.full_name().starts_with(prefix) && !m.is_map_entry()).collect()
}

/// Random instances of each message, serialized in the ways the bridge
/// may write them, validate against input and output schemas in both styles,
/// and parse back to the same message.
fn instances_validate(targets: &[MessageDescriptor], rounds: u64) {
    let ways = [
        SerializeOptions::new(),
        SerializeOptions::new().stringify_64_bit_integers(false),
        SerializeOptions::new().skip_default_fields(false),
    ];
    for target in targets {
        let validators: Vec<(String, Validator)> = [Direction::Input, Direction::Output]
            .into_iter()
            .flat_map(|d| [Style::Compact, Style::Full].map(move |s| (d, s)))
            .map(|(d, s)| (format!("{d:?} {s:?}"), validator(&schema::schema(target, d, s))))
            .collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.full_name().len() as u64);
        for round in 0..rounds {
            let instance = message(&mut rng, target, 0);
            for way in &ways {
                let json = to_json(&instance, way);
                for (name, validator) in &validators {
                    if let Err(error) = validator.validate(&json) {
                        panic!(
                            "{} round {round}, {name}: {json} fails: {error} at {}",
                            target.full_name(),
                            error.instance_path()
                        );
                    }
                }
                let back = DynamicMessage::deserialize(target.clone(), &json).unwrap();
                // NaN is not equal to itself, map order is free: compare the JSON.
                assert_eq!(to_json(&back, way), json, "{} round {round}", target.full_name());
            }
        }
    }
}

#[test]
fn every_standard_intent_validates_its_instances() {
    let pool = standard();
    let targets = messages(&pool, "tacit.intents.v1.");
    assert!(targets.len() >= 18, "{}", targets.len());
    instances_validate(&targets, 200);
}

#[test]
fn every_field_kind_validates_its_instances() {
    let pool = kinds();
    instances_validate(&messages(&pool, "kinds.v1."), 400);
}

#[test]
fn enum_numbers_are_output_only() {
    let target = everything();
    let mut instance = DynamicMessage::new(target.clone());
    instance.set_field_by_name("color", Value::EnumNumber(7)); // no name in the schema
    let json = to_json(&instance, &SerializeOptions::new());
    assert_eq!(json, json!({ "color": 7 }));
    assert!(validator(&output_schema(&target)).is_valid(&json));
    // Stricter schema: the parser takes numbers (protobuf enums are open).
    assert!(!validator(&input_schema(&target)).is_valid(&json));
    assert!(parses(&target, &json));
}

/// Invalid instances: the schema (both styles) and the parser both refuse.
#[test]
fn invalid_instances_are_refused_by_schema_and_parser() {
    let target = everything();
    let compact = validator(&input_schema(&target));
    let full = validator(&schema::schema(&target, Direction::Input, Style::Full));
    let cases = [
        ("int64 as a wrong string", json!({ "fInt64": "12a" })),
        ("int64 as a float string", json!({ "fInt64": "1.5" })),
        ("int64 as a fraction", json!({ "fInt64": 1.5 })),
        ("uint64 negative string", json!({ "fUint64": "-1" })),
        ("uint64 negative", json!({ "fUint64": -1 })),
        ("uint64 too large", json!({ "fUint64": 1e20 })),
        ("int32 too large", json!({ "fInt32": 2147483648u64 })),
        ("uint32 negative", json!({ "fUint32": -1 })),
        ("int32 as a fraction", json!({ "fSint32": 0.5 })),
        ("float out of range", json!({ "fFloat": 1e39 })),
        ("double as a word", json!({ "fDouble": "nan!" })),
        ("unknown enum name", json!({ "color": "COLOR_BLUE" })),
        ("enum as a bool", json!({ "color": true })),
        ("two members of a oneof", json!({ "text": "a", "number": "1" })),
        ("a message and a scalar of a oneof", json!({ "leaf": {}, "text": "b" })),
        ("two members of a wide oneof", json!({ "w1": true, "w6": false })),
        ("bytes not base64", json!({ "fBytes": "not base64!" })),
        ("bytes of a bad length", json!({ "fBytes": "QUJDR" })),
        ("bytes of mixed alphabets", json!({ "fBytes": "ab+_" })),
        ("string as a number", json!({ "fString": 5 })),
        ("bool as a string", json!({ "fBool": "true" })),
        ("repeated as a scalar", json!({ "manyInt64": "1" })),
        ("repeated element wrong", json!({ "manyInt64": ["1", "x"] })),
        ("message as a string", json!({ "singleLeaf": "leaf" })),
        ("nested field wrong", json!({ "singleLeaf": { "weight": "heavy" } })),
        ("recursive field wrong", json!({ "next": { "next": { "fBool": 1 } } })),
        ("tree deep wrong", json!({ "tree": { "children": [{ "named": { "x": { "label": 3 } } }] } })),
        ("inlined nested wrong", json!({ "inline": { "deep": { "blob": "%%" } } })),
        ("map as an array", json!({ "byName": [] })),
        ("int32 map key not a number", json!({ "byInt32": { "one": "x" } })),
        ("uint64 map key negative", json!({ "byUint64": { "-1": "2" } })),
        ("bool map key", json!({ "byBool": { "yes": "COLOR_RED" } })),
        ("map value wrong", json!({ "bySint64": { "1": "not base64!" } })),
        ("timestamp not RFC 3339", json!({ "at": "yesterday" })),
        ("timestamp as a number", json!({ "at": 1700000000 })),
        ("duration without unit", json!({ "took": "1.5" })),
        ("duration with a bare point", json!({ "took": "1.s" })),
        ("wrapper as an object", json!({ "wInt64": { "value": "1" } })),
        ("bool wrapper as a string", json!({ "wBool": "false" })),
        ("struct as an array", json!({ "meta": [1] })),
        ("list as an object", json!({ "list": {} })),
        ("any without @type", json!({ "packed": { "name": "x" } })),
        ("field mask as an array", json!({ "mask": ["a"] })),
        ("empty with a field", json!({ "nothing": { "a": 1 } })),
        ("not an object", json!([1, 2])),
    ];
    let mut failures = Vec::new();
    for (what, instance) in &cases {
        let by_compact = !compact.is_valid(instance);
        let by_full = !full.is_valid(instance);
        let by_parser = !parses(&target, instance);
        if !(by_compact && by_full && by_parser) {
            failures.push(format!(
                "{what}: {instance} refused by compact {by_compact}, full {by_full}, parser {by_parser}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The documented disagreements, pinned so a change in either side shows.
#[test]
fn documented_disagreements() {
    let target = everything();
    let compact = validator(&input_schema(&target));
    let full = validator(&schema::schema(&target, Direction::Input, Style::Full));
    // Stricter schema: the parser accepts these, the schema does not.
    for instance in [
        json!({ "fString": null }),
        json!({ "fInt32": "7" }),
        json!({ "fDouble": "1.5" }),
        json!({ "color": 1 }),
        // URL-safe base64: the full style takes it, as the parser does.
        json!({ "fBytes": "-_-_" }),
    ] {
        assert!(parses(&target, &instance), "{instance}");
        assert!(!compact.is_valid(&instance), "{instance}");
    }
    assert!(full.is_valid(&json!({ "fBytes": "-_-_" })));
    // The original name: the parser takes it; full refuses an unknown key, compact lets it by.
    let snake = json!({ "f_string": "x" });
    assert!(parses(&target, &snake));
    assert!(compact.is_valid(&snake));
    assert!(!full.is_valid(&snake));
    // Looser schema: the schema accepts these, the parser refuses them.
    for instance in [
        json!({ "fInt64": "9223372036854775808" }),
        json!({ "byInt32": { "2147483648": "x" } }),
        json!({ "took": "315576000001s" }),
        json!({ "packed": { "@type": "type.googleapis.com/no.Such" } }),
        json!({ "unknownKey": 1 }),
        // A wrong type under the `.proto` name: compact has no property of that name.
        json!({ "f_string": 5 }),
    ] {
        assert!(!parses(&target, &instance), "{instance}");
        assert!(compact.is_valid(&instance), "{instance}");
    }
}

/// The patterns agree exactly with the parser on every short string over
/// the characters that matter.
#[test]
fn patterns_agree_with_the_parser_exhaustively() {
    let target = everything();
    let compact = validator(&input_schema(&target));
    let full = validator(&schema::schema(&target, Direction::Input, Style::Full));
    let check = |validator: &Validator, field: &str, alphabet: &[char], max_len: usize| {
        let mut strings = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..max_len {
            frontier = frontier.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            strings.extend(frontier.iter().cloned());
        }
        let mut disagree = Vec::new();
        for s in &strings {
            let instance = json!({ field: s });
            let (schema, parser) = (validator.is_valid(&instance), parses(&target, &instance));
            if schema != parser {
                disagree.push(format!("{s:?}: schema {schema}, parser {parser}"));
            }
        }
        assert!(disagree.is_empty(), "{field}: {} of {}:\n{}", disagree.len(), strings.len(), disagree.join("\n"));
    };
    // Full: both alphabets, exactly. Compact: the standard one, exactly.
    check(&full, "fBytes", &['A', 'b', '+', '/', '-', '_', '=', '.'], 6);
    check(&compact, "fBytes", &['A', 'b', '+', '/', '=', '.'], 6);
    for style in [&compact, &full] {
        check(style, "fInt64", &['1', '0', '+', '-', ' ', 'e'], 5);
        check(style, "fUint64", &['9', '0', '+', '-', 'x'], 5);
        check(style, "fSfixed64", &['3', '-', '+', '.'], 5);
        check(style, "took", &['1', '0', '.', '-', 's', 'S', ' '], 6);
        // Any number of decimals (the parser takes ten and more).
        for decimals in 0..16 {
            let took = json!({ "took": format!("1.{}s", "7".repeat(decimals)) });
            assert_eq!(style.is_valid(&took), parses(&target, &took), "{took}");
        }
    }
}

#[test]
fn recursion_goes_through_defs_and_the_root() {
    let target = everything();
    let schema = input_schema(&target);
    assert_eq!(schema["properties"]["next"]["$ref"], "#");
    assert_eq!(schema["properties"]["tree"]["$ref"], "#/$defs/Tree");
    assert_eq!(schema["$defs"]["Tree"]["properties"]["children"]["items"]["$ref"], "#/$defs/Tree");
    // Leaf is used five times: defined once. Inline is used once: inlined.
    assert_eq!(schema["properties"]["singleLeaf"]["$ref"], "#/$defs/Leaf");
    assert_eq!(schema["properties"]["inline"]["type"], "object");
    assert_eq!(schema["$defs"].as_object().unwrap().keys().collect::<Vec<_>>(), ["Leaf", "Tree"]);
    // A deep instance validates, a deep mistake does not.
    let mut deep = json!({ "label": "leaf" });
    for i in 0..50 {
        deep = json!({ "label": format!("{i}"), "children": [deep.clone()], "named": { "n": deep } });
        if i > 8 {
            deep["named"] = json!({});
        }
    }
    let v = validator(&schema);
    assert!(v.is_valid(&json!({ "tree": deep, "next": { "next": { "tree": deep } } })));
    let mut bad = deep.clone();
    bad["children"][0]["children"][0]["label"] = json!(1);
    assert!(!v.is_valid(&json!({ "tree": bad })));
    assert!(!parses(&target, &json!({ "tree": bad })));
}

#[test]
fn compact_says_each_thing_once() {
    let target = everything();
    let text = input_schema(&target).to_string();
    for absent in ["\"title\"", "\"$schema\"", "\"additionalProperties\":false"] {
        assert!(!text.contains(absent), "compact has {absent}");
    }
    let full = schema::schema(&target, Direction::Input, Style::Full).to_string();
    for present in ["\"title\"", "\"$schema\"", "\"additionalProperties\":false"] {
        assert!(full.contains(present), "full lacks {present}");
    }
    assert!(text.len() < full.len());
    let schema = input_schema(&target);
    assert_eq!(
        schema["properties"]["color"],
        json!({ "enum": ["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_GREEN"], "description": "trailing comment of color" })
    );
    assert_eq!(schema["properties"]["fBytes"]["contentEncoding"], "base64");
    assert_eq!(schema["properties"]["byInt32"]["propertyNames"]["pattern"], "^[+-]?[0-9]+$");
    assert_eq!(schema["properties"]["at"], json!({ "type": "string", "format": "date-time" }));
    assert_eq!(schema["properties"]["wBool"], json!({ "type": "boolean" }));
    assert_eq!(schema["properties"]["anything"], json!({}));
}

#[test]
fn descriptions_come_from_the_proto_comments() {
    let target = everything();
    assert_eq!(schema::description(&target).as_deref(), Some("A message with one field of every kind."));
    let schema = input_schema(&target);
    assert_eq!(schema["description"], "A message with one field of every kind.");
    assert_eq!(
        schema["properties"]["fDouble"]["description"],
        "A double: a number, or \"NaN\", \"Infinity\", \"-Infinity\"."
    );
    assert!(schema["properties"]["fFloat"].get("description").is_none());
    // The standard intents' descriptor set, as tacit-build emits it, keeps them.
    let pool = standard();
    let described = messages(&pool, "tacit.intents.v1.").iter().filter(|m| schema::description(m).is_some()).count();
    assert!(described >= 15, "{described} standard intents have a description");
    let ping = pool.get_message_by_name("tacit.intents.v1.Ping").unwrap();
    let ping_schema = input_schema(&ping);
    assert!(ping_schema["properties"]["nonce"]["description"].is_string(), "{ping_schema}");
}

#[test]
fn tool_definitions_say_the_description_once_in_compact() {
    let pool = standard();
    let ping = pool.get_message_by_name("tacit.intents.v1.Ping").unwrap();
    let pong = pool.get_message_by_name("tacit.intents.v1.Pong").unwrap();
    let compact = schema::tool_definition("ping", &ping, Some(&pong), Style::Compact);
    let description = schema::description(&ping).unwrap();
    assert_eq!(compact["name"], "ping");
    assert_eq!(compact["description"], description);
    assert!(compact["inputSchema"].get("description").is_none(), "{compact}");
    assert_eq!(compact["outputSchema"], output_schema(&pong));
    let full = schema::tool_definition("ping", &ping, Some(&pong), Style::Full);
    assert_eq!(full["inputSchema"]["description"], description);
    // A tell has no output schema.
    let tell = schema::tool_definition("pong", &pong, None, Style::Compact);
    assert!(tell.get("outputSchema").is_none());
    assert!(compact.to_string().len() < full.to_string().len());
}

#[test]
fn a_well_known_type_at_the_root_has_its_json_form() {
    let pool = kinds();
    let timestamp = pool.get_message_by_name("google.protobuf.Timestamp").unwrap();
    assert_eq!(input_schema(&timestamp), json!({ "type": "string", "format": "date-time" }));
    let empty = pool.get_message_by_name("google.protobuf.Empty").unwrap();
    let v = validator(&input_schema(&empty));
    assert!(v.is_valid(&json!({})) && parses(&empty, &json!({})));
    assert!(!v.is_valid(&json!({ "a": 1 })) && !parses(&empty, &json!({ "a": 1 })));
}

/// A peer's descriptor set may nest thousands of messages: the schema
/// stays bounded in stack (a small thread) and nesting, and still validates.
#[test]
fn deep_chains_of_messages_go_to_defs_past_a_depth() {
    const DEPTH: usize = 3000;
    // Built as descriptors (protox itself recurses too deep on such a file).
    use prost_types::field_descriptor_proto::{Label, Type};
    let field = |name: &str, number, kind: Type, type_name: Option<String>| prost_types::FieldDescriptorProto {
        name: Some(name.into()),
        json_name: Some(name.into()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(kind as i32),
        type_name,
        ..Default::default()
    };
    let message_type = (0..=DEPTH)
        .map(|i| {
            let mut fields = vec![field("n", 1, Type::Int32, None)];
            if i < DEPTH {
                fields.push(field("next", 2, Type::Message, Some(format!(".deep.v1.M{}", i + 1))));
            }
            prost_types::DescriptorProto { name: Some(format!("M{i}")), field: fields, ..Default::default() }
        })
        .collect();
    let file = prost_types::FileDescriptorProto {
        name: Some("deep.proto".into()),
        package: Some("deep.v1".into()),
        syntax: Some("proto3".into()),
        message_type,
        ..Default::default()
    };
    let set = prost_types::FileDescriptorSet { file: vec![file] };
    let pool = DescriptorPool::decode(set.encode_to_vec().as_slice()).unwrap();
    let root = pool.get_message_by_name("deep.v1.M0").unwrap();
    let schema = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || input_schema(&root))
        .unwrap()
        .join()
        .expect("no stack overflow");
    let defs = schema["$defs"].as_object().unwrap();
    assert!(defs.len() >= DEPTH / 20 && defs.len() <= DEPTH / 10, "{}", defs.len());
    // Nesting inside any one definition stays within the inline depth.
    fn depth(value: &Json) -> usize {
        match value {
            Json::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
            Json::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    assert!(defs.values().all(|d| depth(d) <= 2 * 16 + 2), "too deep");
    // jsonschema compiles `$ref`s recursively: its own stack needs room.
    let check = move || {
        let v = validator(&schema);
        let mut instance = json!({ "n": 1 });
        for _ in 0..40 {
            instance = json!({ "next": instance, "n": 2 });
        }
        assert!(v.is_valid(&instance));
        instance["next"]["next"]["next"]["n"] = json!("x");
        assert!(!v.is_valid(&instance));
    };
    std::thread::Builder::new().stack_size(256 << 20).spawn(check).unwrap().join().unwrap();
}
