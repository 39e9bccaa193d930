//! Isolation between Flotilla networks with nftables: traffic that enters
//! the host from one network's bridge may not reach another network's
//! subnet — neither forwarded to its containers nor delivered to the host's
//! own addresses in it (its gateway, the service VIPs). Traffic inside a
//! network is bridged and never reaches these hooks; traffic to the host's
//! other addresses and everything not entering from a Flotilla bridge is
//! left alone.
//!
//! The rules are stateless (no conntrack, which would tax every packet of
//! the node's proxy): a reply is judged like any packet. Host-originated
//! connections to a container must therefore come from an address the
//! reply may reach — the one the kernel picks (the container's own
//! gateway) does; a host socket bound to another network's VIP does not.
//! With `br_netfilter` loaded, bridged traffic inside a network passes the
//! forward hook too, with daddr in its own subnet, which no rule drops.
//!
//! Flotilla does not change `net.ipv4.ip_forward`: when the host forwards,
//! the forward chain keeps networks apart; when it does not, nothing is
//! forwarded anyway. Either way the input chain keeps one network from the
//! host's addresses in another.
//!
//! Why `nft -f -` rather than a netlink nftables crate: the Rust options
//! either bind the C library libnftnl (`nftnl`: a C build dependency, and
//! rules assembled expression by expression) or are young (`rustables`),
//! while the `nft` tool (Debian's
//! `nftables` package) is the reference implementation, and one ruleset
//! piped to it is applied by the kernel as a single atomic transaction —
//! the table is replaced whole, never seen half-written.
//!
//! Each state directory owns its own table (`inet flotilla_<8 hex of
//! sha256(state dir)>`), so parallel tests and several data directories on
//! one host never overwrite each other's rules.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{NetError, Result};
use crate::names::short_hash;
use crate::network::{validate_distinct_networks, BridgeNetwork};

/// The nftables table (family `inet`) holding the isolation rules of the
/// state directory `state_dir`.
pub fn table_name(state_dir: &Path) -> String {
    let dir = state_dir
        .canonicalize()
        .unwrap_or_else(|_| state_dir.to_path_buf());
    format!("flotilla_{}", short_hash(&dir.to_string_lossy()))
}

/// The ruleset that replaces table `table` with the isolation rules of
/// `nets` in one transaction. Pure. The leading `table … {}` makes the
/// `delete` valid when the table does not exist yet.
pub(crate) fn render_ruleset(table: &str, nets: &[BridgeNetwork]) -> Result<String> {
    validate_distinct_networks(nets)?;
    let mut rules = String::new();
    for net in nets {
        let others: Vec<String> = nets
            .iter()
            .filter(|o| o.name != net.name)
            .map(|o| o.subnet.to_string())
            .collect();
        if !others.is_empty() {
            // Bridge names are validated printable ASCII without quotes.
            let _ = writeln!(
                rules,
                "\t\tiifname \"{}\" ip daddr {{ {} }} drop",
                net.bridge,
                others.join(", ")
            );
        }
    }
    let chain = |name: &str, hook: &str| {
        format!(
            "\tchain {name} {{\n\t\ttype filter hook {hook} priority filter; policy accept;\n{rules}\t}}\n"
        )
    };
    Ok(format!(
        "table inet {table} {{}}\ndelete table inet {table}\ntable inet {table} {{\n{}{}}}\n",
        chain("forward", "forward"),
        chain("input", "input"),
    ))
}

/// The ruleset that deletes table `table` whether or not it exists. Pure.
pub(crate) fn render_removal(table: &str) -> String {
    format!("table inet {table} {{}}\ndelete table inet {table}\n")
}

/// Applies `ruleset` atomically with `nft -f -`.
pub(crate) fn apply(ruleset: &str) -> Result<()> {
    let mut child = spawn_nft().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            NetError::invalid(
                "host setup",
                "the nft command was not found; network isolation needs the nftables package \
                 (apt-get install nftables)",
            )
        } else {
            NetError::io("starting", "nft", e)
        }
    })?;
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(ruleset.as_bytes());
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::io("waiting for", "nft", e))?;
    written.map_err(|e| NetError::io("writing ruleset to", "nft", e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.contains("Operation not permitted") {
        return Err(NetError::NeedsRoot {
            what: "changing nftables rules".to_string(),
        });
    }
    Err(NetError::Nft {
        detail: format!("{} — {stderr}", out.status),
    })
}

/// `nft` from PATH, or from /usr/sbin when PATH lacks the sbin directories.
fn spawn_nft() -> std::io::Result<std::process::Child> {
    let start = |exe: &str| {
        Command::new(exe)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    match start("nft") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => start("/usr/sbin/nft"),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, bridge: &str, subnet: &str) -> BridgeNetwork {
        BridgeNetwork::new(name, bridge, subnet.parse().unwrap())
    }

    #[test]
    fn each_bridge_is_kept_from_every_other_subnet() {
        let nets = [
            net("a", "bra", "10.210.1.0/24"),
            net("b", "brb", "10.210.2.0/24"),
            net("c", "brc", "10.210.3.0/24"),
        ];
        let text = render_ruleset("flotilla_t", &nets).unwrap();
        assert!(text.starts_with(
            "table inet flotilla_t {}\ndelete table inet flotilla_t\ntable inet flotilla_t {\n"
        ));
        for (hook, n) in [("forward", 1), ("input", 1)] {
            assert_eq!(
                text.matches(&format!(
                    "type filter hook {hook} priority filter; policy accept;"
                ))
                .count(),
                n
            );
        }
        assert_eq!(
            text.matches("iifname \"bra\" ip daddr { 10.210.2.0/24, 10.210.3.0/24 } drop")
                .count(),
            2,
            "{text}"
        );
        assert_eq!(
            text.matches("iifname \"brc\" ip daddr { 10.210.1.0/24, 10.210.2.0/24 } drop")
                .count(),
            2
        );
    }

    #[test]
    fn one_network_or_none_gives_empty_chains() {
        for nets in [vec![], vec![net("a", "bra", "10.210.1.0/24")]] {
            let text = render_ruleset("flotilla_t", &nets).unwrap();
            assert!(!text.contains("drop"), "{text}");
            assert!(text.contains("chain forward") && text.contains("chain input"));
        }
    }

    #[test]
    fn clashing_networks_are_refused() {
        let e = render_ruleset(
            "t",
            &[
                net("a", "bra", "10.210.0.0/23"),
                net("b", "brb", "10.210.1.0/24"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("overlapping subnets"), "{e}");
        let e = render_ruleset(
            "t",
            &[
                net("a", "bra", "10.210.0.0/24"),
                net("b", "bra", "10.210.1.0/24"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("same bridge"), "{e}");
        assert!(render_ruleset("t", &[net("a", "br\"x", "10.210.0.0/24")]).is_err());
    }

    #[test]
    fn table_names_differ_per_state_dir() {
        let a = table_name(Path::new("/var/lib/flotilla/net"));
        assert!(
            a.starts_with("flotilla_") && a.len() == "flotilla_".len() + 8,
            "{a}"
        );
        assert_ne!(a, table_name(Path::new("/tmp/other/net")));
        assert_eq!(
            render_removal("flotilla_t"),
            "table inet flotilla_t {}\ndelete table inet flotilla_t\n"
        );
    }
}
