//! The command line: `serve` (the default), `check-config`, `mint` and `decode`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::auth::{AuthSettings, KeySource, Principal};
use crate::config::{self, Settings, Source};
use crate::policy::{GrantKind, MintRequest};
use crate::runtime::{Runtime, unix_now};
use crate::twilio::webhook::{Payload, WebhookRequest, requested_host};
use crate::{audit, credentials, server, telemetry};

/// Exit status for configuration errors.
const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "tokenmint",
    version,
    about = "Mints Twilio Access Tokens for verified callers"
)]
pub struct Cli {
    /// Configuration file; replaces the built-in demo configuration.
    #[arg(long, global = true, env = "TOKENMINT_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Validate the configuration and print a summary without secrets.
    CheckConfig {
        /// Also ask Twilio whether every signing key and Auth Token is accepted; exit 1 when
        /// one is rejected or belongs to another account.
        #[arg(long)]
        online: bool,
        /// Seconds to wait for each answer in --online mode.
        #[arg(long, default_value_t = 5, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Mint a token offline through an app's policy and print it.
    Mint {
        #[arg(long)]
        app: String,
        /// The verified identity (`sub`) to mint for.
        #[arg(long)]
        identity: String,
        /// Extra claims for the app's templates, as NAME=VALUE.
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
        /// A grant to include (repeatable); the app's default set when omitted.
        #[arg(long = "grant", value_name = "GRANT")]
        grants: Vec<String>,
        #[arg(long)]
        room: Option<String>,
        /// Lifetime in seconds, clamped to the app's max_ttl.
        #[arg(long)]
        ttl: Option<u64>,
        #[arg(long)]
        platform: Option<String>,
        #[arg(long)]
        device_id: Option<String>,
    },
    /// Check a webhook's X-Twilio-Signature with an account's Auth Tokens; exit 0 valid, 1 not.
    VerifyWebhook {
        #[arg(long)]
        account: String,
        /// The full public URL Twilio requested, query included.
        #[arg(long)]
        url: String,
        /// A form parameter as NAME=VALUE (repeatable; repeat a name for several values).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// The raw body of a non-form (e.g. JSON) webhook.
        #[arg(long, value_name = "PATH", conflicts_with = "params")]
        body_file: Option<PathBuf>,
        /// The X-Twilio-Signature header.
        #[arg(long)]
        signature: String,
        /// The X-Twilio-Webhooks-Signature-Settings header, if any.
        #[arg(long)]
        signature_settings: Option<String>,
    },
    /// Exit 0 when the running service answers /healthz (for container HEALTHCHECKs, which
    /// have no shell or curl in a minimal image).
    Healthcheck {
        /// The URL to probe; by default /healthz on the configured admin (or public) listener.
        #[arg(long)]
        url: Option<String>,
    },
    /// Print a token's header and payload; verify it when a secret is given.
    Decode {
        token: String,
        /// Environment variable holding the API Key secret to verify the signature with.
        #[arg(long, value_name = "NAME")]
        secret_env: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let source = match &cli.config {
        Some(path) => Source::file(path),
        None => Source::default(),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => with_config(&source, |settings| serve(settings, source.clone())),
        Command::CheckConfig { online, timeout } => with_config(&source, |settings| {
            println!("{}", summary(&settings));
            if online {
                check_online(&settings, Duration::from_secs(timeout))
            } else {
                ExitCode::SUCCESS
            }
        }),
        Command::Mint {
            app,
            identity,
            claims,
            grants,
            room,
            ttl,
            platform,
            device_id,
        } => with_config(&source, |settings| {
            let parsed: Result<Vec<GrantKind>, &String> = grants
                .iter()
                .map(|g| GrantKind::parse(g).ok_or(g))
                .collect();
            let parsed = match parsed {
                Ok(parsed) => parsed,
                Err(bad) => {
                    eprintln!("error: unknown grant {bad:?}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let request = MintRequest {
                grants: (!parsed.is_empty()).then_some(parsed),
                room,
                ttl_secs: ttl,
                platform,
                device_id,
            };
            mint(settings, &app, &identity, &claims, &request)
        }),
        Command::Decode { token, secret_env } => decode(&token, secret_env.as_deref()),
        Command::Healthcheck { url: Some(url) } => healthcheck(&url),
        Command::VerifyWebhook {
            account,
            url,
            params,
            body_file,
            signature,
            signature_settings,
        } => with_config(&source, |settings| {
            let Some(account) = settings.accounts.get(&account) else {
                eprintln!("error: no account named {account:?}");
                return ExitCode::from(EXIT_CONFIG);
            };
            if requested_host(&url).is_none() {
                eprintln!("error: --url must be the full URL Twilio requested");
                return ExitCode::from(EXIT_CONFIG);
            }
            let mut pairs = Vec::new();
            for param in &params {
                let Some((name, value)) = param.split_once('=') else {
                    eprintln!("error: --param takes NAME=VALUE");
                    return ExitCode::from(EXIT_CONFIG);
                };
                pairs.push((name.to_owned(), value.to_owned()));
            }
            let body = match body_file.as_deref().map(std::fs::read) {
                None => None,
                Some(Ok(body)) => Some(body),
                Some(Err(error)) => {
                    eprintln!("error: cannot read the body file: {error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let payload = match (&body, pairs.is_empty()) {
                (Some(body), _) => Payload::Raw(body),
                (None, false) => Payload::Form(&pairs),
                (None, true) => Payload::Empty,
            };
            let request = WebhookRequest {
                url: &url,
                payload,
                signature: &signature,
                signature_settings: signature_settings.as_deref(),
            };
            match account.webhooks.verify(&request) {
                Ok(()) => {
                    println!("valid");
                    ExitCode::SUCCESS
                }
                Err(invalid) => {
                    println!("invalid: {invalid}");
                    ExitCode::FAILURE
                }
            }
        }),
        // Exit 1 for every failure: Docker reserves a HEALTHCHECK's 2.
        Command::Healthcheck { url: None } => match config::health_address(&source) {
            Ok(mut addr) => {
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                healthcheck(&format!("http://{addr}/healthz"))
            }
            Err(error) => {
                eprintln!("unhealthy: cannot find the address to probe: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The environment variable Tokio reads for its number of worker threads (one per available CPU
/// when it is not set).
const WORKER_THREADS_ENV: &str = "TOKIO_WORKER_THREADS";

/// Tokio panics when the variable is not a whole number above 0; checked first, so that a typo
/// ends start-up like any other configuration error.
fn check_worker_threads(value: Option<std::ffi::OsString>) -> Result<(), String> {
    let Some(value) = value else {
        return Ok(());
    };
    match value.to_str().map(str::parse::<usize>) {
        Some(Ok(count)) if count > 0 => Ok(()),
        _ => Err(format!(
            "error: {WORKER_THREADS_ENV} must be a whole number above 0, not {value:?}"
        )),
    }
}

fn with_config(source: &Source, run: impl FnOnce(Settings) -> ExitCode) -> ExitCode {
    match config::load(source) {
        Ok(settings) => run(settings),
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn serve(settings: Settings, source: Source) -> ExitCode {
    if let Err(message) = check_worker_threads(std::env::var_os(WORKER_THREADS_ENV)) {
        eprintln!("{message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let stdout = telemetry::stdout();
    stdout.start_flushing();
    telemetry::init(telemetry::subscriber(
        &settings.log,
        stdout.clone(),
        std::io::stdout().is_terminal(),
    ));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match runtime.block_on(server::run(settings, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    };
    // Tasks still running (a request past the drain deadline) may log until the runtime is gone.
    // A reload blocked on a secret file (a hung mount) would keep it forever: after a second
    // it is left behind.
    runtime.shutdown_timeout(Duration::from_secs(1));
    stdout.flush();
    outcome
}

fn check_online(settings: &Settings, timeout: Duration) -> ExitCode {
    let checks = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(credentials::check_accounts(&settings.accounts, timeout)),
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("online check:");
    for check in &checks {
        println!("  {check}");
    }
    if checks.iter().any(|c| c.verdict.is_failure()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn healthcheck(url: &str) -> ExitCode {
    let probe = async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        client.get(url).send().await
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(probe).map_err(|e| e.to_string()));
    match result {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("unhealthy: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unhealthy: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `url` without what may be a credential: a user name or password, and the query (shown as
/// `?…`). A JWKS is public, but a URL is sometimes given a token all the same.
fn shown_url(url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return "(not shown)".to_owned();
    };
    let query = if parsed.query().is_some() { "?…" } else { "" };
    format!(
        "{}{}{query}",
        parsed.origin().ascii_serialization(),
        parsed.path()
    )
}

/// A human-readable, secret-free description of the configuration.
pub fn summary(settings: &Settings) -> String {
    let mut out = String::from("configuration OK\n");
    let server = &settings.server;
    out += &format!("listen: {}\n", server.listen);
    match server.admin_listen {
        Some(admin) => out += &format!("admin_listen: {admin}\n"),
        None => out += "admin_listen: (same as listen)\n",
    }
    if let Some(app) = &server.default_app {
        out += &format!("default_app: {app}\n");
    }
    if server.allow_literal_secrets {
        out += "warning: allow_literal_secrets is true (demo only)\n";
    }
    for (name, account) in &settings.accounts {
        let keys: Vec<String> = account
            .keys
            .iter()
            .map(|k| k.signer.key_sid().to_string())
            .collect();
        out += &format!(
            "account {name}: {} region={} signing keys={} (first signs) auth tokens={}\n",
            account.signer().account_sid(),
            account.region.as_deref().unwrap_or("us1"),
            keys.join(","),
            account.auth_tokens.len()
        );
    }
    for (name, auth) in &settings.auth {
        match auth {
            AuthSettings::Jwt(jwt) => {
                let keys = match &jwt.keys {
                    KeySource::Remote { url, .. } => format!("jwks_url {}", shown_url(url)),
                    KeySource::Static(set) => format!("{} static key(s)", set.len()),
                };
                let algs: Vec<String> = jwt.algorithms.iter().map(|a| format!("{a:?}")).collect();
                out += &format!(
                    "auth {name}: jwt issuer={} audiences={} algorithms={} keys={keys}\n",
                    jwt.issuer,
                    jwt.audiences.join(","),
                    algs.join(",")
                );
            }
            AuthSettings::Gateway(gateway) => {
                out += &format!(
                    "auth {name}: gateway identity_header={} trusted_proxies={} shared_secret={}\n",
                    gateway.identity_header,
                    gateway.trusted_proxies.len(),
                    if gateway.shared_secret.is_some() {
                        "set"
                    } else {
                        "none"
                    }
                );
            }
        }
    }
    for (name, app) in &settings.apps {
        let grants: Vec<&str> = app.policy.offered().iter().map(|k| k.as_str()).collect();
        out += &format!(
            "app {name}: account={} auth={} grants={} ttl={}s max_ttl={}s cors_origins={}\n",
            app.account.name,
            app.auth,
            grants.join(","),
            app.policy.ttl_secs,
            app.policy.max_ttl_secs,
            app.cors.origins.len()
        );
    }
    out.trim_end().to_owned()
}

fn mint(
    settings: Settings,
    app_name: &str,
    identity: &str,
    claims: &[String],
    request: &MintRequest,
) -> ExitCode {
    telemetry::init(telemetry::subscriber(
        &settings.log,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    ));
    let Some(app) = settings.apps.get(app_name) else {
        eprintln!("error: no app named {app_name:?}");
        return ExitCode::from(EXIT_CONFIG);
    };
    let mut map = Map::new();
    map.insert("sub".into(), Value::String(identity.to_owned()));
    for claim in claims {
        let Some((name, value)) = claim.split_once('=') else {
            eprintln!("error: --claim takes NAME=VALUE");
            return ExitCode::from(EXIT_CONFIG);
        };
        map.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    let principal = Principal {
        subject: identity.to_owned(),
        claims: map,
    };
    match Runtime::mint(app, &principal, request, unix_now()) {
        Ok(minted) => {
            let ctx = audit::Context {
                app: app_name,
                request_id: "cli",
                client: None,
            };
            audit::minted(&ctx, &minted);
            println!("{}", minted.token);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn decode(token: &str, secret_env: Option<&str>) -> ExitCode {
    let segment = |s: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
    };
    let parts: Vec<&str> = token.trim().split('.').collect();
    let (Some(header), Some(payload), 3) = (
        parts.first().and_then(|h| segment(h)),
        parts.get(1).and_then(|p| segment(p)),
        parts.len(),
    ) else {
        eprintln!("error: not a compact JWS (header.payload.signature)");
        return ExitCode::FAILURE;
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({"header": header, "payload": payload}))
            .unwrap_or_default()
    );
    let Some(name) = secret_env else {
        println!("signature: not checked (pass --secret-env NAME to verify)");
        return ExitCode::SUCCESS;
    };
    let secret = match std::env::var(name) {
        Ok(secret) if !secret.is_empty() => secret,
        // An empty HMAC key verifies whatever was signed with an empty key.
        Ok(_) => {
            eprintln!("error: environment variable {name} is empty");
            return ExitCode::FAILURE;
        }
        Err(_) => {
            eprintln!("error: environment variable {name} is not set");
            return ExitCode::FAILURE;
        }
    };
    let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
    let signed = &token.trim()[..parts[0].len() + 1 + parts[1].len()];
    let alg_ok = header.get("alg").and_then(Value::as_str) == Some("HS256");
    let valid = alg_ok
        && jsonwebtoken::crypto::verify(
            parts[2],
            signed.as_bytes(),
            &key,
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap_or(false);
    if !valid {
        println!("signature: INVALID");
        return ExitCode::FAILURE;
    }
    println!("signature: valid");
    let now = unix_now();
    let exp = payload.get("exp").and_then(Value::as_u64);
    let nbf = payload.get("nbf").and_then(Value::as_u64);
    match exp {
        Some(exp) if exp <= now => {
            println!("expiry: EXPIRED {}s ago", now - exp);
            ExitCode::FAILURE
        }
        Some(_) if nbf.is_some_and(|nbf| nbf > now) => {
            println!("expiry: not valid yet");
            ExitCode::FAILURE
        }
        Some(exp) => {
            println!("expiry: valid for {}s more", exp - now);
            ExitCode::SUCCESS
        }
        None => {
            println!("expiry: MISSING exp");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_url_is_shown_without_credentials_or_query() {
        for (url, shown) in [
            (
                "https://user:pw@idp.example.com/jwks?token=t0k",
                "https://idp.example.com/jwks?…",
            ),
            (
                "http://127.0.0.1:8080/.well-known/jwks.json",
                "http://127.0.0.1:8080/.well-known/jwks.json",
            ),
            ("https://idp.example.com:443/k", "https://idp.example.com/k"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }

    #[test]
    fn worker_threads_must_be_a_whole_number_above_0_when_set() {
        assert_eq!(check_worker_threads(None), Ok(()));
        for good in ["1", "3", "64"] {
            assert_eq!(check_worker_threads(Some(good.into())), Ok(()), "{good}");
        }
        for bad in ["0", "", "four", " 2", "-1", "2.5"] {
            let error = check_worker_threads(Some(bad.into())).unwrap_err();
            assert!(error.contains("TOKIO_WORKER_THREADS"), "{error}");
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }
}
