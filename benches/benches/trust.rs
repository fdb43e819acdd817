//! Trust (issue 14): what the receiver-side policy costs inside a whole ask,
//! and what a credential costs a handshake, through the agent API (the
//! `tacit` crate) over loopback QUIC.
//!
//! Everything runs in this one process on one current-thread tokio runtime,
//! as in the `quic` bench (whose `tacit_agent/rtt` case the ask cases here
//! repeat): the agents, their connection drivers and the handlers' tasks.
//! The agents use the `quic` bench's transport limits (no keep-alive, a
//! one-day idle timeout, no bound on connections per peer). Every server
//! answers the reference `ReserveSlot` ask (258 bytes) with `Ack { ok }`,
//! typed; every client asks a clone of the reference request.
//!
//! Cases (group `trust/`), and what one iteration is:
//!
//! - `ask/no_policy`: `peer.ask(ReserveSlot)` and its reply, 1 in flight, to
//!   a server with no policy (the open policy: the agent reads its policy
//!   slot, sees it open and skips it).
//! - `ask/rules_1`: the same to a server whose policy is one rule (allow
//!   `ReserveSlot` on the ask lane; default deny), as `policy/admit/rules/1`.
//! - `ask/rules_16_limits`: the same to a server whose policy is 15 deny
//!   rules naming other agents, then that allow rule, and per-peer limits
//!   (rate, quota and in-flight slot, never reached), as
//!   `policy/admit/rules/16+limits`.
//! - `ask/org_rule`: the same from a client presenting one credential, to a
//!   server that trusts its organisation and whose one rule allows members
//!   of it with role `buyer`: the subject's memberships are built from the
//!   peer's verified credentials for each ask.
//! - `ask/rate_limited`: the same to a server whose per-peer rate is one
//!   ask a second: all but about one a second are refused with
//!   `RATE_LIMITED` before any handler runs. What one ask of a flooding peer
//!   costs both ends.
//! - `connect/plain`: `agent.connect` to a server that trusts an
//!   organisation, and `peer.ready()` (the TLS and capability handshakes
//!   done on both sides); the dialer presents no credential.
//! - `connect/credential`: the same, the dialer presenting one credential
//!   (`AgentBuilder::credential`, issued by `OrgSigner::issue`), which the
//!   server verifies (`AgentBuilder::trust`).
//! - `connect/credential_org_policy`: the same to the server of
//!   `ask/org_rule`, whose policy names the organisation: the offer is
//!   filtered by the rules, with the verified memberships.
//!
//! Closing the peer after a connect, and waiting until the server has seen
//! its session end, is not timed. Every timed batch is bounded (60 s).
//!
//! Before criterion runs, prints p50/p99/mean latency of each case (20,000
//! asks per ask case, 500 connects per connect case, measured in 10 rounds
//! that alternate the cases of a group so they see the same state of the
//! machine), its ratio to the group's first case, and allocations per
//! operation (both ends). `TACIT_BENCH_QUICK=1` shrinks the counts to a
//! smoke test, as does criterion's test mode (`cargo test --benches`).
//! `TACIT_BENCH_REPEAT=CASE:N` runs one case N times and exits, for
//! instruction counts (`bash benches/instructions.sh trust`).
//!
//! Run with `taskset -c 0 cargo bench -p tacit-benches --bench trust`.

use std::future::Future;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use criterion::Criterion;
use tacit::credential::{Credential, OrgSigner};
use tacit::policy::{Limits, Quota, Rate, Rule};
use tacit::{Agent, AgentCard, Identity, Intent as _, Lane, Peer, Policy, TransportLimits};
use tacit_benches::alloc_count::{self, CountingAlloc};
use tacit_benches::intents::{Ack, ReserveSlot};
use tacit_benches::reference;
use tokio::runtime::Runtime;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Bound on any one timed batch, setup or shutdown.
const LIMIT: Duration = Duration::from_secs(60);
/// The role the organisation's credential grants, and the org rule allows.
const ROLE: &str = "buyer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    AskNoPolicy,
    AskRules1,
    AskRules16Limits,
    AskOrgRule,
    AskRateLimited,
    ConnectPlain,
    ConnectCredential,
    ConnectCredentialOrgPolicy,
}

