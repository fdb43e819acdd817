//! Agent records: what an agent says about itself for discovery (no I/O).
//!
//! An [`AgentRecord`] names an agent, the addresses it listens on, its card's
//! name and tags, the intents it handles and the organisation credentials it
//! holds, with the time it was issued and how long it holds (its TTL). The
//! agent signs it with its own key ([`AgentRecord::sign`]), so a record is
//! verifiable by the AgentId it names alone ([`SignedAgentRecord::verify`]):
//! whoever carries it — a DNS zone, a directory agent, a cache — can drop
//! it but neither forge nor alter it, and nobody can publish a record for
//! someone else's AgentId. Of two records for one agent the later
//! (`issued_at`) replaces the earlier.
//!
//! A record's addresses are hints, not proof: the TLS handshake of the
//! connection made to them proves the key. The format and rules are in
//! `docs/PROTOCOL.md` ("Discovery").
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use tacit_handshake::Identity;
//! use tacit_handshake::record::AgentRecord;
//!
//! let identity = Identity::generate()?;
//! let now = SystemTime::now();
//! let record = AgentRecord::new(identity.agent_id(), now, Duration::from_secs(300))
//!     .addr("127.0.0.1:4433".parse()?)
//!     .name("seller")
//!     .tag("gpu");
//! let signed = record.sign(&identity);
//!
//! let verified = signed.verify(now)?;
//! assert_eq!(verified.record, record);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ed25519_dalek::Signature;
use prost::Message as _;
use tacit_wire::{ErrorCode, IntentId, pb};

use crate::credential::{OrgKey, SignedCredential, TrustStore, VerifiedCredential};
use crate::identity::{AgentId, Identity};

/// What a record signature covers before the body (rule `record.signature`).
pub const RECORD_LABEL: &[u8] = b"tacit agent record v1\0";
/// Largest encoded `SignedAgentRecord` accepted (rule `record.bounds`).
pub const MAX_RECORD_LEN: usize = 16 * 1024;
/// Most addresses in one record.
pub const MAX_ADDRS: usize = 16;
/// Most tags in one record (the card's roles).
pub const MAX_TAGS: usize = 32;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;
/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most intents in one record.
pub const MAX_INTENTS: usize = 256;
/// Longest intent name, in bytes.
pub const MAX_INTENT_NAME_LEN: usize = 128;
/// Most credentials in one record.
pub const MAX_CREDENTIALS: usize = 4;
/// Longest TTL.
pub const MAX_TTL: Duration = Duration::from_secs(86_400);
/// How far in the future a record's `issued_at` may be (clock skew allowed).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// An agent's self-description for discovery. Build with [`new`](Self::new)
/// and the setters; sign with [`sign`](Self::sign).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    /// The agent, whose key signs the record.
    pub agent_id: AgentId,
    /// Where it listens.
    pub addrs: Vec<SocketAddr>,
    /// Its card's name.
    pub name: String,
    /// Its card's roles, used as tags.
    pub tags: Vec<String>,
    /// The intents it handles: id and fully qualified name.
    pub intents: Vec<(IntentId, String)>,
    /// Organisation credentials naming it.
    pub credentials: Vec<SignedCredential>,
    /// When it was signed (millisecond precision on the wire).
    pub issued_at: SystemTime,
    /// How long it holds after `issued_at` (whole seconds on the wire).
    pub ttl: Duration,
}

impl AgentRecord {
    /// A record for `agent_id` issued at `issued_at` (truncated to the
    /// millisecond, the wire's precision, so that a record decodes equal to
    /// what was signed), holding for `ttl`, with no addresses, name, tags,
    /// intents or credentials yet.
    pub fn new(agent_id: AgentId, issued_at: SystemTime, ttl: Duration) -> Self {
        let issued_at = UNIX_EPOCH + Duration::from_millis(unix_ms(issued_at));
        Self {
            agent_id,
            addrs: Vec::new(),
            name: String::new(),
            tags: Vec::new(),
            intents: Vec::new(),
            credentials: Vec::new(),
            issued_at,
            ttl,
        }
    }

