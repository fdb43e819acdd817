//! `tacit dns record`: the zone-file lines that publish an agent's signed
//! record under a domain (docs/PROTOCOL.md, "DNS records").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tacit::Identity;
use tacit::dns::{normalize_origin, zone_lines};
use tacit_handshake::record::{AgentRecord, MAX_TTL};

use crate::error::CliError;

/// The `tacit dns` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Sign a record for the agent in a key file and print the zone-file line (a TXT record at
    /// `_tacit.<agentid>.<origin>`) that publishes it. Re-run and replace the line before --ttl runs out.
    Record(RecordArgs),
}

/// `tacit dns record`.
#[derive(Debug, clap::Args)]
pub(crate) struct RecordArgs {
    /// The agent's key file (it signs the record).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The domain the record is published under (e.g. agents.example.com).
    #[arg(long, value_name = "DOMAIN")]
    origin: String,
    /// An address the agent listens on, IP:PORT (repeatable).
    #[arg(long = "addr", value_name = "ADDR", required = true)]
    addrs: Vec<SocketAddr>,
    /// The agent's name.
    #[arg(long, value_name = "N")]
    name: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,
    /// How long the record holds from now, in seconds (at most 86400).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    ttl: u32,
    /// The DNS TTL of the TXT record, in seconds (default: a tenth of --ttl, at least 60 and at most
    /// --ttl, so resolvers do not cache the record much past its expiry).
    #[arg(long, value_name = "SECONDS")]
    dns_ttl: Option<u32>,
}

pub(crate) fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Record(args) => record(args),
    }
}

fn record(args: RecordArgs) -> Result<(), CliError> {
    if args.ttl == 0 || u64::from(args.ttl) > MAX_TTL.as_secs() {
        return Err(CliError::failure(format!("--ttl must be 1 to {} seconds", MAX_TTL.as_secs())));
    }
    let origin = normalize_origin(&args.origin).map_err(|e| CliError::failure(format!("--origin: {e}")))?;
    let identity = Identity::load(&args.key).map_err(|e| CliError::failure(e.to_string()))?;
    let mut record = AgentRecord::new(identity.agent_id(), SystemTime::now(), Duration::from_secs(args.ttl.into()));
    record.addrs = args.addrs;
    record.name = args.name.unwrap_or_default();
    record.tags = args.tags;
    let signed = record.sign(&identity);
    // Refuse to print what every reader would refuse (a duplicate address,
    // an over-long name or tag, ...).
    signed.verify(SystemTime::now()).map_err(|e| CliError::failure(format!("the record would not verify: {e}")))?;
    let dns_ttl = args.dns_ttl.unwrap_or_else(|| (args.ttl / 10).max(60).min(args.ttl));
    let lines = zone_lines(&signed, &origin, dns_ttl);
    print!("{lines}");
    Ok(())
}
