//! Prometheus counters per view (network): queries received, queries forwarded upstream,
//! and failures (SERVFAIL after forwarding, FORMERR for malformed packets).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type ViewLabels = Vec<(String, String)>;

/// Cheap to clone: every field is an `Arc` inside.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    queries: Family<ViewLabels, Counter>,
    forwarded: Family<ViewLabels, Counter>,
    failures: Family<ViewLabels, Counter>,
}

/// What happened to one query, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Query,
    Forwarded,
    Failure,
}

impl Metrics {
    pub fn count(&self, view: &str, event: Event) {
        let labels = vec![("view".to_string(), view.to_string())];
        let family = match event {
            Event::Query => &self.queries,
            Event::Forwarded => &self.forwarded,
            Event::Failure => &self.failures,
        };
        family.get_or_create(&labels).inc();
    }

    pub fn register(&self, registry: &mut Registry) {
        let dns = registry.sub_registry_with_prefix("flotilla_dns");
        dns.register(
            "queries",
            "DNS queries received, per view (network)",
            self.queries.clone(),
        );
        dns.register(
            "forwarded",
            "DNS queries for names outside the view relayed to upstream resolvers",
            self.forwarded.clone(),
        );
        dns.register(
            "failures",
            "DNS queries answered SERVFAIL (upstream failed) or FORMERR (malformed)",
            self.failures.clone(),
        );
    }
}
