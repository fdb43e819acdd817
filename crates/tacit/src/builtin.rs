//! The standard intents every agent answers: ping, health and describe,
//! plus a default for contract-net rejections. An application's own handler
//! for one of them replaces the built-in one.

use crate::context::Context;
use crate::error::Rejection;
use crate::intents::{
    AgentDescription, DescribeAgent, Health, HealthCheck, IntentInfo, Ping, Pong, RejectProposal, health,
};

pub(crate) async fn ping(_: Context, ping: Ping) -> Result<Pong, Rejection> {
    Ok(Pong { nonce: ping.nonce })
}

pub(crate) async fn health(cx: Context, _: HealthCheck) -> Result<Health, Rejection> {
    let core = cx.peer().core();
    let status = if core.endpoint.is_shutting_down() { health::Status::Draining } else { health::Status::Serving };
    Ok(Health { status: status as i32, uptime_seconds: core.started.elapsed().as_secs() })
}

pub(crate) async fn describe(cx: Context, _: DescribeAgent) -> Result<AgentDescription, Rejection> {
    Ok(description(&cx))
}

pub(crate) async fn proposal_rejected(cx: Context, rejection: RejectProposal) {
    tracing::debug!(peer = %cx.peer_id(), proposal = rejection.proposal_id, reason = %rejection.reason, "proposal rejected");
}

fn description(cx: &Context) -> AgentDescription {
    let core = cx.peer().core();
    let card = &core.card;
    AgentDescription {
        name: card.name.clone(),
        description: card.description.clone(),
        roles: card.roles.clone(),
        software_version: card.software_version.clone(),
        metadata: card.metadata.clone(),
        intents: core
            .offers
            .iter()
            .map(|offer| IntentInfo {
                intent_id: bytes::Bytes::copy_from_slice(offer.id.as_bytes()),
                name: offer.name.clone(),
                handles: offer.handles,
                emits: offer.emits,
            })
            .collect(),
    }
}
