//! Name resolution for the static binaries. glibc's getaddrinfo in a static
//! binary needs NSS modules (dlopen) that an empty image lacks, so names are
//! resolved with hickory (pure Rust): /etc/hosts first, then the servers of
//! /etc/resolv.conf (which Flotilla points at its DNS).
//!
//! One resolver per process, shared by the database pool and the HTTP
//! clients. IPv4 first, IPv6 only if there is no A record: reqwest's built-in
//! hickory mode asks for both at once, and a failing AAAA query then fails
//! names that /etc/hosts or the stack's DNS know only as IPv4.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, ResolveHosts};
use hickory_resolver::TokioResolver;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

static RESOLVER: OnceLock<Option<TokioResolver>> = OnceLock::new();

fn resolver() -> Option<&'static TokioResolver> {
    RESOLVER
        .get_or_init(|| match TokioResolver::builder_tokio() {
            Ok(mut b) => {
                let o = b.options_mut();
                o.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
                o.use_hosts_file = ResolveHosts::Always;
                // Replicas come and go: never trust an answer (or a "no such
                // name" from before the service existed) for more than 1 s.
                o.positive_max_ttl = Some(Duration::from_secs(1));
                o.negative_max_ttl = Some(Duration::from_secs(1));
                // Fail within the request budget when the DNS is unreachable
                // (defaults: 5 s × 2 attempts).
                o.timeout = Duration::from_secs(1);
                o.attempts = 1;
                Some(b.build())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the DNS configuration (/etc/resolv.conf)");
                None
            }
        })
        .as_ref()
}

/// The addresses of `host` (an IP literal is returned as is).
pub async fn lookup(host: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let r = resolver().ok_or_else(|| format!("cannot resolve {host}: no DNS configuration"))?;
    let ips: Vec<IpAddr> = r
        .lookup_ip(host)
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .iter()
        .collect();
    if ips.is_empty() {
        return Err(format!("resolving {host}: no addresses"));
    }
    Ok(ips)
}

/// The same resolver for reqwest (`ClientBuilder::dns_resolver`).
#[derive(Clone, Default)]
pub struct HickoryResolve;

impl Resolve for HickoryResolve {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let ips = lookup(name.as_str()).await?;
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

pub fn reqwest_resolver() -> Arc<HickoryResolve> {
    Arc::new(HickoryResolve)
}
