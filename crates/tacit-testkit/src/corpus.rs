//! Replays the committed fuzz inputs (`fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`) through a fuzz target's entry point from a
//! normal `cargo test`, so the stable toolchain exercises the corpus without
//! a fuzzer. Used by the `tests/fuzz_corpus.rs` of every crate with fuzz
//! targets.
// Test support: a missing or unreadable corpus must fail the test loudly.
#![allow(clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

/// The workspace's `fuzz/` directory.
pub fn fuzz_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    dir.canonicalize().unwrap_or(dir)
}

/// The files in `dir`, sorted by name so runs are reproducible.
pub fn inputs(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every file through `target`; panics naming each input that panicked.
pub fn replay(target: fn(&[u8]), files: &[PathBuf]) {
    let mut failures = Vec::new();
    for path in files {
        let data = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            let hex: String = data.iter().map(|byte| format!("{byte:02x}")).collect();
            failures.push(format!("{} (input {hex})", path.display()));
        }
    }
    assert!(failures.is_empty(), "{} of {} inputs panicked:\n{}", failures.len(), files.len(), failures.join("\n"));
}

/// Replays the seed corpus of `name`, which must exist and not be empty.
pub fn replay_seeds(name: &str, target: fn(&[u8])) {
    let dir = fuzz_dir().join("corpus").join(name);
    assert!(dir.is_dir(), "seed corpus {} is missing", dir.display());
    let files = inputs(&dir);
    assert!(!files.is_empty(), "seed corpus {} is empty", dir.display());
    replay(target, &files);
    println!("{name}: replayed {} seed inputs", files.len());
}

/// Replays the saved crash inputs of `name`, if it has any.
pub fn replay_regressions(name: &str, target: fn(&[u8])) {
    let dir = fuzz_dir().join("regressions").join(name);
    if !dir.is_dir() {
        println!("{name}: no regressions directory");
        return;
    }
    let files = inputs(&dir);
    replay(target, &files);
    println!("{name}: replayed {} regression inputs", files.len());
}
