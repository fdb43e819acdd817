//! `echo-client`: asks an echo server N times and reports the latency.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use tacit::{Agent, AgentId};
use tacit_examples::echo::v1::Echo;
use tacit_examples::echo_service;
use tacit_examples::net::{self, Failure, PeerSpec};
use tacit_examples::stats::{Latencies, count, duration};

/// Asks a Tacit echo server N times (one ask after another) and prints the
/// replies and the round-trip latency (p50 / p99).
///
/// With --addr it talks to a running `echo-server`. Without --addr it starts
/// an echo server of its own in this process, on 127.0.0.1 (a self-contained
/// check that needs nothing else running); the two agents still talk over
/// QUIC on loopback.
#[derive(Debug, Parser)]
#[command(name = "echo-client", version)]
struct Cli {
    /// The echo server's address, as it printed it (e.g. 127.0.0.1:4433).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// The AgentId the server must have (the TLS handshake fails otherwise).
    #[arg(long, value_name = "AGENT_ID", requires = "addr")]
    expect: Option<AgentId>,
    /// How many echoes to ask for.
    #[arg(short = 'n', long = "count", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    n: u64,
    /// How many replies to print (the rest are only counted).
    #[arg(long, default_value_t = 5)]
    show: u64,
    /// How long to wait for the server to answer the connection.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    timeout_ms: u64,
    /// The text to echo.
    #[arg(default_value = "hello, tacit")]
    text: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("echo-client: {failure}");
            ExitCode::FAILURE
        }
    }
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let timeout = Duration::from_millis(cli.timeout_ms);
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    // Without --addr: an echo server in this process.
    let mut _own_server: Option<Agent> = None;
    let target = match cli.addr {
        Some(addr) => PeerSpec { addr, id: cli.expect },
        None => {
            let server = net::bind(echo_service::agent(Arc::new(AtomicU64::new(0))), loopback).await?;
            let addr = server.local_addr().map_err(|e| Failure(format!("cannot read the bound address: {e}")))?;
            println!("no --addr: started an echo server in this process at {addr} as {}", server.id());
            let target = PeerSpec { addr, id: Some(server.id()) };
            _own_server = Some(server);
            target
        }
    };
    let local = if target.addr.ip().is_loopback() { loopback } else { ([0, 0, 0, 0], 0).into() };
    let client = net::bind(net::with_timeout(echo_service::client(), timeout), local).await?;
    let started = Instant::now();
    let peer = net::connect::<Echo>(&client, target, "an echo server").await?;
    let name = peer.card().map(|card| card.name).unwrap_or_default();
    println!("connected to {} as agent {} (\"{name}\") in {}", target.addr, peer.id(), duration(started.elapsed()));

    let mut latencies = Latencies::default();
    let all = Instant::now();
    for i in 1..=cli.n {
        let sent_at_micros = now_micros();
        let asked = Instant::now();
        let reply = peer
            .ask(Echo { text: cli.text.clone(), sent_at_micros })
            .await
            .map_err(|e| Failure(format!("echo {i} of {} to {} failed: {e}", cli.n, target.addr)))?;
        let latency = asked.elapsed();
        latencies.record(latency);
        if reply.text != cli.text || reply.sent_at_micros != sent_at_micros {
            return Err(Failure(format!("echo {i}: the server answered {:?}, not the text sent", reply.text)));
        }
        if i <= cli.show {
            println!(
                "reply {i}: {:?} (echo #{} from the server, {})",
                reply.text,
                reply.echo_number,
                duration(latency)
            );
        }
    }
    let total = all.elapsed();
    if cli.n > cli.show {
        println!("... {} more replies, all equal to the text sent", count(cli.n - cli.show));
    }
    if let Some(s) = latencies.summary() {
        println!(
            "{} echoes in {}: round trip p50 {}, p99 {} (min {}, mean {}, max {}), one ask at a time",
            count(s.count as u64),
            duration(total),
            duration(s.p50),
            duration(s.p99),
            duration(s.min),
            duration(s.mean),
            duration(s.max)
        );
    }
    // Done with the server: an application close (`CLOSED`), not a shutdown.
    peer.close();
    client.shutdown(Duration::from_millis(100)).await;
    Ok(())
}
