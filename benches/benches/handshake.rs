//! Handshake benchmarks: a complete capability handshake between a dialer
//! and an acceptor in memory (bytes shuttled between the two machines, no
//! I/O, no latency), and the pure negotiation function on its own.
//!
//! Each agent offers N intents; half of each list is also in the other's,
//! with a mix of handled, emitted and both, so every shared intent is usable
//! one way or both.
//!
//! Before criterion runs, prints the allocations per handshake of each case,
//! counted on exactly the functions criterion then times.
//!
//! The `receipt` group signs an envelope (rule `receipt.sign`: digest input,
//! two BLAKE3 hashes, one Ed25519 signature) and verifies its receipt
//! (`receipt.verify`), with a 64-byte payload.
//!
//! Run with `taskset -c 0 cargo bench -p tacit-benches --bench handshake`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion};
use tacit_benches::alloc_count::{self, CountingAlloc};
use tacit_handshake::{
    AgentCard, Capabilities, Event, Handshake, HandshakeConfig, Identity, IntentOffer, Negotiated, Receipt, negotiate,
    sign_envelope,
};
use tacit_wire::{Act, Envelope, IntentId, IntentRef};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Intents offered by each agent, per case.
const SIZES: [usize; 2] = [8, 512];

/// Both agents' configurations, prepared once, outside every timed loop.
struct Fixture {
    intents: usize,
    dialer: Arc<HandshakeConfig>,
    acceptor: Arc<HandshakeConfig>,
    /// A fixed instant: the machines only compare instants, never read a clock.
    now: Instant,
}

/// The intent with number `n`: a fixed id and a realistic name.
fn offer(n: usize, handles: bool, emits: bool) -> IntentOffer {
    let mut id = [0x5a; 32];
    id[..8].copy_from_slice(&(n as u64).to_le_bytes());
    let mut offer = IntentOffer::handles(IntentId::from_bytes(id), format!("acme.scheduling.v1.Intent{n:04}"));
    offer.handles = handles;
    offer.emits = emits;
    offer
}

fn card(name: &str) -> AgentCard {
    AgentCard::new(name)
        .with_description("books meeting rooms and desks for a team")
        .with_role("scheduler")
        .with_software_version("tacit-bench/0.1.0")
}

impl Fixture {
    /// The dialer offers intents 0..n, the acceptor n/2..n/2+n. Of each
    /// shared intent, the dialer emits, handles or does both (by n mod 3),
    /// the acceptor the complement, so every shared intent is usable at least
    /// one way.
    fn new(n: usize) -> Self {
        let config = |name, intents: Vec<IntentOffer>| {
            let mut capabilities = Capabilities::default();
            capabilities.intents = intents;
            Arc::new(HandshakeConfig::new(card(name), capabilities).expect("a valid configuration"))
        };
        let dialer = (0..n).map(|i| offer(i, i % 3 != 0, i % 3 != 1)).collect();
        let acceptor = (n / 2..n / 2 + n).map(|i| offer(i, i % 3 != 1, i % 3 != 0)).collect();
        let fx = Self {
            intents: n,
            dialer: config("buyer", dialer),
            acceptor: config("seller", acceptor),
            now: Instant::now(),
        };
        let (d, a) = handshake(&fx);
        assert_eq!(d.intents.len(), n / 2, "half the intents are shared");
        assert_eq!(a.intents.len(), n / 2);
        fx
    }
}

// The cases. Each is called by both the allocation count and criterion.

/// `handshake/negotiate/N`: a dialer and an acceptor machine from the shared
/// configurations, `Hello` and `Welcome` carried between them until both
/// are established; returns both sides' results.
#[inline]
fn handshake(fx: &Fixture) -> (Negotiated, Negotiated) {
    let now = fx.now;
    let mut dialer = Handshake::dialer(Arc::clone(&fx.dialer), now);
    let mut acceptor = Handshake::acceptor(Arc::clone(&fx.acceptor), now);
    while let Some(bytes) = dialer.poll_transmit() {
        acceptor.handle_data(black_box(&bytes), now);
    }
    while let Some(bytes) = acceptor.poll_transmit() {
        dialer.handle_data(black_box(&bytes), now);
    }
    match (dialer.poll_event(), acceptor.poll_event()) {
        (Some(Event::Established(d)), Some(Event::Established(a))) => (d, a),
        other => panic!("the handshake did not establish both sides: {other:?}"),
    }
}

/// `handshake/negotiate_fn/N`: just [`negotiate`], from the dialer's side,
/// on capabilities already decoded.
#[inline]
fn negotiate_fn(fx: &Fixture) -> Negotiated {
    let peer_card = fx.acceptor.card().clone();
    negotiate(1, black_box(fx.dialer.capabilities()), black_box(fx.acceptor.capabilities()), peer_card)
}

