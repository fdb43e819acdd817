#![no_main]

use libfuzzer_sys::fuzz_target;

// The IntentId of a peer's descriptor set (tacit-wire), then, when it
// computes, the agent's `Schema::new` over the same set (prost-reflect's
// descriptor pool) and a decode with it.
//
// `Schema::new` catches panics of the descriptor pool (a peer's set must not
// crash the agent); libfuzzer-sys's panic hook would abort before that, so
// this target prints panics instead. Uncaught ones still fail the run
// (libfuzzer-sys aborts on any panic that reaches it).
fuzz_target!(|data: &[u8]| {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    if let Some((name, id)) = tacit_wire::fuzzing::schema(data)
        && let Ok(schema) = tacit::Schema::new(id, name, bytes::Bytes::copy_from_slice(&data[1..]))
    {
        assert_eq!(schema.id(), id);
        let _ = schema.decode(&data[1..data.len().min(65)]);
    }
});
