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

/// The schema path a peer controls (a schema-fetch reply): the first byte
/// picks a message name — one of the types the set defines, in order, or,
/// past their count, a name that is not there — and the rest is decoded as
/// an encoded `FileDescriptorSet`. Whenever an id is computed it must not
/// depend on how the set is presented: re-encoded, with its files reversed,
/// or the name with a leading dot. Returns the name and id when there is one
/// (the fuzz target then builds the agent's `Schema` from them).
pub fn schema(data: &[u8]) -> Option<(String, crate::IntentId)> {
    use prost::Message as _;
    use prost_types::FileDescriptorSet;

    use crate::{IntentId, canonical_schema};

    let (&pick, encoded) = data.split_first()?;
    let Ok(set) = FileDescriptorSet::decode(encoded) else {
        assert!(IntentId::of_message_in_encoded_set(encoded, "a.B").is_err());
        return None;
    };
    let mut names = Vec::new();
    for file in &set.file {
        let package = file.package();
        let scope = |name: &str| if package.is_empty() { name.to_owned() } else { format!("{package}.{name}") };
        let mut pending: Vec<(String, &prost_types::DescriptorProto)> =
            file.message_type.iter().map(|m| (scope(m.name()), m)).collect();
        while let Some((name, message)) = pending.pop() {
            pending.extend(message.nested_type.iter().map(|nested| (format!("{name}.{}", nested.name()), nested)));
            names.push(name);
        }
        names.extend(file.enum_type.iter().map(|e| scope(e.name())));
    }
    let name = names.get(usize::from(pick)).cloned().unwrap_or_else(|| format!("fuzz.Missing{pick}"));

    let canonical = canonical_schema(&set, &name);
    let id = IntentId::of_message_in_encoded_set(encoded, &name);
    assert_eq!(id.as_ref().ok(), canonical.as_ref().ok().map(|c| IntentId::from_canonical(c)).as_ref());
    if !name.starts_with('.') {
        let dotted = IntentId::of_message(&set, &format!(".{name}"));
        assert_eq!(dotted.as_ref().ok(), id.as_ref().ok(), "a leading dot changes the id");
    }
    let reencoded = IntentId::of_message_in_encoded_set(&set.encode_to_vec(), &name);
    assert_eq!(reencoded.as_ref().ok(), id.as_ref().ok(), "re-encoding the set changes the id");
    let mut reversed = set.clone();
    reversed.file.reverse();
    assert_eq!(IntentId::of_message(&reversed, &name).ok(), id.as_ref().ok().copied(), "file order changes the id");

    let canonical = canonical.ok()?;
    let root = name.strip_prefix('.').unwrap_or(&name);
    let head = format!("{}\nroot {root}\n", crate::INTENT_ID_LABEL);
    assert!(canonical.starts_with(&head), "canonical form starts {canonical:?}");
    assert!(canonical.ends_with('\n'));
    Some((name, id.ok()?))
}

/// [`schema`] as a plain target for the corpus replay.
pub fn schema_target(data: &[u8]) {
    let _ = schema(data);
}
