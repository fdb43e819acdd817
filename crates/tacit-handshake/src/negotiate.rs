//! The pure negotiation: given both agents' capabilities, what the session
//! may use. Both sides run it on the same two inputs and get mirror-image
//! results, so nothing but the capabilities themselves crosses the wire.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use tacit_wire::{IntentId, IntentRef};

use crate::{AgentCard, Capabilities, Limits};

/// An intent both agents know, and which way it may travel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NegotiatedIntent {
    /// The IntentId.
    pub id: IntentId,
    /// Its fully qualified name (as this agent knows it).
    pub name: String,
    /// This agent may send it: it emits the intent and the peer handles it.
    /// Then `send_alias` is the alias to use.
    pub send_alias: Option<u32>,
    /// This agent may receive it: it handles the intent and the peer emits
    /// it. Then `receive_alias` is the alias the peer uses.
    pub receive_alias: Option<u32>,
}

/// The result of the handshake: what the session may use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// The protocol version: the highest both speak.
    pub version: u32,
    /// The peer's card.
    pub peer_card: AgentCard,
    /// Intents usable in at least one direction, sorted by IntentId.
    pub intents: Vec<NegotiatedIntent>,
    /// Each limit is the smaller of the two agents' values.
    pub limits: Limits,
    /// Feature bits both agents set.
    pub features: u64,
    /// Every intent the peer offers, in its order, whether or not this
    /// agent knows it (e.g. to learn what a peer emits, or to fetch the
    /// schema of an intent this agent was not built with).
    pub peer_offers: std::sync::Arc<[crate::IntentOffer]>,
    /// For each receive alias `a`, at `a - 1`: the position in `intents` of
    /// the intent it stands for, or [`NO_INTENT`]. Aliases are 1-based
    /// positions in this agent's own list, so this is as long as that list
    /// at most. (Looked up on every message; an index instead of a hash.)
    by_receive_alias: Vec<u32>,
}

/// No intent has this receive alias.
const NO_INTENT: u32 = u32::MAX;

impl Negotiated {
    /// The negotiated intent with this id, if any.
    pub fn intent(&self, id: &IntentId) -> Option<&NegotiatedIntent> {
        // `intents` is sorted by id (ids are unique in validated
        // capabilities): a binary search costs a few 32-byte comparisons,
        // less than hashing the id.
        self.intents.binary_search_by(|intent| intent.id.cmp(id)).ok().map(|i| &self.intents[i])
    }

    /// The intent an incoming alias stands for, if the peer may send it.
    pub fn resolve_alias(&self, alias: u32) -> Option<&NegotiatedIntent> {
        let slot = usize::try_from(alias).ok()?.checked_sub(1)?;
        match self.by_receive_alias.get(slot) {
            Some(&i) if i != NO_INTENT => self.intents.get(i as usize),
            _ => None,
        }
    }

    /// The alias to send `id` under, if this agent may send it.
    pub fn send_alias(&self, id: &IntentId) -> Option<u32> {
        self.intent(id).and_then(|intent| intent.send_alias)
    }

    /// Whether the peer may send this intent to this agent.
    pub fn can_receive(&self, id: &IntentId) -> bool {
        self.intent(id).is_some_and(|intent| intent.receive_alias.is_some())
    }

    /// The intent an incoming envelope names (by its alias or its full id),
    /// if the peer may send it to this agent: the one alias resolver of
    /// every lane.
    pub fn resolve(&self, intent: IntentRef) -> Option<IntentId> {
        match intent {
            IntentRef::Alias(alias) => self.resolve_alias(alias).map(|intent| intent.id),
            IntentRef::Id(id) => self.can_receive(&id).then_some(id),
        }
    }
}

/// The highest version in both ranges, if any.
pub fn choose_version(local: &RangeInclusive<u32>, peer: &RangeInclusive<u32>) -> Option<u32> {
    let highest = (*local.end()).min(*peer.end());
    (highest >= *local.start() && highest >= *peer.start()).then_some(highest)
}