impl Case {
    const ALL: [Self; 8] = [
        Self::AskNoPolicy,
        Self::AskRules1,
        Self::AskRules16Limits,
        Self::AskOrgRule,
        Self::AskRateLimited,
        Self::ConnectPlain,
        Self::ConnectCredential,
        Self::ConnectCredentialOrgPolicy,
    ];
    const ASKS: [Self; 5] =
        [Self::AskNoPolicy, Self::AskRules1, Self::AskRules16Limits, Self::AskOrgRule, Self::AskRateLimited];
    const CONNECTS: [Self; 3] = [Self::ConnectPlain, Self::ConnectCredential, Self::ConnectCredentialOrgPolicy];

    fn name(self) -> &'static str {
        match self {
            Self::AskNoPolicy => "ask/no_policy",
            Self::AskRules1 => "ask/rules_1",
            Self::AskRules16Limits => "ask/rules_16_limits",
            Self::AskOrgRule => "ask/org_rule",
            Self::AskRateLimited => "ask/rate_limited",
            Self::ConnectPlain => "connect/plain",
            Self::ConnectCredential => "connect/credential",
            Self::ConnectCredentialOrgPolicy => "connect/credential_org_policy",
        }
    }

    fn is_connect(self) -> bool {
        Self::CONNECTS.contains(&self)
    }
}

/// Transport limits of every agent (see the module documentation).
fn limits() -> TransportLimits {
    let mut limits = TransportLimits::default();
    limits
        .idle_timeout(Duration::from_secs(24 * 60 * 60))
        .keep_alive(None)
        // Closed connections are released by the server asynchronously.
        .max_connections_per_peer(1 << 20);
    limits
}

/// One rule: allow `ReserveSlot` on the ask lane (default deny).
fn rules_1() -> Policy {
    Policy::deny_all().rule(Rule::allow().intent_name(ReserveSlot::NAME).lane(Lane::Ask))
}

/// 15 deny rules naming other agents, the allow rule of [`rules_1`], and
/// per-peer limits that are never reached.
fn rules_16_limits() -> Policy {
    let mut policy = Policy::deny_all();
    for n in 0..15u64 {
        let mut seed = [0x11; 32];
        seed[..8].copy_from_slice(&n.to_le_bytes());
        policy = policy.rule(Rule::deny().agent(Identity::from_secret_bytes(&seed).agent_id()));
    }
    policy.rule(Rule::allow().intent_name(ReserveSlot::NAME).lane(Lane::Ask)).limits(Limits {
        rate: Some(Rate { per_second: u32::MAX, burst: u32::MAX }),
        quota: Some(Quota { count: u32::MAX, window: Duration::from_secs(3600) }),
        max_in_flight: Some(1024),
    })
}

/// A server agent answering `ReserveSlot`, with `policy`, trusting `org`.
async fn server(name: &str, policy: Policy, org: &OrgSigner) -> Agent {
    Agent::builder()
        .card(AgentCard::new(name))
        .limits(limits())
        .trust(org.org_key())
        .policy(policy)
        .on_ask(|_cx: tacit::Context, slot: ReserveSlot| async move {
            Ok(Ack { ok: slot.blob.len() == reference::BLOB.len() })
        })
        .bind(localhost())
        .await
        .expect("a server agent")
}

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// The agents and the long-lived peers every case uses, set up once.
struct Net {
    /// No policy (`ask/no_policy`, `connect/plain`, `connect/credential`).
    open: Agent,
    rules_1: Agent,
    rules_16: Agent,
    /// Its policy names the organisation (`ask/org_rule`, `connect/credential_org_policy`).
    org: Agent,
    /// One ask a second per peer (`ask/rate_limited`).
    limited: Agent,
    /// A client with no credential.
    plain: Agent,
    /// A client presenting one credential of the organisation.
    member: Agent,
    /// `plain` → `open`, `rules_1`, `rules_16`; `member` → `org`; `plain` → `limited`.
    peers: [Peer; 5],
    /// The request every ask clones.
    template: ReserveSlot,
}

