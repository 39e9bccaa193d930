//! The node's data-plane plan: from the cluster's networking view (networks,
//! services with their VIPs and ports, running tasks with addresses and
//! health), what this node's DNS server answers and where its proxy listens.
//! Pure, so the rules (who is ready, who is draining, which names exist) are
//! tested without sockets.
//!
//! Rules:
//! - A task receives traffic only while it is running, meant to run, not
//!   draining on this node, and healthy — or has no health check at all.
//! - On each network a service is attached to: `name`, `<stack>_<name>` and
//!   its aliases resolve to the service's VIP (or, with
//!   `endpoint_mode: dnsrr`, to the ready replicas); `tasks.<name>` (and
//!   `tasks.<stack>_<name>`) to the ready replicas' addresses there.
//! - The proxy listens on VIP:port for every port the service declares
//!   (`ports:` targets and `expose:`), and on every published port
//!   (`host_ip` honoured, default all addresses).

use flotilla_core::network::{NetworkRecord, Networking, ServiceEndpoints, TaskEndpoint};
use flotilla_core::Health;
use flotilla_dns::{DnsConfig, View};
use flotilla_proxy::{Endpoint, ListenerConfig, Protocol, ProxyConfig};
use flotilla_spec::Protocol as PortProtocol;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Port the embedded DNS listens on at each network's gateway.
pub const DNS_PORT: u16 = 53;

/// Attempts on other replicas after a connection failure (or an idempotent
/// request that failed before its response started).
const PROXY_RETRIES: u32 = 2;

/// Everything this node's data plane should look like.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficPlan {
    /// Stack networks with the VIPs this node must own on each bridge.
    pub networks: Vec<(NetworkRecord, Vec<Ipv4Addr>)>,
    pub dns: DnsConfig,
    pub proxy: ProxyConfig,
}

/// Ready: running (the view lists only running tasks), not draining here,
/// and healthy or without a check.
fn ready(task: &TaskEndpoint, draining: &HashSet<String>) -> bool {
    !draining.contains(&task.id) && matches!(task.health, Health::Healthy | Health::None)
}

/// The tasks to keep out of DNS and the proxy: every draining one, and the
/// ones whose last probe failed — unless that would leave their service
/// with no replica at all. When every replica fails a probe at once, a
/// shared dependency (its database restarting) is the likelier cause than
/// every replica breaking; sending to them beats answering 503 for sure
/// until the next probe (fail open, as Envoy's panic threshold does).
pub fn excluded(
    view: &Networking,
    draining: &HashSet<String>,
    failing: &HashSet<String>,
) -> HashSet<String> {
    let mut out = draining.clone();
    let mut by_service: BTreeMap<&str, Vec<&TaskEndpoint>> = BTreeMap::new();
    for t in view.tasks.iter().filter(|t| ready(t, draining)) {
        by_service.entry(t.service.as_str()).or_default().push(t);
    }
    for tasks in by_service.values() {
        if tasks.iter().all(|t| failing.contains(&t.id)) {
            continue;
        }
        out.extend(
            tasks
                .iter()
                .filter(|t| failing.contains(&t.id))
                .map(|t| t.id.clone()),
        );
    }
    out
}

