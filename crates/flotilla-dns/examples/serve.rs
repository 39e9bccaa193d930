//! Serves a `DnsConfig` read from a JSON file until Ctrl-C: for poking at the server with
//! `dig`/`dnsperf` by hand.
//!
//! `cargo run -p flotilla-dns --example serve -- config.json`, where config.json is e.g.
//! `{"views":[{"name":"n","listen":["127.0.0.7:5300"],"records":{"api":["10.0.0.2"]}}],"upstreams":[]}`

use flotilla_dns::{DnsConfig, DnsServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: serve <config.json> (a flotilla_dns::DnsConfig as JSON)")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let config: DnsConfig =
        serde_json::from_str(&text).map_err(|e| format!("{path} is not a DnsConfig: {e}"))?;
    let server = DnsServer::new();
    for (addr, error) in server.apply(&config).await {
        eprintln!("cannot listen on {addr}: {error}");
    }
    for view in &config.views {
        for addr in &view.listen {
            if let Some(local) = server.local_addr(*addr) {
                eprintln!("view {:?} on {local}", view.name);
            }
        }
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
