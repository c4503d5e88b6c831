//! SECURITY.md §A, rows 1–27: every kind of bad input the token endpoint must refuse, sent to the
//! running app over a real socket. The section comments name the row each group covers.
//!
//! Covered elsewhere:
//! - Row 26 (a burst from one identity gets 429 with `Retry-After`) is in `operations.rs`, with
//!   the per-address limit on failed authentications.
//! - Row 8's "at most one JWKS fetch per cooldown" is counted in `jwks.rs` against a real JWKS
//!   server; here the unknown-kid flood is only checked to be refused, and row 9's hostile kids
//!   are counted against one.
//! - Row 28 (slowloris) is in `limits.rs`; row 29 (webhook signatures) in `src/twilio/webhook.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokenmint::runtime::unix_now;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{HS_SECRET, config_file, serve, stop};
use crate::helpers::{
    self, AUDIENCE, GATEWAY_SECRET, ISSUER, JwksMode, JwksServer, Keys, ORIGIN, TestApp, claims,
    decode_twilio, ec_a, expect, expect_problem, fixture, jwk, jwks_a, rsa_a, rsa_b, sign,
    sign_raw, spawn_app, spawn_with, standard_config, token_for,
};

const TOKEN_PATH: &str = "/apps/support/token";
const EDGE_PATH: &str = "/apps/edge/token";
const AUTHORIZATION_LIMIT: usize = 8 * 1024;

// ---------------------------------------------------------------------------------------------
// Private helpers
// ---------------------------------------------------------------------------------------------

/// `POST /apps/support/token` with this exact `Authorization` value (any bytes, so non-ASCII and
/// oversized values reach the server as they are).
async fn post_with_authorization(app: &TestApp, authorization: &[u8]) -> reqwest::Response {
    app.client
        .post(app.url(TOKEN_PATH))
        .header(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(authorization).unwrap(),
        )
        .send()
        .await
        .unwrap()
}

/// Asserts a problem response and returns its headers; `case` is printed so a failure inside a
/// loop says which input it was.
async fn problem(
    response: reqwest::Response,
    status: u16,
    code: &str,
    case: &str,
) -> (HeaderMap, Value) {
    println!("case: {case}");
    let headers = response.headers().clone();
    let body = expect_problem(response, status, code).await;
    (headers, body)
}

fn www_authenticate(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// A 401 from the `jwt` app for a missing or bad credential: `unauthenticated` with the
/// challenge `Bearer error="invalid_token"`.
async fn expect_invalid_token(response: reqwest::Response, case: &str) {
    let (headers, _) = problem(response, 401, "unauthenticated", case).await;
    let challenge = www_authenticate(&headers)
        .unwrap_or_else(|| panic!("{case}: a 401 from a jwt app needs WWW-Authenticate"));
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
        "{case}: challenge {challenge:?}"
    );
}

/// Sends `token` as a bearer credential to the jwt app and expects it refused.
async fn refuses(app: &TestApp, token: &str, case: &str) {
    let value = format!("Bearer {token}");
    let response = post_with_authorization(app, value.as_bytes()).await;
    expect_invalid_token(response, case).await;
}

/// Sends `token` to the jwt app and expects a minted token back.
async fn accepts(app: &TestApp, token: &str, case: &str) -> Value {
    println!("case: {case}");
    let body = expect(app.post(TOKEN_PATH, Some(token), None).await, 200).await;
    assert!(
        body["token"].as_str().is_some_and(|t| t.starts_with("eyJ")),
        "{case}: {body}"
    );
    body
}

/// The process is still serving after the bad inputs (no panic took the handler down).
async fn still_serves(app: &TestApp) {
    accepts(app, &token_for("alice"), "a valid token after the bad ones").await;
}

/// The header every valid test token of provider A's RSA key carries.
fn rs256_header() -> Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-a"})
}

