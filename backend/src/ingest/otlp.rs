//! OTLP/HTTP logs: decoding of an `ExportLogsServiceRequest`, as protobuf or as OTLP JSON, into
//! log records.
//!
//! Each log record becomes one record: `service` from the resource's `service.name`
//! (`unknown_service` when absent, as the OpenTelemetry specification says), `host` from
//! `host.name`, `level` from the severity number (or its text), the body as the message, and
//! the resource, scope and log attributes flattened into `attributes` (log attributes win), with
//! `trace_id` and `span_id` in hex. Records that fail validation are rejected alone and counted
//! in the partial-success answer.

use base64::Engine;
use serde_json::{Map, Number, Value};
use vigil_proto::{LogRecord, Timestamp};

use super::{At, IngestError, latest_timestamp, validate};
use crate::config::LogsConfig;

/// The protobuf messages of `opentelemetry/proto/collector/logs/v1` and their dependencies,
/// reduced to the fields Vigil reads.
pub mod messages {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_logs: Vec<ResourceLogs>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceResponse {
        #[prost(message, optional, tag = "1")]
        pub partial_success: Option<ExportLogsPartialSuccess>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsPartialSuccess {
        #[prost(int64, tag = "1")]
        pub rejected_log_records: i64,
        #[prost(string, tag = "2")]
        pub error_message: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceLogs {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_logs: Vec<ScopeLogs>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeLogs {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub log_records: Vec<LogRecord>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogRecord {
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        #[prost(fixed64, tag = "11")]
        pub observed_time_unix_nano: u64,
        #[prost(int32, tag = "2")]
        pub severity_number: i32,
        #[prost(string, tag = "3")]
        pub severity_text: String,
        #[prost(message, optional, tag = "5")]
        pub body: Option<AnyValue>,
        #[prost(message, repeated, tag = "6")]
        pub attributes: Vec<KeyValue>,
        #[prost(bytes = "vec", tag = "9")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "10")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "12")]
        pub event_name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<any_value::Value>,
    }

    pub mod any_value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(string, tag = "1")]
            StringValue(String),
            #[prost(bool, tag = "2")]
            BoolValue(bool),
            #[prost(int64, tag = "3")]
            IntValue(i64),
            #[prost(double, tag = "4")]
            DoubleValue(f64),
            #[prost(message, tag = "5")]
            ArrayValue(super::ArrayValue),
            #[prost(message, tag = "6")]
            KvlistValue(super::KeyValueList),
            #[prost(bytes, tag = "7")]
            BytesValue(Vec<u8>),
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
}

use messages::any_value::Value as Any;
use messages::{ExportLogsServiceRequest, KeyValue};

/// What an export request became: the records to store, and those refused with why.
#[derive(Debug, Default)]
pub struct Export {
    pub records: Vec<LogRecord>,
    pub rejected: u64,
    pub first_rejection: Option<String>,
}

/// How an export request is encoded, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, IngestError> {
        let found = content_type.unwrap_or("(none)");
        match found.split(';').next().unwrap_or_default().trim().to_ascii_lowercase().as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Self::Protobuf),
            "application/json" => Ok(Self::Json),
            _ => Err(IngestError::MediaType {
                found: found.to_owned(),
                accepted: "application/x-protobuf or application/json",
            }),
        }
    }
}

pub fn decode_protobuf(body: &[u8]) -> Result<ExportLogsServiceRequest, IngestError> {
    prost::Message::decode(body)
        .map_err(|source| IngestError::Protobuf { what: "an OTLP ExportLogsServiceRequest", source })
}

/// Reads OTLP JSON (lowerCamelCase field names, 64-bit integers as strings, ids in hex).
pub fn decode_json(body: &[u8]) -> Result<ExportLogsServiceRequest, IngestError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|source| IngestError::Json { at: At::Body { what: "body is not JSON", line: None }, source })?;
    json::request(&value)
        .map_err(|problem| IngestError::Record { at: At::Body { what: "invalid OTLP JSON", line: None }, problem })
}