    /// Adds an address.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addrs.push(addr);
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds an intent the agent handles.
    pub fn intent(mut self, id: IntentId, name: impl Into<String>) -> Self {
        self.intents.push((id, name.into()));
        self
    }

    /// Adds a credential.
    pub fn credential(mut self, credential: SignedCredential) -> Self {
        self.credentials.push(credential);
        self
    }

    /// When the record stops holding.
    pub fn expires_at(&self) -> SystemTime {
        self.issued_at + self.ttl
    }

    /// The credentials that verify at `now` for this agent, each by the
    /// organisation it names (see [`VerifiedRecord::credentials`]).
    pub fn verified_credentials(&self, now: SystemTime) -> Vec<VerifiedCredential> {
        self.credentials
            .iter()
            .filter_map(|signed| {
                let (org, _) = signed.credential().ok()?;
                let mut store = TrustStore::new();
                store.trust(org);
                store.verify(signed, &self.agent_id, now).ok()
            })
            .collect()
    }

    /// The encoded `AgentRecord` body, as signed.
    pub fn encode(&self) -> Vec<u8> {
        pb::AgentRecord {
            agent_id: Bytes::copy_from_slice(self.agent_id.as_bytes()),
            addrs: self.addrs.iter().map(SocketAddr::to_string).collect(),
            name: self.name.clone(),
            tags: self.tags.clone(),
            intents: self
                .intents
                .iter()
                .map(|(id, name)| pb::RecordIntent {
                    intent_id: Bytes::copy_from_slice(id.as_bytes()),
                    name: name.clone(),
                })
                .collect(),
            credentials: self
                .credentials
                .iter()
                .map(|c| pb::SignedCredential {
                    body: Bytes::copy_from_slice(c.body()),
                    signature: Bytes::copy_from_slice(&c.signature_bytes()),
                })
                .collect(),
            issued_at_unix_ms: unix_ms(self.issued_at),
            ttl_s: u32::try_from(self.ttl.as_secs()).unwrap_or(u32::MAX),
        }
        .encode_to_vec()
    }

    /// Signs the record with `identity`, which must be the key of
    /// `agent_id` (otherwise the result does not verify).
    pub fn sign(&self, identity: &Identity) -> SignedAgentRecord {
        let body = Bytes::from(self.encode());
        let signature = identity.sign(&[RECORD_LABEL, &body].concat()).to_bytes();
        SignedAgentRecord { body, signature }
    }
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Larger than [`MAX_RECORD_LEN`].
    #[error("the record is {0} bytes, over the limit of {MAX_RECORD_LEN}")]
    TooLarge(usize),
    /// Does not decode, or a field breaks its rule.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The signature does not verify with the key of the AgentId it names.
    #[error("the record's signature does not verify with {0}")]
    BadSignature(AgentId),
    /// The record names another agent than expected.
    #[error("the record is for {found}, not {expected}")]
    WrongAgent {
        /// The AgentId looked up.
        expected: AgentId,
        /// The AgentId the record names.
        found: AgentId,
    },
    /// Past its TTL.
    #[error("the record expired at {0} (Unix milliseconds)")]
    Expired(u64),
    /// Issued more than [`MAX_CLOCK_SKEW`] in the future.
    #[error("the record is issued at {0} (Unix milliseconds), in the future")]
    FromTheFuture(u64),
}

impl RecordError {
    /// The wire code for this error: `RECORD_EXPIRED` for a record out of
    /// its time, `RECORD_INVALID` for everything else.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Expired(_) | Self::FromTheFuture(_) => ErrorCode::RecordExpired,
            _ => ErrorCode::RecordInvalid,
        }
    }
}

