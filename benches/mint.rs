//! Minting an Access Token from a prepared plan, against the floor: one HMAC-SHA256 over the
//! same bytes.
//!
//! - `mint/raw_hmac_sha256`: `aws_lc_rs::hmac::sign` with a key built once, over exactly the
//!   signing input (`base64url(header) "." base64url(payload)`) that `Signer::sign` produces;
//! - `mint/raw_hmac_sha256_key_per_call`: the same with `hmac::Key::new` on every call;
//! - `mint/signer_sign`: `Signer::sign` on a prepared `AccessToken` (payload JSON, base64url,
//!   HMAC, signature encoding). Target: ≤ 3 × `raw_hmac_sha256`;
//! - `mint/runtime_mint`: `Runtime::mint`, i.e. the app's policy plan, a fresh `jti` and the
//!   signature, as the handler calls it.
//!
//! `cargo bench --bench mint`; `bench/criterion-summary.py` prints the ratios.

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::hmac;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tokenmint::auth::Principal;
use tokenmint::policy::{GrantKind, MintRequest};
use tokenmint::runtime::Runtime;
use tokenmint::twilio::AccessToken;

mod common;

use common::{ACCOUNT_CONFIG, KEY_SECRET, support_grants};

const NOW: u64 = 1_700_000_000;

/// The `support` app of the load benchmark (bench/tokenmint.toml). How the caller was verified
/// does not matter here: the plan is made before timing starts.
fn config() -> String {
    let grants = support_grants("support");
    format!(
        r#"{ACCOUNT_CONFIG}
[auth.corp]
kind = "gateway"
identity_header = "X-Authenticated-User"
claim_headers = {{ roles = "X-Authenticated-Roles" }}
trusted_proxies = ["127.0.0.1/32"]

[apps.support]
account = "main"
auth = "corp"
identity = "{{sub}}"
ttl = "1h"
max_ttl = "4h"
{grants}"#
    )
}

fn mint(c: &mut Criterion) {
    let settings = common::load(config(), &[]);
    let app = settings.apps["support"].clone();

    // The caller and request of the load benchmark: voice and video in a support room.
    let claims: Map<String, Value> = serde_json::from_value(json!({
        "iss": "https://idp.example.com/",
        "aud": "support-web",
        "sub": "caller_0000042",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 86_400,
        "roles": ["agent"],
    }))
    .expect("claims are an object");
    let principal = Principal {
        subject: "caller_0000042".into(),
        claims,
    };
    let request = MintRequest {
        grants: Some(vec![GrantKind::Voice, GrantKind::Video]),
        room: Some("support-lobby".into()),
        ..MintRequest::default()
    };
    let plan = app.policy.plan(&principal, &request).expect("the plan");
    let token = AccessToken {
        grants: plan.grants,
        issued_at: NOW,
        ttl_secs: plan.ttl_secs,
        jti_suffix: "0123456789abcdef0123456789abcdef".into(),
    };
    let signer = app.account.signer();

    let jws = signer.sign(&token).expect("signs");
    let signing_input = &jws[..jws.rfind('.').expect("a JWS")];
    let key = hmac::Key::new(hmac::HMAC_SHA256, KEY_SECRET.as_bytes());
    // The floor really is the same computation.
    let signature = jws.rsplit('.').next().expect("a signature");
    use base64::Engine;
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(hmac::sign(&key, signing_input.as_bytes()).as_ref());
    assert_eq!(
        signature, expected,
        "Signer::sign is HMAC-SHA256 over these bytes"
    );

    let mut group = c.benchmark_group("mint");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_hmac_sha256", |b| {
        b.iter(|| hmac::sign(&key, black_box(signing_input.as_bytes())))
    });
    group.bench_function("raw_hmac_sha256_key_per_call", |b| {
        b.iter(|| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, black_box(KEY_SECRET.as_bytes()));
            hmac::sign(&key, black_box(signing_input.as_bytes()))
        })
    });
    group.bench_function("signer_sign", |b| {
        b.iter(|| signer.sign(black_box(&token)).expect("signs"))
    });
    group.bench_function("runtime_mint", |b| {
        b.iter(|| {
            Runtime::mint(&app, black_box(&principal), black_box(&request), NOW).expect("mints")
        })
    });
    group.finish();
    eprintln!(
        "mint: signing input {} bytes, token {} bytes",
        signing_input.len(),
        jws.len()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = mint
}
criterion_main!(benches);
