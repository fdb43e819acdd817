//! `directory`: the directory agent at scale, measured in one run.
//!
//! ```text
//! taskset -c 0 cargo run --release -p tacit-benches --bin directory -- --records 100000
//! ```
//!
//! With N signed records (each: 2 addresses, 3 of 100 tags, 4 of 1,000
//! intents, one in ten with an organisation credential) it reports:
//!
//! - registration throughput into a redb-backed directory (group commit),
//!   in process and through QUIC from one peer;
//! - memory per record (RSS growth over N records);
//! - `FindAgents` latency over QUIC, p50/p99, by AgentId and by intent
//!   (limit 100), and the same lookups in process;
//! - restart time: reopening the store with N records;
//! - A agents (default 1,000), each its own QUIC endpoint, registering at once;
//! - `connect_id` through the directory against `connect` with a known address.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tacit::credential::{Credential, OrgSigner};
use tacit::directory::{DirectoryClient, Query};
use tacit::intents::{FindAgents, Ping};
use tacit::record::AgentRecord;
use tacit::{Agent, AgentId, Identity, IntentId};
use tacit_directory::{Directory, Limits};

struct Args {
    records: usize,
    agents: usize,
    lookups: usize,
}

fn args() -> Args {
    let mut args = Args { records: 100_000, agents: 1_000, lookups: 2_000 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--records" => args.records = value,
            "--agents" => args.agents = value,
            "--lookups" => args.lookups = value,
            other => panic!("unknown flag {other} (--records N, --agents N, --lookups N)"),
        }
    }
    args
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn intent(i: usize) -> (IntentId, String) {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(i as u64).to_le_bytes());
    (IntentId::from_bytes(id), format!("bench.v1.Intent{i}"))
}

/// N signed records, deterministic in shape (not in keys).
fn records(n: usize) -> Vec<Vec<u8>> {
    let org = OrgSigner::generate().unwrap();
    let now = SystemTime::now();
    (0..n)
        .map(|i| {
            let identity = Identity::generate().unwrap();
            let mut r = AgentRecord::new(identity.agent_id(), now, Duration::from_secs(3600))
                .addr(SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4433)))
                .addr(SocketAddr::from(([127, 0, 0, 1], 20_000 + (i % 40_000) as u16)))
                .name(format!("agent-{i}"));
            for t in 0..3 {
                r = r.tag(format!("tag-{}", (i * 7 + t * 31) % 100));
            }
            for k in 0..4 {
                let (id, name) = intent((i * 13 + k * 251) % 1000);
                r = r.intent(id, name);
            }
            if i % 10 == 0 {
                r =
                    r.credential(org.issue(
                        &Credential::new(identity.agent_id(), now, now + Duration::from_secs(3600)).role("seller"),
                    ));
            }
            r.sign(&identity).encode()
        })
        .collect()
}

