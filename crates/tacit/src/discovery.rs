//! Finding agents by AgentId: [`Agent::connect_id`] and the lookups it asks.
//!
//! An agent dials a peer it knows only by [`AgentId`] through a chain of
//! [`Lookup`]s, tried in order until one yields an address that answers
//! with that id:
//!
//! 1. **memory**, always first: addresses given with
//!    [`AgentBuilder::known_addr`](crate::AgentBuilder::known_addr) or
//!    [`Agent::remember`], and every address `connect_id` reached before;
//! 2. the lookups added with [`AgentBuilder::lookup`](crate::AgentBuilder::lookup),
//!    in the order added. Tacit has three: mDNS on the local network
//!    (feature `mdns`), DNS records under a domain (feature `dns`), and a
//!    [directory agent](crate::directory) (`AgentBuilder::directory`). Add
//!    them in that order — nearest and cheapest first — unless you have a
//!    reason not to.
//!
//! A lookup's answer is a hint, never trusted: every address is dialed with
//! the AgentId expected, so the TLS handshake proves the key, and a wrong or
//! malicious answer can waste a connect timeout but never impersonate. When
//! nothing answers, [`Error::NotFound`] names every
//! lookup tried and what each said.
//!
//! An agent also describes itself for others to find: [`Agent::record`]
//! signs an [`AgentRecord`] with its key — addresses
//! ([`AgentBuilder::advertise`](crate::AgentBuilder::advertise)), name, tags,
//! the intents it handles and its credentials — which a directory, a DNS
//! zone or a cache can carry without being able to alter it.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tacit_handshake::credential::SignedCredential;
use tacit_handshake::record::{AgentRecord, SignedAgentRecord};
use tacit_handshake::{AgentId, Identity};
use tokio::task::{AbortHandle, JoinSet};

use crate::error::BoxError;
pub use crate::error::{Attempt, Attempts};
use crate::{Agent, Error, Peer, Result};

/// What a [`Lookup`] returns: the addresses it found for an AgentId (empty
/// when it knows none), or why it could not look.
pub type LookupFuture<'a> = Pin<Box<dyn Future<Output = std::result::Result<Vec<SocketAddr>, BoxError>> + Send + 'a>>;

/// A source of addresses for an AgentId: mDNS, DNS, a directory, or your own
/// (a service registry, a configuration file).
///
/// Implementations need not verify what they return ([`Agent::connect_id`]
/// dials each address expecting the id), but should verify what they can —
/// the built-in ones accept only records signed by the id's key — so that a
/// forged answer does not cost a connect timeout.
pub trait Lookup: Send + Sync + fmt::Debug + 'static {
    /// How errors name this lookup: `"mdns"`, `"dns example.com"`,
    /// `"directory kzjr…@192.0.2.1:4433"`.
    fn name(&self) -> String;

    /// The addresses of `id`. `agent` is the agent looking (a directory
    /// lookup asks through it).
    fn lookup<'a>(&'a self, agent: &'a Agent, id: AgentId) -> LookupFuture<'a>;
}

/// The default TTL of the agent's own record ([`Agent::record`]).
pub const DEFAULT_RECORD_TTL: Duration = Duration::from_secs(300);

/// Discovery settings of an [`AgentBuilder`](crate::AgentBuilder).
#[derive(Default)]
pub(crate) struct DiscoveryConfig {
    pub(crate) known: HashMap<AgentId, Vec<SocketAddr>>,
    pub(crate) lookups: Vec<Arc<dyn Lookup>>,
    pub(crate) advertise: Vec<SocketAddr>,
    pub(crate) record_ttl: Option<Duration>,
    pub(crate) directories: Vec<(SocketAddr, AgentId)>,
    /// Run once the agent is bound (starting an mDNS announcer, say).
    #[allow(clippy::type_complexity)]
    pub(crate) on_bind: Vec<Box<dyn FnOnce(&Agent) -> Result<()> + Send>>,
}

impl DiscoveryConfig {
    /// Everything but the bind hooks.
    pub(crate) fn take_for_bind(&mut self) -> Self {
        Self {
            known: std::mem::take(&mut self.known),
            lookups: std::mem::take(&mut self.lookups),
            advertise: std::mem::take(&mut self.advertise),
            record_ttl: self.record_ttl,
            directories: std::mem::take(&mut self.directories),
            on_bind: Vec::new(),
        }
    }
}

