//! The embedded backend: one redb file in the data directory.
//!
//! redb gives ACID transactions with an fsync on commit, so an acknowledged
//! write survives kill -9 and power loss. On top of it this module keeps the
//! etcd-like bookkeeping: a store revision, per-key counters, an event log for
//! watches from a past revision, and leases (whose deadlines restart on open,
//! as etcd's do after a leader change: a restarted server never expires a
//! lease earlier than its TTL after the restart).

use crate::model::*;
use crate::store::{Store, Watch};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// (revision, index within the transaction) → encoded Event.
const LOG: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// lease id → TTL in milliseconds.
const LEASES: TableDefinition<u64, u64> = TableDefinition::new("leases");
/// (lease id, key) for every key attached to a lease, so revocation is not a scan.
const LEASE_KEYS: TableDefinition<(u64, &str), ()> = TableDefinition::new("lease_keys");

const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
const META_NEXT_LEASE: &str = "next_lease";

/// How many revisions of history a watch can start from.
const HISTORY_REVISIONS: u64 = 50_000;
/// How often expired leases are looked for.
const LEASE_TICK: Duration = Duration::from_millis(50);
/// Events buffered per live watcher before it is told it lagged.
const WATCH_BUFFER: usize = 8192;

pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// Serialises writers so events are broadcast in revision order.
    write_lock: Mutex<()>,
    events: broadcast::Sender<Event>,
    /// Live lease deadlines (the TTLs are persisted; deadlines are not).
    leases: Mutex<HashMap<LeaseId, (Duration, Instant)>>,
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(backend)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(backend)
}

impl EmbeddedStore {
    /// Open (or create) the store file. Must be called inside a tokio runtime:
    /// lease expiry runs as a background task that ends when the store is dropped.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let db = Database::create(path).map_err(|e| {
            StoreError::Backend(format!("cannot open store {}: {e}", path.display()))
        })?;
        // Create the tables up front so readers never see "table missing".
        let wtx = db.begin_write().map_err(backend)?;
        let mut leases = HashMap::new();
        {
            wtx.open_table(KV).map_err(backend)?;
            wtx.open_table(LOG).map_err(backend)?;
            wtx.open_table(META).map_err(backend)?;
            wtx.open_table(LEASE_KEYS).map_err(backend)?;
            let table = wtx.open_table(LEASES).map_err(backend)?;
            let now = Instant::now();
            for entry in table.iter().map_err(backend)? {
                let (id, ttl_ms) = entry.map_err(backend)?;
                let ttl = Duration::from_millis(ttl_ms.value());
                leases.insert(id.value(), (ttl, now + ttl));
            }
        }
        wtx.commit().map_err(backend)?;
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        let inner = Arc::new(Inner {
            db,
            write_lock: Mutex::new(()),
            events,
            leases: Mutex::new(leases),
        });
        tokio::spawn(expire_leases(Arc::downgrade(&inner)));
        Ok(EmbeddedStore { inner })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(backend)?
    }
}

/// Revokes leases whose deadline passed. Holds only a weak reference so the
/// store can be dropped.
async fn expire_leases(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(LEASE_TICK).await;
        let Some(inner) = inner.upgrade() else { return };
        let now = Instant::now();
        let expired: Vec<LeaseId> = {
            let leases = inner.leases.lock().unwrap();
            leases
                .iter()
                .filter(|(_, (_, deadline))| *deadline <= now)
                .map(|(id, _)| *id)
                .collect()
        };
        for id in expired {
            let inner = inner.clone();
            let result = tokio::task::spawn_blocking(move || inner.revoke(id)).await;
            if let Ok(Err(e)) | Err(e) = result.map_err(backend) {
                tracing::warn!(lease = id, error = %e, "could not revoke expired lease");
            }
        }
    }
}

