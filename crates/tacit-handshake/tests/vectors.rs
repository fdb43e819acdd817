//! The conformance vectors of `docs/vectors/` that concern identity and the
//! handshake: `agent_ids.json`, `key_files.json` and `handshake.json`. Other
//! implementations read the same files (see `docs/vectors/README.md`), so the
//! Rust code and the published vectors cannot drift apart. A vector that does
//! not hold fails with its name.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use prost::Message as _;
use serde_json::{Value, json};
use tacit_handshake::{
    AgentCard, AgentId, Capabilities, Event, Handshake, HandshakeConfig, Identity, IdentityError, IntentOffer, Limits,
    Negotiated, ParseAgentIdError,
};
use tacit_wire::{ErrorCode, FrameDecoder, IntentId, pb};

fn vectors(file: &str, key: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let vectors = doc[key].as_array().unwrap_or_else(|| panic!("{file} has no {key}")).clone();
    assert!(!vectors.is_empty(), "{file} has no {key}");
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

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex {text}");
    (0..text.len() / 2).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap()).collect()
}

fn str_field<'a>(vector: &'a Value, key: &str) -> &'a str {
    vector[key].as_str().unwrap_or_else(|| panic!("vector {}: no {key}", name(vector)))
}

// --- agent_ids.json ----------------------------------------------------------

fn agent_id_error(error: &ParseAgentIdError) -> &'static str {
    match error {
        ParseAgentIdError::WrongLength(_) => "wrong_length",
        ParseAgentIdError::InvalidChar { .. } => "invalid_char",
        ParseAgentIdError::NonZeroTrailingBits { .. } => "non_zero_trailing_bits",
        ParseAgentIdError::NotAPublicKey => "not_a_public_key",
        ParseAgentIdError::SmallOrderKey => "small_order",
        ParseAgentIdError::NonCanonicalKey => "non_canonical",
        ParseAgentIdError::WrongByteLength(_) => "wrong_byte_length",
        _ => "other",
    }
}

/// Rules `agentid.valid-key` (the 8 small-order points and non-canonical
/// encodings are refused from bytes and from text alike; before this rule,
/// non-canonical encodings were accepted) and `agentid.printed-form`.
#[test]
fn agent_id_vectors() {
    let vectors = vectors("agent_ids.json", "vectors");
    let small_order = vectors.iter().filter(|v| v["error"] == "small_order").count();
    assert_eq!(small_order, 8, "agent_ids.json must hold the 8 small-order points");
    for vector in &vectors {
        let from_bytes = vector.get("public_key").map(|key| AgentId::try_from(unhex(key.as_str().unwrap()).as_slice()));
        let from_text = vector.get("agent_id").map(|text| text.as_str().unwrap().parse::<AgentId>());
        if let Some(error) = vector["error"].as_str() {
            for result in [from_bytes, from_text].into_iter().flatten() {
                let found = result.as_ref().err().map(agent_id_error);
                assert_eq!(found, Some(error), "vector {}: got {result:?}", name(vector));
            }
            if error == "small_order" {
                // They are small-order points indeed (not merely refused).
                let key: [u8; 32] = unhex(str_field(vector, "public_key")).try_into().unwrap();
                assert!(ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap().is_weak(), "vector {}", name(vector));
            }
            continue;
        }
        let id = from_bytes.unwrap().unwrap_or_else(|e| panic!("vector {}: {e}", name(vector)));
        assert_eq!(from_text.unwrap(), Ok(id), "vector {}: text", name(vector));
        assert_eq!(id.to_string(), str_field(vector, "agent_id"), "vector {}: printed form", name(vector));
        if let Some(secret) = vector["secret_key"].as_str() {
            let secret: [u8; 32] = unhex(secret).try_into().unwrap();
            assert_eq!(Identity::from_secret_bytes(&secret).agent_id(), id, "vector {}: key pair", name(vector));
        }
    }
}

// --- key_files.json ----------------------------------------------------------