impl fmt::Debug for DiscoveryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryConfig")
            .field("known", &self.known)
            .field("lookups", &self.lookups)
            .field("advertise", &self.advertise)
            .field("record_ttl", &self.record_ttl)
            .field("directories", &self.directories)
            .finish_non_exhaustive()
    }
}

/// A bound agent's discovery state.
pub(crate) struct Discovery {
    identity: Identity,
    credentials: Vec<SignedCredential>,
    known: Mutex<HashMap<AgentId, Vec<SocketAddr>>>,
    lookups: Vec<Arc<dyn Lookup>>,
    advertise: Vec<SocketAddr>,
    pub(crate) record_ttl: Duration,
    pub(crate) directories: Vec<(SocketAddr, AgentId)>,
    /// Background work (registration, announcing), stopped with the agent.
    tasks: Mutex<Vec<AbortHandle>>,
    /// What must live as long as the agent (an mDNS daemon's handle).
    #[cfg_attr(not(feature = "mdns"), allow(dead_code))]
    resources: Mutex<Vec<Box<dyn Any + Send + Sync>>>,
    /// How many times each directory acknowledged the record (index as
    /// `directories`).
    pub(crate) registered: tokio::sync::watch::Sender<Vec<u64>>,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery").field("lookups", &self.lookups).finish_non_exhaustive()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
    }
}

impl Discovery {
    pub(crate) fn new(config: DiscoveryConfig, identity: Identity, credentials: Vec<SignedCredential>) -> Self {
        let directories = config.directories;
        Self {
            identity,
            credentials,
            known: Mutex::new(config.known),
            lookups: config.lookups,
            advertise: config.advertise,
            record_ttl: config.record_ttl.unwrap_or(DEFAULT_RECORD_TTL),
            registered: tokio::sync::watch::Sender::new(vec![0; directories.len()]),
            directories,
            tasks: Mutex::new(Vec::new()),
            resources: Mutex::new(Vec::new()),
        }
    }

    fn known(&self, id: &AgentId) -> Vec<SocketAddr> {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned().unwrap_or_default()
    }

    pub(crate) fn remember(&self, id: AgentId, addr: SocketAddr) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let addrs = known.entry(id).or_default();
        // Most recent first; a few per agent.
        addrs.retain(|a| *a != addr);
        addrs.insert(0, addr);
        addrs.truncate(8);
    }
}

/// Where an agent bound to `local` can be reached, when nothing was
/// advertised: `local` itself, with an unspecified address (`0.0.0.0`,
/// `::`) replaced by loopback — the one address that is right on every
/// host. An agent reachable from elsewhere says where with
/// [`AgentBuilder::advertise`](crate::AgentBuilder::advertise).
fn default_advertised(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), local.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), local.port()),
        _ => local,
    }
}

impl Agent {
    pub(crate) fn discovery(&self) -> &Discovery {
        &self.inner().discovery
    }

    /// Keeps `resource` alive as long as the agent (a discovery daemon's
    /// handle, say).
    #[cfg_attr(not(feature = "mdns"), allow(dead_code))]
    pub(crate) fn attach(&self, resource: Box<dyn Any + Send + Sync>) {
        self.discovery().resources.lock().unwrap_or_else(|e| e.into_inner()).push(resource);
    }

