//! The whole token route, in process: `http::router` (every layer the server installs: panic
//! guard, timeout, metrics, CORS, the handler) called through `tower::ServiceExt::oneshot` with
//! a ready-made request, the response body read to the end. No socket, no HTTP parsing.
//!
//! - `handler/RS256_distinct`, `handler/ES256_distinct`: `POST /token` for the JWT app, every
//!   request a new caller (tokens signed ahead in batches, outside the timed region), so no
//!   cache can answer;
//! - `handler/RS256_same_token`: one caller over and over (what a verified-caller cache speeds up);
//! - `handler/gateway`: the same app policy behind a gateway authenticator (a shared-secret
//!   header instead of a JWT): the handler's cost without any signature verification;
//! - `handler/gateway_json_log`: the same with the service's JSON log subscriber at `info`
//!   writing to a sink, i.e. the audit record's formatting cost on top.
//!
//! `cargo bench --bench handler`; `bench/criterion-summary.py` prints the ratios.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
mod common;

use common::{Issuer, Pool};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use tokenmint::config::{LogFormat, LogSettings};
use tokenmint::http::{self, AppState};
use tokenmint::runtime::Runtime;
use tower::ServiceExt;

const GATEWAY_SECRET: &str = "bench-gateway-shared-secret-0123";
const BODY: &str = r#"{"grants":["voice","video"],"room":"support-lobby"}"#;

/// The load benchmark's configuration (bench/tokenmint.toml) plus `support_gw`, the same app
/// behind a gateway authenticator.
fn router(jwks_path: &std::path::Path) -> Router {
    let toml = common::jwt_config(jwks_path)
        + &format!(
            r#"
[auth.edge]
kind = "gateway"
identity_header = "X-Authenticated-User"
claim_headers = {{ roles = "X-Authenticated-Roles" }}
shared_secret_header = "X-Gateway-Secret"
shared_secret = "env:T_GATEWAY_SECRET"

[apps.support]
account = "main"
auth = "corp"
identity = "{{sub}}"
ttl = "1h"
max_ttl = "4h"
cors_origins = ["https://support.example.com"]
{support_grants}
[apps.support_gw]
account = "main"
auth = "edge"
identity = "{{sub}}"
ttl = "1h"
max_ttl = "4h"
{gateway_grants}"#,
            support_grants = common::support_grants("support"),
            gateway_grants = common::support_grants("support_gw"),
        );
    let settings = common::load(toml, &[("T_GATEWAY_SECRET", GATEWAY_SECRET)]);
    http::router(AppState::new(Runtime::new(
        settings,
        Default::default(),
        None,
    )))
}

fn peer() -> ConnectInfo<SocketAddr> {
    ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000)))
}

fn jwt_request(token: &str) -> Request<Body> {
    let mut request = Request::post("/token")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(BODY))
        .expect("a request");
    request.extensions_mut().insert(peer());
    request
}

fn gateway_request(subject: &str) -> Request<Body> {
    let mut request = Request::post("/apps/support_gw/token")
        .header("x-authenticated-user", subject)
        .header("x-authenticated-roles", "agent")
        .header("x-gateway-secret", GATEWAY_SECRET)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(BODY))
        .expect("a request");
    request.extensions_mut().insert(peer());
    request
}

/// Sends every request through the router and returns the time it took.
async fn run(router: &Router, requests: Vec<Request<Body>>) -> Duration {
    let started = Instant::now();
    for request in requests {
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        if status != StatusCode::OK {
            panic!("{status}: {}", String::from_utf8_lossy(&body));
        }
        black_box(body);
    }
    started.elapsed()
}

fn handler(c: &mut Criterion) {
    let issuer = Issuer::new();
    let (rsa_jwk, ec_jwk) = common::fixture_jwks();
    let jwks_file = common::jwks_file(&[&rsa_jwk, &ec_jwk]);
    let router = router(jwks_file.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");

    let mut group = c.benchmark_group("handler");
    group.throughput(Throughput::Elements(1));
    // Signing the fresh caller tokens takes longer than serving them: keep these short.
    group.measurement_time(Duration::from_secs(2));
    for (alg, name) in [
        (Algorithm::RS256, "RS256_distinct"),
        (Algorithm::ES256, "ES256_distinct"),
    ] {
        let mut pool = Pool::new(&issuer, alg, 0);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let requests: Vec<_> = pool.take(iters).iter().map(|t| jwt_request(t)).collect();
                let router = &router;
                async move { run(router, requests).await }
            })
        });
    }
    group.measurement_time(Duration::from_secs(3));
    let same = issuer.token(Algorithm::RS256, 9_999_999, &SystemRandom::new());
    group.bench_function("RS256_same_token", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let requests: Vec<_> = (0..iters).map(|_| jwt_request(&same)).collect();
            let router = &router;
            async move { run(router, requests).await }
        })
    });
    let gateway = |b: &mut criterion::Bencher<'_>| {
        b.to_async(&rt).iter_custom(|iters| {
            let requests: Vec<_> = (0..iters)
                .map(|i| gateway_request(&format!("caller_{i:07}")))
                .collect();
            let router = &router;
            async move { run(router, requests).await }
        })
    };
    group.bench_function("gateway", gateway);
    let log = LogSettings {
        format: LogFormat::Json,
        level: "info".into(),
    };
    let subscriber = tokenmint::telemetry::subscriber(&log, std::io::sink, false);
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("gateway_json_log", gateway);
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = handler
}
criterion_main!(benches);
