//! Rate limits: tokens per app and identity, and failed authentications per client address.
//!
//! State is per replica and in memory (GCRA buckets from `governor`); idle keys are swept
//! periodically so memory stays bounded however many distinct callers or addresses appear.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimit;

/// Most addresses remembered as blocked at once; beyond it a failing address is still refused
/// by its bucket, it just is not refused before verification.
const MAX_BLOCKED: usize = 65_536;
/// How often idle buckets are dropped.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

fn quota(limit: RateLimit) -> Quota {
    let count = NonZeroU32::new(limit.count).unwrap_or(NonZeroU32::MIN);
    let period = limit.per / count.get();
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count)
}

/// The key of `client`'s failure budget: an IPv4 address as it is, an IPv6 address by its /64,
/// the smallest block a site or a host is usually given, so that one client cannot spend a new
/// budget on each of its 2^64 addresses. IPv4-mapped IPv6 addresses count as their IPv4 one.
fn budget_key(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// Seconds to tell a client in `Retry-After` (at least 1).
fn retry_after(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

pub struct RateLimits {
    apps: BTreeMap<String, Limited<DefaultKeyedRateLimiter<String>>>,
    failures: Limited<FailureBudget>,
    clock: DefaultClock,
}

/// A limiter with the limit it was made for, so that a reload with the same limit keeps it.
struct Limited<T> {
    limit: RateLimit,
    state: Arc<T>,
}

impl<T> Limited<T> {
    /// The limiter of `previous` when it was made for `limit`, else a new one.
    fn keep_or_make(limit: RateLimit, previous: Option<&Self>, make: impl FnOnce() -> T) -> Self {
        let state = match previous {
            Some(previous) if previous.limit == limit => previous.state.clone(),
            _ => Arc::new(make()),
        };
        Self { limit, state }
    }
}

/// Failed authentications per client address, and the addresses over their budget.
struct FailureBudget {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses over their failure budget, until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// Whether `blocked` may hold an address, written with it under its lock: with nobody
    /// blocked, the check before every verification reads this instead of taking the lock. A
    /// request racing the first block may miss it and be verified; its failure is then refused
    /// by the bucket, as any beyond [`MAX_BLOCKED`] is.
    any_blocked: AtomicBool,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("apps", &self.apps.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// `apps` maps each rate-limited app to its limit; `failures` is the per-address budget of
    /// failed authentications. With `previous` (a reload), every limiter whose limit did not
    /// change is kept with what it counted, so a reload neither resets a caller's bucket nor
    /// lifts a block.
    pub fn new(
        apps: impl IntoIterator<Item = (String, RateLimit)>,
        failures: RateLimit,
        previous: Option<&RateLimits>,
    ) -> Self {
        let apps = apps
            .into_iter()
            .map(|(app, limit)| {
                let before = previous.and_then(|p| p.apps.get(&app));
                let limiter = Limited::keep_or_make(limit, before, || {
                    DefaultKeyedRateLimiter::keyed(quota(limit))
                });
                (app, limiter)
            })
            .collect();
        let failures =
            Limited::keep_or_make(failures, previous.map(|p| &p.failures), || FailureBudget {
                limiter: DefaultKeyedRateLimiter::keyed(quota(failures)),
                blocked: Mutex::new(HashMap::new()),
                any_blocked: AtomicBool::new(false),
            });
        Self {
            apps,
            failures,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one token from `caller`'s bucket for `app` (the identity being minted, see the
    /// token handler); `Err` holds the seconds to wait.
    pub fn check_caller(&self, app: &str, caller: &str) -> Result<(), u64> {
        let Some(limiter) = self.apps.get(app) else {
            return Ok(());
        };
        limiter
            .state
            .check_key(&caller.to_owned())
            .map_err(|not_until| retry_after(not_until.wait_time_from(self.clock.now())))
    }

    /// Whether `client` used up its failure budget; `Some` holds the seconds to wait.
    pub fn blocked(&self, client: IpAddr) -> Option<u64> {
        let budget = &self.failures.state;
        if !budget.any_blocked.load(Ordering::Acquire) {
            return None;
        }
        let blocked = budget.blocked.lock().ok()?;
        let until = *blocked.get(&budget_key(client))?;
        let now = Instant::now();
        (until > now).then(|| retry_after(until - now))
    }

    /// Counts a failed authentication from `client`; `Some` (seconds to wait) once the budget
    /// is used up, after which [`RateLimits::blocked`] refuses the address until it refills.
    pub fn record_failure(&self, client: IpAddr) -> Option<u64> {
        let client = budget_key(client);
        let budget = &self.failures.state;
        let not_until = budget.limiter.check_key(&client).err()?;
        let wait = not_until.wait_time_from(self.clock.now());
        if let Ok(mut blocked) = budget.blocked.lock() {
            let now = Instant::now();
            if blocked.len() >= MAX_BLOCKED {
                blocked.retain(|_, until| *until > now);
            }
            if blocked.len() < MAX_BLOCKED {
                blocked.insert(client, now + wait);
                budget.any_blocked.store(true, Ordering::Release);
            }
        }
        Some(retry_after(wait))
    }

    /// Drops idle buckets and expired blocks.
    pub fn sweep(&self) {
        for limiter in self.apps.values() {
            limiter.state.retain_recent();
            limiter.state.shrink_to_fit();
        }
        let budget = &self.failures.state;
        budget.limiter.retain_recent();
        budget.limiter.shrink_to_fit();
        if let Ok(mut blocked) = budget.blocked.lock() {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
            blocked.shrink_to_fit();
            budget
                .any_blocked
                .store(!blocked.is_empty(), Ordering::Release);
        }
    }

    /// Keys currently held (buckets plus blocks), for tests of the memory bound.
    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        let buckets: usize = self.apps.values().map(|l| l.state.len()).sum();
        let budget = &self.failures.state;
        let blocked = budget.blocked.lock().map_or(0, |b| b.len());
        buckets + budget.limiter.len() + blocked
    }

    /// Sweeps every [`SWEEP_INTERVAL`] until the limits are dropped.
    pub fn start_sweeping(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_INTERVAL).await;
                let Some(limits) = weak.upgrade() else { break };
                limits.sweep();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_minute(count: u32) -> RateLimit {
        RateLimit {
            count,
            per: Duration::from_secs(60),
        }
    }

    #[test]
    fn each_caller_has_its_own_bucket_per_app() {
        let limits = RateLimits::new([("support".to_owned(), per_minute(3))], per_minute(5), None);
        for _ in 0..3 {
            assert_eq!(limits.check_caller("support", "alice"), Ok(()));
        }
        let wait = limits.check_caller("support", "alice").unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(limits.check_caller("support", "bob"), Ok(()));
        // apps without a limit are not limited
        for _ in 0..10 {
            assert_eq!(limits.check_caller("other", "alice"), Ok(()));
        }
    }

    #[test]
    fn failures_block_an_address_once_its_budget_is_spent() {
        let limits = RateLimits::new([], per_minute(2), None);
        let attacker: IpAddr = "198.51.100.7".parse().unwrap();
        let bystander: IpAddr = "198.51.100.8".parse().unwrap();
        assert_eq!(limits.record_failure(attacker), None);
        assert_eq!(limits.record_failure(attacker), None);
        assert_eq!(limits.blocked(attacker), None);
        assert!(limits.record_failure(attacker).is_some());
        assert!(limits.blocked(attacker).is_some());
        assert_eq!(limits.blocked(bystander), None);
    }

    #[test]
    fn an_ipv6_client_has_one_budget_for_its_whole_64() {
        let limits = RateLimits::new([], per_minute(2), None);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        // Three addresses of one /64 spend one budget between them.
        assert_eq!(limits.record_failure(ip("2001:db8:1:2::1")), None);
        assert_eq!(limits.record_failure(ip("2001:db8:1:2::2")), None);
        assert!(
            limits
                .record_failure(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
                .is_some()
        );
        assert!(limits.blocked(ip("2001:db8:1:2::99")).is_some());
        // The next /64 is someone else.
        assert_eq!(limits.blocked(ip("2001:db8:1:3::1")), None);
        // An IPv4 client is the same client whether it arrives mapped into IPv6 or not.
        assert_eq!(limits.record_failure(ip("::ffff:198.51.100.7")), None);
        assert_eq!(limits.record_failure(ip("198.51.100.7")), None);
        assert!(limits.record_failure(ip("::ffff:198.51.100.7")).is_some());
        assert!(limits.blocked(ip("198.51.100.7")).is_some());
        assert_eq!(limits.blocked(ip("198.51.100.8")), None);
    }

    #[test]
    fn a_reload_keeps_what_unchanged_limits_counted() {
        let before = RateLimits::new(
            [
                ("support".to_owned(), per_minute(1)),
                ("sales".to_owned(), per_minute(1)),
            ],
            per_minute(1),
            None,
        );
        let attacker: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(before.record_failure(attacker), None);
        assert!(before.record_failure(attacker).is_some());
        assert_eq!(before.check_caller("support", "alice"), Ok(()));
        assert_eq!(before.check_caller("sales", "alice"), Ok(()));
        // The failure budget and support's limit are unchanged, sales's is raised.
        let after = RateLimits::new(
            [
                ("support".to_owned(), per_minute(1)),
                ("sales".to_owned(), per_minute(5)),
            ],
            per_minute(1),
            Some(&before),
        );
        assert!(after.blocked(attacker).is_some(), "a reload lifted a block");
        assert!(after.check_caller("support", "alice").is_err());
        assert_eq!(after.check_caller("sales", "alice"), Ok(()));
        // A changed failure budget starts afresh.
        let changed = RateLimits::new([], per_minute(2), Some(&after));
        assert_eq!(changed.blocked(attacker), None);
    }

    #[test]
    fn an_address_is_blocked_again_after_a_sweep_cleared_every_block() {
        let limits = RateLimits::new(
            [],
            RateLimit {
                count: 1,
                per: Duration::from_millis(100),
            },
            None,
        );
        let client: IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(limits.record_failure(client), None);
        assert!(limits.record_failure(client).is_some());
        assert!(limits.failures.state.any_blocked.load(Ordering::Acquire));
        std::thread::sleep(Duration::from_millis(150));
        limits.sweep();
        assert!(!limits.failures.state.any_blocked.load(Ordering::Acquire));
        assert_eq!(limits.blocked(client), None);
        assert_eq!(limits.record_failure(client), None);
        assert!(limits.record_failure(client).is_some());
        assert!(limits.blocked(client).is_some());
    }

    #[test]
    fn memory_stays_bounded_under_many_distinct_keys() {
        let limits = RateLimits::new(
            [("support".to_owned(), per_minute(1))],
            RateLimit {
                count: 1,
                per: Duration::from_millis(1),
            },
            None,
        );
        for i in 0..100_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            limits.record_failure(ip);
            limits.record_failure(ip);
        }
        assert!(limits.failures.state.blocked.lock().unwrap().len() <= MAX_BLOCKED);
        std::thread::sleep(Duration::from_millis(20));
        limits.sweep();
        assert_eq!(limits.tracked_keys(), 0, "idle keys survived a sweep");
    }
}
