//! The long-running roles: `flotilla server` (API + controllers),
//! `flotilla agent` (runs this node's tasks), and the hidden `serve-all`
//! (both in one process, what `up -d` starts in the background). `up` in the
//! foreground uses [`with_server_and_agent`] to run both in its own process.

use crate::cmd::stack::connect::{self, ApiArgs, DEFAULT_LISTEN};
use crate::context::Context;
use anyhow::Context as _;
use flotilla_client::Client;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A node that misses heartbeats this long is down (single machine: short).
pub const NODE_TTL: Duration = Duration::from_secs(3);
/// Written by `up -d` for the background server it starts; `down` reads it.
pub const PID_FILE: &str = "server.pid";
/// The background server's stdout/stderr.
pub const LOG_FILE: &str = "server.log";

#[derive(clap::Subcommand)]
#[command(defer = true)]
pub enum ServerCmd {
    /// Run the control plane (HTTP API and controllers) until interrupted.
    Server(ServerArgs),
    /// Run this node's agent against a server until interrupted.
    Agent(AgentArgs),
    /// Server and agent in one process (what `up -d` starts in the background).
    #[command(hide = true)]
    ServeAll(ServerArgs),
}

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Address to serve the API on (plain HTTP: keep it on loopback for now).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
}

#[derive(clap::Args)]
pub struct AgentArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Node hostname. Default: this machine's.
    #[arg(long)]
    hostname: Option<String>,
    /// KEY=VALUE node labels for placement constraints (repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
}

pub fn run(ctx: &Context, cmd: ServerCmd) -> anyhow::Result<u8> {
    let rt = crate::cmd::stack::runtime()?;
    match cmd {
        ServerCmd::Server(a) => rt.block_on(server_only(ctx, a)),
        ServerCmd::Agent(a) => rt.block_on(agent_only(ctx, a)),
        ServerCmd::ServeAll(a) => {
            let result = rt.block_on(with_server_and_agent(&ctx.data_dir, a.listen, |_| async {
                until_signal().await?;
                Ok(0)
            }));
            forget_pid_file(&ctx.data_dir);
            result
        }
    }
}

async fn server_only(ctx: &Context, args: ServerArgs) -> anyhow::Result<u8> {
    let server = start_server(&ctx.data_dir, args.listen, Default::default()).await?;
    eprintln!("flotilla server listening on http://{}", server.addr);
    if let Some(token) = &server.new_token {
        eprintln!(
            "admin token (also in {}): {token}",
            ctx.data_dir.join(flotilla_server::TOKEN_FILE).display()
        );
    }
    until_signal().await?;
    server.shutdown().await;
    Ok(0)
}

async fn agent_only(ctx: &Context, args: AgentArgs) -> anyhow::Result<u8> {
    let url = connect::server_url(args.api.server.as_deref())?;
    let token = connect::token(args.api.token.as_deref(), &ctx.data_dir);
    // A standalone agent's metrics are not served yet (no listener of its own).
    let mut config = agent_config(&url, &token, &ctx.data_dir, Default::default())?;
    if let Some(h) = args.hostname {
        config.hostname = h;
    }
    config.labels = parse_labels(&args.labels)?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let agent = flotilla_agent::run(config, stop_rx);
    tokio::pin!(agent);
    tokio::select! {
        r = &mut agent => { r?; anyhow::bail!("the agent stopped on its own"); }
        r = until_signal() => r?,
    }
    let _ = stop.send(true);
    agent.await?;
    Ok(0)
}

pub async fn start_server(
    data_dir: &Path,
    listen: SocketAddr,
    metrics: flotilla_server::SharedRegistry,
) -> anyhow::Result<flotilla_server::RunningServer> {
    flotilla_server::start(flotilla_server::ServerConfig {
        data_dir: data_dir.to_path_buf(),
        listen,
        node_ttl: NODE_TTL,
        networks: flotilla_server::NetworkPool::from_env()?,
        metrics,
    })
    .await
    .with_context(|| format!("starting the Flotilla server on {listen}"))
}

