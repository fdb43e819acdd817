#![no_main]

use libfuzzer_sys::fuzz_target;

// The IntentId of a peer's descriptor set (tacit-wire), then, when it
// computes, the agent's `Schema::new` over the same set (prost-reflect's
// descriptor pool) and a decode with it.
fuzz_target!(|data: &[u8]| {
    if let Some((name, id)) = tacit_wire::fuzzing::schema(data) {
        let set = bytes::Bytes::copy_from_slice(&data[1..]);
        if let Ok(schema) = tacit::Schema::new(id, name, set) {
            assert_eq!(schema.id(), id);
            let _ = schema.decode(&data[1..data.len().min(65)]);
        }
    }
});
