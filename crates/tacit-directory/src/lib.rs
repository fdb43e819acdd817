//! The Tacit directory agent: keeps agents' signed records and answers who
//! handles an intent, holds a tag, belongs to an organisation or has a role,
//! and where an AgentId listens.
//!
//! It serves the standard intents [`RegisterAgent`], [`FindAgents`] and
//! [`WatchAgents`] (`docs/PROTOCOL.md`, "The directory"); agents use it
//! through [`tacit::directory`] (`AgentBuilder::directory`,
//! `DirectoryClient`), operators through `tacit directory serve` and `tacit
//! find`.
//!
//! - **Records are signed by their agent** ([`tacit::record`]): the
//!   directory verifies each registration — signature by the AgentId it
//!   names, bounds, time — so nobody can register someone else's AgentId,
//!   and readers verify again, so the directory cannot forge either.
//! - **TTLs**: a record is dropped when its TTL runs out unless its owner
//!   registered a newer one (agents refresh every half TTL).
//! - **Durable**: with [`Directory::open`], records live in a redb database;
//!   a registration is acknowledged only once committed, so a restart loses
//!   none. Registrations arriving together are committed together.
//! - **Quotas**: per registering peer, a rate ([`Limits::registrations_per_minute`])
//!   and a number of records held ([`Limits::records_per_peer`]); in all,
//!   [`Limits::max_records`]; per peer, [`Limits::watches_per_peer`]. A peer
//!   over its quota is refused with `QUOTA_EXCEEDED` and nobody else notices.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tacit_directory::{Directory, Limits};
//!
//! let directory = Directory::open("directory.redb", Limits::default())?;
//! let agent = directory.serve(tacit::Agent::builder().key_file("directory.key"))
//!     .bind("0.0.0.0:4433".parse()?)
//!     .await?;
//! agent.shutdown_on_signal(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

mod store;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tacit::directory::{DEFAULT_FIND_LIMIT, MAX_FIND_LIMIT, Query};
use tacit::intents::{AgentChange, AgentRegistered, AgentsFound, FindAgents, RegisterAgent, WatchAgents, agent_change};
use tacit::record::SignedAgentRecord;
use tacit::{AgentBuilder, AgentId, Context, ErrorCode, Rejection, StreamReceiver, StreamSender};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::store::{Entry, Event, Index, Op, PutError, Store};

pub use tacit::intents::{AgentChange as Change, AgentQuery};

/// A directory's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Records held in all (default 1,000,000); a new agent's registration
    /// beyond it is refused `QUOTA_EXCEEDED` (refreshes still work).
    pub max_records: usize,
    /// Records one peer may have registered and held at once (default 16:
    /// its own, and a few it relays).
    pub records_per_peer: usize,
    /// Registrations one peer may send per minute (default 120, with bursts
    /// of as many).
    pub registrations_per_minute: u32,
    /// Watches one peer may hold open (default 8).
    pub watches_per_peer: usize,
    /// Changes a watcher may fall behind before its stream is ended
    /// (default 1024).
    pub watch_backlog: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_records: 1_000_000,
            records_per_peer: 16,
            registrations_per_minute: 120,
            watches_per_peer: 8,
            watch_backlog: 1024,
        }
    }
}

impl Limits {
    /// Sets [`max_records`](Self::max_records).
    pub fn max_records(mut self, n: usize) -> Self {
        self.max_records = n;
        self
    }

    /// Sets [`records_per_peer`](Self::records_per_peer).
    pub fn records_per_peer(mut self, n: usize) -> Self {
        self.records_per_peer = n;
        self
    }

    /// Sets [`registrations_per_minute`](Self::registrations_per_minute).
    pub fn registrations_per_minute(mut self, n: u32) -> Self {
        self.registrations_per_minute = n;
        self
    }

    /// Sets [`watches_per_peer`](Self::watches_per_peer).
    pub fn watches_per_peer(mut self, n: usize) -> Self {
        self.watches_per_peer = n;
        self
    }
}

/// Why a directory could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The database could not be opened, read or written.
    #[error("directory store: {0}")]
    Storage(String),
}

/// A directory: its records and the handlers that serve them. Cheap to
/// clone. Open it inside a Tokio runtime (it starts its expiry task).
#[derive(Debug, Clone)]
pub struct Directory {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Arc<Store>,
    ops: mpsc::Sender<Op>,
    limits: Limits,
    rates: DefaultKeyedRateLimiter<AgentId>,
    watches: Mutex<HashMap<AgentId, usize>>,
    /// Records dropped as expired while loading.
    loaded: Loaded,
}

/// What [`Directory::open`] found in its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Records loaded.
    pub records: usize,
    /// Records dropped: expired, or unreadable.
    pub dropped: usize,
    /// How long loading took.
    pub took: Duration,
}

