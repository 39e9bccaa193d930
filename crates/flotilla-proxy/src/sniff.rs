//! Telling an h2 (prior knowledge) client from an HTTP/1.x one by the first
//! bytes of its connection, without an extra system call.
//!
//! hyper-util's `auto::Builder` does the same job, but reads exactly the 24
//! bytes of the h2 preface first and the rest of the request head with a
//! second `recv`: one more system call per client connection, about a tenth
//! of the proxy's calls when every request comes on a new connection. Here
//! the first read takes what the client sent (normally the whole request
//! head), and the bytes read go in front of the socket's (`Prefixed`) for
//! hyper to parse.

use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What a client connection starts with when it speaks h2 without
/// negotiation (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The first read's size: a usual request head fits; the rest of a bigger
/// one is read by hyper. Read into the connection future's own memory, so a
/// connection costs only an allocation of what arrived.
const FIRST_READ: usize = 2 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Version {
    H1,
    H2,
}

/// Which protocol `start` (the connection's first bytes) speaks; None while
/// it is a proper prefix of the h2 preface (more bytes decide).
fn version(start: &[u8]) -> Option<Version> {
    let n = start.len().min(H2_PREFACE.len());
    if start[..n] != H2_PREFACE[..n] {
        Some(Version::H1)
    } else if n == H2_PREFACE.len() {
        Some(Version::H2)
    } else {
        None
    }
}

/// Reads the connection's first bytes and returns its protocol with the
/// stream, those bytes put back in front. None when the client closed (or
/// failed) before deciding.
pub(crate) async fn sniff<S: AsyncRead + Unpin>(mut io: S) -> io::Result<(Version, Prefixed<S>)> {
    let mut buf = [0u8; FIRST_READ];
    let mut filled = 0;
    loop {
        let n = io.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
        if let Some(v) = version(&buf[..filled]) {
            let pre = Bytes::copy_from_slice(&buf[..filled]);
            return Ok((v, Prefixed { pre, io }));
        }
        // Undecided means fewer than 24 bytes so far: there is room left.
    }
}

/// A stream with bytes already read from it put back in front.
pub(crate) struct Prefixed<S> {
    pre: Bytes,
    io: S,
}

impl<S> Prefixed<S> {
    pub fn new(pre: Bytes, io: S) -> Self {
        Prefixed { pre, io }
    }

    /// The bytes not read yet from the front, and the stream.
    pub fn into_parts(self) -> (Bytes, S) {
        (self.pre, self.io)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pre.has_remaining() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn the_first_bytes_decide() {
        assert_eq!(version(b"GET / HTTP/1.1\r\n"), Some(Version::H1));
        assert_eq!(version(b"P"), None);
        assert_eq!(version(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(version(b"PUT /x HTTP/1.1\r\n"), Some(Version::H1));
        assert_eq!(version(H2_PREFACE), Some(Version::H2));
        let mut more = H2_PREFACE.to_vec();
        more.extend_from_slice(b"\0\0\x12\x04");
        assert_eq!(version(&more), Some(Version::H2));
    }

    #[tokio::test]
    async fn bytes_read_to_decide_are_read_again_then_the_rest() {
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            // The preface in pieces: two reads are needed to decide.
            client.write_all(&H2_PREFACE[..5]).await.unwrap();
            tokio::task::yield_now().await;
            client.write_all(&H2_PREFACE[5..]).await.unwrap();
            client.write_all(b"frames").await.unwrap();
        });
        let (v, mut io) = sniff(server).await.unwrap();
        writer.await.unwrap();
        assert_eq!(v, Version::H2);
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        assert_eq!(&all[..H2_PREFACE.len()], H2_PREFACE);
        assert_eq!(&all[H2_PREFACE.len()..], b"frames");
    }

    #[tokio::test]
    async fn a_client_that_closes_at_once_is_an_error() {
        let (client, server) = tokio::io::duplex(64);
        drop(client);
        assert!(sniff(server).await.is_err());
    }
}
