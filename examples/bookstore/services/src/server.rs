//! The skeleton every service binary shares: `healthcheck` subcommand,
//! tracing to stdout, `/metrics`, the metrics/timeout middleware, listening
//! on 0.0.0.0:$PORT and graceful shutdown on SIGTERM/SIGINT (in-flight
//! requests finish; the listener closes at once).

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use axum::Router;

use crate::metrics::{track, Metrics};

/// Entry point of a service binary: `<binary>` serves, `<binary> healthcheck`
/// probes the local instance (an exec health check in an image with no shell).
pub fn main<F, Fut>(name: &'static str, serve_fn: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("healthcheck") | Some("--healthcheck") => return healthcheck(),
        Some("-h") | Some("--help") => {
            println!("bookstore-{name}: serves on 0.0.0.0:$PORT (default 8080)\n  bookstore-{name} healthcheck   GET http://127.0.0.1:$PORT/healthz (1 s), exit 0 when 200");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("bookstore-{name}: unknown argument {other:?}; expected none, `healthcheck` or --help");
            return ExitCode::from(2);
        }
    }
    init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bookstore-{name}: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve_fn()) {
        Ok(()) => {
            tracing::info!(service = name, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(service = name, error = format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .init();
}

fn healthcheck() -> ExitCode {
    let port = match crate::config::port() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("healthcheck: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let url = format!("http://127.0.0.1:{port}/healthz");
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()?;
        client.get(&url).send().await
    });
    match result {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("healthcheck: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Adds `/metrics` and the middleware to `router`, then serves it until
/// SIGTERM or SIGINT.
pub async fn serve(name: &'static str, router: Router, metrics: Metrics) -> anyhow::Result<()> {
    let port = crate::config::port()?;
    let m = metrics.clone();
    let app = router
        .route("/metrics", get(move || async move { m.render() }))
        .layer(axum::middleware::from_fn_with_state(metrics, track));
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("listening on 0.0.0.0:{port}"))?;
    tracing::info!(service = name, port, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight requests"),
    }
}

/// `/healthz` for a database-backed service. Not logged when failing: a
/// health checker probes every few seconds while the database is down.
pub async fn db_healthz(db: &crate::db::Db) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let (status, text) = if db.healthy().await {
        (StatusCode::OK, "ok")
    } else if db.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: database schema not ready",
        )
    };
    (status, axum::Json(serde_json::json!({ "status": text }))).into_response()
}
