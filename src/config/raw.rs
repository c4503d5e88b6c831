//! The configuration file as written: every field optional so that one pass can report every
//! problem. Unknown keys are collected by the loader, not rejected by serde, for the same reason.
//! No `Debug`: with `allow_literal_secrets`, these hold secrets as written.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};

#[derive(Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub accounts: BTreeMap<String, RawAccount>,
    #[serde(default)]
    pub auth: BTreeMap<String, RawAuth>,
    #[serde(default)]
    pub apps: BTreeMap<String, RawApp>,
}

#[derive(Default, Deserialize)]
pub struct RawServer {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub request_timeout: Option<String>,
    pub header_read_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
    #[serde(default, deserialize_with = "some_count")]
    pub max_body_bytes: Option<u64>,
    #[serde(default, deserialize_with = "some_boolean")]
    pub allow_literal_secrets: Option<bool>,
    pub default_app: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub auth_failure_limit: Option<String>,
    #[serde(default, deserialize_with = "some_boolean")]
    pub check_credentials_on_start: Option<bool>,
}

#[derive(Default, Deserialize)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Deserialize)]
pub struct RawAccount {
    pub account_sid: Option<String>,
    pub region: Option<String>,
    #[serde(default)]
    pub auth_tokens: Vec<String>,
    #[serde(default)]
    pub signing_keys: Vec<RawSigningKey>,
    pub rotation_period: Option<String>,
    #[serde(default)]
    pub webhook_shared_keys: BTreeMap<String, String>,
    pub api_base: Option<String>,
}

#[derive(Deserialize)]
pub struct RawSigningKey {
    pub sid: Option<String>,
    pub secret: Option<String>,
    pub created: Option<String>,
}

/// Both kinds in one struct; fields of the other kind are reported as problems.
#[derive(Deserialize)]
pub struct RawAuth {
    pub kind: Option<String>,
    // kind = "jwt"
    pub issuer: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub algorithms: Option<Vec<String>>,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<String>,
    pub hs256_secret: Option<String>,
    pub leeway: Option<String>,
    pub jwks_cache_ttl: Option<String>,
    pub jwks_refetch_cooldown: Option<String>,
    pub jwks_max_stale: Option<String>,
    // kind = "gateway"
    pub identity_header: Option<String>,
    pub claim_headers: Option<BTreeMap<String, String>>,
    pub trusted_proxies: Option<Vec<String>>,
    pub shared_secret_header: Option<String>,
    pub shared_secret: Option<String>,
}

#[derive(Deserialize)]
pub struct RawApp {
    pub account: Option<String>,
    pub auth: Option<String>,
    pub identity: Option<String>,
    pub ttl: Option<String>,
    pub max_ttl: Option<String>,
    #[serde(default)]
    pub cors_origins: Vec<String>,
    #[serde(default, deserialize_with = "some_boolean")]
    pub cors_allow_credentials: Option<bool>,
    pub rate_limit: Option<String>,
    #[serde(default)]
    pub grants: RawGrants,
}

#[derive(Default, Deserialize)]
pub struct RawGrants {
    pub voice: Option<RawVoice>,
    pub video: Option<RawVideo>,
    pub chat: Option<RawChat>,
    pub sync: Option<RawSync>,
    pub task_router: Option<RawTaskRouter>,
}

#[derive(Deserialize)]
pub struct RawVoice {
    pub outgoing_application_sid: Option<String>,
    #[serde(default)]
    pub outgoing_params: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "boolean")]
    pub incoming: bool,
    #[serde(default)]
    pub push_credentials: BTreeMap<String, String>,
    #[serde(default)]
    pub require_claims: BTreeMap<String, String>,
}

#[derive(Deserialize)]
pub struct RawVideo {
    pub rooms: Option<Vec<String>>,
    #[serde(default)]
    pub require_claims: BTreeMap<String, String>,
}

#[derive(Deserialize)]
pub struct RawChat {
    pub service_sid: Option<String>,
    pub deployment_role_sid: Option<String>,
    #[serde(default)]
    pub push_credentials: BTreeMap<String, String>,
    #[serde(default)]
    pub require_claims: BTreeMap<String, String>,
}

#[derive(Deserialize)]
pub struct RawSync {
    pub service_sid: Option<String>,
    #[serde(default)]
    pub require_claims: BTreeMap<String, String>,
}

#[derive(Deserialize)]
pub struct RawTaskRouter {
    pub workspace_sid: Option<String>,
    pub worker_sid: Option<String>,
    pub role: Option<String>,
    #[serde(default)]
    pub require_claims: BTreeMap<String, String>,
}

/// `true` or `false`, also written as a string (a reference or an environment variable gives
/// one). Unlike the `config` crate's reading, not `"yes"`, `"on"`, `"TRUE"`, `1` or `0`: a typo
/// or a number where a flag belongs is a problem at its key, not a silent `true`.
fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct Boolean;
    impl Visitor<'_> for Boolean {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean")
        }

        fn visit_bool<E>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<bool, E> {
            value
                .parse()
                .map_err(|_| E::invalid_value(Unexpected::Str(value), &self))
        }
    }
    deserializer.deserialize_any(Boolean)
}

fn some_boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    boolean(deserializer).map(Some)
}

/// A whole number, also written as a string of digits (as a reference or an environment
/// variable gives it). Not a flag or a fraction, which the `config` crate would read as 1 or
/// round.
fn some_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct Count;
    impl Visitor<'_> for Count {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_u64<E>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value).map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
            let digits = value.bytes().all(|b| b.is_ascii_digit());
            (value.parse().ok().filter(|_| digits))
                .ok_or_else(|| E::invalid_value(Unexpected::Str(value), &self))
        }
    }
    deserializer.deserialize_any(Count).map(Some)
}
