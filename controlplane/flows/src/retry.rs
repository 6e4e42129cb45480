//! The customer retry policy: when, if at all, to call a customer again.
//!
//! A click-to-call attempt that ends with the customer busy or not answering is worth another
//! try a few minutes later; one the customer rejected or hung up is not (they said no).
//! [`RetryPolicy::next_attempt`] answers with the instant of the next attempt, or `None`:
//!
//! - attempts are numbered from 1, and `attempt_no` is the attempt that just ended; a retry is
//!   due only while `attempt_no < attempts` (so `attempts` counts the first call too);
//! - only reasons in [`RetryPolicy::retry_on`] are retried (default: busy, no answer);
//! - the retry is `spacing` after `now`, moved to the business's next opening
//!   ([`OpeningHours::next_opening`]) when that falls outside its hours; hours that never
//!   open mean no retry.
//!
//! A call cut short by a process restart ([`RetryPolicy::after_interruption`]) is retried
//! under the same rules, whatever phase it was in, and the interrupted attempt counts: an
//! interruption of the last allowed attempt is not retried. `now` is then the moment the
//! restart noticed it.
//!
//! Pure: the caller passes `now` and the hours; the answer is a [`Timestamp`] to store with the
//! call (it survives the restart that a monotonic `Instant` would not).

use std::time::Duration;

use jiff::Timestamp;

use crate::hours::OpeningHours;
use crate::FailReason;

/// How often and when a customer is called again (configuration, per business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Customer attempts in total, the first included (default 3). 0 or 1: never retry.
    pub attempts: u32,
    /// Time from the end of one attempt to the next (default 5 minutes).
    pub spacing: Duration,
    /// The failures worth retrying (default [`FailReason::CustomerBusy`] and
    /// [`FailReason::CustomerNoAnswer`]; never add the customer's own refusals).
    pub retry_on: Vec<FailReason>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            spacing: Duration::from_secs(5 * 60),
            retry_on: vec![FailReason::CustomerBusy, FailReason::CustomerNoAnswer],
        }
    }
}

impl RetryPolicy {
    /// When to make attempt `attempt_no + 1` after attempt `attempt_no` failed with `reason`
    /// at `now`; `None` when no retry is due (reason not retried, attempts used up, hours
    /// never open).
    #[must_use]
    pub fn next_attempt(
        &self,
        attempt_no: u32,
        reason: FailReason,
        now: Timestamp,
        hours: &OpeningHours,
    ) -> Option<Timestamp> {
        if !self.retry_on.contains(&reason) {
            return None;
        }
        self.due(attempt_no, now, hours)
    }

    /// When to make attempt `attempt_no + 1` after attempt `attempt_no` was interrupted by a
    /// process restart noticed at `now` (the interrupted attempt counts); `None` when the
    /// attempts are used up or the hours never open.
    #[must_use]
    pub fn after_interruption(
        &self,
        attempt_no: u32,
        now: Timestamp,
        hours: &OpeningHours,
    ) -> Option<Timestamp> {
        self.due(attempt_no, now, hours)
    }

    fn due(&self, attempt_no: u32, now: Timestamp, hours: &OpeningHours) -> Option<Timestamp> {
        if attempt_no >= self.attempts {
            return None;
        }
        let earliest = now.checked_add(self.spacing).ok()?;
        hours.next_opening(earliest)
    }
}

#[cfg(test)]
mod tests {
    use jiff::tz::TimeZone;

    use super::*;

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Berlin office; Wednesday 2026-06-10 is a workday (CEST, UTC+2).
    fn office() -> OpeningHours {
        OpeningHours::parse("Europe/Berlin", &["mon-fri 09:00-17:30"], &["2026-06-11"]).unwrap()
    }

    #[test]
    fn busy_and_no_answer_are_retried_after_the_spacing() {
        let p = RetryPolicy::default();
        let h = office();
        let now = utc("2026-06-10T08:00:00Z");
        for reason in [FailReason::CustomerBusy, FailReason::CustomerNoAnswer] {
            assert_eq!(
                p.next_attempt(1, reason, now, &h),
                Some(utc("2026-06-10T08:05:00Z"))
            );
            assert_eq!(
                p.next_attempt(2, reason, now, &h),
                Some(utc("2026-06-10T08:05:00Z"))
            );
            assert_eq!(p.next_attempt(3, reason, now, &h), None, "3 attempts made");
        }
    }

