//! IntentId: the test vectors in docs/PROTOCOL.md, the printed form, and what
//! does and does not change an id.

use std::path::Path;

use proptest::prelude::*;
use prost::Message as _;
use prost_types::FileDescriptorSet;
use tacit_wire::{IntentId, ParseIntentIdError, SchemaError, canonical_schema};

/// Compiles in-memory `.proto` files with protox (no `protoc`).
fn compile(files: &[(&str, &str)]) -> FileDescriptorSet {
    let dir = std::env::temp_dir().join(format!("tacit-intent-id-{}-{}", std::process::id(), unique()));
    for (name, source) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, source).unwrap();
    }
    let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    let set = protox::compile(names, [&dir]).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    set
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One test vector as docs/PROTOCOL.md states it.
#[derive(Debug, Default)]
struct Vector {
    title: String,
    files: Vec<(String, String)>,
    message: String,
    canonical: String,
    id: String,
}

/// Parses the "#### Vector" sections of docs/PROTOCOL.md: ```` ```proto file=NAME ````
/// blocks, a `- message:` line, a ```` ```text ```` block with the canonical
/// form and an `- intent id:` line.
fn vectors_from_protocol_doc() -> Vec<Vector> {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let mut vectors: Vec<Vector> = Vec::new();
    let mut in_vector = false;
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix("#### Vector ") {
            vectors.push(Vector { title: title.to_owned(), ..Vector::default() });
            in_vector = true;
            continue;
        }
        if line.starts_with('#') {
            // Any other heading ends the current vector.
            in_vector = false;
            continue;
        }
        let Some(vector) = vectors.last_mut().filter(|_| in_vector) else { continue };
        let code = |lines: &mut std::str::Lines<'_>| {
            let mut body = String::new();
            for l in lines.by_ref() {
                if l == "```" {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            body
        };
        if let Some(name) = line.strip_prefix("```proto file=") {
            vector.files.push((name.to_owned(), code(&mut lines)));
        } else if line == "```text" {
            vector.canonical = code(&mut lines);
        } else if let Some(rest) = line.strip_prefix("- message: `") {
            vector.message = rest.trim_end_matches('`').to_owned();
        } else if let Some(rest) = line.strip_prefix("- intent id: `") {
            vector.id = rest.trim_end_matches('`').to_owned();
        }
    }
    vectors
}

#[test]
fn protocol_doc_vectors() {
    let vectors = vectors_from_protocol_doc();
    assert!(vectors.len() >= 3, "docs/PROTOCOL.md must hold at least 3 vectors, found {}", vectors.len());
    for vector in &vectors {
        assert!(!vector.files.is_empty() && !vector.message.is_empty(), "incomplete vector {vector:?}");
        let files: Vec<(&str, &str)> = vector.files.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
        let set = compile(&files);
        let canonical = canonical_schema(&set, &vector.message).unwrap();
        assert_eq!(canonical, vector.canonical, "canonical form of vector {}", vector.title);
        let expected: IntentId = vector.id.parse().unwrap();
        assert_eq!(IntentId::from_canonical(&vector.canonical), expected, "hash of vector {}", vector.title);
        assert_eq!(IntentId::of_message(&set, &vector.message).unwrap(), expected, "vector {}", vector.title);
        // The same from the encoded set, as a schema-fetch reply carries it.
        let encoded = set.encode_to_vec();
        assert_eq!(IntentId::of_message_in_encoded_set(&encoded, &vector.message).unwrap(), expected);
        println!("vector {}: {} = {expected}", vector.title, vector.message);
    }
}

const BASE: &str = r#"
syntax = "proto3";
package acme.v1;
message Slot {
  string resource = 1;
  uint64 start = 2;
  Color color = 3;
}
enum Color { COLOR_UNSPECIFIED = 0; RED = 1; }
"#;

fn id_of(source: &str, message: &str) -> IntentId {
    IntentId::of_message(&compile(&[("acme/v1/slot.proto", source)]), message).unwrap()
}

