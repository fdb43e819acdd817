//! Fault injection for tests (feature `quic`): a UDP socket for
//! quinn that loses (in bursts), duplicates, reorders, delays, corrupts and
//! truncates the datagrams it sends, drops those above an MTU, and
//! black-holes both directions for a while.
//!
//! Every decision comes from a small seeded PRNG ([`Rng`], splitmix64): the
//! seed fixes which datagram (by its index on its socket) meets which fault.
//! The operating system's and the scheduler's timing are not replayed, so a
//! replay reproduces the fault pattern, not every interleaving.
//!
//! Faults apply to what a socket *sends*; give both ends of a connection a
//! faulty socket to disturb both directions. A black hole also swallows
//! what the socket receives. A [`FaultHandle`] is shared by the sockets made
//! with it and by the test (or its nemesis), which changes the faults while
//! connections run.
//!
//! [`for_each_seed`] runs a test once per seed and prints the seed of a
//! failing run as `TACIT_FAULT_SEED=<seed>`; set that variable to replay
//! one seed, or `TACIT_FAULT_SEEDS=<n>` to run `n` seeds.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use tacit_testkit::fault::{FaultHandle, Faults, FaultySocket};
//! let faults = FaultHandle::new(42);
//! let socket = FaultySocket::bind("127.0.0.1:0".parse().unwrap(), &faults)?;
//! faults.set(Faults::none().loss(0.02, 3).duplicate(0.1));
//! // Endpoint::builder()...bind_with_socket(socket)
//! # let _ = socket;
//! # Ok(())
//! # }
//! ```

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime as _, UdpPoller};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// splitmix64: a small, fast, seedable PRNG (not for cryptography).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A uniform integer in `[0, n)` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A uniform duration in `[0, max]`.
    pub fn duration(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.below(nanos.saturating_add(1)))
    }
}

/// What a faulty socket does to the datagrams it sends. Probabilities are
/// per datagram, in `[0, 1]`. The default is no fault at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Probability that a datagram starts a loss burst.
    pub loss: f64,
    /// Datagrams lost per burst (at least 1).
    pub loss_burst: u32,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by up to `reorder_delay`,
    /// so that later ones overtake it.
    pub reorder: f64,
    /// How long a reordered datagram is held back at most.
    pub reorder_delay: Duration,
    /// Delay of every datagram (one way).
    pub delay: Duration,
    /// Extra random delay per datagram, up to this (reorders too).
    pub jitter: Duration,
    /// Probability that 1 to 4 bits of a datagram are flipped.
    pub corrupt: f64,
    /// Probability that a datagram is cut short.
    pub truncate: f64,
    /// Datagrams larger than this are dropped (a smaller path MTU).
    pub mtu: Option<usize>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Loses datagrams in bursts of `burst`, a burst starting with probability `p`.
    pub fn loss(mut self, p: f64, burst: u32) -> Self {
        self.loss = p;
        self.loss_burst = burst.max(1);
        self
    }

    /// Sends datagrams twice with probability `p`.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Holds datagrams back by up to `by` with probability `p`.
    pub fn reorder(mut self, p: f64, by: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = by;
        self
    }

    /// Delays every datagram by `delay` plus up to `jitter`.
    pub fn delay(mut self, delay: Duration, jitter: Duration) -> Self {
        self.delay = delay;
        self.jitter = jitter;
        self
    }

    /// Flips bits in datagrams with probability `p`.
    pub fn corrupt(mut self, p: f64) -> Self {
        self.corrupt = p;
        self
    }

    /// Cuts datagrams short with probability `p`.
    pub fn truncate(mut self, p: f64) -> Self {
        self.truncate = p;
        self
    }

    /// Drops datagrams larger than `bytes`.
    pub fn mtu(mut self, bytes: usize) -> Self {
        self.mtu = Some(bytes);
        self
    }
}

