//! `tacit mcp`: an MCP server on stdio (or, with `--http ADDR`, streamable
//! HTTP) whose tools are the intents of Tacit peers (`tacit_bridge::mcp`).
//! Stdout is the protocol: everything else goes to stderr.

use std::path::PathBuf;
use std::time::Duration;

use tacit::Identity;
use tacit_bridge::mcp::{Bridge, HttpOptions, PeerAddr};

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
    /// Serve MCP's streamable HTTP transport on ADDR (HOST:PORT) instead of stdio. Loopback only,
    /// unless --bearer-token-file is given.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// With --http: require `Authorization: Bearer TOKEN`, TOKEN being this file's content (trimmed).
    #[arg(long, value_name = "FILE", requires = "http")]
    bearer_token_file: Option<PathBuf>,
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
        builder = builder.credential(crate::org::read_credential(path)?);
    }
    for peer in args.peers {
        builder = builder.peer(peer);
    }
    let mut options = HttpOptions::default();
    if let Some(path) = &args.bearer_token_file {
        let text = std::fs::read_to_string(path).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(CliError::failure(format!("{} holds no token", path.display())));
        }
        options = options.bearer_token(token);
    }
    // Bind before dialing the peers, so that a bad address fails at once.
    let listener = match &args.http {
        Some(addr) => {
            let target = connect::resolve(addr)?;
            if !target.ip().is_loopback() && args.bearer_token_file.is_none() {
                return Err(CliError::failure(format!(
                    "--http {addr} is not a loopback address: serving MCP there needs --bearer-token-file"
                ))
                .hint("bind to 127.0.0.1 (the default choice for a local MCP client), or give a token"));
            }
            let listener = tokio::net::TcpListener::bind(target)
                .await
                .map_err(|e| CliError::failure(format!("cannot listen on {addr}: {e}")))?;
            Some(listener)
        }
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
            let guarded = if args.bearer_token_file.is_some() { ", bearer token required" } else { "" };
            eprintln!(
                "tacit mcp: serving MCP over streamable HTTP at http://{local}/ as {} with {tools} tools{guarded}",
                bridge.id()
            );
            bridge.serve_http(listener, options).await.map_err(|e| CliError::failure(e.to_string()))
        }
    }
}
