//! Liveness and readiness for orchestrators.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let runtime = state.runtime();
    let now = crate::runtime::unix_now() as i64;
    runtime.metrics.set_key_ages(runtime.key_ages(now));
    let body = runtime.metrics.encode();
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    super::no_store(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
}

/// 200 while the process runs.
pub async fn healthz() -> Response {
    super::no_store(Json(json!({"status": "ok"})).into_response())
}

/// 200 when configuration is loaded and every `jwt` authenticator has keys; 503 otherwise and
/// from the moment shutdown begins.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let response = if state.is_ready() {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready"})),
        )
    };
    super::no_store(response.into_response())
}
