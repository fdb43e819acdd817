//! Tacit's QUIC transport: the only Tacit crate that does I/O.
//!
//! - TLS bound to identity ([`tls`]): TLS 1.3 only, mutual authentication,
//!   ALPN `tacit/1`, a self-signed certificate over each agent's Ed25519 key,
//!   verifiers that derive the peer's [`AgentId`](tacit_handshake::AgentId).
//! - [`Endpoint`]: binds a UDP socket, dials and accepts [`Session`]s, runs
//!   the capability handshake on each session's control stream.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod ask;
mod config;
mod dedup;
mod drain;
mod endpoint;
mod error;
mod incoming;
mod session;
mod stream;
pub mod tls;

pub use ask::{AskError, AskOptions};
pub use config::TransportLimits;
pub use endpoint::{Endpoint, EndpointBuilder};
pub use error::{AcceptError, BindError, ConnectError, SessionError};
pub use incoming::{Incoming, IncomingAsk, IncomingMessage, IncomingStream, Responder};
pub use session::Session;
pub use stream::{FrameReceiver, FrameSender, StreamError};