#[test]
fn unrelated_changes_keep_the_id() {
    let base = id_of(BASE, "acme.v1.Slot");
    // Comments, declaration order, options, unrelated types, and a JSON name
    // equal to the derived one.
    let reordered = r#"
// A comment.
syntax = "proto3";
package acme.v1;
option java_package = "com.acme";
enum Color { COLOR_UNSPECIFIED = 0; RED = 1; }
message Unrelated { bytes x = 1; }
message Slot {
  Color color = 3 [json_name = "color"];
  // The thing reserved.
  string resource = 1 [deprecated = true];
  uint64 start = 2;
}
"#;
    assert_eq!(id_of(reordered, "acme.v1.Slot"), base);

    // The same types split over two files with other names.
    let set = compile(&[
        ("a/color.proto", "syntax = \"proto3\";\npackage acme.v1;\nenum Color { COLOR_UNSPECIFIED = 0; RED = 1; }\n"),
        (
            "b/slot.proto",
            "syntax = \"proto3\";\npackage acme.v1;\nimport \"a/color.proto\";\n\
             message Slot { string resource = 1; uint64 start = 2; Color color = 3; }\n",
        ),
    ]);
    assert_eq!(IntentId::of_message(&set, "acme.v1.Slot").unwrap(), base);
    // A leading dot on the name is accepted.
    assert_eq!(IntentId::of_message(&set, ".acme.v1.Slot").unwrap(), base);
}

#[test]
fn meaningful_changes_change_the_id() {
    let base = id_of(BASE, "acme.v1.Slot");
    let variants = [
        ("field renamed", BASE.replace("string resource = 1", "string resource_name = 1")),
        ("field renumbered", BASE.replace("uint64 start = 2", "uint64 start = 4")),
        ("field type", BASE.replace("uint64 start = 2", "int64 start = 2")),
        ("label", BASE.replace("uint64 start = 2", "repeated uint64 start = 2")),
        ("presence", BASE.replace("uint64 start = 2", "optional uint64 start = 2")),
        ("enum value added", BASE.replace("RED = 1;", "RED = 1; BLUE = 2;")),
        ("enum value renamed", BASE.replace("RED = 1;", "CRIMSON = 1;")),
        ("package", BASE.replace("package acme.v1;", "package acme.v2;")),
        ("field added", BASE.replace("Color color = 3;", "Color color = 3; bool held = 4;")),
        ("oneof", BASE.replace("uint64 start = 2;", "oneof when { uint64 start = 2; }")),
    ];
    for (what, source) in variants {
        let package = if what == "package" { "acme.v2.Slot" } else { "acme.v1.Slot" };
        assert_ne!(id_of(&source, package), base, "{what} must change the id");
    }
}

#[test]
fn recursive_and_nested_types() {
    let source = r#"
syntax = "proto3";
package acme.v1;
message Tree {
  message Leaf { string label = 1; }
  repeated Tree children = 1;
  Leaf leaf = 2;
  map<string, Tree> named = 3;
}
"#;
    let set = compile(&[("acme/v1/tree.proto", source)]);
    let canonical = canonical_schema(&set, "acme.v1.Tree").unwrap();
    // Each reachable type appears once, sorted by name; the map entry is marked.
    let headers: Vec<&str> = canonical.lines().filter(|l| l.starts_with("message ")).collect();
    assert_eq!(
        headers,
        [
            "message acme.v1.Tree proto3",
            "message acme.v1.Tree.Leaf proto3",
            "message acme.v1.Tree.NamedEntry proto3 map_entry"
        ]
    );
    // A nested type on its own does not reach its parent.
    let leaf = canonical_schema(&set, "acme.v1.Tree.Leaf").unwrap();
    assert_eq!(leaf.lines().filter(|l| l.starts_with("message ")).count(), 1);
}