/// Run a server and this node's agent in this process while `driver` runs
/// (it gets a client with the admin token); then stop the agent (its
/// containers keep running) and the server. The agent future is polled
/// here rather than spawned, so it need not be `Send`.
pub async fn with_server_and_agent<F, Fut>(
    data_dir: &Path,
    listen: SocketAddr,
    driver: F,
) -> anyhow::Result<u8>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = anyhow::Result<u8>>,
{
    let metrics = flotilla_server::SharedRegistry::default();
    let server = start_server(data_dir, listen, metrics.clone()).await?;
    let url = format!("http://{}", server.addr);
    let token = connect::token(None, data_dir);
    let config = match agent_config(&url, &token, data_dir, metrics) {
        Ok(c) => c,
        Err(e) => {
            server.shutdown().await;
            return Err(e);
        }
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let agent = flotilla_agent::run(config, stop_rx);
    tokio::pin!(agent);
    let driver = driver(Client::new(&url, &token));
    tokio::pin!(driver);
    let outcome = tokio::select! {
        r = &mut agent => {
            server.shutdown().await;
            return Err(match r {
                Ok(()) => anyhow::anyhow!("the agent stopped on its own"),
                Err(e) => e.context("the agent failed"),
            });
        }
        r = &mut driver => r,
    };
    let _ = stop.send(true);
    if let Err(e) = agent.await {
        eprintln!("warning: the agent did not stop cleanly: {e:#}");
    }
    server.shutdown().await;
    outcome
}

pub fn agent_config(
    url: &str,
    token: &str,
    data_dir: &Path,
    metrics: flotilla_server::SharedRegistry,
) -> anyhow::Result<flotilla_agent::AgentConfig> {
    let network = flotilla_net::BridgeNetwork::try_default_from_env()
        .context("choosing the node's bridge network")?;
    Ok(flotilla_agent::AgentConfig {
        server: url.to_string(),
        token: token.to_string(),
        data_dir: data_dir.to_path_buf(),
        hostname: local_hostname(),
        labels: BTreeMap::new(),
        network,
        metrics,
    })
}

/// This machine's name: /etc/hostname, else the kernel's, else "localhost".
pub fn local_hostname() -> String {
    ["/etc/hostname", "/proc/sys/kernel/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn parse_labels(labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--label {l:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// Ctrl-C or SIGTERM.
pub async fn until_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

pub fn pid_file(data_dir: &Path) -> PathBuf {
    data_dir.join(PID_FILE)
}

/// Remove the pid file if it names this process (a newer server may own it).
fn forget_pid_file(data_dir: &Path) {
    let path = pid_file(data_dir);
    if read_pid(&path) == Some(std::process::id() as i32) {
        let _ = std::fs::remove_file(path);
    }
}

pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Start `flotilla serve-all` detached (own session, output to the log file)
/// and record its pid, for `up -d` on a machine without a server.
pub fn spawn_background(data_dir: &Path, listen: SocketAddr) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let log_path = data_dir.join(LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the flotilla executable")?;
    // Absolute, so `down` (maybe from another directory) recognises it.
    let abs_dir = std::fs::canonicalize(data_dir)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--data-dir")
        .arg(&abs_dir)
        .arg("serve-all")
        .arg("--listen")
        .arg(listen.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the child only calls it before exec,
    // so the server leaves our session and survives the terminal closing.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd.spawn().context("starting the background server")?;
    let pid = child.id();
    std::fs::write(pid_file(data_dir), format!("{pid}\n"))
        .context("writing the background server's pid file")?;
    // The child is detached: nobody waits for it here; dropping the handle
    // does not kill it.
    drop(child);
    Ok(pid)
}

/// Whether a process with this pid exists (signal 0 probes without sending).
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Stop the background server recorded in the pid file: SIGTERM, then wait
/// (bounded) for it to exit. Returns whether one was running.
pub async fn stop_background(data_dir: &Path) -> anyhow::Result<bool> {
    let path = pid_file(data_dir);
    let Some(pid) = read_pid(&path) else {
        return Ok(false);
    };
    // Pids are reused: signal only a live `serve-all` of this data dir.
    if pid <= 1 || !alive(pid) || !is_serve_all_of(pid, data_dir) {
        let _ = std::fs::remove_file(&path);
        return Ok(false);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .with_context(|| format!("stopping the background server (pid {pid})"))?;
    for _ in 0..100 {
        if !alive(pid) || is_zombie(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_file(&path);
    Ok(true)
}

/// A zombie has exited but waits for its parent to reap it: as good as gone.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Whether the process runs `flotilla … serve-all` for this data dir.
fn is_serve_all_of(pid: i32, data_dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            let abs = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
            let dir = abs.as_os_str().as_encoded_bytes();
            args.contains(&&b"serve-all"[..]) && args.contains(&dir)
        })
        .unwrap_or(false)
}
