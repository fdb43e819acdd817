//! Agents over fault-injecting sockets (`tacit_testkit::fault`): a black hole
//! longer than the idle timeout, and a Jepsen-style history check of asks
//! made while a nemesis injects faults and restarts the server.
//!
//! `TACIT_FAULT_SEEDS=n` runs `n` seeds, `TACIT_FAULT_SEED=s` replays one (a
//! failure prints its seed), `TACIT_FAULT_LONG=1` runs the history longer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tacit::intents::{DelegateTask, TaskState, TaskStatus};
use tacit::{Agent, AskOptions, Context, Error, ErrorCode, Identity, Peer, ReconnectPolicy, TransportLimits};
use tacit_testkit::fault::{FaultHandle, Faults, FaultySocket, Rng, for_each_seed};
use tacit_testkit::{LOCALHOST, within_for};

fn long() -> bool {
    std::env::var_os("TACIT_FAULT_LONG").is_some()
}

/// Short timeouts: a connection is declared lost after 1.5 s of silence.
fn limits() -> TransportLimits {
    let mut limits = TransportLimits::default();
    limits
        .handshake_timeout(Duration::from_secs(1))
        .idle_timeout(Duration::from_millis(1500))
        .keep_alive(Some(Duration::from_millis(300)));
    limits
}

fn reconnect() -> ReconnectPolicy {
    ReconnectPolicy::default()
        .delays(Duration::from_millis(50), Duration::from_millis(300))
        .max_attempts(30)
        .max_retries(5)
}

/// One execution of a task by the server.
#[derive(Debug, Clone)]
struct Execution {
    task: String,
    incarnation: u32,
    at: Instant,
}

/// What the server executed, over all its incarnations (it survives restarts).
#[derive(Debug, Default)]
struct Log {
    executions: Mutex<Vec<Execution>>,
    incarnation: AtomicU32,
}

impl Log {
    fn count(&self, task: &str) -> usize {
        self.executions.lock().unwrap().iter().filter(|e| e.task == task).count()
    }
}

/// A server agent over a faulty socket: runs DelegateTask, whose
/// `description` is how many milliseconds the work takes.
async fn server(socket: Arc<FaultySocket>, log: Arc<Log>) -> Agent {
    Agent::builder()
        .identity(Identity::from_secret_bytes(&[1; 32]))
        .limits(limits())
        .socket(socket)
        .on_ask(move |_: Context, task: DelegateTask| {
            let log = log.clone();
            async move {
                let incarnation = log.incarnation.load(Ordering::SeqCst);
                log.executions.lock().unwrap().push(Execution {
                    task: task.task_id.clone(),
                    incarnation,
                    at: Instant::now(),
                });
                let millis = task.description.parse().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(millis)).await;
                Ok(TaskStatus { task_id: task.task_id, state: TaskState::Completed as i32, ..Default::default() })
            }
        })
        // The address is the socket's.
        .bind(LOCALHOST)
        .await
        .unwrap()
}

async fn client(faults: &FaultHandle) -> Agent {
    Agent::builder()
        .limits(limits())
        .reconnect(reconnect())
        .emits::<DelegateTask>()
        .socket(FaultySocket::bind(LOCALHOST, faults).unwrap())
        .bind(LOCALHOST)
        .await
        .unwrap()
}

