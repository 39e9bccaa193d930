//! The scheduler's inputs: plain data, built by the orchestrator from the store.

use crate::constraint::Constraint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Schedulable resources. CPUs in nano-CPUs (1 CPU = 1e9), like Swarm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub nano_cpus: u64,
    pub memory_bytes: u64,
}

impl Resources {
    pub fn fits_in(&self, free: &Resources) -> bool {
        self.nano_cpus <= free.nano_cpus && self.memory_bytes <= free.memory_bytes
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Manager,
    Worker,
}

/// Operator-set availability (Swarm's `node update --availability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    Active,
    /// Keeps its tasks, takes no new ones.
    Pause,
    /// Its tasks move elsewhere; takes no new ones.
    Drain,
}

/// Observed health of the node's agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    Ready,
    Down,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    pub role: Role,
    pub labels: BTreeMap<String, String>,
    /// Labels the agent reports about its engine (`engine.labels.*`).
    pub engine_labels: BTreeMap<String, String>,
    pub platform: Platform,
    pub availability: Availability,
    pub status: NodeStatus,
    /// Total schedulable capacity of the node.
    pub capacity: Resources,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// A port published in `host` mode: it binds on the node itself, so two
/// tasks on one node cannot both have it. (Ingress-mode ports go through the
/// routing mesh and never conflict.)
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostPort {
    pub protocol: Protocol,
    pub port: u16,
}

/// A task waiting for a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    pub id: String,
    pub service: String,
    /// Reserved resources (`deploy.resources.reservations`); what the node must have free.
    pub reservations: Resources,
    pub constraints: Vec<Constraint>,
    /// Label names to spread over, outermost first (`node.labels.zone` → `zone`).
    pub spread_over: Vec<String>,
    /// Platforms the image runs on; empty = any.
    pub platforms: Vec<Platform>,
    pub host_ports: Vec<HostPort>,
    /// `placement.max_replicas_per_node`; 0 or None = unlimited.
    pub max_replicas_per_node: Option<u64>,
}

/// A task that already holds a node (running, or placed earlier in this round).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlacedTask {
    pub service: String,
    pub node: String,
    pub reservations: Resources,
    pub host_ports: Vec<HostPort>,
}
