//! `tacit directory serve` and `tacit find`: run a directory agent, and ask
//! one who handles an intent, holds a tag, an organisation's credential or
//! a role.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tacit::credential::OrgKey;
use tacit::directory::{DirectoryClient, Query};
use tacit::record::VerifiedRecord;
use tacit::{Agent, AgentCard, AgentId, IntentId};
use tacit_directory::{Directory, Limits};

use crate::connect::{self, ConnectArgs};
use crate::error::CliError;

/// `tacit directory …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Run a directory agent: agents register their signed records, and `tacit find` (or any agent)
    /// looks them up. Stops on Ctrl-C / SIGTERM.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Where to listen (UDP).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4455")]
    listen: SocketAddr,
    /// The directory's key file (created if missing): its AgentId is what agents name in
    /// `--directory ID@ADDR`.
    #[arg(long, value_name = "FILE", default_value = "directory.key")]
    key: PathBuf,
    /// The database file of records (redb; created if missing). Registrations survive restarts.
    #[arg(long, value_name = "FILE", default_value = "directory.redb", conflicts_with = "memory")]
    data: PathBuf,
    /// Keep records in memory only (lost when the directory stops).
    #[arg(long)]
    memory: bool,
    /// Records held in all.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_records)]
    max_records: usize,
    /// Records one peer may hold registered at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().records_per_peer)]
    records_per_peer: usize,
    /// Registrations one peer may send per minute.
    #[arg(long, value_name = "N", default_value_t = Limits::default().registrations_per_minute)]
    registrations_per_minute: u32,
}

pub(crate) async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let limits = Limits::default()
        .max_records(args.max_records)
        .records_per_peer(args.records_per_peer)
        .registrations_per_minute(args.registrations_per_minute);
    let directory = if args.memory {
        Directory::in_memory(limits)
    } else {
        Directory::open(&args.data, limits).map_err(|e| {
            CliError::failure(format!("cannot open {}: {e}", args.data.display()))
                .hint("another directory may hold the file; give another --data, or --memory")
        })?
    };
    let loaded = directory.loaded();
    let builder = Agent::builder().key_file(&args.key).card(
        AgentCard::new("tacit-directory").with_role("directory").with_software_version(env!("CARGO_PKG_VERSION")),
    );
    let agent = directory.serve(builder).bind(args.listen).await.map_err(|e| {
        CliError::failure(format!("cannot listen on {}: {e}", args.listen))
            .hint("pick another --listen (port 0 picks a free port)")
    })?;
    let local = agent.local_addr().map_err(|e| CliError::failure(e.to_string()))?;
    if !args.memory {
        eprintln!(
            "loaded {} records ({} expired) from {} in {} ms",
            loaded.records,
            loaded.dropped,
            args.data.display(),
            loaded.took.as_millis()
        );
    }
    eprintln!("directory {} listening on {local}", agent.id());
    eprintln!("agents register with --directory {}@{local}", agent.id());
    tacit::shutdown_signal().await;
    eprintln!("stopping");
    agent.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

/// `tacit find`.
#[derive(Debug, clap::Args)]
pub(crate) struct FindArgs {
    /// The directory, as ID@HOST:PORT.
    #[arg(long, value_name = "ID@HOST:PORT", value_parser = connect::parse_directory)]
    directory: (AgentId, String),
    /// Agents that handle this intent: its full name (market.v1.ReserveSlot) or its id in hex.
    #[arg(long, value_name = "NAME|HEX")]
    intent: Option<String>,
    /// Agents with this tag (a role of their card).
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// Agents holding a credential of this organisation (its key).
    #[arg(long, value_name = "ORG_KEY")]
    org: Option<OrgKey>,
    /// Agents holding a credential with this role.
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// Only this agent.
    #[arg(long, value_name = "AGENT_ID")]
    agent: Option<AgentId>,
    /// At most this many (1 to 1000).
    #[arg(long, value_name = "N", default_value = "100")]
    limit: u32,
    /// Print JSON (one object: `agents`, `truncated`) instead of a table.
    #[arg(long)]
    json: bool,
    /// Dial with the identity in this key file (default: a fresh identity each run).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Seconds to wait for the directory.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = connect::parse_secs)]
    timeout: Duration,
}

pub(crate) async fn find(args: FindArgs) -> Result<(), CliError> {
    let mut query = Query::new();
    if let Some(intent) = &args.intent {
        query = match intent.parse::<IntentId>() {
            Ok(id) => query.intent(id),
            Err(_) => query.intent_name(intent.clone()),
        };
    }
    query.tag = args.tag.clone();
    query.org = args.org;
    query.role = args.role.clone();
    query.agent_id = args.agent;
    let (id, addr) = &args.directory;
    let connect = ConnectArgs {
        addr: addr.clone(),
        expect: Some(*id),
        key: args.key.clone(),
        connect_timeout: args.timeout,
        directory: Vec::new(),
        mdns: false,
        dns: Vec::new(),
        dns_server: Vec::new(),
    };
    let connection = connect::dial(&connect, Agent::builder(), Some(*id)).await?;
    let client = DirectoryClient::new(connection.peer.clone());
    let found = connect::bounded(addr, "FindAgents", args.timeout, client.find(&query, args.limit)).await;
    connection.close().await;
    let found = found?;
    if found.rejected > 0 {
        eprintln!("warning: the directory sent {} records that do not verify or match; left out", found.rejected);
    }
    let now = SystemTime::now();
    if args.json {
        let agents: Vec<Value> = found.records.iter().map(|r| record_json(r, now)).collect();
        println!("{}", json!({ "agents": agents, "truncated": found.truncated }));
    } else {
        print_table(&found.records, now);
        if found.truncated {
            eprintln!("(more matched; raise --limit)");
        }
    }
    Ok(())
}

fn record_json(verified: &VerifiedRecord, now: SystemTime) -> Value {
    let r = &verified.record;
    json!({
        "agent_id": r.agent_id.to_string(),
        "name": r.name,
        "addrs": r.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "tags": r.tags,
        "intents": r.intents.iter().map(|(id, name)| json!({ "id": id.to_string(), "name": name })).collect::<Vec<_>>(),
        "credentials": verified.credentials(now).iter().map(|c| json!({ "org": c.org.to_string(), "roles": c.roles })).collect::<Vec<_>>(),
        "expires_in_s": r.expires_at().duration_since(now).map_or(0, |d| d.as_secs()),
    })
}

fn print_table(records: &[VerifiedRecord], now: SystemTime) {
    let rows: Vec<[String; 5]> = records
        .iter()
        .map(|v| {
            let r = &v.record;
            [
                r.agent_id.to_string(),
                r.name.clone(),
                r.addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                r.tags.join(","),
                format!("{} s", r.expires_at().duration_since(now).map_or(0, |d| d.as_secs())),
            ]
        })
        .collect();
    let header = ["AGENT", "NAME", "ADDRESSES", "TAGS", "EXPIRES IN"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        let text: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(&header.map(String::from));
    for row in &rows {
        line(row);
    }
    if rows.is_empty() {
        eprintln!("no agent matches");
    }
}
