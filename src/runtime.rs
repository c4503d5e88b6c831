//! The running configuration: validated settings plus live authenticators. The HTTP layer holds
//! it behind an atomic pointer so a reload can swap a whole new one in without a failed request.
//! Minting itself lives here too, so the HTTP API and the `mint` command share one path and one
//! audit record.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::{Authenticator, Principal};
use crate::config::{Account, App, ServerSettings, Settings};
use crate::policy::{Denial, GrantKind, MintRequest};
use crate::twilio::{AccessToken, SignError};

#[derive(Debug)]
pub struct Runtime {
    pub server: ServerSettings,
    pub accounts: BTreeMap<String, Arc<Account>>,
    pub apps: BTreeMap<String, Arc<App>>,
    pub authenticators: BTreeMap<String, Authenticator>,
}

/// A minted token and what the audit log and the response say about it.
#[derive(Debug)]
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

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("policy denied the request: {}", .0.reason)]
    Denied(Denial),
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl Runtime {
    pub fn new(settings: Settings) -> Self {
        let authenticators = settings
            .auth
            .into_iter()
            .map(|(name, auth)| {
                let authenticator = Authenticator::new(&name, auth);
                (name, authenticator)
            })
            .collect();
        Self {
            server: settings.server,
            accounts: settings.accounts,
            apps: settings.apps,
            authenticators,
        }
    }

    /// Starts background work (JWKS refreshes). Needs a Tokio runtime.
    pub fn start(&self) {
        self.authenticators.values().for_each(Authenticator::start);
    }

    /// Ready when every authenticator can verify callers.
    pub fn is_ready(&self) -> bool {
        self.authenticators.values().all(Authenticator::is_ready)
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
        let jti_suffix = uuid::Uuid::new_v4().simple().to_string();
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
