//! Admission control: shed what cannot be carried, never accept and then fail.
//!
//! A call holds a **slot** from the moment it is promised media (an immediate call request,
//! a bridge, an inbound INVITE: at accept; a scheduled, retried or recovered request: when
//! the scheduler claims it) until its task ends. The slots are bounded by the smallest of
//! `limits.max_calls`, the descriptor budget (the socket backend opens four sockets per
//! call) and the free media ports. Each call set-up also takes a token of a bucket filled at
//! `limits.max_setups_per_second`, so SIP set-ups leave paced and their latency stays bounded
//! under offered overload.
//!
//! - An immediate request that finds no slot or no token is refused at once
//!   ([`Overload`]: `503` with an honest `Retry-After`); it consumes neither.
//! - A durable request (scheduled, queued) is never refused here: the scheduler claims only
//!   as many as there are slots and tokens ([`Admission::room`]); a claimed one that finds no
//!   slot is put back with a due time, one that finds no token waits for its turn
//!   ([`Claim::Took`]).
//!
//! [`SetupBucket`] is pure (time comes in); [`Admission`] wraps it and the slots in a mutex
//! (control plane, not the packet path).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flows::CallId;

use crate::lock;

/// How far ahead the scheduler may hand out set-up tokens: claimed requests wait at most
/// about this long for their turn.
pub(crate) const SCHEDULER_LOOKAHEAD: Duration = Duration::from_millis(500);
/// The window over which call ends are counted to estimate when a slot frees.
const END_WINDOW: Duration = Duration::from_secs(10);
/// Call ends remembered for that estimate (bounded memory).
const END_MEMORY: usize = 4096;
/// The longest `Retry-After` given for a full house (seconds).
const MAX_SLOT_RETRY_S: u64 = 10;

/// Admission limits (configuration `[limits]`); the default limits nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdmissionSettings {
    /// `limits.max_calls` when given explicitly: live calls of this process at most.
    /// `None`: bounded only by the descriptor budget and the media ports.
    pub max_calls: Option<usize>,
    /// Calls the descriptor budget carries (`None`: no per-call descriptors, e.g. DPDK).
    /// Refined at run time by [`crate::Service::set_descriptor_budget`].
    pub descriptor_calls: Option<usize>,
    /// Calls the media port range holds (port pairs ÷ 2; `None`: not known).
    pub port_calls: Option<usize>,
    /// `limits.max_setups_per_second`: call set-ups per second (0: no limit).
    pub max_setups_per_second: u32,
}

/// Why a request cannot be carried now (`503` with `Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overload {
    /// `max_calls`, `descriptors`, `media_ports` or `max_setups_per_second`.
    pub reason: &'static str,
    /// Seconds until a retry may be carried (at least 1).
    pub retry_after_s: u64,
}

/// A token bucket of call set-ups: `rate` per second, at most `burst` saved up. Pure: the
/// time comes in. A rate of 0 never refuses.
#[derive(Debug, Clone)]
pub struct SetupBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl SetupBucket {
    /// A full bucket of `rate` set-ups per second; the burst is a fifth of a second's worth
    /// (at least 1), so a burst of set-ups never queues more than ~200 ms of SIP work.
    #[must_use]
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate);
        let burst = (rate / 5.0).ceil().max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether the bucket limits nothing (rate 0).
    #[must_use]
    pub fn unlimited(&self) -> bool {
        self.rate <= 0.0
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// Takes a token now, or says how long until one is there (nothing taken).
    ///
    /// # Errors
    /// The wait until a token is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.unlimited() {
            return Ok(());
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Takes a token, going into debt if need be; returns how long the caller waits for
    /// its turn (zero when a token was there).
    pub fn reserve(&mut self, now: Instant) -> Duration {
        if self.unlimited() {
            return Duration::ZERO;
        }
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Tokens there now plus those that accrue within `ahead` (`usize::MAX` when unlimited).
    #[must_use]
    pub fn within(&mut self, now: Instant, ahead: Duration) -> usize {
        if self.unlimited() {
            return usize::MAX;
        }
        self.refill(now);
        let n = (self.tokens + ahead.as_secs_f64() * self.rate).floor();
        if n <= 0.0 {
            0
        } else {
            n as usize
        }
    }
}

/// What a claimed request found ([`Admission::claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// It already held a slot and its token (admitted at accept).
    Held,
    /// It took a slot and a token; it dials after this wait (its turn in the bucket).
    Took(Duration),
    /// No slot: put it back (due again after the retry).
    Full(Overload),
}

