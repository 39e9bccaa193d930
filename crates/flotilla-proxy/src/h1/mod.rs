//! The HTTP/1.1 fast path: forwards ordinary HTTP/1.1 requests and their
//! responses as bytes, the way HAProxy does, instead of decoding them into
//! hyper's types and encoding them again.
//!
//! Why by hand: through hyper, each proxied keep-alive request cost about
//! 1.5-2x HAProxy's user-space CPU (the kernel part was the same): hyper's
//! server and client dispatch (a channel and a oneshot per upstream
//! request), a header map built and dropped on both sides, and per-request
//! timers. No crate forwards HTTP/1.1 at the byte level with a balancer of
//! our own in the loop. The parsing is httparse's (hyper's parser); what is
//! written here is the framing around it: where a message ends (`head`,
//! `chunked`), which headers are per hop, and the relay loop.
//!
//! Scope: a request with a `Host` and an origin-form target, no body or a
//! `Content-Length` body up to `head::MAX_BODY`, no `Upgrade`/`Expect`/
//! `Transfer-Encoding`. Anything else (HTTP/1.0, WebSocket upgrades,
//! streamed uploads, malformed heads) hands the connection over to hyper
//! (`Ended::HandOver`) with the bytes read so far, and hyper serves the rest
//! of it exactly as before this path existed. Responses of every framing
//! are relayed (length, chunked, until close, none); a response the fast
//! path cannot parse fails that request with a 502.
//!
//! The balancing rules are those of the hyper path (`http`): P2C per
//! request, the endpoint counted in flight until the response's last byte
//! went out, retries on another endpoint for connect failures and for
//! idempotent requests that got no response byte, timeouts, metrics.

mod chunked;
mod head;

use crate::endpoints::{pick, ListenerShared};
use crate::lazy::LazyStream;
use crate::pool::{ConnCache, Pooled, SharedIdle, FRESH_IDLE_AGE};
use bytes::{Buf, BytesMut};
use chunked::{BadChunk, ChunkedEnd};
use head::{parse_request, parse_response, Framing, Parsed, RequestHead, ResponseHead};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Read buffers grow by this much at a time.
const READ_SIZE: usize = 8 * 1024;

/// How a client connection left the fast path.
pub(crate) enum Ended {
    /// It is finished (closed by either side, or after an error).
    Closed,
    /// hyper serves the rest: `rest` was read from the client and not yet
    /// served (it starts with a whole or partial request).
    HandOver { client: LazyStream, rest: BytesMut },
}

/// A kept-alive plain TCP connection to an endpoint.
pub(crate) struct RawUpstream {
    addr: SocketAddr,
    io: TcpStream,
    idle_since: Instant,
}

impl Pooled for RawUpstream {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn idle_since(&self) -> Instant {
        self.idle_since
    }

    fn set_idle_since(&mut self, at: Instant) {
        self.idle_since = at;
    }

