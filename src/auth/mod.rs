//! Who is calling: turns a request's credentials into a verified [`Principal`], or refuses.
//!
//! `jwt` authenticators verify a bearer token from the app's identity provider (keys from a
//! JWKS URL, a JWKS file or an HS256 secret); `gateway` authenticators believe identity headers
//! set by a trusted proxy. The JWKS fetch in [`jwks`] is the only network I/O on the request
//! path.

mod gateway;
pub mod jwks;
pub mod jwt;
mod principal;

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::metrics::Metrics;

pub use gateway::GatewaySettings;
pub use jwt::{JwtAuthenticator, JwtSettings, KeySet, KeySource};
pub use principal::Principal;

/// Largest `Authorization` header looked at, in bytes; anything longer is refused unread.
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

/// Why a caller was not authenticated. `reason` is for the log only, never the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No usable credential: 401.
    Unauthenticated { reason: &'static str },
    /// The request itself is malformed (two `Authorization` headers): 400.
    Malformed { reason: &'static str },
    /// The provider's keys could not be had yet: 503, retry after this many seconds.
    Unavailable { retry_after_secs: u64 },
}

impl AuthError {
    pub(crate) fn unauthenticated(reason: &'static str) -> Self {
        AuthError::Unauthenticated { reason }
    }
}

/// A configured authenticator, as parsed from `[auth.<name>]`.
#[derive(Debug)]
pub enum AuthSettings {
    Jwt(JwtSettings),
    Gateway(GatewaySettings),
}

impl AuthSettings {
    /// Whether the authenticator can supply `claim` to templates. A JWT may carry any claim;
    /// a gateway supplies `sub` and its configured claim headers only.
    pub fn supplies_claim(&self, claim: &str) -> bool {
        match self {
            AuthSettings::Jwt(_) => true,
            AuthSettings::Gateway(gateway) => gateway.supplies_claim(claim),
        }
    }
}

/// A ready authenticator.
#[derive(Debug, Clone)]
pub enum Authenticator {
    Jwt(Arc<JwtAuthenticator>),
    Gateway(Arc<GatewaySettings>),
}

/// What an authenticator looks at.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub headers: &'a HeaderMap,
    /// The TCP peer; `None` when the request did not come from a socket (offline tools).
    pub peer: Option<SocketAddr>,
    /// Unix seconds.
    pub now: u64,
}

impl Authenticator {
    /// Builds the runtime form. JWKS fetching does not start until [`Authenticator::start`].
    /// A `previous` authenticator of the same name lends its JWKS cache when the URL is the same.
    pub fn new(
        name: &str,
        settings: AuthSettings,
        metrics: Arc<Metrics>,
        previous: Option<&Authenticator>,
    ) -> Self {
        match settings {
            AuthSettings::Jwt(jwt) => {
                let previous = match previous {
                    Some(Authenticator::Jwt(old)) => Some(old.as_ref()),
                    _ => None,
                };
                Authenticator::Jwt(Arc::new(JwtAuthenticator::new(
                    name, jwt, metrics, previous,
                )))
            }
            AuthSettings::Gateway(gateway) => Authenticator::Gateway(Arc::new(gateway)),
        }
    }

    /// Starts background key refreshes (needs a Tokio runtime). Idempotent.
    pub fn start(&self) {
        if let Authenticator::Jwt(jwt) = self {
            jwt.start();
        }
    }

    /// Fetches a JWT provider's keys now unless it has them, so that a reload has them before it
    /// swaps the authenticator in.
    pub async fn load_keys(&self) {
        if let Authenticator::Jwt(jwt) = self {
            jwt.load_keys().await;
        }
    }

    /// Whether the authenticator can verify callers now (a JWT provider's keys are loaded).
    pub fn is_ready(&self) -> bool {
        match self {
            Authenticator::Jwt(jwt) => jwt.is_ready(),
            Authenticator::Gateway(_) => true,
        }
    }

    /// The verified caller.
    pub async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Principal, AuthError> {
        match self {
            Authenticator::Jwt(jwt) => {
                let token = bearer_token(credentials.headers)?;
                jwt.verify(token, credentials.now).await
            }
            Authenticator::Gateway(gateway) => gateway.authenticate(credentials),
        }
    }
}

/// The token of a single `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values
        .next()
        .ok_or(AuthError::unauthenticated("missing_authorization"))?;
    if values.next().is_some() {
        return Err(AuthError::Malformed {
            reason: "duplicate_authorization",
        });
    }
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(AuthError::unauthenticated("authorization_too_large"));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::unauthenticated("authorization_not_ascii"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(AuthError::unauthenticated("not_bearer"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::unauthenticated("not_bearer"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::unauthenticated("empty_bearer"));
    }
    Ok(token)
}
