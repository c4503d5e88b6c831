//! Caller-token verification: bearer parsing plus strict JWT validation with fixed keys.
//! Nothing the fuzzer writes can carry a valid signature, so every input must be refused, and
//! none may panic.

#![no_main]

use std::sync::{Arc, LazyLock};

use axum::http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use tokenmint::auth::{
    AuthSettings, Authenticator, Credentials, JwtSettings, KeySet, KeySource,
};

static AUTHENTICATOR: LazyLock<Authenticator> = LazyLock::new(|| {
    let rsa = EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/rsa_a.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(include_bytes!("../../tests/fixtures/ec_a.pem")).unwrap();
    let mut rsa_jwk = serde_json::to_value(Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap()).unwrap();
    rsa_jwk["kid"] = "rsa-a".into();
    let mut ec_jwk = serde_json::to_value(Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap()).unwrap();
    ec_jwk["kid"] = "ec-a".into();
    let jwks = serde_json::json!({"keys": [rsa_jwk, ec_jwk]}).to_string();
    let settings = JwtSettings {
        issuer: "https://idp.example.com/".into(),
        audiences: vec!["support-web".into()],
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        leeway_secs: 60,
        keys: KeySource::Static(Arc::new(KeySet::from_jwks(jwks.as_bytes()).unwrap())),
        policy_claims: vec!["roles".into()],
    };
    Authenticator::new("fuzz", AuthSettings::Jwt(settings), Default::default(), None)
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().unwrap());

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    let credentials = Credentials {
        headers: &headers,
        peer: None,
        now: 1_800_000_000,
    };
    let result = RUNTIME.block_on(AUTHENTICATOR.authenticate(credentials));
    assert!(result.is_err(), "a forged credential was accepted: {result:?}");
});
