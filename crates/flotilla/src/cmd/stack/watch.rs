//! Polling the server for service counts: one snapshot, and waiting (with a
//! live progress view) until services are ready or a deadline passes.

use super::connect::OrExplain;
use super::status::{is_ready, not_ready_report, service_row};
use crate::progress::Progress;
use flotilla_client::{Client, ServiceView};
use flotilla_core::{DesiredState, TaskState};
use std::time::{Duration, Instant};

/// How often the CLI polls the server while it waits.
pub const POLL: Duration = Duration::from_millis(500);

/// Which services to watch.
#[derive(Clone, Debug)]
pub enum Scope {
    Stack(String),
    Services(Vec<String>),
}

/// One watched service: its view, completed tasks (jobs) and tasks that
/// were told to stop but have not yet (scale-down, update).
pub struct Watched {
    pub view: ServiceView,
    pub completed: u64,
    pub stopping: u64,
}

impl Watched {
    pub fn ready(&self) -> bool {
        is_ready(&self.view, self.completed) && self.stopping == 0
    }
}

pub async fn snapshot(client: &Client, scope: &Scope) -> anyhow::Result<Vec<Watched>> {
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
        let tasks = client
            .tasks(Some(&view.record.id), super::status::is_job(&view))
            .await
            .or_explain(client)?;
        let completed = tasks
            .iter()
            .filter(|t| t.state == TaskState::Complete)
            .count() as u64;
        let stopping = tasks
            .iter()
            .filter(|t| t.desired == DesiredState::Shutdown && t.state.is_active())
            .count() as u64;
        out.push(Watched {
            view,
            completed,
            stopping,
        });
    }
    Ok(out)
}

pub fn render(progress: &mut Progress, snap: &[Watched]) {
    let rows: Vec<_> = snap
        .iter()
        .map(|w| {
            let mut row = service_row(&w.view, w.completed);
            if w.stopping > 0 {
                row.text.push_str(&format!("  ({} stopping)", w.stopping));
            }
            row
        })
        .collect();
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
        if !snap.is_empty() && snap.iter().all(Watched::ready) {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            anyhow::bail!(
                "not every service became ready within {}s:\n{}",
                timeout.as_secs(),
                not_ready_report(
                    &snap
                        .iter()
                        .map(|w| (w.view.clone(), w.completed))
                        .collect::<Vec<_>>()
                )
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Parse `--wait-timeout` (`120s`, `2m`, a bare number of seconds).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    flotilla_runtime::spec::parse_duration(s).map_err(|e| format!("{e:#}"))
}
