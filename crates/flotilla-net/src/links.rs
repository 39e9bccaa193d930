//! Netlink operations on links, addresses and routes (rtnetlink), plus the
//! runner that executes them on a private current-thread tokio runtime in a
//! thread of its own — optionally inside a network namespace, because a
//! netlink socket acts on the namespace it was opened in.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{netlink_errno, NetError, Result};
use crate::netns;

/// Runs `f` with a netlink handle of the host namespace (`netns == None`)
/// or of the namespace at `netns`. Always on a fresh thread so it works
/// even when the caller is itself inside a tokio runtime.
pub(crate) fn run<T, F, Fut>(netns_path: Option<&Path>, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: std::future::Future<Output = Result<T>>,
{
    let work = move || -> Result<T> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| NetError::io("starting tokio runtime for", "netlink", e))?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection()
                .map_err(|e| NetError::io("opening", "netlink route socket", e))?;
            tokio::spawn(conn);
            f(handle).await
        })
    };
    match netns_path {
        Some(path) => netns::in_netns(path, work),
        None => std::thread::scope(|s| {
            s.spawn(work)
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }),
    }
}

/// One network interface, as `flotilla inspect` and tests see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSummary {
    pub name: String,
    pub index: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub mtu: u32,
    /// Link kind ("bridge", "veth", …); `None` for e.g. loopback.
    pub kind: Option<String>,
    /// Index of the bridge this link is a port of.
    pub controller: Option<u32>,
    pub ipv4: Vec<Ipv4Net>,
}

/// Lists links and their IPv4 addresses in the host namespace or in `netns`.
pub fn list_links(netns_path: Option<&Path>) -> Result<Vec<LinkSummary>> {
    run(
        netns_path,
        |h| async move { links_with_addresses(&h).await },
    )
}

/// Every link of the handle's namespace with its IPv4 addresses: the one
/// place that joins the link and address dumps.
pub(crate) async fn links_with_addresses(h: &Handle) -> Result<Vec<LinkSummary>> {
    let links: Vec<LinkMessage> = h
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::netlink("listing links", e))?;
    let addrs: Vec<AddressMessage> = h
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::netlink("listing addresses", e))?;
    Ok(links
        .iter()
        .map(|l| {
            let mut s = summarise(l);
            s.ipv4 = addrs
                .iter()
                .filter(|a| a.header.index == s.index)
                .filter_map(ipv4_of)
                .collect();
            s
        })
        .collect())
}

/// The IPv4 address (with prefix) an address message carries, if any.
fn ipv4_of(a: &AddressMessage) -> Option<Ipv4Net> {
    a.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Address(IpAddr::V4(ip)) => Ipv4Net::new(*ip, a.header.prefix_len).ok(),
        _ => None,
    })
}

/// One IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSummary {
    /// Destination network (`0.0.0.0/0` for the default route).
    pub destination: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// Index of the outgoing interface.
    pub output_interface: Option<u32>,
}

/// Lists the IPv4 routes of the main table in the host namespace or `netns`.
pub fn list_routes(netns_path: Option<&Path>) -> Result<Vec<RouteSummary>> {
    run(netns_path, |h| async move {
        let routes: Vec<_> = h
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::netlink("listing routes", e))?;
        Ok(routes
            .iter()
            .filter(|r| r.header.table == RouteHeader::RT_TABLE_MAIN)
            .map(|r| {
                let mut destination = Ipv4Addr::UNSPECIFIED;
                let mut summary = RouteSummary {
                    destination: Ipv4Net::default(),
                    gateway: None,
                    output_interface: None,
                };
                for attr in &r.attributes {
                    match attr {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => destination = *ip,
                        RouteAttribute::Gateway(RouteAddress::Inet(ip)) => {
                            summary.gateway = Some(*ip)
                        }
                        RouteAttribute::Oif(i) => summary.output_interface = Some(*i),
                        _ => {}
                    }
                }
                summary.destination = Ipv4Net::new(destination, r.header.destination_prefix_length)
                    .unwrap_or_default();
                summary
            })
            .collect())
    })
}