impl Net {
    async fn new() -> Self {
        let org = OrgSigner::from_secret_bytes(&[0x0c; 32]);
        let org_policy =
            Policy::deny_all().rule(Rule::allow().org(org.org_key().to_string()).role(ROLE).intent(ReserveSlot::ID));
        let open = server("bench-open", Policy::allow_all(), &org).await;
        let rules_1 = server("bench-rules-1", rules_1(), &org).await;
        let rules_16 = server("bench-rules-16", rules_16_limits(), &org).await;
        let org_server = server("bench-org", org_policy, &org).await;
        let one_a_second = Limits { rate: Some(Rate { per_second: 1, burst: 1 }), ..Limits::default() };
        let limited = server("bench-limited", Policy::allow_all().limits(one_a_second), &org).await;
        let client = |name: &str| Agent::builder().card(AgentCard::new(name)).limits(limits()).emits::<ReserveSlot>();
        let plain = client("bench-plain").bind(localhost()).await.expect("a client agent");
        let identity = Identity::generate().expect("an identity");
        let now = SystemTime::now();
        let credential = org.issue(
            &Credential::new(identity.agent_id(), now - Duration::from_secs(60), now + Duration::from_secs(86_400))
                .role(ROLE),
        );
        let member = client("bench-member")
            .identity(identity)
            .credential(credential)
            .bind(localhost())
            .await
            .expect("a client agent");
        let peers = [
            connect(&plain, &open).await,
            connect(&plain, &rules_1).await,
            connect(&plain, &rules_16).await,
            connect(&member, &org_server).await,
            connect(&plain, &limited).await,
        ];
        let net = Self {
            open,
            rules_1,
            rules_16,
            org: org_server,
            limited,
            plain,
            member,
            peers,
            template: reference::reserve_slot_intent(),
        };
        // Every case works before anything is timed.
        for case in Case::ALL {
            net.once(case).await;
        }
        net
    }

    /// One operation of `case`; returns the time it took (for a connect,
    /// without closing the peer afterwards).
    async fn once(&self, case: Case) -> Duration {
        let peer = match case {
            Case::AskNoPolicy => &self.peers[0],
            Case::AskRules1 => &self.peers[1],
            Case::AskRules16Limits => &self.peers[2],
            Case::AskOrgRule => &self.peers[3],
            Case::AskRateLimited => {
                let start = Instant::now();
                let answer = self.peers[4].ask(self.template.clone()).await;
                let elapsed = start.elapsed();
                match answer {
                    Ok(ack) => assert!(ack.ok),
                    Err(e) => assert_eq!(e.code(), tacit::ErrorCode::RateLimited, "{e}"),
                }
                return elapsed;
            }
            Case::ConnectPlain => return self.connect_ready(&self.plain, &self.open).await,
            Case::ConnectCredential => return self.connect_ready(&self.member, &self.open).await,
            Case::ConnectCredentialOrgPolicy => return self.connect_ready(&self.member, &self.org).await,
        };
        let start = Instant::now();
        let ack: Ack = peer.ask(self.template.clone()).await.expect("the ask is answered");
        let elapsed = start.elapsed();
        assert!(ack.ok);
        elapsed
    }

    /// `agent.connect` and `peer.ready()`, timed; then closes the peer and
    /// waits until `server` has seen its session end (untimed).
    async fn connect_ready(&self, client: &Agent, server: &Agent) -> Duration {
        let open = tacit_benches::open_sessions(server);
        let start = Instant::now();
        let peer = client.connect(server.local_addr().expect("a bound address"), server.id()).await;
        let peer = peer.expect("the peer connects");
        let negotiated = peer.ready().await.expect("the capability handshake succeeds");
        let elapsed = start.elapsed();
        assert!(negotiated.send_alias(&ReserveSlot::ID).is_some(), "the server offers ReserveSlot to this client");
        peer.close();
        drop(peer);
        tacit_benches::sessions_ended(server, open).await;
        elapsed
    }

    async fn shutdown(self) {
        let Self { open, rules_1, rules_16, org, limited, plain, member, peers, .. } = self;
        drop(peers);
        let mut busy = 0;
        for agent in [plain, member, open, rules_1, rules_16, org, limited] {
            busy += agent.shutdown(Duration::from_secs(1)).await;
        }
        assert_eq!(busy, 0, "nothing is left unanswered");
    }
}

/// Dials `server` from `client` and waits for the capability handshake.
async fn connect(client: &Agent, server: &Agent) -> Peer {
    let peer = client.connect(server.local_addr().expect("a bound address"), server.id()).await;
    let peer = peer.expect("the peer connects");
    peer.ready().await.expect("the capability handshake succeeds");
    peer
}

/// Runs `future` on the runtime, failing if it takes longer than [`LIMIT`].
fn run<F: Future>(rt: &Runtime, future: F) -> F::Output {
    rt.block_on(async { tokio::time::timeout(LIMIT, future).await.expect("finished within the time limit") })
}

