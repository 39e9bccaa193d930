//! L4 TCP: one endpoint per client connection, bytes spliced both ways with
//! half-close passed through; connect failures eject the endpoint and retry
//! on another one.

use crate::endpoints::{pick, ListenerShared};
use std::sync::Arc;
use tokio::net::TcpStream;

/// Serves one accepted client connection until both directions are done.
pub(crate) async fn serve_connection(mut client: TcpStream, shared: Arc<ListenerShared>) {
    let backends = shared.backends.load_full();
    if backends.endpoints.is_empty() {
        // Closing at once tells the client there is nothing here, rather
        // than letting it wait on a connection nobody serves.
        shared.metrics.no_endpoint_errors.inc();
        return;
    }
    let mut tried: Vec<usize> = Vec::new();
    loop {
        let Some(i) = pick(&backends.endpoints, &tried) else {
            return;
        };
        let ep = &backends.endpoints[i];
        let in_flight = ep.enter();
        let connected =
            tokio::time::timeout(backends.timeouts.connect(), TcpStream::connect(ep.ep.addr)).await;
        match connected {
            Ok(Ok(mut upstream)) => {
                ep.connect_succeeded();
                ep.metrics.connections.inc();
                let _ = upstream.set_nodelay(true);
                // Each direction ends on EOF by shutting down the other
                // side's write half, so half-closed connections work.
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(endpoint = %ep.ep.id, "tcp connection ended with: {e}");
                }
                drop(in_flight);
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(endpoint = %ep.ep.id, addr = %ep.ep.addr, "connect failed: {e}");
            }
            Err(_) => {
                tracing::debug!(endpoint = %ep.ep.id, addr = %ep.ep.addr, "connect timed out");
            }
        }
        ep.metrics.errors.inc();
        ep.connect_failed();
        tried.push(i);
        if tried.len() > backends.retries as usize || tried.len() >= backends.endpoints.len() {
            return;
        }
        shared.metrics.retries.inc();
    }
}
