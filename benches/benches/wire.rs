//! Wire benchmarks: framing and decoding the ~330-byte reference envelope,
//! against plain prost decoding the same information.
//!
//! Before criterion runs, prints the allocations per operation of each case,
//! counted on exactly the functions criterion then times.
//!
//! Run with `taskset -c 0 cargo bench -p tacit-benches --bench wire`.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::Criterion;
use prost::Message as _;
use tacit_benches::alloc_count::{self, CountingAlloc};
use tacit_benches::{pb, reference};
use tacit_wire::{Envelope, FrameDecoder, FrameEncoder};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Inputs prepared once, outside every timed loop.
struct Fixture {
    envelope: Envelope,
    /// A frame body cut off a `BytesMut` by `FrameDecoder`: a shared `Bytes`,
    /// as on the real receive path.
    frame: Bytes,
    /// The encoded `FlatRequest`, decoded from a slice as plain prost users do.
    flat: Vec<u8>,
    /// A send buffer reused across iterations.
    buf: BytesMut,
}

impl Fixture {
    fn new() -> Self {
        Self {
            envelope: reference::envelope(),
            frame: reference::frame_body(),
            flat: reference::flat_bytes(),
            buf: BytesMut::with_capacity(1024),
        }
    }
}

// The cases. Each is called by both the allocation count and criterion.

/// `wire/encode`: frame-encode the envelope into a reused buffer.
#[inline]
fn encode(fx: &mut Fixture) {
    fx.buf.clear();
    FrameEncoder::default().encode(black_box(&fx.envelope), &mut fx.buf).expect("encodes");
    black_box(&mut fx.buf);
}

/// `wire/decode_envelope`: decode the envelope, payload left as bytes.
#[inline]
fn decode_envelope(fx: &mut Fixture) -> Envelope {
    Envelope::decode(black_box(&fx.frame).clone()).expect("decodes")
}

/// `wire/decode_envelope_and_payload`: decode the envelope, then the typed payload.
#[inline]
fn decode_envelope_and_payload(fx: &mut Fixture) -> (Envelope, pb::ReserveSlot) {
    let envelope = Envelope::decode(black_box(&fx.frame).clone()).expect("decodes");
    let slot = envelope.decode_payload::<pb::ReserveSlot>().expect("payload decodes");
    (envelope, slot)
}

/// `wire/frame_round_trip`: encode a frame, cut it off the buffer, decode it.
#[inline]
fn frame_round_trip(fx: &mut Fixture) -> Envelope {
    fx.buf.clear();
    FrameEncoder::default().encode(black_box(&fx.envelope), &mut fx.buf).expect("encodes");
    let frame = FrameDecoder::default().decode(&mut fx.buf).expect("frames").expect("one whole frame");
    Envelope::decode(frame).expect("decodes")
}

/// `wire/prost_decode_full`: the baseline, plain prost decoding the flat
/// message from a slice (every string and byte field copied).
#[inline]
fn prost_decode_full(fx: &mut Fixture) -> pb::FlatRequest {
    pb::FlatRequest::decode(black_box(&fx.flat[..])).expect("decodes")
}

/// `wire/prost_decode_envelope`: prost's generated decoder on the same frame.
#[inline]
fn prost_decode_envelope(fx: &mut Fixture) -> tacit_wire::pb::Envelope {
    tacit_wire::pb::Envelope::decode(black_box(&fx.frame).clone()).expect("decodes")
}

/// Prints allocations per operation for every case.
fn print_allocations(fx: &mut Fixture) {
    const WARM_UP: u64 = 100;
    const ITERATIONS: u64 = 1000;
    let rows = [
        ("wire/encode", alloc_count::measure(WARM_UP, ITERATIONS, || encode(fx))),
        ("wire/decode_envelope", alloc_count::measure(WARM_UP, ITERATIONS, || decode_envelope(fx))),
        (
            "wire/decode_envelope_and_payload",
            alloc_count::measure(WARM_UP, ITERATIONS, || decode_envelope_and_payload(fx)),
        ),
        ("wire/frame_round_trip", alloc_count::measure(WARM_UP, ITERATIONS, || frame_round_trip(fx))),
        ("wire/prost_decode_full", alloc_count::measure(WARM_UP, ITERATIONS, || prost_decode_full(fx))),
        ("wire/prost_decode_envelope", alloc_count::measure(WARM_UP, ITERATIONS, || prost_decode_envelope(fx))),
    ];
    println!(
        "reference message: envelope frame body {} bytes (+ prefix), flat request {} bytes",
        fx.frame.len(),
        fx.flat.len()
    );
    println!("allocations per operation ({ITERATIONS} iterations after {WARM_UP} warm-up):");
    println!("  {:<34} {:>12} {:>12}", "benchmark", "allocs/op", "bytes/op");
    for (name, per_op) in rows {
        println!("  {name:<34} {:>12.2} {:>12.1}", per_op.allocations, per_op.bytes);
    }
    println!();
}

fn bench_wire(c: &mut Criterion, fx: &mut Fixture) {
    let mut group = c.benchmark_group("wire");
    group.bench_function("encode", |b| b.iter(|| encode(fx)));
    group.bench_function("decode_envelope", |b| b.iter(|| decode_envelope(fx)));
    group.bench_function("decode_envelope_and_payload", |b| b.iter(|| decode_envelope_and_payload(fx)));
    group.bench_function("frame_round_trip", |b| b.iter(|| frame_round_trip(fx)));
    group.bench_function("prost_decode_full", |b| b.iter(|| prost_decode_full(fx)));
    group.bench_function("prost_decode_envelope", |b| b.iter(|| prost_decode_envelope(fx)));
    group.finish();
}

/// The cases by name, for `TACIT_BENCH_REPEAT`.
fn run_case(fx: &mut Fixture, name: &str) -> bool {
    match name {
        "encode" => encode(fx),
        "decode_envelope" => drop(black_box(decode_envelope(fx))),
        "decode_envelope_and_payload" => drop(black_box(decode_envelope_and_payload(fx))),
        "frame_round_trip" => drop(black_box(frame_round_trip(fx))),
        "prost_decode_full" => drop(black_box(prost_decode_full(fx))),
        "prost_decode_envelope" => drop(black_box(prost_decode_envelope(fx))),
        _ => return false,
    }
    true
}

fn main() {
    let mut fx = Fixture::new();
    // `TACIT_BENCH_REPEAT=CASE:N` runs one case N times and exits, for
    // instruction counts under callgrind (see benches/instructions.sh).
    if let Ok(spec) = std::env::var("TACIT_BENCH_REPEAT") {
        let (name, count) = spec.split_once(':').expect("TACIT_BENCH_REPEAT=CASE:N");
        let count: u64 = count.parse().expect("N is a number");
        for _ in 0..count {
            assert!(run_case(&mut fx, name), "unknown case {name}");
        }
        return;
    }
    // `--list` output is for tools; keep it to the benchmark names.
    if !std::env::args().any(|arg| arg == "--list") {
        print_allocations(&mut fx);
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_wire(&mut criterion, &mut fx);
    criterion.final_summary();
}
