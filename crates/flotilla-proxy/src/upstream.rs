//! hyper's HTTP/1.1 connections to endpoints, for the requests the fast
//! path (`h1`) hands over: those of h2 clients and unusual HTTP/1.1 ones.
//!
//! The upstream connection's I/O is driven by the client connection's own
//! task: while waiting for the response headers by the request, then by
//! the response body as the client side writes it out. Compared with
//! hyper-util's legacy pooled client this removes, per request, the pool's
//! global lock and two cross-task hand-offs (with their wake-ups, often
//! across worker threads). Cached per client connection and per listener
//! by `pool`; hyper's `client::conn` does the protocol work.

use crate::body::ProxyBody;
use crate::pool::{ConnCache, Pooled, MAX_IDLE_AGE};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

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

impl Pooled for Upstream {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn idle_since(&self) -> Instant {
        self.idle_since
    }

    fn set_idle_since(&mut self, at: Instant) {
        self.idle_since = at;
    }

    /// Polls the connection once (nobody polled it while idle).
    fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.poll_conn(&mut cx).is_pending() && !self.sender.is_closed()
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

pub(crate) type UpstreamConns = ConnCache<Upstream>;

impl ConnCache<Upstream> {
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