    /// An idle connection has nothing to read; when tokio saw it become
    /// readable, a read tells whether that was the endpoint's close (or
    /// stray bytes, which make it unusable as well).
    fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                matches!(self.io.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}

/// Serves HTTP/1.1 requests on `client`, whose first bytes `start` were
/// read already, until it closes or sends something for hyper.
pub(crate) async fn serve(
    client: LazyStream,
    start: BytesMut,
    shared: &ListenerShared,
    pool: &Arc<SharedIdle<RawUpstream>>,
) -> Ended {
    let mut conn = ClientConn {
        client,
        buf: start,
        upstreams: ConnCache::new(pool.clone()),
        req: Vec::with_capacity(1024),
        out: Vec::with_capacity(1024),
        resp_buf: BytesMut::new(),
    };
    loop {
        let timeouts = shared.backends.load().timeouts;
        let head = match conn.read_request(timeouts.idle(), timeouts.request()).await {
            Ok(Some(h)) => h,
            Ok(None) => return Ended::Closed,
            Err(HandOver) => {
                return Ended::HandOver {
                    client: conn.client,
                    rest: conn.buf,
                }
            }
        };
        if !conn.forward(&head, shared).await {
            return Ended::Closed;
        }
    }
}

/// A request the fast path leaves to hyper.
struct HandOver;

/// One client connection's state on the fast path.
struct ClientConn {
    client: LazyStream,
    /// Read from the client and not yet forwarded.
    buf: BytesMut,
    upstreams: ConnCache<RawUpstream>,
    /// The current request as forwarded: head (rebuilt) and body.
    req: Vec<u8>,
    /// The current response head (rebuilt), with the first body bytes.
    out: Vec<u8>,
    /// Read from the endpoint.
    resp_buf: BytesMut,
}

/// What became of a request written to an endpoint's connection.
enum Sent {
    /// The connection failed before any byte of the request went out.
    Nothing,
    /// The connection failed or closed before any byte of a response.
    Unanswered,
    /// The final response head is in `resp_buf` (rebuilt in `out`).
    Answered(ResponseHead),
}

fn closed_early() -> ExchangeError {
    ExchangeError::Upstream("the endpoint closed the connection before responding".into())
}

/// Why an exchange with an endpoint failed.
enum ExchangeError {
    /// No connection: nothing reached the endpoint.
    Connect(io::Error),
    /// The request may have reached the endpoint.
    Upstream(String),
}

impl ClientConn {
    /// Reads until `buf` starts with a whole request the fast path serves
    /// (its head rebuilt, with its body, in `req`); None when the client
    /// closed, stalled or failed.
    async fn read_request(
        &mut self,
        idle: Duration,
        body_timeout: Duration,
    ) -> Result<Option<RequestHead>, HandOver> {
        let head = loop {
            if !self.buf.is_empty() {
                match parse_request(&self.buf, &mut self.req) {
                    Parsed::Done(h) => break h,
                    Parsed::HandOver => return Err(HandOver),
                    Parsed::Partial => {}
                }
            }
            // A client with no request in progress may wait up to the idle
            // timeout; one that started a head must finish it in as long.
            if !read_more(&mut self.client, &mut self.buf, idle).await {
                return Ok(None);
            }
        };
        let total = head.len + head.body_len;
        while self.buf.len() < total {
            if !read_more(&mut self.client, &mut self.buf, body_timeout).await {
                return Ok(None);
            }
        }
        self.req.extend_from_slice(&self.buf[head.len..total]);
        self.buf.advance(total);
        Ok(Some(head))
    }

    /// Forwards the request in `req` to an endpoint and relays its response.
    /// False when the client connection is done.
    async fn forward(&mut self, head: &RequestHead, shared: &ListenerShared) -> bool {
        let backends = shared.backends.load_full();
        if backends.endpoints.is_empty() {
            shared.metrics.no_endpoint_errors.inc();
            let msg = format!("no healthy endpoint for service {}\n", shared.service);
            return self
                .reply(503, "Service Unavailable", &msg, head.close)
                .await;
        }
        let max_retries = backends.retries as usize;
        let mut tried: Vec<usize> = Vec::new();
        loop {
            let Some(i) = pick(&backends.endpoints, &tried) else {
                let msg = format!("every endpoint of service {} failed\n", shared.service);
                return self.reply(502, "Bad Gateway", &msg, head.close).await;
            };
            let ep = &backends.endpoints[i];
            let in_flight = ep.enter_request();
            let can_retry_more =
                tried.len() < max_retries && tried.len() + 1 < backends.endpoints.len();
            ep.metrics.requests.inc();
            let start = Instant::now();
            let attempt = self.exchange(ep.ep.addr, head, backends.timeouts.connect(), || {
                ep.metrics.connections.inc();
            });
            match tokio::time::timeout(backends.timeouts.request(), attempt).await {
                Ok(Ok((up, resp))) => {
                    ep.connect_succeeded();
                    ep.metrics.latency.observe(start.elapsed().as_secs_f64());
                    let keep = self.relay(up, &resp, backends.timeouts.idle()).await;
                    drop(in_flight);
                    return keep;
                }
                Ok(Err(e)) => {
                    ep.metrics.errors.inc();
                    let connect = matches!(e, ExchangeError::Connect(_));
                    if connect {
                        ep.connect_failed();
                    }
                    let e = match e {
                        ExchangeError::Connect(e) => format!("connect: {e}"),
                        ExchangeError::Upstream(e) => e,
                    };
                    if can_retry_more && (connect || head.idempotent) {
                        tracing::debug!(endpoint = %ep.ep.id, "retrying on another endpoint after: {e}");
                        shared.metrics.retries.inc();
                        tried.push(i);
                        continue;
                    }
                    let msg = format!(
                        "service {}: endpoint {} failed: {e}\n",
                        shared.service, ep.ep.id
                    );
                    return self.reply(502, "Bad Gateway", &msg, true).await;
                }
                Err(_) => {
                    ep.metrics.errors.inc();
                    let msg = format!(
                        "service {}: endpoint {} sent no response within {} ms\n",
                        shared.service, ep.ep.id, backends.timeouts.request_ms
                    );
                    return self.reply(504, "Gateway Timeout", &msg, true).await;
                }
            }
        }
    }

