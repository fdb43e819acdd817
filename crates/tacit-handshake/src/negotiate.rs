//! The pure negotiation: given both agents' capabilities, what the session
//! may use. Both sides run it on the same two inputs and get mirror-image
//! results, so nothing but the capabilities themselves crosses the wire.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use tacit_wire::{IntentId, IntentRef};

use crate::{AgentCard, Capabilities, IntentOffer, Lane, Lanes, Limits};

/// An intent usable in at least one direction, which way it may travel, and
/// on which lanes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NegotiatedIntent {
    /// The IntentId.
    pub id: IntentId,
    /// Its fully qualified name (as this agent knows it, or as the peer
    /// names it when this agent does not offer it: a standard intent).
    pub name: String,
    /// This agent may send it: it emits the intent (or it is a standard
    /// intent) and the peer handles it. Then `send_alias` is the alias to use.
    pub send_alias: Option<u32>,
    /// This agent may receive it: it handles the intent and the peer emits
    /// it (or it is a standard intent). Then `receive_alias` is the alias
    /// the peer uses.
    pub receive_alias: Option<u32>,
    /// The lanes on which the peer handles it (empty unless `send_alias`).
    pub send_lanes: Lanes,
    /// The lanes on which this agent handles it (empty unless `receive_alias`).
    pub receive_lanes: Lanes,
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
    pub peer_offers: std::sync::Arc<[IntentOffer]>,
    /// The peer's credentials that this agent verified (rule
    /// `trust.handshake`); empty when it presented none or this agent
    /// checks none.
    pub peer_credentials: Vec<crate::credential::VerifiedCredential>,
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

    /// The alias to send `id` under, if this agent may send it (on some lane).
    pub fn send_alias(&self, id: &IntentId) -> Option<u32> {
        self.intent(id).and_then(|intent| intent.send_alias)
    }

    /// The alias to send `id` under on `lane`. `Err(lanes)` when it may not
    /// go on that lane: `lanes` are the lanes on which the peer takes it,
    /// empty when it is not negotiated for sending at all.
    pub fn send_alias_on(&self, id: &IntentId, lane: Lane) -> Result<u32, Lanes> {
        match self.intent(id) {
            Some(NegotiatedIntent { send_alias: Some(alias), send_lanes, .. }) if send_lanes.contains(lane) => {
                Ok(*alias)
            }
            Some(intent) => Err(intent.send_lanes),
            None => Err(Lanes::NONE),
        }
    }

    /// Whether the peer may send this intent to this agent.
    pub fn can_receive(&self, id: &IntentId) -> bool {
        self.intent(id).is_some_and(|intent| intent.receive_alias.is_some())
    }

    /// The intent an incoming envelope names (by its alias or its full id),
    /// if the peer may send it to this agent: the one alias resolver of
    /// every lane.
    pub fn resolve(&self, intent: IntentRef) -> Option<IntentId> {
        self.resolve_intent(intent).map(|intent| intent.id)
    }

    /// Like [`resolve`](Self::resolve), for an envelope that arrived on
    /// `lane`: `None` also when this agent does not handle the intent on
    /// that lane.
    pub fn resolve_on(&self, intent: IntentRef, lane: Lane) -> Option<IntentId> {
        self.resolve_intent(intent).filter(|intent| intent.receive_lanes.contains(lane)).map(|intent| intent.id)
    }

    fn resolve_intent(&self, intent: IntentRef) -> Option<&NegotiatedIntent> {
        match intent {
            IntentRef::Alias(alias) => self.resolve_alias(alias),
            IntentRef::Id(id) => self.intent(&id).filter(|intent| intent.receive_alias.is_some()),
        }
    }

    /// The peer's offer of `id`, if it offers it: for the reply and stream
    /// data types it names.
    pub fn peer_offer(&self, id: &IntentId) -> Option<&IntentOffer> {
        self.peer_offers.iter().find(|offer| offer.id == *id)
    }
}

/// The highest version in both ranges, if any.
pub fn choose_version(local: &RangeInclusive<u32>, peer: &RangeInclusive<u32>) -> Option<u32> {
    let highest = (*local.end()).min(*peer.end());
    (highest >= *local.start() && highest >= *peer.start()).then_some(highest)
}

/// The package of the standard intents (`tacit.intents.v1.Ping`, ...).
pub const STANDARD_PACKAGE: &str = "tacit.intents.v1";

/// Whether an offer's name is that of a standard intent: a message of
/// [`STANDARD_PACKAGE`] itself (not of a sub-package).
pub fn is_standard(name: &str) -> bool {
    name.strip_prefix(STANDARD_PACKAGE)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|message| !message.is_empty() && !message.contains('.'))
}

