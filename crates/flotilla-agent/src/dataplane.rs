//! The node's data plane: stack-network bridges with their VIPs, isolation
//! rules between networks, the embedded DNS server and the load-balancing
//! proxy, all kept equal to a [`TrafficPlan`] computed from the server's
//! networking view.
//!
//! Level-triggered: `refresh` fetches the whole view and applies the whole
//! plan, every second and whenever the executor saw something change (a
//! task started, its health changed, it is about to stop). Each apply is
//! idempotent, so a missed kick costs at most a second.
//!
//! Draining: before a task's container is stopped, the executor calls
//! [`DataPlane::drain`]; the task leaves DNS and every proxy endpoint set at
//! once, and `drain` returns when the proxy has no request or connection in
//! flight to it, or when the grace period is over.

use crate::traffic::{plan, TrafficPlan, DNS_PORT};
use anyhow::Context as _;
use flotilla_client::Client;
use flotilla_core::network::{NetworkRecord, Networking};
use flotilla_dns::DnsServer;
use flotilla_net::{BridgeNetwork, NetManager};
use flotilla_proxy::Proxy;
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// How often the plan is re-applied without a kick.
const RESYNC: Duration = Duration::from_secs(1);
/// Stack networks with the VIPs this node owns on each (a plan's part).
type NetworksWithVips = Vec<(NetworkRecord, Vec<std::net::Ipv4Addr>)>;

/// How often unchanged bridges, VIPs and isolation rules are re-applied.
const LINKS_RESYNC: Duration = Duration::from_secs(30);

pub struct DataPlane {
    client: Client,
    net: Arc<NetManager>,
    proxy: Proxy,
    dns: DnsServer,
    /// Tasks being stopped on purpose: out of DNS and the proxy.
    draining: Mutex<HashSet<String>>,
    /// Tasks whose last health probe failed: out until a probe passes
    /// (readiness acts on the first failure; replacement waits for `retries`).
    failing: Mutex<HashSet<String>>,
    /// The last view fetched (containers' networks are read from it).
    view: Mutex<Option<Networking>>,
    /// The last plan applied, to log bind errors once per change.
    applied: Mutex<Option<TrafficPlan>>,
    /// The networks whose links and rules were last applied, and when.
    links_done: Mutex<Option<(NetworksWithVips, Instant)>>,
    /// Serialises refreshes; a caller that must see its change applied
    /// (drain) runs one itself.
    refreshing: tokio::sync::Mutex<()>,
    kick: Notify,
    dns_port: u16,
}

