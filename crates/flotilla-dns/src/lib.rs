//! Flotilla's embedded per-node DNS server.
//!
//! Containers' `/etc/resolv.conf` points at their network's gateway address; the node serves
//! DNS there (UDP and TCP, port 53) from that network's *view*: `api` → the service's virtual
//! IP, `tasks.api` → healthy replicas, aliases, `dnsrr` names. Everything else is relayed to
//! the host's resolvers. The agent calls [`DnsServer::apply`] with the full desired state on
//! every change; answers change the moment it returns (TTL 0, tables swapped atomically).
//!
//! # Why hickory-proto, and our own socket loops instead of hickory-server
//! The DNS wire format is done by `hickory-proto` (the Hickory DNS project: the maintained,
//! widely used Rust DNS stack; parsing is fuzzed and handles compression, EDNS, and every
//! record type). We deliberately do not use `hickory-server`'s `ServerFuture` +
//! `RequestHandler`: forwarding there means re-encoding the upstream answer from parsed
//! records, whereas we relay the upstream's bytes untouched (only the id is swapped), so record
//! types, EDNS options and DNSSEC data we never model pass through exactly. Our loops also give
//! the two lifetimes `apply` needs: a listener closed by `apply` takes its open TCP connections
//! and in-flight forwards with it, and is fully closed when `apply` returns. What remains ours
//! is small: a UDP receive loop, a TCP accept loop with 2-byte framing, and a forwarder.
//!
//! # Choices
//! - A known name with no address of the asked family — including a service with no healthy
//!   replica — answers NOERROR with no records (NODATA), never NXDOMAIN and never forwarded:
//!   the name exists, it is just empty right now; NXDOMAIN would make clients try search
//!   domains and could let a same-named upstream host capture the service's traffic.
//! - Answers carry TTL 0 and are rotated on each query, so naive clients that take the first
//!   address spread over the replicas and nobody caches a stale replica set.
//! - Upstream failure or no answer within 2 s ([`FORWARD_BUDGET`]) → SERVFAIL.
//! - Malformed queries with a readable header get FORMERR; shorter garbage and anything that
//!   claims to be a response are dropped.
//!
//! Layout: [`records`] is the pure lookup (unit-tested without sockets), `reply` turns a packet
//! into the bytes to send, `forward` relays to upstreams, `listener` owns the sockets of one
//! listen address, `state` what they share, `server` reconciles listeners with a config.

mod config;
mod forward;
mod listener;
mod metrics;
pub mod records;
mod reply;
mod server;
mod state;
mod upstreams;

pub use config::{DnsConfig, View};
pub use forward::FORWARD_BUDGET;
pub use server::DnsServer;
