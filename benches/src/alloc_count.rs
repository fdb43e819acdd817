//! A global allocator that counts allocations, so a benchmark can report
//! allocations per operation next to its timings.
//!
//! Install it in a benchmark binary:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: tacit_benches::alloc_count::CountingAlloc = tacit_benches::alloc_count::CountingAlloc;
//! ```
//!
//! Counting is off until [`measure`] turns it on, so timed runs pay only a
//! relaxed load and a branch per allocation, not an atomic read-modify-write.
//! Every allocation goes to [`System`] (Rust's default allocator).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// [`System`], counting allocations (`alloc`, `alloc_zeroed` and `realloc`
/// each count as one) and the bytes they request while counting is on.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAlloc;

#[inline]
fn count(size: usize) {
    if ENABLED.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; counting touches only atomics and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations per call of a routine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerOp {
    /// Allocation calls per call of the routine.
    pub allocations: f64,
    /// Bytes requested per call of the routine.
    pub bytes: f64,
}

/// Runs `routine` `warm_up` times uncounted, then `iterations` times counted,
/// and returns the average per call. Meaningful only in a binary that
/// installed [`CountingAlloc`] and runs nothing else concurrently; the
/// routine's output is passed through [`std::hint::black_box`] and dropped
/// inside the counted loop.
pub fn measure<R>(warm_up: u64, iterations: u64, mut routine: impl FnMut() -> R) -> PerOp {
    for _ in 0..warm_up {
        std::hint::black_box(routine());
    }
    let (allocations, bytes) = (ALLOCATIONS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    ENABLED.store(true, Ordering::SeqCst);
    for _ in 0..iterations {
        std::hint::black_box(routine());
    }
    ENABLED.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
    let bytes = BYTES.load(Ordering::Relaxed) - bytes;
    let n = iterations.max(1) as f64;
    PerOp { allocations: allocations as f64 / n, bytes: bytes as f64 / n }
}
