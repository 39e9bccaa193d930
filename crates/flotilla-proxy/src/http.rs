//! L7: HTTP/1.1 and h2 (prior knowledge) from clients, balanced per request
//! over keep-alive HTTP/1.1 connections to the endpoints (kept per client
//! connection, then shared by the listener; see `upstream`), with retries
//! on another endpoint for connect failures and for idempotent requests
//! that failed before any response byte arrived.

use crate::body::ProxyBody;
use crate::endpoints::{pick, InFlight, ListenerShared};
use crate::h1;
use crate::lazy::LazyStream;
use crate::pool::{WorkerPools, FRESH_IDLE_AGE};
use crate::sniff::{sniff, Prefixed, Version};
use crate::upstream::{SendError, Upstream, UpstreamConns};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::server::conn::{http1, http2};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request bodies up to this size (with a known length) are buffered so the
/// request can be replayed on another endpoint; larger or streamed bodies
/// are forwarded as they come and never retried.
const MAX_REPLAY_BODY: u64 = 64 * 1024;

/// Serves one accepted client connection until it closes: HTTP/1.1 on the
/// fast path (`h1`) until it meets a request it leaves to hyper, h2 and the
/// rest of such HTTP/1.1 connections through hyper.
pub(crate) async fn serve_connection(
    stream: std::net::TcpStream,
    shared: Arc<ListenerShared>,
    pools: Arc<WorkerPools>,
) {
    let timeouts = shared.backends.load().timeouts;
    let mut client = LazyStream::new(stream);
    let mut start = BytesMut::new();
    // A client that connects and sends nothing is closed like an idle one.
    let version = match tokio::time::timeout(timeouts.idle(), sniff(&mut client, &mut start)).await
    {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::debug!("client connection ended before its first request: {e}");
            return;
        }
        Err(_) => return,
    };
    let (client, rest) = match version {
        Version::H1 => match crate::h1::serve(client, start, &shared, &pools.raw).await {
            h1::Ended::Closed => return,
            h1::Ended::HandOver { client, rest } => (client, rest),
        },
        Version::H2 => (client, start),
    };
    let io = match client.into_tokio() {
        Ok(s) => Prefixed::new(rest.freeze(), s),
        Err(e) => {
            tracing::warn!("serving a client connection: {e}");
            return;
        }
    };
    let conn = Arc::new(Connection {
        shared,
        upstream: Arc::new(UpstreamConns::new(pools.hyper.clone())),
    });
    // One clone of this connection's own state per request: its reference
    // count is touched by this thread only, unlike the listener's.
    let svc = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(handle(&conn.shared, &conn.upstream, req).await) }
    });
    let io = TokioIo::new(io);
    let served = match version {
        Version::H1 => {
            http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeouts.idle())
                .keep_alive(true)
                // One `send` of head and body rather than a `writev` (the
                // bodies proxied are mostly small; a big one is copied in
                // buffer-sized pieces).
                .writev(false)
                .serve_connection(io, svc)
                .await
        }
        Version::H2 => {
            http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, svc)
                .await
        }
    };
    if let Err(e) = served {
        tracing::debug!("client connection ended with an error: {e}");
    }
}

/// What the requests of one client connection share.
struct Connection {
    shared: Arc<ListenerShared>,
    upstream: Arc<UpstreamConns>,
}

fn text(status: StatusCode, msg: String) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(msg));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Methods whose requests may be sent twice (RFC 9110 §9.2.2).
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// The connection-specific headers (RFC 9110 §7.6.1), besides those that
/// `Connection` names.
fn is_hop_header(name: &header::HeaderName) -> bool {
    [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ]
    .contains(name)
        || name == "keep-alive"
        || name == "proxy-connection"
}

