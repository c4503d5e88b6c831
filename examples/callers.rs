//! Makes the callers of a load benchmark: a JWKS file with the public keys of the test identity
//! provider (tests/fixtures, or keys made for this run with `--new-keys`) and a file of caller
//! JWTs, one per line, each for its own subject.
//!
//! ```sh
//! cargo run --release --example callers -- --out target/bench --count 200000 --alg RS256
//! ```
//!
//! writes `target/bench/jwks.json` and `target/bench/callers-RS256-200000.txt` (or the file named
//! by `--tokens`). Subjects are `caller_0000000`, `caller_0000001`, … (underscores: Twilio voice
//! identities allow only letters, digits and `_`); every token carries the issuer and audience
//! of `bench/tokenmint.toml` and `roles: ["agent"]`. Signing runs on every
//! core: about 0.3 ms of CPU per RS256 token, 0.02 ms per ES256 token.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::Parser;
use serde_json::json;

/// The caller tokens' issuer; `bench/tokenmint.toml` expects it.
const ISSUER: &str = "https://idp.example.com/";
/// The caller tokens' audience; `bench/tokenmint.toml` expects it.
const AUDIENCE: &str = "support-web";

#[derive(Parser)]
#[command(about = "Writes a JWKS file and a file of caller JWTs (one per line)")]
struct Args {
    /// Directory for jwks.json and the token file.
    #[arg(long)]
    out: PathBuf,
    /// Number of tokens, each with its own subject.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// RS256 (key `rsa-a`) or ES256 (key `ec-a`).
    #[arg(long, default_value = "RS256")]
    alg: String,
    /// Token lifetime in seconds (`exp` = now + this).
    #[arg(long, default_value_t = 86_400)]
    ttl_secs: u64,
    /// The token file; default `<out>/callers-<alg>-<count>.txt`.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Sign with an RSA-2048 and a P-256 key made for this run instead of the fixtures' (for a
    /// build context without tests/, such as the Dockerfile's profile-guided build).
    #[arg(long)]
    new_keys: bool,
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The DER inside a PEM file.
fn pem_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).expect("PEM is ASCII");
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).expect("PEM body is base64")
}

/// The public JWK of an RSA key, with `kid`, `alg` and `use: sig`.
fn rsa_jwk(pair: &RsaKeyPair, kid: &str) -> serde_json::Value {
    let public = pair.public_key();
    json!({
        "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    })
}

/// The public JWK of a P-256 key, with `kid`, `alg` and `use: sig`.
fn ec_jwk(pair: &EcdsaKeyPair, kid: &str) -> serde_json::Value {
    // The uncompressed point: 0x04, then x and y, 32 bytes each.
    let point = pair.public_key().as_ref();
    json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    })
}

enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Key {
    fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Vec<u8> {
        match self {
            Key::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, rng, message, &mut signature)
                    .expect("RSA signing");
                signature
            }
            Key::Ec(pair) => pair
                .sign(rng, message)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
        }
    }
}

fn main() {
    let args = Args::parse();
    let (rsa, ec) = if args.new_keys {
        (
            RsaKeyPair::generate(KeySize::Rsa2048).expect("an RSA key"),
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("a P-256 key"),
        )
    } else {
        (
            RsaKeyPair::from_pkcs8(&pem_der(&fixture("rsa_a.pem"))).expect("RSA key"),
            EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &pem_der(&fixture("ec_a.pem")),
            )
            .expect("EC key"),
        )
    };
    std::fs::create_dir_all(&args.out).expect("create the output directory");
    let jwks = json!({"keys": [rsa_jwk(&rsa, "rsa-a"), ec_jwk(&ec, "ec-a")]});
    let jwks_path = args.out.join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).expect("write jwks.json");

    let (key, kid) = match args.alg.as_str() {
        "RS256" => (Key::Rsa(rsa), "rsa-a"),
        "ES256" => (Key::Ec(ec), "ec-a"),
        other => {
            eprintln!("error: --alg must be RS256 or ES256, not {other:?}");
            std::process::exit(2);
        }
    };

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": args.alg, "typ": "JWT", "kid": kid}).to_string());
    let make = |index: usize, rng: &SystemRandom| -> String {
        let claims = json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": format!("caller_{index:07}"),
            "iat": now,
            "nbf": now,
            "exp": now + args.ttl_secs,
            "roles": ["agent"],
        });
        let mut token = header.clone();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut token);
        let signature = key.sign(rng, token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        token
    };

    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = args.count.div_ceil(threads).max(1);
    let tokens: Vec<Vec<String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.count)
            .step_by(chunk)
            .map(|start| {
                let make = &make;
                let end = (start + chunk).min(args.count);
                scope.spawn(move || {
                    let rng = SystemRandom::new();
                    (start..end).map(|i| make(i, &rng)).collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("signing thread"))
            .collect()
    });

    let tokens_path = args.tokens.unwrap_or_else(|| {
        args.out
            .join(format!("callers-{}-{}.txt", args.alg, args.count))
    });
    let file = std::fs::File::create(&tokens_path).expect("create the token file");
    let mut out = std::io::BufWriter::new(file);
    for token in tokens.iter().flatten() {
        writeln!(out, "{token}").expect("write a token");
    }
    out.flush().expect("write the token file");
    eprintln!(
        "wrote {} {} tokens to {} and the key set to {} in {:.1} s",
        args.count,
        args.alg,
        tokens_path.display(),
        jwks_path.display(),
        started.elapsed().as_secs_f64()
    );
}
