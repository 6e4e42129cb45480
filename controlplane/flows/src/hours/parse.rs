//! The text forms of opening hours: weekly entries like `mon-fri 09:00-12:00, 13:00-17:30`
//! and holidays like `2026-12-25`. Errors are plain reasons; [`super::OpeningHours::parse`]
//! names the entry.

use jiff::civil::Date;

use super::TimeOfDay;

/// Day names, Monday first (index = Monday-zero weekday offset).
const DAYS: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

/// One weekly entry: the days it names (Monday = 0) and their intervals (empty for
/// `closed`).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) days: Vec<usize>,
    pub(super) intervals: Vec<(TimeOfDay, TimeOfDay)>,
}

fn day(s: &str) -> Result<usize, String> {
    let lower = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|(short, long)| lower == *short || lower == *long)
        .ok_or_else(|| format!("{s:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"))
}

/// `mon`, `mon-fri`, `sat,sun`, `fri-mon` (wraps over the weekend), `daily`.
fn days(s: &str) -> Result<Vec<usize>, String> {
    if s.eq_ignore_ascii_case("daily") {
        return Ok((0..7).collect());
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (day(a)?, day(b)?),
            None => {
                let d = day(part)?;
                (d, d)
            }
        };
        let mut d = from;
        loop {
            if !out.contains(&d) {
                out.push(d);
            }
            if d == to {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Ok(out)
}

/// `H:MM` or `HH:MM`, 00:00 to 24:00.
pub(super) fn time_of_day(s: &str) -> Result<TimeOfDay, String> {
    let bad = || format!("{s:?} is not a time like 09:00 (00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if !(1..=2).contains(&h.len())
        || m.len() != 2
        || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let (h, m) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    TimeOfDay::new(h, m).ok_or_else(bad)
}

/// `HH:MM-HH:MM`, start before end.
fn interval(s: &str) -> Result<(TimeOfDay, TimeOfDay), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a time range like 09:00-17:30"))?;
    let (start, end) = (time_of_day(a)?, time_of_day(b)?);
    if start == end || start == TimeOfDay::END_OF_DAY {
        return Err(format!("{s:?} is an empty range"));
    }
    if start > end {
        return Err(format!(
            "{s:?} ends before it starts; to pass midnight, write {start}-24:00 on one day \
             and 00:00-{end} on the next"
        ));
    }
    Ok((start, end))
}

/// `DAYS RANGE[, RANGE…]` or `DAYS closed`.
pub(super) fn entry(s: &str) -> Result<Entry, String> {
    let s = s.trim();
    let (d, rest) = s
        .split_once(char::is_whitespace)
        .ok_or_else(|| "expected days then times, like \"mon-fri 09:00-17:30\"".to_owned())?;
    let days = days(d)?;
    let rest = rest.trim();
    if rest.eq_ignore_ascii_case("closed") {
        return Ok(Entry {
            days,
            intervals: Vec::new(),
        });
    }
    let intervals = rest
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(interval)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Entry { days, intervals })
}

/// `YYYY-MM-DD`, a real date.
pub(super) fn holiday(s: &str) -> Result<Date, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a date like 2026-12-25");
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i16>().map_err(|_| bad());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (m, d) = (
        i8::try_from(m).map_err(|_| bad())?,
        i8::try_from(d).map_err(|_| bad())?,
    );
    Date::new(y, m, d).map_err(|_| format!("{s:?} is not a date of the calendar"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u8, m: u8) -> TimeOfDay {
        TimeOfDay::new(h, m).unwrap()
    }

    #[test]
    fn entries() {
        assert_eq!(
            entry("mon-fri 09:00-12:00, 13:00-17:30").unwrap(),
            Entry {
                days: vec![0, 1, 2, 3, 4],
                intervals: vec![(t(9, 0), t(12, 0)), (t(13, 0), t(17, 30))],
            }
        );
        assert_eq!(
            entry("  Sat,SUN 9:30-24:00 ").unwrap(),
            Entry {
                days: vec![5, 6],
                intervals: vec![(t(9, 30), t(24, 0))],
            }
        );
        assert_eq!(entry("fri-mon closed").unwrap().days, vec![4, 5, 6, 0]);
        assert_eq!(entry("daily 00:00-24:00").unwrap().days.len(), 7);
        assert_eq!(
            entry("wednesday 08:00-09:00 10:00-11:00")
                .unwrap()
                .intervals
                .len(),
            2
        );
    }

    #[test]
    fn entry_errors_say_what_is_wrong() {
        for (input, reason) in [
            ("mon-fri", "expected days then times, like \"mon-fri 09:00-17:30\""),
            ("mon-fro 09:00-17:00", "\"fro\" is not a day (mon, tue, wed, thu, fri, sat, sun)"),
            ("mon 9-17", "\"9\" is not a time like 09:00 (00:00 to 24:00)"),
            ("mon 09:00-25:00", "\"25:00\" is not a time like 09:00 (00:00 to 24:00)"),
            ("mon 09:60-10:00", "\"09:60\" is not a time like 09:00 (00:00 to 24:00)"),
            ("mon 24:00-24:00", "\"24:00-24:00\" is an empty range"),
            ("mon 10:00-10:00", "\"10:00-10:00\" is an empty range"),
            ("mon 22:00-02:00", "\"22:00-02:00\" ends before it starts; to pass midnight, write 22:00-24:00 on one day and 00:00-02:00 on the next"),
            ("mon 09:00", "\"09:00\" is not a time range like 09:00-17:30"),
        ] {
            assert_eq!(entry(input).unwrap_err(), reason, "{input}");
        }
    }

    #[test]
    fn holidays() {
        assert_eq!(
            holiday("2026-12-25").unwrap(),
            jiff::civil::date(2026, 12, 25)
        );
        for bad in ["2026-02-30", "2026-13-01"] {
            assert_eq!(
                holiday(bad).unwrap_err(),
                format!("{bad:?} is not a date of the calendar")
            );
        }
        for bad in [
            "2026-1-05",
            "25.12.2026",
            "2026-12-25T00:00",
            "",
            "20261225",
            "+026-12-25",
        ] {
            assert_eq!(
                holiday(bad).unwrap_err(),
                format!("{bad:?} is not a date like 2026-12-25")
            );
        }
    }
}
