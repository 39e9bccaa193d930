//! Real netlink, namespaces and nftables (run as root): containers on
//! several networks, ip_range, embedded DNS, service VIPs on bridges and
//! isolation between networks, checked with real TCP connects.

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use flotilla_net::{
    in_netns, list_links, list_routes, write_etc_files, BridgeNetwork, Ipv4Net, NetworkMode,
};
use support::{host_link, io_err, TestNet};

/// The lower half of `net`'s subnet, as the lead's stack networks use it.
fn lower_half(net: &BridgeNetwork) -> Ipv4Net {
    Ipv4Net::new(net.subnet.network(), net.subnet.prefix_len() + 1).unwrap()
}

/// The `i`-th address of the upper half of `net`'s subnet (VIPs live there).
fn upper(net: &BridgeNetwork, i: u32) -> Ipv4Addr {
    let half = 1u32 << (32 - u32::from(net.subnet.prefix_len()) - 1);
    Ipv4Addr::from(u32::from(net.subnet.network()) + half + i)
}

fn with_lower_range(mut net: BridgeNetwork) -> BridgeNetwork {
    net.ip_range = Some(lower_half(&net));
    net
}

/// A listener on `ip:port` opened inside the namespace at `ns` (it stays
/// in that namespace after the thread that opened it is gone).
fn listen_in(ns: &Path, ip: Ipv4Addr, port: u16) -> TcpListener {
    in_netns(ns, || {
        TcpListener::bind((ip, port)).map_err(|e| io_err("bind", e))
    })
    .unwrap()
}

/// Whether a TCP connect from the namespace at `ns` to `ip:port`
/// completes. Blocked traffic is dropped, so a refused connection waits for
/// the timeout: short, as a reply from a listener arrives in microseconds.
fn connects_from(ns: &Path, ip: Ipv4Addr, port: u16) -> bool {
    in_netns(ns, || {
        Ok(
            TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(2))
                .is_ok(),
        )
    })
    .unwrap()
}

fn nft_table_exists(table: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", table])
        .output()
        .expect("running nft")
        .status
        .success()
}

#[test]
fn a_container_on_two_networks_gets_eth0_and_eth1() {
    let t = TestNet::new("mn2");
    let a = with_lower_range(t.net.clone());
    let b = with_lower_range(t.extra_network(1));
    let id = t.id(0);
    let att = t
        .mgr
        .attach(
            &id,
            &NetworkMode::Bridges(vec![a.clone(), b.clone()]),
            "both",
        )
        .unwrap();

    assert_eq!(att.addresses.len(), 2, "{att:?}");
    let (ip_a, ip_b) = (att.addresses[0].1, att.addresses[1].1);
    assert_eq!(att.addresses[0].0, a.name);
    assert_eq!(att.addresses[1].0, b.name);
    assert!(
        lower_half(&a).contains(&ip_a) && lower_half(&b).contains(&ip_b),
        "{att:?}"
    );
    assert_eq!(att.ipv4, Some(ip_a));
    assert_eq!(att.gateway, Some(a.gateway()));

    // Container side: eth0 in A, eth1 in B.
    let ns = att.netns_path.clone().unwrap();
    let inside = list_links(Some(&ns)).unwrap();
    let names: BTreeSet<_> = inside.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["lo", "eth0", "eth1"]));
    let eth = |name: &str| inside.iter().find(|l| l.name == name).unwrap().clone();
    let (eth0, eth1) = (eth("eth0"), eth("eth1"));
    assert!(eth0.up && eth1.up);
    assert_eq!(
        eth0.ipv4,
        [Ipv4Net::new(ip_a, a.subnet.prefix_len()).unwrap()]
    );
    assert_eq!(
        eth1.ipv4,
        [Ipv4Net::new(ip_b, b.subnet.prefix_len()).unwrap()]
    );

    // Only one default route, via A's gateway on eth0; B is on-link on eth1.
    let routes = list_routes(Some(&ns)).unwrap();
    let defaults: Vec<_> = routes
        .iter()
        .filter(|r| r.destination.prefix_len() == 0)
        .collect();
    assert_eq!(defaults.len(), 1, "{routes:?}");
    assert_eq!(defaults[0].gateway, Some(a.gateway()));
    assert_eq!(defaults[0].output_interface, Some(eth0.index));
    assert!(
        routes
            .iter()
            .any(|r| r.destination == b.subnet && r.output_interface == Some(eth1.index)),
        "{routes:?}"
    );

    // Host side: one veth per network, each a port of its bridge.
    assert_eq!(att.host_veths.len(), 2);
    for (veth, net) in att.host_veths.iter().zip([&a, &b]) {
        let bridge = host_link(&net.bridge).expect("bridge exists");
        assert_eq!(
            host_link(veth).expect("host veth").controller,
            Some(bridge.index)
        );
    }
    assert_eq!(t.mgr.leases(&a.name).unwrap().get(&id), Some(&ip_a));
    assert_eq!(t.mgr.leases(&b.name).unwrap().get(&id), Some(&ip_b));

    t.mgr.detach(&id).unwrap();
    for veth in &att.host_veths {
        assert!(host_link(veth).is_none(), "{veth} removed");
    }
    assert!(!ns.exists());
    assert!(t.mgr.leases(&a.name).unwrap().is_empty());
    assert!(t.mgr.leases(&b.name).unwrap().is_empty());
}

