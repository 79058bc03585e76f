//! Turning a line (or a multiline event) into a log record: `plain`, `json`, `logfmt` or a
//! regex with named captures; the timestamp, level and message taken from configurable fields
//! when present, the read time and the detected level otherwise; and the encoding of records
//! as the NDJSON the backend's `/api/v1/logs` takes.

use std::io::Write;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};
use time::format_description::OwnedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};
use vigil_proto::level::detect_level;

/// A source's `format`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatName {
    #[default]
    Plain,
    Json,
    Logfmt,
    Regex,
}

/// How timestamps are written in the logs.
#[derive(Debug, Clone)]
pub enum TimestampFormat {
    /// RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` (UTC), or a Unix time whose unit is guessed from its
    /// size.
    Auto,
    Rfc3339,
    UnixSeconds,
    UnixMillis,
    UnixMicros,
    UnixNanos,
    /// A `time` format description, such as `[day]/[month repr:short]/[year]:[hour]:[minute]:[second] [offset_hour][offset_minute]`;
    /// without an offset the time is taken as UTC.
    Custom(OwnedFormatItem),
}

/// A `timestamp_format` that is neither a known name nor a `time` format description; the
/// message holds the reason (configuration validation reports the message alone).
#[derive(Debug, thiserror::Error)]
#[error("{spec:?} is not a time format description: {reason}")]
pub struct ParseTimestampFormatError {
    spec: String,
    reason: time::error::InvalidFormatDescription,
}

impl TimestampFormat {
    pub fn parse(spec: &str) -> Result<Self, ParseTimestampFormatError> {
        Ok(match spec {
            "auto" => Self::Auto,
            "rfc3339" => Self::Rfc3339,
            "unix" | "unix_s" => Self::UnixSeconds,
            "unix_ms" => Self::UnixMillis,
            "unix_us" => Self::UnixMicros,
            "unix_ns" => Self::UnixNanos,
            custom => Self::Custom(
                time::format_description::parse_owned::<2>(custom)
                    .map_err(|reason| ParseTimestampFormatError { spec: custom.to_owned(), reason })?,
            ),
        })
    }

    /// Unix nanoseconds of a timestamp field's value.
    pub fn nanos(&self, value: &Value) -> Option<i64> {
        match value {
            Value::Number(number) => self.nanos_of_number(number.as_f64()?),
            Value::String(text) => self.nanos_of_text(text),
            _ => None,
        }
    }

    fn nanos_of_number(&self, number: f64) -> Option<i64> {
        let scale = match self {
            Self::UnixSeconds => 1e9,
            Self::UnixMillis => 1e6,
            Self::UnixMicros => 1e3,
            Self::UnixNanos => 1.0,
            Self::Auto => match number.abs() {
                magnitude if magnitude < 1e11 => 1e9,
                magnitude if magnitude < 1e14 => 1e6,
                magnitude if magnitude < 1e17 => 1e3,
                _ => 1.0,
            },
            Self::Rfc3339 | Self::Custom(_) => return None,
        };
        let nanos = number * scale;
        (nanos.is_finite() && nanos.abs() < 9.2e18).then_some(nanos as i64)
    }

    pub fn nanos_of_text(&self, text: &str) -> Option<i64> {
        let text = text.trim();
        let datetime = match self {
            Self::Rfc3339 => OffsetDateTime::parse(text, &Rfc3339).ok()?,
            Self::Custom(format) => OffsetDateTime::parse(text, format)
                .or_else(|_| PrimitiveDateTime::parse(text, format).map(PrimitiveDateTime::assume_utc))
                .ok()?,
            Self::Auto => match OffsetDateTime::parse(text, &Rfc3339) {
                Ok(datetime) => datetime,
                Err(_) => match text.parse::<f64>() {
                    Ok(number) => return self.nanos_of_number(number),
                    Err(_) => space_separated(text)?,
                },
            },
            unix => return unix.nanos_of_number(text.parse().ok()?),
        };
        i64::try_from(datetime.unix_timestamp_nanos()).ok()
    }
}

/// `2026-11-29 08:00:00[.123]`, read as UTC.
fn space_separated(text: &str) -> Option<OffsetDateTime> {
    let candidate = text.get(..10)?.to_owned() + "T" + text.get(11..)?;
    let with_zone = if candidate.ends_with('Z') { candidate } else { candidate + "Z" };
    OffsetDateTime::parse(&with_zone, &Rfc3339).ok()
}

