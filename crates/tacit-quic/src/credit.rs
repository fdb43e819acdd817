//! Stream credit granted to a peer as it uses it.
//!
//! quinn-proto (0.11) sets aside a slot in two hash maps for every stream a
//! peer may open, from the moment it may open it, whether or not it ever
//! does: at `max_concurrent_streams` 512 of each direction that is about
//! 67 KiB per connection end, more than half of an idle connection's memory.
//! So a connection grants its peer a small credit at first
//! ([`INITIAL_BIDI`], [`INITIAL_UNI`]) and doubles it whenever half of it is
//! in use, up to `max_concurrent_streams`. A peer that keeps few streams
//! open (a Tacit session uses a control, an ask and a tell stream, plus one
//! per stream lane) never costs more; one that opens many gets credit one
//! round trip at a time, as with any QUIC stream credit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Bidirectional streams a peer may open at first (at most the limit).
pub(crate) const INITIAL_BIDI: u32 = 16;
/// Unidirectional streams a peer may open at first (at most the limit).
pub(crate) const INITIAL_UNI: u32 = 4;

/// Whether a credit is for bidirectional or unidirectional streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Bi,
    Uni,
}

impl Dir {
    /// The credit a connection starts with under `limit`.
    pub(crate) fn initial(self, limit: u32) -> u32 {
        limit.min(match self {
            Self::Bi => INITIAL_BIDI,
            Self::Uni => INITIAL_UNI,
        })
    }

    fn halves(self) -> u32 {
        match self {
            Self::Bi => 2,
            Self::Uni => 1,
        }
    }
}

/// The credit of one direction of streams, kept by the task that accepts
/// them.
#[derive(Debug)]
pub(crate) struct StreamCredit {
    dir: Dir,
    granted: u32,
    limit: u32,
    /// Halves of the peer's streams of this direction still held here (a
    /// bidirectional stream has two).
    held: Arc<AtomicU32>,
}

impl StreamCredit {
    /// The credit a connection's transport configuration started with.
    pub(crate) fn new(dir: Dir, limit: u32) -> Self {
        Self { dir, granted: dir.initial(limit), limit, held: Arc::default() }
    }

    /// Counts a bidirectional stream the peer opened as held until both its
    /// halves are dropped, and raises the credit when half of it is in use.
    pub(crate) fn accepted_bi(&mut self, connection: &quinn::Connection) -> (Held, Held) {
        debug_assert_eq!(self.dir, Dir::Bi);
        self.accepted(connection);
        (Held(Some(self.held.clone())), Held(Some(self.held.clone())))
    }

    /// Counts a unidirectional stream the peer opened as held until it is
    /// dropped, and raises the credit when half of it is in use.
    pub(crate) fn accepted_uni(&mut self, connection: &quinn::Connection) -> Held {
        debug_assert_eq!(self.dir, Dir::Uni);
        self.accepted(connection);
        Held(Some(self.held.clone()))
    }

    fn accepted(&mut self, connection: &quinn::Connection) {
        let halves = self.dir.halves();
        let held = self.held.fetch_add(halves, Ordering::Relaxed) + halves;
        let open = held.div_ceil(halves);
        if open.saturating_mul(2) >= self.granted && self.granted < self.limit {
            self.granted = self.granted.saturating_mul(2).min(self.limit);
            let count = quinn::VarInt::from_u32(self.granted);
            match self.dir {
                Dir::Bi => connection.set_max_concurrent_bi_streams(count),
                Dir::Uni => connection.set_max_concurrent_uni_streams(count),
            }
        }
    }
}

/// One half of a stream the peer opened, counted while held; nothing for a
/// stream this side opened.
#[derive(Debug)]
pub(crate) struct Held(Option<Arc<AtomicU32>>);

impl Held {
    /// For a stream this side opened: not counted.
    pub(crate) fn none() -> Self {
        Self(None)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(held) = &self.0 {
            held.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_credit_is_at_most_the_limit() {
        assert_eq!(Dir::Bi.initial(512), INITIAL_BIDI);
        assert_eq!(Dir::Uni.initial(512), INITIAL_UNI);
        assert_eq!(Dir::Bi.initial(3), 3);
        assert_eq!(Dir::Uni.initial(0), 0);
    }
}
