//! Real netlink, real namespaces (run as root): none/host modes, bridge
//! attachments talking TCP, cleanup and crash recovery.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use flotilla_net::{
    in_netns, is_netns_mount, list_links, list_routes, write_etc_files, NetError, NetworkMode,
};
use support::{host_link, io_err, TestNet};

#[test]
fn none_mode_namespace_has_only_loopback_up() {
    let t = TestNet::new("none");
    let id = t.id(0);
    let att = t.mgr.attach(&id, &NetworkMode::None, "lonely").unwrap();
    let ns = att.netns_path.clone().expect("none mode has a namespace");
    assert!(is_netns_mount(&ns));
    assert_eq!(
        (att.ipv4, att.gateway, att.host_veth.as_deref()),
        (None, None, None)
    );

    let links = list_links(Some(&ns)).unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].name, "lo");
    assert!(links[0].up);

    assert_eq!(t.mgr.attachment(&id).unwrap(), Some(att));
    t.mgr.detach(&id).unwrap();
    assert!(!ns.exists());
}

#[test]
fn host_mode_has_no_namespace() {
    let t = TestNet::new("host");
    let id = t.id(0);
    let att = t.mgr.attach(&id, &NetworkMode::Host, "box").unwrap();
    assert_eq!(att.netns_path, None);
    assert_eq!(att.ipv4, None);
    assert_eq!(t.reopen().attachment(&id).unwrap(), Some(att));
    t.mgr.detach(&id).unwrap();
    assert_eq!(t.mgr.attachment(&id).unwrap(), None);
}

#[test]
fn two_bridge_attachments_get_distinct_ips_and_connect_over_tcp() {
    let t = TestNet::new("tcp");
    let (id_a, id_b) = (t.id(0), t.id(1));
    let a = t.mgr.attach(&id_a, &t.bridge_mode(), "client").unwrap();
    let b = t.mgr.attach(&id_b, &t.bridge_mode(), "server").unwrap();
    let (ip_a, ip_b) = (a.ipv4.unwrap(), b.ipv4.unwrap());
    assert_ne!(ip_a, ip_b);
    assert!(t.net.subnet.contains(&ip_a) && t.net.subnet.contains(&ip_b));
    assert_eq!(a.gateway, Some(t.net.gateway()));
    assert_eq!(a.prefix_len, 28);

    // Host side: the bridge holds the gateway; each veth is a port of it.
    let bridge = host_link(&t.net.bridge).expect("bridge exists");
    assert!(bridge.up);
    assert!(bridge.ipv4.iter().any(|n| n.addr() == t.net.gateway()));
    let veth = host_link(a.host_veth.as_deref().unwrap()).expect("host veth exists");
    assert_eq!(veth.controller, Some(bridge.index));
    assert!(veth.up);

    // Container side: lo and eth0, both up, eth0 with the leased address.
    let ns_a = a.netns_path.clone().unwrap();
    let inside = list_links(Some(&ns_a)).unwrap();
    let names: BTreeSet<_> = inside.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["lo", "eth0"]));
    let eth0 = inside.iter().find(|l| l.name == "eth0").unwrap();
    assert!(eth0.up);
    assert_eq!(eth0.mtu, bridge.mtu);
    assert_eq!(
        eth0.ipv4
            .iter()
            .map(|n| (n.addr(), n.prefix_len()))
            .collect::<Vec<_>>(),
        [(ip_a, 28)]
    );
    let default = list_routes(Some(&ns_a))
        .unwrap()
        .into_iter()
        .find(|r| r.destination.prefix_len() == 0)
        .expect("a default route");
    assert_eq!(default.gateway, Some(t.net.gateway()));
    assert_eq!(default.output_interface, Some(eth0.index));

    // A real TCP connection from A's namespace to B's address.
    let ns_b = b.netns_path.clone().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        in_netns(&ns_b, || {
            let listener = TcpListener::bind((ip_b, 7000)).map_err(|e| io_err("bind", e))?;
            ready_tx.send(()).unwrap();
            let (mut conn, peer) = listener.accept().map_err(|e| io_err("accept", e))?;
            let mut got = String::new();
            conn.read_to_string(&mut got)
                .map_err(|e| io_err("read", e))?;
            Ok((peer.ip(), got))
        })
    });
    ready_rx.recv().expect("server thread started listening");
    in_netns(&ns_a, || {
        let addr = SocketAddr::from((ip_b, 7000));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(20))
            .map_err(|e| io_err("connect", e))?;
        s.write_all(b"hello from a").map_err(|e| io_err("write", e))
    })
    .unwrap();
    let (peer, got) = server.join().unwrap().unwrap();
    assert_eq!(got, "hello from a");
    assert_eq!(peer, IpAddr::V4(ip_a));
}

