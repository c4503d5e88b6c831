//! The running configuration: validated settings plus live authenticators. The HTTP layer holds
//! it behind an atomic pointer so a reload can swap a whole new one in without a failed request.
//! Minting itself lives here too, so the HTTP API and the `mint` command share one path and one
//! audit record.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::auth::{Authenticator, Principal};
use crate::config::{Account, App, ServerSettings, Settings};
use crate::metrics::{Metrics, MintedCounters};
use crate::policy::{Denial, GrantKind, MintRequest};
use crate::ratelimit::RateLimits;
use crate::twilio::{AccessToken, SignError};

#[derive(Debug)]
pub struct Runtime {
    pub server: ServerSettings,
    pub accounts: BTreeMap<String, Arc<Account>>,
    pub apps: BTreeMap<String, Arc<App>>,
    pub authenticators: BTreeMap<String, Authenticator>,
    pub metrics: Arc<Metrics>,
    /// Each app's `tokens_minted` counters, by app name.
    pub minted_counters: BTreeMap<String, MintedCounters>,
    pub limits: Arc<RateLimits>,
}

/// A minted token and what the audit log and the response say about it. Its `Debug` output
/// leaves the token out: it is a bearer credential for Twilio until it expires.
pub struct Minted {
    pub token: String,
    pub identity: String,
    pub kinds: Vec<GrantKind>,
    pub ttl_secs: u64,
    /// Unix seconds.
    pub expires_at: u64,
    pub jti: String,
    pub key_sid: String,
}

impl fmt::Debug for Minted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minted")
            .field("token", &"[redacted]")
            .field("identity", &self.identity)
            .field("kinds", &self.kinds)
            .field("ttl_secs", &self.ttl_secs)
            .field("expires_at", &self.expires_at)
            .field("jti", &self.jti)
            .field("key_sid", &self.key_sid)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("policy denied the request: {}", .0.reason)]
    Denied(Denial),
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl Runtime {
    /// Builds a runtime. With `previous` (a reload), JWKS caches whose URL did not change are
    /// carried over, so the new configuration verifies callers from its first request.
    pub fn new(settings: Settings, metrics: Arc<Metrics>, previous: Option<&Runtime>) -> Self {
        let authenticators = settings
            .auth
            .into_iter()
            .map(|(name, auth)| {
                let old = previous.and_then(|p| p.authenticators.get(&name));
                let authenticator = Authenticator::new(&name, auth, metrics.clone(), old);
                (name, authenticator)
            })
            .collect();
        let app_limits = settings
            .apps
            .iter()
            .filter_map(|(name, app)| Some((name.clone(), app.rate_limit?)));
        let minted_counters = settings
            .apps
            .keys()
            .map(|name| (name.clone(), metrics.minted_counters(name)))
            .collect();
        let limits = Arc::new(RateLimits::new(
            app_limits,
            settings.server.auth_failure_limit,
            previous.map(|p| p.limits.as_ref()),
        ));
        Self {
            limits,
            server: settings.server,
            accounts: settings.accounts,
            apps: settings.apps,
            authenticators,
            metrics,
            minted_counters,
        }
    }

    /// Age in seconds of every signing key with a `created` date: (account, key SID, age).
    pub fn key_ages(&self, now: i64) -> Vec<(&str, &str, f64)> {
        self.accounts
            .values()
            .flat_map(|account| {
                account.keys.iter().filter_map(move |key| {
                    let created = key.created?;
                    let age = (now - created).max(0) as f64;
                    Some((account.name.as_str(), key.signer.key_sid().as_str(), age))
                })
            })
            .collect()
    }

    /// Logs a warning for every signing key older than its account's rotation period.
    pub fn warn_about_old_keys(&self, now: i64) {
        for (name, key, age) in self.key_ages(now) {
            let period = self.accounts[name].rotation_period.as_secs_f64();
            if age > period {
                tracing::warn!(
                    account = name,
                    key,
                    age_days = (age / 86_400.0).floor(),
                    rotation_period_days = (period / 86_400.0).floor(),
                    "signing key is older than the account's rotation period; create a new key and rotate"
                );
            }
        }
    }

    /// Starts background work (JWKS refreshes). Needs a Tokio runtime.
    pub fn start(&self) {
        self.authenticators.values().for_each(Authenticator::start);
        self.limits.start_sweeping();
    }

    /// Ready when every authenticator can verify callers.
    pub fn is_ready(&self) -> bool {
        self.authenticators.values().all(Authenticator::is_ready)
    }

    /// Fetches the keys of every JWT provider that has none yet (a new JWKS URL at a reload).
    pub async fn load_keys(&self) {
        for authenticator in self.authenticators.values() {
            authenticator.load_keys().await;
        }
    }

    /// The names of the authenticators that cannot verify callers yet.
    pub fn unready_authenticators(&self) -> impl Iterator<Item = &str> {
        self.authenticators
            .iter()
            .filter(|(_, auth)| !auth.is_ready())
            .map(|(name, _)| name.as_str())
    }

    /// Applies `app`'s policy for `principal` and signs the result with the account's first key.
    pub fn mint(
        app: &App,
        principal: &Principal,
        request: &MintRequest,
        now: u64,
    ) -> Result<Minted, MintError> {
        let plan = app
            .policy
            .plan(principal, request)
            .map_err(MintError::Denied)?;
        let signer = app.account.signer();
        let jti_suffix = crate::text::random_id();
        let token = signer.sign(&AccessToken {
            grants: plan.grants,
            issued_at: now,
            ttl_secs: plan.ttl_secs,
            jti_suffix: jti_suffix.clone(),
        })?;
        Ok(Minted {
            token,
            identity: plan.identity,
            kinds: plan.kinds,
            ttl_secs: plan.ttl_secs,
            expires_at: now + plan.ttl_secs,
            jti: signer.jti(&jti_suffix),
            key_sid: signer.key_sid().to_string(),
        })
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_leaves_the_token_out() {
        let minted = Minted {
            token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJBQyJ9.c2lnbmF0dXJl".into(),
            identity: "alice".into(),
            kinds: vec![GrantKind::Video],
            ttl_secs: 600,
            expires_at: 1_700_000_600,
            jti: "SK00-1".into(),
            key_sid: "SK00".into(),
        };
        let debug = format!("{minted:?}");
        assert!(!debug.contains("eyJ"), "{debug}");
        assert!(
            debug.contains("alice") && debug.contains("Video"),
            "{debug}"
        );
    }
}
