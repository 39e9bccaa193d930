//! L4 TCP through the proxy, with real sockets on loopback.

mod common;

use common::*;
use flotilla_proxy::Protocol;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn roundtrip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(buf, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splices_both_ways_and_passes_half_close() {
    let echo = Echo::start().await;
    let cfg = config(vec![listener(
        "t",
        Protocol::Tcp,
        vec![echo.endpoint("e1")],
    )]);
    let (p, _reg) = proxy(&cfg).await;
    let mut s = TcpStream::connect(p.local_addr("t").unwrap())
        .await
        .unwrap();
    roundtrip(&mut s, b"hello").await;
    // Half-close: our write side ends, the echo answers "bye" and closes,
    // and we still read it.
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"bye");
    eventually("in_flight back to 0", || p.in_flight("e1") == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_endpoint_set_closes_the_connection() {
    let cfg = config(vec![listener("t", Protocol::Tcp, vec![])]);
    let (p, _reg) = proxy(&cfg).await;
    let mut s = TcpStream::connect(p.local_addr("t").unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_retries_on_another_endpoint() {
    let echo = Echo::start().await;
    let dead = flotilla_proxy::Endpoint {
        id: "dead".into(),
        addr: dead_addr(),
    };
    let cfg = config(vec![listener(
        "t",
        Protocol::Tcp,
        vec![dead, echo.endpoint("live")],
    )]);
    let (p, reg) = proxy(&cfg).await;
    for _ in 0..20 {
        let mut s = TcpStream::connect(p.local_addr("t").unwrap())
            .await
            .unwrap();
        roundtrip(&mut s, b"x").await;
    }
    let m = metrics_text(&reg);
    // The dead endpoint was tried at most a few times: ejected after that.
    assert!(
        m.contains(r#"flotilla_proxy_errors_total{service="svc",endpoint="dead"}"#),
        "{m}"
    );
    assert!(
        m.contains(r#"flotilla_proxy_connections_total{service="svc",endpoint="live"} 20"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lived_connection_survives_removal_of_another_endpoint_and_of_its_listener() {
    let a = Echo::start().await;
    let b = Echo::start().await;
    let mut cfg = config(vec![listener(
        "t",
        Protocol::Tcp,
        vec![a.endpoint("a"), b.endpoint("b")],
    )]);
    let (p, _reg) = proxy(&cfg).await;
    let addr = p.local_addr("t").unwrap();
    // Open connections until one lands on each endpoint.
    let mut conns = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        roundtrip(&mut s, b"ping").await;
        conns.push(s);
        if p.in_flight("a") > 0 && p.in_flight("b") > 0 {
            break;
        }
    }
    let on_a = p.in_flight("a");
    assert!(on_a > 0 && p.in_flight("b") > 0);

    // Remove b: connections to a keep working, new ones all go to a.
    cfg.listeners[0].endpoints = vec![a.endpoint("a")];
    assert!(p.apply(&cfg).await.is_empty());
    assert_eq!(p.local_addr("t"), Some(addr), "same listener kept");
    for s in conns.iter_mut() {
        roundtrip(s, b"still here").await; // to a or still draining on b
    }
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    roundtrip(&mut fresh, b"new").await;
    assert_eq!(p.in_flight("a"), on_a + 1);

    // Remove the listener: established connections continue, new ones fail.
    cfg.listeners.clear();
    assert!(p.apply(&cfg).await.is_empty());
    assert_eq!(p.local_addr("t"), None);
    roundtrip(&mut fresh, b"after close").await;
    assert!(TcpStream::connect(addr).await.is_err());
    drop(conns);
    drop(fresh);
    eventually("everything drained", || {
        p.in_flight("a") == 0 && p.in_flight("b") == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_bind_does_not_stop_the_others() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo = Echo::start().await;
    let mut bad = listener("bad", Protocol::Tcp, vec![]);
    bad.bind = taken.local_addr().unwrap();
    let good = listener("good", Protocol::Tcp, vec![echo.endpoint("e")]);
    let mut reg = prometheus_client::registry::Registry::default();
    let p = flotilla_proxy::Proxy::new(&mut reg).unwrap();
    let errs = p.apply(&config(vec![bad, good])).await;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "bad");
    assert_eq!(errs[0].1.kind(), std::io::ErrorKind::AddrInUse);
    let mut s = TcpStream::connect(p.local_addr("good").unwrap())
        .await
        .unwrap();
    roundtrip(&mut s, b"ok").await;
    // Duplicate names are refused by name, not silently merged.
    let dup = config(vec![
        listener("d", Protocol::Tcp, vec![]),
        listener("d", Protocol::Tcp, vec![]),
    ]);
    let errs = p.apply(&dup).await;
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].1.to_string().contains("more than once"),
        "{}",
        errs[0].1
    );
}
