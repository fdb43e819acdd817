//! Replays the committed fuzz corpus through the `handshake` fuzz target's
//! entry point.
//!
//! The seeds in `fuzz/corpus/handshake/` and any crash inputs saved in
//! `fuzz/regressions/handshake/` run through exactly the function the
//! cargo-fuzz target calls ([`tacit_handshake::fuzzing::handshake`]), so a
//! stable `cargo test` catches a regression without a fuzzer or a nightly
//! toolchain.

use std::fs;

use tacit_testkit::corpus::{fuzz_dir, inputs, replay_regressions, replay_seeds};

#[test]
fn seed_corpus() {
    replay_seeds("handshake", tacit_handshake::fuzzing::handshake);
}

#[test]
fn regressions() {
    replay_regressions("handshake", tacit_handshake::fuzzing::handshake);
}

/// The `identity` target: key files and printed AgentIds.
#[test]
fn identity_corpus() {
    replay_seeds("identity", tacit_handshake::fuzzing::identity);
    replay_regressions("identity", tacit_handshake::fuzzing::identity);
}

/// The seeds still reach what they were made for: a change to the input
/// format that silently turned them into noise would fail here.
#[test]
fn seeds_reach_every_stage() {
    use tacit_handshake::fuzzing::run;
    use tacit_wire::ErrorCode;

    let outcomes: Vec<_> =
        inputs(&fuzz_dir().join("corpus/handshake")).iter().map(|path| run(&fs::read(path).unwrap())).collect();
    let any = |f: &dyn Fn(&tacit_handshake::fuzzing::Outcome) -> bool| outcomes.iter().any(f);
    assert!(any(&|o| o.mirrored), "no seed establishes both sides from genuine messages");
    assert!(any(&|o| o.final_mirrored && o.updates.iter().all(|&n| n > 0)), "no seed agrees after updates");
    assert!(any(&|o| o.schemas_received[0] > 0 && o.schemas_failed[0] > 0), "no seed fetches schemas");
    for code in [
        ErrorCode::HandshakeTimeout,
        ErrorCode::DuplicateMessage,
        ErrorCode::FrameTooLarge,
        ErrorCode::MalformedMessage,
        ErrorCode::NoCommonVersion,
        ErrorCode::TooManySchemaRequests,
    ] {
        assert!(any(&|o| o.failures.contains(&Some(code))), "no seed fails with {code:?}");
    }
}

/// The `credential` and `revocations` targets: signed credentials and
/// revocation lists (seeds from `docs/vectors/credentials.json`).
#[test]
fn credential_corpus() {
    replay_seeds("credential", tacit_handshake::fuzzing::credential);
    replay_regressions("credential", tacit_handshake::fuzzing::credential);
    replay_seeds("revocations", tacit_handshake::fuzzing::revocations);
    replay_regressions("revocations", tacit_handshake::fuzzing::revocations);
}

/// The `receipt` target: receipt files ([receipt.file]).
#[test]
fn receipt_corpus() {
    replay_seeds("receipt", tacit_handshake::fuzzing::receipt);
    replay_regressions("receipt", tacit_handshake::fuzzing::receipt);
}