#[derive(Debug)]
struct State {
    /// Calls holding a slot.
    holders: HashSet<CallId>,
    /// Admitted at accept, not yet claimed by the scheduler (they need no new room).
    unclaimed: HashSet<CallId>,
    bucket: SetupBucket,
    /// When recent calls ended (for the `Retry-After` of a full house).
    ends: VecDeque<Instant>,
}

/// The process-wide admission state.
#[derive(Debug)]
pub(crate) struct Admission {
    max_calls: Option<usize>,
    port_calls: Option<usize>,
    /// Calls the descriptor budget carries (`usize::MAX`: unbounded).
    descriptor_calls: AtomicUsize,
    state: Mutex<State>,
    /// The scheduler found no room while work was due: wake it when a slot frees.
    starved: AtomicBool,
}

impl Admission {
    pub(crate) fn new(s: &AdmissionSettings, now: Instant) -> Self {
        Self {
            max_calls: s.max_calls,
            port_calls: s.port_calls,
            descriptor_calls: AtomicUsize::new(s.descriptor_calls.unwrap_or(usize::MAX)),
            state: Mutex::new(State {
                holders: HashSet::new(),
                unclaimed: HashSet::new(),
                bucket: SetupBucket::new(s.max_setups_per_second, now),
                ends: VecDeque::new(),
            }),
            starved: AtomicBool::new(false),
        }
    }

