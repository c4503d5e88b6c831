//! The `jwt` authenticator against a real JWKS server on loopback (SECURITY.md §B 1–4, row A8).

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::helpers::*;

async fn app_with(server: &JwksServer, tweak: impl Fn(String) -> String) -> TestApp {
    let (toml, _) = standard_config(Keys::Url(&server.url));
    spawn_with(&tweak(toml), None).await
}

async fn ready_app(server: &JwksServer, tweak: impl Fn(String) -> String) -> TestApp {
    let app = app_with(server, tweak).await;
    assert!(
        eventually(Duration::from_secs(5), || app.state.is_ready()).await,
        "app never became ready"
    );
    app
}

/// Puts `settings` (the JWKS timing keys) in place of the standard 30 s refetch cooldown.
fn jwks_timing(settings: &str) -> impl Fn(String) -> String + '_ {
    move |toml| toml.replace("jwks_refetch_cooldown = \"30s\"", settings)
}

fn token_b(sub: &str, kid: &str) -> String {
    sign(Algorithm::RS256, &rsa_b(), Some(kid), &claims(sub))
}

fn jwks_a_and_b() -> serde_json::Value {
    let mut doc = jwks_a();
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .push(jwk(&rsa_b(), Algorithm::RS256, "rsa-b"));
    doc
}

#[tokio::test]
async fn keys_are_fetched_once_and_then_served_from_the_cache() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, |t| t).await;
    assert_eq!(server.hits(), 1);
    for sub in ["alice", "bob", "carol"] {
        app.mint_as(sub, None, 200).await;
    }
    let es256 = sign(Algorithm::ES256, &ec_a(), Some("ec-a"), &claims("dave"));
    expect(
        app.post("/apps/support/token", Some(&es256), None).await,
        200,
    )
    .await;
    assert_eq!(server.hits(), 1, "cached keys were fetched again");
}

#[tokio::test]
async fn an_unknown_kid_flood_causes_at_most_one_fetch_per_cooldown() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, |t| t).await;
    for i in 0..25 {
        let token = sign(
            Algorithm::RS256,
            &rsa_a(),
            Some(&format!("random-{i}")),
            &claims("eve"),
        );
        let response = app.post("/apps/support/token", Some(&token), None).await;
        expect_problem(response, 401, "unauthenticated").await;
    }
    assert_eq!(
        server.hits(),
        2,
        "expected the start-up fetch plus one refetch"
    );
    // Known keys keep working throughout.
    app.mint_as("alice", None, 200).await;
}