#[test]
fn ip_range_bounds_real_attachments() {
    let t = TestNet::new("rng");
    let mut net = t.net.clone();
    // The upper half only: the first address handed out is its first.
    net.ip_range = Some(Ipv4Net::new(upper(&net, 0), net.subnet.prefix_len() + 1).unwrap());
    let mode = NetworkMode::Bridges(vec![net.clone()]);
    let first = t.mgr.attach(&t.id(0), &mode, "r0").unwrap();
    let second = t.mgr.attach(&t.id(1), &mode, "r1").unwrap();
    assert_eq!(first.ipv4, Some(upper(&net, 0)));
    assert_eq!(second.ipv4, Some(upper(&net, 1)));
}

#[test]
fn embedded_dns_points_resolv_conf_at_the_first_gateway() {
    let t = TestNet::new("edns");
    let mut a = t.net.clone();
    a.embedded_dns = true;
    let b = t.extra_network(1);
    let att = t
        .mgr
        .attach(&t.id(0), &NetworkMode::Bridges(vec![a.clone(), b]), "dns")
        .unwrap();
    assert_eq!(att.dns, [IpAddr::V4(a.gateway())]);
    let files = write_etc_files(&t.state.path().join("etc"), "dns", &att, &[]).unwrap();
    let resolv = std::fs::read_to_string(&files.resolv_conf).unwrap();
    let nameservers: Vec<&str> = resolv
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .collect();
    assert_eq!(
        nameservers,
        [format!("nameserver {}", a.gateway())],
        "{resolv}"
    );
    assert!(
        resolv
            .lines()
            .any(|l| l.starts_with("options") && l.contains("ndots:0")),
        "{resolv}"
    );
}

#[test]
fn set_vips_adds_and_removes_host_addresses_but_keeps_the_gateway() {
    let t = TestNet::new("vip");
    let net = t.net.clone();
    let (v1, v2) = (upper(&net, 1), upper(&net, 2));
    let on_bridge = || -> BTreeSet<Ipv4Net> {
        host_link(&net.bridge)
            .expect("bridge exists")
            .ipv4
            .into_iter()
            .collect()
    };
    let gw = Ipv4Net::new(net.gateway(), net.subnet.prefix_len()).unwrap();
    let slash32 = |ip| Ipv4Net::new(ip, 32).unwrap();

    t.mgr.set_vips(&net, &[v1, v2, v1]).unwrap();
    assert_eq!(on_bridge(), BTreeSet::from([gw, slash32(v1), slash32(v2)]));
    t.mgr.set_vips(&net, &[v1, v2]).unwrap(); // idempotent

    // A proxy can listen on a VIP once it is set.
    let listener = TcpListener::bind((v2, 0)).expect("binding a VIP");
    drop(listener);

    t.mgr.set_vips(&net, &[v2]).unwrap();
    assert_eq!(on_bridge(), BTreeSet::from([gw, slash32(v2)]));
    t.mgr.set_vips(&net, &[]).unwrap();
    assert_eq!(on_bridge(), BTreeSet::from([gw]));
    assert!(TcpListener::bind((v2, 0)).is_err(), "VIP gone");

    for bad in [
        net.gateway(),
        Ipv4Addr::new(192, 0, 2, 1),
        net.subnet.broadcast(),
    ] {
        let e = t.mgr.set_vips(&net, &[bad]).unwrap_err().to_string();
        assert!(e.contains("VIP") && e.contains(&bad.to_string()), "{e}");
    }
    assert_eq!(
        on_bridge(),
        BTreeSet::from([gw]),
        "a refused call changes nothing"
    );
}

