//! Organisation credentials and revocation lists (no I/O except reading
//! revocation-list files).
//!
//! An organisation is an Ed25519 key pair ([`OrgSigner`], kept in a key file
//! like an agent's [`Identity`]); its public key is an [`OrgKey`], printed
//! like an AgentId. It signs [`Credential`]s — "agent X holds roles R from
//! T1 to T2" — and [`RevocationList`]s naming the serials it withdrew. A
//! receiver keeps the organisations it trusts and their latest lists in a
//! [`TrustStore`] and checks a presented credential with
//! [`TrustStore::verify`]. The formats and rules are in `docs/PROTOCOL.md`
//! ("Trust: organisations and credentials").
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use tacit_handshake::Identity;
//! use tacit_handshake::credential::{Credential, OrgSigner, TrustStore};
//!
//! let org = OrgSigner::generate()?;
//! let agent = Identity::generate()?.agent_id();
//! let now = SystemTime::now();
//! let signed = org.issue(&Credential::new(agent, now, now + Duration::from_secs(3600)).role("buyer").serial(7));
//!
//! let mut store = TrustStore::new();
//! store.trust(org.org_key());
//! let verified = store.verify(&signed, &agent, now)?;
//! assert_eq!(verified.roles, ["buyer"]);
//! assert_eq!(verified.org, org.org_key());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ed25519_dalek::Signature;
use prost::Message as _;
use tacit_wire::{ErrorCode, IntentId, pb};

use crate::identity::{AgentId, Identity, IdentityError, ParseAgentIdError};

/// What a credential signature covers before the body (rule `trust.signature`).
pub const CREDENTIAL_LABEL: &[u8] = b"tacit credential v1\0";
/// What a revocation-list signature covers before the body (rule `revoke.signature`).
pub const REVOCATIONS_LABEL: &[u8] = b"tacit revocations v1\0";
/// Largest encoded `SignedCredential` accepted (rule `trust.bounds`).
pub const MAX_CREDENTIAL_LEN: usize = 4096;
/// Most roles in one credential.
pub const MAX_ROLES: usize = 16;
/// Longest role, in bytes.
pub const MAX_ROLE_LEN: usize = 64;
/// Most narrowed IntentIds in one credential.
pub const MAX_CREDENTIAL_INTENTS: usize = 64;
/// Largest encoded `SignedRevocationList` accepted (rule `revoke.bounds`).
pub const MAX_REVOCATION_LIST_LEN: usize = 64 * 1024;
/// Most serials in one revocation list.
pub const MAX_REVOKED_SERIALS: usize = 4096;
/// The role that makes the holder of an organisation's credential one of its
/// authority agents, whose revocation lists a receiver accepts as an intent
/// (rule `revoke.authority`).
pub const AUTHORITY_ROLE: &str = "authority";

/// An organisation's Ed25519 public key. Same validity rules and printed
/// form (52 lowercase base32 characters) as an [`AgentId`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgKey(AgentId);

impl OrgKey {
    /// The key whose 32-byte encoding is `bytes`, if it is a usable Ed25519 key.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, ParseAgentIdError> {
        AgentId::from_bytes(bytes).map(Self)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    fn verify(&self, label: &[u8], body: &[u8], signature: &Signature) -> bool {
        let mut message = Vec::with_capacity(label.len() + body.len());
        message.extend_from_slice(label);
        message.extend_from_slice(body);
        self.0.verify(&message, signature)
    }
}

impl fmt::Display for OrgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for OrgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgKey({})", self.0)
    }
}

impl FromStr for OrgKey {
    type Err = ParseAgentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// An organisation's key pair: signs credentials and revocation lists.
pub struct OrgSigner(Identity);

impl fmt::Debug for OrgSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgSigner({})", self.org_key())
    }
}

impl OrgSigner {
    /// A new key pair from the operating system's random source.
    pub fn generate() -> Result<Self, IdentityError> {
        Identity::generate().map(Self)
    }

