//! The Loki push API: a `PushRequest` as snappy-compressed protobuf (what Promtail, Alloy and
//! the Loki clients send by default) or as JSON, into log records.
//!
//! Stream labels map to fields: `service_name`, `service` or `job` to the service
//! (`unknown_service` when none), `host`, `hostname` or `instance` to the host, `level`,
//! `detected_level` or `severity` to the level (else the level is detected from the line, as
//! Loki does); the other labels and the structured metadata become attributes. As in Loki,
//! entries that fail validation are refused one by one while the others are stored.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use vigil_proto::level::detect_level;
use vigil_proto::{LogRecord, Timestamp};

use super::{At, IngestError, Invalid, latest_timestamp, validate};
use crate::config::LogsConfig;

/// The protobuf messages of Loki's `logproto.PushRequest`.
pub mod messages {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        /// In Prometheus selector syntax: `{job="app", host="web-1"}`.
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<ProtoTimestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProtoTimestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// One stream: its labels and its entries (Unix nanoseconds, line, structured metadata).
#[derive(Debug)]
pub struct Stream {
    pub labels: BTreeMap<String, String>,
    pub entries: Vec<(i64, String, BTreeMap<String, String>)>,
}

/// What a push became: the records to store and the first reasons entries were refused.
#[derive(Debug, Default)]
pub struct Push {
    pub records: Vec<LogRecord>,
    pub rejected: usize,
    pub errors: Vec<String>,
}

/// Whether a push is JSON, from its `Content-Type` read as Loki reads it (Go's
/// `mime.ParseMediaType`): parameters must be `name=value`; `application/json` (any case, any
/// parameters) is JSON, anything else snappy protobuf, and so is a push without a
/// `Content-Type` (what Loki's code means to do, though Go's parser refuses it there).
pub fn is_json(content_type: Option<&str>) -> Result<bool, IngestError> {
    let invalid = |problem: &'static str| IngestError::Header { header: "Content-Type", problem };
    let Some(content_type) = content_type else {
        return Ok(false);
    };
    let mut parts = content_type.split(';');
    let media_type = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let is_token = |text: &str| {
        !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&byte))
    };
    let valid_type = match media_type.split_once('/') {
        Some((kind, subtype)) => is_token(kind) && is_token(subtype),
        None => is_token(&media_type),
    };
    if media_type.is_empty() {
        return Err(invalid("no media type"));
    }
    if !valid_type {
        return Err(invalid("expected token after slash"));
    }
    for parameter in parts.map(str::trim).filter(|parameter| !parameter.is_empty()) {
        let well_formed = parameter.split_once('=').is_some_and(|(name, value)| {
            let value = value.trim();
            is_token(name.trim())
                && (is_token(value) || (value.len() >= 2 && value.starts_with('"') && value.ends_with('"')))
        });
        if !well_formed {
            return Err(invalid("invalid media parameter"));
        }
    }
    Ok(media_type == "application/json")
}

/// Undoes the `Content-Encoding` as Loki does: `gzip`, `deflate` (raw DEFLATE), `snappy` or
/// none (a protobuf body is snappy-compressed whatever this says); names are exact.
pub fn decode_content<'body>(
    encoding: Option<&str>,
    body: &'body [u8],
    limit: usize,
) -> Result<std::borrow::Cow<'body, [u8]>, IngestError> {
    match encoding.unwrap_or_default() {
        "" | "snappy" => super::decode_content(None, body, limit),
        "gzip" => super::decode_content(Some("gzip"), body, limit),
        "deflate" => {
            super::inflate(flate2::read::DeflateDecoder::new(body), "deflate", limit).map(std::borrow::Cow::Owned)
        }
        other => Err(IngestError::LokiEncoding(other.to_owned())),
    }
}

pub fn decode_protobuf(compressed: &[u8], max_decompressed: usize) -> Result<Vec<Stream>, IngestError> {
    let length = snap::raw::decompress_len(compressed).map_err(IngestError::Snappy)?;
    if length > max_decompressed {
        return Err(IngestError::TooLarge(max_decompressed));
    }
    let body = snap::raw::Decoder::new().decompress_vec(compressed).map_err(IngestError::Snappy)?;
    let request: messages::PushRequest = prost::Message::decode(body.as_slice())
        .map_err(|source| IngestError::Protobuf { what: "a Loki PushRequest", source })?;
    request
        .streams
        .into_iter()
        .map(|stream| {
            let labels = parse_labels(&stream.labels)
                .map_err(|problem| IngestError::Record { at: At::Stream(stream.labels.clone()), problem })?;
            let entries = stream
                .entries
                .into_iter()
                .map(|entry| {
                    let nanos = entry
                        .timestamp
                        .map_or(0, |at| at.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(at.nanos)));
                    let metadata = entry.structured_metadata.into_iter().map(|pair| (pair.name, pair.value)).collect();
                    (nanos, entry.line, metadata)
                })
                .collect();
            Ok(Stream { labels, entries })
        })
        .collect()
}

