//! Telling an h2 (prior knowledge) client from an HTTP/1.x one by the first
//! bytes of its connection, without an extra system call.
//!
//! hyper-util's `auto::Builder` does the same job, but reads exactly the 24
//! bytes of the h2 preface first and the rest of the request head with a
//! second `recv`: one more system call per client connection, about a tenth
//! of the proxy's calls when every request comes on a new connection. Here
//! the first read takes what the client sent (normally the whole request
//! head); the HTTP/1.1 fast path goes on from those bytes, and hyper gets
//! them in front of the socket's (`Prefixed`).

use crate::lazy::LazyStream;
use bytes::BytesMut;
use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a client connection starts with when it speaks h2 without
/// negotiation (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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

/// Reads the connection's first bytes into `start` and returns its
/// protocol. An error when the client closed (or failed) before deciding.
pub(crate) async fn sniff(io: &mut LazyStream, start: &mut BytesMut) -> io::Result<Version> {
    loop {
        if io.read_buf(start).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(v) = version(start) {
            return Ok(v);
        }
        // Undecided means fewer than 24 bytes so far: read more.
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
    async fn reads_until_the_first_bytes_decide() {
        use std::io::Write;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        let writer = std::thread::spawn(move || {
            // The preface in pieces: two reads are needed to decide.
            client.write_all(&H2_PREFACE[..5]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(30));
            client.write_all(&H2_PREFACE[5..]).unwrap();
            client
        });
        let mut io = LazyStream::new(s);
        let mut start = BytesMut::new();
        assert_eq!(sniff(&mut io, &mut start).await.unwrap(), Version::H2);
        assert_eq!(&start[..], H2_PREFACE);
        drop(writer.join().unwrap());
    }

    #[tokio::test]
    async fn a_client_that_closes_at_once_is_an_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        drop(std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap());
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        let mut start = BytesMut::new();
        assert!(sniff(&mut LazyStream::new(s), &mut start).await.is_err());
    }
}
