//! One pass from [`RawConfig`] to [`Settings`], collecting every problem on the way.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use jsonwebtoken::Algorithm;
use secrecy::SecretString;

use super::raw::*;
use super::secret::{Env, resolve};
use super::{
    Account, App, CorsPolicy, LogFormat, LogSettings, Problem, RateLimit, ServerSettings, Settings,
    SigningKey,
};
use crate::auth::{AuthSettings, GatewaySettings, JwtSettings, KeySet, KeySource};
use crate::policy::{
    AppPolicy, ChatPolicy, GrantPolicies, Rooms, SyncPolicy, TaskRouterPolicy, Template,
    VideoPolicy, VoicePolicy,
};
use crate::twilio::webhook::WebhookVerifier;
use crate::twilio::{MAX_TTL_SECS, Sid, Signer, sid::SidKind};

const MIN_HS256_SECRET_BYTES: usize = 32;
const DEFAULT_API_BASE: &str = "https://api.twilio.com";
const MAX_BODY_LIMIT: u64 = 1024 * 1024;
/// What a listen address that does not parse is (after the value, quoted or named).
pub(super) const NOT_AN_ADDRESS: &str = "is not an address like 0.0.0.0:8080";
const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// Shortest JWKS refresh interval and refetch cooldown: anything shorter fetches in a loop
/// against the identity provider, from every replica.
const MIN_JWKS_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest time a client gets to send its request head, over however slow a link.
const MIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Shortest request timeout: below it even a token request without I/O may not finish.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_millis(100);

struct Builder<'a> {
    env: &'a Env,
    allow_literal_secrets: bool,
    problems: &'a mut Vec<Problem>,
}

impl Builder<'_> {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn required(&mut self, path: &str, raw: &Option<String>) -> Option<String> {
        if raw.is_none() {
            self.problem(path, "is required");
        }
        raw.clone()
    }

    /// A secret: must be a reference unless literal secrets are allowed; never echoed.
    fn secret(&mut self, path: &str, raw: &str) -> Option<SecretString> {
        let resolved = match resolve(raw, self.env) {
            Ok(resolved) => resolved,
            Err(message) => {
                self.problem(path, message);
                return None;
            }
        };
        if !resolved.referenced && !self.allow_literal_secrets {
            self.problem(
                path,
                "secrets must be env:NAME or file:PATH references (server.allow_literal_secrets is false)",
            );
            return None;
        }
        if resolved.value.is_empty() {
            self.problem(path, "secret is empty");
            return None;
        }
        Some(SecretString::from(resolved.value))
    }

    fn sid<K: SidKind>(&mut self, path: &str, raw: &str) -> Option<Sid<K>> {
        match Sid::parse(raw) {
            Ok(sid) => Some(sid),
            Err(e) => {
                self.problem(path, e.to_string());
                None
            }
        }
    }

    fn optional_sid<K: SidKind>(&mut self, path: &str, raw: &Option<String>) -> Option<Sid<K>> {
        raw.as_ref().and_then(|raw| self.sid(path, raw))
    }

    /// A duration of at least `min`; a shorter one is a problem.
    fn duration_at_least(
        &mut self,
        path: &str,
        raw: &Option<String>,
        default: Duration,
        min: Duration,
    ) -> Duration {
        let value = self.duration(path, raw, default);
        if value < min {
            let min = humantime::format_duration(min);
            self.problem(path, format!("must be at least {min}"));
            return default;
        }
        value
    }

    fn duration(&mut self, path: &str, raw: &Option<String>, default: Duration) -> Duration {
        match raw {
            None => default,
            Some(raw) => match humantime::parse_duration(raw) {
                Ok(d) => d,
                Err(_) => {
                    self.problem(
                        path,
                        format!("{raw:?} is not a duration (e.g. \"10s\", \"1h\")"),
                    );
                    default
                }
            },
        }
    }

    fn socket_addr(&mut self, path: &str, raw: &str) -> Option<SocketAddr> {
        match raw.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.problem(path, format!("{raw:?} {NOT_AN_ADDRESS}"));
                None
            }
        }
    }

    fn header_name(&mut self, path: &str, raw: &str) -> Option<HeaderName> {
        match HeaderName::try_from(raw) {
            Ok(name) => Some(name),
            Err(_) => {
                self.problem(path, format!("{raw:?} is not a valid header name"));
                None
            }
        }
    }

    fn template(&mut self, path: &str, raw: &str) -> Option<Template> {
        match Template::parse(raw) {
            Ok(t) => Some(t),
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }
}

