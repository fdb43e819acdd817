//! What an agent's tasks, peers and handler contexts share: the endpoint,
//! the state for handlers, the policy for dialed peers and the counters.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tacit_handshake::{AgentCard, IntentOffer};
use tacit_quic::{Endpoint, ReconnectPolicy};
use tacit_wire::IntentId;

use crate::metrics::Metrics;
use crate::policy::Policy;

/// What the agent's tasks share.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) endpoint: Endpoint,
    pub(crate) names: HashMap<IntentId, Arc<str>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) card: AgentCard,
    pub(crate) offers: Vec<IntentOffer>,
    /// The intents this agent declared it sends.
    /// Sorted: a binary search of a few 32-byte comparisons is cheaper on
    /// the per-ask path than hashing the id.
    pub(crate) emitted: Vec<IntentId>,
    pub(crate) states: States,
    pub(crate) started: Instant,
    /// The receiver-side policy in force (the standard `DescribeAgent`
    /// describes what it lets the caller use).
    pub(crate) policy: Arc<RwLock<Arc<Policy>>>,
}

impl Core {
    /// Whether this agent declared that it sends `id`.
    pub(crate) fn emits(&self, id: &IntentId) -> bool {
        self.emitted.binary_search(id).is_ok()
    }
}

/// Shared state for handlers, one value per type ([`AgentBuilder::state`]).
#[derive(Default)]
pub(crate) struct States(pub(crate) HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl States {
    pub(crate) fn get<S: Any + Send + Sync>(&self) -> Option<&S> {
        self.0.get(&TypeId::of::<S>()).and_then(|state| state.downcast_ref::<S>())
    }
}

impl std::fmt::Debug for States {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "States({} values)", self.0.len())
    }
}
