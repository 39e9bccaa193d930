//! One bound listener: its sockets and accept tasks, one per worker thread
//! (`workers`; UDP: one socket on the first worker), and the state its
//! connections share. Closing it stops accepting; connections already
//! accepted run on in their own tasks until they end.

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
    /// Stops accepting and waits until the sockets are closed (every
    /// worker dropped its own), so the same address can be bound again
    /// right away.
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
            let sockets = bind_tcp_group(cfg.bind, workers, cfg.protocol == Protocol::Http)?;
            let addr = sockets[0].local_addr()?;
            let mut tasks = Vec::with_capacity(workers.len());
            for (i, l) in sockets.into_iter().enumerate() {
                let (shared, set, protocol) = (shared.clone(), workers.set().clone(), cfg.protocol);
                tasks.push(workers.spawn(i, async move {
                    // Registered with this worker's own epoll instance.
                    // SAFETY: the AsyncFd owns this socket and never
                    // replaces or closes it while registered.
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

/// One listening socket per worker, all on `addr`, in one `SO_REUSEPORT`
/// group: the kernel gives each new connection to one of them.
///
/// Why not one socket shared by every worker: each worker's epoll instance
/// then wakes for every new connection and all but one find nothing to
/// accept, and the winner often hands the connection to the other worker
/// (`WorkerSet::place`), a cross-thread wake-up. With a connection per
/// request that was about two system calls per request more than with a
/// single worker (perf stat under wrk, 9.0 against 7.0).
///
/// The price of `SO_REUSEPORT`: another socket of the same user with that
/// option could join the group. `probe_free` keeps "address already in
/// use" an error for a port someone else holds; the remaining window
/// between the probe and the bind needs a same-user (here: root) process
/// racing us for the port.
fn bind_tcp_group(
    addr: SocketAddr,
    workers: &Workers,
    client_speaks_first: bool,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        probe_free(addr)?;
    }
    // tokio registers a socket as it starts listening: do that on a
    // worker, then take it back out as a plain socket.
    let _rt = workers.enter(0);
    let first = bind_tcp(addr, true, client_speaks_first)?.into_std()?;
    // With port 0 the first bind picked the port; the rest join it.
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers.len() {
        sockets.push(bind_tcp(addr, true, client_speaks_first)?.into_std()?);
    }
    Ok(sockets)
}

/// Fails with "address in use" when another socket listens on `addr`: a
/// socket without `SO_REUSEPORT` cannot bind where one listens.
fn probe_free(addr: SocketAddr) -> std::io::Result<()> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.set_reuseaddr(true)?;
    s.bind(addr)
}

/// `defer_accept` (HTTP listeners, where the client always speaks first):
/// the kernel queues a connection for `accept` only once its first data
/// arrived (`TCP_DEFER_ACCEPT`, nginx's `deferred`, HAProxy's
/// `defer-accept`), so the first read of an accepted connection finds the
/// request instead of failing with EAGAIN and registering the socket to
/// wait for it. Not for L4 listeners: a protocol where the server speaks
/// first would wait out the deferral.
fn bind_tcp(
    addr: SocketAddr,
    reuse_port: bool,
    defer_accept: bool,
) -> std::io::Result<TcpListener> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A listener closed and re-bound by `apply` must not wait out TIME_WAIT.
    s.set_reuseaddr(true)?;
    s.set_reuseport(reuse_port)?;
    // Inherited by every accepted socket (Linux copies it at accept): one
    // `setsockopt` per listener instead of one per connection.
    s.set_nodelay(true)?;
    s.bind(addr)?;
    if defer_accept {
        set_defer_accept(&s)?;
    }
    s.listen(1024)
}

/// `TCP_DEFER_ACCEPT` with a one-second deferral (the kernel rounds it to
/// its SYN-ACK retransmission steps); after it a connection that sent
/// nothing is accepted anyway. nix 0.29 has no wrapper for this option.
fn set_defer_accept(s: &TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let secs: nix::libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a c_int option value
    // that lives across the call.
    let rc = unsafe {
        nix::libc::setsockopt(
            s.as_raw_fd(),
            nix::libc::IPPROTO_TCP,
            nix::libc::TCP_DEFER_ACCEPT,
            (&secs as *const nix::libc::c_int).cast(),
            std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Decrements a gauge when dropped: open client connections.
struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Accepts on worker `here`'s socket of the listener's group and serves
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
        let l = bind_tcp("127.0.0.1:0".parse().unwrap(), false, false).unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().await.unwrap();
        assert!(s.nodelay().unwrap());
    }

    fn defer_accept_secs(l: &TcpListener) -> nix::libc::c_int {
        use std::os::fd::AsRawFd;
        let mut v: nix::libc::c_int = -1;
        let mut len = std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t;
        // SAFETY: getsockopt into a c_int we own, with its size.
        let rc = unsafe {
            nix::libc::getsockopt(
                l.as_raw_fd(),
                nix::libc::IPPROTO_TCP,
                nix::libc::TCP_DEFER_ACCEPT,
                (&mut v as *mut nix::libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        v
    }

    #[tokio::test]
    async fn http_listeners_defer_accept_until_the_request_arrives_and_l4_ones_do_not() {
        let http = bind_tcp("127.0.0.1:0".parse().unwrap(), false, true).unwrap();
        assert!(defer_accept_secs(&http) > 0);
        let l4 = bind_tcp("127.0.0.1:0".parse().unwrap(), false, false).unwrap();
        assert_eq!(defer_accept_secs(&l4), 0);
        // A client that speaks first is accepted with its request waiting.
        use std::io::Write;
        let mut client = std::net::TcpStream::connect(http.local_addr().unwrap()).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let (s, _) = tokio::time::timeout(Duration::from_secs(5), http.accept())
            .await
            .expect("accepted once the request arrived")
            .unwrap();
        let mut buf = [0u8; 64];
        let n = s.try_read(&mut buf).expect("the request is already there");
        assert!(buf[..n].starts_with(b"GET / HTTP/1.1"));
    }

    #[tokio::test]
    async fn a_port_another_reuseport_socket_listens_on_is_refused() {
        // Someone else's SO_REUSEPORT listener: our group must not join it.
        let theirs = bind_tcp("127.0.0.1:0".parse().unwrap(), true, false).unwrap();
        let addr = theirs.local_addr().unwrap();
        let e = probe_free(addr).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        drop(theirs);
        probe_free(addr).unwrap();
    }
}