fn summarise(l: &LinkMessage) -> LinkSummary {
    let mut s = LinkSummary {
        name: String::new(),
        index: l.header.index,
        up: l.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        kind: None,
        controller: None,
        ipv4: Vec::new(),
    };
    for attr in &l.attributes {
        match attr {
            LinkAttribute::IfName(n) => s.name = n.clone(),
            LinkAttribute::Mtu(m) => s.mtu = *m,
            LinkAttribute::Controller(c) => s.controller = Some(*c),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        s.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    s
}

fn is_bridge(l: &LinkMessage) -> bool {
    l.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

/// The link called `name`, or `None` if there is none.
pub(crate) async fn get_link(h: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut stream = h.link().get().match_name(name).execute();
    match stream.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(NetError::netlink(format!("looking up link {name}"), e)),
    }
}

/// Deletes the link called `name` if it exists.
pub(crate) async fn delete_link(h: &Handle, name: &str) -> Result<()> {
    let Some(link) = get_link(h, name).await? else {
        return Ok(());
    };
    match h.link().del(link.header.index).execute().await {
        Ok(()) => Ok(()),
        // Raced with another deleter (or the peer's namespace went away).
        Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(NetError::netlink(format!("deleting link {name}"), e)),
    }
}

/// Deletes every link whose name `doomed` accepts (one dump, then deletes).
pub(crate) async fn delete_links_where(h: &Handle, doomed: impl Fn(&str) -> bool) -> Result<()> {
    let links: Vec<LinkMessage> = h
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::netlink("listing links", e))?;
    for link in links.iter().map(summarise).filter(|l| doomed(&l.name)) {
        match h.link().del(link.index).execute().await {
            Ok(()) => {}
            // Gone already: deleting one end of a veth pair deletes both.
            Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => {}
            Err(e) => return Err(NetError::netlink(format!("deleting link {}", link.name), e)),
        }
    }
    Ok(())
}

/// Facts about a ready bridge.
pub(crate) struct BridgeInfo {
    pub index: u32,
    pub mtu: u32,
}

/// Makes sure bridge `name` exists, holds the subnet's gateway and is up.
/// Safe to race with other processes doing the same: EEXIST is success.
pub(crate) async fn ensure_bridge(h: &Handle, name: &str, subnet: Ipv4Net) -> Result<BridgeInfo> {
    let gateway = crate::network::first_host(subnet);
    let prefix = subnet.prefix_len();
    check_no_overlap(h, name, subnet).await?;
    let link = match get_link(h, name).await? {
        Some(l) => l,
        None => {
            match h
                .link()
                .add(rtnetlink::LinkBridge::new(name).build())
                .execute()
                .await
            {
                Ok(()) => {}
                Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(NetError::netlink(format!("creating bridge {name}"), e)),
            }
            get_link(h, name).await?.ok_or_else(|| NetError::NotFound {
                what: format!("bridge {name} right after creating it"),
            })?
        }
    };
    if !is_bridge(&link) {
        return Err(NetError::invalid(
            "bridge name",
            format!("{name:?} is an existing interface that is not a bridge; choose another bridge name"),
        ));
    }
    let info = summarise(&link);
    // A bridge without an address of its own takes the lowest MAC of its
    // ports and changes it when ports come and go; containers that cached
    // the old one for the gateway or a VIP then send into the void until
    // their neighbour entry expires. A fixed MAC (from the gateway address)
    // keeps it stable, as Docker does.
    let mac = mac_for(gateway);
    let has_mac = link
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Address(m) if m[..] == mac[..]));
    if !has_mac {
        h.link()
            .set(
                LinkUnspec::new_with_index(info.index)
                    .address(mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| NetError::netlink(format!("setting the MAC of bridge {name}"), e))?;
    }
    add_address(h, info.index, gateway, prefix, &format!("bridge {name}")).await?;
    if !info.up {
        set_up(h, info.index, name).await?;
    }
    Ok(BridgeInfo {
        index: info.index,
        mtu: info.mtu,
    })
}

/// Refuses a subnet that overlaps an address on any interface other than
/// the bridge itself: routing it to the bridge would cut the host off from
/// that network.
async fn check_no_overlap(h: &Handle, bridge: &str, subnet: Ipv4Net) -> Result<()> {
    for link in links_with_addresses(h).await? {
        if link.name == bridge {
            continue;
        }
        if let Some(other) = link.ipv4.iter().find(|other| overlaps(subnet, **other)) {
            return Err(NetError::invalid(
                "subnet",
                format!(
                    "{subnet} for bridge {bridge} overlaps {other} on interface {}; \
                     choose another subnet (e.g. with FLOTILLA_BRIDGE_SUBNET)",
                    link.name
                ),
            ));
        }
    }
    Ok(())
}

/// True if the two networks share any address. Pure.
pub(crate) fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

async fn set_up(h: &Handle, index: u32, name: &str) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("setting {name} up"), e))
}

/// Creates veth `host`↔`peer` with the host end enslaved to the bridge and
/// up, then moves `peer` into the namespace at `netns_path`.
pub(crate) async fn create_veth_into(
    h: &Handle,
    host: &str,
    peer: &str,
    bridge: &BridgeInfo,
    netns_path: &Path,
) -> Result<()> {
    let msg = LinkVeth::new(host, peer)
        .mtu(bridge.mtu)
        .controller(bridge.index)
        .up()
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("creating veth pair {host}/{peer}"), e))?;
    let peer_link = get_link(h, peer).await?.ok_or_else(|| NetError::NotFound {
        what: format!("veth peer {peer} right after creating it"),
    })?;
    let ns = std::fs::File::open(netns_path)
        .map_err(|e| NetError::io("opening network namespace", netns_path, e))?;
    h.link()
        .set(
            LinkUnspec::new_with_index(peer_link.header.index)
                .setns_by_fd(ns.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("moving {peer} into {}", netns_path.display()), e))
}

