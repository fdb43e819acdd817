//! Load (issue 8): many concurrent peers, each with its own identity and
//! endpoint, ask one server in a loop for a bounded time while churning
//! their connections. No ask, connect or accept may fail, and the resident
//! memory of both processes must stay flat after warm-up. Prints asks/s,
//! p50/p99, memory and the datagrams the kernel dropped at the server's
//! socket.
//!
//! The server runs in its own process (this test binary run again as
//! `load_server_process`, with `TACIT_LOAD_SERVER` set) on its own two
//! worker threads, so the peers' endpoints cannot starve it of a scheduler;
//! it exits when its standard input closes or after a bounded time. The
//! peers share the test's two worker threads. All traffic is on loopback.
//! Peers dial over a second (at most 1000 a second), and each reconnects
//! every `churn` asks, the first time after a share of them that differs
//! per peer so that reconnects are spread out. Latencies go to a histogram
//! (buckets ~1.6 % wide), so the peers' memory does not grow with the asks.
//!
//! CI runs `load_short` (50 peers × 3 s, debug build). The full run, recorded in
//! docs/RELIABILITY.md ("Load"):
//!
//! ```sh
//! cargo test --release -p tacit-quic --test load -- --ignored --nocapture
//! # TACIT_LOAD_PEERS (1000), TACIT_LOAD_SECS (60): the size of load_full;
//! # TACIT_LOAD_RCVBUF: every endpoint's UDP receive buffer in bytes
//! # (0: the system default; unset: TransportLimits::many_peers)
//! ```

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
use tacit_quic::{Endpoint, Session, TransportLimits};
use tacit_testkit::LOCALHOST;
use tacit_testkit::echo::{self, EchoStats};
use tacit_testkit::process::ChildGuard;
use tacit_wire::{ErrorCode, IntentId};

const ECHO: IntentId = IntentId::from_bytes([1; 32]);
/// Set in the server process: how many seconds it may live at most.
const SERVER_ENV: &str = "TACIT_LOAD_SERVER";
/// What the server process prints: its address, and its counts at the end.
const ADDR_LINE: &str = "load-server-addr ";
const DONE_LINE: &str = "load-server-done ";

/// Resident memory of a process (`self` or a pid), in bytes.
fn rss(pid: &str) -> usize {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<usize>().ok()).unwrap_or(0) * 4096
}

/// CPU time a process (`self` or a pid) has used, in seconds: user + system
/// time of all its threads (/proc/PID/stat counts in USER_HZ, 100 on Linux).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Datagrams the kernel dropped at the loopback UDP socket bound to `port`
/// (a full receive buffer), from /proc/net/udp.
fn udp_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some(local.as_str()))
        .filter_map(|line| line.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn limits() -> TransportLimits {
    let mut limits = TransportLimits::many_peers();
    if let Ok(bytes) = std::env::var("TACIT_LOAD_RCVBUF") {
        limits.udp_receive_buffer(bytes.parse().expect("TACIT_LOAD_RCVBUF: bytes"));
    }
    limits
}

/// The echo server; `stats` counts its sessions, failures and asks.
async fn server() -> (Endpoint, Arc<EchoStats>) {
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[1; 32]))
        .card(AgentCard::new("server"))
        .capabilities(Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo")))
        .limits(limits())
        .bind(LOCALHOST)
        .await
        .unwrap();
    let stats = echo::spawn(&server);
    (server, stats)
}

/// The server process (see the module docs); does nothing in a normal test run.
#[test]
fn load_server_process() {
    let Ok(lifetime) = std::env::var(SERVER_ENV) else { return };
    let lifetime = Duration::from_secs(lifetime.parse().expect("seconds"));
    // Ends when the parent closes our standard input (or dies).
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        while std::io::stdin().read(&mut sink).is_ok_and(|n| n > 0) {}
        let _ = stop_tx.send(());
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let (endpoint, stats) = server().await;
        println!("{ADDR_LINE}{}", endpoint.local_addr().unwrap());
        let _ = tokio::time::timeout(lifetime, stop_rx).await;
        println!("{DONE_LINE}{} {} {}", stats.sessions(), stats.failures(), stats.asks());
    });
    runtime.shutdown_background();
}

