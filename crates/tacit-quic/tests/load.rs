//! Load (issue 8): many concurrent peers, each with its own identity and
//! endpoint, ask one server in a loop for a bounded time while churning
//! their connections. No ask may fail, and the process's resident memory
//! must stay flat after warm-up. Prints asks/s, p50/p99 and memory.
//!
//! CI runs `load_short` (50 peers × 3 s, debug build). The full run, recorded in
//! docs/RELIABILITY.md ("Load"):
//!
//! ```sh
//! cargo test --release -p tacit-quic --test load -- --ignored --nocapture
//! # or: TACIT_LOAD_PEERS=1000 TACIT_LOAD_SECS=60 (the defaults of load_full)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tacit_handshake::{AgentCard, Capabilities, Identity, IntentOffer};
use tacit_quic::{Endpoint, Incoming, Session, TransportLimits};
use tacit_wire::{ErrorCode, IntentId};

const LOCALHOST: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
const ECHO: IntentId = IntentId::from_bytes([1; 32]);

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<usize>().ok()).unwrap_or(0) * 4096
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn server() -> Endpoint {
    let server = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&[1; 32]))
        .card(AgentCard::new("server"))
        .capabilities(Capabilities::default().with_intent(IntentOffer::handles(ECHO, "t.Echo")))
        .limits(TransportLimits::many_peers())
        .bind(LOCALHOST)
        .await
        .unwrap();
    let accepting = server.clone();
    tokio::spawn(async move {
        while let Some(accepted) = accepting.accept().await {
            let session = match accepted {
                Ok(session) => session,
                Err(e) => {
                    eprintln!("server: accept failed: {e}");
                    continue;
                }
            };
            tokio::spawn(async move {
                if let Err(e) = session.ready().await {
                    eprintln!("server: handshake failed: {e}");
                }
                while let Some(incoming) = session.next_incoming().await {
                    if let Incoming::Ask(ask) = incoming {
                        let payload = ask.envelope.payload.clone();
                        ask.responder.reply(ECHO, payload);
                    }
                }
            });
        }
    });
    server
}

#[derive(Default)]
struct Totals {
    asks: AtomicU64,
    errors: AtomicU64,
    reconnects: AtomicU64,
}

/// When the peers start and stop asking: all peers connect first (ramped
/// over a second), then all ask until the same instant.
struct Phases {
    connected: tokio::sync::Barrier,
    until: std::sync::OnceLock<Instant>,
    go: tokio::sync::Barrier,
}

/// One peer: connects after `delay`, then asks in a loop until the end of
/// the run, reconnecting every `churn` asks.
async fn peer(
    index: u64,
    addr: SocketAddr,
    delay: Duration,
    churn: u64,
    phases: Arc<Phases>,
    totals: Arc<Totals>,
) -> Vec<u32> {
    tokio::time::sleep(delay).await;
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(index + 1000).to_le_bytes());
    let client = Endpoint::builder()
        .identity(Identity::from_secret_bytes(&secret))
        .capabilities(Capabilities::default().with_intent(IntentOffer::emits(ECHO, "t.Echo")))
        .limits(TransportLimits::many_peers())
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
    let mut latencies = Vec::new();
    let first = connect().await;
    phases.connected.wait().await;
    phases.go.wait().await;
    let until = *phases.until.get().unwrap();
    let Some(mut session) = first else { return latencies };
    let payload = Bytes::from(vec![index as u8; 64]);
    let mut n = 0u64;
    while Instant::now() < until {
        let start = Instant::now();
        match session.ask(ECHO, payload.clone()).await {
            Ok(reply) if reply.payload == payload => {
                latencies.push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
                totals.asks.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                let why = tokio::time::timeout(Duration::from_millis(10), session.closed()).await;
                eprintln!("peer {index}: ask failed: {other:?} (session: {why:?})");
                totals.errors.fetch_add(1, Ordering::Relaxed);
                if session.is_closed() {
                    // As a Tacit peer does: dial again.
                    let Some(next) = connect().await else { return latencies };
                    session = next;
                    continue;
                }
            }
        }
        n += 1;
        if n.is_multiple_of(churn) {
            // Connection churn: close this session, dial a new one.
            session.close(ErrorCode::Unspecified, "churn");
            drop(session);
            totals.reconnects.fetch_add(1, Ordering::Relaxed);
            let Some(next) = connect().await else { return latencies };
            session = next;
        }
    }
    session.close(ErrorCode::Unspecified, "done");
    latencies
}

async fn run(peers: u64, seconds: u64, churn: u64) {
    let server = server().await;
    let addr = server.local_addr().unwrap();
    let totals = Arc::new(Totals::default());
    let n = usize::try_from(peers).unwrap() + 1;
    let phases = Arc::new(Phases {
        connected: tokio::sync::Barrier::new(n),
        until: std::sync::OnceLock::new(),
        go: tokio::sync::Barrier::new(n),
    });
    let connecting = Instant::now();
    let tasks: Vec<_> = (0..peers)
        .map(|i| {
            let delay = Duration::from_secs(1).mul_f64(i as f64 / peers as f64);
            tokio::spawn(peer(i, addr, delay, churn, phases.clone(), totals.clone()))
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(120), phases.connected.wait()).await.expect("peers did not connect");
    println!("load: {peers} peers connected in {:.1} s", connecting.elapsed().as_secs_f64());
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    phases.until.set(until).unwrap();
    phases.go.wait().await;

    // Memory once per second; "after warm-up" is from a quarter of the run.
    let mut samples = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss());
    }
    let mut latencies = Vec::new();
    for task in tasks {
        let peer = tokio::time::timeout(Duration::from_secs(60), task).await.expect("a peer hung").unwrap();
        latencies.extend(peer);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    let asks = totals.asks.load(Ordering::Relaxed);
    let errors = totals.errors.load(Ordering::Relaxed);
    let warm = samples[samples.len() / 4];
    let peak = *samples[samples.len() / 4..].iter().max().unwrap();
    let last = *samples.last().unwrap();
    println!(
        "load: {peers} peers × {seconds} s: {asks} asks ({:.0}/s), {} reconnects, {errors} errors; \
         latency p50 {} µs, p99 {} µs, max {} µs; RSS after warm-up {} MiB, peak {} MiB, end {} MiB",
        asks as f64 / elapsed,
        totals.reconnects.load(Ordering::Relaxed),
        at(0.5).unwrap_or(&0),
        at(0.99).unwrap_or(&0),
        latencies.last().unwrap_or(&0),
        warm >> 20,
        peak >> 20,
        last >> 20,
    );
    println!("load: RSS per second (MiB): {:?}", samples.iter().map(|s| s >> 20).collect::<Vec<_>>());
    assert_eq!(errors, 0, "asks or connections failed under load");
    assert!(asks >= peers, "fewer asks than peers");
    // Flat after warm-up: the peak is within 25% (and 64 MiB) of the warm level.
    assert!(peak <= warm + (warm / 4).max(64 << 20), "memory grew after warm-up: {warm} -> {peak} bytes");
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
