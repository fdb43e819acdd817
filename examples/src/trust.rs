//! Trust in the marketplace: a market organisation credentials its buyers,
//! sellers serve only them, and every order leaves a pair of receipts.
//!
//! - The **market** is an organisation key ([`OrgSigner`]). It issues each
//!   buyer a credential with role `buyer` ([`Market::credential`]); the
//!   buyer presents it in every handshake.
//! - A **seller** trusts the market and runs [`seller_policy`]: members of
//!   the market with role `buyer` may use its intents, the acceptance only
//!   signed; anyone else is allowed nothing, so its handshake is refused
//!   with `POLICY_DENIED` (PROTOCOL.md, `policy.nothing-offered`).
//! - The buyer awards with [`Round::award_signed`](tacit::Round::award_signed):
//!   its `AcceptQuote` is signed, and it asks for a signed `OrderConfirmed`.
//!   The seller keeps the buyer's receipt ([`Context::receipt`](tacit::Context::receipt)),
//!   the buyer keeps the seller's ([`Reply::receipt`](tacit::Reply::receipt)):
//!   a pair, each checkable by anyone with `tacit verify`, that says the
//!   buyer accepted this quote and the seller confirmed this order.

use std::time::{Duration, SystemTime};

use tacit::credential::{Credential, OrgKey, OrgSigner, SignedCredential};
use tacit::intents::RejectProposal;
use tacit::policy::Rule;
use tacit::{Act, AgentId, ConversationId, Intent as _, Policy, Receipt};

use crate::market::v1::{AcceptQuote, RequestQuote};

/// The role a buyer's credential carries.
pub const BUYER_ROLE: &str = "buyer";

/// How long a buyer's credential is valid.
pub const CREDENTIAL_LIFETIME: Duration = Duration::from_secs(3600);

/// The market organisation.
#[derive(Debug)]
pub struct Market {
    signer: OrgSigner,
    serial: std::sync::atomic::AtomicU64,
}

impl Market {
    /// A market with a fresh organisation key.
    pub fn generate() -> Result<Self, tacit::IdentityError> {
        Ok(Self { signer: OrgSigner::generate()?, serial: std::sync::atomic::AtomicU64::new(1) })
    }

    /// The market's key, which sellers trust.
    pub fn key(&self) -> OrgKey {
        self.signer.org_key()
    }

    /// A credential binding `buyer` to the market with role `buyer`, valid
    /// for [`CREDENTIAL_LIFETIME`] from now.
    pub fn credential(&self, buyer: AgentId) -> SignedCredential {
        let now = SystemTime::now();
        let serial = self.serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let credential = Credential::new(buyer, now, now + CREDENTIAL_LIFETIME).role(BUYER_ROLE).serial(serial);
        self.signer.issue(&credential)
    }
}

/// A seller's policy: buyers credentialed by `market` may ask for quotes,
/// reject them and accept them — the acceptance only signed
/// (`SIGNATURE_REQUIRED` otherwise) — and use the standard intents; nobody
/// else may use anything.
pub fn seller_policy(market: &OrgKey) -> Policy {
    let market = market.to_string();
    let member = || Rule::allow().org(market.clone()).role(BUYER_ROLE);
    Policy::deny_all()
        .rule(member().intent(AcceptQuote::ID).signed())
        .rule(member().intent(RequestQuote::ID).intent(RejectProposal::ID))
        .rule(member().intent_name("tacit.intents.v1.Ping").intent_name("tacit.intents.v1.DescribeAgent"))
}

/// What the check of the receipt pairs found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairCheck {
    /// Orders whose award and confirmation receipts were both found.
    pub pairs: u64,
    /// Pairs whose two signatures verify, signed by the right agents and
    /// answering each other (the confirmation answers the award).
    pub verified: u64,
    /// Receipts of one side with no partner on the other.
    pub unmatched: u64,
}

/// Matches the awards the sellers kept (signed by `buyer`) with the
/// confirmations the buyer kept (signed by the sellers), by conversation,
/// and verifies each pair: both signatures, the signers, the acts, and that
/// the confirmation answers the award.
pub fn check_pairs(buyer: AgentId, awards: &[Receipt], confirmations: &[Receipt]) -> PairCheck {
    let by_conversation: std::collections::HashMap<ConversationId, &Receipt> =
        awards.iter().map(|award| (award.conversation_id, award)).collect();
    let mut check = PairCheck::default();
    for confirmation in confirmations {
        let Some(award) = by_conversation.get(&confirmation.conversation_id) else {
            check.unmatched += 1;
            continue;
        };
        check.pairs += 1;
        let ok = award.verify().is_ok()
            && confirmation.verify().is_ok()
            && award.sender == buyer
            && award.act == Act::Accept
            && award.intent == AcceptQuote::ID
            && confirmation.receiver == buyer
            && confirmation.sender == award.receiver
            && confirmation.act == Act::Inform
            && confirmation.in_reply_to == award.message_id;
        if ok {
            check.verified += 1;
        }
    }
    check.unmatched += (awards.len() as u64).saturating_sub(check.pairs);
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_serves_only_credentialed_buyers() {
        use tacit::Lane;
        use tacit::policy::{Effect, Subject};
        let market = Market::generate().unwrap();
        let policy = seller_policy(&market.key());
        let buyer = tacit::Identity::generate().unwrap().agent_id();
        let mut store = tacit::credential::TrustStore::new();
        store.trust(market.key());
        let verified = store.verify(&market.credential(buyer), &buyer, SystemTime::now()).unwrap();
        let member = Subject::with_credentials(buyer, &[verified]);
        let stranger = Subject::agent(buyer);
        for intent in [RequestQuote::ID, AcceptQuote::ID] {
            assert_eq!(policy.decide(&member, intent, None, Lane::Ask), Effect::Allow);
            assert_eq!(policy.decide(&stranger, intent, None, Lane::Ask), Effect::Deny);
        }
        // The acceptance must come signed; the call for quotes need not.
        let admitted = |intent| policy.admit(&member, intent, None, Lane::Ask).unwrap().signature_required();
        assert!(admitted(AcceptQuote::ID));
        assert!(!admitted(RequestQuote::ID));
    }
}
