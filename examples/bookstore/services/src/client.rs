//! The HTTP client for service-to-service calls. Every internal call is
//! idempotent (GET/PUT/DELETE with client-chosen ids), so a call that fails to
//! connect, loses its connection, or meets a 502/503 (a replica dying or the
//! proxy finding none ready) is retried once after a short pause.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode};

/// Total budget of one attempt: longer than a service waits for its
/// database (db.rs CONNECT_PATIENCE, 2.5 s) plus the work, shorter than the
/// caller's own 5 s request budget, so the caller still answers cleanly. A
/// timed-out attempt is not retried (see `retryable`); the fast failures that
/// are (connection refused or reset, 502/503) leave room for the second try.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(4500);

pub fn http_client() -> Client {
    Client::builder()
        // Pure-Rust resolver: see dns.rs.
        .dns_resolver(crate::dns::reqwest_resolver())
        .connect_timeout(Duration::from_secs(1))
        .timeout(ATTEMPT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(20))
        .build()
        .expect("building the HTTP client")
}

fn retryable(r: &Result<Response, reqwest::Error>) -> bool {
    match r {
        Ok(resp) => matches!(
            resp.status(),
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
        ),
        // A timeout may mean the other side is slow, not gone: retrying would
        // only double the wait.
        Err(e) => !e.is_timeout() && (e.is_connect() || e.is_request() || e.is_body()),
    }
}

/// Sends the request built by `build`, once more if the first attempt failed
/// in a retryable way. Only for idempotent requests.
pub async fn send_idempotent(
    build: impl Fn() -> RequestBuilder,
) -> Result<Response, reqwest::Error> {
    let first = build().send().await;
    if !retryable(&first) {
        return first;
    }
    match &first {
        Ok(r) => tracing::debug!(status = %r.status(), "retrying an internal call"),
        Err(e) => tracing::debug!(error = %e, "retrying an internal call"),
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    build().send().await
}

/// An error with its causes ("error sending request: dns error: no record
/// found ..."): reqwest's Display shows only the outermost layer.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}
