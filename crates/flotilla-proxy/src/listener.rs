//! One bound listener: its socket, its accept (or receive) tasks, one per
//! worker thread (`workers`), and the state its connections share. Closing
//! it stops accepting; connections already accepted run on in their own
//! tasks until they end.

use crate::config::{ListenerConfig, Protocol};
use crate::endpoints::ListenerShared;
use crate::upstream::SharedIdle;
use crate::workers::Workers;
use prometheus_client::metrics::gauge::Gauge;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::task::JoinHandle;

pub(crate) struct Running {
    /// The config last applied, to tell "unchanged" from "swap endpoints".
    pub cfg: ListenerConfig,
    pub shared: Arc<ListenerShared>,
    pub addr: SocketAddr,
    /// The accept (or receive) task on each worker that serves it.
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting and waits until the socket is closed (every worker
    /// dropped its duplicate), so the same address can be bound again right
    /// away.
    pub async fn close(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds `cfg.bind` and starts serving it: TCP on every worker, UDP on the
/// first (its sessions are one table).
pub(crate) fn start(
    cfg: &ListenerConfig,
    shared: Arc<ListenerShared>,
    workers: &Workers,
) -> std::io::Result<Running> {
    let (addr, tasks) = match cfg.protocol {
        Protocol::Tcp | Protocol::Http => {
            let l = {
                // tokio registers a socket as it starts listening: do that
                // on a worker, then take it back out as a plain socket.
                let _rt = workers.enter(0);
                bind_tcp(cfg.bind)?.into_std()?
            };
            let addr = l.local_addr()?;
            let mut tasks = Vec::with_capacity(workers.len());
            for (i, idle) in shared.idle.iter().enumerate().take(workers.len()) {
                let l = l.try_clone()?;
                let (shared, idle, protocol) = (shared.clone(), idle.clone(), cfg.protocol);
                tasks.push(workers.spawn(i, async move {
                    // Registered with this worker's own epoll instance.
                    match TcpListener::from_std(l) {
                        Ok(l) => accept_loop(l, shared, idle, protocol).await,
                        Err(e) => tracing::error!("listener on worker {i}: {e}"),
                    }
                }));
            }
            (addr, tasks)
        }
        Protocol::Udp => {
            let s = std::net::UdpSocket::bind(cfg.bind)?;
            s.set_nonblocking(true)?;
            let addr = s.local_addr()?;
            let shared = shared.clone();
            let task = workers.spawn(0, async move {
                match UdpSocket::from_std(s) {
                    Ok(s) => crate::udp::serve(Arc::new(s), shared).await,
                    Err(e) => tracing::error!("udp listener: {e}"),
                }
            });
            (addr, vec![task])
        }
    };
    Ok(Running {
        cfg: cfg.clone(),
        shared,
        addr,
        tasks,
    })
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A listener closed and re-bound by `apply` must not wait out TIME_WAIT.
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(1024)
}

/// Decrements a gauge when dropped: open client connections.
struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn accept_loop(
    l: TcpListener,
    shared: Arc<ListenerShared>,
    idle: Arc<SharedIdle>,
    protocol: Protocol,
) {
    loop {
        match l.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                shared.metrics.open_connections.inc();
                let open = OpenConnection(shared.metrics.open_connections.clone());
                let shared = shared.clone();
                let idle = idle.clone();
                tokio::spawn(async move {
                    let _open = open;
                    if protocol == Protocol::Http {
                        crate::http::serve_connection(stream, shared, idle).await;
                    } else {
                        crate::tcp::serve_connection(stream, shared).await;
                    }
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept on {:?}: {e}", l.local_addr());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