pub(super) fn build(raw: RawConfig, env: &Env, problems: &mut Vec<Problem>) -> Settings {
    let allow_literal_secrets = raw.server.allow_literal_secrets.unwrap_or(false);
    let mut b = Builder {
        env,
        allow_literal_secrets,
        problems,
    };
    let server = server(&mut b, &raw.server, &raw.apps);
    let log = log(&mut b, &raw.log);
    let accounts: BTreeMap<String, Arc<Account>> = raw
        .accounts
        .iter()
        .filter_map(|(name, account)| {
            Some((
                name.clone(),
                Arc::new(self::account(&mut b, name, account)?),
            ))
        })
        .collect();
    let mut auth: BTreeMap<String, AuthSettings> = raw
        .auth
        .iter()
        .filter_map(|(name, auth)| Some((name.clone(), authenticator(&mut b, name, auth)?)))
        .collect();
    let apps: BTreeMap<String, Arc<App>> = raw
        .apps
        .iter()
        .filter_map(|(name, app)| {
            let app = self::app(&mut b, name, app, &accounts, &auth, &raw)?;
            Some((name.clone(), Arc::new(app)))
        })
        .collect();
    // A caller's token is parsed for the claims its authenticator's apps read, and no others.
    for app in apps.values() {
        if let Some(AuthSettings::Jwt(jwt)) = auth.get_mut(&app.auth) {
            jwt.keep_claims(app.policy.claims());
        }
    }
    Settings {
        server,
        log,
        accounts,
        auth,
        apps,
    }
}

fn server(b: &mut Builder<'_>, raw: &RawServer, apps: &BTreeMap<String, RawApp>) -> ServerSettings {
    let listen = raw
        .listen
        .as_deref()
        .and_then(|l| b.socket_addr("server.listen", l))
        .unwrap_or(super::DEFAULT_LISTEN);
    let admin_listen = raw
        .admin_listen
        .as_deref()
        .and_then(|l| b.socket_addr("server.admin_listen", l));
    // Port 0 picks a free port for each, so only fixed ports can clash.
    let clash = |admin: SocketAddr| {
        admin.port() == listen.port()
            && listen.port() != 0
            && addresses_overlap(admin.ip(), listen.ip())
    };
    if admin_listen.is_some_and(clash) {
        b.problem(
            "server.admin_listen",
            "must not share its port with server.listen (or be left out)",
        );
    }
    let max_body_bytes = raw.max_body_bytes.unwrap_or(16 * 1024);
    if !(1..=MAX_BODY_LIMIT).contains(&max_body_bytes) {
        b.problem("server.max_body_bytes", "must be between 1 and 1048576");
    }
    if let Some(app) = &raw.default_app
        && !apps.contains_key(app)
    {
        b.problem(
            "server.default_app",
            format!("names app {app:?}, which is not configured"),
        );
    }
    ServerSettings {
        listen,
        admin_listen,
        request_timeout: b.duration_at_least(
            "server.request_timeout",
            &raw.request_timeout,
            Duration::from_secs(10),
            MIN_REQUEST_TIMEOUT,
        ),
        header_read_timeout: b.duration_at_least(
            "server.header_read_timeout",
            &raw.header_read_timeout,
            Duration::from_secs(10),
            MIN_HEADER_READ_TIMEOUT,
        ),
        shutdown_grace: b.duration(
            "server.shutdown_grace",
            &raw.shutdown_grace,
            Duration::from_secs(10),
        ),
        max_body_bytes: max_body_bytes.min(MAX_BODY_LIMIT) as usize,
        allow_literal_secrets: b.allow_literal_secrets,
        default_app: raw.default_app.clone(),
        trusted_proxies: ip_nets(b, "server.trusted_proxies", raw.trusted_proxies.as_deref()),
        check_credentials_on_start: raw.check_credentials_on_start.unwrap_or(false),
        auth_failure_limit: raw
            .auth_failure_limit
            .as_deref()
            .and_then(|raw| match parse_rate_limit(raw) {
                Ok(limit) => Some(limit),
                Err(message) => {
                    b.problem("server.auth_failure_limit", message);
                    None
                }
            })
            .unwrap_or(RateLimit {
                count: 20,
                per: Duration::from_secs(60),
            }),
    }
}

