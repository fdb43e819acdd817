//! Entry points for the fuzz targets in `fuzz/fuzz_targets/`, kept here so
//! that a normal `cargo test` replays the committed corpus through exactly
//! the same code. Not part of the public API.

use bytes::{Bytes, BytesMut};

use crate::{Envelope, FrameDecoder, FrameEncoder, pb};

/// Feeds `data` to a frame decoder in pieces whose sizes come from the input
/// itself, and checks each frame and the final state.
pub fn frame_decoder(data: &[u8]) {
    let Some((&split_seed, data)) = data.split_first() else {
        return;
    };
    let mut decoder = FrameDecoder::new(4096);
    let mut buffer = BytesMut::new();
    let chunk = usize::from(split_seed % 17) + 1;
    let mut delivered = 0usize;
    let mut framed = 0usize;
    for piece in data.chunks(chunk) {
        buffer.extend_from_slice(piece);
        delivered += piece.len();
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= decoder.max_frame_len());
                    framed += frame.len();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // Nothing is lost or invented: what is buffered plus what was framed
        // (and its prefixes) is what arrived.
        assert!(framed + buffer.len() <= delivered);
        // Memory never grows past one frame plus a prefix plus one piece.
        assert!(buffer.len() <= decoder.max_frame_len() + 10 + chunk);
    }
    let _ = decoder.decode_eof(&mut buffer);
}

/// Decodes `data` as an envelope; if it decodes, re-encoding and decoding
/// again must give the same envelope, and prost's generated decoder must
/// accept it and agree.
pub fn envelope(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    let Ok(envelope) = Envelope::decode(frame.clone()) else {
        return;
    };
    let reencoded = envelope.encode_to_bytes();
    let again = Envelope::decode(reencoded.clone()).map_err(|e| e.to_string());
    assert_eq!(again.as_ref(), Ok(&envelope), "re-encoded envelope decodes differently");

    let reference = <pb::Envelope as prost::Message>::decode(frame).map_err(|e| e.to_string());
    let reference = reference.and_then(|pb| Envelope::try_from(pb).map_err(|e| e.to_string()));
    assert_eq!(reference.as_ref(), Ok(&envelope), "prost disagrees with the envelope decoder");

    let framed = FrameEncoder::new(usize::MAX).encode_to_bytes(&envelope).map(|b| b.len());
    assert_eq!(framed.ok(), Some(crate::varint::encoded_len(reencoded.len() as u64) + reencoded.len()));
}

/// Replaying the committed fuzz inputs (`fuzz/corpus/<target>/` and
/// `fuzz/regressions/<target>/`) from a normal `cargo test`, for every crate
/// with fuzz targets.
// Test support: a missing or unreadable corpus must fail the test loudly.
#[allow(clippy::panic)]
pub mod corpus {
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
}
