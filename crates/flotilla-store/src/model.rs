//! Plain data types shared by every store backend.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The store-wide revision: incremented once per committed write transaction.
/// 0 means "nothing written yet".
pub type Revision = u64;

/// A lease: keys attached to it are deleted when it expires or is revoked.
pub type LeaseId = u64;

/// One key as stored, with its history counters (etcd's KeyValue).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the transaction that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the transaction that last wrote this key.
    pub mod_revision: Revision,
    /// Number of writes since creation (1 after the first put).
    pub version: u64,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// A prefix listing, consistent at `revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub kvs: Vec<KeyValue>,
    pub revision: Revision,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

/// A change, as seen by watchers. For a delete, `kv.value` is empty and
/// `kv.mod_revision` is the revision of the deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The key's previous value, when there was one.
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// What a compare-and-swap expects of a key's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist (any value).
    Present,
    /// The key must exist and have been last written at this revision.
    ModRevision(Revision),
}

/// One condition of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub expect: Expect,
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
    },
    /// Delete every key that starts with the prefix.
    DeletePrefix {
        prefix: String,
    },
}

/// The outcome of a transaction. When `succeeded` is false nothing was
/// written, and `failed` names the first compare that did not hold with the
/// key's current state, so the caller can decide what to do without a re-read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResult {
    pub succeeded: bool,
    /// The store revision after the transaction (unchanged when it failed).
    pub revision: Revision,
    pub failed: Option<(Compare, Option<KeyValue>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("revision {requested} has been compacted (oldest available is {oldest}); list again and watch from the listing's revision")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    #[error("the watcher fell behind the store's event stream; list again and watch from the listing's revision")]
    WatchLagged,
    #[error("lease {0} not found (it expired or was revoked)")]
    LeaseNotFound(LeaseId),
    #[error("invalid lease TTL {0:?}: it must be at least one second")]
    InvalidTtl(Duration),
    #[error("store backend error: {0}")]
    Backend(String),
}
