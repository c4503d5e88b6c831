//! Encoding and signing of Twilio Access Tokens (compact JWS, HS256 with the API Key secret).

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::grants::Grants;
use super::sid::{Account, ApiKey, Sid};

/// Twilio refuses Access Tokens that live longer than 24 hours (error 20157).
pub const MAX_TTL_SECS: u64 = 24 * 60 * 60;

/// Longest identity any grant accepts, in bytes (Conversations and Sync; the others less).
pub const MAX_IDENTITY_BYTES: usize = 256;

/// What goes into one token, apart from the account and key that sign it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub grants: Grants,
    /// Unix seconds; becomes `nbf`, and `exp` is counted from it.
    pub issued_at: u64,
    /// Lifetime in seconds, 1 to [`MAX_TTL_SECS`].
    pub ttl_secs: u64,
    /// Unique suffix of `jti` (`<API Key SID>-<suffix>`).
    pub jti_suffix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("token lifetime of {0} s is outside 1 s to 24 h")]
    TtlOutOfRange(u64),
    #[error("could not encode the token payload")]
    Encode(#[from] serde_json::Error),
}

/// One API key of one account, ready to sign. The secret is held only inside the HMAC key and
/// never printed.
pub struct Signer {
    account_sid: Sid<Account>,
    key_sid: Sid<ApiKey>,
    region: Option<String>,
    /// HS256 key, prepared once: building it per token would double the cost of signing.
    key: hmac::Key,
    /// `base64url(header) + "."`, computed once: it depends only on the region.
    encoded_header: String,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    cty: &'static str,
    typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    twr: Option<&'a str>,
}

#[derive(Serialize)]
struct Payload<'a> {
    jti: String,
    grants: &'a Grants,
    iss: &'a Sid<ApiKey>,
    exp: u64,
    nbf: u64,
    sub: &'a Sid<Account>,
}

