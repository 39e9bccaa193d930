//! Read-only views: `ps`, `services`, `inspect`, `events`.

use super::connect::{self, OrExplain};
use super::status::{format_ms, mode_name, service_candidates, short_id, since_ms, task_name};
use super::{project_of, Common, StackFileArgs};
use crate::context::Context;
use flotilla_client::{Client, ClientError, ServiceView};
use flotilla_core::objects::EventRecord;
use flotilla_core::Task;
use std::collections::BTreeMap;

#[derive(clap::Args)]
pub struct PsArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    files: StackFileArgs,
    /// Also show tasks that ended.
    #[arg(short = 'a', long)]
    all: bool,
}

#[derive(clap::Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    files: StackFileArgs,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    #[command(flatten)]
    common: Common,
    /// A service (name in the stack, or full id) or a task id (prefix).
    target: String,
}

#[derive(clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    common: Common,
    /// Keep printing new events as they happen.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only events since an RFC 3339 time or a duration ago (5m).
    #[arg(long)]
    since: Option<String>,
}

pub async fn ps(ctx: &Context, args: PsArgs) -> anyhow::Result<u8> {
    let stack = project_of(&args.common.project, Some(&args.files))?;
    let client = connect::client(&args.common.api, &ctx.data_dir)?;
    let services = client
        .services(stack.as_deref())
        .await
        .or_explain(&client)?;
    let ids: Vec<&str> = services.iter().map(|s| s.record.id.as_str()).collect();
    let tasks: Vec<Task> = client
        .tasks(None, args.all)
        .await
        .or_explain(&client)?
        .into_iter()
        .filter(|t| ids.contains(&t.service.as_str()))
        .collect();
    if ctx.print_json(&tasks)? {
        return Ok(0);
    }
    let nodes: BTreeMap<String, String> = client
        .nodes()
        .await
        .or_explain(&client)?
        .into_iter()
        .map(|n| (n.id, n.hostname))
        .collect();
    let mut rows = vec![[
        "TASK ID",
        "NAME",
        "STATE",
        "HEALTH",
        "NODE",
        "CONTAINER",
        "MESSAGE",
    ]
    .map(String::from)
    .to_vec()];
    for t in &tasks {
        let node = t.node.as_ref().map(|n| {
            nodes
                .get(n)
                .cloned()
                .unwrap_or_else(|| short_id(n).to_string())
        });
        rows.push(vec![
            short_id(&t.id).to_string(),
            task_name(t),
            t.state.to_string(),
            serde_json::to_value(t.health)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            node.unwrap_or_else(|| "-".into()),
            t.container_id
                .as_deref()
                .map(short_id)
                .unwrap_or("-")
                .to_string(),
            t.message.clone(),
        ]);
    }
    print_table(&rows);
    Ok(0)
}

pub async fn services(ctx: &Context, args: ServicesArgs) -> anyhow::Result<u8> {
    let stack = project_of(&args.common.project, Some(&args.files))?;
    let client = connect::client(&args.common.api, &ctx.data_dir)?;
    let services = client
        .services(stack.as_deref())
        .await
        .or_explain(&client)?;
    if ctx.print_json(&services)? {
        return Ok(0);
    }
    let mut rows = vec![[
        "ID", "NAME", "MODE", "REPLICAS", "HEALTHY", "IMAGE", "PROBLEM",
    ]
    .map(String::from)
    .to_vec()];
    for s in &services {
        rows.push(vec![
            short_id(&s.record.id).to_string(),
            s.record.id.clone(),
            mode_name(s).to_string(),
            format!("{}/{}", s.status.running, s.status.desired),
            format!("{}/{}", s.status.healthy, s.status.desired),
            s.record.spec.image.clone().unwrap_or_default(),
            s.status.problem.clone().unwrap_or_default(),
        ]);
    }
    print_table(&rows);
    Ok(0)
}

pub async fn inspect(ctx: &Context, args: InspectArgs) -> anyhow::Result<u8> {
    let project = project_of(&args.common.project, None)?;
    let client = connect::client(&args.common.api, &ctx.data_dir)?;
    let value = match find_service(&client, &args.target, project.as_deref()).await? {
        Some(service) => serde_json::to_value(service)?,
        None => match client.task(&args.target).await {
            Ok(task) => serde_json::to_value(task)?,
            Err(e) if is_not_found(&e) => anyhow::bail!(
                "no service or task {:?}{}: see `flotilla services` and `flotilla ps`",
                args.target,
                project
                    .map(|p| format!(" in stack {p}"))
                    .unwrap_or_default()
            ),
            Err(e) => return Err(connect::explain(e, client.base())),
        },
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(0)
}

/// A service by name in the project (`web` → `stack_web`) or by full id;
/// None when no such service exists.
pub async fn find_service(
    client: &Client,
    arg: &str,
    project: Option<&str>,
) -> anyhow::Result<Option<ServiceView>> {
    for id in service_candidates(arg, project) {
        match client.service(&id).await {
            Ok(v) => return Ok(Some(v)),
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(connect::explain(e, client.base())),
        }
    }
    Ok(None)
}

pub fn is_not_found(e: &ClientError) -> bool {
    e.status().map(|s| s.as_u16()) == Some(404)
}

pub async fn events(ctx: &Context, args: EventsArgs) -> anyhow::Result<u8> {
    let since = since_ms(args.since.as_deref())?;
    let client = connect::client(&args.common.api, &ctx.data_dir)?;
    let json = ctx.output == crate::context::OutputFormat::Json;
    if !args.follow {
        let events = client.events(since).await.or_explain(&client)?;
        if !ctx.print_json(&events)? {
            for e in &events {
                println!("{}", event_line(e));
            }
        }
        return Ok(0);
    }
    // Following prints one JSON object per line (NDJSON) in JSON mode.
    let mut stream = client
        .stream(&format!("/v1/events?follow=true&since={since}"))
        .await
        .or_explain(&client)?;
    let interrupted = crate::cmd::server::until_signal();
    tokio::pin!(interrupted);
    loop {
        let next = tokio::select! {
            r = &mut interrupted => { r?; return Ok(0); }
            n = stream.next() => n.or_explain(&client)?,
        };
        let Some(value) = next else {
            anyhow::bail!("the server closed the event stream");
        };
        if json {
            println!("{}", serde_json::to_string(&value)?);
        } else {
            match serde_json::from_value::<EventRecord>(value.clone()) {
                Ok(e) => println!("{}", event_line(&e)),
                Err(_) => println!("{value}"),
            }
        }
    }
}

fn event_line(e: &EventRecord) -> String {
    format!(
        "{} {} {} {}: {}",
        format_ms(e.time),
        e.kind,
        e.action,
        e.id,
        e.message
    )
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}
