//! Orchestrator: turn each service into task slots (via the pure
//! `flotilla_core::reconcile`), stop tasks of removed services, and prune
//! task history.

use crate::error::ApiResult;
use crate::events;
use crate::repo::Change;
use crate::state::AppState;
use flotilla_core::deps::{status_of, ServiceStatus};
use flotilla_core::objects::{NodeAvailability, NodeRecord, NodeStatus, ServiceRecord};
use flotilla_core::{keys, reconcile, Action, DesiredState, ServicePlan, Task, TaskState};
use std::collections::{BTreeMap, HashMap};

/// Ended tasks kept per slot for `ps -a` and restart accounting (Swarm keeps 5).
const HISTORY_PER_SLOT: usize = 5;

pub async fn reconcile_all(state: &AppState) -> ApiResult<Option<u64>> {
    let repo = &state.repo;
    let now = crate::now_ms();
    let services: Vec<ServiceRecord> = repo.list(keys::SERVICES).await?;
    let all_tasks: Vec<Task> = repo.list(keys::TASKS).await?;
    let nodes: Vec<NodeRecord> = repo.list(keys::NODES).await?;
    let ready_nodes: Vec<String> = nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Ready && n.availability == NodeAvailability::Active)
        .map(|n| n.id.clone())
        .collect();

    let mut by_service: HashMap<&str, Vec<Task>> = HashMap::new();
    for task in &all_tasks {
        by_service
            .entry(task.service.as_str())
            .or_default()
            .push(task.clone());
    }
    let statuses: BTreeMap<String, ServiceStatus> = services
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                status_of(
                    by_service
                        .get(s.id.as_str())
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                ),
            )
        })
        .collect();

    // Tasks whose service is gone: stop them, then forget them.
    for task in &all_tasks {
        if services.iter().any(|s| s.id == task.service) {
            continue;
        }
        if task.state.is_terminal() {
            repo.delete(&keys::task(&task.service, &task.id)).await?;
        } else if task.desired == DesiredState::Running {
            shutdown(state, task, "service removed", now).await?;
        }
    }

    let mut wake: Option<u64> = None;
    let mut notes = HashMap::new();
    for service in &services {
        let plan = ServicePlan::from_spec(
            &service.stack,
            &service.name,
            &service.spec,
            service.version,
        );
        let tasks = by_service
            .get(service.id.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let result = reconcile(&plan, tasks, &ready_nodes, &statuses, now);
        for action in &result.actions {
            match action {
                Action::Create { slot, node } => {
                    let mut task = Task::new(
                        crate::new_id(),
                        service.id.clone(),
                        *slot,
                        service.version,
                        now,
                    );
                    task.node.clone_from(node);
                    repo.create(&keys::task(&service.id, &task.id), &task)
                        .await?;
                }
                Action::Shutdown { task, reason } => {
                    if let Some(t) = tasks.iter().find(|t| &t.id == task) {
                        shutdown(state, t, reason, now).await?;
                    }
                }
            }
        }
        if let Some(at) = result.wake_at {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        let mut note = result.blocked.clone();
        if let Some((_, reason)) = result
            .idle_slots
            .iter()
            .find(|(_, r)| r.starts_with("gave up"))
        {
            note = Some(reason.clone());
        }
        if let Some(n) = note {
            notes.insert(service.id.clone(), n);
        }
        // Keep enough history for max_attempts to be counted correctly.
        let keep = HISTORY_PER_SLOT.max(plan.restart.max_attempts.unwrap_or(0) as usize + 1);
        prune_history(state, tasks, keep).await?;
    }
    *state.notes.lock().unwrap() = notes;
    Ok(wake)
}

/// Ask a task to stop. A task no agent holds yet stops right here.
async fn shutdown(state: &AppState, task: &Task, reason: &str, now: u64) -> ApiResult<()> {
    let updated = state
        .repo
        .update::<Task, _>(&keys::task(&task.service, &task.id), |mut t| {
            if t.desired == DesiredState::Shutdown
                && (t.state.is_terminal() || t.state >= TaskState::Assigned)
            {
                return Ok(Change::Keep);
            }
            t.desired = DesiredState::Shutdown;
            t.message = reason.to_string();
            if t.state < TaskState::Assigned {
                let _ = t.transition(TaskState::Shutdown, reason, now);
            }
            Ok(Change::Write(t))
        })
        .await?;
    if updated.is_some() {
        events::record(
            &state.repo,
            "task",
            &task.id,
            "shutdown-requested",
            format!("{}: {reason}", task.service),
        )
        .await;
    }
    Ok(())
}

async fn prune_history(state: &AppState, tasks: &[Task], keep: usize) -> ApiResult<()> {
    let mut ended: BTreeMap<(u64, Option<&str>), Vec<&Task>> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.state.is_terminal()) {
        ended
            .entry((t.slot, t.node.as_deref()))
            .or_default()
            .push(t);
    }
    for (_, mut history) in ended {
        if history.len() <= keep {
            continue;
        }
        history.sort_by_key(|t| t.created_at);
        for old in &history[..history.len() - keep] {
            state
                .repo
                .delete(&keys::task(&old.service, &old.id))
                .await?;
        }
    }
    Ok(())
}
