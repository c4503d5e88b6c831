//! Prometheus metrics, held in the application state (not a process-wide global) so every test
//! server has its own. Labels carry app, grant, code, route and key names only: never an
//! identity, a token or a secret.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::policy::GrantKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppGrant {
    app: String,
    grant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppCode {
    app: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthResult {
    auth: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountKey {
    account: String,
    key: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    tokens_minted: Family<AppGrant, Counter>,
    denials: Family<AppCode, Counter>,
    request_duration: Family<RouteStatus, Histogram, fn() -> Histogram>,
    jwks_refreshes: Family<AuthResult, Counter>,
    config_reloads: Family<Outcome, Counter>,
    caller_cache: Family<AuthResult, Counter>,
    signing_key_age: Family<AccountKey, Gauge<f64, AtomicU64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tokenmint");
        let tokens_minted = Family::default();
        registry.register(
            "tokens_minted",
            "Access Tokens minted, by app and grant",
            tokens_minted.clone(),
        );
        let denials = Family::default();
        registry.register(
            "token_denials",
            "Token requests refused, by app and problem code",
            denials.clone(),
        );
        let request_duration =
            Family::<RouteStatus, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency, by route and status",
            Unit::Seconds,
            request_duration.clone(),
        );
        let jwks_refreshes = Family::default();
        registry.register(
            "jwks_refresh",
            "JWKS fetches, by authenticator and result",
            jwks_refreshes.clone(),
        );
        let config_reloads = Family::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by result",
            config_reloads.clone(),
        );
        let caller_cache = Family::default();
        registry.register(
            "caller_cache",
            "Caller JWTs answered from the verified-caller cache (hit) or verified (miss)",
            caller_cache.clone(),
        );
        let signing_key_age = Family::default();
        registry.register_with_unit(
            "signing_key_age",
            "Age of each signing key, from its configured `created` date",
            Unit::Seconds,
            signing_key_age.clone(),
        );
        Self {
            registry,
            tokens_minted,
            denials,
            request_duration,
            jwks_refreshes,
            config_reloads,
            caller_cache,
            signing_key_age,
        }
    }
}

/// The counter in `slot`, looked up in `family` under `labels()` the first time.
fn kept<'a, S>(
    slot: &'a OnceLock<Counter>,
    family: &Family<S, Counter>,
    labels: impl FnOnce() -> S,
) -> &'a Counter
where
    S: Clone + std::hash::Hash + Eq,
{
    slot.get_or_init(|| family.get_or_create_owned(&labels()))
}

/// One app's `tokens_minted` counters, each looked up in its family the first time its grant is
/// minted (so the series appears then, as with a lookup per token) and then kept: counting a
/// token is one atomic add, with no label set built, hashed or locked for.
#[derive(Debug)]
pub struct MintedCounters {
    family: Family<AppGrant, Counter>,
    app: String,
    by_kind: [OnceLock<Counter>; GrantKind::ALL.len()],
}

impl MintedCounters {
    pub fn count(&self, kinds: &[GrantKind]) {
        for &kind in kinds {
            kept(&self.by_kind[kind as usize], &self.family, || AppGrant {
                app: self.app.clone(),
                grant: kind.as_str().to_owned(),
            })
            .inc();
        }
    }
}

/// One authenticator's `caller_cache` counters, kept like [`MintedCounters`].
#[derive(Debug)]
pub struct CacheCounters {
    family: Family<AuthResult, Counter>,
    auth: String,
    hit: OnceLock<Counter>,
    miss: OnceLock<Counter>,
}

impl CacheCounters {
    pub fn count(&self, hit: bool) {
        let (slot, result) = if hit {
            (&self.hit, "hit")
        } else {
            (&self.miss, "miss")
        };
        kept(slot, &self.family, || AuthResult {
            auth: self.auth.clone(),
            result: result.to_owned(),
        })
        .inc();
    }
}