fn unlimited() -> Limits {
    Limits::default().records_per_peer(usize::MAX).registrations_per_minute(u32::MAX).max_records(usize::MAX)
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let dir = std::env::temp_dir().join(format!("tacit-directory-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("directory.redb");
    println!("directory at scale: {} records, {} agents registering at once", args.records, args.agents);

    let started = Instant::now();
    let signed = records(args.records);
    println!("  made and signed {} records in {}", signed.len(), show(started.elapsed()));
    let mean_len = signed.iter().map(Vec::len).sum::<usize>() / signed.len().max(1);

    // Registration, in process: every record from many concurrent tasks;
    // first into a directory in memory (what the index costs), then into
    // the redb-backed one.
    const WORKERS: usize = 256;
    let chunks = || -> Vec<Vec<Vec<u8>>> {
        let mut chunks = vec![Vec::new(); WORKERS];
        for (i, r) in signed.iter().enumerate() {
            chunks[i % WORKERS].push(r.clone());
        }
        chunks
    };
    let registrant = Identity::generate().unwrap().agent_id();
    async fn register_all(directory: &Directory, registrant: AgentId, chunks: Vec<Vec<Vec<u8>>>) -> Duration {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in chunks {
            let directory = directory.clone();
            tasks.spawn(async move {
                for r in chunk {
                    directory.register(registrant, &r).await.unwrap();
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        started.elapsed()
    }
    {
        let work = chunks();
        let rss_before = rss_bytes();
        let memory = Directory::in_memory(unlimited());
        let took = register_all(&memory, registrant, work).await;
        assert_eq!(memory.len(), args.records);
        let grown = rss_bytes().saturating_sub(rss_before);
        println!(
            "  registration in process, in memory (verify + index): {:.0} records/s ({} for {})",
            args.records as f64 / took.as_secs_f64(),
            show(took),
            args.records
        );
        println!(
            "  memory: {:.0} bytes per record held in memory (RSS +{:.1} MiB for {}; a signed record is {} bytes on average)",
            grown as f64 / args.records as f64,
            grown as f64 / (1 << 20) as f64,
            args.records,
            mean_len
        );
    }
    let work = chunks();
    let directory = Directory::open(&path, unlimited()).unwrap();
    let took = register_all(&directory, registrant, work).await;
    assert_eq!(directory.len(), args.records);
    println!(
        "  registration in process, redb (verify + index + durable group commit): {:.0} records/s ({} for {})",
        args.records as f64 / took.as_secs_f64(),
        show(took),
        args.records
    );

    // In-process lookups.
    let mut by_id = Vec::new();
    let mut by_intent = Vec::new();
    let ids: Vec<AgentId> = signed
        .iter()
        .take(args.lookups)
        .map(|r| tacit::record::SignedAgentRecord::decode(r).unwrap().record().unwrap().agent_id)
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let t = Instant::now();
        let (found, _) = directory.find(&Query::new().agent(*id), 1);
        by_id.push(t.elapsed());
        assert_eq!(found.len(), 1);
        let t = Instant::now();
        let (found, _) = directory.find(&Query::new().intent(intent(i * 13 % 1000).0), 100);
        by_intent.push(t.elapsed());
        assert!(!found.is_empty());
    }
    by_id.sort();
    by_intent.sort();
    println!(
        "  find in process: by id p50 {} p99 {}; by intent (100 of ~{}) p50 {} p99 {}",
        show(percentile(&by_id, 0.5)),
        show(percentile(&by_id, 0.99)),
        args.records * 4 / 1000,
        show(percentile(&by_intent, 0.5)),
        show(percentile(&by_intent, 0.99))
    );

    // Over QUIC.
    let server = directory.serve(Agent::builder()).bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (addr, id) = (server.local_addr().unwrap(), server.id());
    let client_agent = Agent::builder().bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let peer = client_agent.connect(addr, id).await.unwrap();
    peer.ask(Ping { nonce: 0 }).await.unwrap();
    let mut by_id = Vec::new();
    let mut by_intent = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let q = Query::new().agent(*id).to_wire();
        let t = Instant::now();
        let found = peer.ask(FindAgents { query: Some(q), limit: 1 }).await.unwrap();
        by_id.push(t.elapsed());
        assert_eq!(found.records.len(), 1);
        let q = Query::new().intent(intent(i * 13 % 1000).0).to_wire();
        let t = Instant::now();
        let found = peer.ask(FindAgents { query: Some(q), limit: 100 }).await.unwrap();
        by_intent.push(t.elapsed());
        assert!(!found.records.is_empty());
    }
    by_id.sort();
    by_intent.sort();
    println!(
        "  FindAgents over QUIC: by id p50 {} p99 {}; by intent (100 records, ~{} KiB) p50 {} p99 {}",
        show(percentile(&by_id, 0.5)),
        show(percentile(&by_id, 0.99)),
        mean_len * 100 / 1024,
        show(percentile(&by_intent, 0.5)),
        show(percentile(&by_intent, 0.99))
    );
    // The client verifies each record: what that adds.
    let client = DirectoryClient::new(peer.clone());
    let mut verified = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        let found = client.find(&Query::new().intent(intent(i % ids.len().max(1) * 13 % 1000).0), 100).await.unwrap();
        verified.push(t.elapsed());
        assert_eq!(found.rejected, 0);
    }
    verified.sort();
    println!("  DirectoryClient::find by intent, 100 records verified: p50 {}", show(percentile(&verified, 0.5)));

    // Registration over QUIC, from one peer with 64 in flight.
    let fresh = records(5_000.min(args.records));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in fresh.chunks(fresh.len().div_ceil(64)) {
        let peer = peer.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for r in chunk {
                peer.ask(tacit::intents::RegisterAgent { signed_record: r.into() }).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let took = started.elapsed();
    println!(
        "  RegisterAgent over QUIC, one peer, 64 in flight: {:.0} registrations/s ({} records)",
        fresh.len() as f64 / took.as_secs_f64(),
        fresh.len()
    );

    // connect_id through the directory against connect with the address.
    let target = Agent::builder().directory(addr, id).bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), target.registered()).await.unwrap();
    let target_addr = target.local_addr().unwrap();
    let mut known = Vec::new();
    let mut looked_up = Vec::new();
    for _ in 0..50 {
        let dialer = Agent::builder().bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let t = Instant::now();
        let p = dialer.connect(target_addr, target.id()).await.unwrap();
        p.ready().await.unwrap();
        known.push(t.elapsed());
        drop(p);
        let dialer = Agent::builder().directory(addr, id).bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let t = Instant::now();
        let p = dialer.connect_id(target.id()).await.unwrap();
        p.ready().await.unwrap();
        looked_up.push(t.elapsed());
    }
    known.sort();
    looked_up.sort();
    let (k, l) = (percentile(&known, 0.5), percentile(&looked_up, 0.5));
    println!(
        "  connect + handshake, known address: p50 {}; connect_id through the directory (dial it, FindAgents, dial): p50 {} ({:.2}x)",
        show(k),
        show(l),
        l.as_secs_f64() / k.as_secs_f64()
    );
    drop(target);

    // Many agents registering at once, each its own endpoint.
    let started = Instant::now();
    let mut agents = Vec::with_capacity(args.agents);
    for _ in 0..args.agents {
        agents.push(Agent::builder().directory(addr, id).bind("127.0.0.1:0".parse().unwrap()).await.unwrap());
    }
    let bound = started.elapsed();
    let mut waits = tokio::task::JoinSet::new();
    for agent in &agents {
        let agent = agent.clone();
        waits.spawn(async move { agent.registered().await });
    }
    let done =
        tokio::time::timeout(Duration::from_secs(120), async { while waits.join_next().await.is_some() {} }).await;
    assert!(done.is_ok(), "not every agent registered within 120 s");
    println!(
        "  {} agents registering at once: all acknowledged {} after the first bind ({} to bind them all)",
        args.agents,
        show(started.elapsed()),
        show(bound)
    );
    drop(agents);
    drop(client);
    drop(peer);
    server.shutdown(Duration::from_millis(100)).await;
    client_agent.shutdown(Duration::from_millis(100)).await;
    drop(client_agent);
    drop(server);

    // Restart: reopen the store.
    let total = directory.len();
    drop(directory);
    // The writer thread closes the database once the last handle is gone.
    let mut reopened = Directory::open(&path, unlimited());
    for _ in 0..200 {
        if reopened.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        reopened = Directory::open(&path, unlimited());
    }
    let reopened = reopened.unwrap();
    let loaded = reopened.loaded();
    println!("  restart: {} records loaded in {} (of {} held before)", loaded.records, show(loaded.took), total);
    drop(reopened);
    // Again, after a clean close of the reopened store.
    let mut again = Directory::open(&path, unlimited());
    for _ in 0..200 {
        if again.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        again = Directory::open(&path, unlimited());
    }
    let loaded = again.unwrap().loaded();
    println!("  restart after a clean close: {} records loaded in {}", loaded.records, show(loaded.took));
    let _ = std::fs::remove_dir_all(&dir);
}