/// Addresses and CIDR ranges.
fn ip_nets(b: &mut Builder<'_>, path: &str, raw: Option<&[String]>) -> Vec<IpNet> {
    raw.unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, net)| {
            let parsed = net
                .parse::<IpNet>()
                .or_else(|_| net.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => Some(net),
                Err(_) => {
                    b.problem(
                        format!("{path}[{i}]"),
                        format!("{net:?} is not an address or CIDR range"),
                    );
                    None
                }
            }
        })
        .collect()
}

fn log(b: &mut Builder<'_>, raw: &RawLog) -> LogSettings {
    let format = match raw.format.as_deref() {
        None | Some("json") => LogFormat::Json,
        Some("pretty") => LogFormat::Pretty,
        Some(other) => {
            b.problem(
                "log.format",
                format!("{other:?} is not \"json\" or \"pretty\""),
            );
            LogFormat::Json
        }
    };
    let level = raw.level.clone().unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        b.problem(
            "log.level",
            format!("{level:?} is not a log level or filter"),
        );
    } else if let Some(word) = bare_target(&level) {
        b.problem(
            "log.level",
            format!(
                "{word:?} is not a log level (trace, debug, info, warn, error, off); \
                 to filter by module write {word}=LEVEL, or give a level for the rest"
            ),
        );
    }
    LogSettings { format, level }
}

/// A directive of a filter without a level of its own that is a single word but not a level.
/// `tracing` reads such a word as a target to log at every level, and with no level for the
/// rest, a typo such as `warning` would silently turn off every log line, the audit record
/// included. Beside a level (`info,hyper`) a target is what it looks like; module paths
/// (`tokenmint::audit`), span filters (`[request]`) and the crate itself stay allowed.
fn bare_target(filter: &str) -> Option<&str> {
    use tracing_subscriber::filter::LevelFilter;

    let mut directives = filter.split(',').map(str::trim).filter(|d| !d.is_empty());
    if directives.clone().any(|d| d.parse::<LevelFilter>().is_ok()) {
        return None;
    }
    directives.find(|d| !d.contains(['=', '[', ':']) && *d != "tokenmint")
}

/// Whether listening on both addresses (the same port) would clash: the same address (an
/// IPv4-mapped IPv6 address is its IPv4 one), `0.0.0.0` and any IPv4 address, or `[::]` (on
/// Linux it also takes IPv4 unless `bindv6only` is set) and any address.
fn addresses_overlap(a: IpAddr, b: IpAddr) -> bool {
    let (a, b) = (a.to_canonical(), b.to_canonical());
    let covers = |wide: IpAddr, other: IpAddr| match wide {
        IpAddr::V4(v4) => v4.is_unspecified() && other.is_ipv4(),
        IpAddr::V6(v6) => v6.is_unspecified(),
    };
    a == b || covers(a, b) || covers(b, a)
}

