//! `tacit ask` and `tacit tell`: any intent an agent offers, from JSON,
//! through the schema the agent serves.
//!
//! Two connections: the first describes the agent (`DescribeAgent`, then a
//! schema fetch for the intent); the second comes from an agent built to
//! emit that intent, so it is negotiated in the handshake. The second
//! insists on the AgentId the first one found.

use std::io::Read as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use tacit::intents::{AgentDescription, HealthCheck};
use tacit::{Agent, AskOptions, IntentId, Schema, TellOptions};

use crate::connect::{self, ConnectArgs, Connection};
use crate::error::{self, CliError, Exit};
use crate::json;

/// How long `tell` keeps the connection open after the message is through.
const TELL_LINGER: Duration = Duration::from_millis(150);

/// Arguments of `tacit ask`.
#[derive(Debug, clap::Args)]
pub(crate) struct AskArgs {
    #[command(flatten)]
    target: Target,
    /// Seconds to wait for the reply.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = connect::parse_secs)]
    timeout: Duration,
    /// Sign the ask with this tool's identity (`--key`), so the agent can keep a receipt of it.
    #[arg(long)]
    signed: bool,
    /// Ask for a signed answer, verify it, and write its receipt to FILE (check it with `tacit verify FILE`).
    #[arg(long, value_name = "FILE")]
    receipt: Option<std::path::PathBuf>,
}

/// Arguments of `tacit tell`.
#[derive(Debug, clap::Args)]
pub(crate) struct TellArgs {
    #[command(flatten)]
    target: Target,
    /// Sign the tell with this tool's identity (`--key`), so the agent can keep a receipt of it.
    #[arg(long)]
    signed: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// The intent: its full name (tacit.intents.v1.Ping), its last part if that is unique (Ping), or its id in hex.
    #[arg(value_name = "INTENT")]
    pub(crate) intent: String,
    /// The message as JSON (protobuf JSON mapping); `-` reads it from stdin.
    #[arg(value_name = "JSON", default_value = "{}")]
    pub(crate) json: String,
}

/// The intent, its schema and the encoded message, ready to send.
pub(crate) struct Prepared {
    pub(crate) id: IntentId,
    pub(crate) name: String,
    pub(crate) schema: Schema,
    pub(crate) payload: Bytes,
    pub(crate) agent: tacit::AgentId,
}

pub(crate) async fn ask(args: AskArgs) -> Result<(), CliError> {
    let target = &args.target;
    let addr = target.connect.addr.as_str();
    let prepared = prepare(target).await?;
    let connection = dial_emitting(target, &prepared).await?;
    let options = AskOptions::default().deadline(args.timeout).signed(args.signed).sign_reply(args.receipt.is_some());
    let asking = connection.peer.ask_raw(prepared.id, prepared.payload.clone(), options);
    let reply = connect::bounded(addr, &prepared.name, args.timeout + Duration::from_millis(500), asking).await;
    connection.close().await;
    let reply = reply?;
    if let (Some(path), Some(receipt)) = (&args.receipt, &reply.receipt) {
        std::fs::write(path, receipt.encode_to_vec())
            .map_err(|e| CliError::failure(format!("cannot write the receipt to {}: {e}", path.display())))?;
        eprintln!("receipt of the answer, signed by {}, written to {}", receipt.sender, path.display());
    }
    if reply.act != tacit::Act::Inform {
        eprintln!("the agent answered {}", error::act_name(reply.act));
    }
    let shown = match reply.intent {
        None => json::undecoded("the reply names an intent this tool cannot resolve", &reply.payload),
        Some(id) => match related(&prepared.schema, id) {
            None => json::undecoded(&format!("the reply's intent {id} is not in the request's schema"), &reply.payload),
            Some(schema) => match schema.decode(&reply.payload) {
                Ok(message) => json::to_json(&message),
                Err(e) => {
                    json::undecoded(&format!("the reply does not decode as {}: {e}", schema.name()), &reply.payload)
                }
            },
        },
    };
    println!("{shown}");
    Ok(())
}

pub(crate) async fn tell(args: TellArgs) -> Result<(), CliError> {
    let target = &args.target;
    let addr = target.connect.addr.as_str();
    let prepared = prepare(target).await?;
    let connection = dial_emitting(target, &prepared).await?;
    let limit = Duration::from_secs(10);
    let telling =
        connection.peer.tell_raw(prepared.id, prepared.payload.clone(), TellOptions::default().signed(args.signed));
    let told = connect::bounded(addr, &prepared.name, limit, telling).await;
    // A tell is only queued when `tell_raw` returns: one round trip lets it
    // reach the wire before the connection closes.
    let confirmed = match told {
        Ok(()) => connect::bounded(addr, "HealthCheck", limit, connection.peer.ask(HealthCheck {})).await.map(drop),
        Err(e) => Err(e),
    };
    if confirmed.is_ok() {
        // A receiver that decodes through schemas (like `tacit listen`)
        // fetches the intent's schema from this agent: stay a moment for it.
        tokio::time::sleep(TELL_LINGER).await;
    }
    connection.close().await;
    confirmed?;
    eprintln!("told {} to {}", prepared.name, prepared.agent);
    Ok(())
}

