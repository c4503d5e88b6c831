//! The training traffic of a profile-guided build (`bench/pgo.sh`, which the Dockerfile runs
//! too): waits until tokenmint is ready, sends every caller token of a file as `POST /token`
//! over keep-alive connections, the whole file twice (the second time the verified-caller cache
//! answers), then a few requests tokenmint must refuse, so that the error paths are not laid out
//! as never run. Exits non-zero unless every answer has the status it should.
//!
//! ```sh
//! cargo run --release --example train -- --url http://127.0.0.1:18090 \
//!     --tokens target/bench-pgo/callers-RS256-20000.txt
//! ```
//!
//! The tokens are `examples/callers.rs`'s, for `bench/tokenmint.toml`'s `support` app. The
//! refusals stay under the default `server.auth_failure_limit` (20 a minute per address).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::{Client, StatusCode};

/// What a browser client of the `support` app sends (as `bench/load.lua` does).
const BODY: &str = r#"{"grants":["voice","video"],"room":"support-lobby"}"#;

#[derive(Parser)]
#[command(about = "Sends training traffic to a running tokenmint")]
struct Args {
    /// tokenmint's base URL.
    #[arg(long)]
    url: String,
    /// Caller JWTs, one per line.
    #[arg(long)]
    tokens: PathBuf,
    /// Requests in flight, one keep-alive connection each.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// How long to wait for `/readyz`, in seconds.
    #[arg(long, default_value_t = 10)]
    ready_timeout: u64,
}

/// One request of the training and the status it must get.
struct Case {
    token: Option<String>,
    body: &'static str,
    expect: StatusCode,
}

impl Case {
    fn mint(token: &str) -> Self {
        Case {
            token: Some(token.to_owned()),
            body: BODY,
            expect: StatusCode::OK,
        }
    }
}

/// Requests tokenmint refuses: six failed authentications (under the failure limit) and
/// policy and request errors, which do not count against it.
fn refusals(token: &str) -> Vec<Case> {
    // The same token with its signature's first character changed.
    let signature = token.rfind('.').map_or(0, |dot| dot + 1);
    let mut forged = token.to_owned();
    let swapped = if forged[signature..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    forged.replace_range(signature..signature + 1, swapped);
    let refuse = |token: Option<&str>, body, expect| Case {
        token: token.map(str::to_owned),
        body,
        expect,
    };
    let mut cases = Vec::new();
    for _ in 0..3 {
        cases.push(refuse(None, BODY, StatusCode::UNAUTHORIZED));
        cases.push(refuse(Some(&forged), BODY, StatusCode::UNAUTHORIZED));
    }
    for _ in 0..20 {
        cases.push(refuse(
            Some(token),
            r#"{"grants":["video"],"room":"sales-floor"}"#,
            StatusCode::FORBIDDEN,
        ));
        cases.push(refuse(
            Some(token),
            r#"{"grants":["voice"],"ttl":"#,
            StatusCode::BAD_REQUEST,
        ));
    }
    cases
}

/// Sends `cases` over `connections` concurrent requests; returns how many got another status
/// than expected, after printing the first such answer.
async fn send(client: &Client, url: &str, cases: Vec<Case>, connections: usize) -> usize {
    let cases = Arc::new(cases);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, cases, next) =
                (client.clone(), url.to_owned(), cases.clone(), next.clone());
            tokio::spawn(async move {
                let mut wrong = 0;
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let mut request = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(case.body);
                    if let Some(token) = &case.token {
                        request = request.bearer_auth(token);
                    }
                    let outcome = match request.send().await {
                        Ok(response) if response.status() == case.expect => continue,
                        Ok(response) => format!("status {}", response.status()),
                        Err(error) => format!("no answer: {error}"),
                    };
                    if wrong == 0 {
                        eprintln!("train: expected {}, got {outcome}", case.expect);
                    }
                    wrong += 1;
                }
                wrong
            })
        })
        .collect();
    let mut wrong = 0;
    for worker in workers {
        wrong += worker.await.expect("a request task");
    }
    wrong
}

async fn wait_ready(client: &Client, url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await
            && response.status() == StatusCode::OK
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.tokens) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("train: cannot read {}: {error}", args.tokens.display());
            return ExitCode::FAILURE;
        }
    };
    let tokens: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
    let Some(first) = tokens.first() else {
        eprintln!("train: no tokens in {}", args.tokens.display());
        return ExitCode::FAILURE;
    };
    let base = args.url.trim_end_matches('/');
    let client = Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let ready_url = format!("{base}/readyz");
    if !wait_ready(&client, &ready_url, Duration::from_secs(args.ready_timeout)).await {
        eprintln!(
            "train: {ready_url} did not answer 200 within {} s",
            args.ready_timeout
        );
        return ExitCode::FAILURE;
    }

    let started = Instant::now();
    let token_url = format!("{base}/token");
    let mut sent = 0;
    let mut wrong = 0;
    for _ in 0..2 {
        let cases: Vec<Case> = tokens.iter().map(|token| Case::mint(token)).collect();
        sent += cases.len();
        wrong += send(&client, &token_url, cases, args.connections).await;
    }
    let cases = refusals(first);
    sent += cases.len();
    wrong += send(&client, &token_url, cases, args.connections).await;

    eprintln!(
        "train: {sent} requests in {:.1} s, {wrong} with another status than expected",
        started.elapsed().as_secs_f64()
    );
    if wrong == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
