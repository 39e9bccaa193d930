//! Shared fixtures for the netlink tests: every test gets its own state dir,
//! bridge name and a /28 inside 10.214.0.0/16 that no interface uses yet
//! (so concurrent test runs do not collide), and a guard that detaches its
//! containers and deletes its bridge even when the test fails.

#![allow(dead_code)] // each test binary uses a different subset

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use flotilla_net::{
    list_links, BridgeNetwork, Ipv4Net, LinkSummary, NetError, NetManager, NetworkMode,
};
use tempfile::TempDir;

pub struct TestNet {
    pub state: TempDir,
    pub mgr: NetManager,
    pub net: BridgeNetwork,
    tag: String,
    ids: Mutex<Vec<String>>,
    /// Networks beyond `net`, removed with it.
    extra: Mutex<Vec<BridgeNetwork>>,
    /// Whether the test installed isolation rules (the nft table goes too).
    isolation: AtomicBool,
}

impl TestNet {
    /// `tag` (at most 4 bytes) names the test in bridge and container names.
    pub fn new(tag: &str) -> Self {
        assert!(tag.len() <= 4, "tag keeps bridge names within 15 bytes");
        let pid = std::process::id();
        let state = tempfile::tempdir().expect("temp state dir");
        let mgr = NetManager::new(state.path()).expect("net manager");
        let net = BridgeNetwork::new(
            &format!("test-{tag}"),
            &format!("ft{tag}{pid:x}"),
            free_test_subnet(tag, &[]),
        );
        TestNet {
            state,
            mgr,
            net,
            tag: tag.to_string(),
            ids: Mutex::new(Vec::new()),
            extra: Mutex::new(Vec::new()),
            isolation: AtomicBool::new(false),
        }
    }

    /// Another network of this test (bridge `ft<tag><pid>x<n>`, a /28 apart
    /// from the test's others), registered for removal.
    pub fn extra_network(&self, n: usize) -> BridgeNetwork {
        let mut extra = self.extra.lock().unwrap();
        let taken: Vec<Ipv4Net> = extra
            .iter()
            .map(|e| e.subnet)
            .chain([self.net.subnet])
            .collect();
        let net = BridgeNetwork::new(
            &format!("test-{}-{n}", self.tag),
            &format!("ft{}{:x}x{n}", self.tag, std::process::id()),
            free_test_subnet(&format!("{}{n}", self.tag), &taken),
        );
        assert!(net.bridge.len() <= 15, "{}", net.bridge);
        extra.push(net.clone());
        net
    }

    /// Installs isolation rules for `nets`, remembering to remove them.
    pub fn set_isolation(&self, nets: &[BridgeNetwork]) {
        self.isolation.store(true, Ordering::SeqCst);
        self.mgr
            .set_isolation(nets)
            .expect("installing isolation rules");
    }

    /// A container id unique to this process and test, registered for cleanup.
    pub fn id(&self, n: usize) -> String {
        let id = format!("t{}-{}-{n}", std::process::id(), self.tag);
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    pub fn bridge_mode(&self) -> NetworkMode {
        NetworkMode::Bridge(self.net.clone())
    }

    /// A second manager on the same state dir, as after a process restart.
    pub fn reopen(&self) -> NetManager {
        NetManager::new(self.state.path()).expect("reopened net manager")
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap().iter() {
            if let Err(e) = self.mgr.detach(id) {
                eprintln!("cleanup: detach {id}: {e}");
            }
        }
        if self.isolation.load(Ordering::SeqCst) {
            if let Err(e) = self.mgr.clear_isolation() {
                eprintln!("cleanup: isolation table: {e}");
            }
        }
        let extra = self.extra.lock().unwrap().clone();
        for net in [self.net.clone()].iter().chain(&extra) {
            if let Err(e) = self.mgr.remove_bridge(net) {
                eprintln!("cleanup: bridge {}: {e}", net.bridge);
            }
        }
    }
}

pub fn host_link(name: &str) -> Option<LinkSummary> {
    list_links(None)
        .expect("listing host links")
        .into_iter()
        .find(|l| l.name == name)
}

/// Wraps an I/O error from test code running inside a namespace.
pub fn io_err(op: &'static str, e: io::Error) -> NetError {
    NetError::Io {
        op,
        path: PathBuf::from("(test socket)"),
        source: e,
    }
}

/// A /28 of 10.214.0.0/16 that overlaps no address on the host nor `taken`, probing from
/// a slot derived from the pid and tag so parallel tests start apart.
fn free_test_subnet(tag: &str, taken: &[Ipv4Net]) -> Ipv4Net {
    let used: Vec<Ipv4Net> = list_links(None)
        .expect("listing host links")
        .into_iter()
        .flat_map(|l| l.ipv4)
        .chain(taken.iter().copied())
        .collect();
    // FNV-1a: any stable spread will do.
    let seed = format!("{}-{tag}", std::process::id())
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    const SLOTS: u64 = 4096; // /28s in a /16
    (0..SLOTS)
        .map(|i| {
            let slot = ((seed + i) % SLOTS) as u32;
            let base = u32::from(std::net::Ipv4Addr::new(10, 214, 0, 0)) + slot * 16;
            Ipv4Net::new(base.into(), 28).unwrap()
        })
        .find(|n| {
            !used
                .iter()
                .any(|u| u.contains(&n.network()) || n.contains(&u.network()))
        })
        .expect("a free /28 in 10.214.0.0/16")
}