impl DataPlane {
    /// Must be called inside a tokio runtime (the proxy and DNS spawn on it).
    pub fn new(
        client: Client,
        data_dir: &Path,
        registry: &mut prometheus_client::registry::Registry,
    ) -> anyhow::Result<DataPlane> {
        let dns_port = std::env::var("FLOTILLA_DNS_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(DNS_PORT);
        let dns = DnsServer::new();
        dns.register_metrics(registry);
        Ok(DataPlane {
            client,
            net: Arc::new(NetManager::new(&data_dir.join("net"))?),
            proxy: Proxy::new(registry).context("starting the proxy threads")?,
            dns,
            draining: Default::default(),
            failing: Default::default(),
            view: Default::default(),
            applied: Default::default(),
            links_done: Default::default(),
            refreshing: Default::default(),
            kick: Notify::new(),
            dns_port,
        })
    }

    /// Re-apply every second and on every kick, until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::debug!(error = %format!("{e:#}"), "data plane refresh failed; retrying");
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(RESYNC) => {}
            }
        }
    }

    /// Ask for a refresh soon (health or task state changed).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Fetch the view, compute the plan, apply it.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let _one_at_a_time = self.refreshing.lock().await;
        let view = self.client.networking().await?;
        let plan = plan(&view, &self.excluded(&view), self.dns_port);
        *self.view.lock().unwrap() = Some(view);
        self.apply(plan).await;
        Ok(())
    }

    async fn apply(&self, plan: TrafficPlan) {
        let changed = self.applied.lock().unwrap().as_ref() != Some(&plan);
        // Links and rules cost netlink calls and an `nft` process: redo them
        // when the networks changed, after a failure, and every LINKS_RESYNC
        // (someone may have deleted a bridge) — not on every refresh.
        let links_due = {
            let done = self.links_done.lock().unwrap();
            match done.as_ref() {
                Some((nets, at)) => *nets != plan.networks || at.elapsed() >= LINKS_RESYNC,
                None => true,
            }
        };
        if links_due {
            if self.apply_links(&plan, changed).await {
                *self.links_done.lock().unwrap() = Some((plan.networks.clone(), Instant::now()));
            } else {
                *self.links_done.lock().unwrap() = None;
            }
        }
        for (name, e) in self.proxy.apply(&plan.proxy).await {
            if changed {
                tracing::warn!(listener = %name, error = %e, "proxy cannot listen");
            }
        }
        for (addr, e) in self.dns.apply(&plan.dns).await {
            if changed {
                tracing::warn!(%addr, error = %e, "DNS cannot listen");
            }
        }
        *self.applied.lock().unwrap() = Some(plan);
    }

    /// Bridges with their VIPs, removed stacks' bridges, isolation rules.
    /// True when everything was applied.
    async fn apply_links(&self, plan: &TrafficPlan, changed: bool) -> bool {
        // Bridges and VIPs first: the DNS and the proxy bind to their addresses.
        let bridges: Vec<BridgeNetwork> = plan.networks.iter().map(|(n, _)| bridge_of(n)).collect();
        let with_vips: Vec<(BridgeNetwork, Vec<std::net::Ipv4Addr>)> = plan
            .networks
            .iter()
            .map(|(n, vips)| (bridge_of(n), vips.clone()))
            .collect();
        // Networks of removed stacks: their bridges go (their containers are gone).
        let gone: Vec<BridgeNetwork> = self
            .applied
            .lock()
            .unwrap()
            .as_ref()
            .map(|old| {
                old.networks
                    .iter()
                    .filter(|(n, _)| !plan.networks.iter().any(|(m, _)| m.name == n.name))
                    .map(|(n, _)| bridge_of(n))
                    .collect()
            })
            .unwrap_or_default();
        let net = self.net.clone();
        let links = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            for (bridge, vips) in &with_vips {
                net.set_vips(bridge, vips)?;
            }
            for bridge in &gone {
                net.remove_bridge(bridge)?;
            }
            if bridges.is_empty() {
                net.clear_isolation()?;
            } else {
                net.set_isolation(&bridges)?;
            }
            Ok(())
        })
        .await;
        match links {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                if changed {
                    tracing::warn!(error = %format!("{e:#}"), "network setup");
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "network setup task failed");
                false
            }
        }
    }

    /// The bridges a service's containers join, in the service's order
    /// (the first one carries the default route). None when the view does
    /// not know the service yet.
    pub async fn networks_of(&self, service: &str) -> Option<Vec<BridgeNetwork>> {
        let known = |view: &Networking| -> Option<Vec<BridgeNetwork>> {
            let svc = view.services.iter().find(|s| s.id == service)?;
            svc.aliases
                .keys()
                .map(|name| {
                    view.networks
                        .iter()
                        .find(|n| &n.name == name)
                        .map(bridge_of)
                })
                .collect()
        };
        if let Some(found) = self.view.lock().unwrap().as_ref().and_then(known) {
            return Some(found);
        }
        // Deployed a moment ago: fetch a fresh view.
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot read the networking view");
        }
        self.view.lock().unwrap().as_ref().and_then(known)
    }

    /// Take `task` out of DNS and the proxy, then wait until no HTTP request
    /// is in flight to it or `grace` is over.
    pub async fn drain(&self, task: &str, grace: Duration) {
        self.draining.lock().unwrap().insert(task.to_string());
        if let Err(e) = self.refresh().await {
            // The server is unreachable: still take it out locally, from the last view.
            tracing::debug!(error = %format!("{e:#}"), "refresh before drain");
            let view = self.view.lock().unwrap().clone();
            if let Some(view) = view {
                let excluded = self.excluded(&view);
                self.apply(plan(&view, &excluded, self.dns_port)).await;
            }
        }
        // Wait for HTTP requests only: L4 connections are often pools that
        // never end on their own (a database's clients); the service closes
        // them when it gets its stop signal, as under Kubernetes.
        let deadline = Instant::now() + grace;
        while self.proxy.requests_in_flight(task) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Tasks that must get no traffic from this node: draining, and failing
    /// ones (see [`crate::traffic::excluded`] for when those stay in).
    fn excluded(&self, view: &Networking) -> HashSet<String> {
        let draining = self.draining.lock().unwrap().clone();
        let failing = self.failing.lock().unwrap().clone();
        crate::traffic::excluded(view, &draining, &failing)
    }

    /// The task is gone: stop tracking it.
    pub fn forget(&self, task: &str) {
        self.draining.lock().unwrap().remove(task);
        self.failing.lock().unwrap().remove(task);
    }

    /// A probe result: a failing task leaves the endpoint sets at once.
    pub fn probe_result(&self, task: &str, ok: bool) {
        let changed = if ok {
            self.failing.lock().unwrap().remove(task)
        } else {
            self.failing.lock().unwrap().insert(task.to_string())
        };
        if changed {
            self.kick();
        }
    }
}

/// The node bridge of a stack network: its interface name is derived from
/// the subnet (unique on a host, since subnets never overlap), task
/// addresses from the lower half, DNS at the gateway.
pub fn bridge_of(net: &NetworkRecord) -> BridgeNetwork {
    BridgeNetwork {
        name: net.name.clone(),
        bridge: format!(
            "flb{:08x}{}",
            u32::from(net.subnet.network()),
            net.subnet.prefix_len()
        ),
        subnet: net.subnet,
        ip_range: Some(net.task_range()),
        embedded_dns: true,
    }
}
