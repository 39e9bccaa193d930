//! The backend-neutral store interface.

use crate::model::*;
use async_trait::async_trait;
use std::time::Duration;
use tokio::sync::mpsc;

/// A stream of events from [`Store::watch`]. Ends (returns `None`) when the
/// store is dropped; yields an error once and then ends when the watcher
/// cannot be served any more (compaction, lag).
pub struct Watch {
    rx: mpsc::Receiver<Result<Event, StoreError>>,
}

impl Watch {
    pub(crate) fn new(rx: mpsc::Receiver<Result<Event, StoreError>>) -> Self {
        Watch { rx }
    }

    pub async fn next(&mut self) -> Option<Result<Event, StoreError>> {
        self.rx.recv().await
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current store revision.
    async fn revision(&self) -> Result<Revision, StoreError>;

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Every key that starts with `prefix`, in key order, with the revision
    /// the listing is consistent at (start a watch at `revision + 1`).
    async fn list(&self, prefix: &str) -> Result<Listing, StoreError>;

    /// Atomically: if every compare holds, apply every op under one new revision.
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult, StoreError>;

    /// Events for keys under `prefix` with revision `>= from` (history first,
    /// then live). `from = None` means only events after the call.
    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<Watch, StoreError>;

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError>;
    /// Restart the lease's TTL; fails with `LeaseNotFound` once it has expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError>;
    /// Revoke the lease now, deleting its keys. Revoking an unknown lease is not an error.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError>;

    // Conveniences with a default implementation in terms of `txn`.

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let op = Op::Put {
            key: key.to_string(),
            value,
            lease: None,
        };
        Ok(self.txn(vec![], vec![op]).await?.revision)
    }

    /// Write `value` (or delete, with `None`) only if the key is as expected.
    async fn compare_and_swap(
        &self,
        key: &str,
        expect: Expect,
        value: Option<Vec<u8>>,
    ) -> Result<TxnResult, StoreError> {
        let compare = Compare {
            key: key.to_string(),
            expect,
        };
        let op = match value {
            Some(value) => Op::Put {
                key: key.to_string(),
                value,
                lease: None,
            },
            None => Op::Delete {
                key: key.to_string(),
            },
        };
        self.txn(vec![compare], vec![op]).await
    }

    async fn delete(&self, key: &str) -> Result<Revision, StoreError> {
        let op = Op::Delete {
            key: key.to_string(),
        };
        Ok(self.txn(vec![], vec![op]).await?.revision)
    }
}
