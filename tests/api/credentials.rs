//! `check-config --online` and `server.check_credentials_on_start` against a local stand-in for
//! Twilio's REST API.

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use crate::cli::{config_file, path_of, serve, stop, text, tokenmint};
use crate::helpers::*;

const REJECTED: &str = "SK0000000000000000000000000000401a";
const OTHER_ACCOUNT: &str = "SK0000000000000000000000000000404a";
const SLOW: &str = "SK00000000000000000000000000000510";

/// Answers like Twilio's `GET /2010-04-01/Accounts/{sid}.json` for the test credentials.
async fn account(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_default();
    let (user, password) = basic.split_once(':').unwrap_or_default();
    assert_eq!(file, format!("{ACCOUNT_SID}.json"));
    match (user, password) {
        (KEY_SID, KEY_SECRET) | (ACCOUNT_SID, AUTH_TOKEN) => {
            axum::Json(json!({"sid": ACCOUNT_SID, "status": "active"})).into_response()
        }
        (OTHER_ACCOUNT, _) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"code": 20404, "message": "The requested resource was not found"})),
        )
            .into_response(),
        (SLOW, _) => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            StatusCode::OK.into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": 20003, "message": "Authenticate"})),
        )
            .into_response(),
    }
}

async fn stub_twilio() -> String {
    let router = Router::new().route("/2010-04-01/Accounts/{file}", axum::routing::get(account));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn with_keys(file: &tempfile::NamedTempFile, api_base: &str, extra_keys: &[&str]) {
    let mut toml = std::fs::read_to_string(file.path()).unwrap().replace(
        "region = \"ie1\"",
        &format!("region = \"ie1\"\napi_base = \"{api_base}\""),
    );
    for sid in extra_keys {
        toml = toml.replacen(
            "\n[auth.corp]",
            &format!("[[accounts.main.signing_keys]]\nsid = \"{sid}\"\nsecret = \"env:T_GATEWAY_SECRET\"\n\n[auth.corp]"),
            1,
        );
    }
    std::fs::write(file.path(), toml).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_check_reports_each_credential_and_fails_on_a_rejected_one() {
    let api = stub_twilio().await;
    let file = config_file("");
    with_keys(&file, &api, &[REJECTED, OTHER_ACCOUNT, SLOW]);
    let path = path_of(&file).to_owned();
    let output = tokio::task::spawn_blocking(move || {
        tokenmint(&[
            "check-config",
            "--config",
            &path,
            "--online",
            "--timeout",
            "1",
        ])
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for line in [
        format!("account main: signing key {KEY_SID}: accepted"),
        format!("account main: signing key {REJECTED}: rejected (401, Twilio error 20003)"),
        format!(
            "account main: signing key {OTHER_ACCOUNT}: wrong account (404, Twilio error 20404)"
        ),
        format!("account main: signing key {SLOW}: unreachable (timeout)"),
        "account main: auth token #1: accepted".to_owned(),
    ] {
        assert!(stdout.contains(&line), "{line:?} missing from\n{stdout}");
    }
    for secret in [KEY_SECRET, GATEWAY_SECRET] {
        assert!(!stdout.contains(secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_check_passes_when_every_credential_is_accepted() {
    let api = stub_twilio().await;
    let file = config_file("");
    with_keys(&file, &api, &[]);
    let path = path_of(&file).to_owned();
    let output = tokio::task::spawn_blocking(move || {
        tokenmint(&["check-config", "--config", &path, "--online"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", text(&output.stdout));
}

async fn readiness_after_check(extra_keys: &[&str]) -> (u16, String) {
    let api = stub_twilio().await;
    let file = config_file("admin_listen = \"127.0.0.1:0\"\ncheck_credentials_on_start = true");
    with_keys(&file, &api, extra_keys);
    let served = serve(&file);
    let admin = served.admin.clone().unwrap();
    // The check takes one round trip per credential; give it time, then look.
    let mut status = 0;
    for _ in 0..100 {
        status = reqwest::get(format!("http://{admin}/readyz"))
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = reqwest::get(format!("http://{admin}/healthz"))
        .await
        .unwrap()
        .status();
    assert_eq!(health, 200, "the process must stay live");
    let (_, logs) = stop(served);
    (status, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_at_start_keeps_the_service_unready() {
    let (status, logs) = readiness_after_check(&[REJECTED]).await;
    assert_eq!(status, 503);
    assert!(logs.contains("Twilio rejected a credential"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_keys_at_start_let_the_service_become_ready() {
    let (status, logs) = readiness_after_check(&[]).await;
    assert_eq!(status, 200, "{logs}");
}
