//! The live endpoint set of a listener and the balancing policy over it:
//! power-of-two-choices on outstanding work, skipping endpoints that are
//! passively ejected after a connect failure.

use crate::config::{Endpoint, Timeouts};
use crate::metrics::{EndpointMetrics, ServiceMetrics};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// First ejection after a connect failure; doubles per consecutive failure.
const EJECT_MIN_MS: u64 = 1_000;
const EJECT_MAX_MS: u64 = 8_000;

/// Milliseconds since the first call: a monotonic clock that fits an atomic.
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// One endpoint as a listener sees it. Kept across `apply` calls while the
/// endpoint stays in the set, so ejection state survives unchanged configs.
pub(crate) struct EndpointState {
    pub ep: Endpoint,
    /// `host:port` as a Host header, for requests that came without one,
    /// built once rather than formatted per request.
    pub host: hyper::header::HeaderValue,
    /// Shared by every listener with this endpoint id: what `in_flight` and
    /// `requests_in_flight` report.
    in_flight: Arc<InFlightCounts>,
    ejected_until_ms: AtomicU64,
    backoff_ms: AtomicU64,
    pub metrics: EndpointMetrics,
}

impl EndpointState {
    pub fn new(ep: Endpoint, in_flight: Arc<InFlightCounts>, metrics: EndpointMetrics) -> Self {
        let host = hyper::header::HeaderValue::from_str(&ep.addr.to_string())
            .expect("a socket address is a valid header value");
        EndpointState {
            ep,
            host,
            in_flight,
            ejected_until_ms: AtomicU64::new(0),
            backoff_ms: AtomicU64::new(EJECT_MIN_MS),
            metrics,
        }
    }

    fn outstanding(&self) -> u64 {
        self.in_flight.all()
    }

    fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now
    }

    /// A connect failed: skip this endpoint for the current backoff, and
    /// double the backoff for the next failure.
    pub fn connect_failed(&self) {
        let b = self.backoff_ms.load(Ordering::Relaxed);
        self.ejected_until_ms.store(now_ms() + b, Ordering::Relaxed);
        self.backoff_ms
            .store((b * 2).min(EJECT_MAX_MS), Ordering::Relaxed);
        tracing::debug!(endpoint = %self.ep.id, addr = %self.ep.addr, backoff_ms = b, "endpoint ejected after connect failure");
    }

    /// A connect succeeded: forget past failures (written only when needed,
    /// so the common path stays read-only on this cache line).
    pub fn connect_succeeded(&self) {
        if self.backoff_ms.load(Ordering::Relaxed) != EJECT_MIN_MS {
            self.backoff_ms.store(EJECT_MIN_MS, Ordering::Relaxed);
        }
    }

    /// Counts one L4 connection or UDP session in flight until the guard drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.packed.fetch_add(ONE, Ordering::Relaxed);
        self.metrics.in_flight.inc();
        InFlight(self.clone(), false)
    }

    /// Counts one HTTP request in flight until the guard drops.
    pub fn enter_request(self: &Arc<Self>) -> InFlight {
        self.in_flight
            .packed
            .fetch_add(ONE + ONE_REQUEST, Ordering::Relaxed);
        self.metrics.in_flight.inc();
        InFlight(self.clone(), true)
    }
}

/// What is in progress on one endpoint, over every listener.
#[derive(Default, Debug)]
pub(crate) struct InFlightCounts {
    /// Two counts in one word, so a request enters and leaves with one
    /// atomic operation each on this line that every worker writes: the low
    /// half counts connections, sessions and requests (`all`), the high
    /// half HTTP requests only (`requests`).
    packed: AtomicU64,
}

/// One in the `all` half of `InFlightCounts::packed`.
const ONE: u64 = 1;
/// One in the `requests` half.
const ONE_REQUEST: u64 = 1 << 32;

impl InFlightCounts {
    /// Connections, sessions and requests: the load balancer's measure.
    pub fn all(&self) -> u64 {
        self.packed.load(Ordering::Relaxed) & (ONE_REQUEST - 1)
    }

    /// HTTP requests only: what draining waits for. An L4 connection may be
    /// a client's pool that never ends on its own (a database pool); the
    /// service closes those itself when it gets its stop signal.
    pub fn requests(&self) -> u64 {
        self.packed.load(Ordering::Relaxed) >> 32
    }
}

/// One connection or request (`.1`) in progress on an endpoint.
pub(crate) struct InFlight(Arc<EndpointState>, bool);

