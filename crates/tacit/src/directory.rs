//! The directory: a standard agent that keeps agents' signed records and
//! answers who handles an intent, holds a tag, belongs to an organisation or
//! has a role, and where an AgentId listens.
//!
//! This module is the client side; the directory agent itself is the
//! `tacit-directory` crate (`tacit directory serve`). The intents are the
//! standard [`RegisterAgent`],
//! [`FindAgents`] and
//! [`WatchAgents`] (`docs/PROTOCOL.md`, "The
//! directory").
//!
//! - An agent built with [`AgentBuilder::directory`] registers its
//!   [record](Agent::record) there once bound, refreshes it every half TTL,
//!   and uses the directory as a [`Lookup`] for [`Agent::connect_id`].
//! - [`DirectoryClient`] asks a directory directly: [`find`](DirectoryClient::find)
//!   records matching a [`Query`], or [`watch`](DirectoryClient::watch) them
//!   change.
//!
//! A directory can drop records but not forge or alter them: the client
//! verifies every record it receives with the AgentId it names, and checks
//! that it matches the query asked, leaving out (and logging) any that fail.
//!
//! ```no_run
//! # async fn run(agent: tacit::Agent, directory: tacit::Peer) -> tacit::Result<()> {
//! use tacit::directory::{DirectoryClient, Query};
//!
//! let client = DirectoryClient::new(directory);
//! let found = client.find(&Query::new().intent_name("market.v1.ReserveSlot").tag("gpu"), 10).await?;
//! for record in &found.records {
//!     let peer = agent.connect(record.record.addrs[0], record.record.agent_id).await?;
//!     # let _ = peer;
//! }
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tacit_handshake::AgentId;
use tacit_handshake::credential::{OrgKey, VerifiedCredential};
use tacit_handshake::record::{AgentRecord, SignedAgentRecord, VerifiedRecord};
use tacit_wire::IntentId;

use crate::discovery::{Lookup, LookupFuture};
use crate::intents::{AgentChange, AgentQuery, FindAgents, RegisterAgent, WatchAgents, agent_change};
use crate::{Agent, AgentBuilder, Error, Peer, Result, StreamReceiver};

/// Most records one [`FindAgents`] answers.
pub const MAX_FIND_LIMIT: u32 = 1000;
/// Records a [`FindAgents`] answers when it names no limit.
pub const DEFAULT_FIND_LIMIT: u32 = 100;

/// Which records a lookup or watch matches: every criterion set must hold;
/// none set matches every record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The agent.
    pub agent_id: Option<AgentId>,
    /// An intent the agent handles, by id.
    pub intent_id: Option<IntentId>,
    /// An intent the agent handles, by fully qualified name.
    pub intent_name: Option<String>,
    /// One of the agent's tags.
    pub tag: Option<String>,
    /// An organisation with a credential for the agent that verifies.
    pub org: Option<OrgKey>,
    /// A role of such a credential (of `org`'s organisation when set).
    pub role: Option<String>,
}

impl Query {
    /// Matches every record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only the record of `id`.
    pub fn agent(mut self, id: AgentId) -> Self {
        self.agent_id = Some(id);
        self
    }

    /// Agents that handle the intent `id`.
    pub fn intent(mut self, id: IntentId) -> Self {
        self.intent_id = Some(id);
        self
    }

    /// Agents that handle the intent named `name` (fully qualified).
    pub fn intent_name(mut self, name: impl Into<String>) -> Self {
        self.intent_name = Some(name.into());
        self
    }

    /// Agents with the tag `tag`.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Agents holding a credential of `org`.
    pub fn org(mut self, org: OrgKey) -> Self {
        self.org = Some(org);
        self
    }

    /// Agents holding a credential with `role`.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// Whether `record`, whose credentials that verify are `credentials`,
    /// matches.
    pub fn matches(&self, record: &AgentRecord, credentials: &[VerifiedCredential]) -> bool {
        self.agent_id.is_none_or(|id| record.agent_id == id)
            && self.intent_id.is_none_or(|id| record.intents.iter().any(|(i, _)| *i == id))
            && self.intent_name.as_ref().is_none_or(|name| record.intents.iter().any(|(_, n)| n == name))
            && self.tag.as_ref().is_none_or(|tag| record.tags.contains(tag))
            && (self.org.is_none() && self.role.is_none()
                || credentials.iter().any(|c| {
                    self.org.is_none_or(|org| c.org == org)
                        && self.role.as_ref().is_none_or(|role| c.roles.contains(role))
                }))
    }

    /// The query as carried.
    pub fn to_wire(&self) -> AgentQuery {
        AgentQuery {
            agent_id: self.agent_id.map(|id| Bytes::copy_from_slice(id.as_bytes())).unwrap_or_default(),
            intent_id: self.intent_id.map(|id| Bytes::copy_from_slice(id.as_bytes())).unwrap_or_default(),
            intent_name: self.intent_name.clone().unwrap_or_default(),
            tag: self.tag.clone().unwrap_or_default(),
            org_key: self.org.map(|org| Bytes::copy_from_slice(org.as_bytes())).unwrap_or_default(),
            role: self.role.clone().unwrap_or_default(),
        }
    }