/// Computes what a session between `local` and `peer` may use, at `version`.
///
/// An intent is usable from A to B when B handles it (on at least one
/// lane) and A emits it, or it is a standard intent (named in
/// [`STANDARD_PACKAGE`] by B's offer), which needs no `emits`. Aliases are
/// assigned by the receiver: an intent's alias is its 1-based position in
/// the receiving agent's list of intents.
pub fn negotiate(version: u32, local: &Capabilities, peer: &Capabilities, peer_card: AgentCard) -> Negotiated {
    let positions = |capabilities: &Capabilities| -> HashMap<IntentId, usize> {
        capabilities.intents.iter().enumerate().map(|(i, offer)| (offer.id, i)).collect()
    };
    let (local_positions, peer_positions) = (positions(local), positions(peer));
    // Whether `sender`'s offer and `receiver`'s offer (at `index`) let the
    // intent travel towards the receiver: the alias and the lanes.
    let towards = |sender: Option<&IntentOffer>, receiver: Option<(usize, &IntentOffer)>| {
        let (index, receiver) = receiver?;
        let lanes = receiver.handled_lanes();
        let sent = sender.is_some_and(|offer| offer.emits) || is_standard(&receiver.name);
        (sent && !lanes.is_empty()).then(|| (alias(index), lanes))
    };
    let local_only = local.intents.iter().map(|offer| offer.id);
    let peer_only = peer.intents.iter().map(|offer| offer.id).filter(|id| !local_positions.contains_key(id));
    let mut intents: Vec<NegotiatedIntent> = local_only
        .chain(peer_only)
        .filter_map(|id| {
            let mine = local_positions.get(&id).and_then(|&i| Some((i, local.intents.get(i)?)));
            let theirs = peer_positions.get(&id).and_then(|&i| Some((i, peer.intents.get(i)?)));
            let send = towards(mine.map(|(_, offer)| offer), theirs);
            let receive = towards(theirs.map(|(_, offer)| offer), mine);
            if send.is_none() && receive.is_none() {
                return None;
            }
            let name = mine.or(theirs).map(|(_, offer)| offer.name.clone()).unwrap_or_default();
            Some(NegotiatedIntent {
                id,
                name,
                send_alias: send.map(|(alias, _)| alias),
                receive_alias: receive.map(|(alias, _)| alias),
                send_lanes: send.map_or(Lanes::NONE, |(_, lanes)| lanes),
                receive_lanes: receive.map_or(Lanes::NONE, |(_, lanes)| lanes),
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
        peer_credentials: Vec::new(),
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
            .with_intent(IntentOffer::handles(a, "t.A"))
            .with_intent(IntentOffer::emits(b, "t.B"));
        let peer = Capabilities::default()
            .with_intent(IntentOffer::emits(a, "t.A"))
            .with_intent(IntentOffer::handles(b, "t.B"));
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
    fn lanes_of_the_handler_bound_both_sides() {
        // Tests hs.lanes-offer, hs.lanes-send and hs.lanes-receive: the
        // receiver's lanes decide; the sender learns them in the handshake.
        let a = IntentId::from_bytes([1; 32]);
        let handler = Capabilities::default().with_intent(IntentOffer::handles(a, "t.A").on_lanes(Lanes::ASK));
        let sender = Capabilities::default().with_intent(IntentOffer::emits(a, "t.A"));
        let at_sender = negotiate(1, &sender, &handler, AgentCard::new("handler"));
        let at_handler = negotiate(1, &handler, &sender, AgentCard::new("sender"));
        assert_eq!(at_sender.send_alias_on(&a, Lane::Ask), Ok(1));
        assert_eq!(at_sender.send_alias_on(&a, Lane::Stream), Err(Lanes::ASK));
        assert_eq!(at_sender.send_alias_on(&a, Lane::Tell), Err(Lanes::ASK));
        assert_eq!(at_sender.send_alias_on(&IntentId::from_bytes([9; 32]), Lane::Ask), Err(Lanes::NONE));
        assert_eq!(at_handler.resolve_on(IntentRef::Alias(1), Lane::Ask), Some(a));
        assert_eq!(at_handler.resolve_on(IntentRef::Alias(1), Lane::Datagram), None);
        assert_eq!(at_handler.resolve_on(IntentRef::Id(a), Lane::Stream), None);
        // Handled on no lane this version knows: not negotiated at all.
        let nowhere = Capabilities { intents: vec![IntentOffer::handles(a, "t.A")], ..Default::default() };
        let mut nowhere = nowhere;
        nowhere.intents[0].lanes = Lanes::NONE;
        assert!(negotiate(1, &sender, &nowhere, AgentCard::new("h")).intent(&a).is_none());
    }

    #[test]
    fn standard_intents_need_no_emits() {
        // Tests std.implicit: a standard intent the receiver handles is
        // negotiated towards it even when the sender's list is empty.
        let ping = IntentId::from_bytes([3; 32]);
        let own = IntentId::from_bytes([4; 32]);
        let agent = Capabilities::default()
            .with_intent(IntentOffer::handles(own, "acme.v1.Own"))
            .with_intent(IntentOffer::handles(ping, "tacit.intents.v1.Ping").on_lanes(Lanes::ASK));
        let empty = Capabilities::default();
        let at_empty = negotiate(1, &empty, &agent, AgentCard::new("agent"));
        let at_agent = negotiate(1, &agent, &empty, AgentCard::new("empty"));
        assert_eq!(at_empty.send_alias_on(&ping, Lane::Ask), Ok(2));
        assert_eq!(at_empty.intent(&ping).map(|i| i.name.as_str()), Some("tacit.intents.v1.Ping"));
        assert_eq!(at_agent.resolve_on(IntentRef::Alias(2), Lane::Ask), Some(ping));
        assert_eq!(at_agent.resolve_on(IntentRef::Id(ping), Lane::Ask), Some(ping));
        // Not the application's own intents, and not the other way.
        assert_eq!(at_empty.send_alias(&own), None);
        assert_eq!(at_agent.send_alias(&ping), None);
        // Tests std.package: the package itself, not its sub-packages.
        assert!(is_standard("tacit.intents.v1.Ping"));
        assert!(!is_standard("tacit.intents.v1x.Ping") && !is_standard("tacit.intents.v1.sub.Ping"));
        assert!(!is_standard("tacit.intents.v1.") && !is_standard("acme.Ping"));
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
