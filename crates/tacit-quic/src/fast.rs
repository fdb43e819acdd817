//! Small, cheap building blocks of the per-ask path: a seeded hasher for
//! the maps keyed by message ids, and counters of ask slots that cost an
//! atomic operation instead of a semaphore's lock.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// A `HashMap` with [`FastHash`].
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, FastHash>;

/// Builds [`FoldHasher`]s with a per-process random seed. Message ids come
/// from peers, so the hash is seeded (a peer cannot choose colliding ids
/// without knowing it) but, unlike SipHash, costs a multiplication or two.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastHash {
    seed: u64,
}

impl Default for FastHash {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            let mut bytes = [0u8; 8];
            // Without randomness, fall back to an address (still per run).
            if getrandom::fill(&mut bytes).is_err() {
                bytes = (&SEED as *const _ as u64).to_le_bytes();
            }
            u64::from_le_bytes(bytes)
        });
        Self { seed }
    }
}

impl BuildHasher for FastHash {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher { state: self.seed }
    }
}

/// Folded multiplication (as in foldhash and aHash's fallback): mixes each
/// 64-bit word into the state with a 64 × 64 → 128-bit product.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoldHasher {
    state: u64,
}

const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
const SECOND: u64 = 0x243f_6a88_85a3_08d3;

#[inline(always)]
fn folded_multiply(x: u64, y: u64) -> u64 {
    let product = u128::from(x).wrapping_mul(u128::from(y));
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.state = folded_multiply(self.state ^ value, MULTIPLIER);
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        folded_multiply(self.state, SECOND)
    }
}

/// Slots of asks in flight, taken without waiting (`try_take`): an atomic
/// counter where a semaphore would take a lock to give a permit back.
#[derive(Debug)]
pub(crate) struct Slots {
    limit: usize,
    used: AtomicUsize,
}

impl Slots {
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, used: AtomicUsize::new(0) }
    }

    /// Takes a slot if one is free.
    pub(crate) fn try_take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| (used < self.limit).then_some(used + 1))
            .is_ok()
    }

    /// Gives a slot taken with [`try_take`](Self::try_take) back.
    pub(crate) fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Slots an asker waits for (the peer's negotiated `max_concurrent_asks`):
/// taking and returning one is an atomic operation unless someone waits.
#[derive(Debug)]
pub(crate) struct WaitSlots {
    free: AtomicUsize,
    waiting: AtomicUsize,
    freed: Notify,
}

impl WaitSlots {
    pub(crate) fn new(limit: usize) -> Self {
        Self { free: AtomicUsize::new(limit), waiting: AtomicUsize::new(0), freed: Notify::new() }
    }

    fn try_take(&self) -> bool {
        self.free.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |free| free.checked_sub(1)).is_ok()
    }

    /// Waits for a free slot and takes it; it is returned when the guard drops.
    pub(crate) async fn take(&self) -> SlotGuard<'_> {
        if !self.try_take() {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _waiting = Waiting(&self.waiting);
            loop {
                let freed = self.freed.notified();
                if self.try_take() {
                    break;
                }
                freed.await;
            }
        }
        SlotGuard(self)
    }

    fn give_back(&self) {
        self.free.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.freed.notify_one();
        }
    }
}

/// Counts a waiter of [`WaitSlots`] until it stops waiting (taken or dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A slot of [`WaitSlots`], returned on drop.
#[derive(Debug)]
pub(crate) struct SlotGuard<'a>(&'a WaitSlots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_differ_and_repeat() {
        let build = FastHash::default();
        let hash = |v: u64| build.hash_one(v);
        assert_eq!(hash(1), hash(1));
        assert_ne!(hash(1), hash(2));
    }

    #[test]
    fn slots_are_bounded() {
        let slots = Slots::new(2);
        assert!(slots.try_take());
        assert!(slots.try_take());
        assert!(!slots.try_take());
        slots.give_back();
        assert!(slots.try_take());
    }

    #[tokio::test]
    async fn waiters_get_freed_slots() {
        let slots = std::sync::Arc::new(WaitSlots::new(1));
        let first = slots.take().await;
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.take().await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        waiter.await.unwrap();
        assert!(slots.try_take());
    }
}
