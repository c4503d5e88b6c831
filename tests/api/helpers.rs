//! Shared set-up: spawn the app on port 0, sign callers' JWTs, serve a JWKS, decode tokens.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokenmint::config::{self, Env, Source};
use tokenmint::http::{self, AppState};
use tokenmint::runtime::{Runtime, unix_now};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
pub const KEY_SECRET: &str = "test_api_key_secret_0123456789ab";
pub const GATEWAY_SECRET: &str = "gateway-shared-secret-0123456789";
/// The Auth Token of twilio-token-format.md §7 vectors B and C.
pub const AUTH_TOKEN: &str = "12345";
pub const ISSUER: &str = "https://idp.example.com/";
pub const AUDIENCE: &str = "support-web";
pub const ORIGIN: &str = "https://support.example.com";
pub const AP_SID: &str = "AP00112233445566778899aabbccddeeff";
pub const CR_IOS: &str = "CR00112233445566778899aabbccdd0001";
pub const IS_CHAT: &str = "IS00112233445566778899aabbccdd0002";
pub const IS_SYNC: &str = "IS00112233445566778899aabbccdd0003";

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn rsa_a() -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture("rsa_a.pem")).unwrap()
}
pub fn rsa_b() -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture("rsa_b.pem")).unwrap()
}
pub fn ec_a() -> EncodingKey {
    EncodingKey::from_ec_pem(&fixture("ec_a.pem")).unwrap()
}

/// The public JWK of `key`, with `kid`.
pub fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(key, alg).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk
}

/// Provider A's key set: RSA `rsa-a` and P-256 `ec-a`.
pub fn jwks_a() -> Value {
    json!({"keys": [jwk(&rsa_a(), Algorithm::RS256, "rsa-a"), jwk(&ec_a(), Algorithm::ES256, "ec-a")]})
}

/// Claims a valid caller token carries.
pub fn claims(sub: &str) -> Value {
    let now = unix_now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "roles": ["agent"],
    })
}

/// A caller token signed with `key`.
pub fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A valid RS256 caller token for `sub` from provider A.
pub fn token_for(sub: &str) -> String {
    sign(Algorithm::RS256, &rsa_a(), Some("rsa-a"), &claims(sub))
}

/// A token with an arbitrary JOSE header, signed with `key` under `alg`.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Decodes a minted Twilio token after checking its HS256 signature with the test API secret.
pub fn decode_twilio(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWS: {token}");
    let key = jsonwebtoken::DecodingKey::from_secret(KEY_SECRET.as_bytes());
    let signed = format!("{}.{}", parts[0], parts[1]);
    assert!(
        jsonwebtoken::crypto::verify(parts[2], signed.as_bytes(), &key, Algorithm::HS256).unwrap(),
        "signature does not verify with the API key secret"
    );
    let segment = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (segment(parts[0]), segment(parts[1]))
}

/// The environment the standard configuration reads its secrets from.
pub fn test_env() -> HashMap<String, String> {
    HashMap::from([
        ("T_ACCOUNT_SID".into(), ACCOUNT_SID.into()),
        ("T_KEY_SID".into(), KEY_SID.into()),
        ("T_KEY_SECRET".into(), KEY_SECRET.into()),
        ("T_GATEWAY_SECRET".into(), GATEWAY_SECRET.into()),
        ("T_AUTH_TOKEN".into(), AUTH_TOKEN.into()),
        ("T_SHARED_KEY".into(), AUTH_TOKEN.into()),
    ])
}

/// How the standard `corp` authenticator gets its keys.
pub enum Keys<'a> {
    /// A JWKS file with provider A's keys.
    File,
    Url(&'a str),
}

/// The standard configuration: app `support` (jwt, provider A) and app `edge` (gateway).
pub fn standard_config(keys: Keys<'_>) -> (String, Option<tempfile::NamedTempFile>) {
    let (source, file) = match keys {
        Keys::File => {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), jwks_a().to_string()).unwrap();
            (
                format!("jwks_file = {:?}", file.path().display().to_string()),
                Some(file),
            )
        }
        Keys::Url(url) => (
            format!("jwks_url = {url:?}\njwks_refetch_cooldown = \"30s\""),
            None,
        ),
    };
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
default_app = "support"
max_body_bytes = 4096
# The security tests send hundreds of bad credentials from one address; the failure limit has
# its own test.
auth_failure_limit = "100000/min"

[log]
level = "debug"

[accounts.main]
account_sid = "env:T_ACCOUNT_SID"
auth_tokens = ["env:T_AUTH_TOKEN"]
webhook_shared_keys = {{ k1 = "env:T_SHARED_KEY" }}
[[accounts.main.signing_keys]]
sid = "env:T_KEY_SID"
secret = "env:T_KEY_SECRET"