    /// The key pair whose Ed25519 secret key (RFC 8032 seed) is `secret`.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self(Identity::from_secret_bytes(secret))
    }

    /// Loads the key pair from a key file in the identity's format (PKCS#8 PEM).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, IdentityError> {
        Identity::load(path).map(Self)
    }

    /// Loads the key file, or creates it (mode 0600) if it does not exist.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Self, IdentityError> {
        Identity::load_or_create(path).map(|(identity, _)| Self(identity))
    }

    /// The organisation's public key.
    pub fn org_key(&self) -> OrgKey {
        OrgKey(self.0.agent_id())
    }

    /// The key pair as an identity (for writing its key file).
    pub fn identity(&self) -> &Identity {
        &self.0
    }

    fn sign(&self, label: &[u8], body: &[u8]) -> [u8; 64] {
        let mut message = Vec::with_capacity(label.len() + body.len());
        message.extend_from_slice(label);
        message.extend_from_slice(body);
        self.0.sign(&message).to_bytes()
    }

    /// Signs `credential` (its `org` is replaced by this key).
    pub fn issue(&self, credential: &Credential) -> SignedCredential {
        let body = Bytes::from(credential.to_pb(self.org_key()).encode_to_vec());
        let signature = self.sign(CREDENTIAL_LABEL, &body);
        SignedCredential { body, signature }
    }

    /// Signs a revocation list of `serials`, made at `issued_at`.
    pub fn revoke(&self, serials: impl IntoIterator<Item = u64>, issued_at: SystemTime) -> SignedRevocationList {
        let serials: BTreeSet<u64> = serials.into_iter().collect();
        let list = pb::RevocationList {
            org_key: Bytes::copy_from_slice(self.org_key().as_bytes()),
            issued_at_unix_s: unix_s(issued_at),
            serials: serials.into_iter().collect(),
        };
        let body = Bytes::from(list.encode_to_vec());
        let signature = self.sign(REVOCATIONS_LABEL, &body);
        SignedRevocationList { body, signature }
    }
}

/// Seconds since the Unix epoch (0 before it).
fn unix_s(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn from_unix_s(seconds: u64) -> SystemTime {
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds)).unwrap_or(UNIX_EPOCH)
}

/// What an organisation says about one agent, before signing or after
/// decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The agent it is about.
    pub subject: AgentId,
    /// Roles it grants.
    pub roles: Vec<String>,
    /// Valid from (inclusive, whole seconds).
    pub not_before: SystemTime,
    /// Valid until (exclusive, whole seconds).
    pub not_after: SystemTime,
    /// The intents the roles are narrowed to, if any.
    pub intents: Option<Vec<IntentId>>,
    /// The organisation's name for it, used by revocation lists.
    pub serial: u64,
}

impl Credential {
    /// A credential for `subject`, valid from `not_before` until `not_after`,
    /// with no roles, no narrowing and serial 0.
    pub fn new(subject: AgentId, not_before: SystemTime, not_after: SystemTime) -> Self {
        Self { subject, roles: Vec::new(), not_before, not_after, intents: None, serial: 0 }
    }

    /// Adds a role.
    #[must_use]
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Narrows the credential to these intents.
    #[must_use]
    pub fn intents(mut self, intents: impl IntoIterator<Item = IntentId>) -> Self {
        self.intents = Some(intents.into_iter().collect());
        self
    }

    /// Sets the serial.
    #[must_use]
    pub fn serial(mut self, serial: u64) -> Self {
        self.serial = serial;
        self
    }

    fn to_pb(&self, org: OrgKey) -> pb::Credential {
        pb::Credential {
            org_key: Bytes::copy_from_slice(org.as_bytes()),
            subject: Bytes::copy_from_slice(self.subject.as_bytes()),
            roles: self.roles.clone(),
            not_before_unix_s: unix_s(self.not_before),
            not_after_unix_s: unix_s(self.not_after),
            intents: self.intents.iter().flatten().map(|id| Bytes::copy_from_slice(id.as_bytes())).collect(),
            serial: self.serial,
        }
    }
}