    /// Sends the request to `addr` (on a kept-alive connection when there
    /// is one) and reads the response head into `resp_buf`; 1xx interim
    /// responses are relayed to the client on the way.
    async fn exchange(
        &mut self,
        addr: SocketAddr,
        head: &RequestHead,
        connect_timeout: Duration,
        on_connect: impl FnOnce(),
    ) -> Result<(RawUpstream, ResponseHead), ExchangeError> {
        // A request that may not be retried only goes on a connection the
        // endpoint is unlikely to be closing (see `FRESH_IDLE_AGE`).
        let max_age = if head.idempotent {
            Duration::MAX
        } else {
            FRESH_IDLE_AGE
        };
        if let Some(mut up) = self.upstreams.take(addr, max_age) {
            match self.send_and_read_head(&mut up, head).await? {
                Sent::Answered(resp) => return Ok((up, resp)),
                // Nothing reached the endpoint: a new connection is as
                // good as this one was, whatever the method.
                Sent::Nothing => {}
                // The endpoint closed the kept-alive connection before any
                // response byte (its keep-alive timeout raced our reuse):
                // a new connection is tried for requests that may be sent
                // twice. Others only take connections idle for a moment.
                Sent::Unanswered if head.idempotent => {}
                Sent::Unanswered => return Err(closed_early()),
            }
        }
        let mut up = connect(addr, connect_timeout)
            .await
            .map_err(ExchangeError::Connect)?;
        on_connect();
        match self.send_and_read_head(&mut up, head).await? {
            Sent::Answered(resp) => Ok((up, resp)),
            Sent::Nothing | Sent::Unanswered => Err(closed_early()),
        }
    }

    /// Writes `req` to `up` and reads the final response head.
    async fn send_and_read_head(
        &mut self,
        up: &mut RawUpstream,
        head: &RequestHead,
    ) -> Result<Sent, ExchangeError> {
        self.resp_buf.clear();
        let mut written = 0;
        while written < self.req.len() {
            match up.io.write(&self.req[written..]).await {
                Ok(n) if n > 0 => written += n,
                _ if written == 0 => return Ok(Sent::Nothing),
                _ => return Ok(Sent::Unanswered),
            }
        }
        loop {
            if !self.resp_buf.is_empty() {
                let parsed =
                    parse_response(&self.resp_buf, head.is_head, head.close, &mut self.out)
                        .map_err(|e| ExchangeError::Upstream(e.0))?;
                if let Some(resp) = parsed {
                    if !(100..200).contains(&resp.status) {
                        return Ok(Sent::Answered(resp));
                    }
                    // An interim response (100, 103): relayed, then the
                    // final one follows.
                    self.resp_buf.advance(resp.len);
                    self.client.write_all(&self.out).await.map_err(|e| {
                        ExchangeError::Upstream(format!("writing to the client: {e}"))
                    })?;
                    continue;
                }
            }
            let before = self.resp_buf.len();
            self.resp_buf.reserve(READ_SIZE);
            match up.io.read_buf(&mut self.resp_buf).await {
                Ok(0) | Err(_) if before == 0 => return Ok(Sent::Unanswered),
                Ok(0) => {
                    return Err(ExchangeError::Upstream(
                        "the endpoint closed the connection in the response head".into(),
                    ))
                }
                Err(e) => {
                    return Err(ExchangeError::Upstream(format!(
                        "reading the response: {e}"
                    )))
                }
                Ok(_) => {}
            }
        }
    }

    /// Relays the response whose head is in `out` (rebuilt) and `resp_buf`
    /// (as received, with what followed it). The connection goes back to
    /// the cache when the response ended cleanly and the endpoint keeps it.
    /// False when the client connection is done.
    async fn relay(&mut self, mut up: RawUpstream, resp: &ResponseHead, idle: Duration) -> bool {
        self.resp_buf.advance(resp.len);
        let relayed = match resp.framing {
            Framing::Empty => self.client.write_all(&self.out).await.map_err(Into::into),
            Framing::Length(n) => self.relay_length(&mut up, n, idle).await,
            Framing::Chunked => self.relay_chunked(&mut up, idle).await,
            Framing::UntilClose => self.relay_until_close(&mut up, idle).await,
        };
        match relayed {
            Ok(()) => {
                // Bytes after the response are not ours to explain.
                if resp.keep_alive && self.resp_buf.is_empty() {
                    self.upstreams.put(up);
                }
                !resp.close_client
            }
            Err(e) => {
                tracing::debug!(addr = %up.addr, "relaying a response: {e}");
                false
            }
        }
    }

