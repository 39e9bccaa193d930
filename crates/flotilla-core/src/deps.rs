//! `depends_on` gating: a service's first tasks wait until each dependency
//! is started, healthy, or completed successfully, as Compose orders startup.

use crate::plan::{ServicePlan, WaitFor};
use crate::task::{DesiredState, Health, Task, TaskState};
use std::collections::BTreeMap;

/// What dependents can ask of a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStatus {
    /// At least one task is running.
    pub started: bool,
    /// At least one task runs and every running task passes its health
    /// check (a service without a health check counts as healthy when running).
    pub healthy: bool,
    /// Every task that should run has completed with exit code 0, and none runs.
    pub completed_successfully: bool,
}

pub fn status_of(tasks: &[Task]) -> ServiceStatus {
    let current: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.desired == DesiredState::Running)
        .collect();
    let running: Vec<&&Task> = current
        .iter()
        .filter(|t| t.state == TaskState::Running)
        .collect();
    let started = !running.is_empty();
    let healthy = started
        && running
            .iter()
            .all(|t| matches!(t.health, Health::Healthy | Health::None));
    let completed_successfully = !current.is_empty()
        && current.iter().all(|t| t.state.is_terminal())
        && current.iter().any(|t| t.state == TaskState::Complete)
        && {
            // The latest task of each slot must be complete.
            let mut latest: BTreeMap<(u64, Option<&str>), &Task> = BTreeMap::new();
            for t in &current {
                let key = (t.slot, t.node.as_deref());
                if latest
                    .get(&key)
                    .is_none_or(|l| l.created_at <= t.created_at)
                {
                    latest.insert(key, t);
                }
            }
            latest.values().all(|t| t.state == TaskState::Complete)
        };
    ServiceStatus {
        started,
        healthy,
        completed_successfully,
    }
}

/// Why the service must wait, or None when every dependency is satisfied.
pub fn blocked_by(
    plan: &ServicePlan,
    statuses: &BTreeMap<String, ServiceStatus>,
) -> Option<String> {
    let waiting: Vec<String> = plan
        .depends_on
        .iter()
        .filter_map(|dep| {
            let Some(status) = statuses.get(&dep.service) else {
                return dep
                    .required
                    .then(|| format!("{} (not deployed)", dep.service));
            };
            let (ok, what) = match dep.wait_for {
                WaitFor::Started => (status.started, "to start"),
                WaitFor::Healthy => (status.healthy, "to be healthy"),
                WaitFor::CompletedSuccessfully => {
                    (status.completed_successfully, "to complete successfully")
                }
            };
            (!ok).then(|| format!("{} {what}", dep.service))
        })
        .collect();
    (!waiting.is_empty()).then(|| format!("waiting for {}", waiting.join(", ")))
}