fn malformed(reason: impl Into<String>) -> RecordError {
    RecordError::Malformed(reason.into())
}

/// A record as carried: the encoded body exactly as signed, and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAgentRecord {
    body: Bytes,
    signature: [u8; 64],
}

impl SignedAgentRecord {
    /// Decodes an encoded `SignedAgentRecord` (bounded; the body is checked
    /// by [`verify`](Self::verify)).
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        let signed = pb::SignedAgentRecord::decode(bytes).map_err(|e| malformed(e.to_string()))?;
        let signature = <[u8; 64]>::try_from(signed.signature.as_ref())
            .map_err(|_| malformed(format!("a signature of {} bytes, not 64", signed.signature.len())))?;
        Ok(Self { body: signed.body, signature })
    }

    /// The encoded `SignedAgentRecord`.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedAgentRecord { body: self.body.clone(), signature: Bytes::copy_from_slice(&self.signature) }
            .encode_to_vec()
    }

    /// The signed body, exactly as carried.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Decodes and checks the body without checking the signature or the
    /// time: what it claims.
    pub fn record(&self) -> Result<AgentRecord, RecordError> {
        if self.body.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge(self.body.len()));
        }
        let r = pb::AgentRecord::decode(self.body.as_ref()).map_err(|e| malformed(e.to_string()))?;
        let agent_id = <[u8; 32]>::try_from(r.agent_id.as_ref())
            .map_err(|_| malformed(format!("an agent_id of {} bytes, not 32", r.agent_id.len())))
            .and_then(|b| AgentId::from_bytes(b).map_err(|e| malformed(format!("agent_id: {e}"))))?;
        if r.addrs.len() > MAX_ADDRS {
            return Err(malformed(format!("{} addresses, over {MAX_ADDRS}", r.addrs.len())));
        }
        let mut addrs = Vec::with_capacity(r.addrs.len());
        for text in &r.addrs {
            let addr: SocketAddr = text.parse().map_err(|_| malformed(format!("address {text:?} is not ip:port")))?;
            if addrs.contains(&addr) {
                return Err(malformed(format!("address {addr} appears twice")));
            }
            addrs.push(addr);
        }
        if r.name.len() > MAX_NAME_LEN {
            return Err(malformed(format!("a name of {} bytes, over {MAX_NAME_LEN}", r.name.len())));
        }
        if r.tags.len() > MAX_TAGS {
            return Err(malformed(format!("{} tags, over {MAX_TAGS}", r.tags.len())));
        }
        if let Some(tag) = r.tags.iter().find(|t| t.is_empty() || t.len() > MAX_TAG_LEN) {
            return Err(malformed(format!("a tag of {} bytes, not 1 to {MAX_TAG_LEN}", tag.len())));
        }
        if r.intents.len() > MAX_INTENTS {
            return Err(malformed(format!("{} intents, over {MAX_INTENTS}", r.intents.len())));
        }
        let mut seen = HashSet::with_capacity(r.intents.len());
        let mut intents = Vec::with_capacity(r.intents.len());
        for intent in r.intents {
            let id = <[u8; 32]>::try_from(intent.intent_id.as_ref())
                .map(IntentId::from_bytes)
                .map_err(|_| malformed(format!("an intent_id of {} bytes, not 32", intent.intent_id.len())))?;
            if intent.name.len() > MAX_INTENT_NAME_LEN {
                return Err(malformed(format!(
                    "an intent name of {} bytes, over {MAX_INTENT_NAME_LEN}",
                    intent.name.len()
                )));
            }
            if !seen.insert(id) {
                return Err(malformed(format!("intent {id} appears twice")));
            }
            intents.push((id, intent.name));
        }
        if r.credentials.len() > MAX_CREDENTIALS {
            return Err(malformed(format!("{} credentials, over {MAX_CREDENTIALS}", r.credentials.len())));
        }
        let credentials = r
            .credentials
            .iter()
            .map(|c| SignedCredential::decode(&c.encode_to_vec()).map_err(|e| malformed(format!("credential: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if r.ttl_s == 0 || u64::from(r.ttl_s) > MAX_TTL.as_secs() {
            return Err(malformed(format!("a TTL of {} s, not 1 to {}", r.ttl_s, MAX_TTL.as_secs())));
        }
        Ok(AgentRecord {
            agent_id,
            addrs,
            name: r.name,
            tags: r.tags,
            intents,
            credentials,
            issued_at: UNIX_EPOCH + Duration::from_millis(r.issued_at_unix_ms),
            ttl: Duration::from_secs(u64::from(r.ttl_s)),
        })
    }

    /// Checks the record completely: it decodes within the bounds, its
    /// signature verifies with the key of the AgentId it names, and it holds
    /// at `now` (issued no more than [`MAX_CLOCK_SKEW`] ahead, not expired).
    /// Credentials are checked by [`VerifiedRecord::credentials`].
    pub fn verify(&self, now: SystemTime) -> Result<VerifiedRecord, RecordError> {
        let record = self.record()?;
        if !record.agent_id.verify(&[RECORD_LABEL, &self.body].concat(), &Signature::from_bytes(&self.signature)) {
            return Err(RecordError::BadSignature(record.agent_id));
        }
        let issued = unix_ms(record.issued_at);
        if record.issued_at > now + MAX_CLOCK_SKEW {
            return Err(RecordError::FromTheFuture(issued));
        }
        if record.expires_at() <= now {
            return Err(RecordError::Expired(unix_ms(record.expires_at())));
        }
        Ok(VerifiedRecord { record, signed: self.clone() })
    }

    /// [`verify`](Self::verify), and the record must name `expected`.
    pub fn verify_for(&self, expected: &AgentId, now: SystemTime) -> Result<VerifiedRecord, RecordError> {
        let verified = self.verify(now)?;
        if verified.record.agent_id != *expected {
            return Err(RecordError::WrongAgent { expected: *expected, found: verified.record.agent_id });
        }
        Ok(verified)
    }
}

/// A record that passed [`SignedAgentRecord::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRecord {
    /// What it says.
    pub record: AgentRecord,
    /// As carried.
    pub signed: SignedAgentRecord,
}

