//! Signed receipts: an envelope's essentials signed by its sender, kept as
//! evidence that the sender sent it. No I/O.
//!
//! The signature covers a fixed-width digest input (rule
//! `receipt.digest-input` of `docs/PROTOCOL.md`): the domain-separation label
//! [`RECEIPT_LABEL`], then sender, receiver, IntentId, message id,
//! conversation id (length byte and 64 zero-padded bytes), in-reply-to, act,
//! BLAKE3 of the payload and the signing time. Ed25519 signs the BLAKE3 of
//! those bytes. A [`Receipt`] holds the same essentials and the signature, so
//! [`Receipt::verify`] needs nothing else.
//!
//! ```
//! use bytes::Bytes;
//! use tacit_handshake::{Identity, Receipt};
//! use tacit_wire::{Act, Envelope, IntentId, IntentRef};
//!
//! let (sender, receiver) = (Identity::generate()?, Identity::generate()?);
//! let intent = IntentId::from_bytes([7; 32]);
//! let mut envelope = Envelope::new(IntentRef::Id(intent), Act::Request, 1, Bytes::from_static(b"hi"));
//! tacit_handshake::sign_envelope(&sender, receiver.agent_id(), intent, &mut envelope, 1_700_000_000_000_000);
//! let receipt = Receipt::from_envelope(sender.agent_id(), receiver.agent_id(), intent, &envelope).unwrap();
//! receipt.verify()?;
//! let file = receipt.encode_to_vec();
//! assert_eq!(Receipt::decode(&file)?, receipt);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use ed25519_dalek::Signature;
use prost::Message as _;
use tacit_wire::{
    Act, ConversationId, Envelope, EnvelopeSignature, ErrorCode, IntentId, MAX_CONVERSATION_ID_LEN, SIGNATURE_LEN, pb,
};

use crate::identity::{AgentId, Identity};

/// The domain-separation label that starts every receipt digest input.
pub const RECEIPT_LABEL: &[u8; 16] = b"tacit.v1.receipt";

/// Length of [`Receipt::digest_input`]: label, three 32-byte ids, message id,
/// conversation id (1 + 64), in-reply-to, act, payload hash, time.
pub const DIGEST_INPUT_LEN: usize = 16 + 32 + 32 + 32 + 8 + 1 + MAX_CONVERSATION_ID_LEN + 8 + 4 + 32 + 8;

/// Largest receipt file [`Receipt::decode`] reads (a real one is about 300 bytes).
pub const MAX_RECEIPT_LEN: usize = 1024;

/// Why a receipt does not decode or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The bytes are not a `tacit.v1.Receipt`, or are larger than [`MAX_RECEIPT_LEN`].
    #[error("not a receipt: {0}")]
    Malformed(String),
    /// A field has the wrong length or an invalid value.
    #[error("receipt field {field} is invalid")]
    InvalidField {
        /// The field's name.
        field: &'static str,
    },
    /// The signature is not the sender's over these essentials.
    #[error("the signature does not verify for the sender and these essentials")]
    SignatureInvalid,
}

impl ReceiptError {
    /// The code that travels on the wire for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) | Self::InvalidField { .. } => ErrorCode::MalformedMessage,
            Self::SignatureInvalid => ErrorCode::SignatureInvalid,
        }
    }
}

/// A signed envelope's essentials and its sender's signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The signer, who sent the envelope.
    pub sender: AgentId,
    /// Whom it was sent to.
    pub receiver: AgentId,
    /// The full IntentId of its payload.
    pub intent: IntentId,
    /// Its message id.
    pub message_id: u64,
    /// Its conversation id.
    pub conversation_id: ConversationId,
    /// Its in-reply-to.
    pub in_reply_to: u64,
    /// Its act.
    pub act: Act,
    /// BLAKE3 of its payload.
    pub payload_blake3: [u8; 32],
    /// When the sender signed, in microseconds since the Unix epoch.
    pub signed_at_micros: u64,
    /// The Ed25519 signature over [`digest`](Self::digest).
    pub signature: [u8; SIGNATURE_LEN],
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("sender", &self.sender)
            .field("receiver", &self.receiver)
            .field("intent", &self.intent)
            .field("message_id", &self.message_id)
            .field("conversation_id", &self.conversation_id)
            .field("in_reply_to", &self.in_reply_to)
            .field("act", &self.act)
            .field("signed_at_micros", &self.signed_at_micros)
            .finish_non_exhaustive()
    }
}

