//! The `tokenmint` binary: its commands, exit statuses, and what it prints and logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_tokenmint");
pub const HS_SECRET: &str = "caller-hs256-secret-0123456789abcdef";

pub fn tokenmint(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .envs(test_env())
        .env("T_HS", HS_SECRET);
    command
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A configuration for the binary: secrets by reference, an HS256 caller authenticator.
pub fn config_file(extra: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
{extra}

[log]
format = "json"
level = "debug"

[accounts.main]
account_sid = "env:T_ACCOUNT_SID"
region = "ie1"
auth_tokens = ["env:T_AUTH_TOKEN"]
[[accounts.main.signing_keys]]
sid = "env:T_KEY_SID"
secret = "env:T_KEY_SECRET"

[auth.corp]
kind = "jwt"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
algorithms = ["HS256"]
hs256_secret = "env:T_HS"

[auth.edge]
kind = "gateway"
identity_header = "X-Authenticated-User"
trusted_proxies = ["10.0.0.0/8"]
shared_secret_header = "X-Gateway-Secret"
shared_secret = "env:T_GATEWAY_SECRET"

[apps.support]
account = "main"
auth = "corp"
[apps.support.grants.video]
rooms = ["support-*"]
[apps.support.grants.chat]
service_sid = "{IS_CHAT}"

[apps.edge]
account = "main"
auth = "edge"
[apps.edge.grants.chat]
service_sid = "{IS_CHAT}"
"#
    );
    std::fs::write(file.path(), toml).unwrap();
    file
}

/// A caller JWT for `sub` from the configuration's HS256 authenticator.
pub fn hs_caller(sub: &str) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        None,
        &claims(sub),
    )
}

pub fn path_of(file: &tempfile::NamedTempFile) -> &str {
    file.path().to_str().unwrap()
}

#[test]
fn check_config_prints_a_summary_without_secrets() {
    let file = config_file("");
    let output = tokenmint(&["check-config", "--config", path_of(&file)])
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.starts_with("configuration OK"), "{stdout}");
    assert!(stdout.contains(KEY_SID));
    assert!(stdout.contains("app support"));
    for secret in [KEY_SECRET, GATEWAY_SECRET, HS_SECRET] {
        assert!(!stdout.contains(secret));
    }
}

#[test]
fn check_config_exits_2_listing_every_problem() {
    let file = config_file("default_app = \"missing\"\nmax_body_bytes = 0");
    let output = tokenmint(&["check-config", "--config", path_of(&file)])
        .env_remove("T_KEY_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    for expected in [
        "server.default_app",
        "server.max_body_bytes",
        "accounts.main.signing_keys[0].secret: environment variable T_KEY_SECRET is not set",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected} missing from:\n{stderr}"
        );
    }
    assert!(!stderr.contains(HS_SECRET) && !stderr.contains(GATEWAY_SECRET));
}

#[test]
fn a_missing_secret_file_stops_start_up_with_status_2_naming_the_path() {
    let file = config_file("");
    let toml = std::fs::read_to_string(file.path()).unwrap().replace(
        "secret = \"env:T_KEY_SECRET\"",
        "secret = \"file:/nonexistent/tm/api-secret\"",
    );
    std::fs::write(file.path(), toml).unwrap();
    let output = tokenmint(&["serve", "--config", path_of(&file)])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("/nonexistent/tm/api-secret"));
}

#[test]
fn a_port_in_use_stops_start_up_naming_the_address_and_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let file = config_file(&format!("admin_listen = \"{addr}\""));
    let output = tokenmint(&["serve", "--config", path_of(&file)])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("cannot listen on {addr} (server.admin_listen)")),
        "{stdout}"
    );
}