/// Inside a container namespace: brings `lo` up.
pub(crate) async fn loopback_up(h: &Handle) -> Result<()> {
    let lo = get_link(h, "lo").await?.ok_or_else(|| NetError::NotFound {
        what: "loopback interface lo in the new namespace".to_string(),
    })?;
    set_up(h, lo.header.index, "lo").await
}

/// What one interface (`eth0`, `eth1`…) of a container gets.
pub(crate) struct EthConfig {
    /// Name inside the container.
    pub name: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// Default route via this address; `None` leaves only the on-link
    /// route of the subnet (secondary networks).
    pub default_gateway: Option<Ipv4Addr>,
    pub mtu: u32,
}

/// The interface's MAC, derived from its address (locally administered
/// `02:42:` + the four address bytes, as Docker does). A replacement
/// container often gets the address a killed one had; with a random MAC the
/// host's neighbour entry for that address would still name the old MAC,
/// and replies to the new container would vanish until the entry goes stale
/// (seconds). With the same MAC for the same address the entry stays right.
pub(crate) fn mac_for(address: Ipv4Addr) -> [u8; 6] {
    let o = address.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Inside a container namespace: renames the veth peer to `cfg.name`, gives
/// it the MTU and the address, sets it up and, for the primary interface,
/// adds the default route via the gateway.
pub(crate) async fn configure_eth(h: &Handle, peer: &str, cfg: &EthConfig) -> Result<()> {
    let name = cfg.name.as_str();
    let link = get_link(h, peer).await?.ok_or_else(|| NetError::NotFound {
        what: format!("veth peer {peer} inside the container namespace"),
    })?;
    let index = link.header.index;
    h.link()
        .set(
            LinkUnspec::new_with_index(index)
                .name(name)
                .mtu(cfg.mtu)
                .address(mac_for(cfg.address).to_vec())
                .build(),
        )
        .execute()
        .await
        .map_err(|e| NetError::netlink(format!("renaming {peer} to {name}"), e))?;
    add_address(h, index, cfg.address, cfg.prefix, name).await?;
    set_up(h, index, name).await?;
    let Some(gateway) = cfg.default_gateway else {
        return Ok(());
    };
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(index)
        .build();
    match h.route().add(route).execute().await {
        Ok(()) => Ok(()),
        Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(NetError::netlink(
            format!("adding default route via {gateway}"),
            e,
        )),
    }
}

/// Adds `address/prefix` to link `index`; already present is success.
async fn add_address(
    h: &Handle,
    index: u32,
    address: Ipv4Addr,
    prefix: u8,
    link: &str,
) -> Result<()> {
    match h
        .address()
        .add(index, IpAddr::V4(address), prefix)
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(NetError::netlink(
            format!("adding {address}/{prefix} to {link}"),
            e,
        )),
    }
}

/// Makes the /32 addresses on bridge `name` (link `index`) exactly `vips`:
/// adds the missing ones, deletes the others. Addresses with another prefix
/// (the gateway's) are never touched.
pub(crate) async fn set_host_vips(
    h: &Handle,
    index: u32,
    name: &str,
    vips: &[Ipv4Addr],
) -> Result<()> {
    let current: Vec<AddressMessage> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::netlink(format!("listing addresses of {name}"), e))?;
    for msg in current {
        let Some(net) = ipv4_of(&msg) else { continue };
        if msg.header.index != index || net.prefix_len() != 32 || vips.contains(&net.addr()) {
            continue;
        }
        match h.address().del(msg).execute().await {
            Ok(()) => {}
            // Raced with another remover.
            Err(e) if netlink_errno(&e) == Some(libc::EADDRNOTAVAIL) => {}
            Err(e) => return Err(NetError::netlink(format!("deleting {net} from {name}"), e)),
        }
    }
    for vip in vips {
        add_address(h, index, *vip, 32, name).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_follows_the_address() {
        assert_eq!(
            mac_for(Ipv4Addr::new(10, 210, 0, 7)),
            [0x02, 0x42, 10, 210, 0, 7]
        );
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        let n = |s: &str| s.parse::<Ipv4Net>().unwrap();
        assert!(overlaps(n("10.213.0.0/24"), n("10.0.0.5/8")));
        assert!(overlaps(n("10.0.0.5/8"), n("10.213.0.0/24")));
        assert!(overlaps(n("10.213.0.0/24"), n("10.213.0.77/32")));
        assert!(!overlaps(n("10.213.0.0/24"), n("10.213.1.0/24")));
        assert!(!overlaps(n("10.213.0.0/24"), n("127.0.0.1/8")));
    }
}