/// Why a credential or revocation list was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Larger than the bound of rule `trust.bounds` / `revoke.bounds`.
    #[error("{what} is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// "credential" or "revocation list".
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Does not decode, or a field breaks its rule.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// "credential" or "revocation list".
        what: &'static str,
        /// Which field, and how.
        reason: String,
    },
    /// Signed by an organisation not in the trust store.
    #[error("organisation {0} is not trusted")]
    UntrustedOrganisation(OrgKey),
    /// The signature does not verify with the organisation's key.
    #[error("the signature does not verify with organisation {0}")]
    BadSignature(OrgKey),
    /// The credential names another agent.
    #[error("the credential is for {subject}, not {presenter}")]
    WrongSubject {
        /// Whom the credential names.
        subject: AgentId,
        /// Who presented it (the TLS-proven peer).
        presenter: AgentId,
    },
    /// Before `not_before`.
    #[error("the credential is not valid before {0} (Unix seconds)")]
    NotYetValid(u64),
    /// At or after `not_after`.
    #[error("the credential expired at {0} (Unix seconds)")]
    Expired(u64),
    /// Its serial is on the organisation's revocation list.
    #[error("credential {serial} of organisation {org} is revoked")]
    Revoked {
        /// The organisation.
        org: OrgKey,
        /// The serial.
        serial: u64,
    },
}

impl CredentialError {
    /// The handshake refusal code for this failure (rule `trust.refusal-codes`).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UntrustedOrganisation(_) => ErrorCode::UntrustedOrganisation,
            Self::NotYetValid(_) | Self::Expired(_) => ErrorCode::CredentialExpired,
            Self::Revoked { .. } => ErrorCode::CredentialRevoked,
            Self::TooLarge { .. } | Self::Malformed { .. } | Self::BadSignature(_) | Self::WrongSubject { .. } => {
                ErrorCode::CredentialInvalid
            }
        }
    }
}

fn malformed(what: &'static str, reason: impl Into<String>) -> CredentialError {
    CredentialError::Malformed { what, reason: reason.into() }
}

fn signature_of(what: &'static str, bytes: &[u8]) -> Result<[u8; 64], CredentialError> {
    <[u8; 64]>::try_from(bytes).map_err(|_| malformed(what, format!("signature is {} bytes, not 64", bytes.len())))
}

fn key_of(what: &'static str, field: &str, bytes: &[u8]) -> Result<AgentId, CredentialError> {
    AgentId::try_from(bytes).map_err(|e| malformed(what, format!("{field}: {e}")))
}

/// A credential as carried: the encoded body exactly as signed, and the
/// signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCredential {
    body: Bytes,
    signature: [u8; 64],
}

const CREDENTIAL: &str = "credential";
const REVOCATION_LIST: &str = "revocation list";

