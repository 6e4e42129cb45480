//! Abuse limits for call requests: sliding-window rate limits and a concurrent-call cap.
//!
//! A click-to-call form makes a carrier ring a number someone typed, so the platform must not
//! be usable to harass a number, flood a business or burn trunk capacity. [`RateLimiter`]
//! counts accepted requests per [`LimitKey`] over an exact sliding window and refuses the
//! request that would go over [`Limits`]:
//!
//! | key | window | default |
//! |---|---|---|
//! | [`LimitKey::Number`] (the customer's E.164 number) | 1 hour | 3 |
//! | [`LimitKey::Ip`] (the client address; IPv6 grouped by /64) | 1 minute | 10 |
//! | [`LimitKey::Business`] | 1 minute | 120 |
//! | calls in progress per business ([`RateLimiter::start_call`]) | — | 50 |
//!
//! Contract:
//! - **A refused request consumes no quota.** [`RateLimiter::try_acquire`] checks every key
//!   first and records the request under all of them only when none refuses;
//!   [`RateLimiter::check`] never records.
//! - **`retry_after` is exact**: the time until the oldest counted request leaves the window
//!   (a request at `t` counts while `now < t + window`), so a retry at `now + retry_after`
//!   passes that limit.
//! - **Memory is bounded**: a key keeps at most `limit` timestamps; keys whose window is empty
//!   are dropped by [`RateLimiter::purge`] (call it periodically); and at most
//!   [`Limits::max_tracked_keys`] keys are tracked — past that, the key used least recently is
//!   forgotten (which errs towards letting its owner through, never towards refusing others).
//! - A limit of 0 turns that limit off.
//!
//! No clock is read: `now` comes in, so tests run on fake time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::BusinessId;

/// The window of [`Limits::per_number_per_hour`].
pub const NUMBER_WINDOW: Duration = Duration::from_secs(3600);
/// The window of [`Limits::per_ip_per_minute`].
pub const IP_WINDOW: Duration = Duration::from_secs(60);
/// The window of [`Limits::per_business_per_minute`].
pub const BUSINESS_WINDOW: Duration = Duration::from_secs(60);

/// The limits (configuration; read-only once given to [`RateLimiter::new`]). 0 turns a limit
/// off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Accepted requests to call one customer number per hour (default 3).
    pub per_number_per_hour: u32,
    /// Accepted requests from one client address per minute (default 10).
    pub per_ip_per_minute: u32,
    /// Accepted requests for one business per minute (default 120).
    pub per_business_per_minute: u32,
    /// Calls in progress at once per business (default 50).
    pub max_concurrent_calls: u32,
    /// Most keys tracked at once; the least recently used is forgotten past it
    /// (default 100 000).
    pub max_tracked_keys: usize,
    /// The `retry_after` hint given with [`LimitKind::ConcurrentCalls`], where no exact moment
    /// is known (default 30 s).
    pub busy_retry_after: Duration,
    /// How far ahead a call request may ask to be called (`contact_time`), in days
    /// (default 30): a request further out is refused (`422` naming `contact_time`), not kept
    /// for years.
    pub max_schedule_days: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_number_per_hour: 3,
            per_ip_per_minute: 10,
            per_business_per_minute: 120,
            max_concurrent_calls: 50,
            max_tracked_keys: 100_000,
            busy_retry_after: Duration::from_secs(30),
            max_schedule_days: 30,
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// [`Limits::per_number_per_hour`].
    PerNumber,
    /// [`Limits::per_ip_per_minute`].
    PerIp,
    /// [`Limits::per_business_per_minute`].
    PerBusiness,
    /// [`Limits::max_concurrent_calls`].
    ConcurrentCalls,
}

