//! `flotilla internal proxy --config FILE.json` (hidden): runs the node proxy
//! alone on a `ProxyConfig` file, re-reads it on SIGHUP, exits 0 on SIGTERM
//! or SIGINT. The benchmark uses it; the agent embeds `flotilla_proxy`
//! directly.

use anyhow::Context as _;
use flotilla_proxy::{Proxy, ProxyConfig};
use std::path::Path;
use tokio::signal::unix::{signal, SignalKind};

fn read_config(path: &Path) -> anyhow::Result<ProxyConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading proxy config {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "parsing proxy config {} (expected ProxyConfig JSON: {{\"listeners\": [...]}})",
            path.display()
        )
    })
}

async fn apply(proxy: &Proxy, cfg: &ProxyConfig) {
    for (name, err) in proxy.apply(cfg).await {
        eprintln!("flotilla proxy: listener {name}: {err}");
    }
}

pub fn run(config: &Path) -> anyhow::Result<u8> {
    // Fail before starting anything when the first config is unusable.
    let cfg = read_config(config)?;
    // Only signals and `apply` run here: the proxy serves on its own threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        let mut registry = flotilla_proxy::prometheus_client::registry::Registry::default();
        let proxy = Proxy::new(&mut registry).context("starting the proxy threads")?;
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        apply(&proxy, &cfg).await;
        loop {
            tokio::select! {
                _ = hup.recv() => match read_config(config) {
                    Ok(cfg) => apply(&proxy, &cfg).await,
                    // Keep serving the last good config.
                    Err(e) => eprintln!("flotilla proxy: {e:#}; keeping the previous config"),
                },
                _ = term.recv() => return Ok(0),
                _ = int.recv() => return Ok(0),
            }
        }
    })
}
