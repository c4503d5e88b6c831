//! The `gateway` authenticator: a proxy in front of tokenmint has authenticated the user and
//! passes the identity in headers. Those headers are believed only from a trusted peer address
//! or alongside the right shared secret, compared in constant time.

use std::fmt;

use aws_lc_rs::digest;
use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::{AuthError, Credentials, Principal};
use crate::policy::MAX_IDENTITY_BYTES;

pub struct GatewaySettings {
    pub identity_header: HeaderName,
    /// Claim name → header carrying it.
    pub claim_headers: Vec<(String, HeaderName)>,
    pub trusted_proxies: Vec<IpNet>,
    pub shared_secret: Option<(HeaderName, SecretString)>,
}

impl fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewaySettings")
            .field("identity_header", &self.identity_header)
            .field("claim_headers", &self.claim_headers)
            .field("trusted_proxies", &self.trusted_proxies)
            .field(
                "shared_secret_header",
                &self.shared_secret.as_ref().map(|(header, _)| header),
            )
            .finish()
    }
}

impl GatewaySettings {
    pub fn supplies_claim(&self, claim: &str) -> bool {
        claim == "sub" || self.claim_headers.iter().any(|(name, _)| name == claim)
    }

    fn peer_is_trusted(&self, credentials: &Credentials<'_>) -> bool {
        let Some(peer) = credentials.peer else {
            return false;
        };
        let ip = peer.ip().to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    fn secret_matches(&self, headers: &HeaderMap) -> bool {
        let Some((header, secret)) = &self.shared_secret else {
            return false;
        };
        let mut values = headers.get_all(header).iter();
        let (Some(given), None) = (values.next(), values.next()) else {
            return false;
        };
        // Compare digests so neither the secret's length nor its content leaks through timing.
        let given = digest::digest(&digest::SHA256, given.as_bytes());
        let expected = digest::digest(&digest::SHA256, secret.expose_secret().as_bytes());
        given.as_ref().ct_eq(expected.as_ref()).into()
    }

    pub(super) fn authenticate(
        &self,
        credentials: Credentials<'_>,
    ) -> Result<Principal, AuthError> {
        if !self.peer_is_trusted(&credentials) && !self.secret_matches(credentials.headers) {
            return Err(AuthError::unauthenticated("untrusted_gateway"));
        }
        let subject = single_header(credentials.headers, &self.identity_header)
            .ok_or(AuthError::unauthenticated("missing_identity_header"))?;
        if subject.len() > MAX_IDENTITY_BYTES {
            return Err(AuthError::unauthenticated("identity_header_too_long"));
        }
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::String(subject.clone()));
        for (claim, header) in &self.claim_headers {
            if let Some(value) = single_header(credentials.headers, header) {
                claims.insert(claim.clone(), Value::String(value));
            }
        }
        Ok(Principal { subject, claims })
    }
}

/// The value of a header sent exactly once, non-empty and valid UTF-8.
fn single_header(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let text = std::str::from_utf8(value.as_bytes()).ok()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
