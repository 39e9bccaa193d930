//! The HTTP/JSON API: one router for users and agents.

mod events;
pub mod networks;
mod nodes;
mod openapi;
mod services;
mod stacks;
mod tasks;

pub use nodes::alive_key;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;

/// Largest request body accepted (a stack of a few thousand services fits).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/stacks", get(stacks::list))
        .route(
            "/v1/stacks/{name}",
            put(stacks::deploy).delete(stacks::remove),
        )
        .route("/v1/services", get(services::list))
        .route("/v1/services/{id}", get(services::get))
        .route("/v1/services/{id}/scale", post(services::scale))
        .route("/v1/services/{id}/restart", post(services::restart))
        .route("/v1/tasks", get(tasks::list))
        .route("/v1/tasks/{id}", get(tasks::get))
        .route("/v1/tasks/{id}/status", put(tasks::report))
        .route("/v1/nodes", get(nodes::list).post(nodes::register))
        .route("/v1/nodes/{id}/heartbeat", post(nodes::heartbeat))
        .route("/v1/nodes/{id}/assignments", get(nodes::assignments))
        .route("/v1/events", get(events::list))
        .route("/v1/networks", get(networks::list))
        .route("/v1/networking", get(networks::networking))
        .route_layer(axum::middleware::from_fn_with_state(
            state.repo.clone(),
            crate::auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such endpoint").with_hint("see /openapi.json")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// `GET /metrics`: Prometheus text exposition of the shared registry.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut text = String::new();
    let encoded =
        prometheus_client::encoding::text::encode(&mut text, &state.metrics.lock().unwrap());
    match encoded {
        Ok(()) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
        .into_response(),
    }
}

/// `Json<T>` whose rejections are 4xx JSON errors naming what was wrong.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("invalid request body: {}", e.body_text()),
                ),
                JsonRejection::JsonSyntaxError(e) => {
                    ApiError::bad_request(format!("malformed JSON: {}", e.body_text()))
                }
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected a JSON body")
                        .with_hint("send Content-Type: application/json")
                }
                other => ApiError::new(other.status(), other.body_text()),
            }),
        }
    }
}

/// Names of stacks and services: what Compose accepts for project names.
pub fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(
            ApiError::bad_request(format!("invalid {what} name {name:?}")).with_hint(
                "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit",
            ),
        )
    }
}

/// A streaming `application/x-ndjson` response fed by a channel of lines.
pub fn ndjson(
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::convert::Infallible>>,
) -> axum::response::Response {
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    axum::response::Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(body)
        .expect("static headers are valid")
}
