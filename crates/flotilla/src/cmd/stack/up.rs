//! `flotilla up`: deploy a stack file. To a server that answers at the URL
//! if there is one; otherwise with an embedded server and agent in this
//! process (foreground), or a background `serve-all` process (`-d`).

use super::connect::{self, answers, ApiArgs, OrExplain};
use super::watch::{self, Scope};
use super::{load_stack, ProjectArg, StackFileArgs};
use crate::cmd::server;
use crate::context::Context;
use crate::progress::Progress;
use flotilla_client::Client;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    files: StackFileArgs,
    #[command(flatten)]
    project: ProjectArg,
    #[command(flatten)]
    api: ApiArgs,
    /// Deploy and return, leaving the stack running (starts a background
    /// server when none answers).
    #[arg(short = 'd', long)]
    detach: bool,
    /// With -d: return only once every service is running and healthy.
    #[arg(long, requires = "detach")]
    wait: bool,
    /// How long --wait waits before failing with each service's problem.
    #[arg(long, default_value = "120s", value_parser = watch::parse_timeout)]
    wait_timeout: Duration,
    /// Where a server started by `up` listens. Default: the --server address.
    #[arg(long)]
    listen: Option<String>,
}

/// How long `up -d` waits for the background server to answer.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(ctx: &Context, args: UpArgs) -> anyhow::Result<u8> {
    let stack = load_stack(&args.files, args.project.project.as_deref())?;
    let url = connect::server_url(args.api.server.as_deref())?;
    let listen = connect::listen_addr(args.listen.as_deref(), &url)?;
    let data_dir = ctx.data_dir.clone();
    super::runtime()?.block_on(async move {
        let client = Client::new(&url, &connect::token(args.api.token.as_deref(), &data_dir));
        if answers(&client).await {
            return if args.detach {
                detached(ctx, &client, &stack, &args).await
            } else {
                foreground(ctx, &client, &stack).await
            };
        }
        if args.detach {
            let client = start_background(&data_dir, listen, args.api.token.as_deref()).await?;
            return detached(ctx, &client, &stack, &args).await;
        }
        eprintln!("no server at {url}: running an embedded server and agent on {listen} (Ctrl-C stops the stack)");
        server::with_server_and_agent(&data_dir, listen, |client| async move {
            foreground(ctx, &client, &stack).await
        })
        .await
    })
}

async fn deploy(
    ctx: &Context,
    client: &Client,
    stack: &flotilla_spec::Stack,
) -> anyhow::Result<()> {
    let report = client.deploy(stack).await.or_explain(client)?;
    if !ctx.print_json(&report)? {
        for (service, outcome) in &report.services {
            eprintln!("service {}_{service}: {outcome}", report.stack);
        }
    }
    Ok(())
}

async fn detached(
    ctx: &Context,
    client: &Client,
    stack: &flotilla_spec::Stack,
    args: &UpArgs,
) -> anyhow::Result<u8> {
    deploy(ctx, client, stack).await?;
    if !args.wait {
        return Ok(0);
    }
    let mut progress = Progress::stderr();
    match watch::until_ready(
        client,
        &Scope::Stack(stack.name.clone()),
        args.wait_timeout,
        &mut progress,
    )
    .await
    {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: stack {}: {e:#}", stack.name);
            Ok(1)
        }
    }
}

/// Deploy, then show progress until Ctrl-C; then remove the stack and wait
/// for its tasks to stop.
async fn foreground(
    ctx: &Context,
    client: &Client,
    stack: &flotilla_spec::Stack,
) -> anyhow::Result<u8> {
    deploy(ctx, client, stack).await?;
    let scope = Scope::Stack(stack.name.clone());
    let mut progress = Progress::stderr();
    let interrupted = server::until_signal();
    tokio::pin!(interrupted);
    loop {
        // A failed poll is shown, not fatal: the server may be busy.
        match watch::snapshot(client, &scope).await {
            Ok(snap) => watch::render(&mut progress, &snap),
            Err(e) => progress.note(&format!("warning: {e:#}")),
        }
        tokio::select! {
            r = &mut interrupted => { r?; break; }
            _ = tokio::time::sleep(watch::POLL) => {}
        }
    }
    progress.note(&format!("stopping stack {}…", stack.name));
    super::down::remove_and_wait(client, &stack.name, &ctx.data_dir, &mut progress).await?;
    Ok(0)
}

/// Start `serve-all` in the background and wait until it answers; returns a
/// client for it (with the admin token it created).
async fn start_background(
    data_dir: &Path,
    listen: std::net::SocketAddr,
    token: Option<&str>,
) -> anyhow::Result<Client> {
    let pid = server::spawn_background(data_dir, listen)?;
    let url = format!("http://{listen}");
    eprintln!(
        "started a background server (pid {pid}) on {url}; log: {}",
        data_dir.join(server::LOG_FILE).display()
    );
    let start = Instant::now();
    loop {
        // The token file appears once the server has started.
        let client = Client::new(&url, &connect::token(token, data_dir));
        if answers(&client).await {
            return Ok(client);
        }
        if !server::alive(pid as i32) || start.elapsed() > SERVER_START_TIMEOUT {
            let log = std::fs::read_to_string(data_dir.join(server::LOG_FILE)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow::bail!(
                "the background server did not start answering on {url}; its log ends with:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
