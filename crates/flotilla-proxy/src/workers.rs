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
//! Each worker accepts on its own listening socket; a listener's sockets
//! form one `SO_REUSEPORT` group, so the kernel gives each new connection
//! to one worker and wakes only that one (`listener::bind_tcp_group` says
//! why and what it costs).
//!
//! # Keeping the workers evenly loaded
//!
//! The kernel's spread is random per connection, not by load, and a worker
//! that was off the CPU accepts its backlog in one go when it runs again.
//! Before the per-worker sockets, with one shared socket, the first worker
//! to wake accepted a whole burst (a client pool opening at once) and kept
//! it for its whole life: measured with wrk's 64 connections on 2 workers,
//! one worker often served 60% or more of the requests while the other
//! idled. So, like HAProxy's listener (which hands an accepted connection
//! to the least loaded thread), a worker that holds clearly more open
//! connections than the least loaded one passes the new connection over to
//! it (`WorkerSet::place`). In connection-per-request mode that is ~0.17
//! hand-overs per request here; serving every connection where it was
//! accepted measured the same throughput (interleaved A/B, 5 rounds).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::watch;

/// Overrides the number of proxy threads (default: one per CPU).
pub const THREADS_ENV: &str = "FLOTILLA_PROXY_THREADS";

/// The running worker threads; stopped (with every task on them) when the
/// last clone of the proxy is dropped.
pub(crate) struct Workers {
    set: Arc<WorkerSet>,
    /// Dropping it ends every worker's `block_on`.
    _stop: watch::Sender<()>,
}

/// What the accept loops need of the workers: their runtimes and how many
/// client connections each one serves. Shared with the tasks on the
/// workers, so it holds no `watch::Sender`: those tasks must not keep the
/// threads alive.
pub(crate) struct WorkerSet {
    handles: Vec<Handle>,
    /// Open client connections per worker (every listener's).
    open: Vec<AtomicUsize>,
}

/// Counts one client connection on its worker until dropped.
pub(crate) struct OnWorker {
    set: Arc<WorkerSet>,
    worker: usize,
}

impl Drop for OnWorker {
    fn drop(&mut self) {
        self.set.open[self.worker].fetch_sub(1, Ordering::Relaxed);
    }
}

impl WorkerSet {
    /// Where worker `here`, which just accepted a connection, should serve
    /// it: itself, unless another worker has clearly fewer open connections
    /// (two fewer, plus a quarter of `here`'s). Each hand-over costs a
    /// cross-thread wake-up; with a smaller margin, clients that open a
    /// connection per request made equally loaded workers pass nearly half
    /// of them back and forth. The connection is
    /// counted on the chosen worker at once, so a burst spreads out as it
    /// is accepted.
    pub fn place(self: &Arc<Self>, here: usize) -> OnWorker {
        let load = |i: usize| self.open[i].load(Ordering::Relaxed);
        let (least, least_load) = (0..self.open.len())
            .map(|i| (i, load(i)))
            .min_by_key(|&(i, l)| (l, i != here))
            .expect("at least one worker");
        let here_load = load(here);
        let worker = if least_load + 2 + here_load / 4 <= here_load {
            least
        } else {
            here
        };
        self.open[worker].fetch_add(1, Ordering::Relaxed);
        OnWorker {
            set: self.clone(),
            worker,
        }
    }

    /// Runs `fut` on worker `i`.
    pub fn spawn<F>(&self, i: usize, fut: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handles[i].spawn(fut)
    }
}

impl OnWorker {
    pub fn worker(&self) -> usize {
        self.worker
    }
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
            set: Arc::new(WorkerSet {
                open: handles.iter().map(|_| AtomicUsize::new(0)).collect(),
                handles,
            }),
            _stop: stop,
        }))
    }

    pub fn len(&self) -> usize {
        self.set.handles.len()
    }

    /// Makes worker `i` the current runtime until the guard drops (for
    /// tokio calls that register a socket).
    pub fn enter(&self, i: usize) -> tokio::runtime::EnterGuard<'_> {
        self.set.handles[i].enter()
    }

    /// The workers as the tasks running on them see them.
    pub fn set(&self) -> &Arc<WorkerSet> {
        &self.set
    }

    /// Runs `fut` on worker `i`.
    pub fn spawn<F>(&self, i: usize, fut: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.set.spawn(i, fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(workers: usize) -> Arc<WorkerSet> {
        Arc::new(WorkerSet {
            handles: Vec::new(),
            open: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    #[test]
    fn a_burst_accepted_by_one_worker_is_spread_over_all() {
        let s = set(2);
        let placed: Vec<OnWorker> = (0..64).map(|_| s.place(0)).collect();
        let on_1 = placed.iter().filter(|p| p.worker() == 1).count();
        assert!((26..=32).contains(&on_1), "{on_1} of 64 on worker 1");
        drop(placed);
        assert!(s.open.iter().all(|o| o.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn equally_loaded_workers_keep_what_they_accept() {
        let s = set(2);
        let _held: Vec<OnWorker> = (0..10).flat_map(|_| [s.place(0), s.place(1)]).collect();
        // Alternating accepts never move a connection.
        assert!(_held.iter().enumerate().all(|(i, p)| p.worker() == i % 2));
        assert_eq!(s.place(1).worker(), 1);
    }
}
