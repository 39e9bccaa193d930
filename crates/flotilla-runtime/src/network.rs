//! The container's network through the net crate: attach at create (its
//! namespace path goes into the OCI spec, its hosts/resolv.conf/hostname are
//! bind-mounted), detach at remove.

use crate::oci::{NetNs, OciMount};
use crate::spec::NetworkMode;
use anyhow::{Context as _, Result};
use std::path::Path;

pub struct Attached {
    pub netns: NetNs,
    pub ipv4: Option<String>,
    pub mounts: Vec<OciMount>,
}

fn manager(data_dir: &Path) -> Result<flotilla_net::NetManager> {
    flotilla_net::NetManager::new(&data_dir.join("net")).context("opening network state")
}

pub fn attach(
    data_dir: &Path,
    id: &str,
    mode: &NetworkMode,
    hostname: &str,
    etc_dir: &Path,
) -> Result<Attached> {
    let mgr = manager(data_dir)?;
    let att = mgr
        .attach(id, mode, hostname)
        .with_context(|| format!("attaching to {}", mode.describe()))?;
    let files = flotilla_net::write_etc_files(etc_dir, hostname, &att, &[])
        .context("writing /etc files")?;
    let netns = match (&att.netns_path, mode) {
        (_, NetworkMode::Host) | (None, _) => NetNs::Host,
        (Some(p), _) => NetNs::Path(p.clone()),
    };
    let bind = |source: &Path, target: &str| OciMount::Bind {
        source: source.to_path_buf(),
        target: target.into(),
        read_only: false,
    };
    Ok(Attached {
        netns,
        ipv4: att.ipv4.map(|ip| ip.to_string()),
        mounts: vec![
            bind(&files.hosts, "/etc/hosts"),
            bind(&files.resolv_conf, "/etc/resolv.conf"),
            bind(&files.hostname, "/etc/hostname"),
        ],
    })
}

/// `none`: a private namespace libcontainer creates with the container
/// (its init raises `lo`: `vendor/libcontainer/src/loopback.rs`); only the
/// /etc files come from the net crate.
pub fn none(hostname: &str, etc_dir: &Path) -> Result<Attached> {
    let att = flotilla_net::Attachment {
        // Some(..) asks for a generated hosts file rather than the host's.
        netns_path: Some(etc_dir.to_path_buf()),
        ..flotilla_net::Attachment::default()
    };
    let files = flotilla_net::write_etc_files(etc_dir, hostname, &att, &[])
        .context("writing /etc files")?;
    let bind = |source: &Path, target: &str| OciMount::Bind {
        source: source.to_path_buf(),
        target: target.into(),
        read_only: false,
    };
    Ok(Attached {
        netns: NetNs::New,
        ipv4: None,
        mounts: vec![
            bind(&files.hosts, "/etc/hosts"),
            bind(&files.resolv_conf, "/etc/resolv.conf"),
            bind(&files.hostname, "/etc/hostname"),
        ],
    })
}

pub fn detach(data_dir: &Path, id: &str) -> Result<()> {
    manager(data_dir)?
        .detach(id)
        .context("detaching the network")
}