/// A level field's value as one of Vigil's levels: words (`WARNING`, `err`, `I`) and the
/// numeric levels of bunyan/pino (10 trace … 60 fatal) and syslog (0 emerg … 7 debug are not
/// guessed: a bare small number is ambiguous).
pub fn normalise_level(value: &Value) -> Option<&'static str> {
    match value {
        Value::Number(number) => match number.as_u64()? {
            10 => Some("trace"),
            20 => Some("debug"),
            30 => Some("info"),
            40 => Some("warn"),
            50 => Some("error"),
            60 => Some("fatal"),
            _ => None,
        },
        Value::String(text) => vigil_proto::level::normalise(text),
        _ => None,
    }
}

/// Which fields carry the timestamp, level and message in structured lines.
#[derive(Debug, Clone)]
pub struct Fields {
    pub timestamp: Vec<String>,
    pub level: Vec<String>,
    pub message: Vec<String>,
}

/// A parsed line, ready to encode.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub timestamp: Option<i64>,
    pub level: Option<&'static str>,
    pub message: String,
    pub attributes: Map<String, Value>,
    /// The line did not have the configured format (it is kept whole as the message).
    pub failed: bool,
}

#[derive(Debug, Clone)]
pub struct Parser {
    format: FormatName,
    regex: Option<Regex>,
    fields: Fields,
    timestamp_format: TimestampFormat,
}

impl Parser {
    pub fn new(format: FormatName, regex: Option<Regex>, fields: Fields, timestamp_format: TimestampFormat) -> Self {
        Self { format, regex, fields, timestamp_format }
    }

    pub fn is_plain(&self) -> bool {
        self.format == FormatName::Plain
    }

    /// Parses a structured line; a plain line is the message as it is.
    pub fn parse(&self, line: &str) -> Parsed {
        let fields = match self.format {
            FormatName::Plain => None,
            FormatName::Json => match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(object)) => Some(object),
                _ => None,
            },
            FormatName::Logfmt => logfmt(line),
            FormatName::Regex => self.regex.as_ref().and_then(|regex| {
                let captures = regex.captures(line)?;
                Some(
                    regex
                        .capture_names()
                        .flatten()
                        .filter_map(|name| {
                            Some((name.to_owned(), Value::String(captures.name(name)?.as_str().to_owned())))
                        })
                        .collect(),
                )
            }),
        };
        let Some(mut fields) = fields else {
            return Parsed {
                level: Some(detect_level(line)).filter(|level| *level != "unknown"),
                message: line.to_owned(),
                failed: !self.is_plain(),
                ..Parsed::default()
            };
        };
        let timestamp = take_first(&mut fields, &self.fields.timestamp);
        let level = take_first(&mut fields, &self.fields.level);
        let message = take_first(&mut fields, &self.fields.message);
        let timestamp_nanos = timestamp.as_ref().and_then(|value| self.timestamp_format.nanos(value));
        if let (Some(value), None) = (&timestamp, timestamp_nanos) {
            // Kept rather than lost: a timestamp this agent could not read.
            fields.insert(self.fields.timestamp[0].clone(), value.clone());
        }
        let message = match message {
            Some(Value::String(text)) => text,
            Some(other) => other.to_string(),
            None => line.to_owned(),
        };
        let level = level
            .as_ref()
            .and_then(normalise_level)
            .or_else(|| Some(detect_level(&message)).filter(|level| *level != "unknown"));
        Parsed { timestamp: timestamp_nanos, level, message, attributes: fields, failed: false }
    }
}

fn take_first(fields: &mut Map<String, Value>, names: &[String]) -> Option<Value> {
    names.iter().find_map(|name| fields.remove(name))
}

/// `key=value key2="quoted \"value\"" flag`: logfmt as Go's `logfmt` package reads it. `None`
/// when the line has no `key=value` pair at all.
pub fn logfmt(line: &str) -> Option<Map<String, Value>> {
    let mut fields = Map::new();
    let mut rest = line.trim_start();
    let mut pairs = 0usize;
    while !rest.is_empty() {
        let key_end = rest.find(|character: char| character == '=' || character.is_whitespace()).unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let value = if let Some(after) = rest.strip_prefix('=') {
            pairs += 1;
            if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut characters = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((index, character)) = characters.next() {
                    match character {
                        '\\' => match characters.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, 't')) => value.push('\t'),
                            Some((_, other)) => value.push(other),
                            None => {}
                        },
                        '"' => {
                            end = index + 1;
                            break;
                        }
                        other => value.push(other),
                    }
                }
                rest = &quoted[end.min(quoted.len())..];
                value
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                rest = &after[end..];
                after[..end].to_owned()
            }
        } else {
            String::from("true")
        };
        if !key.is_empty() {
            fields.insert(key.to_owned(), Value::String(value));
        }
        rest = rest.trim_start();
    }
    (pairs > 0).then_some(fields)
}