/// Counts of what the sockets of one [`FaultHandle`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Datagrams handed to the sockets by quinn.
    pub datagrams: u64,
    /// Lost (loss bursts).
    pub lost: u64,
    /// Sent twice.
    pub duplicated: u64,
    /// Held back to be overtaken.
    pub reordered: u64,
    /// Sent late (delay, jitter or reordering).
    pub delayed: u64,
    /// With flipped bits.
    pub corrupted: u64,
    /// Cut short.
    pub truncated: u64,
    /// Dropped for being larger than the MTU.
    pub oversized: u64,
    /// Dropped by a black hole, sent or received.
    pub black_holed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    datagrams: AtomicU64,
    lost: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    delayed: AtomicU64,
    corrupted: AtomicU64,
    truncated: AtomicU64,
    oversized: AtomicU64,
    black_holed: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Whether a black hole is open.
#[derive(Debug, Clone, Copy)]
enum BlackHole {
    Off,
    Until(Instant),
    On,
}

#[derive(Debug)]
struct Shared {
    seed: u64,
    faults: Mutex<Faults>,
    black_hole: Mutex<BlackHole>,
    sockets: AtomicU64,
    counters: Counters,
}

/// The faults of one or more [`FaultySocket`]s, changeable at run time.
/// Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

impl FaultHandle {
    /// A handle with no faults yet; its sockets draw their decisions from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                seed,
                faults: Mutex::new(Faults::none()),
                black_hole: Mutex::new(BlackHole::Off),
                sockets: AtomicU64::new(0),
                counters: Counters::default(),
            }),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// Replaces the faults.
    pub fn set(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// Changes the faults in place.
    pub fn update(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut lock(&self.shared.faults));
    }

    /// Removes every fault and closes the black hole.
    pub fn clear(&self) {
        self.set(Faults::none());
        self.black_hole(false);
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).clone()
    }

    /// Swallows everything sent and received from now for `duration`.
    pub fn black_hole_for(&self, duration: Duration) {
        *lock(&self.shared.black_hole) = BlackHole::Until(Instant::now() + duration);
    }

    /// Opens (until closed) or closes the black hole.
    pub fn black_hole(&self, on: bool) {
        *lock(&self.shared.black_hole) = if on { BlackHole::On } else { BlackHole::Off };
    }

    /// Whether the black hole swallows datagrams now.
    pub fn is_black_holed(&self) -> bool {
        let mut state = lock(&self.shared.black_hole);
        match *state {
            BlackHole::Off => false,
            BlackHole::On => true,
            BlackHole::Until(until) if Instant::now() < until => true,
            BlackHole::Until(_) => {
                *state = BlackHole::Off;
                false
            }
        }
    }

    /// What the sockets did so far.
    pub fn stats(&self) -> FaultStats {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        FaultStats {
            datagrams: get(&c.datagrams),
            lost: get(&c.lost),
            duplicated: get(&c.duplicated),
            reordered: get(&c.reordered),
            delayed: get(&c.delayed),
            corrupted: get(&c.corrupted),
            truncated: get(&c.truncated),
            oversized: get(&c.oversized),
            black_holed: get(&c.black_holed),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A datagram waiting for its time.
#[derive(Debug)]
struct Delayed {
    at: Instant,
    seq: u64,
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    src_ip: Option<IpAddr>,
    contents: Vec<u8>,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Delayed {}

impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Delayed {
    // Reversed: the earliest is the greatest, on top of the max-heap.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Per-socket decision state.
#[derive(Debug)]
struct SocketState {
    rng: Rng,
    /// Datagrams still to lose in the current burst.
    burst_left: u32,
    seq: u64,
}

/// A UDP socket for quinn that injects the faults of its [`FaultHandle`]
/// into what it sends. Bind an endpoint over it with
/// [`EndpointBuilder::bind_with_socket`](tacit_quic::EndpointBuilder::bind_with_socket).
#[derive(Debug)]
pub struct FaultySocket {
    inner: Arc<dyn AsyncUdpSocket>,
    handle: FaultHandle,
    state: Mutex<SocketState>,
    delayed: mpsc::UnboundedSender<Delayed>,
}

impl FaultySocket {
    /// Binds a UDP socket at `addr` whose faults `handle` controls. Must be
    /// called within a Tokio runtime.
    pub fn bind(addr: SocketAddr, handle: &FaultHandle) -> io::Result<Arc<Self>> {
        let socket = std::net::UdpSocket::bind(addr)?;
        let inner = quinn::TokioRuntime.wrap_udp_socket(socket)?;
        let index = handle.shared.sockets.fetch_add(1, Ordering::Relaxed);
        let mut rng = Rng::new(handle.seed() ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next_u64();
        let (delayed, queue) = mpsc::unbounded_channel();
        tokio::spawn(deliver_late(inner.clone(), queue));
        Ok(Arc::new(Self {
            inner,
            handle: handle.clone(),
            state: Mutex::new(SocketState { rng, burst_left: 0, seq: 0 }),
            delayed,
        }))
    }

    /// The handle controlling this socket.
    pub fn handle(&self) -> &FaultHandle {
        &self.handle
    }
}

/// What to do with one outgoing datagram.
struct Plan {
    copies: Vec<(Option<Vec<u8>>, Duration)>,
    seq: u64,
}

impl FaultySocket {
    /// Decides the fate of a datagram of `contents`; `None` drops it.
    fn plan(&self, faults: &Faults, contents: &[u8]) -> Option<Plan> {
        let counters = &self.handle.shared.counters;
        if faults.mtu.is_some_and(|mtu| contents.len() > mtu) {
            bump(&counters.oversized);
            return None;
        }
        let mut state = lock(&self.state);
        let state = &mut *state;
        let rng = &mut state.rng;
        if state.burst_left > 0 {
            state.burst_left -= 1;
            bump(&counters.lost);
            return None;
        }
        if rng.chance(faults.loss) {
            state.burst_left = faults.loss_burst.max(1) - 1;
            bump(&counters.lost);
            return None;
        }
        let copies = if rng.chance(faults.duplicate) {
            bump(&counters.duplicated);
            2
        } else {
            1
        };
        let mut plan = Plan { copies: Vec::with_capacity(copies), seq: state.seq };
        state.seq += copies as u64;
        for _ in 0..copies {
            let mut altered: Option<Vec<u8>> = None;
            if rng.chance(faults.corrupt) && !contents.is_empty() {
                let bytes = altered.get_or_insert_with(|| contents.to_vec());
                for _ in 0..=rng.below(4) {
                    let bit = rng.below(bytes.len() as u64 * 8);
                    bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
                }
                bump(&counters.corrupted);
            }
            if rng.chance(faults.truncate) && contents.len() > 1 {
                let len = 1 + rng.below(contents.len() as u64 - 1) as usize;
                altered.get_or_insert_with(|| contents.to_vec()).truncate(len);
                bump(&counters.truncated);
            }
            let mut delay = faults.delay + rng.duration(faults.jitter);
            if rng.chance(faults.reorder) {
                delay += rng.duration(faults.reorder_delay).max(Duration::from_micros(100));
                bump(&counters.reordered);
            }
            plan.copies.push((altered, delay));
        }
        Some(plan)
    }
}

impl AsyncUdpSocket for FaultySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let counters = &self.handle.shared.counters;
        bump(&counters.datagrams);
        if self.handle.is_black_holed() {
            bump(&counters.black_holed);
            return Ok(());
        }
        let faults = self.handle.faults();
        let Some(plan) = self.plan(&faults, transmit.contents) else { return Ok(()) };
        let mut result = Ok(());
        for (i, (altered, delay)) in plan.copies.into_iter().enumerate() {
            if delay.is_zero() {
                let sent = match &altered {
                    None => self.inner.try_send(transmit),
                    Some(contents) => self.inner.try_send(&Transmit { contents, ..transmit.clone() }),
                };
                // The first copy's back-pressure goes to quinn; a duplicate is best effort.
                if i == 0 {
                    result = sent;
                }
            } else {
                bump(&counters.delayed);
                let _ = self.delayed.send(Delayed {
                    at: Instant::now() + delay,
                    seq: plan.seq + i as u64,
                    destination: transmit.destination,
                    ecn: transmit.ecn,
                    src_ip: transmit.src_ip,
                    contents: altered.unwrap_or_else(|| transmit.contents.to_vec()),
                });
            }
        }
        result
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let count = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(count)) => count,
                other => return other,
            };
            if !self.handle.is_black_holed() {
                return Poll::Ready(Ok(count));
            }
            for _ in 0..count {
                bump(&self.handle.shared.counters.black_holed);
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    // One datagram per transmit, so that every fault applies per datagram.
    fn max_transmit_segments(&self) -> usize {
        1
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// Sends delayed datagrams when their time comes; ends (dropping what is
/// still queued, as a dead host would) when the socket is dropped.
async fn deliver_late(socket: Arc<dyn AsyncUdpSocket>, mut incoming: mpsc::UnboundedReceiver<Delayed>) {
    let mut queue = BinaryHeap::<Delayed>::new();
    loop {
        let next = queue.peek().map(|datagram| datagram.at);
        let wait = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            datagram = incoming.recv() => match datagram {
                Some(datagram) => queue.push(datagram),
                None => return,
            },
            () = wait => {
                let now = Instant::now();
                while queue.peek().is_some_and(|datagram| datagram.at <= now) {
                    let Some(datagram) = queue.pop() else { break };
                    // A full socket buffer loses the datagram, as a network would.
                    let _ = socket.try_send(&Transmit {
                        destination: datagram.destination,
                        ecn: datagram.ecn,
                        contents: &datagram.contents,
                        segment_size: None,
                        src_ip: datagram.src_ip,
                    });
                }
            }
        }
    }
}

/// The seeds a fault test runs with: `TACIT_FAULT_SEED` alone if set (a
/// replay), else `TACIT_FAULT_SEEDS` seeds (default `default_count`),
/// derived from the test's name and `TACIT_FAULT_SEED_BASE` (default 0).
pub fn seeds(test: &str, default_count: usize) -> Vec<u64> {
    if let Some(seed) = std::env::var("TACIT_FAULT_SEED").ok().and_then(|s| parse_seed(&s)) {
        return vec![seed];
    }
    let count =
        std::env::var("TACIT_FAULT_SEEDS").ok().and_then(|s| s.trim().parse::<usize>().ok()).unwrap_or(default_count);
    let base = std::env::var("TACIT_FAULT_SEED_BASE").ok().and_then(|s| parse_seed(&s)).unwrap_or(0);
    derive_seeds(test, count, base)
}

fn derive_seeds(test: &str, count: usize, base: u64) -> Vec<u64> {
    // FNV-1a of the name, so that each test has its own seeds.
    let name = test.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3));
    let mut rng = Rng::new(name ^ base);
    (0..count).map(|_| rng.next_u64()).collect()
}

fn parse_seed(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Runs `test` once per seed of [`seeds`], each in its own task. If a run
/// panics (a failed assertion or a timeout), prints its seed as
/// `TACIT_FAULT_SEED=<seed>` and panics with the same payload.
pub async fn for_each_seed<F, Fut>(name: &str, default_count: usize, test: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    for seed in seeds(name, default_count) {
        let started = std::time::Instant::now();
        match tokio::spawn(test(seed)).await {
            Ok(()) => eprintln!("{name}: seed {seed} passed in {:.1} s", started.elapsed().as_secs_f64()),
            Err(error) => {
                eprintln!(
                    "{name}: FAILED with TACIT_FAULT_SEED={seed} after {:.1} s \
                     (replay: TACIT_FAULT_SEED={seed} cargo test ... {name})",
                    started.elapsed().as_secs_f64()
                );
                match error.try_into_panic() {
                    Ok(payload) => std::panic::resume_unwind(payload),
                    Err(error) => std::panic::resume_unwind(Box::new(error.to_string())),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let hits = (0..10_000).filter(|_| a.chance(0.25)).count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
    }

    #[test]
    fn seeds_differ_per_test() {
        assert_ne!(derive_seeds("a", 2, 0), derive_seeds("b", 2, 0));
        assert_ne!(derive_seeds("a", 2, 0), derive_seeds("a", 2, 1));
        assert_eq!(derive_seeds("a", 3, 0).len(), 3);
        assert_eq!(parse_seed("0x10"), Some(16));
    }
}