    #[test]
    fn refusals_and_our_failures_are_not_retried() {
        let p = RetryPolicy::default();
        let h = office();
        let now = utc("2026-06-10T08:00:00Z");
        for reason in [
            FailReason::CustomerRejected,
            FailReason::CustomerHungUp,
            FailReason::NoAgent,
            FailReason::AgentNoAnswer,
            FailReason::MediaTimeout,
            FailReason::Internal,
        ] {
            assert_eq!(p.next_attempt(1, reason, now, &h), None, "{reason:?}");
        }
        let p = RetryPolicy {
            retry_on: vec![FailReason::AgentNoAnswer],
            ..RetryPolicy::default()
        };
        assert!(p
            .next_attempt(1, FailReason::AgentNoAnswer, now, &h)
            .is_some());
        assert!(p
            .next_attempt(1, FailReason::CustomerBusy, now, &h)
            .is_none());
    }

    #[test]
    fn a_retry_outside_hours_moves_to_the_next_opening() {
        let p = RetryPolicy::default();
        let h = office();
        // Wednesday 17:27 CEST + 5 min = 17:32, closed; Thursday is a holiday: Friday 09:00.
        assert_eq!(
            p.next_attempt(1, FailReason::CustomerBusy, utc("2026-06-10T15:27:00Z"), &h),
            Some(utc("2026-06-12T07:00:00Z"))
        );
        // 17:25 + 5 min = 17:30 is the closing instant itself: closed.
        assert_eq!(
            p.next_attempt(1, FailReason::CustomerBusy, utc("2026-06-10T15:25:00Z"), &h),
            Some(utc("2026-06-12T07:00:00Z"))
        );
        assert_eq!(
            p.next_attempt(1, FailReason::CustomerBusy, utc("2026-06-10T15:24:59Z"), &h),
            Some(utc("2026-06-10T15:29:59Z"))
        );
        // Friday evening: Monday 09:00.
        assert_eq!(
            p.next_attempt(
                2,
                FailReason::CustomerNoAnswer,
                utc("2026-06-12T16:00:00Z"),
                &h
            ),
            Some(utc("2026-06-15T07:00:00Z"))
        );
    }

    #[test]
    fn hours_that_never_open_mean_no_retry() {
        let p = RetryPolicy::default();
        let closed =
            OpeningHours::parse("Europe/Berlin", &["daily closed"], &[] as &[&str]).unwrap();
        let now = utc("2026-06-10T08:00:00Z");
        assert_eq!(
            p.next_attempt(1, FailReason::CustomerBusy, now, &closed),
            None
        );
        // 24/7: exactly the spacing.
        let always = OpeningHours::always_open(TimeZone::UTC);
        assert_eq!(
            p.next_attempt(1, FailReason::CustomerBusy, now, &always),
            Some(utc("2026-06-10T08:05:00Z"))
        );
    }

    #[test]
    fn an_interrupted_attempt_counts_and_is_retried_the_same_way() {
        let p = RetryPolicy::default();
        let h = office();
        let restart = utc("2026-06-10T09:00:00Z");
        assert_eq!(
            p.after_interruption(1, restart, &h),
            Some(utc("2026-06-10T09:05:00Z"))
        );
        assert_eq!(
            p.after_interruption(2, restart, &h),
            Some(utc("2026-06-10T09:05:00Z"))
        );
        assert_eq!(p.after_interruption(3, restart, &h), None);
        // Noticed at night: the next opening.
        assert_eq!(
            p.after_interruption(1, utc("2026-06-10T20:00:00Z"), &h),
            Some(utc("2026-06-12T07:00:00Z"))
        );
    }

    #[test]
    fn one_attempt_means_no_retry() {
        let h = OpeningHours::always_open(TimeZone::UTC);
        let now = utc("2026-06-10T08:00:00Z");
        for attempts in [0, 1] {
            let p = RetryPolicy {
                attempts,
                ..RetryPolicy::default()
            };
            assert_eq!(p.next_attempt(1, FailReason::CustomerBusy, now, &h), None);
            assert_eq!(p.after_interruption(1, now, &h), None);
        }
        let p = RetryPolicy {
            spacing: Duration::from_secs(90),
            ..RetryPolicy::default()
        };
        assert_eq!(
            p.next_attempt(1, FailReason::CustomerBusy, now, &h),
            Some(utc("2026-06-10T08:01:30Z"))
        );
    }
}
