//! Turning one received packet into the bytes to send back: local answers, FORMERR for
//! garbage, truncation to the client's UDP limit, and SERVFAIL when forwarding fails.

use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};

use crate::forward::{self, FORWARD_BUDGET};
use crate::metrics::{Event, Metrics};
use crate::records::{self, Decision};
use crate::state::{Shared, ViewData};

/// What to do with one received message.
pub enum Reply {
    /// Send these bytes back.
    Send(Vec<u8>),
    /// Send nothing (a response packet, or garbage too short to carry an id).
    Nothing,
    /// Relay upstream; the parsed request is kept to build SERVFAIL or TC replies.
    Forward(Message),
}

/// Answers what can be answered without I/O.
pub fn local_reply(
    packet: &[u8],
    over_tcp: bool,
    view: &ViewData,
    client: std::net::IpAddr,
    metrics: &Metrics,
) -> Reply {
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
    match records::decide(view.table_for(client), &request) {
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
pub async fn forward_reply(
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