impl Directory {
    /// Opens the directory whose records are kept in the redb database at
    /// `path` (created if missing), loading every record that has not
    /// expired.
    pub fn open(path: impl AsRef<Path>, limits: Limits) -> Result<Self, DirectoryError> {
        let started = Instant::now();
        let (db, index, dropped) = store::load(path.as_ref(), SystemTime::now())?;
        let loaded = Loaded { records: index.len(), dropped, took: started.elapsed() };
        tracing::info!(records = loaded.records, dropped, took = ?loaded.took, "directory store loaded");
        Ok(Self::start(Some(db), index, limits, loaded))
    }

    /// A directory that keeps its records in memory only (lost on restart).
    pub fn in_memory(limits: Limits) -> Self {
        Self::start(None, Index::default(), limits, Loaded { records: 0, dropped: 0, took: Duration::ZERO })
    }

    fn start(db: Option<redb::Database>, index: Index, limits: Limits, loaded: Loaded) -> Self {
        let (events, _) = broadcast::channel(limits.watch_backlog.max(1));
        let store = Arc::new(Store { index: RwLock::new(index), events });
        let (ops, receiver) = mpsc::channel(16 * 1024);
        let writer_store = store.clone();
        let max_records = limits.max_records;
        std::thread::Builder::new()
            .name("tacit-directory-writer".into())
            .spawn(move || store::run_writer(db, writer_store, receiver, max_records))
            .map_err(|e| tracing::error!(error = %e, "could not start the directory's writer"))
            .ok();
        let per_minute = NonZeroU32::new(limits.registrations_per_minute).unwrap_or(NonZeroU32::MIN);
        let shared = Arc::new(Shared {
            store,
            ops,
            limits,
            rates: RateLimiter::keyed(Quota::per_minute(per_minute)),
            watches: Mutex::new(HashMap::new()),
            loaded,
        });
        tokio::spawn(expire(Arc::downgrade(&shared)));
        Self { shared }
    }

    /// What opening found.
    pub fn loaded(&self) -> Loaded {
        self.shared.loaded
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.shared.store.index.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the directory's handlers (and a card role `directory`) to an
    /// agent.
    pub fn serve(&self, builder: AgentBuilder) -> AgentBuilder {
        let (register, find, watch) = (self.clone(), self.clone(), self.clone());
        builder
            .on_ask(move |cx: Context, request: RegisterAgent| {
                let directory = register.clone();
                async move { directory.handle_register(cx.peer_id(), &request.signed_record).await }
            })
            .on_ask(move |_: Context, request: FindAgents| {
                let directory = find.clone();
                async move { directory.handle_find(&request) }
            })
            .on_stream(move |cx: Context, request: WatchAgents, sender, receiver| {
                let directory = watch.clone();
                async move { directory.handle_watch(cx.peer_id(), cx.peer().session(), request, sender, receiver).await }
            })
    }

    /// Registers `signed` on behalf of `registrant`, as the `RegisterAgent`
    /// handler does (quotas included): returns when the record expires.
    pub async fn register(&self, registrant: AgentId, signed: &[u8]) -> Result<SystemTime, Rejection> {
        let shared = &self.shared;
        if shared.rates.check_key(&registrant).is_err() {
            return Err(Rejection::refuse(
                ErrorCode::QuotaExceeded,
                format!("over {} registrations per minute", shared.limits.registrations_per_minute),
            ));
        }
        let now = SystemTime::now();
        let verified = SignedAgentRecord::decode(signed)
            .and_then(|record| record.verify(now))
            .map_err(|e| Rejection::refuse(e.code(), e.to_string()))?;
        let id = verified.record.agent_id;
        {
            let index = shared.store.index.read().unwrap_or_else(|e| e.into_inner());
            let replaces_own = index.get(&id).is_some_and(|held| held.registrant == *registrant.as_bytes());
            if !replaces_own && index.held_by(registrant.as_bytes()) >= shared.limits.records_per_peer {
                return Err(Rejection::refuse(
                    ErrorCode::QuotaExceeded,
                    format!("this peer already holds {} records here", shared.limits.records_per_peer),
                ));
            }
        }
        let entry = Arc::new(Entry::new(verified.signed.encode().into(), verified.record, *registrant.as_bytes(), now));
        let (ack, answer) = oneshot::channel();
        shared
            .ops
            .send(Op::Put { entry, ack })
            .await
            .map_err(|_| Rejection::failure(ErrorCode::Shutdown, "the directory is stopping"))?;
        match answer.await {
            Ok(Ok(expires_at)) => Ok(expires_at),
            Ok(Err(PutError::Stale)) => {
                Err(Rejection::refuse(ErrorCode::RecordStale, "a record as new or newer is held for this agent"))
            }
            Ok(Err(PutError::Full)) => Err(Rejection::refuse(
                ErrorCode::QuotaExceeded,
                format!("the directory holds its limit of {} records", shared.limits.max_records),
            )),
            Ok(Err(PutError::Storage(e))) => Err(Rejection::failure(ErrorCode::HandlerFailed, format!("store: {e}"))),
            Err(_) => Err(Rejection::failure(ErrorCode::Shutdown, "the directory is stopping")),
        }
    }

    async fn handle_register(&self, registrant: AgentId, signed: &[u8]) -> Result<AgentRegistered, Rejection> {
        let expires_at = self.register(registrant, signed).await?;
        Ok(AgentRegistered { expires_at_unix_ms: unix_ms(expires_at) })
    }

    /// The encoded records matching `query`, at most `limit`, and whether
    /// more matched.
    pub fn find(&self, query: &Query, limit: usize) -> (Vec<bytes::Bytes>, bool) {
        let index = self.shared.store.index.read().unwrap_or_else(|e| e.into_inner());
        let (entries, truncated) = index.find(query, limit, SystemTime::now());
        (entries.into_iter().map(|entry| entry.signed.clone()).collect(), truncated)
    }

    fn handle_find(&self, request: &FindAgents) -> Result<AgentsFound, Rejection> {
        let query = Query::from_wire(&request.query.clone().unwrap_or_default())
            .map_err(|e| Rejection::not_understood(ErrorCode::InvalidPayload, e))?;
        let limit = match request.limit {
            0 => DEFAULT_FIND_LIMIT,
            n => n.min(MAX_FIND_LIMIT),
        };
        let (records, truncated) = self.find(&query, limit as usize);
        Ok(AgentsFound { records, truncated })
    }

    async fn handle_watch(
        &self,
        peer: AgentId,
        cx_session: tacit::transport::Session,
        request: WatchAgents,
        mut sender: StreamSender<AgentChange>,
        _receiver: StreamReceiver<()>,
    ) {
        let Some(_slot) = WatchSlot::take(&self.shared, peer) else {
            tracing::debug!(%peer, "refused a watch over the per-peer limit");
            sender.reset(ErrorCode::QuotaExceeded);
            return;
        };
        let query = match Query::from_wire(&request.query.unwrap_or_default()) {
            Ok(query) => query,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "refused a malformed watch");
                sender.reset(ErrorCode::InvalidPayload);
                return;
            }
        };
        // Subscribe before the snapshot, so nothing falls between them.
        let mut events = self.shared.store.events.subscribe();
        // The watch ends with the watcher's connection. (A watch dropped on a
        // live connection is noticed at its next matching change, when the
        // send fails.)
        let session = cx_session;
        let now = SystemTime::now();
        let snapshot = {
            let index = self.shared.store.index.read().unwrap_or_else(|e| e.into_inner());
            index.find(&query, usize::MAX, now).0
        };
        for entry in snapshot {
            if sender.send(&present(&entry)).await.is_err() {
                return;
            }
        }
        let synced = AgentChange { kind: agent_change::Kind::Synced.into(), ..Default::default() };
        if sender.send(&synced).await.is_err() {
            return;
        }
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = session.closed() => return,
            };
            let change = match event {
                Ok(Event::Present(entry)) if store::matches(&query, &entry, SystemTime::now()) => present(&entry),
                Ok(Event::Expired(entry))
                    if store::matches(&query, &entry, entry.expires_at - Duration::from_millis(1)) =>
                {
                    AgentChange {
                        kind: agent_change::Kind::Expired.into(),
                        agent_id: bytes::Bytes::copy_from_slice(entry.record.agent_id.as_bytes()),
                        signed_record: bytes::Bytes::new(),
                    }
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(%peer, missed, "ended a watch that fell behind");
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if sender.send(&change).await.is_err() {
                return;
            }
        }
    }
}

