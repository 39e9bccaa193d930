//! A client socket registered with tokio only once an operation on it
//! would block.
//!
//! Registering a socket costs an `epoll_ctl(ADD)` and dropping it an
//! `epoll_ctl(DEL)`: two of the proxy's ten system calls per request when
//! each request comes on a new connection. Such a connection usually has its
//! request waiting when we first read it and room for the response when we
//! write it, so it never needs to be polled at all; HAProxy likewise only
//! subscribes to a file descriptor after an operation on it returned
//! EAGAIN. tokio has no "register on first WouldBlock" mode, hence this.

use bytes::BytesMut;
use std::io::{self, Read, Write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes a read asks for at most when it is not registered yet.
const READ_SIZE: usize = 8 * 1024;

pub(crate) enum LazyStream {
    /// Not registered: operations are plain non-blocking system calls.
    Plain(std::net::TcpStream),
    Registered(TcpStream),
    /// Registration failed; every operation reports it.
    Failed,
}

impl LazyStream {
    /// `s` must be non-blocking.
    pub fn new(s: std::net::TcpStream) -> Self {
        LazyStream::Plain(s)
    }

    /// The tokio stream, registering it first if needed.
    fn registered(&mut self) -> io::Result<&mut TcpStream> {
        if let LazyStream::Plain(_) = self {
            let LazyStream::Plain(s) = std::mem::replace(self, LazyStream::Failed) else {
                unreachable!()
            };
            *self = LazyStream::Registered(TcpStream::from_std(s)?);
        }
        match self {
            LazyStream::Registered(s) => Ok(s),
            _ => Err(io::Error::other("registering the socket with tokio failed")),
        }
    }

    /// Reads what is available into `buf`'s spare room, waiting if nothing
    /// is; Ok(0) at end of stream.
    pub async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        if let LazyStream::Plain(s) = self {
            let len = buf.len();
            // Zeroed first: std's `read` takes initialised memory. Only the
            // first read or two of a connection come here.
            buf.resize(len + READ_SIZE, 0);
            let r = s.read(&mut buf[len..]);
            buf.truncate(len + *r.as_ref().unwrap_or(&0));
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
        buf.reserve(READ_SIZE);
        self.registered()?.read_buf(buf).await
    }

    /// Writes all of `data`, waiting for room when the socket has none.
    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        if let LazyStream::Plain(s) = self {
            while !data.is_empty() {
                match s.write(data) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => data = &data[n..],
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if data.is_empty() {
                return Ok(());
            }
        }
        self.registered()?.write_all(data).await
    }

    /// The tokio stream, for code that needs `AsyncRead`/`AsyncWrite`.
    pub fn into_tokio(mut self) -> io::Result<TcpStream> {
        self.registered()?;
        match self {
            LazyStream::Registered(s) => Ok(s),
            _ => unreachable!("registered above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_and_writes_before_and_after_registration() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        let mut lazy = LazyStream::new(s);
        peer.write_all(b"first").unwrap();
        // Give loopback a moment so the bytes are there for a plain read.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut buf = BytesMut::new();
        assert_eq!(lazy.read_buf(&mut buf).await.unwrap(), 5);
        assert!(
            matches!(lazy, LazyStream::Plain(_)),
            "no registration needed"
        );
        lazy.write_all(b"reply").await.unwrap();
        assert!(matches!(lazy, LazyStream::Plain(_)));
        // Nothing to read: registers and waits.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            peer.write_all(b"second").unwrap();
            let mut got = [0u8; 5];
            peer.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"reply");
            peer
        });
        buf.clear();
        assert_eq!(lazy.read_buf(&mut buf).await.unwrap(), 6);
        assert_eq!(&buf[..], b"second");
        assert!(matches!(lazy, LazyStream::Registered(_)));
        let mut peer = writer.join().unwrap();
        drop(lazy);
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
}
