//! One bound listener: its socket, its accept (or receive) tasks, one per
//! worker thread (`workers`), and the state its connections share. Closing
//! it stops accepting; connections already accepted run on in their own
//! tasks until they end.

use crate::config::{ListenerConfig, Protocol};
use crate::endpoints::ListenerShared;
use crate::workers::{OnWorker, WorkerSet, Workers};
use prometheus_client::metrics::gauge::Gauge;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
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
            for i in 0..workers.len() {
                let l = l.try_clone()?;
                let (shared, set, protocol) = (shared.clone(), workers.set().clone(), cfg.protocol);
                tasks.push(workers.spawn(i, async move {
                    // Registered with this worker's own epoll instance.
                    // SAFETY: the AsyncFd owns this duplicate of the socket
                    // and never replaces or closes it while registered.
                    match unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) } {
                        Ok(l) => accept_loop(l, i, set, shared, protocol).await,
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
    // Inherited by every accepted socket (Linux copies it at accept): one
    // `setsockopt` per listener instead of one per connection.
    s.set_nodelay(true)?;
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

/// Accepts on worker `here`'s duplicate of the listening socket and serves
/// each connection on the worker `WorkerSet::place` chooses.
///
/// Accepted sockets are registered with tokio only on the worker that
/// serves them: `tokio::net::TcpListener::accept` registers each one with the
/// accepting worker's epoll instance at once, and handing it over then cost
/// an `epoll_ctl` to remove it and one to add it again.
async fn accept_loop(
    l: AsyncFd<std::net::TcpListener>,
    here: usize,
    set: Arc<WorkerSet>,
    shared: Arc<ListenerShared>,
    protocol: Protocol,
) {
    loop {
        let accepted = match l.readable().await {
            Ok(mut ready) => match ready.try_io(|l| accept_nonblocking(l.get_ref())) {
                Ok(r) => r,
                Err(_would_block) => continue,
            },
            Err(e) => Err(e),
        };
        match accepted {
            Ok(stream) => {
                shared.metrics.open_connections.inc();
                let open = OpenConnection(shared.metrics.open_connections.clone());
                let placed = set.place(here);
                let worker = placed.worker();
                let shared = shared.clone();
                let start = async move {
                    serve(stream, shared, protocol, placed, open).await;
                };
                if worker == here {
                    tokio::spawn(start);
                } else {
                    set.spawn(worker, start);
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept on {:?}: {e}", l.get_ref().local_addr());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// `accept4` with the new socket non-blocking from the start (std's accept
/// would need two `fcntl`s more for tokio).
fn accept_nonblocking(l: &std::net::TcpListener) -> std::io::Result<std::net::TcpStream> {
    use nix::sys::socket::{accept4, SockFlag};
    use std::os::fd::{AsRawFd, FromRawFd};
    let fd = accept4(
        l.as_raw_fd(),
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    // SAFETY: accept4 returned a new socket that nothing else owns.
    Ok(unsafe { std::net::TcpStream::from_raw_fd(fd) })
}

/// Serves one client connection on the worker it was placed on (counted
/// there, and as open on its service, until it ends).
async fn serve(
    stream: std::net::TcpStream,
    shared: Arc<ListenerShared>,
    protocol: Protocol,
    placed: OnWorker,
    _open: OpenConnection,
) {
    if protocol == Protocol::Http {
        // Registered with tokio only if it has to wait (`lazy`).
        let pools = shared.idle[placed.worker()].clone();
        crate::http::serve_connection(stream, shared, pools).await;
    } else {
        // Registered with the epoll instance of the thread this runs on.
        match TcpStream::from_std(stream) {
            Ok(s) => crate::tcp::serve_connection(s, shared).await,
            Err(e) => tracing::warn!("serving a connection on worker {}: {e}", placed.worker()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let l = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().await.unwrap();
        assert!(s.nodelay().unwrap());
    }
}