/// Rules `keyfile.*`: what loads, to which identity, and what is refused.
#[test]
fn key_file_vectors() {
    let dir = tempfile::tempdir().unwrap();
    for vector in vectors("key_files.json", "vectors") {
        if vector["unix_only"] == true && !cfg!(unix) {
            continue;
        }
        let path = dir.path().join(format!("{}.pem", name(&vector)));
        let pem = str_field(&vector, "pem");
        std::fs::write(&path, pem).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = u32::from_str_radix(str_field(&vector, "mode"), 8).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let loaded = Identity::load(&path);
        if let Some(error) = vector["error"].as_str() {
            let found = match &loaded {
                Err(IdentityError::Corrupt { .. }) => "corrupt",
                Err(IdentityError::InsecurePermissions { .. }) => "insecure_permissions",
                _ => "something else",
            };
            assert_eq!(found, error, "vector {}: got {loaded:?}", name(&vector));
            // Never modified.
            assert_eq!(std::fs::read_to_string(&path).unwrap(), pem, "vector {}", name(&vector));
            continue;
        }
        let identity = loaded.unwrap_or_else(|e| panic!("vector {}: {e}", name(&vector)));
        assert_eq!(identity.agent_id().to_string(), str_field(&vector, "agent_id"), "vector {}", name(&vector));
        if vector["written"] == true {
            let secret: [u8; 32] = unhex(str_field(&vector, "secret_key")).try_into().unwrap();
            let written = Identity::from_secret_bytes(&secret).to_pkcs8_pem();
            assert_eq!(written.as_str(), pem, "vector {}: the file as written", name(&vector));
        }
    }
}

// --- handshake.json ----------------------------------------------------------

fn code_name(code: i32) -> String {
    let code = ErrorCode::try_from(code).map_or_else(|_| code.to_string(), |c| c.as_str_name().to_owned());
    code.strip_prefix("ERROR_CODE_").unwrap_or(&code).to_owned()
}

fn card_json(card: &pb::AgentCard) -> Value {
    json!({
        "name": card.name,
        "description": card.description,
        "roles": card.roles,
        "software_version": card.software_version,
        "metadata": card.metadata.iter().collect::<std::collections::BTreeMap<_, _>>(),
    })
}

fn capabilities_json(capabilities: &pb::Capabilities) -> Value {
    let versions = capabilities.versions.unwrap_or_default();
    let limits = capabilities.limits.unwrap_or_default();
    json!({
        "versions": { "min": versions.min, "max": versions.max },
        "intents": capabilities.intents.iter().map(|offer| json!({
            "intent_id": hex(&offer.intent_id), "name": offer.name, "handles": offer.handles, "emits": offer.emits,
        })).collect::<Vec<_>>(),
        "limits": { "max_frame_len": limits.max_frame_len, "max_concurrent_asks": limits.max_concurrent_asks },
        "features": capabilities.features.to_string(),
    })
}

fn control_json(message: &pb::ControlMessage) -> Value {
    use pb::control_message::Message;
    match message.message.as_ref() {
        Some(Message::Hello(hello)) => json!({ "hello": {
            "card": card_json(&hello.card.clone().unwrap_or_default()),
            "capabilities": capabilities_json(&hello.capabilities.clone().unwrap_or_default()),
        }}),
        Some(Message::Welcome(welcome)) => json!({ "welcome": {
            "version": welcome.version,
            "card": card_json(&welcome.card.clone().unwrap_or_default()),
            "capabilities": capabilities_json(&welcome.capabilities.clone().unwrap_or_default()),
        }}),
        Some(Message::Refusal(refusal)) => json!({ "refusal": {
            "code": code_name(refusal.code),
            "reason": refusal.reason,
            "detail_intent": hex(&refusal.detail_intent),
            "detail": hex(&refusal.detail),
        }}),
        other => json!({ "other": format!("{other:?}") }),
    }
}

/// The one control message in a frame (length prefix included).
fn decode_control(frame: &[u8]) -> pb::ControlMessage {
    let mut buffer = BytesMut::from(frame);
    let body = FrameDecoder::default().decode_eof(&mut buffer).unwrap().unwrap();
    assert!(buffer.is_empty(), "one frame only");
    pb::ControlMessage::decode(body).unwrap()
}

/// Rules `hs.hello-checks`, `hs.welcome-checks`, `hs.refusal-sent`: each message's fields, and
/// its encoding back to the same bytes.
#[test]
fn handshake_message_vectors() {
    for vector in vectors("handshake.json", "messages") {
        let frame = unhex(str_field(&vector, "frame"));
        let message = decode_control(&frame);
        assert_eq!(control_json(&message), vector["message"], "vector {}: fields", name(&vector));
        let mut encoded = BytesMut::new();
        tacit_wire::FrameEncoder::default().encode(&message, &mut encoded).unwrap();
        assert_eq!(hex(&encoded), hex(&frame), "vector {}: encoding", name(&vector));
    }
}