/// Writes records as NDJSON lines with a fixed service, host and per-file attributes, without
/// building a map for every plain line.
pub struct Encoder {
    /// `,"service":…,"host":…,"level":"`
    head: Vec<u8>,
}

impl Encoder {
    pub fn new(service: &str, host: &str) -> Self {
        let mut head = Vec::new();
        head.extend_from_slice(b",\"service\":");
        serde_json::to_writer(&mut head, service).expect("a string encodes");
        head.extend_from_slice(b",\"host\":");
        serde_json::to_writer(&mut head, host).expect("a string encodes");
        head.extend_from_slice(b",\"level\":\"");
        Self { head }
    }

    /// The constant start of an attributes object: `{"file":…,"env":…` (no closing brace).
    pub fn attributes_head(file: &str, labels: &Map<String, Value>) -> Vec<u8> {
        let mut head = Vec::from(&b"{\"file\":"[..]);
        serde_json::to_writer(&mut head, file).expect("a string encodes");
        for (key, value) in labels {
            head.push(b',');
            serde_json::to_writer(&mut head, key).expect("a string encodes");
            head.push(b':');
            serde_json::to_writer(&mut head, value).expect("a value encodes");
        }
        head
    }

    /// Appends one record and its newline to `body`.
    pub fn encode(&self, body: &mut Vec<u8>, timestamp: i64, parsed: &Parsed, attributes_head: &[u8]) {
        let line = Line {
            level: parsed.level,
            message: &parsed.message,
            attributes: Some(&parsed.attributes),
            failed: parsed.failed,
        };
        self.encode_line(body, timestamp, &line, attributes_head);
    }

    /// The same without a [`Parsed`]: a plain line is encoded without copying it.
    pub fn encode_line(&self, body: &mut Vec<u8>, timestamp: i64, line: &Line<'_>, attributes_head: &[u8]) {
        let _ = write!(body, "{{\"timestamp\":{timestamp}");
        body.extend_from_slice(&self.head);
        body.extend_from_slice(line.level.unwrap_or("unknown").as_bytes());
        body.extend_from_slice(b"\",\"message\":");
        serde_json::to_writer(&mut *body, line.message).expect("a string encodes");
        body.extend_from_slice(b",\"attributes\":");
        body.extend_from_slice(attributes_head);
        for (key, value) in line.attributes.into_iter().flatten() {
            body.push(b',');
            serde_json::to_writer(&mut *body, key).expect("a string encodes");
            body.push(b':');
            serde_json::to_writer(&mut *body, value).expect("a value encodes");
        }
        if line.failed {
            body.extend_from_slice(b",\"parse_error\":true");
        }
        body.extend_from_slice(b"}}\n");
    }
}