fn read_kv(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<KeyValue>, StoreError> {
    match table.get(key).map_err(backend)? {
        Some(bytes) => Ok(Some(decode(bytes.value())?)),
        None => Ok(None),
    }
}

fn holds(expect: &Expect, current: Option<&KeyValue>) -> bool {
    match (expect, current) {
        (Expect::Absent, None) => true,
        (Expect::Present, Some(_)) => true,
        (Expect::ModRevision(r), Some(kv)) => kv.mod_revision == *r,
        _ => false,
    }
}

impl Inner {
    fn revision(&self) -> Result<Revision, StoreError> {
        let rtx = self.db.begin_read().map_err(backend)?;
        let meta = rtx.open_table(META).map_err(backend)?;
        Ok(meta
            .get(META_REVISION)
            .map_err(backend)?
            .map(|g| g.value())
            .unwrap_or(0))
    }

    fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult, StoreError> {
        let _writer = self.write_lock.lock().unwrap();
        let wtx = self.db.begin_write().map_err(backend)?;
        let current_rev = meta_get(&wtx, META_REVISION)?;
        {
            let kv = wtx.open_table(KV).map_err(backend)?;
            for compare in compares {
                let current = read_kv(&kv, &compare.key)?;
                if !holds(&compare.expect, current.as_ref()) {
                    return Ok(TxnResult {
                        succeeded: false,
                        revision: current_rev,
                        failed: Some((compare, current)),
                    });
                }
            }
        }
        // Leases must exist before anything is written under them.
        {
            let leases = self.leases.lock().unwrap();
            for op in &ops {
                if let Op::Put {
                    lease: Some(id), ..
                } = op
                {
                    if !leases.contains_key(id) {
                        return Err(StoreError::LeaseNotFound(*id));
                    }
                }
            }
        }
        let new_rev = current_rev + 1;
        let events = apply_ops(&wtx, &ops, new_rev)?;
        if events.is_empty() {
            // Nothing changed (deletes of absent keys): no new revision, like etcd.
            wtx.abort().map_err(backend)?;
            return Ok(TxnResult {
                succeeded: true,
                revision: current_rev,
                failed: None,
            });
        }
        record_events(&wtx, &events, new_rev)?;
        wtx.commit().map_err(backend)?;
        for event in events {
            // No receivers is fine: nobody is watching.
            let _ = self.events.send(event);
        }
        Ok(TxnResult {
            succeeded: true,
            revision: new_rev,
            failed: None,
        })
    }

    fn revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.leases.lock().unwrap().remove(&id);
        let keys: Vec<String> = {
            let rtx = self.db.begin_read().map_err(backend)?;
            let table = rtx.open_table(LEASE_KEYS).map_err(backend)?;
            let mut keys = Vec::new();
            for entry in table.range((id, "")..(id + 1, "")).map_err(backend)? {
                let (k, _) = entry.map_err(backend)?;
                keys.push(k.value().1.to_string());
            }
            keys
        };
        let ops = keys.into_iter().map(|key| Op::Delete { key }).collect();
        self.txn(vec![], ops)?;
        let wtx = self.db.begin_write().map_err(backend)?;
        wtx.open_table(LEASES)
            .map_err(backend)?
            .remove(id)
            .map_err(backend)?;
        wtx.commit().map_err(backend)
    }
}

fn meta_get(wtx: &WriteTransaction, name: &str) -> Result<u64, StoreError> {
    let meta = wtx.open_table(META).map_err(backend)?;
    let value = meta.get(name).map_err(backend)?.map(|g| g.value());
    Ok(value.unwrap_or(0))
}

fn apply_ops(wtx: &WriteTransaction, ops: &[Op], rev: Revision) -> Result<Vec<Event>, StoreError> {
    let mut kv = wtx.open_table(KV).map_err(backend)?;
    let mut lease_keys = wtx.open_table(LEASE_KEYS).map_err(backend)?;
    let mut events = Vec::new();
    let delete = |kv: &mut redb::Table<&str, &[u8]>,
                  lease_keys: &mut redb::Table<(u64, &str), ()>,
                  key: &str,
                  events: &mut Vec<Event>|
     -> Result<(), StoreError> {
        let Some(prev) = read_kv(kv, key)? else {
            return Ok(());
        };
        kv.remove(key).map_err(backend)?;
        if let Some(lease) = prev.lease {
            lease_keys.remove((lease, key)).map_err(backend)?;
        }
        let tombstone = KeyValue {
            key: key.to_string(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: rev,
            version: 0,
            lease: None,
        };
        events.push(Event {
            kind: EventKind::Delete,
            kv: tombstone,
            prev: Some(prev),
        });
        Ok(())
    };
    for op in ops {
        match op {
            Op::Put { key, value, lease } => {
                let prev = read_kv(&kv, key)?;
                if let Some(old) = prev.as_ref().and_then(|p| p.lease) {
                    lease_keys.remove((old, key.as_str())).map_err(backend)?;
                }
                let new = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                    mod_revision: rev,
                    version: prev.as_ref().map_or(1, |p| p.version + 1),
                    lease: *lease,
                };
                kv.insert(key.as_str(), encode(&new)?.as_slice())
                    .map_err(backend)?;
                if let Some(id) = lease {
                    lease_keys
                        .insert((*id, key.as_str()), ())
                        .map_err(backend)?;
                }
                events.push(Event {
                    kind: EventKind::Put,
                    kv: new,
                    prev,
                });
            }
            Op::Delete { key } => delete(&mut kv, &mut lease_keys, key, &mut events)?,
            Op::DeletePrefix { prefix } => {
                let keys = keys_with_prefix(&kv, prefix)?;
                for key in keys {
                    delete(&mut kv, &mut lease_keys, &key, &mut events)?;
                }
            }
        }
    }
    Ok(events)
}

fn keys_with_prefix(
    kv: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    for entry in kv.range(prefix..).map_err(backend)? {
        let (k, _) = entry.map_err(backend)?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        keys.push(key.to_string());
    }
    Ok(keys)
}

