//! Verifying a caller's JWT with a key already in memory (a JWKS file), against the floor: the
//! bare signature check in aws-lc-rs.
//!
//! For each of RS256 (RSA-2048) and ES256 (P-256):
//! - `raw_parsed_key`: `aws_lc_rs::signature::ParsedPublicKey::verify_sig`, key parsed once — the
//!   hardware floor (about 17 µs for RSA-2048, 62 µs for P-256; compare `openssl speed rsa2048
//!   ecdsap256`);
//! - `raw_unparsed_key`: the same signature check building the public key from its components on
//!   every call (`RsaPublicKeyComponents::verify`, `UnparsedPublicKey::verify`), which is what
//!   `jsonwebtoken::crypto::verify` does;
//! - `authenticator_distinct`: `JwtAuthenticator::verify`, every token a new caller (signed
//!   ahead in batches, outside the timed region), so no cache can answer;
//! - `authenticator_same_token`: `JwtAuthenticator::verify` on one token over and over (the path
//!   of a caller asking again, once a verified-caller cache exists).
//!
//! `cargo bench --bench verify`; `bench/criterion-summary.py` prints the ratios.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
mod common;

use common::{Issuer, Pool};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::AlgorithmParameters;
use tokenmint::auth::{Authenticator, JwtAuthenticator};
use tokenmint::runtime::Runtime;

fn authenticator(jwks_path: &std::path::Path) -> Arc<JwtAuthenticator> {
    let toml = common::jwt_config(jwks_path)
        + r#"
[apps.support]
account = "main"
auth = "corp"
[apps.support.grants.video]
rooms = ["*"]
"#;
    let runtime = Runtime::new(common::load(toml, &[]), Default::default(), None);
    match &runtime.authenticators["corp"] {
        Authenticator::Jwt(jwt) => jwt.clone(),
        Authenticator::Gateway(_) => unreachable!("corp is a jwt authenticator"),
    }
}

fn verify(c: &mut Criterion) {
    let issuer = Issuer::new();
    let (rsa_jwk, ec_jwk) = common::fixture_jwks();
    let jwks_file = common::jwks_file(&[&rsa_jwk, &ec_jwk]);
    let auth = authenticator(jwks_file.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");

    let (n, e) = match &rsa_jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => (
            URL_SAFE_NO_PAD.decode(&rsa.n).expect("n"),
            URL_SAFE_NO_PAD.decode(&rsa.e).expect("e"),
        ),
        _ => unreachable!(),
    };
    let point = match &ec_jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => {
            let mut point = vec![4u8];
            point.extend(URL_SAFE_NO_PAD.decode(&ec.x).expect("x"));
            point.extend(URL_SAFE_NO_PAD.decode(&ec.y).expect("y"));
            point
        }
        _ => unreachable!(),
    };
    let rsa_components = RsaPublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    };
    let rsa_parsed = rsa_components
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .expect("RSA public key");
    let ec_unparsed = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point.as_slice());
    let ec_parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).expect("EC public key");

    for (alg, name) in [(Algorithm::RS256, "RS256"), (Algorithm::ES256, "ES256")] {
        let sample = issuer.token(alg, 9_999_999, &SystemRandom::new());
        let (signed, signature) = sample.rsplit_once('.').expect("a JWS");
        let signature = URL_SAFE_NO_PAD.decode(signature).expect("signature");
        let signed = signed.as_bytes();
        let now = issuer.now;
        rt.block_on(auth.verify(&sample, now))
            .unwrap_or_else(|e| panic!("{name} sample refused: {e:?}"));

        let mut group = c.benchmark_group(format!("verify/{name}"));
        group.throughput(Throughput::Elements(1));
        match alg {
            Algorithm::RS256 => {
                group.bench_function("raw_parsed_key", |b| {
                    b.iter(|| rsa_parsed.verify_sig(black_box(signed), &signature))
                });
                group.bench_function("raw_unparsed_key", |b| {
                    b.iter(|| {
                        rsa_components.verify(
                            &RSA_PKCS1_2048_8192_SHA256,
                            black_box(signed),
                            &signature,
                        )
                    })
                });
            }
            _ => {
                group.bench_function("raw_parsed_key", |b| {
                    b.iter(|| ec_parsed.verify_sig(black_box(signed), &signature))
                });
                group.bench_function("raw_unparsed_key", |b| {
                    b.iter(|| ec_unparsed.verify(black_box(signed), &signature))
                });
            }
        }
        // Signing the fresh tokens takes longer than verifying them: keep this one short.
        group.measurement_time(Duration::from_secs(2));
        let mut pool = Pool::new(&issuer, alg, 0);
        group.bench_function("authenticator_distinct", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let tokens = pool.take(iters);
                let auth = auth.clone();
                async move {
                    let started = Instant::now();
                    for token in &tokens {
                        black_box(auth.verify(black_box(token), now).await.expect("verifies"));
                    }
                    started.elapsed()
                }
            })
        });
        group.measurement_time(Duration::from_secs(3));
        group.bench_function("authenticator_same_token", |b| {
            b.to_async(&rt)
                .iter(|| auth.verify(black_box(&sample), now))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = verify
}
criterion_main!(benches);
