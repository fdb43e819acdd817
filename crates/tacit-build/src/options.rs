//! Tacit's own `.proto` files, carried inside tacit-build so that build
//! scripts can import them without a copy on disk.

use protox::file::{File, FileResolver};

/// The name under which [`OPTIONS_PROTO`] is imported:
/// `import "tacit/v1/options.proto";`.
pub const OPTIONS_PROTO_NAME: &str = "tacit/v1/options.proto";

/// The text of `tacit/v1/options.proto`, which defines the message options
/// `(tacit.v1.reply)`, `(tacit.v1.stream_item)` and `(tacit.v1.stream_send)`.
///
/// A copy of `proto/tacit/v1/options.proto` in the Tacit repository (a test
/// keeps the two equal), so that it is available once this crate is
/// published.
pub const OPTIONS_PROTO: &str = r#"// Tacit's custom protobuf options: annotations in .proto files that
// tacit-build reads when it generates Rust code (reply, stream_item,
// stream_send). They change nothing on the wire and are not part of any
// IntentId (docs/PROTOCOL.md, "IntentId": all options other than map_entry
// are left out).
//
// Import it as "tacit/v1/options.proto". tacit-build carries a copy of this
// file, so build scripts can import it without having it on disk; a file of
// the same name in a build script's own include directories takes precedence.
syntax = "proto3";

package tacit.v1;

import "google/protobuf/descriptor.proto";

extend google.protobuf.MessageOptions {
  // Names the message that answers this one when it is asked as a request:
  //
  //   import "tacit/v1/options.proto";
  //
  //   message ReserveSlot {
  //     option (tacit.v1.reply) = "SlotReserved";
  //     ...
  //   }
  //
  // The value is either a message name relative to this message's package
  // ("SlotReserved", "Outer.Inner"), or a fully qualified name with a leading
  // dot (".market.v1.SlotReserved"). tacit-build then implements
  // tacit::Request for the message, with the named message as its Reply; a
  // name that matches no message is a build error. Messages without this
  // option are still intents, just not requests with a typed reply (they are
  // told, streamed or sent as replies).
  string reply = 50701;

  // Declares that this message opens a stream lane (act SUBSCRIBE) and names
  // the message its handler streams back to the opener, one per data
  // envelope:
  //
  //   message WatchForecasts {
  //     option (tacit.v1.stream_item) = "Forecast";
  //     option (tacit.v1.stream_send) = "ChangeRegion";   // optional
  //     string region = 1;
  //   }
  //
  // Data envelopes on a stream lane carry the opening's intent, not their
  // own, so this option is how a peer (or `tacit stream`) knows how to decode
  // them. Names resolve as for reply. tacit-build then implements
  // tacit::Subscription for the message, with the named message as its Item
  // (and `()`, nothing, when only stream_send is given); a name that matches
  // no message is a build error.
  string stream_item = 50702;

  // Names the message the opener of a stream lane sends after the opening,
  // one per data envelope (the Send of tacit::Subscription). Without it the
  // opener sends nothing after the opening: Send is `()`.
  string stream_send = 50703;
}
"#;

/// The fully qualified name of the `reply` option's extension.
pub(crate) const REPLY_OPTION: &str = "tacit.v1.reply";
/// The fully qualified name of the `stream_item` option's extension.
pub(crate) const STREAM_ITEM_OPTION: &str = "tacit.v1.stream_item";
/// The fully qualified name of the `stream_send` option's extension.
pub(crate) const STREAM_SEND_OPTION: &str = "tacit.v1.stream_send";

/// Resolves the files tacit-build carries ([`OPTIONS_PROTO`]); every other
/// name is "not found", so the next resolver in the chain is asked.
#[derive(Debug, Default)]
pub(crate) struct EmbeddedFiles;

impl FileResolver for EmbeddedFiles {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match name {
            OPTIONS_PROTO_NAME => File::from_source(name, OPTIONS_PROTO),
            _ => Err(protox::Error::file_not_found(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded copy must not drift from the file in the repository.
    #[test]
    fn embedded_options_proto_equals_the_repository_file() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/tacit/v1/options.proto");
        let on_disk = std::fs::read_to_string(path).unwrap();
        assert!(
            on_disk == OPTIONS_PROTO,
            "OPTIONS_PROTO in crates/tacit-build/src/options.rs differs from proto/tacit/v1/options.proto: \
             copy the file's text into the constant"
        );
    }

    #[test]
    fn embedded_file_resolves_and_others_do_not() {
        let file = EmbeddedFiles.open_file(OPTIONS_PROTO_NAME).unwrap();
        assert_eq!(file.file_descriptor_proto().package(), "tacit.v1");
        let extensions: Vec<&str> = file.file_descriptor_proto().extension.iter().map(|e| e.name()).collect();
        assert_eq!(extensions, ["reply", "stream_item", "stream_send"]);
        assert!(EmbeddedFiles.open_file("tacit/v1/other.proto").unwrap_err().is_file_not_found());
    }
}
