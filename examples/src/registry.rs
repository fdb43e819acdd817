//! The marketplace through a directory agent ([`tacit_directory`]): sellers
//! register their signed records with it ([`AgentBuilder::directory`]), and
//! a buyer asks it who handles `market.v1.RequestQuote`, then dials each
//! seller by AgentId ([`Agent::connect_id`]) at the addresses of its
//! verified record.

use std::net::SocketAddr;

use tacit::directory::{DirectoryClient, Query};
use tacit::{Agent, AgentBuilder, AgentId, Intent, Peer};

use crate::lan::SELLER_TAG;
use crate::market::v1::RequestQuote;

/// `builder` registering its agent with the directory `id` at `addr`.
pub fn registered(builder: AgentBuilder, addr: SocketAddr, id: AgentId) -> AgentBuilder {
    builder.directory(addr, id)
}

/// The sellers the directory `id` at `addr` knows (at most `limit`): agents
/// that handle `RequestQuote` and have the seller tag, each connected by
/// AgentId. Sellers that cannot be reached are left out and returned with
/// their errors.
pub async fn find_sellers(
    buyer: &Agent,
    addr: SocketAddr,
    id: AgentId,
    limit: u32,
) -> tacit::Result<(Vec<Peer>, Vec<(AgentId, tacit::Error)>)> {
    let directory = DirectoryClient::new(buyer.connect(addr, id).await?);
    let query = Query::new().intent(RequestQuote::ID).tag(SELLER_TAG);
    let found = directory.find(&query, limit).await?;
    let mut peers = Vec::with_capacity(found.records.len());
    let mut failures = Vec::new();
    for verified in found.records {
        let seller = verified.record.agent_id;
        // The record verified against its own key: its addresses are the
        // seller's word, and the TLS handshake of connect_id checks it.
        for addr in verified.record.addrs.iter().rev() {
            buyer.remember(seller, *addr);
        }
        match buyer.connect_id(seller).await {
            Ok(peer) => peers.push(peer),
            Err(e) => failures.push((seller, e)),
        }
    }
    Ok((peers, failures))
}
