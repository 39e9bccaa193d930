//! The objects the control plane stores and the API returns (besides
//! [`Task`](crate::Task)). Serialized as JSON under the keys in [`crate::keys`].

use flotilla_spec::Service;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A deployed service: the user's spec with a version that bumps on each change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// `<stack>_<name>`.
    pub id: String,
    pub stack: String,
    pub name: String,
    /// Increments whenever `spec` changes (a scale changes it too).
    pub version: u64,
    pub spec: Service,
    /// The spec before the last change, for `rollback`.
    pub previous: Option<Service>,
    pub created_at: u64,
    pub updated_at: u64,
}

/// Observed and operator-set facts about a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub hostname: String,
    /// Where the agent can be reached (for logs and exec).
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub os: String,
    pub arch: String,
    pub nano_cpus: u64,
    pub memory_bytes: u64,
    pub availability: NodeAvailability,
    pub status: NodeStatus,
    pub last_heartbeat: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeAvailability {
    Active,
    Pause,
    Drain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Ready,
    Down,
}

/// An append-only record of something that happened, for `flotilla events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Milliseconds since the epoch.
    pub time: u64,
    /// What kind of object: service, task, node, stack.
    pub kind: String,
    /// The object's id.
    pub id: String,
    /// What happened: created, updated, running, failed, down, …
    pub action: String,
    pub message: String,
}

/// `GET /v1/services` entries: the record plus live counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    #[serde(flatten)]
    pub record: ServiceRecord,
    pub status: ServiceCounts,
}

/// Replica counts as `docker service ls` shows them, plus health.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCounts {
    /// Replicas wanted (for global services: tasks wanted, one per node).
    pub desired: u64,
    pub running: u64,
    pub healthy: u64,
    /// Why the service is not converging: the newest task problem
    /// (unschedulable, image missing…) or a controller note (waiting for a
    /// dependency, restart attempts spent).
    pub problem: Option<String>,
}
