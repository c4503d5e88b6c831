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

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Parser;

#[derive(Parser)]
#[command(about = "A bare axum server answering a fixed JSON body")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:18081")]
    listen: SocketAddr,
    /// The JSON body of the token route; a small fixed object when omitted.
    #[arg(long)]
    body_file: Option<PathBuf>,
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
    let token = move || async move {
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
