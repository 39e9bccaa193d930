//! Node monitor: a node whose liveness lease expired is `down`, and the tasks
//! it held are `orphaned` so the orchestrator replaces them elsewhere.

use crate::api::alive_key;
use crate::error::ApiResult;
use crate::events;
use crate::repo::Change;
use crate::state::AppState;
use flotilla_core::objects::{NodeRecord, NodeStatus};
use flotilla_core::{keys, Task, TaskState};

pub async fn monitor(state: &AppState) -> ApiResult<()> {
    let repo = &state.repo;
    let nodes: Vec<NodeRecord> = repo.list(keys::NODES).await?;
    for node in nodes {
        let alive = repo.store.get(&alive_key(&node.id)).await?.is_some();
        if alive || node.status == NodeStatus::Down {
            continue;
        }
        repo.update::<NodeRecord, _>(&keys::node(&node.id), |mut n| {
            if n.status == NodeStatus::Down {
                return Ok(Change::Keep);
            }
            n.status = NodeStatus::Down;
            Ok(Change::Write(n))
        })
        .await?;
        events::record(
            repo,
            "node",
            &node.id,
            "down",
            format!("{} missed its heartbeats", node.hostname),
        )
        .await;
        let now = crate::now_ms();
        for task in repo.list::<Task>(keys::TASKS).await? {
            if task.node.as_deref() != Some(&node.id) || !task.state.is_active() {
                continue;
            }
            repo.update::<Task, _>(&keys::task(&task.service, &task.id), |mut t| {
                if t.state.is_terminal() {
                    return Ok(Change::Keep);
                }
                let _ = t.transition(
                    TaskState::Orphaned,
                    format!("node {} is down", node.hostname),
                    now,
                );
                Ok(Change::Write(t))
            })
            .await?;
            events::record(
                repo,
                "task",
                &task.id,
                "orphaned",
                format!("{}: node {} is down", task.service, node.hostname),
            )
            .await;
        }
    }
    Ok(())
}
