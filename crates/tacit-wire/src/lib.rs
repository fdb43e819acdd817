//! Tacit's wire format: how agents' messages look on a QUIC stream.
//!
//! This crate is the bottom layer of Tacit and does no I/O (it depends on
//! neither tokio nor quinn). It provides:
//!
//! - [`Envelope`]: the message every intent travels in — an intent reference
//!   (a negotiated alias or a full [`IntentId`]), an [`Act`] (the
//!   performative: request, inform, propose, …), ids that thread
//!   conversations, a deadline, optional trace context, and the intent itself
//!   as protobuf bytes. [`Envelope::decode`] copies nothing: the payload is a
//!   slice of the receive buffer, decoded into a typed intent only when asked.
//! - [`FrameEncoder`] / [`FrameDecoder`]: varint length prefix + body, with a
//!   maximum frame size checked before anything is buffered.
//! - [`IntentId`]: the BLAKE3 content hash that names an intent's schema,
//!   computed from a protobuf descriptor set exactly as `docs/PROTOCOL.md`
//!   specifies.
//! - [`pb`]: the Rust types generated from `proto/tacit/v1/*.proto`.
//! - Typed errors, each with the [`ErrorCode`] that travels on the wire.
//!
//! # Example
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use tacit_wire::{Act, Envelope, FrameDecoder, FrameEncoder, IntentRef};
//!
//! // Sender: frame an envelope whose payload is an already-encoded intent.
//! let payload = Bytes::from_static(b"\x0a\x05hello");
//! let envelope = Envelope::new(IntentRef::Alias(3), Act::Request, 42, payload);
//! let mut wire = BytesMut::new();
//! FrameEncoder::default().encode(&envelope, &mut wire)?;
//!
//! // Receiver: cut the frame off the receive buffer and decode it in place.
//! let frame = FrameDecoder::default().decode(&mut wire)?.expect("one whole frame");
//! let received = Envelope::decode(frame.clone())?;
//! assert_eq!(received, envelope);
//! // The payload points into the frame: nothing was copied.
//! let frame_range = frame.as_ptr_range();
//! assert!(frame_range.contains(&received.payload.as_ptr()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod canonical;
mod envelope;
mod error;
mod frame;
mod intent_id;
mod varint;

// A cargo feature rather than `cfg(fuzzing)`: the fuzz workspace enables it
// with a plain `cargo check` on stable, and the corpus replay of a normal
// `cargo test` through a dev-dependency on this crate (cargo-fuzz's
// `--cfg fuzzing` reaches neither).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

/// Types generated from `proto/tacit/v1/` by `tools/codegen` (prost-build,
/// with every `bytes` field as [`bytes::Bytes`]). Do not edit the generated
/// file; change the `.proto` and rerun `cargo run -p tacit-codegen`.
pub mod pb {
    #![allow(missing_docs, clippy::all, unreachable_pub, rust_2018_idioms)]
    include!("generated/tacit.v1.rs");
}

pub use envelope::{
    ConversationId, DecodeStats, Envelope, EnvelopeSignature, IntentRef, MAX_CONVERSATION_ID_LEN, MAX_NESTING_DEPTH,
    SIGNATURE_LEN, TraceContext,
};
pub use error::{DecodeError, FrameError};
pub use frame::{DEFAULT_MAX_FRAME_LEN, FrameBody, FrameDecoder, FrameEncoder};
pub use intent_id::{INTENT_ID_LABEL, IntentId, ParseIntentIdError, SchemaError, canonical_schema};
pub use pb::{Act, ErrorCode};

#[doc(hidden)]
pub use frame::put_prefix;
