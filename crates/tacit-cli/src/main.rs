//! `tacit`: Tacit agents from a shell.
//!
//! A command-line tool to make keys, watch what agents send, and talk to any
//! Tacit agent without writing code — like `grpcurl` with reflection: the
//! tool asks the agent which intents it offers (the standard
//! `DescribeAgent`), fetches each intent's schema from the agent itself
//! (verified against its IntentId), and converts between protobuf and JSON
//! (the protobuf JSON mapping; 64-bit integers are strings, as that mapping
//! writes them).
//!
//! ```text
//! tacit keygen [--out FILE]                 make a key file (default ./tacit.key), print its AgentId
//! tacit id [FILE]                           print the AgentId of a key file
//! tacit listen [--addr A] [--key FILE] [--capture FILE]
//!                                           run an agent that prints every intent it receives as JSON lines
//! tacit describe ADDR [--json]              show an agent's id, card and intents (asked, told or
//!                                           streamed; reply and stream item types)
//! tacit ask ADDR INTENT [JSON]              ask an intent, print the reply as JSON
//! tacit tell ADDR INTENT [JSON]             tell (send one way) an intent
//! tacit stream ADDR INTENT [JSON] [--send] [-n N] [--timeout SECS]
//!                                           open a stream lane, print the items streamed back as JSON lines
//! tacit ping ADDR [-n N]                    round-trip times of the standard Ping
//! tacit inspect FILE [--schema SET]         decode a capture of `listen --capture`, as listen prints
//! tacit conformance ADDR [--expect ID] [--json] [--only PREFIX] [--except PREFIX] [--timeout SECS]
//!                                           run the protocol's conformance checks against an implementation
//! tacit conformance --serve ADDR [--once] [--json]
//!                                           play the acceptor and check the implementations that dial it
//! tacit dns record --key FILE --origin DOMAIN --addr ADDR... [--name N] [--tag T]... [--ttl SECS] [--dns-ttl SECS]
//!                                           print the zone-file line that publishes the agent under DOMAIN
//! tacit verify FILE                         check a signed receipt offline; exit 1 if it does not verify
//! tacit mcp --peer ADDR[=ID]... [--key FILE] [--credential FILE]... [--http ADDR [--bearer-token-file FILE]]
//!                                           serve MCP on stdio (or streamable HTTP): the peers' intents as tools,
//!                                           their cards as resources
//! tacit a2a connect URL [--addr A] [--key FILE] [--credential FILE]
//!                                           put the A2A agent at URL on the Tacit network (TextTask asks)
//! tacit a2a serve --peer ADDR[=ID]... [--http ADDR] [--key FILE] [--credential FILE]... [--bearer-token-file FILE]
//!                                           serve the peers to A2A clients: their intents as skills
//! ```
//!
//! # A session
//!
//! ```text
//! $ tacit keygen --out agent.key
//! pg2vmlup4zkpsqdywejorkmlu6ib7bj242k35v7a4oiqxlieszsa
//! $ tacit listen --addr 127.0.0.1:4433 --key agent.key --capture frames.bin
//! listening on 127.0.0.1:4433 as pg2vmlup4zkpsqdywejorkmlu6ib7bj242k35v7a4oiqxlieszsa
//!
//! # in another shell
//! $ tacit ask 127.0.0.1:4433 tacit.intents.v1.Ping '{"nonce": "5"}'
//! {"nonce":"5"}
//! $ tacit ping 127.0.0.1:4433 -n 3
//! $ tacit inspect frames.bin
//! ```
//!
//! `listen` prints one JSON object per received message on stdout, and
//! `inspect` prints the messages of a capture in the same shape (the same
//! keys, `null` where a key does not apply; see [`record`]): `ts` (RFC 3339,
//! UTC), `peer` (AgentId), `lane` (`ask`, `tell` or `stream`), `act`,
//! `intent` (name), `intent_id` (hex), `message_id`, `in_reply_to`,
//! `conversation`, `deadline_micros`, `trace`, and `message`: the payload
//! decoded through the schema the sender serves (`schema`: `peer`), the
//! standard intents compiled into the tool (`builtin`) or `inspect
//! --schema` (`file`). A payload that cannot be decoded is `undecoded`:
//! `payload_base64` with a `reason`. Asks are answered with the empty
//! message of the request's reply type (named by the `(tacit.v1.reply)`
//! option), or refused when there is none.
//!
//! Chatter goes to stderr, data to stdout. Every command exits with a code
//! that says what went wrong (see [`error::Exit`], also in `tacit --help`).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[cfg(feature = "a2a")]
mod a2a;
#[cfg(any(feature = "mcp", feature = "a2a"))]
mod bridge;
mod conformance;
mod connect;
mod describe;
mod directory;
mod dns;
mod error;
mod inspect;
mod json;
mod keys;
mod listen;
#[cfg(feature = "mcp")]
mod mcp;
mod org;
mod ping;
mod record;
mod send;
mod stream;
mod time;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

