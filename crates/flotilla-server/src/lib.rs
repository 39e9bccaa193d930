//! Flotilla's control plane: the HTTP/JSON API over the store, and the
//! controllers (node monitor, orchestrator, scheduler) that keep the stored
//! desired state true. Agents and users talk to it only through the API.
//!
//! One server for now (the embedded store is single-writer); the etcd
//! backend and leader election for the controllers come with the HA issue.

mod api;
mod auth;
mod controllers;
mod error;
mod events;
mod repo;
mod state;

pub use api::networks::NetworkPool;
pub use api::MAX_BODY;
pub use auth::TOKEN_FILE;

use flotilla_store::{EmbeddedStore, Store};
use state::AppState;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// A node that has not heartbeated for this long is marked down.
    pub node_ttl: Duration,
    /// The pool stack networks get their subnets from.
    pub networks: NetworkPool,
    /// Served at `/metrics` (Prometheus text format). `up` shares it with
    /// the in-process agent, whose proxy registers its counters there.
    pub metrics: SharedRegistry,
}

/// A metrics registry several components register into.
pub type SharedRegistry = std::sync::Arc<std::sync::Mutex<prometheus_client::registry::Registry>>;

impl NetworkPool {
    /// `FLOTILLA_NETWORK_POOL` (default 10.210.0.0/16) carved into
    /// `/FLOTILLA_NETWORK_PREFIX` networks (default 24).
    pub fn from_env() -> anyhow::Result<NetworkPool> {
        use flotilla_core::network::{
            check_carving, parse_pool, DEFAULT_POOL, DEFAULT_SUBNET_PREFIX,
        };
        let pool = std::env::var("FLOTILLA_NETWORK_POOL").unwrap_or_else(|_| DEFAULT_POOL.into());
        let pool = parse_pool(&pool).map_err(|e| anyhow::anyhow!("FLOTILLA_NETWORK_POOL: {e}"))?;
        let prefix = match std::env::var("FLOTILLA_NETWORK_PREFIX") {
            Ok(p) => p
                .trim()
                .trim_start_matches('/')
                .parse::<u8>()
                .map_err(|_| {
                    anyhow::anyhow!("FLOTILLA_NETWORK_PREFIX: {p:?} is not a prefix length like 24")
                })?,
            Err(_) => DEFAULT_SUBNET_PREFIX,
        };
        check_carving(pool, prefix).map_err(|e| anyhow::anyhow!("FLOTILLA_NETWORK_PREFIX: {e}"))?;
        Ok(NetworkPool { pool, prefix })
    }
}

pub struct RunningServer {
    pub addr: SocketAddr,
    /// The admin token, only when it was created by this start (print it once).
    pub new_token: Option<String>,
    stop: watch::Sender<bool>,
    http: JoinHandle<()>,
    controllers: JoinHandle<()>,
}

impl RunningServer {
    /// Stop serving and stop the controllers.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.controllers.await;
        let _ = self.http.await;
    }
}

pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&config.data_dir.join("store.redb"))?);
    let repo = repo::Repo::new(store);
    let new_token = auth::ensure_admin_token(&repo, &config.data_dir).await?;
    let state = AppState {
        repo,
        node_leases: Default::default(),
        kick: Default::default(),
        node_ttl: config.node_ttl,
        notes: Default::default(),
        networks: config.networks,
        metrics: config.metrics.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    let app = api::router(state.clone());
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        let shutdown = async move {
            let _ = http_stop.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "API server stopped");
        }
    });
    let controllers = tokio::spawn(controllers::run(state, stop_rx));
    Ok(RunningServer {
        addr,
        new_token,
        stop,
        http,
        controllers,
    })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new random object id: 25 lowercase hex characters, like Swarm's length.
pub fn new_id() -> String {
    let mut bytes = [0u8; 13];
    getrandom::fill(&mut bytes).expect("the OS provides randomness");
    let mut id = hex::encode(bytes);
    id.truncate(25);
    id
}
