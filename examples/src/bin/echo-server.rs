//! `echo-server`: a Tacit agent that answers `echo.v1.Echo` with `Echoed`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use tacit_examples::net::{self, Failure};
use tacit_examples::{echo_service, stats};

/// A Tacit agent that answers echo.v1.Echo with echo.v1.Echoed over QUIC.
///
/// Prints `listening on ADDR as AGENT_ID` once it is ready, then serves
/// until Ctrl-C (or SIGTERM). Try it with
/// `echo-client --addr ADDR --expect AGENT_ID`.
#[derive(Debug, Parser)]
#[command(name = "echo-server", version)]
struct Cli {
    /// The UDP address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// A key file holding the agent's identity, created if missing; without
    /// it the server has a new AgentId each run.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("echo-server: {failure}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let served = Arc::new(AtomicU64::new(0));
    let builder = net::with_key(echo_service::agent(served.clone()), cli.key.as_deref())?;
    let agent = net::bind(builder, cli.addr).await?;
    let addr = agent.local_addr().map_err(|e| Failure(format!("cannot read the bound address: {e}")))?;
    println!("listening on {addr} as {}", agent.id());
    println!("serving echo.v1.Echo until Ctrl-C");
    tacit::shutdown_signal().await;
    agent.shutdown(Duration::from_millis(500)).await;
    println!("answered {} echoes", stats::count(served.load(Ordering::Relaxed)));
    Ok(())
}