    /// The query a peer sent, or why it is malformed (a key that is not 32
    /// bytes or not a valid key).
    pub fn from_wire(query: &AgentQuery) -> std::result::Result<Self, String> {
        fn key(what: &str, bytes: &[u8]) -> std::result::Result<Option<[u8; 32]>, String> {
            if bytes.is_empty() {
                return Ok(None);
            }
            <[u8; 32]>::try_from(bytes).map(Some).map_err(|_| format!("{what} of {} bytes, not 32", bytes.len()))
        }
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(Self {
            agent_id: key("agent_id", &query.agent_id)?
                .map(AgentId::from_bytes)
                .transpose()
                .map_err(|e| format!("agent_id: {e}"))?,
            intent_id: key("intent_id", &query.intent_id)?.map(IntentId::from_bytes),
            intent_name: nonempty(&query.intent_name),
            tag: nonempty(&query.tag),
            org: key("org_key", &query.org_key)?
                .map(OrgKey::from_bytes)
                .transpose()
                .map_err(|e| format!("org_key: {e}"))?,
            role: nonempty(&query.role),
        })
    }
}

/// What [`DirectoryClient::find`] returns.
#[derive(Debug, Clone)]
pub struct Found {
    /// The records that verified and match the query, ordered by AgentId.
    pub records: Vec<VerifiedRecord>,
    /// More records matched than the limit.
    pub truncated: bool,
    /// Records the directory sent that did not verify or did not match
    /// (each logged): a directory that sends any is broken or hostile.
    pub rejected: usize,
}

/// A change seen by [`DirectoryClient::watch`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Change {
    /// A record that matches: present when the watch began, new, or
    /// replacing an older one.
    Present(Box<VerifiedRecord>),
    /// The record of this agent expired.
    Expired(AgentId),
    /// Every record present when the watch began has been sent.
    Synced,
}

/// Asks a directory agent.
#[derive(Debug, Clone)]
pub struct DirectoryClient {
    peer: Peer,
}

impl DirectoryClient {
    /// A client of the directory `peer`.
    pub fn new(peer: Peer) -> Self {
        Self { peer }
    }

    /// The directory.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Registers `record` (signed by its agent); returns when the directory
    /// drops it unless refreshed. Refusals carry `RECORD_INVALID`,
    /// `RECORD_EXPIRED`, `RECORD_STALE` or `QUOTA_EXCEEDED`.
    pub async fn register(&self, record: &SignedAgentRecord) -> Result<SystemTime> {
        let registered = self.peer.ask(RegisterAgent { signed_record: record.encode().into() }).await?;
        Ok(UNIX_EPOCH + Duration::from_millis(registered.expires_at_unix_ms))
    }

    /// The records matching `query`, at most `limit` (1 to
    /// [`MAX_FIND_LIMIT`]; 0: [`DEFAULT_FIND_LIMIT`]), each verified.
    pub async fn find(&self, query: &Query, limit: u32) -> Result<Found> {
        let found = self.peer.ask(FindAgents { query: Some(query.to_wire()), limit }).await?;
        let now = SystemTime::now();
        let mut records = Vec::with_capacity(found.records.len());
        let mut rejected = 0;
        for bytes in &found.records {
            match checked(bytes, query, now) {
                Ok(record) => records.push(record),
                Err(why) => {
                    rejected += 1;
                    tracing::warn!(directory = %self.peer.id(), %why, "left out a record the directory sent");
                }
            }
        }
        Ok(Found { records, truncated: found.truncated, rejected })
    }

    /// Watches the records matching `query`: first those present, then
    /// [`Change::Synced`], then each change as it happens.
    pub async fn watch(&self, query: &Query) -> Result<Watch> {
        let (_, receiver) = self.peer.stream(WatchAgents { query: Some(query.to_wire()) }).await?;
        Ok(Watch { receiver, query: query.clone(), directory: self.peer.id() })
    }
}

/// The changes of a [`DirectoryClient::watch`].
#[derive(Debug)]
pub struct Watch {
    receiver: StreamReceiver<AgentChange>,
    query: Query,
    directory: AgentId,
}