fn account(b: &mut Builder<'_>, name: &str, raw: &RawAccount) -> Option<Account> {
    let path = format!("accounts.{name}");
    let account_sid = match &raw.account_sid {
        Some(sid) => b.sid(&format!("{path}.account_sid"), sid),
        None => {
            b.problem(format!("{path}.account_sid"), "is required");
            None
        }
    };
    let region = raw.region.clone();
    if let Some(region) = &region {
        let valid = (2..=8).contains(&region.len())
            && region
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !valid {
            b.problem(
                format!("{path}.region"),
                format!("{region:?} is not a region code like \"ie1\""),
            );
        }
    }
    if raw.signing_keys.is_empty() {
        b.problem(
            format!("{path}.signing_keys"),
            "at least one signing key is required",
        );
    }
    let keys: Vec<_> = raw
        .signing_keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let key_path = format!("{path}.signing_keys[{i}]");
            let sid = match &key.sid {
                Some(sid) => b.sid(&format!("{key_path}.sid"), sid),
                None => {
                    b.problem(format!("{key_path}.sid"), "is required");
                    None
                }
            };
            let secret = match &key.secret {
                Some(secret) => b.secret(&format!("{key_path}.secret"), secret),
                None => {
                    b.problem(format!("{key_path}.secret"), "is required");
                    None
                }
            };
            let created = key.created.as_deref().and_then(|date| {
                let parsed = parse_date(date);
                if parsed.is_none() {
                    b.problem(
                        format!("{key_path}.created"),
                        format!("{date:?} is not a date like \"2026-01-31\""),
                    );
                }
                parsed
            });
            (sid, secret, created)
        })
        .collect();
    let shared_keys: BTreeMap<String, SecretString> = raw
        .webhook_shared_keys
        .iter()
        .filter_map(|(id, secret)| {
            let secret = b.secret(&format!("{path}.webhook_shared_keys.{id}"), secret)?;
            Some((id.clone(), secret))
        })
        .collect();
    let api_base = match &raw.api_base {
        None => DEFAULT_API_BASE.to_owned(),
        Some(raw_base) => {
            let at = format!("{path}.api_base");
            if let Err(message) = check_https_or_loopback(raw_base) {
                b.problem(&at, message);
            }
            raw_base.trim_end_matches('/').to_owned()
        }
    };
    let rotation_period = b.duration(
        &format!("{path}.rotation_period"),
        &raw.rotation_period,
        Duration::from_secs(90 * 24 * 3600),
    );
    let auth_tokens: Vec<_> = raw
        .auth_tokens
        .iter()
        .enumerate()
        .filter_map(|(i, token)| b.secret(&format!("{path}.auth_tokens[{i}]"), token))
        .collect();
    let account_sid = account_sid?;
    let mut signing_keys = Vec::new();
    for (sid, secret, created) in keys {
        let secret = secret?;
        signing_keys.push(SigningKey {
            signer: Signer::new(account_sid.clone(), sid?, &secret, region.clone()),
            secret,
            created,
        });
    }
    if signing_keys.is_empty() {
        return None;
    }
    Some(Account {
        name: name.to_owned(),
        webhooks: WebhookVerifier::new(&auth_tokens, &shared_keys),
        api_base,
        keys: signing_keys,
        region,
        auth_tokens,
        rotation_period,
    })
}

fn authenticator(b: &mut Builder<'_>, name: &str, raw: &RawAuth) -> Option<AuthSettings> {
    let path = format!("auth.{name}");
    let jwt_fields = [
        ("issuer", raw.issuer.is_some()),
        ("audiences", raw.audiences.is_some()),
        ("algorithms", raw.algorithms.is_some()),
        ("jwks_url", raw.jwks_url.is_some()),
        ("jwks_file", raw.jwks_file.is_some()),
        ("hs256_secret", raw.hs256_secret.is_some()),
        ("leeway", raw.leeway.is_some()),
        ("jwks_cache_ttl", raw.jwks_cache_ttl.is_some()),
        ("jwks_refetch_cooldown", raw.jwks_refetch_cooldown.is_some()),
        ("jwks_max_stale", raw.jwks_max_stale.is_some()),
    ];
    let gateway_fields = [
        ("identity_header", raw.identity_header.is_some()),
        ("claim_headers", raw.claim_headers.is_some()),
        ("trusted_proxies", raw.trusted_proxies.is_some()),
        ("shared_secret_header", raw.shared_secret_header.is_some()),
        ("shared_secret", raw.shared_secret.is_some()),
    ];
    let foreign = |b: &mut Builder<'_>, fields: &[(&str, bool)], kind: &str| {
        for (field, present) in fields {
            if *present {
                b.problem(
                    format!("{path}.{field}"),
                    format!("is not a setting of kind \"{kind}\""),
                );
            }
        }
    };
    match raw.kind.as_deref() {
        Some("jwt") => {
            foreign(b, &gateway_fields, "jwt");
            jwt(b, &path, raw).map(AuthSettings::Jwt)
        }
        Some("gateway") => {
            foreign(b, &jwt_fields, "gateway");
            gateway(b, &path, raw).map(AuthSettings::Gateway)
        }
        kind => {
            let message = match kind {
                Some(other) => format!("{other:?} is not \"jwt\" or \"gateway\""),
                None => "is required (\"jwt\" or \"gateway\")".to_owned(),
            };
            b.problem(format!("{path}.kind"), message);
            // The rest is still checked as the kind its settings belong to, when they tell,
            // so that a wrong kind does not hide the other problems.
            let any = |fields: &[(&str, bool)]| fields.iter().any(|(_, present)| *present);
            match (any(&jwt_fields), any(&gateway_fields)) {
                (true, false) => _ = jwt(b, &path, raw),
                (false, true) => _ = gateway(b, &path, raw),
                _ => {}
            }
            None
        }
    }
}

