//! Configuration: layered loading, secret references, and one validation pass that turns the
//! file into domain types or reports every problem with its key path.
//!
//! Layers, later wins: the built-in demo file (or, when given, the operator's file instead),
//! then `TOKENMINT__SECTION__KEY` environment variables.

mod build;
mod raw;
pub mod secret;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

pub use secret::Env;

use crate::auth::AuthSettings;
use crate::policy::AppPolicy;
use crate::twilio::Signer;
use crate::twilio::webhook::WebhookVerifier;

/// `server.listen` when the configuration leaves it out.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080);

/// The built-in demo configuration, used when no file is named.
pub const DEMO_CONFIG: &str = include_str!("../../config/default.toml");

/// The validated configuration.
#[derive(Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub accounts: BTreeMap<String, Arc<Account>>,
    pub auth: BTreeMap<String, AuthSettings>,
    pub apps: BTreeMap<String, Arc<App>>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Token API. Default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// Health, readiness and metrics; on `listen` when unset.
    pub admin_listen: Option<SocketAddr>,
    /// Default 10 s.
    pub request_timeout: Duration,
    /// Time a client has to send its request head. Default 10 s.
    pub header_read_timeout: Duration,
    /// Default 10 s.
    pub shutdown_grace: Duration,
    /// Default 16 KiB.
    pub max_body_bytes: usize,
    pub allow_literal_secrets: bool,
    pub default_app: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed when finding a client's address (for rate
    /// limits and the audit log). Default none: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Failed authentications allowed per client address. Default 20 per minute.
    pub auth_failure_limit: RateLimit,
    /// Check every credential against Twilio at start and stay unready if one is rejected.
    pub check_credentials_on_start: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Default JSON.
    pub format: LogFormat,
    /// A tracing filter directive; default `info`.
    pub level: String,
}

/// A Twilio account and the keys that sign for it.
#[derive(Debug)]
pub struct Account {
    pub name: String,
    /// Non-empty; the first signs new tokens, the others are kept for rotation.
    pub keys: Vec<SigningKey>,
    pub region: Option<String>,
    /// For webhook signature checks and the online credential check.
    pub auth_tokens: Vec<SecretString>,
    /// Verifies webhook signatures with the Auth Tokens and `webhook_shared_keys`.
    pub webhooks: WebhookVerifier,
    /// Twilio's REST API for this account (region or edge host). Default
    /// `https://api.twilio.com`.
    pub api_base: String,
    /// Keys older than this are reported at start and reload. Default 90 days.
    pub rotation_period: Duration,
}

/// One API key of an account.
#[derive(Debug)]
pub struct SigningKey {
    pub signer: Signer,
    /// Kept for the online credential check (HTTP Basic with the key SID).
    pub secret: SecretString,
    /// When the key was created (unix seconds), if the configuration says.
    pub created: Option<i64>,
}

impl Account {
    pub fn signer(&self) -> &Signer {
        &self.keys[0].signer
    }
}

/// An app: its policy plus where it signs, how callers authenticate and who may call it from a
/// browser.
#[derive(Debug)]
pub struct App {
    pub policy: AppPolicy,
    pub account: Arc<Account>,
    pub auth: String,
    pub cors: CorsPolicy,
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Default)]
pub struct CorsPolicy {
    /// Full origins (`https://app.example.com`), compared exactly.
    pub origins: Vec<String>,
    /// Whether `credentials: 'include'` is allowed. Default false.
    pub allow_credentials: bool,
}

impl CorsPolicy {
    pub fn allows(&self, origin: &[u8]) -> bool {
        self.origins.iter().any(|o| o.as_bytes() == origin)
    }
}

/// `rate_limit = "30/min"`: tokens per identity per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `apps.support.max_ttl`.
    pub path: String,
    pub message: String,
}

/// Every problem found; never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str(")")?;
        for problem in &self.problems {
            write!(f, "\n  {}: {}", problem.path, problem.message)?;
        }
        Ok(())
    }
}

impl Problem {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<Problem> for ConfigError {
    fn from(problem: Problem) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

/// Where the configuration comes from.
#[derive(Clone, Default)]
pub struct Source {
    /// The operator's file; the built-in demo configuration when `None`.
    pub file: Option<std::path::PathBuf>,
    /// TOML text used instead of any file (tests and embedding).
    pub text: Option<String>,
    pub env: Env,
}

/// The text's size only: a configuration may hold literal secrets.
impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("file", &self.file)
            .field("text_bytes", &self.text.as_ref().map(String::len))
            .field("env", &self.env)
            .finish()
    }
}

impl Source {
    pub fn file(path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            file: Some(path.into()),
            ..Self::default()
        }
    }

    pub fn text(toml: impl Into<String>) -> Self {
        Self {
            text: Some(toml.into()),
            ..Self::default()
        }
    }

    pub fn with_env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }
}