const LONG_ABOUT: &str = "\
Tacit agents from a shell: make keys, run a listener that prints every intent \
it receives, describe an agent, ask, tell or stream it any intent it offers \
(JSON in and out, through the schema the agent serves), ping it, and decode \
captures.

Exit codes:
  0  success
  1  other failure (files, keys, malformed captures, ...)
  2  usage: bad arguments (see the command's --help)
  3  unreachable: no agent answered at the address, or the connection failed
  4  identity mismatch: the agent is not the one --expect names
  5  unknown intent: the agent does not offer it (the error lists what it offers)
  6  bad JSON: the message does not fit the intent's schema (the error names the field)
  7  the agent refused or failed the request (act, code and reason are shown)
  8  timeout: no reply within --timeout
  9  nonconformant: `tacit conformance` found at least one check that failed";

/// The `tacit` command line.
#[derive(Debug, Parser)]
#[command(name = "tacit", version, about = "Tacit agents from a shell", long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a new key file (an Ed25519 identity) and print its AgentId. Never overwrites a file.
    Keygen {
        /// Where to write the key (PKCS#8 PEM, mode 0600).
        #[arg(long, value_name = "FILE", default_value = "tacit.key")]
        out: PathBuf,
    },
    /// Print the AgentId of a key file.
    Id {
        /// The key file.
        #[arg(value_name = "FILE", default_value = "tacit.key")]
        file: PathBuf,
    },
    /// Run an agent that takes every intent its peers send and prints each as a JSON line.
    Listen(listen::Args),
    /// Show an agent's AgentId, card and the intents it offers.
    Describe(describe::Args),
    /// Ask an intent (request → reply), with the message as JSON; print the reply as JSON.
    Ask(send::AskArgs),
    /// Tell an intent (one way), with the message as JSON.
    Tell(send::TellArgs),
    /// Open a stream lane with a JSON opening; print the items streamed back as JSON lines.
    Stream(stream::Args),
    /// Measure round trips with the standard Ping.
    Ping(ping::Args),
    /// Decode a capture of `tacit listen --capture` to JSON lines of the shape listen prints.
    Inspect(inspect::Args),
    /// Check an implementation against docs/PROTOCOL.md: dial it (or, with --serve, be dialed) and run named checks.
    Conformance(conformance::Args),
    /// Serve MCP on stdio or HTTP: every intent the peers handle is a tool (asks answer with the reply, tells once sent).
    #[cfg(feature = "mcp")]
    Mcp(mcp::Args),
    /// Organisation keys, credentials and revocation lists.
    #[command(subcommand)]
    Org(org::Command),
    /// Run a directory agent (`tacit directory serve`), where agents register and are found.
    #[command(subcommand)]
    Directory(directory::Command),
    /// Ask a directory which agents handle an intent, hold a tag, an organisation's credential or a role.
    Find(directory::FindArgs),
    /// Bridges to A2A: `tacit a2a connect URL` puts an A2A agent on the Tacit network, `tacit a2a serve`
    /// serves Tacit agents to A2A clients.
    #[cfg(feature = "a2a")]
    #[command(subcommand)]
    A2a(a2a::Command),
    /// DNS discovery: publish agents' signed records as TXT records under a domain.
    #[command(subcommand)]
    Dns(dns::Command),
    /// Check a signed receipt file offline: print its sender, receiver, intent, ids and time, then OK or the failure.
    Verify {
        /// The receipt file (a `tacit.v1.Receipt`).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return report(CliError::failure(format!("cannot start the async runtime: {e}"))),
    };
    let result = runtime.block_on(run(cli.command));
    // Do not wait for blocking reads that cannot be cancelled (stdin of
    // `tacit stream --send` when the stream ended first).
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(error),
    }
}

fn report(error: CliError) -> ExitCode {
    eprintln!("{error}");
    error.exit_code()
}

async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Keygen { out } => keys::keygen(&out),
        Command::Id { file } => keys::id(&file),
        Command::Listen(args) => listen::run(args).await,
        Command::Describe(args) => describe::run(args).await,
        Command::Ask(args) => send::ask(args).await,
        Command::Tell(args) => send::tell(args).await,
        Command::Stream(args) => stream::run(args).await,
        Command::Ping(args) => ping::run(args).await,
        Command::Directory(command) => directory::run(command).await,
        Command::Find(args) => directory::find(args).await,
        Command::Inspect(args) => inspect::run(args),
        Command::Conformance(args) => conformance::run(args).await,
        #[cfg(feature = "mcp")]
        Command::Mcp(args) => mcp::run(args).await,
        Command::Org(command) => org::run(command).await,
        #[cfg(feature = "a2a")]
        Command::A2a(command) => a2a::run(command).await,
        Command::Dns(command) => dns::run(command),
        Command::Verify { file } => verify::run(&file),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
