//! `flotilla down`: remove a stack, wait (bounded) for its tasks to stop,
//! optionally delete its named volumes, and stop the background server that
//! `up -d` started once no stack is left.

use super::connect::{self, OrExplain};
use super::{project_of, Common, StackFileArgs};
use crate::cmd::server;
use crate::context::Context;
use crate::progress::{Progress, Row};
use flotilla_client::Client;
use flotilla_core::objects::ServiceRecord;
use flotilla_spec::MountType;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct DownArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    files: StackFileArgs,
    /// Also delete the stack's named volumes.
    #[arg(short = 'v', long)]
    volumes: bool,
}

/// Margin on top of the longest stop grace period for agents to notice and report.
const STOP_MARGIN: Duration = Duration::from_secs(15);

pub async fn run(ctx: &Context, args: DownArgs) -> anyhow::Result<u8> {
    let stack = project_of(&args.common.project, Some(&args.files))?.ok_or_else(|| {
        anyhow::anyhow!("which stack? give -p NAME, -f FILE, or run in the stack file's directory")
    })?;
    let client = connect::client(&args.common.api, &ctx.data_dir)?;
    let records: Vec<ServiceRecord> = client
        .services(Some(&stack))
        .await
        .or_explain(&client)?
        .into_iter()
        .map(|v| v.record)
        .collect();
    if records.is_empty() {
        eprintln!("stack {stack} is not deployed");
    } else {
        let mut progress = Progress::stderr();
        remove_and_wait(&client, &stack, &ctx.data_dir, &mut progress).await?;
        if args.volumes {
            remove_volumes(&ctx.data_dir, &volume_names(&stack, &records))?;
        }
    }
    let others = client.services(None).await.or_explain(&client)?;
    if others.is_empty() && server::stop_background(&ctx.data_dir).await? {
        eprintln!("no stacks left: stopped the background server");
    }
    Ok(0)
}

/// Remove the stack, then show its tasks stopping until none is active (or
/// the longest stop grace period plus a margin passed: then warn).
pub async fn remove_and_wait(
    client: &Client,
    stack: &str,
    data_dir: &Path,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let records: Vec<ServiceRecord> = client
        .services(Some(stack))
        .await
        .or_explain(client)?
        .into_iter()
        .map(|v| v.record)
        .collect();
    let grace = records
        .iter()
        .map(|r| Duration::from_nanos(r.spec.stop_grace_period.0))
        .max()
        .unwrap_or_default();
    let ids: BTreeSet<String> = records.iter().map(|r| r.id.clone()).collect();
    let mut containers = BTreeSet::new();
    for t in client.tasks(None, false).await.or_explain(client)? {
        if ids.contains(&t.service) {
            containers.extend(t.container_id);
        }
    }
    client.remove_stack(stack).await.or_explain(client)?;
    let deadline = Instant::now() + grace + STOP_MARGIN;
    loop {
        let active: Vec<_> = client
            .tasks(None, false)
            .await
            .or_explain(client)?
            .into_iter()
            .filter(|t| ids.contains(&t.service))
            .collect();
        let running_here = running_containers(data_dir, &containers);
        let mut per_service: BTreeMap<&str, usize> = ids.iter().map(|i| (i.as_str(), 0)).collect();
        for t in &active {
            *per_service.entry(t.service.as_str()).or_default() += 1;
        }
        let rows: Vec<Row> = per_service
            .iter()
            .map(|(id, n)| Row {
                label: id.to_string(),
                text: if *n == 0 {
                    "removed".into()
                } else {
                    format!("{n} task(s) stopping")
                },
            })
            .collect();
        progress.update(&rows);
        if active.is_empty() && running_here == 0 {
            remove_ended_containers(data_dir, &ids);
            return Ok(());
        }
        if Instant::now() >= deadline {
            progress.note(&format!(
                "warning: stack {stack}: {} task(s) and {running_here} container(s) still stopping; giving up waiting",
                active.len()
            ));
            return Ok(());
        }
        tokio::time::sleep(super::watch::POLL).await;
    }
}

/// How many of these containers still run on this machine (single node:
/// the agent shares our data dir). Unknown runtime state counts as stopped.
fn running_containers(data_dir: &Path, ids: &BTreeSet<String>) -> usize {
    if ids.is_empty() {
        return 0;
    }
    let Ok(rt) = flotilla_runtime::Runtime::new(data_dir) else {
        return 0;
    };
    rt.list()
        .unwrap_or_default()
        .iter()
        .filter(|c| ids.contains(&c.id) && c.state == flotilla_runtime::ContainerState::Running)
        .count()
}

/// Ended containers of the stack's services that the agent keeps a while
/// for `logs` of crashed replicas: `down` removes them (and their rootfs
/// mounts) now. Single node: the agent shares our data dir.
fn remove_ended_containers(data_dir: &Path, services: &BTreeSet<String>) {
    let Ok(rt) = flotilla_runtime::Runtime::new(data_dir) else {
        return;
    };
    for c in rt.list().unwrap_or_default() {
        let ours = c
            .labels
            .get(flotilla_agent::LABEL_SERVICE)
            .is_some_and(|s| services.contains(s));
        if ours && c.state != flotilla_runtime::ContainerState::Running {
            if let Err(e) = rt.remove(&c.id, true) {
                eprintln!(
                    "warning: removing ended container {}: {e:#}",
                    &c.id[..12.min(c.id.len())]
                );
            }
        }
    }
}

/// The names of the stack's named volumes as the agent creates them:
/// `<stack>_<key>` for every `type: volume` mount with a source.
pub fn volume_names(stack: &str, records: &[ServiceRecord]) -> BTreeSet<String> {
    records
        .iter()
        .flat_map(|r| r.spec.volumes.iter())
        .filter(|m| m.kind == MountType::Volume)
        .filter_map(|m| m.source.as_ref())
        .map(|key| format!("{stack}_{key}"))
        .collect()
}

fn remove_volumes(data_dir: &Path, names: &BTreeSet<String>) -> anyhow::Result<()> {
    for name in names {
        flotilla_runtime::spec::validate_volume_name(name)?;
        let dir = data_dir.join("volumes").join(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => eprintln!("volume {name}: removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("removing volume {name} at {}: {e}", dir.display()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_spec::{Mount, Service};

    fn mount(kind: MountType, source: Option<&str>, target: &str) -> Mount {
        Mount {
            kind,
            source: source.map(str::to_string),
            target: target.into(),
            read_only: false,
            consistency: None,
            bind: None,
            volume: None,
            tmpfs: None,
        }
    }

    #[test]
    fn volume_names_come_from_volume_mounts() {
        let spec = Service {
            volumes: vec![
                mount(MountType::Volume, Some("data"), "/d"),
                mount(MountType::Bind, Some("/host"), "/h"),
                mount(MountType::Volume, None, "/anon"),
            ],
            ..Default::default()
        };
        let record = ServiceRecord {
            id: "s_db".into(),
            stack: "s".into(),
            name: "db".into(),
            version: 1,
            spec,
            previous: None,
            created_at: 0,
            updated_at: 0,
        };
        let names = volume_names("s", &[record]);
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["s_data".to_string()]
        );
    }
}
