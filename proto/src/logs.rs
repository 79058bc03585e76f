use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Timestamp;

/// One log record, as shipped by agents in an ingest batch and as returned by search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    pub timestamp: Timestamp,
    pub service: String,
    #[serde(default)]
    pub host: String,
    /// Severity, lowercase (`error`, `warn`, `info`, `debug`, `trace`); `unknown` when absent.
    #[serde(default = "unknown_level")]
    pub level: String,
    pub message: String,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

fn unknown_level() -> String {
    "unknown".to_owned()
}

/// The answer to an accepted ingest batch: every record in it is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestResponse {
    pub accepted: u64,
}

/// A log search: a query in tantivy syntax over a time range, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    /// Empty matches every record.
    #[serde(default)]
    pub q: String,
    /// Inclusive; the beginning of time when absent.
    #[serde(default)]
    pub start: Option<Timestamp>,
    /// Exclusive; no upper bound when absent.
    #[serde(default)]
    pub end: Option<Timestamp>,
    #[serde(default)]
    pub limit: Option<u32>,
}

impl LogQuery {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;
}

/// One page of search results, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    pub records: Vec<LogRecord>,
    /// How many records match the query in the range, of which `records` is the newest part.
    pub total: u64,
}

/// A time range relative to now, as the UI offers it: `15m`, `1h`, `24h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelativeRange {
    nanos: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time range {0:?} is not a positive number followed by s, m, h, d or w")]
pub struct ParseRangeError(String);

impl RelativeRange {
    pub fn as_nanos(self) -> i64 {
        self.nanos
    }
}

impl std::str::FromStr for RelativeRange {
    type Err = ParseRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseRangeError(text.to_owned());
        let split = text.len().checked_sub(1).filter(|&at| at > 0 && text.is_char_boundary(at)).ok_or_else(error)?;
        let (count, unit) = text.split_at(split);
        let count: i64 = count.parse().map_err(|_| error())?;
        let unit_seconds: i64 = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(error()),
        };
        let nanos = count
            .checked_mul(unit_seconds)
            .and_then(|seconds| seconds.checked_mul(1_000_000_000))
            .filter(|&nanos| nanos > 0)
            .ok_or_else(error)?;
        Ok(Self { nanos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_needs_timestamp_service_and_message() {
        let record: LogRecord =
            serde_json::from_str(r#"{"timestamp":"2026-11-29T08:00:00Z","service":"api","message":"started"}"#)
                .unwrap();
        assert_eq!(record.level, "unknown");
        assert_eq!(record.host, "");
        let missing =
            serde_json::from_str::<LogRecord>(r#"{"timestamp":"2026-11-29T08:00:00Z","service":"api"}"#).unwrap_err();
        assert!(missing.to_string().contains("missing field `message`"), "{missing}");
        let unknown = serde_json::from_str::<LogRecord>(
            r#"{"timestamp":"2026-11-29T08:00:00Z","service":"api","msg":"x","message":"y"}"#,
        )
        .unwrap_err();
        assert!(unknown.to_string().contains("unknown field `msg`"), "{unknown}");
    }

    #[test]
    fn relative_ranges_parse() {
        assert_eq!("15m".parse::<RelativeRange>().unwrap().as_nanos(), 900_000_000_000);
        assert_eq!("7d".parse::<RelativeRange>().unwrap().as_nanos(), 604_800_000_000_000);
        for bad in ["", "m", "0h", "-1h", "1y", "1.5h", "99999999999999w"] {
            assert!(bad.parse::<RelativeRange>().is_err(), "{bad}");
        }
    }
}