#[test]
fn a_bad_worker_thread_count_stops_start_up_with_status_2_not_a_panic() {
    let file = config_file("");
    for bad in ["0", "four"] {
        let output = tokenmint(&["serve", "--config", path_of(&file)])
            .env("TOKIO_WORKER_THREADS", bad)
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("TOKIO_WORKER_THREADS must be a whole number above 0"));
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn the_config_can_come_from_tokenmint_config() {
    let file = config_file("");
    let output = tokenmint(&["check-config"])
        .env("TOKENMINT_CONFIG", path_of(&file))
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(
        !text(&output.stdout).contains("app demo"),
        "demo app leaked into a named file"
    );
}

#[test]
fn mint_and_decode_round_trip_offline() {
    let file = config_file("");
    let output = tokenmint(&[
        "mint",
        "--config",
        path_of(&file),
        "--app",
        "support",
        "--identity",
        "olive",
        "--grant",
        "video",
        "--room",
        "support-7",
        "--ttl",
        "999999",
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let token = text(&output.stdout).trim().to_owned();
    let (header, payload) = decode_twilio(&token);
    assert_eq!(header["twr"], "ie1");
    assert_eq!(
        payload["grants"],
        json!({"video": {"room": "support-7"}, "identity": "olive"})
    );
    // ttl clamped to the app's max_ttl (which defaults to its ttl, 1h)
    assert_eq!(
        payload["exp"].as_u64().unwrap() - payload["nbf"].as_u64().unwrap(),
        3600
    );

    let decoded = tokenmint(&["decode", &token, "--secret-env", "T_KEY_SECRET"])
        .output()
        .unwrap();
    assert!(decoded.status.success(), "{}", text(&decoded.stdout));
    let stdout = text(&decoded.stdout);
    assert!(
        stdout.contains("signature: valid") && stdout.contains("\"identity\": \"olive\""),
        "{stdout}"
    );

    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let decoded = tokenmint(&["decode", &tampered, "--secret-env", "T_KEY_SECRET"])
        .output()
        .unwrap();
    assert_eq!(decoded.status.code(), Some(1));
    assert!(text(&decoded.stdout).contains("signature: INVALID"));
}

#[test]
fn decode_refuses_to_check_a_signature_with_an_empty_secret() {
    let header = jsonwebtoken::Header::new(Algorithm::HS256);
    let key = EncodingKey::from_secret(b"");
    let token = jsonwebtoken::encode(&header, &json!({"sub": "mallory"}), &key).unwrap();
    let decoded = tokenmint(&["decode", &token, "--secret-env", "EMPTY"])
        .env("EMPTY", "")
        .output()
        .unwrap();
    assert_eq!(decoded.status.code(), Some(1));
    assert!(!text(&decoded.stdout).contains("signature: valid"));
    assert!(
        text(&decoded.stderr).contains("EMPTY is empty"),
        "{}",
        text(&decoded.stderr)
    );
}

#[test]
fn mint_goes_through_the_same_policy() {
    let file = config_file("");
    let output = tokenmint(&[
        "mint",
        "--config",
        path_of(&file),
        "--app",
        "support",
        "--identity",
        "olive",
        "--grant",
        "video",
        "--room",
        "elsewhere",
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stdout).is_empty(), "a token was printed");
}

/// A running `tokenmint serve`, its addresses read from its own log.
pub struct Served {
    pub child: Child,
    pub addr: String,
    /// The admin listener, when the configuration has one.
    pub admin: Option<String>,
    /// Standard output as read so far, while the server runs.
    seen: std::sync::Arc<std::sync::Mutex<String>>,
    /// The thread reading standard output; `stop` joins it.
    stdout: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// What the server has written to standard output so far.
    pub fn output(&self) -> String {
        self.seen.lock().unwrap().clone()
    }
}

/// A test that fails before `stop` must not leave its server running.
impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn serve(file: &tempfile::NamedTempFile) -> Served {
    let expect_admin = std::fs::read_to_string(file.path())
        .unwrap()
        .contains("admin_listen");
    let mut child = tokenmint(&["serve", "--config", path_of(file)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let (mut addr, mut admin) = (None, None);
    while addr.is_none() || (expect_admin && admin.is_none()) {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        seen.push_str(&line);
        seen.push('\n');
        let event: Value = serde_json::from_str(&line).unwrap();
        let address = event["address"].as_str().map(str::to_owned);
        match event["message"].as_str() {
            Some("listening") => addr = address,
            Some("admin listening") => admin = address,
            _ => {}
        }
    }
    let addr = addr.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(seen));
    let collected = seen.clone();
    let stdout = std::thread::spawn(move || {
        for line in lines {
            let mut collected = collected.lock().unwrap();
            collected.push_str(&line.unwrap());
            collected.push('\n');
        }
    });
    Served {
        child,
        addr,
        admin,
        seen,
        stdout: Some(stdout),
    }
}

/// Sends `signal` (e.g. `-HUP`) to the server.
pub fn signal(served: &Served, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// SIGTERM, then the exit status and everything the server printed.
pub fn stop(mut served: Served) -> (Option<i32>, String) {
    if served.child.try_wait().unwrap().is_none() {
        signal(&served, "-TERM");
    }
    let status = served.child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut served.child.stderr.take().unwrap(), &mut stderr).unwrap();
    served.stdout.take().unwrap().join().unwrap();
    (status.code(), format!("{}{stderr}", served.output()))
}

#[tokio::test]
async fn logs_hold_audit_events_but_never_secrets_tokens_or_credentials() {
    let file = config_file("");
    let served = serve(&file);
    let client = reqwest::Client::new();
    let url = format!("http://{}/apps/support/token", served.addr);
    let caller = hs_caller("lena");
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"not-the-secret-not-the-secret-00"),
        None,
        &claims("lena"),
    );

    let minted = client
        .post(&url)
        .bearer_auth(&caller)
        .json(&json!({"room": "support-1"}))
        .send()
        .await
        .unwrap();
    let minted = expect(minted, 200).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = client.post(&url).bearer_auth(&forged).send().await.unwrap();
    expect_problem(refused, 401, "unauthenticated").await;
    let denied = client
        .post(&url)
        .bearer_auth(&caller)
        .json(&json!({"identity": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(denied, 400, "invalid_request").await;
    let gateway = client
        .post(format!("http://{}/apps/edge/token", served.addr))
        .header("X-Gateway-Secret", GATEWAY_SECRET)
        .header("X-Authenticated-User", "gus")
        .send()
        .await
        .unwrap();
    let gateway_token = expect(gateway, 200).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, logs) = stop(served);
    assert_eq!(status, Some(0), "SIGTERM should exit 0; logs:\n{logs}");
    for secret in [
        KEY_SECRET,
        GATEWAY_SECRET,
        HS_SECRET,
        &caller,
        &forged,
        &minted,
        &gateway_token,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret or token appears in the logs:\n{logs}"
        );
    }
    assert!(
        !logs.contains("eyJ"),
        "something token-like appears in the logs:\n{logs}"
    );
    let events: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let audit: Vec<&Value> = events
        .iter()
        .filter(|e| e["target"] == "tokenmint::audit")
        .collect();
    let minted_events: Vec<_> = audit
        .iter()
        .filter(|e| e["event"] == "token_minted")
        .collect();
    assert_eq!(minted_events.len(), 2, "{audit:#?}");
    assert_eq!(minted_events[0]["app"], "support");
    assert_eq!(minted_events[0]["identity"], "lena");
    assert_eq!(minted_events[0]["key_sid"], KEY_SID);
    assert!(
        minted_events[0]["jti"]
            .as_str()
            .unwrap()
            .starts_with(KEY_SID)
    );
    let denied_codes: Vec<_> = audit
        .iter()
        .filter(|e| e["event"] == "token_denied")
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(denied_codes, ["unauthenticated", "invalid_request"]);
}

/// Mints from `support` once per entry, with `X-Forwarded-For: <entry>` when there is one, then
/// stops the server: its logs, and the `client` of each `token_minted` record.
async fn mint_forwarded(extra: &str, forwarded: &[Option<&str>]) -> (String, Vec<String>) {
    let file = config_file(extra);
    let served = serve(&file);
    let client = reqwest::Client::new();
    let url = format!("http://{}/apps/support/token", served.addr);
    for hop in forwarded {
        let mut request = client.post(&url).bearer_auth(hs_caller("lena"));
        if let Some(hop) = hop {
            request = request.header("X-Forwarded-For", *hop);
        }
        expect(request.send().await.unwrap(), 200).await;
    }
    let (_, logs) = stop(served);
    let clients = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["event"] == "token_minted")
        .map(|event| event["client"].as_str().unwrap_or_default().to_owned())
        .collect();
    (logs, clients)
}

const UNLISTED_PROXY: &str = "X-Forwarded-For from a peer that is not in server.trusted_proxies";

#[tokio::test]
async fn forwarded_requests_from_an_unlisted_proxy_are_warned_of_once() {
    let (logs, clients) = mint_forwarded(
        "",
        &[None, Some("203.0.113.7"), Some("203.0.113.8, 198.51.100.1")],
    )
    .await;
    // The header is not believed from a peer nobody listed.
    assert_eq!(clients, ["127.0.0.1"; 3], "{logs}");
    let warnings: Vec<Value> = logs
        .lines()
        .filter(|line| line.contains(UNLISTED_PROXY))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert_eq!(warnings[0]["level"], "WARN");
    assert_eq!(warnings[0]["peer"], "127.0.0.1");

    // A listed proxy is believed, and nothing is said.
    let (logs, clients) = mint_forwarded(
        r#"trusted_proxies = ["127.0.0.1/32"]"#,
        &[Some("203.0.113.7")],
    )
    .await;
    assert_eq!(clients, ["203.0.113.7"], "{logs}");
    assert!(!logs.contains(UNLISTED_PROXY), "{logs}");
}

/// The `request_id` of every `token_minted` record in `logs`, in the order written.
fn minted_request_ids(logs: &str) -> Vec<String> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["event"] == "token_minted")
        .map(|event| event["request_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn audit_records_are_batched_but_reach_stdout_while_serving_in_order_and_all_at_exit() {
    let file = config_file("");
    let served = serve(&file);
    let client = reqwest::Client::new();
    let url = format!("http://{}/apps/support/token", served.addr);
    let caller = hs_caller("lena");
    let ids: Vec<String> = (0..300).map(|i| format!("batch-{i:04}")).collect();
    let mint = |id: &str| {
        client
            .post(&url)
            .bearer_auth(&caller)
            .header("x-request-id", id)
            .send()
    };
    for id in &ids[..200] {
        expect(mint(id).await.unwrap(), 200).await;
    }
    // Written without a shutdown or a warning to push them out.
    assert!(
        eventually(Duration::from_secs(10), || minted_request_ids(
            &served.output()
        )
        .len()
            == 200)
        .await,
        "records of a running server never reached stdout:\n{}",
        served.output()
    );
    for id in &ids[200..] {
        expect(mint(id).await.unwrap(), 200).await;
    }
    let (status, logs) = stop(served);
    assert_eq!(status, Some(0), "{logs}");
    assert_eq!(
        minted_request_ids(&logs),
        ids,
        "records lost or out of order"
    );
}

#[test]
fn sigterm_makes_the_server_exit_0() {
    let file = config_file("shutdown_grace = \"2s\"");
    let served = serve(&file);
    std::thread::sleep(Duration::from_millis(100));
    let (status, logs) = stop(served);
    assert_eq!(status, Some(0), "{logs}");
    assert!(logs.contains("shutdown requested"));
}

#[test]
fn healthcheck_passes_against_a_running_server_and_fails_without_one() {
    let file = config_file("");
    let served = serve(&file);
    let url = format!("http://{}/healthz", served.addr);
    let output = tokenmint(&["healthcheck", "--url", &url]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let (status, _) = stop(served);
    assert_eq!(status, Some(0));
    let output = tokenmint(&["healthcheck", "--url", &url]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn healthcheck_reads_only_the_address_from_the_configuration() {
    let file = config_file("");
    let served = serve(&file);
    // The file as an operator may have edited it without reloading: another setting broken, a
    // secret gone. The probe still finds the running service and answers for it.
    let edited = config_file("lisen = \"typo\"");
    let toml = std::fs::read_to_string(edited.path())
        .unwrap()
        .replace("127.0.0.1:0", &served.addr.to_string())
        .replace("env:T_KEY_SECRET", "file:/nonexistent/tm/api-secret");
    std::fs::write(edited.path(), toml).unwrap();
    let checked = tokenmint(&["check-config", "--config", path_of(&edited)])
        .output()
        .unwrap();
    assert_eq!(
        checked.status.code(),
        Some(2),
        "the edited file should be invalid"
    );
    let output = tokenmint(&["healthcheck", "--config", path_of(&edited)])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The admin address, when set, is the one probed (here by an environment override).
    let output = tokenmint(&["healthcheck", "--config", path_of(&edited)])
        .env("TOKENMINT__SERVER__ADMIN_LISTEN", "127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let (status, _) = stop(served);
    assert_eq!(status, Some(0));

    // Every failure is 1, never the 2 Docker reserves: also an address that is not one.
    let bad = config_file("admin_listen = \"env:T_NOT_AN_ADDRESS\"");
    let output = tokenmint(&["healthcheck", "--config", path_of(&bad)])
        .env("T_NOT_AN_ADDRESS", "nowhere")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("server.admin_listen"), "{stderr}");
    assert!(!stderr.contains("nowhere"), "{stderr}");
}
