//! Reconciliation of one service: compare its plan with its tasks and say
//! what to change. Level-triggered: it looks only at current state, so it can
//! run at any time, any number of times, after any crash.

use crate::deps::{blocked_by, ServiceStatus};
use crate::plan::{Mode, ServicePlan};
use crate::restart::{decide, Decision};
use crate::task::{DesiredState, Task};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create a new task for the slot (replicated) or node (global).
    Create { slot: u64, node: Option<String> },
    /// Ask a task to stop (its desired state becomes `shutdown`).
    Shutdown { task: String, reason: String },
}

/// The outcome of one reconciliation pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub actions: Vec<Action>,
    /// Run again at this time (a restart delay is pending).
    pub wake_at: Option<u64>,
    /// Why new tasks are held back (`depends_on`), if they are.
    pub blocked: Option<String>,
    /// Slots left empty on purpose, with why: a job slot that completed,
    /// `condition: on-failure` after a clean exit, or `max_attempts` spent.
    pub idle_slots: Vec<(SlotKey, String)>,
}

/// A slot: a replica number (replicated modes) or a node (global modes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlotKey {
    Replica(u64),
    Node(String),
}

impl SlotKey {
    fn of(task: &Task, mode: Mode) -> SlotKey {
        match mode {
            Mode::Global | Mode::GlobalJob => SlotKey::Node(task.node.clone().unwrap_or_default()),
            _ => SlotKey::Replica(task.slot),
        }
    }

    fn create(&self) -> Action {
        match self {
            SlotKey::Replica(slot) => Action::Create {
                slot: *slot,
                node: None,
            },
            SlotKey::Node(node) => Action::Create {
                slot: 0,
                node: Some(node.clone()),
            },
        }
    }
}

/// Reconcile one service.
///
/// - `tasks`: every task of the service still kept (any state).
/// - `nodes`: ids of the nodes a global service should run on.
/// - `statuses`: the status of every service in the stack, for `depends_on`.
pub fn reconcile(
    plan: &ServicePlan,
    tasks: &[Task],
    nodes: &[String],
    statuses: &BTreeMap<String, ServiceStatus>,
    now: u64,
) -> Reconciled {
    let mut out = Reconciled::default();
    let mut by_slot: BTreeMap<SlotKey, Vec<&Task>> = BTreeMap::new();
    for task in tasks {
        by_slot
            .entry(SlotKey::of(task, plan.mode))
            .or_default()
            .push(task);
    }
    for history in by_slot.values_mut() {
        history.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    }

    let wanted: Vec<SlotKey> = match plan.mode {
        Mode::Replicated { replicas } => (1..=replicas).map(SlotKey::Replica).collect(),
        Mode::ReplicatedJob { completions } => (1..=completions).map(SlotKey::Replica).collect(),
        Mode::Global | Mode::GlobalJob => nodes.iter().cloned().map(SlotKey::Node).collect(),
    };

    // Slots no longer wanted: stop what still runs there.
    for (slot, history) in &by_slot {
        if wanted.contains(slot) {
            continue;
        }
        let reason = match slot {
            SlotKey::Replica(_) => "scaled down",
            SlotKey::Node(_) => "node no longer eligible",
        };
        for task in history
            .iter()
            .filter(|t| t.desired == DesiredState::Running && t.state.is_active())
        {
            out.actions.push(Action::Shutdown {
                task: task.id.clone(),
                reason: reason.into(),
            });
        }
    }

    let ever_started = tasks.iter().any(|t| t.started_at.is_some());
    let blocked = if ever_started {
        None
    } else {
        blocked_by(plan, statuses)
    };

    for slot in wanted {
        let history = by_slot.get(&slot).map(Vec::as_slice).unwrap_or(&[]);
        let live: Vec<&&Task> = history
            .iter()
            .filter(|t| t.desired == DesiredState::Running && t.state.is_active())
            .collect();
        if let Some((newest, older)) = live.split_last() {
            // Never two live tasks in one slot (rolling updates add their own rule later).
            for extra in older {
                out.actions.push(Action::Shutdown {
                    task: extra.id.clone(),
                    reason: format!("replaced by {}", newest.id),
                });
            }
            continue;
        }
        // Ended tasks that were asked to stop (desired shutdown) and are still
        // stopping keep the slot busy until they end: no double container.
        if history
            .iter()
            .any(|t| t.desired == DesiredState::Shutdown && t.state.is_active())
        {
            continue;
        }
        let ended: Vec<&Task> = history
            .iter()
            .copied()
            .filter(|t| t.state.is_terminal())
            .collect();
        if blocked.is_some() && ended.is_empty() {
            continue;
        }
        match decide(&plan.restart, &ended, plan.mode.is_job(), now) {
            Decision::Now => out.actions.push(slot.create()),
            Decision::At(at) => out.wake_at = Some(out.wake_at.map_or(at, |w: u64| w.min(at))),
            Decision::Never(reason) => out.idle_slots.push((slot, reason)),
        }
    }
    out.blocked = blocked;
    out
}
