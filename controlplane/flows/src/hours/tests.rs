use jiff::civil::date;

use super::*;

/// An instant written in UTC, e.g. `"2026-03-30T07:00:00Z"`.
fn utc(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn office(tz: &str) -> OpeningHours {
    OpeningHours::parse(
        tz,
        &["mon-fri 09:00-17:30", "sat 10:00-14:00"],
        &[] as &[&str],
    )
    .unwrap()
}

fn hours(tz: &str, weekly: &[&str]) -> OpeningHours {
    OpeningHours::parse(tz, weekly, &[] as &[&str]).unwrap()
}

#[test]
fn parse_errors_name_the_entry() {
    let no: &[&str] = &[];
    assert_eq!(
        OpeningHours::parse("Europe/Berlim", &["mon 09:00-10:00"], no).unwrap_err(),
        Error::BadHours {
            entry: "Europe/Berlim".into(),
            reason: "not a time zone of the tz database (use a name like Europe/Berlin)".into(),
        }
    );
    let e = OpeningHours::parse("Europe/Berlin", &["mon-fri 09:00-17:30", "sat 10-14"], no)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "opening hours: \"sat 10-14\": \"10\" is not a time like 09:00 (00:00 to 24:00)"
    );
    let e = OpeningHours::parse("UTC", no, &["2026-12-25", "2026-12-32"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "opening hours: \"2026-12-32\": \"2026-12-32\" is not a date of the calendar"
    );
    let t = |h, m| TimeOfDay::new(h, m).unwrap();
    assert!(matches!(
        OpeningHours::new(
            TimeZone::UTC,
            std::array::from_fn(|_| vec![(t(10, 0), t(9, 0))]),
            vec![]
        ),
        Err(Error::BadHours { .. })
    ));
}

#[test]
fn intervals_are_merged_and_printed() {
    let h = hours(
        "UTC",
        &[
            "mon 09:00-12:00, 11:00-13:00 13:00-14:00",
            "mon 16:00-17:00",
        ],
    );
    let printed: Vec<String> = h.weekly()[0]
        .iter()
        .map(|(s, e)| format!("{s}-{e}"))
        .collect();
    assert_eq!(printed, ["09:00-14:00", "16:00-17:00"]);
    assert!(h.weekly()[1..].iter().all(Vec::is_empty));
    assert_eq!(TimeOfDay::new(24, 0), Some(TimeOfDay::END_OF_DAY));
    assert_eq!(TimeOfDay::new(24, 1), None);
    assert_eq!(TimeOfDay::END_OF_DAY.to_string(), "24:00");
}

#[test]
fn open_and_closed_on_a_plain_week() {
    let h = office("Europe/Berlin");
    // Wednesday 2026-06-10, CEST (UTC+2).
    assert!(!h.is_open(utc("2026-06-10T06:59:59Z")));
    assert!(h.is_open(utc("2026-06-10T07:00:00Z")));
    assert!(h.is_open(utc("2026-06-10T15:29:59Z")));
    assert!(!h.is_open(utc("2026-06-10T15:30:00Z")));
    assert_eq!(
        h.next_closing(utc("2026-06-10T12:00:00Z")),
        Some(utc("2026-06-10T15:30:00Z"))
    );
    // Saturday closes at 14:00, Sunday is closed: Monday 09:00.
    assert_eq!(
        h.next_opening(utc("2026-06-13T12:00:00Z")),
        Some(utc("2026-06-15T07:00:00Z"))
    );
    // Open now: the same instant; closed now: next_closing is now.
    let now = utc("2026-06-10T08:00:00Z");
    assert_eq!(h.next_opening(now), Some(now));
    let night = utc("2026-06-10T22:00:00Z");
    assert_eq!(h.next_closing(night), Some(night));
}

#[test]
fn nine_oclock_after_each_dst_change_is_the_right_instant() {
    for (tz, before, expected) in [
        // Berlin springs forward on Sunday 2026-03-29 (CET+1 -> CEST+2).
        (
            "Europe/Berlin",
            "2026-03-27T20:00:00Z",
            "2026-03-30T07:00:00Z",
        ),
        // ... and falls back on Sunday 2026-10-25 (CEST+2 -> CET+1).
        (
            "Europe/Berlin",
            "2026-10-23T20:00:00Z",
            "2026-10-26T08:00:00Z",
        ),
        // New York springs forward on Sunday 2026-03-08 (EST-5 -> EDT-4).
        (
            "America/New_York",
            "2026-03-06T23:00:00Z",
            "2026-03-09T13:00:00Z",
        ),
        // ... and falls back on Sunday 2026-11-01 (EDT-4 -> EST-5).
        (
            "America/New_York",
            "2026-10-30T23:00:00Z",
            "2026-11-02T14:00:00Z",
        ),
    ] {
        let h = hours(tz, &["mon-fri 09:00-17:00"]);
        assert_eq!(
            h.next_opening(utc(before)),
            Some(utc(expected)),
            "{tz} {before}"
        );
    }
    // The Friday before each change still used the old offset.
    let berlin = hours("Europe/Berlin", &["mon-fri 09:00-17:00"]);
    assert_eq!(
        berlin.next_opening(utc("2026-03-26T20:00:00Z")),
        Some(utc("2026-03-27T08:00:00Z"))
    );
    let ny = hours("America/New_York", &["mon-fri 09:00-17:00"]);
    assert_eq!(
        ny.next_opening(utc("2026-10-29T23:00:00Z")),
        Some(utc("2026-10-30T13:00:00Z"))
    );
    // Closing on the changed offset: Monday 17:00 EDT.
    assert_eq!(
        ny.next_closing(utc("2026-03-09T13:00:00Z")),
        Some(utc("2026-03-09T21:00:00Z"))
    );
}

#[test]
fn an_interval_starting_in_the_spring_gap_opens_when_the_clock_jumps() {
    // 2026-03-29 in Berlin: 02:00 CET is followed by 03:00 CEST at 01:00 UTC.
    let h = hours("Europe/Berlin", &["sun 02:30-04:00"]);
    let sat_night = utc("2026-03-28T22:00:00Z");
    assert!(!h.is_open(utc("2026-03-29T00:59:59Z")));
    assert_eq!(h.next_opening(sat_night), Some(utc("2026-03-29T01:00:00Z")));
    assert_eq!(
        h.next_closing(utc("2026-03-29T01:00:00Z")),
        Some(utc("2026-03-29T02:00:00Z")),
        "04:00 CEST"
    );
    // An interval wholly inside the gap does not open that day: the next Sunday.
    let h = hours("Europe/Berlin", &["sun 02:00-03:00"]);
    assert_eq!(h.next_opening(sat_night), Some(utc("2026-04-05T00:00:00Z")));
    // New York: 02:00 EST is followed by 03:00 EDT at 07:00 UTC.
    let h = hours("America/New_York", &["sun 02:30-03:30"]);
    assert_eq!(
        h.next_opening(utc("2026-03-08T00:00:00Z")),
        Some(utc("2026-03-08T07:00:00Z"))
    );
    assert_eq!(
        h.next_closing(utc("2026-03-08T07:00:00Z")),
        Some(utc("2026-03-08T07:30:00Z"))
    );
}

#[test]
fn a_requested_slot_in_the_gap_means_the_jump() {
    let berlin = office("Europe/Berlin");
    let slot = date(2026, 3, 29).at(2, 30, 0, 0);
    let at = berlin.local_instant(slot).unwrap();
    assert_eq!(at, utc("2026-03-29T01:00:00Z"));
    // A Sunday: moved to Monday 09:00 CEST.
    assert_eq!(
        berlin.schedule(at),
        Some(Scheduled {
            at: utc("2026-03-30T07:00:00Z"),
            moved: true
        })
    );
    let ny = OpeningHours::always_open(TimeZone::get("America/New_York").unwrap());
    let at = ny.local_instant(date(2026, 3, 8).at(2, 30, 0, 0)).unwrap();
    assert_eq!(at, utc("2026-03-08T07:00:00Z"));
    assert_eq!(ny.schedule(at), Some(Scheduled { at, moved: false }));
    // A repeated time means its first occurrence (EDT).
    assert_eq!(
        ny.local_instant(date(2026, 11, 1).at(1, 30, 0, 0)),
        Some(utc("2026-11-01T05:30:00Z"))
    );
    // An ordinary time is just converted.
    assert_eq!(
        berlin.local_instant(date(2026, 3, 30).at(9, 0, 0, 0)),
        Some(utc("2026-03-30T07:00:00Z"))
    );
}

#[test]
fn the_fall_back_fold_is_open_twice() {
    // 2026-10-25 in Berlin: 03:00 CEST is followed by 02:00 CET at 01:00 UTC.
    let h = hours("Europe/Berlin", &["sun 02:00-03:00"]);
    assert_eq!(
        h.next_opening(utc("2026-10-24T22:00:00Z")),
        Some(utc("2026-10-25T00:00:00Z")),
        "02:00 CEST"
    );
    assert!(h.is_open(utc("2026-10-25T01:30:00Z")), "02:30 CET");
    assert_eq!(
        h.next_closing(utc("2026-10-25T00:00:00Z")),
        Some(utc("2026-10-25T02:00:00Z")),
        "03:00 CET: two real hours"
    );
    // Re-opening at the transition itself: 01:00-02:10 is open until 02:10 CEST, closed,
    // and open again when the clock goes back to 02:00 CET, until 02:10 CET.
    let h = hours("Europe/Berlin", &["sun 01:00-02:10"]);
    assert_eq!(
        h.next_closing(utc("2026-10-24T23:30:00Z")),
        Some(utc("2026-10-25T00:10:00Z"))
    );
    assert_eq!(
        h.next_opening(utc("2026-10-25T00:30:00Z")),
        Some(utc("2026-10-25T01:00:00Z"))
    );
    assert_eq!(
        h.next_closing(utc("2026-10-25T01:00:00Z")),
        Some(utc("2026-10-25T01:10:00Z"))
    );
}

#[test]
fn holidays_are_skipped() {
    // Thursday 2026-12-24 and Friday 2026-12-25 closed.
    let h = OpeningHours::parse(
        "Europe/Berlin",
        &["mon-fri 09:00-17:00"],
        &["2026-12-25", "2026-12-24", "2026-12-25"],
    )
    .unwrap();
    assert_eq!(h.holidays(), [date(2026, 12, 24), date(2026, 12, 25)]);
    assert!(!h.is_open(utc("2026-12-24T10:00:00Z")));
    assert_eq!(
        h.next_opening(utc("2026-12-23T17:00:00Z")),
        Some(utc("2026-12-28T08:00:00Z"))
    );
    assert_eq!(
        h.schedule(utc("2026-12-24T10:00:00Z")),
        Some(Scheduled {
            at: utc("2026-12-28T08:00:00Z"),
            moved: true
        })
    );
}

#[test]
fn no_hours_means_always_open_but_holidays_still_close() {
    let h = OpeningHours::parse("Europe/Berlin", &[] as &[&str], &[] as &[&str]).unwrap();
    assert_eq!(
        h,
        OpeningHours::always_open(TimeZone::get("Europe/Berlin").unwrap())
    );
    for at in [
        "2026-03-29T01:00:00Z",
        "2026-10-25T00:59:59Z",
        "2026-12-25T12:00:00Z",
    ] {
        let at = utc(at);
        assert!(h.is_open(at));
        assert_eq!(h.next_opening(at), Some(at));
        assert_eq!(h.schedule(at), Some(Scheduled { at, moved: false }));
        assert_eq!(h.next_closing(at), None);
    }
    let h = OpeningHours::parse("Europe/Berlin", &[] as &[&str], &["2026-12-25"]).unwrap();
    // Closes at the holiday's local midnight (CET), opens at the next one.
    assert_eq!(
        h.next_closing(utc("2026-12-20T12:00:00Z")),
        Some(utc("2026-12-24T23:00:00Z"))
    );
    assert_eq!(
        h.next_opening(utc("2026-12-25T12:00:00Z")),
        Some(utc("2026-12-25T23:00:00Z"))
    );
    assert_eq!(h.next_closing(utc("2026-12-26T12:00:00Z")), None);
}

#[test]
fn an_all_closed_week_never_opens() {
    let h = hours("Europe/Berlin", &["daily closed"]);
    let at = utc("2026-06-10T12:00:00Z");
    assert!(!h.is_open(at));
    assert_eq!(h.next_opening(at), None);
    assert_eq!(h.schedule(at), None);
    assert_eq!(h.next_closing(at), Some(at));
}

#[test]
fn openings_join_across_midnight() {
    // Friday 22:00 to Saturday 02:00, and Saturday until 24:00 closes at Sunday's midnight.
    let h = hours(
        "UTC",
        &["fri 22:00-24:00", "sat 00:00-02:00", "sat 20:00-24:00"],
    );
    assert_eq!(
        h.next_closing(utc("2026-06-12T23:00:00Z")),
        Some(utc("2026-06-13T02:00:00Z"))
    );
    assert_eq!(
        h.next_closing(utc("2026-06-13T21:00:00Z")),
        Some(utc("2026-06-14T00:00:00Z"))
    );
    assert_eq!(
        h.next_opening(utc("2026-06-14T00:00:00Z")),
        Some(utc("2026-06-19T22:00:00Z"))
    );
}
