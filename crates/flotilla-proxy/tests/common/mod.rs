//! Real sockets on 127.0.0.0/8 for the proxy's tests: small hyper backends
//! that can be killed mid-load, TCP echo servers, config builders, a pooled
//! client.
#![allow(dead_code)] // each test binary uses a different subset

use bytes::Bytes;
use flotilla_proxy::{Endpoint, ListenerConfig, Protocol, Proxy, ProxyConfig, Timeouts};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

/// A hyper HTTP/1.1 backend answering its name; `/slow/<ms>` answers after
/// that delay. Dropping it (or `kill`) aborts the listener and every
/// connection task at once, like a process that died.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let name_s = name.to_string();
        let t2 = tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                let name = name_s.clone();
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let name = name.clone();
                    async move {
                        if let Some(ms) = req.uri().path().strip_prefix("/slow/") {
                            let ms: u64 = ms.parse().unwrap_or(0);
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let reply = if body.is_empty() {
                            name
                        } else {
                            format!("{name} got {}", String::from_utf8_lossy(&body))
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(reply))))
                    }
                });
                let h = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
                t2.lock().unwrap().push(h.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Backend {
            name: name.to_string(),
            addr,
            tasks,
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            id: self.name.clone(),
            addr: self.addr,
        }
    }

    pub fn kill(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP echo server (echoes as it reads, so it works interactively and
/// with half-close: on EOF it sends "bye" and closes).
pub struct Echo {
    pub addr: SocketAddr,
    accept: AbortHandle,
}

impl Echo {
    pub async fn start() -> Echo {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = s.write_all(b"bye").await;
                    let _ = s.shutdown().await;
                });
            }
        })
        .abort_handle();
        Echo { addr, accept }
    }

    pub fn endpoint(&self, id: &str) -> Endpoint {
        Endpoint {
            id: id.into(),
            addr: self.addr,
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// An address on which nothing listens: bound once, then closed.
pub fn dead_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn listener(name: &str, protocol: Protocol, endpoints: Vec<Endpoint>) -> ListenerConfig {
    ListenerConfig {
        name: name.into(),
        service: "svc".into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        protocol,
        endpoints,
        timeouts: Timeouts::default(),
        retries: 2,
    }
}

pub fn config(listeners: Vec<ListenerConfig>) -> ProxyConfig {
    ProxyConfig { listeners }
}

/// A proxy with `cfg` applied; panics (test failure) on bind errors.
pub async fn proxy(cfg: &ProxyConfig) -> (Proxy, prometheus_client::registry::Registry) {
    let mut reg = prometheus_client::registry::Registry::default();
    let p = Proxy::new(&mut reg).unwrap();
    let errs = p.apply(cfg).await;
    assert!(errs.is_empty(), "apply: {errs:?}");
    (p, reg)
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A pooled keep-alive HTTP/1.1 client, like a real service's.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `path` through `addr`; returns (status, body).
pub async fn get(c: &HttpClient, addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let req = Request::get(format!("http://{addr}{path}")).body(Full::new(Bytes::new()))?;
    let resp = c.request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

pub fn metrics_text(reg: &prometheus_client::registry::Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, reg).unwrap();
    s
}

/// Waits (bounded) until `f` holds.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}
