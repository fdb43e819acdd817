//! Tacit's QUIC transport: the only Tacit crate that does I/O.
//!
//! - TLS bound to identity ([`tls`]): TLS 1.3 only, mutual authentication,
//!   ALPN `tacit/1`, a self-signed certificate over each agent's Ed25519 key,
//!   verifiers that derive the peer's [`AgentId`](tacit_handshake::AgentId).
//! - [`Endpoint`]: binds a UDP socket, dials and accepts [`Session`]s, runs
//!   the capability handshake on each session's control stream, bounds what
//!   peers can make it spend ([`TransportLimits`]) and shuts down gracefully.
//! - [`Session`]: the lanes — [`ask`](Session::ask) (one reply, or a
//!   remote error with its code, with deadlines, cancellation and idempotent
//!   retry), [`tell`](Session::tell), [`open_stream`](Session::open_stream)
//!   and [`send_datagram`](Session::send_datagram) — and
//!   [`next_incoming`](Session::next_incoming) for what the peer sends.
//! - [`Link`]: the link to one peer that outlives its connections — it
//!   re-dials in the background ([`ReconnectPolicy`]), re-sends asks that
//!   were not sent and idempotent asks whose outcome is unknown (the
//!   receiver's retry window runs each at most once), keeps one stream of
//!   incoming messages across sessions, and publishes its [`LinkState`].
//!   Every ask through it ends within its deadline.
//!
//! The wire protocol is specified in `docs/PROTOCOL.md` ("QUIC mapping").
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
//! use tacit_quic::{Endpoint, Incoming};
//! use tacit_wire::IntentId;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let echo = IntentId::from_bytes([1; 32]);
//! let localhost = "127.0.0.1:0".parse()?;
//! let server = Endpoint::builder()
//!     .identity(Identity::generate()?)
//!     .card(AgentCard::new("echo"))
//!     .capabilities(Capabilities::default().with_intent(IntentOffer::handles(echo, "demo.Echo")))
//!     .bind(localhost)
//!     .await?;
//! let client = Endpoint::builder()
//!     .identity(Identity::generate()?)
//!     .capabilities(Capabilities::default().with_intent(IntentOffer::emits(echo, "demo.Echo")))
//!     .bind(localhost)
//!     .await?;
//!
//! let addr = server.local_addr()?;
//! let expected = server.agent_id();
//! tokio::spawn(async move {
//!     // A failed handshake ends that connection, not the loop.
//!     while let Some(accepted) = server.accept().await {
//!         let Ok(session) = accepted else { continue };
//!         // One task per session; a tell, a stream or a datagram does not
//!         // end it, only the session's end does.
//!         tokio::spawn(async move {
//!             while let Some(incoming) = session.next_incoming().await {
//!                 if let Incoming::Ask(ask) = incoming {
//!                     let payload = ask.envelope.payload.clone();
//!                     ask.responder.reply(echo, payload);
//!                 }
//!             }
//!         });
//!     }
//! });
//!
//! // TLS fails unless the server is the agent we expect.
//! let session = client.connect(addr, Some(expected)).await?;
//! let reply = session.ask(echo, Bytes::from_static(b"hello")).await?;
//! assert_eq!(&reply.payload[..], b"hello");
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod accept;
mod ask;
mod config;
mod control;
mod credit;
mod dedup;
mod drain;
mod endpoint;
mod error;
mod fast;
mod frames;
// A cargo feature rather than `cfg(fuzzing)`: the fuzz workspace enables it
// with a plain `cargo check` on stable, and the corpus replay of a normal
// `cargo test` through a dev-dependency on this crate (cargo-fuzz's
// `--cfg fuzzing` reaches neither).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod ids;
mod incoming;
mod kind;
mod link;
mod options;
mod queue;
mod reply;
mod serve;
mod session;
mod stream;
mod tell;
pub mod tls;

pub use ask::AskError;
pub use config::TransportLimits;
pub use endpoint::{Endpoint, EndpointBuilder};
pub use error::{AcceptError, BindError, ConnectError, SessionError};
pub use incoming::{Incoming, IncomingAsk, IncomingMessage, IncomingStream, Responder};
pub use link::{Link, LinkReply, LinkState, LinkWatch, ReconnectPolicy, WeakLink};
pub use options::{AskOptions, TellOptions};
pub use session::{Session, WeakSession};
pub use stream::{FrameReceiver, FrameSender, StreamError};
pub use tacit_handshake::OfferFilter;

/// quinn's socket abstraction, for [`EndpointBuilder::bind_with_socket`] (tests).
#[doc(hidden)]
pub use quinn::AsyncUdpSocket;
