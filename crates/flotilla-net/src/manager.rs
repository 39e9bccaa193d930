//! `NetManager`: attaches containers to none/host/bridge networks and
//! detaches them, keeping leases and attachment records under its state
//! directory so that a restarted process picks up where it left off.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::attachment::{Attachment, AttachmentRecord, RecordStore};
use crate::error::{NetError, Result};
use crate::etc_files::{host_resolv_conf, reachable_from_bridge, validate_hostname};
use crate::ipam::Ipam;
use crate::links::{self, Eth0Config};
use crate::names::{host_veth_name, peer_veth_name};
use crate::netns::{self, DEFAULT_NETNS_DIR};
use crate::network::{validate_file_name, BridgeNetwork, NetworkMode};

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
        if let NetworkMode::Bridge(net) = mode {
            net.validate()?;
        }
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
                netns_path: None,
                ipv4: None,
                prefix_len: 0,
                gateway: None,
                host_veth: None,
                // The host's own resolvers, loopback ones included, are
                // reachable from the host namespace.
                dns: host_resolv_conf()?.nameservers,
            }),
            NetworkMode::None => {
                require_root("creating a network namespace")?;
                self.attach_none(container_id)
            }
            NetworkMode::Bridge(net) => {
                require_root("creating a network namespace and veth pair")?;
                self.attach_bridge(container_id, net)
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
            ipv4: None,
            prefix_len: 0,
            gateway: None,
            host_veth: None,
            dns: Vec::new(),
        })
    }

    fn attach_bridge(&self, container_id: &str, net: &BridgeNetwork) -> Result<Attachment> {
        let address = self.ipam().lease(net, container_id)?;
        let ns = netns::create(&self.netns_dir, container_id)?;
        let host_veth = host_veth_name(container_id);
        let peer = peer_veth_name(container_id);
        let gateway = net.gateway();
        let prefix = net.subnet.prefix_len();

        let mtu = links::run(None, |h| {
            let (ns, host_veth, peer) = (&ns, &host_veth, &peer);
            async move {
                let bridge = links::ensure_bridge(&h, &net.bridge, net.subnet).await?;
                // Leftovers of a crashed attach of the same container.
                links::delete_link(&h, host_veth).await?;
                links::delete_link(&h, peer).await?;
                links::create_veth_into(&h, host_veth, peer, &bridge, ns).await?;
                Ok(bridge.mtu)
            }
        })?;
        let cfg = Eth0Config {
            address,
            prefix,
            gateway,
            mtu,
        };
        links::run(Some(&ns), |h| {
            let (peer, cfg) = (&peer, &cfg);
            async move {
                links::loopback_up(&h).await?;
                links::configure_eth0(&h, peer, cfg).await
            }
        })?;
        Ok(Attachment {
            netns_path: Some(ns),
            ipv4: Some(address),
            prefix_len: prefix,
            gateway: Some(gateway),
            host_veth: Some(host_veth),
            dns: reachable_from_bridge(&host_resolv_conf()?.nameservers),
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
            let host_veth = record
                .as_ref()
                .and_then(|r| r.attachment.host_veth.clone())
                .unwrap_or_else(|| host_veth_name(container_id));
            let peer = peer_veth_name(container_id);
            links::run(None, |h| {
                let (host_veth, peer) = (&host_veth, &peer);
                async move {
                    // Deleting one end of a veth pair deletes both.
                    links::delete_link(&h, host_veth).await?;
                    links::delete_link(&h, peer).await
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

fn require_root(what: &str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(NetError::NeedsRoot {
            what: what.to_string(),
        })
    }
}
