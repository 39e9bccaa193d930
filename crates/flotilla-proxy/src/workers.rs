//! The proxy's I/O threads: one single-threaded tokio runtime per core, each
//! accepting on every listener and serving the connections it accepted to
//! the end, the way HAProxy's threads and nginx's workers do.
//!
//! # Why not the caller's multi-thread runtime
//!
//! On a multi-thread runtime a connection's task is woken by whichever
//! worker polled the I/O driver and is often stolen by another one, so a
//! proxied request (client read, upstream write, upstream read, client
//! write) crosses threads and costs futex wake-ups and cold caches. Under
//! keep-alive load on a busy 2-core machine that made Flotilla's proxy reach
//! half of HAProxy's throughput with three times its p99. With a runtime per
//! thread a connection, its upstream connections and its timers live on one
//! thread and one epoll instance: no wake-up crosses threads on the hot path.
//!
//! Each worker accepts on its own duplicate of a listener's socket (one
//! bind, so a port taken by another program is still an error, unlike
//! SO_REUSEPORT, which would let any same-user socket with that option join
//! the group). A new connection wakes every worker that is waiting; one wins
//! the accept and the others get `WouldBlock`, a syscall each.

use std::future::Future;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::watch;

/// Overrides the number of proxy threads (default: one per CPU).
pub const THREADS_ENV: &str = "FLOTILLA_PROXY_THREADS";

/// The running worker threads; stopped (with every task on them) when the
/// last clone of the proxy is dropped.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Dropping it ends every worker's `block_on`.
    _stop: watch::Sender<()>,
}

impl Workers {
    pub fn start() -> std::io::Result<Arc<Workers>> {
        let n = std::env::var(THREADS_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let (stop, stopped) = watch::channel(());
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let mut stopped = stopped.clone();
            std::thread::Builder::new()
                .name(format!("flotilla-proxy-{i}"))
                .spawn(move || {
                    // Returns once the sender is gone; dropping the runtime
                    // then cancels every task on it and closes its sockets.
                    rt.block_on(async move { while stopped.changed().await.is_ok() {} });
                })?;
        }
        Ok(Arc::new(Workers {
            handles,
            _stop: stop,
        }))
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Makes worker `i` the current runtime until the guard drops (for
    /// tokio calls that register a socket).
    pub fn enter(&self, i: usize) -> tokio::runtime::EnterGuard<'_> {
        self.handles[i].enter()
    }

    /// Runs `fut` on worker `i`.
    pub fn spawn<F>(&self, i: usize, fut: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handles[i].spawn(fut)
    }
}