impl LimitKind {
    /// The contract name: `"per_number"`, `"per_ip"`, `"per_business"` or
    /// `"concurrent_calls"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PerNumber => "per_number",
            Self::PerIp => "per_ip",
            Self::PerBusiness => "per_business",
            Self::ConcurrentCalls => "concurrent_calls",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request (the HTTP layer answers 429 with `Retry-After`). A refusal is a normal
/// outcome, not a fault of this crate, so it is its own type rather than a [`crate::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests ({which}); retry in {retry_after:?}")]
pub struct Limited {
    /// How long until this limit lets the same request through (exact for the windowed
    /// limits; [`Limits::busy_retry_after`] for [`LimitKind::ConcurrentCalls`]).
    pub retry_after: Duration,
    /// Which limit refused.
    pub which: LimitKind,
}

/// What a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKey {
    /// The client's address. IPv6 addresses are grouped by their /64 (one host usually owns
    /// a whole /64) and IPv4-mapped IPv6 addresses count as IPv4.
    Ip(IpAddr),
    /// The customer's number, E.164 (e.g. the output of [`crate::numbers::NumberPolicy`]).
    Number(String),
    /// The business the call is for.
    Business(BusinessId),
}

impl LimitKey {
    /// The limit this key is counted against.
    #[must_use]
    pub const fn kind(&self) -> LimitKind {
        match self {
            Self::Ip(_) => LimitKind::PerIp,
            Self::Number(_) => LimitKind::PerNumber,
            Self::Business(_) => LimitKind::PerBusiness,
        }
    }