impl Drop for InFlight {
    fn drop(&mut self) {
        let one = if self.1 { ONE + ONE_REQUEST } else { ONE };
        self.0.in_flight.packed.fetch_sub(one, Ordering::Relaxed);
        self.0.metrics.in_flight.dec();
    }
}

/// Everything a connection needs from its listener's current config, swapped
/// as one unit by `apply`.
pub(crate) struct Backends {
    pub endpoints: Vec<Arc<EndpointState>>,
    pub timeouts: Timeouts,
    pub retries: u32,
}

/// What a listener's connections share for its whole life.
pub(crate) struct ListenerShared {
    pub service: String,
    pub backends: arc_swap::ArcSwap<Backends>,
    pub metrics: ServiceMetrics,
    /// Idle upstream HTTP connections its client connections share, one
    /// pool per worker thread: a connection is registered with the epoll
    /// instance of the worker that opened it and is only used there.
    pub idle: Vec<Arc<crate::pool::WorkerPools>>,
}

/// Power of two choices among endpoints not yet `tried` (indices into
/// `eps`): prefer endpoints that are not ejected; when every untried one is
/// ejected, still pick one (trying beats refusing). None when all were tried.
pub(crate) fn pick(eps: &[Arc<EndpointState>], tried: &[usize]) -> Option<usize> {
    let now = now_ms();
    let untried = |i: &usize| !tried.contains(i);
    let healthy = |i: &usize| untried(i) && !eps[*i].is_ejected(now);
    let n = (0..eps.len()).filter(healthy).count();
    if n > 0 {
        Some(two_choices(eps, n, healthy))
    } else {
        let n = (0..eps.len()).filter(untried).count();
        (n > 0).then(|| two_choices(eps, n, untried))
    }
}

/// Picks two distinct random candidates among the `n` indices that satisfy
/// `eligible` and returns the one with less outstanding work.
fn two_choices(eps: &[Arc<EndpointState>], n: usize, eligible: impl Fn(&usize) -> bool) -> usize {
    let nth = |k: usize| {
        (0..eps.len())
            .filter(&eligible)
            .nth(k)
            .expect("k < number of eligible endpoints")
    };
    if n == 1 {
        return nth(0);
    }
    let a = fastrand::usize(..n);
    let b = (a + 1 + fastrand::usize(..n - 1)) % n;
    let (a, b) = (nth(a), nth(b));
    if eps[b].outstanding() < eps[a].outstanding() {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use prometheus_client::registry::Registry;

    fn set(n: usize) -> Vec<Arc<EndpointState>> {
        let m = Metrics::register(&mut Registry::default());
        (0..n)
            .map(|i| {
                let ep = Endpoint {
                    id: format!("t{i}"),
                    addr: format!("127.0.0.1:{}", 1000 + i).parse().unwrap(),
                };
                Arc::new(EndpointState::new(
                    ep,
                    Arc::default(),
                    m.endpoint("s", &format!("t{i}")),
                ))
            })
            .collect()
    }

    #[test]
    fn empty_set_or_all_tried_gives_none() {
        assert_eq!(pick(&[], &[]), None);
        let s = set(2);
        assert_eq!(pick(&s, &[0, 1]), None);
        assert_eq!(pick(&s, &[0]), Some(1));
    }

    #[test]
    fn prefers_the_less_loaded_of_two() {
        let s = set(2);
        let _busy: Vec<_> = (0..5).map(|_| s[0].enter()).collect();
        for _ in 0..50 {
            assert_eq!(pick(&s, &[]), Some(1));
        }
    }

    #[test]
    fn ejected_endpoints_are_skipped_unless_nothing_else_is_left() {
        let s = set(3);
        s[1].connect_failed();
        for _ in 0..100 {
            assert_ne!(pick(&s, &[]), Some(1));
        }
        assert_eq!(pick(&s, &[0, 2]), Some(1));
        s[1].connect_succeeded();
        assert_eq!(s[1].backoff_ms.load(Ordering::Relaxed), EJECT_MIN_MS);
    }

    #[test]
    fn spreads_over_every_endpoint() {
        let s = set(3);
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[pick(&s, &[]).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&c| c > 30), "{seen:?}");
    }

    #[test]
    fn in_flight_guard_counts_down() {
        let s = set(1);
        let g = s[0].enter();
        let r = s[0].enter_request();
        assert_eq!(s[0].outstanding(), 2);
        assert_eq!(s[0].in_flight.requests(), 1);
        drop(r);
        assert_eq!(s[0].in_flight.requests(), 0);
        assert_eq!(s[0].outstanding(), 1);
        drop(g);
        assert_eq!(s[0].outstanding(), 0);
    }
}
