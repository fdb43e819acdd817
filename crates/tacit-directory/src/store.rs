//! The records: indexed in memory, kept on disk in redb.
//!
//! One table, `records`: AgentId (32 bytes) → the encoded
//! `SignedAgentRecord` exactly as registered, plus 32 bytes naming who
//! registered it. Every change goes through one writer thread that commits
//! a batch of registrations in one durable transaction (group commit), then
//! applies it to the index and acknowledges each: an acknowledged
//! registration survives a crash, and a burst of registrations costs one
//! `fsync`, not one each.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use tacit::credential::{OrgKey, VerifiedCredential};
use tacit::directory::Query;
use tacit::record::{AgentRecord, SignedAgentRecord};
use tacit::{AgentId, IntentId};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::DirectoryError;

const RECORDS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("records");

/// One record held.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The encoded `SignedAgentRecord`, as registered.
    pub(crate) signed: Bytes,
    pub(crate) record: AgentRecord,
    /// Its credentials that verified when it was registered.
    pub(crate) credentials: Vec<VerifiedCredential>,
    pub(crate) expires_at: SystemTime,
    /// The AgentId bytes of the peer that registered it (its quota is
    /// charged). Raw bytes: only compared, and decoding a key costs a
    /// point decompression per record on load.
    pub(crate) registrant: [u8; 32],
}

impl Entry {
    /// A record verified before (on registration: its signature is not
    /// checked again), with its credentials verified at `now`.
    pub(crate) fn new(signed: Bytes, record: AgentRecord, registrant: [u8; 32], now: SystemTime) -> Self {
        let credentials = record.verified_credentials(now);
        let expires_at = record.expires_at();
        Self { signed, record, credentials, expires_at, registrant }
    }

    fn live_credentials(&self, now: SystemTime) -> Vec<VerifiedCredential> {
        self.credentials.iter().filter(|c| c.not_after > now).cloned().collect()
    }
}

/// What happened to a record, for watchers.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Present(Arc<Entry>),
    Expired(Arc<Entry>),
}

/// The records in memory, with an index per lookup criterion.
#[derive(Debug, Default)]
pub(crate) struct Index {
    records: BTreeMap<AgentId, Arc<Entry>>,
    by_intent: HashMap<IntentId, BTreeSet<AgentId>>,
    by_name: HashMap<Box<str>, BTreeSet<AgentId>>,
    by_tag: HashMap<Box<str>, BTreeSet<AgentId>>,
    by_org: HashMap<OrgKey, BTreeSet<AgentId>>,
    by_role: HashMap<Box<str>, BTreeSet<AgentId>>,
    expiry: BTreeSet<(SystemTime, AgentId)>,
    /// Records held per registrant.
    per_registrant: HashMap<[u8; 32], usize>,
}

fn add<K: std::hash::Hash + Eq>(map: &mut HashMap<K, BTreeSet<AgentId>>, key: K, id: AgentId) {
    map.entry(key).or_default().insert(id);
}