/// What [`Encoder::encode_line`] writes of a record besides its timestamp.
pub struct Line<'a> {
    pub level: Option<&'static str>,
    pub message: &'a str,
    pub attributes: Option<&'a Map<String, Value>>,
    pub failed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use vigil_proto::LogRecord;

    fn fields() -> Fields {
        let names = |list: &[&str]| list.iter().map(|name| (*name).to_owned()).collect();
        Fields {
            timestamp: names(&["timestamp", "time", "ts"]),
            level: names(&["level", "severity"]),
            message: names(&["message", "msg"]),
        }
    }

    fn parser(format: FormatName, regex: Option<&str>) -> Parser {
        Parser::new(format, regex.map(|pattern| Regex::new(pattern).unwrap()), fields(), TimestampFormat::Auto)
    }

    const NOON: i64 = 1_795_939_200_000_000_000; // 2026-11-29T08:00:00Z

    #[test]
    fn json_lines_give_timestamp_level_message_and_attributes() {
        let parsed = parser(FormatName::Json, None)
            .parse(r#"{"time":"2026-11-29T08:00:00Z","level":"WARNING","msg":"slow query","duration_ms":812}"#);
        assert_eq!(parsed.timestamp, Some(NOON));
        assert_eq!(parsed.level, Some("warn"));
        assert_eq!(parsed.message, "slow query");
        assert_eq!(Value::Object(parsed.attributes), json!({"duration_ms": 812}));
        let pino = parser(FormatName::Json, None).parse(r#"{"time":1795939200000,"level":50,"msg":"boom"}"#);
        assert_eq!((pino.timestamp, pino.level), (Some(NOON), Some("error")));
        let broken = parser(FormatName::Json, None).parse("ERROR not json at all");
        assert!(broken.failed);
        assert_eq!((broken.message.as_str(), broken.level), ("ERROR not json at all", Some("error")));
    }

    #[test]
    fn logfmt_lines_with_quotes_and_flags() {
        let parsed = parser(FormatName::Logfmt, None)
            .parse(r#"ts=2026-11-29T08:00:00Z level=error msg="payment \"declined\"" order=42 retry"#);
        assert_eq!(parsed.timestamp, Some(NOON));
        assert_eq!(parsed.level, Some("error"));
        assert_eq!(parsed.message, r#"payment "declined""#);
        assert_eq!(Value::Object(parsed.attributes), json!({"order": "42", "retry": "true"}));
        assert!(parser(FormatName::Logfmt, None).parse("just words here").failed);
    }

    #[test]
    fn regex_captures_and_custom_timestamp_formats() {
        let mut parser = parser(
            FormatName::Regex,
            Some(r#"^(?P<ip>\S+) \S+ \S+ \[(?P<timestamp>[^\]]+)\] "(?P<message>[^"]*)" (?P<status>\d+)"#),
        );
        parser.timestamp_format = TimestampFormat::parse(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] [offset_hour][offset_minute]",
        )
        .unwrap();
        let parsed = parser.parse(r#"10.0.0.1 - - [29/Nov/2026:09:00:00 +0100] "GET / HTTP/1.1" 200"#);
        assert_eq!(parsed.timestamp, Some(NOON));
        assert_eq!(parsed.message, "GET / HTTP/1.1");
        assert_eq!(Value::Object(parsed.attributes), json!({"ip": "10.0.0.1", "status": "200"}));
        assert!(parser.parse("no match").failed);
        assert!(TimestampFormat::parse("[bogus]").is_err());
    }

    #[test]
    fn timestamps_in_every_spelling() {
        let auto = TimestampFormat::Auto;
        for text in
            ["2026-11-29T08:00:00Z", "2026-11-29T09:00:00+01:00", "2026-11-29 08:00:00", "1795939200", "1795939200000"]
        {
            assert_eq!(auto.nanos_of_text(text), Some(NOON), "{text}");
        }
        assert_eq!(auto.nanos(&json!(1_795_939_200.5)), Some(NOON + 500_000_000));
        assert_eq!(TimestampFormat::UnixMillis.nanos(&json!(1_795_939_200_000u64)), Some(NOON));
        assert_eq!(auto.nanos_of_text("yesterday"), None);
    }

    #[test]
    fn unreadable_timestamps_are_kept_as_attributes() {
        let parsed = parser(FormatName::Json, None).parse(r#"{"ts":"yesterday","msg":"m"}"#);
        assert_eq!(parsed.timestamp, None);
        assert_eq!(parsed.attributes["timestamp"], "yesterday");
    }

    #[test]
    fn encoded_records_are_what_the_backend_reads() {
        let encoder = Encoder::new("shop", "web-\"1\"");
        let labels = Map::from_iter([("env".to_owned(), json!("prod"))]);
        let head = Encoder::attributes_head("/var/log/shop.log", &labels);
        let mut body = Vec::new();
        let parsed = parser(FormatName::Json, None).parse(r#"{"msg":"line\nbreak","level":"info","user":{"id":7}}"#);
        encoder.encode(&mut body, NOON, &parsed, &head);
        encoder.encode(&mut body, NOON, &Parsed { message: "plain".into(), failed: true, ..Parsed::default() }, &head);
        let records: Vec<LogRecord> = body
            .split(|&byte| byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        assert_eq!(records[0].timestamp.as_unix_nanos(), NOON);
        assert_eq!((records[0].service.as_str(), records[0].host.as_str()), ("shop", "web-\"1\""));
        assert_eq!((records[0].level.as_str(), records[0].message.as_str()), ("info", "line\nbreak"));
        assert_eq!(
            Value::Object(records[0].attributes.clone()),
            json!({"file": "/var/log/shop.log", "env": "prod", "user": {"id": 7}})
        );
        assert_eq!(records[1].level, "unknown");
        assert_eq!(records[1].attributes["parse_error"], true);
    }
}
