//! Decoding of ingest bodies into validated log records, within the configured bounds.
//!
//! A body is JSON (an array of records) or NDJSON (one record a line), optionally gzip-encoded.
//! Every failure names what is wrong, with the line of NDJSON or the index of the array
//! element; a batch with one bad record is refused whole, so that nothing is half written.
//!
//! Not here: storage (see `logs`), HTTP routing (see `routes`).

pub mod budget;
pub mod document;
pub mod elasticsearch;
pub mod loki;
pub mod otlp;

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use vigil_proto::{LogRecord, Timestamp};

use crate::config::LogsConfig;

const MAX_SERVICE_BYTES: usize = 128;
const MAX_HOST_BYTES: usize = 255;
const MAX_LEVEL_BYTES: usize = 32;

/// Why an ingest body, or a record in it, was refused: the message names the line of NDJSON,
/// the index of the array element or the stream, and [`IngestError::line`] gives the line apart.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("content type {found} is not accepted: send {accepted}")]
    MediaType { found: String, accepted: &'static str },
    /// A header that does not parse (Loki reads `Content-Type` as Go's `mime` does).
    #[error("{header}: {problem}")]
    Header { header: &'static str, problem: &'static str },
    #[error("content encoding {found:?} is not accepted: send {accepted}")]
    UnsupportedEncoding { found: String, accepted: &'static str },
    /// Loki's own words for an encoding it does not read.
    #[error("Content-Encoding {0:?} not supported: send gzip, deflate or none")]
    LokiEncoding(String),
    #[error("body is not valid {encoding}: {source}")]
    Corrupt { encoding: &'static str, source: std::io::Error },
    #[error("body is not snappy-compressed: {0}")]
    Snappy(#[source] snap::Error),
    #[error("decompressed body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    #[error("{what} holds more than {limit} {items}")]
    TooMany { what: &'static str, limit: usize, items: &'static str },
    #[error("body is not valid UTF-8: invalid byte at offset {offset} (line {line})")]
    NotUtf8 { offset: usize, line: u64 },
    #[error("body is not valid UTF-8: {0}")]
    Utf8(#[source] std::str::Utf8Error),
    /// JSON that does not parse, or (when its source is a data error) does not fit.
    #[error("{at}{source}")]
    Json { at: At, source: serde_json::Error },
    #[error("{at}{problem}")]
    Record { at: At, problem: Invalid },
    #[error("line {line}: malformed action/metadata line: {reason}")]
    BulkAction { line: u64, reason: String },
    #[error("body is not {what}: {source}")]
    Protobuf { what: &'static str, source: prost::DecodeError },
}

impl IngestError {
    /// The line of the body the error is on, when it is known.
    pub fn line(&self) -> Option<u64> {
        match self {
            Self::NotUtf8 { line, .. } | Self::BulkAction { line, .. } => Some(*line),
            Self::Json { at, .. } | Self::Record { at, .. } => at.line(),
            _ => None,
        }
    }
}

/// Where in a body a problem is, written before its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// The body as a whole; `what` says what it should have been ("body is not JSON").
    Body { what: &'static str, line: Option<u64> },
    /// A line of NDJSON, counted from 1.
    Line(u64),
    /// An element of a JSON array (counted from 0), or of a stream of documents with its line.
    Record { index: usize, line: Option<u64> },
    /// A Loki stream, by its labels as sent.
    Stream(String),
    /// Nowhere in particular: the problem says where.
    Nowhere,
}

impl At {
    fn line(&self) -> Option<u64> {
        match self {
            Self::Body { line, .. } | Self::Record { line, .. } => *line,
            Self::Line(line) => Some(*line),
            Self::Stream(_) | Self::Nowhere => None,
        }
    }
}

impl fmt::Display for At {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Body { what, .. } => write!(formatter, "{what}: "),
            Self::Line(line) => write!(formatter, "line {line}: "),
            Self::Record { index, .. } => write!(formatter, "record {index}: "),
            Self::Stream(labels) => write!(formatter, "stream labels {labels:?}: "),
            Self::Nowhere => Ok(()),
        }
    }
}

/// What is wrong with one record, or with the part of a body that describes records, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

impl From<String> for Invalid {
    fn from(problem: String) -> Self {
        Self(problem)
    }
}

impl From<&str> for Invalid {
    fn from(problem: &str) -> Self {
        Self(problem.to_owned())
    }
}

/// Why one document is not a record: JSON that does not read, or a record that breaks a rule.
enum Problem {
    Json(serde_json::Error),
    Invalid(Invalid),
}

impl Problem {
    fn at(self, at: At) -> IngestError {
        match self {
            Self::Json(source) => IngestError::Json { at, source },
            Self::Invalid(problem) => IngestError::Record { at, problem },
        }
    }
}

impl From<Invalid> for Problem {
    fn from(problem: Invalid) -> Self {
        Self::Invalid(problem)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Ndjson,
}

impl BodyFormat {
    /// The format named by a `Content-Type` header.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, IngestError> {
        let unsupported = |found: &str| IngestError::MediaType {
            found: found.to_owned(),
            accepted: "application/json (an array of records) or application/x-ndjson (one record a line)",
        };
        let Some(content_type) = content_type else {
            return Err(unsupported("(none)"));
        };
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(Self::Json),
            "application/x-ndjson" | "application/ndjson" | "application/jsonlines" | "application/x-jsonlines" => {
                Ok(Self::Ndjson)
            }
            _ => Err(unsupported(content_type)),
        }
    }
}

/// Undoes the `Content-Encoding`, never producing more than `limit` bytes.
pub fn decode_content<'body>(
    encoding: Option<&str>,
    body: &'body [u8],
    limit: usize,
) -> Result<Cow<'body, [u8]>, IngestError> {
    let encoding = encoding.map(|value| value.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("" | "identity") => {
            if body.len() > limit {
                return Err(IngestError::TooLarge(limit));
            }
            Ok(Cow::Borrowed(body))
        }
        Some("gzip" | "x-gzip") => inflate(flate2::read::MultiGzDecoder::new(body), "gzip", limit).map(Cow::Owned),
        Some("zstd") => {
            let decoder = zstd::stream::read::Decoder::new(body)
                .map_err(|source| IngestError::Corrupt { encoding: "zstd", source })?;
            inflate(decoder, "zstd", limit).map(Cow::Owned)
        }
        Some(other) => {
            Err(IngestError::UnsupportedEncoding { found: other.to_owned(), accepted: "identity, gzip or zstd" })
        }
    }
}