    /// The key as counted: IPv6 cut to its /64, IPv4-mapped IPv6 as IPv4.
    fn normalized(&self) -> Self {
        match self {
            Self::Ip(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::Ip(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(*v6) & !((1u128 << 64) - 1);
                    Self::Ip(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
            other => other.clone(),
        }
    }
}

/// The sliding window of a windowed limit.
const fn window_of(kind: LimitKind) -> Duration {
    match kind {
        LimitKind::PerNumber => NUMBER_WINDOW,
        LimitKind::PerIp => IP_WINDOW,
        LimitKind::PerBusiness | LimitKind::ConcurrentCalls => BUSINESS_WINDOW,
    }
}

/// The accepted requests of one key, oldest first (at most `limit` of them).
#[derive(Debug)]
struct Window {
    stamps: VecDeque<Instant>,
    /// This key's entry in [`RateLimiter::lru`].
    used: u64,
}

/// Sliding-window counters per key plus the per-business count of calls in progress. Owned by
/// whoever accepts call requests (one per process); see the module docs for the contract.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Limits,
    windows: HashMap<LimitKey, Window>,
    /// Keys by last use, least recent first (for the [`Limits::max_tracked_keys`] cap).
    lru: BTreeMap<u64, LimitKey>,
    next_use: u64,
    active: HashMap<BusinessId, u32>,
}

impl RateLimiter {
    /// A limiter with no history.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            windows: HashMap::new(),
            lru: BTreeMap::new(),
            next_use: 0,
            active: HashMap::new(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the limits (a configuration reload); the counts so far are kept.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limit and window counted for a key of this kind.
    fn rule(&self, kind: LimitKind) -> (u32, Duration) {
        let limit = match kind {
            LimitKind::PerNumber => self.limits.per_number_per_hour,
            LimitKind::PerIp => self.limits.per_ip_per_minute,
            LimitKind::PerBusiness | LimitKind::ConcurrentCalls => {
                self.limits.per_business_per_minute
            }
        };
        (limit, window_of(kind))
    }

    /// Would one more request for `key` at `now` pass? Records nothing.
    ///
    /// # Errors
    /// [`Limited`] with the exact wait when `key` has used its whole window.
    pub fn check(&self, key: &LimitKey, now: Instant) -> Result<(), Limited> {
        let (limit, window) = self.rule(key.kind());
        if limit == 0 {
            return Ok(());
        }
        let Some(w) = self.windows.get(&key.normalized()) else {
            return Ok(());
        };
        // Stamps are kept in order, so the ones still in the window are a suffix.
        let first_live = w
            .stamps
            .partition_point(|&t| now.saturating_duration_since(t) >= window);
        let live = w.stamps.len() - first_live;
        let limit = limit as usize;
        if live < limit {
            return Ok(());
        }
        // The request that must leave for one more to fit: the (live - limit)th oldest live one.
        let leaves = w.stamps[first_live + live - limit] + window;
        Err(Limited {
            retry_after: leaves.saturating_duration_since(now),
            which: key.kind(),
        })
    }

    /// Counts one accepted request for `key` at `now`, without checking (use
    /// [`RateLimiter::check`] first, or [`RateLimiter::try_acquire`]).
    pub fn record(&mut self, key: &LimitKey, now: Instant) {
        let (limit, window) = self.rule(key.kind());
        if limit == 0 {
            return;
        }
        let key = key.normalized();
        let used = self.next_use;
        self.next_use += 1;
        let w = self.windows.entry(key.clone()).or_insert_with(|| Window {
            stamps: VecDeque::new(),
            used,
        });
        while w
            .stamps
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            w.stamps.pop_front();
        }
        let at = w.stamps.partition_point(|&t| t <= now);
        w.stamps.insert(at, now);
        while w.stamps.len() > limit as usize {
            w.stamps.pop_front();
        }
        self.lru.remove(&w.used);
        w.used = used;
        self.lru.insert(used, key);
        while self.windows.len() > self.limits.max_tracked_keys.max(1) {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            self.windows.remove(&oldest);
        }
    }

    /// Checks every key and, only if all pass, records the request under each of them.
    ///
    /// # Errors
    /// When any key refuses: the refusal with the longest `retry_after` (the request can pass
    /// no sooner), and nothing is recorded.
    pub fn try_acquire(&mut self, keys: &[LimitKey], now: Instant) -> Result<(), Limited> {
        let worst = keys
            .iter()
            .filter_map(|k| self.check(k, now).err())
            .max_by_key(|l| l.retry_after);
        if let Some(refusal) = worst {
            return Err(refusal);
        }
        for k in keys {
            self.record(k, now);
        }
        Ok(())
    }

    /// Drops the timestamps that have left their window and the keys left with none. Returns
    /// how many keys were dropped.
    pub fn purge(&mut self, now: Instant) -> usize {
        let before = self.windows.len();
        let lru = &mut self.lru;
        self.windows.retain(|key, w| {
            let window = window_of(key.kind());
            w.stamps
                .retain(|&t| now.saturating_duration_since(t) < window);
            if w.stamps.is_empty() {
                lru.remove(&w.used);
                false
            } else {
                true
            }
        });
        before - self.windows.len()
    }

    /// How many keys have a history.
    #[must_use]
    pub fn tracked_keys(&self) -> usize {
        self.windows.len()
    }

    /// Counts a call of `business` as in progress, unless that reaches
    /// [`Limits::max_concurrent_calls`]. Pair every `Ok` with one [`RateLimiter::end_call`].
    ///
    /// # Errors
    /// [`LimitKind::ConcurrentCalls`] with [`Limits::busy_retry_after`] when the business
    /// already has its maximum of calls in progress (nothing is counted).
    pub fn start_call(&mut self, business: &BusinessId) -> Result<(), Limited> {
        let max = self.limits.max_concurrent_calls;
        let n = self.active.get(business).copied().unwrap_or(0);
        if max != 0 && n >= max {
            return Err(Limited {
                retry_after: self.limits.busy_retry_after,
                which: LimitKind::ConcurrentCalls,
            });
        }
        self.active.insert(business.clone(), n.saturating_add(1));
        Ok(())
    }

    /// A call counted by [`RateLimiter::start_call`] ended. Never goes below zero; a business
    /// at zero is forgotten.
    pub fn end_call(&mut self, business: &BusinessId) {
        if let Some(n) = self.active.get_mut(business) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.active.remove(business);
            }
        }
    }

