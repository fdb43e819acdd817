//! `tacit stream`: opens a stream lane to an agent with a JSON opening,
//! prints what the agent streams back as JSON lines, and optionally sends
//! JSON lines read from stdin.
//!
//! Data envelopes on a stream lane carry the opening's intent, not their
//! own, so their types come from the opening's schema: the
//! `(tacit.v1.stream_item)` and `(tacit.v1.stream_send)` options. An item
//! of an intent that declares no item type is printed undecoded.
//!
//! The lane ends cleanly when the agent ends its direction (exit 0), after
//! `--count` items, or on Ctrl-C; the tool ends its own direction when it
//! has nothing more to send (at once without `--send`, at the end of stdin
//! with it). `--timeout` bounds the whole exchange (exit 8).

use std::time::Duration;

use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use serde_json::Value;
use tacit::ErrorCode;
use tokio::io::AsyncBufReadExt as _;

use crate::connect::{self, Connection};
use crate::error::{self, CliError, Exit};
use crate::json;
use crate::send::{self, Prepared, Target};

/// Arguments of `tacit stream`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: Target,
    /// Also send items: one JSON object per line of stdin, of the type the intent's
    /// `(tacit.v1.stream_send)` option names; the tool's direction ends at the end of stdin.
    #[arg(long)]
    send: bool,
    /// Stop after this many items from the agent.
    #[arg(short = 'n', long, value_name = "N")]
    count: Option<u64>,
    /// Seconds the stream may stay open before the tool gives up (exit 8).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = connect::parse_secs)]
    timeout: Duration,
}

pub(crate) async fn run(args: Args) -> Result<(), CliError> {
    let target = &args.target;
    if args.send && target.json == "-" {
        return Err(CliError::new(
            Exit::BadJson,
            "with --send, stdin carries the items: give the opening as an argument",
        ));
    }
    let prepared = send::prepare(target).await?;
    let types = json::stream_types(prepared.schema.message_descriptor());
    if !types.is_stream() {
        eprintln!(
            "{} declares no stream types (options tacit.v1.stream_item / stream_send): items are shown undecoded",
            prepared.name
        );
    }
    let send_type = match (args.send, types.send) {
        (false, _) => None,
        (true, Some(send)) => Some(send),
        (true, None) => {
            return Err(CliError::new(
                Exit::BadJson,
                format!("{} declares no type to send on its stream (option tacit.v1.stream_send)", prepared.name),
            ));
        }
    };
    let connection = send::dial_emitting(target, &prepared).await?;
    let outcome = stream(&connection, &prepared, &args, types.item.as_ref(), send_type).await;
    connection.close().await;
    let received = outcome?;
    eprintln!("{received} item(s) from {}", prepared.agent);
    Ok(())
}

/// Opens the lane and runs it to its end; returns how many items arrived.
async fn stream(
    connection: &Connection,
    prepared: &Prepared,
    args: &Args,
    item_type: Option<&MessageDescriptor>,
    send_type: Option<MessageDescriptor>,
) -> Result<u64, CliError> {
    let addr = args.target.connect.addr.as_str();
    // The raw stream lane of the session: this tool has no Rust type for
    // the intent (`Peer::stream` takes typed halves).
    let (sender, mut receiver) = connection
        .peer
        .session()
        .open_stream(prepared.id, prepared.payload.clone())
        .await
        .map_err(|e| stream_error(&e, addr, &prepared.name))?;
    let mut sending = std::pin::pin!(send_items(sender, send_type, addr, &prepared.name));
    let mut sent = false;
    let mut received = 0u64;
    let timeout = tokio::time::sleep(args.timeout);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(timeout, interrupted);
    loop {
        if args.count.is_some_and(|count| received >= count) {
            return Ok(received);
        }
        tokio::select! {
            done = &mut sending, if !sent => {
                sent = true;
                done?;
            }
            item = receiver.recv() => match item {
                Ok(Some(envelope)) => {
                    received += 1;
                    if !print_line(&show(item_type, &envelope.payload)) {
                        return Ok(received);
                    }
                }
                Ok(None) => return Ok(received),
                Err(e) => return Err(stream_error(&e, addr, &prepared.name)),
            },
            () = &mut timeout => {
                return Err(CliError::new(
                    Exit::Timeout,
                    format!(
                        "{}: the stream from {addr} did not end within {} ({received} items)",
                        prepared.name,
                        connect::show_duration(args.timeout)
                    ),
                )
                .hint("raise --timeout, or stop after some items with --count"));
            }
            _ = &mut interrupted => return Ok(received),
        }
    }
}

/// Sends the lines of stdin as items of `send_type` (none without it), then
/// ends the tool's direction.
async fn send_items(
    mut sender: tacit::transport::FrameSender,
    send_type: Option<MessageDescriptor>,
    addr: &str,
    intent: &str,
) -> Result<(), CliError> {
    if let Some(send_type) = send_type {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut number = 0;
        loop {
            let line =
                lines.next_line().await.map_err(|e| CliError::new(Exit::BadJson, format!("cannot read stdin: {e}")))?;
            let Some(line) = line else { break };
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            let item = json::from_json(&send_type, &line).map_err(|mut e| {
                e.message = format!("stdin line {number}: {}", e.message);
                e
            })?;
            sender.send(item.encode_to_vec().into()).await.map_err(|e| stream_error(&e, addr, intent))?;
        }
    }
    sender.finish().await.map_err(|e| stream_error(&e, addr, intent))
}

/// An item as JSON: decoded through the declared item type, or undecoded.
fn show(item_type: Option<&MessageDescriptor>, payload: &bytes::Bytes) -> Value {
    match item_type {
        None => json::undecoded("the intent declares no stream item type (option tacit.v1.stream_item)", payload),
        Some(item_type) => match DynamicMessage::decode(item_type.clone(), payload.clone()) {
            Ok(message) => json::to_json(&message),
            Err(e) => json::undecoded(&format!("does not decode as {}: {e}", item_type.full_name()), payload),
        },
    }
}

/// One line on stdout; `false` when nobody reads it any more.
fn print_line(line: &Value) -> bool {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

/// A stream lane's error, for the user.
fn stream_error(error: &tacit::transport::StreamError, addr: &str, intent: &str) -> CliError {
    use tacit::transport::StreamError;
    match error {
        StreamError::Reset(code) => {
            let name = i32::try_from(*code).ok().and_then(|code| ErrorCode::try_from(code).ok());
            let shown = name.map_or_else(|| format!("{code:#x}"), |name| error::code_name(name).to_owned());
            let failure =
                CliError::new(Exit::Rejected, format!("the agent at {addr} ended the {intent} stream with {shown}"));
            match name {
                Some(ErrorCode::IntentNotNegotiated | ErrorCode::InvalidStreamKind | ErrorCode::Cancelled) => failure
                    .hint("the agent may not serve stream lanes of this intent; `tacit describe ADDR` shows its lanes"),
                _ => failure,
            }
        }
        StreamError::WrongLane { offered, .. } => CliError::new(
            Exit::Rejected,
            format!("the agent at {addr} takes {intent} on {offered}, not on the stream lane"),
        )
        .hint("`tacit describe ADDR` shows which intents the agent handles"),
        StreamError::ConnectionLost(why) => CliError::new(
            Exit::Unreachable,
            format!("the session with {addr} failed during the {intent} stream: {why}"),
        ),
        StreamError::Truncated => CliError::failure(format!(
            "the {intent} stream from {addr} was cut off before its end marker: items may be missing"
        )),
        other => CliError::failure(format!("the {intent} stream with {addr}: {other}")),
    }
}
