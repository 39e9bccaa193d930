//! Upstream HTTP/1.1 connections: those of one client connection, and the
//! idle ones a listener's client connections share.
//!
//! Each client connection keeps the few keep-alive connections it opened to
//! endpoints and reuses one whenever the balancer (still deciding per
//! request) picks the same endpoint again. When it has none for the picked
//! endpoint it takes one from the listener's shared idle pool
//! (`SharedIdle`), and its idle connections go there when the client
//! connection ends: without that, clients that open a connection per
//! request (`Connection: close`, short-lived scripts) would make the proxy
//! dial the endpoint for every request too, which halved throughput against
//! HAProxy's `http-reuse`. The upstream connection's I/O is
//! driven by the client connection's own task: while waiting for the
//! response headers by the request, then by the response body as the client
//! side writes it out. Compared with hyper-util's legacy pooled client this
//! removes, per request, the pool's global lock and two cross-task hand-offs
//! (with their wake-ups, often across worker threads); the lock here is per
//! client connection and uncontended for HTTP/1.1 clients, which send one
//! request at a time. Written by hand because no
//! crate offers a connection cache with this ownership (per downstream
//! connection, keyed by endpoint address); hyper's `client::conn` does the
//! protocol work.

use crate::body::ProxyBody;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

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
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

/// A request that may not be sent twice (POST, PATCH) only reuses a
/// connection idle for less than this: if the endpoint closed it in the
/// meantime, the request could fail after it was written, with no retry
/// allowed. Idempotent requests are retried in that case instead.
pub(crate) const FRESH_IDLE_AGE: Duration = Duration::from_secs(2);

type Sender = http1::SendRequest<ProxyBody>;
type Conn = http1::Connection<TokioIo<TcpStream>, ProxyBody>;

/// One HTTP/1.1 connection to an endpoint: the request side and the I/O
/// state machine, which whoever holds it must poll (`poll_conn`).
pub(crate) struct Upstream {
    addr: SocketAddr,
    sender: Sender,
    conn: Pin<Box<Conn>>,
    /// When its last response completed (set by `put`).
    idle_since: Instant,
}

impl Upstream {
    /// Whether it is still open. Polls the connection once (nobody polled
    /// it while idle), so an endpoint's close that already arrived is
    /// noticed before a request is written to it.
    fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.poll_conn(&mut cx).is_pending() && !self.sender.is_closed()
    }

    /// Moves the connection's I/O forward; Ready once it has closed (by
    /// either side, or on an error), after which it must not be reused.
    pub fn poll_conn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.conn.as_mut().poll(cx).map(|r| {
            if let Err(e) = r {
                tracing::debug!(addr = %self.addr, "upstream connection ended with an error: {e}");
            }
        })
    }

    /// Drives the connection until it can take a request: false when it
    /// closed while idle (the endpoint's keep-alive timeout, a restart).
    async fn ready(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            if self.poll_conn(cx).is_ready() {
                return Poll::Ready(false);
            }
            self.sender.poll_ready(cx).map(|r| r.is_ok())
        })
        .await
    }

    /// Sends `req` and drives the connection until the response headers
    /// arrived. The error carries the request back when none of it was sent.
    async fn exchange(
        &mut self,
        req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, TrySendError> {
        let mut resp = std::pin::pin!(self.sender.try_send_request(req));
        std::future::poll_fn(|cx| {
            // The connection first: it writes the request and reads the
            // response the future below is waiting for.
            let closed = self.poll_conn(cx).is_ready();
            match resp.as_mut().poll(cx) {
                Poll::Pending if closed => {
                    // A closed connection fails its pending request; poll
                    // once more so that error is what we return.
                    resp.as_mut().poll(cx)
                }
                r => r,
            }
        })
        .await
    }
}

/// A failed send; carries the request back when none of it was written.
type TrySendError = hyper::client::conn::TrySendError<Request<ProxyBody>>;

/// Why a request got no response from its endpoint.
pub(crate) enum SendError {
    /// No connection could be made: nothing reached the endpoint, so any
    /// request may be retried elsewhere and the endpoint ejected.
    Connect(std::io::Error),
    /// The request may have reached the endpoint.
    Upstream(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Upstream(e) => {
                write!(f, "{e}")?;
                let mut src = std::error::Error::source(e);
                while let Some(c) = src {
                    write!(f, ": {c}")?;
                    src = c.source();
                }
                Ok(())
            }
        }
    }
}

