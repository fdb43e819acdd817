//! The marketplace on a local network: sellers announce themselves by mDNS
//! ([`tacit::mdns`]) and a buyer finds them there, by tag and by the digest
//! of the intents they handle, then dials each by AgentId
//! ([`Agent::connect_id`]) — no address given anywhere.

use std::collections::HashSet;
use std::time::Duration;

use tacit::mdns::{Discovered, Mdns, MdnsAgent};
use tacit::{Agent, AgentBuilder, AgentId, Intent, IntentId, Peer};

use crate::market::v1::{AcceptQuote, RequestQuote};

/// The tag (card role) every seller has.
pub const SELLER_TAG: &str = "seller";

/// The intents a seller handles, as its announcement's digest covers them
/// (`RejectProposal`, a standard intent every agent takes, is not among
/// them).
pub fn seller_intents() -> [IntentId; 2] {
    [RequestQuote::ID, AcceptQuote::ID]
}

/// Whether an announced agent is a seller: it has the tag and handles
/// exactly the seller's intents.
pub fn is_seller(agent: &MdnsAgent) -> bool {
    agent.has_tag(SELLER_TAG) && agent.handles_exactly(seller_intents())
}

/// `builder` announcing its agent on the local network once bound.
pub fn announced(builder: AgentBuilder) -> AgentBuilder {
    builder.mdns(Mdns::new())
}

/// The sellers `buyer` finds on the local network within `within`, at
/// most `count`, each connected by AgentId through mDNS, in the order
/// found. Sellers that cannot be connected are left out (their ids and
/// errors are the second part).
pub async fn find_sellers(
    buyer: &Agent,
    count: usize,
    within: Duration,
) -> tacit::Result<(Vec<Peer>, Vec<(AgentId, tacit::Error)>)> {
    let mut discovery = buyer.discover()?;
    let mut peers = Vec::new();
    let mut failures = Vec::new();
    let mut tried = HashSet::new();
    let search = async {
        while peers.len() < count {
            let Some(event) = discovery.next().await else { break };
            let Discovered::Appeared(agent) = event else { continue };
            if !is_seller(&agent) || !tried.insert(agent.id) {
                continue;
            }
            match buyer.connect_id(agent.id).await {
                Ok(peer) => peers.push(peer),
                Err(error) => failures.push((agent.id, error)),
            }
        }
    };
    let _ = tokio::time::timeout(within, search).await;
    Ok((peers, failures))
}