/// Reads a decoder to its end, or to one byte past `limit`, which refuses the body.
pub(crate) fn inflate(decoder: impl Read, encoding: &'static str, limit: usize) -> Result<Vec<u8>, IngestError> {
    let mut decoded = Vec::new();
    let read = decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|source| IngestError::Corrupt { encoding, source })?;
    if read > limit {
        return Err(IngestError::TooLarge(limit));
    }
    Ok(decoded)
}

/// Parses and validates a decoded body.
pub fn parse_batch(
    format: BodyFormat,
    body: &[u8],
    limits: &LogsConfig,
    now: Timestamp,
) -> Result<Vec<LogRecord>, IngestError> {
    parse_batch_with(format, body, limits, &BatchDefaults::default(), now)
}

/// What a native batch gives for records that do not say (`?service=`, `?host=`).
#[derive(Debug, Clone, Default)]
pub struct BatchDefaults {
    pub service: Option<String>,
    pub host: Option<String>,
}

/// The same, with the batch's defaults. A record is the six fields of [`LogRecord`]; one that
/// is shaped otherwise (a shipper's own JSON: Fluent Bit's `{"date", "log"}`, a logging
/// library's `{"time", "msg", "level"}`) is read by the usual keys (see `document`), and its
/// other top-level fields become attributes.
pub fn parse_batch_with(
    format: BodyFormat,
    body: &[u8],
    limits: &LogsConfig,
    defaults: &BatchDefaults,
    now: Timestamp,
) -> Result<Vec<LogRecord>, IngestError> {
    let text = std::str::from_utf8(body).map_err(|error| {
        let offset = error.valid_up_to();
        let line = body[..offset].iter().filter(|&&byte| byte == b'\n').count() as u64 + 1;
        IngestError::NotUtf8 { offset, line }
    })?;
    let latest = latest_timestamp(limits, now);
    let too_many = || IngestError::TooMany { what: "batch", limit: limits.max_batch_records, items: "records" };
    let document_defaults =
        document::Defaults { service: defaults.service.as_deref(), host: defaults.host.as_deref(), now };
    let read = |record: Result<LogRecord, Problem>| -> Result<LogRecord, Problem> {
        let mut record = record?;
        validate(&mut record, limits, latest, now)?;
        Ok(record)
    };
    match format {
        BodyFormat::Ndjson => {
            let mut records = Vec::new();
            for (index, line) in text.lines().enumerate() {
                let line_number = index as u64 + 1;
                if line.trim().is_empty() {
                    continue;
                }
                if records.len() == limits.max_batch_records {
                    return Err(too_many());
                }
                let record =
                    read(parse_line(line, &document_defaults)).map_err(|problem| problem.at(At::Line(line_number)))?;
                records.push(record);
            }
            Ok(records)
        }
        // A JSON array of records, or records one after the other (Fluent Bit's
        // `json_stream`).
        BodyFormat::Json => {
            let values: Vec<(u64, serde_json::Value)> = if text.trim_start().starts_with('{') {
                let mut values = Vec::new();
                let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
                loop {
                    let line = text[..stream.byte_offset()].matches('\n').count() as u64 + 1;
                    match stream.next() {
                        None => break,
                        Some(Ok(value)) => values.push((line, value)),
                        Some(Err(source)) => return Err(IngestError::Json { at: At::Line(line), source }),
                    }
                    if values.len() > limits.max_batch_records {
                        return Err(too_many());
                    }
                }
                values
            } else {
                let values: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|source| {
                    let what = "body is not a JSON array of log records";
                    IngestError::Json { at: At::Body { what, line: Some(source.line() as u64) }, source }
                })?;
                if values.len() > limits.max_batch_records {
                    return Err(too_many());
                }
                values.into_iter().map(|value| (0, value)).collect()
            };
            let mut records = Vec::with_capacity(values.len());
            for (index, (line, value)) in values.into_iter().enumerate() {
                let at = At::Record { index, line: (line > 0).then_some(line) };
                records.push(read(parse_value(value, &document_defaults)).map_err(|problem| problem.at(at))?);
            }
            Ok(records)
        }
    }
}

