//! The standard intents every agent answers: ping, health and describe,
//! plus a default for contract-net rejections. An application's own handler
//! for one of them replaces the built-in one.

use crate::agent::AgentBuilder;
use crate::context::Context;
use crate::intents::{
    AgentDescription, DescribeAgent, Health, HealthCheck, IntentInfo, Ping, Pong, RejectProposal, health,
};

pub(crate) fn register(builder: AgentBuilder) -> AgentBuilder {
    builder
        .on_ask(|_: Context, ping: Ping| async move { Ok(Pong { nonce: ping.nonce }) })
        .emits::<Ping>()
        .on_ask(|cx: Context, _: HealthCheck| async move {
            let core = cx.peer().core();
            let status = if core.endpoint.is_shutting_down() { health::Status::Draining } else { health::Status::Serving };
            Ok(Health { status: status as i32, uptime_seconds: core.started.elapsed().as_secs() })
        })
        .emits::<HealthCheck>()
        .on_ask(|cx: Context, _: DescribeAgent| async move { Ok(describe(&cx)) })
        .emits::<DescribeAgent>()
        .on_tell(|cx: Context, rejection: RejectProposal| async move {
            tracing::debug!(peer = %cx.peer_id(), proposal = rejection.proposal_id, reason = %rejection.reason, "proposal rejected");
        })
        .emits::<RejectProposal>()
}

fn describe(cx: &Context) -> AgentDescription {
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
