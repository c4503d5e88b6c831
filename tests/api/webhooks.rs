//! Webhook signature checks over HTTP and on the command line (twilio-token-format.md §7 B, C).

use serde_json::{Value, json};

use crate::cli::{config_file, path_of, text, tokenmint};
use crate::helpers::*;

const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const JSON_URL: &str = "https://mycompany.com/myapp.php?bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
const JSON_BODY: &str = r#"{"property": "value", "boolean": true}"#;

fn vector_b_params() -> Value {
    json!({
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212"
    })
}

async fn verify(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/webhooks/verify"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_correctly_signed_form_webhook_is_valid() {
    let app = spawn_app().await;
    let body = json!({"account": "main", "url": URL, "params": vector_b_params(), "signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="});
    assert_eq!(
        expect(verify(&app, body).await, 200).await,
        json!({"valid": true})
    );
    // signed over the URL with :443
    let body = json!({"account": "main", "url": URL, "params": vector_b_params(), "signature": "EpDEmp1PyjDYp77YxYU3GILBWzE="});
    expect(verify(&app, body).await, 200).await;
}

#[tokio::test]
async fn a_changed_parameter_or_wrong_signature_is_refused() {
    let app = spawn_app().await;
    let mut params = vector_b_params();
    params["Digits"] = json!("9999");
    let body = json!({"account": "main", "url": URL, "params": params, "signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="});
    expect_problem(verify(&app, body).await, 403, "invalid_signature").await;
    let body = json!({"account": "main", "url": URL, "params": vector_b_params(), "signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="});
    expect_problem(verify(&app, body).await, 403, "invalid_signature").await;
    let body = json!({"account": "main", "url": URL, "params": vector_b_params(), "signature": ""});
    expect_problem(verify(&app, body).await, 403, "invalid_signature").await;
}

#[tokio::test]
async fn repeated_parameters_and_get_webhooks_are_supported() {
    let app = spawn_app().await;
    let body = json!({"account": "main", "url": URL, "params": {"Body": ["b", "a", "a"], "From": "+1"}, "signature": "/WQU5I9XBvIjCJBfqatzgj5wMTY="});
    expect(verify(&app, body).await, 200).await;
    let body = json!({"account": "main", "url": URL, "signature": "zYQTYrRWXE7LtzbG4PfP7/bkkGo="});
    expect(verify(&app, body).await, 200).await;
}

#[tokio::test]
async fn json_webhooks_check_the_body_hash_too() {
    let app = spawn_app().await;
    let body = json!({"account": "main", "url": JSON_URL, "body": JSON_BODY, "signature": "y77kIzt2vzLz71DgmJGsen2scGs="});
    expect(verify(&app, body).await, 200).await;
    let tampered = JSON_BODY.replace("value", "valuf");
    let body = json!({"account": "main", "url": JSON_URL, "body": tampered, "signature": "y77kIzt2vzLz71DgmJGsen2scGs="});
    expect_problem(verify(&app, body).await, 403, "invalid_signature").await;
    // The same URL and signature without the body, or as a form with no params.
    let body =
        json!({"account": "main", "url": JSON_URL, "signature": "y77kIzt2vzLz71DgmJGsen2scGs="});
    expect_problem(verify(&app, body).await, 403, "invalid_signature").await;
    let body = json!({"account": "main", "url": JSON_URL, "params": {}, "signature": "y77kIzt2vzLz71DgmJGsen2scGs="});
    expect_problem(verify(&app, body).await, 403, "invalid_signature").await;
}

#[tokio::test]
async fn the_shared_key_scheme_is_used_when_announced() {
    let app = spawn_app().await;
    let body = json!({
        "account": "main", "url": URL, "params": vector_b_params(),
        "signature": "Rmm4Vzj+Ky7JGoWXMCsZDZuHDszLr9xvdbvitrDr4/M=",
        "signature_settings": "key=k1,algorithm=HMAC_SHA256"
    });
    expect(verify(&app, body).await, 200).await;
    let body = json!({
        "account": "main", "url": URL, "params": vector_b_params(),
        "signature": "Rmm4Vzj+Ky7JGoWXMCsZDZuHDszLr9xvdbvitrDr4/M=",
        "signature_settings": "key=unknown,algorithm=HMAC_SHA256"
    });
    expect_problem(verify(&app, body).await, 403, "invalid_signature").await;
}

#[tokio::test]
async fn malformed_requests_and_unknown_accounts_are_refused() {
    let app = spawn_app().await;
    for body in [
        json!({"url": URL, "signature": "x"}),
        json!({"account": "main", "url": URL, "signature": "x", "extra": 1}),
        json!({"account": "main", "url": "/relative", "signature": "x"}),
        json!({"account": "main", "url": URL, "params": {}, "body": "x", "signature": "x"}),
        json!(["not", "an", "object"]),
    ] {
        expect_problem(verify(&app, body).await, 400, "invalid_request").await;
    }
    let body = json!({"account": "nope", "url": URL, "signature": "zYQTYrRWXE7LtzbG4PfP7/bkkGo="});
    expect_problem(verify(&app, body).await, 404, "unknown_account").await;
}

#[test]
fn verify_webhook_exits_0_for_a_valid_signature_and_1_otherwise() {
    let file = config_file("");
    let mut args = vec![
        "verify-webhook",
        "--config",
        path_of(&file),
        "--account",
        "main",
        "--url",
        URL,
    ];
    let params = [
        "CallSid=CA1234567890ABCDE",
        "Caller=+12349013030",
        "Digits=1234",
        "From=+12349013030",
        "To=+18005551212",
    ];
    for param in &params {
        args.extend(["--param", param]);
    }
    let valid = [
        args.clone(),
        vec!["--signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="],
    ]
    .concat();
    let output = tokenmint(&valid).output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout).trim(), "valid");

    let invalid = [&args[..], &["--signature", "EpDEmp1PyjDYp77YxYU3GILBWzF="]].concat();
    let output = tokenmint(&invalid).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stdout).starts_with("invalid"));

    // A path is refused as by POST /webhooks/verify, not checked as though Twilio signed it.
    let path = URL.trim_start_matches("https://mycompany.com");
    let relative = args
        .iter()
        .map(|a| if *a == URL { path } else { a })
        .collect::<Vec<_>>();
    let output = tokenmint(&[&relative[..], &["--signature", "x"]].concat())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stdout));
    assert!(
        text(&output.stderr).contains("full URL"),
        "{}",
        text(&output.stderr)
    );

    let body = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body.path(), JSON_BODY).unwrap();
    let json = [
        "verify-webhook",
        "--config",
        path_of(&file),
        "--account",
        "main",
        "--url",
        JSON_URL,
        "--body-file",
        body.path().to_str().unwrap(),
        "--signature",
        "y77kIzt2vzLz71DgmJGsen2scGs=",
    ];
    assert!(tokenmint(&json).output().unwrap().status.success());
}
