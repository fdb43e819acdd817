//! What an agent can do: the intents it offers, the protocol versions it
//! speaks, the limits it applies and its feature flags.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use bytes::Bytes;
use tacit_wire::{ErrorCode, IntentId, pb};

use crate::{Lanes, Refusal};

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
    /// The lanes on which this agent handles the intent (with `handles`;
    /// default: every lane). A peer's message on another lane is refused.
    pub lanes: Lanes,
    /// The reply this agent answers asks of the intent with, if it says.
    pub reply: Option<IntentId>,
    /// On the stream lane: what the handler sends to the opener, if it says.
    pub stream_item: Option<IntentId>,
    /// On the stream lane: what the opener sends after the opening, if the
    /// agent says.
    pub stream_send: Option<IntentId>,
    /// An encoded `FileDescriptorSet` defining it, served to peers that ask
    /// (schema fetch). Never sent in the handshake itself.
    pub descriptor_set: Option<Bytes>,
    /// The schemas of the types `reply`, `stream_item` and `stream_send`
    /// name, served on schema fetch too. Never sent in the handshake itself.
    pub type_schemas: Vec<TypeSchema>,
}

/// The schema of a type an offer names (a reply or a stream's data type),
/// which the agent serves on schema fetch although it is not offered as an
/// intent of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TypeSchema {
    /// Its IntentId.
    pub id: IntentId,
    /// Its fully qualified protobuf name.
    pub name: String,
    /// An encoded `FileDescriptorSet` defining it and every type it reaches.
    pub descriptor_set: Bytes,
}

impl TypeSchema {
    /// The schema of `name` (IntentId `id`) in `descriptor_set`.
    pub fn new(id: IntentId, name: impl Into<String>, descriptor_set: Bytes) -> Self {
        Self { id, name: name.into(), descriptor_set }
    }
}

impl IntentOffer {
    fn new(id: IntentId, name: String, handles: bool, emits: bool) -> Self {
        Self {
            id,
            name,
            handles,
            emits,
            lanes: Lanes::ANY,
            reply: None,
            stream_item: None,
            stream_send: None,
            descriptor_set: None,
            type_schemas: Vec::new(),
        }
    }

    /// An intent this agent handles (accepts from peers), on every lane.
    pub fn handles(id: IntentId, name: impl Into<String>) -> Self {
        Self::new(id, name.into(), true, false)
    }

    /// An intent this agent emits (sends to peers).
    pub fn emits(id: IntentId, name: impl Into<String>) -> Self {
        Self::new(id, name.into(), false, true)
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

    /// Handles the intent on these lanes only.
    pub fn on_lanes(mut self, lanes: Lanes) -> Self {
        self.lanes = lanes;
        self
    }

    /// Names the reply asks of the intent are answered with.
    pub fn with_reply(mut self, reply: IntentId) -> Self {
        self.reply = Some(reply);
        self
    }

    /// Names the data types of the stream lane the intent opens: what the
    /// handler sends (`item`) and what the opener sends (`send`); `None`
    /// for a direction that carries nothing after the opening.
    pub fn with_stream_types(mut self, item: Option<IntentId>, send: Option<IntentId>) -> Self {
        self.stream_item = item;
        self.stream_send = send;
        self
    }

    /// Attaches the schema served on schema fetch.
    pub fn with_descriptor_set(mut self, descriptor_set: Bytes) -> Self {
        self.descriptor_set = Some(descriptor_set);
        self
    }

    /// Attaches the schema of a type the offer names (its reply or a data
    /// type), served on schema fetch.
    pub fn with_type_schema(mut self, schema: TypeSchema) -> Self {
        if !self.type_schemas.iter().any(|known| known.id == schema.id) {
            self.type_schemas.push(schema);
        }
        self
    }

    /// The lanes on which the intent is handled: none unless `handles`.
    pub fn handled_lanes(&self) -> Lanes {
        if self.handles { self.lanes } else { Lanes::NONE }
    }

    pub(crate) fn to_pb(&self) -> pb::IntentOffer {
        let id_bytes = |id: Option<IntentId>| id.map_or_else(Bytes::new, |id| Bytes::copy_from_slice(id.as_bytes()));
        pb::IntentOffer {
            intent_id: Bytes::copy_from_slice(self.id.as_bytes()),
            name: self.name.clone(),
            handles: self.handles,
            emits: self.emits,
            // Every lane is written out; an empty list would mean the same.
            lanes: self.handled_lanes().to_pb(),
            reply: id_bytes(self.reply),
            stream_item: id_bytes(self.stream_item),
            stream_send: id_bytes(self.stream_send),
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
        let named = |field: &str, bytes: &Bytes| -> Result<Option<IntentId>, Refusal> {
            if bytes.is_empty() {
                return Ok(None);
            }
            IntentId::try_from(&bytes[..]).map(Some).map_err(|_| {
                invalid(format!("intent {} names a {field} of {} bytes, expected 32 or none", offer.name, bytes.len()))
            })
        };
        let reply = named("reply", &offer.reply)?;
        let stream_item = named("stream item", &offer.stream_item)?;
        let stream_send = named("stream send type", &offer.stream_send)?;
        let mut parsed = Self::new(id, offer.name, offer.handles, offer.emits);
        parsed.lanes = Lanes::from_pb(&offer.lanes);
        parsed.reply = reply;
        parsed.stream_item = stream_item;
        parsed.stream_send = stream_send;
        Ok(parsed)
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
        if let Some(offer) = self.intents.iter().find(|o| o.handles && o.lanes.is_empty()) {
            return Err(invalid(format!("intent {} is handled on no lane", offer.name)));
        }
        check_versions(&self.versions)?;
        check_limits(self.limits)
    }

    /// The schema this agent serves for `id` on schema fetch: the name and
    /// descriptor set of an offered intent, or of a type an offer names
    /// (a reply or a stream's data type).
    pub fn schema(&self, id: &IntentId) -> Option<(&str, &Bytes)> {
        let offered = self.intents.iter().find_map(|offer| match &offer.descriptor_set {
            Some(set) if offer.id == *id => Some((offer.name.as_str(), set)),
            _ => None,
        });
        offered.or_else(|| {
            self.intents
                .iter()
                .flat_map(|offer| &offer.type_schemas)
                .find(|schema| schema.id == *id)
                .map(|schema| (schema.name.as_str(), &schema.descriptor_set))
        })
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
