//! `tacit describe`: an agent's id, card and intents, each with how it is
//! used (asked, told or streamed) and the types of its replies or stream
//! items, read from the schema the agent serves (the `(tacit.v1.reply)`,
//! `(tacit.v1.stream_item)` and `(tacit.v1.stream_send)` options), and the
//! lanes on which the agent takes it from this caller (its handshake offer,
//! which with a policy holds only what the policy lets the caller use, as
//! `DescribeAgent` does).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use data_encoding::HEXLOWER;
use serde_json::{Value, json};
use tacit::intents::{AgentDescription, IntentInfo};
use tacit::{Agent, IntentId, Lane, Schema};

use crate::connect::{self, ConnectArgs, Connection};
use crate::error::CliError;
use crate::json;

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
    let described = async {
        let description = connect::describe_agent(&connection, &args.connect.addr, args.timeout).await?;
        let mut usages = Vec::with_capacity(description.intents.len());
        for intent in &description.intents {
            usages.push(usage(&connection, intent, args.timeout).await);
        }
        Ok::<_, CliError>((description, usages))
    }
    .await;
    let agent_id = connection.peer.id().to_string();
    let offered = offered_lanes(&connection);
    connection.close().await;
    let (description, usages) = described?;
    let lanes: Vec<Option<Vec<&'static str>>> = description
        .intents
        .iter()
        .map(|intent| {
            let id = IntentId::try_from(&intent.intent_id[..]).ok()?;
            intent.handles.then(|| offered.get(&id).cloned()).flatten()
        })
        .collect();
    if args.json {
        println!("{}", to_json(&agent_id, &args.connect.addr, &description, &usages, &lanes));
    } else {
        print!("{}", to_table(&agent_id, &args.connect.addr, &description, &usages, &lanes));
    }
    Ok(())
}

/// The lanes on which the agent offered this caller each intent it handles,
/// in the handshake.
fn offered_lanes(connection: &Connection) -> HashMap<IntentId, Vec<&'static str>> {
    let Some(negotiated) = connection.peer.session().negotiated() else { return HashMap::new() };
    negotiated
        .peer_offers
        .iter()
        .filter(|offer| offer.handles)
        .map(|offer| (offer.id, offer.lanes.iter().filter_map(lane_name).collect()))
        .collect()
}

fn lane_name(lane: Lane) -> Option<&'static str> {
    match lane {
        Lane::Ask => Some("ask"),
        Lane::Tell => Some("tell"),
        Lane::Stream => Some("stream"),
        Lane::Datagram => Some("datagram"),
        _ => None,
    }
}

/// How an intent is used, from its schema.
#[derive(Debug)]
enum Usage {
    /// Asked; answered with the reply type, and maybe also opens a stream.
    Asked { reply: String, stream: Option<Stream> },
    /// Opens a stream lane.
    Streamed(Stream),
    /// Neither asked with a typed reply nor streamed: told (or sent as a
    /// reply or stream item).
    Told,
    /// The schema could not be had.
    Unknown(String),
}

/// The declared types of a stream lane (`None`: nothing that way).
#[derive(Debug)]
struct Stream {
    item: Option<String>,
    send: Option<String>,
}

/// How `intent` is used, from its schema.
async fn usage(connection: &Connection, intent: &IntentInfo, limit: Duration) -> Usage {
    let Ok(id) = IntentId::try_from(&intent.intent_id[..]) else {
        return Usage::Unknown("the agent gave a malformed intent id".into());
    };
    // A standard intent's schema is compiled into this tool (and checked
    // against the id); any other is fetched from the agent.
    let standard = Schema::new(id, intent.name.clone(), Bytes::from_static(tacit::intents::FILE_DESCRIPTOR_SET));
    let schema = match standard {
        Ok(schema) => schema,
        Err(_) => match tokio::time::timeout(limit, connection.peer.describe(id)).await {
            Ok(Ok(schema)) => schema,
            Ok(Err(e)) => return Usage::Unknown(format!("no usable schema: {e}")),
            Err(_) => return Usage::Unknown("no schema within the timeout".into()),
        },
    };
    let descriptor = schema.message_descriptor();
    let types = json::stream_types(descriptor);
    let stream = types.is_stream().then(|| Stream {
        item: types.item.map(|m| m.full_name().to_owned()),
        send: types.send.map(|m| m.full_name().to_owned()),
    });
    match (json::reply_type(descriptor), stream) {
        (Some(reply), stream) => Usage::Asked { reply, stream },
        (None, Some(stream)) => Usage::Streamed(stream),
        (None, None) => Usage::Told,
    }
}