fn jwt(b: &mut Builder<'_>, path: &str, raw: &RawAuth) -> Option<JwtSettings> {
    let issuer = b.required(&format!("{path}.issuer"), &raw.issuer);
    if issuer.as_deref() == Some("") {
        b.problem(format!("{path}.issuer"), "must not be empty");
    }
    let audiences = raw.audiences.clone().unwrap_or_default();
    if audiences.is_empty() || audiences.iter().any(String::is_empty) {
        b.problem(
            format!("{path}.audiences"),
            "must list at least one non-empty audience",
        );
    }
    let mut algorithms = Vec::new();
    match &raw.algorithms {
        None => b.problem(
            format!("{path}.algorithms"),
            "is required (e.g. [\"RS256\"])",
        ),
        Some(names) if names.is_empty() => b.problem(
            format!("{path}.algorithms"),
            "must list at least one algorithm",
        ),
        Some(names) => {
            for (i, name) in names.iter().enumerate() {
                match name.parse::<Algorithm>() {
                    Ok(alg) => algorithms.push(alg),
                    Err(_) => b.problem(
                        format!("{path}.algorithms[{i}]"),
                        format!("{name:?} is not a supported JWS algorithm"),
                    ),
                }
            }
        }
    }
    let is_hmac =
        |alg: &Algorithm| matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
    let leeway = b.duration(
        &format!("{path}.leeway"),
        &raw.leeway,
        Duration::from_secs(60),
    );
    if leeway > MAX_LEEWAY {
        b.problem(format!("{path}.leeway"), "must be at most 5 minutes");
    }
    let problems_before = b.problems.len();
    let cache_ttl = b.duration_at_least(
        &format!("{path}.jwks_cache_ttl"),
        &raw.jwks_cache_ttl,
        Duration::from_secs(600),
        MIN_JWKS_INTERVAL,
    );
    let max_stale = b.duration(
        &format!("{path}.jwks_max_stale"),
        &raw.jwks_max_stale,
        Duration::from_secs(24 * 3600),
    );
    // Fetched keys age by `cache_ttl` before the next refresh, plus its fetch and any retries:
    // they must outlive one failed refresh, or a provider's slow moment makes the service
    // unready. (Only a fetched key set ages; and a refused duration was not this one.)
    if raw.jwks_url.is_some() && b.problems.len() == problems_before && max_stale < 2 * cache_ttl {
        // Not jwks_cache_ttl's value: a problem shows only what was written at its own key.
        match raw.jwks_max_stale {
            Some(_) => b.problem(
                format!("{path}.jwks_max_stale"),
                "must be at least twice jwks_cache_ttl, so that keys outlive a failed refresh",
            ),
            None => b.problem(
                format!("{path}.jwks_cache_ttl"),
                "must be at most half of jwks_max_stale (24h when not set), so that keys outlive a failed refresh",
            ),
        }
    }

    let refetch_cooldown = b.duration_at_least(
        &format!("{path}.jwks_refetch_cooldown"),
        &raw.jwks_refetch_cooldown,
        Duration::from_secs(30),
        MIN_JWKS_INTERVAL,
    );

    let sources = [&raw.jwks_url, &raw.jwks_file, &raw.hs256_secret]
        .iter()
        .filter(|s| s.is_some())
        .count();
    if sources != 1 {
        b.problem(
            path,
            "needs exactly one key source: jwks_url, jwks_file or hs256_secret",
        );
    }
    // With two sources, what each allows would contradict the other: one problem is enough.
    let public_keys = raw.jwks_url.is_some() || raw.jwks_file.is_some();
    if sources == 1 && public_keys && algorithms.iter().any(is_hmac) {
        b.problem(
            format!("{path}.algorithms"),
            "HMAC algorithms cannot be used with a public key set",
        );
    }
    // Every source given is checked, so that its problems show with the one above.
    let mut keys = None;
    if let Some(url) = &raw.jwks_url {
        if let Err(message) = check_https_or_loopback(url) {
            b.problem(format!("{path}.jwks_url"), message);
        }
        keys = Some(KeySource::Remote {
            url: url.clone(),
            cache_ttl,
            refetch_cooldown,
            max_stale,
        });
    }
    if let Some(file) = &raw.jwks_file {
        let file_path = format!("{path}.jwks_file");
        keys = match std::fs::read(file) {
            Ok(document) => match KeySet::from_jwks(&document) {
                Ok(keys) => Some(KeySource::Static(Arc::new(keys))),
                Err(reason) => {
                    b.problem(&file_path, format!("{file}: {reason}"));
                    None
                }
            },
            Err(e) => {
                b.problem(&file_path, format!("cannot read file {file}: {}", e.kind()));
                None
            }
        };
    }
    if let Some(raw_secret) = &raw.hs256_secret {
        let secret_path = format!("{path}.hs256_secret");
        if sources == 1 && algorithms.iter().any(|alg| *alg != Algorithm::HS256) {
            b.problem(
                format!("{path}.algorithms"),
                "an hs256_secret verifies HS256 only",
            );
        }
        keys = b.secret(&secret_path, raw_secret).map(|secret| {
            let bytes = secrecy::ExposeSecret::expose_secret(&secret).as_bytes();
            if bytes.len() < MIN_HS256_SECRET_BYTES {
                b.problem(&secret_path, "must be at least 32 bytes");
            }
            KeySource::Static(Arc::new(KeySet::hmac(bytes)))
        });
    }
    if sources != 1 {
        return None;
    }
    Some(JwtSettings {
        issuer: issuer?,
        audiences,
        algorithms,
        leeway_secs: leeway.as_secs(),
        keys: keys?,
        policy_claims: Vec::new(),
    })
}

