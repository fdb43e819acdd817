//! Round trips as users run them (issue 12, finding 9): tokio's default
//! multi-thread runtime (`#[tokio::main]`: worker threads = cores), not
//! pinned, the ask loop on the thread that called `block_on`, as in
//! `async fn main`. A child process (this binary with `--unpinned FLAVOR
//! ROUND_TRIPS ROUNDS WARM_UP_MS`) widens its CPU affinity to every CPU
//! (the parent may be under `taskset`), then runs the servers on one runtime
//! and the clients on another, as a server process and a client process
//! would each have their own. It reports per case the latency and the
//! thread wake-ups per round trip:
//!
//! - **sleeps**: voluntary context switches per round trip (a thread blocked
//!   and had to be woken) of the asking thread, of the client runtime's
//!   threads and of the server runtime's threads (read from
//!   `/proc/self/task/*/status`, the threads told apart by name);
//! - **parks**: tokio worker parks per round trip, client and server runtime
//!   (`RuntimeMetrics::worker_park_count`).
//!
//! Flavours, for the wake-up analysis: `multi` (the case above, the one the
//! table headlines), `multi-spawned` (the same runtimes, the ask loop in a
//! spawned task: the asking thread is a worker) and `current` (two
//! current-thread runtimes: the client on the asking thread, the server on a
//! thread of its own; two threads in all).
//!
//! The runtimes are what `#[tokio::main]` builds except that their threads
//! are named (`client-worker`, `server-worker`) so they can be told apart.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tacit::Peer;
use tacit_benches::intents::ReserveSlot;
use tacit_benches::pb::FlatRequest;
use tacit_benches::raw_quic::Pipe;
use tacit_benches::reference;
use tacit_quic::Session;
use tokio::runtime::{Builder, Runtime};

use crate::grpc::{GrpcClient, GrpcServer};
use crate::jsonrpc::{self, JsonClient, JsonServer, ReserveParams, RpcRequest};
use crate::latency::Latency;
use crate::quic_net::{self, RawServer, SessionServer, TacitAgents, agent_ask, session_ask};
use crate::tcp_io::Security;
use crate::{Case, Counts};

/// The cases measured unpinned: the QUIC ones against their TCP rivals.
pub(crate) const CASES: [Case; 7] = [
    Case::TacitAgent,
    Case::TacitSession,
    Case::QuinnLongLived,
    Case::GrpcTls,
    Case::GrpcPlain,
    Case::JsonTls,
    Case::JsonPlain,
];

/// Bound on one child process.
const CHILD_LIMIT: Duration = Duration::from_secs(600);

/// How the child runs its clients and servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Default multi-thread runtimes, asks from the `block_on` thread.
    Multi,
    /// Default multi-thread runtimes, asks from a spawned task.
    MultiSpawned,
    /// Two current-thread runtimes, the server's on its own thread.
    Current,
}

impl Flavor {
    pub(crate) const ALL: [Self; 3] = [Self::Multi, Self::MultiSpawned, Self::Current];

    pub(crate) fn arg(self) -> &'static str {
        match self {
            Self::Multi => "multi",
            Self::MultiSpawned => "multi-spawned",
            Self::Current => "current",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Multi => "multi-thread, asks from `block_on` (as `#[tokio::main]`)",
            Self::MultiSpawned => "multi-thread, asks from a spawned task",
            Self::Current => "two current-thread runtimes (2 threads)",
        }
    }
}

/// What one case measured in the child.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Figures {
    pub(crate) latency: Latency,
    /// Voluntary context switches per round trip: the asking thread, the
    /// client runtime's other threads, the server runtime's threads.
    pub(crate) sleeps: [f64; 3],
    /// Worker parks per round trip: client runtime, server runtime.
    pub(crate) parks: [f64; 2],
}

impl Figures {
    /// Thread sleeps (so wake-ups) per round trip, all threads.
    pub(crate) fn wake_ups(&self) -> f64 {
        self.sleeps.iter().sum()
    }
}

/// What one child measured: its CPUs and the figures per case.
#[derive(Debug, Clone, Default)]
pub(crate) struct Run {
    pub(crate) cpus: String,
    pub(crate) workers: usize,
    pub(crate) cases: Vec<(Case, Figures)>,
}