impl VerifiedRecord {
    /// The record's credentials that verify at `now` for its agent, each by
    /// the organisation it names (no trust store: whether that organisation
    /// is trusted is the reader's choice, and revocations are not known
    /// here). Credentials that fail are left out.
    pub fn credentials(&self, now: SystemTime) -> Vec<VerifiedCredential> {
        self.record.verified_credentials(now)
    }

    /// The record's credentials that `trusted` accepts at `now`.
    pub fn trusted_credentials(&self, trusted: &TrustStore, now: SystemTime) -> Vec<VerifiedCredential> {
        self.record.credentials.iter().filter_map(|c| trusted.verify(c, &self.record.agent_id, now).ok()).collect()
    }

    /// Whether a credential of `org` verifies at `now`.
    pub fn has_org(&self, org: &OrgKey, now: SystemTime) -> bool {
        self.credentials(now).iter().any(|c| c.org == *org)
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{Credential, OrgSigner};

    fn sample(identity: &Identity, now: SystemTime) -> AgentRecord {
        AgentRecord::new(identity.agent_id(), now, Duration::from_secs(60))
            .addr("127.0.0.1:4433".parse().unwrap())
            .addr("[::1]:4433".parse().unwrap())
            .name("seller")
            .tag("gpu")
            .intent(IntentId::from_bytes([7; 32]), "market.v1.ReserveSlot")
    }

    #[test]
    fn round_trip_and_verify() {
        let identity = Identity::from_secret_bytes(&[1; 32]);
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let record = sample(&identity, now);
        let signed = record.sign(&identity);
        let decoded = SignedAgentRecord::decode(&signed.encode()).unwrap();
        let verified = decoded.verify_for(&identity.agent_id(), now).unwrap();
        assert_eq!(verified.record, record);
        assert_eq!(verified.record.issued_at, now);
    }

    #[test]
    fn forged_and_misnamed_records_are_refused() {
        let owner = Identity::from_secret_bytes(&[1; 32]);
        let forger = Identity::from_secret_bytes(&[2; 32]);
        let now = SystemTime::now();
        // Signed by another key than the AgentId it names.
        let forged = sample(&owner, now).sign(&forger);
        assert_eq!(forged.verify(now), Err(RecordError::BadSignature(owner.agent_id())));
        // A valid record, but for another agent than the one looked up.
        let other = sample(&forger, now).sign(&forger);
        assert!(matches!(other.verify_for(&owner.agent_id(), now), Err(RecordError::WrongAgent { .. })));
        // Altered after signing.
        let mut bytes = sample(&owner, now).sign(&owner).encode();
        let at = bytes.iter().position(|&b| b == b's').unwrap(); // in "seller"
        bytes[at] = b'S';
        let altered = SignedAgentRecord::decode(&bytes).unwrap();
        assert_eq!(altered.verify(now), Err(RecordError::BadSignature(owner.agent_id())));
        assert_eq!(altered.verify(now).unwrap_err().code(), ErrorCode::RecordInvalid);
    }

    #[test]
    fn time_bounds() {
        let identity = Identity::from_secret_bytes(&[1; 32]);
        let now = SystemTime::now();
        let signed = sample(&identity, now).sign(&identity);
        assert!(signed.verify(now + Duration::from_secs(59)).is_ok());
        let expired = signed.verify(now + Duration::from_secs(60)).unwrap_err();
        assert!(matches!(expired, RecordError::Expired(_)));
        assert_eq!(expired.code(), ErrorCode::RecordExpired);
        let early = signed.verify(now - MAX_CLOCK_SKEW - Duration::from_secs(1)).unwrap_err();
        assert!(matches!(early, RecordError::FromTheFuture(_)));
        let zero = AgentRecord::new(identity.agent_id(), now, Duration::ZERO).sign(&identity);
        assert!(matches!(zero.verify(now), Err(RecordError::Malformed(_))));
        let long = AgentRecord::new(identity.agent_id(), now, MAX_TTL + Duration::from_secs(1)).sign(&identity);
        assert!(matches!(long.verify(now), Err(RecordError::Malformed(_))));
    }

    #[test]
    fn bounds() {
        let identity = Identity::from_secret_bytes(&[1; 32]);
        let now = SystemTime::now();
        let mut many = AgentRecord::new(identity.agent_id(), now, Duration::from_secs(60));
        for port in 0..=MAX_ADDRS as u16 {
            many = many.addr(SocketAddr::from(([127, 0, 0, 1], 1000 + port)));
        }
        assert!(matches!(many.sign(&identity).verify(now), Err(RecordError::Malformed(_))));
        let dup = AgentRecord::new(identity.agent_id(), now, Duration::from_secs(60))
            .addr("127.0.0.1:1".parse().unwrap())
            .addr("127.0.0.1:1".parse().unwrap());
        assert!(matches!(dup.sign(&identity).verify(now), Err(RecordError::Malformed(_))));
        let long_name = sample(&identity, now).name("x".repeat(MAX_NAME_LEN + 1));
        assert!(matches!(long_name.sign(&identity).verify(now), Err(RecordError::Malformed(_))));
        // Thousands of addresses: refused by size before decoding.
        let huge = pb::SignedAgentRecord {
            body: pb::AgentRecord {
                agent_id: Bytes::copy_from_slice(identity.agent_id().as_bytes()),
                addrs: (0..5000).map(|i| format!("10.0.{}.{}:4433", i / 256, i % 256)).collect(),
                ..Default::default()
            }
            .encode_to_vec()
            .into(),
            signature: Bytes::from_static(&[0; 64]),
        }
        .encode_to_vec();
        assert!(matches!(SignedAgentRecord::decode(&huge), Err(RecordError::TooLarge(_))));
        assert!(matches!(SignedAgentRecord::decode(b"\xff\xff"), Err(RecordError::Malformed(_))));
    }

    #[test]
    fn credentials_verify_by_their_organisation() {
        let identity = Identity::from_secret_bytes(&[1; 32]);
        let org = OrgSigner::from_secret_bytes(&[9; 32]);
        let now = SystemTime::now();
        let good = org.issue(
            &Credential::new(identity.agent_id(), now - Duration::from_secs(1), now + Duration::from_secs(60))
                .role("seller"),
        );
        let other = Identity::from_secret_bytes(&[3; 32]).agent_id();
        let someone_elses = org.issue(&Credential::new(other, now, now + Duration::from_secs(60)).role("seller"));
        let record = sample(&identity, now).credential(good).credential(someone_elses);
        let verified = record.sign(&identity).verify(now).unwrap();
        let creds = verified.credentials(now);
        assert_eq!(creds.len(), 1);
        assert_eq!(creds[0].org, org.org_key());
        assert_eq!(creds[0].roles, ["seller"]);
        assert!(verified.has_org(&org.org_key(), now));
        assert!(verified.trusted_credentials(&TrustStore::new(), now).is_empty());
    }
}

#[cfg(test)]
mod vectors {
    use super::*;

