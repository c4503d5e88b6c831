//! Sends caller tokens through tokenmint's router in process, one `POST /token` each, with the
//! service's configuration, allocator and JSON audit log (written to a sink): the request path
//! without sockets. `bench/callgrind.sh` runs it under `valgrind --tool=callgrind` to count the
//! instructions of one token request, a figure that does not drift with the host's speed.
//!
//! ```sh
//! cargo run --release --example requests -- --config target/bench/tokenmint.toml \
//!     --tokens target/bench/callers-RS256-250000.txt --count 1000
//! ```
//!
//! With `--raw-verify JWKS` it only verifies each token's RS256 signature with the first RSA key
//! of that JWKS, exactly as `examples/ceiling.rs --verify-jwks` does: the reference cost.

use std::io::BufRead;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use tokenmint::config::{self, Source};
use tokenmint::http::{self, AppState};
use tokenmint::runtime::Runtime;
use tokenmint::telemetry;
use tower::ServiceExt;

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a browser client of `bench/tokenmint.toml`'s `support` app sends.
const BODY: &str = r#"{"grants":["voice","video"],"room":"support-lobby"}"#;

#[derive(Parser)]
#[command(about = "Token requests through tokenmint's router, in process")]
struct Args {
    /// tokenmint's configuration (bench/load.sh writes one into its output directory).
    #[arg(long, required_unless_present = "raw_verify")]
    config: Option<PathBuf>,
    /// Caller JWTs, one per line (examples/callers.rs).
    #[arg(long)]
    tokens: PathBuf,
    /// How many requests; each uses the next token.
    #[arg(long)]
    count: usize,
    /// Only verify each token's signature with the first RSA key of this JWKS.
    #[arg(long)]
    raw_verify: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let file = std::io::BufReader::new(std::fs::File::open(&args.tokens)?);
    let tokens = file
        .lines()
        .take(args.count)
        .collect::<Result<Vec<_>, _>>()?;
    if tokens.len() < args.count {
        return Err(format!(
            "{} holds only {} tokens",
            args.tokens.display(),
            tokens.len()
        )
        .into());
    }
    match (&args.raw_verify, &args.config) {
        (Some(jwks), _) => raw_verify(jwks, &tokens),
        (None, Some(config)) => requests(config, tokens),
        (None, None) => unreachable!("clap requires one of them"),
    }
}

fn requests(config: &PathBuf, tokens: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let settings = config::load(&Source::file(config))?;
    telemetry::init(telemetry::subscriber(&settings.log, std::io::sink, false));
    let router = http::router(AppState::new(Runtime::new(
        settings,
        Default::default(),
        None,
    )));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    measure_from_here();
    rt.block_on(async {
        for token in tokens {
            let mut request = Request::post("/token")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(BODY))?;
            let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = router.clone().oneshot(request).await?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            if status != StatusCode::OK {
                return Err(format!("{status}: {}", String::from_utf8_lossy(&body)).into());
            }
        }
        Ok(())
    })
}

fn raw_verify(jwks: &PathBuf, tokens: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let key = common::rsa_key(&std::fs::read(jwks)?);
    measure_from_here();
    match tokens.iter().all(|token| common::signature_ok(&key, token)) {
        true => Ok(()),
        false => Err("a signature did not verify".into()),
    }
}

/// Called once, after set-up and before the first request or verification: `bench/callgrind.sh`
/// zeroes its counts on entry here (`--zero-before`), so set-up work whose length varies from
/// run to run (the calibration of a clock, for one) is not counted.
#[inline(never)]
fn measure_from_here() {
    std::hint::black_box(());
}