/// Computes what a session between `local` and `peer` may use, at `version`.
///
/// An intent is usable from A to B when A emits it and B handles it. Aliases
/// are assigned by the receiver: an intent's alias is its 1-based position in
/// the receiving agent's list of intents.
pub fn negotiate(version: u32, local: &Capabilities, peer: &Capabilities, peer_card: AgentCard) -> Negotiated {
    let peer_positions: HashMap<IntentId, (usize, &crate::IntentOffer)> =
        peer.intents.iter().enumerate().map(|(i, offer)| (offer.id, (i, offer))).collect();
    let mut intents: Vec<NegotiatedIntent> = local
        .intents
        .iter()
        .enumerate()
        .filter_map(|(local_index, offer)| {
            let &(peer_index, peer_offer) = peer_positions.get(&offer.id)?;
            let send_alias = (offer.emits && peer_offer.handles).then(|| alias(peer_index));
            let receive_alias = (offer.handles && peer_offer.emits).then(|| alias(local_index));
            (send_alias.is_some() || receive_alias.is_some()).then(|| NegotiatedIntent {
                id: offer.id,
                name: offer.name.clone(),
                send_alias,
                receive_alias,
            })
        })
        .collect();
    intents.sort_unstable_by_key(|intent| intent.id);
    // Receive aliases are 1-based positions in `local.intents`.
    let mut by_receive_alias = vec![NO_INTENT; local.intents.len()];
    for (i, intent) in intents.iter().enumerate() {
        let slot = intent.receive_alias.and_then(|alias| usize::try_from(alias).ok()?.checked_sub(1));
        if let (Some(slot), Ok(i)) = (slot, u32::try_from(i))
            && let Some(entry) = by_receive_alias.get_mut(slot)
        {
            *entry = i;
        }
    }
    Negotiated {
        version,
        peer_card,
        intents,
        limits: local.limits.min(peer.limits),
        features: local.features & peer.features,
        peer_offers: peer.intents.iter().cloned().collect(),
        by_receive_alias,
    }
}

/// Alias for a 0-based list position. Lists hold at most 4096 intents.
fn alias(index: usize) -> u32 {
    u32::try_from(index).map_or(u32::MAX, |i| i.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_what_the_peer_may_send_by_alias_or_id() {
        let a = IntentId::from_bytes([1; 32]);
        let b = IntentId::from_bytes([2; 32]);
        let local = Capabilities::default()
            .with_intent(crate::IntentOffer::handles(a, "t.A"))
            .with_intent(crate::IntentOffer::emits(b, "t.B"));
        let peer = Capabilities::default()
            .with_intent(crate::IntentOffer::emits(a, "t.A"))
            .with_intent(crate::IntentOffer::handles(b, "t.B"));
        let negotiated = negotiate(1, &local, &peer, AgentCard::new("peer"));
        // The peer sends `a` under this agent's alias for it (position 1).
        assert_eq!(negotiated.resolve(IntentRef::Alias(1)), Some(a));
        assert_eq!(negotiated.resolve(IntentRef::Id(a)), Some(a));
        // `b` only goes the other way; unknown aliases resolve to nothing.
        assert_eq!(negotiated.resolve(IntentRef::Alias(2)), None);
        assert_eq!(negotiated.resolve(IntentRef::Id(b)), None);
        assert_eq!(negotiated.resolve(IntentRef::Alias(0)), None);
        assert_eq!(negotiated.resolve(IntentRef::Alias(99)), None);
    }

    #[test]
    fn highest_common_version() {
        assert_eq!(choose_version(&(1..=3), &(2..=5)), Some(3));
        assert_eq!(choose_version(&(1..=1), &(1..=1)), Some(1));
        assert_eq!(choose_version(&(4..=6), &(1..=3)), None);
        assert_eq!(choose_version(&(1..=3), &(4..=6)), None);
        assert_eq!(choose_version(&(2..=9), &(3..=3)), Some(3));
    }
}