fn task(id: &str, millis: u64) -> DelegateTask {
    DelegateTask { task_id: id.into(), description: millis.to_string(), ..Default::default() }
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    within_for(Duration::from_secs(10), what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_longer_than_the_idle_timeout() {
    for_each_seed("black_hole_longer_than_the_idle_timeout", 2, |seed| async move {
        let faults = FaultHandle::new(seed);
        let log = Arc::new(Log::default());
        let server = server(FaultySocket::bind(LOCALHOST, &faults).unwrap(), log.clone()).await;
        let client = client(&faults).await;
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        peer.ready().await.unwrap();
        faults.set(Faults::none().loss(0.01, 2));
        let ask = |peer: Peer, id: &'static str, idempotent: bool| {
            tokio::spawn(async move {
                let options = if idempotent { AskOptions::default().idempotent() } else { AskOptions::default() };
                peer.ask_with(task(id, 300), options).await
            })
        };
        let plain = ask(peer.clone(), "plain", false);
        let retried = ask(peer.clone(), "retried", true);
        wait_for("both asks to run", || log.count("plain") == 1 && log.count("retried") == 1).await;
        // The answers (due in 300 ms) fall into a black hole that outlasts
        // the idle timeout (1.5 s): both connections die.
        faults.black_hole_for(Duration::from_secs(3));
        let plain = within_for(Duration::from_secs(20), "the plain ask", plain).await.unwrap();
        assert!(matches!(plain, Err(Error::Unknown { .. })), "a lost answer is an unknown outcome: {plain:?}");
        let retried = within_for(Duration::from_secs(30), "the idempotent ask", retried).await.unwrap();
        let reply = retried.expect("an idempotent ask is re-sent after the reconnect and answered");
        assert_eq!(reply.message.task_id, "retried");
        // The retry window answered the re-sent ask: it ran exactly once.
        assert_eq!((log.count("plain"), log.count("retried")), (1, 1));
        let metrics = client.metrics();
        assert!(metrics.reconnects >= 1 && metrics.retries >= 1, "{metrics:?}");
        // And the peer keeps working.
        let reply = within_for(Duration::from_secs(10), "an ask after", peer.ask(task("after", 0))).await.unwrap();
        assert_eq!(reply.task_id, "after");
    })
    .await;
}

/// Regression (found by reading the retry path while writing the history
/// checker): an idempotent ask that was sent, lost its connection and then
/// could not reconnect ended as `Error::Connect` — "could not connect", as
/// if it had never been sent — although it had run. It is an unknown outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_ask_whose_reconnect_fails_is_unknown() {
    for_each_seed("idempotent_ask_whose_reconnect_fails_is_unknown", 1, |seed| async move {
        let (server_faults, client_faults) = (FaultHandle::new(seed), FaultHandle::new(!seed));
        let log = Arc::new(Log::default());
        let server = server(FaultySocket::bind(LOCALHOST, &server_faults).unwrap(), log.clone()).await;
        let client = Agent::builder()
            .limits(limits())
            .reconnect(reconnect().max_attempts(2))
            .emits::<DelegateTask>()
            .socket(FaultySocket::bind(LOCALHOST, &client_faults).unwrap())
            .bind(LOCALHOST)
            .await
            .unwrap();
        let peer = client.connect(server.local_addr().unwrap(), server.id()).await.unwrap();
        let asked = tokio::spawn({
            let peer = peer.clone();
            async move { peer.ask_with(task("sent", 300), AskOptions::default().idempotent()).await }
        });
        wait_for("the ask to run", || log.count("sent") == 1).await;
        // The server goes silent for good: the connection dies, the
        // reconnects time out.
        server_faults.black_hole(true);
        let outcome = within_for(Duration::from_secs(20), "the ask's outcome", asked).await.unwrap();
        assert!(matches!(outcome, Err(Error::Unknown { .. })), "it ran, so its outcome is unknown: {outcome:?}");
    })
    .await;
}

/// How one ask ended, at its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The reply came (and named the task).
    Ok,
    /// It certainly did not run (refused before running, or never sent).
    Fail,
    /// It may or may not have run.
    Unknown,
}

#[derive(Debug, Clone)]
struct Op {
    task: String,
    idempotent: bool,
    invoked: Instant,
    completed: Instant,
    outcome: Outcome,
    error: Option<String>,
}

/// A nemesis event that can kill connections, over `[from, to]`.
#[derive(Debug, Clone)]
struct Kill {
    what: &'static str,
    from: Instant,
    to: Instant,
}

fn classify(result: &tacit::Result<tacit::Reply<TaskStatus>>, task: &str) -> (Outcome, Option<String>) {
    match result {
        Ok(reply) => {
            assert_eq!(reply.message.task_id, task, "a reply to another ask");
            (Outcome::Ok, None)
        }
        // Refused before the handler: it did not run.
        Err(error @ Error::Rejected { .. }) if matches!(error.code(), ErrorCode::Shutdown | ErrorCode::TooManyAsks) => {
            (Outcome::Fail, Some(format!("{result:?}")))
        }
        // No session could be made: the ask was never sent.
        Err(Error::Connect { .. } | Error::Session(_) | Error::Closed { .. }) => {
            (Outcome::Fail, Some(format!("{result:?}")))
        }
        Err(other) => (Outcome::Unknown, Some(other.to_string())),
    }
}

