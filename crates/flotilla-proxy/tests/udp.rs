//! L4 UDP through the proxy: per-client sessions and idle expiry.

mod common;

use common::*;
use flotilla_proxy::{Endpoint, Protocol};
use std::time::Duration;
use tokio::net::UdpSocket;

/// A UDP server answering "<name>:<payload>".
async fn udp_backend(name: &'static str) -> (Endpoint, tokio::task::JoinHandle<()>) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = s.recv_from(&mut buf).await {
            let reply = [name.as_bytes(), b":", &buf[..n]].concat();
            let _ = s.send_to(&reply, peer).await;
        }
    });
    (
        Endpoint {
            id: name.into(),
            addr,
        },
        h,
    )
}

async fn ask(s: &UdpSocket, msg: &str) -> String {
    s.send(msg.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(5), s.recv(&mut buf))
        .await
        .expect("udp reply in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_sticks_to_one_endpoint_until_idle() {
    let (a, ha) = udp_backend("a").await;
    let (b, hb) = udp_backend("b").await;
    let mut l = listener("u", Protocol::Udp, vec![a, b]);
    l.timeouts.idle_ms = 300;
    let (p, _reg) = proxy(&config(vec![l])).await;
    let addr = p.local_addr("u").unwrap();

    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(addr).await.unwrap();
    let first = ask(&c, "1").await;
    let who = first.split(':').next().unwrap().to_string();
    assert_eq!(first, format!("{who}:1"));
    for i in 2..6 {
        assert_eq!(ask(&c, &i.to_string()).await, format!("{who}:{i}"));
    }
    assert_eq!(p.in_flight(&who), 1, "one session");
    eventually("session idled out", || p.in_flight(&who) == 0).await;

    // A new session; closing the listener ends it too (nothing forwards
    // client datagrams any more), and the address can be bound again.
    let _ = ask(&c, "again").await;
    assert_eq!(p.in_flight("a") + p.in_flight("b"), 1);
    assert!(p.apply(&config(vec![])).await.is_empty());
    eventually("sessions ended with the listener", || {
        p.in_flight("a") + p.in_flight("b") == 0
    })
    .await;
    ha.abort();
    hb.abort();
}
