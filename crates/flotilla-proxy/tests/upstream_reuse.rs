//! Upstream keep-alive: requests of one client connection reuse the
//! connection to their endpoint, new client connections reuse the idle ones
//! earlier clients left in the listener's pool, idle connections to an
//! endpoint that left are closed, and an endpoint that closes its
//! connections after each response costs no failed request, idempotent or
//! not.

mod common;

use bytes::Bytes;
use common::*;
use flotilla_proxy::{Endpoint, Protocol};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_connection_reuses_one_upstream_connection() {
    let b = Backend::start("b0").await;
    let cfg = config(vec![listener("h", Protocol::Http, vec![b.endpoint()])]);
    let (p, reg) = proxy(&cfg).await;
    let addr = p.local_addr("h").unwrap();
    // Exactly one client connection (a pooled client may open a second one
    // when a request starts before the last connection went back to its
    // pool).
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(conn);
    for _ in 0..20 {
        sender.ready().await.unwrap();
        let req = Request::get("/")
            .header("host", "t")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"b0");
    }
    driver.abort();
    let m = metrics_text(&reg);
    assert!(
        m.contains(r#"flotilla_proxy_connections_total{service="svc",endpoint="b0"} 1"#),
        "{m}"
    );
}

/// Answers every request with `Connection: close` and closes: a cached
/// upstream connection is never usable for the next request.
async fn closing_backend() -> (Endpoint, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                // Headers, then the 4-byte body our POSTs carry, if any.
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let want = if head.contains("content-length: 4") {
                            4
                        } else {
                            0
                        };
                        if buf.len() >= end + 4 + want {
                            break;
                        }
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    (
        Endpoint {
            id: "closer".into(),
            addr,
        },
        task,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_closing_after_each_response_fails_no_request() {
    let (ep, task) = closing_backend().await;
    let cfg = config(vec![listener("h", Protocol::Http, vec![ep])]);
    let (p, _reg) = proxy(&cfg).await;
    let addr = p.local_addr("h").unwrap();
    let c = client();
    for i in 0..20 {
        let req = if i % 2 == 0 {
            Request::get(format!("http://{addr}/")).body(Full::new(Bytes::new()))
        } else {
            Request::post(format!("http://{addr}/")).body(Full::new(Bytes::from_static(b"data")))
        }
        .unwrap();
        let resp = c.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!((status, &body[..]), (200, &b"ok"[..]), "request {i}");
    }
    task.abort();
}

/// One request on a new client connection that asks to close, read to EOF:
/// what `wrk -H "Connection: close"` and short-lived scripts do.
async fn get_on_new_connection(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_client_connections_reuse_the_listeners_idle_upstream_connections() {
    let b = Backend::start("b0").await;
    let cfg = config(vec![listener("h", Protocol::Http, vec![b.endpoint()])]);
    let (p, reg) = proxy(&cfg).await;
    let addr = p.local_addr("h").unwrap();
    for i in 0..20 {
        let out = get_on_new_connection(addr).await;
        assert!(
            out.starts_with("HTTP/1.1 200") && out.ends_with("b0"),
            "{i}: {out}"
        );
    }
    // A client connection hands its upstream connection to the listener's
    // pool when it ends, which may be just after the client saw EOF: allow
    // a few new dials for that race, far fewer than one per request.
    let m = metrics_text(&reg);
    let dials: u64 = m
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"flotilla_proxy_connections_total{service="svc",endpoint="b0"} "#)
        })
        .unwrap_or_else(|| panic!("no connection count in {m}"))
        .parse()
        .unwrap();
    assert!(
        dials <= 5,
        "20 client connections dialled {dials} upstream connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_to_an_endpoint_that_left_are_closed() {
    // A backend that answers one keep-alive request per connection, then
    // reports when the proxy closes that connection.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone_addr = l.local_addr().unwrap();
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngone")
                    .await;
                // Keep-alive: wait for the proxy to close it.
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = closed_tx.send(());
            });
        }
    });
    let gone = Endpoint {
        id: "gone".into(),
        addr: gone_addr,
    };
    let stays = Backend::start("stays").await;
    let cfg = config(vec![listener("h", Protocol::Http, vec![gone])]);
    let (p, _reg) = proxy(&cfg).await;
    let addr = p.local_addr("h").unwrap();
    let out = get_on_new_connection(addr).await;
    assert!(out.ends_with("gone"), "{out}");
    // The client connection ended, so its upstream connection now waits in
    // the listener's pool; the endpoint leaving the set closes it.
    let cfg = config(vec![listener("h", Protocol::Http, vec![stays.endpoint()])]);
    assert!(p.apply(&cfg).await.is_empty());
    tokio::time::timeout(std::time::Duration::from_secs(10), closed_rx.recv())
        .await
        .expect("the idle connection to the endpoint that left was not closed");
    assert!(get_on_new_connection(addr).await.ends_with("stays"));
    server.abort();
}