/// Idle upstream connections owned by one client connection; handed to the
/// listener's shared pool when it ends. Connections in use are owned by
/// their request and then by its response body, which gives them back once
/// it is complete.
pub(crate) struct UpstreamConns {
    idle: Mutex<Vec<Upstream>>,
    shared: Arc<SharedIdle>,
}

impl UpstreamConns {
    pub fn new(shared: Arc<SharedIdle>) -> Self {
        UpstreamConns {
            idle: Mutex::new(Vec::new()),
            shared,
        }
    }

    /// A usable connection to `addr`: one of this client connection's own,
    /// else one from the shared pool.
    fn take(&self, addr: SocketAddr, max_age: Duration) -> Option<Upstream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let mut i = 0;
        while i < idle.len() {
            if idle[i].addr != addr || idle[i].idle_since.elapsed() > max_age {
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
    pub fn put(&self, mut u: Upstream) {
        u.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            // Oldest first: the connection least likely to be picked again.
            let old = idle.remove(0);
            self.shared.put(old);
        }
        idle.push(u);
    }

    /// Sends `req` (origin-form URI, Host set) to `addr` on a cached
    /// connection when there is one, otherwise on a new one. Returns the
    /// response headers and the connection, which the response body must
    /// keep driving and give back with `put` once complete.
    /// `on_connect` runs after each new connection is established.
    /// `max_idle_age` bounds how long a reused connection may have been
    /// idle (`FRESH_IDLE_AGE` for requests that may not be retried).
    pub async fn send(
        &self,
        addr: SocketAddr,
        mut req: Request<ProxyBody>,
        connect_timeout: Duration,
        max_idle_age: Duration,
        on_connect: impl FnOnce(),
    ) -> Result<(Response<Incoming>, Upstream), SendError> {
        if let Some(mut u) = self.take(addr, max_idle_age.min(MAX_IDLE_AGE)) {
            if u.ready().await {
                match u.exchange(req).await {
                    Ok(resp) => return Ok((resp, u)),
                    Err(mut e) => match e.take_message() {
                        // The connection closed before the request was
                        // written: nothing was sent, so a new connection
                        // is as good as the cached one was.
                        Some(r) => req = r,
                        None => return Err(SendError::Upstream(e.into_error())),
                    },
                }
            }
        }
        let mut u = connect(addr, connect_timeout)
            .await
            .map_err(SendError::Connect)?;
        on_connect();
        match u.exchange(req).await {
            Ok(resp) => Ok((resp, u)),
            Err(e) => Err(SendError::Upstream(e.into_error())),
        }
    }
}

impl Drop for UpstreamConns {
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
/// used last. Nobody polls them while they wait; `Upstream::is_open` checks
/// each one as it is taken, and `put` closes those that waited too long.
pub(crate) struct SharedIdle {
    state: Mutex<IdleState>,
}

struct IdleState {
    by_addr: HashMap<SocketAddr, Vec<Upstream>>,
    /// The listener's current endpoints: a connection to any other address
    /// is closed when it is given back, even if its endpoint left while
    /// the connection was in use.
    endpoints: HashSet<SocketAddr>,
}

impl SharedIdle {
    pub fn new(endpoints: HashSet<SocketAddr>) -> Self {
        SharedIdle {
            state: Mutex::new(IdleState {
                by_addr: HashMap::new(),
                endpoints,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdleState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used open connection to `addr` that has been idle
    /// for at most `max_age` (the one most likely still open); closed ones
    /// met on the way are dropped.
    fn take(&self, addr: SocketAddr, max_age: Duration) -> Option<Upstream> {
        let mut state = self.lock();
        let list = state.by_addr.get_mut(&addr)?;
        while let Some(last) = list.last() {
            if last.idle_since.elapsed() > max_age {
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

    fn put(&self, u: Upstream) {
        let mut state = self.lock();
        if !state.endpoints.contains(&u.addr) {
            return; // its endpoint left: dropping it closes it
        }
        let list = state.by_addr.entry(u.addr).or_default();
        // Oldest first: close what waited too long or exceeds the bound.
        let stale = list
            .iter()
            .take_while(|o| o.idle_since.elapsed() > MAX_IDLE_AGE)
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

/// A new HTTP/1.1 connection to `addr`.
async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Upstream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {} ms", timeout.as_millis()),
            )
        })??;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    Ok(Upstream {
        addr,
        sender,
        conn: Box::pin(conn),
        idle_since: Instant::now(),
    })
}