/// The server process, seen from the test; killed if the test ends early.
struct ServerProcess {
    child: ChildGuard,
    addr: SocketAddr,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ServerProcess {
    fn spawn(lifetime: Duration) -> Self {
        let mut child = ChildGuard(
            Command::new(std::env::current_exe().unwrap())
                .args(["load_server_process", "--exact", "--nocapture", "--test-threads=1"])
                .env(SERVER_ENV, lifetime.as_secs().to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("cannot start the server process"),
        );
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // (libtest may have written "test load_server_process ... " before
            // them on the same line.)
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(at) = line.find(ADDR_LINE).or_else(|| line.find(DONE_LINE)) {
                    let _ = tx.send(line[at..].to_owned());
                }
            }
        });
        let line = lines.recv_timeout(Duration::from_secs(30)).expect("the server process did not start");
        let addr = line[ADDR_LINE.len()..].parse().unwrap();
        Self { child, addr, lines }
    }

    /// Stops the server; returns its sessions, failures and asks answered.
    fn stop(mut self) -> (u64, u64, u64) {
        drop(self.child.stdin.take());
        let line = self.lines.recv_timeout(Duration::from_secs(30)).expect("the server process did not stop");
        let counts: Vec<u64> = line[DONE_LINE.len()..].split(' ').map(|n| n.parse().unwrap()).collect();
        (counts[0], counts[1], counts[2])
    }
}

#[derive(Default)]
struct Totals {
    asks: AtomicU64,
    errors: AtomicU64,
    reconnects: AtomicU64,
    latency: Histogram,
}

/// Latencies in µs, in buckets ~1.6 % wide (64 per power of two above 128
/// µs): the peers' memory must not grow with the number of asks.
struct Histogram {
    buckets: Vec<AtomicU64>,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..Self::bucket(u64::from(u32::MAX)) + 1).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn bucket(micros: u64) -> usize {
        if micros < 128 {
            return micros as usize;
        }
        let exp = 63 - u64::from(micros.leading_zeros());
        (128 + (exp - 7) * 64 + ((micros >> (exp - 6)) & 63)) as usize
    }

    /// The smallest value of bucket `index`.
    fn low(index: usize) -> u64 {
        if index < 128 {
            return index as u64;
        }
        let (exp, sub) = ((index - 128) / 64 + 7, (index - 128) % 64);
        ((64 + sub) as u64) << (exp - 6)
    }

    fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).min(u64::from(u32::MAX));
        self.buckets[Self::bucket(micros)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(micros, Ordering::Relaxed);
    }

    /// The `q` quantile, in µs (the low end of its bucket).
    fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let rank = (counts.iter().sum::<u64>() as f64 * q) as u64;
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen > rank {
                return Self::low(index);
            }
        }
        0
    }
}

/// When the peers start and stop asking: all peers connect first (ramped
/// over a second, or at 1000/s), then all ask until the same instant.
struct Phases {
    connected: tokio::sync::Barrier,
    until: std::sync::OnceLock<Instant>,
    go: tokio::sync::Barrier,
}

