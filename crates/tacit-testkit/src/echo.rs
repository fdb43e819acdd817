//! The one echo endpoint of the test suites (feature `quic`): every ask is
//! answered with its own payload, under its own intent.
//!
//! The loop is written once because its copies diverged: one stopped
//! serving a session at the first tell, one stopped accepting after one
//! failed handshake, one served one session at a time. This one accepts
//! until the endpoint closes, skips (and counts) a failed accept or
//! handshake, gives each session its own task, and serves a session until
//! it ends whatever arrives (tells, datagrams and streams are dropped).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use tacit_handshake::{Capabilities, Identity, IntentOffer};
//! use tacit_quic::Endpoint;
//! use tacit_testkit::{LOCALHOST, echo};
//!
//! let server = Endpoint::builder()
//!     .identity(Identity::generate()?)
//!     .capabilities(Capabilities::default().with_intent(IntentOffer::handles(echo::ECHO, "t.Echo")))
//!     .bind(LOCALHOST)
//!     .await?;
//! let stats = echo::spawn(&server);
//! // ... connect and ask ECHO ...
//! assert_eq!(stats.failures(), 0);
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tacit_quic::{Endpoint, Incoming, Session};
use tacit_wire::IntentId;

/// The intent the test suites echo (`t.Echo`); the endpoint echoes asks of
/// any intent it negotiated.
pub const ECHO: IntentId = IntentId::from_bytes([1; 32]);

/// What an echo endpoint did so far.
#[derive(Debug, Default)]
pub struct EchoStats {
    sessions: AtomicU64,
    failures: AtomicU64,
    asks: AtomicU64,
}

impl EchoStats {
    /// Sessions accepted.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Failed accepts and failed handshakes of accepted sessions.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Asks answered.
    pub fn asks(&self) -> u64 {
        self.asks.load(Ordering::Relaxed)
    }
}

/// Spawns [`serve`] on a clone of `endpoint`; returns its counters. Must be
/// called within a Tokio runtime.
pub fn spawn(endpoint: &Endpoint) -> Arc<EchoStats> {
    let stats = Arc::new(EchoStats::default());
    tokio::spawn(serve(endpoint.clone(), stats.clone()));
    stats
}

/// Accepts sessions until `endpoint` closes, each served by
/// [`serve_session`] in its own task. A failed accept is counted and
/// skipped: the next connection is accepted as usual.
pub async fn serve(endpoint: Endpoint, stats: Arc<EchoStats>) {
    while let Some(accepted) = endpoint.accept().await {
        match accepted {
            Ok(session) => {
                stats.sessions.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve_session(session, stats.clone()));
            }
            Err(e) => {
                eprintln!("echo: accept failed: {e}");
                stats.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Serves one session until it ends: each ask is answered with its payload
/// under its intent; everything else is dropped. A failed handshake is
/// counted (the loop then ends with the session).
pub async fn serve_session(session: Session, stats: Arc<EchoStats>) {
    if let Err(e) = session.ready().await {
        eprintln!("echo: handshake failed: {e}");
        stats.failures.fetch_add(1, Ordering::Relaxed);
    }
    while let Some(incoming) = session.next_incoming().await {
        if let Incoming::Ask(ask) = incoming {
            let payload = ask.envelope.payload.clone();
            ask.responder.reply(ask.intent, payload);
            stats.asks.fetch_add(1, Ordering::Relaxed);
        }
    }
}