/// Turns the request into records, refusing those that break the bounds.
pub fn records(request: ExportLogsServiceRequest, limits: &LogsConfig, now: Timestamp) -> Result<Export, IngestError> {
    let total: usize = request
        .resource_logs
        .iter()
        .flat_map(|resource| &resource.scope_logs)
        .map(|scope| scope.log_records.len())
        .sum();
    if total > limits.max_batch_records {
        return Err(IngestError::TooMany { what: "request", limit: limits.max_batch_records, items: "log records" });
    }
    let latest = latest_timestamp(limits, now);
    let mut export = Export::default();
    for resource_logs in request.resource_logs {
        let resource =
            attributes_object(resource_logs.resource.map(|resource| resource.attributes).unwrap_or_default());
        let service = resource.get("service.name").and_then(Value::as_str).unwrap_or("unknown_service").to_owned();
        let host = resource.get("host.name").and_then(Value::as_str).unwrap_or_default().to_owned();
        for scope_logs in resource_logs.scope_logs {
            let mut shared = resource.clone();
            if let Some(scope) = scope_logs.scope {
                if !scope.name.is_empty() {
                    shared.insert("scope.name".to_owned(), Value::String(scope.name));
                }
                if !scope.version.is_empty() {
                    shared.insert("scope.version".to_owned(), Value::String(scope.version));
                }
                shared.extend(attributes_object(scope.attributes));
            }
            for log in scope_logs.log_records {
                let mut record = record(log, &service, &host, &shared, now);
                match validate(&mut record, limits, latest, now) {
                    Ok(()) => export.records.push(record),
                    Err(problem) => {
                        export.rejected += 1;
                        export.first_rejection.get_or_insert(problem.to_string());
                    }
                }
            }
        }
    }
    Ok(export)
}

fn record(
    log: messages::LogRecord,
    service: &str,
    host: &str,
    shared: &Map<String, Value>,
    now: Timestamp,
) -> LogRecord {
    let nanos = [log.time_unix_nano, log.observed_time_unix_nano].into_iter().find(|&nanos| nanos > 0);
    let timestamp = nanos
        .and_then(|nanos| i64::try_from(nanos).ok())
        .and_then(|nanos| Timestamp::from_unix_nanos(nanos).ok())
        .unwrap_or(now);
    let mut attributes = shared.clone();
    attributes.extend(attributes_object(log.attributes));
    if !log.trace_id.is_empty() {
        attributes.insert("trace_id".to_owned(), Value::String(hex(&log.trace_id)));
    }
    if !log.span_id.is_empty() {
        attributes.insert("span_id".to_owned(), Value::String(hex(&log.span_id)));
    }
    if !log.event_name.is_empty() {
        attributes.insert("event_name".to_owned(), Value::String(log.event_name));
    }
    let message = match log.body.and_then(|body| body.value) {
        None => String::new(),
        Some(Any::StringValue(text)) => text,
        Some(other) => any_to_json(other).to_string(),
    };
    LogRecord {
        timestamp,
        service: service.to_owned(),
        host: host.to_owned(),
        level: level(log.severity_number, &log.severity_text),
        message,
        attributes,
    }
}

/// The level of an OpenTelemetry severity: its number's range, else its text.
pub fn level(severity_number: i32, severity_text: &str) -> String {
    let from_number = match severity_number {
        1..=4 => Some("trace"),
        5..=8 => Some("debug"),
        9..=12 => Some("info"),
        13..=16 => Some("warn"),
        17..=20 => Some("error"),
        21..=24 => Some("fatal"),
        _ => None,
    };
    if let Some(level) = from_number {
        return level.to_owned();
    }
    match severity_text.trim().to_ascii_lowercase().as_str() {
        "" => "unknown".to_owned(),
        "information" => "info".to_owned(),
        "warning" => "warn".to_owned(),
        "critical" => "fatal".to_owned(),
        other => other.to_owned(),
    }
}

fn attributes_object(attributes: Vec<KeyValue>) -> Map<String, Value> {
    attributes.into_iter().filter_map(|pair| Some((pair.key, any_to_json(pair.value?.value?)))).collect()
}