/// One peer: connects after `delay`, then asks in a loop until the end of
/// the run, reconnecting every `churn` asks (the first time after `first`,
/// so that the peers' reconnects are spread out rather than all at once).
async fn peer(
    index: u64,
    addr: SocketAddr,
    delay: Duration,
    churn: u64,
    first: u64,
    phases: Arc<Phases>,
    totals: Arc<Totals>,
) {
    tokio::time::sleep(delay).await;
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(index + 1000).to_le_bytes());
    let client = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&secret))
        .capabilities(Capabilities::default().with_intent(IntentOffer::emits(ECHO, "t.Echo")))
        .limits(limits())
        .bind(LOCALHOST)
        .await
        .unwrap();
    let connect = async || -> Option<Session> {
        for _ in 0..5 {
            match client.connect(addr, None).await {
                Ok(session) => return Some(session),
                Err(e) => {
                    eprintln!("peer {index}: connect failed: {e}");
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        None
    };
    let first_session = connect().await;
    phases.connected.wait().await;
    phases.go.wait().await;
    let until = *phases.until.get().unwrap();
    let Some(mut session) = first_session else { return };
    let payload = Bytes::from(vec![index as u8; 64]);
    let mut n = churn - first;
    while Instant::now() < until {
        let start = Instant::now();
        match session.ask(ECHO, payload.clone()).await {
            Ok(reply) if reply.payload == payload => {
                totals.latency.record(start.elapsed());
                totals.asks.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                let why = tokio::time::timeout(Duration::from_millis(10), session.closed()).await;
                eprintln!("peer {index}: ask failed: {other:?} (session: {why:?})");
                totals.errors.fetch_add(1, Ordering::Relaxed);
                if session.is_closed() {
                    // As a Tacit peer does: dial again.
                    let Some(next) = connect().await else { return };
                    session = next;
                    continue;
                }
            }
        }
        n += 1;
        if n.is_multiple_of(churn) && Instant::now() < until {
            // Connection churn: close this session, dial a new one.
            session.close(ErrorCode::Unspecified, "churn");
            drop(session);
            totals.reconnects.fetch_add(1, Ordering::Relaxed);
            let Some(next) = connect().await else { return };
            session = next;
        }
    }
    // A session dialed at the very end may not be accepted yet: closing it
    // then would fail the server's accept. Wait for the handshake first.
    if let Err(e) = session.ready().await {
        eprintln!("peer {index}: handshake failed: {e}");
        totals.errors.fetch_add(1, Ordering::Relaxed);
    }
    session.close(ErrorCode::Unspecified, "done");
}

/// Whether memory stayed flat after warm-up: the peak from a quarter of the
/// run is within 25 % (and 64 MiB) of the level then. Returns (warm, peak, end).
fn memory(samples: &[usize]) -> (usize, usize, usize) {
    let warm = samples[samples.len() / 4];
    let peak = *samples[samples.len() / 4..].iter().max().unwrap();
    (warm, peak, *samples.last().unwrap())
}

fn flat((warm, peak, _): (usize, usize, usize)) -> bool {
    peak <= warm + (warm / 4).max(64 << 20)
}

async fn run(peers: u64, seconds: u64, churn: u64) {
    // Bounded: connecting (120 s), the run, the peers' last asks (60 s), a margin.
    let server = ServerProcess::spawn(Duration::from_secs(seconds + 300));
    let addr = server.addr;
    let server_pid = server.child.id().to_string();
    let drops_before = udp_drops(addr.port());
    let totals = Arc::new(Totals::default());
    let n = usize::try_from(peers).unwrap() + 1;
    let phases = Arc::new(Phases {
        connected: tokio::sync::Barrier::new(n),
        until: std::sync::OnceLock::new(),
        go: tokio::sync::Barrier::new(n),
    });
    // The peers dial at 1000/s at most (and over a second at least).
    let ramp = Duration::from_millis(peers.max(1000));
    let connecting = Instant::now();
    let tasks: Vec<_> = (0..peers)
        .map(|i| {
            let delay = ramp.mul_f64(i as f64 / peers as f64);
            let first = 1 + i * churn / peers;
            tokio::spawn(peer(i, addr, delay, churn, first, phases.clone(), totals.clone()))
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(120), phases.connected.wait()).await.expect("peers did not connect");
    println!("load: {peers} peers connected in {:.1} s", connecting.elapsed().as_secs_f64());
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    phases.until.set(until).unwrap();
    phases.go.wait().await;
    let cpu_before = (cpu_seconds(&server_pid), cpu_seconds("self"));

    // Memory of both processes once per second.
    let (mut peers_rss, mut server_rss) = (Vec::new(), Vec::new());
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peers_rss.push(rss("self"));
        server_rss.push(rss(&server_pid));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task).await.expect("a peer hung").unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(&server_pid) - cpu_before.0, cpu_seconds("self") - cpu_before.1);
    let drops = udp_drops(addr.port()).saturating_sub(drops_before);
    let (sessions, server_failures, answered) = server.stop();
    let asks = totals.asks.load(Ordering::Relaxed);
    let errors = totals.errors.load(Ordering::Relaxed);
    let mib =
        |(warm, peak, end): (usize, usize, usize)| format!("{} → {} MiB (peak {})", warm >> 20, end >> 20, peak >> 20);
    let (peers_memory, server_memory) = (memory(&peers_rss), memory(&server_rss));
    println!(
        "load: {peers} peers × {seconds} s: {asks} asks ({:.0}/s), {} reconnects, {errors} errors; \
         latency p50 {} µs, p99 {} µs, max {} µs",
        asks as f64 / elapsed,
        totals.reconnects.load(Ordering::Relaxed),
        totals.latency.quantile(0.5),
        totals.latency.quantile(0.99),
        totals.latency.max.load(Ordering::Relaxed),
    );
    println!(
        "load: server: {sessions} sessions, {answered} asks answered, {server_failures} failed accepts or handshakes, \
         {drops} datagrams dropped at its socket (receive buffer full)"
    );
    println!(
        "load: CPU while asking: server {:.1} s, peers {:.1} s, in {elapsed:.1} s on {} cores",
        cpu.0,
        cpu.1,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("load: RSS after warm-up → end: server {}, peers {}", mib(server_memory), mib(peers_memory));
    println!("load: server RSS per second (MiB): {:?}", server_rss.iter().map(|s| s >> 20).collect::<Vec<_>>());
    println!("load: peers RSS per second (MiB): {:?}", peers_rss.iter().map(|s| s >> 20).collect::<Vec<_>>());
    assert_eq!(errors, 0, "asks or connections failed under load");
    assert_eq!(server_failures, 0, "the server failed accepts or handshakes under load");
    assert!(asks >= peers, "fewer asks than peers");
    assert!(flat(server_memory), "server memory grew after warm-up: {server_memory:?} bytes");
    assert!(flat(peers_memory), "peers' memory grew after warm-up: {peers_memory:?} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_short() {
    run(env_or("TACIT_LOAD_PEERS", 50), env_or("TACIT_LOAD_SECS", 3), 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute with 1000 peers; run locally with --release (see the module docs)"]
async fn load_full() {
    run(env_or("TACIT_LOAD_PEERS", 1000), env_or("TACIT_LOAD_SECS", 60), 200).await;
}
