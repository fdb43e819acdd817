//! Replays the committed fuzz corpus through the fuzz targets' entry points.
//!
//! The seeds in `fuzz/corpus/<target>/` and any crash inputs saved in
//! `fuzz/regressions/<target>/` run through exactly the functions the
//! cargo-fuzz targets call ([`tacit_wire::fuzzing`]), so a stable
//! `cargo test` catches a regression without a fuzzer or a nightly toolchain.

use tacit_testkit::corpus::{replay_regressions, replay_seeds};

/// A fuzz target's entry point.
type Target = fn(&[u8]);

/// The fuzz targets, by directory name, and their entry points.
const TARGETS: [(&str, Target); 3] = [
    ("frame_decoder", tacit_wire::fuzzing::frame_decoder),
    ("envelope", tacit_wire::fuzzing::envelope),
    ("schema", tacit_wire::fuzzing::schema_target),
];

/// The schema seeds still reach a computed id (a change that made every
/// seed fail early would turn them into noise).
#[test]
fn schema_seeds_compute_ids() {
    use tacit_testkit::corpus::{fuzz_dir, inputs};
    let computed = inputs(&fuzz_dir().join("corpus/schema"))
        .iter()
        .filter(|path| tacit_wire::fuzzing::schema(&std::fs::read(path).unwrap()).is_some())
        .count();
    assert!(computed >= 8, "only {computed} schema seeds compute an id");
}

#[test]
fn seed_corpus() {
    for (name, target) in TARGETS {
        replay_seeds(name, target);
    }
}

#[test]
fn regressions() {
    for (name, target) in TARGETS {
        replay_regressions(name, target);
    }
}
