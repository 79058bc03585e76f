//! Recurring freeze windows, as Argo CD's sync windows: a cron schedule (five fields: minute,
//! hour, day of month, month, day of week) says when a window opens, a duration how long it
//! lasts, a fixed UTC offset in which the schedule reads. Pure: no clock, no I/O.
//!
//! Cron as Vixie cron reads it: `*`, a value, a range `a-b`, steps `*/n` and `a-b/n`, lists
//! joined by commas; day 0 and 7 of the week are Sunday; when both the day of the month and
//! the day of the week are restricted, a day matching either matches.

use time::{Duration, OffsetDateTime, UtcOffset};

/// The longest window: long enough for a holiday season, short enough that looking back for
/// the window's opening stays cheap (one check per minute).
pub const MAX_DURATION_MINUTES: i64 = 31 * 24 * 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day of the month, and the day of the week, are restricted (not `*`).
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// A field's values as bits, from its text.
fn field(text: &str, name: &str, low: u32, high: u32) -> Result<(u64, bool), String> {
    let mut bits = 0_u64;
    let number = |value: &str| -> Result<u32, String> {
        let parsed: u32 = value.parse().map_err(|_| format!("{name} {value:?} is not a number"))?;
        if parsed < low || parsed > high {
            return Err(format!("{name} {parsed} is outside {low}-{high}"));
        }
        Ok(parsed)
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| format!("{name} step {step:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{name} step must be at least 1"));
                }
                (range, step)
            }
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (low, high),
            range => match range.split_once('-') {
                Some((from, to)) => (number(from)?, number(to)?),
                // `5/15` counts from 5 to the end, as cron does.
                None if step > 1 => (number(range)?, high),
                None => {
                    let value = number(range)?;
                    (value, value)
                }
            },
        };
        if from > to {
            return Err(format!("{name} range {from}-{to} runs backwards"));
        }
        for value in (from..=to).step_by(step as usize) {
            bits |= 1 << value;
        }
    }
    Ok((bits, text != "*"))
}

impl Cron {
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minutes, hours, days, months, weekdays] = fields[..] else {
            return Err(format!(
                "{text:?} must have five fields (minute, hour, day of month, month, day of week), not {}",
                fields.len()
            ));
        };
        let (minutes, _) = field(minutes, "minute", 0, 59)?;
        let (hours, _) = field(hours, "hour", 0, 23)?;
        let (days, days_restricted) = field(days, "day of month", 1, 31)?;
        let (months, _) = field(months, "month", 1, 12)?;
        let (mut weekdays, weekdays_restricted) = field(weekdays, "day of week", 0, 7)?;
        // Sunday is 0 and 7.
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Self { minutes, hours, days, months, weekdays, days_restricted, weekdays_restricted })
    }

    /// Whether the schedule fires at the minute `at` (its seconds ignored), read in `at`'s
    /// offset.
    pub fn matches(&self, at: OffsetDateTime) -> bool {
        let has = |bits: u64, value: u8| bits & (1 << value) != 0;
        let day = has(self.days, at.day());
        let weekday = has(self.weekdays, at.weekday().number_days_from_sunday());
        let day_matches = match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            (true, false) => day,
            (false, true) => weekday,
            (false, false) => true,
        };
        has(self.minutes, at.minute())
            && has(self.hours, at.hour())
            && has(self.months, u8::from(at.month()))
            && day_matches
    }
}

/// `+01:00`, `-05:30`, or empty for UTC.
pub fn parse_offset(text: &str) -> Result<UtcOffset, String> {
    if text.is_empty() || text == "Z" {
        return Ok(UtcOffset::UTC);
    }
    let bad = || format!("utc offset {text:?} must read like +01:00 or -05:30");
    let (sign, rest) = match text.split_at_checked(1) {
        Some(("+", rest)) => (1, rest),
        Some(("-", rest)) => (-1, rest),
        _ => return Err(bad()),
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(bad)?;
    let (hours, minutes): (i8, i8) = (hours.parse().map_err(|_| bad())?, minutes.parse().map_err(|_| bad())?);
    if hours.abs() > 23 || !(0..60).contains(&minutes) || rest.len() != 5 {
        return Err(bad());
    }
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).map_err(|_| bad())
}

