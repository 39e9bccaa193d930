//! The server handle: reconciles listeners and record tables with a [`DnsConfig`].

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::config::{DnsConfig, View};
use crate::listener::Listener;
use crate::records::RecordTable;
use crate::state::{Shared, ViewData, ViewSlot};
use crate::upstreams;

/// The node's embedded DNS server. Cheap to clone (all clones drive the same server); the
/// listeners close when the last clone is dropped.
#[derive(Clone)]
pub struct DnsServer {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// Configured listen address → its listener. An async mutex: it serialises concurrent
    /// `apply` calls, which await binds and closes while holding it.
    listeners: tokio::sync::Mutex<HashMap<SocketAddr, Listener>>,
    /// Configured → bound address, readable without awaiting (for `local_addr`).
    bound: Mutex<HashMap<SocketAddr, SocketAddr>>,
}

impl Default for DnsServer {
    fn default() -> Self {
        Self::new()
    }
}

impl DnsServer {
    /// Must be called inside a tokio runtime (listeners are spawned on it by `apply`).
    pub fn new() -> DnsServer {
        DnsServer {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared::default()),
                listeners: tokio::sync::Mutex::new(HashMap::new()),
                bound: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Makes listeners and records equal to `config`: binds new listen addresses (UDP+TCP),
    /// closes removed ones, swaps record tables atomically. Returns per-address bind errors,
    /// never panics; one failing address does not stop the others. When this returns, queries
    /// see the new records and removed addresses are closed. Failed addresses are retried by
    /// the next `apply`.
    pub async fn apply(&self, config: &DnsConfig) -> Vec<(SocketAddr, io::Error)> {
        let mut errors = Vec::new();
        let desired = listen_map(&config.views, &mut errors);
        let own: HashSet<SocketAddr> = desired.keys().copied().collect();
        let upstreams = upstreams::resolve(&config.upstreams, &own);
        {
            let mut guard = match self.inner.shared.upstreams.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if **guard != upstreams {
                *guard = Arc::new(upstreams);
                // The remembered index meant a resolver of the old list.
                self.inner
                    .shared
                    .preferred_upstream
                    .store(0, std::sync::atomic::Ordering::Relaxed);
            }
        }

        let mut listeners = self.inner.listeners.lock().await;
        // Swap records on listeners that stay, first: these answers must change at once.
        for (addr, view) in &desired {
            if let Some(listener) = listeners.get(addr) {
                let current = listener.view.get();
                if current.name != view.name
                    || current.source != view.records
                    || current.clients_source != view.clients
                {
                    listener.view.set(view_data(view));
                }
            }
        }
        let removed: Vec<SocketAddr> = listeners
            .keys()
            .filter(|addr| !desired.contains_key(addr))
            .copied()
            .collect();
        for addr in removed {
            if let Some(listener) = listeners.remove(&addr) {
                self.set_bound(addr, None);
                listener.close().await;
                tracing::info!(%addr, "DNS listener closed");
            }
        }
        for (addr, view) in &desired {
            if listeners.contains_key(addr) {
                continue;
            }
            let slot = Arc::new(ViewSlot::new(view_data(view)));
            match Listener::bind(*addr, slot, self.inner.shared.clone()).await {
                Ok(listener) => {
                    tracing::info!(%addr, local = %listener.local, view = %view.name, "DNS listener bound");
                    self.set_bound(*addr, Some(listener.local));
                    listeners.insert(*addr, listener);
                }
                Err(error) => {
                    tracing::warn!(%addr, view = %view.name, %error, "cannot bind DNS listener");
                    errors.push((*addr, error));
                }
            }
        }
        errors
    }

    /// The UDP address actually bound for a configured listen address (differs with port 0).
    pub fn local_addr(&self, configured: SocketAddr) -> Option<SocketAddr> {
        match self.inner.bound.lock() {
            Ok(bound) => bound.get(&configured).copied(),
            Err(poisoned) => poisoned.into_inner().get(&configured).copied(),
        }
    }

    /// Registers `flotilla_dns_queries`, `flotilla_dns_forwarded` and `flotilla_dns_failures`
    /// counters, labelled by view name.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner.shared.metrics.register(registry);
    }

    fn set_bound(&self, configured: SocketAddr, local: Option<SocketAddr>) {
        let mut bound = match self.inner.bound.lock() {
            Ok(bound) => bound,
            Err(poisoned) => poisoned.into_inner(),
        };
        match local {
            Some(local) => bound.insert(configured, local),
            None => bound.remove(&configured),
        };
    }
}

/// Listen address → the view served there. An address claimed by two views is an error for
/// the later one (first wins), since one socket can answer from only one view.
fn listen_map<'a>(
    views: &'a [View],
    errors: &mut Vec<(SocketAddr, io::Error)>,
) -> HashMap<SocketAddr, &'a View> {
    let mut map: HashMap<SocketAddr, &View> = HashMap::new();
    for view in views {
        for addr in &view.listen {
            if let Some(first) = map.get(addr) {
                if !std::ptr::eq(*first, view) {
                    errors.push((
                        *addr,
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "listen address {addr} is in view {:?} and again in view {:?}; each address serves one view",
                                first.name, view.name
                            ),
                        ),
                    ));
                }
                continue;
            }
            map.insert(*addr, view);
        }
    }
    map
}

fn view_data(view: &View) -> ViewData {
    let clients = view
        .clients
        .iter()
        .map(|(client, extra)| {
            let mut merged = extra.clone();
            merged.extend(view.records.iter().map(|(k, v)| (k.clone(), v.clone())));
            (*client, RecordTable::new(&merged))
        })
        .collect();
    ViewData {
        name: view.name.clone(),
        table: RecordTable::new(&view.records),
        source: view.records.clone(),
        clients,
        clients_source: view.clients.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_can_be_shared_across_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<DnsServer>();
    }

    #[test]
    fn an_address_in_two_views_is_an_error_and_first_wins() {
        let addr: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let views = vec![
            View {
                name: "a".into(),
                listen: vec![addr],
                ..View::default()
            },
            View {
                name: "b".into(),
                listen: vec![addr],
                ..View::default()
            },
        ];
        let mut errors = Vec::new();
        let map = listen_map(&views, &mut errors);
        assert_eq!(map[&addr].name, "a");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].1.to_string().contains("\"b\""));
    }

    #[test]
    fn the_same_address_twice_in_one_view_is_fine() {
        let addr: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let views = vec![View {
            name: "a".into(),
            listen: vec![addr, addr],
            ..View::default()
        }];
        let mut errors = Vec::new();
        assert_eq!(listen_map(&views, &mut errors).len(), 1);
        assert!(errors.is_empty());
    }
}
