//! `POST /webhooks/verify`: application backends ask whether a webhook really came from Twilio,
//! without ever holding the Auth Token themselves. Fails closed: only a checked signature gets
//! 200, so a caller that looks at the status alone is safe.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, no_store};
use crate::audit;
use crate::twilio::webhook::{Payload, WebhookRequest, requested_host};

/// Largest request accepted: webhook bodies can be far larger than token requests.
pub const MAX_VERIFY_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(untagged)]
enum Values {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    account: String,
    url: String,
    /// Form parameters; a repeated name as an array.
    params: Option<BTreeMap<String, Values>>,
    /// The raw body of a non-form webhook.
    body: Option<String>,
    signature: String,
    signature_settings: Option<String>,
}

pub async fn verify(State(state): State<AppState>, request: Request) -> Response {
    let result = check(&state, request).await;
    no_store(match result {
        Ok(()) => (StatusCode::OK, Json(json!({"valid": true}))).into_response(),
        Err(error) => error.into_response(),
    })
}

async fn check(state: &AppState, request: Request) -> Result<(), ApiError> {
    let body = axum::body::to_bytes(request.into_body(), MAX_VERIFY_BYTES)
        .await
        .map_err(|_| ApiError::payload_too_large())?;
    let request: VerifyRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_request(format!("the body is not a verification request: {e}"))
    })?;
    let runtime = state.runtime();
    let host = requested_host(&request.url)
        .ok_or_else(|| ApiError::invalid_request("url must be the full URL Twilio requested"))?;
    let Some(account) = runtime.accounts.get(&request.account) else {
        audit::webhook_checked(&request.account, &host, "unknown_account");
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_account",
            "no such account",
        ));
    };
    let params: Vec<(String, String)> = request
        .params
        .iter()
        .flatten()
        .flat_map(|(name, values)| match values {
            Values::One(value) => vec![(name.clone(), value.clone())],
            Values::Many(values) => values.iter().map(|v| (name.clone(), v.clone())).collect(),
        })
        .collect();
    let payload = match (&request.body, request.params.is_some()) {
        (Some(_), true) => {
            return Err(ApiError::invalid_request(
                "give params (a form webhook) or body (any other), not both",
            ));
        }
        (Some(body), false) => Payload::Raw(body.as_bytes()),
        (None, true) => Payload::Form(&params),
        (None, false) => Payload::Empty,
    };
    let outcome = account.webhooks.verify(&WebhookRequest {
        url: &request.url,
        payload,
        signature: &request.signature,
        signature_settings: request.signature_settings.as_deref(),
    });
    match outcome {
        Ok(()) => {
            audit::webhook_checked(&account.name, &host, "valid");
            Ok(())
        }
        Err(invalid) => {
            audit::webhook_checked(&account.name, &host, "invalid");
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_signature",
                invalid.to_string(),
            ))
        }
    }
}