/// `YYYY-MM-DD` as unix seconds at midnight UTC.
fn parse_date(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

/// `https`, or `http` to a loopback address (a sidecar, a test server).
fn check_https_or_loopback(url: &str) -> Result<(), &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "is not a URL")?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(domain)) => domain == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err("must be https (http only on a loopback address)")
            }
        }
        _ => Err("must be an https URL"),
    }
}

fn gateway(b: &mut Builder<'_>, path: &str, raw: &RawAuth) -> Option<GatewaySettings> {
    let identity_header = match &raw.identity_header {
        Some(h) => b.header_name(&format!("{path}.identity_header"), h),
        None => {
            b.problem(format!("{path}.identity_header"), "is required");
            None
        }
    };
    let claim_headers: Vec<(String, HeaderName)> = raw
        .claim_headers
        .iter()
        .flatten()
        .filter_map(|(claim, header)| {
            let name = b.header_name(&format!("{path}.claim_headers.{claim}"), header)?;
            Some((claim.clone(), name))
        })
        .collect();
    if claim_headers.iter().any(|(claim, _)| claim == "sub") {
        b.problem(
            format!("{path}.claim_headers.sub"),
            "sub comes from identity_header",
        );
    }
    let trusted_proxies = ip_nets(
        b,
        &format!("{path}.trusted_proxies"),
        raw.trusted_proxies.as_deref(),
    );
    let shared_secret = match (&raw.shared_secret_header, &raw.shared_secret) {
        (Some(header), Some(secret)) => {
            let header = b.header_name(&format!("{path}.shared_secret_header"), header);
            let secret = b.secret(&format!("{path}.shared_secret"), secret);
            if let Some(secret) = &secret
                && secrecy::ExposeSecret::expose_secret(secret).len() < 16
            {
                b.problem(format!("{path}.shared_secret"), "must be at least 16 bytes");
            }
            Some((header?, secret?))
        }
        (None, None) => None,
        _ => {
            b.problem(path, "shared_secret_header and shared_secret go together");
            None
        }
    };
    if trusted_proxies.is_empty() && shared_secret.is_none() {
        b.problem(path, "needs trusted_proxies, a shared secret, or both: identity headers are believed only from a trusted gateway");
    }
    Some(GatewaySettings {
        identity_header: identity_header?,
        claim_headers,
        trusted_proxies,
        shared_secret,
    })
}

