//! `flotilla events`: past events, optionally followed live (NDJSON).

use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use flotilla_core::keys;
use flotilla_core::objects::EventRecord;
use serde::Deserialize;
use std::convert::Infallible;

#[derive(Deserialize)]
pub struct EventsQuery {
    /// Only events at or after this time (ms since the epoch).
    #[serde(default)]
    pub since: u64,
    /// Keep the response open and stream new events as NDJSON.
    #[serde(default)]
    pub follow: bool,
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let listing = state.repo.store.list(keys::EVENTS).await?;
    let mut past = Vec::new();
    for kv in &listing.kvs {
        let event: EventRecord = crate::repo::decode(kv)?;
        if event.time >= q.since {
            past.push(event);
        }
    }
    if !q.follow {
        return Ok(Json(past).into_response());
    }
    let mut watch = state
        .repo
        .store
        .watch(keys::EVENTS, Some(listing.revision + 1))
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let line = |e: &EventRecord| {
            let mut v = serde_json::to_vec(e).unwrap_or_default();
            v.push(b'\n');
            Bytes::from(v)
        };
        for e in &past {
            if tx.send(Ok(line(e))).await.is_err() {
                return;
            }
        }
        while let Some(Ok(event)) = watch.next().await {
            if event.kind != flotilla_store::EventKind::Put {
                continue;
            }
            let Ok(record) = serde_json::from_slice::<EventRecord>(&event.kv.value) else {
                continue;
            };
            if tx.send(Ok(line(&record))).await.is_err() {
                return;
            }
        }
    });
    Ok(super::ndjson(rx))
}
