//! No secret leaves: every command and every endpoint, run with known secrets, and everything
//! they print, log or answer searched for those secrets and for minted tokens.

use std::process::Stdio;

use serde_json::json;

use crate::cli::{HS_SECRET, config_file, hs_caller, path_of, serve, stop, text, tokenmint};
use crate::helpers::*;

/// Distinctive values, so a match can only be a leak.
const LEAK_AUTH_TOKEN: &str = "auth-token-5ecret-7f3a9c0d1e2b";
const LEAK_SHARED_KEY: &str = "shared-key-5ecret-c4d5e6f7a8b9";

fn secrets() -> [&'static str; 5] {
    [
        KEY_SECRET,
        GATEWAY_SECRET,
        HS_SECRET,
        LEAK_AUTH_TOKEN,
        LEAK_SHARED_KEY,
    ]
}

fn leaky_config() -> tempfile::NamedTempFile {
    let file = config_file("admin_listen = \"127.0.0.1:0\"");
    let toml = std::fs::read_to_string(file.path()).unwrap().replace(
        "region = \"ie1\"",
        "region = \"ie1\"\nwebhook_shared_keys = { k1 = \"env:T_SHARED_KEY\" }",
    );
    std::fs::write(file.path(), toml).unwrap();
    file
}

fn run(args: &[&str]) -> String {
    let output = tokenmint(args)
        .env("T_AUTH_TOKEN", LEAK_AUTH_TOKEN)
        .env("T_SHARED_KEY", LEAK_SHARED_KEY)
        .env("T_DECODE_SECRET", KEY_SECRET)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // Name the command only: its arguments include the token under test.
    format!(
        "$ tokenmint {}\n{}{}",
        args[0],
        text(&output.stdout),
        text(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_endpoint_or_log_reveals_a_secret_or_a_minted_token() {
    let file = leaky_config();
    let config = path_of(&file).to_owned();
    let mut seen = String::new();
    let mut minted = Vec::new();

    // Offline commands.
    let token = {
        let output = tokenmint(&[
            "mint",
            "--config",
            &config,
            "--app",
            "edge",
            "--identity",
            "ivy",
        ])
        .output()
        .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        seen.push_str(&text(&output.stderr)); // stdout is the token, by design
        text(&output.stdout).trim().to_owned()
    };
    minted.push(token.clone());
    for args in [
        vec!["check-config", "--config", &config],
        vec!["decode", &token],
        vec!["decode", &token, "--secret-env", "T_DECODE_SECRET"],
        vec![
            "verify-webhook",
            "--config",
            &config,
            "--account",
            "main",
            "--url",
            "https://example.com/hook",
            "--signature",
            "bm90LXZhbGlk",
        ],
        vec![
            "verify-webhook",
            "--config",
            &config,
            "--account",
            "main",
            "--url",
            "https://example.com/hook",
            "--signature",
            "bm90LXZhbGlk",
            "--signature-settings",
            "key=k1,algorithm=HMAC_SHA256",
        ],
        vec!["--help"],
    ] {
        seen.push_str(&run(&args));
    }
    // decode prints the payload, never the token or the secret it was given
    assert!(!seen.contains(&token));

    // The server, every endpoint, good and bad requests.
    let served = serve(&file);
    let admin = served.admin.clone().unwrap();
    let client = reqwest::Client::new();
    let caller = hs_caller("lena");
    let public = |path: &str| format!("http://{}{path}", served.addr);
    let mut responses = Vec::new();
    let requests = vec![
        client.post(public("/apps/support/token")).bearer_auth(&caller).json(&json!({"room": "support-1"})),
        client.get(public("/apps/support/token?grants=chat")).bearer_auth(&caller),
        client.post(public("/apps/edge/token")).header("X-Gateway-Secret", GATEWAY_SECRET).header("X-Authenticated-User", "gus"),
        client.post(public("/apps/edge/token")).header("X-Gateway-Secret", "wrong-secret-wrong-secret-000000").header("X-Authenticated-User", "gus"),
        client.post(public("/apps/support/token")).bearer_auth(format!("{caller}x")),
        client.post(public("/apps/support/token")).header("authorization", format!("Basic {HS_SECRET}")),
        client.post(public("/apps/support/token")).bearer_auth(&caller).json(&json!({"identity": KEY_SECRET})),
        client.post(public("/apps/nope/token")).bearer_auth(&caller),
        client.request(reqwest::Method::OPTIONS, public("/token")).header("origin", ORIGIN).header("access-control-request-method", "POST"),
        client.delete(public("/token")),
        client.get(public("/nowhere")),
        client.get(format!("http://{admin}/healthz")),
        client.get(format!("http://{admin}/readyz")),
        client.post(format!("http://{admin}/webhooks/verify")).json(&json!({"account": "main", "url": "https://example.com/hook", "signature": "bm90LXZhbGlk"})),
        client.post(format!("http://{admin}/webhooks/verify")).json(&json!({"account": "main", "url": "https://example.com/hook", "signature": "x", "signature_settings": "key=k1,algorithm=HMAC_SHA256"})),
        client.post(format!("http://{admin}/webhooks/verify")).json(&json!({"account": "ghost", "url": "https://example.com/hook", "signature": "x"})),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        let headers = format!("{:?}", response.headers());
        let body = response.text().await.unwrap();
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&body)
            && let Some(token) = value["token"].as_str()
        {
            minted.push(token.to_owned());
            // the token field is the one place a token may appear
            responses.push(format!("{headers}\n{}", body.replace(token, "<token>")));
        } else {
            responses.push(format!("{headers}\n{body}"));
        }
    }
    // Metrics last, after everything above was counted.
    responses.push(
        client
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let (status, logs) = stop(served);
    assert_eq!(status, Some(0));
    assert_eq!(minted.len(), 4, "expected 1 offline and 3 served tokens");

    let everything = format!("{seen}\n{}\n{logs}", responses.join("\n"));
    for secret in secrets() {
        assert!(
            !everything.contains(secret),
            "secret {secret:?} leaked:\n{everything}"
        );
    }
    for token in &minted {
        assert!(
            !everything.contains(token.as_str()),
            "a minted token leaked:\n{everything}"
        );
    }
    assert!(
        !everything.contains(&caller),
        "a caller's credential leaked"
    );
    assert!(logs.contains("token_minted") && logs.contains("webhook_checked"));
}

#[tokio::test]
async fn text_a_client_chooses_is_cut_short_in_the_audit_log() {
    let file = config_file("");
    let served = serve(&file);
    let client = reqwest::Client::new();
    // An account name and a host of 100 kB each, and an app name of 30 kB.
    let (account, host) = ("a".repeat(100_000), "h".repeat(100_000));
    let response = client
        .post(format!("http://{}/webhooks/verify", served.addr))
        .json(&json!({"account": account, "url": format!("https://{host}.example/x"), "signature": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let app = "b".repeat(30_000);
    let response = client
        .post(format!("http://{}/apps/{app}/token", served.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let (_, logs) = stop(served);
    for (event, field, text) in [
        ("webhook_checked", "account", &account),
        ("webhook_checked", "host", &host),
        ("token_denied", "app", &app),
    ] {
        let line = logs
            .lines()
            .find(|line| line.contains(event))
            .unwrap_or_else(|| panic!("no {event} in\n{logs}"));
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let logged = record[field].as_str().unwrap();
        // The first 64 characters, and a mark that there was more.
        assert_eq!(logged, format!("{}…", &text[..64]), "{event} {field}");
    }
}
