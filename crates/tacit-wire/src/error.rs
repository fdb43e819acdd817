//! Typed errors of the wire layer. Each maps to the [`ErrorCode`] a receiver
//! puts on the wire (in a refusal, a failure act or a stream reset) when it
//! meets the error.

use std::fmt;

use crate::ErrorCode;

/// A code for people: its protocol name and its number, as in
/// `INVALID_STREAM_KIND (0x307)` (the names and numbers of docs/PROTOCOL.md).
impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.as_str_name();
        let name = name.strip_prefix("ERROR_CODE_").unwrap_or(name);
        write!(f, "{name} ({:#x})", *self as i32)
    }
}

/// An error while cutting a byte stream into frames, or building a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more bytes than the configured maximum.
    /// Raised as soon as the prefix is read, before any of the body is
    /// buffered or allocated.
    #[error("frame of {len} bytes exceeds the maximum frame size of {max} bytes")]
    TooLarge {
        /// The announced (or, when encoding, the actual) body length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({buffered} bytes of an incomplete frame buffered)")]
    Truncated {
        /// Bytes of the incomplete frame that had arrived.
        buffered: usize,
    },
    /// The length prefix is longer than ten bytes or overflows 64 bits.
    #[error("frame length prefix is an overlong varint")]
    OverlongVarint,
}

impl FrameError {
    /// The code that travels on the wire for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::Truncated { .. } => ErrorCode::FrameTruncated,
            Self::OverlongVarint => ErrorCode::VarintOverlong,
        }
    }
}

/// An error while decoding an [`Envelope`](crate::Envelope) or its typed payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message ended inside a field.
    #[error("message truncated inside field {field}")]
    Truncated {
        /// The field being read (0 while reading a key).
        field: u32,
    },
    /// A varint is longer than ten bytes or overflows 64 bits.
    #[error("overlong varint in field {field}")]
    OverlongVarint {
        /// The field being read (0 while reading a key).
        field: u32,
    },
    /// A key holds field number 0 or an undefined wire type.
    #[error("invalid field key {key:#x}")]
    InvalidKey {
        /// The raw key.
        key: u64,
    },
    /// A known field arrived with a wire type its declaration does not allow.
    #[error("field {field} has wire type {found}, expected {expected}")]
    WrongWireType {
        /// The field number.
        field: u32,
        /// The wire type the schema declares.
        expected: u8,
        /// The wire type that arrived.
        found: u8,
    },
    /// A string field is not valid UTF-8.
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field number.
        field: u32,
    },
    /// A field's value is longer than the protocol allows.
    #[error("field {field} is {len} bytes, more than the limit of {max}")]
    FieldTooLarge {
        /// The field number.
        field: u32,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Groups nest deeper than the decoder allows.
    #[error("nesting deeper than {max} levels")]
    NestingTooDeep {
        /// The limit.
        max: usize,
    },
    /// The act is unspecified (0) or a value this version does not know.
    #[error("unknown act {0}")]
    UnknownAct(i32),
    /// The envelope names no intent.
    #[error("envelope names no intent")]
    MissingIntent,
    /// The envelope's IntentId is not 32 bytes.
    #[error("intent id is {0} bytes, expected 32")]
    InvalidIntentIdLength(usize),
    /// The envelope's signature is present but not 64 bytes.
    #[error("signature is {0} bytes, expected 64")]
    InvalidSignatureLength(usize),
    /// The payload does not decode as the requested intent type.
    #[error("payload does not decode as {type_name}: {source}")]
    InvalidPayload {
        /// The Rust type the payload was decoded as.
        type_name: &'static str,
        /// What prost reported.
        #[source]
        source: prost::DecodeError,
    },
}

impl DecodeError {
    /// The code that travels on the wire for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Truncated { .. } | Self::InvalidKey { .. } | Self::InvalidSignatureLength(_) => {
                ErrorCode::MalformedMessage
            }
            Self::OverlongVarint { .. } => ErrorCode::VarintOverlong,
            Self::WrongWireType { .. } => ErrorCode::WrongWireType,
            Self::InvalidUtf8 { .. } => ErrorCode::InvalidUtf8,
            Self::FieldTooLarge { .. } => ErrorCode::FieldTooLarge,
            Self::NestingTooDeep { .. } => ErrorCode::NestingTooDeep,
            Self::UnknownAct(_) => ErrorCode::UnknownAct,
            Self::MissingIntent | Self::InvalidIntentIdLength(_) => ErrorCode::InvalidIntentRef,
            Self::InvalidPayload { .. } => ErrorCode::InvalidPayload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_display_by_name_and_number() {
        assert_eq!(ErrorCode::InvalidStreamKind.to_string(), "INVALID_STREAM_KIND (0x307)");
        assert_eq!(ErrorCode::FrameTooLarge.to_string(), "FRAME_TOO_LARGE (0x101)");
        assert_eq!(ErrorCode::Unspecified.to_string(), "UNSPECIFIED (0x0)");
    }
}