fn any_to_json(value: Any) -> Value {
    match value {
        Any::StringValue(text) => Value::String(text),
        Any::BoolValue(flag) => Value::Bool(flag),
        Any::IntValue(number) => Value::Number(number.into()),
        Any::DoubleValue(number) => {
            Number::from_f64(number).map_or_else(|| Value::String(number.to_string()), Value::Number)
        }
        Any::ArrayValue(array) => {
            Value::Array(array.values.into_iter().filter_map(|value| value.value.map(any_to_json)).collect())
        }
        Any::KvlistValue(list) => Value::Object(attributes_object(list.values)),
        Any::BytesValue(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// OTLP JSON into the protobuf messages.
mod json {
    use base64::Engine;

    use super::super::Invalid;
    use serde_json::Value;

    use super::messages::{
        AnyValue, ArrayValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue, KeyValueList, LogRecord,
        Resource, ResourceLogs, ScopeLogs, any_value::Value as Any,
    };

    /// A field by its JSON name, or by its protobuf name (both are allowed).
    fn field<'a>(object: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
        object.get(camel).or_else(|| object.get(snake)).filter(|value| !value.is_null())
    }

    fn array<'a>(object: &'a Value, camel: &str, snake: &str) -> Result<&'a [Value], Invalid> {
        match field(object, camel, snake) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(format!("{camel} must be an array").into()),
        }
    }

    fn string(object: &Value, camel: &str, snake: &str) -> Result<String, Invalid> {
        match field(object, camel, snake) {
            None => Ok(String::new()),
            Some(Value::String(text)) => Ok(text.clone()),
            Some(_) => Err(format!("{camel} must be a string").into()),
        }
    }

    /// A 64-bit integer: a string of digits (as OTLP JSON writes them) or a number.
    fn integer<T: std::str::FromStr + TryFrom<u64>>(
        object: &Value,
        camel: &str,
        snake: &str,
    ) -> Result<Option<T>, Invalid> {
        let invalid = || Invalid::from(format!("{camel} must be an integer"));
        match field(object, camel, snake) {
            None => Ok(None),
            Some(Value::String(text)) => text.parse().map(Some).map_err(|_| invalid()),
            Some(Value::Number(number)) => {
                number.as_u64().and_then(|number| T::try_from(number).ok()).map(Some).ok_or_else(invalid)
            }
            Some(_) => Err(invalid()),
        }
    }

    fn hex_bytes(object: &Value, camel: &str, snake: &str) -> Result<Vec<u8>, Invalid> {
        let text = string(object, camel, snake)?;
        if text.len() % 2 != 0 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(format!("{camel} must be hex").into());
        }
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).map_err(|error| Invalid::from(error.to_string())))
            .collect()
    }

    pub fn request(value: &Value) -> Result<ExportLogsServiceRequest, Invalid> {
        let resource_logs =
            array(value, "resourceLogs", "resource_logs")?.iter().map(resource_logs).collect::<Result<_, _>>()?;
        Ok(ExportLogsServiceRequest { resource_logs })
    }

    fn resource_logs(value: &Value) -> Result<ResourceLogs, Invalid> {
        let resource = field(value, "resource", "resource")
            .map(|resource| Ok::<_, Invalid>(Resource { attributes: key_values(resource, "attributes")? }))
            .transpose()?;
        let scope_logs = array(value, "scopeLogs", "scope_logs")?.iter().map(scope_logs).collect::<Result<_, _>>()?;
        Ok(ResourceLogs { resource, scope_logs })
    }

    fn scope_logs(value: &Value) -> Result<ScopeLogs, Invalid> {
        let scope = field(value, "scope", "scope")
            .map(|scope| {
                Ok::<_, Invalid>(InstrumentationScope {
                    name: string(scope, "name", "name")?,
                    version: string(scope, "version", "version")?,
                    attributes: key_values(scope, "attributes")?,
                })
            })
            .transpose()?;
        let log_records =
            array(value, "logRecords", "log_records")?.iter().map(log_record).collect::<Result<_, _>>()?;
        Ok(ScopeLogs { scope, log_records })
    }

    fn log_record(value: &Value) -> Result<LogRecord, Invalid> {
        let severity_number = match field(value, "severityNumber", "severity_number") {
            None => 0,
            Some(Value::Number(number)) => number
                .as_i64()
                .and_then(|number| i32::try_from(number).ok())
                .ok_or("severityNumber must be an integer")?,
            Some(Value::String(name)) => {
                severity_by_name(name).ok_or_else(|| format!("unknown severityNumber {name:?}"))?
            }
            Some(_) => return Err("severityNumber must be an integer".into()),
        };
        Ok(LogRecord {
            time_unix_nano: integer(value, "timeUnixNano", "time_unix_nano")?.unwrap_or(0),
            observed_time_unix_nano: integer(value, "observedTimeUnixNano", "observed_time_unix_nano")?.unwrap_or(0),
            severity_number,
            severity_text: string(value, "severityText", "severity_text")?,
            body: field(value, "body", "body").map(any_value).transpose()?,
            attributes: key_values(value, "attributes")?,
            trace_id: hex_bytes(value, "traceId", "trace_id")?,
            span_id: hex_bytes(value, "spanId", "span_id")?,
            event_name: string(value, "eventName", "event_name")?,
        })
    }

    fn severity_by_name(name: &str) -> Option<i32> {
        let suffix = name.strip_prefix("SEVERITY_NUMBER_")?;
        let (base, offset) =
            suffix.split_at(suffix.find(|character: char| character.is_ascii_digit()).unwrap_or(suffix.len()));
        let first = match base {
            "UNSPECIFIED" => return Some(0),
            "TRACE" => 1,
            "DEBUG" => 5,
            "INFO" => 9,
            "WARN" => 13,
            "ERROR" => 17,
            "FATAL" => 21,
            _ => return None,
        };
        let offset: i32 = if offset.is_empty() { 1 } else { offset.parse().ok()? };
        (1..=4).contains(&offset).then_some(first + offset - 1)
    }

    fn key_values(object: &Value, name: &str) -> Result<Vec<KeyValue>, Invalid> {
        array(object, name, name)?
            .iter()
            .map(|pair| {
                Ok(KeyValue {
                    key: string(pair, "key", "key")?,
                    value: field(pair, "value", "value").map(any_value).transpose()?,
                })
            })
            .collect()
    }

    fn any_value(value: &Value) -> Result<AnyValue, Invalid> {
        let Value::Object(object) = value else {
            return Err("an AnyValue must be an object".into());
        };
        let Some((kind, inner)) = object.iter().next() else {
            return Ok(AnyValue { value: None });
        };
        let value = match (kind.as_str(), inner) {
            ("stringValue" | "string_value", Value::String(text)) => Any::StringValue(text.clone()),
            ("boolValue" | "bool_value", Value::Bool(flag)) => Any::BoolValue(*flag),
            ("intValue" | "int_value", Value::String(text)) => {
                Any::IntValue(text.parse().map_err(|_| format!("intValue {text:?} is not an integer"))?)
            }
            ("intValue" | "int_value", Value::Number(number)) => {
                Any::IntValue(number.as_i64().ok_or("intValue must be an integer")?)
            }
            ("doubleValue" | "double_value", Value::Number(number)) => {
                Any::DoubleValue(number.as_f64().unwrap_or_default())
            }
            ("doubleValue" | "double_value", Value::String(text)) => {
                Any::DoubleValue(text.parse().map_err(|_| format!("doubleValue {text:?} is not a number"))?)
            }
            ("arrayValue" | "array_value", array) => Any::ArrayValue(ArrayValue {
                values: match array.get("values") {
                    Some(Value::Array(values)) => values.iter().map(any_value).collect::<Result<_, _>>()?,
                    _ => Vec::new(),
                },
            }),
            ("kvlistValue" | "kvlist_value", list) => {
                Any::KvlistValue(KeyValueList { values: key_values(list, "values")? })
            }
            ("bytesValue" | "bytes_value", Value::String(text)) => Any::BytesValue(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| "bytesValue must be base64".to_owned())?,
            ),
            (kind, _) => return Err(format!("unknown or ill-typed AnyValue {kind:?}").into()),
        };
        Ok(AnyValue { value: Some(value) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_map_to_levels() {
        assert_eq!(level(9, "Information"), "info");
        assert_eq!(level(17, ""), "error");
        assert_eq!(level(0, "Warning"), "warn");
        assert_eq!(level(0, ""), "unknown");
        assert_eq!(json::request(&serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": "SEVERITY_NUMBER_WARN2"}]}]}]})).unwrap().resource_logs[0].scope_logs[0].log_records[0].severity_number, 14);
    }

    #[test]
    fn protobuf_and_json_decode_alike() {
        let json = serde_json::json!({"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
            "scopeLogs": [{"logRecords": [{
                "timeUnixNano": "1795939200000000000",
                "severityNumber": 17,
                "body": {"kvlistValue": {"values": [{"key": "order", "value": {"intValue": "42"}}]}},
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "attributes": [{"key": "http.status", "value": {"intValue": 502}}]
            }]}]
        }]});
        let from_json = decode_json(json.to_string().as_bytes()).unwrap();
        let from_protobuf = decode_protobuf(&prost::Message::encode_to_vec(&from_json)).unwrap();
        assert_eq!(from_json, from_protobuf);
        let export = records(from_protobuf, &LogsConfig::default(), "2026-11-29T09:00:00Z".parse().unwrap()).unwrap();
        let record = &export.records[0];
        assert_eq!((record.service.as_str(), record.level.as_str()), ("checkout", "error"));
        assert_eq!(record.message, r#"{"order":42}"#);
        assert_eq!(record.attributes["trace_id"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(record.attributes["http.status"], 502);
        assert_eq!(record.attributes["service.name"], "checkout");
    }

    #[test]
    fn ill_typed_json_is_refused_with_the_field_named() {
        let error = decode_json(br#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": true}]}]}]}"#)
            .unwrap_err();
        assert!(error.to_string().contains("timeUnixNano"), "{error}");
        let error =
            decode_json(br#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]}"#).unwrap_err();
        assert!(error.to_string().contains("traceId"), "{error}");
    }
}
