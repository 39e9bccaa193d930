//! The event log: append-only records under `/events/`, pruned to the newest
//! `KEEP` so it cannot grow without bound.

use crate::repo::Repo;
use flotilla_core::keys;
use flotilla_core::objects::EventRecord;
use std::sync::atomic::{AtomicU64, Ordering};

const KEEP: usize = 10_000;
static SEQ: AtomicU64 = AtomicU64::new(0);

pub async fn record(repo: &Repo, kind: &str, id: &str, action: &str, message: impl Into<String>) {
    let event = EventRecord {
        time: crate::now_ms(),
        kind: kind.into(),
        id: id.into(),
        action: action.into(),
        message: message.into(),
    };
    let key = keys::event(event.time, SEQ.fetch_add(1, Ordering::Relaxed));
    // An event that cannot be written must not fail the change it describes.
    if let Err(e) = repo.create(&key, &event).await {
        tracing::warn!(error = %e.message, "could not record event");
    }
}

/// Drop the oldest events beyond `KEEP`.
pub async fn prune(repo: &Repo) {
    let Ok(listing) = repo.store.list(keys::EVENTS).await else {
        return;
    };
    if listing.kvs.len() <= KEEP {
        return;
    }
    let excess = listing.kvs.len() - KEEP;
    let ops = listing.kvs[..excess]
        .iter()
        .map(|kv| flotilla_store::Op::Delete {
            key: kv.key.clone(),
        })
        .collect();
    if let Err(e) = repo.store.txn(vec![], ops).await {
        tracing::warn!(error = %e, "could not prune events");
    }
}
