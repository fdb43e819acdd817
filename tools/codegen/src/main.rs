//! Regenerates the Rust code that is checked in beside the crates, from the
//! `.proto` files under `proto/`, with protox (pure Rust, no `protoc`) and
//! prost-build: plain prost types for the wire crate and the benches, and
//! Tacit's standard intents through tacit-build (prost types with their
//! `Intent` / `Request` impls and encoded descriptor sets).
//!
//! ```text
//! cargo run -p tacit-codegen            # rewrite the generated files
//! cargo run -p tacit-codegen -- --check # fail if they are out of date
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One generated module tree: which protos go in, where the Rust goes.
struct Target {
    /// Proto files, relative to `proto/`.
    protos: &'static [&'static str],
    /// Output directory, relative to the workspace root.
    out_dir: &'static str,
    /// How the code is generated.
    generator: Generator,
}

enum Generator {
    /// prost-build alone.
    Prost {
        /// Protobuf paths whose `bytes` fields become `bytes::Bytes`.
        bytes: &'static [&'static str],
        /// Enums that may gain values in later protocol versions.
        non_exhaustive_enums: &'static [&'static str],
    },
    /// tacit-build: prost types that are intents, and their descriptor sets.
    Intents {
        /// How the generated code names the tacit crate.
        tacit_path: &'static str,
    },
}

const TARGETS: &[Target] = &[
    Target {
        protos: &[
            "tacit/v1/envelope.proto",
            "tacit/v1/handshake.proto",
            "tacit/v1/credential.proto",
            "tacit/v1/record.proto",
        ],
        out_dir: "crates/tacit-wire/src/generated",
        generator: Generator::Prost { bytes: &["."], non_exhaustive_enums: &[".tacit.v1.Act", ".tacit.v1.ErrorCode"] },
    },
    Target {
        protos: &["tacit/bench/v1/reference.proto"],
        out_dir: "benches/src/generated",
        generator: Generator::Prost {
            // The typed payload decodes its blob without copying; the flat
            // baseline is plain prost (`Vec<u8>`, `String`), as most users have it.
            bytes: &[".tacit.bench.v1.ReserveSlot"],
            non_exhaustive_enums: &[],
        },
    },
    Target {
        // The same file as Tacit intents (`ReserveSlot` asked, answered by
        // `Ack`), for the benchmarks that go through the agent API.
        protos: &["tacit/bench/v1/reference.proto"],
        out_dir: "benches/src/generated/intents",
        generator: Generator::Intents { tacit_path: "::tacit" },
    },
    Target {
        protos: &[
            "tacit/intents/v1/ping.proto",
            "tacit/intents/v1/describe.proto",
            "tacit/intents/v1/task.proto",
            "tacit/intents/v1/contract_net.proto",
            "tacit/intents/v1/revocation.proto",
            "tacit/intents/v1/text.proto",
            "tacit/intents/v1/directory.proto",
        ],
        out_dir: "crates/tacit/src/generated",
        // The tacit crate generates its own standard intents.
        generator: Generator::Intents { tacit_path: "crate" },
    },
];

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("unknown argument {other:?}; usage: tacit-codegen [--check]");
            return ExitCode::from(2);
        }
    };
    match run(check) {
        Ok(up_to_date) if up_to_date || !check => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("generated code is out of date: run `cargo run -p tacit-codegen` and commit the result");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("codegen failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Generates every target; in check mode compares instead of writing.
/// Returns whether the checked-in files were already up to date.
fn run(check: bool) -> Result<bool, Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    let proto_root = root.join("proto");
    let mut up_to_date = true;
    for target in TARGETS {
        let generated = generate(&proto_root, target)?;
        let out_dir = root.join(target.out_dir);
        let existing = read_dir_files(&out_dir)?;
        for (name, content) in &generated {
            if existing.get(name) != Some(content) {
                up_to_date = false;
                println!("{}: {}", if check { "differs" } else { "writing" }, out_dir.join(name).display());
            }
        }
        for name in existing.keys().filter(|n| !generated.contains_key(*n)) {
            up_to_date = false;
            println!("{}: {}", if check { "stale" } else { "removing" }, out_dir.join(name).display());
        }
        if !check {
            fs::create_dir_all(&out_dir)?;
            for name in existing.keys().filter(|n| !generated.contains_key(*n)) {
                fs::remove_file(out_dir.join(name))?;
            }
            for (name, content) in &generated {
                fs::write(out_dir.join(name), content)?;
            }
        }
    }
    Ok(up_to_date)
}

/// Compiles one target into a scratch directory and returns its files.
fn generate(proto_root: &Path, target: &Target) -> Result<BTreeMap<String, Vec<u8>>, Box<dyn std::error::Error>> {
    let scratch = scratch_dir()?;
    match target.generator {
        Generator::Prost { bytes, non_exhaustive_enums } => {
            let fds = protox::compile(target.protos, [proto_root])?;
            let mut config = prost_build::Config::new();
            // Maps encode in key order, so equal messages encode to equal bytes.
            config.bytes(bytes).btree_map(["."]).out_dir(&scratch);
            for path in non_exhaustive_enums {
                config.enum_attribute(path, "#[non_exhaustive]");
            }
            config.compile_fds(fds)?;
        }
        Generator::Intents { tacit_path } => {
            let protos: Vec<_> = target.protos.iter().map(|proto| proto_root.join(proto)).collect();
            tacit_build::configure()
                .tacit_path(tacit_path)
                .out_dir(&scratch)
                .emit_rerun_if_changed(false)
                .compile(&protos, &[proto_root])?;
        }
    }
    let files = read_dir_files(&scratch)?;
    fs::remove_dir_all(&scratch)?;
    Ok(files)
}

fn scratch_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tacit-codegen-{}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The generated files directly in `dir` (none if it does not exist), by
/// name: Rust code (`.rs`) and encoded descriptor sets (`.bin`).
fn read_dir_files(dir: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs" || e == "bin") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            files.insert(name, fs::read(&path)?);
        }
    }
    Ok(files)
}