/// Loki's JSON: `{"streams": [{"stream": {labels}, "values": [["<ns>", "<line>", {metadata}?]]}]}`.
/// Timestamps must be strings of nanoseconds, as Loki requires.
pub fn decode_json(body: &[u8]) -> Result<Vec<Stream>, IngestError> {
    let invalid = |problem: String| IngestError::Record { at: At::Nowhere, problem: problem.into() };
    let value: Value = serde_json::from_slice(body)
        .map_err(|source| IngestError::Json { at: At::Body { what: "body is not JSON", line: None }, source })?;
    let streams =
        value.get("streams").and_then(Value::as_array).ok_or_else(|| invalid("streams must be an array".to_owned()))?;
    streams
        .iter()
        .enumerate()
        .map(|(index, stream)| {
            let labels = match stream.get("stream") {
                None | Some(Value::Null) => BTreeMap::new(),
                // As in Loki, a number or a boolean is a label value too.
                Some(Value::Object(labels)) => labels
                    .iter()
                    .map(|(name, value)| match value {
                        Value::String(value) => Ok((name.clone(), value.clone())),
                        Value::Number(_) | Value::Bool(_) => Ok((name.clone(), value.to_string())),
                        _ => Err(invalid(format!("streams[{index}].stream.{name} must be a string"))),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(invalid(format!("streams[{index}].stream must be an object"))),
            };
            let no_values = Vec::new();
            let values = match stream.get("values") {
                None | Some(Value::Null) => &no_values,
                Some(Value::Array(values)) => values,
                Some(_) => return Err(invalid(format!("streams[{index}].values must be an array"))),
            };
            let entries = values
                .iter()
                .enumerate()
                .map(|(position, entry)| {
                    let at = |what: &str| invalid(format!("streams[{index}].values[{position}]: {what}"));
                    let parts =
                        entry.as_array().ok_or_else(|| at("an entry is [\"<unix nanoseconds>\", \"<line>\"]"))?;
                    let nanos = match parts.first() {
                        Some(Value::String(text)) => text
                            .parse::<i64>()
                            .map_err(|_| at(&format!("timestamp {text:?} is not Unix nanoseconds")))?,
                        Some(Value::Number(number)) => {
                            return Err(at(&format!("timestamp {number} must be a string of Unix nanoseconds")));
                        }
                        _ => return Err(at("missing timestamp")),
                    };
                    let line = match parts.get(1) {
                        None => String::new(),
                        Some(Value::String(line)) => line.clone(),
                        Some(_) => return Err(at("the line must be a string")),
                    };
                    let metadata = match parts.get(2) {
                        None => BTreeMap::new(),
                        Some(Value::Object(pairs)) => pairs
                            .iter()
                            .map(|(name, value)| {
                                Ok((
                                    name.clone(),
                                    value
                                        .as_str()
                                        .ok_or_else(|| at("structured metadata values must be strings"))?
                                        .to_owned(),
                                ))
                            })
                            .collect::<Result<_, IngestError>>()?,
                        Some(_) => return Err(at("structured metadata must be an object")),
                    };
                    Ok((nanos, line, metadata))
                })
                .collect::<Result<_, _>>()?;
            Ok(Stream { labels, entries })
        })
        .collect()
}

/// Parses `{name="value", ...}` (escapes `\"`, `\\`, `\n`).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, Invalid> {
    let inner =
        text.trim().strip_prefix('{').and_then(|rest| rest.strip_suffix('}')).ok_or("labels must be enclosed in {}")?;
    let mut labels = BTreeMap::new();
    let mut characters = inner.chars().peekable();
    loop {
        while characters.peek().is_some_and(|character| character.is_whitespace() || *character == ',') {
            characters.next();
        }
        if characters.peek().is_none() {
            return Ok(labels);
        }
        // A bare name, or a quoted one (Prometheus 3 writes names that are not identifiers so).
        let name: String = if characters.next_if_eq(&'"').is_some() {
            quoted(&mut characters).ok_or("unterminated label name")?
        } else {
            std::iter::from_fn(|| {
                characters.next_if(|character| character.is_ascii_alphanumeric() || *character == '_')
            })
            .collect()
        };
        if name.is_empty() {
            return Err("expected a label name".into());
        }
        while characters.next_if(|character| character.is_whitespace()).is_some() {}
        if characters.next() != Some('=') {
            return Err(format!("expected =\"value\" after {name}").into());
        }
        while characters.next_if(|character| character.is_whitespace()).is_some() {}
        if characters.next() != Some('"') {
            return Err(format!("expected =\"value\" after {name}").into());
        }
        let value = quoted(&mut characters).ok_or_else(|| format!("unterminated or badly escaped value of {name}"))?;
        labels.insert(name, value);
    }
}

/// The rest of a quoted string after its opening quote (escapes `\"`, `\\`, `\n`).
fn quoted(characters: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    let mut value = String::new();
    loop {
        match characters.next()? {
            '"' => return Some(value),
            '\\' => match characters.next()? {
                'n' => value.push('\n'),
                escaped @ ('"' | '\\') => value.push(escaped),
                _ => return None,
            },
            character => value.push(character),
        }
    }
}

fn take_label(labels: &mut BTreeMap<String, String>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| labels.remove(*name))
}

