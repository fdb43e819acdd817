//! What can go wrong when generating intents.

use std::io;
use std::path::PathBuf;

use miette::Diagnostic as _;

/// Why [`Builder::compile`](crate::Builder::compile) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No output directory: `OUT_DIR` is unset (not running in a build
    /// script) and none was set with [`out_dir`](crate::Builder::out_dir).
    #[error("OUT_DIR is not set: run tacit-build from a build script or call out_dir(..)")]
    OutDirNotSet,
    /// A `.proto` file does not compile: a syntax error, an unknown type, a
    /// missing import, a file outside every include directory, ….
    ///
    /// Holds protox's message, preceded by `file:line:column` when known.
    #[error("cannot compile the .proto files: {0}")]
    Compile(String),
    /// A message's `(tacit.v1.reply)` option names no message that is
    /// generated here (no such message, an enum, a map entry or a
    /// well-known `google.protobuf` type).
    #[error("message {message} names {reply:?} as its reply (option tacit.v1.reply), which is not a generated message")]
    UnknownReply {
        /// The fully qualified name of the message with the option.
        message: String,
        /// The option's value, as written.
        reply: String,
    },
    /// A message's `(tacit.v1.stream_item)` or `(tacit.v1.stream_send)`
    /// option names no message that is generated here (as for
    /// [`UnknownReply`](Self::UnknownReply)).
    #[error("message {message} names {name:?} as a stream type (option {option}), which is not a generated message")]
    UnknownStreamType {
        /// The fully qualified name of the message with the option.
        message: String,
        /// The option: `tacit.v1.stream_item` or `tacit.v1.stream_send`.
        option: &'static str,
        /// The option's value, as written.
        name: String,
    },
    /// The IntentId of a message could not be computed (the descriptor set
    /// is inconsistent; not expected from a successful compile).
    #[error("cannot compute the intent id of {message}: {source}")]
    IntentId {
        /// The message's fully qualified name.
        message: String,
        /// Why.
        source: tacit_wire::SchemaError,
    },
    /// A compiled file descriptor could not be re-encoded (not expected from
    /// a successful compile).
    #[error("cannot encode the descriptor set of {package}: {source}")]
    DescriptorSet {
        /// The package whose set was being written.
        package: String,
        /// Why.
        source: prost::DecodeError,
    },
    /// prost-build could not generate the Rust code.
    #[error("prost-build failed: {0}")]
    Generate(io::Error),
    /// A generated file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl From<protox::Error> for Error {
    fn from(error: protox::Error) -> Self {
        Self::Compile(describe_compile_error(&error))
    }
}

/// protox's message, with `file:line:column` in front when it knows where.
fn describe_compile_error(error: &protox::Error) -> String {
    let mut location = error.file().map(str::to_owned).unwrap_or_default();
    let span = error.labels().and_then(|mut labels| labels.next()).map(|label| *label.inner());
    if let (Some(span), Some(source)) = (span, error.source_code())
        && let Ok(contents) = source.read_span(&span, 0, 0)
    {
        if let Some(name) = contents.name().filter(|_| location.is_empty()) {
            location = name.to_owned();
        }
        location = format!("{location}:{}:{}", contents.line() + 1, contents.column() + 1);
    }
    if location.is_empty() { error.to_string() } else { format!("{location}: {error}") }
}
