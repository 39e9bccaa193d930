//! Services: listing with live replica counts, scaling, restarting.

use super::Body;
use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::repo::Change;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::Json;
use flotilla_core::keys;
use flotilla_core::objects::{ServiceCounts, ServiceRecord, ServiceView};
use flotilla_core::{DesiredState, Health, Task, TaskState};
use flotilla_spec::DeployMode;
use serde::Deserialize;

/// Upper bound on replicas, so a typo cannot ask for a billion tasks.
pub const MAX_REPLICAS: u64 = 10_000;

pub fn counts(record: &ServiceRecord, tasks: &[Task]) -> ServiceCounts {
    let current: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.desired == DesiredState::Running)
        .collect();
    let desired = match record.spec.deploy.mode {
        DeployMode::Replicated | DeployMode::ReplicatedJob => {
            record.spec.deploy.replicas.unwrap_or(1)
        }
        _ => current.iter().filter(|t| t.state.is_active()).count() as u64,
    };
    let running = current
        .iter()
        .filter(|t| t.state == TaskState::Running)
        .count() as u64;
    let healthy = current
        .iter()
        .filter(|t| {
            t.state == TaskState::Running && matches!(t.health, Health::Healthy | Health::None)
        })
        .count() as u64;
    let problem = current
        .iter()
        .filter(|t| {
            !t.message.is_empty()
                && matches!(
                    t.state,
                    TaskState::Pending | TaskState::Failed | TaskState::Rejected
                )
        })
        .max_by_key(|t| t.created_at)
        .map(|t| format!("{}: {}", t.state, t.message));
    ServiceCounts {
        desired,
        running,
        healthy,
        problem,
    }
}

fn view(state: &AppState, record: ServiceRecord, tasks: &[Task]) -> ServiceView {
    let mut status = counts(&record, tasks);
    let note = state.notes.lock().unwrap().get(&record.id).cloned();
    // The orchestrator's note says what it will (not) do next — waiting for
    // a dependency, or restart attempts spent, which already names the last
    // failure — so it says more than the newest failed task alone.
    if note.is_some() {
        status.problem = note;
    }
    ServiceView { status, record }
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub stack: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<ServiceView>>> {
    let mut out = Vec::new();
    for record in state.repo.list::<ServiceRecord>(keys::SERVICES).await? {
        if q.stack.as_ref().is_some_and(|s| *s != record.stack) {
            continue;
        }
        let tasks = state.repo.list::<Task>(&keys::tasks_of(&record.id)).await?;
        out.push(view(&state, record, &tasks));
    }
    Ok(Json(out))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ServiceView>> {
    let (record, _) = state
        .repo
        .get::<ServiceRecord>(&keys::service(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("service", &id))?;
    let tasks = state.repo.list::<Task>(&keys::tasks_of(&id)).await?;
    Ok(Json(view(&state, record, &tasks)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    pub replicas: u64,
}

pub async fn scale(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(req): Body<ScaleRequest>,
) -> ApiResult<Json<ServiceRecord>> {
    if req.replicas > MAX_REPLICAS {
        return Err(ApiError::bad_request(format!(
            "replicas {} is above the limit of {MAX_REPLICAS}",
            req.replicas
        )));
    }
    let now = crate::now_ms();
    let updated = state
        .repo
        .update::<ServiceRecord, _>(&keys::service(&id), |mut svc| {
            if !matches!(
                svc.spec.deploy.mode,
                DeployMode::Replicated | DeployMode::ReplicatedJob
            ) {
                return Err(ApiError::bad_request(format!(
                    "service {id:?} runs in global mode: it cannot be scaled"
                ))
                .with_hint("global services run one task per node"));
            }
            if svc.spec.deploy.replicas == Some(req.replicas) {
                return Ok(Change::Keep);
            }
            svc.spec.deploy.replicas = Some(req.replicas);
            svc.version += 1;
            svc.updated_at = now;
            Ok(Change::Write(svc))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("service", &id))?;
    events::record(
        &state.repo,
        "service",
        &id,
        "scaled",
        format!("replicas={}", req.replicas),
    )
    .await;
    state.kick.notify_one();
    Ok(Json(updated))
}

/// Replace every task of the service with a fresh one (not counted as failures).
pub async fn restart(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    if state
        .repo
        .get::<ServiceRecord>(&keys::service(&id))
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("service", &id));
    }
    let mut restarted = 0;
    for task in state.repo.list::<Task>(&keys::tasks_of(&id)).await? {
        if task.desired == DesiredState::Running && task.state.is_active() {
            state
                .repo
                .update::<Task, _>(&keys::task(&id, &task.id), |mut t| {
                    t.desired = DesiredState::Shutdown;
                    t.message = "restart requested".into();
                    Ok(Change::Write(t))
                })
                .await?;
            restarted += 1;
        }
    }
    events::record(
        &state.repo,
        "service",
        &id,
        "restarted",
        format!("{restarted} tasks"),
    )
    .await;
    state.kick.notify_one();
    Ok(Json(
        serde_json::json!({ "service": id, "restarted": restarted }),
    ))
}
