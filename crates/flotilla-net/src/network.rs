//! What a network is (name + bridge + subnet) and how a container joins one.
//! Pure data and validation; no I/O except reading the environment.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// Linux limits interface names to IFNAMSIZ-1 = 15 bytes.
pub const MAX_IFNAME_LEN: usize = 15;

/// Environment variable overriding the default bridge's interface name.
pub const ENV_BRIDGE_NAME: &str = "FLOTILLA_BRIDGE_NAME";
/// Environment variable overriding the default bridge's subnet.
pub const ENV_BRIDGE_SUBNET: &str = "FLOTILLA_BRIDGE_SUBNET";

/// Most networks one container may join (eth0..eth7).
pub const MAX_NETWORKS_PER_CONTAINER: usize = 8;

/// A node-local bridge network: containers get a veth into `bridge` and an
/// address from `subnet`; the bridge holds the gateway (first host address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeNetwork {
    /// Flotilla's name for the network (leases are kept per name).
    pub name: String,
    /// Linux interface name of the bridge, at most 15 bytes.
    pub bridge: String,
    /// IPv4 subnet, e.g. `10.213.0.0/24`; the gateway is its first host.
    pub subnet: Ipv4Net,
    /// Containers' addresses come only from this range (Compose's ipam
    /// `ip_range`), which must lie inside `subnet`; `None` = the whole
    /// subnet. The rest of the subnet stays free for other uses (service
    /// VIPs in the upper half, for stack networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv4Net>,
    /// The container's resolv.conf names the gateway of its first network
    /// as its only nameserver (with `options ndots:0`), where the node's
    /// embedded DNS server listens, instead of the host's resolvers.
    #[serde(default, skip_serializing_if = "is_false")]
    pub embedded_dns: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl BridgeNetwork {
    /// The default network "bridge" on interface `flotilla0`, subnet
    /// `10.213.0.0/24`. `FLOTILLA_BRIDGE_NAME` and `FLOTILLA_BRIDGE_SUBNET`
    /// override the interface and subnet (parallel tests use their own).
    /// A bad override is logged as a warning and the built-in default used;
    /// call [`try_default_from_env`](Self::try_default_from_env) to fail
    /// instead.
    pub fn default_from_env() -> Self {
        Self::try_default_from_env().unwrap_or_else(|e| {
            tracing::warn!("{e}; using the built-in default network (flotilla0, 10.213.0.0/24)");
            Self::builtin_default(None)
        })
    }

    /// Like [`default_from_env`](Self::default_from_env) but fails on a bad
    /// override instead of falling back to the built-in default.
    pub fn try_default_from_env() -> Result<Self> {
        Self::from_overrides(
            std::env::var(ENV_BRIDGE_NAME).ok(),
            std::env::var(ENV_BRIDGE_SUBNET).ok(),
        )
    }

    /// The default network with optional bridge-name and subnet overrides
    /// (the values of the environment variables). Pure.
    pub fn from_overrides(bridge: Option<String>, subnet: Option<String>) -> Result<Self> {
        let mut net = Self::builtin_default(bridge);
        if let Some(subnet) = subnet.filter(|s| !s.trim().is_empty()) {
            net.subnet = parse_subnet(&subnet).map_err(|detail| {
                NetError::invalid("FLOTILLA_BRIDGE_SUBNET", format!("{subnet:?}: {detail}"))
            })?;
        }
        net.validate()?;
        Ok(net)
    }

    fn builtin_default(bridge: Option<String>) -> Self {
        BridgeNetwork::new(
            "bridge",
            &bridge
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "flotilla0".to_string()),
            Ipv4Net::new(Ipv4Addr::new(10, 213, 0, 0), 24).expect("static subnet"),
        )
    }

    /// A network over the whole subnet with the host's resolvers (no
    /// `ip_range`, no embedded DNS); set those fields afterwards if wanted.
    /// Not validated: call [`validate`](Self::validate).
    pub fn new(name: &str, bridge: &str, subnet: Ipv4Net) -> Self {
        BridgeNetwork {
            name: name.to_string(),
            bridge: bridge.to_string(),
            subnet,
            ip_range: None,
            embedded_dns: false,
        }
    }

    /// Checks the name, interface name, subnet and ip_range, saying what
    /// was expected.
    pub fn validate(&self) -> Result<()> {
        validate_file_name("network name", &self.name)?;
        validate_ifname("bridge name", &self.bridge)?;
        validate_subnet(self.subnet).map_err(|detail| {
            NetError::invalid(
                "subnet",
                format!("{} for network {:?}: {detail}", self.subnet, self.name),
            )
        })?;
        if let Some(range) = self.ip_range {
            validate_ip_range(self.subnet, range).map_err(|detail| {
                NetError::invalid(
                    "ip_range",
                    format!("{range} for network {:?}: {detail}", self.name),
                )
            })?;
        }
        Ok(())
    }

    /// The gateway: the subnet's first host address, held by the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        first_host(self.subnet)
    }
}