#[tokio::test]
async fn a_rotated_in_key_verifies_after_one_refetch_and_a_removed_key_stops() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, jwks_timing("jwks_refetch_cooldown = \"1s\"")).await;

    // Provider rotates: B's key appears.
    server.set(JwksMode::Serve(jwks_a_and_b()));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = app
        .post("/apps/support/token", Some(&token_b("bob", "rsa-b")), None)
        .await;
    expect(response, 200).await;
    assert_eq!(server.hits(), 2);

    // Provider removes A's RSA key; the next unknown kid refetches, after which A no longer verifies.
    server.set(JwksMode::Serve(
        json!({"keys": [jwk(&rsa_b(), Algorithm::RS256, "rsa-b")]}),
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unknown = token_b("bob", "rsa-new");
    expect_problem(
        app.post("/apps/support/token", Some(&unknown), None).await,
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(server.hits(), 3);
    let old = token_for("alice");
    expect_problem(
        app.post("/apps/support/token", Some(&old), None).await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test]
async fn a_refetch_started_by_a_request_that_hangs_up_still_completes() {
    use tokio::io::AsyncWriteExt;

    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, |toml| toml).await;
    // The provider rotates B's key in and takes 500 ms to answer.
    server.set(JwksMode::Slow(Duration::from_millis(500), jwks_a_and_b()));

    // A token with an unknown kid (no valid signature needed) starts the refetch, and its
    // client hangs up while the provider is still answering.
    let forged = token_b("eve", "no-such-kid");
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "POST /apps/support/token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {forged}\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    assert!(eventually(Duration::from_secs(5), || server.hits() == 2).await);
    drop(stream);

    // The fetch was not cancelled with the request: B's key arrives, within the cooldown that
    // the hung-up request spent, with no second fetch.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let response = app
        .post("/apps/support/token", Some(&token_b("bob", "rsa-b")), None)
        .await;
    expect(response, 200).await;
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn the_last_good_key_set_keeps_serving_when_the_provider_goes_down() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    // Refresh every second so several refreshes fail during the test.
    let app = ready_app(
        &server,
        jwks_timing("jwks_refetch_cooldown = \"1s\"\njwks_cache_ttl = \"1s\""),
    )
    .await;
    server.set(JwksMode::Status(500));
    let hits_before = server.hits();
    assert!(
        eventually(Duration::from_secs(5), || server.hits() >= hits_before + 2).await,
        "no refresh was attempted"
    );
    app.mint_as("alice", None, 200).await;
    assert!(
        app.state.is_ready(),
        "a provider outage made the service unready"
    );
    expect(app.get("/readyz", None).await, 200).await;
}

#[tokio::test]
async fn the_last_good_key_set_serves_no_longer_than_jwks_max_stale() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(
        &server,
        jwks_timing(
            "jwks_refetch_cooldown = \"1s\"\njwks_cache_ttl = \"1s\"\njwks_max_stale = \"3s\"",
        ),
    )
    .await;
    server.set(JwksMode::Status(500));
    app.mint_as("alice", None, 200).await;
    // Three seconds after the last good fetch the set is too old to trust: not ready, and
    // callers (a cached one too) are told to come back rather than refused.
    assert!(
        eventually(Duration::from_secs(8), || !app.state.is_ready()).await,
        "a key set older than jwks_max_stale still counted"
    );
    for sub in ["alice", "bob"] {
        let response = app
            .post("/apps/support/token", Some(&token_for(sub)), None)
            .await;
        assert_eq!(response.headers()["retry-after"], "1", "{sub}");
        expect_problem(response, 503, "unavailable").await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // The provider is back: the next caller's refetch finds the keys.
    server.set(JwksMode::Serve(jwks_a()));
    app.mint_as("carol", None, 200).await;
    assert!(app.state.is_ready());
}

#[tokio::test]
async fn garbage_answers_never_replace_the_last_good_key_set() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, jwks_timing("jwks_refetch_cooldown = \"1s\"")).await;
    let ten_megabytes = vec![b' '; 10 * 1024 * 1024];
    // A valid key set over the size limit, holding B's key under every probe's kid below: read
    // whole, it would let the probes verify.
    let probe_keys: Vec<_> = (0..10)
        .map(|i| jwk(&rsa_b(), Algorithm::RS256, &format!("probe-{i}")))
        .collect();
    let oversized = json!({"keys": probe_keys, "padding": "x".repeat(300 * 1024)});
    let garbage = [
        JwksMode::Body("text/html", b"<html><body>login</body></html>".to_vec()),
        JwksMode::Body("application/json", b"{\"keys\": [".to_vec()),
        JwksMode::Serve(json!({"keys": []})),
        JwksMode::Serve(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "rsa-b"}]})),
        JwksMode::Serve(json!({"keys": "nope"})),
        JwksMode::Body("application/json", ten_megabytes),
        JwksMode::Serve(oversized.clone()),
        JwksMode::Chunked(oversized),
        JwksMode::Status(404),
    ];
    for (i, mode) in garbage.into_iter().enumerate() {
        server.set(mode);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let hits = server.hits();
        // An unknown kid forces a refetch, which gets the garbage.
        let probe = token_b("mallory", &format!("probe-{i}"));
        expect_problem(
            app.post("/apps/support/token", Some(&probe), None).await,
            401,
            "unauthenticated",
        )
        .await;
        assert_eq!(server.hits(), hits + 1, "case {i}: no refetch happened");
        // The last good set still verifies.
        app.mint_as("alice", None, 200).await;
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = JwksServer::start(JwksMode::Serve(
        json!({"keys": [jwk(&rsa_b(), Algorithm::RS256, "rsa-b")]}),
    ))
    .await;
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, jwks_timing("jwks_refetch_cooldown = \"1s\"")).await;
    server.set(JwksMode::Redirect(elsewhere.url.clone()));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = app
        .post("/apps/support/token", Some(&token_b("bob", "rsa-b")), None)
        .await;
    expect_problem(response, 401, "unauthenticated").await;
    assert_eq!(elsewhere.hits(), 0, "the redirect was followed");
    app.mint_as("alice", None, 200).await;
}