    /// Calls `f` with the first attached resource of type `T`, if any.
    #[cfg(feature = "mdns")]
    pub(crate) fn with_attached<T: Any, R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let resources = self.discovery().resources.lock().unwrap_or_else(|e| e.into_inner());
        resources.iter().find_map(|r| r.downcast_ref::<T>()).map(f)
    }

    /// Drops the attached resources (at shutdown: an mDNS announcement says
    /// goodbye then, not only when the agent is dropped).
    pub(crate) fn release_attached(&self) {
        let released = std::mem::take(&mut *self.discovery().resources.lock().unwrap_or_else(|e| e.into_inner()));
        drop(released);
    }

    /// Runs `task` until the agent is dropped. The task should hold the
    /// agent only through a [`WeakAgent`](crate::agent::WeakAgent), or it
    /// keeps the agent alive.
    pub(crate) fn spawn_background(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task).abort_handle();
        self.discovery().tasks.lock().unwrap_or_else(|e| e.into_inner()).push(handle);
    }

    /// Adds `addr` to the addresses this agent knows for `id` (the memory
    /// lookup of [`connect_id`](Self::connect_id)), most recent first.
    pub fn remember(&self, id: AgentId, addr: SocketAddr) {
        self.discovery().remember(id, addr);
    }

    /// The addresses this agent knows for `id`, most recent first.
    pub fn known_addrs(&self, id: &AgentId) -> Vec<SocketAddr> {
        self.discovery().known(id)
    }

    /// The addresses this agent tells others it listens on: those given to
    /// [`AgentBuilder::advertise`](crate::AgentBuilder::advertise), or else its
    /// bound address (loopback for an unspecified one).
    pub fn advertised_addrs(&self) -> Vec<SocketAddr> {
        let advertise = &self.discovery().advertise;
        if !advertise.is_empty() {
            return advertise.clone();
        }
        self.local_addr().map(|local| vec![default_advertised(local)]).unwrap_or_default()
    }

    /// This agent's record, signed with its key, issued now and holding for
    /// `ttl` (default [`DEFAULT_RECORD_TTL`], or
    /// [`AgentBuilder::record_ttl`](crate::AgentBuilder::record_ttl)): its
    /// advertised addresses, its card's name and roles (as tags), the
    /// intents it handles and its credentials. What a directory, a DNS zone
    /// or an mDNS announcement carries.
    pub fn record(&self, ttl: impl Into<Option<Duration>>) -> SignedAgentRecord {
        let discovery = self.discovery();
        let ttl = ttl.into().unwrap_or(discovery.record_ttl);
        let card = self.card();
        let mut record = AgentRecord::new(self.id(), SystemTime::now(), ttl).name(card.name.clone());
        record.addrs = self.advertised_addrs();
        record.tags = card.roles.clone();
        record.intents = self.handled_intents();
        record.credentials = discovery.credentials.clone();
        record.sign(&discovery.identity)
    }

    /// Dials the agent `id` knowing only its id: asks the lookups in order
    /// (memory first, then those of [`AgentBuilder::lookup`](crate::AgentBuilder::lookup))
    /// and dials the addresses each returns, all at once, expecting `id`;
    /// the first that completes the TLS handshake as `id` wins and is
    /// remembered. Fails with [`Error::NotFound`] naming every lookup and
    /// what it said when none leads to the agent.
    pub async fn connect_id(&self, id: AgentId) -> Result<Peer> {
        if id == self.id() {
            return Err(Error::NotFound {
                id,
                tried: Attempts(vec![Attempt { lookup: "self".into(), outcome: "that is this agent's own id".into() }]),
            });
        }
        let mut tried = Vec::new();
        let known = self.known_addrs(&id);
        if known.is_empty() {
            tried.push(Attempt { lookup: "memory".into(), outcome: "no address".into() });
        } else if let Some(peer) = self.dial_any(id, known, "memory", &mut tried).await {
            return Ok(peer);
        }
        let lookups = self.discovery().lookups.clone();
        for lookup in &lookups {
            let name = lookup.name();
            match lookup.lookup(self, id).await {
                Ok(addrs) if addrs.is_empty() => tried.push(Attempt { lookup: name, outcome: "no address".into() }),
                Ok(addrs) => {
                    if let Some(peer) = self.dial_any(id, addrs, &name, &mut tried).await {
                        return Ok(peer);
                    }
                }
                Err(e) => tried.push(Attempt { lookup: name, outcome: e.to_string() }),
            }
        }
        Err(Error::NotFound { id, tried: Attempts(tried) })
    }

    /// Dials every address at once; the first to reach `id` wins.
    async fn dial_any(
        &self,
        id: AgentId,
        mut addrs: Vec<SocketAddr>,
        lookup: &str,
        tried: &mut Vec<Attempt>,
    ) -> Option<Peer> {
        addrs.dedup();
        let mut dials = JoinSet::new();
        for addr in addrs {
            let agent = self.clone();
            dials.spawn(async move { (addr, agent.connect(addr, id).await) });
        }
        let mut failures = Vec::new();
        while let Some(joined) = dials.join_next().await {
            let Ok((addr, outcome)) = joined else { continue };
            match outcome {
                Ok(peer) => {
                    self.remember(id, addr);
                    return Some(peer);
                }
                Err(e) => failures.push(format!("{addr}: {e}")),
            }
        }
        tried.push(Attempt { lookup: lookup.to_owned(), outcome: failures.join(", ") });
        None
    }
}
