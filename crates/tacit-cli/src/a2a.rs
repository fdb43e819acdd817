//! `tacit a2a connect URL`: an A2A agent on the Tacit network, as a Tacit
//! agent with its own identity that answers the standard `TextTask` by
//! forwarding it to the A2A agent (`tacit_bridge::a2a`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tacit::Agent;
use tacit_bridge::a2a::{A2aRemote, ConnectError, ConnectOptions};

use crate::error::{CliError, Exit};
use crate::listen::stopped;

/// `tacit a2a ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Put an A2A agent on the Tacit network: fetch its agent card, then run a Tacit agent (own identity,
    /// card from the A2A card, its skills as roles) whose `tacit.intents.v1.TextTask` asks become A2A
    /// SendMessage calls. Prints `listening on ADDR as AGENT_ID` on stderr.
    Connect(ConnectArgs),
}

/// Arguments of `tacit a2a connect`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The A2A agent's base URL (its card is at URL/.well-known/agent-card.json), or the card's URL.
    #[arg(value_name = "URL")]
    url: String,
    /// The UDP address the Tacit agent listens on (port 0: any free port; the one chosen is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// The Tacit agent's key file, created if missing (default: a fresh identity each run).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Present this credential to peers (a file of `tacit org issue`; repeatable).
    #[arg(long = "credential", value_name = "FILE")]
    credentials: Vec<PathBuf>,
    /// Enforce this receiver-side policy (TOML; PROTOCOL.md "Policy") on the Tacit side.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Trust this organisation (its key, AgentId form; repeatable): peers' credentials are verified.
    #[arg(long = "trust", value_name = "ORG")]
    trust: Vec<tacit::credential::OrgKey>,
    /// Longest an A2A SendMessage may take, in seconds, when the Tacit ask has no shorter deadline.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

pub(crate) async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Connect(args) => connect(args).await,
    }
}

async fn connect(args: ConnectArgs) -> Result<(), CliError> {
    let identity = crate::keys::identity_or_new(args.key.as_deref())?;
    if let Some(path) = &args.policy {
        tacit::Policy::load(path).map_err(|e| CliError::failure(e.to_string()))?;
    }
    let mut options = ConnectOptions::default();
    options.call_timeout = Duration::from_secs(args.timeout.max(1));
    let remote = A2aRemote::connect(&args.url, &options).await.map_err(connect_error)?;
    eprintln!(
        "A2A agent {:?} at {} ({} skills)",
        remote.a2a_card().name,
        remote.card_url(),
        remote.a2a_card().skills.len()
    );

    let mut builder = Agent::builder().identity(identity);
    if let Some(path) = &args.policy {
        builder = builder.policy_file(path);
    }
    for org in &args.trust {
        builder = builder.trust(*org);
    }
    let builder = crate::org::with_credentials(builder, &args.credentials)?;
    let agent = remote.install(builder).bind(args.addr).await.map_err(|e| {
        CliError::failure(format!("cannot listen on {}: {e}", args.addr))
            .hint("pick another --addr (port 0 picks a free port)")
    })?;
    let local = agent.local_addr().map_err(|e| CliError::failure(e.to_string()))?;
    eprintln!("listening on {local} as {}", agent.id());

    stopped().await;
    eprintln!("stopping");
    agent.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

fn connect_error(error: ConnectError) -> CliError {
    let exit = match &error {
        ConnectError::Unreachable { .. } => Exit::Unreachable,
        ConnectError::Timeout { .. } => Exit::Timeout,
        _ => Exit::Failure,
    };
    let hint = match &error {
        ConnectError::BadUrl(_) => "give the A2A agent's base URL, e.g. http://127.0.0.1:8080",
        ConnectError::Status { .. } | ConnectError::NotAgentCard { .. } => {
            "the URL must be an A2A agent's base URL (its card at /.well-known/agent-card.json)"
        }
        ConnectError::NoInterface { .. } => "the A2A agent must offer the JSON-RPC or HTTP+JSON binding of A2A 1.x",
        _ => "check that the A2A agent runs at that URL",
    };
    CliError::new(exit, error.to_string()).hint(hint)
}