pub fn plan(view: &Networking, draining: &HashSet<String>, dns_port: u16) -> TrafficPlan {
    let ready_tasks: BTreeMap<&str, Vec<&TaskEndpoint>> = view
        .tasks
        .iter()
        .filter(|t| ready(t, draining))
        .fold(BTreeMap::new(), |mut by_service, t| {
            by_service
                .entry(t.service.as_str())
                .or_insert_with(Vec::new)
                .push(t);
            by_service
        });
    let no_tasks = Vec::new();
    let tasks_of = |svc: &ServiceEndpoints| ready_tasks.get(svc.id.as_str()).unwrap_or(&no_tasks);

    let mut networks = Vec::new();
    let mut views = Vec::new();
    let mut listeners = Vec::new();
    for net in &view.networks {
        let mut records: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        let mut vips = Vec::new();
        for svc in view
            .services
            .iter()
            .filter(|s| s.aliases.contains_key(&net.name))
        {
            let replicas: Vec<IpAddr> = tasks_of(svc)
                .iter()
                .filter_map(|t| t.addresses.get(&net.name)?.parse().ok())
                .collect();
            let vip: Option<Ipv4Addr> = svc.vips.get(&net.name).and_then(|v| v.parse().ok());
            let service_answer = match (svc.dnsrr, vip) {
                (false, Some(vip)) => vec![IpAddr::V4(vip)],
                _ => replicas.clone(),
            };
            let mut names = vec![svc.name.clone(), svc.id.clone()];
            names.extend(svc.aliases[&net.name].iter().cloned());
            for name in names {
                records.insert(name.to_ascii_lowercase(), service_answer.clone());
            }
            for name in [&svc.name, &svc.id] {
                records.insert(
                    format!("tasks.{}", name.to_ascii_lowercase()),
                    replicas.clone(),
                );
            }
            if let (false, Some(vip)) = (svc.dnsrr, vip) {
                vips.push(vip);
                for (port, protocol) in service_ports(svc) {
                    let endpoints = tasks_of(svc)
                        .iter()
                        .filter_map(|t| {
                            let ip: Ipv4Addr = t.addresses.get(&net.name)?.parse().ok()?;
                            Some(Endpoint {
                                id: t.id.clone(),
                                addr: SocketAddr::new(IpAddr::V4(ip), port),
                            })
                        })
                        .collect();
                    listeners.push(ListenerConfig {
                        name: format!(
                            "vip:{}:{}:{port}/{}",
                            net.name,
                            svc.id,
                            proto_name(protocol)
                        ),
                        service: svc.id.clone(),
                        bind: SocketAddr::new(IpAddr::V4(vip), port),
                        protocol,
                        endpoints,
                        timeouts: Default::default(),
                        retries: PROXY_RETRIES,
                    });
                }
            }
        }
        vips.sort();
        views.push(View {
            name: net.name.clone(),
            listen: vec![SocketAddr::new(IpAddr::V4(net.gateway()), dns_port)],
            records,
            clients: BTreeMap::new(),
        });
        networks.push((net.clone(), vips));
    }

    add_multi_network_clients(view, &mut views);

    // Published ports: the routing mesh's entry on this node.
    for svc in &view.services {
        let mut published_here = BTreeSet::new();
        for port in &svc.spec_ports {
            let Some(published) = port.published else {
                continue;
            };
            let host_ip: IpAddr = port
                .host_ip
                .as_deref()
                .and_then(|h| h.parse().ok())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let Some(protocol) = protocol_of(port.protocol, port.http) else {
                continue;
            };
            if !published_here.insert((host_ip, published, proto_name(protocol))) {
                continue;
            }
            let endpoints = tasks_of(svc)
                .iter()
                .filter_map(|t| {
                    // Any of the task's addresses: the host reaches every bridge.
                    let ip: Ipv4Addr = t.addresses.values().next()?.parse().ok()?;
                    Some(Endpoint {
                        id: t.id.clone(),
                        addr: SocketAddr::new(IpAddr::V4(ip), port.target),
                    })
                })
                .collect();
            listeners.push(ListenerConfig {
                name: format!("published:{host_ip}:{published}/{}", proto_name(protocol)),
                service: svc.id.clone(),
                bind: SocketAddr::new(host_ip, published),
                protocol,
                endpoints,
                timeouts: Default::default(),
                retries: PROXY_RETRIES,
            });
        }
    }
    TrafficPlan {
        networks,
        dns: DnsConfig {
            views,
            upstreams: Vec::new(),
        },
        proxy: ProxyConfig { listeners },
    }
}

/// A container on several networks asks its first network's gateway (its
/// resolv.conf) and must resolve the names of all its networks: its address
/// there gets the other networks' records as extra names.
fn add_multi_network_clients(view: &Networking, views: &mut [View]) {
    for svc in view.services.iter().filter(|s| s.aliases.len() > 1) {
        let mut nets = svc.aliases.keys();
        let Some(first) = nets.next() else { continue };
        let mut extra: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        for other in nets {
            if let Some(v) = views.iter().find(|v| &v.name == other) {
                for (name, ips) in &v.records {
                    extra.entry(name.clone()).or_insert_with(|| ips.clone());
                }
            }
        }
        let Some(first_view) = views.iter_mut().find(|v| &v.name == first) else {
            continue;
        };
        for task in view.tasks.iter().filter(|t| t.service == svc.id) {
            if let Some(ip) = task.addresses.get(first).and_then(|a| a.parse().ok()) {
                first_view.clients.insert(ip, extra.clone());
            }
        }
    }
}