impl Usage {
    /// `ask`, `tell`, `stream`: the lanes the intent is meant for.
    fn lanes(&self) -> Option<Vec<&'static str>> {
        match self {
            Self::Asked { stream: None, .. } => Some(vec!["ask"]),
            Self::Asked { stream: Some(_), .. } => Some(vec!["ask", "stream"]),
            Self::Streamed(_) => Some(vec!["stream"]),
            Self::Told => Some(vec!["tell"]),
            Self::Unknown(_) => None,
        }
    }

    fn stream(&self) -> Option<&Stream> {
        match self {
            Self::Asked { stream, .. } => stream.as_ref(),
            Self::Streamed(stream) => Some(stream),
            Self::Told | Self::Unknown(_) => None,
        }
    }

    /// `ask → tacit.intents.v1.Pong`, `stream → acme.Forecast (sends acme.Region)`, `tell`.
    fn summary(&self) -> String {
        let stream = |stream: &Stream| {
            let item = stream.item.as_deref().unwrap_or("nothing");
            match &stream.send {
                Some(send) => format!("stream → {item} (sends {send})"),
                None => format!("stream → {item}"),
            }
        };
        match self {
            Self::Asked { reply, stream: None } => format!("ask → {reply}"),
            Self::Asked { reply, stream: Some(s) } => format!("ask → {reply}; {}", stream(s)),
            Self::Streamed(s) => stream(s),
            Self::Told => "tell".into(),
            Self::Unknown(why) => format!("? ({why})"),
        }
    }
}

fn to_json(
    agent_id: &str,
    addr: &str,
    description: &AgentDescription,
    usages: &[Usage],
    offered: &[Option<Vec<&'static str>>],
) -> Value {
    let metadata: BTreeMap<_, _> = description.metadata.iter().collect();
    let intents: Vec<_> = description
        .intents
        .iter()
        .zip(usages)
        .zip(offered)
        .map(|((intent, usage), offered)| {
            let stream = usage.stream();
            json!({
                "name": intent.name,
                "intent_id": HEXLOWER.encode(&intent.intent_id),
                "handles": intent.handles,
                "emits": intent.emits,
                "lanes": usage.lanes(),
                "offered_lanes": offered,
                "reply": match usage { Usage::Asked { reply, .. } => Some(reply), _ => None },
                "stream_item": stream.and_then(|s| s.item.as_deref()),
                "stream_send": stream.and_then(|s| s.send.as_deref()),
                "schema_error": match usage { Usage::Unknown(why) => Some(why), _ => None },
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

fn to_table(
    agent_id: &str,
    addr: &str,
    description: &AgentDescription,
    usages: &[Usage],
    offered: &[Option<Vec<&'static str>>],
) -> String {
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
    let shown: Vec<String> = offered.iter().map(|lanes| lanes.as_ref().map_or("-".into(), |l| l.join(","))).collect();
    let lanes_width = shown.iter().map(String::len).max().unwrap_or(0);
    for ((intent, usage), lanes) in description.intents.iter().zip(usages).zip(&shown) {
        let roles = match (intent.handles, intent.emits) {
            (true, true) => "handles, emits",
            (true, false) => "handles",
            (false, true) => "emits",
            (false, false) => "-",
        };
        let id = HEXLOWER.encode(&intent.intent_id);
        out.push_str(&format!(
            "  {:<width$}  {id}  {roles:<14}  {lanes:<lanes_width$}  {}\n",
            intent.name,
            usage.summary()
        ));
    }
    out
}
