//! Who an agent is and what it can do, and the negotiation of both with a
//! peer, as a sans-IO state machine.
//!
//! - [`Identity`] / [`AgentId`]: an agent's Ed25519 key pair, persisted in a
//!   key file, and the public key that names it.
//! - [`AgentCard`] and [`Capabilities`]: what an agent tells its peers.
//! - [`Handshake`]: the capability handshake on the control stream, in the
//!   style of quinn-proto and rustls — bytes in through `handle_*`, bytes and
//!   events out through `poll_*`, time supplied by the caller. It negotiates
//!   the protocol version, the intents usable each way, the limits and an
//!   alias table, and afterwards carries capability updates and schema fetch.
//!
//! This crate does no I/O (except reading and writing key files) and depends
//! on neither tokio nor quinn.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use tacit_handshake::{AgentCard, Capabilities, Event, Handshake, HandshakeConfig, IntentOffer};
//! use tacit_wire::IntentId;
//!
//! let ping = IntentId::from_bytes([7; 32]);
//! let dialer = HandshakeConfig::new(
//!     AgentCard::new("buyer"),
//!     Capabilities::default().with_intent(IntentOffer::emits(ping, "acme.v1.Ping")),
//! )?;
//! let acceptor = HandshakeConfig::new(
//!     AgentCard::new("seller"),
//!     Capabilities::default().with_intent(IntentOffer::handles(ping, "acme.v1.Ping")),
//! )?;
//! let now = Instant::now();
//! let mut a = Handshake::dialer(Arc::new(dialer), now);
//! let mut b = Handshake::acceptor(Arc::new(acceptor), now);
//!
//! // Carry bytes between them, as a QUIC control stream would.
//! while let Some(bytes) = a.poll_transmit() { b.handle_data(&bytes, now); }
//! while let Some(bytes) = b.poll_transmit() { a.handle_data(&bytes, now); }
//!
//! let Some(Event::Established(session)) = a.poll_event() else { panic!("no session") };
//! assert_eq!(session.peer_card.name, "seller");
//! assert_eq!(session.send_alias(&ping), Some(1));
//! # Ok::<(), tacit_handshake::Refusal>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod capabilities;
mod card;
// A cargo feature rather than `cfg(fuzzing)`: the fuzz workspace enables it
// with a plain `cargo check` on stable, and the corpus replay of a normal
// `cargo test` through a dev-dependency on this crate (cargo-fuzz's
// `--cfg fuzzing` reaches neither).
pub mod credential;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
mod lanes;
mod machine;
mod negotiate;
mod receipt;
pub mod record;

pub use capabilities::{
    Capabilities, IntentOffer, Limits, MAX_INTENT_NAME_LEN, MAX_INTENTS, PROTOCOL_VERSION, TypeSchema,
};
pub use card::{AgentCard, limits as card_limits};
pub use identity::{AgentId, Identity, IdentityError, KeyFileStatus, ParseAgentIdError};
pub use lanes::{Lane, Lanes};
pub use machine::{Admission, Event, Handshake, HandshakeConfig, MAX_PRESENTED_CREDENTIALS, OfferFilter, Role};
pub use negotiate::{Negotiated, NegotiatedIntent, STANDARD_PACKAGE, choose_version, is_standard, negotiate};
pub use receipt::{DIGEST_INPUT_LEN, MAX_RECEIPT_LEN, RECEIPT_LABEL, Receipt, ReceiptError, sign_envelope};

use tacit_wire::ErrorCode;

/// Why a handshake or session ended, or why something was refused: a wire
/// [`ErrorCode`] and a human-readable reason. Sent to the peer as a
/// `Refusal` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct Refusal {
    /// The code on the wire.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub reason: String,
}

impl Refusal {
    /// A refusal with this code and reason.
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}
