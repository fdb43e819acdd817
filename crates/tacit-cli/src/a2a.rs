//! `tacit a2a connect URL`: an A2A agent on the Tacit network, as a Tacit
//! agent with its own identity that answers the standard `TextTask` by
//! forwarding it to the A2A agent (`tacit_bridge::a2a`); `tacit a2a serve`:
//! an A2A server in front of Tacit peers (`tacit_bridge::a2a_server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tacit::Agent;
use tacit_bridge::a2a::{A2aRemote, ConnectError, ConnectOptions};
use tacit_bridge::a2a_server::Gateway;
use tacit_bridge::peers::PeerAddr;

use crate::bridge::{FrontArgs, IdentityArgs};
use crate::connect;
use crate::error::{CliError, Exit};
use crate::listen::stopped;

/// `tacit a2a ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Put an A2A agent on the Tacit network: fetch its agent card, then run a Tacit agent (own identity,
    /// card from the A2A card, its skills as roles) whose `tacit.intents.v1.TextTask` asks become A2A
    /// SendMessage calls. Prints `listening on ADDR as AGENT_ID` on stderr.
    Connect(ConnectArgs),
    /// Serve Tacit peers to A2A clients: an A2A 1.0 server (JSON-RPC at /, HTTP+JSON beside it, the agent card
    /// at /.well-known/agent-card.json) whose skills are the peers' intents. A message with a data part
    /// {"intent": SKILL, "message": {...}} asks (or streams, or tells) that intent; text goes to a peer that
    /// takes tacit.intents.v1.TextTask.
    Serve(Box<ServeArgs>),
}

/// Arguments of `tacit a2a serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// A peer whose intents become skills: HOST:PORT, or HOST:PORT=AGENT_ID to insist on its AgentId (repeatable).
    #[arg(long = "peer", value_name = "ADDR[=ID]", required = true)]
    peers: Vec<PeerAddr>,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Serve A2A over HTTP on ADDR (HOST:PORT). Loopback only, unless --bearer-token-file is given.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    http: String,
    #[command(flatten)]
    front: FrontArgs,
    /// The base URL the agent card declares (default: http://ADDR/ of --http), e.g. behind a proxy.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// The agent card's name.
    #[arg(long, value_name = "NAME", default_value = "tacit-a2a")]
    name: String,
    /// The agent card's description (default: one naming the connected peers).
    #[arg(long, value_name = "TEXT", default_value = "")]
    description: String,
    /// Seconds each call waits for the agent's reply (or for a stream to open).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = connect::parse_secs)]
    timeout: Duration,
    /// Seconds to wait for a peer to answer the connection, the handshake and each schema fetch.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = connect::parse_secs)]
    connect_timeout: Duration,
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
        Command::Serve(args) => serve(*args).await,
    }
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let mut builder = Gateway::builder()
        .ask_timeout(args.timeout)
        .connect_timeout(args.connect_timeout)
        .name(args.name.clone(), args.description.clone());
    if let Some(identity) = args.identity.identity()? {
        builder = builder.identity(identity);
    }
    for credential in args.identity.credentials()? {
        builder = builder.credential(credential);
    }
    if let Some(url) = &args.public_url {
        builder = builder.public_url(url.clone());
    }
    for peer in args.peers {
        builder = builder.peer(peer);
    }
    let options = args.front.options()?;
    // Bind before dialing the peers, so that a bad address fails at once.
    let listener = args.front.bind("A2A", &args.http).await?;
    let local = listener.local_addr().map_err(|e| CliError::failure(e.to_string()))?;
    let gateway = builder.start().await.map_err(|e| CliError::failure(e.to_string()))?;
    eprintln!(
        "tacit a2a: serving A2A at http://{local}/ as {} with {} skills{}",
        gateway.id(),
        gateway.card().skills.len(),
        args.front.guarded()
    );
    tokio::select! {
        served = gateway.serve(listener, options) => served.map_err(|e| CliError::failure(e.to_string())),
        () = stopped() => {
            eprintln!("stopping");
            Ok(())
        }
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
