//! `tacit mcp`: an MCP server on stdio (or, with `--http ADDR`, streamable
//! HTTP) whose tools are the intents of Tacit peers (`tacit_bridge::mcp`).
//! Stdout is the protocol: everything else goes to stderr.

use std::time::Duration;

use tacit_bridge::mcp::{Bridge, PeerAddr};

use crate::bridge::{FrontArgs, IdentityArgs};
use crate::connect;
use crate::error::CliError;

/// Arguments of `tacit mcp`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A peer whose intents become tools: HOST:PORT, or HOST:PORT=AGENT_ID to insist on its AgentId (repeatable).
    #[arg(long = "peer", value_name = "ADDR[=ID]", required = true)]
    peers: Vec<PeerAddr>,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Seconds each tool call waits for the agent's reply.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = connect::parse_secs)]
    timeout: Duration,
    /// Serve MCP's streamable HTTP transport on ADDR (HOST:PORT) instead of stdio. Loopback only,
    /// unless --bearer-token-file is given.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    #[command(flatten)]
    front: FrontArgs,
    /// Seconds to wait for a peer to answer the connection, the handshake and each schema fetch.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = connect::parse_secs)]
    connect_timeout: Duration,
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    let mut builder = Bridge::builder().ask_timeout(args.timeout).connect_timeout(args.connect_timeout);
    if let Some(identity) = args.identity.identity()? {
        builder = builder.identity(identity);
    }
    for credential in args.identity.credentials()? {
        builder = builder.credential(credential);
    }
    for peer in args.peers {
        builder = builder.peer(peer);
    }
    if args.http.is_none() && args.front.has_token() {
        return Err(CliError::failure("--bearer-token-file needs --http (MCP on stdio has no HTTP to guard)"));
    }
    let options = args.front.options()?;
    // Bind before dialing the peers, so that a bad address fails at once.
    let listener = match &args.http {
        Some(addr) => Some(args.front.bind("MCP", addr).await?),
        None => None,
    };
    let bridge = builder.start().await.map_err(|e| CliError::failure(e.to_string()))?;
    let tools = bridge.tools().len();
    match listener {
        None => {
            eprintln!("tacit mcp: serving MCP on stdio as {} with {tools} tools", bridge.id());
            bridge.serve_stdio().await.map_err(|e| CliError::failure(e.to_string()))
        }
        Some(listener) => {
            let local = listener.local_addr().map_err(|e| CliError::failure(e.to_string()))?;
            eprintln!(
                "tacit mcp: serving MCP over streamable HTTP at http://{local}/ as {} with {tools} tools{}",
                bridge.id(),
                args.front.guarded()
            );
            bridge.serve_http(listener, options).await.map_err(|e| CliError::failure(e.to_string()))
        }
    }
}