/// The digest input of rule `receipt.digest-input` for these essentials.
#[allow(clippy::too_many_arguments)]
fn digest_input(
    sender: &AgentId,
    receiver: &AgentId,
    intent: &IntentId,
    message_id: u64,
    conversation_id: &ConversationId,
    in_reply_to: u64,
    act: Act,
    payload_blake3: &[u8; 32],
    signed_at_micros: u64,
) -> [u8; DIGEST_INPUT_LEN] {
    let mut out = [0u8; DIGEST_INPUT_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(RECEIPT_LABEL);
    put(sender.as_bytes());
    put(receiver.as_bytes());
    put(intent.as_bytes());
    put(&message_id.to_be_bytes());
    let conversation = conversation_id.as_bytes();
    let mut padded = [0u8; 1 + MAX_CONVERSATION_ID_LEN];
    padded[0] = conversation.len() as u8;
    padded[1..=conversation.len()].copy_from_slice(conversation);
    put(&padded);
    put(&in_reply_to.to_be_bytes());
    put(&(act as i32 as u32).to_be_bytes());
    put(payload_blake3);
    put(&signed_at_micros.to_be_bytes());
    out
}

/// Signs `envelope` as `identity` for `receiver`: sets its `signature` and
/// `signed_at_micros` (rule `receipt.sign`). `intent` is the envelope's full
/// IntentId, even when it travels as an alias.
pub fn sign_envelope(
    identity: &Identity,
    receiver: AgentId,
    intent: IntentId,
    envelope: &mut Envelope,
    now_micros: u64,
) {
    let input = digest_input(
        &identity.agent_id(),
        &receiver,
        &intent,
        envelope.message_id,
        &envelope.conversation_id,
        envelope.in_reply_to,
        envelope.act,
        blake3::hash(&envelope.payload).as_bytes(),
        now_micros,
    );
    let digest = blake3::hash(&input);
    envelope.signature = Some(Box::new(EnvelopeSignature {
        signature: identity.sign(digest.as_bytes()).to_bytes(),
        signed_at_micros: now_micros,
    }));
}

impl Receipt {
    /// The receipt of a signed `envelope` from `sender` to `receiver`, whose
    /// payload is `intent`; `None` if the envelope is unsigned. Not verified:
    /// call [`verify`](Self::verify).
    pub fn from_envelope(sender: AgentId, receiver: AgentId, intent: IntentId, envelope: &Envelope) -> Option<Self> {
        let signed = envelope.signature.as_deref()?;
        Some(Self {
            sender,
            receiver,
            intent,
            message_id: envelope.message_id,
            conversation_id: envelope.conversation_id,
            in_reply_to: envelope.in_reply_to,
            act: envelope.act,
            payload_blake3: *blake3::hash(&envelope.payload).as_bytes(),
            signed_at_micros: signed.signed_at_micros,
            signature: signed.signature,
        })
    }

    /// The exact bytes whose BLAKE3 is signed (rule `receipt.digest-input`).
    pub fn digest_input(&self) -> [u8; DIGEST_INPUT_LEN] {
        digest_input(
            &self.sender,
            &self.receiver,
            &self.intent,
            self.message_id,
            &self.conversation_id,
            self.in_reply_to,
            self.act,
            &self.payload_blake3,
            self.signed_at_micros,
        )
    }

    /// BLAKE3 of [`digest_input`](Self::digest_input): what Ed25519 signs.
    pub fn digest(&self) -> [u8; 32] {
        *blake3::hash(&self.digest_input()).as_bytes()
    }

    /// Checks that the signature is the sender's over these essentials
    /// (rule `receipt.verify`; strict Ed25519, no malleable signatures).
    pub fn verify(&self) -> Result<(), ReceiptError> {
        let signature = Signature::from_bytes(&self.signature);
        if self.sender.verify(&self.digest(), &signature) { Ok(()) } else { Err(ReceiptError::SignatureInvalid) }
    }

    /// The `tacit.v1.Receipt` protobuf encoding: a receipt file's contents.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        pb::Receipt::from(self).encode_to_vec()
    }

    /// Reads a `tacit.v1.Receipt` (rule `receipt.file`): every id exactly 32
    /// bytes and a valid AgentId, the signature 64 bytes, a known act, a
    /// conversation id of at most 64 bytes. Does not verify.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        if bytes.len() > MAX_RECEIPT_LEN {
            return Err(ReceiptError::Malformed(format!("{} bytes, more than {MAX_RECEIPT_LEN}", bytes.len())));
        }
        let raw = pb::Receipt::decode(bytes).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
        let agent = |bytes: &[u8], field| {
            <[u8; 32]>::try_from(bytes)
                .ok()
                .and_then(|b| AgentId::from_bytes(b).ok())
                .ok_or(ReceiptError::InvalidField { field })
        };
        let fixed = |bytes: &[u8], field| <[u8; 32]>::try_from(bytes).map_err(|_| ReceiptError::InvalidField { field });
        let act = match Act::try_from(raw.act) {
            Ok(Act::Unspecified) | Err(_) => return Err(ReceiptError::InvalidField { field: "act" }),
            Ok(act) => act,
        };
        Ok(Self {
            sender: agent(&raw.sender, "sender")?,
            receiver: agent(&raw.receiver, "receiver")?,
            intent: IntentId::from_bytes(fixed(&raw.intent_id, "intent_id")?),
            message_id: raw.message_id,
            conversation_id: ConversationId::new(&raw.conversation_id)
                .map_err(|_| ReceiptError::InvalidField { field: "conversation_id" })?,
            in_reply_to: raw.in_reply_to,
            act,
            payload_blake3: fixed(&raw.payload_blake3, "payload_blake3")?,
            signed_at_micros: raw.signed_at_micros,
            signature: <[u8; SIGNATURE_LEN]>::try_from(&raw.signature[..])
                .map_err(|_| ReceiptError::InvalidField { field: "signature" })?,
        })
    }
}

impl From<&Receipt> for pb::Receipt {
    fn from(receipt: &Receipt) -> Self {
        Self {
            sender: receipt.sender.as_bytes().to_vec().into(),
            receiver: receipt.receiver.as_bytes().to_vec().into(),
            intent_id: receipt.intent.as_bytes().to_vec().into(),
            message_id: receipt.message_id,
            conversation_id: receipt.conversation_id.as_str().to_owned(),
            in_reply_to: receipt.in_reply_to,
            act: receipt.act.into(),
            payload_blake3: receipt.payload_blake3.to_vec().into(),
            signed_at_micros: receipt.signed_at_micros,
            signature: receipt.signature.to_vec().into(),
        }
    }
}
