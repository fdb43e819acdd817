//! Memory per idle session: a child process (this binary with
//! `--idle-sessions CASE N1 N2`) opens N1 sessions of one case, each with
//! one request answered, then more up to N2, and reports its resident set
//! (`/proc/self/statm`) before and at each count. Both ends of every session
//! live in the child, so the figures count client and server together.
//! A fresh process per case keeps one case's freed memory from hiding
//! another's growth.

use std::process::Command;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::grpc::{GrpcClient, GrpcServer};
use crate::jsonrpc::{self, JsonClient, JsonServer};
use crate::quic_net::{RawQuic, TacitAgents, TacitSessions, agent_ask, reserve_slot, session_ask};
use crate::tcp_io::Security;

/// Sessions opened at once.
const CONNECTING: usize = 32;
/// Bound on one child process.
const CHILD_LIMIT: Duration = Duration::from_secs(240);

/// A case of the memory measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleCase {
    TacitAgent,
    TacitSession,
    RawQuic,
    GrpcTls,
    JsonTls,
}

impl IdleCase {
    pub(crate) const ALL: [Self; 5] =
        [Self::TacitAgent, Self::TacitSession, Self::RawQuic, Self::GrpcTls, Self::JsonTls];

    pub(crate) fn arg(self) -> &'static str {
        match self {
            Self::TacitAgent => "tacit-agent",
            Self::TacitSession => "tacit-session",
            Self::RawQuic => "raw-quic",
            Self::GrpcTls => "grpc-tls",
            Self::JsonTls => "jsonrpc-tls",
        }
    }

    /// Uses a file descriptor per connection end (TCP), so the count is
    /// bounded by the process's limit.
    fn uses_fds(self) -> bool {
        matches!(self, Self::GrpcTls | Self::JsonTls)
    }
}

/// The resident set of one child at each count.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdleFigures {
    /// Resident bytes with the endpoints set up and no session.
    pub(crate) base: u64,
    /// (sessions, resident bytes).
    pub(crate) at: Vec<(usize, u64)>,
}

/// Runs the child for `case` and parses its report; `None` if it failed.
pub(crate) fn measure(case: IdleCase, counts: &[usize]) -> Option<IdleFigures> {
    let exe = std::env::current_exe().ok()?;
    let mut command = Command::new(exe);
    command.arg("--idle-sessions").arg(case.arg());
    for count in counts {
        command.arg(count.to_string());
    }
    let output = command.output().ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        eprintln!("idle-sessions child for {} failed: {}", case.arg(), String::from_utf8_lossy(&output.stderr));
        return None;
    }
    let mut figures = IdleFigures::default();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("base"), Some(bytes), None) => figures.base = bytes.parse().ok()?,
            (Some("sessions"), Some(n), Some(bytes)) => figures.at.push((n.parse().ok()?, bytes.parse().ok()?)),
            _ => {}
        }
    }
    Some(figures)
}

/// The child: `args` are CASE N1 N2 ...
pub(crate) fn child(args: &[String]) {
    let case = IdleCase::ALL.into_iter().find(|c| args.first().is_some_and(|a| a == c.arg())).expect("a known case");
    let mut counts: Vec<usize> = args[1..].iter().map(|a| a.parse().expect("a count")).collect();
    if case.uses_fds() {
        let limit = raise_fd_limit();
        // Two descriptors per session (both ends), and some to spare.
        let most = (limit.saturating_sub(256) / 2) as usize;
        for count in &mut counts {
            *count = (*count).min(most);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    run(&rt, async {
        match case {
            IdleCase::TacitAgent => {
                let agents = TacitAgents::start(true).await;
                let template = reserve_slot();
                open_all(&counts, async || {
                    let peer = agents.connect().await;
                    agent_ask(&peer, &template).await;
                    peer
                })
                .await;
            }
            IdleCase::TacitSession => {
                let sessions = TacitSessions::start(true).await;
                let payload = crate::quic_net::payload();
                open_all(&counts, async || {
                    let session = sessions.connect().await;
                    session_ask(&session, &payload).await;
                    session
                })
                .await;
            }
            IdleCase::RawQuic => {
                let raw = RawQuic::start();
                let request = tacit_benches::reference::framed_envelope().freeze();
                open_all(&counts, async || {
                    let connection = raw.connect(true).await;
                    let mut pipe = tacit_benches::raw_quic::Pipe::open(&connection).await;
                    pipe.round_trip(&request).await;
                    (connection, pipe)
                })
                .await;
            }
            IdleCase::GrpcTls => {
                let server = GrpcServer::start(Security::Tls).await;
                let request = tacit_benches::reference::flat_request();
                open_all(&counts, async || {
                    let mut client: GrpcClient = server.connect().await;
                    client.reserve(request.clone()).await;
                    client
                })
                .await;
            }
            IdleCase::JsonTls => {
                let server = JsonServer::start(Security::Tls).await;
                let request = jsonrpc::reference_request();
                open_all(&counts, async || {
                    let mut client: JsonClient = server.connect().await;
                    client.call(&request).await;
                    client
                })
                .await;
            }
        }
    });
}

/// Opens sessions with `open` up to each of `counts` in turn, `CONNECTING`
/// at a time, and prints the resident set before and at each count.
async fn open_all<T>(counts: &[usize], open: impl AsyncFn() -> T) {
    settle().await;
    println!("base {}", resident_bytes());
    let mut sessions: Vec<T> = Vec::with_capacity(counts.iter().copied().max().unwrap_or(0));
    for &count in counts {
        while sessions.len() < count {
            let batch = (count - sessions.len()).min(CONNECTING);
            let opened = futures_join(batch, &open).await;
            sessions.extend(opened);
        }
        settle().await;
        println!("sessions {} {}", sessions.len(), resident_bytes());
    }
    drop(sessions);
}

/// Runs `n` calls of `open` concurrently on this task.
async fn futures_join<T>(n: usize, open: &impl AsyncFn() -> T) -> Vec<T> {
    let mut pending: Vec<_> = (0..n).map(|_| Box::pin(open())).collect();
    let mut done: Vec<Option<T>> = (0..n).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (future, slot) in pending.iter_mut().zip(&mut done) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    done.into_iter().map(|slot| slot.expect("every future finished")).collect()
}

/// Lets connection tasks finish what they do after the last request.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn run<F: Future>(rt: &Runtime, future: F) -> F::Output {
    rt.block_on(async { tokio::time::timeout(CHILD_LIMIT, future).await.expect("the child finished in time") })
}

/// The resident set of this process, in bytes.
pub(crate) fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * rustix::param::page_size() as u64
}

/// Raises the soft limit of open files to the hard limit (and the hard limit
/// too, where allowed); returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let wanted = 1 << 16;
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum.unwrap_or(wanted);
    if setrlimit(Resource::Nofile, Rlimit { current: Some(wanted), maximum: Some(hard.max(wanted)) }).is_err() {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) });
    }
    getrlimit(Resource::Nofile).current.unwrap_or(1024)
}