    /// The vector of docs/PROTOCOL.md ("Agent records"): secret key 32 bytes
    /// of 0x01, one address, a name, a tag, one intent, issued at
    /// 1,800,000,000,000 ms with a TTL of 300 s.
    pub(super) fn vector() -> (Identity, AgentRecord) {
        let identity = Identity::from_secret_bytes(&[1; 32]);
        let record = AgentRecord::new(
            identity.agent_id(),
            UNIX_EPOCH + Duration::from_millis(1_800_000_000_000),
            Duration::from_secs(300),
        )
        .addr("192.0.2.7:4433".parse().unwrap_or_else(|_| unreachable!()))
        .name("seller")
        .tag("gpu")
        .intent(IntentId::from_bytes([0xab; 32]), "market.v1.ReserveSlot");
        (identity, record)
    }

    #[test]
    fn protocol_vector() {
        let (identity, record) = vector();
        let body = data_encoding::HEXLOWER.encode(&record.encode());
        let signed = data_encoding::HEXLOWER.encode(&record.sign(&identity).encode());
        println!("agent_id {}\nbody {body}\nsigned {signed}", identity.agent_id());
        assert_eq!(body, BODY_HEX);
        assert_eq!(signed, SIGNED_HEX);
        let decoded =
            SignedAgentRecord::decode(&data_encoding::HEXLOWER.decode(SIGNED_HEX.as_bytes()).unwrap()).unwrap();
        let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
        assert_eq!(decoded.verify(at).unwrap().record, record);
        assert!(decoded.verify(at + Duration::from_secs(300)).is_err(), "expired at issued_at + ttl");
    }

    const BODY_HEX: &str = "0a208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c120e3139322e302e322e373a343433331a0673656c6c657222036770752a390a20abababababababababababababababababababababababababababababababab12156d61726b65742e76312e52657365727665536c6f743880a0f1c2b13440ac02";
    const SIGNED_HEX: &str = "0a84010a208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c120e3139322e302e322e373a343433331a0673656c6c657222036770752a390a20abababababababababababababababababababababababababababababababab12156d61726b65742e76312e52657365727665536c6f743880a0f1c2b13440ac02124039beb13fc6b3b579daa44628b17bdb4d89ff2a15f0f38f97b6a297920ac93ceec2b2824eb971b2f506764134e7fa9f035f3a65a22748f452c3256b550b922500";
}