    /// Sets the calls the descriptor budget carries (`None`: unbounded).
    pub(crate) fn set_descriptor_calls(&self, calls: Option<usize>) {
        self.descriptor_calls
            .store(calls.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// The slot limit in force and the name of the one that binds.
    pub(crate) fn limit(&self) -> (usize, &'static str) {
        let fd = self.descriptor_calls.load(Ordering::Relaxed);
        // The smallest binds; an explicit max_calls wins a tie (the operator's choice).
        [
            (self.max_calls, "max_calls"),
            (Some(fd), "descriptors"),
            (self.port_calls, "media_ports"),
        ]
        .into_iter()
        .filter_map(|(n, which)| Some((n?, which)))
        .min_by_key(|&(n, _)| n)
        .unwrap_or((usize::MAX, "descriptors"))
    }

    /// Calls holding a slot now.
    pub(crate) fn holding(&self) -> usize {
        lock(&self.state).holders.len()
    }

    fn slot_retry(st: &mut State, now: Instant) -> u64 {
        while st
            .ends
            .front()
            .is_some_and(|t| now.duration_since(*t) > END_WINDOW)
        {
            st.ends.pop_front();
        }
        // n calls ended in the window: about one slot frees every window/n.
        match st.ends.len() {
            0 => MAX_SLOT_RETRY_S,
            n => (END_WINDOW.as_secs_f64() / n as f64)
                .ceil()
                .clamp(1.0, MAX_SLOT_RETRY_S as f64) as u64,
        }
    }

    /// Admits call `id` to be set up now: a slot (under the limit and with `free_pairs`
    /// media port pairs beyond those promised to `promised` admitted calls) and a set-up
    /// token, both or neither.
    ///
    /// # Errors
    /// [`Overload`] naming what is short.
    pub(crate) fn admit_now(
        &self,
        id: &CallId,
        free_pairs: usize,
        promised: usize,
        now: Instant,
    ) -> Result<(), Overload> {
        let (limit, which) = self.limit();
        let mut st = lock(&self.state);
        if st.holders.contains(id) {
            return Ok(());
        }
        if st.holders.len() >= limit {
            return Err(Overload {
                reason: which,
                retry_after_s: Self::slot_retry(&mut st, now),
            });
        }
        if free_pairs <= promised {
            return Err(Overload {
                reason: "media_ports",
                retry_after_s: Self::slot_retry(&mut st, now),
            });
        }
        if let Err(wait) = st.bucket.try_take(now) {
            return Err(Overload {
                reason: "max_setups_per_second",
                retry_after_s: secs_up(wait),
            });
        }
        st.holders.insert(id.clone());
        Ok(())
    }

    /// Marks an admitted call request as waiting for the scheduler's claim.
    pub(crate) fn await_claim(&self, id: &CallId) {
        lock(&self.state).unclaimed.insert(id.clone());
    }

    /// A claimed request about to be dialled: keeps the slot it was admitted with, or takes
    /// one (and a set-up token, waiting for its turn).
    pub(crate) fn claim(&self, id: &CallId, now: Instant) -> Claim {
        let (limit, which) = self.limit();
        let mut st = lock(&self.state);
        st.unclaimed.remove(id);
        if st.holders.contains(id) {
            return Claim::Held;
        }
        if st.holders.len() >= limit {
            let retry_after_s = Self::slot_retry(&mut st, now);
            return Claim::Full(Overload {
                reason: which,
                retry_after_s,
            });
        }
        st.holders.insert(id.clone());
        Claim::Took(st.bucket.reserve(now))
    }

    /// Ends call `id`'s slot (no-op if it held none). True when the scheduler waits for one.
    pub(crate) fn release(&self, id: &CallId, now: Instant) -> bool {
        let mut st = lock(&self.state);
        st.unclaimed.remove(id);
        if !st.holders.remove(id) {
            return false;
        }
        if st.ends.len() >= END_MEMORY {
            st.ends.pop_front();
        }
        st.ends.push_back(now);
        drop(st);
        self.starved.swap(false, Ordering::AcqRel)
    }

    /// How many due requests the scheduler may claim now: free slots and set-up tokens
    /// within [`SCHEDULER_LOOKAHEAD`], plus the admitted ones waiting for their claim.
    pub(crate) fn room(&self, now: Instant) -> usize {
        let (limit, _) = self.limit();
        let mut st = lock(&self.state);
        let slots = limit.saturating_sub(st.holders.len());
        let tokens = st.bucket.within(now, SCHEDULER_LOOKAHEAD);
        slots.min(tokens).saturating_add(st.unclaimed.len())
    }

    /// The scheduler found no room for due work: the next release wakes it.
    pub(crate) fn set_starved(&self) {
        self.starved.store(true, Ordering::Release);
    }
}

/// Whole seconds, rounded up, at least 1 (a `Retry-After`).
fn secs_up(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> CallId {
        CallId::from_random(n)
    }

    #[test]
    fn the_bucket_paces_at_its_rate_with_a_small_burst() {
        let t0 = Instant::now();
        let mut b = SetupBucket::new(50, t0);
        // Burst: a fifth of a second's worth.
        for _ in 0..10 {
            assert!(b.try_take(t0).is_ok());
        }
        let wait = b.try_take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(20));
        // 100 ms later: 5 more.
        let t1 = t0 + Duration::from_millis(100);
        for _ in 0..5 {
            assert!(b.try_take(t1).is_ok());
        }
        assert!(b.try_take(t1).is_err());
        // Never more than the burst saved up.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(b.within(t2, Duration::ZERO), 10);
        assert_eq!(b.within(t2, Duration::from_millis(500)), 35);
    }

    #[test]
    fn reserve_goes_into_debt_and_try_take_waits_it_out() {
        let t0 = Instant::now();
        let mut b = SetupBucket::new(10, t0);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.reserve(t0), Duration::from_millis(100));
        assert_eq!(b.reserve(t0), Duration::from_millis(200));
        // Debt of 2: an immediate request waits 300 ms for a whole token.
        let wait = b.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.3).abs() < 1e-9, "{wait:?}");
        assert_eq!(b.within(t0, Duration::from_millis(500)), 3);
    }

    #[test]
    fn rate_zero_limits_nothing() {
        let t0 = Instant::now();
        let mut b = SetupBucket::new(0, t0);
        for _ in 0..10_000 {
            assert!(b.try_take(t0).is_ok());
        }
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.within(t0, Duration::ZERO), usize::MAX);
    }

    #[test]
    fn slots_refuse_with_the_binding_limit_and_free_on_release() {
        let t0 = Instant::now();
        let a = Admission::new(
            &AdmissionSettings {
                max_calls: Some(2),
                descriptor_calls: Some(5),
                port_calls: Some(1000),
                max_setups_per_second: 0,
            },
            t0,
        );
        assert!(a.admit_now(&id(1), 100, 0, t0).is_ok());
        // The same call again: idempotent.
        assert!(a.admit_now(&id(1), 100, 0, t0).is_ok());
        assert!(a.admit_now(&id(2), 100, 0, t0).is_ok());
        let o = a.admit_now(&id(3), 100, 0, t0).unwrap_err();
        assert_eq!(o.reason, "max_calls");
        assert_eq!(o.retry_after_s, MAX_SLOT_RETRY_S);
        // The descriptor budget binds when it is smaller.
        a.set_descriptor_calls(Some(1));
        assert_eq!(a.limit(), (1, "descriptors"));
        a.set_descriptor_calls(None);
        assert_eq!(a.limit(), (2, "max_calls"));
        a.set_descriptor_calls(Some(5));
        assert!(!a.release(&id(1), t0));
        assert!(a.admit_now(&id(3), 100, 0, t0).is_ok());
        // One end in the last 10 s: a slot frees about every 10 s.
        a.release(&id(3), t0);
        for n in 10..20 {
            a.admit_now(&id(n), 100, 0, t0).ok();
            a.release(&id(n), t0);
        }
        a.admit_now(&id(4), 100, 0, t0).unwrap();
        let o = a.admit_now(&id(5), 100, 0, t0).unwrap_err();
        assert_eq!(o.retry_after_s, 1, "11 ends in 10 s");
        // Media ports: none free beyond those promised.
        a.release(&id(4), t0);
        let o = a.admit_now(&id(6), 3, 3, t0).unwrap_err();
        assert_eq!(o.reason, "media_ports");
        assert_eq!(a.holding(), 1);
    }

    #[test]
    fn a_refused_request_takes_no_token_and_tokens_refuse_honestly() {
        let t0 = Instant::now();
        let a = Admission::new(
            &AdmissionSettings {
                max_calls: Some(1),
                descriptor_calls: None,
                port_calls: None,
                max_setups_per_second: 5,
            },
            t0,
        );
        a.admit_now(&id(1), 100, 0, t0).unwrap();
        assert_eq!(
            a.admit_now(&id(2), 100, 0, t0).unwrap_err().reason,
            "max_calls"
        );
        a.release(&id(1), t0);
        // The bucket (burst 1) is empty: the next token in 200 ms → Retry-After 1.
        let o = a.admit_now(&id(2), 100, 0, t0).unwrap_err();
        assert_eq!((o.reason, o.retry_after_s), ("max_setups_per_second", 1));
        assert_eq!(a.holding(), 0);
        assert!(a
            .admit_now(&id(2), 100, 0, t0 + Duration::from_millis(200))
            .is_ok());
    }

    #[test]
    fn claims_keep_admitted_slots_pace_new_ones_and_wake_the_scheduler() {
        let t0 = Instant::now();
        let a = Admission::new(
            &AdmissionSettings {
                max_calls: Some(3),
                descriptor_calls: None,
                port_calls: None,
                max_setups_per_second: 10,
            },
            t0,
        );
        a.admit_now(&id(1), 100, 0, t0).unwrap();
        a.await_claim(&id(1));
        // Room: 2 free slots, 1 token left of the burst (2) + 5 within 500 ms, + 1 unclaimed.
        assert_eq!(a.room(t0), 3);
        assert_eq!(a.claim(&id(1), t0), Claim::Held);
        assert_eq!(a.claim(&id(2), t0), Claim::Took(Duration::ZERO));
        assert_eq!(a.claim(&id(3), t0), Claim::Took(Duration::from_millis(100)));
        let Claim::Full(o) = a.claim(&id(4), t0) else {
            panic!("a fourth call fits in no slot");
        };
        assert_eq!(o.reason, "max_calls");
        assert_eq!(a.room(t0), 0);
        a.set_starved();
        assert!(a.release(&id(2), t0), "the starved scheduler is woken");
        assert!(!a.release(&id(3), t0), "once");
    }
}