fn app(
    b: &mut Builder<'_>,
    name: &str,
    raw: &RawApp,
    accounts: &BTreeMap<String, Arc<Account>>,
    auth: &BTreeMap<String, AuthSettings>,
    config: &RawConfig,
) -> Option<App> {
    let path = format!("apps.{name}");
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if !valid_name {
        b.problem(&path, "app names are 1 to 64 letters, digits, '_' or '-'");
    }
    let account = match &raw.account {
        None => {
            b.problem(format!("{path}.account"), "is required");
            None
        }
        Some(account) => match accounts.get(account) {
            Some(a) => Some(a.clone()),
            None => {
                // An account that exists but failed validation was reported already.
                if !config.accounts.contains_key(account) {
                    b.problem(
                        format!("{path}.account"),
                        format!("names account {account:?}, which is not configured"),
                    );
                }
                None
            }
        },
    };
    let authenticator = match &raw.auth {
        None => {
            b.problem(format!("{path}.auth"), "is required");
            None
        }
        Some(name) => match auth.get(name) {
            Some(a) => Some(a),
            None => {
                if !config.auth.contains_key(name) {
                    b.problem(
                        format!("{path}.auth"),
                        format!("names authenticator {name:?}, which is not configured"),
                    );
                }
                None
            }
        },
    };
    let identity = match &raw.identity {
        Some(t) => b.template(&format!("{path}.identity"), t),
        None => b.template(&format!("{path}.identity"), "{sub}"),
    };

    let ttl = b.duration(&format!("{path}.ttl"), &raw.ttl, Duration::from_secs(3600));
    let max_ttl = b.duration(&format!("{path}.max_ttl"), &raw.max_ttl, ttl);
    if ttl.as_secs() == 0 {
        b.problem(format!("{path}.ttl"), "must be at least 1 second");
    }
    if ttl > max_ttl {
        b.problem(format!("{path}.ttl"), "must not exceed max_ttl");
    }
    let too_long = "must not exceed 24h: Twilio refuses longer-lived tokens";
    if ttl.as_secs() > MAX_TTL_SECS {
        b.problem(format!("{path}.ttl"), too_long);
    }
    // When max_ttl is not set it is the ttl, whose problem that is.
    if raw.max_ttl.is_some() && max_ttl.as_secs() > MAX_TTL_SECS {
        b.problem(format!("{path}.max_ttl"), too_long);
    }

    let allow_credentials = raw.cors_allow_credentials.unwrap_or(false);
    for (i, origin) in raw.cors_origins.iter().enumerate() {
        if let Err(message) = check_origin(origin) {
            b.problem(format!("{path}.cors_origins[{i}]"), message);
        }
    }
    let rate_limit = raw
        .rate_limit
        .as_ref()
        .and_then(|r| match parse_rate_limit(r) {
            Ok(limit) => Some(limit),
            Err(message) => {
                b.problem(format!("{path}.rate_limit"), message);
                None
            }
        });

    let policy_grants = grants(b, &path, &raw.grants);

    // Checked on whichever of the two parsed, so one's problems do not hide the other's.
    if let Some(authenticator) = authenticator {
        let auth_name = raw.auth.as_deref().unwrap_or_default();
        let identity_claims = identity.iter().flat_map(|t| t.claims());
        let grant_claims = policy_grants.iter().flat_map(|g| g.claims());
        let claims = identity_claims
            .map(|c| (c, format!("{path}.identity")))
            .chain(grant_claims.map(|(key, c)| (c, format!("{path}.grants.{key}"))));
        for (claim, at) in claims {
            if !authenticator.supplies_claim(claim) {
                b.problem(
                    at,
                    format!(
                        "uses claim {claim:?}, which authenticator {auth_name:?} does not supply"
                    ),
                );
            }
        }
    }

    Some(App {
        policy: AppPolicy {
            name: name.to_owned(),
            identity: identity?,
            ttl_secs: ttl.as_secs(),
            max_ttl_secs: max_ttl.as_secs().min(MAX_TTL_SECS),
            grants: policy_grants?,
        },
        account: account?,
        auth: raw.auth.clone()?,
        cors: CorsPolicy {
            origins: raw.cors_origins.clone(),
            allow_credentials,
        },
        rate_limit,
    })
}

/// A browser origin: scheme, host and optional port, nothing else.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    if origin == "*" || origin == "null" {
        return Err("must be a full origin such as https://app.example.com, not a wildcard");
    }
    let url = reqwest::Url::parse(origin)
        .map_err(|_| "is not an origin such as https://app.example.com")?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http or https origin");
    }
    if url.origin().ascii_serialization() != origin {
        return Err(
            "must be exactly scheme://host[:port], lower-case, with no path or trailing slash",
        );
    }
    Ok(())
}

