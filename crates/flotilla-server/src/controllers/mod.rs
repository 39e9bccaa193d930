//! The controllers: node monitor, orchestrator, scheduler. They run as one
//! level-triggered loop: every pass reads the current objects and closes the
//! difference, so a missed change, a crash or a restart loses nothing. A pass
//! runs after any store change (watch), after a user action (kick), at the
//! earliest pending restart time, and at least every second.

mod nodes;
mod orchestrator;
mod scheduler;

use crate::state::AppState;
use std::time::Duration;
use tokio::sync::watch;

/// The longest the loop sleeps without a reason.
const IDLE_PASS: Duration = Duration::from_secs(1);

pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut changes = None;
    let mut last_prune = 0;
    loop {
        if crate::now_ms() > last_prune + 60_000 {
            crate::events::prune(&state.repo).await;
            last_prune = crate::now_ms();
        }
        if changes.is_none() {
            changes = state.repo.store.watch("/", None).await.ok();
        }
        let wake = match pass(&state).await {
            Ok(wake) => wake,
            Err(e) => {
                tracing::warn!(error = %e.message, "controller pass failed; retrying");
                Some(crate::now_ms() + 200)
            }
        };
        let sleep = wake
            .map(|at| Duration::from_millis(at.saturating_sub(crate::now_ms())))
            .unwrap_or(IDLE_PASS)
            .min(IDLE_PASS);
        tokio::select! {
            _ = stop.changed() => return,
            _ = state.kick.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            event = next_relevant(&mut changes) => {
                if !event { changes = None; }
            }
        }
        // Let a burst of writes land before the next pass.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Wait for a store change the controllers care about; false if the watch ended.
async fn next_relevant(changes: &mut Option<flotilla_store::Watch>) -> bool {
    let Some(watch) = changes else {
        std::future::pending::<()>().await;
        return false;
    };
    loop {
        match watch.next().await {
            Some(Ok(event)) => {
                let key = &event.kv.key;
                if !key.starts_with(flotilla_core::keys::EVENTS)
                    && !key.starts_with(flotilla_core::keys::TOKENS)
                {
                    return true;
                }
            }
            _ => return false,
        }
    }
}

async fn pass(state: &AppState) -> crate::error::ApiResult<Option<u64>> {
    nodes::monitor(state).await?;
    let wake = orchestrator::reconcile_all(state).await?;
    scheduler::assign(state).await?;
    Ok(wake)
}