/// How a container is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "NetworkModeRepr", into = "NetworkModeRepr")]
pub enum NetworkMode {
    /// Its own network namespace with only `lo` (up).
    None,
    /// The host's network namespace: no isolation, no setup.
    Host,
    /// Its own namespace with `eth0` on a Flotilla bridge.
    Bridge(BridgeNetwork),
    /// Its own namespace with `eth0` on the first network (the default
    /// route goes via its gateway) and `eth1`, `eth2`… on the others (only
    /// their on-link subnet). At least one network, at most
    /// [`MAX_NETWORKS_PER_CONTAINER`].
    Bridges(Vec<BridgeNetwork>),
}

/// The serialised form: internally tagged (`{"mode": "bridge", …}`) as the
/// records written before `Bridges` existed, with the list of networks under
/// a key because serde cannot flatten a sequence into a tagged map.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
enum NetworkModeRepr {
    None,
    Host,
    Bridge(BridgeNetwork),
    Bridges { networks: Vec<BridgeNetwork> },
}

impl From<NetworkMode> for NetworkModeRepr {
    fn from(mode: NetworkMode) -> Self {
        match mode {
            NetworkMode::None => NetworkModeRepr::None,
            NetworkMode::Host => NetworkModeRepr::Host,
            NetworkMode::Bridge(n) => NetworkModeRepr::Bridge(n),
            NetworkMode::Bridges(networks) => NetworkModeRepr::Bridges { networks },
        }
    }
}

impl From<NetworkModeRepr> for NetworkMode {
    fn from(repr: NetworkModeRepr) -> Self {
        match repr {
            NetworkModeRepr::None => NetworkMode::None,
            NetworkModeRepr::Host => NetworkMode::Host,
            NetworkModeRepr::Bridge(n) => NetworkMode::Bridge(n),
            NetworkModeRepr::Bridges { networks } => NetworkMode::Bridges(networks),
        }
    }
}

