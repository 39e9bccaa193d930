//! `flotilla logs [-f] [--tail N] [--since 5m] SERVICE|TASK`: the API says
//! which containers belong to the target; their logs are read from this
//! node's runtime (single node for now: the agent shares the data dir).

use super::connect::{self, OrExplain};
use super::status::{short_id, task_name};
use super::view::{find_service, is_not_found};
use super::Common;
use crate::context::{Context, OutputFormat};
use flotilla_core::Task;
use flotilla_runtime::{LogOptions, Runtime};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(clap::Args)]
pub struct LogsArgs {
    #[command(flatten)]
    common: Common,
    /// Keep printing new output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only the last N lines of each task.
    #[arg(long)]
    tail: Option<usize>,
    /// Only lines since an RFC 3339 time or a duration ago (5m).
    #[arg(long)]
    since: Option<String>,
    /// A service (name in the stack, or full id) or a task id (prefix).
    target: String,
}

pub async fn run(ctx: &Context, args: LogsArgs) -> anyhow::Result<u8> {
    let since = args
        .since
        .as_deref()
        .map(flotilla_runtime::spec::parse_since_now)
        .transpose()?;
    let project = super::project_of(&args.common.project, None)?;
    let client = connect::client(&args.common.api, &ctx.data_dir)?;
    let (tasks, prefixed) = match find_service(&client, &args.target, project.as_deref()).await? {
        Some(service) => {
            let tasks = client
                .tasks(Some(&service.record.id), true)
                .await
                .or_explain(&client)?;
            (tasks, true)
        }
        None => match client.task(&args.target).await {
            Ok(t) => (vec![t], false),
            Err(e) if is_not_found(&e) => anyhow::bail!(
                "no service or task {:?}: see `flotilla services` and `flotilla ps -a`",
                args.target
            ),
            Err(e) => return Err(connect::explain(e, client.base())),
        },
    };
    let sources: Vec<(String, String)> = tasks
        .iter()
        .filter_map(|t| Some((prefix(t), t.container_id.clone()?)))
        .collect();
    if sources.is_empty() {
        eprintln!("{}: no task has a container yet", args.target);
        return Ok(0);
    }
    let opts = LogOptions {
        follow: args.follow,
        tail: args.tail,
        since,
    };
    let json = ctx.output == OutputFormat::Json;
    let data_dir = ctx.data_dir.clone();
    // Reading logs blocks (following waits on inotify): one thread per
    // container, all writing whole lines through one lock.
    tokio::task::spawn_blocking(move || print_all(data_dir, sources, opts, prefixed, json)).await?
}

/// `stack_web.2@0123456789ab | ` like `docker service logs`.
fn prefix(t: &Task) -> String {
    format!("{}@{} | ", task_name(t), short_id(&t.id))
}

fn print_all(
    data_dir: PathBuf,
    sources: Vec<(String, String)>,
    opts: LogOptions,
    prefixed: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let rt = Arc::new(Runtime::new(&data_dir)?);
    let out = Arc::new(Mutex::new(()));
    let mut threads = Vec::new();
    for (prefix, container) in sources {
        let rt = rt.clone();
        let opts = opts.clone();
        let out = out.clone();
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let stream = match rt.logs(&container, opts) {
                Ok(s) => s,
                // A removed container of an ended task has no logs left.
                Err(e) => {
                    eprintln!("{prefix}(no logs: {e:#})");
                    return Ok(());
                }
            };
            for entry in stream {
                let entry = entry?;
                let _guard = out.lock().unwrap_or_else(|p| p.into_inner());
                if json {
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "{}", serde_json::to_string(&entry)?)?;
                    stdout.flush()?;
                    continue;
                }
                let line = if prefixed {
                    format!("{prefix}{}", entry.log)
                } else {
                    entry.log.clone()
                };
                if entry.stream == "stderr" {
                    let mut e = std::io::stderr().lock();
                    e.write_all(line.as_bytes())?;
                    e.flush()?;
                } else {
                    let mut o = std::io::stdout().lock();
                    o.write_all(line.as_bytes())?;
                    o.flush()?;
                }
            }
            Ok(())
        }));
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a log reader thread panicked"))??;
    }
    Ok(0)
}