impl SignedCredential {
    /// Decodes an encoded `SignedCredential` (bounded; the body is checked by
    /// [`credential`](Self::credential) and [`TrustStore::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, CredentialError> {
        if bytes.len() > MAX_CREDENTIAL_LEN {
            return Err(CredentialError::TooLarge { what: CREDENTIAL, len: bytes.len(), max: MAX_CREDENTIAL_LEN });
        }
        let signed = pb::SignedCredential::decode(bytes).map_err(|e| malformed(CREDENTIAL, e.to_string()))?;
        Ok(Self { signature: signature_of(CREDENTIAL, &signed.signature)?, body: signed.body })
    }

    /// The encoded `SignedCredential`.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedCredential { body: self.body.clone(), signature: Bytes::copy_from_slice(&self.signature) }
            .encode_to_vec()
    }

    /// The signed body, exactly as carried.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The organisation's signature over the body.
    pub fn signature_bytes(&self) -> [u8; 64] {
        self.signature
    }

    /// Decodes and checks the body without checking the signature, trust,
    /// time or revocation: what it claims, and who claims it.
    pub fn credential(&self) -> Result<(OrgKey, Credential), CredentialError> {
        let c = pb::Credential::decode(self.body.as_ref()).map_err(|e| malformed(CREDENTIAL, e.to_string()))?;
        let org = OrgKey(key_of(CREDENTIAL, "org_key", &c.org_key)?);
        let subject = key_of(CREDENTIAL, "subject", &c.subject)?;
        if c.roles.len() > MAX_ROLES {
            return Err(malformed(CREDENTIAL, format!("{} roles, over {MAX_ROLES}", c.roles.len())));
        }
        let mut seen = HashSet::new();
        for role in &c.roles {
            if role.is_empty() || role.len() > MAX_ROLE_LEN {
                return Err(malformed(CREDENTIAL, format!("a role of {} bytes, not 1 to {MAX_ROLE_LEN}", role.len())));
            }
            if !seen.insert(role.as_str()) {
                return Err(malformed(CREDENTIAL, format!("role {role:?} appears twice")));
            }
        }
        if c.not_after_unix_s <= c.not_before_unix_s {
            return Err(malformed(CREDENTIAL, "not_after_unix_s is not after not_before_unix_s"));
        }
        if c.intents.len() > MAX_CREDENTIAL_INTENTS {
            return Err(malformed(CREDENTIAL, format!("{} intents, over {MAX_CREDENTIAL_INTENTS}", c.intents.len())));
        }
        let intents = c
            .intents
            .iter()
            .map(|id| {
                <[u8; 32]>::try_from(id.as_ref())
                    .map(IntentId::from_bytes)
                    .map_err(|_| malformed(CREDENTIAL, format!("an intent of {} bytes, not 32", id.len())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let credential = Credential {
            subject,
            roles: c.roles,
            not_before: from_unix_s(c.not_before_unix_s),
            not_after: from_unix_s(c.not_after_unix_s),
            intents: (!intents.is_empty()).then_some(intents),
            serial: c.serial,
        };
        Ok((org, credential))
    }
}

/// A credential that passed [`TrustStore::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCredential {
    /// The organisation that signed it.
    pub org: OrgKey,
    /// The agent it is about (the one that presented it).
    pub subject: AgentId,
    /// The roles it grants.
    pub roles: Vec<String>,
    /// The intents the roles are narrowed to, if any.
    pub intents: Option<Vec<IntentId>>,
    /// When it stops being valid.
    pub not_after: SystemTime,
    /// The organisation's serial.
    pub serial: u64,
}

/// A revocation list as carried: the encoded body exactly as signed, and
/// the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRevocationList {
    body: Bytes,
    signature: [u8; 64],
}

impl SignedRevocationList {
    /// Decodes an encoded `SignedRevocationList` (bounded).
    pub fn decode(bytes: &[u8]) -> Result<Self, CredentialError> {
        if bytes.len() > MAX_REVOCATION_LIST_LEN {
            return Err(CredentialError::TooLarge {
                what: REVOCATION_LIST,
                len: bytes.len(),
                max: MAX_REVOCATION_LIST_LEN,
            });
        }
        let signed = pb::SignedRevocationList::decode(bytes).map_err(|e| malformed(REVOCATION_LIST, e.to_string()))?;
        Ok(Self { signature: signature_of(REVOCATION_LIST, &signed.signature)?, body: signed.body })
    }

    /// Reads and decodes a file holding an encoded `SignedRevocationList`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, CredentialError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| malformed(REVOCATION_LIST, format!("{}: {e}", path.display())))?;
        Self::decode(&bytes)
    }

    /// The encoded `SignedRevocationList`.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedRevocationList { body: self.body.clone(), signature: Bytes::copy_from_slice(&self.signature) }
            .encode_to_vec()
    }

    /// Decodes and checks the body without checking the signature or trust.
    pub fn list(&self) -> Result<RevocationList, CredentialError> {
        let l =
            pb::RevocationList::decode(self.body.as_ref()).map_err(|e| malformed(REVOCATION_LIST, e.to_string()))?;
        let org = OrgKey(key_of(REVOCATION_LIST, "org_key", &l.org_key)?);
        if l.serials.len() > MAX_REVOKED_SERIALS {
            return Err(malformed(REVOCATION_LIST, format!("{} serials, over {MAX_REVOKED_SERIALS}", l.serials.len())));
        }
        Ok(RevocationList { org, issued_at: l.issued_at_unix_s, serials: l.serials.into_iter().collect() })
    }
}

/// The credentials an organisation withdrew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationList {
    /// The organisation.
    pub org: OrgKey,
    /// When it was made, in Unix seconds; a newer list replaces an older one.
    pub issued_at: u64,
    /// The revoked serials.
    pub serials: BTreeSet<u64>,
}

