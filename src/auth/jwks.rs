//! Fetching and caching a provider's JWKS.
//!
//! The last good key set keeps serving while the provider is down (up to `max_stale`), a failed
//! or malformed answer never replaces it, and a token with an unknown `kid` causes at most one
//! fetch per cooldown however many such tokens arrive. Fetches have connect and total timeouts,
//! follow no redirects and read at most [`MAX_JWKS_BYTES`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::sync::Mutex;

use super::AuthError;
use super::jwt::KeySet;
use crate::metrics::Metrics;

/// Largest JWKS document read, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

struct Loaded {
    keys: Arc<KeySet>,
    fetched_at: Instant,
}

/// The cached keys of one remote provider.
pub struct RemoteKeys {
    auth: String,
    url: String,
    client: Option<reqwest::Client>,
    cache_ttl: Duration,
    refetch_cooldown: Duration,
    max_stale: Duration,
    loaded: ArcSwapOption<Loaded>,
    /// When the last on-demand fetch (for an unknown `kid`, or with no keys yet) started; held
    /// during that fetch so concurrent misses share it. Scheduled refreshes do not count.
    last_refetch: Arc<Mutex<Option<Instant>>>,
    started: AtomicBool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("auth", &self.auth)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RemoteKeys {
    pub fn new(
        auth: &str,
        url: String,
        cache_ttl: Duration,
        refetch_cooldown: Duration,
        max_stale: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Without its timeouts and redirect policy no client is used at all: the key set is then
        // never fetched and the authenticator stays unready, rather than fetching without them.
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokenmint/", env!("CARGO_PKG_VERSION")))
            .build()
            .inspect_err(|error| {
                tracing::error!(auth, %error, "cannot build the HTTP client for the key set");
            })
            .ok();
        Self {
            auth: auth.to_owned(),
            url,
            client,
            cache_ttl,
            refetch_cooldown,
            max_stale,
            loaded: ArcSwapOption::empty(),
            last_refetch: Arc::new(Mutex::new(None)),
            started: AtomicBool::new(false),
            metrics,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A cache for the same URL with new timings that starts from this one's keys (reload).
    pub fn reconfigure(
        &self,
        cache_ttl: Duration,
        refetch_cooldown: Duration,
        max_stale: Duration,
    ) -> Arc<Self> {
        let next = Self::new(
            &self.auth,
            self.url.clone(),
            cache_ttl,
            refetch_cooldown,
            max_stale,
            self.metrics.clone(),
        );
        next.loaded.store(self.loaded.load_full());
        Arc::new(next)
    }

    /// The key set, unless none was ever loaded or the last one is older than `max_stale`.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        let loaded = self.loaded.load();
        let loaded = loaded.as_ref()?;
        (loaded.fetched_at.elapsed() <= self.max_stale).then(|| loaded.keys.clone())
    }

    /// Keys to verify a token with `kid`: the cached set, refetched once per cooldown when it
    /// lacks the `kid`. Without any key set the caller must retry later.
    pub async fn keys_for(self: &Arc<Self>, kid: Option<&str>) -> Result<Arc<KeySet>, AuthError> {
        match self.current() {
            Some(keys) if kid.is_none_or(|kid| keys.has_kid(kid)) => Ok(keys),
            Some(keys) => Ok(self.refetch().await.unwrap_or(keys)),
            None => self.refetch().await.ok_or(AuthError::Unavailable {
                retry_after_secs: self.refetch_cooldown.as_secs().max(1),
            }),
        }
    }

    /// Fetches the key set now unless one is loaded (a reload's new cache, before it is swapped
    /// in); whether one is loaded afterwards.
    pub async fn load(self: &Arc<Self>) -> bool {
        self.current().is_some() || self.refetch().await.is_some()
    }

    /// Fetches unless a fetch started within the cooldown; returns the set afterwards.
    ///
    /// The fetch runs in a task of its own, which holds the lock until the keys are stored: a
    /// request that started it and then went away (its client hung up, its deadline passed)
    /// must not cancel it and leave the cooldown spent on nothing, or one request dropped at
    /// once every cooldown would keep a provider's new key from ever being fetched on demand.
    async fn refetch(self: &Arc<Self>) -> Option<Arc<KeySet>> {
        let mut last = self.last_refetch.clone().lock_owned().await;
        if last.is_some_and(|at| at.elapsed() < self.refetch_cooldown) {
            return self.current();
        }
        *last = Some(Instant::now());
        let this = self.clone();
        let fetch = tokio::spawn(async move {
            this.fetch_and_store().await;
            drop(last);
        });
        // A panic in the fetch leaves the keys as they were, as a failed fetch does.
        let _ = fetch.await;
        self.current()
    }

    /// Starts the background refresh: every `cache_ttl` after a success, with exponential
    /// backoff (1 s up to 60 s) after a failure. Stops when the authenticator is dropped.
    pub fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            // A cache carried over from before a reload waits out its remaining freshness.
            let fresh_for = weak.upgrade().and_then(|this| {
                let loaded = this.loaded.load_full()?;
                this.cache_ttl.checked_sub(loaded.fetched_at.elapsed())
            });
            if let Some(delay) = fresh_for {
                tokio::time::sleep(delay).await;
            }
            loop {
                let Some(this) = weak.upgrade() else { break };
                let ok = this.fetch_and_store().await;
                let delay = if ok {
                    backoff = Duration::from_secs(1);
                    this.cache_ttl
                } else {
                    let delay = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    delay
                };
                drop(this);
                tokio::time::sleep(delay).await;
            }
        });
    }

    async fn fetch_and_store(&self) -> bool {
        match self.fetch().await {
            Ok(keys) => {
                self.metrics.jwks_refresh(&self.auth, "ok");
                tracing::info!(auth = %self.auth, keys = keys.len(), "jwks refreshed");
                self.loaded.store(Some(Arc::new(Loaded {
                    keys: Arc::new(keys),
                    fetched_at: Instant::now(),
                })));
                true
            }
            Err(reason) => {
                let result = reason.split(' ').next().unwrap_or("error");
                self.metrics.jwks_refresh(&self.auth, result);
                let serving_last_good = self.current().is_some();
                tracing::warn!(auth = %self.auth, %reason, serving_last_good, "jwks refresh failed");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let client = self.client.as_ref().ok_or("no_client")?;
        let mut response = client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timeout"
                } else {
                    "unreachable"
                }
                .to_owned()
            })?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err("too_large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            if e.is_timeout() {
                "timeout"
            } else {
                "read_failed"
            }
            .to_owned()
        })? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("too_large".into());
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::from_jwks(&body).map_err(|reason| format!("invalid {reason}"))
    }
}
