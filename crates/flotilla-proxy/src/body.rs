//! The one body type the proxy sends both ways: a buffered (replayable)
//! body, or a streamed one that keeps its endpoint's in-flight count until
//! the last byte went through (or the body was dropped). A response body
//! streamed from an endpoint also drives that upstream connection and gives
//! it back to its client connection's cache once complete.

use crate::endpoints::InFlight;
use crate::upstream::{Upstream, UpstreamConns};
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub(crate) enum ProxyBody {
    /// Buffered: small request bodies kept for retries, and our own replies.
    Full(Option<Bytes>),
    /// Streamed from the other side.
    Stream {
        body: Incoming,
        _in_flight: Option<InFlight>,
    },
    /// A response streamed from an endpoint over `conn`, which this body
    /// drives; returned to `cache` once the body is complete, dropped (so
    /// closed) if the body is dropped before that.
    Upstream {
        body: Incoming,
        conn: Option<Upstream>,
        cache: Arc<UpstreamConns>,
        _in_flight: InFlight,
    },
}

impl ProxyBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        ProxyBody::Full((!b.is_empty()).then_some(b))
    }

    /// An endpoint's response body; gives `conn` back at once when there
    /// is no body to stream.
    pub fn upstream(
        body: Incoming,
        conn: Upstream,
        cache: Arc<UpstreamConns>,
        in_flight: InFlight,
    ) -> Self {
        let conn = if body.is_end_stream() {
            cache.put(conn);
            None
        } else {
            Some(conn)
        };
        ProxyBody::Upstream {
            body,
            conn,
            cache,
            _in_flight: in_flight,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Stream { body, .. } => Pin::new(body).poll_frame(cx),
            ProxyBody::Upstream {
                body, conn, cache, ..
            } => {
                // Read what the connection has for the body first.
                if conn.as_mut().is_some_and(|c| c.poll_conn(cx).is_ready()) {
                    *conn = None;
                }
                let r = Pin::new(&mut *body).poll_frame(cx);
                let done = match &r {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
                    Poll::Ready(Some(Err(_))) => {
                        *conn = None;
                        false
                    }
                    Poll::Pending => false,
                };
                if done {
                    if let Some(c) = conn.take() {
                        cache.put(c);
                    }
                }
                r
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Stream { body, .. } | ProxyBody::Upstream { body, .. } => {
                body.is_end_stream()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Stream { body, .. } | ProxyBody::Upstream { body, .. } => body.size_hint(),
        }
    }
}
