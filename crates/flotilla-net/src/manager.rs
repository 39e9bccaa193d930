//! `NetManager`: attaches containers to none/host/bridge networks and
//! detaches them, keeping leases and attachment records under its state
//! directory so that a restarted process picks up where it left off; owns
//! the node's service VIPs on bridges and the isolation rules between
//! networks.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::attachment::{Attachment, AttachmentRecord, RecordStore};
use crate::error::{NetError, Result};
use crate::etc_files::{host_resolv_conf, reachable_from_bridge, validate_hostname};
use crate::ipam::Ipam;
use crate::isolation;
use crate::links::{self, EthConfig};
use crate::names::{is_container_veth, nth_host_veth_name, nth_peer_veth_name};
use crate::netns::{self, DEFAULT_NETNS_DIR};
use crate::network::{first_host, validate_file_name, BridgeNetwork, NetworkMode};

/// Node-local network manager. Cheap to create; holds no open resources,
/// so several processes may use the same state directory at once.
#[derive(Debug)]
pub struct NetManager {
    state_dir: PathBuf,
    netns_dir: PathBuf,
}

impl NetManager {
    /// Opens (creating if needed) the state directory, normally
    /// `<data-dir>/net`. Named namespaces live in `/run/flotilla/netns`.
    pub fn new(state_dir: &Path) -> Result<Self> {
        Self::with_netns_dir(state_dir, Path::new(DEFAULT_NETNS_DIR))
    }

    /// Like [`new`](Self::new) with another directory for namespace files.
    pub fn with_netns_dir(state_dir: &Path, netns_dir: &Path) -> Result<Self> {
        let mgr = NetManager {
            state_dir: state_dir.to_path_buf(),
            netns_dir: netns_dir.to_path_buf(),
        };
        mgr.records().ensure_dir()?;
        mgr.ipam().ensure_dir()?;
        Ok(mgr)
    }

    fn records(&self) -> RecordStore {
        RecordStore::new(&self.state_dir)
    }

    fn ipam(&self) -> Ipam {
        Ipam::new(&self.state_dir)
    }

