//! A session's message ids: one sequence for everything this agent sends on
//! the session (asks, tells, answers, refusals, stream messages), so ids
//! are unique per sender as PROTOCOL.md asks.

use std::sync::atomic::{AtomicU64, Ordering};

/// The next message id of a session.
#[derive(Debug)]
pub(crate) struct MessageIds(AtomicU64);

impl MessageIds {
    /// A sequence starting at a random point, so that the ids of a restarted
    /// agent do not collide with its earlier ones in a peer's retry window.
    pub(crate) fn new() -> Self {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Self(AtomicU64::new(u64::from_le_bytes(seed) | 1))
    }

    /// A fresh id.
    pub(crate) fn fresh(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}
