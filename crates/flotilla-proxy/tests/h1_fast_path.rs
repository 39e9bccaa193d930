//! The HTTP/1.1 fast path against a backend that writes its responses by
//! hand: every body framing (length, chunked with trailers, until close,
//! none), interim 1xx responses, large bodies in pieces, request bodies,
//! pipelining, the hand-over to hyper in the middle of a connection, and a
//! broken response.

mod common;

use bytes::Bytes;
use common::*;
use flotilla_proxy::{Endpoint, Protocol};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BIG: usize = 1 << 20;

/// Reads one request (head and Content-Length body) from `s`; None at EOF.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut more = [0u8; 4096];
                let n = s.read(&mut more).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&more[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            buf.drain(..end + 4 + len);
            return Some((head, body));
        }
        let mut more = [0u8; 4096];
        let n = s.read(&mut more).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&more[..n]);
    }
}

/// A keep-alive backend that answers by path, writing responses in pieces.
async fn scripted_backend() -> (Endpoint, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some((head, body)) = read_request(&mut s, &mut buf).await {
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let pause = || tokio::time::sleep(Duration::from_millis(5));
                    match path.as_str() {
                        "/chunked" => {
                            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5\r")
                                .await
                                .unwrap();
                            pause().await;
                            s.write_all(b"\nhello\r\n6;ext=1\r\n wo").await.unwrap();
                            pause().await;
                            s.write_all(b"rld\r\n0\r\nx-sum: 11\r\n\r\n").await.unwrap();
                        }
                        "/early" => {
                            s.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n")
                                .await
                                .unwrap();
                            pause().await;
                            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                .await
                                .unwrap();
                        }
                        "/big" => {
                            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n");
                            s.write_all(head.as_bytes()).await.unwrap();
                            for i in 0..BIG / 4096 {
                                s.write_all(&[b'a' + (i % 26) as u8; 4096]).await.unwrap();
                            }
                        }
                        "/close" => {
                            s.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil ").await.unwrap();
                            pause().await;
                            s.write_all(b"close").await.unwrap();
                            return;
                        }
                        "/bad" => {
                            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
                                .await
                                .unwrap();
                            return;
                        }
                        "/hop" => {
                            s.write_all(b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\nhop")
                                .await
                                .unwrap();
                        }
                        _ => {
                            // Echo the request head and body back.
                            let reply = format!("{head}\n{}", String::from_utf8_lossy(&body));
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{reply}",
                                reply.len()
                            );
                            s.write_all(resp.as_bytes()).await.unwrap();
                        }
                    }
                }
            });
        }
    });
    (
        Endpoint {
            id: "scripted".into(),
            addr,
        },
        task,
    )
}

async fn proxied() -> (
    SocketAddr,
    flotilla_proxy::Proxy,
    tokio::task::JoinHandle<()>,
) {
    let (ep, task) = scripted_backend().await;
    let cfg = config(vec![listener("h", Protocol::Http, vec![ep])]);
    let (p, _reg) = proxy(&cfg).await;
    (p.local_addr("h").unwrap(), p, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_framing_is_relayed_on_one_client_connection() {
    let (addr, _p, _backend) = proxied().await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(conn);
    let mut get = async |method: &str, path: &str, body: &'static str| {
        sender.ready().await.unwrap();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "t")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap();
        let trailers = body.trailers().cloned();
        (status, headers, body.to_bytes(), trailers)
    };
    let (s, _, b, t) = get("GET", "/chunked", "").await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"hello world"[..]));
    assert_eq!(t.unwrap()["x-sum"], "11");
    let (s, _, b, _) = get("GET", "/early", "").await;
    assert_eq!((s.as_u16(), &b[..]), (200, &b"ok"[..]));
    let (_, _, b, _) = get("GET", "/big", "").await;
    assert_eq!(b.len(), BIG);
    assert!(b
        .chunks(4096)
        .enumerate()
        .all(|(i, c)| c.iter().all(|&x| x == b'a' + (i % 26) as u8)));
    let (_, _, b, _) = get("POST", "/echo", "the body").await;
    let b = String::from_utf8_lossy(&b).to_string();
    assert!(
        b.starts_with("POST /echo HTTP/1.1\r\n") && b.ends_with("\nthe body"),
        "{b}"
    );
    let (_, h, b, _) = get("GET", "/hop", "").await;
    assert_eq!(&b[..], b"hop");
    assert!(
        !h.contains_key("x-hop") && !h.contains_key("keep-alive"),
        "{h:?}"
    );
    let (s, h, b, _) = get("HEAD", "/head", "").await;
    assert_eq!(s, 200);
    assert!(b.is_empty() && h.contains_key("content-length"));
    // Ends with the endpoint's close: the proxy closes the client's too.
    let (_, h, b, _) = get("GET", "/close", "").await;
    assert_eq!(&b[..], b"until close");
    assert_eq!(h["connection"], "close");
    driver.await.unwrap().unwrap();
}

/// Reads from `s` until `n` responses' worth of `marker` were seen or EOF.
async fn read_until(s: &mut TcpStream, marker: &str, n: usize) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&all).matches(marker).count() < n {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(k)) => all.extend_from_slice(&buf[..k]),
        }
    }
    String::from_utf8_lossy(&all).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let (addr, _p, _backend) = proxied().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /one HTTP/1.1\r\nHost: t\r\nX-MiXeD-Case: 1\r\n\r\nGET /two HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let all = read_until(&mut s, "HTTP/1.1 200", 2).await;
    let one = all.find("GET /one").expect(&all);
    let two = all.find("GET /two").expect(&all);
    assert!(one < two, "{all}");
    // Forwarded byte for byte (hyper would have lower-cased the name).
    assert!(all.contains("X-MiXeD-Case: 1"), "{all}");
    // The client's Connection header is not forwarded; the reply says close.
    assert!(!all.contains("Connection: close"), "{all}");
    assert!(all.contains("connection: close"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_requests_hand_the_connection_to_hyper() {
    let (addr, _p, _backend) = proxied().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // A fast-path request, then HTTP/1.0 on the same connection: hyper
    // answers the second one and closes the connection after it.
    s.write_all(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let first = read_until(&mut s, "GET /fast", 1).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    s.write_all(b"GET /old HTTP/1.0\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let second = read_until(&mut s, "\u{0}", 1).await; // until EOF
    assert!(second.starts_with("HTTP/1.0 200"), "{second}");
    assert!(second.contains("GET /old HTTP/1.1"), "{second}");
    // A malformed head goes to hyper too, which answers 400.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        .await
        .unwrap();
    let bad = read_until(&mut s, "\u{0}", 1).await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_response_is_a_502() {
    let (addr, _p, _backend) = proxied().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /bad HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let all = read_until(&mut s, "\u{0}", 1).await;
    assert!(all.starts_with("HTTP/1.1 502"), "{all}");
    assert!(all.contains("invalid Content-Length"), "{all}");
}
