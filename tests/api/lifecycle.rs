//! The running binary under load: reload on SIGHUP, key rotation, graceful shutdown on SIGTERM.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::cli::{Served, config_file, serve, signal, stop};
use crate::helpers::*;

/// Mints continuously from the `edge` app until stopped; counts outcomes.
struct Load {
    running: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<BTreeSet<(String, u64)>>>,
}

impl Load {
    fn start(addr: &str, workers: usize) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let url = format!("http://{addr}/apps/edge/token");
        let tasks = (0..workers)
            .map(|worker| {
                let (running, ok, failed, url) =
                    (running.clone(), ok.clone(), failed.clone(), url.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    // (iss, ttl) of every token seen
                    let mut seen = BTreeSet::new();
                    while running.load(Ordering::SeqCst) {
                        let response = client
                            .post(&url)
                            .header("X-Gateway-Secret", GATEWAY_SECRET)
                            .header("X-Authenticated-User", format!("user{worker}"))
                            .send()
                            .await;
                        match response {
                            Ok(r) if r.status() == 200 => {
                                let body: Value = r.json().await.unwrap();
                                let (_, payload) =
                                    decode_with_any_key(body["token"].as_str().unwrap());
                                seen.insert((
                                    payload["iss"].as_str().unwrap().to_owned(),
                                    body["ttl"].as_u64().unwrap(),
                                ));
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    seen
                })
            })
            .collect();
        Self {
            running,
            ok,
            failed,
            tasks,
        }
    }

    /// Stops the load; returns (ok, failed, every (iss, ttl) seen).
    async fn finish(self) -> (usize, usize, BTreeSet<(String, u64)>) {
        self.running.store(false, Ordering::SeqCst);
        let mut seen = BTreeSet::new();
        for task in self.tasks {
            seen.extend(task.await.unwrap());
        }
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            seen,
        )
    }
}

const KEY2_SID: &str = "SK22222222222222222222222222222222";
const KEY2_SECRET: &str = "second_api_key_secret_0123456789";

/// Verifies with whichever of the two test keys the token names.
fn decode_with_any_key(token: &str) -> (Value, Value) {
    let payload = token.split('.').nth(1).unwrap();
    let payload: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    let secret = if payload["iss"] == KEY2_SID {
        KEY2_SECRET
    } else {
        KEY_SECRET
    };
    let parts: Vec<&str> = token.split('.').collect();
    let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
    let signed = format!("{}.{}", parts[0], parts[1]);
    assert!(
        jsonwebtoken::crypto::verify(parts[2], signed.as_bytes(), &key, Algorithm::HS256).unwrap()
    );
    (Value::Null, payload)
}

fn rewrite(file: &tempfile::NamedTempFile, edit: impl Fn(String) -> String) {
    let text = std::fs::read_to_string(file.path()).unwrap();
    // Write-and-rename, as configuration management tools do, so a reload never reads half a file.
    let tmp = file.path().with_extension("new");
    std::fs::write(&tmp, edit(text)).unwrap();
    std::fs::rename(&tmp, file.path()).unwrap();
}

/// The `corp` authenticator of `config_file` with RS256 keys from `url` instead of its secret.
fn with_jwks_url(toml: String, url: &str) -> String {
    toml.replace(
        "algorithms = [\"HS256\"]\nhs256_secret = \"env:T_HS\"",
        &format!("algorithms = [\"RS256\"]\njwks_url = \"{url}\""),
    )
}

