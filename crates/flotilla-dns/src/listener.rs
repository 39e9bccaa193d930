//! One listen address: a UDP socket and a TCP listener on the same IP and port, answering from
//! one view. Dropping a [`Listener`] aborts its tasks, which closes both sockets and every open
//! TCP connection and in-flight forward (they live in `JoinSet`s owned by those tasks).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use crate::forward::{read_framed, write_framed};
use crate::reply::{forward_reply, local_reply, Reply};
use crate::state::{Shared, ViewSlot};

/// Forwards in flight per UDP socket; beyond this, queries are dropped (the client retries)
/// rather than letting a flood open unbounded upstream sockets.
const MAX_UDP_FORWARDS: usize = 1024;
/// Open TCP connections per listener; beyond this, new connections are closed at once.
const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP client idle this long is disconnected (RFC 7766 suggests seconds, not minutes).
const TCP_IDLE: Duration = Duration::from_secs(10);
pub struct Listener {
    pub view: Arc<ViewSlot>,
    pub local: SocketAddr,
    /// UDP and TCP serving tasks; `None` only after `close` took them.
    tasks: Option<(JoinHandle<()>, JoinHandle<()>)>,
}

impl Listener {
    /// Binds UDP on `configured`, then TCP on the same IP and the port UDP actually got (they
    /// differ only with port 0, in tests; a few retries cover the port being taken for TCP).
    pub async fn bind(
        configured: SocketAddr,
        view: Arc<ViewSlot>,
        shared: Arc<Shared>,
    ) -> io::Result<Listener> {
        let attempts = if configured.port() == 0 { 8 } else { 1 };
        let mut last_error = None;
        for _ in 0..attempts {
            let udp = UdpSocket::bind(configured)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("binding UDP {configured}: {e}")))?;
            let local = udp.local_addr()?;
            match TcpListener::bind(local).await {
                Ok(tcp) => {
                    let udp_task = tokio::spawn(serve_udp(udp, view.clone(), shared.clone()));
                    let tcp_task = tokio::spawn(serve_tcp(tcp, view.clone(), shared));
                    return Ok(Listener {
                        view,
                        local,
                        tasks: Some((udp_task, tcp_task)),
                    });
                }
                Err(e) => {
                    last_error = Some(io::Error::new(
                        e.kind(),
                        format!("binding TCP {local} (UDP was bound): {e}"),
                    ))
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("TCP bind failed")))
    }

    /// Stops serving and waits until both sockets are closed, so the address is free and
    /// unreachable when this returns.
    pub async fn close(mut self) {
        if let Some((udp_task, tcp_task)) = self.tasks.take() {
            udp_task.abort();
            tcp_task.abort();
            // Awaiting an aborted task returns once its future (and the sockets and JoinSets
            // it owns) has been dropped.
            let _ = udp_task.await;
            let _ = tcp_task.await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some((udp_task, tcp_task)) = &self.tasks {
            udp_task.abort();
            tcp_task.abort();
        }
    }
}

async fn serve_udp(socket: UdpSocket, view: Arc<ViewSlot>, shared: Arc<Shared>) {
    let socket = Arc::new(socket);
    let mut forwards = JoinSet::new();
    let mut buf = vec![0u8; 65535];
    loop {
        let (len, peer) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(error) => {
                    // E.g. ICMP errors surfacing on the socket; the socket itself stays usable.
                    tracing::debug!(%error, "UDP receive error");
                    continue;
                }
            },
            Some(_) = forwards.join_next(), if !forwards.is_empty() => continue,
        };
        let packet = &buf[..len];
        let data = view.get();
        match local_reply(packet, false, &data, peer.ip(), &shared.metrics) {
            Reply::Send(bytes) => {
                let _ = socket.send_to(&bytes, peer).await;
            }
            Reply::Nothing => {}
            Reply::Forward(request) => {
                if forwards.len() >= MAX_UDP_FORWARDS {
                    tracing::debug!("too many forwards in flight; dropping query");
                    continue;
                }
                let socket = socket.clone();
                let shared = shared.clone();
                let packet = packet.to_vec();
                let view_name = data.name.clone();
                forwards.spawn(async move {
                    if let Some(bytes) =
                        forward_reply(packet, request, false, view_name, shared).await
                    {
                        let _ = socket.send_to(&bytes, peer).await;
                    }
                });
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, view: Arc<ViewSlot>, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%error, "TCP accept error");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        if connections.len() >= MAX_TCP_CONNECTIONS {
            continue; // dropping `stream` closes it
        }
        let (stream, peer) = stream;
        connections.spawn(serve_tcp_connection(
            stream,
            peer,
            view.clone(),
            shared.clone(),
        ));
    }
}

/// Answers queries on one TCP connection in order until the client closes it or goes idle.
async fn serve_tcp_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    view: Arc<ViewSlot>,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    loop {
        let packet = match tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)).await {
            Ok(Ok(Some(packet))) => packet,
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return,
        };
        let data = view.get();
        let bytes = match local_reply(&packet, true, &data, peer.ip(), &shared.metrics) {
            Reply::Send(bytes) => bytes,
            Reply::Nothing => continue,
            Reply::Forward(request) => {
                match forward_reply(packet, request, true, data.name.clone(), shared.clone()).await
                {
                    Some(bytes) => bytes,
                    None => continue,
                }
            }
        };
        if write_framed(&mut stream, &bytes).await.is_err() {
            return;
        }
    }
}