    /// Calls of `business` in progress.
    #[must_use]
    pub fn active_calls(&self, business: &BusinessId) -> u32 {
        self.active.get(business).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn num(s: &str) -> LimitKey {
        LimitKey::Number(s.to_owned())
    }

    fn ip(s: &str) -> LimitKey {
        LimitKey::Ip(s.parse().unwrap())
    }

    fn biz(s: &str) -> LimitKey {
        LimitKey::Business(s.parse().unwrap())
    }

    #[test]
    fn three_per_hour_then_refused_with_exact_retry_after() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Limits::default());
        let k = [num("+442079460958")];
        assert_eq!(rl.try_acquire(&k, t0), Ok(()));
        assert_eq!(rl.try_acquire(&k, t0 + 5 * MIN), Ok(()));
        assert_eq!(rl.try_acquire(&k, t0 + 20 * MIN), Ok(()));
        // The first request (t0) leaves the window at t0 + 60 min.
        assert_eq!(
            rl.try_acquire(&k, t0 + 30 * MIN),
            Err(Limited {
                retry_after: 30 * MIN,
                which: LimitKind::PerNumber
            })
        );
        assert_eq!(
            rl.check(&k[0], t0 + 60 * MIN - Duration::from_nanos(1)),
            Err(Limited {
                retry_after: Duration::from_nanos(1),
                which: LimitKind::PerNumber
            })
        );
        // Another number is unaffected.
        assert_eq!(
            rl.try_acquire(&[num("+15551234567")], t0 + 30 * MIN),
            Ok(())
        );
    }

    #[test]
    fn the_window_slides() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Limits::default());
        let k = [num("+4930123456")];
        for m in [0, 10, 20] {
            rl.try_acquire(&k, t0 + m * MIN).unwrap();
        }
        // At t0 + 60 min the first one has left: one slot, then the t0+10 one is the oldest.
        assert_eq!(rl.try_acquire(&k, t0 + 60 * MIN), Ok(()));
        assert_eq!(
            rl.check(&k[0], t0 + 61 * MIN).unwrap_err().retry_after,
            9 * MIN
        );
        assert_eq!(rl.try_acquire(&k, t0 + 70 * MIN), Ok(()));
    }

    #[test]
    fn refused_attempts_are_not_counted() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Limits::default());
        let k = [num("+4930123456")];
        for m in [0, 1, 2] {
            rl.try_acquire(&k, t0 + m * MIN).unwrap();
        }
        for s in 0..100 {
            assert!(rl
                .try_acquire(&k, t0 + 3 * MIN + Duration::from_secs(s))
                .is_err());
        }
        // Exactly as if the 100 refusals never happened.
        assert_eq!(rl.try_acquire(&k, t0 + 60 * MIN), Ok(()));
        assert_eq!(rl.check(&k[0], t0 + 60 * MIN).unwrap_err().retry_after, MIN);
    }

    #[test]
    fn a_refusal_by_one_key_consumes_no_quota_of_the_others() {
        let t0 = Instant::now();
        let limits = Limits {
            per_number_per_hour: 1,
            per_ip_per_minute: 2,
            ..Limits::default()
        };
        let mut rl = RateLimiter::new(limits);
        let a = [ip("192.0.2.1"), num("+4930111111"), biz("acme")];
        rl.try_acquire(&a, t0).unwrap();
        // Same IP and business, same (used up) number: refused, IP not charged.
        for _ in 0..5 {
            assert_eq!(
                rl.try_acquire(&a, t0).unwrap_err().which,
                LimitKind::PerNumber
            );
        }
        let b = [ip("192.0.2.1"), num("+4930222222"), biz("acme")];
        assert_eq!(rl.try_acquire(&b, t0), Ok(()));
        let c = [ip("192.0.2.1"), num("+4930333333"), biz("acme")];
        assert_eq!(
            rl.try_acquire(&c, t0 + Duration::from_secs(10)),
            Err(Limited {
                retry_after: Duration::from_secs(50),
                which: LimitKind::PerIp
            })
        );
    }

    #[test]
    fn the_longest_wait_is_reported() {
        let t0 = Instant::now();
        let limits = Limits {
            per_number_per_hour: 1,
            per_ip_per_minute: 1,
            ..Limits::default()
        };
        let mut rl = RateLimiter::new(limits);
        let k = [ip("192.0.2.1"), num("+4930111111")];
        rl.try_acquire(&k, t0).unwrap();
        assert_eq!(
            rl.try_acquire(&k, t0 + MIN / 2),
            Err(Limited {
                retry_after: 60 * MIN - MIN / 2,
                which: LimitKind::PerNumber
            })
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let limits = Limits {
            per_ip_per_minute: 2,
            ..Limits::default()
        };
        let mut rl = RateLimiter::new(limits);
        rl.try_acquire(&[ip("2001:db8:1:2::1")], t0).unwrap();
        rl.try_acquire(&[ip("2001:db8:1:2:ffff::9")], t0).unwrap();
        assert!(rl.try_acquire(&[ip("2001:db8:1:2::abcd")], t0).is_err());
        assert_eq!(rl.try_acquire(&[ip("2001:db8:1:3::1")], t0), Ok(()));
        rl.try_acquire(&[ip("198.51.100.7")], t0).unwrap();
        rl.try_acquire(&[ip("::ffff:198.51.100.7")], t0).unwrap();
        assert!(rl.try_acquire(&[ip("198.51.100.7")], t0).is_err());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let t0 = Instant::now();
        let limits = Limits {
            per_business_per_minute: 0,
            max_concurrent_calls: 0,
            ..Limits::default()
        };
        let mut rl = RateLimiter::new(limits);
        for _ in 0..1000 {
            rl.try_acquire(&[biz("acme")], t0).unwrap();
            rl.start_call(&"acme".parse().unwrap()).unwrap();
        }
        assert_eq!(rl.tracked_keys(), 0);
    }

    #[test]
    fn purge_drops_empty_windows_only() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Limits::default());
        rl.try_acquire(&[ip("192.0.2.1"), num("+4930111111")], t0)
            .unwrap();
        rl.try_acquire(&[ip("192.0.2.2")], t0 + 30 * MIN).unwrap();
        assert_eq!(rl.tracked_keys(), 3);
        assert_eq!(rl.purge(t0 + 30 * MIN), 1, "192.0.2.1's minute is over");
        assert_eq!(rl.purge(t0 + 31 * MIN), 1, "192.0.2.2's minute is over");
        assert_eq!(rl.tracked_keys(), 1, "the number's hour is not");
        assert_eq!(rl.purge(t0 + 60 * MIN), 1);
        assert_eq!(rl.tracked_keys(), 0);
        assert!(rl.lru.is_empty());
    }

    #[test]
    fn the_key_cap_forgets_the_least_recently_used() {
        let t0 = Instant::now();
        let limits = Limits {
            per_number_per_hour: 1,
            max_tracked_keys: 2,
            ..Limits::default()
        };
        let mut rl = RateLimiter::new(limits);
        rl.try_acquire(&[num("+4930111111")], t0).unwrap();
        rl.try_acquire(&[num("+4930222222")], t0).unwrap();
        rl.try_acquire(&[num("+4930333333")], t0).unwrap();
        assert_eq!(rl.tracked_keys(), 2);
        assert_eq!(rl.lru.len(), 2);
        // The first number was forgotten, the other two are still limited.
        assert_eq!(rl.check(&num("+4930111111"), t0), Ok(()));
        assert!(rl.check(&num("+4930222222"), t0).is_err());
        assert!(rl.check(&num("+4930333333"), t0).is_err());
    }

    #[test]
    fn concurrent_calls_are_capped_and_never_underflow() {
        let limits = Limits {
            max_concurrent_calls: 2,
            ..Limits::default()
        };
        let mut rl = RateLimiter::new(limits);
        let acme: BusinessId = "acme".parse().unwrap();
        let globex: BusinessId = "globex".parse().unwrap();
        rl.end_call(&acme);
        assert_eq!(rl.active_calls(&acme), 0);
        rl.start_call(&acme).unwrap();
        rl.start_call(&acme).unwrap();
        assert_eq!(
            rl.start_call(&acme),
            Err(Limited {
                retry_after: Duration::from_secs(30),
                which: LimitKind::ConcurrentCalls
            })
        );
        assert_eq!(rl.active_calls(&acme), 2, "a refusal is not counted");
        rl.start_call(&globex).unwrap();
        rl.end_call(&acme);
        rl.start_call(&acme).unwrap();
        for _ in 0..5 {
            rl.end_call(&acme);
        }
        assert_eq!(rl.active_calls(&acme), 0);
        assert_eq!(rl.active_calls(&globex), 1);
        assert!(!rl.active.contains_key(&acme), "zero is forgotten");
    }

    #[test]
    fn refusal_reads_as_a_sentence() {
        let l = Limited {
            retry_after: Duration::from_secs(5),
            which: LimitKind::PerIp,
        };
        assert_eq!(l.to_string(), "too many requests (per_ip); retry in 5s");
    }
}
