//! What every request handler and controller shares.

use crate::repo::Repo;
use flotilla_store::LeaseId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct AppState {
    pub repo: Repo,
    /// Liveness lease of each registered node (heartbeats keep it alive).
    pub node_leases: Arc<Mutex<HashMap<String, LeaseId>>>,
    /// Wakes the controllers after a user change, so they need not poll.
    pub kick: Arc<Notify>,
    /// A node whose heartbeats stop for this long is marked down.
    pub node_ttl: Duration,
    /// Per service: why it is not converging (waiting for a dependency,
    /// restart attempts spent), shown in `services` and `up`.
    pub notes: Arc<Mutex<HashMap<String, String>>>,
    /// Where stack network subnets are carved from.
    pub networks: crate::NetworkPool,
    pub metrics: crate::SharedRegistry,
}
