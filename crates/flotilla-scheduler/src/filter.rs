//! Node filters and the reason a task fits nowhere.
//!
//! Filters are split by how often they can change during one scheduling round:
//! *static* ones (status, availability, platform, constraints) depend only on
//! the node and the service, so they are evaluated once per service group;
//! *dynamic* ones (resources, host ports, max replicas) change as tasks are
//! placed, so they are checked per task.

use crate::model::{Availability, HostPort, Node, NodeStatus, Protocol, Resources, TaskRequest};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Why one node cannot take a task: the first filter that failed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rejection {
    NotReady,
    Paused,
    Drained,
    Platform,
    Constraint(String),
    Cpu,
    Memory,
    HostPort(HostPort),
    MaxReplicas(u64),
}

pub(crate) fn static_rejection(node: &Node, task: &TaskRequest) -> Option<Rejection> {
    if node.status != NodeStatus::Ready {
        return Some(Rejection::NotReady);
    }
    match node.availability {
        Availability::Active => {}
        Availability::Pause => return Some(Rejection::Paused),
        Availability::Drain => return Some(Rejection::Drained),
    }
    if !task.platforms.is_empty()
        && !task.platforms.iter().any(|p| {
            p.os.eq_ignore_ascii_case(&node.platform.os)
                && (p.arch.is_empty() || p.arch.eq_ignore_ascii_case(&node.platform.arch))
        })
    {
        return Some(Rejection::Platform);
    }
    task.constraints
        .iter()
        .find(|c| !c.matches(node))
        .map(|c| Rejection::Constraint(c.to_string()))
}

/// What a node has committed so far in this round.
#[derive(Clone, Debug, Default)]
pub(crate) struct Usage {
    pub reserved: Resources,
    pub tasks: u64,
    pub ports: HashSet<HostPort>,
}

pub(crate) fn dynamic_rejection(
    node: &Node,
    usage: &Usage,
    service_tasks_on_node: u64,
    task: &TaskRequest,
) -> Option<Rejection> {
    let free = free(node, usage);
    if task.reservations.nano_cpus > free.nano_cpus {
        return Some(Rejection::Cpu);
    }
    if task.reservations.memory_bytes > free.memory_bytes {
        return Some(Rejection::Memory);
    }
    if let Some(port) = task.host_ports.iter().find(|p| usage.ports.contains(p)) {
        return Some(Rejection::HostPort(port.clone()));
    }
    match task.max_replicas_per_node {
        Some(max) if max > 0 && service_tasks_on_node >= max => Some(Rejection::MaxReplicas(max)),
        _ => None,
    }
}

pub(crate) fn free(node: &Node, usage: &Usage) -> Resources {
    Resources {
        nano_cpus: node
            .capacity
            .nano_cpus
            .saturating_sub(usage.reserved.nano_cpus),
        memory_bytes: node
            .capacity
            .memory_bytes
            .saturating_sub(usage.reserved.memory_bytes),
    }
}

/// No node can take the task. Says, per reason, on how many nodes it applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Unschedulable {
    pub task: String,
    pub nodes: usize,
    /// Human-readable reasons with node counts, most common first.
    pub reasons: Vec<String>,
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return write!(f, "no suitable node: the cluster has no nodes");
        }
        write!(f, "no suitable node: {}", self.reasons.join("; "))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "node"
    } else {
        "nodes"
    }
}

pub(crate) fn describe(
    task: &TaskRequest,
    nodes: usize,
    rejections: Vec<Rejection>,
    most_free: Resources,
) -> Unschedulable {
    let mut counts: BTreeMap<Rejection, usize> = BTreeMap::new();
    for r in rejections {
        *counts.entry(r).or_default() += 1;
    }
    let mut reasons: Vec<(usize, String)> = counts
        .into_iter()
        .map(|(rejection, n)| {
            let on = format!("{n} {}", plural(n));
            let text = match rejection {
                Rejection::NotReady => format!("{on} not ready (down or unreachable)"),
                Rejection::Paused => format!("{on} paused"),
                Rejection::Drained => format!("{on} drained"),
                Rejection::Platform => format!("unsupported platform on {on}"),
                Rejection::Constraint(c) => format!("constraint {c} not satisfied on {on}"),
                Rejection::Cpu => format!(
                    "insufficient CPU on {on} (needs {}, at most {} free)",
                    cpus(task.reservations.nano_cpus),
                    cpus(most_free.nano_cpus)
                ),
                Rejection::Memory => format!(
                    "insufficient memory on {on} (needs {}, at most {} free)",
                    bytes(task.reservations.memory_bytes),
                    bytes(most_free.memory_bytes)
                ),
                Rejection::HostPort(p) => {
                    let proto = match p.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                        Protocol::Sctp => "sctp",
                    };
                    format!("host port {}/{proto} already in use on {on}", p.port)
                }
                Rejection::MaxReplicas(max) => {
                    format!("max replicas per node ({max}) reached on {on}")
                }
            };
            (n, text)
        })
        .collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.0));
    Unschedulable {
        task: task.id.clone(),
        nodes,
        reasons: reasons.into_iter().map(|(_, t)| t).collect(),
    }
}

fn cpus(nano: u64) -> String {
    format!("{} CPUs", (nano as f64 / 1e9 * 100.0).round() / 100.0)
}

fn bytes(b: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;
    if b as f64 >= GIB {
        format!("{:.1} GiB", b as f64 / GIB)
    } else {
        format!("{:.0} MiB", b as f64 / MIB)
    }
}
