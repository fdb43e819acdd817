//! What an agent can do: the intents it offers, the protocol versions it
//! speaks, the limits it applies and its feature flags.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use bytes::Bytes;
use tacit_wire::{ErrorCode, IntentId, pb};

use crate::Refusal;

/// Most intents one agent may offer (counting capability updates).
pub const MAX_INTENTS: usize = 4096;
/// Longest fully qualified intent name, in bytes.
pub const MAX_INTENT_NAME_LEN: usize = 128;
/// The protocol version this crate implements.
pub const PROTOCOL_VERSION: u32 = 1;

/// One intent an agent offers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntentOffer {
    /// Its IntentId.
    pub id: IntentId,
    /// Its fully qualified protobuf name (≤ 128 bytes).
    pub name: String,
    /// This agent accepts the intent from peers.
    pub handles: bool,
    /// This agent sends the intent to peers.
    pub emits: bool,
    /// An encoded `FileDescriptorSet` defining it, served to peers that ask
    /// (schema fetch). Never sent in the handshake itself.
    pub descriptor_set: Option<Bytes>,
}

impl IntentOffer {
    /// An intent this agent handles (accepts from peers).
    pub fn handles(id: IntentId, name: impl Into<String>) -> Self {
        Self { id, name: name.into(), handles: true, emits: false, descriptor_set: None }
    }

    /// An intent this agent emits (sends to peers).
    pub fn emits(id: IntentId, name: impl Into<String>) -> Self {
        Self { id, name: name.into(), handles: false, emits: true, descriptor_set: None }
    }

    /// Marks the intent as also emitted.
    pub fn and_emits(mut self) -> Self {
        self.emits = true;
        self
    }

    /// Marks the intent as also handled.
    pub fn and_handles(mut self) -> Self {
        self.handles = true;
        self
    }

    /// Attaches the schema served on schema fetch.
    pub fn with_descriptor_set(mut self, descriptor_set: Bytes) -> Self {
        self.descriptor_set = Some(descriptor_set);
        self
    }

    pub(crate) fn to_pb(&self) -> pb::IntentOffer {
        pb::IntentOffer {
            intent_id: Bytes::copy_from_slice(self.id.as_bytes()),
            name: self.name.clone(),
            handles: self.handles,
            emits: self.emits,
        }
    }

    fn from_pb(offer: pb::IntentOffer) -> Result<Self, Refusal> {
        let id = IntentId::try_from(&offer.intent_id[..]).map_err(|_| {
            invalid(format!("intent {} has an id of {} bytes, expected 32", offer.name, offer.intent_id.len()))
        })?;
        if offer.name.len() > MAX_INTENT_NAME_LEN {
            return Err(invalid(format!(
                "intent {id} has a name of {} bytes, more than {MAX_INTENT_NAME_LEN}",
                offer.name.len()
            )));
        }
        Ok(Self { id, name: offer.name, handles: offer.handles, emits: offer.emits, descriptor_set: None })
    }
}

/// Limits an agent applies to what it receives; the session uses the
/// smaller of the two agents' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// Largest frame body accepted, in bytes (default 1 MiB).
    pub max_frame_len: u32,
    /// Most asks run at once for one peer (default 256).
    pub max_concurrent_asks: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_frame_len: tacit_wire::DEFAULT_MAX_FRAME_LEN as u32, max_concurrent_asks: 256 }
    }
}

impl Limits {
    /// Sets the largest frame body accepted.
    pub fn max_frame_len(&mut self, value: u32) -> &mut Self {
        self.max_frame_len = value;
        self
    }

    /// Sets the most asks run at once for one peer.
    pub fn max_concurrent_asks(&mut self, value: u32) -> &mut Self {
        self.max_concurrent_asks = value;
        self
    }

    /// Each limit is the smaller of the two.
    pub fn min(self, other: Self) -> Self {
        Self {
            max_frame_len: self.max_frame_len.min(other.max_frame_len),
            max_concurrent_asks: self.max_concurrent_asks.min(other.max_concurrent_asks),
        }
    }
}

/// What an agent can do, as it tells its peers in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Protocol versions spoken (default: exactly [`PROTOCOL_VERSION`]).
    pub versions: RangeInclusive<u32>,
    /// Intents offered, in order: an intent's 1-based position is the alias
    /// under which this agent receives it.
    pub intents: Vec<IntentOffer>,
    /// Receive limits.
    pub limits: Limits,
    /// Feature flags (the session uses the bits both set).
    pub features: u64,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            versions: PROTOCOL_VERSION..=PROTOCOL_VERSION,
            intents: Vec::new(),
            limits: Limits::default(),
            features: 0,
        }
    }
}

