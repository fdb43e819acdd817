//! Signed receipts (rules `receipt.*` of docs/PROTOCOL.md) and the vectors of
//! `docs/vectors/receipts.json`. `TACIT_WRITE_VECTORS=1` rewrites that file
//! from the fixed keys below; otherwise it must match byte for byte.

use std::path::Path;

use bytes::Bytes;
use serde_json::{Value, json};
use tacit_handshake::{DIGEST_INPUT_LEN, Identity, Receipt, ReceiptError, sign_envelope};
use tacit_wire::{Act, ConversationId, DecodeError, Envelope, ErrorCode, IntentId, IntentRef, pb};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn keys() -> (Identity, Identity, Identity) {
    (
        Identity::from_secret_bytes(&[1; 32]),
        Identity::from_secret_bytes(&[2; 32]),
        Identity::from_secret_bytes(&[3; 32]),
    )
}

/// A signed ask sent as alias 3, with every essential set.
fn signed() -> (Envelope, Receipt) {
    let (sender, receiver, _) = keys();
    let intent = IntentId::from_bytes(core::array::from_fn(|i| i as u8));
    let mut envelope = Envelope::new(IntentRef::Alias(3), Act::Request, 42, Bytes::from_static(b"\x0a\x05hello"));
    envelope.conversation_id = ConversationId::new("conv-7").unwrap();
    envelope.in_reply_to = 7;
    sign_envelope(&sender, receiver.agent_id(), intent, &mut envelope, 1_764_633_600_000_000);
    let receipt = Receipt::from_envelope(sender.agent_id(), receiver.agent_id(), intent, &envelope).unwrap();
    (envelope, receipt)
}

/// Every single-field change of a receipt, by name.
fn tampered(receipt: &Receipt) -> Vec<(&'static str, Receipt)> {
    let (_, _, other) = keys();
    let change = |f: &dyn Fn(&mut Receipt)| {
        let mut r = receipt.clone();
        f(&mut r);
        r
    };
    vec![
        ("sender", change(&|r| r.sender = other.agent_id())),
        ("receiver", change(&|r| r.receiver = other.agent_id())),
        ("intent", change(&|r| r.intent = IntentId::from_bytes([9; 32]))),
        ("message-id", change(&|r| r.message_id += 1)),
        ("conversation-id", change(&|r| r.conversation_id = ConversationId::new("conv-8").unwrap())),
        ("in-reply-to", change(&|r| r.in_reply_to = 0)),
        ("act", change(&|r| r.act = Act::Inform)),
        ("payload", change(&|r| r.payload_blake3[0] ^= 1)),
        ("time", change(&|r| r.signed_at_micros += 1)),
        ("signature", change(&|r| r.signature[10] ^= 1)),
    ]
}

