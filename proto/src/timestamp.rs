use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time as Unix nanoseconds, between 1970-01-01 and 2262-04-11 (the range of `i64`
/// nanoseconds).
///
/// On the wire it is written as RFC 3339 with nanoseconds; it is read from RFC 3339 text, from an
/// integer of Unix nanoseconds, or from a string of digits holding Unix nanoseconds (the Loki
/// convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseTimestampError {
    #[error("timestamp {0:?} is neither RFC 3339 nor Unix nanoseconds")]
    Malformed(String),
    #[error("timestamp {0:?} is out of range: it must lie between 1970-01-01 and 2262-04-11")]
    OutOfRange(String),
}

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(0);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// Unix nanoseconds; negative values (before 1970) are refused.
    pub fn from_unix_nanos(nanos: i64) -> Result<Self, ParseTimestampError> {
        if nanos < 0 {
            return Err(ParseTimestampError::OutOfRange(nanos.to_string()));
        }
        Ok(Self(nanos))
    }

    pub fn as_unix_nanos(self) -> i64 {
        self.0
    }

    pub fn from_offset_date_time(datetime: OffsetDateTime) -> Result<Self, ParseTimestampError> {
        let nanos = i64::try_from(datetime.unix_timestamp_nanos())
            .map_err(|_| ParseTimestampError::OutOfRange(datetime.to_string()))?;
        Self::from_unix_nanos(nanos)
    }

    pub fn to_offset_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0)).expect("i64 nanoseconds are always in range")
    }

    /// Moves the timestamp by a signed number of nanoseconds, clamped to the valid range.
    pub fn saturating_add_nanos(self, nanos: i64) -> Self {
        Self(self.0.saturating_add(nanos).max(0))
    }

    pub fn to_rfc3339(self) -> String {
        let mut buffer = [0; RFC3339_MAX];
        self.format_rfc3339(&mut buffer).to_owned()
    }

    /// RFC 3339 in UTC, as `time` writes it (`2026-11-29T08:00:00.5Z`: the fraction without its
    /// trailing zeros, none for a whole second), into `buffer`, without the calendar types of
    /// `time`: every page of search results writes two a record.
    fn format_rfc3339(self, buffer: &mut [u8; RFC3339_MAX]) -> &str {
        const NANOS_PER_SECOND: i64 = 1_000_000_000;
        let (seconds, mut fraction) = (self.0 / NANOS_PER_SECOND, self.0 % NANOS_PER_SECOND);
        let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
        let (year, month, day) = civil_from_days(days);
        fn put(buffer: &mut [u8], at: usize, mut value: i64, digits: usize) {
            for position in (at..at + digits).rev() {
                buffer[position] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        put(buffer, 0, year, 4);
        put(buffer, 5, month, 2);
        put(buffer, 8, day, 2);
        put(buffer, 11, second_of_day / 3600, 2);
        put(buffer, 14, second_of_day / 60 % 60, 2);
        put(buffer, 17, second_of_day % 60, 2);
        for (position, separator) in RFC3339_SEPARATORS {
            buffer[position] = separator;
        }
        let mut end = 19;
        if fraction != 0 {
            let mut digits = 9;
            while fraction % 10 == 0 {
                fraction /= 10;
                digits -= 1;
            }
            buffer[19] = b'.';
            put(buffer, 20, fraction, digits);
            end = 20 + digits;
        }
        buffer[end] = b'Z';
        std::str::from_utf8(&buffer[..=end]).expect("ASCII digits and separators")
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with 1 to 9 digits of fraction, in the years 1970 to
    /// 2262: what Vigil and most shippers write. `None` for anything else, which `time`'s
    /// parser then reads (offsets, leap seconds, lower case, longer fractions) or refuses.
    fn parse_utc_rfc3339(text: &str) -> Option<Result<Self, ParseTimestampError>> {
        let bytes = text.as_bytes();
        if bytes.len() < 20 || bytes.len() == 21 || bytes.len() > 30 || *bytes.last()? != b'Z' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<i64> {
            bytes[range]
                .iter()
                .try_fold(0i64, |value, &byte| byte.is_ascii_digit().then(|| value * 10 + i64::from(byte - b'0')))
        };
        if RFC3339_SEPARATORS.iter().any(|&(position, separator)| bytes[position] != separator) {
            return None;
        }
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        let fraction = if bytes.len() > 20 {
            if bytes[19] != b'.' {
                return None;
            }
            let digits = bytes.len() - 21;
            number(20..20 + digits)? * 10i64.pow(9 - digits as u32)
        } else {
            0
        };
        if !(1970..=2262).contains(&year) || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        Some(
            seconds
                .checked_mul(1_000_000_000)
                .and_then(|nanos| nanos.checked_add(fraction))
                .map(Self)
                .ok_or_else(|| ParseTimestampError::OutOfRange(text.to_owned())),
        )
    }
}

/// The longest RFC 3339 text [`Timestamp`] writes: `2262-04-11T23:47:16.854775807Z`.
const RFC3339_MAX: usize = 30;

/// Where the date and time of that text have their separators.
const RFC3339_SEPARATORS: [(usize, u8); 5] = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];

/// The civil date (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after it).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The days from 1970-01-01 to a civil date on or after it (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl std::str::FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
            let nanos: i64 = text.parse().map_err(|_| ParseTimestampError::OutOfRange(text.to_owned()))?;
            return Self::from_unix_nanos(nanos);
        }
        if let Some(parsed) = Self::parse_utc_rfc3339(text) {
            return parsed;
        }
        let datetime =
            OffsetDateTime::parse(text, &Rfc3339).map_err(|_| ParseTimestampError::Malformed(text.to_owned()))?;
        Self::from_offset_date_time(datetime).map_err(|_| ParseTimestampError::OutOfRange(text.to_owned()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.format_rfc3339(&mut [0; RFC3339_MAX]))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.format_rfc3339(&mut [0; RFC3339_MAX]))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;

        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an RFC 3339 timestamp or Unix nanoseconds")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
                text.parse().map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, nanos: i64) -> Result<Timestamp, E> {
                Timestamp::from_unix_nanos(nanos).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, nanos: u64) -> Result<Timestamp, E> {
                let nanos =
                    i64::try_from(nanos).map_err(|_| E::custom(ParseTimestampError::OutOfRange(nanos.to_string())))?;
                Timestamp::from_unix_nanos(nanos).map_err(E::custom)
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Timestamp, E> {
                Err(E::custom(ParseTimestampError::Malformed(value.to_string())))
            }
        }

        deserializer.deserialize_any(TimestampVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc3339_and_nanoseconds_alike() {
        let from_text: Timestamp = "2026-11-29T08:00:00.123456789Z".parse().unwrap();
        let from_nanos: Timestamp = serde_json::from_str("1795939200123456789").unwrap();
        let from_digits: Timestamp = serde_json::from_str("\"1795939200123456789\"").unwrap();
        assert_eq!(from_text, from_nanos);
        assert_eq!(from_nanos, from_digits);
        assert_eq!(from_text.to_rfc3339(), "2026-11-29T08:00:00.123456789Z");
    }

    #[test]
    fn keeps_the_offset_of_rfc3339_text() {
        let with_offset: Timestamp = "2026-11-29T10:00:00+02:00".parse().unwrap();
        let utc: Timestamp = "2026-11-29T08:00:00Z".parse().unwrap();
        assert_eq!(with_offset, utc);
    }

    #[test]
    fn refuses_out_of_range_and_malformed_values() {
        assert!(matches!("1969-12-31T23:59:59Z".parse::<Timestamp>(), Err(ParseTimestampError::OutOfRange(_))));
        assert!(matches!("2300-01-01T00:00:00Z".parse::<Timestamp>(), Err(ParseTimestampError::OutOfRange(_))));
        assert!(matches!("99999999999999999999".parse::<Timestamp>(), Err(ParseTimestampError::OutOfRange(_))));
        assert!(matches!("yesterday".parse::<Timestamp>(), Err(ParseTimestampError::Malformed(_))));
        assert!(serde_json::from_str::<Timestamp>("-5").is_err());
        assert!(serde_json::from_str::<Timestamp>("1.5").is_err());
    }

    /// The fast paths write and read what `time` does, over the whole range.
    #[test]
    fn formats_and_parses_as_time_does() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let edges = [0, 1, 999_999_999, 1_000_000_000, 951_782_400_000_000_000, 4_107_542_400_000_000_000, i64::MAX];
        let random = (0..200_000).map(|_| {
            let nanos = (next() >> 1) as i64;
            // Whole seconds, milliseconds and microseconds as often as full nanoseconds.
            match next() % 4 {
                0 => nanos - nanos % 1_000_000_000,
                1 => nanos - nanos % 1_000_000,
                2 => nanos - nanos % 1_000,
                _ => nanos,
            }
        });
        for nanos in edges.into_iter().chain(random) {
            let timestamp = Timestamp(nanos);
            let by_time = timestamp.to_offset_date_time().format(&Rfc3339).unwrap();
            assert_eq!(timestamp.to_rfc3339(), by_time, "{nanos}");
            assert_eq!(Timestamp::parse_utc_rfc3339(&by_time), Some(Ok(timestamp)), "{by_time}");
            let parsed_by_time = OffsetDateTime::parse(&by_time, &Rfc3339).unwrap();
            assert_eq!(Timestamp::from_offset_date_time(parsed_by_time).unwrap(), timestamp);
        }
        // Fractions of every length, and calendar edges, read as `time` reads them.
        for text in [
            "2026-11-29T08:00:00.1Z",
            "2026-11-29T08:00:00.12Z",
            "2026-11-29T08:00:00.000000001Z",
            "2024-02-29T23:59:59.999Z",
            "2000-02-29T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2262-04-11T23:47:16.854775807Z",
        ] {
            let expected = Timestamp::from_offset_date_time(OffsetDateTime::parse(text, &Rfc3339).unwrap()).unwrap();
            assert_eq!(text.parse::<Timestamp>().unwrap(), expected, "{text}");
            assert_eq!(Timestamp::parse_utc_rfc3339(text), Some(Ok(expected)), "{text}");
        }
        // What the fast path leaves to `time`: refused by both, or read by `time` alone.
        for text in [
            "2100-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T08:00:00.Z",
            "2026-11-29 08:00:00Z",
            "2026-11-29T08:00:00.1234567891Z",
            "2026-11-29t08:00:00z",
            "2026-11-29T08:00:00+02:00",
            "2016-12-31T23:59:60Z",
            "1969-12-31T23:59:59Z",
            "2262-04-11T23:47:16.854775808Z",
            "+2026-11-29T08:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_utc_rfc3339(text).and_then(Result::ok), None, "{text}");
            let by_time = OffsetDateTime::parse(text, &Rfc3339)
                .map_err(drop)
                .and_then(|datetime| Timestamp::from_offset_date_time(datetime).map_err(drop));
            assert_eq!(text.parse::<Timestamp>().map_err(drop), by_time, "{text}");
        }
    }

    #[test]
    fn serializes_round_trip() {
        let timestamp = Timestamp::from_unix_nanos(1_795_939_200_000_000_001).unwrap();
        let json = serde_json::to_string(&timestamp).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), timestamp);
    }
}