#[test]
fn schema_errors() {
    let set = compile(&[("acme/v1/slot.proto", BASE)]);
    assert_eq!(
        IntentId::of_message(&set, "acme.v1.Missing"),
        Err(SchemaError::UnknownMessage("acme.v1.Missing".into()))
    );
    // An enum is not a message.
    assert!(matches!(IntentId::of_message(&set, "acme.v1.Color"), Err(SchemaError::UnknownMessage(_))));

    // A set missing a dependency.
    let mut partial = set.clone();
    partial.file[0].enum_type.clear();
    assert!(matches!(IntentId::of_message(&partial, "acme.v1.Slot"), Err(SchemaError::UnresolvedType { .. })));

    // The same type defined twice.
    let mut doubled = set.clone();
    let mut copy = doubled.file[0].clone();
    copy.name = Some("copy.proto".into());
    doubled.file.push(copy);
    assert!(matches!(IntentId::of_message(&doubled, "acme.v1.Slot"), Err(SchemaError::DuplicateType(_))));

    // A field without a type.
    let mut untyped = set.clone();
    untyped.file[0].message_type[0].field[0].r#type = None;
    assert!(matches!(IntentId::of_message(&untyped, "acme.v1.Slot"), Err(SchemaError::MissingFieldType { .. })));

    // Bytes that are not a descriptor set.
    assert!(matches!(IntentId::of_message_in_encoded_set(&[0xff, 0xff], "acme.v1.Slot"), Err(SchemaError::Decode(_))));
}

#[test]
fn printed_form() {
    let id = IntentId::from_bytes([0xab; 32]);
    assert_eq!(id.to_string(), "ab".repeat(32));
    assert_eq!(format!("{id:?}"), format!("IntentId({})", "ab".repeat(32)));
    assert_eq!("AB".repeat(32).parse::<IntentId>(), Ok(id));
    assert_eq!("ab".parse::<IntentId>(), Err(ParseIntentIdError::WrongLength(2)));
    assert_eq!("".parse::<IntentId>(), Err(ParseIntentIdError::WrongLength(0)));
    let mut bad = "ab".repeat(32);
    bad.replace_range(10..11, "g");
    assert_eq!(bad.parse::<IntentId>(), Err(ParseIntentIdError::InvalidChar { index: 10, found: 'g' }));
    // Multi-byte characters are reported, not split.
    let wide = format!("{}é", "a".repeat(62));
    assert_eq!(wide.parse::<IntentId>(), Err(ParseIntentIdError::InvalidChar { index: 62, found: 'é' }));
    assert_eq!(
        ParseIntentIdError::InvalidChar { index: 10, found: 'g' }.to_string(),
        "intent id has 'g' at position 10, expected a hex digit"
    );
    assert_eq!(IntentId::try_from(&[1u8; 31][..]), Err(ParseIntentIdError::WrongByteLength(31)));
}

