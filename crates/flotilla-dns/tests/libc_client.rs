//! The client containers actually use: glibc's stub resolver (`getent`), reading a
//! resolv.conf that points at our server, exactly as a container's does. The resolv.conf is
//! bind-mounted over /etc/resolv.conf in a private mount namespace (`unshare -m`), so the
//! host's file is never touched. glibc cannot use a port other than 53, so the server listens
//! on port 53 of a loopback address unique to this test process.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

use flotilla_dns::{DnsConfig, DnsServer, View};

/// 127.53.x.y, derived from the pid so parallel test processes never share it.
fn unique_loopback() -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(127, 53, (pid >> 8) as u8, (pid as u8).max(1))
}

/// Runs `getent <database> <name>` with a resolv.conf naming only `server`.
fn getent(server: Ipv4Addr, database: &str, name: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {server}\noptions timeout:2 attempts:1\n"),
    )
    .unwrap();
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec getent {database} {name}",
        resolv.display()
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("mount"),
        "could not mount the test resolv.conf: {stderr}"
    );
    (output.status.success(), stdout)
}

fn addresses(getent_output: &str) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = getent_output
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|ip| ip.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glibc_resolves_service_names_and_sees_changes_at_once() {
    let server_ip = unique_loopback();
    let listen = SocketAddr::new(IpAddr::V4(server_ip), 53);
    let records = |replicas: &[&str]| -> BTreeMap<String, Vec<IpAddr>> {
        BTreeMap::from([
            ("api".to_string(), vec!["10.30.0.2".parse().unwrap()]),
            (
                "tasks.api".to_string(),
                replicas.iter().map(|r| r.parse().unwrap()).collect(),
            ),
        ])
    };
    let mut config = DnsConfig {
        views: vec![View {
            name: "libc".into(),
            listen: vec![listen],
            records: records(&["10.30.0.3", "10.30.0.4"]),
            ..View::default()
        }],
        upstreams: vec!["127.0.0.1:9".parse().unwrap()],
    };
    let server = DnsServer::new();
    let errors = server.apply(&config).await;
    assert!(errors.is_empty(), "bind errors: {errors:?}");

    // getent blocks; run it off the runtime threads that serve DNS.
    let (ok, out) = tokio::task::spawn_blocking(move || getent(server_ip, "ahostsv4", "tasks.api"))
        .await
        .unwrap();
    assert!(ok, "getent failed: {out}");
    assert_eq!(
        addresses(&out),
        vec![
            "10.30.0.3".parse::<IpAddr>().unwrap(),
            "10.30.0.4".parse().unwrap()
        ]
    );

    // glibc asks A and AAAA together for `hosts`; the empty AAAA must not break it.
    let (ok, out) = tokio::task::spawn_blocking(move || getent(server_ip, "hosts", "API"))
        .await
        .unwrap();
    assert!(ok, "getent failed: {out}");
    assert_eq!(
        addresses(&out),
        vec!["10.30.0.2".parse::<IpAddr>().unwrap()]
    );

    config.views[0].records = records(&["10.30.0.5"]);
    assert!(server.apply(&config).await.is_empty());
    let (ok, out) = tokio::task::spawn_blocking(move || getent(server_ip, "ahostsv4", "tasks.api"))
        .await
        .unwrap();
    assert!(ok, "getent failed: {out}");
    assert_eq!(
        addresses(&out),
        vec!["10.30.0.5".parse::<IpAddr>().unwrap()]
    );

    // A service with no healthy replica: the name resolves to nothing, and fails cleanly.
    config.views[0].records = records(&[]);
    assert!(server.apply(&config).await.is_empty());
    let (ok, out) = tokio::task::spawn_blocking(move || getent(server_ip, "ahostsv4", "tasks.api"))
        .await
        .unwrap();
    assert!(!ok && out.is_empty(), "expected no addresses, got {out}");
}
