//! L7 HTTP through the proxy: balancing, 503 when empty, h2, retries, the
//! no-failed-GET claim when a backend dies under load, and draining.

mod common;

use bytes::Bytes;
use common::*;
use flotilla_proxy::{Endpoint, Protocol};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_over_every_endpoint_and_answers_503_when_empty() {
    let bs = [
        Backend::start("b0").await,
        Backend::start("b1").await,
        Backend::start("b2").await,
    ];
    let mut cfg = config(vec![listener(
        "h",
        Protocol::Http,
        bs.iter().map(Backend::endpoint).collect(),
    )]);
    cfg.listeners[0].service = "shop_api".into();
    let (p, reg) = proxy(&cfg).await;
    let addr = p.local_addr("h").unwrap();
    let c = client();
    let mut seen: HashMap<String, u32> = HashMap::new();
    for _ in 0..90 {
        let (status, body) = get(&c, addr, "/").await.unwrap();
        assert_eq!(status, 200);
        *seen.entry(body).or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // A small body is forwarded (and buffered for retries).
    let req = Request::post(format!("http://{addr}/"))
        .body(Full::new(Bytes::from("hi")))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(body.ends_with(b" got hi"), "{body:?}");

    let m = metrics_text(&reg);
    for needle in [
        r#"flotilla_proxy_requests_total{service="shop_api",endpoint="b0"}"#,
        r#"flotilla_proxy_request_duration_seconds_bucket{le="#,
        r#"flotilla_proxy_open_connections{service="shop_api"}"#,
        r#"flotilla_proxy_in_flight{service="shop_api",endpoint="b1"} 0"#,
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }

    cfg.listeners[0].endpoints.clear();
    assert!(p.apply(&cfg).await.is_empty());
    let (status, body) = get(&c, addr, "/").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("shop_api"), "{body}");
    let m = metrics_text(&reg);
    assert!(
        m.contains(r#"flotilla_proxy_errors_total{service="shop_api",endpoint="none"} 1"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_prior_knowledge_clients_are_served() {
    let b = Backend::start("b0").await;
    let cfg = config(vec![listener("h", Protocol::Http, vec![b.endpoint()])]);
    let (p, _reg) = proxy(&cfg).await;
    let addr = p.local_addr("h").unwrap();
    let c: HttpClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    for _ in 0..3 {
        let req = Request::get(format!("http://{addr}/x"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = c.request(req).await.unwrap();
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"b0");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_ejected_and_requests_retried_elsewhere() {
    let b = Backend::start("live").await;
    let dead = Endpoint {
        id: "dead".into(),
        addr: dead_addr(),
    };
    let cfg = config(vec![listener(
        "h",
        Protocol::Http,
        vec![dead, b.endpoint()],
    )]);
    let (p, reg) = proxy(&cfg).await;
    let addr = p.local_addr("h").unwrap();
    let c = client();
    for _ in 0..30 {
        assert_eq!(get(&c, addr, "/").await.unwrap(), (200, "live".into()));
    }
    let m = metrics_text(&reg);
    let dead_errors: u64 = m
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"flotilla_proxy_errors_total{service="svc",endpoint="dead"} "#)
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // Ejected after the first failure: tried once, maybe twice, not 15 times.
    assert!(
        (1..=3).contains(&dead_errors),
        "dead endpoint errors {dead_errors}\n{m}"
    );
    assert!(
        m.contains(r#"flotilla_proxy_retries_total{service="svc"}"#),
        "{m}"
    );
}

/// The HA claim: a backend killed under load, without being removed from
/// the config first, costs zero failed GETs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_under_load_fails_no_get() {
    let bs = [
        Backend::start("b0").await,
        Backend::start("b1").await,
        Backend::start("b2").await,
    ];
    let cfg = config(vec![listener(
        "h",
        Protocol::Http,
        bs.iter().map(Backend::endpoint).collect(),
    )]);
    let (p, _reg) = proxy(&cfg).await;
    let addr = p.local_addr("h").unwrap();

    const CLIENTS: usize = 16;
    const PER_CLIENT: usize = 400;
    let done = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut load = Vec::new();
    for _ in 0..CLIENTS {
        let (done, failures) = (done.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            let c = client();
            let mut first_error = None;
            for _ in 0..PER_CLIENT {
                if Instant::now() > deadline {
                    break;
                }
                match get(&c, addr, "/").await {
                    Ok((200, _)) => {}
                    other => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert(format!("{other:?}"));
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            first_error
        }));
    }
    // Kill b1 once the load is well under way.
    eventually("load under way", || done.load(Ordering::Relaxed) >= 500).await;
    bs[1].kill();
    let killed_at = done.load(Ordering::Relaxed);
    let mut errors = Vec::new();
    for t in load {
        errors.extend(t.await.unwrap());
    }
    let total = done.load(Ordering::Relaxed);
    assert!(
        total > killed_at,
        "load continued after the kill ({killed_at} then {total})"
    );
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "{total} requests, errors: {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_endpoint_lets_its_slow_request_finish() {
    let slow = Backend::start("slow").await;
    let other = Backend::start("other").await;
    let mut cfg = config(vec![listener("h", Protocol::Http, vec![slow.endpoint()])]);
    let (p, reg) = proxy(&cfg).await;
    let addr = p.local_addr("h").unwrap();
    let inflight = tokio::spawn(async move { get(&client(), addr, "/slow/1500").await });
    eventually("request in flight", || p.in_flight("slow") == 1).await;

    // The agent removes the endpoint first, then polls in_flight.
    cfg.listeners[0].endpoints = vec![other.endpoint()];
    assert!(p.apply(&cfg).await.is_empty());
    assert_eq!(
        get(&client(), addr, "/").await.unwrap(),
        (200, "other".into())
    );
    assert_eq!(p.in_flight("slow"), 1, "still draining");
    assert_eq!(inflight.await.unwrap().unwrap(), (200, "slow".into()));
    eventually("drained", || p.in_flight("slow") == 0).await;
    // The next apply (the agent re-applies on every change) forgets the
    // drained endpoint's metric series; the live one keeps its own.
    assert!(metrics_text(&reg).contains(r#"endpoint="slow""#));
    assert!(p.apply(&cfg).await.is_empty());
    let m = metrics_text(&reg);
    assert!(!m.contains(r#"endpoint="slow""#), "{m}");
    assert!(m.contains(r#"endpoint="other""#), "{m}");
}
