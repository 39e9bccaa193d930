//! `flotilla-proxy`: the node's load-balancing proxy. It listens on service
//! virtual IPs and published host ports and forwards to the healthy replicas
//! of a service: L4 TCP and UDP for any port, L7 HTTP/1.1 and h2 (prior
//! knowledge) for ports marked `http`.
//!
//! # Why hyper + tokio, and not Pingora or another proxy framework
//!
//! - **hyper 1.x / hyper-util** is the HTTP implementation underneath most of
//!   the Rust ecosystem (axum, reqwest, tonic, linkerd2-proxy): small, fast,
//!   HTTP/1.1 and h2 on both sides, client connections we can own and
//!   drive ourselves (`upstream`: per client connection keep-alive), and nothing
//!   we do not use. The workspace already depends on it (the bench backend,
//!   the server through axum), so it adds no second HTTP stack to the binary.
//! - **Pingora** is a complete proxy *server* with its own runtime, process
//!   model (daemonising, graceful upgrade by fd passing), config and logging.
//!   Flotilla needs a *library* embedded in the node daemon beside the DNS
//!   server, reconfigured live from health state by a function call; Pingora
//!   would bring a second runtime, a much larger dependency tree and
//!   OpenSSL/BoringSSL build requirements for features we do not need.
//! - The policy that matters for high availability (least-outstanding/P2C
//!   balancing, passive ejection, retry of idempotent requests on another
//!   replica, connection draining counts) is small and specific to how the
//!   agent drives endpoints, so it is written here (about a page each) rather
//!   than assembled from tower middleware, whose retry/balance layers assume
//!   a service-discovery stream model that does not fit level-triggered
//!   `apply` calls and per-endpoint in-flight counts.
//!
//! # The HTTP/1.1 fast path
//!
//! Ordinary HTTP/1.1 requests (the bulk of service traffic) do not go
//! through hyper: `h1` parses heads with httparse and forwards bytes, which
//! halved the proxy's user-space CPU per request against HAProxy. Anything
//! unusual on a connection (HTTP/1.0, upgrades, chunked or large uploads,
//! malformed heads) hands that connection to hyper; h2 clients always use
//! hyper.
//!
//! # Hot path
//!
//! Connections are accepted and served on the proxy's own threads, one
//! single-threaded runtime per CPU (`workers` says why).
//! The endpoint set of each listener sits behind an `ArcSwap`: a request or
//! connection loads it without a lock, and `apply` swaps a new set in without
//! touching open connections. Counters are atomics; metric handles are
//! resolved once per endpoint, not per request. TCP_NODELAY on both sides.

mod body;
mod config;
mod endpoints;
mod h1;
mod http;
mod lazy;
mod listener;
mod metrics;
mod pool;
mod proxy;
mod sniff;
mod tcp;
mod udp;
mod upstream;
mod workers;

pub use config::{Endpoint, ListenerConfig, Protocol, ProxyConfig, Timeouts};
/// The metrics library `Proxy::new` registers on, re-exported so callers
/// use the same version.
pub use prometheus_client;
pub use proxy::Proxy;
pub use workers::THREADS_ENV;
