//! The token endpoint's happy paths: what a frontend gets back and what the token holds.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenmint::runtime::unix_now;

use crate::helpers::*;

fn grants_of(body: &Value) -> Value {
    let (_, payload) = decode_twilio(body["token"].as_str().unwrap());
    payload["grants"].clone()
}

#[tokio::test]
async fn a_verified_caller_gets_a_signed_token_for_the_apps_default_grants() {
    let app = spawn_app().await;
    let response = app
        .post("/apps/support/token", Some(&token_for("alice")), None)
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers().contains_key("x-request-id"));
    let body = expect(response, 200).await;

    assert_eq!(body["identity"], "alice");
    assert_eq!(body["app"], "support");
    assert_eq!(body["grants"], json!(["chat", "sync", "voice"]));
    assert_eq!(body["ttl"], 3600);

    let (header, payload) = decode_twilio(body["token"].as_str().unwrap());
    assert_eq!(
        header,
        json!({"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"})
    );
    assert_eq!(payload["iss"], KEY_SID);
    assert_eq!(payload["sub"], ACCOUNT_SID);
    let (nbf, exp) = (
        payload["nbf"].as_u64().unwrap(),
        payload["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - nbf, 3600);
    assert!(nbf.abs_diff(unix_now()) <= 5);
    let jti = payload["jti"].as_str().unwrap();
    let suffix = jti
        .strip_prefix(&format!("{KEY_SID}-"))
        .expect("jti names the key");
    assert!(
        suffix.len() == 32 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
        "{jti}"
    );
    assert_eq!(
        payload["grants"],
        json!({
            "chat": {"service_sid": IS_CHAT},
            "data_sync": {"service_sid": IS_SYNC},
            "voice": {
                "incoming": {"allow": true},
                "outgoing": {"application_sid": AP_SID, "params": {"agent": "alice"}}
            },
            "identity": "alice"
        })
    );
    let expires_at = time::OffsetDateTime::parse(
        body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires_at.unix_timestamp() as u64, exp);
}

#[tokio::test]
async fn every_token_has_its_own_jti() {
    let app = spawn_app().await;
    let first = app.mint_as("alice", None, 200).await;
    let second = app.mint_as("alice", None, 200).await;
    let jti = |body: &Value| decode_twilio(body["token"].as_str().unwrap()).1["jti"].clone();
    assert_ne!(jti(&first), jti(&second));
}

#[tokio::test]
async fn get_takes_the_same_fields_as_query_parameters() {
    let app = spawn_app().await;
    let path = "/apps/support/token?grants=video,chat&room=support-42&ttl=600&device_id=tab-1";
    let body = expect(app.get(path, Some(&token_for("alice"))).await, 200).await;
    assert_eq!(body["grants"], json!(["chat", "video"]));
    assert_eq!(body["ttl"], 600);
    assert_eq!(
        grants_of(&body),
        json!({
            "chat": {"service_sid": IS_CHAT, "endpoint_id": "support:alice:tab-1"},
            "video": {"room": "support-42"},
            "identity": "alice"
        })
    );

    // Repeated `grants` parameters work too.
    let body = expect(
        app.get(
            "/apps/support/token?grants=sync&grants=chat",
            Some(&token_for("bob")),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["grants"], json!(["chat", "sync"]));
}

#[tokio::test]
async fn the_app_can_be_named_in_the_query_or_defaulted() {
    let app = spawn_app().await;
    for path in ["/token?app=support", "/token"] {
        let body = expect(app.post(path, Some(&token_for("alice")), None).await, 200).await;
        assert_eq!(body["app"], "support", "{path}");
        let body = expect(app.get(path, Some(&token_for("alice"))).await, 200).await;
        assert_eq!(body["app"], "support", "{path}");
    }
}

#[tokio::test]
async fn without_a_default_app_bare_token_requests_are_unknown() {
    let (toml, file) = standard_config(Keys::File);
    let app = spawn_with(&toml.replace("default_app = \"support\"\n", ""), file).await;
    expect_problem(
        app.post("/token", Some(&token_for("alice")), None).await,
        404,
        "unknown_app",
    )
    .await;
    expect(
        app.post("/token?app=support", Some(&token_for("alice")), None)
            .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn platform_selects_the_push_credential_and_device_id_the_endpoint() {
    let app = spawn_app().await;
    let body = app
        .mint_as(
            "alice",
            Some(json!({"grants": ["voice"], "platform": "ios", "device_id": "iphone-1"})),
            200,
        )
        .await;
    let voice = &grants_of(&body)["voice"];
    assert_eq!(voice["push_credential_sid"], CR_IOS);
    assert_eq!(voice["endpoint_id"], "support:alice:iphone-1");

    let body = app
        .mint_as("alice", Some(json!({"platform": "web"})), 200)
        .await;
    assert!(
        grants_of(&body)["voice"]
            .get("push_credential_sid")
            .is_none()
    );
    let response = app
        .post(
            "/apps/support/token",
            Some(&token_for("alice")),
            Some(json!({"platform": "android"})),
        )
        .await;
    expect_problem(response, 400, "unknown_platform").await;
}

#[tokio::test]
async fn video_needs_a_room_the_policy_allows() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/apps/support/token",
            Some(&token_for("alice")),
            Some(json!({"grants": ["video"]})),
        )
        .await;
    expect_problem(response, 400, "room_required").await;
    let body = app
        .mint_as("alice", Some(json!({"room": "user-alice"})), 200)
        .await;
    assert_eq!(grants_of(&body)["video"], json!({"room": "user-alice"}));
    let response = app
        .post(
            "/apps/support/token",
            Some(&token_for("alice")),
            Some(json!({"room": "user-bob"})),
        )
        .await;
    expect_problem(response, 403, "room_not_allowed").await;
}

#[tokio::test]
async fn required_claims_gate_a_grant() {
    let app = spawn_app().await;
    let mut viewer = claims("victor");
    viewer["roles"] = json!(["viewer"]);
    let token = sign(Algorithm::RS256, &rsa_a(), Some("rsa-a"), &viewer);
    let body = expect(
        app.post("/apps/support/token", Some(&token), None).await,
        200,
    )
    .await;
    assert_eq!(body["grants"], json!(["chat", "sync"]));
    let response = app
        .post(
            "/apps/support/token",
            Some(&token),
            Some(json!({"grants": ["voice"]})),
        )
        .await;
    expect_problem(response, 403, "grant_not_allowed").await;
}

#[tokio::test]
async fn es256_callers_are_verified_too() {
    let app = spawn_app().await;
    let token = sign(Algorithm::ES256, &ec_a(), Some("ec-a"), &claims("erin"));
    let body = expect(
        app.post("/apps/support/token", Some(&token), None).await,
        200,
    )
    .await;
    assert_eq!(body["identity"], "erin");
}

#[tokio::test]
async fn a_gateway_caller_is_identified_by_its_headers() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/apps/edge/token"))
        .header("X-Gateway-Secret", GATEWAY_SECRET)
        .header("X-Authenticated-User", "gina")
        .send()
        .await
        .unwrap();
    let body = expect(response, 200).await;
    assert_eq!(body["identity"], "gina");
    // rooms = ["*"]: every room, so no `room` field
    assert_eq!(grants_of(&body), json!({"video": {}, "identity": "gina"}));
}

#[tokio::test]
async fn a_client_request_id_is_echoed() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/apps/support/token"))
        .bearer_auth(token_for("alice"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-123");
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(
        expect(app.get("/healthz", None).await, 200).await["status"],
        "ok"
    );
    assert_eq!(
        expect(app.get("/readyz", None).await, 200).await["status"],
        "ready"
    );
    app.state.begin_shutdown();
    assert_eq!(
        expect(app.get("/readyz", None).await, 503).await["status"],
        "not_ready"
    );
    assert_eq!(
        expect(app.get("/healthz", None).await, 200).await["status"],
        "ok"
    );
}

#[tokio::test]
async fn a_whole_ttl_written_with_a_fraction_is_accepted_as_json_schema_counts_it() {
    let app = spawn_app().await;
    let body = app
        .mint_as("alice", Some(json!({"ttl": 1800.0})), 200)
        .await;
    assert_eq!(body["ttl"], 1800);
    let response = app
        .get("/apps/support/token?ttl=600.0", Some(&token_for("alice")))
        .await;
    assert_eq!(expect(response, 200).await["ttl"], 600);
    let response = app
        .post(
            "/apps/support/token",
            Some(&token_for("alice")),
            Some(json!({"ttl": 1.5})),
        )
        .await;
    expect_problem(response, 400, "invalid_request").await;
    // 2^64 is one past the largest ttl the schema allows
    let too_big: serde_json::Value =
        serde_json::from_str(r#"{"ttl": 18446744073709551616}"#).unwrap();
    let response = app
        .post(
            "/apps/support/token",
            Some(&token_for("alice")),
            Some(too_big),
        )
        .await;
    expect_problem(response, 400, "invalid_request").await;
}
