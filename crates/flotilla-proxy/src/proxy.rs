//! `Proxy`: the listener set, reconciled against a desired `ProxyConfig` on
//! every `apply`, and the per-endpoint in-flight counts the agent polls
//! while draining a task.

use crate::config::{ListenerConfig, ProxyConfig};
use crate::endpoints::{Backends, EndpointState, InFlightCounts, ListenerShared};
use crate::listener::{self, Running};
use crate::metrics::Metrics;
use crate::pool::WorkerPools;
use crate::workers::Workers;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

/// The node's proxy. Cheap to clone; every clone drives the same listeners.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Metrics,
    /// The threads that accept and serve every listener's connections.
    workers: Arc<Workers>,
    /// Serialises `apply` calls; held across binds and closes.
    listeners: tokio::sync::Mutex<HashMap<String, Running>>,
    /// In-flight counter per endpoint id, shared by every listener (and by
    /// connections still draining on endpoints no longer configured).
    in_flight: Mutex<HashMap<String, Arc<InFlightCounts>>>,
    /// Bound addresses, readable without waiting for an `apply` in progress.
    addrs: RwLock<HashMap<String, SocketAddr>>,
    /// (service, endpoint id) pairs that have metric series; pruned once
    /// the endpoint is neither configured nor in flight.
    series: Mutex<HashSet<(String, String)>>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl Proxy {
    /// Starts the proxy's worker threads (one per CPU, or
    /// `FLOTILLA_PROXY_THREADS`; they stop when the last clone is dropped);
    /// `registry` gets the metrics registered (prefix `flotilla_proxy_`).
    /// `apply` may be called from any tokio runtime.
    pub fn new(registry: &mut prometheus_client::registry::Registry) -> io::Result<Proxy> {
        Ok(Proxy {
            inner: Arc::new(Inner {
                metrics: Metrics::register(registry),
                workers: Workers::start()?,
                listeners: tokio::sync::Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashMap::new()),
                addrs: RwLock::new(HashMap::new()),
                series: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Makes the listener set equal to `config`: binds new listeners, closes
    /// removed ones (connections already accepted continue until they end),
    /// swaps endpoint sets live without dropping open connections. A listener
    /// whose bind address, protocol or service changed is closed and bound
    /// again. Returns the listeners that could not be set up and why; the
    /// others are applied regardless.
    pub async fn apply(&self, config: &ProxyConfig) -> Vec<(String, io::Error)> {
        let mut errors = Vec::new();
        let mut listeners = self.inner.listeners.lock().await;

        let mut wanted: HashMap<&str, &ListenerConfig> = HashMap::new();
        for l in &config.listeners {
            if let Err(msg) = l.timeouts.validate() {
                errors.push((
                    l.name.clone(),
                    invalid(format!("listener {}: {msg}", l.name)),
                ));
            } else if wanted.contains_key(l.name.as_str()) {
                errors.push((
                    l.name.clone(),
                    invalid(format!(
                        "listener name {:?} appears more than once, expected unique names",
                        l.name
                    )),
                ));
            } else {
                wanted.insert(&l.name, l);
            }
        }

        // Close what is gone or must be re-bound, before binding anything,
        // so a listener moving to another name can take the same address.
        let names: Vec<String> = listeners.keys().cloned().collect();
        for name in names {
            let keep = wanted.get(name.as_str()).is_some_and(|w| {
                let have = &listeners[&name].cfg;
                have.bind == w.bind && have.protocol == w.protocol && have.service == w.service
            });
            if !keep {
                if let Some(r) = listeners.remove(&name) {
                    r.close().await;
                }
            }
        }

        for l in &config.listeners {
            if !wanted
                .get(l.name.as_str())
                .is_some_and(|w| std::ptr::eq(*w, l))
            {
                continue; // rejected above
            }
            if let Some(r) = listeners.get_mut(&l.name) {
                if r.cfg != *l {
                    let old = r.shared.backends.load();
                    r.shared
                        .backends
                        .store(Arc::new(self.backends(l, Some(&old))));
                    r.cfg = l.clone();
                    // Idle connections to endpoints that left (or are
                    // draining) are closed now rather than reused.
                    for idle in &r.shared.idle {
                        idle.set_endpoints(l.endpoints.iter().map(|e| e.addr).collect());
                    }
                }
                continue;
            }
            let shared = Arc::new(ListenerShared {
                service: l.service.clone(),
                backends: arc_swap::ArcSwap::from_pointee(self.backends(l, None)),
                metrics: self.inner.metrics.service(&l.service),
                idle: (0..self.inner.workers.len())
                    .map(|_| {
                        Arc::new(WorkerPools::new(
                            l.endpoints.iter().map(|e| e.addr).collect(),
                        ))
                    })
                    .collect(),
            });
            match listener::start(l, shared, &self.inner.workers) {
                Ok(r) => {
                    listeners.insert(l.name.clone(), r);
                }
                Err(e) => {
                    let msg = format!(
                        "binding {} ({:?}) for listener {}: {e}",
                        l.bind, l.protocol, l.name
                    );
                    errors.push((l.name.clone(), io::Error::new(e.kind(), msg)));
                }
            }
        }

        self.prune_series(config);
        // Forget counters nobody holds any more (no listener, no draining
        // connection): `in_flight` reports 0 for unknown ids anyway.
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, c| Arc::strong_count(c) > 1 || c.all() > 0);
        *self.inner.addrs.write().unwrap_or_else(|p| p.into_inner()) =
            listeners.iter().map(|(n, r)| (n.clone(), r.addr)).collect();
        errors
    }

    /// Open TCP connections, UDP sessions and HTTP requests in progress to
    /// this endpoint, over all listeners (including ones already removed).
    pub fn in_flight(&self, endpoint_id: &str) -> u64 {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint_id)
            .map_or(0, |c| c.all())
    }

    /// HTTP requests in progress to this endpoint (over all listeners): what
    /// a drain waits for before the endpoint's container is stopped.
    pub fn requests_in_flight(&self, endpoint_id: &str) -> u64 {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint_id)
            .map_or(0, |c| c.requests())
    }

    /// The address a listener is actually bound to (useful with port 0).
    pub fn local_addr(&self, listener_name: &str) -> Option<SocketAddr> {
        self.inner
            .addrs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(listener_name)
            .copied()
    }

    /// The endpoint set for `l`, keeping the state (ejection)
    /// of endpoints that were already there.
    fn backends(&self, l: &ListenerConfig, old: Option<&Backends>) -> Backends {
        let endpoints = l
            .endpoints
            .iter()
            .map(|ep| {
                old.and_then(|o| o.endpoints.iter().find(|s| s.ep == *ep))
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(EndpointState::new(
                            ep.clone(),
                            self.counter(&ep.id),
                            self.inner.metrics.endpoint(&l.service, &ep.id),
                        ))
                    })
            })
            .collect();
        Backends {
            endpoints,
            timeouts: l.timeouts,
            retries: l.retries,
        }
    }

    fn prune_series(&self, config: &ProxyConfig) {
        let configured: HashSet<(&str, &str)> = config
            .listeners
            .iter()
            .flat_map(|l| {
                l.endpoints
                    .iter()
                    .map(|e| (l.service.as_str(), e.id.as_str()))
            })
            .collect();
        let mut series = self.inner.series.lock().unwrap_or_else(|p| p.into_inner());
        series.retain(|(service, id)| {
            let keep =
                configured.contains(&(service.as_str(), id.as_str())) || self.in_flight(id) > 0;
            if !keep {
                self.inner.metrics.remove_endpoint(service, id);
            }
            keep
        });
        series.extend(
            configured
                .iter()
                .map(|(s, e)| (s.to_string(), e.to_string())),
        );
    }

    fn counter(&self, id: &str) -> Arc<InFlightCounts> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }
}