fn drop_from<K: std::hash::Hash + Eq>(map: &mut HashMap<K, BTreeSet<AgentId>>, key: &K, id: &AgentId) {
    if let Some(set) = map.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

impl Index {
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn get(&self, id: &AgentId) -> Option<&Arc<Entry>> {
        self.records.get(id)
    }

    pub(crate) fn held_by(&self, registrant: &[u8; 32]) -> usize {
        self.per_registrant.get(registrant).copied().unwrap_or(0)
    }

    pub(crate) fn insert(&mut self, entry: Arc<Entry>) {
        let id = entry.record.agent_id;
        self.remove(&id);
        for (intent, name) in &entry.record.intents {
            add(&mut self.by_intent, *intent, id);
            add(&mut self.by_name, name.as_str().into(), id);
        }
        for tag in &entry.record.tags {
            add(&mut self.by_tag, tag.as_str().into(), id);
        }
        for credential in &entry.credentials {
            add(&mut self.by_org, credential.org, id);
            for role in &credential.roles {
                add(&mut self.by_role, role.as_str().into(), id);
            }
        }
        self.expiry.insert((entry.expires_at, id));
        *self.per_registrant.entry(entry.registrant).or_default() += 1;
        self.records.insert(id, entry);
    }

    pub(crate) fn remove(&mut self, id: &AgentId) -> Option<Arc<Entry>> {
        let entry = self.records.remove(id)?;
        for (intent, name) in &entry.record.intents {
            drop_from(&mut self.by_intent, intent, id);
            drop_from(&mut self.by_name, &Box::from(name.as_str()), id);
        }
        for tag in &entry.record.tags {
            drop_from(&mut self.by_tag, &Box::from(tag.as_str()), id);
        }
        for credential in &entry.credentials {
            drop_from(&mut self.by_org, &credential.org, id);
            for role in &credential.roles {
                drop_from(&mut self.by_role, &Box::from(role.as_str()), id);
            }
        }
        self.expiry.remove(&(entry.expires_at, *id));
        if let Some(n) = self.per_registrant.get_mut(&entry.registrant) {
            *n -= 1;
            if *n == 0 {
                self.per_registrant.remove(&entry.registrant);
            }
        }
        Some(entry)
    }

    /// The ids whose records expired at `now`.
    pub(crate) fn expired(&self, now: SystemTime) -> Vec<AgentId> {
        self.expiry.iter().take_while(|(at, _)| *at <= now).map(|(_, id)| *id).collect()
    }

    /// The next expiry, if any.
    pub(crate) fn next_expiry(&self) -> Option<SystemTime> {
        self.expiry.first().map(|(at, _)| *at)
    }

    /// The records matching `query`, in AgentId order, at most `limit`;
    /// and whether more matched.
    pub(crate) fn find(&self, query: &Query, limit: usize, now: SystemTime) -> (Vec<Arc<Entry>>, bool) {
        let mut out = Vec::new();
        let mut push = |entry: &Arc<Entry>| -> bool {
            if entry.expires_at <= now || !matches(query, entry, now) {
                return true;
            }
            if out.len() == limit {
                return false;
            }
            out.push(entry.clone());
            true
        };
        if let Some(id) = query.agent_id {
            if let Some(entry) = self.records.get(&id) {
                push(entry);
            }
            return (out, false);
        }
        // The smallest of the indexed sets the query names, or every record.
        let mut sets: Vec<Option<&BTreeSet<AgentId>>> = Vec::new();
        if let Some(id) = &query.intent_id {
            sets.push(self.by_intent.get(id));
        }
        if let Some(name) = &query.intent_name {
            sets.push(self.by_name.get(name.as_str()));
        }
        if let Some(tag) = &query.tag {
            sets.push(self.by_tag.get(tag.as_str()));
        }
        if let Some(org) = &query.org {
            sets.push(self.by_org.get(org));
        }
        if let Some(role) = &query.role {
            sets.push(self.by_role.get(role.as_str()));
        }
        if sets.iter().any(Option::is_none) {
            return (out, false);
        }
        let smallest = sets.into_iter().flatten().min_by_key(|set| set.len());
        let truncated = match smallest {
            Some(set) => !set.iter().filter_map(|id| self.records.get(id)).all(&mut push),
            None => !self.records.values().all(&mut push),
        };
        (out, truncated)
    }
}

/// Whether `entry` matches `query` at `now`.
pub(crate) fn matches(query: &Query, entry: &Entry, now: SystemTime) -> bool {
    if query.org.is_some() || query.role.is_some() {
        query.matches(&entry.record, &entry.live_credentials(now))
    } else {
        query.matches(&entry.record, &[])
    }
}

/// Why a registration was not stored.
#[derive(Debug)]
pub(crate) enum PutError {
    /// A record as new or newer is held.
    Stale,
    /// The directory holds as many records as it may.
    Full,
    /// The store failed.
    Storage(String),
}

/// Where the writer answers a registration.
pub(crate) type Ack = oneshot::Sender<Result<SystemTime, PutError>>;

/// The registrations of one batch, by agent: the record to store and
/// everyone to answer.
type Puts = HashMap<AgentId, (Arc<Entry>, Vec<Ack>)>;

pub(crate) enum Op {
    Put { entry: Arc<Entry>, ack: Ack },
    Expire,
}

/// The shared state: the index, the writer, the watchers.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) index: RwLock<Index>,
    pub(crate) events: broadcast::Sender<Event>,
}

/// Opens (or creates) the database at `path` and loads what it holds,
/// dropping expired records. Returns the database and the index.
pub(crate) fn load(path: &Path, now: SystemTime) -> Result<(Database, Index, usize), DirectoryError> {
    let db = Database::create(path).map_err(|e| DirectoryError::Storage(e.to_string()))?;
    let mut index = Index::default();
    let mut dropped = 0;
    {
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(RECORDS).map_err(storage)?;
        txn.commit().map_err(storage)?;
    }
    let txn = db.begin_read().map_err(storage)?;
    let table = txn.open_table(RECORDS).map_err(storage)?;
    for row in table.iter().map_err(storage)? {
        let (_, value) = row.map_err(storage)?;
        let value = value.value();
        let Some((signed, registrant)) = split_value(value) else {
            dropped += 1;
            continue;
        };
        let decoded = SignedAgentRecord::decode(signed).and_then(|r| r.record());
        match decoded {
            Ok(record) if record.expires_at() > now => {
                index.insert(Arc::new(Entry::new(Bytes::copy_from_slice(signed), record, registrant, now)));
            }
            Ok(_) => dropped += 1,
            Err(e) => {
                tracing::warn!(error = %e, "dropped an unreadable record from the store");
                dropped += 1;
            }
        }
    }
    Ok((db, index, dropped))
}

