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
/// Of the source info of the files of `packages` (not of their imports),
/// only the locations that carry a leading or trailing
/// comment are kept (with their path and span, without detached comments):
/// the comments are what bridges show as descriptions of intents and their
/// fields (MCP tools, A2A skills). Everything else, custom options such as
/// `(tacit.v1.reply)` included, is kept. Comments do not enter IntentIds, so
/// editing one changes the set's bytes but no id.
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
        let mut encoded = proto.encode_to_vec();
        // Comments of the package's own files only: those of imports (such as
        // google/protobuf/descriptor.proto) would multiply the size.
        let own = packages.contains(file.package_name());
        if own && let Some(comments) = comments_only(file.file_descriptor_proto().source_code_info.as_ref()) {
            // FileDescriptorProto { optional SourceCodeInfo source_code_info = 9; }
            prost::encoding::message::encode(9, &comments, &mut encoded);
        }
        // FileDescriptorSet { repeated FileDescriptorProto file = 1; }
        prost::encoding::bytes::encode(1, &encoded, &mut set);
    }
    Ok(set)
}

/// The locations of `info` that carry a comment, without their detached
/// comments; `None` if none does.
fn comments_only(info: Option<&prost_types::SourceCodeInfo>) -> Option<prost_types::SourceCodeInfo> {
    let location = info?
        .location
        .iter()
        .filter(|l| l.leading_comments.is_some() || l.trailing_comments.is_some())
        .map(|l| prost_types::source_code_info::Location { leading_detached_comments: Vec::new(), ..l.clone() })
        .collect::<Vec<_>>();
    (!location.is_empty()).then_some(prost_types::SourceCodeInfo { location })
}
