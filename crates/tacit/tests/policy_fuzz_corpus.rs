//! Replays the committed fuzz corpus of the `policy` target (policy files,
//! [policy.file]) through the function the cargo-fuzz target calls
//! ([`tacit::policy::fuzz_policy_file`]), so a stable `cargo test` catches a
//! parser panic without a fuzzer.

use tacit_testkit::corpus::{replay_regressions, replay_seeds};

#[test]
fn policy_corpus() {
    replay_seeds("policy", tacit::policy::fuzz_policy_file);
    replay_regressions("policy", tacit::policy::fuzz_policy_file);
}
