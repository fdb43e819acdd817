//! Replays the committed corpus of the `ask_stream` fuzz target
//! (`fuzz/corpus/ask_stream/`, `fuzz/regressions/ask_stream/`) through the
//! function the cargo-fuzz target calls ([`tacit_quic::fuzzing::ask_stream`]).

use tacit_testkit::corpus::{replay_regressions, replay_seeds};

#[test]
fn seed_corpus() {
    replay_seeds("ask_stream", tacit_quic::fuzzing::ask_stream);
}

#[test]
fn regressions() {
    replay_regressions("ask_stream", tacit_quic::fuzzing::ask_stream);
}