/// What [`TrustStore::apply_revocations`] did with a valid list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It replaced the organisation's list (or was its first).
    Replaced,
    /// It was not newer than the list held, and changed nothing.
    Stale,
}

/// The organisations a receiver trusts and their latest revocation lists.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    orgs: HashSet<OrgKey>,
    revocations: HashMap<OrgKey, RevocationList>,
}

impl TrustStore {
    /// An empty store: trusts no organisation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `org`'s credentials and revocation lists.
    pub fn trust(&mut self, org: OrgKey) -> &mut Self {
        self.orgs.insert(org);
        self
    }

    /// Whether `org` is trusted.
    pub fn is_trusted(&self, org: &OrgKey) -> bool {
        self.orgs.contains(org)
    }

    /// Whether the store trusts no organisation.
    pub fn is_empty(&self) -> bool {
        self.orgs.is_empty()
    }

    /// The trusted organisations.
    pub fn orgs(&self) -> impl Iterator<Item = &OrgKey> {
        self.orgs.iter()
    }

    /// The list held for `org`, if any.
    pub fn revocations(&self, org: &OrgKey) -> Option<&RevocationList> {
        self.revocations.get(org)
    }

    /// Whether `serial` of `org` is revoked by the list held.
    pub fn is_revoked(&self, org: &OrgKey, serial: u64) -> bool {
        self.revocations.get(org).is_some_and(|list| list.serials.contains(&serial))
    }

    /// Checks a revocation list (rules `revoke.signature`, `revoke.trusted`)
    /// and keeps it if it is newer than the one held (`revoke.newer`).
    pub fn apply_revocations(&mut self, signed: &SignedRevocationList) -> Result<Applied, CredentialError> {
        let list = signed.list()?;
        if !self.is_trusted(&list.org) {
            return Err(CredentialError::UntrustedOrganisation(list.org));
        }
        if !list.org.verify(REVOCATIONS_LABEL, &signed.body, &Signature::from_bytes(&signed.signature)) {
            return Err(CredentialError::BadSignature(list.org));
        }
        if self.revocations.get(&list.org).is_some_and(|held| held.issued_at >= list.issued_at) {
            return Ok(Applied::Stale);
        }
        self.revocations.insert(list.org, list);
        Ok(Applied::Replaced)
    }

    /// Reads a revocation-list file and applies it.
    pub fn load_revocations(&mut self, path: impl AsRef<Path>) -> Result<Applied, CredentialError> {
        self.apply_revocations(&SignedRevocationList::load(path)?)
    }

    /// Checks a credential presented by `presenter` (the TLS-proven peer) at
    /// `now`, in the order of rule `trust.verify-order`.
    pub fn verify(
        &self,
        signed: &SignedCredential,
        presenter: &AgentId,
        now: SystemTime,
    ) -> Result<VerifiedCredential, CredentialError> {
        let (org, credential) = signed.credential()?;
        if !self.is_trusted(&org) {
            return Err(CredentialError::UntrustedOrganisation(org));
        }
        if !org.verify(CREDENTIAL_LABEL, &signed.body, &Signature::from_bytes(&signed.signature)) {
            return Err(CredentialError::BadSignature(org));
        }
        if credential.subject != *presenter {
            return Err(CredentialError::WrongSubject { subject: credential.subject, presenter: *presenter });
        }
        let now = unix_s(now);
        let (not_before, not_after) = (unix_s(credential.not_before), unix_s(credential.not_after));
        if now < not_before {
            return Err(CredentialError::NotYetValid(not_before));
        }
        if now >= not_after {
            return Err(CredentialError::Expired(not_after));
        }
        if self.is_revoked(&org, credential.serial) {
            return Err(CredentialError::Revoked { org, serial: credential.serial });
        }
        Ok(VerifiedCredential {
            org,
            subject: credential.subject,
            roles: credential.roles,
            intents: credential.intents,
            not_after: credential.not_after,
            serial: credential.serial,
        })
    }
}

/// [`TrustStore::verify`] as a function.
pub fn verify(
    signed: &SignedCredential,
    presenter: &AgentId,
    trusted: &TrustStore,
    now: SystemTime,
) -> Result<VerifiedCredential, CredentialError> {
    trusted.verify(signed, presenter, now)
}