impl Watch {
    /// The next change, or `None` when the directory ended the stream.
    /// Changes carrying a record that does not verify or match are skipped
    /// (and logged).
    pub async fn next(&mut self) -> Option<Result<Change>> {
        loop {
            let change = match self.receiver.recv().await {
                Ok(Some(change)) => change,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            match change.kind() {
                agent_change::Kind::Present => match checked(&change.signed_record, &self.query, SystemTime::now()) {
                    Ok(record) => return Some(Ok(Change::Present(Box::new(record)))),
                    Err(why) => tracing::warn!(directory = %self.directory, %why, "skipped a watched record"),
                },
                agent_change::Kind::Expired => {
                    if let Ok(Ok(id)) = <[u8; 32]>::try_from(change.agent_id.as_ref()).map(AgentId::from_bytes) {
                        return Some(Ok(Change::Expired(id)));
                    }
                    tracing::warn!(directory = %self.directory, "skipped an expiry with a bad agent_id");
                }
                agent_change::Kind::Synced => return Some(Ok(Change::Synced)),
                agent_change::Kind::Unspecified => {}
            }
        }
    }
}

/// A record from a directory: verified, and matching the query.
fn checked(bytes: &[u8], query: &Query, now: SystemTime) -> std::result::Result<VerifiedRecord, String> {
    let record = SignedAgentRecord::decode(bytes).and_then(|r| r.verify(now)).map_err(|e| e.to_string())?;
    let credentials = if query.org.is_some() || query.role.is_some() { record.credentials(now) } else { Vec::new() };
    if !query.matches(&record.record, &credentials) {
        return Err(format!("the record of {} does not match the query", record.record.agent_id));
    }
    Ok(record)
}

/// A directory as a [`Lookup`]: asks it for the record of the AgentId.
#[derive(Debug)]
pub struct DirectoryLookup {
    addr: SocketAddr,
    id: AgentId,
    peer: tokio::sync::Mutex<Option<Peer>>,
}

impl DirectoryLookup {
    /// The directory `id` at `addr`.
    pub fn new(addr: SocketAddr, id: AgentId) -> Self {
        Self { addr, id, peer: tokio::sync::Mutex::new(None) }
    }

    async fn find(&self, agent: &Agent, id: AgentId) -> Result<Vec<SocketAddr>> {
        let peer = {
            let mut held = self.peer.lock().await;
            match &*held {
                Some(peer) => peer.clone(),
                None => {
                    let peer = agent.connect(self.addr, self.id).await?;
                    *held = Some(peer.clone());
                    peer
                }
            }
        };
        let found = DirectoryClient::new(peer).find(&Query::new().agent(id), 1).await?;
        Ok(found.records.into_iter().flat_map(|r| r.record.addrs).collect())
    }
}

impl Lookup for DirectoryLookup {
    fn name(&self) -> String {
        format!("directory {}@{}", self.id.short(), self.addr)
    }

    fn lookup<'a>(&'a self, agent: &'a Agent, id: AgentId) -> LookupFuture<'a> {
        Box::pin(async move { self.find(agent, id).await.map_err(Into::into) })
    }
}

impl AgentBuilder {
    /// Registers the agent with the directory `id` at `addr` once bound —
    /// its [record](Agent::record), refreshed every half of its TTL — and
    /// asks that directory in [`Agent::connect_id`] (a lookup added after
    /// those added before). [`Agent::registered`] waits for the first
    /// acknowledgement.
    pub fn directory(mut self, addr: SocketAddr, id: AgentId) -> Self {
        self.discovery.directories.push((addr, id));
        self.lookup(DirectoryLookup::new(addr, id))
    }
}

impl Agent {
    /// Waits until every directory of [`AgentBuilder::directory`] has
    /// acknowledged this agent's record at least once (at once without
    /// directories). Wrap it in a timeout: a directory that is down is
    /// retried for as long as the agent lives.
    pub async fn registered(&self) {
        let mut counts = self.discovery().registered.subscribe();
        let _ = counts.wait_for(|counts| counts.iter().all(|&n| n > 0)).await;
    }
}

/// Starts the registration loop of each directory.
pub(crate) fn start_registration(agent: &Agent) {
    for (index, &(addr, id)) in agent.discovery().directories.clone().iter().enumerate() {
        let weak = agent.downgrade();
        agent.spawn_background(async move {
            let mut peer: Option<Peer> = None;
            let mut failures = 0u32;
            loop {
                let Some(agent) = weak.upgrade() else { return };
                let ttl = agent.discovery().record_ttl;
                let outcome = async {
                    let peer = match &peer {
                        Some(peer) => peer.clone(),
                        None => peer.insert(agent.connect(addr, id).await?).clone(),
                    };
                    DirectoryClient::new(peer).register(&agent.record(None)).await
                }
                .await;
                let pause = match outcome {
                    Ok(_) => {
                        failures = 0;
                        agent.discovery().registered.send_modify(|counts| counts[index] += 1);
                        (ttl / 2).max(Duration::from_secs(1))
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(directory = %id, %addr, error = %e, "registering with the directory failed; retrying");
                        if matches!(e, Error::Connect { .. }) {
                            peer = None;
                        }
                        Duration::from_millis(250 << failures.min(7)).min((ttl / 4).max(Duration::from_secs(1)))
                    }
                };
                drop(agent);
                tokio::time::sleep(pause).await;
            }
        });
    }
}
