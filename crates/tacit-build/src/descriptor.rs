//! The encoded descriptor set each generated package carries: what
//! `Intent::DESCRIPTOR_SET` points to.

use std::collections::BTreeSet;

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage as _};

/// Encodes a `google.protobuf.FileDescriptorSet` of every file in `pool`
/// whose package is in `packages`, and every file those import,
/// transitively: enough to compute the IntentId of each message of those
/// packages, and to decode them without their Rust types. Files come in the
/// pool's order (each after the files it imports).
///
/// Source info (comments and spans) is left out to keep the set small;
/// everything else, custom options such as `(tacit.v1.reply)` included, is
/// kept.
pub(crate) fn package_descriptor_set(
    pool: &DescriptorPool,
    packages: &BTreeSet<&str>,
) -> Result<Vec<u8>, prost::DecodeError> {
    let mut needed = BTreeSet::new();
    let mut pending: Vec<_> = pool.files().filter(|f| packages.contains(f.package_name())).collect();
    while let Some(file) = pending.pop() {
        if needed.insert(file.name().to_owned()) {
            pending.extend(file.dependencies());
        }
    }

    let file_type = prost_types::FileDescriptorProto::default().descriptor();
    let mut set = Vec::new();
    for file in pool.files().filter(|f| needed.contains(f.name())) {
        // Through a dynamic message, so that extension options survive
        // (prost-types would drop them as unknown fields).
        let mut proto = DynamicMessage::decode(file_type.clone(), file.encode_to_vec().as_slice())?;
        proto.clear_field_by_name("source_code_info");
        // FileDescriptorSet { repeated FileDescriptorProto file = 1; }
        prost::encoding::bytes::encode(1, &proto.encode_to_vec(), &mut set);
    }
    Ok(set)
}
