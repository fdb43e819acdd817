//! Discovery (issue 17): what finding an agent by AgentId costs a connect,
//! through the agent API over loopback QUIC, against a real DNS server
//! (hickory-server in this process, on 127.0.0.1, one in-memory zone
//! holding the server agent's signed record as `zone_lines` prints it).
//!
//! Everything runs on one current-thread tokio runtime: the agents, their
//! connection drivers and the DNS server. Each iteration uses a fresh client
//! agent (bound, and given its lookup, before the clock starts; shut down
//! after it stops), so that neither the memory of past connects nor the
//! resolver's cache answers for DNS.
//!
//! Cases (group `discovery/`), and what one iteration is:
//!
//! - `connect_known_addr`: `agent.connect(addr, id)` and `peer.ready()`.
//! - `connect_id_memory`: `agent.connect_id(id)` by an agent built with
//!   `known_addr(id, addr)`, and `peer.ready()`.
//! - `connect_id_dns`: `agent.connect_id(id)` by an agent whose memory is
//!   empty and whose one lookup is `DnsLookup::with_nameservers` (a TXT query
//!   over UDP, the record verified), and `peer.ready()`.
//! - `dns_resolve`: `DnsLookup::resolve(id)` alone, on a fresh lookup (no
//!   cache): the query, the answer and the record's verification.
//!
//! Before criterion runs, prints p50/p99/mean of each case (300 iterations
//! each, in alternating rounds). `TACIT_BENCH_QUICK=1`, or criterion's test
//! mode (`cargo test --benches`), shrinks that to a smoke test.
//!
//! Run with `taskset -c 0 cargo bench -p tacit-benches --bench discovery`.

use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::Criterion;
use tacit::dns::{DnsLookup, zone_lines};
use tacit::{Agent, AgentId, Identity, TransportLimits};
use tacit_testkit::LOCALHOST;
use tacit_testkit::dns::DnsServer;
use tokio::runtime::Runtime;

/// Bound on any one timed batch, setup or shutdown.
const LIMIT: Duration = Duration::from_secs(60);
const ORIGIN: &str = "example.test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    ConnectKnownAddr,
    ConnectIdMemory,
    ConnectIdDns,
    DnsResolve,
}

impl Case {
    const ALL: [Self; 4] = [Self::ConnectKnownAddr, Self::ConnectIdMemory, Self::ConnectIdDns, Self::DnsResolve];

    fn name(self) -> &'static str {
        match self {
            Self::ConnectKnownAddr => "connect_known_addr",
            Self::ConnectIdMemory => "connect_id_memory",
            Self::ConnectIdDns => "connect_id_dns",
            Self::DnsResolve => "dns_resolve",
        }
    }
}

/// Transport limits of every agent: no keep-alive, a long idle timeout, no
/// bound on connections per peer (as the `quic` and `trust` benches).
fn limits() -> TransportLimits {
    let mut limits = TransportLimits::default();
    limits.idle_timeout(Duration::from_secs(24 * 60 * 60)).keep_alive(None).max_connections_per_peer(1 << 20);
    limits
}

struct Net {
    server: Agent,
    id: AgentId,
    addr: SocketAddr,
    dns: DnsServer,
}

impl Net {
    async fn new() -> Self {
        let server = Agent::builder()
            .identity(Identity::generate().expect("a key"))
            .limits(limits())
            .record_ttl(Duration::from_secs(3600))
            .bind(LOCALHOST)
            .await
            .expect("the server binds");
        let lines = zone_lines(&server.record(None), ORIGIN, 3600);
        let dns = DnsServer::start_with_zone("example.test.", &lines).await;
        let addr = server.local_addr().expect("a bound address");
        Self { id: server.id(), addr, server, dns }
    }

    fn lookup(&self) -> DnsLookup {
        DnsLookup::with_nameservers(ORIGIN, &[self.dns.addr()]).expect("a lookup")
    }

    /// One iteration of `case`: the time of the timed part.
    async fn once(&self, case: Case) -> Duration {
        if case == Case::DnsResolve {
            let lookup = self.lookup();
            let start = Instant::now();
            let found = lookup.resolve(self.id).await.expect("the lookup succeeds").expect("a record");
            let elapsed = start.elapsed();
            assert_eq!(found.record.addrs, [self.addr]);
            return elapsed;
        }
        let mut builder = Agent::builder().limits(limits());
        builder = match case {
            Case::ConnectIdMemory => builder.known_addr(self.id, self.addr),
            Case::ConnectIdDns => builder.lookup(self.lookup()),
            _ => builder,
        };
        let client = builder.bind(LOCALHOST).await.expect("the client binds");
        let start = Instant::now();
        let peer = match case {
            Case::ConnectKnownAddr => client.connect(self.addr, self.id).await,
            _ => client.connect_id(self.id).await,
        };
        let peer = peer.expect("the peer connects");
        peer.ready().await.expect("the capability handshake succeeds");
        let elapsed = start.elapsed();
        peer.close();
        drop(peer);
        client.shutdown(Duration::from_millis(100)).await;
        elapsed
    }
}

/// Runs `future` on the runtime, failing if it takes longer than [`LIMIT`].
fn run<F: Future>(rt: &Runtime, future: F) -> F::Output {
    rt.block_on(async { tokio::time::timeout(LIMIT, future).await.expect("finished within the time limit") })
}

fn print_table(rt: &Runtime, net: &Net, quick: bool) {
    let (count, rounds) = if quick { (10, 2) } else { (300, 10) };
    println!(
        "discovery: connect by address vs by AgentId (memory, DNS), one current-thread runtime{} ({count} per case, \
         {rounds} alternating rounds)",
        if quick { " (quick counts)" } else { "" }
    );
    println!("  {:<34} {:>9} {:>9} {:>9}", "benchmark", "p50 µs", "p99 µs", "mean µs");
    for case in Case::ALL {
        run(rt, net.once(case));
    }
    let mut samples: Vec<Vec<Duration>> = Case::ALL.iter().map(|_| Vec::with_capacity(count)).collect();
    for _ in 0..rounds {
        for (&case, samples) in Case::ALL.iter().zip(&mut samples) {
            run(rt, async {
                for _ in 0..count / rounds {
                    samples.push(net.once(case).await);
                }
            });
        }
    }
    for (case, mut samples) in Case::ALL.into_iter().zip(samples) {
        samples.sort_unstable();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |p: f64| micros(samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]);
        let mean = samples.iter().copied().map(micros).sum::<f64>() / samples.len() as f64;
        println!("  discovery/{:<24} {:>9.1} {:>9.1} {:>9.1}", case.name(), at(0.5), at(0.99), mean);
    }
    println!();
}

fn bench_discovery(c: &mut Criterion, rt: &Runtime, net: &Net) {
    let mut group = c.benchmark_group("discovery");
    group.sample_size(20);
    for case in Case::ALL {
        group.bench_function(case.name(), |b| {
            b.iter_custom(|iters| {
                run(rt, async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += black_box(net.once(case).await);
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let net = run(&rt, Net::new());
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|arg| arg == name);
    if !flag("--list") {
        let test_mode = !flag("--bench") || flag("--test");
        let quick = test_mode || std::env::var("TACIT_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        print_table(&rt, &net, quick);
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_discovery(&mut criterion, &rt, &net);
    run(&rt, async {
        net.server.shutdown(Duration::from_secs(1)).await;
    });
    drop(net.dns);
    criterion.final_summary();
}
