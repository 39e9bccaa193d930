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
        BridgeNetwork {
            name: "bridge".to_string(),
            bridge: bridge
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "flotilla0".to_string()),
            subnet: Ipv4Net::new(Ipv4Addr::new(10, 213, 0, 0), 24).expect("static subnet"),
        }
    }

    /// Checks the name, interface name and subnet, saying what was expected.
    pub fn validate(&self) -> Result<()> {
        validate_file_name("network name", &self.name)?;
        validate_ifname("bridge name", &self.bridge)?;
        validate_subnet(self.subnet).map_err(|detail| {
            NetError::invalid(
                "subnet",
                format!("{} for network {:?}: {detail}", self.subnet, self.name),
            )
        })
    }

    /// The gateway: the subnet's first host address, held by the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        first_host(self.subnet)
    }
}

/// How a container is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum NetworkMode {
    /// Its own network namespace with only `lo` (up).
    None,
    /// The host's network namespace: no isolation, no setup.
    Host,
    /// Its own namespace with `eth0` on a Flotilla bridge.
    Bridge(BridgeNetwork),
}

impl NetworkMode {
    /// Short human description, used in messages.
    pub fn describe(&self) -> String {
        match self {
            NetworkMode::None => "network none".to_string(),
            NetworkMode::Host => "network host".to_string(),
            NetworkMode::Bridge(n) => {
                format!("bridge network {:?} ({} {})", n.name, n.bridge, n.subnet)
            }
        }
    }
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
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(NetError::invalid(
            what,
            format!("{name:?} may not contain '/', ':' or whitespace"),
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
        let n = BridgeNetwork {
            name: "n".into(),
            bridge: "b".into(),
            subnet: "10.9.8.0/24".parse().unwrap(),
        };
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 9, 8, 1));
        assert!(n.validate().is_ok());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut n = BridgeNetwork {
            name: "n".into(),
            bridge: "much-too-long-bridge".into(),
            subnet: "10.9.8.0/24".parse().unwrap(),
        };
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
}
