//! Upstream keep-alive per client connection: requests of one client
//! connection reuse the connection to their endpoint, and an endpoint that
//! closes its connections after each response costs no failed request,
//! idempotent or not.

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
    let c = client();
    for _ in 0..20 {
        assert_eq!(get(&c, addr, "/").await.unwrap(), (200, "b0".into()));
    }
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
