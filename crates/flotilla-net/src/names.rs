//! Interface names derived from container ids. Derived (not random) so that
//! `detach` after a crash — with no record left — still finds them.

use sha2::{Digest, Sha256};

/// 8 hex digits of SHA-256(container id).
fn short_hash(container_id: &str) -> String {
    let digest = Sha256::digest(container_id.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Host side of the container's veth pair: `vfl<hash8>` (11 bytes ≤ 15).
pub fn host_veth_name(container_id: &str) -> String {
    format!("vfl{}", short_hash(container_id))
}

/// Temporary name of the container side while it is still in the host
/// namespace (renamed to `eth0` once moved): `vfp<hash8>`.
pub(crate) fn peer_veth_name(container_id: &str) -> String {
    format!("vfp{}", short_hash(container_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_stable_and_distinct() {
        let a = host_veth_name("web-1");
        assert_eq!(a, host_veth_name("web-1"));
        assert_ne!(a, host_veth_name("web-2"));
        assert_ne!(a, peer_veth_name("web-1"));
        assert!(a.len() <= crate::network::MAX_IFNAME_LEN);
    }
}