    /// Where the named namespace of `container_id` is (or would be).
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.netns_dir.join(container_id)
    }

    /// Connects `container_id` as `mode` says. Calling it again with the
    /// same mode returns the existing attachment (same address); with a
    /// different mode it fails until the container is detached. On failure
    /// everything created so far is undone.
    pub fn attach(
        &self,
        container_id: &str,
        mode: &NetworkMode,
        hostname: &str,
    ) -> Result<Attachment> {
        validate_file_name("container id", container_id)?;
        validate_hostname("hostname", hostname)?;
        mode.validate()?;
        if let Some(record) = self.records().load(container_id)? {
            if record.mode != *mode {
                return Err(NetError::AlreadyAttached {
                    container_id: container_id.to_string(),
                    existing: record.mode.describe(),
                });
            }
            if self.still_present(&record) {
                return Ok(record.attachment);
            }
            tracing::info!(container_id, "attachment record is stale; attaching again");
        }

        let attachment = match mode {
            NetworkMode::Host => Ok(Attachment {
                // The host's own resolvers, loopback ones included, are
                // reachable from the host namespace.
                dns: host_resolv_conf()?.nameservers,
                ..Attachment::default()
            }),
            NetworkMode::None => {
                require_root("creating a network namespace")?;
                self.attach_none(container_id)
            }
            NetworkMode::Bridge(_) | NetworkMode::Bridges(_) => {
                require_root("creating a network namespace and veth pair")?;
                self.attach_bridges(container_id, mode.bridges())
            }
        };
        let saved = attachment.and_then(|attachment| {
            self.records().save(&AttachmentRecord {
                container_id: container_id.to_string(),
                mode: mode.clone(),
                hostname: hostname.to_string(),
                attachment: attachment.clone(),
            })?;
            Ok(attachment)
        });
        if saved.is_err() && *mode != NetworkMode::Host {
            if let Err(cleanup) = self.detach(container_id) {
                tracing::warn!(container_id, error = %cleanup, "cleaning up after a failed attach");
            }
        }
        saved
    }

    fn still_present(&self, record: &AttachmentRecord) -> bool {
        match &record.attachment.netns_path {
            None => true,
            Some(path) => netns::is_netns_mount(path),
        }
    }

    fn attach_none(&self, container_id: &str) -> Result<Attachment> {
        let ns = netns::create(&self.netns_dir, container_id)?;
        links::run(Some(&ns), |h| async move { links::loopback_up(&h).await })?;
        Ok(Attachment {
            netns_path: Some(ns),
            ..Attachment::default()
        })
    }

    /// eth0 on `nets[0]` with the default route, eth1.. on the others.
    fn attach_bridges(&self, container_id: &str, nets: &[BridgeNetwork]) -> Result<Attachment> {
        let addresses = nets
            .iter()
            .map(|net| self.ipam().lease(net, container_id))
            .collect::<Result<Vec<Ipv4Addr>>>()?;
        let ns = netns::create(&self.netns_dir, container_id)?;
        let host_veths: Vec<String> = (0..nets.len())
            .map(|n| nth_host_veth_name(container_id, n))
            .collect();

        let mtus = links::run(None, |h| {
            let (ns, host_veths) = (&ns, &host_veths);
            async move {
                let mut mtus = Vec::with_capacity(nets.len());
                for (n, net) in nets.iter().enumerate() {
                    let bridge = links::ensure_bridge(&h, &net.bridge, net.subnet).await?;
                    let peer = nth_peer_veth_name(container_id, n);
                    // Leftovers of a crashed attach of the same container
                    // (looked up by name: cheaper than a dump of all links).
                    links::delete_link(&h, &host_veths[n]).await?;
                    links::delete_link(&h, &peer).await?;
                    links::create_veth_into(&h, &host_veths[n], &peer, &bridge, ns).await?;
                    mtus.push(bridge.mtu);
                }
                Ok(mtus)
            }
        })?;
        let configs: Vec<EthConfig> = nets
            .iter()
            .enumerate()
            .map(|(n, net)| EthConfig {
                name: format!("eth{n}"),
                address: addresses[n],
                prefix: net.subnet.prefix_len(),
                default_gateway: (n == 0).then(|| net.gateway()),
                mtu: mtus[n],
            })
            .collect();
        links::run(Some(&ns), |h| {
            let configs = &configs;
            async move {
                links::loopback_up(&h).await?;
                for (n, cfg) in configs.iter().enumerate() {
                    links::configure_eth(&h, &nth_peer_veth_name(container_id, n), cfg).await?;
                }
                Ok(())
            }
        })?;

        let first = &nets[0];
        let dns = if first.embedded_dns {
            vec![IpAddr::V4(first.gateway())]
        } else {
            reachable_from_bridge(&host_resolv_conf()?.nameservers)
        };
        Ok(Attachment {
            netns_path: Some(ns),
            ipv4: Some(addresses[0]),
            prefix_len: first.subnet.prefix_len(),
            gateway: Some(first.gateway()),
            host_veth: Some(host_veths[0].clone()),
            dns,
            addresses: nets
                .iter()
                .map(|n| n.name.clone())
                .zip(addresses.iter().copied())
                .collect(),
            host_veths,
            embedded_dns: first.embedded_dns,
        })
    }

    /// Disconnects `container_id`: deletes its veth pair, unmounts and
    /// removes its namespace, releases its lease, forgets its record.
    /// Idempotent, and works on the half-made state of a crashed attach.
    pub fn detach(&self, container_id: &str) -> Result<()> {
        validate_file_name("container id", container_id)?;
        let record = match self.records().load(container_id) {
            Ok(r) => r,
            Err(e @ NetError::CorruptState { .. }) => {
                tracing::warn!(container_id, error = %e, "ignoring unreadable attachment record");
                None
            }
            Err(e) => return Err(e),
        };
        let is_host = matches!(&record, Some(r) if r.mode == NetworkMode::Host);
        if !is_host {
            let recorded: Vec<String> = record
                .as_ref()
                .map(|r| r.attachment.host_veths.clone())
                .unwrap_or_default();
            links::run(None, |h| {
                let recorded = &recorded;
                async move {
                    // By name, not only from the record: a crash may have
                    // lost the record or left a peer not yet moved.
                    links::delete_links_where(&h, |name| {
                        is_container_veth(container_id, name) || recorded.iter().any(|r| r == name)
                    })
                    .await
                }
            })?;
            let ns = record
                .as_ref()
                .and_then(|r| r.attachment.netns_path.clone())
                .unwrap_or_else(|| self.netns_path(container_id));
            netns::remove(&ns)?;
        }
        self.ipam().release_everywhere(container_id)?;
        self.records().remove(container_id)
    }

    /// The attachment of `container_id`, if it is attached (read from the
    /// persisted record, so it works after a restart).
    pub fn attachment(&self, container_id: &str) -> Result<Option<Attachment>> {
        validate_file_name("container id", container_id)?;
        Ok(self.records().load(container_id)?.map(|r| r.attachment))
    }

    /// Current leases of a network: container id → address.
    pub fn leases(&self, network: &str) -> Result<BTreeMap<String, Ipv4Addr>> {
        validate_file_name("network name", network)?;
        self.ipam().leases(network)
    }

    /// Deletes the bridge of `net` if it exists (its veths stay, detached).
    /// Flotilla never does this on its own; it is for `network rm` and tests.
    pub fn remove_bridge(&self, net: &BridgeNetwork) -> Result<()> {
        net.validate()?;
        links::run(None, |h| async move {
            links::delete_link(&h, &net.bridge).await
        })
    }
}