/// The ports a VIP forwards: `ports:` targets and `expose:`, deduplicated.
fn service_ports(svc: &ServiceEndpoints) -> Vec<(u16, Protocol)> {
    let mut seen = BTreeMap::new();
    for p in &svc.spec_ports {
        let Some(proto) = protocol_of(p.protocol, p.http) else {
            continue;
        };
        // An HTTP marking wins over a plain TCP mention of the same port.
        let entry = seen
            .entry((p.target, p.protocol == PortProtocol::Udp))
            .or_insert(proto);
        if proto == Protocol::Http {
            *entry = proto;
        }
    }
    for e in &svc.expose {
        let http = svc.http_ports.contains(&e.port);
        if let Some(proto) = protocol_of(e.protocol, http) {
            seen.entry((e.port, e.protocol == PortProtocol::Udp))
                .or_insert(proto);
        }
    }
    seen.into_iter()
        .map(|((port, _), proto)| (port, proto))
        .collect()
}

/// The proxy's protocol for a port; None for SCTP, which it cannot carry.
fn protocol_of(protocol: PortProtocol, http: bool) -> Option<Protocol> {
    match (protocol, http) {
        (PortProtocol::Sctp, _) => None,
        (PortProtocol::Udp, _) => Some(Protocol::Udp),
        (PortProtocol::Tcp, true) => Some(Protocol::Http),
        (PortProtocol::Tcp, false) => Some(Protocol::Tcp),
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Http => "http",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_spec::{ExposedPort, Port, PortMode};

    fn network(name: &str, subnet: &str) -> NetworkRecord {
        NetworkRecord {
            name: name.into(),
            stack: "shop".into(),
            key: name.trim_start_matches("shop_").into(),
            subnet: subnet.parse().unwrap(),
            internal: false,
            created_at: 0,
        }
    }

    fn service(
        name: &str,
        nets: &[(&str, &str)],
        ports: Vec<Port>,
        expose: &[u16],
    ) -> ServiceEndpoints {
        ServiceEndpoints {
            id: format!("shop_{name}"),
            stack: "shop".into(),
            name: name.into(),
            vips: nets
                .iter()
                .map(|(n, vip)| (n.to_string(), vip.to_string()))
                .collect(),
            aliases: nets.iter().map(|(n, _)| (n.to_string(), vec![])).collect(),
            spec_ports: ports,
            expose: expose
                .iter()
                .map(|&port| ExposedPort {
                    port,
                    protocol: PortProtocol::Tcp,
                })
                .collect(),
            http_ports: vec![],
            dnsrr: false,
            stop_grace_ms: 1000,
        }
    }

    fn port(target: u16, published: Option<u16>, http: bool) -> Port {
        Port {
            target,
            published,
            host_ip: None,
            protocol: PortProtocol::Tcp,
            mode: PortMode::Ingress,
            name: None,
            app_protocol: None,
            http,
        }
    }

    fn task(id: &str, service: &str, health: Health, addrs: &[(&str, &str)]) -> TaskEndpoint {
        TaskEndpoint {
            id: id.into(),
            service: format!("shop_{service}"),
            node: Some("n1".into()),
            health,
            addresses: addrs
                .iter()
                .map(|(n, a)| (n.to_string(), a.to_string()))
                .collect(),
        }
    }

    fn view() -> Networking {
        Networking {
            networks: vec![
                network("shop_default", "10.1.0.0/24"),
                network("shop_back", "10.1.1.0/24"),
            ],
            services: vec![
                service(
                    "web",
                    &[("shop_default", "10.1.0.128")],
                    vec![port(80, Some(8080), true)],
                    &[],
                ),
                service(
                    "api",
                    &[("shop_default", "10.1.0.129"), ("shop_back", "10.1.1.128")],
                    vec![],
                    &[9000],
                ),
            ],
            tasks: vec![
                task(
                    "w1",
                    "web",
                    Health::Healthy,
                    &[("shop_default", "10.1.0.2")],
                ),
                task(
                    "w2",
                    "web",
                    Health::Starting,
                    &[("shop_default", "10.1.0.3")],
                ),
                task(
                    "a1",
                    "api",
                    Health::None,
                    &[("shop_default", "10.1.0.4"), ("shop_back", "10.1.1.2")],
                ),
                task(
                    "a2",
                    "api",
                    Health::Unhealthy,
                    &[("shop_default", "10.1.0.5"), ("shop_back", "10.1.1.3")],
                ),
            ],
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn names_resolve_per_network_to_vips_and_ready_replicas() {
        let p = plan(&view(), &HashSet::new(), 53);
        let default = &p.dns.views[0];
        assert_eq!(default.name, "shop_default");
        assert_eq!(default.listen, vec!["10.1.0.1:53".parse().unwrap()]);
        assert_eq!(default.records["web"], ips(&["10.1.0.128"]));
        assert_eq!(default.records["shop_web"], ips(&["10.1.0.128"]));
        // Starting and unhealthy replicas are not listed.
        assert_eq!(default.records["tasks.web"], ips(&["10.1.0.2"]));
        assert_eq!(default.records["tasks.api"], ips(&["10.1.0.4"]));
        // `web` is not on the back network: not resolvable there.
        let back = &p.dns.views[1];
        assert!(!back.records.contains_key("web"));
        assert_eq!(back.records["api"], ips(&["10.1.1.128"]));
        assert_eq!(back.records["tasks.api"], ips(&["10.1.1.2"]));
        assert_eq!(p.networks[1].1, vec![Ipv4Addr::new(10, 1, 1, 128)]);
    }

    #[test]
    fn proxy_listens_on_vips_and_published_ports_with_ready_endpoints() {
        let p = plan(&view(), &HashSet::new(), 53);
        let by_name: BTreeMap<&str, &ListenerConfig> = p
            .proxy
            .listeners
            .iter()
            .map(|l| (l.name.as_str(), l))
            .collect();
        let web = by_name["vip:shop_default:shop_web:80/http"];
        assert_eq!(web.bind, "10.1.0.128:80".parse().unwrap());
        assert_eq!(web.protocol, Protocol::Http);
        assert_eq!(web.endpoints.len(), 1);
        assert_eq!(web.endpoints[0].addr, "10.1.0.2:80".parse().unwrap());
        let api_back = by_name["vip:shop_back:shop_api:9000/tcp"];
        assert_eq!(api_back.endpoints[0].addr, "10.1.1.2:9000".parse().unwrap());
        let published = by_name["published:0.0.0.0:8080/http"];
        assert_eq!(published.bind, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(published.endpoints[0].id, "w1");
        assert_eq!(p.proxy.listeners.len(), 4, "{by_name:#?}");
    }

    #[test]
    fn failing_replicas_stay_in_when_every_replica_fails() {
        let mut v = view();
        let web = v
            .tasks
            .iter()
            .find(|t| t.service == "shop_web")
            .unwrap()
            .clone();
        let mut second = web.clone();
        second.id = "w2".into();
        v.tasks.push(second);
        let none = HashSet::new();
        let one: HashSet<String> = [web.id.clone()].into();
        assert_eq!(
            excluded(&v, &none, &one),
            one,
            "one of two failing: it leaves"
        );
        let both: HashSet<String> = [web.id.clone(), "w2".to_string()].into();
        assert!(
            excluded(&v, &none, &both).is_empty(),
            "all failing: they stay (fail open)"
        );
        let draining: HashSet<String> = ["w2".to_string()].into();
        assert_eq!(
            excluded(&v, &draining, &one),
            draining,
            "the one ready replica left is failing: it stays, the draining one goes"
        );
    }

    #[test]
    fn http_ports_make_exposed_vip_ports_http_aware() {
        let mut v = view();
        let api = v.services.iter_mut().find(|s| s.name == "api").unwrap();
        api.http_ports = vec![9000];
        let p = plan(&v, &HashSet::new(), 53);
        let names: Vec<&str> = p.proxy.listeners.iter().map(|l| l.name.as_str()).collect();
        assert!(
            names.contains(&"vip:shop_back:shop_api:9000/http"),
            "{names:?}"
        );
    }

    #[test]
    fn a_draining_task_leaves_dns_and_the_proxy_first() {
        let draining: HashSet<String> = ["w1".to_string()].into();
        let p = plan(&view(), &draining, 53);
        assert!(p.dns.views[0].records["tasks.web"].is_empty());
        assert!(p
            .proxy
            .listeners
            .iter()
            .filter(|l| l.service == "shop_web")
            .all(|l| l.endpoints.is_empty()));
    }

    #[test]
    fn a_container_on_two_networks_resolves_names_of_both() {
        let p = plan(&view(), &HashSet::new(), 53);
        let default = &p.dns.views[0];
        // a1's first network (by name) is shop_back; shop_default's names are its extra ones there.
        let back = &p.dns.views[1];
        let a1_back: IpAddr = "10.1.1.2".parse().unwrap();
        assert_eq!(back.clients[&a1_back]["web"], ips(&["10.1.0.128"]));
        assert!(default.clients.is_empty());
    }

    #[test]
    fn dnsrr_services_get_no_vip_and_resolve_to_replicas() {
        let mut v = view();
        v.services[1].dnsrr = true;
        v.services[1].vips.clear();
        let p = plan(&v, &HashSet::new(), 53);
        assert_eq!(p.dns.views[0].records["api"], ips(&["10.1.0.4"]));
        assert!(p.proxy.listeners.iter().all(|l| l.service != "shop_api"));
    }
}