/// Signs arbitrary header and payload bytes (not necessarily JSON).
fn sign_bytes(header: &[u8], payload: &[u8], key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// A valid RS256 token for `alice` with `edit` applied to its claims.
fn rs256_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = claims("alice");
    edit(&mut claims);
    sign(Algorithm::RS256, &rsa_a(), Some("rsa-a"), &claims)
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

/// A P-256 key that is not provider A's.
fn ec_b() -> EncodingKey {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    EncodingKey::from_ec_der(pair.to_pkcs8v1().unwrap().as_ref())
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a raw `r || s` ECDSA signature.
fn ecdsa_der(raw: &[u8]) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let mut value: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        if value.first().is_none_or(|b| b & 0x80 != 0) {
            value.insert(0, 0);
        }
        let mut out = vec![0x02, value.len() as u8];
        out.extend(value);
        out
    };
    let (r, s) = raw.split_at(raw.len() / 2);
    let body = [integer(r), integer(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// The DER bytes inside a PEM file.
fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let b64: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(b64.trim()).unwrap()
}

/// The standard configuration with a different `max_body_bytes`.
async fn spawn_with_body_limit(limit: usize) -> TestApp {
    let (toml, file) = standard_config(Keys::File);
    assert!(toml.contains("max_body_bytes = 4096"));
    let toml = toml.replace(
        "max_body_bytes = 4096",
        &format!("max_body_bytes = {limit}"),
    );
    spawn_with(&toml, file).await
}

/// A TCP listener on 127.0.0.1:0 that counts connections and answers each with `body` as JSON
/// (a key set an attacker controls), so a service that followed a header to it would notice.
struct Canary {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Canary {
    async fn start(body: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends raw bytes to the app and returns the status code and the whole response text.
async fn raw_http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    (status, text)
}

/// A gateway-app request with these extra headers.
async fn edge_post(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.post(app.url(EDGE_PATH));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// A POST to the jwt app as alice with a raw body and content type.
async fn post_body(app: &TestApp, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url(TOKEN_PATH))
        .bearer_auth(token_for("alice"))
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Row 1: missing, non-bearer, empty and duplicated Authorization
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_authorization_is_refused_with_a_bearer_challenge() {
    let app = spawn_app().await;
    expect_invalid_token(app.post(TOKEN_PATH, None, None).await, "POST, no header").await;
    expect_invalid_token(app.get(TOKEN_PATH, None).await, "GET, no header").await;
    expect_invalid_token(app.get("/token", None).await, "default app, no header").await;
}

#[tokio::test]
async fn non_bearer_and_empty_bearer_credentials_are_refused() {
    let app = spawn_app().await;
    let cases: &[&[u8]] = &[
        b"Basic YWxpY2U6cGFzc3dvcmQ=",
        b"Digest username=\"alice\"",
        b"Token abc",
        b"Bearer",
        b"Bearer ",
        b"Bearer      ",
        b"Bearer\t",
        b"bearer",
        b"",
    ];
    for authorization in cases {
        let case = format!(
            "Authorization: {:?}",
            String::from_utf8_lossy(authorization)
        );
        let response = post_with_authorization(&app, authorization).await;
        expect_invalid_token(response, &case).await;
    }
    // A valid token under another scheme name is not a bearer credential.
    let value = format!("Basic {}", token_for("alice"));
    let response = post_with_authorization(&app, value.as_bytes()).await;
    expect_invalid_token(response, "valid JWT under the Basic scheme").await;
}

#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let app = spawn_app().await;
    let pairs = [
        (token_for("alice"), token_for("alice")),
        (token_for("alice"), token_for("mallory")),
        (token_for("alice"), "garbage".to_owned()),
    ];
    for (first, second) in pairs {
        let mut headers = HeaderMap::new();
        headers.append(
            header::AUTHORIZATION,
            format!("Bearer {first}").parse().unwrap(),
        );
        headers.append(
            header::AUTHORIZATION,
            format!("Bearer {second}").parse().unwrap(),
        );
        let response = app
            .client
            .post(app.url(TOKEN_PATH))
            .headers(headers)
            .send()
            .await
            .unwrap();
        problem(
            response,
            400,
            "invalid_request",
            "two Authorization headers",
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Row 2: malformed compact serialisation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tokens_with_the_wrong_number_of_segments_are_refused() {
    let app = spawn_app().await;
    let good = token_for("alice");
    let [h, p, s] = <[String; 3]>::try_from(segments(&good)).unwrap();
    let cases = [
        ("1 segment", h.clone()),
        ("1 segment, random", "abcdef".to_owned()),
        ("2 segments", format!("{h}.{p}")),
        ("4 segments", format!("{h}.{p}.{s}.{s}")),
        ("4 segments, trailing dot", format!("{h}.{p}.{s}.")),
        ("5 segments (JWE shape)", format!("{h}.{p}.{s}.{p}.{s}")),
        ("only dots", "....".to_owned()),
        ("empty segments", "..".to_owned()),
        ("empty payload", format!("{h}..{s}")),
        ("empty header", format!(".{p}.{s}")),
        ("leading dot", format!(".{h}.{p}.{s}")),
    ];
    for (case, token) in cases {
        refuses(&app, &token, case).await;
    }
    still_serves(&app).await;
}

#[tokio::test]
async fn padded_or_standard_base64_segments_are_refused() {
    let app = spawn_app().await;
    let good = token_for("alice");
    let decoded: Vec<Vec<u8>> = segments(&good)
        .iter()
        .map(|s| URL_SAFE_NO_PAD.decode(s).unwrap())
        .collect();
    let reencode = |engine: &dyn Fn(&[u8]) -> String| {
        decoded
            .iter()
            .map(|bytes| engine(bytes))
            .collect::<Vec<_>>()
            .join(".")
    };
    let standard = reencode(&|b| STANDARD.encode(b));
    let url_padded = reencode(&|b| URL_SAFE.encode(b));
    // The 256-byte RSA signature needs padding in both forms, so these really differ.
    assert_ne!(standard, good);
    assert_ne!(url_padded, good);
    refuses(&app, &standard, "standard alphabet with padding").await;
    refuses(&app, &url_padded, "URL-safe alphabet with padding").await;
    refuses(&app, &format!("{good}="), "trailing '='").await;
    refuses(&app, &format!("{good}=="), "trailing '=='").await;
    let [h, p, s] = <[String; 3]>::try_from(segments(&good)).unwrap();
    refuses(&app, &format!("{h}=.{p}.{s}"), "padding on the header").await;
    refuses(&app, &format!("{h}.{p}.{s} extra"), "junk after a space").await;
    refuses(&app, &format!("{h}.{p}.{s}%"), "a percent sign").await;
    still_serves(&app).await;
}

#[tokio::test]
async fn non_ascii_in_the_token_is_refused_without_a_panic() {
    let app = spawn_app().await;
    let good = token_for("alice");
    let [h, p, s] = <[String; 3]>::try_from(segments(&good)).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "UTF-8 in the signature",
            format!("Bearer {h}.{p}.{s}é").into_bytes(),
        ),
        (
            "UTF-8 in the header",
            format!("Bearer {h}ü.{p}.{s}").into_bytes(),
        ),
        ("UTF-8 token", "Bearer ключ.ключ.ключ".as_bytes().to_vec()),
        (
            "Latin-1 byte",
            [b"Bearer ".as_slice(), &[0xe9], b".a.b"].concat(),
        ),
        ("lone 0xff", [b"Bearer ".as_slice(), &[0xff, 0xfe]].concat()),
    ];
    for (case, authorization) in cases {
        let response = post_with_authorization(&app, &authorization).await;
        expect_invalid_token(response, case).await;
    }
    // Non-ASCII inside the decoded header (a unicode kid) is valid base64 and still refused.
    let token = sign_raw(
        &json!({"alg": "RS256", "kid": "rsa-a\u{2028}ключ"}),
        &claims("alice"),
        &rsa_a(),
        Algorithm::RS256,
    );
    refuses(&app, &token, "unicode kid").await;
    still_serves(&app).await;
}

#[tokio::test]
async fn a_jose_header_that_is_not_a_json_object_is_refused() {
    let app = spawn_app().await;
    let payload = serde_json::to_vec(&claims("alice")).unwrap();
    let headers: &[(&str, &[u8])] = &[
        ("array", br#"[{"alg":"RS256","kid":"rsa-a"}]"#),
        ("string", br#""RS256""#),
        ("number", b"256"),
        ("null", b"null"),
        ("empty", b""),
        ("truncated JSON", br#"{"alg":"RS256","kid":"rsa-a""#),
        ("trailing garbage", br#"{"alg":"RS256","kid":"rsa-a"} x"#),
        ("invalid UTF-8", b"{\"alg\":\"RS256\",\"kid\":\"\xff\"}"),
        ("not JSON", b"alg=RS256"),
    ];
    for (case, header) in headers {
        let token = sign_bytes(header, &payload, &rsa_a(), Algorithm::RS256);
        refuses(&app, &token, case).await;
    }
    still_serves(&app).await;
}

#[tokio::test]
async fn a_correctly_signed_payload_that_is_not_a_json_object_is_refused() {
    let app = spawn_app().await;
    let header = serde_json::to_vec(&rs256_header()).unwrap();
    let payloads: &[(&str, &[u8])] = &[
        ("array", br#"[{"sub":"alice"}]"#),
        ("string", br#""alice""#),
        ("null", b"null"),
        ("truncated", br#"{"sub":"alice""#),
        ("invalid UTF-8", b"{\"sub\":\"\xff\"}"),
        ("empty", b""),
    ];
    for (case, payload) in payloads {
        let token = sign_bytes(&header, payload, &rsa_a(), Algorithm::RS256);
        refuses(&app, &token, case).await;
    }
    still_serves(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Row 3: alg none
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_in_any_casing_is_refused() {
    let app = spawn_app().await;
    let claims = claims("alice");
    let real_signature = segments(&token_for("alice"))[2].clone();
    for alg in ["none", "None", "NONE", "nOnE", "none ", " none"] {
        for kid in [None, Some("rsa-a")] {
            let mut header = json!({"alg": alg, "typ": "JWT"});
            if let Some(kid) = kid {
                header["kid"] = json!(kid);
            }
            let unsigned = format!("{}.{}", helpers::b64(&header), helpers::b64(&claims));
            for signature in ["", "AAAA", real_signature.as_str()] {
                let case = format!("alg {alg:?}, kid {kid:?}, signature {:.8}", signature);
                refuses(&app, &format!("{unsigned}.{signature}"), &case).await;
            }
        }
    }
}

#[tokio::test]
async fn a_missing_empty_or_non_string_alg_is_refused() {
    let app = spawn_app().await;
    let signature = segments(&token_for("alice"))[2].clone();
    let headers = [
        json!({"kid": "rsa-a"}),
        json!({"alg": "", "kid": "rsa-a"}),
        json!({"alg": null, "kid": "rsa-a"}),
        json!({"alg": 256, "kid": "rsa-a"}),
        json!({"alg": ["RS256"], "kid": "rsa-a"}),
        json!({"alg": {"name": "RS256"}, "kid": "rsa-a"}),
    ];
    for header in headers {
        let unsigned = format!(
            "{}.{}",
            helpers::b64(&header),
            helpers::b64(&claims("alice"))
        );
        refuses(
            &app,
            &format!("{unsigned}.{signature}"),
            &header.to_string(),
        )
        .await;
        refuses(
            &app,
            &format!("{unsigned}."),
            &format!("{header}, empty sig"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_allowed_alg_with_an_empty_signature_is_refused() {
    let app = spawn_app().await;
    let good = token_for("alice");
    let [h, p, _] = <[String; 3]>::try_from(segments(&good)).unwrap();
    refuses(&app, &format!("{h}.{p}."), "RS256 with empty signature").await;
    let es = sign(Algorithm::ES256, &ec_a(), Some("ec-a"), &claims("alice"));
    let [h, p, _] = <[String; 3]>::try_from(segments(&es)).unwrap();
    refuses(&app, &format!("{h}.{p}."), "ES256 with empty signature").await;
}

// ---------------------------------------------------------------------------------------------
// Row 4: key confusion (public key as an HMAC secret)
// ---------------------------------------------------------------------------------------------

/// End to end, these tokens meet the first of two defences: a provider whose keys are public
/// allows no HMAC algorithm (configuration refuses one, `key_sets_never_verify_hmac…` in the
/// config tests). Behind it, a key of one family never verifies another's algorithm
/// (`a_token_of_another_key_family_finds_no_key` in `auth::jwt`).
#[tokio::test]
async fn hs256_macd_with_the_providers_public_key_is_refused() {
    let app = spawn_app().await;
    let pem = fixture("rsa_a.pub.pem");
    let pem_text = String::from_utf8(pem.clone()).unwrap();
    let der = pem_to_der(&pem);
    let rsa_jwk = jwk(&rsa_a(), Algorithm::RS256, "rsa-a");
    let ec_jwk = jwk(&ec_a(), Algorithm::ES256, "ec-a");
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PEM", pem.clone()),
        (
            "PEM without trailing newline",
            pem_text.trim_end().as_bytes().to_vec(),
        ),
        ("PEM with CRLF", pem_text.replace('\n', "\r\n").into_bytes()),
        ("DER (SubjectPublicKeyInfo)", der),
        ("RSA JWK JSON", serde_json::to_vec(&rsa_jwk).unwrap()),
        ("EC JWK JSON", serde_json::to_vec(&ec_jwk).unwrap()),
        (
            "JWKS document",
            serde_json::to_vec(&helpers::jwks_a()).unwrap(),
        ),
        (
            "RSA modulus bytes",
            URL_SAFE_NO_PAD
                .decode(rsa_jwk["n"].as_str().unwrap())
                .unwrap(),
        ),
        (
            "RSA modulus text",
            rsa_jwk["n"].as_str().unwrap().as_bytes().to_vec(),
        ),
        ("empty secret", Vec::new()),
    ];
    for (what, secret) in &secrets {
        let key = EncodingKey::from_secret(secret);
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for kid in [None, Some("rsa-a"), Some("ec-a")] {
                let mut header = json!({"alg": format!("{alg:?}"), "typ": "JWT"});
                if let Some(kid) = kid {
                    header["kid"] = json!(kid);
                }
                let token = sign_raw(&header, &claims("alice"), &key, alg);
                refuses(&app, &token, &format!("{alg:?} with {what}, kid {kid:?}")).await;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row 5: algorithms off the allow-list
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_signature_with_an_algorithm_off_the_allow_list_is_refused() {
    let app = spawn_app().await;
    // The same key and claims under RS256 are accepted, so only the algorithm is wrong below.
    accepts(&app, &token_for("alice"), "RS256 control").await;
    for alg in [
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        for kid in [Some("rsa-a"), None] {
            let token = sign(alg, &rsa_a(), kid, &claims("alice"));
            refuses(&app, &token, &format!("{alg:?}, kid {kid:?}")).await;
        }
    }
    let secret = EncodingKey::from_secret(b"an-hmac-secret-of-at-least-32-bytes!");
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        refuses(
            &app,
            &sign(alg, &secret, None, &claims("alice")),
            &format!("{alg:?}"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_algorithm_off_the_allow_list_is_refused_even_when_the_jwk_names_no_alg() {
    // Many providers publish keys without `alg`; the allow-list alone must then keep RS384/PS256
    // out, since the key itself would verify them.
    let (toml, file) = standard_config(Keys::File);
    let file = file.unwrap();
    let mut jwks = helpers::jwks_a();
    for key in jwks["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("alg");
    }
    std::fs::write(file.path(), jwks.to_string()).unwrap();
    let app = spawn_with(&toml, Some(file)).await;
    accepts(
        &app,
        &token_for("alice"),
        "RS256 control with an unpinned key",
    )
    .await;
    for alg in [
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        let token = sign(alg, &rsa_a(), Some("rsa-a"), &claims("alice"));
        refuses(&app, &token, &format!("{alg:?} with an unpinned key")).await;
    }
}

#[tokio::test]
async fn algorithm_names_are_case_sensitive() {
    let app = spawn_app().await;
    for alg in ["rs256", "Rs256", "RS256 ", "RSA256", "RS-256"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "rsa-a"});
        let token = sign_raw(&header, &claims("alice"), &rsa_a(), Algorithm::RS256);
        refuses(&app, &token, alg).await;
    }
}

#[tokio::test]
async fn a_token_whose_header_alg_differs_from_how_it_was_signed_is_refused() {
    let app = spawn_app().await;
    // Signed ES256 with the EC key, but the header claims RS256 with the EC key's kid and vice
    // versa: the algorithm must fit the key.
    let es_as_rs = sign_raw(
        &json!({"alg": "RS256", "kid": "ec-a"}),
        &claims("alice"),
        &ec_a(),
        Algorithm::ES256,
    );
    refuses(&app, &es_as_rs, "ES256 signature labelled RS256, kid ec-a").await;
    let rs_as_es = sign_raw(
        &json!({"alg": "ES256", "kid": "rsa-a"}),
        &claims("alice"),
        &rsa_a(),
        Algorithm::RS256,
    );
    refuses(&app, &rs_as_es, "RS256 signature labelled ES256, kid rsa-a").await;
}

// ---------------------------------------------------------------------------------------------
// Row 6: stripped, spliced and tampered signatures
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_stripped_or_spliced_signature_is_refused() {
    let app = spawn_app().await;
    let alice = segments(&token_for("alice"));
    let mallory = segments(&token_for("mallory"));
    refuses(
        &app,
        &format!("{}.{}.", alice[0], alice[1]),
        "stripped, trailing dot",
    )
    .await;
    refuses(
        &app,
        &format!("{}.{}", alice[0], alice[1]),
        "stripped, no dot",
    )
    .await;
    refuses(
        &app,
        &format!("{}.{}.{}", alice[0], alice[1], mallory[2]),
        "alice's payload with mallory's signature",
    )
    .await;
    refuses(
        &app,
        &format!("{}.{}.{}", alice[0], mallory[1], alice[2]),
        "mallory's payload with alice's signature",
    )
    .await;
    // A signature from a token with a different header (no kid) spliced on.
    let no_kid = segments(&sign(Algorithm::RS256, &rsa_a(), None, &claims("alice")));
    refuses(
        &app,
        &format!("{}.{}.{}", alice[0], alice[1], no_kid[2]),
        "signature over another header",
    )
    .await;
}

#[tokio::test]
async fn one_flipped_bit_in_the_payload_or_signature_is_refused() {
    let app = spawn_app().await;
    for token in [
        token_for("alice"),
        sign(Algorithm::ES256, &ec_a(), Some("ec-a"), &claims("alice")),
    ] {
        accepts(&app, &token, "untampered control").await;
        let [h, p, s] = <[String; 3]>::try_from(segments(&token)).unwrap();

        // "alice" → "alicd": the payload is still valid JSON, only one bit differs.
        let mut payload = URL_SAFE_NO_PAD.decode(&p).unwrap();
        let at = payload.windows(5).position(|w| w == b"alice").unwrap() + 4;
        payload[at] ^= 0x01;
        let flipped = URL_SAFE_NO_PAD.encode(&payload);
        refuses(&app, &format!("{h}.{flipped}.{s}"), "payload bit flipped").await;

        // A bit flipped in `exp` (pushing it later) as well.
        let mut payload = URL_SAFE_NO_PAD.decode(&p).unwrap();
        let digits = payload.windows(6).position(|w| w == b"\"exp\":").unwrap() + 6;
        let last = digits
            + payload[digits..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
            - 1;
        payload[last] ^= 0x01; // the last digit changes by one and stays a digit
        let flipped = URL_SAFE_NO_PAD.encode(&payload);
        refuses(&app, &format!("{h}.{flipped}.{s}"), "exp bit flipped").await;

        for index in [0, 10] {
            let mut signature = URL_SAFE_NO_PAD.decode(&s).unwrap();
            signature[index] ^= 0x80;
            let flipped = URL_SAFE_NO_PAD.encode(&signature);
            refuses(&app, &format!("{h}.{p}.{flipped}"), "signature bit flipped").await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row 7: malformed ECDSA signatures
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn es256_signatures_of_the_wrong_length_or_zero_are_refused() {
    let app = spawn_app().await;
    let good = sign(Algorithm::ES256, &ec_a(), Some("ec-a"), &claims("alice"));
    accepts(&app, &good, "valid ES256 control").await;
    let [h, p, s] = <[String; 3]>::try_from(segments(&good)).unwrap();
    let raw = URL_SAFE_NO_PAD.decode(&s).unwrap();
    assert_eq!(raw.len(), 64);
    let (r, s_half) = raw.split_at(32);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("r = s = 0", vec![0; 64]),
        ("r = 0", [vec![0; 32], s_half.to_vec()].concat()),
        ("s = 0", [r.to_vec(), vec![0; 32]].concat()),
        ("63 bytes", raw[..63].to_vec()),
        ("65 bytes", [raw.clone(), vec![0]].concat()),
        ("32 bytes", raw[..32].to_vec()),
        ("1 byte", vec![0]),
        ("128 bytes", [raw.clone(), raw.clone()].concat()),
        ("DER-encoded instead of r||s", ecdsa_der(&raw)),
        ("all 0xff", vec![0xff; 64]),
    ];
    for (case, signature) in cases {
        let token = format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(signature));
        refuses(&app, &token, case).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Rows 8 and 9: hostile kid values
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_random_kid_on_every_request_is_refused() {
    let app = spawn_app().await;
    for i in 0..25 {
        let kid = uuid::Uuid::new_v4().to_string();
        let key = if i % 2 == 0 { rsa_a() } else { rsa_b() };
        let token = sign(Algorithm::RS256, &key, Some(&kid), &claims("alice"));
        refuses(&app, &token, &format!("random kid {kid}")).await;
    }
    // The flood did not disturb callers with a known kid.
    still_serves(&app).await;
}

/// `kid` values an attacker might try: paths, injections, near misses, huge ones, non-strings.
fn hostile_kids() -> Vec<Value> {
    vec![
        json!("../../../../../../etc/passwd"),
        json!("/dev/null"),
        json!("rsa-a/../rsa-a"),
        json!("..\\..\\windows\\win.ini"),
        json!("file:///etc/passwd"),
        json!("' OR '1'='1"),
        json!("rsa-a' --"),
        json!("rsa-a\"; DROP TABLE keys; --"),
        json!("rsa-a\u{0}"),
        json!("RSA-A"),
        json!(" rsa-a"),
        json!(""),
        json!("k".repeat(300)),
        json!("k".repeat(1000)),
        json!("k".repeat(10 * 1024)),
        json!(1),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(true),
        json!(null),
        json!({"kid": "rsa-a"}),
        json!(["rsa-a"]),
    ]
}

/// Sends a token of provider A's real key under each hostile `kid`, so only the kid is wrong.
async fn refuses_hostile_kids(app: &TestApp) {
    for kid in hostile_kids() {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
        let token = sign_raw(&header, &claims("alice"), &rsa_a(), Algorithm::RS256);
        let mut case = kid.to_string();
        case.truncate(60);
        refuses(app, &token, &case).await;
    }
}

#[tokio::test]
async fn hostile_kid_values_are_refused() {
    let app = spawn_app().await;
    refuses_hostile_kids(&app).await;
    // The HMAC-with-/dev/null trick: HS256 with an empty key and a file-path kid.
    let token = sign_raw(
        &json!({"alg": "HS256", "kid": "/dev/null"}),
        &claims("alice"),
        &EncodingKey::from_secret(b""),
        Algorithm::HS256,
    );
    refuses(&app, &token, "HS256, empty key, kid /dev/null").await;
    still_serves(&app).await;
}

#[tokio::test]
async fn hostile_kid_values_cost_a_remote_key_set_at_most_one_fetch() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let (toml, _) = standard_config(Keys::Url(&server.url));
    let app = spawn_with(&toml, None).await;
    still_serves(&app).await;
    let hits = server.hits();
    // Unknown kids may refetch once per cooldown (30 s here), however many arrive; the rest are
    // answered from the cache, without waiting on the provider.
    refuses_hostile_kids(&app).await;
    assert!(
        server.hits() <= hits + 1,
        "{} fetches",
        server.hits() - hits
    );
    still_serves(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Row 10: jku / x5u / jwk / x5c are never followed or trusted
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn key_location_headers_are_never_followed_or_trusted() {
    let app = spawn_app().await;
    // The attacker's key set, served by the canary: rsa_b under kids "attacker" and "rsa-a".
    let attacker_jwks = json!({"keys": [
        jwk(&rsa_b(), Algorithm::RS256, "attacker"),
        jwk(&rsa_b(), Algorithm::RS256, "rsa-a"),
    ]});
    let canary = Canary::start(attacker_jwks.to_string()).await;
    let http = format!("http://{}/jwks.json", canary.addr);
    let https = format!("https://{}/jwks.json", canary.addr);
    let cert = format!("http://{}/cert.pem", canary.addr);
    let b_jwk = jwk(&rsa_b(), Algorithm::RS256, "attacker");
    let b_jwk_as_a = jwk(&rsa_b(), Algorithm::RS256, "rsa-a");
    let fake_cert = STANDARD.encode(pem_to_der(&fixture("rsa_a.pub.pem")));

    let headers = [
        json!({"alg": "RS256", "kid": "attacker", "jku": http}),
        json!({"alg": "RS256", "kid": "rsa-a", "jku": http}),
        json!({"alg": "RS256", "jku": http}),
        json!({"alg": "RS256", "kid": "attacker", "jku": https}),
        json!({"alg": "RS256", "kid": "attacker", "x5u": cert}),
        json!({"alg": "RS256", "kid": "rsa-a", "x5u": cert}),
        json!({"alg": "RS256", "jwk": b_jwk}),
        json!({"alg": "RS256", "kid": "attacker", "jwk": b_jwk}),
        json!({"alg": "RS256", "kid": "rsa-a", "jwk": b_jwk_as_a}),
        json!({"alg": "RS256", "kid": "attacker", "x5c": [fake_cert]}),
        json!({"alg": "RS256", "kid": "rsa-a", "x5c": [fake_cert], "x5u": cert}),
        json!({"alg": "RS256", "kid": "attacker", "jwk": {"kty": "RSA", "x5u": cert}, "jku": http}),
    ];
    for header in &headers {
        // Signed by the attacker (provider B's key), which the headers try to vouch for.
        let token = sign_raw(header, &claims("alice"), &rsa_b(), Algorithm::RS256);
        let mut case = header.to_string();
        case.truncate(100);
        refuses(&app, &token, &case).await;
    }
    // An embedded EC key the attacker signed with.
    let ec_b = ec_b();
    let token = sign_raw(
        &json!({"alg": "ES256", "kid": "attacker", "jku": http, "x5u": cert}),
        &claims("alice"),
        &ec_b,
        Algorithm::ES256,
    );
    refuses(&app, &token, "ES256 by another key, jku + x5u").await;

    still_serves(&app).await;
    // Give anything the service might have started in the background a moment to connect; this
    // is not a timing assertion, the count below must be zero however long we wait.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        canary.connections(),
        0,
        "the service connected to a URL named in a token header"
    );
}

// ---------------------------------------------------------------------------------------------
// Row 11: crit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_crit_entry_is_refused() {
    let app = spawn_app().await;
    let headers = [
        json!({"alg": "RS256", "kid": "rsa-a", "crit": ["urn:example:unknown"], "urn:example:unknown": true}),
        json!({"alg": "RS256", "kid": "rsa-a", "crit": ["exp"], "exp": 1}),
        json!({"alg": "RS256", "kid": "rsa-a", "crit": ["b64"], "b64": false}),
        json!({"alg": "RS256", "kid": "rsa-a", "crit": ["urn:example:missing"]}),
        json!({"alg": "RS256", "kid": "rsa-a", "crit": []}),
        json!({"alg": "RS256", "kid": "rsa-a", "crit": "urn:example:unknown"}),
        json!({"alg": "RS256", "kid": "rsa-a", "crit": null}),
    ];
    for header in headers {
        let token = sign_raw(&header, &claims("alice"), &rsa_a(), Algorithm::RS256);
        refuses(&app, &token, &header.to_string()).await;
    }
    still_serves(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Beside row 11: `typ`, which jsonwebtoken never checks (SECURITY.md): a JWT or an access token
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_typed_as_something_other_than_a_jwt_or_access_token_is_refused() {
    let app = spawn_app().await;
    for typ in [
        json!("logout+jwt"),
        json!("secevent+jwt"),
        json!("dpop+jwt"),
        json!("application/logout+jwt"),
        json!(""),
        json!(null),
        json!(["JWT"]),
    ] {
        let header = json!({"alg": "RS256", "kid": "rsa-a", "typ": typ});
        let token = sign_raw(&header, &claims("alice"), &rsa_a(), Algorithm::RS256);
        refuses(&app, &token, &header.to_string()).await;
    }
    for typ in [
        "JWT",
        "jwt",
        "at+jwt",
        "application/at+jwt",
        "Application/JWT",
    ] {
        let header = json!({"alg": "RS256", "kid": "rsa-a", "typ": typ});
        let token = sign_raw(&header, &claims("alice"), &rsa_a(), Algorithm::RS256);
        accepts(&app, &token, &header.to_string()).await;
    }
    let untyped = json!({"alg": "RS256", "kid": "rsa-a"});
    let token = sign_raw(&untyped, &claims("alice"), &rsa_a(), Algorithm::RS256);
    accepts(&app, &token, "no typ").await;
}

// ---------------------------------------------------------------------------------------------
// Row 12: exp
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn exp_just_past_the_leeway_is_refused() {
    let app = spawn_app().await;
    let now = unix_now() as i64;
    // Expired 61 s ago: outside the 60 s leeway however the clock ticks during the request.
    let token = rs256_with(|c| {
        c["exp"] = json!(now - 61);
        c["iat"] = json!(now - 400);
        c["nbf"] = json!(now - 400);
    });
    refuses(&app, &token, "exp = now - 61").await;
    let token = rs256_with(|c| {
        c["exp"] = json!(now - 3600);
        c["iat"] = json!(now - 7200);
        c["nbf"] = json!(now - 7200);
    });
    refuses(&app, &token, "exp an hour ago").await;
}

#[tokio::test]
async fn exp_just_inside_the_leeway_is_accepted() {
    let app = spawn_app().await;
    let now = unix_now() as i64;
    // Expired 40 s ago: inside the 60 s leeway with 20 s to spare for a slow test machine.
    let token = rs256_with(|c| {
        c["exp"] = json!(now - 40);
        c["iat"] = json!(now - 400);
        c["nbf"] = json!(now - 400);
    });
    accepts(&app, &token, "exp = now - 40").await;
}

#[tokio::test]
async fn a_missing_or_malformed_exp_is_refused() {
    let app = spawn_app().await;
    let cases = [
        ("missing", None),
        (
            "string in the future",
            Some(json!((unix_now() + 300).to_string())),
        ),
        ("string in the past", Some(json!("1"))),
        ("non-numeric string", Some(json!("tomorrow"))),
        ("null", Some(json!(null))),
        ("negative", Some(json!(-1))),
        ("very negative", Some(json!(i64::MIN))),
        ("u64::MAX", Some(json!(u64::MAX))),
        ("2^53", Some(json!(9_007_199_254_740_992_u64))),
        ("1e15", Some(json!(1e15))),
        ("the year 10000", Some(json!(253_402_300_800_u64))),
        ("1e300", Some(json!(1e300))),
        ("bool", Some(json!(true))),
        ("array", Some(json!([unix_now() + 300]))),
        ("object", Some(json!({"value": unix_now() + 300}))),
    ];
    for (case, exp) in cases {
        let token = rs256_with(|c| match exp {
            None => {
                c.as_object_mut().unwrap().remove("exp");
            }
            Some(exp) => c["exp"] = exp,
        });
        refuses(&app, &token, case).await;
    }
    // A number too large for an f64, as raw JSON text.
    let now = unix_now();
    let payload = format!(
        r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"alice","iat":{now},"nbf":{now},"exp":1e400}}"#
    );
    let header = serde_json::to_vec(&rs256_header()).unwrap();
    let token = sign_bytes(&header, payload.as_bytes(), &rsa_a(), Algorithm::RS256);
    refuses(&app, &token, "exp = 1e400").await;
}

// ---------------------------------------------------------------------------------------------
// Row 13: nbf / iat in the future
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn nbf_or_iat_in_the_future_beyond_the_leeway_is_refused() {
    let app = spawn_app().await;
    let now = unix_now() as i64;
    let cases: [(&str, &str, Value); 5] = [
        ("nbf beyond the leeway", "nbf", json!(now + 120)),
        ("nbf far in the future", "nbf", json!(now + 86_400)),
        ("iat beyond the leeway", "iat", json!(now + 120)),
        ("iat far in the future", "iat", json!(now + 86_400)),
        ("nbf as a string", "nbf", json!((now + 86_400).to_string())),
    ];
    for (case, claim, value) in cases {
        let token = rs256_with(|c| {
            c[claim] = value;
            c["exp"] = json!(now + 172_800);
        });
        refuses(&app, &token, case).await;
    }
}

#[tokio::test]
async fn nbf_and_iat_within_the_leeway_are_accepted() {
    let app = spawn_app().await;
    let now = unix_now() as i64;
    let token = rs256_with(|c| {
        c["nbf"] = json!(now + 30);
        c["iat"] = json!(now + 30);
    });
    accepts(&app, &token, "nbf = iat = now + 30").await;
}

// ---------------------------------------------------------------------------------------------
// Row 14: iss
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_or_near_miss_issuer_is_refused() {
    let app = spawn_app().await;
    assert_eq!(ISSUER, "https://idp.example.com/");
    let cases = [
        ("missing", None),
        ("no trailing slash", Some(json!("https://idp.example.com"))),
        (
            "double trailing slash",
            Some(json!("https://idp.example.com//")),
        ),
        ("http scheme", Some(json!("http://idp.example.com/"))),
        ("upper-case", Some(json!("HTTPS://IDP.EXAMPLE.COM/"))),
        ("upper-case host", Some(json!("https://IDP.example.com/"))),
        ("explicit port", Some(json!("https://idp.example.com:443/"))),
        ("leading space", Some(json!(" https://idp.example.com/"))),
        ("subdomain", Some(json!("https://evil.idp.example.com/"))),
        ("empty", Some(json!(""))),
        ("null", Some(json!(null))),
        ("array", Some(json!([ISSUER]))),
    ];
    for (case, iss) in cases {
        let token = rs256_with(|c| match iss {
            None => {
                c.as_object_mut().unwrap().remove("iss");
            }
            Some(iss) => c["iss"] = iss,
        });
        refuses(&app, &token, case).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Row 15: aud
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_or_foreign_audience_is_refused() {
    let app = spawn_app().await;
    let cases = [
        ("missing", None),
        ("another audience", Some(json!("billing-web"))),
        ("array without ours", Some(json!(["billing-web", "admin"]))),
        ("empty array", Some(json!([]))),
        ("upper-case", Some(json!("SUPPORT-WEB"))),
        ("trailing space", Some(json!("support-web "))),
        ("prefix", Some(json!("support"))),
        ("empty", Some(json!(""))),
        ("null", Some(json!(null))),
        ("number", Some(json!(1))),
        ("object", Some(json!({"aud": AUDIENCE}))),
        ("nested array", Some(json!([[AUDIENCE]]))),
    ];
    for (case, aud) in cases {
        let token = rs256_with(|c| match aud {
            None => {
                c.as_object_mut().unwrap().remove("aud");
            }
            Some(aud) => c["aud"] = aud,
        });
        refuses(&app, &token, case).await;
    }
}

#[tokio::test]
async fn an_audience_array_containing_ours_is_accepted() {
    let app = spawn_app().await;
    let token = rs256_with(|c| c["aud"] = json!(["billing-web", AUDIENCE]));
    accepts(&app, &token, "aud array with ours").await;
}

// ---------------------------------------------------------------------------------------------
// Row 16: sub
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_empty_or_non_string_subject_is_refused() {
    let app = spawn_app().await;
    let cases = [
        ("missing", None),
        ("empty", Some(json!(""))),
        ("number", Some(json!(42))),
        ("null", Some(json!(null))),
        ("bool", Some(json!(true))),
        ("array", Some(json!(["alice"]))),
        ("object", Some(json!({"id": "alice"}))),
    ];
    for (case, sub) in cases {
        let token = rs256_with(|c| match sub {
            None => {
                c.as_object_mut().unwrap().remove("sub");
            }
            Some(sub) => c["sub"] = sub,
        });
        refuses(&app, &token, case).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Row 17: another provider's key
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_signed_by_another_providers_key_claiming_our_issuer_is_refused() {
    let app = spawn_app().await;
    for kid in [Some("rsa-a"), None, Some("rsa-b")] {
        let token = sign(Algorithm::RS256, &rsa_b(), kid, &claims("alice"));
        refuses(&app, &token, &format!("RS256 by key B, kid {kid:?}")).await;
    }
    let ec_b = ec_b();
    for kid in [Some("ec-a"), None] {
        let token = sign(Algorithm::ES256, &ec_b, kid, &claims("alice"));
        refuses(
            &app,
            &token,
            &format!("ES256 by another EC key, kid {kid:?}"),
        )
        .await;
    }
}

/// Provider B configured beside A: its own authenticator, key set and app.
const PARTNER_ISSUER: &str = "https://partner.example.org/";

#[tokio::test]
async fn a_key_another_configured_provider_trusts_does_not_verify_for_ours() {
    let (toml, file) = standard_config(Keys::File);
    let partner_keys = tempfile::NamedTempFile::new().unwrap();
    let jwks_b = json!({"keys": [jwk(&rsa_b(), Algorithm::RS256, "rsa-b")]});
    std::fs::write(partner_keys.path(), jwks_b.to_string()).unwrap();
    let toml = format!(
        "{toml}
[auth.partner]
kind = \"jwt\"
issuer = \"{PARTNER_ISSUER}\"
audiences = [\"{AUDIENCE}\"]
algorithms = [\"RS256\"]
jwks_file = {:?}

[apps.partner]
account = \"main\"
auth = \"partner\"
identity = \"{{sub}}\"

[apps.partner.grants.video]
rooms = [\"*\"]
",
        partner_keys.path().display().to_string()
    );
    let app = spawn_with(&toml, file).await;
    let mut partner_claims = claims("alice");
    partner_claims["iss"] = json!(PARTNER_ISSUER);
    let post = |path: &'static str, token: String| {
        let request = app.client.post(app.url(path)).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };

    // Each provider's own tokens work on its own app.
    let ours = sign(Algorithm::RS256, &rsa_a(), Some("rsa-a"), &claims("alice"));
    expect(post(TOKEN_PATH, ours).await, 200).await;
    let theirs = sign(Algorithm::RS256, &rsa_b(), Some("rsa-b"), &partner_claims);
    expect(post("/apps/partner/token", theirs.clone()).await, 200).await;

    // B's key claiming A's issuer, with B's kid, A's or none: refused by either app.
    for kid in [Some("rsa-b"), Some("rsa-a"), None] {
        let forged = sign(Algorithm::RS256, &rsa_b(), kid, &claims("alice"));
        let case = format!("B's key as A, kid {kid:?}");
        expect_invalid_token(post(TOKEN_PATH, forged.clone()).await, &case).await;
        expect_invalid_token(post("/apps/partner/token", forged).await, &case).await;
    }
    // B's genuine token on A's app.
    expect_invalid_token(post(TOKEN_PATH, theirs).await, "B's token on A's app").await;
}

// ---------------------------------------------------------------------------------------------
// Row 18: oversized Authorization
// ---------------------------------------------------------------------------------------------

/// 401 (with the Bearer challenge) or 431, and never a token.
async fn expect_too_large_refused(response: reqwest::Response, case: &str) {
    match response.status().as_u16() {
        431 => {
            let text = response.text().await.unwrap();
            assert!(!text.contains("eyJ"), "{case}: {text}");
        }
        _ => expect_invalid_token(response, case).await,
    }
}

#[tokio::test]
async fn an_authorization_header_over_8_kib_is_refused() {
    let app = spawn_app().await;
    // Otherwise valid tokens: a small padding claim is accepted, a 9 KiB one is not.
    let small = rs256_with(|c| c["pad"] = json!("x".repeat(1024)));
    accepts(&app, &small, "1 KiB padding control").await;
    let big = rs256_with(|c| c["pad"] = json!("x".repeat(9 * 1024)));
    assert!(big.len() > AUTHORIZATION_LIMIT);
    let value = format!("Bearer {big}");
    let response = post_with_authorization(&app, value.as_bytes()).await;
    expect_too_large_refused(response, "valid token with 9 KiB padding").await;

    // Exactly one byte over 8 KiB of junk.
    let junk = format!(
        "Bearer {}",
        "a".repeat(AUTHORIZATION_LIMIT + 1 - "Bearer ".len())
    );
    assert_eq!(junk.len(), AUTHORIZATION_LIMIT + 1);
    let response = post_with_authorization(&app, junk.as_bytes()).await;
    expect_too_large_refused(response, "8 KiB + 1 of junk").await;

    // A huge one (64 KiB) does not hurt either.
    let huge = format!(
        "Bearer {}.{}.{}",
        "a".repeat(20_000),
        "b".repeat(20_000),
        "c".repeat(24_000)
    );
    let response = post_with_authorization(&app, huge.as_bytes()).await;
    expect_too_large_refused(response, "64 KiB").await;
    still_serves(&app).await;
}

/// The size is checked before anything else: a validly signed caller JWT over the limit is
/// refused for its size, as the audit record says, where decoding it would have let it through.
#[tokio::test]
async fn an_oversized_authorization_is_refused_before_it_is_decoded() {
    let file = config_file("");
    let served = serve(&file);
    let mut padded = claims("lena");
    padded["pad"] = json!("x".repeat(9 * 1024));
    let caller = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        None,
        &padded,
    );
    assert!(caller.len() > AUTHORIZATION_LIMIT);
    let response = reqwest::Client::new()
        .post(format!("http://{}/apps/support/token", served.addr))
        .bearer_auth(&caller)
        .send()
        .await
        .unwrap();
    expect_too_large_refused(response, "validly signed, 9 KiB of padding").await;
    let (_, logs) = stop(served);
    let reasons: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["event"] == "token_denied")
        .map(|event| event["reason"].clone())
        .collect();
    assert_eq!(reasons, [json!("authorization_too_large")], "{logs}");
}

// ---------------------------------------------------------------------------------------------
// Row 19: the gateway authenticator
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn gateway_identity_headers_from_an_untrusted_peer_without_the_secret_are_refused() {
    let app = spawn_app().await;
    // The test client connects from 127.0.0.1, outside the edge app's trusted 10.0.0.0/8.
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        ("identity only", vec![("X-Authenticated-User", "alice")]),
        (
            "spoofed X-Forwarded-For",
            vec![
                ("X-Authenticated-User", "alice"),
                ("X-Forwarded-For", "10.1.2.3"),
            ],
        ),
        (
            "spoofed Forwarded",
            vec![
                ("X-Authenticated-User", "alice"),
                ("Forwarded", "for=10.1.2.3"),
            ],
        ),
        (
            "spoofed X-Real-IP",
            vec![("X-Authenticated-User", "alice"), ("X-Real-IP", "10.1.2.3")],
        ),
        (
            "spoofed everything",
            vec![
                ("X-Authenticated-User", "alice"),
                ("X-Forwarded-For", "10.1.2.3, 127.0.0.1"),
                ("X-Real-IP", "10.1.2.3"),
                ("X-Authenticated-Roles", "admin"),
            ],
        ),
        ("a bearer token instead", vec![]),
    ];
    for (case, headers) in cases {
        let response = if headers.is_empty() {
            app.post(EDGE_PATH, Some(&token_for("alice")), None).await
        } else {
            edge_post(&app, &headers).await
        };
        problem(response, 401, "unauthenticated", case).await;
    }
}

#[tokio::test]
async fn gateway_identity_headers_with_a_wrong_shared_secret_are_refused() {
    let app = spawn_app().await;
    let mut same_length = GATEWAY_SECRET.as_bytes().to_vec();
    *same_length.last_mut().unwrap() ^= 0x01;
    let same_length = String::from_utf8(same_length).unwrap();
    assert_eq!(same_length.len(), GATEWAY_SECRET.len());
    assert_ne!(same_length, GATEWAY_SECRET);
    let upper = GATEWAY_SECRET.to_uppercase();
    let prefix = &GATEWAY_SECRET[..GATEWAY_SECRET.len() - 1];
    let longer = format!("{GATEWAY_SECRET}x");
    let padded = format!("{GATEWAY_SECRET} ,");
    let secrets = [
        ("same length, last bit flipped", same_length.as_str()),
        ("upper-cased", upper.as_str()),
        ("one byte short", prefix),
        ("one byte long", longer.as_str()),
        ("with trailing junk", padded.as_str()),
        ("empty", ""),
    ];
    for (case, secret) in secrets {
        let response = edge_post(
            &app,
            &[
                ("X-Authenticated-User", "alice"),
                ("X-Gateway-Secret", secret),
            ],
        )
        .await;
        problem(response, 401, "unauthenticated", case).await;
    }
    // The right secret but no identity header.
    let response = edge_post(&app, &[("X-Gateway-Secret", GATEWAY_SECRET)]).await;
    problem(response, 401, "unauthenticated", "secret without identity").await;
}

#[tokio::test]
async fn gateway_identity_headers_with_the_right_shared_secret_are_believed() {
    let app = spawn_app().await;
    let response = edge_post(
        &app,
        &[
            ("X-Authenticated-User", "alice"),
            ("X-Gateway-Secret", GATEWAY_SECRET),
        ],
    )
    .await;
    let body = expect(response, 200).await;
    assert_eq!(body["identity"], "alice");
    let (_, payload) = decode_twilio(body["token"].as_str().unwrap());
    assert_eq!(payload["grants"]["identity"], "alice");
}

// ---------------------------------------------------------------------------------------------
// Row 20: identity, account_sid and unknown fields
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_body_naming_identity_account_sid_or_an_unknown_field_is_refused() {
    let app = spawn_app().await;
    let bodies = [
        json!({"identity": "bob"}),
        json!({"identity": null}),
        json!({"grants": ["voice"], "identity": "bob"}),
        json!({"account_sid": helpers::ACCOUNT_SID}),
        json!({"Identity": "bob"}),
        json!({"app": "edge"}),
        json!({"sub": "bob"}),
        json!({"grant": ["voice"]}),
        json!({"nope": 1}),
    ];
    for body in bodies {
        let response = app
            .post(TOKEN_PATH, Some(&token_for("alice")), Some(body.clone()))
            .await;
        problem(response, 400, "invalid_request", &body.to_string()).await;
    }
}

#[tokio::test]
async fn a_query_naming_identity_account_sid_or_an_unknown_field_is_refused() {
    let app = spawn_app().await;
    let token = token_for("alice");
    let gets = [
        "/apps/support/token?identity=bob",
        "/apps/support/token?grants=voice&identity=bob",
        "/apps/support/token?account_sid=AC0123456789abcdef0123456789abcdef",
        "/apps/support/token?nope=1",
        "/token?app=support&identity=bob",
        "/token?identity=bob",
    ];
    for path in gets {
        problem(
            app.get(path, Some(&token)).await,
            400,
            "invalid_request",
            path,
        )
        .await;
    }
    let posts = [
        "/apps/support/token?identity=bob",
        "/apps/support/token?account_sid=AC0123456789abcdef0123456789abcdef",
        "/token?app=support&identity=bob",
    ];
    for path in posts {
        let response = app.post(path, Some(&token), None).await;
        problem(response, 400, "invalid_request", path).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Row 21: ttl
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_ttl_above_max_ttl_is_clamped_to_the_cap() {
    let app = spawn_app().await;
    let max_ttl = 4 * 3600;
    let responses = [
        (
            "body ttl 999999",
            app.post(
                TOKEN_PATH,
                Some(&token_for("alice")),
                Some(json!({"ttl": 999_999})),
            )
            .await,
        ),
        (
            "body ttl max+1",
            app.post(
                TOKEN_PATH,
                Some(&token_for("alice")),
                Some(json!({"ttl": max_ttl + 1})),
            )
            .await,
        ),
        (
            "query ttl 999999",
            app.get("/apps/support/token?ttl=999999", Some(&token_for("alice")))
                .await,
        ),
    ];
    for (case, response) in responses {
        println!("case: {case}");
        let body = expect(response, 200).await;
        assert_eq!(body["ttl"], max_ttl, "{case}");
        let (_, payload) = decode_twilio(body["token"].as_str().unwrap());
        let lifetime = payload["exp"].as_u64().unwrap() - payload["nbf"].as_u64().unwrap();
        assert_eq!(lifetime, max_ttl, "{case}");
    }
}

#[tokio::test]
async fn an_enormous_ttl_never_yields_a_token_above_the_cap() {
    let app = spawn_app().await;
    let response = app
        .post(
            TOKEN_PATH,
            Some(&token_for("alice")),
            Some(json!({"ttl": u64::MAX})),
        )
        .await;
    match response.status().as_u16() {
        400 => {
            problem(response, 400, "invalid_request", "ttl u64::MAX").await;
        }
        _ => {
            let body = expect(response, 200).await;
            let (_, payload) = decode_twilio(body["token"].as_str().unwrap());
            let lifetime = payload["exp"].as_u64().unwrap() - payload["nbf"].as_u64().unwrap();
            assert_eq!(lifetime, 4 * 3600);
        }
    }
}

#[tokio::test]
async fn a_zero_negative_or_non_numeric_ttl_is_refused() {
    let app = spawn_app().await;
    let bodies = [
        json!({"ttl": 0}),
        json!({"ttl": -1}),
        json!({"ttl": -3600}),
        json!({"ttl": "abc"}),
        json!({"ttl": "3600abc"}),
        json!({"ttl": 1.5}),
        json!({"ttl": 1e30}),
        json!({"ttl": true}),
        json!({"ttl": [3600]}),
        json!({"ttl": {"secs": 3600}}),
    ];
    for body in bodies {
        let response = app
            .post(TOKEN_PATH, Some(&token_for("alice")), Some(body.clone()))
            .await;
        problem(response, 400, "invalid_request", &body.to_string()).await;
    }
    for query in ["ttl=0", "ttl=-1", "ttl=abc", "ttl=1.5", "ttl=", "ttl=1e3"] {
        let path = format!("/apps/support/token?{query}");
        let response = app.get(&path, Some(&token_for("alice"))).await;
        problem(response, 400, "invalid_request", &path).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Row 22: room
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_room_outside_the_apps_patterns_is_refused() {
    let app = spawn_app().await;
    // Rooms the patterns ["support-*", "user-{sub}"] allow alice.
    for room in ["support-42", "user-alice"] {
        let body = app
            .mint_as(
                "alice",
                Some(json!({"grants": ["video"], "room": room})),
                200,
            )
            .await;
        let (_, payload) = decode_twilio(body["token"].as_str().unwrap());
        assert_eq!(payload["grants"]["video"]["room"], room);
    }
    for room in [
        "sales-1",
        "user-bob",
        "user-alice-2",
        "Support-1",
        "xsupport-1",
        "user-",
    ] {
        let response = app
            .post(
                TOKEN_PATH,
                Some(&token_for("alice")),
                Some(json!({"grants": ["video"], "room": room})),
            )
            .await;
        problem(response, 403, "room_not_allowed", room).await;
    }
    // A `*` in the caller's own claim is literal, not a wildcard.
    let response = app
        .post(
            TOKEN_PATH,
            Some(&token_for("*")),
            Some(json!({"grants": ["video"], "room": "user-bob"})),
        )
        .await;
    problem(
        response,
        403,
        "room_not_allowed",
        "sub '*' asking for user-bob",
    )
    .await;
    let response = app
        .get(
            "/apps/support/token?grants=video&room=sales-1",
            Some(&token_for("alice")),
        )
        .await;
    problem(response, 403, "room_not_allowed", "query room sales-1").await;
}

#[tokio::test]
async fn an_oversized_room_is_refused() {
    let room = format!("support-{}", "a".repeat(10 * 1024));
    // In a query (no body limit applies) on the standard app.
    let app = spawn_app().await;
    let path = format!("/apps/support/token?grants=video&room={room}");
    let response = app.get(&path, Some(&token_for("alice"))).await;
    problem(response, 400, "invalid_request", "10 KB room in the query").await;
    // Over Twilio's 128-byte limit but inside the body limit.
    let response = app
        .post(
            TOKEN_PATH,
            Some(&token_for("alice")),
            Some(json!({"grants": ["video"], "room": format!("support-{}", "a".repeat(130))})),
        )
        .await;
    problem(response, 400, "invalid_request", "138-byte room").await;

    // In a body, on an app whose body limit (64 KiB) lets the 10 KB room reach the policy (the
    // standard 4 KiB limit answers 413 first, which row 24 covers).
    let app = spawn_with_body_limit(65_536).await;
    let response = app
        .post(
            TOKEN_PATH,
            Some(&token_for("alice")),
            Some(json!({"grants": ["video"], "room": room})),
        )
        .await;
    problem(response, 400, "invalid_request", "10 KB room in the body").await;
}

#[tokio::test]
async fn a_room_with_control_characters_is_refused() {
    let app = spawn_app().await;
    for room in [
        "support-\u{0}",
        "support-\n1",
        "support-1\r\nX-Injected: 1",
        "support-\t1",
        "support-\u{1b}[31m",
        "support-\u{7f}",
        "support-\u{85}",
    ] {
        let response = app
            .post(
                TOKEN_PATH,
                Some(&token_for("alice")),
                Some(json!({"grants": ["video"], "room": room})),
            )
            .await;
        problem(response, 400, "invalid_request", &format!("{room:?}")).await;
    }
    let response = app
        .get(
            "/apps/support/token?grants=video&room=support-%0A1",
            Some(&token_for("alice")),
        )
        .await;
    problem(response, 400, "invalid_request", "query room with %0A").await;
}

// ---------------------------------------------------------------------------------------------
// Row 23: identities a grant cannot use
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_identity_invalid_for_the_requested_grant_is_refused() {
    let app = spawn_app().await;
    let voice = json!({"grants": ["voice"]});
    let long = "a".repeat(122);
    for sub in ["auth0|abc", "alice@example.com", "a-b", long.as_str()] {
        let response = app
            .post(TOKEN_PATH, Some(&token_for(sub)), Some(voice.clone()))
            .await;
        problem(
            response,
            403,
            "invalid_identity",
            &format!("voice for {sub:.20}"),
        )
        .await;
    }
    for sub in ["a b", "tab\there", "nl\nhere", "\u{0}"] {
        let response = app
            .post(
                TOKEN_PATH,
                Some(&token_for(sub)),
                Some(json!({"grants": ["chat"]})),
            )
            .await;
        problem(
            response,
            403,
            "invalid_identity",
            &format!("chat for {sub:?}"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_identity_valid_for_the_requested_grant_is_minted() {
    let app = spawn_app().await;
    // The same `auth0|abc` subject is fine for chat, which has no character restriction.
    let body = app
        .mint_as("auth0|abc", Some(json!({"grants": ["chat"]})), 200)
        .await;
    assert_eq!(body["identity"], "auth0|abc");
}

// ---------------------------------------------------------------------------------------------
// Row 24: malformed, deep and oversized bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_malformed_json_body_is_refused() {
    let app = spawn_app().await;
    let bodies: &[(&str, &[u8])] = &[
        ("truncated", br#"{"ttl":"#),
        ("trailing comma", br#"{"ttl": 60,}"#),
        ("not JSON", b"ttl=60"),
        ("array", b"[]"),
        ("string", br#""voice""#),
        ("number", b"60"),
        ("null", b"null"),
        ("two objects", br#"{} {}"#),
        ("invalid UTF-8", b"{\"room\":\"support-\xff\"}"),
        ("single quotes", b"{'ttl': 60}"),
        ("comment", b"{/* */\"ttl\": 60}"),
    ];
    for (case, body) in bodies {
        let response = post_body(&app, "application/json", body.to_vec()).await;
        problem(response, 400, "invalid_request", case).await;
    }
    let response = post_body(&app, "text/plain", br#"{"ttl": 60}"#.to_vec()).await;
    problem(response, 400, "invalid_request", "JSON sent as text/plain").await;
    still_serves(&app).await;
}

#[tokio::test]
async fn json_nested_10000_deep_is_refused_without_a_panic() {
    // A limit large enough for the deep documents to reach the JSON parser.
    let app = spawn_with_body_limit(65_536).await;
    let depth = 10_000;
    let arrays = format!(
        r#"{{"grants": {}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let objects = format!(
        r#"{{"room": {}1{}}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    let top_level = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let unclosed = "[".repeat(depth);
    assert!(objects.len() < 65_536);
    for (case, body) in [
        ("arrays", arrays),
        ("objects", objects),
        ("top-level arrays", top_level),
        ("unclosed", unclosed),
    ] {
        let response = post_body(&app, "application/json", body.into_bytes()).await;
        problem(response, 400, "invalid_request", case).await;
    }
    still_serves(&app).await;
}

#[tokio::test]
async fn deep_json_over_the_body_limit_is_refused_as_too_large() {
    let app = spawn_app().await;
    let body = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let response = post_body(&app, "application/json", body.into_bytes()).await;
    problem(
        response,
        413,
        "payload_too_large",
        "20 000 bytes of brackets",
    )
    .await;
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_refused_with_413() {
    let app = spawn_app().await;
    // Valid JSON, 5000 bytes, declared by Content-Length.
    let room = "a".repeat(5000 - r#"{"room":""}"#.len());
    let body = format!(r#"{{"room":"{room}"}}"#);
    assert_eq!(body.len(), 5000);
    let response = post_body(&app, "application/json", body.clone().into_bytes()).await;
    problem(response, 413, "payload_too_large", "Content-Length 5000").await;

    // The same body without a Content-Length (chunked) must be cut off while reading.
    let chunked_body: String = body
        .as_bytes()
        .chunks(1000)
        .map(|chunk| {
            format!(
                "{:x}\r\n{}\r\n",
                chunk.len(),
                std::str::from_utf8(chunk).unwrap()
            )
        })
        .collect::<String>()
        + "0\r\n\r\n";
    let request = format!(
        "POST {TOKEN_PATH} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n{chunked_body}",
        app.addr,
        token_for("alice")
    );
    let (status, text) = raw_http(app.addr, request.as_bytes()).await;
    assert_eq!(status, 413, "chunked over the limit: {text}");
    assert!(text.contains("payload_too_large"), "{text}");
    assert!(!text.contains("\"token\""), "{text}");
    still_serves(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Row 25: CORS
// ---------------------------------------------------------------------------------------------

/// `POST path` as caller alice, from a page at `origin`.
async fn post_from(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token_for("alice"))
        .header(header::ORIGIN, origin)
        .send()
        .await
        .unwrap()
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

const DISALLOWED_ORIGINS: [&str; 8] = [
    "https://evil.example.com",
    "https://support.example.com.evil.com",
    "https://evilsupport.example.com",
    "http://support.example.com",
    "https://support.example.com:8443",
    "https://support.example.co",
    "null",
    "https://support.example.com/",
];

#[tokio::test]
async fn a_preflight_from_a_disallowed_origin_gets_no_cors_allow_headers() {
    let app = spawn_app().await;
    for origin in DISALLOWED_ORIGINS {
        for path in [TOKEN_PATH, "/token", "/token?app=support"] {
            let response = preflight(&app, path, origin).await;
            assert_no_cors_headers(response.headers(), &format!("{origin} on {path}"));
        }
    }
    // The support app's origin is not allowed for the edge app, which lists none.
    let response = preflight(&app, EDGE_PATH, ORIGIN).await;
    assert_no_cors_headers(response.headers(), "edge app");
    // The same preflight from an allowed origin gets them all, so the check above can fail.
    let allowed = preflight(&app, TOKEN_PATH, ORIGIN).await;
    for name in [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::ACCESS_CONTROL_MAX_AGE,
    ] {
        assert!(allowed.headers().contains_key(&name), "{name}");
    }
}

/// No `Access-Control-*` header at all: neither an allowed origin nor what the API would allow
/// an allowed one.
#[track_caller]
fn assert_no_cors_headers(headers: &reqwest::header::HeaderMap, what: &str) {
    let cors: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "{what}: {cors:?} in {headers:?}");
}

#[tokio::test]
async fn an_actual_request_from_a_disallowed_origin_is_forbidden() {
    let app = spawn_app().await;
    for origin in DISALLOWED_ORIGINS {
        let response = post_from(&app, TOKEN_PATH, origin).await;
        let (headers, _) = problem(response, 403, "origin_not_allowed", origin).await;
        assert_no_cors_headers(&headers, origin);
    }
    // The edge app lists no origins: a browser request to it is refused even when the gateway
    // vouches for the caller.
    let response = app
        .client
        .post(app.url(EDGE_PATH))
        .header("X-Authenticated-User", "alice")
        .header("X-Gateway-Secret", GATEWAY_SECRET)
        .header(header::ORIGIN, ORIGIN)
        .send()
        .await
        .unwrap();
    let (headers, _) = problem(response, 403, "origin_not_allowed", "edge app").await;
    assert_no_cors_headers(&headers, "edge app");
}

#[tokio::test]
async fn an_allowed_origin_is_echoed() {
    let app = spawn_app().await;
    for path in [TOKEN_PATH, "/token", "/token?app=support"] {
        let response = preflight(&app, path, ORIGIN).await;
        assert!(
            response.status().is_success(),
            "preflight on {path}: {}",
            response.status()
        );
        assert_eq!(
            response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&HeaderValue::from_static(ORIGIN)),
            "preflight on {path}"
        );
    }
    let response = post_from(&app, TOKEN_PATH, ORIGIN).await;
    let allow_origin = response
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .cloned();
    let body = expect(response, 200).await;
    assert!(body["token"].is_string());
    assert_eq!(allow_origin, Some(HeaderValue::from_static(ORIGIN)));
}

#[tokio::test]
async fn every_answer_of_the_token_routes_varies_with_the_cors_request_headers() {
    let app = spawn_app().await;
    let plain = app
        .client
        .post(app.url(TOKEN_PATH))
        .bearer_auth(token_for("alice"))
        .send()
        .await
        .unwrap();
    let wrong_method = app.client.put(app.url(TOKEN_PATH)).send().await.unwrap();
    let answers = [
        ("no Origin", plain, 200),
        (
            "allowed origin",
            post_from(&app, TOKEN_PATH, ORIGIN).await,
            200,
        ),
        (
            "refused origin",
            post_from(&app, TOKEN_PATH, DISALLOWED_ORIGINS[0]).await,
            403,
        ),
        ("preflight", preflight(&app, TOKEN_PATH, ORIGIN).await, 200),
        (
            "refused preflight",
            preflight(&app, "/token", DISALLOWED_ORIGINS[0]).await,
            200,
        ),
        ("wrong method", wrong_method, 405),
    ];
    for (case, response, status) in answers {
        assert_eq!(response.status(), status, "{case}");
        let vary: Vec<_> = response.headers().get_all(header::VARY).iter().collect();
        assert_eq!(
            vary,
            ["origin, access-control-request-method, access-control-request-headers"],
            "{case}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Row 27: unknown app, wrong method, unknown path
// ---------------------------------------------------------------------------------------------

fn assert_no_challenge(headers: &HeaderMap, case: &str) {
    assert!(
        headers.get(header::WWW_AUTHENTICATE).is_none(),
        "{case}: {headers:?}"
    );
}

#[tokio::test]
async fn an_unknown_app_is_404_with_or_without_credentials() {
    let app = spawn_app().await;
    let valid = token_for("alice");
    let mut bodies = Vec::new();
    // An app name needs no percent-encoding: an encoded one names no app.
    for path in [
        "/apps/nope/token",
        "/token?app=nope",
        "/apps/Support/token",
        "/apps/sup%70ort/token",
    ] {
        for bearer in [None, Some(valid.as_str()), Some("garbage")] {
            let case = format!("POST {path}, bearer {}", bearer.is_some());
            let response = app.post(path, bearer, None).await;
            let (headers, body) = problem(response, 404, "unknown_app", &case).await;
            assert_no_challenge(&headers, &case);
            bodies.push(body);

            let case = format!("GET {path}, bearer {}", bearer.is_some());
            let response = app.get(path, bearer).await;
            let (headers, body) = problem(response, 404, "unknown_app", &case).await;
            assert_no_challenge(&headers, &case);
            bodies.push(body);
        }
    }
    // Credentials or not, the answer is the same: nothing about them is revealed.
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

/// CORS and the handler read the app from the request alike, so the headers a browser gets
/// belong to the app that answers: none for an app that does not exist, however it is spelt.
#[tokio::test]
async fn cors_headers_are_those_of_the_app_that_answers() {
    let app = spawn_app().await;
    let allowed = preflight(&app, TOKEN_PATH, ORIGIN).await;
    assert_eq!(allowed.headers()["access-control-allow-origin"], ORIGIN);
    let encoded = "/apps/sup%70ort/token";
    assert_no_cors_headers(
        preflight(&app, encoded, ORIGIN).await.headers(),
        "preflight",
    );
    let response = post_from(&app, encoded, ORIGIN).await;
    assert_eq!(response.status(), 404);
    assert_no_cors_headers(response.headers(), "POST");
    // A refused query still names its app, for the refusal's CORS headers and audit record.
    let response = post_from(&app, "/token?app=support&app=edge", ORIGIN).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["access-control-allow-origin"], ORIGIN);
}

#[tokio::test]
async fn a_wrong_method_is_405_without_an_authentication_challenge() {
    let app = spawn_app().await;
    let valid = token_for("alice");
    for path in [TOKEN_PATH, "/token", EDGE_PATH] {
        for method in [Method::PUT, Method::DELETE, Method::PATCH] {
            for bearer in [None, Some(valid.as_str()), Some("garbage")] {
                let mut request = app
                    .client
                    .request(method.clone(), app.url(path))
                    .header("x-request-id", "wrong-method-1");
                if let Some(token) = bearer {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap();
                let case = format!("{method} {path}, bearer {}", bearer.is_some());
                let (headers, _) = problem(response, 405, "method_not_allowed", &case).await;
                assert_no_challenge(&headers, &case);
                // Like every token route answer; and HEAD, refused too, is not offered.
                assert_eq!(headers["allow"], "GET, POST", "{case}");
                assert_eq!(headers["x-request-id"], "wrong-method-1", "{case}");
                assert_eq!(headers["cache-control"], "no-store", "{case}");
            }
        }
        // HEAD would run the GET handler and mint a token nobody sees.
        let response = app
            .client
            .head(app.url(path))
            .bearer_auth(&valid)
            .header("x-request-id", "head-1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "HEAD {path}");
        assert_eq!(response.headers()["allow"], "GET, POST", "HEAD {path}");
        assert_eq!(response.headers()["x-request-id"], "head-1", "HEAD {path}");
    }
}

#[tokio::test]
async fn options_on_a_token_route_offers_get_and_post_and_is_not_stored() {
    let app = spawn_app().await;
    for path in [TOKEN_PATH, "/token"] {
        let plain = app
            .client
            .request(Method::OPTIONS, app.url(path))
            .send()
            .await
            .unwrap();
        let preflight = preflight(&app, path, ORIGIN).await;
        for (what, response) in [("plain", plain), ("preflight", preflight)] {
            let case = format!("{what} OPTIONS {path}");
            assert_eq!(response.status(), 200, "{case}");
            assert_eq!(response.headers()["allow"], "GET, POST", "{case}");
            assert_eq!(response.headers()["cache-control"], "no-store", "{case}");
        }
    }
}

#[tokio::test]
async fn an_unknown_path_is_404_without_an_authentication_challenge() {
    let app = spawn_app().await;
    let valid = token_for("alice");
    for path in [
        "/",
        "/nope",
        "/apps/support",
        "/apps/support/tokens",
        "/apps/support/token/extra",
        "/apps/support/token/../token/x",
        "/token/support",
        "/tokens",
    ] {
        for bearer in [None, Some(valid.as_str())] {
            let case = format!("POST {path}, bearer {}", bearer.is_some());
            let response = app.post(path, bearer, None).await;
            let (headers, _) = problem(response, 404, "not_found", &case).await;
            assert_no_challenge(&headers, &case);
        }
        let case = format!("GET {path}");
        let (headers, _) = problem(app.get(path, None).await, 404, "not_found", &case).await;
        assert_no_challenge(&headers, &case);
    }
}
