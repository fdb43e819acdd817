//! `tacit inspect`: decodes a capture of `tacit listen --capture` (or a
//! file of bare Tacit frames) to JSON lines of the same shape `listen`
//! prints (see [`crate::record`]).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;

use bytes::BytesMut;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use serde_json::Value;
use tacit::{AgentId, IntentId};
use tacit_wire::{Envelope, FrameDecoder, IntentRef};

use crate::error::{self, CliError};
use crate::json;
use crate::record::{self, Body, CAPTURE_MAGIC, CaptureRecord, Meta};

/// The largest frame `inspect` reads and `listen --capture` writes.
pub(crate) const MAX_CAPTURED_FRAME: usize = 64 << 20;

/// Arguments of `tacit inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The capture file of `tacit listen --capture`, or a file of bare frames (varint length + envelope).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// A FileDescriptorSet (e.g. `protoc --include_imports -o FILE`) to decode payloads of its messages.
    #[arg(long, value_name = "DESCRIPTOR_SET_FILE")]
    schema: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<(), CliError> {
    let mut known: HashMap<IntentId, (MessageDescriptor, &'static str)> = HashMap::new();
    let standard = json::index_descriptor_set(tacit::intents::FILE_DESCRIPTOR_SET)
        .map_err(|e| CliError::failure(format!("the standard intents' schema: {e}")))?;
    known.extend(standard.into_iter().map(|(id, message)| (id, (message, "builtin"))));
    if let Some(path) = &args.schema {
        let set = std::fs::read(path).map_err(|e| CliError::failure(format!("cannot read {}: {e}", path.display())))?;
        let index = json::index_descriptor_set(&set).map_err(|e| {
            CliError::failure(format!("{} is not a usable FileDescriptorSet: {e}", path.display()))
                .hint("write one with `protoc --include_imports --descriptor_set_out=FILE ...`")
        })?;
        known.extend(index.into_iter().map(|(id, message)| (id, (message, "file"))));
    }
    let data = std::fs::read(&args.file)
        .map_err(|e| CliError::failure(format!("cannot read {}: {e}", args.file.display())))?;
    let total = data.len();
    // A capture of `tacit listen` (records with sender and time), or bare frames.
    let records = data.starts_with(CAPTURE_MAGIC);
    let skip = if records { CAPTURE_MAGIC.len() } else { 0 };
    let mut buffer = BytesMut::from(&data[skip..]);
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
        let (meta, envelope) = if records {
            let record = CaptureRecord::decode(frame).map_err(|e| malformed(format!("not a capture record: {e}")))?;
            let envelope = Envelope::decode(record.envelope.clone())
                .map_err(|e| malformed(format!("{e} ({})", error::code_name(e.code()))))?;
            if !record.descriptor_set.is_empty() {
                // The schema the sender served, as listen decoded with it.
                let index = json::index_descriptor_set(&record.descriptor_set)
                    .map_err(|e| malformed(format!("the record's schema is not a FileDescriptorSet: {e}")))?;
                for (id, message) in index {
                    known.entry(id).or_insert((message, "peer"));
                }
            }
            let mut meta = meta_of(&envelope);
            meta.intent = (!record.intent_name.is_empty()).then_some(record.intent_name);
            meta.received_at_micros = Some(record.received_at_micros);
            meta.peer = AgentId::try_from(&record.sender[..]).ok();
            meta.lane = (!record.lane.is_empty()).then_some(record.lane);
            (meta, envelope)
        } else {
            let envelope =
                Envelope::decode(frame).map_err(|e| malformed(format!("{e} ({})", error::code_name(e.code()))))?;
            (meta_of(&envelope), envelope)
        };
        let line = describe(meta, &envelope, &known);
        if writeln!(out, "{line}").is_err() {
            // The reader went away (e.g. `| head`).
            return Ok(());
        }
    }
    Ok(())
}

/// What the envelope itself says (the capture record adds sender, time and lane).
fn meta_of(envelope: &Envelope) -> Meta {
    Meta {
        received_at_micros: None,
        peer: None,
        lane: None,
        act: envelope.act,
        intent: None,
        intent_id: match envelope.intent {
            IntentRef::Id(id) => Some(id),
            IntentRef::Alias(_) => None,
        },
        message_id: envelope.message_id,
        in_reply_to: envelope.in_reply_to,
        conversation: envelope.conversation_id,
        deadline_micros: envelope.deadline_micros,
        trace: envelope.trace,
    }
}

fn describe(
    mut meta: Meta,
    envelope: &Envelope,
    known: &HashMap<IntentId, (MessageDescriptor, &'static str)>,
) -> Value {
    let descriptor = meta.intent_id.and_then(|id| known.get(&id));
    if let Some((descriptor, _)) = descriptor {
        meta.intent = Some(descriptor.full_name().to_owned());
    }
    let payload = &envelope.payload;
    let body = match (descriptor, envelope.intent) {
        (Some((descriptor, source)), _) => match DynamicMessage::decode(descriptor.clone(), payload.clone()) {
            Ok(message) => Body::Decoded { message: json::to_json(&message), schema: source },
            Err(e) => Body::Undecoded(json::undecoded(&format!("does not decode: {e}"), payload)),
        },
        (None, IntentRef::Alias(alias)) => Body::Undecoded(json::undecoded(
            &format!("the frame names its intent by the session alias {alias}, which only its session can resolve"),
            payload,
        )),
        (None, IntentRef::Id(_)) => {
            Body::Undecoded(json::undecoded("no schema of this intent (give one with --schema)", payload))
        }
    };
    record::line(&meta, body)
}
