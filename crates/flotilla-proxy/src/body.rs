//! The one body type the proxy sends both ways: a buffered (replayable)
//! body, or a streamed one that keeps its endpoint's in-flight count until
//! the last byte went through (or the body was dropped).

use crate::endpoints::InFlight;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

pub(crate) enum ProxyBody {
    /// Buffered: small request bodies kept for retries, and our own replies.
    Full(Option<Bytes>),
    /// Streamed from the other side.
    Stream {
        body: Incoming,
        _in_flight: Option<InFlight>,
    },
}

impl ProxyBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        ProxyBody::Full((!b.is_empty()).then_some(b))
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
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Stream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Stream { body, .. } => body.size_hint(),
        }
    }
}
