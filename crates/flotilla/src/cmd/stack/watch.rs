//! Polling the server for service counts: one snapshot, and waiting (with a
//! live progress view) until services are ready or a deadline passes.

use super::connect::OrExplain;
use super::status::{is_ready, not_ready_report, service_row};
use crate::progress::Progress;
use flotilla_client::{Client, ServiceView};
use flotilla_core::TaskState;
use std::time::{Duration, Instant};

/// How often the CLI polls the server while it waits.
pub const POLL: Duration = Duration::from_millis(500);

/// Which services to watch.
#[derive(Clone, Debug)]
pub enum Scope {
    Stack(String),
    Services(Vec<String>),
}

/// Every watched service with, for jobs, how many of its tasks completed.
pub async fn snapshot(client: &Client, scope: &Scope) -> anyhow::Result<Vec<(ServiceView, u64)>> {
    let views = match scope {
        Scope::Stack(s) => client.services(Some(s)).await.or_explain(client)?,
        Scope::Services(ids) => {
            let mut v = Vec::new();
            for id in ids {
                v.push(client.service(id).await.or_explain(client)?);
            }
            v
        }
    };
    let mut out = Vec::new();
    for view in views {
        let completed = if super::status::is_job(&view) {
            client
                .tasks(Some(&view.record.id), true)
                .await
                .or_explain(client)?
                .iter()
                .filter(|t| t.state == TaskState::Complete)
                .count() as u64
        } else {
            0
        };
        out.push((view, completed));
    }
    Ok(out)
}

pub fn render(progress: &mut Progress, snap: &[(ServiceView, u64)]) {
    let rows: Vec<_> = snap.iter().map(|(v, c)| service_row(v, *c)).collect();
    progress.update(&rows);
}

/// Wait until every service in scope is ready; after `timeout`, fail with
/// each unready service's problem.
pub async fn until_ready(
    client: &Client,
    scope: &Scope,
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let snap = snapshot(client, scope).await?;
        render(progress, &snap);
        if !snap.is_empty() && snap.iter().all(|(v, c)| is_ready(v, *c)) {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            anyhow::bail!(
                "not every service became ready within {}s:\n{}",
                timeout.as_secs(),
                not_ready_report(&snap)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Parse `--wait-timeout` (`120s`, `2m`, a bare number of seconds).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    flotilla_runtime::spec::parse_duration(s).map_err(|e| format!("{e:#}"))
}
