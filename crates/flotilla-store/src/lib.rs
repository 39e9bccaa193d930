//! The control plane's store: revisioned keys, multi-key compare-and-swap
//! transactions, prefix watches from a revision, and leases.
//!
//! The semantics follow etcd's (one store-wide revision that every committed
//! transaction increments; each key carries create/mod revisions and a
//! version) so that the etcd backend can implement the same [`Store`] trait
//! without translation, and both pass [`conformance`].
//!
//! Two rules every caller can rely on:
//! - a write that returned `Ok` is durable (the embedded backend commits with
//!   an fsync before answering);
//! - a watch started at revision `r` sees every event with revision `>= r`
//!   exactly once and in order, or ends with [`StoreError::Compacted`] /
//!   [`StoreError::WatchLagged`], after which the caller re-lists (controllers
//!   are level-triggered, so re-listing is always correct).

pub mod conformance;
mod embedded;
mod model;
mod store;

pub use embedded::EmbeddedStore;
pub use model::{
    Compare, Event, EventKind, Expect, KeyValue, LeaseId, Listing, Op, Revision, StoreError,
    TxnResult,
};
pub use store::{Store, Watch};
