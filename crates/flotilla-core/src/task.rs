//! Tasks and their one-way state machine (Swarm's):
//! `new → pending → assigned → preparing → starting → running →
//! {complete | failed | shutdown | rejected | orphaned}`.
//! A task never goes back; a replacement is a new task in the same slot.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    New,
    Pending,
    Assigned,
    Preparing,
    Starting,
    Running,
    /// Exited 0 (what a job wants).
    Complete,
    /// Exited non-zero, was killed, OOM-killed, or failed its health check.
    Failed,
    /// Stopped because it was asked to (scale down, update, `down`).
    Shutdown,
    /// The node could not run it (image missing, bad mount…).
    Rejected,
    /// Its node went down; the task's fate is unknown and it is replaced.
    Orphaned,
}

impl TaskState {
    pub fn is_terminal(self) -> bool {
        self >= TaskState::Complete
    }

    /// Whether the task holds (or may soon hold) a container on its node.
    pub fn is_active(self) -> bool {
        !self.is_terminal()
    }

    /// Legal transitions: forward through the lifecycle, skipping steps is
    /// allowed (an agent may report `running` straight after `assigned`), and
    /// any non-terminal state may end in any terminal one. Terminal is final.
    pub fn can_become(self, next: TaskState) -> bool {
        !self.is_terminal() && next > self
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Preparing => "preparing",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Failed => "failed",
            TaskState::Shutdown => "shutdown",
            TaskState::Rejected => "rejected",
            TaskState::Orphaned => "orphaned",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the orchestrator wants of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    Running,
    Shutdown,
}

/// Health as reported by the agent's prober.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The service has no health check.
    #[default]
    None,
    /// Checks have not passed yet (within start_period, or not enough results).
    Starting,
    Healthy,
    Unhealthy,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task {task}: illegal state change {from} → {to} (task states only move forward)")]
pub struct TransitionError {
    pub task: String,
    pub from: TaskState,
    pub to: TaskState,
}

/// One replica slot's attempt at running a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    /// Service id (`<stack>_<service>`).
    pub service: String,
    /// Replica slot, 1-based, for replicated modes; 0 for global modes (one per node).
    pub slot: u64,
    /// The node it is assigned to (set by the scheduler; from creation for global modes).
    pub node: Option<String>,
    /// The service spec version the task runs.
    pub spec_version: u64,
    pub desired: DesiredState,
    pub state: TaskState,
    pub health: Health,
    /// Human-readable reason for the current state ("exit code 1", "unschedulable: …").
    pub message: String,
    pub exit_code: Option<i32>,
    pub container_id: Option<String>,
    pub ip: Option<String>,
    /// Address on each stack network (network name → IPv4); `ip` is the first.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub addresses: std::collections::BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
}

impl Task {
    pub fn new(id: String, service: String, slot: u64, spec_version: u64, now: u64) -> Task {
        Task {
            id,
            service,
            slot,
            node: None,
            spec_version,
            desired: DesiredState::Running,
            state: TaskState::New,
            health: Health::None,
            message: String::new(),
            exit_code: None,
            container_id: None,
            ip: None,
            addresses: Default::default(),
            created_at: now,
            started_at: None,
            finished_at: None,
        }
    }

    /// Move to `next`, recording when it started or finished.
    pub fn transition(
        &mut self,
        next: TaskState,
        message: impl Into<String>,
        now: u64,
    ) -> Result<(), TransitionError> {
        if !self.state.can_become(next) {
            return Err(TransitionError {
                task: self.id.clone(),
                from: self.state,
                to: next,
            });
        }
        self.state = next;
        self.message = message.into();
        if next == TaskState::Running && self.started_at.is_none() {
            self.started_at = Some(now);
        }
        if next.is_terminal() {
            self.finished_at = Some(now);
        }
        Ok(())
    }

    /// A running task that is not known to be unhealthy or still starting
    /// its checks: what a load balancer may send traffic to.
    pub fn is_serving(&self) -> bool {
        self.state == TaskState::Running
            && self.desired == DesiredState::Running
            && matches!(self.health, Health::None | Health::Healthy)
    }
}
