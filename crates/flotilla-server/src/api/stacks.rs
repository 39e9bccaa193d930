//! Deploying and removing stacks.

use super::{check_name, Body};
use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::repo::Change;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use flotilla_core::keys;
use flotilla_core::objects::ServiceRecord;
use flotilla_core::plan::service_id;
use flotilla_spec::Stack;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
pub struct DeployReport {
    pub stack: String,
    /// service name → created | updated | unchanged | removed
    pub services: BTreeMap<String, String>,
}

pub async fn deploy(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(stack): Body<Stack>,
) -> ApiResult<Json<DeployReport>> {
    check_name("stack", &name)?;
    if stack.services.is_empty() {
        return Err(ApiError::bad_request(format!(
            "stack {name:?} has no services"
        )));
    }
    for (svc_name, svc) in &stack.services {
        check_name("service", svc_name)?;
        if svc.image.as_deref().unwrap_or("").is_empty() {
            return Err(ApiError::bad_request(format!("service {svc_name:?} has no image"))
                .with_hint(if svc.build.is_some() {
                    "Flotilla cannot build images yet: build it elsewhere and `flotilla image import` it, then set `image:`"
                } else {
                    "set `image:` on the service"
                }));
        }
    }
    super::networks::ensure_for_stack(&state, &name, &stack).await?;
    let repo = &state.repo;
    let now = crate::now_ms();
    let mut report = BTreeMap::new();
    for (svc_name, spec) in &stack.services {
        let id = service_id(&name, svc_name);
        let key = keys::service(&id);
        let record = ServiceRecord {
            id: id.clone(),
            stack: name.clone(),
            name: svc_name.clone(),
            version: 1,
            spec: spec.clone(),
            previous: None,
            created_at: now,
            updated_at: now,
        };
        let outcome = if repo.create(&key, &record).await? {
            "created"
        } else {
            let mut changed = false;
            repo.update::<ServiceRecord, _>(&key, |mut current| {
                if current.spec == *spec {
                    changed = false;
                    return Ok(Change::Keep);
                }
                changed = true;
                current.previous = Some(std::mem::replace(&mut current.spec, spec.clone()));
                current.version += 1;
                current.updated_at = now;
                Ok(Change::Write(current))
            })
            .await?;
            if changed {
                "updated"
            } else {
                "unchanged"
            }
        };
        if outcome != "unchanged" {
            events::record(repo, "service", &id, outcome, format!("stack {name}")).await;
        }
        report.insert(svc_name.clone(), outcome.to_string());
    }
    // Services of this stack that the new file no longer has.
    for old in repo.list::<ServiceRecord>(keys::SERVICES).await? {
        if old.stack == name && !stack.services.contains_key(&old.name) {
            remove_service(
                &state,
                old,
                &mut report,
                &format!("no longer in stack {name}"),
            )
            .await?;
        }
    }
    state.kick.notify_one();
    Ok(Json(DeployReport {
        stack: name,
        services: report,
    }))
}

pub async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<DeployReport>> {
    check_name("stack", &name)?;
    let repo = &state.repo;
    let mut report = BTreeMap::new();
    for old in repo.list::<ServiceRecord>(keys::SERVICES).await? {
        if old.stack == name {
            remove_service(&state, old, &mut report, &format!("stack {name} removed")).await?;
        }
    }
    if report.is_empty() {
        return Err(ApiError::not_found("stack", &name));
    }
    super::networks::release_stack(&state, &name).await?;
    state.kick.notify_one();
    Ok(Json(DeployReport {
        stack: name,
        services: report,
    }))
}

/// Delete a service record; the orchestrator then stops its tasks.
async fn remove_service(
    state: &AppState,
    old: ServiceRecord,
    report: &mut BTreeMap<String, String>,
    why: &str,
) -> ApiResult<()> {
    state.repo.delete(&keys::service(&old.id)).await?;
    super::networks::release_service(state, &old.id).await?;
    events::record(&state.repo, "service", &old.id, "removed", why).await;
    report.insert(old.name, "removed".into());
    Ok(())
}

#[derive(Serialize)]
pub struct StackSummary {
    pub name: String,
    pub services: usize,
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<StackSummary>>> {
    let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
    for svc in state.repo.list::<ServiceRecord>(keys::SERVICES).await? {
        *stacks.entry(svc.stack).or_default() += 1;
    }
    Ok(Json(
        stacks
            .into_iter()
            .map(|(name, services)| StackSummary { name, services })
            .collect(),
    ))
}