/// The window of the schedule that holds `at`, if one does: opened at the schedule's latest
/// firing no later than `at`, and open for `duration_minutes` (at most
/// [`MAX_DURATION_MINUTES`] are looked back). Start and end as Unix milliseconds.
pub fn window_at(cron: &Cron, duration_minutes: i64, offset: UtcOffset, at_millis: i64) -> Option<(i64, i64)> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_millis) * 1_000_000).ok()?.to_offset(offset);
    let minute = at.replace_second(0).ok()?.replace_nanosecond(0).ok()?;
    for back in 0..duration_minutes.min(MAX_DURATION_MINUTES) {
        let start = minute - Duration::minutes(back);
        if cron.matches(start) {
            let start_millis = i64::try_from(start.unix_timestamp_nanos() / 1_000_000).ok()?;
            let end_millis = start_millis + duration_minutes * 60_000;
            return (at_millis < end_millis).then_some((start_millis, end_millis));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn millis(at: OffsetDateTime) -> i64 {
        (at.unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn fields_read_as_cron_reads_them() {
        let cron = Cron::parse("*/15 9-17 * * 1-5").unwrap();
        assert!(cron.matches(datetime!(2026-12-02 09:45 UTC)), "a Wednesday");
        assert!(!cron.matches(datetime!(2026-12-02 09:46 UTC)));
        assert!(!cron.matches(datetime!(2026-12-02 18:00 UTC)));
        assert!(!cron.matches(datetime!(2026-12-06 10:00 UTC)), "a Sunday");
        let sundays = Cron::parse("0 0 * * 7").unwrap();
        assert!(sundays.matches(datetime!(2026-12-06 00:00 UTC)));
        // Both days restricted: either matches (the 1st, or any Friday).
        let either = Cron::parse("0 12 1 * 5").unwrap();
        assert!(either.matches(datetime!(2026-12-01 12:00 UTC)), "the 1st, a Tuesday");
        assert!(either.matches(datetime!(2026-12-04 12:00 UTC)), "a Friday");
        assert!(!either.matches(datetime!(2026-12-02 12:00 UTC)));
        let stepped = Cron::parse("5/20 0 * 1,6 *").unwrap();
        assert!(stepped.matches(datetime!(2026-06-01 00:45 UTC)) && !stepped.matches(datetime!(2026-06-01 00:00 UTC)));
        assert!(!stepped.matches(datetime!(2026-07-01 00:05 UTC)));
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (text, needle) in [
            ("* * * *", "five fields"),
            ("60 * * * *", "minute 60 is outside 0-59"),
            ("* 5-2 * * *", "runs backwards"),
            ("*/0 * * * *", "at least 1"),
            ("* * x * *", "day of month \"x\" is not a number"),
            ("* * * 13 *", "month 13"),
        ] {
            let error = Cron::parse(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn a_window_opens_at_the_schedule_and_lasts_its_duration() {
        // Every Friday at 22:00 for 58 hours: the weekend.
        let weekend = Cron::parse("0 22 * * 5").unwrap();
        let duration = 58 * 60;
        let opened = millis(datetime!(2026-12-04 22:00 UTC));
        let closes = opened + duration * 60_000;
        for inside in
            [datetime!(2026-12-04 22:00 UTC), datetime!(2026-12-06 12:00 UTC), datetime!(2026-12-07 07:59:59 UTC)]
        {
            assert_eq!(
                window_at(&weekend, duration, UtcOffset::UTC, millis(inside)),
                Some((opened, closes)),
                "{inside}"
            );
        }
        for outside in
            [datetime!(2026-12-04 21:59:59 UTC), datetime!(2026-12-07 08:00 UTC), datetime!(2026-12-09 12:00 UTC)]
        {
            assert_eq!(window_at(&weekend, duration, UtcOffset::UTC, millis(outside)), None, "{outside}");
        }
        // Read in UTC+01:00, 22:00 is 21:00 UTC.
        let berlin = parse_offset("+01:00").unwrap();
        let opened = millis(datetime!(2026-12-04 21:00 UTC));
        assert_eq!(
            window_at(&weekend, duration, berlin, millis(datetime!(2026-12-04 21:30 UTC))),
            Some((opened, opened + duration * 60_000))
        );
    }

    #[test]
    fn offsets_read_like_rfc_3339() {
        assert_eq!(parse_offset("").unwrap(), UtcOffset::UTC);
        assert_eq!(parse_offset("-05:30").unwrap(), UtcOffset::from_hms(-5, -30, 0).unwrap());
        for bad in ["+1", "01:00", "+24:00", "+01:60", "+1:00"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
    }
}
