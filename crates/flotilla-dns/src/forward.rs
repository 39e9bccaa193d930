//! Relaying a query we do not answer to the upstream resolvers.
//!
//! The client's raw query bytes are relayed and the upstream's raw answer is returned, so
//! everything we do not model (EDNS options, DNSSEC records, odd record types) passes through
//! untouched. Only the message id is swapped for a fresh random one on the way out (so an
//! off-path attacker cannot guess it from the client's) and restored on the way back.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout_at, Instant};

/// Total time a forwarded query may take across all upstreams before the client gets SERVFAIL.
pub const FORWARD_BUDGET: Duration = Duration::from_secs(2);

/// DNS header length; anything shorter is not a DNS message.
const HEADER_LEN: usize = 12;

/// Sends `query` to each upstream in turn until one answers, splitting what is left of `budget`
/// evenly over the upstreams not yet tried (a dead first resolver does not eat the whole budget).
/// Starts with the upstream at index `preferred` (the last one that answered) and stores the
/// one that answers there, so a dead resolver costs one slow query, not every query.
/// Uses UDP unless `over_tcp`, and retries over TCP when the UDP answer is truncated.
pub async fn forward(
    query: &[u8],
    upstreams: &[SocketAddr],
    preferred: &AtomicUsize,
    over_tcp: bool,
    budget: Duration,
) -> io::Result<Vec<u8>> {
    if query.len() < HEADER_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "query shorter than a DNS header",
        ));
    }
    if upstreams.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no upstream resolvers configured and none in /etc/resolv.conf",
        ));
    }
    let client_id = [query[0], query[1]];
    let mut outgoing = query.to_vec();
    let deadline = Instant::now() + budget;
    let mut last_error = None;
    let start = preferred.load(Ordering::Relaxed) % upstreams.len();
    for index in 0..upstreams.len() {
        let which = (start + index) % upstreams.len();
        let upstream = &upstreams[which];
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(upstreams.len() - index).unwrap_or(u32::MAX);
        let attempt_deadline = Instant::now() + share;
        let id: [u8; 2] = rand::random::<u16>().to_be_bytes();
        outgoing[..2].copy_from_slice(&id);
        let result = timeout_at(attempt_deadline, async {
            if !over_tcp {
                let answer = udp_exchange(&outgoing, *upstream, id).await?;
                if !is_truncated(&answer) {
                    return Ok(answer);
                }
            }
            tcp_exchange(&outgoing, *upstream, id).await
        })
        .await;
        match result {
            Ok(Ok(mut answer)) => {
                answer[..2].copy_from_slice(&client_id);
                preferred.store(which, Ordering::Relaxed);
                return Ok(answer);
            }
            Ok(Err(err)) => {
                tracing::debug!(%upstream, error = %err, "upstream resolver failed");
                last_error = Some(err);
            }
            Err(_) => {
                tracing::debug!(%upstream, "upstream resolver timed out");
                last_error = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("upstream {upstream} did not answer in time"),
                ));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no upstream answered")))
}

fn is_truncated(message: &[u8]) -> bool {
    message.len() > 2 && message[2] & 0x02 != 0
}

/// Whether `message` is a response (QR bit) to our query with id `id`.
fn answers_id(message: &[u8], id: [u8; 2]) -> bool {
    message.len() >= HEADER_LEN && message[..2] == id && message[2] & 0x80 != 0
}

async fn udp_exchange(query: &[u8], upstream: SocketAddr, id: [u8; 2]) -> io::Result<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await?;
    // connect() makes the kernel drop datagrams from anyone but the upstream and reports
    // ICMP port-unreachable as an error, so a dead resolver fails fast.
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let len = socket.recv(&mut buf).await?;
        if answers_id(&buf[..len], id) {
            buf.truncate(len);
            return Ok(buf);
        }
        // A stale or forged datagram: keep waiting for ours until the caller's deadline.
    }
}

async fn tcp_exchange(query: &[u8], upstream: SocketAddr, id: [u8; 2]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    write_framed(&mut stream, query).await?;
    let answer = read_framed(&mut stream).await?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("upstream {upstream} closed the TCP connection without answering"),
        )
    })?;
    if !answers_id(&answer, id) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("upstream {upstream} answered over TCP with a mismatched id"),
        ));
    }
    Ok(answer)
}

/// Writes one DNS-over-TCP message: 2-byte big-endian length, then the message (RFC 1035 4.2.2).
pub async fn write_framed<W: AsyncWriteExt + Unpin>(
    writer: &mut W,
    message: &[u8],
) -> io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "DNS message longer than 65535 bytes",
        )
    })?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    writer.write_all(&framed).await
}

/// Reads one DNS-over-TCP message; `None` on a clean end of stream before a new message.
pub async fn read_framed<R: AsyncReadExt + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    reader.read_exact(&mut message).await?;
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_our_answer_and_truncation() {
        let mut answer = vec![0xab, 0xcd, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(answers_id(&answer, [0xab, 0xcd]));
        assert!(!answers_id(&answer, [0xab, 0xce]));
        assert!(!answers_id(&answer[..11], [0xab, 0xcd]));
        assert!(!is_truncated(&answer));
        answer[2] |= 0x02;
        assert!(is_truncated(&answer));
        answer[2] &= !0x80; // a query, not an answer
        assert!(!answers_id(&answer, [0xab, 0xcd]));
    }

    #[tokio::test]
    async fn tcp_framing_round_trips_and_reports_clean_eof() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        write_framed(&mut client, b"hello").await.unwrap();
        drop(client);
        assert_eq!(
            read_framed(&mut server).await.unwrap(),
            Some(b"hello".to_vec())
        );
        assert_eq!(read_framed(&mut server).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_frame_cut_short_is_an_error() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(&[0, 10, 1, 2, 3]).await.unwrap();
        drop(client);
        assert!(read_framed(&mut server).await.is_err());
    }

    #[tokio::test]
    async fn no_upstreams_or_a_short_query_fail_without_io() {
        let preferred = AtomicUsize::new(0);
        let query = [0u8; 12];
        let err = forward(&query, &[], &preferred, false, FORWARD_BUDGET)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let err = forward(&query[..5], &[upstream], &preferred, false, FORWARD_BUDGET)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
