//! Replays the committed fuzz corpus through the fuzz targets' entry points.
//!
//! The seeds in `fuzz/corpus/<target>/` and any crash inputs saved in
//! `fuzz/regressions/<target>/` run through exactly the functions the
//! cargo-fuzz targets call ([`tacit_wire::fuzzing`]), so a stable
//! `cargo test` catches a regression without a fuzzer or a nightly toolchain.

use std::fs;
use std::path::{Path, PathBuf};

/// A fuzz target's entry point.
type Target = fn(&[u8]);

/// The fuzz targets, by directory name, and their entry points.
const TARGETS: [(&str, Target); 2] =
    [("frame_decoder", tacit_wire::fuzzing::frame_decoder), ("envelope", tacit_wire::fuzzing::envelope)];

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