impl Metrics {
    /// The counters of tokens minted by `app`, to keep for as long as its configuration.
    pub fn minted_counters(&self, app: &str) -> MintedCounters {
        MintedCounters {
            family: self.tokens_minted.clone(),
            app: app.to_owned(),
            by_kind: Default::default(),
        }
    }

    /// The verified-caller cache counters of the authenticator `auth`.
    pub fn caller_cache_counters(&self, auth: &str) -> CacheCounters {
        CacheCounters {
            family: self.caller_cache.clone(),
            auth: auth.to_owned(),
            hit: OnceLock::new(),
            miss: OnceLock::new(),
        }
    }

    pub fn denied(&self, app: &str, code: &str) {
        self.denials
            .get_or_create(&AppCode {
                app: app.to_owned(),
                code: code.to_owned(),
            })
            .inc();
    }

    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.request_duration
            .get_or_create(&RouteStatus {
                route: route.to_owned(),
                status,
            })
            .observe(seconds);
    }

    /// `result` is `ok` or a short failure reason.
    pub fn jwks_refresh(&self, auth: &str, result: &str) {
        self.jwks_refreshes
            .get_or_create(&AuthResult {
                auth: auth.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.config_reloads
            .get_or_create(&Outcome {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Replaces every key age with `ages` (account, key SID, seconds).
    pub fn set_key_ages<'a>(&self, ages: impl IntoIterator<Item = (&'a str, &'a str, f64)>) {
        self.signing_key_age.clear();
        for (account, key, seconds) in ages {
            self.signing_key_age
                .get_or_create(&AccountKey {
                    account: account.to_owned(),
                    key: key.to_owned(),
                })
                .set(seconds);
        }
    }

    /// The Prometheus/OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_uses_the_documented_names_and_labels() {
        let metrics = Metrics::default();
        let minted = metrics.minted_counters("support");
        minted.count(&[GrantKind::Voice, GrantKind::Video]);
        minted.count(&[GrantKind::Voice]);
        let cache = metrics.caller_cache_counters("corp");
        cache.count(false);
        cache.count(true);
        cache.count(true);
        metrics.denied("support", "unauthenticated");
        metrics.request("/apps/{app}/token", 200, 0.002);
        metrics.jwks_refresh("corp", "ok");
        metrics.config_reload(false);
        metrics.set_key_ages([("main", "SK00", 86400.0)]);
        let text = metrics.encode();
        for expected in [
            r#"tokenmint_tokens_minted_total{app="support",grant="voice"} 2"#,
            r#"tokenmint_tokens_minted_total{app="support",grant="video"} 1"#,
            r#"tokenmint_caller_cache_total{auth="corp",result="hit"} 2"#,
            r#"tokenmint_caller_cache_total{auth="corp",result="miss"} 1"#,
            r#"tokenmint_token_denials_total{app="support",code="unauthenticated"} 1"#,
            r#"tokenmint_http_request_duration_seconds_count{route="/apps/{app}/token",status="200"} 1"#,
            r#"tokenmint_jwks_refresh_total{auth="corp",result="ok"} 1"#,
            r#"tokenmint_config_reloads_total{result="error"} 1"#,
            r#"tokenmint_signing_key_age_seconds{account="main",key="SK00"} 86400.0"#,
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
        // A series appears with its first count, not before.
        assert!(!text.contains(r#"grant="chat""#), "{text}");
    }

    #[test]
    fn counters_kept_by_two_configurations_add_up_in_one_series() {
        let metrics = Metrics::default();
        // A reload builds new counters for the same app; they must count in the same series.
        metrics.minted_counters("support").count(&[GrantKind::Chat]);
        metrics.minted_counters("support").count(&[GrantKind::Chat]);
        metrics.caller_cache_counters("corp").count(true);
        metrics.caller_cache_counters("corp").count(true);
        let text = metrics.encode();
        for expected in [
            r#"tokenmint_tokens_minted_total{app="support",grant="chat"} 2"#,
            r#"tokenmint_caller_cache_total{auth="corp",result="hit"} 2"#,
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }
}