/// Restarts the server on the same port with the same identity.
async fn restart(addr: SocketAddr, log: &Arc<Log>, faults: &FaultHandle) -> Agent {
    log.incarnation.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    let socket = loop {
        match FaultySocket::bind(addr, faults) {
            Ok(socket) => break socket,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    };
    server(socket, log.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_under_a_nemesis() {
    for_each_seed("history_under_a_nemesis", 1, |seed| async move {
        let run_for = if long() { Duration::from_secs(60) } else { Duration::from_secs(12) };
        let log = Arc::new(Log::default());
        let server_faults = FaultHandle::new(seed);
        let first = server(FaultySocket::bind(LOCALHOST, &server_faults).unwrap(), log.clone()).await;
        let addr = first.local_addr().unwrap();
        let server_id = first.id();
        let server_slot = Arc::new(tokio::sync::Mutex::new(Some(first)));
        let crashed: Arc<Mutex<HashSet<u32>>> = Arc::default();

        // Clients: each its own faulty socket, several workers asking in turn.
        let client_faults: Vec<FaultHandle> = (0..3).map(|i| FaultHandle::new(seed ^ (i + 1))).collect();
        let mut clients = Vec::new();
        for faults in &client_faults {
            let agent = client(faults).await;
            let peer = agent.connect(addr, server_id).await.unwrap();
            clients.push((agent, peer));
        }
        let history: Arc<Mutex<Vec<Op>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = tokio::task::JoinSet::new();
        for (c, (_, peer)) in clients.iter().enumerate() {
            for w in 0..6 {
                let (peer, history, stop) = (peer.clone(), history.clone(), stop.clone());
                let mut rng = Rng::new(seed ^ ((c as u64) << 32 | w));
                workers.spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let id = format!("c{c}-w{w}-{n}");
                        n += 1;
                        let idempotent = rng.chance(0.5);
                        let mut options = AskOptions::default().deadline(Duration::from_secs(8));
                        if idempotent {
                            options = options.idempotent();
                        }
                        let invoked = Instant::now();
                        let result = peer.ask_with(task(&id, rng.below(40)), options).await;
                        let (outcome, error) = classify(&result, &id);
                        history.lock().unwrap().push(Op {
                            task: id,
                            idempotent,
                            invoked,
                            completed: Instant::now(),
                            outcome,
                            error,
                        });
                        if outcome != Outcome::Ok {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                });
            }
        }

        // The nemesis.
        let mut rng = Rng::new(seed.rotate_left(17));
        let mut kills = Vec::new();
        let mut events = BTreeMap::<&'static str, u32>::new();
        let started = Instant::now();
        let idle = Duration::from_millis(1500);
        let all_faults: Vec<FaultHandle> = client_faults.iter().cloned().chain([server_faults.clone()]).collect();
        while started.elapsed() < run_for {
            tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
            let action = rng.below(10);
            let name = match action {
                0..=3 => {
                    let faults = Faults::none()
                        .loss(rng.unit() * 0.1, 1 + rng.below(3) as u32)
                        .duplicate(rng.unit() * 0.3)
                        .reorder(rng.unit() * 0.2, Duration::from_millis(5))
                        .corrupt(rng.unit() * 0.05)
                        .truncate(rng.unit() * 0.02)
                        .delay(Duration::from_millis(rng.below(30)), Duration::from_millis(rng.below(10)));
                    for handle in &all_faults {
                        handle.set(faults.clone());
                    }
                    tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
                    for handle in &all_faults {
                        handle.set(Faults::none());
                    }
                    "mild faults"
                }
                4..=5 => {
                    // Shorter than the idle timeout: connections survive.
                    let length = Duration::from_millis(100 + rng.below(500));
                    server_faults.black_hole_for(length);
                    tokio::time::sleep(length).await;
                    "short black hole"
                }
                6 => {
                    let from = Instant::now();
                    let length = idle + Duration::from_millis(500 + rng.below(1000));
                    server_faults.black_hole_for(length);
                    tokio::time::sleep(length).await;
                    kills.push(Kill { what: "long black hole", from, to: Instant::now() + idle });
                    "long black hole"
                }
                7..=8 => {
                    let from = Instant::now();
                    let old = server_slot.lock().await.take().unwrap();
                    within_for(Duration::from_secs(10), "a graceful shutdown", old.shutdown(Duration::from_secs(2)))
                        .await;
                    drop(old);
                    let new = restart(addr, &log, &server_faults).await;
                    *server_slot.lock().await = Some(new);
                    kills.push(Kill { what: "restart", from, to: Instant::now() + idle });
                    "graceful restart"
                }
                _ => {
                    let from = Instant::now();
                    let old = server_slot.lock().await.take().unwrap();
                    crashed.lock().unwrap().insert(log.incarnation.load(Ordering::SeqCst));
                    // A crash: nothing more leaves the old server, not even its close.
                    server_faults.black_hole(true);
                    old.endpoint().close(ErrorCode::Unspecified, b"crash");
                    drop(old);
                    let fresh = FaultHandle::new(rng.next_u64());
                    let new = restart(addr, &log, &fresh).await;
                    server_faults.black_hole(false);
                    *server_slot.lock().await = Some(new);
                    kills.push(Kill { what: "crash", from, to: Instant::now() + idle });
                    "crash restart"
                }
            };
            *events.entry(name).or_default() += 1;
        }
        for handle in &all_faults {
            handle.clear();
        }
        stop.store(true, Ordering::SeqCst);
        within_for(Duration::from_secs(60), "the workers to finish", async {
            while let Some(result) = workers.join_next().await {
                result.unwrap();
            }
        })
        .await;
        // Once the nemesis rests, every client works again.
        for (_, peer) in &clients {
            let reply =
                within_for(Duration::from_secs(20), "an ask after the nemesis", peer.ask(task("final", 0))).await;
            assert_eq!(reply.unwrap().task_id, "final");
        }

        let history = history.lock().unwrap().clone();
        let executions = log.executions.lock().unwrap().clone();
        let rerun_after_crash = check(&history, &executions, &kills, &crashed.lock().unwrap());
        let count = |o: Outcome| history.iter().filter(|op| op.outcome == o).count();
        eprintln!(
            "seed {seed}: {} asks: {} ok, {} failed, {} unknown; {} executions ({rerun_after_crash} idempotent asks \
             re-run after a crash); nemesis {events:?}",
            history.len(),
            count(Outcome::Ok),
            count(Outcome::Fail),
            count(Outcome::Unknown),
            executions.len(),
        );
        assert!(count(Outcome::Ok) > 100, "too few asks got through to mean anything");
    })
    .await;
}

/// Whether a graceful restart began after `at` (so a run at `at` was in an
/// incarnation that was then shut down).
fn restarted_after(kills: &[Kill], at: Instant) -> bool {
    kills.iter().any(|kill| kill.what == "restart" && kill.from >= at)
}

/// The checks: every acknowledged ask ran exactly once; nothing ran that
/// was not asked (or before it was asked); idempotent asks ran at most once;
/// asks that failed did not run; every unknown outcome overlaps a fault
/// that kills connections. The retry window lives in the server's memory,
/// so a restart (a crash, or a graceful shutdown whose drain deadline passed
/// before an answer was delivered) may let an idempotent ask it had run
/// before run again in the next incarnation: that, and only that, is
/// allowed. Returns how many asks did.
fn check(history: &[Op], executions: &[Execution], kills: &[Kill], crashed: &HashSet<u32>) -> usize {
    let mut runs: HashMap<&str, Vec<&Execution>> = HashMap::new();
    for execution in executions {
        runs.entry(execution.task.as_str()).or_default().push(execution);
    }
    let ops: HashMap<&str, &Op> = history.iter().map(|op| (op.task.as_str(), op)).collect();
    let mut problems = Vec::new();
    let mut rerun_after_crash = 0;
    for execution in executions {
        if execution.task == "final" {
            continue;
        }
        match ops.get(execution.task.as_str()) {
            None => {
                problems.push(format!("{} ran but was never asked (or its outcome never recorded)", execution.task))
            }
            Some(op) if execution.at < op.invoked => problems.push(format!("{} ran before it was asked", op.task)),
            Some(_) => {}
        }
    }
    for op in history {
        let ran = runs.get(op.task.as_str()).map_or(&[][..], Vec::as_slice);
        // Runs beyond the first that a restart excuses: the ask is
        // idempotent (re-sent) and its first run was in an earlier
        // incarnation of the server, whose retry window died with it — one
        // that crashed, or one shut down gracefully whose drain deadline
        // passed before the answer reached the asker (it then saw the ask
        // end unknown and re-sent it). Two runs in one incarnation are never
        // excused.
        let excused = op.idempotent
            && ran.len() == 2
            && ran[0].incarnation != ran[1].incarnation
            && (crashed.contains(&ran[0].incarnation) || restarted_after(kills, ran[0].at));
        rerun_after_crash += usize::from(excused);
        match op.outcome {
            Outcome::Ok if ran.len() != 1 && !excused => {
                let incarnations: Vec<u32> = ran.iter().map(|run| run.incarnation).collect();
                problems.push(format!(
                    "{} was answered but ran {} times (incarnations {incarnations:?})",
                    op.task,
                    ran.len()
                ));
            }
            Outcome::Fail if !ran.is_empty() => {
                problems.push(format!("{} failed ({:?}) but ran {} times", op.task, op.error, ran.len()));
            }
            _ if ran.len() > 1 && !excused => problems.push(format!("{} ran {} times", op.task, ran.len())),
            _ => {}
        }
        if op.outcome == Outcome::Unknown {
            let overlaps = kills.iter().any(|kill| kill.from <= op.completed && op.invoked <= kill.to);
            if !overlaps {
                problems.push(format!("{} ended unknown ({:?}) with no connection-killing fault", op.task, op.error));
            }
        }
    }
    let kinds: Vec<_> = kills.iter().map(|kill| kill.what).collect();
    assert!(problems.is_empty(), "{} problems (kills {kinds:?}):\n{}", problems.len(), problems.join("\n"));
    rerun_after_crash
}

// Losing the server as a user of the defaults would (trial findings 1–3 of
// issue 12): default transport limits (a 30 s idle timeout), so only the
// link's own behaviour can end an ask early.

/// A server with the default limits and a fixed identity, on `socket`.
async fn plain_server(socket: Arc<FaultySocket>, log: Arc<Log>) -> Agent {
    Agent::builder()
        .identity(Identity::from_secret_bytes(&[2; 32]))
        .socket(socket)
        .on_ask(move |_: Context, task: DelegateTask| {
            let log = log.clone();
            async move {
                log.executions.lock().unwrap().push(Execution {
                    task: task.task_id.clone(),
                    incarnation: log.incarnation.load(Ordering::SeqCst),
                    at: Instant::now(),
                });
                Ok(TaskStatus { task_id: task.task_id, state: TaskState::Completed as i32, ..Default::default() })
            }
        })
        .bind(LOCALHOST)
        .await
        .unwrap()
}

/// The server again at `addr` (once the old socket is gone).
async fn plain_restart(addr: SocketAddr, log: &Arc<Log>) -> Agent {
    log.incarnation.fetch_add(1, Ordering::SeqCst);
    let faults = FaultHandle::new(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let socket = loop {
        match FaultySocket::bind(addr, &faults) {
            Ok(socket) => break socket,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    };
    plain_server(socket, log.clone()).await
}

async fn plain_client(policy: ReconnectPolicy) -> Agent {
    Agent::builder().reconnect(policy).emits::<DelegateTask>().bind(LOCALHOST).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_without_restart_ends_every_ask() {
    let log = Arc::new(Log::default());
    let server = plain_server(FaultySocket::bind(LOCALHOST, &FaultHandle::new(0)).unwrap(), log.clone()).await;
    let addr = server.local_addr().unwrap();
    // Few, short attempts, so that an ask without a deadline ends soon too.
    let policy = ReconnectPolicy::default().connect_timeout(Duration::from_millis(400)).max_attempts(3);
    let client = plain_client(policy).await;
    let peer = client.connect(addr, server.id()).await.unwrap();
    peer.ask(task("before", 0)).await.unwrap();
    server.shutdown(Duration::from_millis(200)).await;
    drop(server);

    // With a deadline: over at the deadline, not when the server comes back.
    let started = Instant::now();
    let options = AskOptions::default().deadline(Duration::from_millis(500));
    let outcome =
        within_for(Duration::from_secs(5), "the ask with a deadline", peer.ask_with(task("d", 0), options)).await;
    let took = started.elapsed();
    assert!(matches!(outcome, Err(Error::DeadlineExceeded { .. })), "{outcome:?}");
    assert!(took < Duration::from_millis(900), "ended after {took:?}, its deadline was 500 ms");

    // Without one: not sent, once a round of re-dials has failed (3 × 400 ms
    // plus the delays), naming what was tried.
    let started = Instant::now();
    let outcome = within_for(Duration::from_secs(10), "the ask without a deadline", peer.ask(task("n", 0))).await;
    let took = started.elapsed();
    match &outcome {
        Err(error @ Error::Session(_)) => {
            let text = error.to_string();
            assert!(text.contains("cannot reach") && text.contains(&addr.to_string()), "{text}");
        }
        other => panic!("expected a not-sent error, got {other:?}"),
    }
    assert!(took < Duration::from_secs(4), "ended after {took:?}");
    assert!(matches!(peer.state(), tacit::LinkState::Down { .. }), "{:?}", peer.state());
    assert_eq!(log.count("d") + log.count("n"), 0, "neither ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_then_restart_answers_the_waiting_asks() {
    let log = Arc::new(Log::default());
    let server = plain_server(FaultySocket::bind(LOCALHOST, &FaultHandle::new(0)).unwrap(), log.clone()).await;
    let addr = server.local_addr().unwrap();
    let client = plain_client(ReconnectPolicy::default()).await;
    let peer = client.connect(addr, server.id()).await.unwrap();
    let mut watch = peer.watch().expect("a dialed peer has a link");
    peer.ask(task("before", 0)).await.unwrap();
    server.shutdown(Duration::from_millis(200)).await;
    drop(server);

    // Asks made while the server is away, with and without a deadline.
    let with_deadline = {
        let peer = peer.clone();
        tokio::spawn(async move {
            peer.ask_with(task("d", 0), AskOptions::default().deadline(Duration::from_secs(5))).await.map(|r| r.message)
        })
    };
    let without = {
        let peer = peer.clone();
        tokio::spawn(async move { peer.ask(task("n", 0)).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _server = plain_restart(addr, &log).await;
    let back = Instant::now();
    for (name, ask) in [("with a deadline", with_deadline), ("without", without)] {
        let outcome = within_for(Duration::from_secs(10), name, ask).await.unwrap();
        assert!(outcome.is_ok(), "the ask {name}: {outcome:?}");
    }
    let took = back.elapsed();
    assert!(took < Duration::from_millis(1500), "answered {took:?} after the server came back");
    assert_eq!((log.count("d"), log.count("n")), (1, 1));
    // The link says it reconnected, so a client can subscribe again.
    let generation = within_for(Duration::from_secs(5), "the reconnect event", watch.reconnected_after(1)).await;
    assert!(generation.is_some_and(|g| g >= 2), "{generation:?}");
    assert!(client.metrics().reconnects >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_restart_on_the_same_address_is_noticed_at_once() {
    let log = Arc::new(Log::default());
    let faults = FaultHandle::new(0);
    let server = plain_server(FaultySocket::bind(LOCALHOST, &faults).unwrap(), log.clone()).await;
    let addr = server.local_addr().unwrap();
    let client = plain_client(ReconnectPolicy::default()).await;
    let peer = client.connect(addr, server.id()).await.unwrap();
    let mut watch = peer.watch().expect("a dialed peer has a link");
    peer.ask(task("before", 0)).await.unwrap();

    // A crash: nothing more leaves the old server, not even its close.
    faults.black_hole(true);
    server.endpoint().close(ErrorCode::Unspecified, b"crash");
    drop(server);
    // Asks sent into the void: one that may be re-sent, one that may not.
    let idempotent = {
        let peer = peer.clone();
        tokio::spawn(async move { peer.ask_with(task("i", 0), AskOptions::default().idempotent()).await })
    };
    let plain = {
        let peer = peer.clone();
        tokio::spawn(async move {
            peer.ask_with(task("p", 0), AskOptions::default().deadline(Duration::from_secs(8))).await
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _server = plain_restart(addr, &log).await;
    let back = Instant::now();

    // The restarted server (same key) answers the old connection's packets
    // with a stateless reset: the client re-dials at once, far inside the
    // 30 s idle timeout.
    let generation = within_for(Duration::from_secs(10), "the reconnect", watch.reconnected_after(1)).await;
    let noticed = back.elapsed();
    assert!(generation.is_some_and(|g| g >= 2), "{generation:?}");
    // The bound: the client's next packet, at the latest its keep-alive (1 s
    // by default), plus a re-dial.
    assert!(noticed < Duration::from_millis(1500), "noticed the restart after {noticed:?}");
    let idempotent = within_for(Duration::from_secs(10), "the idempotent ask", idempotent).await.unwrap();
    assert!(idempotent.is_ok(), "re-sent on the new session: {idempotent:?}");
    let plain = within_for(Duration::from_secs(10), "the plain ask", plain).await.unwrap();
    assert!(matches!(plain, Err(Error::Unknown { .. })), "sent, then the connection was lost: {plain:?}");
    let took = back.elapsed();
    assert!(took < Duration::from_millis(1500), "the asks ended {took:?} after the restart");
    // New asks work at once.
    let options = AskOptions::default().deadline(Duration::from_secs(1));
    peer.ask_with(task("after", 0), options).await.unwrap();
    eprintln!("restart noticed after {noticed:?}; waiting asks ended after {took:?}");
}
