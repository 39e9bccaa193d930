//! Keep-alive connections to endpoints: those one client connection keeps
//! (`ConnCache`), and the idle ones a listener's client connections share
//! (`SharedIdle`), for either kind of upstream connection: hyper's
//! (`upstream::Upstream`, used for h2 clients and unusual HTTP/1.1
//! requests) and plain sockets (`h1::RawUpstream`, the HTTP/1.1 fast path).
//!
//! Each client connection keeps the few keep-alive connections it opened to
//! endpoints and reuses one whenever the balancer (still deciding per
//! request) picks the same endpoint again. When it has none for the picked
//! endpoint it takes one from the listener's shared idle pool, and its idle
//! connections go there when the client connection ends: without that,
//! clients that open a connection per request (`Connection: close`,
//! short-lived scripts) would make the proxy dial the endpoint for every
//! request too, which halved throughput against HAProxy's `http-reuse`.
//! Written by hand because no crate offers a connection cache with this
//! ownership (per downstream connection, keyed by endpoint address).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Idle upstream connections one client connection keeps at most: with
/// three endpoints, P2C lands on a cached one most of the time, and an h2
/// client with several streams in flight opens extra ones as it needs.
const MAX_IDLE: usize = 4;

/// Idle connections the shared pool keeps per endpoint at most; enough
/// for a few hundred client connections that each had one request in
/// flight, bounded so a burst does not pin file descriptors for long.
const MAX_SHARED_IDLE: usize = 256;

/// A connection idle for longer is closed rather than reused: endpoints
/// close idle keep-alive connections on their own schedule (often 5 s to
/// 2 min), and a reused connection that the endpoint is closing at that
/// moment fails the request.
pub(crate) const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

/// A request that may not be sent twice (POST, PATCH) only reuses a
/// connection idle for less than this: if the endpoint closed it in the
/// meantime, the request could fail after it was written, with no retry
/// allowed. Idempotent requests are retried in that case instead.
pub(crate) const FRESH_IDLE_AGE: Duration = Duration::from_secs(2);

/// An upstream connection that can wait idle in a pool.
pub(crate) trait Pooled {
    fn addr(&self) -> SocketAddr;
    /// When its last response completed.
    fn idle_since(&self) -> Instant;
    fn set_idle_since(&mut self, at: Instant);
    /// Whether it is still open and clean: nobody watched it while it
    /// waited, so an endpoint's close that already arrived is noticed here,
    /// before a request is written to it.
    fn is_open(&mut self) -> bool;
}

/// Idle upstream connections owned by one client connection; handed to the
/// listener's shared pool when it ends. Connections in use are owned by
/// their request (and its response body), which gives them back once the
/// response is complete.
pub(crate) struct ConnCache<T: Pooled> {
    idle: Mutex<Vec<T>>,
    shared: Arc<SharedIdle<T>>,
}

impl<T: Pooled> ConnCache<T> {
    pub fn new(shared: Arc<SharedIdle<T>>) -> Self {
        ConnCache {
            idle: Mutex::new(Vec::new()),
            shared,
        }
    }

    /// A usable connection to `addr` idle for at most `max_age`: one of
    /// this client connection's own, else one from the shared pool.
    pub fn take(&self, addr: SocketAddr, max_age: Duration) -> Option<T> {
        let max_age = max_age.min(MAX_IDLE_AGE);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let mut i = 0;
        while i < idle.len() {
            if idle[i].addr() != addr || idle[i].idle_since().elapsed() > max_age {
                i += 1;
                continue;
            }
            let mut u = idle.swap_remove(i);
            if u.is_open() {
                return Some(u);
            }
        }
        drop(idle);
        self.shared.take(addr, max_age)
    }

    /// Keeps a connection whose last response is complete for the next
    /// request to its endpoint.
    pub fn put(&self, mut u: T) {
        u.set_idle_since(Instant::now());
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            // Oldest first: the connection least likely to be picked again.
            let old = idle.remove(0);
            self.shared.put(old);
        }
        idle.push(u);
    }
}

impl<T: Pooled> Drop for ConnCache<T> {
    /// The client connection ended: its idle upstream connections serve the
    /// listener's next clients instead of being closed.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|p| p.into_inner()));
        for u in idle {
            self.shared.put(u);
        }
    }
}

/// Idle upstream connections shared by all client connections of one
/// listener (on one worker thread), per endpoint address, most recently
/// used last. Nobody polls them while they wait; `Pooled::is_open` checks
/// each one as it is taken, and `put` closes those that waited too long.
pub(crate) struct SharedIdle<T> {
    state: Mutex<IdleState<T>>,
}

struct IdleState<T> {
    by_addr: HashMap<SocketAddr, Vec<T>>,
    /// The listener's current endpoints: a connection to any other address
    /// is closed when it is given back, even if its endpoint left while
    /// the connection was in use.
    endpoints: HashSet<SocketAddr>,
}

impl<T: Pooled> SharedIdle<T> {
    pub fn new(endpoints: HashSet<SocketAddr>) -> Self {
        SharedIdle {
            state: Mutex::new(IdleState {
                by_addr: HashMap::new(),
                endpoints,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdleState<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used open connection to `addr` that has been idle
    /// for at most `max_age` (the one most likely still open); closed ones
    /// met on the way are dropped.
    fn take(&self, addr: SocketAddr, max_age: Duration) -> Option<T> {
        let mut state = self.lock();
        let list = state.by_addr.get_mut(&addr)?;
        while let Some(last) = list.last() {
            if last.idle_since().elapsed() > max_age {
                // Too old for this request, and the rest are older still;
                // `put` closes them once they are too old for any request.
                return None;
            }
            let mut u = list.pop().expect("checked above");
            if u.is_open() {
                return Some(u);
            }
            // Closed by the endpoint: dropped; try the next one.
        }
        None
    }

    fn put(&self, u: T) {
        let mut state = self.lock();
        if !state.endpoints.contains(&u.addr()) {
            return; // its endpoint left: dropping it closes it
        }
        let list = state.by_addr.entry(u.addr()).or_default();
        // Oldest first: close what waited too long or exceeds the bound.
        let stale = list
            .iter()
            .take_while(|o| o.idle_since().elapsed() > MAX_IDLE_AGE)
            .count();
        let excess = (list.len() + 1).saturating_sub(MAX_SHARED_IDLE);
        list.drain(..stale.max(excess));
        list.push(u);
    }

    /// The listener's endpoints changed: closes the idle connections to
    /// those that left (a replica that is gone, or draining).
    pub fn set_endpoints(&self, endpoints: HashSet<SocketAddr>) {
        let mut state = self.lock();
        state.by_addr.retain(|a, _| endpoints.contains(a));
        state.endpoints = endpoints;
    }
}

/// A listener's shared idle pools on one worker thread: a connection is
/// registered with the epoll instance of the worker that opened it and is
/// only used there.
pub(crate) struct WorkerPools {
    pub hyper: Arc<SharedIdle<crate::upstream::Upstream>>,
    pub raw: Arc<SharedIdle<crate::h1::RawUpstream>>,
}

impl WorkerPools {
    pub fn new(endpoints: HashSet<SocketAddr>) -> Self {
        WorkerPools {
            hyper: Arc::new(SharedIdle::new(endpoints.clone())),
            raw: Arc::new(SharedIdle::new(endpoints)),
        }
    }

    pub fn set_endpoints(&self, endpoints: HashSet<SocketAddr>) {
        self.hyper.set_endpoints(endpoints.clone());
        self.raw.set_endpoints(endpoints);
    }
}
