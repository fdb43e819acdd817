//! Replays the committed fuzz corpus through the `handshake` fuzz target's
//! entry point.
//!
//! The seeds in `fuzz/corpus/handshake/` and any crash inputs saved in
//! `fuzz/regressions/handshake/` run through exactly the function the
//! cargo-fuzz target calls ([`tacit_handshake::fuzzing::handshake`]), so a
//! stable `cargo test` catches a regression without a fuzzer or a nightly
//! toolchain.

use std::fs;
use std::path::{Path, PathBuf};

/// A fuzz target's entry point.
type Target = fn(&[u8]);

/// The fuzz targets, by directory name, and their entry points.
const TARGETS: [(&str, Target); 1] = [("handshake", tacit_handshake::fuzzing::handshake)];

fn fuzz_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    dir.canonicalize().unwrap_or(dir)
}

/// The files in `dir`, sorted by name so runs are reproducible.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every file in `files` through `target`; fails naming each input that panicked.
fn replay(target: Target, files: &[PathBuf]) {
    let mut failures = Vec::new();
    for path in files {
        let data = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            failures.push(format!("{} (input {})", path.display(), hex(&data)));
        }
    }
    assert!(failures.is_empty(), "{} of {} inputs panicked:\n{}", failures.len(), files.len(), failures.join("\n"));
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn seed_corpus() {
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        assert!(dir.is_dir(), "seed corpus {} is missing", dir.display());
        let files = inputs(&dir);
        assert!(!files.is_empty(), "seed corpus {} is empty", dir.display());
        replay(target, &files);
        println!("{name}: replayed {} seed inputs", files.len());
    }
}

#[test]
fn regressions() {
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join("regressions").join(name);
        if !dir.is_dir() {
            println!("{name}: no regressions directory");
            continue;
        }
        let files = inputs(&dir);
        replay(target, &files);
        println!("{name}: replayed {} regression inputs", files.len());
    }
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
