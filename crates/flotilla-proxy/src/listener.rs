//! One bound listener: its socket, its accept (or receive) task and the state
//! its connections share. Closing it stops accepting; connections already
//! accepted run on in their own tasks until they end.

use crate::config::{ListenerConfig, Protocol};
use crate::endpoints::ListenerShared;
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
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting and waits until the socket is closed, so the same
    /// address can be bound again right away.
    pub async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Binds `cfg.bind` and starts serving it. Must run inside a tokio runtime.
pub(crate) fn start(cfg: &ListenerConfig, shared: Arc<ListenerShared>) -> std::io::Result<Running> {
    let (addr, task) = match cfg.protocol {
        Protocol::Tcp | Protocol::Http => {
            let l = bind_tcp(cfg.bind)?;
            let addr = l.local_addr()?;
            let task = tokio::spawn(accept_loop(l, shared.clone(), cfg.protocol));
            (addr, task)
        }
        Protocol::Udp => {
            let s = std::net::UdpSocket::bind(cfg.bind)?;
            s.set_nonblocking(true)?;
            let s = Arc::new(UdpSocket::from_std(s)?);
            let addr = s.local_addr()?;
            let task = tokio::spawn(crate::udp::serve(s, shared.clone()));
            (addr, task)
        }
    };
    Ok(Running {
        cfg: cfg.clone(),
        shared,
        addr,
        task,
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

async fn accept_loop(l: TcpListener, shared: Arc<ListenerShared>, protocol: Protocol) {
    loop {
        match l.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                shared.metrics.open_connections.inc();
                let open = OpenConnection(shared.metrics.open_connections.clone());
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _open = open;
                    if protocol == Protocol::Http {
                        crate::http::serve_connection(stream, shared).await;
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
