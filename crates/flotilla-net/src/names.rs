//! Interface names derived from container ids. Derived (not random) so that
//! `detach` after a crash — with no record left — still finds them.

use sha2::{Digest, Sha256};

/// 8 hex digits of SHA-256(text): container ids, state directories.
pub(crate) fn short_hash(container_id: &str) -> String {
    let digest = Sha256::digest(container_id.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Host side of the container's first veth pair (its `eth0`):
/// `vfl<hash8>` (11 bytes ≤ 15).
pub fn host_veth_name(container_id: &str) -> String {
    format!("vfl{}", short_hash(container_id))
}

/// Host side of the veth of the container's `eth<n>`: `vfl<hash8>` for
/// eth0 (as before multi-network), `vfl<hash8><n>` for the others.
pub fn nth_host_veth_name(container_id: &str, n: usize) -> String {
    with_index(host_veth_name(container_id), n)
}

/// Temporary name of the container side of `eth<n>` while it is still in
/// the host namespace (renamed once moved): `vfp<hash8>[<n>]`.
pub(crate) fn nth_peer_veth_name(container_id: &str, n: usize) -> String {
    with_index(format!("vfp{}", short_hash(container_id)), n)
}

fn with_index(base: String, n: usize) -> String {
    if n == 0 {
        base
    } else {
        format!("{base}{n}")
    }
}

/// True if `link` is a host-side or not-yet-moved peer veth of
/// `container_id`, for any interface number: what a detach that lost its
/// record must delete.
pub(crate) fn is_container_veth(container_id: &str, link: &str) -> bool {
    let hash = short_hash(container_id);
    ["vfl", "vfp"].iter().any(|prefix| {
        link.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(hash.as_str()))
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_stable_and_distinct() {
        let a = host_veth_name("web-1");
        assert_eq!(a, host_veth_name("web-1"));
        assert_ne!(a, host_veth_name("web-2"));
        assert_ne!(a, nth_peer_veth_name("web-1", 0));
        assert_eq!(nth_host_veth_name("web-1", 0), a);
        let last = crate::network::MAX_NETWORKS_PER_CONTAINER - 1;
        assert!(nth_host_veth_name("web-1", last).len() <= crate::network::MAX_IFNAME_LEN);
        assert!(nth_peer_veth_name("web-1", last).len() <= crate::network::MAX_IFNAME_LEN);
    }

    #[test]
    fn container_veths_are_recognised_by_name() {
        for n in 0..crate::network::MAX_NETWORKS_PER_CONTAINER {
            assert!(is_container_veth("web-1", &nth_host_veth_name("web-1", n)));
            assert!(is_container_veth("web-1", &nth_peer_veth_name("web-1", n)));
            assert!(!is_container_veth("web-2", &nth_host_veth_name("web-1", n)));
        }
        assert!(!is_container_veth("web-1", "eth0"));
        assert!(!is_container_veth(
            "web-1",
            &format!("{}x", host_veth_name("web-1"))
        ));
    }
}
