//! Flotilla's node agent. It registers with the server, heartbeats, follows
//! its assignment stream, and makes the node's containers match it: starts
//! assigned tasks through `flotilla-runtime`, stops tasks asked to stop,
//! watches exits, probes health, and reports every state change back through
//! the API. Its containers outlive it; on restart it re-adopts them by label.
//!
//! The runtime's API is blocking (it forks monitor processes), so every call
//! into it runs on tokio's blocking pool.

mod container_spec;
mod dataplane;
mod executor;
pub mod health;
pub mod traffic;

pub use container_spec::{container_name, container_spec, LABEL_SERVICE, LABEL_SLOT, LABEL_TASK};
pub use dataplane::bridge_of;

use flotilla_client::{Client, ClientError, Registration};
use flotilla_core::Task;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub struct AgentConfig {
    /// Server base URL, e.g. `http://127.0.0.1:7443`.
    pub server: String,
    pub token: String,
    /// The node's data dir (images, containers, volumes, agent state).
    pub data_dir: PathBuf,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    /// The node's default bridge (`network_mode: bridge`); services are on
    /// their stack networks.
    pub network: flotilla_net::BridgeNetwork,
    /// Where the data plane registers its metrics (the proxy's per-service
    /// and per-replica counters); whoever serves `/metrics` encodes it.
    pub metrics: Arc<std::sync::Mutex<prometheus_client::registry::Registry>>,
}

/// Run until `stop` turns true. Containers keep running after it returns.
pub async fn run(config: AgentConfig, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let runtime = flotilla_runtime::Runtime::new(&config.data_dir)?;
    let client = Client::new(&config.server, &config.token);
    let id_file = config.data_dir.join("agent").join("node-id");
    let dataplane = Arc::new(dataplane::DataPlane::new(
        client.clone(),
        &config.data_dir,
        &mut config.metrics.lock().unwrap(),
    )?);
    let agent = Arc::new(executor::Executor::new(
        client.clone(),
        runtime,
        config.network.clone(),
        dataplane.clone(),
        &config.data_dir,
    ));
    // The data plane runs as soon as the agent does: after a restart the
    // proxy and DNS come back before any assignment arrives.
    let dataplane_loop = tokio::spawn(dataplane.run(stop.clone()));

    let Some((node, interval)) = register(&client, &config, &id_file, &mut stop).await? else {
        return Ok(());
    };
    tracing::info!(node = %node, "agent registered");
    let heartbeats = tokio::spawn(heartbeat_loop(
        client.clone(),
        node.clone(),
        interval,
        register_args(&config, &id_file),
        stop.clone(),
    ));

    let mut last: Vec<Task> = Vec::new();
    let assignments = format!("/v1/nodes/{node}/assignments");
    'outer: loop {
        let stream = tokio::select! {
            _ = stop.changed() => break 'outer,
            s = client.stream(&assignments) => s,
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the assignment stream; retrying");
                tokio::select! {
                    _ = stop.changed() => break 'outer,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        loop {
            let line = tokio::select! {
                _ = stop.changed() => break 'outer,
                line = stream.next() => line,
            };
            match line {
                Ok(Some(value)) => {
                    // `{}` is the server's keep-alive: re-check the last list
                    // (catches an exit whose report failed).
                    if let Some(tasks) = value.get("tasks") {
                        match serde_json::from_value::<Vec<Task>>(tasks.clone()) {
                            Ok(tasks) => last = tasks,
                            Err(e) => tracing::warn!(error = %e, "bad assignment line"),
                        }
                    }
                    agent.reconcile(&last).await;
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
    heartbeats.abort();
    dataplane_loop.abort();
    Ok(())
}

struct RegisterArgs {
    registration: Registration,
    id_file: PathBuf,
}

fn register_args(config: &AgentConfig, id_file: &std::path::Path) -> RegisterArgs {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    RegisterArgs {
        registration: Registration {
            id: std::fs::read_to_string(id_file)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            hostname: config.hostname.clone(),
            address: "127.0.0.1:0".into(),
            labels: config.labels.clone(),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            nano_cpus: cpus * 1_000_000_000,
            memory_bytes: total_memory(),
        },
        id_file: id_file.to_path_buf(),
    }
}

fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

async fn register_once(
    client: &Client,
    args: &RegisterArgs,
) -> Result<(String, Duration), ClientError> {
    let registered = client.register(&args.registration).await?;
    let id = registered.node.id;
    if let Some(dir) = args.id_file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // The id must survive restarts so the node keeps its tasks.
    if let Err(e) = std::fs::write(&args.id_file, &id) {
        tracing::warn!(error = %e, "cannot persist the node id");
    }
    Ok((id, Duration::from_millis(registered.heartbeat_interval_ms)))
}

async fn register(
    client: &Client,
    config: &AgentConfig,
    id_file: &std::path::Path,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<(String, Duration)>> {
    let args = register_args(config, id_file);
    let mut wait = Duration::from_millis(100);
    loop {
        match register_once(client, &args).await {
            Ok(r) => return Ok(Some(r)),
            Err(e @ ClientError::Api { .. }) if e.status().is_some_and(|s| s.is_client_error()) => {
                anyhow::bail!("the server refused this agent: {e}")
            }
            Err(e) => tracing::warn!(error = %e, "cannot register yet; retrying"),
        }
        tokio::select! {
            _ = stop.changed() => return Ok(None),
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

async fn heartbeat_loop(
    client: Client,
    mut node: String,
    interval: Duration,
    mut args: RegisterArgs,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match client.heartbeat(&node).await {
            Ok(()) => {}
            // The server lost our lease (it restarted, or we were silent too long): register again.
            Err(e) if e.status() == Some(reqwest_status_not_found()) => {
                args.registration.id = Some(node.clone());
                match register_once(&client, &args).await {
                    Ok((id, _)) => node = id,
                    Err(e) => tracing::warn!(error = %e, "re-registration failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

fn reqwest_status_not_found() -> flotilla_client::StatusCode {
    flotilla_client::StatusCode::NOT_FOUND
}
