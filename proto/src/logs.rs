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

/// When an ingest request is answered: the `commit` query parameter of every log ingest
/// endpoint (`auto`, `wait_for`, `force`, as in Quickwit); Elasticsearch's `refresh` maps onto
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Commit {
    /// Once the records are durable; they become searchable within the commit interval (half
    /// a second by default), or at once when ingest pauses.
    #[default]
    Auto,
    /// Once the records are durable and searchable, at the next commit.
    WaitFor,
    /// The same, with a commit started at once.
    Force,
}

/// The query parameters of the log ingest endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestParams {
    #[serde(default)]
    pub commit: Commit,
    /// The service of records that name none (native endpoint).
    #[serde(default)]
    pub service: Option<String>,
    /// The host of records that name none (native endpoint).
    #[serde(default)]
    pub host: Option<String>,
}

/// A stored record as search returns it: the record and its `id`, which orders records
/// (newest first) and serves as a pagination cursor and as the anchor of a context request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogHit {
    pub id: RecordId,
    pub timestamp: Timestamp,
    pub service: String,
    pub host: String,
    pub level: String,
    pub message: String,
    pub attributes: Map<String, Value>,
}

/// Identifies a stored record: its timestamp and the sequence number the store gave it.
/// Written as `<unix nanoseconds>-<sequence>`; records sort by (timestamp, sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    pub timestamp: Timestamp,
    pub sequence: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record id {0:?} is not <unix nanoseconds>-<sequence>")]
pub struct ParseRecordIdError(String);

impl std::str::FromStr for RecordId {
    type Err = ParseRecordIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseRecordIdError(text.to_owned());
        let (nanos, sequence) = text.split_once('-').ok_or_else(error)?;
        let nanos: i64 = nanos.parse().map_err(|_| error())?;
        Ok(Self {
            timestamp: Timestamp::from_unix_nanos(nanos).map_err(|_| error())?,
            sequence: sequence.parse().map_err(|_| error())?,
        })
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}-{}", self.timestamp.as_unix_nanos(), self.sequence)
    }
}

impl Serialize for RecordId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read from the borrowed text where it can be: a page holds one a record.
        struct RecordIdVisitor;

        impl serde::de::Visitor<'_> for RecordIdVisitor {
            type Value = RecordId;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a record id, <unix nanoseconds>-<sequence>")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RecordId, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(RecordIdVisitor)
    }
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
    /// The `next_cursor` of the previous page: only records older than it.
    #[serde(default)]
    pub cursor: Option<RecordId>,
    /// How far to count the matches for `total`; up to
    /// [`LogQuery::DEFAULT_TRACK_TOTAL_HITS`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_total_hits: Option<TrackTotalHits>,
}

impl LogQuery {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;
    /// Beyond it a page says "at least" rather than count on. Elasticsearch counts to 10,000;
    /// here the histogram beside a page counts every match over its range, and what a page
    /// needs of the count is whether there is more than a page.
    pub const DEFAULT_TRACK_TOTAL_HITS: u64 = 1_000;

    /// The same search with every match counted (what alert rules, gates and panels need).
    pub fn counting_all(self) -> Self {
        Self { track_total_hits: Some(TrackTotalHits::All), ..self }
    }
}

/// How far a search counts its matches, as Elasticsearch's `track_total_hits`: `true` every
/// one, a number up to that many (then [`LogPage::total_relation`] says `gte`), `false` no
/// further than the page needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackTotalHits {
    All,
    UpTo(u64),
}

impl Serialize for TrackTotalHits {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => serializer.serialize_bool(true),
            Self::UpTo(bound) => serializer.serialize_u64(*bound),
        }
    }
}