    /// A body of `n` bytes: what came with the head goes out in the same
    /// write as the head.
    async fn relay_length(
        &mut self,
        up: &mut RawUpstream,
        n: u64,
        idle: Duration,
    ) -> Result<(), RelayError> {
        let first = (self.resp_buf.len() as u64).min(n) as usize;
        self.out.extend_from_slice(&self.resp_buf[..first]);
        self.resp_buf.advance(first);
        self.client.write_all(&self.out).await?;
        let mut left = n - first as u64;
        while left > 0 {
            read_body(up, &mut self.resp_buf, idle).await?;
            let take = (self.resp_buf.len() as u64).min(left) as usize;
            self.client.write_all(&self.resp_buf[..take]).await?;
            self.resp_buf.advance(take);
            left -= take as u64;
        }
        Ok(())
    }

    /// A chunked body, relayed framing and all.
    async fn relay_chunked(
        &mut self,
        up: &mut RawUpstream,
        idle: Duration,
    ) -> Result<(), RelayError> {
        let mut end = ChunkedEnd::default();
        let mut done = end.feed(&self.resp_buf)?;
        let first = done.unwrap_or(self.resp_buf.len());
        self.out.extend_from_slice(&self.resp_buf[..first]);
        self.resp_buf.advance(first);
        self.client.write_all(&self.out).await?;
        while done.is_none() {
            read_body(up, &mut self.resp_buf, idle).await?;
            done = end.feed(&self.resp_buf)?;
            let take = done.unwrap_or(self.resp_buf.len());
            self.client.write_all(&self.resp_buf[..take]).await?;
            self.resp_buf.advance(take);
        }
        Ok(())
    }

    /// A body that ends when the endpoint closes.
    async fn relay_until_close(
        &mut self,
        up: &mut RawUpstream,
        idle: Duration,
    ) -> Result<(), RelayError> {
        self.out.extend_from_slice(&self.resp_buf);
        self.resp_buf.clear();
        self.client.write_all(&self.out).await?;
        loop {
            match read_body(up, &mut self.resp_buf, idle).await {
                Ok(()) => {}
                Err(RelayError::Closed) => return Ok(()),
                Err(e) => return Err(e),
            }
            self.client.write_all(&self.resp_buf).await?;
            self.resp_buf.clear();
        }
    }

    /// Our own short plain-text response. False when the client connection
    /// is done (it asked to close, or `close`).
    async fn reply(&mut self, status: u16, reason: &str, msg: &str, close: bool) -> bool {
        let conn = if close { "connection: close\r\n" } else { "" };
        let text = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{conn}\r\n{msg}",
            msg.len()
        );
        self.client.write_all(text.as_bytes()).await.is_ok() && !close
    }
}

/// Why relaying a response body stopped early.
#[derive(Debug)]
enum RelayError {
    Io(io::Error),
    /// The endpoint closed the connection.
    Closed,
    /// The endpoint sent nothing for the idle timeout.
    Stalled,
    Chunk(BadChunk),
}

impl From<io::Error> for RelayError {
    fn from(e: io::Error) -> Self {
        RelayError::Io(e)
    }
}

impl From<BadChunk> for RelayError {
    fn from(e: BadChunk) -> Self {
        RelayError::Chunk(e)
    }
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayError::Io(e) => write!(f, "{e}"),
            RelayError::Closed => f.write_str("the endpoint closed the connection mid-body"),
            RelayError::Stalled => f.write_str("the endpoint stalled mid-body"),
            RelayError::Chunk(e) => write!(f, "bad chunked body: {}", e.0),
        }
    }
}

/// Reads more of a response body into `buf` (empty on entry).
async fn read_body(
    up: &mut RawUpstream,
    buf: &mut BytesMut,
    idle: Duration,
) -> Result<(), RelayError> {
    buf.reserve(READ_SIZE);
    match tokio::time::timeout(idle, up.io.read_buf(buf)).await {
        Ok(Ok(0)) => Err(RelayError::Closed),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(RelayError::Stalled),
    }
}

/// Reads more from the client into `buf` within `timeout`; false when the
/// client closed, failed or stalled.
async fn read_more(client: &mut LazyStream, buf: &mut BytesMut, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, client.read_buf(buf)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// A new connection to `addr`.
async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<RawUpstream> {
    let io = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {} ms", timeout.as_millis()),
            )
        })??;
    io.set_nodelay(true)?;
    Ok(RawUpstream {
        addr,
        io,
        idle_since: Instant::now(),
    })
}
