//! The conformance vectors of `docs/vectors/` that concern the wire layer:
//! `intent_ids.json`, `frames.json` and `envelopes.json`. Other
//! implementations read the same files (see `docs/vectors/README.md`), so the
//! Rust code and the published vectors cannot drift apart. A vector that does
//! not hold fails with its name.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use prost_types::FileDescriptorSet;
use serde_json::{Value, json};
use tacit_wire::{
    Act, ConversationId, Envelope, ErrorCode, FrameBody, FrameDecoder, FrameEncoder, IntentId, IntentRef, SchemaError,
    TraceContext, canonical_schema,
};

fn vectors(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let vectors = doc["vectors"].as_array().unwrap_or_else(|| panic!("{file} has no vectors")).clone();
    assert!(!vectors.is_empty(), "{file} has no vectors");
    for vector in &vectors {
        let name = vector["name"].as_str().unwrap_or_else(|| panic!("{file}: a vector without a name"));
        let rule = vector["rule"].as_str().unwrap_or_else(|| panic!("{file}: vector {name} has no rule"));
        assert!(rule.contains('.'), "{file}: vector {name} has rule {rule:?}, expected section.slug");
    }
    vectors
}

fn name(vector: &Value) -> &str {
    vector["name"].as_str().unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(vector: &Value, key: &str) -> Vec<u8> {
    let text = vector[key].as_str().unwrap_or_else(|| panic!("vector {}: no {key}", name(vector)));
    assert!(text.len().is_multiple_of(2), "vector {}: odd hex in {key}", name(vector));
    (0..text.len() / 2)
        .map(|i| {
            u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or_else(|e| panic!("vector {}: {e}", name(vector)))
        })
        .collect()
}

/// The code a vector names, e.g. `"FRAME_TOO_LARGE"`.
fn code(vector: &Value) -> ErrorCode {
    let code = vector["error"].as_str().unwrap_or_default();
    ErrorCode::from_str_name(&format!("ERROR_CODE_{code}"))
        .unwrap_or_else(|| panic!("vector {}: no code {code}", name(vector)))
}

// --- intent_ids.json ---------------------------------------------------------

fn compile(vector: &Value) -> FileDescriptorSet {
    if vector.get("descriptor_set").is_some() {
        return FileDescriptorSet::decode(unhex(vector, "descriptor_set").as_slice()).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("tacit-vectors-{}-{}", std::process::id(), name(vector)));
    let files = vector["files"].as_object().unwrap_or_else(|| panic!("vector {}: no files", name(vector)));
    let mut names = Vec::new();
    for (file, source) in files {
        let path: PathBuf = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, source.as_str().unwrap()).unwrap();
        names.push(file.clone());
    }
    let set = protox::compile(&names, [&dir]).unwrap_or_else(|e| panic!("vector {}: {e}", name(vector)));
    std::fs::remove_dir_all(&dir).unwrap();
    set
}