impl<'de> Deserialize<'de> for TrackTotalHits {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TrackTotalHits;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("true, false or a count of matches")
            }

            fn visit_bool<E: serde::de::Error>(self, all: bool) -> Result<TrackTotalHits, E> {
                Ok(if all { TrackTotalHits::All } else { TrackTotalHits::UpTo(0) })
            }

            fn visit_u64<E: serde::de::Error>(self, bound: u64) -> Result<TrackTotalHits, E> {
                Ok(TrackTotalHits::UpTo(bound))
            }

            fn visit_i64<E: serde::de::Error>(self, bound: i64) -> Result<TrackTotalHits, E> {
                u64::try_from(bound)
                    .map(TrackTotalHits::UpTo)
                    .map_err(|_| E::custom("track_total_hits must be true, false or a count of matches, not negative"))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<TrackTotalHits, E> {
                match text {
                    "true" => Ok(TrackTotalHits::All),
                    "false" => Ok(TrackTotalHits::UpTo(0)),
                    count => count.parse().map(TrackTotalHits::UpTo).map_err(|_| {
                        E::custom(format!("track_total_hits must be true, false or a count of matches, not {count:?}"))
                    }),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Whether a page's `total` is every match or a lower bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TotalRelation {
    /// `total` is the number of matches.
    #[default]
    Eq,
    /// At least `total` match: counting stopped at the query's `track_total_hits`.
    Gte,
}

/// A histogram request: the query's matches per time bucket. `end` defaults to now and `start`
/// to an hour before `end`; `interval` (`30s`, `5m`, `1h`) is chosen from the range when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub start: Option<Timestamp>,
    #[serde(default)]
    pub end: Option<Timestamp>,
    #[serde(default)]
    pub interval: Option<String>,
}

/// A request for the most frequent field values among the query's matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldsQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub start: Option<Timestamp>,
    #[serde(default)]
    pub end: Option<Timestamp>,
    /// Values per field; 10 when absent, at most 100.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Parameters of the live tail (`/api/v1/logs/tail`, a WebSocket).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailQuery {
    #[serde(default)]
    pub q: String,
    /// The `cursor` of the last frame received: the tail resumes right after it. Without it,
    /// the tail starts with the next record stored.
    #[serde(default)]
    pub cursor: Option<u64>,
}

/// A frame of the live tail, as JSON text: `{"type": "records", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TailFrame {
    /// New matching records in the order they were stored; `cursor` resumes after them.
    Records { records: Vec<LogHit>, cursor: u64 },
    /// The client fell behind: `skipped` matching records were left out to catch up.
    Lagged { skipped: u64, cursor: u64 },
    /// Nothing new; sent every few seconds so that proxies keep the connection.
    Heartbeat { cursor: Option<u64> },
}

/// A request for the records around one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextQuery {
    pub id: RecordId,
    /// Records before it; 10 when absent, at most 500.
    #[serde(default)]
    pub before: Option<u32>,
    /// Records after it; 10 when absent, at most 500.
    #[serde(default)]
    pub after: Option<u32>,
}

/// One page of search results, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    pub records: Vec<LogHit>,
    /// How many records match the query in the range (and before the cursor, if any): all of
    /// them, or when `total_relation` is `gte` at least this many.
    pub total: u64,
    #[serde(default)]
    pub total_relation: TotalRelation,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<RecordId>,
    /// Pass as the live tail's `cursor` to stream what was stored after this page was read,
    /// without a gap; absent while nothing is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_cursor: Option<u64>,
}

/// Counts of matching records per time bucket, split by level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHistogram {
    pub start: Timestamp,
    pub end: Timestamp,
    /// Width of every bucket.
    pub interval_ms: u64,
    pub buckets: Vec<HistogramBucket>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramBucket {
    pub start: Timestamp,
    /// Records per level; levels without records are left out.
    pub counts: std::collections::BTreeMap<String, u64>,
}

impl HistogramBucket {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// The most frequent values of `service`, `host` and `level` among matching records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValues {
    pub service: Vec<FieldValue>,
    pub host: Vec<FieldValue>,
    pub level: Vec<FieldValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValue {
    pub value: String,
    pub count: u64,
}

/// The records around one record, from the same service and host, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogContext {
    pub before: Vec<LogHit>,
    pub record: LogHit,
    pub after: Vec<LogHit>,
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
    fn record_ids_round_trip_and_order() {
        let id: RecordId = "1795939200000000000-42".parse().unwrap();
        assert_eq!(id.sequence, 42);
        assert_eq!(id.to_string(), "1795939200000000000-42");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"1795939200000000000-42\"");
        let later: RecordId = "1795939200000000000-43".parse().unwrap();
        assert!(later > id);
        for bad in ["", "42", "x-1", "1-x", "-5-1", "1-"] {
            assert!(bad.parse::<RecordId>().is_err(), "{bad}");
        }
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