/// Turns streams into records; entries that fail validation are counted with their reason.
pub fn records(streams: Vec<Stream>, limits: &LogsConfig, now: Timestamp) -> Result<Push, IngestError> {
    let total: usize = streams.iter().map(|stream| stream.entries.len()).sum();
    if total > limits.max_batch_records {
        return Err(IngestError::TooMany { what: "push", limit: limits.max_batch_records, items: "entries" });
    }
    let latest = latest_timestamp(limits, now);
    let mut push = Push::default();
    for stream in streams {
        let mut labels = stream.labels;
        let service = take_label(&mut labels, &["service_name", "service", "job"])
            .unwrap_or_else(|| "unknown_service".to_owned());
        let host = take_label(&mut labels, &["host", "hostname", "instance"]).unwrap_or_default();
        let level = take_label(&mut labels, &["level", "detected_level", "severity"]);
        let shared: Map<String, Value> = labels.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
        for (nanos, line, metadata) in stream.entries {
            let mut attributes = shared.clone();
            attributes.extend(metadata.into_iter().map(|(name, value)| (name, Value::String(value))));
            let timestamp = match Timestamp::from_unix_nanos(nanos) {
                Ok(timestamp) => timestamp,
                Err(error) => {
                    push.rejected += 1;
                    push.errors.push(format!("entry for stream of service {service:?}: {error}"));
                    continue;
                }
            };
            let mut record = LogRecord {
                timestamp,
                service: service.clone(),
                host: host.clone(),
                level: level.clone().unwrap_or_else(|| detect_level(&line).to_owned()),
                message: line,
                attributes,
            };
            match validate(&mut record, limits, latest, now) {
                Ok(()) => push.records.push(record),
                Err(problem) => {
                    push.rejected += 1;
                    if push.errors.len() < 10 {
                        push.errors.push(format!("entry for stream of service {service:?}: {problem}"));
                    }
                }
            }
        }
    }
    Ok(push)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_with_escapes() {
        let labels = parse_labels(r#"{job="varlogs", host="web-1",path="C:\\logs \"a\""}"#).unwrap();
        assert_eq!(labels["job"], "varlogs");
        assert_eq!(labels["host"], "web-1");
        assert_eq!(labels["path"], r#"C:\logs "a""#);
        assert!(parse_labels("{}").unwrap().is_empty());
        for bad in ["job=\"x\"", "{job=x}", "{job=\"x}", "{=\"x\"}"] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_timestamps_must_be_strings() {
        let error = decode_json(br#"{"streams":[{"stream":{"job":"a"},"values":[[1795939200000000000,"line"]]}]}"#)
            .unwrap_err();
        assert!(error.to_string().contains("must be a string"), "{error}");
        assert!(matches!(error, IngestError::Record { .. }), "{error:?}");
    }

    #[test]
    fn labels_map_to_fields_and_the_rest_to_attributes() {
        let streams = decode_json(
            br#"{"streams":[{"stream":{"job":"api","instance":"web-1:9090","env":"prod"},
                "values":[["1795939200000000000","ERROR upstream timed out",{"trace_id":"abc"}],["1795939201000000000","fine"]]}]}"#,
        )
        .unwrap();
        let push = records(streams, &LogsConfig::default(), "2026-11-29T09:00:00Z".parse().unwrap()).unwrap();
        let first = &push.records[0];
        assert_eq!((first.service.as_str(), first.host.as_str(), first.level.as_str()), ("api", "web-1:9090", "error"));
        assert_eq!(first.attributes["env"], "prod");
        assert_eq!(first.attributes["trace_id"], "abc");
        assert_eq!(push.records[1].level, "unknown");
    }
}