fn vectors_doc() -> Value {
    let (sender, receiver, other) = keys();
    let (envelope, receipt) = signed();
    let mut vectors = vec![json!({
        "name": "signed-request",
        "rule": "receipt.digest-input",
        "sender_secret": hex(&[1; 32]),
        "receiver_secret": hex(&[2; 32]),
        "sender": sender.agent_id().to_string(),
        "receiver": receiver.agent_id().to_string(),
        "intent_id": receipt.intent.to_string(),
        "envelope": hex(&envelope.encode_to_bytes()),
        "digest_input": hex(&receipt.digest_input()),
        "digest": hex(&receipt.digest()),
        "signature": hex(&receipt.signature),
        "receipt": hex(&receipt.encode_to_vec()),
    })];
    for (field, bad) in tampered(&receipt) {
        vectors.push(json!({
            "name": format!("tampered-{field}"),
            "rule": "receipt.verify",
            "receipt": hex(&bad.encode_to_vec()),
            "error": "ERROR_CODE_SIGNATURE_INVALID",
        }));
    }
    // Re-signed by another key over the same essentials: still invalid for the sender.
    let mut forged = receipt.clone();
    forged.signature = other.sign(&receipt.digest()).to_bytes();
    vectors.push(json!({
        "name": "signed-by-another-key",
        "rule": "receipt.verify",
        "receipt": hex(&forged.encode_to_vec()),
        "error": "ERROR_CODE_SIGNATURE_INVALID",
    }));
    let mut short = pb::Receipt::from(&receipt);
    short.signature.truncate(63);
    vectors.push(json!({
        "name": "file-signature-63-bytes",
        "rule": "receipt.file",
        "receipt": hex(&prost::Message::encode_to_vec(&short)),
        "error": "ERROR_CODE_MALFORMED_MESSAGE",
    }));
    let mut short = pb::Receipt::from(&receipt);
    short.sender.truncate(31);
    vectors.push(json!({
        "name": "file-sender-31-bytes",
        "rule": "receipt.file",
        "receipt": hex(&prost::Message::encode_to_vec(&short)),
        "error": "ERROR_CODE_MALFORMED_MESSAGE",
    }));
    // An envelope whose signature field is 63 bytes.
    let mut body = pb::Envelope::from(envelope);
    body.signature.truncate(63);
    vectors.push(json!({
        "name": "envelope-signature-63-bytes",
        "rule": "receipt.signature-len",
        "envelope": hex(&prost::Message::encode_to_vec(&body)),
        "error": "ERROR_CODE_MALFORMED_MESSAGE",
    }));
    json!({
        "description": "Signed receipts (docs/PROTOCOL.md, \"Signed receipts\"). signed-request: the Ed25519 secret keys (hex seeds), the AgentIds, the full IntentId, the signed envelope (a frame body), the 237-byte digest input, its BLAKE3 digest, the signature, and the receipt file (tacit.v1.Receipt). The others: a receipt file or envelope that MUST fail, with the code.",
        "vectors": vectors,
    })
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// All `receipt.*` rules: the published vectors are what this code computes,
/// the valid receipt verifies and every other vector fails with its code.
#[test]
fn vectors_match() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors/receipts.json");
    let doc = vectors_doc();
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("TACIT_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "receipts.json is stale");
    for vector in doc["vectors"].as_array().unwrap() {
        let name = vector["name"].as_str().unwrap();
        let error = vector["error"].as_str();
        if let Some(envelope) = vector["envelope"].as_str().filter(|_| error.is_some()) {
            let code = Envelope::decode(Bytes::from(unhex(envelope))).unwrap_err().code();
            assert_eq!(Some(code.as_str_name()), error, "{name}");
            continue;
        }
        let result = Receipt::decode(&unhex(vector["receipt"].as_str().unwrap())).and_then(|r| r.verify());
        match error {
            None => assert_eq!(result, Ok(()), "{name}"),
            Some(error) => assert_eq!(result.map_err(|e| e.code().as_str_name()), Err(error), "{name}"),
        }
    }
}

/// [receipt.digest-input] [receipt.sign] [receipt.verify]: a signed envelope
/// survives encoding, and its receipt verifies after a round trip through a file.
#[test]
fn signed_envelope_round_trips_and_verifies() {
    let (envelope, receipt) = signed();
    let decoded = Envelope::decode(envelope.encode_to_bytes()).unwrap();
    assert_eq!(decoded, envelope);
    let (sender, receiver, _) = keys();
    let again = Receipt::from_envelope(sender.agent_id(), receiver.agent_id(), receipt.intent, &decoded).unwrap();
    assert_eq!(again, receipt);
    assert_eq!(receipt.digest_input().len(), DIGEST_INPUT_LEN);
    assert_eq!(DIGEST_INPUT_LEN, 237);
    assert_eq!(&receipt.digest_input()[..16], b"tacit.v1.receipt");
    let file = receipt.encode_to_vec();
    let read = Receipt::decode(&file).unwrap();
    assert_eq!(read, receipt);
    read.verify().unwrap();
    // Unsigned envelopes have no receipt.
    let plain = Envelope::new(IntentRef::Alias(1), Act::Request, 1, Bytes::new());
    assert!(Receipt::from_envelope(sender.agent_id(), receiver.agent_id(), receipt.intent, &plain).is_none());
}

/// [receipt.verify]: every tampered field, and a signature by another key, fail.
#[test]
fn tampered_receipts_fail() {
    let (_, receipt) = signed();
    for (field, bad) in tampered(&receipt) {
        assert_eq!(bad.verify(), Err(ReceiptError::SignatureInvalid), "{field}");
        assert_eq!(Receipt::decode(&bad.encode_to_vec()).unwrap().verify(), Err(ReceiptError::SignatureInvalid));
    }
    let (_, _, other) = keys();
    let mut forged = receipt.clone();
    forged.signature = other.sign(&receipt.digest()).to_bytes();
    assert_eq!(forged.verify().map_err(|e| e.code()), Err(ErrorCode::SignatureInvalid));
}

/// [receipt.signature-len] [receipt.envelope-fields]: a signature of any
/// length but 64 is a malformed envelope.
#[test]
fn envelope_signature_must_be_64_bytes() {
    let (envelope, _) = signed();
    for len in [0usize, 1, 63, 65, 128] {
        let mut body = pb::Envelope::from(envelope.clone());
        body.signature = vec![7; len].into();
        let result = Envelope::decode(prost::Message::encode_to_vec(&body).into());
        if len == 0 {
            assert_eq!(result.unwrap().signature, None);
        } else {
            assert_eq!(result, Err(DecodeError::InvalidSignatureLength(len)));
            assert_eq!(DecodeError::InvalidSignatureLength(len).code(), ErrorCode::MalformedMessage);
        }
    }
}

/// [receipt.file]: malformed files are refused with a typed error, never a panic.
#[test]
fn malformed_files_are_refused() {
    let (_, receipt) = signed();
    let file = receipt.encode_to_vec();
    for cut in 0..file.len() {
        let _ = Receipt::decode(&file[..cut]);
    }
    assert!(matches!(Receipt::decode(&vec![0; 2000]), Err(ReceiptError::Malformed(_))));
    let mut bad = pb::Receipt::from(&receipt);
    bad.act = 0;
    assert_eq!(Receipt::decode(&prost::Message::encode_to_vec(&bad)), Err(ReceiptError::InvalidField { field: "act" }));
}
