//! The receiver-side policy check per ask (`tacit::Policy::admit`, what the
//! agent's ask dispatch calls): rules only, and rules with per-peer limits
//! (rate, quota, in-flight slot). Before criterion runs, prints the
//! allocations per check (expected 0 on the allow path once the peer is
//! known).
//!
//! Run with `taskset -c 0 cargo bench -p tacit-benches --bench policy`.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use tacit::policy::{Limits, Quota, Rate, Rule, Subject};
use tacit::{Identity, IntentId, Lane, Policy};
use tacit_benches::alloc_count::{self, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A policy of `rules` deny rules for other peers, then an allow rule for
/// the intent, with or without limits.
fn policy(rules: usize, limits: bool) -> Policy {
    let mut policy = Policy::deny_all();
    for n in 0..rules {
        let mut seed = [0x11; 32];
        seed[..8].copy_from_slice(&(n as u64).to_le_bytes());
        policy = policy.rule(Rule::deny().agent(Identity::from_secret_bytes(&seed).agent_id()));
    }
    policy = policy.rule(Rule::allow().intent_name("tacit.intents.v1.Ping").lane(Lane::Ask));
    if limits {
        policy = policy.limits(Limits {
            rate: Some(Rate { per_second: u32::MAX, burst: u32::MAX }),
            quota: Some(Quota { count: u32::MAX, window: Duration::from_secs(3600) }),
            max_in_flight: Some(1024),
        });
    }
    policy
}

fn main() {
    let subject = Subject::agent(Identity::from_secret_bytes(&[0x42; 32]).agent_id());
    let intent = IntentId::from_bytes([0x5a; 32]);
    let cases = [("rules/1", policy(0, false)), ("rules/16", policy(15, false)), ("rules/16+limits", policy(15, true))];
    let check = |policy: &Policy| policy.admit(black_box(&subject), intent, Some("tacit.intents.v1.Ping"), Lane::Ask);
    if !std::env::args().any(|arg| arg == "--list") {
        println!("allocations per policy check (1000 iterations after 10 warm-up):");
        for (name, policy) in &cases {
            let per_op = alloc_count::measure(10, 1000, || check(policy).is_ok());
            println!("  policy/admit/{name:<20} {:>8.2} allocs/op {:>8.1} bytes/op", per_op.allocations, per_op.bytes);
        }
        println!();
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = criterion.benchmark_group("policy/admit");
    for (name, policy) in &cases {
        group.bench_function(*name, |b| b.iter(|| check(policy).is_ok()));
    }
    group.finish();
    criterion.final_summary();
}
