//! Stack networks and service virtual IPs: the records the server keeps and
//! the pure address arithmetic behind them.
//!
//! Every stack network gets a subnet carved from the cluster's pool. Its
//! address space is split in two halves, like Compose's `ip_range`:
//! - the **lower half** is for task addresses, leased by each node's IPAM
//!   (the gateway, held by the node's bridge, is the first host address);
//! - the **upper half** is for service virtual IPs, allocated here by the
//!   server so every node agrees on them.
//!
//! Nodes own the VIPs as local addresses and run the proxy on VIP:port
//! (there is no IPVS here), and the embedded DNS answers `service` with the
//! VIP.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The default pool stack networks are carved from, and their size.
pub const DEFAULT_POOL: &str = "10.210.0.0/16";
pub const DEFAULT_SUBNET_PREFIX: u8 = 24;

/// A stack network, as stored under `/networks/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The actual name (`<stack>_<key>` unless the file set `name:`).
    pub name: String,
    pub stack: String,
    /// The key in the stack file's `networks:`.
    pub key: String,
    pub subnet: Ipv4Net,
    /// `internal: true`: no route out of the network (kept for later; the
    /// bridge has no NAT anyway).
    #[serde(default)]
    pub internal: bool,
    pub created_at: u64,
}

impl NetworkRecord {
    /// Where task addresses come from: the lower half of the subnet.
    pub fn task_range(&self) -> Ipv4Net {
        halves(self.subnet).0
    }

    /// Where service VIPs come from: the upper half of the subnet.
    pub fn vip_range(&self) -> Ipv4Net {
        halves(self.subnet).1
    }

    /// The gateway: first host address, held by each node's bridge; the
    /// embedded DNS listens there.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet.network()) + 1)
    }
}

/// A service's virtual IP on one network, stored under
/// `/vips/<network>/<service id>`; stable for the service's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipRecord {
    pub network: String,
    pub service: String,
    pub ip: Ipv4Addr,
}

/// Parses the pool setting `a.b.c.d/len`, saying what was expected.
pub fn parse_pool(text: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 subnet like 10.210.0.0/16"))?;
    Ok(net.trunc())
}

/// Checks that networks of `/prefix` can be carved from `pool` and are big
/// enough to split into a task half and a VIP half.
pub fn check_carving(pool: Ipv4Net, prefix: u8) -> Result<(), String> {
    if prefix < pool.prefix_len() {
        return Err(format!(
            "networks of /{prefix} do not fit in the pool {pool}"
        ));
    }
    if prefix > 28 {
        return Err(format!(
            "networks of /{prefix} are too small: at least /28 (16 addresses) is needed"
        ));
    }
    Ok(())
}

/// The two halves of a subnet (lower for tasks, upper for VIPs).
fn halves(subnet: Ipv4Net) -> (Ipv4Net, Ipv4Net) {
    let mut it = subnet
        .subnets(subnet.prefix_len() + 1)
        .expect("a network of at most /28 splits in two");
    let lower = it.next().expect("two halves");
    let upper = it.next().expect("two halves");
    (lower, upper)
}

/// The first `/prefix` of `pool` that overlaps none of `used`.
pub fn next_subnet(pool: Ipv4Net, prefix: u8, used: &[Ipv4Net]) -> Option<Ipv4Net> {
    pool.subnets(prefix)
        .ok()?
        .find(|candidate| !used.iter().any(|u| overlaps(*candidate, *u)))
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The lowest free VIP of `network`'s upper half (its broadcast address
/// excluded).
pub fn next_vip(network: &NetworkRecord, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let range = network.vip_range();
    let first = u32::from(range.network());
    let broadcast = u32::from(network.subnet.broadcast());
    (first..broadcast)
        .map(Ipv4Addr::from)
        .find(|ip| !used.contains(ip))
}

/// `GET /v1/networking`, part one: a service as the data plane needs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceEndpoints {
    pub id: String,
    pub stack: String,
    pub name: String,
    /// network name → the service's VIP there (VIP mode only).
    pub vips: BTreeMap<String, String>,
    /// network name → extra DNS names on it.
    pub aliases: BTreeMap<String, Vec<String>>,
    pub spec_ports: Vec<flotilla_spec::Port>,
    pub expose: Vec<flotilla_spec::ExposedPort>,
    /// Container ports that speak HTTP (`x-flotilla.http_ports`): their VIP
    /// listeners are HTTP-aware, also for `expose:` ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_ports: Vec<u16>,
    pub dnsrr: bool,
    pub stop_grace_ms: u64,
}

/// A task that may receive traffic: running, meant to run, with its
/// addresses and health. Whether it is ready is the caller's rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskEndpoint {
    pub id: String,
    pub service: String,
    pub node: Option<String>,
    pub health: crate::Health,
    pub addresses: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Networking {
    pub networks: Vec<NetworkRecord>,
    pub services: Vec<ServiceEndpoints>,
    pub tasks: Vec<TaskEndpoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(subnet: &str) -> NetworkRecord {
        NetworkRecord {
            name: "s_default".into(),
            stack: "s".into(),
            key: "default".into(),
            subnet: subnet.parse().unwrap(),
            internal: false,
            created_at: 0,
        }
    }

    #[test]
    fn halves_split_tasks_from_vips() {
        let n = net("10.210.3.0/24");
        assert_eq!(n.task_range().to_string(), "10.210.3.0/25");
        assert_eq!(n.vip_range().to_string(), "10.210.3.128/25");
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 210, 3, 1));
        let small = net("10.1.0.16/28");
        assert_eq!(small.task_range().to_string(), "10.1.0.16/29");
        assert_eq!(small.vip_range().to_string(), "10.1.0.24/29");
    }

    #[test]
    fn subnets_are_carved_in_order_skipping_used_and_overlapping() {
        let pool = parse_pool("10.210.0.0/16").unwrap();
        assert_eq!(
            next_subnet(pool, 24, &[]).unwrap().to_string(),
            "10.210.0.0/24"
        );
        let used = [
            "10.210.0.0/24".parse().unwrap(),
            "10.210.1.128/25".parse().unwrap(),
        ];
        assert_eq!(
            next_subnet(pool, 24, &used).unwrap().to_string(),
            "10.210.2.0/24"
        );
        let tiny = parse_pool("10.9.0.0/27").unwrap();
        let all: Vec<Ipv4Net> = tiny.subnets(28).unwrap().collect();
        assert_eq!(next_subnet(tiny, 28, &all), None);
    }

    #[test]
    fn carving_is_checked() {
        let pool = parse_pool("10.0.0.0/16").unwrap();
        assert!(check_carving(pool, 24).is_ok());
        assert!(check_carving(pool, 8).unwrap_err().contains("do not fit"));
        assert!(check_carving(pool, 30).unwrap_err().contains("too small"));
        assert!(parse_pool("nope").unwrap_err().contains("10.210.0.0/16"));
        assert_eq!(
            parse_pool("10.0.0.7/16").unwrap().to_string(),
            "10.0.0.0/16"
        );
    }

    #[test]
    fn vips_come_from_the_upper_half_lowest_first() {
        let n = net("10.1.0.16/28");
        let mut used = BTreeSet::new();
        let mut got = Vec::new();
        while let Some(ip) = next_vip(&n, &used) {
            used.insert(ip);
            got.push(ip.to_string());
        }
        // .24 … .30; .31 is the broadcast.
        assert_eq!(
            got,
            [
                "10.1.0.24",
                "10.1.0.25",
                "10.1.0.26",
                "10.1.0.27",
                "10.1.0.28",
                "10.1.0.29",
                "10.1.0.30"
            ]
        );
    }
}