#[test]
fn leases_survive_manager_recreation() {
    let t = TestNet::new("rest");
    let (id_a, id_b) = (t.id(0), t.id(1));
    let a = t.mgr.attach(&id_a, &t.bridge_mode(), "a").unwrap();

    let restarted = t.reopen();
    assert_eq!(restarted.attachment(&id_a).unwrap(), Some(a.clone()));
    let b = restarted.attach(&id_b, &t.bridge_mode(), "b").unwrap();
    assert_ne!(a.ipv4, b.ipv4, "no duplicate address after a restart");
    // Attaching again is idempotent: same address, same namespace.
    assert_eq!(restarted.attach(&id_a, &t.bridge_mode(), "a").unwrap(), a);
    let leases = restarted.leases(&t.net.name).unwrap();
    assert_eq!(leases.get(&id_a).copied(), a.ipv4);
    assert_eq!(leases.get(&id_b).copied(), b.ipv4);
}

#[test]
fn concurrent_attaches_get_distinct_ips() {
    let t = TestNet::new("conc");
    let ids: Vec<String> = (0..6).map(|n| t.id(n)).collect();
    let ips: Vec<Ipv4Addr> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let t = &t;
                s.spawn(move || {
                    // A manager per thread, as separate processes would have.
                    t.reopen()
                        .attach(id, &t.bridge_mode(), "c")
                        .unwrap()
                        .ipv4
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: BTreeSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ips:?}");
}

#[test]
fn detach_cleans_everything_and_is_idempotent() {
    let t = TestNet::new("det");
    let id = t.id(0);
    let att = t.mgr.attach(&id, &t.bridge_mode(), "d").unwrap();
    let veth = att.host_veth.clone().unwrap();
    let ns = att.netns_path.clone().unwrap();
    assert!(host_link(&veth).is_some());

    t.mgr.detach(&id).unwrap();
    assert!(host_link(&veth).is_none(), "host veth removed");
    assert!(!ns.exists(), "namespace file removed");
    assert!(
        t.mgr.leases(&t.net.name).unwrap().is_empty(),
        "lease released"
    );
    assert_eq!(t.mgr.attachment(&id).unwrap(), None);

    t.mgr.detach(&id).unwrap();
    t.mgr.detach(&t.id(99)).unwrap();
}

#[test]
fn detach_recovers_from_a_crash_that_lost_the_record() {
    let t = TestNet::new("crsh");
    let id = t.id(0);
    let att = t.mgr.attach(&id, &t.bridge_mode(), "c").unwrap();
    // Simulate a crash between creating the links and writing the record.
    std::fs::remove_file(
        t.state
            .path()
            .join("attachments")
            .join(format!("{id}.json")),
    )
    .unwrap();

    t.mgr.detach(&id).unwrap();
    assert!(host_link(att.host_veth.as_deref().unwrap()).is_none());
    assert!(!att.netns_path.unwrap().exists());
    assert!(t.mgr.leases(&t.net.name).unwrap().is_empty());
}

#[test]
fn attaching_with_another_mode_is_refused_until_detached() {
    let t = TestNet::new("mode");
    let id = t.id(0);
    t.mgr.attach(&id, &NetworkMode::None, "m").unwrap();
    let err = t.mgr.attach(&id, &t.bridge_mode(), "m").unwrap_err();
    assert!(matches!(err, NetError::AlreadyAttached { .. }), "{err}");
    t.mgr.detach(&id).unwrap();
    assert!(t
        .mgr
        .attach(&id, &t.bridge_mode(), "m")
        .unwrap()
        .ipv4
        .is_some());
}

#[test]
fn failed_attach_leaves_nothing_behind() {
    let mut t = TestNet::new("fail");
    // "lo" exists but is not a bridge: attach must fail and undo its lease
    // and namespace.
    t.net.bridge = "lo".to_string();
    let id = t.id(0);
    let err = t
        .mgr
        .attach(&id, &t.bridge_mode(), "f")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a bridge"), "{err}");
    assert!(!t.mgr.netns_path(&id).exists());
    assert!(t.mgr.leases(&t.net.name).unwrap().is_empty());
    assert_eq!(t.mgr.attachment(&id).unwrap(), None);
    // The guard must not delete the host's loopback.
    t.net.bridge = format!("ftfail{:x}", std::process::id());
}

#[test]
fn etc_files_for_a_bridge_attachment() {
    let t = TestNet::new("etc");
    let id = t.id(0);
    let att = t.mgr.attach(&id, &t.bridge_mode(), "web-1").unwrap();
    let dir = t.state.path().join("etc-out");
    let extra = [("db".to_string(), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)))];
    let files = write_etc_files(&dir, "web-1", &att, &extra).unwrap();

    let hosts = std::fs::read_to_string(&files.hosts).unwrap();
    assert!(hosts.contains("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(
        hosts.contains(&format!("{}\tweb-1\n", att.ipv4.unwrap())),
        "{hosts}"
    );
    assert!(hosts.contains("192.0.2.99\tdb\n"), "{hosts}");
    assert_eq!(std::fs::read_to_string(&files.hostname).unwrap(), "web-1\n");

    let resolv = std::fs::read_to_string(&files.resolv_conf).unwrap();
    for ip in &att.dns {
        assert!(ip.is_ipv4() && !ip.is_loopback());
        assert!(resolv.contains(&format!("nameserver {ip}\n")), "{resolv}");
    }
    assert!(!resolv.contains("nameserver 127."), "{resolv}");
    assert!(write_etc_files(&dir, "bad host", &att, &[]).is_err());
}

