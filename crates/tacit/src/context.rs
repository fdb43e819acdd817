//! What a handler knows about the message it handles, and how it talks back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tacit_handshake::{AgentCard, AgentId, Receipt};
use tacit_wire::{Act, ConversationId, IntentId, TraceContext};

use crate::error::Rejection;
use crate::metrics::Metrics;
use crate::peer::Peer;

/// The context of one incoming message: who sent it, in which conversation,
/// with what act and deadline, and a [`Peer`] handle to send further intents
/// to the sender (on the same session).
#[derive(Debug, Clone)]
pub struct Context {
    pub(crate) peer: Peer,
    pub(crate) intent: IntentId,
    pub(crate) act: Act,
    pub(crate) message_id: u64,
    pub(crate) in_reply_to: u64,
    pub(crate) conversation: ConversationId,
    pub(crate) deadline: Option<Instant>,
    // trace hook: the incoming envelope's trace context.
    pub(crate) trace: Option<TraceContext>,
    /// The verified receipt of a signed message.
    pub(crate) receipt: Option<Arc<Receipt>>,
}

impl Context {
    /// The sender's AgentId, proven by its TLS certificate.
    pub fn peer_id(&self) -> AgentId {
        self.peer.id()
    }

    /// The sender's card, as it presented itself in the handshake.
    pub fn peer_card(&self) -> Option<AgentCard> {
        self.peer.card()
    }

    /// The sender's organisation credentials, verified in the handshake.
    pub fn peer_credentials(&self) -> Vec<tacit_handshake::credential::VerifiedCredential> {
        self.peer.credentials()
    }

    /// The sender, to send it further intents (asks, tells, streams).
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The intent of the message.
    pub fn intent(&self) -> IntentId {
        self.intent
    }

    /// The intent's name, as this agent or the peer offered it (`None` if
    /// neither named it).
    pub fn intent_name(&self) -> Option<String> {
        let negotiated = self.peer.session().negotiated()?;
        if let Some(intent) = negotiated.intent(&self.intent) {
            return Some(intent.name.clone());
        }
        negotiated.peer_offers.iter().find(|offer| offer.id == self.intent).map(|offer| offer.name.clone())
    }

    /// The act of the message (`REQUEST`, `CFP`, `ACCEPT`, `QUERY`, ...).
    pub fn act(&self) -> Act {
        self.act
    }

    /// The message's id (what a reply's `in_reply_to` names).
    pub fn message_id(&self) -> u64 {
        self.message_id
    }

    /// The message this one answers (0 if none).
    pub fn in_reply_to(&self) -> u64 {
        self.in_reply_to
    }

    /// The conversation the message belongs to (empty if none).
    pub fn conversation_id(&self) -> ConversationId {
        self.conversation
    }

    /// When the asker stops waiting, if it set a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (`None` without one; zero once passed).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// The agent's shared state of type `S` ([`AgentBuilder::state`](crate::AgentBuilder::state)).
    /// Missing state is a `FAILURE` (`HANDLER_FAILED`) for the asker, so
    /// `let inventory = cx.state::<Inventory>()?;` reads well in a handler.
    pub fn state<S: std::any::Any + Send + Sync>(&self) -> Result<&S, Rejection> {
        self.peer
            .core()
            .states
            .get::<S>()
            .ok_or_else(|| Rejection::failed(format!("this agent has no state of type {}", std::any::type_name::<S>())))
    }

    // trace hook: the accessor.
    /// The W3C trace context the message carried, if any (the handler already
    /// runs in a child span of it; see [`trace`](crate::trace)).
    pub fn trace(&self) -> Option<TraceContext> {
        self.trace
    }

    /// The receipt of the message, if the sender signed it
    /// ([`AskOptions::signed`](crate::AskOptions::signed)): already verified
    /// against the sender's AgentId (a message whose signature does not
    /// verify never reaches a handler). Keep it
    /// ([`Receipt::encode_to_vec`]) as evidence that the sender sent this
    /// message to this agent; anyone can check it with `tacit verify`.
    pub fn receipt(&self) -> Option<&Receipt> {
        self.receipt.as_deref()
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        self.peer.metrics()
    }
}
