//! flotilla-net: node-local container networking (see ARCHITECTURE.md).
//!
//! Containers get `none` (own namespace, only `lo`), `host` (the host's
//! namespace) or `bridge` (own namespace, `eth0` on a Flotilla bridge with an
//! address from a persisted node-local IPAM and a default route via the
//! bridge). Everything goes through netlink (rtnetlink); nothing shells out
//! to `ip`. The API is blocking: each call runs its netlink work on a private
//! current-thread tokio runtime in a thread of its own.
//!
//! Host-wide facts callers must know:
//! - Namespace files live in `/run/flotilla/netns/<container-id>` and host
//!   veths are named `vfl<first 8 hex of sha256(container-id)>`, so container
//!   ids must be unique on the host, across data directories.
//! - Bridges carry no NAT and Flotilla changes no sysctl (`ip_forward`
//!   included): containers reach each other and the bridge's gateway
//!   address, not the outside world.
//! - A container may join several networks (`NetworkMode::Bridges`): eth0
//!   on the first (default route), eth1.. on the others (on-link only).
//! - `NetManager::set_isolation` keeps networks apart with one nftables
//!   table per state directory (`inet flotilla_<hash>`, via `nft -f -`);
//!   `NetManager::set_vips` puts service VIPs on bridges as /32 addresses.
//! - A bridge subnet overlapping an address on another host interface is
//!   refused; parallel tests need distinct subnets as well as bridge names.
//!
//! ```no_run
//! use flotilla_net::{BridgeNetwork, NetManager, NetworkMode, write_etc_files};
//! # fn main() -> flotilla_net::Result<()> {
//! let mgr = NetManager::new("/var/lib/flotilla/net".as_ref())?;
//! let mode = NetworkMode::Bridge(BridgeNetwork::default_from_env());
//! let att = mgr.attach("c1", &mode, "web")?;
//! let files = write_etc_files("/var/lib/flotilla/containers/c1/etc".as_ref(), "web", &att, &[])?;
//! // … put att.netns_path in the OCI spec, bind-mount `files` …
//! mgr.detach("c1")?;
//! # Ok(()) }
//! ```

mod attachment;
mod error;
mod etc_files;
mod ipam;
mod isolation;
mod links;
mod manager;
mod names;
mod netns;
mod network;

pub use attachment::Attachment;
pub use error::{NetError, Result};
pub use etc_files::{
    parse_resolv_conf, reachable_from_bridge, render_embedded_resolv_conf, render_hosts,
    render_resolv_conf, write_etc_files, EtcFiles, ResolvConf,
};
pub use ipnet::Ipv4Net;
pub use links::{list_links, list_routes, LinkSummary, RouteSummary};
pub use manager::NetManager;
pub use names::{host_veth_name, nth_host_veth_name};
pub use netns::{in_netns, is_netns_mount, DEFAULT_NETNS_DIR};
pub use network::{
    BridgeNetwork, NetworkMode, ENV_BRIDGE_NAME, ENV_BRIDGE_SUBNET, MAX_NETWORKS_PER_CONTAINER,
};