#[test]
fn isolation_keeps_networks_apart_except_through_shared_members() {
    let t = TestNet::new("iso");
    let a = with_lower_range(t.net.clone());
    let b = with_lower_range(t.extra_network(1));
    let x = t
        .mgr
        .attach(&t.id(0), &NetworkMode::Bridge(a.clone()), "x")
        .unwrap();
    let y = t
        .mgr
        .attach(&t.id(1), &NetworkMode::Bridge(b.clone()), "y")
        .unwrap();
    let c = t
        .mgr
        .attach(
            &t.id(2),
            &NetworkMode::Bridges(vec![a.clone(), b.clone()]),
            "c",
        )
        .unwrap();
    let (ns_x, ns_y, ns_c) = (
        x.netns_path.clone().unwrap(),
        y.netns_path.clone().unwrap(),
        c.netns_path.clone().unwrap(),
    );
    let (ip_x, ip_y) = (x.ipv4.unwrap(), y.ipv4.unwrap());
    let (c_on_a, c_on_b) = (c.addresses[0].1, c.addresses[1].1);
    let (vip_a, vip_b) = (upper(&a, 1), upper(&b, 1));
    t.mgr.set_vips(&a, &[vip_a]).unwrap();
    t.mgr.set_vips(&b, &[vip_b]).unwrap();

    const PORT: u16 = 7100;
    let _listeners = [
        listen_in(&ns_x, ip_x, PORT),
        listen_in(&ns_y, ip_y, PORT),
        listen_in(&ns_c, Ipv4Addr::UNSPECIFIED, PORT),
        // The host's proxy would listen on these.
        TcpListener::bind((vip_a, PORT)).unwrap(),
        TcpListener::bind((vip_b, PORT)).unwrap(),
        TcpListener::bind((b.gateway(), PORT)).unwrap(),
        TcpListener::bind((a.gateway(), PORT)).unwrap(),
    ];

    // Without rules the host routes between the networks (when it forwards)
    // and delivers to its addresses in B: the rules are what isolate.
    let host_forwards = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    if host_forwards {
        assert!(
            connects_from(&ns_x, ip_y, PORT),
            "x reaches y before isolation"
        );
    }
    assert!(
        connects_from(&ns_x, vip_b, PORT),
        "x reaches B's VIP before isolation"
    );

    t.set_isolation(&[a.clone(), b.clone()]);
    assert!(nft_table_exists(&t.mgr.isolation_table()));
    // Applying the same set again replaces the table (level-triggered).
    t.set_isolation(&[a.clone(), b.clone()]);

    assert!(!connects_from(&ns_x, ip_y, PORT), "x must not reach y");
    assert!(!connects_from(&ns_y, ip_x, PORT), "y must not reach x");
    assert!(
        !connects_from(&ns_x, vip_b, PORT),
        "x must not reach B's VIP"
    );
    assert!(
        !connects_from(&ns_x, b.gateway(), PORT),
        "x must not reach B's gateway"
    );
    assert!(
        !connects_from(&ns_x, c_on_b, PORT),
        "x must not reach c's address in B"
    );

    assert!(connects_from(&ns_x, vip_a, PORT), "x reaches A's VIP");
    assert!(
        connects_from(&ns_x, a.gateway(), PORT),
        "x reaches A's gateway"
    );
    assert!(connects_from(&ns_x, c_on_a, PORT), "x reaches c on A");
    assert!(connects_from(&ns_y, vip_b, PORT), "y reaches B's VIP");
    assert!(connects_from(&ns_c, ip_x, PORT), "c reaches x");
    assert!(connects_from(&ns_c, ip_y, PORT), "c reaches y");
    assert!(connects_from(&ns_c, vip_b, PORT), "c reaches B's VIP");

    t.mgr.clear_isolation().unwrap();
    assert!(!nft_table_exists(&t.mgr.isolation_table()));
    assert!(
        connects_from(&ns_x, vip_b, PORT),
        "clear_isolation lifts the rules"
    );
    t.mgr.clear_isolation().unwrap(); // absent is fine
}

#[test]
fn a_failure_on_the_second_network_undoes_the_first() {
    let t = TestNet::new("mnf");
    let a = t.net.clone();
    // "lo" exists but is not a bridge: eth0 is made, then eth1 fails.
    let mut b = BridgeNetwork::new("test-mnf-lo", "lo", a.subnet);
    b.subnet = t.extra_network(1).subnet;
    let id = t.id(0);
    let err = t
        .mgr
        .attach(&id, &NetworkMode::Bridges(vec![a.clone(), b.clone()]), "f")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a bridge"), "{err}");
    assert!(host_link(&flotilla_net::nth_host_veth_name(&id, 0)).is_none());
    assert!(!t.mgr.netns_path(&id).exists());
    assert!(t.mgr.leases(&a.name).unwrap().is_empty());
    assert!(t.mgr.leases(&b.name).unwrap().is_empty());
    assert_eq!(t.mgr.attachment(&id).unwrap(), None);
}