impl Capabilities {
    /// Adds an offered intent.
    pub fn with_intent(mut self, offer: IntentOffer) -> Self {
        self.intents.push(offer);
        self
    }

    /// Checks the rules a peer would check: at most [`MAX_INTENTS`] intents,
    /// no duplicates, names within bounds, a non-empty version range and
    /// non-zero limits.
    pub fn validate(&self) -> Result<(), Refusal> {
        check_intent_count(self.intents.len())?;
        check_unique(&self.intents, &HashSet::new())?;
        if let Some(offer) = self.intents.iter().find(|o| o.name.len() > MAX_INTENT_NAME_LEN) {
            return Err(invalid(format!("intent name {} is over {MAX_INTENT_NAME_LEN} bytes", offer.name)));
        }
        check_versions(&self.versions)?;
        check_limits(self.limits)
    }

    pub(crate) fn to_pb(&self) -> pb::Capabilities {
        pb::Capabilities {
            versions: Some(pb::VersionRange { min: *self.versions.start(), max: *self.versions.end() }),
            intents: self.intents.iter().map(IntentOffer::to_pb).collect(),
            limits: Some(pb::Limits {
                max_frame_len: self.limits.max_frame_len,
                max_concurrent_asks: self.limits.max_concurrent_asks,
            }),
            features: self.features,
        }
    }

    /// Validates capabilities received from a peer.
    pub(crate) fn from_pb(capabilities: pb::Capabilities) -> Result<Self, Refusal> {
        // Count before converting: a huge list is refused without more work.
        check_intent_count(capabilities.intents.len())?;
        let versions = capabilities.versions.unwrap_or_default();
        let versions = versions.min..=versions.max;
        check_versions(&versions)?;
        let limits = capabilities.limits.unwrap_or_default();
        let limits = Limits { max_frame_len: limits.max_frame_len, max_concurrent_asks: limits.max_concurrent_asks };
        check_limits(limits)?;
        let intents = capabilities.intents.into_iter().map(IntentOffer::from_pb).collect::<Result<Vec<_>, _>>()?;
        check_unique(&intents, &HashSet::new())?;
        Ok(Self { versions, intents, limits, features: capabilities.features })
    }
}

/// Validates intents a peer appends with a capability update, given the ids
/// it already offered.
pub(crate) fn intents_from_update(
    added: Vec<pb::IntentOffer>,
    existing: &HashSet<IntentId>,
) -> Result<Vec<IntentOffer>, Refusal> {
    check_intent_count(existing.len().saturating_add(added.len()))?;
    let intents = added.into_iter().map(IntentOffer::from_pb).collect::<Result<Vec<_>, _>>()?;
    check_unique(&intents, existing)?;
    Ok(intents)
}

pub(crate) fn check_intent_count(count: usize) -> Result<(), Refusal> {
    if count > MAX_INTENTS {
        return Err(Refusal::new(
            ErrorCode::TooManyIntents,
            format!("{count} intents offered, more than {MAX_INTENTS}"),
        ));
    }
    Ok(())
}

fn check_unique(intents: &[IntentOffer], existing: &HashSet<IntentId>) -> Result<(), Refusal> {
    let mut seen = HashSet::with_capacity(intents.len());
    for offer in intents {
        if existing.contains(&offer.id) || !seen.insert(offer.id) {
            return Err(invalid(format!("intent {} ({}) is offered twice", offer.id, offer.name)));
        }
    }
    Ok(())
}

fn check_versions(versions: &RangeInclusive<u32>) -> Result<(), Refusal> {
    if versions.is_empty() || *versions.start() == 0 {
        return Err(invalid(format!(
            "version range {}..={} is empty or starts at 0",
            versions.start(),
            versions.end()
        )));
    }
    Ok(())
}

fn check_limits(limits: Limits) -> Result<(), Refusal> {
    if limits.max_frame_len == 0 || limits.max_concurrent_asks == 0 {
        return Err(invalid(format!("limits must be non-zero: {limits:?}")));
    }
    Ok(())
}

fn invalid(reason: String) -> Refusal {
    Refusal::new(ErrorCode::InvalidCapabilities, reason)
}