/// Loads, layers and validates the configuration.
pub fn load(source: &Source) -> Result<Settings, ConfigError> {
    use config::Source as _;

    let (text, layered) = layered(source)?;
    let layered = layered.collect().map_err(|e| secret_free(e, &text))?;
    let mut tree = config::Value::new(None, config::ValueKind::Table(layered));
    // Keys dropped from the tree: references that did not resolve, values of the wrong type.
    let mut dropped = Vec::new();
    let referenced = secret::resolve_references(&mut tree, &source.env, &mut dropped);
    let (raw, unknown) = read_raw(tree, &text, &mut dropped)?;

    let mut problems: Vec<Problem> = unknown
        .into_iter()
        .map(|path| Problem::new(path, "unknown key"))
        .collect();
    let mut built = Vec::new();
    let settings = build::build(raw, &source.env, &mut built);
    // What the build says of a dropped key ("is required", "is not an address"), of the list
    // it was in, or of what was under it would be a second problem for it.
    let follows = |problem: &Problem, reason: &Problem| {
        let (at, dropped) = (problem.path.as_str(), reason.path.as_str());
        dropped
            .strip_prefix(at)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
            || at
                .strip_prefix(dropped)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    built.retain(|problem| !dropped.iter().any(|reason| follows(problem, reason)));
    dropped.sort_by(|a, b| a.path.cmp(&b.path));
    problems.append(&mut dropped);
    problems.append(&mut built);
    secret::hide_referenced_values(&mut problems, &referenced);
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError { problems })
    }
}

/// The configuration text and its layers: the file (or the demo), then `TOKENMINT__…` variables.
fn layered(source: &Source) -> Result<(String, config::Config), ConfigError> {
    use config::{Config, Environment, File, FileFormat};

    let text = match (&source.text, &source.file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            Problem::new(
                "--config",
                format!("cannot read file {}: {}", path.display(), e.kind()),
            )
        })?,
        (None, None) => DEMO_CONFIG.to_owned(),
    };
    let base = File::from_str(&text, FileFormat::Toml);
    // Every variable is a string, as a reference's value is: a typed setting reads its own
    // (`true`, `2048`), and a string that looks like a number (an issuer `0123`) stays as given.
    let mut environment = Environment::with_prefix("TOKENMINT").separator("__");
    if let Env::Fixed(vars) = &source.env {
        environment = environment.source(Some(vars.clone().into_iter().collect()));
    }
    let layered = Config::builder()
        .add_source(base)
        .add_source(environment)
        .build()
        .map_err(|e| secret_free(e, &text))?;
    Ok((text, layered))
}

/// Where `/healthz` is served: `server.admin_listen`, else `server.listen`, read from the same
/// layers as [`load`] but nothing else of the configuration, so that a probe of a running
/// service does not fail for a problem elsewhere in a file it has not reloaded, nor read a
/// secret.
pub fn health_address(source: &Source) -> Result<SocketAddr, ConfigError> {
    let (_, layered) = layered(source)?;
    for path in ["server.admin_listen", "server.listen"] {
        let Ok(raw) = layered.get_string(path) else {
            continue;
        };
        let resolved = secret::resolve(&raw, &source.env).map_err(|e| Problem::new(path, e))?;
        return resolved.value.parse().map_err(|_| {
            let value = &resolved.value;
            let mut problem = [Problem::new(
                path,
                format!("{value:?} {}", build::NOT_AN_ADDRESS),
            )];
            if resolved.referenced {
                let read = secret::Referenced::new(path, &raw, value);
                secret::hide_referenced_values(&mut problem, &[read]);
            }
            let [problem] = problem;
            problem.into()
        });
    }
    Ok(DEFAULT_LISTEN)
}

/// Reads the layered tree into the file's shape, and the unknown keys met on the way. A value
/// of the wrong type is a problem at its key; the key is dropped (an element of a list takes
/// the whole list, so that later elements keep their indices) and the tree read again, so that
/// every such value is reported, not only the first. Each round drops a key, so it ends.
fn read_raw(
    mut tree: config::Value,
    text: &str,
    dropped: &mut Vec<Problem>,
) -> Result<(raw::RawConfig, Vec<String>), ConfigError> {
    loop {
        let mut unknown = Vec::new();
        let read = serde_ignored::deserialize(tree.clone(), |path| {
            unknown.push(ignored_key_path(&path));
        });
        match read {
            Ok(raw) => return Ok((raw, unknown)),
            Err(error) => {
                let problem = secret_free(error, text);
                let removed = remove_at(&mut tree, &problem.path);
                dropped.push(problem);
                if !removed {
                    let mut problems = std::mem::take(dropped);
                    problems.sort_by(|a, b| a.path.cmp(&b.path));
                    return Err(ConfigError { problems });
                }
            }
        }
    }
}