/// Prints allocations per operation for every case.
fn print_allocations(fixtures: &[Fixture]) {
    const WARM_UP: u64 = 10;
    const ITERATIONS: u64 = 200;
    let mut rows = Vec::new();
    for fx in fixtures {
        let per_op = alloc_count::measure(WARM_UP, ITERATIONS, || handshake(fx));
        rows.push((format!("handshake/negotiate/{}", fx.intents), per_op));
    }
    for fx in fixtures.iter().filter(|fx| fx.intents == 512) {
        let per_op = alloc_count::measure(WARM_UP, ITERATIONS, || negotiate_fn(fx));
        rows.push((format!("handshake/negotiate_fn/{}", fx.intents), per_op));
    }
    println!("each agent offers N intents, N/2 of them shared");
    println!("allocations per operation ({ITERATIONS} iterations after {WARM_UP} warm-up):");
    println!("  {:<34} {:>12} {:>12}", "benchmark", "allocs/op", "bytes/op");
    for (name, per_op) in rows {
        println!("  {name:<34} {:>12.2} {:>12.1}", per_op.allocations, per_op.bytes);
    }
    println!();
}

fn bench_handshake(c: &mut Criterion, fixtures: &[Fixture]) {
    let mut group = c.benchmark_group("handshake");
    for fx in fixtures {
        group.bench_with_input(BenchmarkId::new("negotiate", fx.intents), fx, |b, fx| b.iter(|| handshake(fx)));
    }
    for fx in fixtures.iter().filter(|fx| fx.intents == 512) {
        group.bench_with_input(BenchmarkId::new("negotiate_fn", fx.intents), fx, |b, fx| b.iter(|| negotiate_fn(fx)));
    }
    group.finish();
}

/// Two fixed identities and a 64-byte ask, for the `receipt` group.
struct ReceiptFixture {
    sender: Identity,
    receiver: Identity,
    intent: IntentId,
    envelope: Envelope,
}

impl ReceiptFixture {
    fn new() -> Self {
        let intent = IntentId::from_bytes([7; 32]);
        let envelope = Envelope::new(IntentRef::Alias(1), Act::Request, 42, Bytes::from(vec![0x5a; 64]));
        Self {
            sender: Identity::from_secret_bytes(&[1; 32]),
            receiver: Identity::from_secret_bytes(&[2; 32]),
            intent,
            envelope,
        }
    }

    fn sign(&self) -> Envelope {
        let mut envelope = self.envelope.clone();
        sign_envelope(&self.sender, self.receiver.agent_id(), self.intent, &mut envelope, 1_764_633_600_000_000);
        envelope
    }

    #[allow(clippy::expect_used)]
    fn receipt(&self) -> Receipt {
        Receipt::from_envelope(self.sender.agent_id(), self.receiver.agent_id(), self.intent, &self.sign())
            .expect("signed")
    }
}

fn bench_receipts(c: &mut Criterion, fx: &ReceiptFixture) {
    let mut group = c.benchmark_group("receipt");
    group.bench_function(BenchmarkId::new("sign", 64), |b| b.iter(|| fx.sign()));
    let receipt = fx.receipt();
    group.bench_function(BenchmarkId::new("verify", 64), |b| b.iter(|| black_box(&receipt).verify()));
    group.finish();
}

/// The cases by name (as criterion names them, without the group), for
/// `TACIT_BENCH_REPEAT`.
fn run_case(fixtures: &[Fixture], receipts: &ReceiptFixture, name: &str) -> bool {
    match name {
        "sign/64" => return black_box(receipts.sign()).signature.is_some(),
        "verify/64" => return black_box(receipts.receipt()).verify().is_ok(),
        _ => {}
    }
    let Some((case, n)) = name.split_once('/') else { return false };
    let Some(fx) = fixtures.iter().find(|fx| n.parse() == Ok(fx.intents)) else { return false };
    match case {
        "negotiate" => drop(black_box(handshake(fx))),
        "negotiate_fn" => drop(black_box(negotiate_fn(fx))),
        _ => return false,
    }
    true
}

fn main() {
    let fixtures = SIZES.map(Fixture::new);
    let receipts = ReceiptFixture::new();
    // `TACIT_BENCH_REPEAT=CASE:N` (e.g. `negotiate/512:100`) runs one case N
    // times and exits, for instruction counts under callgrind (see
    // benches/instructions.sh).
    if let Ok(spec) = std::env::var("TACIT_BENCH_REPEAT") {
        let (name, count) = spec.rsplit_once(':').expect("TACIT_BENCH_REPEAT=CASE:N");
        let count: u64 = count.parse().expect("N is a number");
        assert!(count == 0 || run_case(&fixtures, &receipts, name), "unknown case {name}");
        for _ in 1..count {
            run_case(&fixtures, &receipts, name);
        }
        return;
    }
    // `--list` output is for tools; keep it to the benchmark names.
    if !std::env::args().any(|arg| arg == "--list") {
        print_allocations(&fixtures);
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_handshake(&mut criterion, &fixtures);
    bench_receipts(&mut criterion, &receipts);
    criterion.final_summary();
}
