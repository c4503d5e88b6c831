//! Shared by the benches: the fixture keys and a pool of fresh caller tokens signed ahead of
//! the timed region, so a cache keyed by the token cannot answer the `distinct` benchmarks.

#![allow(dead_code)] // each bench uses a different part

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use tokenmint::config::{self, Env, Settings, Source};

// The allocator of the `tokenmint` binary (src/main.rs), so the benches measure what it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub const ISSUER: &str = "https://idp.example.com/";
pub const AUDIENCE: &str = "support-web";
/// The API Key secret every bench configuration reads from `env:T_KEY_SECRET`.
pub const KEY_SECRET: &str = "bench_api_key_secret_0123456789ab";

/// The start of every bench configuration: the server, with `support` as default app, and the
/// `main` account, whose key secret comes from `T_KEY_SECRET`; authenticators and apps follow.
pub const ACCOUNT_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
default_app = "support"

[accounts.main]
account_sid = "AC0123456789abcdef0123456789abcdef"
[[accounts.main.signing_keys]]
sid = "SKfedcba9876543210fedcba9876543210"
secret = "env:T_KEY_SECRET"
"#;

/// [`ACCOUNT_CONFIG`] and `corp`, a JWT authenticator for the [`Issuer`]'s tokens with its keys
/// in the JWKS file `jwks_path`; apps follow.
pub fn jwt_config(jwks_path: &std::path::Path) -> String {
    format!(
        r#"{ACCOUNT_CONFIG}
[auth.corp]
kind = "jwt"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256", "ES256"]
jwks_file = {path:?}
"#,
        path = jwks_path.display().to_string()
    )
}

/// The grants of the load benchmark's `support` app (bench/tokenmint.toml), for app `app`.
pub fn support_grants(app: &str) -> String {
    format!(
        r#"
[apps.{app}.grants.voice]
incoming = true
outgoing_application_sid = "AP00112233445566778899aabbccddeeff"
outgoing_params = {{ agent = "{{sub}}" }}
require_claims = {{ roles = "agent" }}

[apps.{app}.grants.video]
rooms = ["support-*", "user-{{sub}}"]

[apps.{app}.grants.chat]
service_sid = "IS00112233445566778899aabbccdd0002"

[apps.{app}.grants.sync]
service_sid = "IS00112233445566778899aabbccdd0003"
"#
    )
}

/// Loads a bench configuration: `KEY_SECRET` as `T_KEY_SECRET`, plus `env`.
pub fn load(toml: String, env: &[(&str, &str)]) -> Settings {
    let env = env
        .iter()
        .chain(&[("T_KEY_SECRET", KEY_SECRET)])
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<HashMap<_, _>>();
    config::load(&Source::text(toml).with_env(Env::Fixed(env))).unwrap_or_else(|e| panic!("{e}"))
}

/// The public JWK of a fixture key, marked for signatures.
pub fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("a JWK");
    jwk.common.key_id = Some(kid.into());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk
}

/// The JWKs of the fixture keys the [`Issuer`] signs with: RSA `rsa-a`, P-256 `ec-a`.
pub fn fixture_jwks() -> (Jwk, Jwk) {
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa_a.pem")).expect("RSA key");
    let ec = EncodingKey::from_ec_pem(&fixture("ec_a.pem")).expect("EC key");
    (
        jwk(&rsa, Algorithm::RS256, "rsa-a"),
        jwk(&ec, Algorithm::ES256, "ec-a"),
    )
}

/// A JWKS file holding `keys`.
pub fn jwks_file(keys: &[&Jwk]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), json!({ "keys": keys }).to_string()).expect("write the JWKS");
    file
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

pub fn pem_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).expect("PEM is ASCII");
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("PEM body is base64")
}

/// Signs caller tokens with the fixture keys, on every core.
pub struct Issuer {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    pub now: u64,
}

impl Issuer {
    pub fn new() -> Self {
        Self {
            rsa: RsaKeyPair::from_pkcs8(&pem_der(&fixture("rsa_a.pem"))).expect("RSA key"),
            ec: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &pem_der(&fixture("ec_a.pem")),
            )
            .expect("EC key"),
            now: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs(),
        }
    }

    pub fn token(&self, alg: Algorithm, index: u64, rng: &SystemRandom) -> String {
        let (name, kid) = match alg {
            Algorithm::RS256 => ("RS256", "rsa-a"),
            _ => ("ES256", "ec-a"),
        };
        let header = json!({"alg": name, "typ": "JWT", "kid": kid});
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": format!("caller_{index:07}"),
            "iat": self.now, "nbf": self.now, "exp": self.now + 3600, "roles": ["agent"],
        });
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut token);
        let signature = match alg {
            Algorithm::RS256 => {
                let mut sig = vec![0; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(&RSA_PKCS1_SHA256, rng, token.as_bytes(), &mut sig)
                    .expect("RSA signs");
                sig
            }
            _ => self
                .ec
                .sign(rng, token.as_bytes())
                .expect("ECDSA signs")
                .as_ref()
                .to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        token
    }

    /// `count` tokens for subjects `first..first + count`.
    pub fn tokens(&self, alg: Algorithm, first: u64, count: u64) -> Vec<String> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let chunk = count.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..count)
                .step_by(chunk as usize)
                .map(|start| {
                    let end = (start + chunk).min(count);
                    scope.spawn(move || {
                        let rng = SystemRandom::new();
                        (start..end)
                            .map(|i| self.token(alg, first + i, &rng))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("signing thread"))
                .collect()
        })
    }
}

/// Fresh caller tokens, signed ahead in batches so that signing never runs between two timed
/// samples of a benchmark (it would leave the caches cold); each token is handed out once.
pub struct Pool<'a> {
    issuer: &'a Issuer,
    alg: Algorithm,
    next_subject: u64,
    ready: std::collections::VecDeque<String>,
}

impl<'a> Pool<'a> {
    /// Batches of this many tokens (about 2 s of RS256 signing on two cores).
    pub const BATCH: u64 = 8192;

    pub fn new(issuer: &'a Issuer, alg: Algorithm, first_subject: u64) -> Self {
        let mut pool = Self {
            issuer,
            alg,
            next_subject: first_subject,
            ready: Default::default(),
        };
        pool.refill(Self::BATCH);
        pool
    }

    pub fn refill(&mut self, count: u64) {
        let tokens = self.issuer.tokens(self.alg, self.next_subject, count);
        self.next_subject += count;
        self.ready.extend(tokens);
    }

    /// `count` tokens no one has used yet.
    pub fn take(&mut self, count: u64) -> Vec<String> {
        if (self.ready.len() as u64) < count {
            self.refill((count - self.ready.len() as u64).max(Self::BATCH));
        }
        self.ready.drain(..count as usize).collect()
    }
}
