//! `flotilla scale web=5 api=2` and `flotilla restart web`.

use super::connect::{self, OrExplain};
use super::status::parse_scale;
use super::view::find_service;
use super::watch::{self, Scope};
use super::{project_of, Common, StackFileArgs};
use crate::context::Context;
use crate::progress::Progress;
use flotilla_client::Client;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    files: StackFileArgs,
    /// Return at once instead of waiting for the new counts.
    #[arg(short = 'd', long)]
    detach: bool,
    /// How long to wait for the services to converge before failing.
    #[arg(long, default_value = "120s", value_parser = watch::parse_timeout)]
    wait_timeout: Duration,
    /// SERVICE=REPLICAS pairs (names in the stack, or full service ids).
    #[arg(required = true)]
    pairs: Vec<String>,
}

#[derive(clap::Args)]
pub struct RestartArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    files: StackFileArgs,
    /// The service (name in the stack, or full id).
    service: String,
}

pub async fn scale(ctx: &Context, args: ScaleArgs) -> anyhow::Result<u8> {
    let pairs = parse_scale(&args.pairs)?;
    let project = project_of(&args.common.project, Some(&args.files))?;
    let client = connect::client(&args.common.api, &ctx.data_dir)?;
    let mut ids = Vec::new();
    for (name, replicas) in &pairs {
        let id = resolve(&client, name, project.as_deref()).await?;
        client.scale(&id, *replicas).await.or_explain(&client)?;
        eprintln!("{id} scaled to {replicas}");
        ids.push(id);
    }
    if args.detach {
        return Ok(0);
    }
    let mut progress = Progress::stderr();
    match watch::until_ready(
        &client,
        &Scope::Services(ids),
        args.wait_timeout,
        &mut progress,
    )
    .await
    {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(1)
        }
    }
}

pub async fn restart(ctx: &Context, args: RestartArgs) -> anyhow::Result<u8> {
    let project = project_of(&args.common.project, Some(&args.files))?;
    let client = connect::client(&args.common.api, &ctx.data_dir)?;
    let id = resolve(&client, &args.service, project.as_deref()).await?;
    let result = client.restart(&id).await.or_explain(&client)?;
    if !ctx.print_json(&result)? {
        eprintln!("{id}: restarting every task");
    }
    Ok(0)
}

async fn resolve(client: &Client, name: &str, project: Option<&str>) -> anyhow::Result<String> {
    match find_service(client, name, project).await? {
        Some(v) => Ok(v.record.id),
        None => anyhow::bail!(
            "no service {name:?}{}: see `flotilla services`",
            project
                .map(|p| format!(" in stack {p}"))
                .unwrap_or_default()
        ),
    }
}
