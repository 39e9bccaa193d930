//! Tasks: listing for people, status reports from agents.

use super::Body;
use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::repo::Change;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::Json;
use flotilla_core::{keys, Health, Task, TaskState};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ListQuery {
    pub service: Option<String>,
    pub node: Option<String>,
    /// Include tasks that ended (history); default false.
    #[serde(default)]
    pub all: bool,
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Task>>> {
    let prefix = match &q.service {
        Some(s) => keys::tasks_of(s),
        None => keys::TASKS.to_string(),
    };
    let mut tasks: Vec<Task> = state.repo.list(&prefix).await?;
    tasks.retain(|t| {
        (q.all || t.state.is_active()) && q.node.as_ref().is_none_or(|n| t.node.as_ref() == Some(n))
    });
    tasks.sort_by(|a, b| {
        (&a.service, a.slot, &a.node, a.created_at).cmp(&(
            &b.service,
            b.slot,
            &b.node,
            b.created_at,
        ))
    });
    Ok(Json(tasks))
}

pub async fn find(state: &AppState, id: &str) -> ApiResult<Task> {
    let tasks: Vec<Task> = state.repo.list(keys::TASKS).await?;
    let mut matches = tasks.into_iter().filter(|t| t.id.starts_with(id));
    let first = matches
        .next()
        .ok_or_else(|| ApiError::not_found("task", id))?;
    if matches.next().is_some() {
        return Err(
            ApiError::bad_request(format!("task id prefix {id:?} is ambiguous"))
                .with_hint("give more characters of the id"),
        );
    }
    Ok(first)
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Task>> {
    Ok(Json(find(&state, &id).await?))
}

/// What an agent reports about a task it runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    pub state: TaskState,
    #[serde(default)]
    pub message: String,
    pub exit_code: Option<i32>,
    pub container_id: Option<String>,
    pub ip: Option<String>,
    #[serde(default)]
    pub addresses: std::collections::BTreeMap<String, String>,
    pub health: Option<Health>,
}

pub async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(report): Body<StatusReport>,
) -> ApiResult<Json<Task>> {
    let task = find(&state, &id).await?;
    let now = crate::now_ms();
    let mut transitioned = false;
    let updated = state
        .repo
        .update::<Task, _>(&keys::task(&task.service, &task.id), |mut t| {
            transitioned = false;
            if report.state != t.state {
                t.transition(report.state, report.message.clone(), now)
                    .map_err(|e| ApiError::conflict(e.to_string()))?;
                transitioned = true;
            }
            if let Some(code) = report.exit_code {
                t.exit_code = Some(code);
            }
            if report.container_id.is_some() {
                t.container_id.clone_from(&report.container_id);
            }
            if report.ip.is_some() {
                t.ip.clone_from(&report.ip);
            }
            if !report.addresses.is_empty() {
                t.addresses.clone_from(&report.addresses);
            }
            if let Some(h) = report.health {
                t.health = h;
            }
            Ok(Change::Write(t))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("task", &id))?;
    if transitioned {
        let msg = if report.message.is_empty() {
            format!("slot {}", updated.slot)
        } else {
            report.message.clone()
        };
        events::record(
            &state.repo,
            "task",
            &updated.id,
            updated.state.as_str(),
            format!("{}: {msg}", updated.service),
        )
        .await;
        state.kick.notify_one();
    }
    Ok(Json(updated))
}
