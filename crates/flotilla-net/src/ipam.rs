//! Node-local IPAM: one lease file per network under `<state>/ipam/`,
//! guarded by an exclusive `flock` so concurrent processes (and threads)
//! never hand out the same address. Leases are keyed by container id, so
//! asking twice returns the same address, and survive restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::attachment::write_atomically;
use crate::error::{NetError, Result};
use crate::network::{first_host, BridgeNetwork};

/// Contents of `<state>/ipam/<network>.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseFile {
    /// The subnet the leases were taken from (`None` for a fresh file).
    pub subnet: Option<Ipv4Net>,
    /// container id → address.
    pub leases: BTreeMap<String, Ipv4Addr>,
}

/// Lowest free address for a container: inside `range` (the whole subnet
/// when `None`), never the subnet's network address, gateway (first host)
/// or broadcast address. Pure.
pub(crate) fn lowest_free(
    subnet: Ipv4Net,
    range: Option<Ipv4Net>,
    used: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let range = range.unwrap_or(subnet);
    let first = u32::from(range.network()).max(u32::from(first_host(subnet)) + 1);
    let last = u32::from(range.broadcast()).min(u32::from(subnet.broadcast()) - 1);
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|a| !used.contains(a))
}

/// Decides the lease for `container_id` given the current file. Pure:
/// returns the address and whether the file changed.
pub(crate) fn assign(
    file: &mut LeaseFile,
    net: &BridgeNetwork,
    container_id: &str,
) -> Result<(Ipv4Addr, bool)> {
    if let Some(existing) = file.subnet {
        if existing != net.subnet {
            if file.leases.is_empty() {
                file.subnet = None;
            } else {
                return Err(NetError::invalid(
                    "subnet",
                    format!(
                        "network {:?} has {} lease(s) in {existing} but was asked for {}; detach its containers first",
                        net.name,
                        file.leases.len(),
                        net.subnet
                    ),
                ));
            }
        }
    }
    if let Some(ip) = file.leases.get(container_id) {
        return Ok((*ip, false));
    }
    let used: BTreeSet<Ipv4Addr> = file.leases.values().copied().collect();
    let ip = lowest_free(net.subnet, net.ip_range, &used).ok_or_else(|| {
        NetError::AddressesExhausted {
            network: net.name.clone(),
            subnet: net.ip_range.unwrap_or(net.subnet).to_string(),
            leased: used.len(),
        }
    })?;
    file.subnet = Some(net.subnet);
    file.leases.insert(container_id.to_string(), ip);
    Ok((ip, true))
}

/// The lease files of one state directory.
pub(crate) struct Ipam {
    dir: PathBuf,
}

impl Ipam {
    pub fn new(state_dir: &Path) -> Self {
        Ipam {
            dir: state_dir.join("ipam"),
        }
    }

