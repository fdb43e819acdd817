//! `tacit mcp`: an MCP server on stdio whose tools are the intents of Tacit
//! peers (`tacit_bridge::mcp`). Stdout is the protocol: everything else goes
//! to stderr.

use std::path::PathBuf;
use std::time::Duration;

use tacit::Identity;
use tacit::credential::SignedCredential;
use tacit_bridge::mcp::{Bridge, PeerAddr};

use crate::connect;
use crate::error::CliError;

/// Arguments of `tacit mcp`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A peer whose intents become tools: HOST:PORT, or HOST:PORT=AGENT_ID to insist on its AgentId (repeatable).
    #[arg(long = "peer", value_name = "ADDR[=ID]", required = true)]
    peers: Vec<PeerAddr>,
    /// The bridge's identity, a key file (default: a fresh identity each run). Peers apply their policy to it.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Present this credential to peers (a file of `tacit org issue`; repeatable).
    #[arg(long = "credential", value_name = "FILE")]
    credentials: Vec<PathBuf>,
    /// Seconds each tool call waits for the agent's reply.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = connect::parse_secs)]
    timeout: Duration,
    /// Seconds to wait for a peer to answer the connection, the handshake and each schema fetch.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = connect::parse_secs)]
    connect_timeout: Duration,
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    let mut builder = Bridge::builder().ask_timeout(args.timeout).connect_timeout(args.connect_timeout);
    if let Some(key) = &args.key {
        let identity = Identity::load(key)
            .map_err(|e| CliError::failure(e.to_string()).hint("make a key file with `tacit keygen --out FILE`"))?;
        builder = builder.identity(identity);
    }
    for path in &args.credentials {
        let bytes = std::fs::read(path).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
        let credential = SignedCredential::decode(&bytes)
            .map_err(|e| CliError::failure(format!("{} is not a credential: {e}", path.display())))?;
        builder = builder.credential(credential);
    }
    for peer in args.peers {
        builder = builder.peer(peer);
    }
    let bridge = builder.start().await.map_err(|e| CliError::failure(e.to_string()))?;
    eprintln!("tacit mcp: serving MCP on stdio as {} with {} tools", bridge.id(), bridge.tools().len());
    bridge.serve_stdio().await.map_err(|e| CliError::failure(e.to_string()))
}