async fn metrics(served: &Served) -> String {
    let admin = served.admin.as_ref().unwrap_or(&served.addr);
    reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn wait_for_async<F: Future<Output = bool>>(check: impl Fn() -> F) -> bool {
    for _ in 0..250 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn wait_for(load_seen: impl Fn() -> bool) -> bool {
    for _ in 0..250 {
        if load_seen() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Mints once from `edge` and returns (iss, ttl).
async fn mint_once(served: &Served) -> (String, u64) {
    let body: Value = reqwest::Client::new()
        .post(format!("http://{}/apps/edge/token", served.addr))
        .header("X-Gateway-Secret", GATEWAY_SECRET)
        .header("X-Authenticated-User", "probe")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (_, payload) = decode_with_any_key(body["token"].as_str().unwrap());
    (
        payload["iss"].as_str().unwrap().to_owned(),
        body["ttl"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_valid_change_refuses_an_invalid_one_and_never_fails_a_request() {
    let file = config_file("admin_listen = \"127.0.0.1:0\"");
    let served = serve(&file);
    let load = Load::start(&served.addr, 4);
    tokio::time::sleep(Duration::from_millis(200)).await;

    rewrite(&file, |t| {
        t.replace("auth = \"edge\"", "auth = \"edge\"\nttl = \"2h\"")
    });
    signal(&served, "-HUP");
    let mut reloaded = false;
    for _ in 0..100 {
        if mint_once(&served).await.1 == 7200 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reloaded, "the valid change never took effect");

    // Three invalid files in turn: a ttl over 24 h, a syntax error, a secret file that is not
    // there. Each is counted and logged, and the running configuration keeps serving.
    let valid = std::fs::read_to_string(file.path()).unwrap();
    let invalid = [
        valid.replace("ttl = \"2h\"", "ttl = \"2h\"\nmax_ttl = \"25h\""),
        valid.replace("ttl = \"2h\"", "ttl = \"2h"),
        valid.replace(
            "secret = \"env:T_KEY_SECRET\"",
            "secret = \"file:/nonexistent/tm-reload-secret\"",
        ),
    ];
    for (n, text) in invalid.into_iter().enumerate() {
        assert_ne!(text, valid);
        std::fs::write(file.path(), text).unwrap();
        signal(&served, "-HUP");
        let counted = format!(
            "tokenmint_config_reloads_total{{result=\"error\"}} {}",
            n + 1
        );
        let mut refused = false;
        for _ in 0..100 {
            if metrics(&served).await.contains(&counted) {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "invalid change {n} was not counted");
        assert_eq!(
            mint_once(&served).await.1,
            7200,
            "invalid change {n} replaced the running config"
        );
    }
    assert!(
        metrics(&served)
            .await
            .contains("tokenmint_config_reloads_total{result=\"ok\"} 1")
    );

    let (ok, failed, seen) = load.finish().await;
    eprintln!("reload under load: {ok} tokens minted, {failed} failed");
    assert_eq!(failed, 0, "{failed} requests failed during reloads");
    assert!(ok > 0);
    let ttls: BTreeSet<u64> = seen.iter().map(|(_, ttl)| *ttl).collect();
    assert!(ttls.is_subset(&BTreeSet::from([3600, 7200])), "{ttls:?}");
    let (status, logs) = stop(served);
    assert_eq!(status, Some(0));
    for named in [
        "apps.edge.max_ttl",
        "not valid TOML",
        "/nonexistent/tm-reload-secret",
    ] {
        assert!(
            logs.contains(named),
            "a refused reload should say {named:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_signing_keys_under_load_never_interrupts_minting() {
    let secret_dir = tempfile::tempdir().unwrap();
    let key2_file = secret_dir.path().join("key2.secret");
    let file = config_file("");
    let served = serve(&file);
    let load = Load::start(&served.addr, 4);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mint_once(&served).await.0, KEY_SID);

    // 1. Add the new key in front (it signs from now on); the old one stays configured.
    std::fs::write(&key2_file, format!("{KEY2_SECRET}\n")).unwrap();
    let key2 = format!(
        "[[accounts.main.signing_keys]]\nsid = \"{KEY2_SID}\"\nsecret = \"file:{}\"\n",
        key2_file.display()
    );
    rewrite(&file, |t| {
        t.replacen(
            "[[accounts.main.signing_keys]]\n",
            &format!("{key2}[[accounts.main.signing_keys]]\n"),
            1,
        )
    });
    signal(&served, "-HUP");
    let mut switched = false;
    for _ in 0..100 {
        if mint_once(&served).await.0 == KEY2_SID {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(switched, "the new key never started signing");

    // 2. Remove the old key.
    rewrite(&file, |t| {
        t.replace("[[accounts.main.signing_keys]]\nsid = \"env:T_KEY_SID\"\nsecret = \"env:T_KEY_SECRET\"\n", "")
    });
    signal(&served, "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mint_once(&served).await.0, KEY2_SID);

    let (ok, failed, seen) = load.finish().await;
    eprintln!("rotation under load: {ok} tokens minted, {failed} failed");
    assert_eq!(failed, 0, "{failed} requests failed during the rotation");
    assert!(ok > 0);
    let issuers: BTreeSet<&str> = seen.iter().map(|(iss, _)| iss.as_str()).collect();
    assert!(issuers.contains(KEY2_SID), "{issuers:?}");
    let (status, logs) = stop(served);
    assert_eq!(status, Some(0));
    assert_eq!(logs.matches("configuration reloaded").count(), 2, "{logs}");
    assert!(!logs.contains(KEY2_SECRET) && !logs.contains(KEY_SECRET));
}

/// A server on `jwks`, ready, with `extra` server settings; its `support` app mints for any
/// bearer of a key `jwks` publishes, and refusals do not block the loopback address.
async fn ready_server_on(jwks: &JwksServer, extra: &str) -> (Served, tempfile::NamedTempFile) {
    let file = config_file(&format!(
        "admin_listen = \"127.0.0.1:0\"\nauth_failure_limit = \"100000/min\"\n{extra}"
    ));
    rewrite(&file, |t| {
        with_jwks_url(t, &jwks.url).replace("rooms = [\"support-*\"]", "rooms = [\"*\"]")
    });
    let served = serve(&file);
    let admin = served.admin.clone().unwrap();
    assert!(wait_for_async(|| async { readiness(&admin).await == 200 }).await);
    (served, file)
}

async fn mint_status(served: &Served, caller: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{}/apps/support/token", served.addr))
        .bearer_auth(caller)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_a_new_jwks_url_fetches_its_keys_first_or_is_refused() {
    let old = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let (served, file) = ready_server_on(&old, "").await;
    // The new provider publishes A's key and B's, and takes 300 ms to answer.
    let mut both = jwks_a();
    both["keys"]
        .as_array_mut()
        .unwrap()
        .push(jwk(&rsa_b(), Algorithm::RS256, "rsa-b"));
    let new = JwksServer::start(JwksMode::Slow(Duration::from_millis(300), both)).await;

    // Callers of A's key, without a pause, across the reload.
    let running = Arc::new(AtomicBool::new(true));
    let load = {
        let (running, url) = (
            running.clone(),
            format!("http://{}/apps/support/token", served.addr),
        );
        let caller = token_for("alice");
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut statuses = Vec::new();
            while running.load(Ordering::SeqCst) {
                let response = client.post(&url).bearer_auth(&caller).send().await.unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // With a setting that only a restart applies, which the reload names.
    rewrite(&file, |t| {
        t.replace(&old.url, &new.url).replace(
            "admin_listen = ",
            "shutdown_grace = \"3s\"\nadmin_listen = ",
        )
    });
    signal(&served, "-HUP");
    let caller_b = sign(Algorithm::RS256, &rsa_b(), Some("rsa-b"), &claims("bob"));
    let mut switched = false;
    for _ in 0..100 {
        if mint_status(&served, &caller_b).await == 200 {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(switched, "the new provider's key never verified");
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.store(false, Ordering::SeqCst);
    let statuses = load.await.unwrap();
    assert!(statuses.len() > 10, "{} requests", statuses.len());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "callers were refused across the reload: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    assert_eq!(new.hits(), 1, "the new key set was fetched more than once");

    // A provider that does not answer: the reload is refused and the new one keeps serving.
    rewrite(&file, |t| {
        t.replace(&new.url, "http://127.0.0.1:9/.well-known/jwks.json")
    });
    signal(&served, "-HUP");
    let refused = "tokenmint_config_reloads_total{result=\"error\"} 1";
    assert!(
        wait_for_async(|| async { metrics(&served).await.contains(refused) }).await,
        "the reload to a provider that does not answer was not refused"
    );
    assert_eq!(mint_status(&served, &caller_b).await, 200);
    let (status, logs) = stop(served);
    assert_eq!(status, Some(0));
    assert!(logs.contains("key set could not be fetched"), "{logs}");
    let warning = logs
        .lines()
        .find(|line| line.contains("takes effect at the next restart"))
        .unwrap_or_else(|| panic!("no warning about shutdown_grace:\n{logs}"));
    assert!(
        warning.contains(r#""path":"server.shutdown_grace""#),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_stuck_reading_a_secret_file_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    // A FIFO with no writer: reading it blocks, as a file on a hung mount would.
    let fifo = dir.path().join("stuck.secret");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let file = config_file("");
    let mut served = serve(&file);
    rewrite(&file, |t| {
        t.replace(
            "secret = \"env:T_KEY_SECRET\"",
            &format!("secret = \"file:{}\"", fifo.display()),
        )
    });
    signal(&served, "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still serving on the running configuration while the reload waits.
    assert_eq!(mint_once(&served).await.0, KEY_SID);
    signal(&served, "-TERM");
    let mut exited = false;
    for _ in 0..500 {
        if served.child.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !exited {
        served.child.kill().unwrap();
    }
    assert!(exited, "SIGTERM was not acted on while a reload was stuck");
    let (status, logs) = stop(served);
    assert_eq!(status, Some(0), "{logs}");
}

/// A server whose token requests are held in flight for `delay` by a provider that is slow to
/// hand out a rotated-in key; returns the server, the JWKS stub and a caller token for that key.
async fn server_with_slow_provider(
    delay: Duration,
    shutdown_grace: &str,
) -> (Served, JwksServer, tempfile::NamedTempFile) {
    let jwks = JwksServer::start(JwksMode::Serve(jwks_a())).await;
    let grace = format!("shutdown_grace = {shutdown_grace:?}");
    let (served, file) = ready_server_on(&jwks, &grace).await;
    let mut rotated = jwks_a();
    rotated["keys"]
        .as_array_mut()
        .unwrap()
        .push(jwk(&rsa_b(), Algorithm::RS256, "rsa-b"));
    jwks.set(JwksMode::Slow(delay, rotated));
    (served, jwks, file)
}

async fn readiness(admin: &str) -> u16 {
    reqwest::get(format!("http://{admin}/readyz"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Starts `n` token requests signed with the rotated-in key and waits until they are in flight.
async fn requests_in_flight(
    served: &Served,
    jwks: &JwksServer,
    n: usize,
) -> Vec<JoinHandle<Option<u16>>> {
    let hits = jwks.hits();
    let url = format!("http://{}/apps/support/token", served.addr);
    let tasks = (0..n)
        .map(|i| {
            let url = url.clone();
            let token = sign(
                Algorithm::RS256,
                &rsa_b(),
                Some("rsa-b"),
                &claims(&format!("u{i}")),
            );
            tokio::spawn(async move {
                let response = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(token)
                    .send()
                    .await;
                response.ok().map(|r| r.status().as_u16())
            })
        })
        .collect();
    // Once the slow refetch has started, every request is in flight.
    assert!(wait_for(|| jwks.hits() > hits).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flips_readiness_first_finishes_in_flight_requests_and_exits_0() {
    let (served, jwks, _file) = server_with_slow_provider(Duration::from_secs(2), "10s").await;
    let admin = served.admin.clone().unwrap();
    let in_flight = requests_in_flight(&served, &jwks, 12).await;
    signal(&served, "-TERM");
    let mut flipped = false;
    for _ in 0..50 {
        if readiness(&admin).await == 503 {
            flipped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        flipped,
        "readiness did not flip while requests were in flight"
    );
    assert!(
        in_flight.iter().any(|t| !t.is_finished()),
        "nothing was in flight at SIGTERM"
    );

    let mut completed = 0;
    for task in in_flight {
        assert_eq!(
            task.await.unwrap(),
            Some(200),
            "an accepted request did not complete"
        );
        completed += 1;
    }
    eprintln!("shutdown under load: {completed} in-flight requests completed after SIGTERM");
    let url = format!("http://{}/apps/support/token", served.addr);
    let (status, logs) = stop_after_exit(served);
    assert_eq!(status, Some(0), "{logs}");
    // New connections are refused once draining has finished.
    assert!(reqwest::Client::new().post(url).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_at_once() {
    let (served, jwks, _file) = server_with_slow_provider(Duration::from_secs(30), "10s").await;
    let in_flight = requests_in_flight(&served, &jwks, 2).await;
    signal(&served, "-TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&served, "-TERM");
    let (status, logs) = stop_after_exit(served);
    assert_eq!(status, Some(130), "{logs}");
    assert!(logs.contains("second shutdown signal"));
    for task in in_flight {
        assert_eq!(
            task.await.unwrap(),
            None,
            "a request outlived a forced exit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_still_running_when_the_grace_period_ends_are_cut_off_and_the_exit_is_0() {
    // The provider answers in 30 s and request_timeout is 10 s: only the 1 s grace period can
    // end these requests before the server's poll below gives up (10 s) and signals again.
    let (served, jwks, _file) = server_with_slow_provider(Duration::from_secs(30), "1s").await;
    let in_flight = requests_in_flight(&served, &jwks, 2).await;
    signal(&served, "-TERM");
    let (status, logs) = stop_after_exit(served);
    assert_eq!(status, Some(0), "{logs}");
    assert!(logs.contains("shutdown grace period over"), "{logs}");
    for task in in_flight {
        assert_eq!(
            task.await.unwrap(),
            None,
            "a request outlived the grace period"
        );
    }
}

/// Waits for a server that is already shutting down.
fn stop_after_exit(mut served: Served) -> (Option<i32>, String) {
    for _ in 0..500 {
        if served.child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_set_is_logged_with_its_reason_and_never_its_body() {
    let page = b"<html><body>Sign in to continue, canary-7f3c</body></html>".to_vec();
    let jwks = JwksServer::start(JwksMode::Body("text/html", page)).await;
    let file = config_file("");
    rewrite(&file, |t| with_jwks_url(t, &jwks.url));
    let served = serve(&file);
    assert!(
        wait_for(|| served.output().contains("jwks refresh failed")).await,
        "the refused fetch was not logged"
    );
    let (_, logs) = stop(served);
    assert!(jwks.hits() >= 1);
    let line = logs
        .lines()
        .find(|line| line.contains("jwks refresh failed"))
        .unwrap();
    let event: Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["level"], "WARN", "{line}");
    assert_eq!(event["auth"], "corp", "{line}");
    assert!(
        event["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("invalid")),
        "{line}"
    );
    assert!(
        !logs.contains("canary-7f3c"),
        "the body was logged:\n{logs}"
    );
}
