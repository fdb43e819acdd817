//! Replays the `schema` fuzz target's inputs (`fuzz/corpus/schema/`,
//! `fuzz/regressions/schema/`) through the whole target: the IntentId of a
//! peer's descriptor set (`tacit_wire::fuzzing::schema`), then
//! [`tacit::Schema::new`] over it, which must return, never panic.

use bytes::Bytes;
use tacit_testkit::corpus::{fuzz_dir, inputs, replay};

fn schema_target(data: &[u8]) {
    if let Some((name, id)) = tacit_wire::fuzzing::schema(data)
        && let Ok(schema) = tacit::Schema::new(id, name, Bytes::copy_from_slice(&data[1..]))
    {
        assert_eq!(schema.id(), id);
        let _ = schema.decode(&data[1..data.len().min(65)]);
    }
}

#[test]
fn schema_corpus_and_regressions() {
    for dir in ["corpus/schema", "regressions/schema"] {
        replay(schema_target, &inputs(&fuzz_dir().join(dir)));
    }
}

/// A file with a group field and the syntax `proto"`: prost-reflect 0.16.5
/// panics building the error. The canonical form now refuses the unknown
/// syntax (`[id.syntax]`), so the set has no IntentId; `Schema::new` over
/// it, with any id, must still return an error, never panic.
#[test]
fn proto3_group_field_is_an_error() {
    let input = std::fs::read(fuzz_dir().join("regressions/schema/proto3-group-field-panics-prost-reflect")).unwrap();
    assert!(tacit_wire::fuzzing::schema(&input).is_none(), "an unknown syntax has no IntentId");
    let id = tacit_wire::IntentId::from_bytes([7; 32]);
    let outcome =
        std::panic::catch_unwind(|| tacit::Schema::new(id, "g.M".into(), Bytes::copy_from_slice(&input[1..])));
    assert!(matches!(outcome, Ok(Err(_))), "Schema::new panicked or accepted the set");
}

/// A map entry type whose key field is numbered 96, not 1: prost-reflect
/// 0.16.5 accepts the set, then unwraps the missing key field while decoding
/// a message with it. `Schema::new` must refuse such a set.
#[test]
fn map_entry_without_key_field_is_an_error() {
    let input =
        std::fs::read(fuzz_dir().join("regressions/schema/map-entry-without-key-panics-prost-reflect")).unwrap();
    let (name, id) = tacit_wire::fuzzing::schema(&input).expect("the input computes an IntentId");
    let error = tacit::Schema::new(id, name, Bytes::copy_from_slice(&input[1..])).unwrap_err();
    assert!(error.to_string().contains("map entry"), "{error}");
}

/// Files that import each other publicly in a cycle: prost-reflect 0.16.5
/// recurses without bound resolving public imports (a stack overflow).
/// `Schema::new` must refuse the set first.
#[test]
fn public_import_cycle_is_an_error() {
    let input =
        std::fs::read(fuzz_dir().join("regressions/schema/public-import-cycle-overflows-prost-reflect")).unwrap();
    let (name, id) = tacit_wire::fuzzing::schema(&input).expect("the input computes an IntentId");
    let error = tacit::Schema::new(id, name, Bytes::copy_from_slice(&input[1..])).unwrap_err();
    assert!(error.to_string().contains("cycle") || error.to_string().contains("public import"), "{error}");
}