/// Rules `id.canonical-form`, `id.json-name`, `id.default-value`, `id.syntax`.
#[test]
fn intent_id_vectors() {
    let vectors = vectors("intent_ids.json");
    for vector in &vectors {
        let set = compile(vector);
        let message = vector["message"].as_str().unwrap();
        let result = canonical_schema(&set, message);
        if let Some(error) = vector["error"].as_str() {
            let matches = match error {
                "unsupported_syntax" => matches!(result, Err(SchemaError::UnsupportedSyntax { .. })),
                "invalid_default" => matches!(result, Err(SchemaError::InvalidDefault { .. })),
                other => panic!("vector {}: unknown error {other}", name(vector)),
            };
            assert!(matches, "vector {}: expected {error}, got {result:?}", name(vector));
            continue;
        }
        let canonical = result.unwrap_or_else(|e| panic!("vector {}: {e}", name(vector)));
        let expected_form = String::from_utf8(unhex(vector, "canonical_hex")).unwrap();
        assert_eq!(canonical, expected_form, "vector {}: canonical form", name(vector));
        let id: IntentId = vector["intent_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(IntentId::from_canonical(&expected_form), id, "vector {}: hash of the canonical form", name(vector));
        assert_eq!(IntentId::of_message(&set, message), Ok(id), "vector {}", name(vector));
    }
    // The three vectors printed in docs/PROTOCOL.md are in the file too.
    assert!(vectors.iter().filter(|v| name(v).starts_with("protocol-vector-")).count() >= 3);
}

// --- frames.json -------------------------------------------------------------

/// A frame body given as raw bytes.
struct Raw(Vec<u8>);

impl FrameBody for Raw {
    fn body_len(&self) -> usize {
        self.0.len()
    }

    fn write_body(&self, buf: &mut BytesMut) {
        buf.extend_from_slice(&self.0);
    }
}

/// Rules `frame.*`: cutting a stream into frames, the size cap, the prefix.
#[test]
fn frame_vectors() {
    for vector in vectors("frames.json") {
        let max = vector["max_frame_len"].as_u64().map_or(tacit_wire::DEFAULT_MAX_FRAME_LEN, |m| m as usize);
        let stream = unhex(&vector, "stream");
        let mut decoder = FrameDecoder::new(max);
        let mut buffer = BytesMut::from(stream.as_slice());
        let mut frames = Vec::new();
        let outcome = loop {
            match decoder.decode_eof(&mut buffer) {
                Ok(Some(frame)) => frames.push(hex(&frame)),
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        if vector.get("error").is_some() {
            let error = outcome.err().unwrap_or_else(|| panic!("vector {}: decoded {frames:?}", name(&vector)));
            assert_eq!(error.code(), code(&vector), "vector {}: {error}", name(&vector));
            // Fed byte by byte, as a stream may deliver it, the error is the same.
            let mut decoder = FrameDecoder::new(max);
            let mut buffer = BytesMut::new();
            let mut streamed = None;
            for byte in &stream {
                buffer.extend_from_slice(&[*byte]);
                loop {
                    match decoder.decode(&mut buffer) {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(error) => {
                            streamed = Some(error.code());
                            break;
                        }
                    }
                }
                if streamed.is_some() {
                    break;
                }
            }
            let streamed = streamed.or_else(|| decoder.decode_eof(&mut buffer).err().map(|e| e.code()));
            assert_eq!(streamed, Some(code(&vector)), "vector {}: byte by byte", name(&vector));
            continue;
        }
        outcome.unwrap_or_else(|e| panic!("vector {}: {e}", name(&vector)));
        let expected: Vec<String> =
            vector["frames"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect();
        assert_eq!(frames, expected, "vector {}: frames", name(&vector));
        if vector["encode"].as_bool() != Some(false) {
            let encoder = FrameEncoder::new(max);
            let mut wire = BytesMut::new();
            for frame in &vector["frames"].as_array().unwrap().clone() {
                let body = Raw(unhex(&json!({ "name": name(&vector), "h": frame }), "h"));
                encoder.encode(&body, &mut wire).unwrap_or_else(|e| panic!("vector {}: {e}", name(&vector)));
            }
            assert_eq!(hex(&wire), hex(&stream), "vector {}: encoded stream", name(&vector));
        }
    }
}

// --- envelopes.json ----------------------------------------------------------

fn envelope_json(envelope: &Envelope) -> Value {
    let mut fields = json!({
        "intent": match envelope.intent {
            IntentRef::Alias(alias) => json!({ "alias": alias }),
            IntentRef::Id(id) => json!({ "intent_id": id.to_string() }),
        },
        "act": envelope.act.as_str_name(),
        "message_id": envelope.message_id.to_string(),
        "conversation_id": envelope.conversation_id.as_str(),
        "in_reply_to": envelope.in_reply_to.to_string(),
        "deadline_micros": envelope.deadline_micros.to_string(),
        "trace": envelope.trace.map(|t| json!({
            "trace_id": hex(&t.trace_id), "span_id": hex(&t.span_id), "flags": t.flags,
        })),
        "idempotent": envelope.idempotent,
        "payload": hex(&envelope.payload),
    });
    // Written only when set, so the vectors from before field 12 stand.
    if envelope.sign_reply {
        fields["sign_reply"] = json!(true);
    }
    fields
}

fn envelope_from_json(vector: &Value) -> Envelope {
    let fields = &vector["envelope"];
    let number = |key: &str| fields[key].as_str().unwrap().parse::<u64>().unwrap();
    let intent = match (fields["intent"].get("alias"), fields["intent"].get("intent_id")) {
        (Some(alias), None) => IntentRef::Alias(u32::try_from(alias.as_u64().unwrap()).unwrap()),
        (None, Some(id)) => IntentRef::Id(id.as_str().unwrap().parse().unwrap()),
        other => panic!("vector {}: intent {other:?}", name(vector)),
    };
    let act = Act::from_str_name(fields["act"].as_str().unwrap()).unwrap();
    let payload = Bytes::from(unhex(fields, "payload"));
    let mut envelope = Envelope::new(intent, act, number("message_id"), payload);
    envelope.conversation_id = ConversationId::new(fields["conversation_id"].as_str().unwrap()).unwrap();
    envelope.in_reply_to = number("in_reply_to");
    envelope.deadline_micros = number("deadline_micros");
    envelope.idempotent = fields["idempotent"].as_bool().unwrap();
    envelope.sign_reply = fields.get("sign_reply").and_then(Value::as_bool).unwrap_or(false);
    envelope.trace = fields["trace"].as_object().map(|trace| {
        let trace = Value::Object(trace.clone());
        TraceContext {
            trace_id: unhex(&trace, "trace_id").try_into().unwrap(),
            span_id: unhex(&trace, "span_id").try_into().unwrap(),
            flags: u8::try_from(trace["flags"].as_u64().unwrap()).unwrap(),
        }
    });
    envelope
}

/// Rules `env.*`: the fields of valid envelopes, and the code of each invalid one.
#[test]
fn envelope_vectors() {
    for vector in vectors("envelopes.json") {
        let body = Bytes::from(unhex(&vector, "hex"));
        let decoded = Envelope::decode(body.clone());
        if vector.get("error").is_some() {
            let error = decoded.err().unwrap_or_else(|| panic!("vector {}: decoded", name(&vector)));
            assert_eq!(error.code(), code(&vector), "vector {}: {error}", name(&vector));
            continue;
        }
        let envelope = decoded.unwrap_or_else(|e| panic!("vector {}: {e}", name(&vector)));
        assert_eq!(envelope_json(&envelope), vector["envelope"], "vector {}: fields", name(&vector));
        let built = envelope_from_json(&vector);
        assert_eq!(built, envelope, "vector {}: fields to envelope", name(&vector));
        if vector["encode"].as_bool() != Some(false) {
            assert_eq!(hex(&built.encode_to_bytes()), hex(&body), "vector {}: encoding", name(&vector));
            // prost's generated type agrees with the hand-written encoder.
            assert_eq!(
                hex(&tacit_wire::pb::Envelope::from(built).encode_to_vec()),
                hex(&body),
                "vector {}",
                name(&vector)
            );
        }
    }
}

// --- rule labels ---------------------------------------------------------------

/// Every vector names a rule of docs/PROTOCOL.md by its label
/// (`**[section.slug]**`). A section that has labels must have the one a
/// vector names; sections not labelled yet are skipped.
#[test]
fn vector_rules_are_labels_of_the_spec() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let spec = std::fs::read_to_string(root.join("docs/PROTOCOL.md")).unwrap();
    let labels: Vec<&str> =
        spec.split("**[").skip(1).filter_map(|rest| rest.split_once("]**").map(|(label, _)| label)).collect();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("docs/vectors")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Value::Object(doc) = doc else { panic!("{} is not an object", path.display()) };
        for vector in doc.values().filter_map(Value::as_array).flatten() {
            let rule = vector["rule"].as_str().unwrap_or_else(|| panic!("{}: {vector} has no rule", path.display()));
            let (section, _) = rule.split_once('.').unwrap_or_else(|| panic!("rule {rule} is not section.slug"));
            if labels.iter().any(|label| label.starts_with(&format!("{section}."))) {
                assert!(
                    labels.contains(&rule),
                    "{}: vector {} names {rule}, not in PROTOCOL.md",
                    path.display(),
                    name(vector)
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}