impl NetworkMode {
    /// Short human description, used in messages.
    pub fn describe(&self) -> String {
        let one = |n: &BridgeNetwork| format!("{:?} ({} {})", n.name, n.bridge, n.subnet);
        match self {
            NetworkMode::None => "network none".to_string(),
            NetworkMode::Host => "network host".to_string(),
            NetworkMode::Bridge(n) => format!("bridge network {}", one(n)),
            NetworkMode::Bridges(nets) => format!(
                "bridge networks {}",
                nets.iter().map(one).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// The bridge networks the container joins, in interface order (eth0
    /// first); empty for none/host.
    pub fn bridges(&self) -> &[BridgeNetwork] {
        match self {
            NetworkMode::None | NetworkMode::Host => &[],
            NetworkMode::Bridge(n) => std::slice::from_ref(n),
            NetworkMode::Bridges(nets) => nets,
        }
    }

    /// Validates every network, and for several: at least one, at most
    /// [`MAX_NETWORKS_PER_CONTAINER`], distinct names and bridges, subnets
    /// that do not overlap (an address would be ambiguous between two
    /// interfaces).
    pub fn validate(&self) -> Result<()> {
        let nets = self.bridges();
        if matches!(self, NetworkMode::Bridges(_)) && nets.is_empty() {
            return Err(NetError::invalid(
                "networks",
                "a container in bridge mode needs at least one network, got none",
            ));
        }
        if nets.len() > MAX_NETWORKS_PER_CONTAINER {
            return Err(NetError::invalid(
                "networks",
                format!(
                    "a container may join at most {MAX_NETWORKS_PER_CONTAINER} networks, got {}",
                    nets.len()
                ),
            ));
        }
        validate_distinct_networks(nets)
    }
}

/// Each network valid; no two with the same name, bridge, or overlapping
/// subnets. Used for a container's networks and for a node's isolation set.
pub(crate) fn validate_distinct_networks(nets: &[BridgeNetwork]) -> Result<()> {
    for (i, a) in nets.iter().enumerate() {
        a.validate()?;
        for b in &nets[..i] {
            let clash = if a.name == b.name {
                Some("the same name")
            } else if a.bridge == b.bridge {
                Some("the same bridge")
            } else if a.subnet.contains(&b.subnet.network())
                || b.subnet.contains(&a.subnet.network())
            {
                Some("overlapping subnets")
            } else {
                None
            };
            if let Some(clash) = clash {
                return Err(NetError::invalid(
                    "networks",
                    format!(
                        "{:?} ({} {}) and {:?} ({} {}) have {clash}; each network needs its own \
                         name, bridge and subnet",
                        b.name, b.bridge, b.subnet, a.name, a.bridge, a.subnet
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// An ip_range must be a network address inside the subnet and hold at
/// least one address other than the subnet's network, gateway and broadcast.
fn validate_ip_range(subnet: Ipv4Net, range: Ipv4Net) -> std::result::Result<(), String> {
    if range.network() != range.addr() {
        return Err(format!(
            "host bits are set; expected the network address {}",
            range.trunc()
        ));
    }
    if !subnet.contains(&range) {
        return Err(format!("expected a range inside the subnet {subnet}"));
    }
    let reserved = [subnet.network(), first_host(subnet), subnet.broadcast()];
    if range
        .hosts()
        .chain([range.network(), range.broadcast()])
        .all(|a| reserved.contains(&a))
    {
        return Err(format!(
            "it holds no usable address (the subnet's network, gateway {} and broadcast are \
             reserved)",
            first_host(subnet)
        ));
    }
    Ok(())
}

/// Parses `a.b.c.d/len`, normalising host bits away (`10.1.2.3/24` → `10.1.2.0/24`).
pub(crate) fn parse_subnet(s: &str) -> std::result::Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .trim()
        .parse()
        .map_err(|_| "expected an IPv4 subnet like 10.213.0.0/24".to_string())?;
    let net = net.trunc();
    validate_subnet(net)?;
    Ok(net)
}

fn validate_subnet(net: Ipv4Net) -> std::result::Result<(), String> {
    if net.prefix_len() < 8 || net.prefix_len() > 30 {
        return Err(format!(
            "prefix length must be between /8 and /30 (a gateway and at least one container), got /{}",
            net.prefix_len()
        ));
    }
    let first = net.network().octets()[0];
    if first == 0 || first == 127 || first >= 224 || net.network().is_link_local() {
        return Err(format!(
            "{net} is not usable for containers (0/8, loopback, link-local, multicast and \
             reserved ranges are refused); use a private range such as 10.213.0.0/24"
        ));
    }
    if net.network() != net.addr() {
        return Err(format!(
            "host bits are set; expected the network address {}",
            net.trunc()
        ));
    }
    Ok(())
}

pub(crate) fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// Interface names: 1..=15 bytes, no '/', whitespace or ':' (kernel rules).
pub(crate) fn validate_ifname(what: &'static str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_IFNAME_LEN {
        return Err(NetError::invalid(
            what,
            format!("{name:?} must be 1 to {MAX_IFNAME_LEN} bytes long"),
        ));
    }
    // Beyond the kernel's rules, quotes and backslashes are refused and only
    // printable ASCII allowed, because bridge names are written into
    // nftables rulesets (see `isolation`).
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| matches!(c, '/' | ':' | '"' | '\\' | '\'') || !c.is_ascii_graphic())
    {
        return Err(NetError::invalid(
            what,
            format!(
                "{name:?} must be printable ASCII without '/', ':', quotes, '\\' or whitespace"
            ),
        ));
    }
    Ok(())
}

/// Names used as file names under the state dir: `[A-Za-z0-9_.-]`, not
/// starting with '.' or '-', at most 128 bytes.
pub(crate) fn validate_file_name(what: &'static str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() || name.len() > 128 || !ok_chars || name.starts_with(['.', '-']) {
        return Err(NetError::invalid(
            what,
            format!(
                "{name:?}: expected 1 to 128 characters from [A-Za-z0-9_.-], not starting with '.' or '-'"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_parsing_normalises_and_rejects_bad_prefixes() {
        assert_eq!(
            parse_subnet("10.1.2.3/24").unwrap().to_string(),
            "10.1.2.0/24"
        );
        assert!(parse_subnet("10.1.2.0/31").is_err());
        assert!(parse_subnet("10.0.0.0/7").is_err());
        assert!(parse_subnet("banana").is_err());
        assert!(parse_subnet("127.0.0.0/24").is_err());
        assert!(parse_subnet("224.1.0.0/24").is_err());
    }

    #[test]
    fn default_network_and_overrides() {
        let d = BridgeNetwork::from_overrides(None, None).unwrap();
        assert_eq!(
            (d.name.as_str(), d.bridge.as_str()),
            ("bridge", "flotilla0")
        );
        assert_eq!(d.subnet.to_string(), "10.213.0.0/24");
        let o = BridgeNetwork::from_overrides(Some("br-t1".into()), Some("10.214.7.0/24".into()))
            .unwrap();
        assert_eq!(
            (o.bridge.as_str(), o.subnet.to_string().as_str()),
            ("br-t1", "10.214.7.0/24")
        );
        let e = BridgeNetwork::from_overrides(None, Some("10.0.0.0/99".into())).unwrap_err();
        assert!(e.to_string().contains("FLOTILLA_BRIDGE_SUBNET"), "{e}");
        assert!(BridgeNetwork::from_overrides(Some("x".repeat(16)), None).is_err());
    }

    #[test]
    fn gateway_is_first_host() {
        let n = BridgeNetwork::new("n", "b", "10.9.8.0/24".parse().unwrap());
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 9, 8, 1));
        assert!(n.validate().is_ok());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut n = BridgeNetwork::new("n", "much-too-long-bridge", "10.9.8.0/24".parse().unwrap());
        let e = n.validate().unwrap_err().to_string();
        assert!(e.contains("bridge name") && e.contains("15"), "{e}");
        n.bridge = "ok0".into();
        n.name = "../etc".into();
        assert!(n
            .validate()
            .unwrap_err()
            .to_string()
            .contains("network name"));
        n.name = "ok".into();
        n.subnet = "10.9.8.5/24".parse().unwrap();
        assert!(n.validate().unwrap_err().to_string().contains("host bits"));
    }

    #[test]
    fn records_written_before_multi_network_still_load() {
        let old =
            r#"{"mode":"bridge","name":"bridge","bridge":"flotilla0","subnet":"10.213.0.0/24"}"#;
        let mode: NetworkMode = serde_json::from_str(old).unwrap();
        let net = BridgeNetwork::new("bridge", "flotilla0", "10.213.0.0/24".parse().unwrap());
        assert_eq!(mode, NetworkMode::Bridge(net.clone()));
        // Unset new fields are not written, so old readers still load ours.
        assert_eq!(serde_json::to_string(&mode).unwrap(), old);
        for mode in [NetworkMode::None, NetworkMode::Host] {
            let text = serde_json::to_string(&mode).unwrap();
            assert_eq!(serde_json::from_str::<NetworkMode>(&text).unwrap(), mode);
        }
    }

    #[test]
    fn several_networks_round_trip() {
        let mut a = BridgeNetwork::new("a", "bra", "10.210.1.0/24".parse().unwrap());
        a.ip_range = Some("10.210.1.0/25".parse().unwrap());
        a.embedded_dns = true;
        let b = BridgeNetwork::new("b", "brb", "10.210.2.0/24".parse().unwrap());
        let mode = NetworkMode::Bridges(vec![a, b]);
        let text = serde_json::to_string(&mode).unwrap();
        assert!(
            text.starts_with(r#"{"mode":"bridges","networks":["#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<NetworkMode>(&text).unwrap(), mode);
        assert_eq!(mode.bridges().len(), 2);
        assert!(mode.validate().is_ok());
        assert!(mode.describe().contains("\"a\"") && mode.describe().contains("\"b\""));
    }

    #[test]
    fn several_networks_must_be_distinct_and_few() {
        let n = |name: &str, bridge: &str, subnet: &str| {
            BridgeNetwork::new(name, bridge, subnet.parse().unwrap())
        };
        let err = |nets: Vec<BridgeNetwork>| {
            NetworkMode::Bridges(nets)
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(err(vec![]).contains("at least one network"));
        let e = err(vec![
            n("a", "bra", "10.1.0.0/24"),
            n("a", "brb", "10.2.0.0/24"),
        ]);
        assert!(e.contains("same name"), "{e}");
        let e = err(vec![
            n("a", "bra", "10.1.0.0/16"),
            n("b", "brb", "10.1.2.0/24"),
        ]);
        assert!(e.contains("overlapping subnets"), "{e}");
        let many = (0..=MAX_NETWORKS_PER_CONTAINER)
            .map(|i| {
                n(
                    &format!("n{i}"),
                    &format!("br{i}"),
                    &format!("10.{i}.0.0/24"),
                )
            })
            .collect();
        assert!(err(many).contains("at most"));
    }

    #[test]
    fn ip_range_must_fit_the_subnet() {
        let mut net = BridgeNetwork::new("n", "b", "10.9.8.0/24".parse().unwrap());
        for (range, ok) in [
            ("10.9.8.0/25", true),
            ("10.9.8.128/25", true),
            ("10.9.8.0/24", true),
            ("10.9.9.0/25", false),
            ("10.9.0.0/16", false),
            ("10.9.8.0/31", false), // only the network address and gateway
        ] {
            net.ip_range = Some(range.parse().unwrap());
            assert_eq!(net.validate().is_ok(), ok, "{range}");
        }
        net.ip_range = Some("10.9.8.5/25".parse().unwrap());
        let e = net.validate().unwrap_err().to_string();
        assert!(e.contains("ip_range") && e.contains("host bits"), "{e}");
    }

    #[test]
    fn bridge_names_that_would_break_a_ruleset_are_refused() {
        for bad in ["br\"0", "br'0", "br\\0", "brü"] {
            assert!(validate_ifname("bridge name", bad).is_err(), "{bad}");
        }
        assert!(validate_ifname("bridge name", "ft-a_1.x").is_ok());
    }
}