/// Append the events to the history log, advance the revision, and compact
/// history older than `HISTORY_REVISIONS` (in chunks, so no commit is slow).
fn record_events(
    wtx: &WriteTransaction,
    events: &[Event],
    rev: Revision,
) -> Result<(), StoreError> {
    let mut log = wtx.open_table(LOG).map_err(backend)?;
    for (i, event) in events.iter().enumerate() {
        log.insert((rev, i as u32), encode(event)?.as_slice())
            .map_err(backend)?;
    }
    let mut meta = wtx.open_table(META).map_err(backend)?;
    meta.insert(META_REVISION, rev).map_err(backend)?;
    if rev > HISTORY_REVISIONS && rev % 1024 == 0 {
        let keep_from = rev - HISTORY_REVISIONS;
        log.retain_in((0, 0)..(keep_from, 0), |_, _| false)
            .map_err(backend)?;
        meta.insert(META_COMPACTED, keep_from - 1)
            .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn revision(&self) -> Result<Revision, StoreError> {
        self.inner.revision()
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let rtx = self.inner.db.begin_read().map_err(backend)?;
        let kv = rtx.open_table(KV).map_err(backend)?;
        read_kv(&kv, key)
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        // One read transaction: the listing and its revision are consistent.
        let rtx = self.inner.db.begin_read().map_err(backend)?;
        let kv = rtx.open_table(KV).map_err(backend)?;
        let meta = rtx.open_table(META).map_err(backend)?;
        let revision = meta
            .get(META_REVISION)
            .map_err(backend)?
            .map(|g| g.value())
            .unwrap_or(0);
        let mut kvs = Vec::new();
        for entry in kv.range(prefix..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            kvs.push(decode(v.value())?);
        }
        Ok(Listing { kvs, revision })
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult, StoreError> {
        self.blocking(move |inner| inner.txn(compares, ops)).await
    }

    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<Watch, StoreError> {
        // Subscribe before reading history so nothing committed in between is missed;
        // duplicates are filtered by revision below.
        let mut live = self.inner.events.subscribe();
        let prefix = prefix.to_string();
        let (history, replayed_to) = {
            let prefix = prefix.clone();
            self.blocking(move |inner| read_history(inner, &prefix, from))
                .await?
        };
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            for event in history {
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(event) => {
                        if event.revision() <= replayed_to || !event.kv.key.starts_with(&prefix) {
                            continue;
                        }
                        if tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(Err(StoreError::WatchLagged)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Watch::new(rx))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        if ttl < Duration::from_secs(1) {
            return Err(StoreError::InvalidTtl(ttl));
        }
        self.blocking(move |inner| {
            let wtx = inner.db.begin_write().map_err(backend)?;
            let id = meta_get(&wtx, META_NEXT_LEASE)? + 1;
            wtx.open_table(META)
                .map_err(backend)?
                .insert(META_NEXT_LEASE, id)
                .map_err(backend)?;
            wtx.open_table(LEASES)
                .map_err(backend)?
                .insert(id, ttl.as_millis() as u64)
                .map_err(backend)?;
            wtx.commit().map_err(backend)?;
            inner
                .leases
                .lock()
                .unwrap()
                .insert(id, (ttl, Instant::now() + ttl));
            Ok(id)
        })
        .await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        let mut leases = self.inner.leases.lock().unwrap();
        match leases.get_mut(&lease) {
            Some((ttl, deadline)) => {
                *deadline = Instant::now() + *ttl;
                Ok(())
            }
            None => Err(StoreError::LeaseNotFound(lease)),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.blocking(move |inner| inner.revoke(lease)).await
    }
}

/// Events under `prefix` from revision `from` up to the current revision,
/// and that revision. `None` → no history, only what comes after now.
fn read_history(
    inner: &Inner,
    prefix: &str,
    from: Option<Revision>,
) -> Result<(Vec<Event>, Revision), StoreError> {
    let rtx = inner.db.begin_read().map_err(backend)?;
    let meta = rtx.open_table(META).map_err(backend)?;
    let get = |name| -> Result<u64, StoreError> {
        Ok(meta
            .get(name)
            .map_err(backend)?
            .map(|g| g.value())
            .unwrap_or(0))
    };
    let current = get(META_REVISION)?;
    let Some(from) = from else {
        return Ok((Vec::new(), current));
    };
    let compacted = get(META_COMPACTED)?;
    if from <= compacted {
        return Err(StoreError::Compacted {
            requested: from,
            oldest: compacted + 1,
        });
    }
    let log = rtx.open_table(LOG).map_err(backend)?;
    let mut events = Vec::new();
    for entry in log.range((from, 0)..).map_err(backend)? {
        let (_, bytes) = entry.map_err(backend)?;
        let event: Event = decode(bytes.value())?;
        if event.kv.key.starts_with(prefix) {
            events.push(event);
        }
    }
    Ok((events, current))
}