/// Runs the child for `flavor` and parses its report; `None` if it failed.
pub(crate) fn measure(flavor: Flavor, counts: Counts) -> Option<Run> {
    let exe = std::env::current_exe().ok()?;
    let output = Command::new(exe)
        .arg("--unpinned")
        .arg(flavor.arg())
        .arg(counts.round_trips.to_string())
        .arg(counts.rounds.to_string())
        .arg(counts.warm_up.as_millis().to_string())
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!("unpinned child ({}) failed: {}", flavor.arg(), String::from_utf8_lossy(&output.stderr));
        return None;
    }
    let mut run = Run::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["cpus", cpus, workers] => {
                run.cpus = (*cpus).to_owned();
                run.workers = workers.parse().ok()?;
            }
            ["case", key, numbers @ ..] if numbers.len() == 7 => {
                let case = CASES.into_iter().find(|c| c.key() == *key)?;
                let n: Vec<f64> = numbers.iter().map(|w| w.parse()).collect::<Result<_, _>>().ok()?;
                let figures = Figures {
                    latency: Latency { p50: n[0], p99: n[1] },
                    sleeps: [n[2], n[3], n[4]],
                    parks: [n[5], n[6]],
                };
                run.cases.push((case, figures));
            }
            _ => {}
        }
    }
    (run.cases.len() == CASES.len()).then_some(run)
}

/// Every CPU this machine has may run this thread and those it starts.
fn unpin() {
    use rustix::thread::{CpuSet, sched_setaffinity};
    let mut all = CpuSet::new();
    for cpu in 0..CpuSet::MAX_CPU {
        all.set(cpu);
    }
    if let Err(e) = sched_setaffinity(None, &all) {
        eprintln!("unpinned child: could not widen the CPU affinity: {e}");
    }
}

fn allowed_cpus() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map_or("?", str::trim).to_owned()
}

/// The clients of every case, moved into the task that asks and back.
struct Clients {
    peer: Peer,
    template: ReserveSlot,
    session: Session,
    payload: Bytes,
    pipe: Pipe,
    request: Bytes,
    grpc_tls: GrpcClient,
    grpc_plain: GrpcClient,
    flat: FlatRequest,
    json_tls: JsonClient,
    json_plain: JsonClient,
    json: RpcRequest<ReserveParams>,
}

impl Clients {
    async fn round_trip(&mut self, case: Case) {
        match case {
            Case::TacitAgent => agent_ask(&self.peer, &self.template).await,
            Case::TacitSession => session_ask(&self.session, &self.payload).await,
            Case::QuinnLongLived => self.pipe.round_trip(&self.request).await,
            Case::GrpcTls => self.grpc_tls.reserve(self.flat.clone()).await,
            Case::GrpcPlain => self.grpc_plain.reserve(self.flat.clone()).await,
            Case::JsonTls => self.json_tls.call(&self.json).await,
            Case::JsonPlain => self.json_plain.call(&self.json).await,
            _ => unreachable!("not an unpinned case"),
        }
    }
}

/// `n` round trips of `case` (or as many as fit in `warm_up`, if given),
/// each timed.
async fn round(mut clients: Clients, case: Case, n: usize, warm_up: Option<Duration>) -> (Clients, Vec<Duration>) {
    let mut samples = Vec::with_capacity(n);
    let end = warm_up.map(|w| Instant::now() + w);
    loop {
        let start = Instant::now();
        clients.round_trip(case).await;
        samples.push(start.elapsed());
        match end {
            Some(end) if Instant::now() >= end => break,
            None if samples.len() >= n => break,
            _ => {}
        }
    }
    (clients, samples)
}

/// Per-thread voluntary context switches, summed by group: the asking
/// (main) thread, the client runtime's threads, the server runtime's.
fn sleeps() -> [u64; 3] {
    let mut out = [0; 3];
    let pid = std::process::id().to_string();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let group = if task.file_name().to_str() == Some(pid.as_str()) {
            0
        } else if name.starts_with("client-") {
            1
        } else if name.starts_with("server-") {
            2
        } else {
            continue;
        };
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let voluntary = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        out[group] += voluntary;
    }
    out
}

fn parks(rt: &Runtime) -> u64 {
    let metrics = rt.metrics();
    (0..metrics.num_workers()).map(|w| metrics.worker_park_count(w)).sum()
}

fn runtime(flavor: Flavor, name: &str) -> Runtime {
    let mut builder = match flavor {
        Flavor::Multi | Flavor::MultiSpawned => Builder::new_multi_thread(),
        Flavor::Current => Builder::new_current_thread(),
    };
    builder.enable_all().thread_name(name).build().expect("a tokio runtime")
}

