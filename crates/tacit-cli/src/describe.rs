//! `tacit describe`: an agent's id, card and intents.

use std::collections::BTreeMap;
use std::time::Duration;

use data_encoding::HEXLOWER;
use serde_json::json;
use tacit::Agent;
use tacit::intents::AgentDescription;

use crate::connect::{self, ConnectArgs};
use crate::error::CliError;

/// Arguments of `tacit describe`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the description.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = connect::parse_secs)]
    timeout: Duration,
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    let connection = connect::dial(&args.connect, Agent::builder(), args.connect.expect).await?;
    let description = connect::describe_agent(&connection, &args.connect.addr, args.timeout).await?;
    let agent_id = connection.peer.id().to_string();
    connection.close().await;
    if args.json {
        println!("{}", to_json(&agent_id, &args.connect.addr, &description));
    } else {
        print!("{}", to_table(&agent_id, &args.connect.addr, &description));
    }
    Ok(())
}

fn to_json(agent_id: &str, addr: &str, description: &AgentDescription) -> serde_json::Value {
    let metadata: BTreeMap<_, _> = description.metadata.iter().collect();
    let intents: Vec<_> = description
        .intents
        .iter()
        .map(|intent| {
            json!({
                "name": intent.name,
                "intent_id": HEXLOWER.encode(&intent.intent_id),
                "handles": intent.handles,
                "emits": intent.emits,
            })
        })
        .collect();
    json!({
        "agent_id": agent_id,
        "address": addr,
        "card": {
            "name": description.name,
            "description": description.description,
            "roles": description.roles,
            "software_version": description.software_version,
            "metadata": metadata,
        },
        "intents": intents,
    })
}

fn to_table(agent_id: &str, addr: &str, description: &AgentDescription) -> String {
    let mut out = String::new();
    let mut row = |label: &str, value: &str| {
        if !value.is_empty() {
            out.push_str(&format!("{label:<12} {value}\n"));
        }
    };
    row("agent", agent_id);
    row("address", addr);
    row("name", &description.name);
    row("description", &description.description);
    row("roles", &description.roles.join(", "));
    row("version", &description.software_version);
    let metadata: BTreeMap<_, _> = description.metadata.iter().collect();
    for (key, value) in metadata {
        row("metadata", &format!("{key} = {value}"));
    }
    out.push_str(&format!("intents ({}):\n", description.intents.len()));
    let width = description.intents.iter().map(|intent| intent.name.len()).max().unwrap_or(0);
    for intent in &description.intents {
        let roles = match (intent.handles, intent.emits) {
            (true, true) => "handles, emits",
            (true, false) => "handles",
            (false, true) => "emits",
            (false, false) => "-",
        };
        let id = HEXLOWER.encode(&intent.intent_id);
        out.push_str(&format!("  {:<width$}  {}  {roles}\n", intent.name, id));
    }
    out
}
