//! `tacit inspect`: decodes a file of Tacit frames (as `tacit listen
//! --capture` writes them) to JSON lines.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;

use bytes::BytesMut;
use data_encoding::{BASE64, HEXLOWER};
use prost_reflect::{DynamicMessage, MessageDescriptor};
use serde_json::{Value, json};
use tacit::IntentId;
use tacit_wire::{Envelope, FrameDecoder, IntentRef};

use crate::error::{self, CliError};
use crate::json;

/// The largest frame `inspect` reads and `listen --capture` writes.
pub(crate) const MAX_CAPTURED_FRAME: usize = 64 << 20;

/// Arguments of `tacit inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The capture file: frames (varint length + envelope), one after another.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// A FileDescriptorSet (e.g. `protoc --include_imports -o FILE`) to decode payloads of its messages.
    #[arg(long, value_name = "DESCRIPTOR_SET_FILE")]
    schema: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<(), CliError> {
    let mut known: HashMap<IntentId, MessageDescriptor> = HashMap::new();
    let standard = json::index_descriptor_set(tacit::intents::FILE_DESCRIPTOR_SET)
        .map_err(|e| CliError::failure(format!("the standard intents' schema: {e}")))?;
    known.extend(standard);
    if let Some(path) = &args.schema {
        let set = std::fs::read(path).map_err(|e| CliError::failure(format!("cannot read {}: {e}", path.display())))?;
        let index = json::index_descriptor_set(&set).map_err(|e| {
            CliError::failure(format!("{} is not a usable FileDescriptorSet: {e}", path.display()))
                .hint("write one with `protoc --include_imports --descriptor_set_out=FILE ...`")
        })?;
        known.extend(index);
    }
    let data = std::fs::read(&args.file)
        .map_err(|e| CliError::failure(format!("cannot read {}: {e}", args.file.display())))?;
    let total = data.len();
    let mut buffer = BytesMut::from(&data[..]);
    let mut decoder = FrameDecoder::new(MAX_CAPTURED_FRAME);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        let offset = total - buffer.len();
        let malformed = |what: String| {
            CliError::failure(format!("{}: malformed frame at byte offset {offset}: {what}", args.file.display()))
        };
        let frame = match decoder.decode_eof(&mut buffer) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => return Err(malformed(format!("{e} ({})", error::code_name(e.code())))),
        };
        let envelope =
            Envelope::decode(frame).map_err(|e| malformed(format!("{e} ({})", error::code_name(e.code()))))?;
        let line = describe(offset, &envelope, &known);
        if writeln!(out, "{line}").is_err() {
            // The reader went away (e.g. `| head`).
            return Ok(());
        }
    }
    Ok(())
}

fn describe(offset: usize, envelope: &Envelope, known: &HashMap<IntentId, MessageDescriptor>) -> Value {
    let (intent, id) = match envelope.intent {
        IntentRef::Alias(alias) => (json!({ "alias": alias }), None),
        IntentRef::Id(id) => (json!({ "id": HEXLOWER.encode(id.as_bytes()) }), Some(id)),
    };
    let descriptor = id.and_then(|id| known.get(&id));
    let mut line = json!({
        "offset": offset,
        "act": error::act_name(envelope.act),
        "message_id": envelope.message_id.to_string(),
        "in_reply_to": (envelope.in_reply_to != 0).then(|| envelope.in_reply_to.to_string()),
        "conversation": (!envelope.conversation_id.is_empty()).then(|| envelope.conversation_id.as_str()),
        "deadline_micros": (envelope.deadline_micros != 0).then(|| envelope.deadline_micros.to_string()),
        "intent": intent,
        "intent_name": descriptor.map(|d| d.full_name()),
    });
    if let Some(trace) = &envelope.trace {
        line["trace"] = json!({
            "trace_id": HEXLOWER.encode(&trace.trace_id),
            "span_id": HEXLOWER.encode(&trace.span_id),
            "flags": trace.flags,
        });
    }
    match descriptor.map(|d| DynamicMessage::decode(d.clone(), envelope.payload.clone())) {
        Some(Ok(message)) => line["message"] = json::to_json(&message),
        Some(Err(e)) => line["undecoded"] = json::undecoded(&format!("does not decode: {e}"), &envelope.payload),
        None => line["payload_base64"] = Value::String(BASE64.encode(&envelope.payload)),
    }
    line
}