/// The child: `args` are FLAVOR ROUND_TRIPS ROUNDS WARM_UP_MS `[CASE]`.
pub(crate) fn child(args: &[String]) {
    let flavor = Flavor::ALL.into_iter().find(|f| args.first().is_some_and(|a| a == f.arg())).expect("a flavour");
    let number = |i: usize| -> u64 { args.get(i).and_then(|a| a.parse().ok()).expect("a count") };
    let (round_trips, rounds, warm_up) = (number(1) as usize, number(2) as usize, Duration::from_millis(number(3)));
    let cases: Vec<Case> = match args.get(4) {
        Some(key) => vec![CASES.into_iter().find(|c| c.key() == key).expect("a case key")],
        None => CASES.to_vec(),
    };
    unpin();
    // Watchdog: a stuck child must not hang the harness.
    std::thread::spawn(|| {
        std::thread::sleep(CHILD_LIMIT);
        eprintln!("unpinned child: not done in {CHILD_LIMIT:?}");
        std::process::exit(3);
    });
    let server_rt = Arc::new(runtime(flavor, "server-worker"));
    let client_rt = runtime(flavor, "client-worker");

    // The servers, on their runtime.
    let (raw, sessions, agent, grpc_tls, grpc_plain, json_tls, json_plain) = server_rt.block_on(async {
        (
            RawServer::start(),
            SessionServer::start(false).await,
            TacitAgents::server(false).await,
            GrpcServer::start(Security::Tls).await,
            GrpcServer::start(Security::Plain).await,
            JsonServer::start(Security::Tls).await,
            JsonServer::start(Security::Plain).await,
        )
    });
    if flavor == Flavor::Current {
        // A current-thread runtime runs its tasks only while a thread is in
        // its `block_on`: give the server's a thread of its own.
        let server_rt = server_rt.clone();
        std::thread::Builder::new()
            .name("server-worker".to_owned())
            .spawn(move || server_rt.block_on(std::future::pending::<()>()))
            .expect("a server thread");
    }

    // The clients, on theirs.
    let (mut clients, _keep) = client_rt.block_on(async {
        let raw = raw.with_client();
        let long_lived = raw.connect(true).await;
        let pipe = Pipe::open(&long_lived).await;
        let sessions = sessions.with_client().await;
        let session = sessions.connect().await;
        session.ready().await.expect("the capability handshake succeeds");
        let agents = TacitAgents::with_client(agent, false).await;
        let peer = agents.connect().await;
        peer.ready().await.expect("the capability handshake succeeds");
        let clients = Clients {
            peer,
            template: quic_net::reserve_slot(),
            session,
            payload: quic_net::payload(),
            pipe,
            request: reference::framed_envelope().freeze(),
            grpc_tls: grpc_tls.connect().await,
            grpc_plain: grpc_plain.connect().await,
            flat: reference::flat_request(),
            json_tls: json_tls.connect().await,
            json_plain: json_plain.connect().await,
            json: jsonrpc::reference_request(),
        };
        (clients, (raw, long_lived, sessions, agents, grpc_tls, grpc_plain, json_tls, json_plain))
    });

    let go = |clients: Clients, case: Case, n: usize, warm_up: Option<Duration>| match flavor {
        Flavor::Multi | Flavor::Current => client_rt.block_on(round(clients, case, n, warm_up)),
        Flavor::MultiSpawned => {
            client_rt.block_on(async { tokio::spawn(round(clients, case, n, warm_up)).await.expect("the asks end") })
        }
    };
    for &case in &cases {
        (clients, _) = go(clients, case, 1, Some(warm_up));
    }
    let mut samples: Vec<Vec<Duration>> = cases.iter().map(|_| Vec::with_capacity(round_trips)).collect();
    let mut counted = vec![([0u64; 3], [0u64; 2]); cases.len()];
    for r in 0..rounds {
        let n = round_trips / rounds + usize::from(r < round_trips % rounds);
        for (i, &case) in cases.iter().enumerate() {
            let (sleeps_before, parks_before) = (sleeps(), [parks(&client_rt), parks(&server_rt)]);
            let taken;
            (clients, taken) = go(clients, case, n, None);
            let (sleeps_after, parks_after) = (sleeps(), [parks(&client_rt), parks(&server_rt)]);
            samples[i].extend(taken);
            for g in 0..3 {
                counted[i].0[g] += sleeps_after[g].saturating_sub(sleeps_before[g]);
            }
            for g in 0..2 {
                counted[i].1[g] += parks_after[g].saturating_sub(parks_before[g]);
            }
        }
    }
    println!("cpus {} {}", allowed_cpus(), client_rt.metrics().num_workers());
    for ((case, samples), (sleeps, parks)) in cases.iter().zip(samples).zip(counted) {
        let n = samples.len().max(1) as f64;
        let latency = Latency::of(samples);
        let per = |v: u64| v as f64 / n;
        println!(
            "case {} {:.2} {:.2} {:.3} {:.3} {:.3} {:.3} {:.3}",
            case.key(),
            latency.p50,
            latency.p99,
            per(sleeps[0]),
            per(sleeps[1]),
            per(sleeps[2]),
            per(parks[0]),
            per(parks[1])
        );
    }
    // The runtimes' threads and the connections end with the process.
    std::process::exit(0);
}