/// The reply's schema: `id` in the request's descriptor set.
fn related(request: &Schema, id: IntentId) -> Option<Schema> {
    if id == request.id() { Some(request.clone()) } else { request.related(id) }
}

/// Describes the agent, finds the intent, fetches its schema and builds the message.
pub(crate) async fn prepare(target: &Target) -> Result<Prepared, CliError> {
    let args = &target.connect;
    let addr = args.addr.as_str();
    let text = read_json(&target.json)?;
    let limit = Duration::from_secs(5);
    let connection = connect::dial(args, Agent::builder(), args.expect).await?;
    let found = async {
        let description = connect::describe_agent(&connection, addr, limit).await?;
        let (id, name) = find_intent(&description, &target.intent, addr)?;
        let schema = match tokio::time::timeout(limit, connection.peer.describe(id)).await {
            Ok(Ok(schema)) => schema,
            Ok(Err(e)) => {
                return Err(CliError::failure(format!(
                    "the agent at {addr} did not serve a usable schema of {name}: {e}"
                ))
                .hint("the agent offers the intent but cannot describe it; ask its operator"));
            }
            Err(_) => return Err(CliError::new(Exit::Timeout, format!("no schema of {name} from {addr} within 5 s"))),
        };
        Ok((id, name, schema))
    }
    .await;
    let agent = connection.peer.id();
    connection.close().await;
    let (id, name, schema) = found?;
    let message = json::from_json(schema.message_descriptor(), &text)?;
    Ok(Prepared { id, name, schema, payload: message.encode_to_vec().into(), agent })
}

/// Dials again from an agent that emits the intent, and waits until the
/// agent has agreed to take it (an agent that takes any intent, like
/// `tacit listen`, agrees in a capability update after the handshake).
pub(crate) async fn dial_emitting(target: &Target, prepared: &Prepared) -> Result<Connection, CliError> {
    let builder = Agent::builder().emits_raw(prepared.id, prepared.name.clone());
    let connection = connect::dial(&target.connect, builder, Some(prepared.agent)).await?;
    let started = Instant::now();
    loop {
        let negotiated = connection.peer.session().negotiated();
        if negotiated.is_some_and(|negotiated| negotiated.send_alias(&prepared.id).is_some()) {
            return Ok(connection);
        }
        if started.elapsed() > target.connect.connect_timeout {
            let addr = &target.connect.addr;
            connection.close().await;
            return Err(CliError::new(
                Exit::UnknownIntent,
                format!("the agent at {addr} offers {} but did not agree to take it from this tool", prepared.name),
            )
            .hint("`tacit describe ADDR` shows which intents the agent handles"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn read_json(argument: &str) -> Result<String, CliError> {
    if argument != "-" {
        return Ok(argument.to_owned());
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| CliError::new(Exit::BadJson, format!("cannot read the message from stdin: {e}")))?;
    Ok(text)
}

/// Finds `query` among the intents the agent offers: by full name, by its
/// last part when unique, or by id.
fn find_intent(description: &AgentDescription, query: &str, addr: &str) -> Result<(IntentId, String), CliError> {
    let offered: Vec<(IntentId, &tacit::intents::IntentInfo)> = description
        .intents
        .iter()
        .filter_map(|info| IntentId::try_from(&info.intent_id[..]).ok().map(|id| (id, info)))
        .collect();
    let by_id: Option<IntentId> = query.parse().ok();
    let short = |name: &str| name.rsplit('.').next().unwrap_or(name).to_owned();
    let mut matches: Vec<&(IntentId, &tacit::intents::IntentInfo)> =
        offered.iter().filter(|(id, info)| Some(*id) == by_id || info.name == query).collect();
    if matches.is_empty() {
        matches = offered.iter().filter(|(_, info)| short(&info.name) == query).collect();
    }
    let handled: Vec<&str> =
        offered.iter().filter(|(_, info)| info.handles).map(|(_, info)| info.name.as_str()).collect();
    let offers =
        format!("the agent handles: {}", if handled.is_empty() { "nothing".into() } else { handled.join(", ") });
    match matches.as_slice() {
        [(id, info)] if info.handles => Ok((*id, info.name.clone())),
        [(_, info)] => Err(CliError::new(
            Exit::UnknownIntent,
            format!("the agent at {addr} emits {} but does not handle it", info.name),
        )
        .hint(offers)),
        [] => {
            let close: Vec<&str> = offered
                .iter()
                .map(|(_, info)| info.name.as_str())
                .filter(|name| {
                    let (name, query) = (name.to_lowercase(), query.to_lowercase());
                    name.contains(&query)
                        || json::edit_distance(&name, &query) <= 3
                        || json::edit_distance(&short(&name), &query) <= 2
                })
                .collect();
            let mut message = format!("the agent at {addr} does not offer an intent named {query:?}");
            if !close.is_empty() {
                message.push_str(&format!("; close names: {}", close.join(", ")));
            }
            Err(CliError::new(Exit::UnknownIntent, message).hint(offers))
        }
        many => {
            let names: Vec<&str> = many.iter().map(|(_, info)| info.name.as_str()).collect();
            Err(CliError::new(Exit::UnknownIntent, format!("{query:?} is ambiguous: {}", names.join(", ")))
                .hint("give the intent's full name"))
        }
    }
}