/// Latency percentiles of a set of samples, in microseconds.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: f64,
    p99: f64,
    mean: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        // Nearest rank.
        let at = |p: f64| micros(samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]);
        let mean = samples.iter().copied().map(micros).sum::<f64>() / samples.len() as f64;
        Self { p50: at(0.50), p99: at(0.99), mean }
    }
}

/// Prints latency and allocations per operation of each group of cases,
/// measured in alternating rounds, with the ratio to the group's first case.
fn print_table(rt: &Runtime, net: &Net, quick: bool) {
    let (asks, connects, rounds, warm_up) =
        if quick { (200, 10, 2, Duration::from_millis(10)) } else { (20_000, 500, 10, Duration::from_millis(500)) };
    println!(
        "trust: agent asks and connects over loopback, one current-thread runtime{} ({asks} asks, {connects} \
         connects per case, in {rounds} alternating rounds, each case after {} ms warm-up)",
        if quick { " (quick counts)" } else { "" },
        warm_up.as_millis()
    );
    println!(
        "  {:<36} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8} {:>10}",
        "benchmark", "p50 µs", "p99 µs", "mean µs", "allocs/op", "p50 x", "mean x", "mean +µs"
    );
    for (cases, count) in [(&Case::ASKS[..], asks), (&Case::CONNECTS[..], connects)] {
        for &case in cases {
            let end = Instant::now() + warm_up;
            run(rt, async {
                while Instant::now() < end {
                    net.once(case).await;
                }
            });
        }
        let mut samples: Vec<Vec<Duration>> = cases.iter().map(|_| Vec::with_capacity(count)).collect();
        for round in 0..rounds {
            let n = count / rounds + usize::from(round < count % rounds);
            for (&case, samples) in cases.iter().zip(&mut samples) {
                run(rt, async {
                    for _ in 0..n {
                        samples.push(net.once(case).await);
                    }
                });
            }
        }
        let mut first: Option<Latency> = None;
        for (&case, samples) in cases.iter().zip(samples) {
            let latency = Latency::of(samples);
            let ops = if case.is_connect() { 20 } else { 1_000 };
            let allocs = alloc_count::measure(1, ops, || run(rt, net.once(case)));
            let (p50, mean, plus) = match first {
                Some(base) => (
                    format!("{:.3}", latency.p50 / base.p50),
                    format!("{:.3}", latency.mean / base.mean),
                    format!("{:+.1}", latency.mean - base.mean),
                ),
                None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
            };
            println!(
                "  trust/{:<30} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {p50:>8} {mean:>8} {plus:>10}",
                case.name(),
                latency.p50,
                latency.p99,
                latency.mean,
                allocs.allocations,
            );
            first.get_or_insert(latency);
        }
    }
    let overhead = alloc_count::measure(1, 100, || run(rt, async {}));
    println!("(allocations: both ends; an empty `run` allocates {} times)", overhead.allocations);
    println!();
}

fn bench_trust(c: &mut Criterion, rt: &Runtime, net: &Net) {
    let mut group = c.benchmark_group("trust");
    for case in Case::ALL {
        // Connects take a millisecond or more: fewer samples keep the run short.
        group.sample_size(if case.is_connect() { 20 } else { 100 });
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
    // `TACIT_BENCH_REPEAT=CASE:N` (e.g. `ask/rules_1:200`) runs one case N
    // times and exits, for instruction counts under callgrind (see
    // benches/instructions.sh).
    if let Ok(spec) = std::env::var("TACIT_BENCH_REPEAT") {
        let (name, count) = spec.rsplit_once(':').expect("TACIT_BENCH_REPEAT=CASE:N");
        let count: u64 = count.parse().expect("N is a number");
        let case = Case::ALL.into_iter().find(|case| case.name() == name);
        let case = case.unwrap_or_else(|| panic!("unknown case {name}"));
        for _ in 0..count {
            run(&rt, net.once(case));
        }
        run(&rt, net.shutdown());
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|arg| arg == name);
    // `--list` output is for tools; keep it to the benchmark names.
    if !flag("--list") {
        let test_mode = !flag("--bench") || flag("--test");
        let quick = test_mode || std::env::var("TACIT_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        print_table(&rt, &net, quick);
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_trust(&mut criterion, &rt, &net);
    run(&rt, net.shutdown());
    criterion.final_summary();
}
