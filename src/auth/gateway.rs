//! The `gateway` authenticator: a proxy in front of tokenmint has authenticated the user and
//! passes the identity in headers. Those headers are believed only from a trusted peer address
//! or alongside the right shared secret, compared in constant time.

use std::fmt;

use aws_lc_rs::digest;
use http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::{AuthError, Credentials, Principal};
use crate::twilio::MAX_IDENTITY_BYTES;

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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use http::HeaderValue;

    use super::*;

    const SECRET: &str = "gateway-shared-secret-0123456789";

    fn settings() -> GatewaySettings {
        GatewaySettings {
            identity_header: HeaderName::from_static("x-authenticated-user"),
            claim_headers: vec![("email".into(), HeaderName::from_static("x-email"))],
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            shared_secret: Some((HeaderName::from_static("x-gateway-secret"), SECRET.into())),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn from(peer: &str, headers: &HeaderMap) -> Result<Principal, AuthError> {
        settings().authenticate(Credentials {
            headers,
            peer: Some(peer.parse::<SocketAddr>().unwrap()),
            now: 0,
        })
    }

    fn refused(reason: &'static str) -> Result<Principal, AuthError> {
        Err(AuthError::unauthenticated(reason))
    }

    #[test]
    fn a_trusted_peer_is_believed_without_the_secret() {
        let sent = headers(&[
            ("x-authenticated-user", "alice"),
            ("x-email", "alice@example.com"),
        ]);
        for peer in ["10.1.2.3:5000", "[::ffff:10.1.2.3]:5000"] {
            let principal = from(peer, &sent).unwrap_or_else(|e| panic!("{peer}: {e:?}"));
            assert_eq!(principal.subject, "alice");
            assert_eq!(principal.claims["email"], "alice@example.com");
        }
        // Outside the trusted range, the same headers without the secret are not.
        for peer in ["11.1.2.3:5000", "[::1]:5000", "[2001:db8::10.1.2.3]:5000"] {
            assert_eq!(from(peer, &sent), refused("untrusted_gateway"), "{peer}");
        }
        let offline = settings().authenticate(Credentials {
            headers: &sent,
            peer: None,
            now: 0,
        });
        assert_eq!(offline, refused("untrusted_gateway"));
    }

    #[test]
    fn the_shared_secret_counts_only_when_right_and_sent_once() {
        let peer = "192.0.2.1:5000";
        let with = |secrets: &[&str]| {
            let mut sent = headers(&[("x-authenticated-user", "bob")]);
            for secret in secrets {
                sent.append("x-gateway-secret", HeaderValue::from_str(secret).unwrap());
            }
            from(peer, &sent)
        };
        assert_eq!(with(&[SECRET]).unwrap().subject, "bob");
        for wrong in [
            &[][..],
            &["wrong"],
            &[&SECRET[..SECRET.len() - 1]],
            &[SECRET, SECRET],
        ] {
            assert_eq!(with(wrong), refused("untrusted_gateway"), "{wrong:?}");
        }
    }

    #[test]
    fn the_identity_header_must_be_sent_once_not_empty_and_at_most_256_bytes() {
        let peer = "10.0.0.1:5000";
        let principal = from(peer, &headers(&[("x-authenticated-user", " carol ")])).unwrap();
        assert_eq!(principal.subject, "carol");
        assert_eq!(principal.claims.get("email"), None);
        for sent in [
            headers(&[]),
            headers(&[("x-authenticated-user", "  ")]),
            headers(&[("x-authenticated-user", "a"), ("x-authenticated-user", "b")]),
        ] {
            assert_eq!(
                from(peer, &sent),
                refused("missing_identity_header"),
                "{sent:?}"
            );
        }
        let longest = "x".repeat(MAX_IDENTITY_BYTES);
        let sent = headers(&[("x-authenticated-user", &longest)]);
        assert_eq!(from(peer, &sent).unwrap().subject, longest);
        let sent = headers(&[("x-authenticated-user", &format!("{longest}x"))]);
        assert_eq!(from(peer, &sent), refused("identity_header_too_long"));
        // A claim header sent twice is left out rather than picked from.
        let sent = headers(&[
            ("x-authenticated-user", "dave"),
            ("x-email", "a@example.com"),
            ("x-email", "b@example.com"),
        ]);
        assert_eq!(from(peer, &sent).unwrap().claims.get("email"), None);
    }
}
