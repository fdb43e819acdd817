//! Replays the committed fuzz corpus through the fuzz targets' entry points.
//!
//! The seeds in `fuzz/corpus/<target>/` and any crash inputs saved in
//! `fuzz/regressions/<target>/` run through exactly the functions the
//! cargo-fuzz targets call ([`tacit_wire::fuzzing`]), so a stable
//! `cargo test` catches a regression without a fuzzer or a nightly toolchain.

use tacit_wire::fuzzing::corpus::{replay_regressions, replay_seeds};

/// A fuzz target's entry point.
type Target = fn(&[u8]);

/// The fuzz targets, by directory name, and their entry points.
const TARGETS: [(&str, Target); 2] =
    [("frame_decoder", tacit_wire::fuzzing::frame_decoder), ("envelope", tacit_wire::fuzzing::envelope)];

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
