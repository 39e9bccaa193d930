//! Prometheus metrics per service and per endpoint. Families are registered
//! once on the caller's registry; each endpoint and listener resolves its
//! handles once, so the hot path only touches atomics (and the histogram's
//! short lock).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndpointLabels {
    pub service: String,
    /// The task id; `none` for failures that happened before any endpoint
    /// was chosen (empty endpoint set).
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    pub service: String,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~13 s, doubling.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

#[derive(Clone)]
pub(crate) struct Metrics {
    requests: Family<EndpointLabels, Counter>,
    connections: Family<EndpointLabels, Counter>,
    errors: Family<EndpointLabels, Counter>,
    latency: HistogramFamily,
    in_flight: Family<EndpointLabels, Gauge>,
    retries: Family<ServiceLabels, Counter>,
    open_connections: Family<ServiceLabels, Gauge>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            requests: Family::default(),
            connections: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            in_flight: Family::default(),
            retries: Family::default(),
            open_connections: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("flotilla_proxy");
        r.register(
            "requests",
            "HTTP requests forwarded to an endpoint (every attempt)",
            m.requests.clone(),
        );
        r.register(
            "connections",
            "TCP connections and UDP sessions established to an endpoint",
            m.connections.clone(),
        );
        r.register(
            "errors",
            "Failed attempts: connect failures, upstream errors and timeouts, no endpoint",
            m.errors.clone(),
        );
        r.register(
            "request_duration_seconds",
            "HTTP: time from forwarding a request to its response headers",
            m.latency.clone(),
        );
        r.register(
            "in_flight",
            "Open TCP connections, UDP sessions and HTTP requests in progress per endpoint",
            m.in_flight.clone(),
        );
        r.register(
            "retries",
            "Attempts repeated on another endpoint",
            m.retries.clone(),
        );
        r.register(
            "open_connections",
            "Client connections currently open to the service's listeners",
            m.open_connections.clone(),
        );
        m
    }

    pub fn endpoint(&self, service: &str, endpoint: &str) -> EndpointMetrics {
        let l = EndpointLabels {
            service: service.to_string(),
            endpoint: endpoint.to_string(),
        };
        EndpointMetrics {
            requests: self.requests.get_or_create_owned(&l),
            connections: self.connections.get_or_create_owned(&l),
            errors: self.errors.get_or_create_owned(&l),
            latency: self.latency.get_or_create_owned(&l),
            in_flight: self.in_flight.get_or_create_owned(&l),
        }
    }

    /// Drops the series of an endpoint that is gone, so task ids that come
    /// and go do not grow the exposition (and memory) forever.
    pub fn remove_endpoint(&self, service: &str, endpoint: &str) {
        let l = EndpointLabels {
            service: service.to_string(),
            endpoint: endpoint.to_string(),
        };
        self.requests.remove(&l);
        self.connections.remove(&l);
        self.errors.remove(&l);
        self.latency.remove(&l);
        self.in_flight.remove(&l);
    }

    pub fn service(&self, service: &str) -> ServiceMetrics {
        let l = ServiceLabels {
            service: service.to_string(),
        };
        ServiceMetrics {
            retries: self.retries.get_or_create_owned(&l),
            open_connections: self.open_connections.get_or_create_owned(&l),
            no_endpoint_errors: self.errors.get_or_create_owned(&EndpointLabels {
                service: service.to_string(),
                endpoint: "none".into(),
            }),
        }
    }
}

/// Handles for one (service, endpoint) pair.
pub(crate) struct EndpointMetrics {
    pub requests: Counter,
    pub connections: Counter,
    pub errors: Counter,
    pub latency: Histogram,
    pub in_flight: Gauge,
}

/// Handles for one service.
pub(crate) struct ServiceMetrics {
    pub retries: Counter,
    pub open_connections: Gauge,
    pub no_endpoint_errors: Counter,
}