/// The six fields of a native record, and those it cannot lack.
const RECORD_FIELDS: [&str; 6] = ["timestamp", "service", "host", "level", "message", "attributes"];
const REQUIRED_FIELDS: [&str; 3] = ["timestamp", "service", "message"];

/// Whether a document that is not a valid [`LogRecord`] is shaped otherwise (fields beyond or
/// short of the six: a shipper's own JSON, read by the usual keys), rather than a native
/// record with a bad value (which is refused as such).
fn shaped_otherwise(document: &serde_json::Map<String, serde_json::Value>) -> bool {
    document.keys().any(|key| !RECORD_FIELDS.contains(&key.as_str()))
        || REQUIRED_FIELDS.iter().any(|field| !document.contains_key(*field))
}

/// One NDJSON line: the six fields straight into a [`LogRecord`] (what the agent sends,
/// without a map per record), else a shipper's document read by the usual keys.
fn parse_line(line: &str, defaults: &document::Defaults<'_>) -> Result<LogRecord, Problem> {
    match serde_json::from_str::<LogRecord>(line) {
        Ok(record) => Ok(record),
        Err(error) if error.is_data() => {
            let value = serde_json::from_str(line).map_err(Problem::Json)?;
            from_document(value, error, defaults)
        }
        Err(error) => Err(Problem::Json(error)),
    }
}

fn parse_value(value: serde_json::Value, defaults: &document::Defaults<'_>) -> Result<LogRecord, Problem> {
    use serde::Deserialize;
    match LogRecord::deserialize(&value) {
        Ok(record) => Ok(record),
        Err(error) => from_document(value, error, defaults),
    }
}

