//! The HTTP ceiling of the load benchmark: a bare axum server on the same Tokio runtime defaults
//! as tokenmint, whose token route answers a fixed JSON body without looking at the request. No
//! authentication, policy, signing, logging or metrics: what is left is HTTP/1.1 parsing, routing
//! and writing the response, so tokenmint's throughput divided by this one is the share of the
//! machine that the HTTP stack leaves to the real work.
//!
//! ```sh
//! cargo run --release --example ceiling -- --listen 127.0.0.1:18081 --body-file response.json
//! ```
//!
//! `bench/load.sh` passes a real tokenmint response as `--body-file`, so both servers send the
//! same number of bytes.
//!
//! With `--verify-jwks FILE` it also checks each request's bearer JWT signature with the first
//! RSA key of that JWKS (aws-lc, key parsed once) and answers 401 when it fails: the floor of a
//! token server, HTTP plus the one RSA verification no caller can be spared. Nothing else of the
//! token is looked at.

use std::net::SocketAddr;
use std::path::PathBuf;

use aws_lc_rs::signature::ParsedPublicKey;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Parser;

mod common;

#[derive(Parser)]
#[command(about = "A bare axum server answering a fixed JSON body")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:18081")]
    listen: SocketAddr,
    /// The JSON body of the token route; a small fixed object when omitted.
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// Verify each request's bearer JWT with the first RSA key of this JWKS file (RS256).
    #[arg(long)]
    verify_jwks: Option<PathBuf>,
}

/// Whether the request's bearer JWT carries a valid signature by `key`.
fn bearer_signature_ok(key: &ParsedPublicKey, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| common::signature_ok(key, token))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let body: &'static [u8] = match &args.body_file {
        Some(path) => std::fs::read(path)?.leak(),
        None => {
            br#"{"token":"eyJ","identity":"caller","app":"support","grants":["voice"],"ttl":3600}"#
        }
    };
    let key: Option<&'static ParsedPublicKey> = match &args.verify_jwks {
        Some(path) => Some(Box::leak(Box::new(common::rsa_key(&std::fs::read(path)?)))),
        None => None,
    };
    let token = move |headers: HeaderMap| async move {
        if key.is_some_and(|key| !bearer_signature_ok(key, &headers)) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    };
    let ready = || async {
        (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"ready"}"#,
        )
    };
    let app = Router::new()
        .route("/token", get(token).post(token))
        .route("/apps/{app}/token", get(token).post(token))
        .route("/readyz", get(ready))
        .route("/healthz", get(ready));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("ceiling listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