fn present(entry: &Entry) -> AgentChange {
    AgentChange {
        kind: agent_change::Kind::Present.into(),
        agent_id: bytes::Bytes::copy_from_slice(entry.record.agent_id.as_bytes()),
        signed_record: entry.signed.clone(),
    }
}

/// One of a peer's watches, released when dropped.
struct WatchSlot<'a> {
    shared: &'a Shared,
    peer: AgentId,
}

impl<'a> WatchSlot<'a> {
    fn take(shared: &'a Shared, peer: AgentId) -> Option<Self> {
        let mut watches = shared.watches.lock().unwrap_or_else(|e| e.into_inner());
        let held = watches.entry(peer).or_default();
        if *held >= shared.limits.watches_per_peer {
            return None;
        }
        *held += 1;
        Some(Self { shared, peer })
    }
}

impl Drop for WatchSlot<'_> {
    fn drop(&mut self) {
        let mut watches = self.shared.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = watches.get_mut(&self.peer) {
            *held -= 1;
            if *held == 0 {
                watches.remove(&self.peer);
            }
        }
    }
}

/// Drops records as their TTLs run out (and prunes the rate limiter),
/// until the directory is dropped.
async fn expire(shared: Weak<Shared>) {
    const MOST: Duration = Duration::from_secs(1);
    loop {
        let pause = match shared.upgrade() {
            Some(shared) => {
                let now = SystemTime::now();
                let due = shared.store.index.read().unwrap_or_else(|e| e.into_inner()).expired(now);
                if !due.is_empty() && shared.ops.send(Op::Expire).await.is_err() {
                    return;
                }
                shared.rates.retain_recent();
                store::until_next_expiry(&shared.store, now, MOST).max(Duration::from_millis(10))
            }
            None => return,
        };
        tokio::time::sleep(pause).await;
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
