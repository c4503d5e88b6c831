//! Liveness and readiness for orchestrators.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

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