fn storage(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Storage(e.to_string())
}

/// A stored value: the signed record, then the registrant's 32 bytes.
fn stored_value(entry: &Entry) -> Vec<u8> {
    [entry.signed.as_ref(), entry.registrant.as_slice()].concat()
}

fn split_value(value: &[u8]) -> Option<(&[u8], [u8; 32])> {
    let at = value.len().checked_sub(32)?;
    let (signed, registrant) = value.split_at(at);
    Some((signed, registrant.try_into().ok()?))
}

/// The writer: takes operations in batches, commits each batch in one
/// transaction, then applies it to the index and answers.
pub(crate) fn run_writer(db: Option<Database>, store: Arc<Store>, mut ops: mpsc::Receiver<Op>, max_records: usize) {
    const BATCH: usize = 4096;
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(op) = ops.blocking_recv() {
        batch.push(op);
        while batch.len() < BATCH {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let now = SystemTime::now();
        // Decide, against the index and the batch so far.
        let mut puts = Puts::new();
        let mut refused = Vec::new();
        let mut expire = Vec::new();
        {
            let index = store.index.read().unwrap_or_else(|e| e.into_inner());
            let mut count = index.len();
            for op in batch.drain(..) {
                match op {
                    Op::Put { entry, ack } => {
                        let id = entry.record.agent_id;
                        let held = puts.get(&id).map(|(e, _)| e.clone()).or_else(|| index.get(&id).cloned());
                        match held {
                            Some(held) if held.signed == entry.signed => match puts.get_mut(&id) {
                                // The same record again: done (idempotent).
                                Some((_, acks)) => acks.push(ack),
                                None => {
                                    let _ = ack.send(Ok(held.expires_at));
                                }
                            },
                            Some(held) if held.record.issued_at >= entry.record.issued_at => {
                                refused.push((ack, PutError::Stale));
                            }
                            held => {
                                if held.is_none() && count >= max_records {
                                    refused.push((ack, PutError::Full));
                                    continue;
                                }
                                if held.is_none() {
                                    count += 1;
                                }
                                let acks = puts.remove(&id).map(|(_, acks)| acks).unwrap_or_default();
                                let mut acks = acks;
                                acks.push(ack);
                                puts.insert(id, (entry, acks));
                            }
                        }
                    }
                    Op::Expire => expire = index.expired(now),
                }
            }
        }
        for (ack, why) in refused {
            let _ = ack.send(Err(why));
        }
        if puts.is_empty() && expire.is_empty() {
            continue;
        }
        let written = match &db {
            Some(db) => write(db, &puts, &expire),
            None => Ok(()),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "the directory's store failed a write");
            for (_, (_, acks)) in puts {
                for ack in acks {
                    let _ = ack.send(Err(PutError::Storage(e.clone())));
                }
            }
            continue;
        }
        let mut index = store.index.write().unwrap_or_else(|e| e.into_inner());
        for id in expire {
            if let Some(entry) = index.remove(&id) {
                let _ = store.events.send(Event::Expired(entry));
            }
        }
        for (_, (entry, acks)) in puts {
            index.insert(entry.clone());
            let expires_at = entry.expires_at;
            let _ = store.events.send(Event::Present(entry));
            for ack in acks {
                let _ = ack.send(Ok(expires_at));
            }
        }
    }
}

fn write(db: &Database, puts: &Puts, expire: &[AgentId]) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(RECORDS).map_err(|e| e.to_string())?;
        for id in expire {
            table.remove(id.as_bytes().as_slice()).map_err(|e| e.to_string())?;
        }
        for (id, (entry, _)) in puts {
            table.insert(id.as_bytes().as_slice(), stored_value(entry).as_slice()).map_err(|e| e.to_string())?;
        }
    }
    txn.commit().map_err(|e| e.to_string())
}

/// How long to wait before the next expiry sweep.
pub(crate) fn until_next_expiry(store: &Store, now: SystemTime, most: Duration) -> Duration {
    let index = store.index.read().unwrap_or_else(|e| e.into_inner());
    index.next_expiry().map_or(most, |at| at.duration_since(now).unwrap_or(Duration::ZERO).min(most))
}
