//! Operating the service: metrics, rate limits, reload and rotation.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

async fn metrics_text(app: &TestApp) -> String {
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_mints_denials_latency_and_jwks_refreshes_without_secrets() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let (toml, _) = standard_config(Keys::Url(&server.url));
    let toml = toml.replace(
        "sid = \"env:T_KEY_SID\"",
        "sid = \"env:T_KEY_SID\"\ncreated = \"2020-01-01\"",
    );
    let app = spawn_with(&toml, None).await;
    assert!(eventually(Duration::from_secs(5), || app.state.is_ready()).await);

    let caller = token_for("alice");
    app.post(
        "/apps/support/token",
        Some(&caller),
        Some(json!({"grants": ["voice", "chat"]})),
    )
    .await;
    app.post(
        "/apps/support/token",
        Some(&caller),
        Some(json!({"grants": ["voice"]})),
    )
    .await;
    app.post("/apps/support/token", None, None).await;
    app.post(
        "/apps/support/token",
        Some(&caller),
        Some(json!({"room": "nope"})),
    )
    .await;

    let text = metrics_text(&app).await;
    for expected in [
        r#"tokenmint_tokens_minted_total{app="support",grant="voice"} 2"#,
        r#"tokenmint_tokens_minted_total{app="support",grant="chat"} 1"#,
        r#"tokenmint_token_denials_total{app="support",code="unauthenticated"} 1"#,
        r#"tokenmint_token_denials_total{app="support",code="room_not_allowed"} 1"#,
        r#"tokenmint_http_request_duration_seconds_count{route="/apps/{app}/token",status="200"} 2"#,
        r#"tokenmint_http_request_duration_seconds_count{route="/apps/{app}/token",status="401"} 1"#,
        r#"tokenmint_jwks_refresh_total{auth="corp",result="ok"} 1"#,
        r#"tokenmint_signing_key_age_seconds{account="main",key="SKfedcba9876543210fedcba9876543210"}"#,
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    for secret in [KEY_SECRET, GATEWAY_SECRET, caller.as_str(), "alice"] {
        assert!(!text.contains(secret), "metrics expose {secret}");
    }
}
