//! L4 UDP: each client address gets a session bound to one endpoint (its own
//! connected upstream socket), forgotten after `idle_ms` without traffic in
//! either direction.

use crate::endpoints::{pick, EndpointState, InFlight, ListenerShared};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

struct Session {
    upstream: UdpSocket,
    /// Milliseconds since `born` of the last datagram either way.
    last_ms: AtomicU64,
    born: Instant,
}

impl Session {
    fn touch(&self) {
        self.last_ms
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, (Arc<Session>, AbortHandle)>>>;

/// Ends every session when the listener's receive task ends (listener
/// closed): with nothing forwarding client datagrams any more, a session
/// would only keep its upstream socket and in-flight count alive.
struct EndSessionsOnDrop(Sessions);

impl Drop for EndSessionsOnDrop {
    fn drop(&mut self) {
        for (_, (_, task)) in self.0.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            task.abort();
        }
    }
}

/// Receives client datagrams on `sock` until the task is aborted.
pub(crate) async fn serve(sock: Arc<UdpSocket>, shared: Arc<ListenerShared>) {
    let sessions: Sessions = Arc::default();
    let _end = EndSessionsOnDrop(sessions.clone());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; the
                // socket itself is still fine.
                tracing::debug!("udp recv: {e}");
                continue;
            }
        };
        let existing = sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .map(|(s, _)| s.clone());
        let session = match existing {
            Some(s) => s,
            None => match open_session(&sock, &shared, &sessions, peer).await {
                Some(s) => s,
                None => continue,
            },
        };
        session.touch();
        if let Err(e) = session.upstream.send(&buf[..n]).await {
            tracing::debug!("udp send upstream: {e}");
        }
    }
}

async fn open_session(
    sock: &Arc<UdpSocket>,
    shared: &Arc<ListenerShared>,
    sessions: &Sessions,
    peer: SocketAddr,
) -> Option<Arc<Session>> {
    let backends = shared.backends.load_full();
    let Some(i) = pick(&backends.endpoints, &[]) else {
        shared.metrics.no_endpoint_errors.inc();
        return None;
    };
    let ep = backends.endpoints[i].clone();
    let local: SocketAddr = if ep.ep.addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let upstream = match UdpSocket::bind(local).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!("udp: binding an upstream socket failed: {e}");
            ep.metrics.errors.inc();
            return None;
        }
    };
    if let Err(e) = upstream.connect(ep.ep.addr).await {
        tracing::debug!(endpoint = %ep.ep.id, "udp connect: {e}");
        ep.metrics.errors.inc();
        ep.connect_failed();
        return None;
    }
    ep.metrics.connections.inc();
    let in_flight = ep.enter();
    let session = Arc::new(Session {
        upstream,
        last_ms: AtomicU64::new(0),
        born: Instant::now(),
    });
    let mut map = sessions.lock().unwrap_or_else(|p| p.into_inner());
    // Spawned under the lock so the task cannot look itself up before it is
    // in the map.
    let task = tokio::spawn(replies(
        sock.clone(),
        session.clone(),
        sessions.clone(),
        peer,
        ep,
        in_flight,
        backends.timeouts.idle(),
    ));
    map.insert(peer, (session.clone(), task.abort_handle()));
    Some(session)
}

/// Forwards the endpoint's replies to the client until the session idles out.
async fn replies(
    sock: Arc<UdpSocket>,
    session: Arc<Session>,
    sessions: Sessions,
    peer: SocketAddr,
    ep: Arc<EndpointState>,
    in_flight: InFlight,
    idle: Duration,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let wait = idle.saturating_sub(session.idle_for());
        if wait.is_zero() {
            break;
        }
        match tokio::time::timeout(wait, session.upstream.recv(&mut buf)).await {
            Err(_) => continue, // re-check: the client may have sent meanwhile
            Ok(Ok(n)) => {
                session.touch();
                if let Err(e) = sock.send_to(&buf[..n], peer).await {
                    tracing::debug!("udp send to client {peer}: {e}");
                }
            }
            Ok(Err(e)) => {
                // ECONNREFUSED: nothing listens there (any more).
                tracing::debug!(endpoint = %ep.ep.id, "udp recv upstream: {e}");
                ep.metrics.errors.inc();
                ep.connect_failed();
                break;
            }
        }
    }
    let mut map = sessions.lock().unwrap_or_else(|p| p.into_inner());
    if map
        .get(&peer)
        .is_some_and(|(s, _)| Arc::ptr_eq(s, &session))
    {
        map.remove(&peer);
    }
    drop(in_flight);
}
