//! Heap allocations on the receive path, counted by a global allocator.
//!
//! Counts are per thread, so tests running in parallel do not disturb each
//! other. `cargo test -p tacit-wire --test allocations -- --nocapture`
//! prints the figures quoted in BENCHMARKS.md.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tacit_wire::{Act, ConversationId, Envelope, FrameDecoder, FrameEncoder, FrameError, IntentId, IntentRef, pb};

struct Counting;

thread_local! {
    static COUNT: Cell<u64> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: defers every operation to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns (allocations, largest allocation in bytes) it made on this thread.
fn measure<T>(f: impl FnOnce() -> T) -> (u64, usize, T) {
    COUNT.with(|c| c.set(0));
    LARGEST.with(|l| l.set(0));
    let out = f();
    (COUNT.with(Cell::get), LARGEST.with(Cell::get), out)
}

/// The reference envelope: a full IntentId, conversation id, trace context,
/// and a ~240-byte payload.
fn reference_frame() -> Bytes {
    let payload = Bytes::from(vec![0x42; 240]);
    let mut envelope = Envelope::new(IntentRef::Id(IntentId::from_bytes([9; 32])), Act::Request, 77, payload);
    envelope.conversation_id = ConversationId::new("conv-0123456789a").unwrap();
    envelope.in_reply_to = 76;
    envelope.deadline_micros = 250_000;
    envelope.trace = Some(tacit_wire::TraceContext { trace_id: [1; 16], span_id: [2; 8], flags: 1 });
    let mut wire = BytesMut::new();
    FrameEncoder::default().encode(&envelope, &mut wire).unwrap();
    // As on the receive path: the frame is split off a receive buffer, so it
    // is a shared `Bytes`.
    FrameDecoder::default().decode(&mut wire).unwrap().unwrap()
}

#[test]
fn envelope_decode_allocates_nothing() {
    let frame = reference_frame();
    let (allocs, _, envelope) = measure(|| Envelope::decode(frame.clone()).unwrap());
    println!("envelope decode ({} byte frame): {allocs} allocations", frame.len());
    assert_eq!(allocs, 0);
    assert_eq!(envelope.payload.len(), 240);

    // Dropping the envelope frees nothing either: it held only reference counts.
    let (allocs, _, ()) = measure(|| drop(envelope));
    assert_eq!(allocs, 0);
}

#[test]
fn frame_split_and_decode_allocate_nothing_per_frame() {
    let envelope = Envelope::decode(reference_frame()).unwrap();
    let mut wire = BytesMut::new();
    for _ in 0..100 {
        FrameEncoder::default().encode(&envelope, &mut wire).unwrap();
    }
    let mut decoder = FrameDecoder::default();
    // The first split of a buffer makes it shareable (one allocation, once per buffer).
    let first = decoder.decode(&mut wire).unwrap().unwrap();
    let (allocs, _, count) = measure(|| {
        let mut count = 0;
        while let Some(frame) = decoder.decode(&mut wire).unwrap() {
            Envelope::decode(frame).unwrap();
            count += 1;
        }
        count
    });
    drop(first);
    println!("frame split + envelope decode: {allocs} allocations for {count} frames");
    assert_eq!(count, 99);
    assert_eq!(allocs, 0);
}

#[test]
fn full_prost_decode_for_comparison() {
    let frame = reference_frame();
    let (allocs, _, _) = measure(|| pb::Envelope::decode(frame.clone()).unwrap());
    println!("prost pb::Envelope decode of the same frame: {allocs} allocations");
    // prost owns the conversation id as a String: at least one allocation.
    assert!(allocs >= 1);
}

#[test]
fn oversized_length_refused_without_allocating() {
    let mut wire = BytesMut::with_capacity(64);
    tacit_wire::put_prefix(u64::from(u32::MAX), &mut wire);
    wire.extend_from_slice(&[0; 16]);
    let mut decoder = FrameDecoder::default();
    let (allocs, largest, result) = measure(|| decoder.decode(&mut wire));
    assert!(matches!(result, Err(FrameError::TooLarge { .. })));
    println!("4 GiB length prefix: {allocs} allocations (largest {largest} bytes)");
    assert_eq!(allocs, 0);

    // A legal but large announced length with few bytes behind it reserves
    // nothing either: memory follows the bytes that actually arrive.
    let mut wire = BytesMut::with_capacity(64);
    tacit_wire::put_prefix(1 << 20, &mut wire);
    wire.extend_from_slice(&[0; 16]);
    let (allocs, _, result) = measure(|| decoder.decode(&mut wire));
    assert_eq!(result, Ok(None));
    assert_eq!(allocs, 0);
    assert_eq!(decoder.bytes_needed(&wire), Ok((1 << 20) + 3 - 19));
}
