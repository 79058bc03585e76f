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
        self.to_offset_date_time().format(&Rfc3339).expect("an in-range timestamp formats as RFC 3339")
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
        let datetime =
            OffsetDateTime::parse(text, &Rfc3339).map_err(|_| ParseTimestampError::Malformed(text.to_owned()))?;
        Self::from_offset_date_time(datetime).map_err(|_| ParseTimestampError::OutOfRange(text.to_owned()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
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

    #[test]
    fn serializes_round_trip() {
        let timestamp = Timestamp::from_unix_nanos(1_795_939_200_000_000_001).unwrap();
        let json = serde_json::to_string(&timestamp).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), timestamp);
    }
}