[auth.corp]
kind = "jwt"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256", "ES256"]
leeway = "60s"
{source}

[auth.edge]
kind = "gateway"
identity_header = "X-Authenticated-User"
claim_headers = {{ roles = "X-Authenticated-Roles" }}
trusted_proxies = ["10.0.0.0/8"]
shared_secret_header = "X-Gateway-Secret"
shared_secret = "env:T_GATEWAY_SECRET"

[apps.support]
account = "main"
auth = "corp"
identity = "{{sub}}"
ttl = "1h"
max_ttl = "4h"
cors_origins = ["{ORIGIN}"]

[apps.support.grants.voice]
incoming = true
outgoing_application_sid = "{AP_SID}"
outgoing_params = {{ agent = "{{sub}}" }}
push_credentials = {{ ios = "{CR_IOS}" }}
require_claims = {{ roles = "agent" }}

[apps.support.grants.video]
rooms = ["support-*", "user-{{sub}}"]

[apps.support.grants.chat]
service_sid = "{IS_CHAT}"

[apps.support.grants.sync]
service_sid = "{IS_SYNC}"

[apps.edge]
account = "main"
auth = "edge"
identity = "{{sub}}"

[apps.edge.grants.video]
rooms = ["*"]
"#
    );
    (toml, file)
}

/// A running app on 127.0.0.1:0; stopped when dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _jwks_file: Option<tempfile::NamedTempFile>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    let (toml, file) = standard_config(Keys::File);
    spawn_with(&toml, file).await
}

pub async fn spawn_with(toml: &str, jwks_file: Option<tempfile::NamedTempFile>) -> TestApp {
    let settings = config::load(&Source::text(toml).with_env(Env::Fixed(test_env())))
        .unwrap_or_else(|e| panic!("{e}"));
    let runtime = Runtime::new(settings, Default::default(), None);
    runtime.start();
    let state = AppState::new(runtime);
    let router = http::router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let header_read_timeout = state.runtime().server.header_read_timeout;
    tokio::spawn(http::serve(
        listener,
        router,
        header_read_timeout,
        async move {
            let _ = stopped.await;
        },
    ));
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        state,
        stop: Some(stop),
        _jwks_file: jwks_file,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `POST path` with an optional bearer token and JSON body.
    pub async fn post(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// `POST /apps/support/token` as `sub`, expecting `status`; returns the JSON body.
    pub async fn mint_as(&self, sub: &str, body: Option<Value>, status: u16) -> Value {
        let response = self
            .post("/apps/support/token", Some(&token_for(sub)), body)
            .await;
        expect(response, status).await
    }
}

/// Asserts the status and returns the JSON body (Null when empty).
pub async fn expect(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    }
}

/// Asserts a problem response with `status` and `code`, and that no token came back.
pub async fn expect_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = expect(response, status).await;
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], status);
    assert!(body.get("token").is_none(), "a token was returned: {body}");
    assert!(
        !body.to_string().contains("eyJ"),
        "something token-like was returned: {body}"
    );
    body
}

/// What a [`JwksServer`] answers.
#[derive(Clone)]
pub enum JwksMode {
    Serve(Value),
    Status(u16),
    Body(&'static str, Vec<u8>),
    /// The document in 16 KiB chunks, without a `Content-Length`.
    Chunked(Value),
    Slow(Duration, Value),
    Redirect(String),
}

#[derive(Clone)]
struct JwksState {
    mode: Arc<Mutex<JwksMode>>,
    hits: Arc<AtomicUsize>,
}

/// A JWKS endpoint on 127.0.0.1:0 whose behaviour the test controls; counts its requests.
pub struct JwksServer {
    pub url: String,
    state: JwksState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn jwks_handler(State(state): State<JwksState>, _headers: HeaderMap) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let mode = state.mode.lock().unwrap().clone();
    match mode {
        JwksMode::Serve(doc) => axum::Json(doc).into_response(),
        JwksMode::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        JwksMode::Body(content_type, body) => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        JwksMode::Chunked(doc) => {
            let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> = doc
                .to_string()
                .into_bytes()
                .chunks(16 * 1024)
                .map(|chunk| Ok(chunk.to_vec()))
                .collect();
            let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        JwksMode::Slow(delay, doc) => {
            tokio::time::sleep(delay).await;
            axum::Json(doc).into_response()
        }
        JwksMode::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
    }
}

impl JwksServer {
    pub async fn start(mode: JwksMode) -> Self {
        let state = JwksState {
            mode: Arc::new(Mutex::new(mode)),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let router = Router::new()
            .route("/jwks.json", axum::routing::get(jwks_handler))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            url: format!("http://{addr}/jwks.json"),
            state,
            stop: Some(stop),
        }
    }

    pub fn set(&self, mode: JwksMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

/// Polls `condition` every 20 ms for up to `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}