impl Signer {
    /// `region` (e.g. `ie1`) becomes the `twr` header; keys created outside US1 need it.
    pub fn new(
        account_sid: Sid<Account>,
        key_sid: Sid<ApiKey>,
        secret: &SecretString,
        region: Option<String>,
    ) -> Self {
        let header = Header {
            alg: "HS256",
            cty: "twilio-fpa;v=1",
            typ: "JWT",
            twr: region.as_deref(),
        };
        // Serialising a struct of plain strings cannot fail.
        let header_json = serde_json::to_vec(&header).unwrap_or_default();
        let mut encoded_header = URL_SAFE_NO_PAD.encode(header_json);
        encoded_header.push('.');
        Self {
            account_sid,
            key_sid,
            region,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes()),
            encoded_header,
        }
    }

    pub fn key_sid(&self) -> &Sid<ApiKey> {
        &self.key_sid
    }

    pub fn account_sid(&self) -> &Sid<Account> {
        &self.account_sid
    }

    /// The `jti` a token with this suffix carries.
    pub fn jti(&self, suffix: &str) -> String {
        [self.key_sid.as_str(), "-", suffix].concat()
    }

    /// Encodes and signs `token`, returning the compact JWS.
    pub fn sign(&self, token: &AccessToken) -> Result<String, SignError> {
        if token.ttl_secs == 0 || token.ttl_secs > MAX_TTL_SECS {
            return Err(SignError::TtlOutOfRange(token.ttl_secs));
        }
        let payload = Payload {
            jti: self.jti(&token.jti_suffix),
            grants: &token.grants,
            iss: &self.key_sid,
            exp: token.issued_at + token.ttl_secs,
            nbf: token.issued_at,
            sub: &self.account_sid,
        };
        let payload_json = serde_json::to_vec(&payload)?;
        let mut jws =
            String::with_capacity(self.encoded_header.len() + payload_json.len() * 4 / 3 + 48);
        jws.push_str(&self.encoded_header);
        URL_SAFE_NO_PAD.encode_string(payload_json, &mut jws);
        let signature = hmac::sign(&self.key, jws.as_bytes());
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jws);
        Ok(jws)
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("account_sid", &self.account_sid)
            .field("key_sid", &self.key_sid)
            .field("region", &self.region)
            .field("secret", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;
    use crate::twilio::grants::{VideoGrant, VoiceGrant, VoiceOutgoing};

    const VECTOR_A: &str = "eyJhbGciOiJIUzI1NiIsImN0eSI6InR3aWxpby1mcGE7dj0xIiwidHlwIjoiSldUIn0.eyJqdGkiOiJTS2ZlZGNiYTk4NzY1NDMyMTBmZWRjYmE5ODc2NTQzMjEwLTE3MDAwMDAwMDAiLCJncmFudHMiOnsidmlkZW8iOnsicm9vbSI6IkRhaWx5U3RhbmR1cCJ9LCJ2b2ljZSI6eyJpbmNvbWluZyI6eyJhbGxvdyI6dHJ1ZX0sIm91dGdvaW5nIjp7ImFwcGxpY2F0aW9uX3NpZCI6IkFQMDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmYiLCJwYXJhbXMiOnsiZm9vIjoiYmFyIiwibiI6IjEifX19LCJpZGVudGl0eSI6ImFsaWNlXzAxIn0sImlzcyI6IlNLZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTAiLCJleHAiOjE3MDAwMDM2MDAsIm5iZiI6MTcwMDAwMDAwMCwic3ViIjoiQUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZiJ9.nL7p72pxu6DCw-75aHsO6bgXMx3qHBFYTj1IIbH2rpg";

    fn vector_a_signer(region: Option<&str>) -> Signer {
        Signer::new(
            Sid::parse("AC0123456789abcdef0123456789abcdef").unwrap(),
            Sid::parse("SKfedcba9876543210fedcba9876543210").unwrap(),
            &SecretString::from("test_api_key_secret_0123456789ab"),
            region.map(str::to_owned),
        )
    }

    fn vector_a_token() -> AccessToken {
        let params = BTreeMap::from([("foo".into(), "bar".into()), ("n".into(), "1".into())]);
        AccessToken {
            grants: Grants {
                video: Some(VideoGrant {
                    room: Some("DailyStandup".into()),
                }),
                voice: Some(VoiceGrant {
                    incoming: true,
                    outgoing: Some(VoiceOutgoing {
                        application_sid: Sid::parse("AP00112233445566778899aabbccddeeff").unwrap(),
                        params,
                    }),
                    ..VoiceGrant::default()
                }),
                identity: "alice_01".into(),
                ..Grants::default()
            },
            issued_at: 1_700_000_000,
            ttl_secs: 3600,
            jti_suffix: "1700000000".into(),
        }
    }

    fn decode_segment(segment: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    #[test]
    fn reproduces_vector_a_byte_for_byte() {
        let token = vector_a_signer(None).sign(&vector_a_token()).unwrap();
        assert_eq!(token, VECTOR_A);
    }

    #[test]
    fn vector_a_decodes_to_the_documented_values() {
        let token = vector_a_signer(None).sign(&vector_a_token()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decode_segment(parts[0]),
            json!({"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"})
        );
        assert_eq!(
            decode_segment(parts[1]),
            json!({
                "jti": "SKfedcba9876543210fedcba9876543210-1700000000",
                "grants": {
                    "video": {"room": "DailyStandup"},
                    "voice": {
                        "incoming": {"allow": true},
                        "outgoing": {
                            "application_sid": "AP00112233445566778899aabbccddeeff",
                            "params": {"foo": "bar", "n": "1"}
                        }
                    },
                    "identity": "alice_01"
                },
                "iss": "SKfedcba9876543210fedcba9876543210",
                "exp": 1_700_003_600,
                "nbf": 1_700_000_000,
                "sub": "AC0123456789abcdef0123456789abcdef"
            })
        );
    }

    #[test]
    fn region_adds_the_twr_header_and_changes_the_signature() {
        let token = vector_a_signer(Some("ie1"))
            .sign(&vector_a_token())
            .unwrap();
        let header = decode_segment(token.split('.').next().unwrap());
        assert_eq!(
            header,
            json!({"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT", "twr": "ie1"})
        );
        assert_ne!(token, VECTOR_A);
    }

    #[test]
    fn refuses_a_lifetime_of_zero_or_above_24_hours() {
        let signer = vector_a_signer(None);
        for ttl in [0, MAX_TTL_SECS + 1] {
            let token = AccessToken {
                ttl_secs: ttl,
                ..vector_a_token()
            };
            assert!(matches!(
                signer.sign(&token),
                Err(SignError::TtlOutOfRange(t)) if t == ttl
            ));
        }
        let longest = AccessToken {
            ttl_secs: MAX_TTL_SECS,
            ..vector_a_token()
        };
        assert!(signer.sign(&longest).is_ok());
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let debug = format!("{:?}", vector_a_signer(Some("ie1")));
        assert!(!debug.contains("test_api_key_secret"), "{debug}");
        assert!(debug.contains("SKfedcba9876543210fedcba9876543210"));
    }
}