proptest! {
    #[test]
    fn display_from_str_round_trip(bytes: [u8; 32]) {
        let id = IntentId::from_bytes(bytes);
        let printed = id.to_string();
        prop_assert_eq!(printed.len(), 64);
        prop_assert!(printed.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        prop_assert_eq!(printed.parse::<IntentId>(), Ok(id));
    }

    #[test]
    fn from_str_never_panics(s in "\\PC{0,70}") {
        let _ = s.parse::<IntentId>();
    }
}

proptest! {
    /// IntentIds order as their bytes do (the word-wise `Ord` is only a
    /// faster way to the same answer).
    #[test]
    fn ids_order_as_their_bytes(a in prop::array::uniform32(0u8..), b in prop::array::uniform32(0u8..), shared in 0usize..32) {
        // Ids that share a prefix, so that later words decide too.
        let mut b = b;
        b[..shared].copy_from_slice(&a[..shared]);
        let (x, y) = (IntentId::from_bytes(a), IntentId::from_bytes(b));
        prop_assert_eq!(x.cmp(&y), a.cmp(&b));
        prop_assert_eq!(x == y, a == b);
    }
}

/// `id.json-name`: a JSON name other than the derived lowerCamel one changes
/// the id (it changes what the schema means in JSON); the derived one, set
/// explicitly or not, does not. The old algorithm ignored `json_name`.
#[test]
fn json_name_changes_the_id() {
    let base = id_of(BASE, "acme.v1.Slot");
    let renamed = BASE.replace("Color color = 3;", "Color color = 3 [json_name = \"colour\"];");
    assert_ne!(id_of(&renamed, "acme.v1.Slot"), base);
    let canonical = canonical_schema(&compile(&[("acme/v1/slot.proto", &renamed)]), "acme.v1.Slot").unwrap();
    assert!(canonical.contains("field 3 color optional enum acme.v1.Color json_name=colour\n"), "{canonical}");
    // A descriptor without json_name (not every producer fills it) is the
    // derived name.
    let mut set = compile(&[("acme/v1/slot.proto", BASE)]);
    for field in &mut set.file[0].message_type[0].field {
        field.json_name = None;
    }
    assert_eq!(IntentId::of_message(&set, "acme.v1.Slot").unwrap(), base);
}

/// `id.default-float`, `id.default-bytes`, `id.default-int`: the canonical
/// form holds the value of a default, not the compiler's spelling of it. The
/// old algorithm copied `default_value` verbatim, so the spellings below gave
/// different ids.
#[test]
fn differently_spelled_defaults_give_one_id() {
    const SOURCE: &str = r#"
syntax = "proto2";
package acme.v1;
message Defaults {
  optional double big = 1 [default = 1e10];
  optional float small = 2 [default = 0.1];
  optional bytes magic = 3 [default = "\001\377a"];
  optional int32 flags = 4 [default = 16];
  optional double top = 5 [default = inf];
}
"#;
    let set = compile(&[("acme/v1/defaults.proto", SOURCE)]);
    let base = IntentId::of_message(&set, "acme.v1.Defaults").unwrap();
    let canonical = canonical_schema(&set, "acme.v1.Defaults").unwrap();
    for line in [
        "field 1 big optional double default=10000000000\n",
        "field 2 small optional float default=0.1\n",
        "field 3 magic optional bytes default=01ff61\n",
        "field 4 flags optional int32 default=16\n",
        "field 5 top optional double default=inf\n",
    ] {
        assert!(canonical.contains(line), "{line:?} in {canonical}");
    }
    // How protoc, protox and others may spell the same values.
    let spellings: [&[&str]; 5] = [
        &["1e+10", "1e10", "10000000000", "1.0E10"],
        &["0.1", "0.10000000149011612", ".1"],
        &["\\001\\377a", "\\x01\\xffa", "\\1\\377\\141", "\\x1\\xFF\\x61"],
        &["16", "0x10", "020"],
        &["inf", "Infinity", "+inf"],
    ];
    for (index, spellings) in spellings.iter().enumerate() {
        for spelling in *spellings {
            let mut respelled = set.clone();
            respelled.file[0].message_type[0].field[index].default_value = Some((*spelling).to_owned());
            assert_eq!(
                IntentId::of_message(&respelled, "acme.v1.Defaults").unwrap(),
                base,
                "field {index} spelled {spelling:?}"
            );
        }
    }
    // A default that is not a value of its type has no id.
    let mut bad = set.clone();
    bad.file[0].message_type[0].field[3].default_value = Some("sixteen".into());
    assert!(matches!(IntentId::of_message(&bad, "acme.v1.Defaults"), Err(SchemaError::InvalidDefault { .. })));
}

/// `id.syntax`: a type from an editions file has no IntentId in v1 (the old
/// algorithm printed `editions` as the syntax and ignored its features). An
/// editions file that no reached type comes from does not matter.
#[test]
fn editions_are_refused() {
    let mut set = compile(&[("acme/v1/slot.proto", BASE)]);
    set.file[0].syntax = Some("editions".into());
    assert_eq!(
        IntentId::of_message(&set, "acme.v1.Slot"),
        Err(SchemaError::UnsupportedSyntax { type_name: "acme.v1.Color".into(), syntax: "editions".into() })
    );
    let mut other = compile(&[("acme/v1/slot.proto", BASE)]);
    let mut unrelated = other.file[0].clone();
    unrelated.name = Some("other.proto".into());
    unrelated.package = Some("other".into());
    unrelated.syntax = Some("editions".into());
    other.file.push(unrelated);
    assert_eq!(IntentId::of_message(&other, "acme.v1.Slot").unwrap(), id_of(BASE, "acme.v1.Slot"));
}