/// A document that did not read as a [`LogRecord`] (`error` says why).
fn from_document(
    value: serde_json::Value,
    error: serde_json::Error,
    defaults: &document::Defaults<'_>,
) -> Result<LogRecord, Problem> {
    let serde_json::Value::Object(document) = value else {
        return Err(Invalid::from("a record must be a JSON object").into());
    };
    if !shaped_otherwise(&document) {
        return Err(Problem::Json(error));
    }
    if !document::has_message(&document) {
        return Err(Invalid::from("missing field `message` (or one of log, msg, MESSAGE, short_message)").into());
    }
    Ok(document::record(document, defaults)?)
}

/// The latest timestamp a record may carry when received at `now`.
pub(crate) fn latest_timestamp(limits: &LogsConfig, now: Timestamp) -> Timestamp {
    now.saturating_add_nanos(
        i64::try_from(limits.max_future_seconds).unwrap_or(i64::MAX / 2).saturating_mul(1_000_000_000),
    )
}

/// Checks the bounds of one record and normalises its level to lowercase; `latest` is
/// [`latest_timestamp`] at `now`.
pub(crate) fn validate(
    record: &mut LogRecord,
    limits: &LogsConfig,
    latest: Timestamp,
    now: Timestamp,
) -> Result<(), Invalid> {
    if record.service.trim().is_empty() {
        return Err("service must not be empty".into());
    }
    if record.service.len() > MAX_SERVICE_BYTES {
        return Err(format!("service is longer than {MAX_SERVICE_BYTES} bytes").into());
    }
    if record.host.len() > MAX_HOST_BYTES {
        return Err(format!("host is longer than {MAX_HOST_BYTES} bytes").into());
    }
    if record.level.len() > MAX_LEVEL_BYTES {
        return Err(format!("level is longer than {MAX_LEVEL_BYTES} bytes").into());
    }
    if record.message.len() > limits.max_message_bytes {
        return Err(format!("message is longer than {} bytes", limits.max_message_bytes).into());
    }
    if record.timestamp > latest {
        return Err(format!(
            "timestamp {} lies more than {} seconds in the future",
            record.timestamp, limits.max_future_seconds
        )
        .into());
    }
    if limits.max_age_days > 0
        && record.timestamp < now.saturating_add_nanos(-(i64::from(limits.max_age_days) * 86_400_000_000_000))
    {
        return Err(format!(
            "timestamp {} is older than logs.max_age_days ({} days)",
            record.timestamp, limits.max_age_days
        )
        .into());
    }
    let days = limits.retention_days_by_service.get(&record.service).copied().unwrap_or(limits.retention_days);
    if let Some(earliest) = vigil_logstore::Retention::earliest(days, now)
        && record.timestamp < earliest
    {
        return Err(format!(
            "timestamp {} is older than the retention of service {:?}",
            record.timestamp, record.service
        )
        .into());
    }
    // One spelling per level (`WARNING` and `warn` are `warn`); a level no word maps is kept,
    // lowercase; none is detected from the message, as the agent does.
    if !matches!(record.level.as_str(), "fatal" | "error" | "warn" | "info" | "debug" | "trace") {
        record.level = match vigil_proto::level::normalise(&record.level) {
            Some(level) => level.to_owned(),
            None => record.level.trim().to_ascii_lowercase(),
        };
    }
    if record.level.is_empty() || record.level == "unknown" {
        record.level = vigil_proto::level::detect_level(&record.message).to_owned();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn limits() -> LogsConfig {
        crate::config::Config::for_tests(std::path::Path::new("unused")).logs
    }

    fn now() -> Timestamp {
        "2026-11-29T09:00:00Z".parse().unwrap()
    }

    const RECORD: &str = r#"{"timestamp":"2026-11-29T08:00:00Z","service":"api","level":"WARN","message":"slow"}"#;

    #[test]
    fn parses_json_arrays_and_ndjson_alike() {
        let array = parse_batch(BodyFormat::Json, format!("[{RECORD},{RECORD}]").as_bytes(), &limits(), now()).unwrap();
        let ndjson =
            parse_batch(BodyFormat::Ndjson, format!("{RECORD}\n\n{RECORD}\n").as_bytes(), &limits(), now()).unwrap();
        assert_eq!(array, ndjson);
        assert_eq!(array.len(), 2);
        assert_eq!(array[0].level, "warn");
    }

    #[test]
    fn shippers_documents_are_read_by_the_usual_keys() {
        let defaults = BatchDefaults { service: Some("web".to_owned()), host: Some("web-1".to_owned()) };
        let parse = |format, body: &str| parse_batch_with(format, body.as_bytes(), &limits(), &defaults, now());
        // Fluent Bit's `http` output, `json_lines`, `json` and `json_stream`.
        let lines = concat!(
            "{\"date\":1796116337.496189,\"log\":\"first line of log\"}\n",
            "{\"date\":1796116337.496199,\"log\":\"ERROR second\",\"stream\":\"stdout\"}\n"
        );
        let now = now();
        let limits = LogsConfig { max_future_seconds: u64::MAX / 4, ..limits() };
        let read = |format, body: &str| parse_batch_with(format, body.as_bytes(), &limits, &defaults, now).unwrap();
        let records = read(BodyFormat::Ndjson, lines);
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].service.as_str(), records[0].host.as_str()), ("web", "web-1"));
        assert_eq!(records[0].message, "first line of log");
        assert_eq!(records[0].timestamp, "2026-12-01T09:12:17.496189Z".parse().unwrap());
        assert_eq!(records[1].level, "error", "detected from the line");
        assert_eq!(records[1].attributes["stream"], "stdout", "unknown fields are attributes");
        let array = format!("[{}]", lines.trim_end().replace('\n', ","));
        assert_eq!(read(BodyFormat::Json, &array), records);
        assert_eq!(read(BodyFormat::Json, &lines.replace('\n', "")), records);
        // The six fields still go straight through, and a logging library's JSON too.
        assert_eq!(parse(BodyFormat::Ndjson, RECORD).unwrap()[0].service, "api");
        let pino = r#"{"level":40,"time":1796116337496,"pid":7,"hostname":"box","msg":"slow","service":"api"}"#;
        let record = &read(BodyFormat::Ndjson, pino)[0];
        assert_eq!((record.level.as_str(), record.host.as_str(), record.message.as_str()), ("warn", "box", "slow"));
        assert_eq!(record.attributes["pid"], 7);
        // Without a service anywhere, the record is refused, by line.
        let no_service = parse_batch(BodyFormat::Ndjson, b"{\"log\":\"x\"}\n", &limits, now).unwrap_err();
        assert_eq!(no_service.line(), Some(1));
        assert!(no_service.to_string().contains("missing field `service`"), "{no_service}");
    }

    #[test]
    fn a_bad_ndjson_line_is_reported_by_number() {
        let body = format!("{RECORD}\n{RECORD}\n{{\"timestamp\":\"2026-11-29T08:00:00Z\",\"service\":\"api\"}}\n");
        let error = parse_batch(BodyFormat::Ndjson, body.as_bytes(), &limits(), now()).unwrap_err();
        assert_eq!(error.line(), Some(3));
        assert!(matches!(error, IngestError::Record { .. }), "{error:?}");
        assert!(error.to_string().contains("missing field `message`"), "{error}");
        let garbage =
            parse_batch(BodyFormat::Ndjson, format!("{RECORD}\nnot json\n").as_bytes(), &limits(), now()).unwrap_err();
        assert_eq!(garbage.line(), Some(2));
        assert!(matches!(garbage, IngestError::Json { ref source, .. } if source.is_syntax()), "{garbage:?}");
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let mut body = format!("{RECORD}\n").into_bytes();
        body.extend_from_slice(b"{\"message\":\"\xff\"}\n");
        let error = parse_batch(BodyFormat::Ndjson, &body, &limits(), now()).unwrap_err();
        assert!(matches!(error, IngestError::NotUtf8 { line: 2, .. }), "{error:?}");
    }

    #[test]
    fn bounds_are_enforced() {
        let mut one_record = limits();
        one_record.max_batch_records = 1;
        let two = format!("{RECORD}\n{RECORD}\n");
        assert!(matches!(
            parse_batch(BodyFormat::Ndjson, two.as_bytes(), &one_record, now()),
            Err(IngestError::TooMany { limit: 1, .. })
        ));
        let mut short_messages = limits();
        short_messages.max_message_bytes = 3;
        let long = parse_batch(BodyFormat::Ndjson, RECORD.as_bytes(), &short_messages, now()).unwrap_err();
        assert!(long.to_string().contains("message is longer than 3 bytes"), "{long}");
        let future = RECORD.replace("2026-11-29T08:00:00Z", "2026-11-30T08:00:00Z");
        let error = parse_batch(BodyFormat::Json, format!("[{future}]").as_bytes(), &limits(), now()).unwrap_err();
        assert!(error.to_string().starts_with("record 0: timestamp"), "{error}");
        let old = RECORD.replace("2026-11-29T08:00:00Z", "2026-11-22T08:59:59Z");
        let week = LogsConfig { max_age_days: 7, ..limits() };
        let error = parse_batch(BodyFormat::Json, format!("[{old}]").as_bytes(), &week, now()).unwrap_err();
        assert!(error.to_string().contains("older than logs.max_age_days (7 days)"), "{error}");
        let recent = RECORD.replace("2026-11-29T08:00:00Z", "2026-11-22T09:00:01Z");
        assert!(parse_batch(BodyFormat::Json, format!("[{recent}]").as_bytes(), &week, now()).is_ok());
        let any_age = LogsConfig { max_age_days: 0, ..limits() };
        assert!(parse_batch(BodyFormat::Json, format!("[{old}]").as_bytes(), &any_age, now()).is_ok());
        let empty_service = RECORD.replace("\"api\"", "\" \"");
        assert_eq!(
            parse_batch(BodyFormat::Ndjson, empty_service.as_bytes(), &limits(), now()).unwrap_err().line(),
            Some(1)
        );
    }

    #[test]
    fn gzip_is_decoded_within_the_limit() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&vec![b' '; 10_000]).unwrap();
        let compressed = encoder.finish().unwrap();
        assert_eq!(decode_content(Some("gzip"), &compressed, 10_000).unwrap().len(), 10_000);
        assert!(matches!(decode_content(Some("gzip"), &compressed, 9_999), Err(IngestError::TooLarge(9_999))));
        assert!(matches!(
            decode_content(Some("gzip"), b"plain", 100),
            Err(IngestError::Corrupt { encoding: "gzip", .. })
        ));
        assert!(matches!(decode_content(Some("br"), b"x", 100), Err(IngestError::UnsupportedEncoding { .. })));
    }

    #[test]
    fn zstd_is_decoded_within_the_limit() {
        let compressed = zstd::stream::encode_all(&vec![b' '; 10_000][..], 1).unwrap();
        assert_eq!(decode_content(Some("zstd"), &compressed, 10_000).unwrap().len(), 10_000);
        assert!(matches!(decode_content(Some("zstd"), &compressed, 9_999), Err(IngestError::TooLarge(9_999))));
        assert!(matches!(
            decode_content(Some("zstd"), b"not zstd", 100),
            Err(IngestError::Corrupt { encoding: "zstd", .. })
        ));
    }

    #[test]
    fn content_types_are_checked() {
        assert_eq!(BodyFormat::from_content_type(Some("application/json; charset=utf-8")).unwrap(), BodyFormat::Json);
        assert_eq!(BodyFormat::from_content_type(Some("application/x-ndjson")).unwrap(), BodyFormat::Ndjson);
        assert!(matches!(BodyFormat::from_content_type(Some("text/plain")), Err(IngestError::MediaType { .. })));
        assert!(
            matches!(BodyFormat::from_content_type(None), Err(IngestError::MediaType { ref found, .. }) if found == "(none)")
        );
    }
}
