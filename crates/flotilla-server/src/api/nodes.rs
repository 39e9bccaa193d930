//! Nodes: agents register, heartbeat, and watch their assignments.

use super::Body;
use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use bytes::Bytes;
use flotilla_core::objects::{NodeAvailability, NodeRecord, NodeStatus};
use flotilla_core::{keys, Task};
use flotilla_store::{Op, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

/// The key that exists while a node's liveness lease does.
pub fn alive_key(node: &str) -> String {
    format!("/alive/{node}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The id the agent had before (it keeps it in its state dir); None on first start.
    pub id: Option<String>,
    pub hostname: String,
    pub address: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub os: String,
    pub arch: String,
    pub nano_cpus: u64,
    pub memory_bytes: u64,
}

#[derive(Serialize)]
pub struct Registered {
    pub node: NodeRecord,
    /// How often the agent must heartbeat.
    pub heartbeat_interval_ms: u64,
}

pub async fn register(
    State(state): State<AppState>,
    Body(reg): Body<Registration>,
) -> ApiResult<Json<Registered>> {
    if reg.hostname.is_empty() || reg.hostname.len() > 253 {
        return Err(ApiError::bad_request("hostname must be 1-253 characters"));
    }
    let id = match reg.id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            id
        }
        Some(id) => {
            return Err(ApiError::bad_request(format!(
                "invalid node id {id:?}: expected up to 64 letters and digits"
            )))
        }
        None => crate::new_id(),
    };
    let key = keys::node(&id);
    let availability = state
        .repo
        .get::<NodeRecord>(&key)
        .await?
        .map_or(NodeAvailability::Active, |(n, _)| n.availability);
    let node = NodeRecord {
        id: id.clone(),
        hostname: reg.hostname,
        address: reg.address,
        labels: reg.labels,
        os: reg.os,
        arch: reg.arch,
        nano_cpus: reg.nano_cpus,
        memory_bytes: reg.memory_bytes,
        availability,
        status: NodeStatus::Ready,
        last_heartbeat: crate::now_ms(),
    };
    let lease = state.repo.store.grant_lease(state.node_ttl).await?;
    state
        .repo
        .store
        .txn(
            vec![],
            vec![
                Op::Put {
                    key: key.clone(),
                    value: serde_json::to_vec(&node)?,
                    lease: None,
                },
                Op::Put {
                    key: alive_key(&id),
                    value: Vec::new(),
                    lease: Some(lease),
                },
            ],
        )
        .await?;
    // Take the old lease out before awaiting: the lock must not be held across an await.
    let old_lease = state.node_leases.lock().unwrap().insert(id.clone(), lease);
    if let Some(old) = old_lease {
        let _ = state.repo.store.revoke_lease(old).await;
    }
    events::record(
        &state.repo,
        "node",
        &id,
        "ready",
        format!("{} registered", node.hostname),
    )
    .await;
    state.kick.notify_one();
    Ok(Json(Registered {
        node,
        heartbeat_interval_ms: (state.node_ttl.as_millis() as u64 / 4).max(100),
    }))
}

pub async fn heartbeat(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let lease = state.node_leases.lock().unwrap().get(&id).copied();
    let gone = || {
        ApiError::not_found("node registration", &id)
            .with_hint("the agent must register again (POST /v1/nodes)")
    };
    let lease = lease.ok_or_else(gone)?;
    match state.repo.store.keep_alive(lease).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::LeaseNotFound(_)) => Err(gone()),
        Err(e) => Err(e.into()),
    }
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<NodeRecord>>> {
    Ok(Json(state.repo.list(keys::NODES).await?))
}

/// The tasks an agent must act on: assigned to it and not yet ended.
async fn assignments_of(state: &AppState, node: &str) -> Result<(Vec<Task>, u64), ApiError> {
    let listing = state.repo.store.list(keys::TASKS).await?;
    let mut tasks = Vec::new();
    for kv in &listing.kvs {
        let task: Task = crate::repo::decode(kv)?;
        if task.node.as_deref() == Some(node)
            && task.state.is_active()
            && task.state >= flotilla_core::TaskState::Assigned
        {
            tasks.push(task);
        }
    }
    Ok((tasks, listing.revision))
}

/// NDJSON stream: a line `{"tasks":[…]}` with the node's full assignment
/// list now, and again whenever it changes. Agents reconcile against the
/// latest line (level-triggered), so a missed line loses nothing.
pub async fn assignments(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (first, revision) = assignments_of(&state, &id).await?;
    let mut watch = state
        .repo
        .store
        .watch(keys::TASKS, Some(revision + 1))
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(16);
    tokio::spawn(async move {
        let line = |tasks: &Vec<Task>| {
            let mut bytes =
                serde_json::to_vec(&serde_json::json!({ "tasks": tasks })).unwrap_or_default();
            bytes.push(b'\n');
            Bytes::from(bytes)
        };
        let mut last = first;
        if tx.send(Ok(line(&last))).await.is_err() {
            return;
        }
        loop {
            // A keep-alive line every few seconds notices a vanished client.
            let event = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
            match event {
                Err(_) => {
                    if tx.send(Ok(Bytes::from_static(b"{}\n"))).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(None) | Ok(Some(Err(_))) => return, // The agent reconnects and re-lists.
                Ok(Some(Ok(_))) => {}
            }
            // Coalesce a burst of changes into one line.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let Ok((now, _)) = assignments_of(&state, &id).await else {
                return;
            };
            if now != last {
                last = now;
                if tx.send(Ok(line(&last))).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(super::ndjson(rx))
}