impl NetManager {
    /// Level-triggered: makes the /32 addresses on `net`'s bridge exactly
    /// `vips` (creating the bridge with its gateway address if missing), so
    /// that the node owns each service VIP and a proxy can listen on it.
    /// Never touches the gateway address. Idempotent. Each VIP must be a
    /// host address of `net.subnet` other than the gateway (the isolation
    /// rules protect a network's subnet, so VIPs outside it would be
    /// reachable from every network).
    pub fn set_vips(&self, net: &BridgeNetwork, vips: &[Ipv4Addr]) -> Result<()> {
        net.validate()?;
        let mut wanted: Vec<Ipv4Addr> = Vec::with_capacity(vips.len());
        for vip in vips {
            check_vip(net, *vip)?;
            if !wanted.contains(vip) {
                wanted.push(*vip);
            }
        }
        links::run(None, |h| {
            let wanted = &wanted;
            async move {
                let bridge = links::ensure_bridge(&h, &net.bridge, net.subnet).await?;
                links::set_host_vips(&h, bridge.index, &net.bridge, wanted).await
            }
        })
    }

    /// The nftables table (family `inet`) holding this state directory's
    /// isolation rules: `flotilla_<8 hex of sha256(state dir)>`.
    pub fn isolation_table(&self) -> String {
        isolation::table_name(&self.state_dir)
    }

    /// Level-triggered isolation between Flotilla networks: given all
    /// current Flotilla bridge networks of this node, replaces this state
    /// directory's rules atomically so that traffic entering from one
    /// network's bridge cannot reach another network's subnet — neither
    /// forwarded to its containers nor delivered to the host's addresses in
    /// it (VIPs, gateway). Traffic within a network, to the network's own
    /// gateway and VIPs, and to the host's other addresses is unaffected; a
    /// container on both A and B reaches both through its own interfaces.
    /// `ip_forward` is left as it is. Needs the `nft` command (nftables).
    pub fn set_isolation(&self, nets: &[BridgeNetwork]) -> Result<()> {
        let ruleset = isolation::render_ruleset(&self.isolation_table(), nets)?;
        isolation::apply(&ruleset)
    }

    /// Removes this state directory's isolation rules entirely (tests, the
    /// `down` of the last stack). Absent rules are success.
    pub fn clear_isolation(&self) -> Result<()> {
        isolation::apply(&isolation::render_removal(&self.isolation_table()))
    }
}

/// A VIP must be a host address of the subnet and not its gateway. Pure.
fn check_vip(net: &BridgeNetwork, vip: Ipv4Addr) -> Result<()> {
    let reserved = [
        net.subnet.network(),
        first_host(net.subnet),
        net.subnet.broadcast(),
    ];
    if !net.subnet.contains(&vip) || reserved.contains(&vip) {
        return Err(NetError::invalid(
            "VIP",
            format!(
                "{vip} for network {:?}: expected a host address of {} other than the gateway {}",
                net.name,
                net.subnet,
                net.gateway()
            ),
        ));
    }
    Ok(())
}

fn require_root(what: &str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(NetError::NeedsRoot {
            what: what.to_string(),
        })
    }
}
