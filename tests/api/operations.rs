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

async fn post_from(app: &TestApp, forwarded_for: &str, bearer: &str) -> reqwest::Response {
    app.client
        .post(app.url("/apps/support/token"))
        .header("x-forwarded-for", forwarded_for)
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_noisy_caller_is_rate_limited_while_others_still_mint() {
    let (toml, file) = standard_config(Keys::File);
    let toml = toml.replace(
        "max_ttl = \"4h\"",
        "max_ttl = \"4h\"\nrate_limit = \"3/min\"",
    );
    let app = spawn_with(&toml, file).await;
    for _ in 0..3 {
        app.mint_as("alice", None, 200).await;
    }
    let response = app
        .post("/apps/support/token", Some(&token_for("alice")), None)
        .await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_problem(response, 429, "rate_limited").await;
    app.mint_as("bob", None, 200).await;
}

#[tokio::test]
async fn the_rate_limit_is_per_identity_not_per_subject() {
    let (toml, file) = standard_config(Keys::File);
    let toml = toml
        .replacen("identity = \"{sub}\"", "identity = \"team_{team}\"", 1)
        .replace(
            "max_ttl = \"4h\"",
            "max_ttl = \"4h\"\nrate_limit = \"2/min\"",
        );
    assert!(toml.contains("team_{team}"));
    let app = spawn_with(&toml, file).await;
    let caller = |sub: &str, team: Option<&str>| {
        let mut claims = claims(sub);
        if let Some(team) = team {
            claims["team"] = json!(team);
        }
        sign(
            jsonwebtoken::Algorithm::RS256,
            &rsa_a(),
            Some("rsa-a"),
            &claims,
        )
    };
    let mint = |token: String| {
        let app = &app;
        async move { app.post("/apps/support/token", Some(&token), None).await }
    };

    // Two subjects, one identity: one bucket.
    let minted = expect(mint(caller("alice", Some("blue"))).await, 200).await;
    assert_eq!(minted["identity"], "team_blue");
    expect(mint(caller("bob", Some("blue"))).await, 200).await;
    expect_problem(
        mint(caller("carol", Some("blue"))).await,
        429,
        "rate_limited",
    )
    .await;
    expect(mint(caller("alice", Some("red"))).await, 200).await;

    // A caller without the claim is refused, and still counts, against its subject.
    for _ in 0..2 {
        expect_problem(mint(caller("dave", None)).await, 403, "invalid_identity").await;
    }
    expect_problem(mint(caller("dave", None)).await, 429, "rate_limited").await;
}

#[tokio::test]
async fn failed_authentications_are_limited_per_client_address_from_the_right_most_hop() {
    let (toml, file) = standard_config(Keys::File);
    let toml = toml.replace(
        "auth_failure_limit = \"100000/min\"",
        "trusted_proxies = [\"127.0.0.1\"]\nauth_failure_limit = \"3/min\"",
    );
    let app = spawn_with(&toml, file).await;
    let forged = sign(
        jsonwebtoken::Algorithm::RS256,
        &rsa_b(),
        Some("rsa-a"),
        &claims("mallory"),
    );
    for _ in 0..3 {
        expect_problem(
            post_from(&app, "198.51.100.7", &forged).await,
            401,
            "unauthenticated",
        )
        .await;
    }
    let response = post_from(&app, "198.51.100.7", &forged).await;
    assert!(response.headers().contains_key("retry-after"));
    expect_problem(response, 429, "rate_limited").await;
    // Blocked now even with a valid token, and a spoofed left-most hop changes nothing.
    let valid = token_for("mallory");
    expect_problem(
        post_from(&app, "198.51.100.7", &valid).await,
        429,
        "rate_limited",
    )
    .await;
    expect_problem(
        post_from(&app, "203.0.113.1, 198.51.100.7", &valid).await,
        429,
        "rate_limited",
    )
    .await;
    // Another address is unaffected.
    expect(post_from(&app, "198.51.100.8", &valid).await, 200).await;
}

#[tokio::test]
async fn a_refused_query_is_counted_under_the_app_the_path_names() {
    let app = spawn_app().await;
    // The path chooses the app here, so a query naming it too is refused.
    let response = app
        .post("/apps/support/token?app=support", None, None)
        .await;
    expect_problem(response, 400, "invalid_request").await;
    let text = metrics_text(&app).await;
    assert!(
        text.contains(r#"tokenmint_token_denials_total{app="support",code="invalid_request"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn requests_for_unknown_apps_cannot_create_metric_series() {
    let app = spawn_app().await;
    for name in ["made-up-1", "made-up-2"] {
        let response = app.post(&format!("/apps/{name}/token"), None, None).await;
        expect_problem(response, 404, "unknown_app").await;
    }
    let text = metrics_text(&app).await;
    assert!(!text.contains("made-up"), "{text}");
    assert!(
        text.contains(r#"tokenmint_token_denials_total{app="(unknown)",code="unknown_app"} 2"#),
        "{text}"
    );
}
