//! The desired state the agent hands to [`crate::DnsServer::apply`].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// Everything the server should serve; `apply` makes the running server equal to it.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DnsConfig {
    pub views: Vec<View>,
    /// Where names not in a view go; empty = the host's /etc/resolv.conf nameservers (loopback
    /// ones such as 127.0.0.53 included: the server runs on the host, where they work).
    pub upstreams: Vec<SocketAddr>,
}

/// The names one network sees, served on that network's gateway address(es).
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct View {
    /// E.g. the network name, for logs and metrics.
    pub name: String,
    /// UDP and TCP are served on each.
    pub listen: Vec<SocketAddr>,
    /// Lower-case names without trailing dot ("api", "tasks.api", "shop_api") → addresses.
    /// (Other spellings are normalised too.) An empty list answers NOERROR with no records.
    pub records: BTreeMap<String, Vec<IpAddr>>,
    /// Extra names particular clients see on this view, by the client's source address: a
    /// container attached to several networks asks the first network's gateway and must also
    /// resolve the names of its other networks (as Docker's embedded DNS does). The view's own
    /// records win over a client's extra ones with the same name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clients: BTreeMap<IpAddr, BTreeMap<String, Vec<IpAddr>>>,
}