fn parse_rate_limit(raw: &str) -> Result<RateLimit, String> {
    let invalid = || format!("{raw:?} is not a rate such as \"30/min\"");
    let (count, per) = raw.split_once('/').ok_or_else(invalid)?;
    let count: u32 = count.trim().parse().map_err(|_| invalid())?;
    let per = match per.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(invalid()),
    };
    if count == 0 {
        return Err("rate must be at least 1".into());
    }
    Ok(RateLimit { count, per })
}

fn push_credentials(
    b: &mut Builder<'_>,
    path: &str,
    raw: &BTreeMap<String, String>,
) -> BTreeMap<String, Sid<crate::twilio::sid::Credential>> {
    raw.iter()
        .filter_map(|(platform, sid)| {
            let at = format!("{path}.push_credentials.{platform}");
            if platform == "web" {
                b.problem(&at, "\"web\" means no push credential and cannot have one");
                return None;
            }
            if platform.is_empty() {
                b.problem(&at, "a platform name must not be empty");
                return None;
            }
            Some((platform.clone(), b.sid(&at, sid)?))
        })
        .collect()
}

fn grants(b: &mut Builder<'_>, app_path: &str, raw: &RawGrants) -> Option<GrantPolicies> {
    let path = format!("{app_path}.grants");
    let voice = raw.voice.as_ref().map(|v| {
        let p = format!("{path}.voice");
        VoicePolicy {
            incoming: v.incoming,
            outgoing_application_sid: b.optional_sid(
                &format!("{p}.outgoing_application_sid"),
                &v.outgoing_application_sid,
            ),
            outgoing_params: v
                .outgoing_params
                .iter()
                .filter_map(|(k, t)| {
                    Some((
                        k.clone(),
                        b.template(&format!("{p}.outgoing_params.{k}"), t)?,
                    ))
                })
                .collect(),
            push_credentials: push_credentials(b, &p, &v.push_credentials),
            require_claims: v.require_claims.clone(),
        }
    });
    if let Some(v) = &raw.voice
        && v.outgoing_application_sid.is_none()
        && !v.outgoing_params.is_empty()
    {
        b.problem(
            format!("{path}.voice.outgoing_params"),
            "needs outgoing_application_sid",
        );
    }
    let video = match &raw.video {
        None => None,
        Some(v) => {
            let p = format!("{path}.video.rooms");
            match Rooms::parse(v.rooms.as_deref().unwrap_or_default()) {
                Ok(rooms) => Some(VideoPolicy {
                    rooms,
                    require_claims: v.require_claims.clone(),
                }),
                Err((index, message)) => {
                    b.problem(index.map_or(p.clone(), |i| format!("{p}[{i}]")), message);
                    None
                }
            }
        }
    };
    let chat = raw.chat.as_ref().map(|c| {
        let p = format!("{path}.chat");
        ChatPolicy {
            service_sid: b.optional_sid(&format!("{p}.service_sid"), &c.service_sid),
            deployment_role_sid: b
                .optional_sid(&format!("{p}.deployment_role_sid"), &c.deployment_role_sid),
            push_credentials: push_credentials(b, &p, &c.push_credentials),
            require_claims: c.require_claims.clone(),
        }
    });
    let sync = raw.sync.as_ref().map(|s| SyncPolicy {
        service_sid: b.optional_sid(&format!("{path}.sync.service_sid"), &s.service_sid),
        require_claims: s.require_claims.clone(),
    });
    let task_router = raw.task_router.as_ref().map(|t| {
        let p = format!("{path}.task_router");
        TaskRouterPolicy {
            workspace_sid: b.optional_sid(&format!("{p}.workspace_sid"), &t.workspace_sid),
            worker_sid: b.optional_sid(&format!("{p}.worker_sid"), &t.worker_sid),
            role: t.role.clone(),
            require_claims: t.require_claims.clone(),
        }
    });
    if voice.is_none()
        && raw.video.is_none()
        && chat.is_none()
        && sync.is_none()
        && task_router.is_none()
    {
        b.problem(path, "the app must offer at least one grant");
        return None;
    }
    if raw.video.is_some() && video.is_none() {
        return None;
    }
    Some(GrantPolicies {
        voice,
        video,
        chat,
        sync,
        task_router,
    })
}
