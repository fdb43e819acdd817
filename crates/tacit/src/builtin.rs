//! The standard intents every agent answers: ping, health and describe,
//! plus a default for contract-net rejections, and revocation lists for an
//! agent that trusts organisations. An application's own handler for one of
//! them replaces the built-in one.

use std::borrow::Cow;

use tacit_handshake::credential::{AUTHORITY_ROLE, Applied, OrgKey, SignedRevocationList, VerifiedCredential};
use tacit_handshake::{AgentId, IntentOffer};
use tacit_wire::ErrorCode;

use crate::context::Context;
use crate::error::Rejection;
use crate::intent::Intent as _;
use crate::intents::{
    AgentDescription, DescribeAgent, Health, HealthCheck, IntentInfo, Ping, Pong, RejectProposal, Revocations,
    RevocationsApplied, health, revocations_applied,
};

/// Whether every agent answers `id` (a standard intent the builder
/// installs): such intents are left out of an agent's record.
pub(crate) fn is_universal(id: &tacit_wire::IntentId) -> bool {
    use crate::intents::Revocations;
    [Ping::ID, HealthCheck::ID, DescribeAgent::ID, RejectProposal::ID, Revocations::ID].contains(id)
}

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

/// Applies an organisation's revocation list sent by one of its authority
/// agents (rules `revoke.intent`, `revoke.authority`, `revoke.intent-codes`).
pub(crate) async fn revocations(cx: Context, request: Revocations) -> Result<RevocationsApplied, Rejection> {
    let refuse =
        |error: tacit_handshake::credential::CredentialError| Rejection::refuse(error.code(), error.to_string());
    let signed = SignedRevocationList::decode(&request.signed_list).map_err(refuse)?;
    let list = signed.list().map_err(refuse)?;
    let endpoint = &cx.peer().core().endpoint;
    if !endpoint.trusts(&list.org) {
        return Err(Rejection::refuse(
            ErrorCode::UntrustedOrganisation,
            format!("organisation {} is not trusted here", list.org),
        ));
    }
    if !is_authority(cx.peer_id(), &cx.peer_credentials(), &list.org) {
        return Err(Rejection::refuse(
            ErrorCode::PolicyDenied,
            format!(
                "{} is not an authority agent of organisation {} (its key, or a credential with role `{AUTHORITY_ROLE}`)",
                cx.peer_id(),
                list.org
            ),
        ));
    }
    let applied = endpoint.apply_revocations(&signed).map_err(refuse)?;
    let status = match applied {
        Applied::Replaced => {
            tracing::info!(peer = %cx.peer_id(), org = %list.org, serials = list.serials.len(), "applied a revocation list");
            revocations_applied::Status::Applied
        }
        Applied::Stale => revocations_applied::Status::Stale,
    };
    let held = endpoint.revocations(&list.org).unwrap_or(list);
    Ok(RevocationsApplied {
        status: status as i32,
        org_key: bytes::Bytes::copy_from_slice(held.org.as_bytes()),
        issued_at_unix_s: held.issued_at,
        serials: held.serials.into_iter().collect(),
    })
}

/// Whether `sender` is an authority agent of `org` (rule `revoke.authority`):
/// the organisation's key itself, or the holder of a verified credential of
/// `org` with the role `authority` that is not narrowed to intents other
/// than `Revocations`.
pub(crate) fn is_authority(sender: AgentId, credentials: &[VerifiedCredential], org: &OrgKey) -> bool {
    sender.as_bytes() == org.as_bytes()
        || credentials.iter().any(|credential| {
            credential.org == *org
                && credential.roles.iter().any(|role| role == AUTHORITY_ROLE)
                && credential.intents.as_ref().is_none_or(|intents| intents.contains(&Revocations::ID))
        })
}

/// The card and the intents offered to the caller: with a policy, what the
/// policy lets the caller use, on those lanes, as in its handshake offer
/// (rule `policy.describe`).
fn description(cx: &Context) -> AgentDescription {
    let core = cx.peer().core();
    let card = &core.card;
    let policy = core.policy.read().unwrap_or_else(|e| e.into_inner()).clone();
    let offers: Cow<'_, [IntentOffer]> = if policy.is_open() {
        Cow::Borrowed(&core.offers)
    } else {
        let subject = policy.subject(cx.peer_id(), || cx.peer_credentials());
        Cow::Owned(policy.offered(&subject, &core.offers))
    };
    AgentDescription {
        name: card.name.clone(),
        description: card.description.clone(),
        roles: card.roles.clone(),
        software_version: card.software_version.clone(),
        metadata: card.metadata.clone(),
        intents: offers
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