    pub fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| NetError::io("creating directory", &self.dir, e))
    }

    /// Leases (or re-reads) the address of `container_id` on `net`.
    pub fn lease(&self, net: &BridgeNetwork, container_id: &str) -> Result<Ipv4Addr> {
        self.with_locked_file(&net.name, |file| assign(file, net, container_id))
    }

    /// Drops `container_id`'s lease on every network (a crash may have left
    /// a lease without a record saying which network it was on).
    pub fn release_everywhere(&self, container_id: &str) -> Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(NetError::io("listing", &self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| NetError::io("listing", &self.dir, e))?;
            let name = entry.file_name();
            let Some(network) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if network.starts_with('.') {
                continue;
            }
            self.with_locked_file(network, |file| {
                Ok(((), file.leases.remove(container_id).is_some()))
            })?;
        }
        Ok(())
    }

    /// All leases of one network (for inspection and tests).
    pub fn leases(&self, network: &str) -> Result<BTreeMap<String, Ipv4Addr>> {
        self.with_locked_file(network, |file| Ok((file.leases.clone(), false)))
    }

    /// Runs `f` on the lease file under an exclusive lock; writes the file
    /// back atomically when `f` reports a change.
    fn with_locked_file<T>(
        &self,
        network: &str,
        f: impl FnOnce(&mut LeaseFile) -> Result<(T, bool)>,
    ) -> Result<T> {
        self.ensure_dir()?;
        // The lock lives on a separate file: the data file is replaced by
        // rename, which would silently drop a lock held on the old inode.
        let lock_path = self.dir.join(format!(".{network}.lock"));
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| NetError::io("opening", &lock_path, e))?;
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, e)| {
            NetError::io(
                "locking",
                &lock_path,
                io::Error::from_raw_os_error(e as i32),
            )
        })?;

        let path = self.dir.join(format!("{network}.json"));
        let mut file = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| NetError::CorruptState {
                path: path.clone(),
                detail: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => LeaseFile::default(),
            Err(e) => return Err(NetError::io("reading", path, e)),
        };
        let (value, changed) = f(&mut file)?;
        if changed {
            let bytes = serde_json::to_vec_pretty(&file).expect("lease file serialises");
            write_atomically(&path, &bytes)?;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(subnet: &str) -> BridgeNetwork {
        BridgeNetwork::new("n", "b0", subnet.parse().unwrap())
    }

    #[test]
    fn skips_network_gateway_and_broadcast() {
        let n = net("10.0.0.0/30");
        let mut f = LeaseFile::default();
        assert_eq!(
            assign(&mut f, &n, "a").unwrap().0,
            Ipv4Addr::new(10, 0, 0, 2)
        );
        let e = assign(&mut f, &n, "b").unwrap_err();
        assert!(
            matches!(e, NetError::AddressesExhausted { leased: 1, .. }),
            "{e}"
        );
    }

    #[test]
    fn same_container_same_address_and_lowest_free_reused() {
        let n = net("10.0.0.0/24");
        let mut f = LeaseFile::default();
        let a = assign(&mut f, &n, "a").unwrap();
        let b = assign(&mut f, &n, "b").unwrap();
        assert_eq!(a, (Ipv4Addr::new(10, 0, 0, 2), true));
        assert_eq!(b, (Ipv4Addr::new(10, 0, 0, 3), true));
        assert_eq!(assign(&mut f, &n, "a").unwrap(), (a.0, false));
        f.leases.remove("a");
        assert_eq!(assign(&mut f, &n, "c").unwrap().0, a.0);
    }

    #[test]
    fn ip_range_bounds_the_addresses() {
        let mut n = net("10.0.0.0/24");
        n.ip_range = Some("10.0.0.0/25".parse().unwrap());
        let mut f = LeaseFile::default();
        // The gateway .1 is inside the range but never handed out.
        assert_eq!(
            assign(&mut f, &n, "a").unwrap().0,
            Ipv4Addr::new(10, 0, 0, 2)
        );
        for i in 0..125 {
            let ip = assign(&mut f, &n, &format!("c{i}")).unwrap().0;
            assert!(ip <= Ipv4Addr::new(10, 0, 0, 127), "{ip}");
        }
        let e = assign(&mut f, &n, "full").unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/25"), "{e}");

        // An upper range stops before the subnet's broadcast address.
        n.ip_range = Some("10.0.0.252/30".parse().unwrap());
        let mut f = LeaseFile::default();
        let got: Vec<_> = (0..4)
            .map(|i| assign(&mut f, &n, &i.to_string()).map(|r| r.0))
            .collect();
        assert_eq!(got[0].as_ref().unwrap(), &Ipv4Addr::new(10, 0, 0, 252));
        assert_eq!(got[1].as_ref().unwrap(), &Ipv4Addr::new(10, 0, 0, 253));
        assert_eq!(got[2].as_ref().unwrap(), &Ipv4Addr::new(10, 0, 0, 254));
        assert!(matches!(got[3], Err(NetError::AddressesExhausted { .. })));
    }

    #[test]
    fn subnet_change_refused_while_leases_exist() {
        let mut f = LeaseFile::default();
        assign(&mut f, &net("10.0.0.0/24"), "a").unwrap();
        let e = assign(&mut f, &net("10.0.1.0/24"), "b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("detach its containers first"), "{e}");
        f.leases.clear();
        assert_eq!(
            assign(&mut f, &net("10.0.1.0/24"), "b").unwrap().0,
            Ipv4Addr::new(10, 0, 1, 2)
        );
    }

    #[test]
    fn leases_persist_and_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let n = net("10.0.0.0/24");
        let a = Ipam::new(dir.path()).lease(&n, "a").unwrap();
        let ipam = Ipam::new(dir.path());
        assert_eq!(ipam.lease(&n, "a").unwrap(), a);
        assert_ne!(ipam.lease(&n, "b").unwrap(), a);
        ipam.release_everywhere("a").unwrap();
        assert!(!ipam.leases("n").unwrap().contains_key("a"));
        ipam.release_everywhere("never-leased").unwrap();
    }
}