#[test]
fn subnet_overlapping_another_interface_is_refused() {
    let t = TestNet::new("ovl");
    let id = t.id(0);
    t.mgr.attach(&id, &t.bridge_mode(), "o").unwrap();

    // A second network on another bridge, inside the first one's subnet.
    let mut other = TestNet::new("ovl2");
    other.net.subnet = format!("{}/29", t.net.subnet.network()).parse().unwrap();
    let id2 = other.id(0);
    let err = other
        .mgr
        .attach(&id2, &other.bridge_mode(), "o")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("overlaps") && err.contains(&t.net.bridge),
        "{err}"
    );
    assert!(
        host_link(&other.net.bridge).is_none(),
        "refused bridge not created"
    );
    assert!(!other.mgr.netns_path(&id2).exists());
}

#[test]
fn etc_files_for_host_and_none_modes() {
    let t = TestNet::new("etch");
    let host = t.mgr.attach(&t.id(0), &NetworkMode::Host, "h").unwrap();
    let extra = [("db".to_string(), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))];
    let files = write_etc_files(&t.state.path().join("host-etc"), "h", &host, &extra).unwrap();
    let hosts = std::fs::read_to_string(&files.hosts).unwrap();
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    assert!(
        hosts.starts_with(&host_hosts),
        "host mode copies the host's /etc/hosts"
    );
    assert!(hosts.ends_with("192.0.2.7\tdb\n"), "{hosts}");

    let none = t.mgr.attach(&t.id(1), &NetworkMode::None, "n").unwrap();
    let files = write_etc_files(&t.state.path().join("none-etc"), "n", &none, &[]).unwrap();
    let resolv = std::fs::read_to_string(&files.resolv_conf).unwrap();
    assert!(
        !resolv.lines().any(|l| l.starts_with("nameserver")),
        "{resolv}"
    );
    assert!(resolv.contains("# No nameserver"), "{resolv}");
    let hosts = std::fs::read_to_string(&files.hosts).unwrap();
    assert!(hosts.contains("127.0.0.1\tlocalhost\n"), "{hosts}");
}
