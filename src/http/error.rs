//! Errors as RFC 9457 problem documents with a stable `code`. The client sees a status, a code
//! and a safe `detail`; the precise reason goes to the log only.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::policy::{Denial, DenialCode};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: Cow<'static, str>,
    /// For the log, never the client.
    pub reason: Cow<'static, str>,
    pub retry_after_secs: Option<u64>,
    pub www_authenticate: Option<&'static str>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        let detail = detail.into();
        Self {
            status,
            code,
            reason: detail.clone(),
            detail,
            retry_after_secs: None,
            www_authenticate: None,
        }
    }

    pub fn invalid_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    pub fn unknown_app() -> Self {
        Self::new(StatusCode::NOT_FOUND, "unknown_app", "no such app")
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        )
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is too large",
        )
    }

    pub fn origin_not_allowed() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this origin may not call this app",
        )
    }

    /// The request ran past `server.request_timeout`.
    pub fn timed_out() -> Self {
        Self {
            retry_after_secs: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the request took too long; try again",
            )
        }
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry later",
            )
        }
    }

    pub fn internal(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }

    pub fn with_reason(mut self, reason: impl Into<Cow<'static, str>>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Maps an authentication failure. `bearer` adds the RFC 6750 challenge.
    pub fn from_auth(error: AuthError, bearer: bool) -> Self {
        match error {
            AuthError::Unauthenticated { reason } => {
                let mut e = Self::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "a valid credential is required",
                )
                .with_reason(reason);
                if bearer {
                    // One challenge for every 401, a missing credential included (where RFC 6750
                    // §3.1 advises leaving the error code out): it alone tells a client that it
                    // needs a new token from its identity provider.
                    e.www_authenticate = Some("Bearer error=\"invalid_token\"");
                }
                e
            }
            AuthError::Malformed { reason } => {
                Self::invalid_request("malformed Authorization header").with_reason(reason)
            }
            AuthError::Unavailable { retry_after_secs } => Self {
                retry_after_secs: Some(retry_after_secs),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the identity provider's keys are not available yet",
                )
                .with_reason("jwks_unavailable")
            },
        }
    }
}

impl From<Denial> for ApiError {
    fn from(denial: Denial) -> Self {
        let (status, code, detail) = match denial.code {
            DenialCode::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request", None),
            DenialCode::RoomRequired => (
                StatusCode::BAD_REQUEST,
                "room_required",
                Some("the video grant needs a room"),
            ),
            DenialCode::UnknownPlatform => (
                StatusCode::BAD_REQUEST,
                "unknown_platform",
                Some("no push credential is configured for this platform"),
            ),
            DenialCode::GrantNotAllowed => (
                StatusCode::FORBIDDEN,
                "grant_not_allowed",
                Some("a requested grant is not allowed for this caller"),
            ),
            DenialCode::RoomNotAllowed => (
                StatusCode::FORBIDDEN,
                "room_not_allowed",
                Some("this room is not allowed for this caller"),
            ),
            DenialCode::InvalidIdentity => (
                StatusCode::FORBIDDEN,
                "invalid_identity",
                Some("the caller's identity cannot be used for a requested grant"),
            ),
        };
        // Request-shape problems are the client's own input, so the precise reason is safe to
        // show; policy refusals keep theirs for the log.
        let detail: Cow<'static, str> = match detail {
            Some(d) => d.into(),
            None => denial.reason.clone().into(),
        };
        Self {
            reason: denial.reason.into(),
            ..Self::new(status, code, detail)
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, super::NO_STORE);
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