/// Removes connection-specific headers (RFC 9110 §7.6.1): they describe one
/// hop, and h2 forbids them outright.
fn strip_hop_headers(h: &mut HeaderMap) {
    // Most messages have none: one pass over their few names is cheaper
    // than eight hashed removals of names that are not there.
    if !h.keys().any(is_hop_header) {
        return;
    }
    if let Some(c) = h.remove(header::CONNECTION) {
        if let Ok(c) = c.to_str() {
            for name in c.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                h.remove(name);
            }
        }
    }
    for name in [
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ] {
        h.remove(name);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

/// What the request's body is, for forwarding and possibly replaying.
enum RequestBody {
    /// Buffered (or empty): can be sent again.
    Replayable(Option<Bytes>),
    /// Streamed: sent once, never retried.
    Once(Option<Incoming>),
}

async fn handle(
    shared: &ListenerShared,
    conns: &Arc<UpstreamConns>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let backends = shared.backends.load_full();
    if backends.endpoints.is_empty() {
        shared.metrics.no_endpoint_errors.inc();
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no healthy endpoint for service {}\n", shared.service),
        );
    }
    let (mut parts, body) = req.into_parts();
    strip_hop_headers(&mut parts.headers);
    if !parts.headers.contains_key(header::HOST) {
        // h2 carries the host in :authority; HTTP/1.1 upstream needs Host.
        if let Some(v) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, v);
        }
    }
    let mut body = if body.is_end_stream() {
        RequestBody::Replayable(None)
    } else if body
        .size_hint()
        .exact()
        .is_some_and(|n| n <= MAX_REPLAY_BODY)
    {
        match tokio::time::timeout(backends.timeouts.request(), body.collect()).await {
            Ok(Ok(b)) => RequestBody::Replayable(Some(b.to_bytes())),
            Ok(Err(e)) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body failed: {e}\n"),
                )
            }
            Err(_) => {
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time\n".into(),
                )
            }
        }
    } else {
        RequestBody::Once(Some(body))
    };
    let idempotent = is_idempotent(&parts.method);
    // Upstream requests carry the origin form (`/path?query`).
    let origin_form = Uri::from(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    let max_retries = backends.retries as usize;
    let mut tried: Vec<usize> = Vec::new();
    loop {
        let Some(i) = pick(&backends.endpoints, &tried) else {
            // Unreachable in practice: we stop retrying before running out.
            return text(
                StatusCode::BAD_GATEWAY,
                format!("every endpoint of service {} failed\n", shared.service),
            );
        };
        let ep = &backends.endpoints[i];
        let in_flight = ep.enter_request();
        let can_retry_more =
            tried.len() < max_retries && tried.len() + 1 < backends.endpoints.len();
        let (up_body, replayable) = match &mut body {
            RequestBody::Replayable(b) => (ProxyBody::Full(b.clone()), true),
            RequestBody::Once(b) => match b.take() {
                Some(b) => (
                    ProxyBody::Stream {
                        body: b,
                        _in_flight: None,
                    },
                    false,
                ),
                None => unreachable!("a streamed body is never retried"),
            },
        };
        let mut up = Request::new(up_body);
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = origin_form.clone();
        *up.headers_mut() = if replayable && can_retry_more {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        if !up.headers().contains_key(header::HOST) {
            // HTTP/1.1 requires Host; name the endpoint as a client would.
            up.headers_mut().insert(header::HOST, ep.host.clone());
        }
        ep.metrics.requests.inc();
        let start = Instant::now();
        // A request that may not be retried only goes on a connection the
        // endpoint is unlikely to be closing (see `FRESH_IDLE_AGE`).
        let max_idle_age = if idempotent && replayable {
            Duration::MAX
        } else {
            FRESH_IDLE_AGE
        };
        let attempt = conns.send(
            ep.ep.addr,
            up,
            backends.timeouts.connect(),
            max_idle_age,
            || {
                ep.metrics.connections.inc();
            },
        );
        match tokio::time::timeout(backends.timeouts.request(), attempt).await {
            Ok(Ok((resp, conn))) => {
                ep.connect_succeeded();
                ep.metrics.latency.observe(start.elapsed().as_secs_f64());
                return response(resp, conn, conns, in_flight);
            }
            Ok(Err(e)) => {
                ep.metrics.errors.inc();
                let connect = matches!(e, SendError::Connect(_));
                if connect {
                    ep.connect_failed();
                }
                if replayable && can_retry_more && (connect || idempotent) {
                    tracing::debug!(endpoint = %ep.ep.id, "retrying on another endpoint after: {e:#}");
                    shared.metrics.retries.inc();
                    tried.push(i);
                    continue;
                }
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "service {}: endpoint {} failed: {}\n",
                        shared.service, ep.ep.id, e
                    ),
                );
            }
            Err(_) => {
                ep.metrics.errors.inc();
                return text(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "service {}: endpoint {} sent no response within {} ms\n",
                        shared.service, ep.ep.id, backends.timeouts.request_ms
                    ),
                );
            }
        }
    }
}

/// The upstream response, streamed to the client; the endpoint stays in
/// flight until the body is done, and the connection goes back to the
/// client connection's cache then.
fn response(
    resp: Response<Incoming>,
    conn: Upstream,
    conns: &Arc<UpstreamConns>,
    in_flight: InFlight,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_headers(&mut parts.headers);
    Response::from_parts(
        parts,
        ProxyBody::upstream(body, conn, conns.clone(), in_flight),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_headers_and_those_named_by_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-end", HeaderValue::from_static("2"));
        strip_hop_headers(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-end"));
        let mut h = HeaderMap::new();
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::HOST, HeaderValue::from_static("a"));
        strip_hop_headers(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::HOST));
    }

    #[test]
    fn only_idempotent_methods_are_retried() {
        assert!(is_idempotent(&Method::GET) && is_idempotent(&Method::PUT));
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
    }
}