fn config(side: &Value) -> HandshakeConfig {
    let card = &side["card"];
    let mut agent_card = AgentCard::new(card["name"].as_str().unwrap());
    if let Some(description) = card["description"].as_str().filter(|d| !d.is_empty()) {
        agent_card = agent_card.with_description(description);
    }
    for role in card["roles"].as_array().unwrap() {
        agent_card = agent_card.with_role(role.as_str().unwrap());
    }
    if let Some(version) = card["software_version"].as_str().filter(|v| !v.is_empty()) {
        agent_card = agent_card.with_software_version(version);
    }
    for (key, value) in card["metadata"].as_object().unwrap() {
        agent_card = agent_card.with_metadata(key, value.as_str().unwrap());
    }
    let caps = &side["capabilities"];
    let mut capabilities = Capabilities::default();
    let version = |key: &str| u32::try_from(caps["versions"][key].as_u64().unwrap()).unwrap();
    capabilities.versions = version("min")..=version("max");
    for offer in caps["intents"].as_array().unwrap() {
        let id: IntentId = offer["intent_id"].as_str().unwrap().parse().unwrap();
        let name = offer["name"].as_str().unwrap();
        let mut intent = IntentOffer::handles(id, name);
        intent.handles = offer["handles"].as_bool().unwrap();
        intent.emits = offer["emits"].as_bool().unwrap();
        capabilities = capabilities.with_intent(intent);
    }
    let limit = |key: &str| u32::try_from(caps["limits"][key].as_u64().unwrap()).unwrap();
    capabilities.limits =
        *Limits::default().max_frame_len(limit("max_frame_len")).max_concurrent_asks(limit("max_concurrent_asks"));
    capabilities.features = caps["features"].as_str().unwrap().parse().unwrap();
    HandshakeConfig::new(agent_card, capabilities).unwrap()
}

fn negotiated_json(negotiated: &Negotiated) -> Value {
    let card = &negotiated.peer_card;
    json!({
        "version": negotiated.version,
        "peer_card": {
            "name": card.name, "description": card.description, "roles": card.roles,
            "software_version": card.software_version, "metadata": card.metadata,
        },
        "intents": negotiated.intents.iter().map(|intent| json!({
            "intent_id": intent.id.to_string(), "name": intent.name,
            "send_alias": intent.send_alias, "receive_alias": intent.receive_alias,
        })).collect::<Vec<_>>(),
        "limits": {
            "max_frame_len": negotiated.limits.max_frame_len,
            "max_concurrent_asks": negotiated.limits.max_concurrent_asks,
        },
        "features": negotiated.features.to_string(),
    })
}

fn outcome_json(events: &[Event]) -> Value {
    match events.first() {
        Some(Event::Established(negotiated)) => negotiated_json(negotiated),
        Some(Event::Failed { refusal, by_peer }) => {
            json!({ "failed": code_name(refusal.code as i32), "by_peer": by_peer })
        }
        other => json!({ "other": format!("{other:?}") }),
    }
}

/// Rules `hs.control-stream` and `hs.refusal-sent`: the sans-IO handshake of each side,
/// given the transcript's configurations, sends exactly the transcript's
/// frames in order and ends with its result.
#[test]
fn handshake_transcript_vectors() {
    for vector in vectors("handshake.json", "transcripts") {
        let now = Instant::now();
        let mut dialer = Handshake::dialer(Arc::new(config(&vector["dialer"])), now);
        let mut acceptor = Handshake::acceptor(Arc::new(config(&vector["acceptor"])), now);
        let mut sent = Vec::new();
        for _ in 0..4 {
            while let Some(frame) = dialer.poll_transmit() {
                sent.push(json!({ "from": "dialer", "frame": hex(&frame) }));
                acceptor.handle_data(&frame, now);
            }
            while let Some(frame) = acceptor.poll_transmit() {
                sent.push(json!({ "from": "acceptor", "frame": hex(&frame) }));
                dialer.handle_data(&frame, now);
            }
        }
        assert_eq!(Value::Array(sent), vector["messages"], "vector {}: messages", name(&vector));
        for (side, machine) in [("dialer", &mut dialer), ("acceptor", &mut acceptor)] {
            let events: Vec<Event> = std::iter::from_fn(|| machine.poll_event()).collect();
            assert_eq!(outcome_json(&events), vector["result"][side], "vector {}: {side}'s result", name(&vector));
        }
        // Each frame is one control message.
        for message in vector["messages"].as_array().unwrap() {
            let _ = decode_control(&unhex(str_field(message, "frame")));
        }
    }
}