/// Removes the value at `path`, written as problems name keys (`apps.a.grants`,
/// `accounts.main.signing_keys[0].sid`), from `tree`; an element of a list takes the whole
/// list. A named account, authenticator or app becomes an empty table instead, so that what
/// names it is not told it is not configured (the build's problems with the empty entry are
/// follow-ups, and filtered). Returns whether anything was removed.
fn remove_at(tree: &mut config::Value, path: &str) -> bool {
    use config::ValueKind;

    enum Found {
        No,
        Removed,
        /// `path` is this value: its parent removes it.
        Here,
    }

    fn find(value: &mut config::Value, at: &str, path: &str) -> Found {
        if at == path {
            return Found::Here;
        }
        match &mut value.kind {
            ValueKind::Table(table) => {
                let mut hit = None;
                for (key, child) in table.iter_mut() {
                    let child_at = key_path(at, key);
                    if !path.starts_with(&child_at) {
                        continue;
                    }
                    match find(child, &child_at, path) {
                        Found::No => {}
                        Found::Removed => return Found::Removed,
                        Found::Here => {
                            hit = Some(key.clone());
                            break;
                        }
                    }
                }
                match hit {
                    Some(key) if matches!(at, "accounts" | "auth" | "apps") => {
                        let empty = ValueKind::Table(config::Map::new());
                        table.insert(key, config::Value::new(None, empty));
                        Found::Removed
                    }
                    Some(key) => {
                        table.remove(&key);
                        Found::Removed
                    }
                    None => Found::No,
                }
            }
            ValueKind::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    let child_at = format!("{at}[{i}]");
                    if path.starts_with(&child_at) {
                        match find(child, &child_at, path) {
                            Found::No => {}
                            Found::Removed => return Found::Removed,
                            Found::Here => return Found::Here,
                        }
                    }
                }
                Found::No
            }
            _ => Found::No,
        }
    }

    matches!(find(tree, "", path), Found::Removed)
}

/// An unknown key's path as problems name keys (`apps.web.grants.voice.incomming`,
/// `accounts.main.signing_keys[0].note`): serde_ignored's own `Display` writes `?` for an
/// optional table and `.0` for a list element.
fn ignored_key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_key_path(parent)),
        Path::Map { parent, key } => key_path(&ignored_key_path(parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_key_path(parent),
    }
}

/// The path of `key` in the table at `parent`, as problems name it (`apps.support.ttl`).
fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The `config` crate's error without what it quotes: a type error quotes the value it found
/// (an Auth Token written as a string where a list belongs), a TOML syntax error the line it is
/// on. Either may be a secret, so the problem names the key, or the line and column, instead.
fn secret_free(error: config::ConfigError, text: &str) -> Problem {
    use config::ConfigError as E;
    match error {
        E::Type { key, expected, .. } => Problem::new(
            key.map_or_else(|| "(file)".into(), |key| dotted(&key)),
            not_shown(expected),
        ),
        E::At {
            error,
            key: Some(key),
            ..
        } => Problem::new(dotted(&key), without_value(&error.to_string())),
        E::FileParse { cause, .. } => {
            let Some(syntax) = cause.downcast_ref::<toml::de::Error>() else {
                return Problem::new("(file)", "not valid TOML");
            };
            let at = syntax.span().map_or(0, |span| span.start.min(text.len()));
            let before = &text.as_bytes()[..at];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |nl| nl + 1);
            let column = at - line_start + 1;
            Problem::new(
                format!("(file) line {line}, column {column}"),
                format!("not valid TOML: {}", syntax.message()),
            )
        }
        other => Problem::new("(file)", without_value(&other.to_string())),
    }
}

/// `config` writes a key after a list index without its dot (`signing_keys[0]secret`).
fn dotted(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    for (at, c) in key.char_indices() {
        if key[..at].ends_with(']') && c != '[' && c != '.' {
            out.push('.');
        }
        out.push(c);
    }
    out
}

const NOT_SHOWN: &str = "wrong type or value (not shown)";

/// serde's "invalid type: string \"…\", expected a sequence" (or "invalid value", "unknown
/// variant") as what was expected only. What is expected comes from tokenmint's own types and
/// never contains ", expected ", so the last one ends the quoted value.
fn without_value(message: &str) -> String {
    match message.rsplit_once(", expected ") {
        Some((_, expected)) => not_shown(expected),
        None => message.to_owned(),
    }
}

/// What was expected, in the file's terms: serde names a table by the type it fills
/// (`struct RawAccount`), which means nothing to whoever wrote the file.
fn not_shown(expected: &str) -> String {
    let expected = if expected.starts_with("struct ") || expected == "a map" {
        "a table"
    } else {
        expected
    };
    format!("{NOT_SHOWN}: expected {expected}")
}

#[cfg(test)]
mod tests;