#[tokio::test]
async fn a_provider_down_at_start_leaves_the_service_live_but_unready_then_recovers() {
    let server = JwksServer::start(JwksMode::Status(503)).await;
    let app = app_with(&server, |t| t).await;
    expect(app.get("/healthz", None).await, 200).await;
    expect(app.get("/readyz", None).await, 503).await;

    let response = app
        .post("/apps/support/token", Some(&token_for("alice")), None)
        .await;
    let retry_after = response.headers().get("retry-after").cloned();
    expect_problem(response, 503, "unavailable").await;
    let retry_after: u64 = retry_after
        .expect("no Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);

    // The provider comes back; the background retry (with backoff) picks it up.
    server.set(JwksMode::Serve(jwks_a()));
    assert!(
        eventually(Duration::from_secs(8), || app.state.is_ready()).await,
        "never recovered"
    );
    assert!(server.hits() >= 2, "no retry happened");
    expect(app.get("/readyz", None).await, 200).await;
    app.mint_as("alice", None, 200).await;
}

#[tokio::test]
async fn a_provider_that_stays_down_is_retried_less_and_less_often() {
    let server = JwksServer::start(JwksMode::Status(503)).await;
    let _app = app_with(&server, |t| t).await;
    // Backing off from 1 s, doubling: fetches at about 0, 1, 3 and 7 s. Retrying every second
    // would have made seven by now; a slow machine only makes fewer.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let hits = server.hits();
    assert!((2..=4).contains(&hits), "{hits} fetches in 6.5 s of outage");
}

#[tokio::test]
async fn a_slow_provider_delays_only_the_requests_that_need_it() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, |t| t).await;
    server.set(JwksMode::Slow(Duration::from_secs(30), jwks_a_and_b()));

    let slow_client = app.client.clone();
    let slow_url = app.url("/apps/support/token");
    let slow = tokio::spawn(async move {
        slow_client
            .post(slow_url)
            .bearer_auth(token_b("bob", "rsa-b"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    // Let the slow refetch start, then show a caller with a known key is not held up by it.
    assert!(eventually(Duration::from_secs(5), || server.hits() == 2).await);
    app.mint_as("alice", None, 200).await;
    assert!(
        !slow.is_finished(),
        "the slow fetch finished before the fast request"
    );
    // The fetch times out (5 s) and the unknown key is refused, not accepted.
    assert_eq!(slow.await.unwrap(), 401);
    app.mint_as("alice", None, 200).await;
}

async fn cache_counts(app: &TestApp) -> (u64, u64) {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let count = |result: &str| {
        let prefix = format!("tokenmint_caller_cache_total{{auth=\"corp\",result=\"{result}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0, |n| n.parse().unwrap())
    };
    (count("hit"), count("miss"))
}

#[tokio::test]
async fn a_caller_asking_again_is_answered_from_the_verified_cache() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, |t| t).await;
    let token = token_for("alice");
    for _ in 0..3 {
        let body = expect(
            app.post("/apps/support/token", Some(&token), None).await,
            200,
        )
        .await;
        assert_eq!(body["identity"], "alice");
        // Voice needs `roles: ["agent"]`: a hit reads the caller's claims as a miss does.
        assert_eq!(body["grants"], json!(["chat", "sync", "voice"]));
    }
    assert_eq!(cache_counts(&app).await, (2, 1));
    // A different token (another caller) is verified on its own.
    app.mint_as("bob", None, 200).await;
    assert_eq!(cache_counts(&app).await, (2, 2));
}

#[tokio::test]
async fn a_cached_caller_never_outlives_its_token() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, |t| t).await;
    let mut expiring = claims("alice");
    // Accepted for about two more seconds (60 s leeway).
    expiring["exp"] = json!(tokenmint::runtime::unix_now() - 58);
    let token = sign(Algorithm::RS256, &rsa_a(), Some("rsa-a"), &expiring);
    expect(
        app.post("/apps/support/token", Some(&token), None).await,
        200,
    )
    .await;
    expect(
        app.post("/apps/support/token", Some(&token), None).await,
        200,
    )
    .await;
    assert_eq!(cache_counts(&app).await.0, 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = app.post("/apps/support/token", Some(&token), None).await;
    expect_problem(response, 401, "unauthenticated").await;
}

#[tokio::test]
async fn a_key_set_change_invalidates_cached_callers() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, jwks_timing("jwks_refetch_cooldown = \"1s\"")).await;
    let token = token_for("alice");
    expect(
        app.post("/apps/support/token", Some(&token), None).await,
        200,
    )
    .await;

    // The provider drops key A; an unknown kid makes the service refetch.
    server.set(JwksMode::Serve(
        json!({"keys": [jwk(&rsa_b(), Algorithm::RS256, "rsa-b")]}),
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    expect(
        app.post("/apps/support/token", Some(&token_b("bob", "rsa-b")), None)
            .await,
        200,
    )
    .await;

    let response = app.post("/apps/support/token", Some(&token), None).await;
    expect_problem(response, 401, "unauthenticated").await;
}

#[tokio::test]
async fn a_caller_asking_again_after_hundreds_of_others_is_still_cached() {
    let server = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let app = ready_app(&server, |t| t).await;
    let mint_distinct = |range: std::ops::Range<usize>| {
        let app = &app;
        async move {
            for i in range {
                let token = sign(
                    Algorithm::ES256,
                    &ec_a(),
                    Some("ec-a"),
                    &claims(&format!("u{i}")),
                );
                expect(
                    app.post("/apps/support/token", Some(&token), None).await,
                    200,
                )
                .await;
            }
        }
    };
    // Fill the cache past its capacity first, as a busy service would.
    mint_distinct(0..4500).await;
    let alice = token_for("alice");
    expect(
        app.post("/apps/support/token", Some(&alice), None).await,
        200,
    )
    .await;
    mint_distinct(4500..4800).await;
    expect(
        app.post("/apps/support/token", Some(&alice), None).await,
        200,
    )
    .await;
    assert_eq!(cache_counts(&app).await, (1, 4801));
}
