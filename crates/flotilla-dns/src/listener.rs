//! One listen address: a UDP socket and a TCP listener on the same IP and port, answering from
//! one view. Dropping a [`Listener`] aborts its tasks, which closes both sockets and every open
//! TCP connection and in-flight forward (they live in `JoinSet`s owned by those tasks).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use crate::forward::{self, read_framed, write_framed, FORWARD_BUDGET};
use crate::metrics::{Event, Metrics};
use crate::records::{self, Decision, RecordTable};

/// Forwards in flight per UDP socket; beyond this, queries are dropped (the client retries)
/// rather than letting a flood open unbounded upstream sockets.
const MAX_UDP_FORWARDS: usize = 1024;
/// Open TCP connections per listener; beyond this, new connections are closed at once.
const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP client idle this long is disconnected (RFC 7766 suggests seconds, not minutes).
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The records a listener answers from; swapped in place by `apply`.
#[derive(Debug)]
pub struct ViewSlot {
    current: RwLock<Arc<ViewData>>,
}

#[derive(Debug)]
pub struct ViewData {
    pub name: String,
    pub table: RecordTable,
    /// The records `table` was built from, so an unchanged apply (the common, level-triggered
    /// case) keeps the table and its rotation instead of rebuilding it.
    pub source: std::collections::BTreeMap<String, Vec<std::net::IpAddr>>,
}

impl ViewSlot {
    pub fn new(data: ViewData) -> ViewSlot {
        ViewSlot {
            current: RwLock::new(Arc::new(data)),
        }
    }

    pub fn set(&self, data: ViewData) {
        let data = Arc::new(data);
        match self.current.write() {
            Ok(mut guard) => *guard = data,
            Err(poisoned) => *poisoned.into_inner() = data,
        }
    }

    pub fn get(&self) -> Arc<ViewData> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// State shared by every listener of one server.
#[derive(Debug, Default)]
pub struct Shared {
    pub upstreams: RwLock<Arc<Vec<SocketAddr>>>,
    /// Index into `upstreams` of the last resolver that answered; tried first.
    pub preferred_upstream: AtomicUsize,
    pub metrics: Metrics,
}

impl Shared {
    fn upstreams(&self) -> Arc<Vec<SocketAddr>> {
        match self.upstreams.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

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
            let udp = UdpSocket::bind(configured).await?;
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
                Err(err) => last_error = Some(err),
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

/// What to do with one received message.
enum Reply {
    /// Send these bytes back.
    Send(Vec<u8>),
    /// Send nothing (a response packet, or garbage too short to carry an id).
    Nothing,
    /// Relay upstream; the parsed request is kept to build SERVFAIL or TC replies.
    Forward(Message),
}

/// Answers what can be answered without I/O.
fn local_reply(packet: &[u8], over_tcp: bool, view: &ViewData, metrics: &Metrics) -> Reply {
    metrics.count(&view.name, Event::Query);
    let request = match Message::from_vec(packet) {
        Ok(request) => request,
        Err(error) => {
            tracing::debug!(view = %view.name, %error, "malformed DNS packet");
            return match formerr_for_garbage(packet) {
                Some(bytes) => {
                    metrics.count(&view.name, Event::Failure);
                    Reply::Send(bytes)
                }
                None => Reply::Nothing,
            };
        }
    };
    if request.metadata.message_type != MessageType::Query {
        // Never answer a response: that is how reflection loops start.
        return Reply::Nothing;
    }
    match records::decide(&view.table, &request) {
        Decision::Answer(response) => encode_for_client(&request, &response, over_tcp),
        Decision::Forward => Reply::Forward(request),
    }
}

/// FORMERR for a packet that has a query header but does not parse (RFC 1035 4.1.1);
/// `None` when it is too short or claims to be a response.
fn formerr_for_garbage(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
        .to_vec()
        .ok()
}

/// Encodes `response`, replacing it by a truncated one when it exceeds the client's UDP limit.
fn encode_for_client(request: &Message, response: &Message, over_tcp: bool) -> Reply {
    let bytes = match response.to_vec() {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "cannot encode DNS response");
            return Reply::Nothing;
        }
    };
    if over_tcp || bytes.len() <= records::local_udp_limit(request) {
        return Reply::Send(bytes);
    }
    match records::truncated(response).to_vec() {
        Ok(bytes) => Reply::Send(bytes),
        Err(_) => Reply::Nothing,
    }
}

/// Relays `packet` upstream; SERVFAIL when no upstream answered.
async fn forward_reply(
    packet: Vec<u8>,
    request: Message,
    over_tcp: bool,
    view_name: String,
    shared: Arc<Shared>,
) -> Option<Vec<u8>> {
    shared.metrics.count(&view_name, Event::Forwarded);
    let upstreams = shared.upstreams();
    match forward::forward(
        &packet,
        &upstreams,
        &shared.preferred_upstream,
        over_tcp,
        FORWARD_BUDGET,
    )
    .await
    {
        Ok(answer) if over_tcp || answer.len() <= records::udp_limit(&request) => Some(answer),
        Ok(_) => {
            // Answer came back bigger than the client takes over UDP (we retried the upstream
            // over TCP): tell the client to come back over TCP.
            let empty = records::error_response(&request, ResponseCode::NoError);
            records::truncated(&empty).to_vec().ok()
        }
        Err(error) => {
            tracing::debug!(view = %view_name, %error, "forwarding failed; answering SERVFAIL");
            shared.metrics.count(&view_name, Event::Failure);
            records::error_response(&request, ResponseCode::ServFail)
                .to_vec()
                .ok()
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
        match local_reply(packet, false, &data, &shared.metrics) {
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
                Ok((stream, _)) => stream,
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
        connections.spawn(serve_tcp_connection(stream, view.clone(), shared.clone()));
    }
}

/// Answers queries on one TCP connection in order until the client closes it or goes idle.
async fn serve_tcp_connection(mut stream: TcpStream, view: Arc<ViewSlot>, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    loop {
        let packet = match tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)).await {
            Ok(Ok(Some(packet))) => packet,
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return,
        };
        let data = view.get();
        let bytes = match local_reply(&packet, true, &data, &shared.metrics) {
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
